/*
 * test_image.c — proto/image: PNG (grey, grey + alpha, RGB, 16-bit, interlaced), JPEG (scaled decoding), PNM (PBM,
 * PGM, PPM; ASCII and binary, maxval 1..65535) decoded and normalised exactly as acm-train eval does; channel
 * conversion, alpha, resizing (stretch, letterbox), limits, corrupted and truncated input, and the memory a decode
 * takes, measured by a counting allocator against the bound computed from the header.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <turbojpeg.h>
#include <zlib.h>

#include "image.h"
#include "server/harness.h"

static const acm_image_params grey28 = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};

static float norm(float v, const acm_image_params *p, int c) { return (v / 255.0f - p->mean[c]) / p->std[c]; }

Test(image, sniff_and_media_types) {
    cr_expect_eq(acm_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8), ACM_IMAGE_PNG);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4), ACM_IMAGE_JPEG);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P5 1 1 255\n", 11), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P4", 2), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P1", 2), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P7", 2), ACM_IMAGE_UNKNOWN);
    cr_expect_eq(acm_image_format_from_type("image/x-portable-bitmap"), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"GIF89a", 6), ACM_IMAGE_UNKNOWN);
    cr_expect_eq(acm_image_format_from_type("image/png"), ACM_IMAGE_PNG);
    cr_expect_eq(acm_image_format_from_type("IMAGE/JPEG; q=1"), ACM_IMAGE_JPEG);
    cr_expect_eq(acm_image_format_from_type("image/x-portable-anymap"), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_format_from_type("image/pngx"), ACM_IMAGE_UNKNOWN);
    cr_expect_eq(acm_image_format_from_type(NULL), ACM_IMAGE_UNKNOWN);
}

Test(image, grey_png_is_bit_identical_to_eval_normalisation) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 37 % 256);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    float x[28 * 28];
    char err[128];
    cr_assert_eq(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 28 * 28; i++) cr_assert_eq(x[i], norm(px[i], &grey28, 0), "pixel %d", i);
    acm_image_info info;
    cr_assert_eq(acm_image_probe(&info, png, n, err, sizeof err), 0);
    cr_expect(info.format == ACM_IMAGE_PNG && info.width == 28 && info.height == 28 && info.channels == 1);
    free(png);
}

Test(image, rgb_to_grey_luma_and_grey_to_rgb) {
    uint8_t px[28 * 28 * 3];
    for (int i = 0; i < 28 * 28; i++) px[3 * i] = 200, px[3 * i + 1] = 100, px[3 * i + 2] = (uint8_t)(i % 2 ? 50 : 100);
    px[0] = px[1] = px[2] = 77; /* R = G = B keeps its value exactly */
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 3, &n);
    float x[28 * 28];
    char err[128];
    cr_assert_eq(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), 0, "%s", err);
    cr_expect_eq(x[0], norm(77, &grey28, 0));
    float luma = 0.299f * 200 + 0.587f * 100 + 0.114f * 50;
    cr_expect_float_eq(x[1], norm(luma, &grey28, 0), 1e-6);
    free(png);
    uint8_t g[32 * 32];
    for (int i = 0; i < 32 * 32; i++) g[i] = (uint8_t)i;
    png = th_png(g, 32, 32, 1, &n);
    acm_image_params rgb = {.size = 32, .channels = 3, .mean = {0.5f, 0.4f, 0.3f}, .std = {0.25f, 0.2f, 0.3f}};
    float y[3 * 32 * 32];
    cr_assert_eq(acm_image_to_tensor(y, png, n, &rgb, err, sizeof err), 0, "%s", err);
    for (int c = 0; c < 3; c++) cr_expect_eq(y[c * 1024 + 5], norm(5, &rgb, c));
    free(png);
}

