/*
 * data.c — Fashion-MNIST loading, split, batches and augmentation (see data.h).
 */
#include "train/data.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "idx.h"

const char *const acmt_fmnist_labels[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

acmt_augment acmt_augment_default(void) {
    acmt_augment a = {.crop_pad = 2, .flip = 0.5f, .erase_prob = 0.25f, .erase_min = 0.02f, .erase_max = 0.25f};
    return a;
}

acmt_augment acmt_augment_none(void) {
    acmt_augment a = {0};
    return a;
}

static int read_file(const char *path, uint8_t **buf, size_t *len, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open (is dataset-fashion-mnist installed? make deps)", path);
        return -1;
    }
    size_t cap = 1 << 20, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        n += fread(b + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        uint8_t *nb = realloc(b, cap);
        if (!nb) free(b);
        b = nb;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(b);
        snprintf(err, errlen, "%s: read error", path);
        return -1;
    }
    *buf = b;
    *len = n;
    return 0;
}

static int load_idx(acm_idx *x, const char *path, int nd, char *err, size_t errlen) {
    uint8_t *buf;
    size_t len;
    if (read_file(path, &buf, &len, err, errlen)) return -1;
    int rc = acm_idx_parse(x, buf, len, nd, path, err, errlen);
    free(buf);
    return rc ? -1 : 0;
}

int acmt_images_load(acmt_images *out, const char *dir, const char *prefix, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    char pi[4096], pl[4096];
    snprintf(pi, sizeof pi, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(pl, sizeof pl, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    acm_idx img, lab;
    if (load_idx(&img, pi, 3, err, errlen)) return -1;
    if (load_idx(&lab, pl, 1, err, errlen)) {
        acm_idx_free(&img);
        return -1;
    }
    if (acm_idx_check_pair(&img, &lab, 0, 0, 256, pi, err, errlen)) {
        acm_idx_free(&img);
        acm_idx_free(&lab);
        return -1;
    }
    out->n = img.dims[0];
    out->rows = (int)img.dims[1];
    out->cols = (int)img.dims[2];
    out->pixels = img.data; /* ownership moves */
    out->labels = malloc(sizeof(int32_t) * (size_t)(out->n ? out->n : 1));
    if (!out->labels) {
        acm_idx_free(&img);
        acm_idx_free(&lab);
        snprintf(err, errlen, "%s: out of memory", pl);
        return -1;
    }
    for (int64_t i = 0; i < out->n; i++) out->labels[i] = lab.data[i];
    acm_idx_free(&lab);
    return 0;
}

void acmt_images_free(acmt_images *x) {
    if (!x) return;
    free(x->pixels);
    free(x->labels);
    memset(x, 0, sizeof *x);
}

static int subset(acmt_images *dst, const acmt_images *src, const int32_t *idx, int64_t n) {
    size_t px = (size_t)src->rows * src->cols;
    dst->n = n;
    dst->rows = src->rows;
    dst->cols = src->cols;
    dst->pixels = malloc(px * (size_t)(n ? n : 1));
    dst->labels = malloc(sizeof(int32_t) * (size_t)(n ? n : 1));
    if (!dst->pixels || !dst->labels) return -1;
    for (int64_t i = 0; i < n; i++) {
        memcpy(dst->pixels + (size_t)i * px, src->pixels + (size_t)idx[i] * px, px);
        dst->labels[i] = src->labels[idx[i]];
    }
    return 0;
}

int acmt_images_split(acmt_images *train, acmt_images *val, const acmt_images *src, int64_t val_n, uint64_t split_seed,
                      int64_t limit_train, char *err, size_t errlen) {
    memset(train, 0, sizeof *train);
    memset(val, 0, sizeof *val);
    if (val_n < 0 || val_n >= src->n) {
        snprintf(err, errlen, "validation size %lld out of range (0..%lld)", (long long)val_n, (long long)src->n - 1);
        return -1;
    }
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)src->n);
    if (!perm) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < src->n; i++) perm[i] = (int32_t)i;
    acmt_rng r;
    acmt_rng_seed(&r, split_seed, 0x5b1175eed);
    acmt_rng_shuffle(&r, perm, src->n);
    int64_t ntr = src->n - val_n;
    if (limit_train > 0 && limit_train < ntr) ntr = limit_train;
    int rc = subset(val, src, perm, val_n) || subset(train, src, perm + val_n, ntr);
    free(perm);
    if (rc) {
        acmt_images_free(train);
        acmt_images_free(val);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void acmt_make_batch(float *x, int32_t *y, const acmt_images *set, const int32_t *idx, int B, const acmt_augment *aug,
                     acmt_rng *rng) {
    const int R = set->rows, C = set->cols;
    const float scale = 1.0f / (255.0f * ACMT_FMNIST_STD), shift = ACMT_FMNIST_MEAN / ACMT_FMNIST_STD;
    int use_aug = aug && rng;
    for (int b = 0; b < B; b++) {
        const uint8_t *src = set->pixels + (size_t)idx[b] * R * C;
        float *dst = x + (size_t)b * R * C;
        y[b] = set->labels[idx[b]];
        int dy = 0, dx = 0, flip = 0;
        if (use_aug && aug->crop_pad > 0) {
            dy = (int)acmt_rng_below(rng, (uint32_t)(2 * aug->crop_pad + 1)) - aug->crop_pad;
            dx = (int)acmt_rng_below(rng, (uint32_t)(2 * aug->crop_pad + 1)) - aug->crop_pad;
        }
        if (use_aug && aug->flip > 0) flip = acmt_rng_float(rng) < aug->flip;
        /* output pixel (r, c) reads source (r + dy, c' + dx), c' = flipped column; outside = background 0 */
        for (int r = 0; r < R; r++)
            for (int c = 0; c < C; c++) {
                int sr = r + dy, sc = (flip ? C - 1 - c : c) + dx;
                float p = (sr >= 0 && sr < R && sc >= 0 && sc < C) ? (float)src[sr * C + sc] : 0.0f;
                dst[r * C + c] = p * scale - shift;
            }
        if (use_aug && aug->erase_prob > 0 && acmt_rng_float(rng) < aug->erase_prob) {
            /* try a few times to fit a rectangle of the drawn area and aspect ratio, as torchvision does */
            for (int attempt = 0; attempt < 10; attempt++) {
                float area = (aug->erase_min + (aug->erase_max - aug->erase_min) * acmt_rng_float(rng)) * R * C;
                float logr = logf(0.3f) + (logf(3.3f) - logf(0.3f)) * acmt_rng_float(rng);
                float ratio = expf(logr);
                int h = (int)lroundf(sqrtf(area * ratio)), w = (int)lroundf(sqrtf(area / ratio));
                if (h < 1 || w < 1 || h >= R || w >= C) continue;
                int y0 = (int)acmt_rng_below(rng, (uint32_t)(R - h + 1));
                int x0 = (int)acmt_rng_below(rng, (uint32_t)(C - w + 1));
                for (int r = y0; r < y0 + h; r++)
                    for (int c = x0; c < x0 + w; c++) dst[r * C + c] = 0.0f;
                break;
            }
        }
    }
}

/* Gamma(a, 1) by Marsaglia and Tsang (2000); a < 1 through Gamma(a + 1) · U^(1/a). */
static double rng_gamma(acmt_rng *r, double a) {
    if (a < 1) {
        double u = acmt_rng_float(r);
        return rng_gamma(r, a + 1) * pow(u > 0 ? u : 1e-30, 1.0 / a);
    }
    const double d = a - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double z = acmt_rng_normal(r), v = 1 + c * z;
        if (v <= 0) continue;
        v = v * v * v;
        double u = acmt_rng_float(r);
        if (u > 0 && log(u) < 0.5 * z * z + d - d * v + d * log(v)) return d * v;
    }
}

