/*
 * image.c — PNG / JPEG / PNM decoding and conversion to the model's input (see image.h for the formats and the
 * conversion steps). Every decoder produces float samples in [0, 255], h x w x c interleaved (c = 1..4), which one
 * converter (channels, resize, normalise) turns into the model's [C, S, S] tensor.
 *
 * Memory: one malloc'd buffer per decode (the decoded image) and two for resampling, all freed before returning.
 */
#include "image.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <spng.h>
#include <turbojpeg.h>

#define IMG__MAX_DIM 1000000 /* no side beyond this, whatever the pixel limit: keeps w*h*c products small */

static int img__fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

const char *acm_image_format_name(acm_image_format f) {
    switch (f) {
    case ACM_IMAGE_PNG: return "PNG";
    case ACM_IMAGE_JPEG: return "JPEG";
    case ACM_IMAGE_PNM: return "PNM";
    default: return "unknown";
    }
}

acm_image_format acm_image_sniff(const uint8_t *buf, size_t len) {
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(buf, png_magic, 8) == 0) return ACM_IMAGE_PNG;
    if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff) return ACM_IMAGE_JPEG;
    if (len >= 2 && buf[0] == 'P' && (buf[1] == '2' || buf[1] == '3' || buf[1] == '5' || buf[1] == '6'))
        return ACM_IMAGE_PNM;
    return ACM_IMAGE_UNKNOWN;
}

acm_image_format acm_image_format_from_type(const char *t) {
    if (!t) return ACM_IMAGE_UNKNOWN;
    while (*t == ' ' || *t == '\t') t++;
    size_t n = strcspn(t, "; \t");
    static const struct {
        const char *name;
        acm_image_format f;
    } types[] = {
        {"image/png", ACM_IMAGE_PNG},
        {"image/jpeg", ACM_IMAGE_JPEG},
        {"image/jpg", ACM_IMAGE_JPEG},
        {"image/x-portable-anymap", ACM_IMAGE_PNM},
        {"image/x-portable-graymap", ACM_IMAGE_PNM},
        {"image/x-portable-pixmap", ACM_IMAGE_PNM},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strlen(types[i].name) == n && strncasecmp(t, types[i].name, n) == 0) return types[i].f;
    return ACM_IMAGE_UNKNOWN;
}

/* ---- PNM --------------------------------------------------------------------------------------------------------- */

typedef struct {
    int binary, channels, width, height, maxval;
    size_t data_off; /* first byte of the samples */
} img__pnm;

/* Next header integer at *pos (skipping whitespace and '#' comments to the end of the line). */
static int img__pnm_int(const uint8_t *buf, size_t len, size_t *pos, long *out) {
    size_t i = *pos;
    for (;;) {
        while (i < len && isspace(buf[i])) i++;
        if (i < len && buf[i] == '#') {
            while (i < len && buf[i] != '\n' && buf[i] != '\r') i++;
            continue;
        }
        break;
    }
    if (i >= len || !isdigit(buf[i])) return -1;
    long v = 0;
    while (i < len && isdigit(buf[i])) {
        v = v * 10 + (buf[i] - '0');
        if (v > 100000000L) return -1;
        i++;
    }
    *pos = i;
    *out = v;
    return 0;
}

static int img__pnm_header(img__pnm *h, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    if (len < 2 || buf[0] != 'P') return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "not a PNM image");
    switch (buf[1]) {
    case '2': h->binary = 0, h->channels = 1; break;
    case '3': h->binary = 0, h->channels = 3; break;
    case '5': h->binary = 1, h->channels = 1; break;
    case '6': h->binary = 1, h->channels = 3; break;
    default: return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "PNM variant P%c is not supported (P2, P3, P5, P6 are)",
                              buf[1]);
    }
    size_t pos = 2;
    long w, hh, mx;
    if (img__pnm_int(buf, len, &pos, &w) || img__pnm_int(buf, len, &pos, &hh) || img__pnm_int(buf, len, &pos, &mx))
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM header is malformed or truncated");
    if (w < 1 || hh < 1 || w > IMG__MAX_DIM || hh > IMG__MAX_DIM)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM size %ldx%ld is out of range", w, hh);
    if (mx < 1 || mx > 65535) return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM maxval %ld is not in 1..65535", mx);
    if (pos >= len || !isspace(buf[pos]))
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM header must end with one whitespace character");
    h->width = (int)w, h->height = (int)hh, h->maxval = (int)mx;
    h->data_off = pos + 1; /* exactly one whitespace byte before binary samples */
    return 0;
}