Test(image, pnm_ascii_binary_and_maxval) {
    float x[4], y[4];
    char err[128];
    acm_image_params p = {.size = 2, .channels = 1, .mean = {0}, .std = {1}};
    const char *p2 = "P2\n# a comment\n2 2\n15\n0 15\n# mid\n5 10\n";
    cr_assert_eq(acm_image_to_tensor(x, (const uint8_t *)p2, strlen(p2), &p, err, sizeof err), 0, "%s", err);
    cr_expect_float_eq(x[1], 1.0f, 1e-6);
    cr_expect_float_eq(x[2], 5 * 17 / 255.0f, 1e-6);
    uint8_t p5[32];
    int h = sprintf((char *)p5, "P5 2 2 65535\n");
    const uint16_t v[4] = {0, 65535, 257 * 5, 257 * 10};
    for (int i = 0; i < 4; i++) p5[h + 2 * i] = (uint8_t)(v[i] >> 8), p5[h + 2 * i + 1] = (uint8_t)v[i];
    cr_assert_eq(acm_image_to_tensor(y, p5, (size_t)h + 8, &p, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 4; i++) cr_expect_float_eq(y[i], v[i] / 65535.0f, 1e-6, "%d", i);
    const char *p3 = "P3 1 1 255 255 0 0";
    acm_image_params p1 = {.size = 1, .channels = 3, .mean = {0, 0, 0}, .std = {1, 1, 1}};
    float z[3];
    cr_assert_eq(acm_image_to_tensor(z, (const uint8_t *)p3, strlen(p3), &p1, err, sizeof err), 0, "%s", err);
    cr_expect(z[0] == 1.0f && z[1] == 0 && z[2] == 0);
    /* errors */
    const char *bad[] = {"P5 2 2 255\n\x01\x02", "P2 2 2 15\n1 2 3 16\n", "P5 2 2 0\n1234", "P5 2\n", "P7 1 1 255\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_lt(acm_image_to_tensor(x, (const uint8_t *)bad[i], strlen(bad[i]) + (i == 0 ? 0 : 0), &p, err, sizeof err), 0,
                     "accepted: %s", bad[i]);
}

Test(image, resize_downscales_by_area_and_keeps_constants) {
    uint8_t px[56 * 56];
    for (int y = 0; y < 56; y++)
        for (int x = 0; x < 56; x++) px[y * 56 + x] = (uint8_t)((x / 2 + y / 2) % 2 ? 200 : 100); /* 2x2 blocks */
    float out[28 * 28];
    char err[128];
    acm_image_params p = {.size = 28, .channels = 1, .mean = {0}, .std = {1}};
    cr_assert_eq(acm_image_u8_to_tensor(out, px, 56, 56, 1, &p, err, sizeof err), 0, "%s", err);
    /* an exact 2x reduction of 2x2 blocks: the block values, up to the filter's float rounding */
    for (int y = 1; y < 27; y++)
        for (int x = 1; x < 27; x++) {
            float want = ((x + y) % 2 ? 200 : 100) / 255.0f;
            cr_expect(fabsf(out[y * 28 + x] - want) < 0.2f, "(%d,%d) %f vs %f", x, y, out[y * 28 + x], want);
        }
    uint8_t flat[100 * 37];
    memset(flat, 90, sizeof flat);
    cr_assert_eq(acm_image_u8_to_tensor(out, flat, 37, 100, 1, &p, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 28 * 28; i++) cr_assert_float_eq(out[i], 90 / 255.0f, 1e-5, "%d", i);
    uint8_t tiny[4] = {0, 255, 255, 0};
    cr_assert_eq(acm_image_u8_to_tensor(out, tiny, 2, 2, 1, &p, err, sizeof err), 0, "%s", err); /* upscaling */
    cr_expect(out[0] < 0.2f && out[27] > 0.8f);
}

Test(image, jpeg_scaled_decoding) {
    const int W = 448, H = 448;
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (int i = 0; i < W * H; i++) rgb[3 * i] = 180, rgb[3 * i + 1] = 180, rgb[3 * i + 2] = 180;
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    cr_assert_eq(tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpg, &n, TJSAMP_420, 90, 0), 0);
    float x[28 * 28];
    char err[128];
    acm_image_params p = {.size = 28, .channels = 1, .mean = {0}, .std = {1}};
    cr_assert_eq(acm_image_to_tensor(x, jpg, n, &p, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 28 * 28; i++) cr_assert_float_eq(x[i], 180 / 255.0f, 3 / 255.0f, "%d: %f", i, x[i] * 255);
    acm_image_info info;
    cr_assert_eq(acm_image_probe(&info, jpg, n, err, sizeof err), 0);
    cr_expect(info.format == ACM_IMAGE_JPEG && info.width == W && info.height == H);
    /* truncated: refused, not crashed, nor half-read (libjpeg would fill the rest with grey and warn) */
    cr_expect_lt(acm_image_to_tensor(x, jpg, 100, &p, err, sizeof err), 0);
    const unsigned long cuts[] = {n / 2, n - 1};
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(acm_image_to_tensor(x, jpg, cuts[i], &p, err, sizeof err), ACM_IMAGE_EDECODE, "cut %lu of %lu", cuts[i], n);
        cr_expect(strstr(err, "truncated"), "%s", err);
    }
    /* stray bytes before the end marker: a warning, the image is whole */
    unsigned char *stray = malloc(n + 2);
    memcpy(stray, jpg, n - 2);
    stray[n - 2] = 0x55, stray[n - 1] = 0x55, stray[n] = 0xff, stray[n + 1] = 0xd9;
    cr_expect_eq(acm_image_to_tensor(x, stray, n + 2, &p, err, sizeof err), 0, "%s", err);
    free(stray);
    tjFree(jpg);
    tjDestroy(tj);
    free(rgb);
}

Test(image, pixel_limit_is_checked_from_the_header) {
    const char *pgm = "P5 5000 5000 255\n"; /* no data at all: refused for size, not for truncation */
    float x[28 * 28];
    char err[128];
    acm_image_params p = grey28;
    p.max_pixels = 1000000;
    cr_expect_eq(acm_image_to_tensor(x, (const uint8_t *)pgm, strlen(pgm), &p, err, sizeof err), ACM_IMAGE_ETOOBIG);
    cr_expect(strstr(err, "over the limit"), "%s", err);
    uint8_t px[64 * 64] = {0};
    size_t n;
    uint8_t *png = th_png(px, 64, 64, 1, &n);
    p.max_pixels = 4095;
    cr_expect_eq(acm_image_to_tensor(x, png, n, &p, err, sizeof err), ACM_IMAGE_ETOOBIG);
    p.max_pixels = 4096;
    cr_expect_eq(acm_image_to_tensor(x, png, n, &p, err, sizeof err), 0, "%s", err);
    free(png);
}

Test(image, malformed_input) {
    float x[28 * 28];
    char err[128];
    cr_expect_eq(acm_image_to_tensor(x, (const uint8_t *)"hello", 5, &grey28, err, sizeof err), ACM_IMAGE_EFORMAT);
    cr_expect_eq(acm_image_to_tensor(x, (const uint8_t *)"", 0, &grey28, err, sizeof err), ACM_IMAGE_EFORMAT);
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 7919 % 251);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    /* cut anywhere before IEND's CRC: refused, the last IDAT's CRC and IEND included (libspng 0.7.3 does not read the
     * IEND CRC: the pixels and their checksums are complete by then) */
    for (size_t cut = 8; cut + 4 < n; cut++)
        cr_expect_lt(acm_image_to_tensor(x, png, cut, &grey28, err, sizeof err), 0, "cut %zu of %zu", cut, n);
    png[40] ^= 0xff; /* corrupt a byte: CRC or zlib error */
    cr_expect_lt(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), 0);
    free(png);
    acm_image_params bad = grey28;
    bad.channels = 2;
    cr_expect_eq(acm_image_u8_to_tensor(x, px, 28, 28, 1, &bad, err, sizeof err), ACM_IMAGE_EINVAL);
}

