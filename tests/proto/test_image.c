/*
 * test_image.c — proto/image: PNG (grey, RGB, 16-bit), JPEG (scaled decoding), PNM (ASCII and binary, maxval 1..65535)
 * decoded and normalised exactly as acm-train eval does; channel conversion, resizing, limits and malformed input.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>
#include <turbojpeg.h>

#include "image.h"
#include "server/harness.h"

static const acm_image_params grey28 = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};

static float norm(float v, const acm_image_params *p, int c) { return (v / 255.0f - p->mean[c]) / p->std[c]; }

Test(image, sniff_and_media_types) {
    cr_expect_eq(acm_image_sniff((const uint8_t *)"\x89PNG\r\n\x1a\n", 8), ACM_IMAGE_PNG);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"\xff\xd8\xff\xe0", 4), ACM_IMAGE_JPEG);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P5 1 1 255\n", 11), ACM_IMAGE_PNM);
    cr_expect_eq(acm_image_sniff((const uint8_t *)"P4", 2), ACM_IMAGE_UNKNOWN);
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
    /* truncated: refused, not crashed */
    cr_expect_lt(acm_image_to_tensor(x, jpg, 100, &p, err, sizeof err), 0);
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
    /* cut inside the pixel data (the last 20 bytes are the IDAT CRC and IEND: the pixels are complete by then) */
    for (size_t cut = 8; cut + 20 < n; cut += 7) cr_expect_lt(acm_image_to_tensor(x, png, cut, &grey28, err, sizeof err), 0, "cut %zu", cut);
    png[40] ^= 0xff; /* corrupt a byte: CRC or zlib error */
    cr_expect_lt(acm_image_to_tensor(x, png, n, &grey28, err, sizeof err), 0);
    free(png);
    acm_image_params bad = grey28;
    bad.channels = 2;
    cr_expect_eq(acm_image_u8_to_tensor(x, px, 28, 28, 1, &bad, err, sizeof err), ACM_IMAGE_EINVAL);
}