static int img__pnm_decode(float **out, img__pnm *h, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    const size_t n = (size_t)h->width * h->height * h->channels;
    float *px = malloc(n * sizeof *px);
    if (!px) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory decoding a %dx%d PNM", h->width, h->height);
    const float scale = 255.0f / (float)h->maxval;
    if (h->binary) {
        const size_t bps = h->maxval > 255 ? 2 : 1;
        if (len - h->data_off < n * bps) {
            free(px);
            return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM data is truncated (%zu of %zu bytes)",
                             len - h->data_off, n * bps);
        }
        const uint8_t *s = buf + h->data_off;
        for (size_t i = 0; i < n; i++) {
            unsigned v = bps == 2 ? (unsigned)s[2 * i] << 8 | s[2 * i + 1] : s[i];
            if ((int)v > h->maxval) {
                free(px);
                return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM sample %u exceeds maxval %d", v, h->maxval);
            }
            px[i] = h->maxval == 255 ? (float)v : (float)v * scale;
        }
    } else {
        size_t pos = h->data_off;
        for (size_t i = 0; i < n; i++) {
            long v;
            if (img__pnm_int(buf, len, &pos, &v)) {
                free(px);
                return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM data is truncated or malformed at sample %zu",
                                 i);
            }
            if (v > h->maxval) {
                free(px);
                return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNM sample %ld exceeds maxval %d", v, h->maxval);
            }
            px[i] = h->maxval == 255 ? (float)v : (float)v * scale;
        }
    }
    *out = px;
    return 0;
}

/* ---- PNG --------------------------------------------------------------------------------------------------------- */

static int img__png_open(spng_ctx **ctx, struct spng_ihdr *ihdr, const uint8_t *buf, size_t len, char *err,
                         size_t errlen) {
    *ctx = spng_ctx_new(0);
    if (!*ctx) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (PNG decoder)");
    spng_set_image_limits(*ctx, IMG__MAX_DIM, IMG__MAX_DIM);
    spng_set_chunk_limits(*ctx, (size_t)16 << 20, (size_t)64 << 20); /* ancillary chunks cannot balloon memory */
    int r = spng_set_png_buffer(*ctx, buf, len);
    if (!r) r = spng_get_ihdr(*ctx, ihdr);
    if (r) {
        spng_ctx_free(*ctx);
        *ctx = NULL;
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG header: %s", spng_strerror(r));
    }
    return 0;
}

static int img__png_channels(const struct spng_ihdr *h) {
    switch (h->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: return 1;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: return 2;
    case SPNG_COLOR_TYPE_TRUECOLOR: return 3;
    default: return 4; /* truecolour + alpha, and palette (decoded as RGBA) */
    }
}

static int img__png_decode(float **out, int *w, int *h, int *c, const uint8_t *buf, size_t len, char *err,
                           size_t errlen) {
    spng_ctx *ctx;
    struct spng_ihdr ih;
    int r = img__png_open(&ctx, &ih, buf, len, err, errlen);
    if (r) return r;
    const int grey = ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE || ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE_ALPHA;
    const int wide = ih.bit_depth == 16;
    const int fmt = grey ? (wide ? SPNG_FMT_GA16 : SPNG_FMT_GA8) : (wide ? SPNG_FMT_RGBA16 : SPNG_FMT_RGBA8);
    const int nc = grey ? 2 : 4;
    size_t sz;
    void *raw = NULL;
    float *px = NULL;
    if ((r = spng_decoded_image_size(ctx, fmt, &sz))) goto bad;
    if (!(raw = malloc(sz))) goto nomem;
    if ((r = spng_decode_image(ctx, raw, sz, fmt, 0))) goto bad;
    const size_t np = (size_t)ih.width * ih.height;
    /* keep colour (or grey) samples; drop alpha */
    const int keep = grey ? 1 : 3;
    if (!(px = malloc(np * keep * sizeof *px))) goto nomem;
    for (size_t i = 0; i < np; i++)
        for (int k = 0; k < keep; k++)
            px[i * keep + k] = wide ? (float)((const uint16_t *)raw)[i * nc + k] / 257.0f
                                    : (float)((const uint8_t *)raw)[i * nc + k];
    free(raw);
    spng_ctx_free(ctx);
    *out = px, *w = (int)ih.width, *h = (int)ih.height, *c = keep;
    return 0;
bad:
    free(raw);
    spng_ctx_free(ctx);
    return img__fail(err, errlen, ACM_IMAGE_EDECODE, "PNG data: %s", spng_strerror(r));
nomem:
    free(raw);
    free(px);
    spng_ctx_free(ctx);
    return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory decoding a %ux%u PNG", ih.width, ih.height);
}