/* ---- helpers: PNG files of any colour type, chunk surgery ---------------------------------------------------------- */

/* px in the PNG's own layout (16-bit samples host-endian), encoded by libspng. */
static uint8_t *png_of(const void *px, int w, int h, int colour, int depth, int interlace, size_t *len) {
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = (uint8_t)depth,
                           .color_type = (uint8_t)colour, .interlace_method = (uint8_t)interlace};
    spng_set_ihdr(ctx, &ih);
    int e = spng_encode_image(ctx, px, (size_t)w * h * samples[colour] * (depth / 8), SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    uint8_t *out = e ? NULL : spng_get_png_buffer(ctx, len, &e);
    spng_ctx_free(ctx);
    cr_assert(out, "encoding a PNG: %s", spng_strerror(e));
    return out;
}

static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

/* Offset of the first chunk of this type (its length field). */
static size_t png_chunk(const uint8_t *png, size_t n, const char *type) {
    for (size_t p = 8; p + 12 <= n; p += 12 + be32(png + p))
        if (memcmp(png + p + 4, type, 4) == 0) return p;
    cr_assert_fail("no %s chunk", type);
    return 0;
}

/* A copy of png with a tEXt chunk inserted before the chunk of type `before`. */
static uint8_t *png_with_text(const uint8_t *png, size_t n, const char *before, size_t *len) {
    static const char text[] = "Comment\0made by test_image";
    const size_t at = png_chunk(png, n, before), dl = sizeof text - 1;
    uint8_t *out = malloc(n + 12 + dl);
    memcpy(out, png, at);
    uint8_t *c = out + at;
    c[0] = 0, c[1] = 0, c[2] = 0, c[3] = (uint8_t)dl;
    memcpy(c + 4, "tEXt", 4);
    memcpy(c + 8, text, dl);
    uint32_t crc = (uint32_t)crc32(0, c + 4, (uInt)(4 + dl));
    c[8 + dl] = (uint8_t)(crc >> 24), c[9 + dl] = (uint8_t)(crc >> 16), c[10 + dl] = (uint8_t)(crc >> 8), c[11 + dl] = (uint8_t)crc;
    memcpy(c + 12 + dl, png + at, n - at);
    *len = n + 12 + dl;
    return out;
}

