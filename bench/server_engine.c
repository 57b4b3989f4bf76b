/*
 * server_engine.c — the engine's own figures that acmd is compared with (bench/server_bench.sh):
 *   server_engine make-model PATH                 a random static ViT of the Fashion-MNIST model's shape
 *                                                 (the first one, docs/history/fmnist-vit-patch4.md: 28x28x1, patch 4,
 *                                                 width 128, depth 6, 4 heads, MLP 512; 125.8 MFLOP/image)
 *   server_engine make-png PATH                   a 28x28 grey PNG (the request body of the load tests)
 *   server_engine throughput MODEL PNG W B SECS [BETA]
 *                                                 W threads, each its own acm_worker, batches of B items of the
 *                                                 decoded PNG, for SECS seconds: items/s (engine only, and with the
 *                                                 PNG decoded per item as acmd's workers do); BETA: every item under
 *                                                 cap at that budget (an ACM model), else the model's default policy
 *   server_engine latency MODEL PNG N [GAP_US [MAX_BATCH]]
 *                                                 one thread, batch 1, N calls (GAP_US idle between them, as a server
 *                                                 between requests; the worker sized for MAX_BATCH, default 1):
 *                                                 p50/p99 of the engine call alone and of decode + engine
 * BLAS: one thread per worker (acmd's default). Prints one line of key=value per measurement.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <spng.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "image.h"
#include "train/rng.h"
#include "train/vit_train.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long k = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)k);
    *n = fread(b, 1, (size_t)k, f);
    fclose(f);
    return b;
}

typedef struct {
    const acm_model *m;
    const uint8_t *png;
    size_t png_len;
    int batch, decode, workers;
    double secs;
    float beta; /* > 0: every item under cap at this budget; 0: the model's default policy */
    long items;
} thr_arg;

static acm_image_params params_of(const acm_model *m) {
    const acm_config *c = acm_model_config(m);
    acm_image_params p = {.size = c->image_size, .channels = c->in_chans};
    for (int i = 0; i < c->in_chans && i < 3; i++) p.mean[i] = c->mean[i], p.std[i] = c->std[i];
    return p;
}