/* ---- JPEG -------------------------------------------------------------------------------------------------------- */

static int img__jpeg_header(tjhandle tj, const uint8_t *buf, size_t len, int *w, int *h, int *cs, char *err,
                            size_t errlen) {
    int sub;
    if (tjDecompressHeader3(tj, buf, (unsigned long)len, w, h, &sub, cs) != 0)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG header: %s", tjGetErrorStr2(tj));
    if (*w < 1 || *h < 1 || *w > IMG__MAX_DIM || *h > IMG__MAX_DIM)
        return img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG size %dx%d is out of range", *w, *h);
    return 0;
}

static int img__jpeg_decode(float **out, int *ow, int *oh, int *oc, const uint8_t *buf, size_t len, int target,
                            int channels, char *err, size_t errlen) {
    tjhandle tj = tjInitDecompress();
    if (!tj) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (JPEG decoder)");
    int w, h, cs, r;
    if ((r = img__jpeg_header(tj, buf, len, &w, &h, &cs, err, errlen))) {
        tjDestroy(tj);
        return r;
    }
    /* The smallest DCT-scaled size still >= the target on both sides (scaling factors come sorted largest first). */
    int nsf = 0, sw = w, sh = h;
    tjscalingfactor *sf = tjGetScalingFactors(&nsf);
    for (int i = 0; sf && i < nsf; i++) {
        int cw = TJSCALED(w, sf[i]), ch = TJSCALED(h, sf[i]);
        if (cw >= target && ch >= target && (size_t)cw * ch < (size_t)sw * sh) sw = cw, sh = ch;
    }
    const int pf = channels == 1 ? TJPF_GRAY : TJPF_RGB, nc = channels == 1 ? 1 : 3;
    uint8_t *raw = malloc((size_t)sw * sh * nc);
    float *px = malloc((size_t)sw * sh * nc * sizeof *px);
    if (!raw || !px) {
        free(raw), free(px), tjDestroy(tj);
        return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory decoding a %dx%d JPEG", w, h);
    }
    if (tjDecompress2(tj, buf, (unsigned long)len, raw, sw, 0, sh, pf, TJFLAG_LIMITSCANS) != 0 &&
        tjGetErrorCode(tj) == TJERR_FATAL) {
        r = img__fail(err, errlen, ACM_IMAGE_EDECODE, "JPEG data: %s", tjGetErrorStr2(tj));
        free(raw), free(px), tjDestroy(tj);
        return r;
    }
    for (size_t i = 0; i < (size_t)sw * sh * nc; i++) px[i] = raw[i];
    free(raw);
    tjDestroy(tj);
    *out = px, *ow = sw, *oh = sh, *oc = nc;
    return 0;
}

/* ---- probe ------------------------------------------------------------------------------------------------------- */

int acm_image_probe(acm_image_info *info, const uint8_t *buf, size_t len, char *err, size_t errlen) {
    memset(info, 0, sizeof *info);
    info->format = acm_image_sniff(buf, len);
    switch (info->format) {
    case ACM_IMAGE_PNG: {
        spng_ctx *ctx;
        struct spng_ihdr ih;
        int r = img__png_open(&ctx, &ih, buf, len, err, errlen);
        if (r) return r;
        spng_ctx_free(ctx);
        info->width = (int)ih.width, info->height = (int)ih.height, info->channels = img__png_channels(&ih);
        return 0;
    }
    case ACM_IMAGE_JPEG: {
        tjhandle tj = tjInitDecompress();
        if (!tj) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory (JPEG decoder)");
        int cs, r = img__jpeg_header(tj, buf, len, &info->width, &info->height, &cs, err, errlen);
        tjDestroy(tj);
        info->channels = cs == TJCS_GRAY ? 1 : 3;
        return r;
    }
    case ACM_IMAGE_PNM: {
        img__pnm h;
        int r = img__pnm_header(&h, buf, len, err, errlen);
        if (r) return r;
        info->width = h.width, info->height = h.height, info->channels = h.channels;
        return 0;
    }
    default: return img__fail(err, errlen, ACM_IMAGE_EFORMAT, "not a PNG, JPEG or PNM image");
    }
}