static acm_image_params plain(int S, int C) {
    return (acm_image_params){.size = S, .channels = C, .mean = {0, 0, 0}, .std = {1, 1, 1}};
}

/* ---- alpha ---------------------------------------------------------------------------------------------------------- */

Test(image, grey_alpha_png_8_and_16_bit_is_composited_over_the_background) {
    /* 4 pixels: (200, opaque), (200, transparent), (200, half), (10, opaque) */
    const uint8_t ga8[8] = {200, 255, 200, 0, 200, 128, 10, 255};
    uint16_t ga16[8];
    for (int i = 0; i < 8; i++) ga16[i] = (uint16_t)(ga8[i] * 257);
    char err[128];
    for (int depth = 8; depth <= 16; depth += 8) {
        size_t n;
        uint8_t *png = depth == 8 ? png_of(ga8, 2, 2, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 8, 0, &n)
                                  : png_of(ga16, 2, 2, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 16, 0, &n);
        acm_image_info info;
        cr_assert_eq(acm_image_probe(&info, png, n, err, sizeof err), 0, "%s", err);
        cr_expect_eq(info.channels, 2);
        for (int bg = 0; bg <= 255; bg += 255) {
            acm_image_params p = plain(2, 1);
            p.background[0] = (float)bg;
            float x[4];
            cr_assert_eq(acm_image_to_tensor(x, png, n, &p, err, sizeof err), 0, "%d-bit: %s", depth, err);
            const float a = 128 / 255.0f;
            cr_expect_eq(x[0], 200 / 255.0f, "%d-bit opaque: %f", depth, x[0] * 255);
            cr_expect_eq(x[1], bg / 255.0f, "%d-bit transparent over %d: %f", depth, bg, x[1] * 255);
            cr_expect_float_eq(x[2], (a * 200 + (1 - a) * bg) / 255.0f, 1e-6, "%d-bit half: %f", depth, x[2] * 255);
            cr_expect_eq(x[3], 10 / 255.0f);
            /* RGB output: the grey copied to the three channels, each over its own background */
            acm_image_params q = plain(2, 3);
            q.background[0] = 0, q.background[1] = 100, q.background[2] = (float)bg;
            float y[12];
            cr_assert_eq(acm_image_to_tensor(y, png, n, &q, err, sizeof err), 0, "%s", err);
            cr_expect(y[0] == 200 / 255.0f && y[4] == 200 / 255.0f && y[8] == 200 / 255.0f);
            cr_expect(y[1] == 0 && y[5] == 100 / 255.0f && y[9] == bg / 255.0f, "%f %f %f", y[1], y[5], y[9]);
        }
        free(png);
    }
}

Test(image, rgba_png_and_uint8_alpha_are_composited_not_dropped) {
    const uint8_t rgba[8] = {90, 90, 90, 255, 250, 10, 10, 0};
    size_t n;
    uint8_t *png = png_of(rgba, 2, 1, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 8, 0, &n);
    char err[128];
    float x[4];
    acm_image_params p2 = plain(2, 1); /* 2x1 -> 2x2: columns unchanged */
    cr_assert_eq(acm_image_to_tensor(x, png, n, &p2, err, sizeof err), 0, "%s", err);
    cr_expect_eq(x[0], 90 / 255.0f);
    cr_expect_eq(x[1], 0, "a transparent red pixel is background, not red's luma: %f", x[1] * 255);
    float y[4];
    cr_assert_eq(acm_image_u8_to_tensor(y, rgba, 1, 2, 4, &p2, err, sizeof err), 0, "%s", err);
    cr_expect(y[0] == x[0] && y[1] == x[1], "OIP UINT8 [H,W,4] is composited the same way");
    free(png);
}

/* ---- PBM -------------------------------------------------------------------------------------------------------- */

