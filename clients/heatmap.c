/*
 * heatmap.c — the per-token compute map of a /classify?explain=1 answer drawn over the image it classified.
 *
 * The map (docs/API.md): {"tokens": T, "grid": G, "modules": [{"name", "learners": N_m, "k": [T]}]} where token 0 is
 * the class token and tokens T - G² .. T - 1 are the patches in row-major order. A patch's value is the fraction of
 * all learners that ran on it, Σ_m k_m[t] / Σ_m N_m, in [0, 1].
 *
 * Picture: the image decoded and resized by the project's own decoder (proto/image.h: the server's conversion, with
 * mean 0 and std 1 so that values stay v / 255) to O x O pixels, O = G · ceil(224 / G) so that every patch is a whole
 * square of pixels; each pixel is 40% the image's grey and 60% the patch's viridis colour; a colour bar from 0 (left)
 * to 1 (right) under it. 8-bit RGB PNG via libspng.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <spng.h>

#include "acmc.h"
#include "image.h"

#define HEATMAP_MIN_SIZE 224
#define HEATMAP_BAR 16 /* rows under the image: 4 blank, 12 colour bar */

/* viridis at 0, 1/4, 1/2, 3/4, 1 (matplotlib's table), linearly interpolated */
static void heatmap__color(double v, uint8_t rgb[3]) {
    static const double stop[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    if (!(v >= 0)) v = 0;
    if (v > 1) v = 1;
    double x = v * 4;
    int i = (int)x;
    if (i > 3) i = 3;
    double f = x - i;
    for (int c = 0; c < 3; c++) rgb[c] = (uint8_t)lround(stop[i][c] + (stop[i + 1][c] - stop[i][c]) * f);
}

/* Parses and checks the map; frac[G*G] malloc'd. */
static int heatmap__fractions(const char *map_json, int *grid, double **frac, char *err, size_t errlen) {
    json_error_t je;
    json_t *m = json_loads(map_json, 0, &je);
    int rc = ACMC_EXIT_SERVER;
    *frac = NULL;
    json_t *mods = m ? json_object_get(m, "modules") : NULL;
    json_int_t T = json_integer_value(json_object_get(m, "tokens")), G = json_integer_value(json_object_get(m, "grid"));
    if (!m) snprintf(err, errlen, "compute map: not JSON (%s)", je.text);
    else if (!json_is_array(mods)) snprintf(err, errlen, "compute map: no \"modules\" array");
    else if (json_array_size(mods) == 0) snprintf(err, errlen, "the model has no ACM modules: its compute map is empty");
    else if (G < 1 || G > 4096 || T < G * G || T > G * G + 16)
        snprintf(err, errlen, "compute map: grid %lld does not fit %lld tokens", (long long)G, (long long)T);
    else {
        double *f = calloc((size_t)(G * G), sizeof *f);
        double learners = 0;
        rc = f ? 0 : ACMC_EXIT_FAIL;
        if (!f) snprintf(err, errlen, "out of memory");
        size_t i;
        json_t *mod;
        json_array_foreach(mods, i, mod) {
            if (rc) break;
            json_t *k = json_object_get(mod, "k");
            json_int_t n = json_integer_value(json_object_get(mod, "learners"));
            if (n < 1 || !json_is_array(k) || (json_int_t)json_array_size(k) != T) {
                snprintf(err, errlen, "compute map: module %zu has no learners or not %lld k values", i, (long long)T);
                rc = ACMC_EXIT_SERVER;
                break;
            }
            learners += (double)n;
            for (json_int_t p = 0; p < G * G; p++) {
                json_t *kv = json_array_get(k, (size_t)(T - G * G + p));
                json_int_t v = json_integer_value(kv);
                if (!json_is_integer(kv) || v < 0 || v > n) {
                    snprintf(err, errlen, "compute map: module %zu, token %lld: k outside [0, %lld]", i,
                             (long long)(T - G * G + p), (long long)n);
                    rc = ACMC_EXIT_SERVER;
                    break;
                }
                f[p] += (double)v;
            }
        }
        if (!rc) {
            for (json_int_t p = 0; p < G * G; p++) f[p] /= learners;
            *frac = f, *grid = (int)G;
        } else free(f);
    }
    json_decref(m);
    return rc;
}

int acmc_heatmap_png(const uint8_t *img, size_t len, const char *map_json, uint8_t **png, size_t *png_len,
                     double *mean_frac, char *err, size_t errlen) {
    *png = NULL, *png_len = 0;
    int G = 0;
    double *frac = NULL;
    int rc = heatmap__fractions(map_json, &G, &frac, err, errlen);
    if (rc) return rc;
    const int cell = (HEATMAP_MIN_SIZE + G - 1) / G, O = G * cell, H = O + HEATMAP_BAR;
    acm_image_params ip = {.size = O, .channels = 3, .mean = {0, 0, 0}, .std = {1, 1, 1}, .max_pixels = 0};
    float *px = malloc(sizeof(float) * 3 * (size_t)O * O);        /* [3, O, O] in [0, 1] */
    uint8_t *rgb = calloc((size_t)O * H * 3, 1);                  /* [H, O, 3] */
    if (!px || !rgb) {
        snprintf(err, errlen, "out of memory");
        rc = ACMC_EXIT_FAIL;
        goto out;
    }
    char ierr[256];
    if (acm_image_to_tensor(px, img, len, &ip, ierr, sizeof ierr)) {
        snprintf(err, errlen, "%s", ierr);
        rc = ACMC_EXIT_INPUT;
        goto out;
    }
    double mean = 0;
    for (int p = 0; p < G * G; p++) mean += frac[p];
    if (mean_frac) *mean_frac = mean / (G * G);
    const size_t plane = (size_t)O * O;
    for (int y = 0; y < O; y++)
        for (int x = 0; x < O; x++) {
            size_t i = (size_t)y * O + x;
            double grey = 0.299 * px[i] + 0.587 * px[plane + i] + 0.114 * px[2 * plane + i];
            uint8_t c[3];
            heatmap__color(frac[(y / cell) * G + x / cell], c);
            for (int k = 0; k < 3; k++) rgb[i * 3 + k] = (uint8_t)lround(0.4 * 255 * grey + 0.6 * c[k]);
        }
    for (int y = O + 4; y < H; y++)
        for (int x = 0; x < O; x++) heatmap__color(O > 1 ? (double)x / (O - 1) : 0, rgb + ((size_t)y * O + x) * 3);
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    int e = ctx ? 0 : SPNG_EMEM;
    if (!e) e = spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ih = {.width = (uint32_t)O, .height = (uint32_t)H, .bit_depth = 8,
                           .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
    if (!e) e = spng_set_ihdr(ctx, &ih);
    if (!e) e = spng_encode_image(ctx, rgb, (size_t)O * H * 3, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (!e) *png = spng_get_png_buffer(ctx, png_len, &e);
    spng_ctx_free(ctx);
    if (e || !*png) {
        snprintf(err, errlen, "PNG encoding failed: %s", spng_strerror(e));
        free(*png);
        *png = NULL;
        rc = ACMC_EXIT_FAIL;
    }
out:
    free(frac), free(px), free(rgb);
    return rc;
}