/* ---- conversion -------------------------------------------------------------------------------------------------- */

/* Weights of a separable antialiased-bilinear resampling from n_in to n_out samples: for output i, taps
 * [lo[i], lo[i] + cnt[i]) with weights w[i * maxtaps ..]. Returns maxtaps, or -1 on allocation failure. */
static int img__taps(int n_in, int n_out, int **lo_out, int **cnt_out, float **w_out) {
    const double scale = (double)n_in / n_out, fs = scale > 1 ? scale : 1, support = fs;
    const int maxtaps = (int)ceil(support) * 2 + 1;
    int *lo = malloc(sizeof(int) * n_out), *cnt = malloc(sizeof(int) * n_out);
    float *w = malloc(sizeof(float) * (size_t)n_out * maxtaps);
    if (!lo || !cnt || !w) {
        free(lo), free(cnt), free(w);
        return -1;
    }
    for (int i = 0; i < n_out; i++) {
        const double center = (i + 0.5) * scale;
        int a = (int)floor(center - support + 0.5), b = (int)floor(center + support + 0.5);
        if (a < 0) a = 0;
        if (b > n_in) b = n_in;
        if (b - a > maxtaps) b = a + maxtaps;
        double sum = 0;
        for (int x = a; x < b; x++) {
            double t = fabs((x + 0.5 - center) / fs);
            double v = t < 1 ? 1 - t : 0;
            w[(size_t)i * maxtaps + (x - a)] = (float)v;
            sum += v;
        }
        for (int x = a; x < b; x++) w[(size_t)i * maxtaps + (x - a)] = (float)(w[(size_t)i * maxtaps + (x - a)] / sum);
        lo[i] = a, cnt[i] = b - a;
    }
    *lo_out = lo, *cnt_out = cnt, *w_out = w;
    return maxtaps;
}

/* px [h, w, c] in [0, 255] -> out [C, S, S] normalised. */
static int img__convert(float *out, const float *px, int h, int w, int c, const acm_image_params *p, char *err,
                        size_t errlen) {
    const int S = p->size, C = p->channels;
    const size_t np = (size_t)h * w;
    /* 1. channels -> planar [C, h, w] */
    float *pl = malloc(np * C * sizeof *pl);
    if (!pl) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory converting a %dx%d image", w, h);
    for (size_t i = 0; i < np; i++) {
        const float *s = px + i * c;
        if (C == 1) {
            if (c <= 2 || (s[0] == s[1] && s[1] == s[2])) pl[i] = s[0];
            else pl[i] = 0.299f * s[0] + 0.587f * s[1] + 0.114f * s[2];
        } else {
            for (int k = 0; k < 3; k++) pl[(size_t)k * np + i] = c <= 2 ? s[0] : s[k];
        }
    }
    /* 2. resize each plane to S x S (rows then columns) */
    float *rs = pl;
    if (h != S || w != S) {
        int *hlo, *hcnt, *vlo, *vcnt;
        float *hw, *vw;
        int ht = img__taps(w, S, &hlo, &hcnt, &hw);
        int vt = ht < 0 ? -1 : img__taps(h, S, &vlo, &vcnt, &vw);
        float *tmp = malloc((size_t)h * S * sizeof *tmp);
        rs = malloc((size_t)C * S * S * sizeof *rs);
        if (ht < 0 || vt < 0 || !tmp || !rs) {
            if (ht >= 0) free(hlo), free(hcnt), free(hw);
            if (vt >= 0) free(vlo), free(vcnt), free(vw);
            free(tmp), free(rs), free(pl);
            return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory resizing a %dx%d image", w, h);
        }
        for (int k = 0; k < C; k++) {
            const float *src = pl + (size_t)k * np;
            for (int y = 0; y < h; y++)
                for (int x = 0; x < S; x++) {
                    double acc = 0;
                    for (int t = 0; t < hcnt[x]; t++) acc += hw[(size_t)x * ht + t] * src[(size_t)y * w + hlo[x] + t];
                    tmp[(size_t)y * S + x] = (float)acc;
                }
            for (int y = 0; y < S; y++)
                for (int x = 0; x < S; x++) {
                    double acc = 0;
                    for (int t = 0; t < vcnt[y]; t++) acc += vw[(size_t)y * vt + t] * tmp[(size_t)(vlo[y] + t) * S + x];
                    rs[((size_t)k * S + y) * S + x] = (float)acc;
                }
        }
        free(hlo), free(hcnt), free(hw), free(vlo), free(vcnt), free(vw), free(tmp), free(pl);
    }
    /* 3. normalise: the expression of acm-train eval */
    for (int k = 0; k < C; k++)
        for (size_t i = 0; i < (size_t)S * S; i++) {
            float v = rs[(size_t)k * S * S + i];
            v = v < 0 ? 0 : v > 255 ? 255 : v;
            out[(size_t)k * S * S + i] = (v / 255.0f - p->mean[k]) / p->std[k];
        }
    free(rs);
    return 0;
}