Test(image, pbm_ascii_and_binary) {
    acm_image_params p = plain(10, 1);
    p.size = 10;
    char err[128];
    /* 10 x 2: row 0 alternates 1 0 1 0 ..., row 1 is all 1 (black) but the last pixel */
    const char *p1 = "P1\n# a bitmap\n10 2\n1 0 1 0 1 0 1 0 1 0\n1111111110\n";
    uint8_t p4[64];
    int h = sprintf((char *)p4, "P4\n10 2\n");
    p4[h] = 0xaa, p4[h + 1] = 0x80 | 0x3f; /* 10101010 10|111111: the 6 padding bits are ignored */
    p4[h + 2] = 0xff, p4[h + 3] = 0x80 | 0x00;
    const struct {
        const uint8_t *buf;
        size_t len;
    } files[2] = {{(const uint8_t *)p1, strlen(p1)}, {p4, (size_t)h + 4}};
    for (int f = 0; f < 2; f++) {
        acm_image_info info;
        cr_assert_eq(acm_image_probe(&info, files[f].buf, files[f].len, err, sizeof err), 0, "%s", err);
        cr_expect(info.format == ACM_IMAGE_PNM && info.width == 10 && info.height == 2 && info.channels == 1);
        /* 10x2 -> 10x10: columns stay as they are; read the top output row (input row 0) */
        float x[100];
        cr_assert_eq(acm_image_to_tensor(x, files[f].buf, files[f].len, &p, err, sizeof err), 0, "P%d: %s", f ? 4 : 1, err);
        for (int i = 0; i < 10; i++) cr_expect_eq(x[i], i % 2 ? 1.0f : 0.0f, "P%d pixel %d: %f", f ? 4 : 1, i, x[i]);
        for (int i = 0; i < 9; i++) cr_expect_eq(x[90 + i], 0.0f, "P%d bottom row %d: 1 is black", f ? 4 : 1, i);
        cr_expect_eq(x[99], 1.0f);
    }
    /* errors: truncated binary, a digit other than 0/1, truncated ASCII */
    const char *bad[] = {"P4 10 2\n\xaa\x80\xff", "P1 2 1 1 2", "P1 3 1 1 0"};
    float x[100];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(acm_image_to_tensor(x, (const uint8_t *)bad[i], strlen(bad[i]), &p, err, sizeof err), ACM_IMAGE_EDECODE,
                     "accepted: %s", bad[i]);
}

/* ---- corrupted PNGs ----------------------------------------------------------------------------------------------- */

Test(image, png_with_a_bad_crc_is_refused) {
    uint8_t px[16 * 16];
    for (int i = 0; i < 256; i++) px[i] = (uint8_t)(i * 31);
    size_t n;
    uint8_t *png = th_png(px, 16, 16, 1, &n);
    float x[28 * 28];
    char err[128];
    cr_assert_eq(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), 0, "%s", err);
    /* the (only, so last) IDAT's CRC: the pixels decode fine without it, which is how it passed before */
    size_t idat = png_chunk(png, n, "IDAT");
    png[idat + 8 + be32(png + idat) + 3] ^= 1;
    cr_expect_eq(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), ACM_IMAGE_EDECODE);
    cr_expect(strstr(err, "CRC"), "%s", err);
    png[idat + 8 + be32(png + idat) + 3] ^= 1;
    /* an ancillary chunk's CRC, before and after the image data */
    const char *where[] = {"IDAT", "IEND"};
    for (int i = 0; i < 2; i++) {
        size_t m;
        uint8_t *t = png_with_text(png, n, where[i], &m);
        cr_expect_eq(acm_image_to_tensor(x, t, m, &grey28, err, sizeof err), 0, "a good tEXt before %s: %s", where[i], err);
        size_t at = png_chunk(t, m, "tEXt");
        t[at + 12 + be32(t + at) - 1] ^= 0x80;
        cr_expect_eq(acm_image_to_tensor(x, t, m, &grey28, err, sizeof err), ACM_IMAGE_EDECODE, "tEXt before %s", where[i]);
        cr_expect(strstr(err, "CRC"), "%s", err);
        free(t);
    }
    free(png);
}

Test(image, png_cut_inside_or_after_the_image_data_is_refused) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 7919 % 251);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    const size_t idat = png_chunk(png, n, "IDAT"), end = idat + 12 + be32(png + idat);
    float x[28 * 28];
    char err[128];
    /* from the middle of the zlib stream to just before IEND's CRC */
    for (size_t cut = idat + 8 + be32(png + idat) / 2; cut + 4 < n; cut++) {
        cr_expect_eq(acm_image_to_tensor(x, png, cut, &grey28, err, sizeof err), ACM_IMAGE_EDECODE, "cut %zu of %zu", cut, n);
        if (cut >= idat + 8 + be32(png + idat) - 4) /* the zlib stream is whole from here: only the framing is missing */
            cr_expect(strstr(err, "truncated"), "cut %zu (IDAT ends at %zu): %s", cut, end, err);
    }
    free(png);
}

/* ---- interlacing, fitting ---------------------------------------------------------------------------------------- */