double acmt_rng_beta(acmt_rng *r, double a) {
    double g1 = rng_gamma(r, a), g2 = rng_gamma(r, a);
    return g1 + g2 > 0 ? g1 / (g1 + g2) : 0.5;
}

float acmt_mix_batch(float *x, int32_t *y2, const int32_t *y, int B, int C, int H, int W, const acmt_mix *mix,
                     acmt_rng *rng) {
    for (int b = 0; b < B; b++) y2[b] = y[b];
    if (!mix || !rng || (mix->mixup_prob <= 0 && mix->cutmix_prob <= 0) || B < 2) return 1.0f;
    const double u = acmt_rng_float(rng);
    const int64_t per = (int64_t)C * H * W;
    if (u < mix->cutmix_prob) {
        const double lam = acmt_rng_beta(rng, mix->cutmix_alpha), cut = sqrt(1 - lam);
        const int ch = (int)(H * cut), cw = (int)(W * cut);
        const int cy = (int)acmt_rng_below(rng, (uint32_t)H), cx = (int)acmt_rng_below(rng, (uint32_t)W);
        const int y0 = cy - ch / 2 < 0 ? 0 : cy - ch / 2, y1 = cy + ch / 2 > H ? H : cy + ch / 2;
        const int x0 = cx - cw / 2 < 0 ? 0 : cx - cw / 2, x1 = cx + cw / 2 > W ? W : cx + cw / 2;
        /* swap the box between b and B-1-b: each gets the other's (the middle item of an odd batch keeps its own) */
        for (int b = 0; b < B / 2; b++) {
            float *p = x + b * per, *q = x + (int64_t)(B - 1 - b) * per;
            for (int c = 0; c < C; c++)
                for (int yy = y0; yy < y1; yy++)
                    for (int xx = x0; xx < x1; xx++) {
                        int64_t i = ((int64_t)c * H + yy) * W + xx;
                        float t = p[i];
                        p[i] = q[i];
                        q[i] = t;
                    }
        }
        for (int b = 0; b < B; b++) y2[b] = y[B - 1 - b];
        return (float)(1.0 - (double)(y1 - y0) * (x1 - x0) / ((double)H * W));
    }
    if (u < mix->cutmix_prob + mix->mixup_prob) {
        const float lam = (float)acmt_rng_beta(rng, mix->mixup_alpha);
        for (int b = 0; b < B / 2; b++) {
            float *p = x + b * per, *q = x + (int64_t)(B - 1 - b) * per;
            for (int64_t i = 0; i < per; i++) {
                float a = p[i], c = q[i];
                p[i] = lam * a + (1 - lam) * c;
                q[i] = lam * c + (1 - lam) * a;
            }
        }
        for (int b = 0; b < B; b++) y2[b] = y[B - 1 - b];
        return lam;
    }
    return 1.0f;
}