static int img__check_params(const acm_image_params *p, char *err, size_t errlen) {
    if (!p || p->size < 1 || p->size > 4096 || (p->channels != 1 && p->channels != 3))
        return img__fail(err, errlen, ACM_IMAGE_EINVAL, "image parameters: size %d, channels %d not supported",
                         p ? p->size : 0, p ? p->channels : 0);
    return 0;
}

int acm_image_to_tensor(float *out, const uint8_t *buf, size_t len, const acm_image_params *p, char *err,
                        size_t errlen) {
    int r = img__check_params(p, err, errlen);
    if (r) return r;
    acm_image_info info;
    if ((r = acm_image_probe(&info, buf, len, err, errlen))) return r;
    if (p->max_pixels > 0 && (int64_t)info.width * info.height > p->max_pixels)
        return img__fail(err, errlen, ACM_IMAGE_ETOOBIG, "%s image of %dx%d = %lld pixels is over the limit of %lld",
                         acm_image_format_name(info.format), info.width, info.height,
                         (long long)info.width * info.height, (long long)p->max_pixels);
    float *px = NULL;
    int w = 0, h = 0, c = 0;
    if (info.format == ACM_IMAGE_PNG) r = img__png_decode(&px, &w, &h, &c, buf, len, err, errlen);
    else if (info.format == ACM_IMAGE_JPEG) r = img__jpeg_decode(&px, &w, &h, &c, buf, len, p->size, p->channels, err, errlen);
    else {
        img__pnm hd;
        img__pnm_header(&hd, buf, len, err, errlen);
        r = img__pnm_decode(&px, &hd, buf, len, err, errlen);
        w = hd.width, h = hd.height, c = hd.channels;
    }
    if (r) return r;
    r = img__convert(out, px, h, w, c, p, err, errlen);
    free(px);
    return r;
}

int acm_image_u8_to_tensor(float *out, const uint8_t *hwc, int h, int w, int c, const acm_image_params *p, char *err,
                           size_t errlen) {
    int r = img__check_params(p, err, errlen);
    if (r) return r;
    if (h < 1 || w < 1 || h > IMG__MAX_DIM || w > IMG__MAX_DIM || c < 1 || c > 4)
        return img__fail(err, errlen, ACM_IMAGE_EINVAL, "image of %dx%dx%d is not supported", h, w, c);
    if (p->max_pixels > 0 && (int64_t)w * h > p->max_pixels)
        return img__fail(err, errlen, ACM_IMAGE_ETOOBIG, "image of %dx%d pixels is over the limit of %lld", w, h,
                         (long long)p->max_pixels);
    const size_t n = (size_t)h * w * c;
    float *px = malloc(n * sizeof *px);
    if (!px) return img__fail(err, errlen, ACM_IMAGE_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) px[i] = hwc[i];
    /* grey + alpha (c = 2) and RGBA (c = 4): the converter reads channel 0 or 0..2 and ignores the rest */
    r = img__convert(out, px, h, w, c, p, err, errlen);
    free(px);
    return r;
}