Test(image, adam7_interlaced_png_decodes_as_the_plain_one) {
    enum { W = 45, H = 37 };
    uint8_t rgb[W * H * 3];
    for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 2654435761u >> 24);
    char err[128];
    for (int S = 7; S <= 64; S += 57) { /* down- and upscaling */
        acm_image_params p = plain(S, 3);
        float *a = malloc(sizeof(float) * 3 * S * S), *b = malloc(sizeof(float) * 3 * S * S);
        size_t n0, n1;
        uint8_t *flat = png_of(rgb, W, H, SPNG_COLOR_TYPE_TRUECOLOR, 8, 0, &n0);
        uint8_t *inter = png_of(rgb, W, H, SPNG_COLOR_TYPE_TRUECOLOR, 8, 1, &n1);
        cr_assert_eq(acm_image_to_tensor(a, flat, n0, &p, err, sizeof err), 0, "%s", err);
        cr_assert_eq(acm_image_to_tensor(b, inter, n1, &p, err, sizeof err), 0, "%s", err);
        float md = 0;
        for (int i = 0; i < 3 * S * S; i++) md = fmaxf(md, fabsf(a[i] - b[i]));
        cr_expect_lt(md, 1e-5f, "S %d: max difference %g (the same pixels, summed in another order)", S, md);
        free(flat), free(inter), free(a), free(b);
    }
}

Test(image, letterbox_keeps_the_aspect_ratio_stretch_fills) {
    enum { W = 56, H = 28 };
    uint8_t px[W * H];
    memset(px, 200, sizeof px);
    acm_image_params p = plain(28, 1);
    p.background[0] = 20;
    float x[28 * 28];
    char err[128];
    cr_assert_eq(acm_image_u8_to_tensor(x, px, H, W, 1, &p, err, sizeof err), 0, "%s", err);
    for (int i = 0; i < 28 * 28; i++) cr_assert_float_eq(x[i], 200 / 255.0f, 1e-6, "stretch %d", i);
    p.fit = ACM_IMAGE_FIT_LETTERBOX;
    cr_assert_eq(acm_image_u8_to_tensor(x, px, H, W, 1, &p, err, sizeof err), 0, "%s", err);
    /* 56x28 -> 28x14 at rows 7..20, background above and below */
    for (int y = 0; y < 28; y++)
        for (int c = 0; c < 28; c++)
            cr_assert_float_eq(x[y * 28 + c], (y >= 7 && y < 21 ? 200 : 20) / 255.0f, 1e-6, "letterbox (%d,%d)", c, y);
    /* a square image is the same under both */
    float s0[28 * 28], s1[28 * 28];
    p.fit = ACM_IMAGE_FIT_STRETCH;
    cr_assert_eq(acm_image_u8_to_tensor(s0, px, 28, 28, 1, &p, err, sizeof err), 0);
    p.fit = ACM_IMAGE_FIT_LETTERBOX;
    cr_assert_eq(acm_image_u8_to_tensor(s1, px, 28, 28, 1, &p, err, sizeof err), 0);
    cr_expect_arr_eq(s0, s1, sizeof s0);
    p.fit = (acm_image_fit)7;
    cr_expect_eq(acm_image_u8_to_tensor(s1, px, 28, 28, 1, &p, err, sizeof err), ACM_IMAGE_EINVAL);
}

/* ---- memory: a counting allocator --------------------------------------------------------------------------------
 * Every malloc/calloc/realloc/free of the process (libspng, zlib and libjpeg included) goes through these and is
 * counted by its usable size; the test reads the peak over a decode. Not under AddressSanitizer, which owns malloc. */
#if defined(__SANITIZE_ADDRESS__)
#define COUNTING 0
static long long count_begin(void) { return 0; }
static long long count_peak(long long base) { return base; }
#else
#define COUNTING 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
static _Atomic long long count_cur, count_max;
static void count_add(long long n) {
    long long c = atomic_fetch_add(&count_cur, n) + n, m = atomic_load(&count_max);
    while (c > m && !atomic_compare_exchange_weak(&count_max, &m, c)) {
    }
}
void *malloc(size_t n) {
    void *p = __libc_malloc(n);
    if (p) count_add((long long)malloc_usable_size(p));
    return p;
}
void *calloc(size_t a, size_t b) {
    void *p = __libc_calloc(a, b);
    if (p) count_add((long long)malloc_usable_size(p));
    return p;
}
void *realloc(void *q, size_t n) {
    const long long old = q ? (long long)malloc_usable_size(q) : 0;
    void *p = __libc_realloc(q, n);
    if (p) count_add((long long)malloc_usable_size(p) - old);
    else if (!n) count_add(-old);
    return p;
}
void free(void *p) {
    if (p) count_add(-(long long)malloc_usable_size(p));
    __libc_free(p);
}
void *memalign(size_t a, size_t n) {
    void *p = __libc_memalign(a, n);
    if (p) count_add((long long)malloc_usable_size(p));
    return p;
}
void *aligned_alloc(size_t a, size_t n) { return memalign(a, n); }
int posix_memalign(void **r, size_t a, size_t n) {
    void *p = memalign(a, n);
    if (!p) return ENOMEM;
    *r = p;
    return 0;
}
static long long count_begin(void) {
    long long c = atomic_load(&count_cur);
    atomic_store(&count_max, c);
    return c;
}
static long long count_peak(long long base) { return atomic_load(&count_max) - base; }
#endif