static void *thr_main(void *p) {
    thr_arg *a = p;
    const acm_config *c = acm_model_config(a->m);
    acm_worker_params wp = acm_worker_default_params();
    wp.max_batch = a->batch;
    wp.workers = a->workers;
    wp.cpu_threads = 1;
    char err[256];
    acm_worker *w = acm_worker_new(a->m, wp, err, sizeof err);
    if (!w) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    const size_t CSS = (size_t)c->in_chans * c->image_size * c->image_size;
    float *x = malloc(sizeof(float) * CSS * a->batch), *lg = malloc(sizeof(float) * c->num_classes * a->batch);
    acm_item *it = calloc((size_t)a->batch, sizeof *it);
    acm_result *res = calloc((size_t)a->batch, sizeof *res);
    acm_image_params ip = params_of(a->m);
    for (int b = 0; b < a->batch; b++) {
        acm_image_to_tensor(x + b * CSS, a->png, a->png_len, &ip, err, sizeof err);
        it[b] = (acm_item){.pixels = x + b * CSS, .policy = acm_policy_default()};
        if (a->beta > 0) it[b].policy.kind = ACM_POLICY_CAP, it[b].policy.beta = a->beta;
        res[b] = (acm_result){.logits = lg + b * c->num_classes};
    }
    double t0 = now();
    while (now() - t0 < a->secs) {
        if (a->decode)
            for (int b = 0; b < a->batch; b++) acm_image_to_tensor(x + b * CSS, a->png, a->png_len, &ip, err, sizeof err);
        acm_worker_run(w, it, res, a->batch, err, sizeof err);
        a->items += a->batch;
    }
    acm_worker_free(w);
    free(x), free(lg), free(it), free(res);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    char err[512];
    if (argc == 3 && !strcmp(argv[1], "make-model")) {
        acmt_vit_config c = {.image_size = 28, .patch_size = 4, .in_chans = 1, .dim = 128, .depth = 6, .heads = 4,
                             .mlp_hidden = 512, .num_classes = 10, .ln_eps = 1e-6f};
        acmt_vit *v = acmt_vit_new(&c, 1, err, sizeof err);
        acmt_rng rng;
        acmt_rng_seed(&rng, 11, 0);
        acmt_vit_init(v, &rng);
        if (acmt_vit_save_model(v, argv[2], "{\"eval\":{\"note\":\"random weights: a benchmark model\"}}", err, sizeof err)) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        acmt_vit_free(v);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "make-png")) {
        uint8_t px[28 * 28];
        for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)((i % 28) * 9 + (i / 28) * 3);
        spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
        spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
        struct spng_ihdr ih = {.width = 28, .height = 28, .bit_depth = 8, .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
        spng_set_ihdr(ctx, &ih);
        size_t n = 0;
        int e = spng_encode_image(ctx, px, sizeof px, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
        uint8_t *png = e ? NULL : spng_get_png_buffer(ctx, &n, &e);
        spng_ctx_free(ctx);
        FILE *f = fopen(argv[2], "wb");
        if (!f || !png || fwrite(png, 1, n, f) != n) return 1;
        fclose(f);
        free(png);
        return 0;
    }
    if (argc < 5) {
        fprintf(stderr, "usage: server_engine make-model PATH | make-png PATH | throughput MODEL PNG W B SECS [BETA] | "
                        "latency MODEL PNG N\n");
        return 2;
    }
    acm_model *m = acm_model_load(argv[2], err, sizeof err);
    size_t n;
    uint8_t *png = slurp(argv[3], &n);
    if (!m || !png) {
        fprintf(stderr, "cannot load %s or %s: %s\n", argv[2], argv[3], err);
        return 1;
    }
    if (!strcmp(argv[1], "throughput") && (argc == 7 || argc == 8)) {
        int W = atoi(argv[4]), B = atoi(argv[5]);
        double secs = atof(argv[6]);
        const float beta = argc == 8 ? strtof(argv[7], NULL) : 0;
        if (argc == 8 && !(beta > 0 && beta <= 1)) {
            fprintf(stderr, "server_engine: BETA must be in (0, 1], got %s\n", argv[7]);
            return 2;
        }
        for (int decode = 0; decode < 2; decode++) {
            pthread_t t[64];
            thr_arg a[64];
            for (int i = 0; i < W; i++) {
                a[i] = (thr_arg){.m = m, .png = png, .png_len = n, .batch = B, .decode = decode, .workers = W, .secs = secs,
                                 .beta = beta};
                pthread_create(&t[i], NULL, thr_main, &a[i]);
            }
            long items = 0;
            for (int i = 0; i < W; i++) pthread_join(t[i], NULL), items += a[i].items;
            char bs[32] = "default";
            if (beta > 0) snprintf(bs, sizeof bs, "%g", beta);
            printf("engine_throughput workers=%d batch=%d decode=%d beta=%s items_per_s=%.0f blas_core=%s\n", W, B,
                   decode, bs, items / secs, acm_blas_core());
        }
    } else if (!strcmp(argv[1], "latency")) {
        int N = atoi(argv[4]), gap_us = argc > 5 ? atoi(argv[5]) : 0, mb = argc > 6 ? atoi(argv[6]) : 1;
        acm_worker_params wp = acm_worker_default_params();
        wp.max_batch = mb;
        wp.cpu_threads = 1;
        acm_worker *w = acm_worker_new(m, wp, err, sizeof err);
        const acm_config *c = acm_model_config(m);
        float *x = malloc(sizeof(float) * c->in_chans * c->image_size * c->image_size), lg[64];
        acm_image_params ip = params_of(m);
        double *te = malloc(sizeof(double) * N), *td = malloc(sizeof(double) * N);
        acm_item it = {.pixels = x, .policy = acm_policy_default()};
        acm_result res = {.logits = lg};
        for (int i = 0; i < N; i++) {
            if (gap_us) usleep((useconds_t)gap_us);
            double t0 = now();
            acm_image_to_tensor(x, png, n, &ip, err, sizeof err);
            double t1 = now();
            acm_worker_run(w, &it, &res, 1, err, sizeof err);
            double t2 = now();
            te[i] = t2 - t1, td[i] = t2 - t0;
        }
        qsort(te, (size_t)N, sizeof *te, cmp);
        qsort(td, (size_t)N, sizeof *td, cmp);
        printf("engine_latency n=%d engine_p50_ms=%.4f engine_p99_ms=%.4f decode_engine_p50_ms=%.4f "
               "decode_engine_p99_ms=%.4f blas_core=%s\n", N, te[N / 2] * 1e3, te[N * 99 / 100] * 1e3, td[N / 2] * 1e3,
               td[N * 99 / 100] * 1e3, acm_blas_core());
        acm_worker_free(w);
        free(x), free(te), free(td);
    }
    acm_model_free(m);
    free(png);
    return 0;
}