/* An all-zero PNG of w x h, written with zlib a row at a time (never the whole image in memory). */
static uint8_t *zero_png(int w, int h, int colour, int depth, int interlace, size_t *len) {
    static const int samples[7] = {1, 0, 3, 1, 2, 0, 4};
    const size_t bits = (size_t)samples[colour] * depth; /* per pixel */
    size_t raw = 0; /* filtered bytes: per pass, rows of a filter byte and the row's bytes */
    if (!interlace) raw = (size_t)h * (1 + (w * bits + 7) / 8);
    else {
        static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, dx[7] = {8, 8, 4, 4, 2, 2, 1}, y0[7] = {0, 0, 4, 0, 2, 0, 1},
                         dy[7] = {8, 8, 8, 4, 4, 2, 2};
        for (int p = 0; p < 7; p++) {
            size_t pw = w > x0[p] ? (size_t)(w - x0[p] + dx[p] - 1) / dx[p] : 0, ph = h > y0[p] ? (size_t)(h - y0[p] + dy[p] - 1) / dy[p] : 0;
            if (pw && ph) raw += ph * (1 + (pw * bits + 7) / 8);
        }
    }
    size_t cap = raw / 500 + 4096;
    uint8_t *out = malloc(cap + 57), *idat = out + 33;
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    memcpy(out, sig, 8);
    uint8_t ihdr[25] = {0, 0, 0, 13, 'I', 'H', 'D', 'R', (uint8_t)(w >> 24), (uint8_t)(w >> 16), (uint8_t)(w >> 8), (uint8_t)w,
                        (uint8_t)(h >> 24), (uint8_t)(h >> 16), (uint8_t)(h >> 8), (uint8_t)h, (uint8_t)depth,
                        (uint8_t)colour, 0, 0, (uint8_t)interlace};
    uint32_t crc = (uint32_t)crc32(0, ihdr + 4, 17);
    ihdr[21] = (uint8_t)(crc >> 24), ihdr[22] = (uint8_t)(crc >> 16), ihdr[23] = (uint8_t)(crc >> 8), ihdr[24] = (uint8_t)crc;
    memcpy(out + 8, ihdr, 25);
    z_stream z = {0};
    deflateInit(&z, 9);
    static uint8_t zeros[65536];
    z.next_out = idat + 8, z.avail_out = (uInt)cap;
    for (size_t left = raw; left;) {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        z.next_in = zeros, z.avail_in = (uInt)k;
        left -= k;
        cr_assert_eq(deflate(&z, left ? Z_NO_FLUSH : Z_FINISH), left ? Z_OK : Z_STREAM_END);
        cr_assert_eq(z.avail_in, 0);
    }
    const uint32_t dl = (uint32_t)z.total_out;
    deflateEnd(&z);
    idat[0] = (uint8_t)(dl >> 24), idat[1] = (uint8_t)(dl >> 16), idat[2] = (uint8_t)(dl >> 8), idat[3] = (uint8_t)dl;
    memcpy(idat + 4, "IDAT", 4);
    crc = (uint32_t)crc32(0, idat + 4, 4 + dl);
    uint8_t *e = idat + 8 + dl;
    e[0] = (uint8_t)(crc >> 24), e[1] = (uint8_t)(crc >> 16), e[2] = (uint8_t)(crc >> 8), e[3] = (uint8_t)crc;
    static const uint8_t iend[12] = {0, 0, 0, 0, 'I', 'E', 'N', 'D', 0xae, 0x42, 0x60, 0x82};
    memcpy(e + 4, iend, 12);
    *len = (size_t)(e + 16 - out);
    return out;
}

/* Decodes buf and checks the peak allocation against acm_image_decode_bytes; returns the peak. */
static long long decode_within_bound(const uint8_t *buf, size_t n, const acm_image_params *p, const char *what) {
    acm_image_info info;
    char err[256];
    cr_assert_eq(acm_image_probe(&info, buf, n, err, sizeof err), 0, "%s: %s", what, err);
    const size_t bound = acm_image_decode_bytes(&info, p);
    float *out = malloc(sizeof(float) * p->channels * p->size * p->size);
    const long long base = count_begin();
    int rc = acm_image_to_tensor(out, buf, n, p, err, sizeof err);
    const long long peak = count_peak(base);
    cr_assert_eq(rc, 0, "%s: %s", what, err);
    if (COUNTING) cr_expect_leq(peak, (long long)bound, "%s: peak %lld bytes over the bound %zu", what, peak, bound);
    for (int i = 0; i < p->channels * p->size * p->size; i++) cr_assert(isfinite(out[i]));
    free(out);
    return peak;
}

Test(image, decode_memory_is_bounded_from_the_header, .timeout = 120) {
    if (!COUNTING) cr_skip_test("the counting allocator is off under AddressSanitizer");
    /* the amplification of issue 16: 130 KB of all-zero 4096x4096 RGBA16 PNG took 320 MB to decode */
    size_t n;
    uint8_t *png = zero_png(4096, 4096, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 16, 0, &n);
    cr_expect_lt(n, 200000, "%zu bytes", n);
    acm_image_info info;
    char err[128];
    cr_assert_eq(acm_image_probe(&info, png, n, err, sizeof err), 0, "%s", err);
    const size_t bound = acm_image_decode_bytes(&info, &grey28);
    cr_expect_lt(bound, (size_t)8 << 20, "the bound does not grow with width x height: %zu", bound);
    long long peak = decode_within_bound(png, n, &grey28, "4096x4096 RGBA16");
    cr_expect_lt(peak, 2 << 20, "4096x4096 RGBA16: %lld bytes", peak);
    free(png);
    /* interlaced, grey 1-bit, a very wide strip, an RGB model */
    acm_image_params rgb = plain(32, 3);
    png = zero_png(2000, 1500, SPNG_COLOR_TYPE_TRUECOLOR, 8, 1, &n);
    decode_within_bound(png, n, &rgb, "2000x1500 RGB8 Adam7");
    free(png);
    png = zero_png(3001, 999, SPNG_COLOR_TYPE_GRAYSCALE, 1, 0, &n);
    decode_within_bound(png, n, &grey28, "3001x999 grey 1-bit");
    free(png);
    png = zero_png(200000, 3, SPNG_COLOR_TYPE_GRAYSCALE_ALPHA, 16, 0, &n);
    decode_within_bound(png, n, &rgb, "200000x3 GA16");
    free(png);
    /* PNM: the samples are read in place */
    size_t pn = 20 + (size_t)1500 * 1000 * 3;
    uint8_t *ppm = calloc(1, pn);
    int h = sprintf((char *)ppm, "P6 1500 1000 255\n");
    decode_within_bound(ppm, (size_t)h + (size_t)1500 * 1000 * 3, &rgb, "1500x1000 PPM");
    free(ppm);
    /* JPEG, baseline and progressive (whose decoder keeps every coefficient: the bound says so) */
    const int W = 2000, H = 1200;
    uint8_t *pix = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++) pix[i] = (uint8_t)(i * 2654435761u >> 24);
    static const int samp[] = {TJSAMP_444, TJSAMP_420, TJSAMP_GRAY};
    for (int prog = 0; prog < 2; prog++)
        for (int s = 0; s < 3; s++) {
            tjhandle tj = tjInitCompress();
            unsigned char *jpg = NULL;
            unsigned long jn = 0;
            cr_assert_eq(tjCompress2(tj, pix, W, 0, H, TJPF_RGB, &jpg, &jn, samp[s], 80, prog ? TJFLAG_PROGRESSIVE : 0), 0);
            tjDestroy(tj);
            char what[64];
            snprintf(what, sizeof what, "%dx%d JPEG, progressive %d, subsampling %d", W, H, prog, samp[s]);
            cr_assert_eq(acm_image_probe(&info, jpg, jn, err, sizeof err), 0, "%s", err);
            cr_expect_eq(info.progressive, prog, "%s", what);
            cr_expect_eq(info.coded_samples, s == 0 ? 3.0f : s == 1 ? 1.5f : 1.0f, "%s", what);
            decode_within_bound(jpg, jn, &rgb, what);
            decode_within_bound(jpg, jn, &grey28, what);
            tjFree(jpg);
        }
    free(pix);
}

Test(image, decode_memory_limit_refuses_before_decoding) {
    size_t n;
    uint8_t *png = zero_png(4096, 4096, SPNG_COLOR_TYPE_TRUECOLOR_ALPHA, 16, 0, &n);
    acm_image_info info;
    char err[256];
    cr_assert_eq(acm_image_probe(&info, png, n, err, sizeof err), 0, "%s", err);
    acm_image_params p = grey28;
    p.max_decode_bytes = acm_image_decode_bytes(&info, &p) - 1;
    float x[28 * 28];
    const long long base = count_begin();
    cr_expect_eq(acm_image_to_tensor(x, png, n, &p, err, sizeof err), ACM_IMAGE_ETOOBIG);
    if (COUNTING) cr_expect_lt(count_peak(base), 64 << 10, "refused before decoding: %lld bytes", count_peak(base));
    cr_expect(strstr(err, "memory"), "%s", err);
    p.max_decode_bytes += 1;
    cr_expect_eq(acm_image_to_tensor(x, png, n, &p, err, sizeof err), 0, "%s", err);
    free(png);
}
