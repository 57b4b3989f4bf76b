/*
 * sgemm_ceiling — the sgemm throughput ceiling that training throughput is measured against (issue 3).
 *
 * Runs cblas_sgemm on the shapes of ViT training (rows = batch·tokens, widths D and 4D), with the number of OpenBLAS
 * threads given, for a fixed number of seconds per shape, and prints GFLOP/s (2 FLOPs per multiply-add) per shape and
 * the best, plus the BLAS core. The ceiling is the best shape: a training step cannot beat its largest GEMMs.
 *
 * usage: sgemm_ceiling [--threads N] [--seconds S] [--rows M] [--dim D] [--json]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#define BENCH_NAME "sgemm_ceiling"
#include "bench/bench_util.h"

/* GFLOP/s of C[M,N] = A[M,K]·B[N,K]ᵀ (transb) or A[M,K]·B[K,N], repeated for about `seconds`. */
static double bench_shape(int M, int N, int K, int transb, double seconds) {
    float *a = malloc(sizeof(float) * (size_t)M * K), *b = malloc(sizeof(float) * (size_t)N * K);
    float *c = malloc(sizeof(float) * (size_t)M * N);
    if (!a || !b || !c) {
        fprintf(stderr, "sgemm_ceiling: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    /* warm-up */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a, K, b,
                transb ? K : N, 0.0f, c, N);
    int reps = 0;
    double t0 = bu_now_s(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K, 1.0f, a, K, b,
                    transb ? K : N, 0.0f, c, N);
        reps++;
        t = bu_now_s() - t0;
    } while (t < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    int threads = 2, rows = 64 * 50, dim = 192, json = 0;
    double seconds = 1.0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rows") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && i + 1 < argc) dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            printf("usage: sgemm_ceiling [--threads N (2)] [--seconds S (1.0)] [--rows M (3200 = 64 images x 50 "
                   "tokens)] [--dim D (192)] [--json]\n");
            return !strcmp(argv[i], "--help") ? 0 : 2;
        }
    }
    if (threads < 1 || rows < 1 || dim < 1 || seconds <= 0) {
        fprintf(stderr, "sgemm_ceiling: bad arguments\n");
        return 2;
    }
    acm_blas_set_threads(threads);
    struct {
        const char *name;
        int M, N, K, transb;
    } shapes[] = {
        {"fwd qkv  [M,D]x[3D,D]^T", rows, 3 * dim, dim, 1},
        {"fwd fc1  [M,D]x[4D,D]^T", rows, 4 * dim, dim, 1},
        {"fwd fc2  [M,4D]x[D,4D]^T", rows, dim, 4 * dim, 1},
        {"bwd dinp [M,4D]x[4D,D]", rows, dim, 4 * dim, 0},
    };
    int ns = (int)(sizeof shapes / sizeof shapes[0]);
    double best = 0;
    if (!json) printf("sgemm ceiling: core %s, %d thread(s), rows %d, D %d\n", acm_blas_core(), threads, rows, dim);
    if (json) printf("{\"core\":\"%s\",\"threads\":%d,\"rows\":%d,\"dim\":%d,\"shapes\":[", acm_blas_core(), threads,
                     rows, dim);
    for (int s = 0; s < ns; s++) {
        double g = bench_shape(shapes[s].M, shapes[s].N, shapes[s].K, shapes[s].transb, seconds);
        if (g > best) best = g;
        if (json) printf("%s{\"shape\":\"%s\",\"gflops\":%.2f}", s ? "," : "", shapes[s].name, g);
        else printf("  %-28s %8.1f GFLOP/s\n", shapes[s].name, g);
    }
    if (json) printf("],\"ceiling_gflops\":%.2f}\n", best);
    else printf("ceiling %.1f GFLOP/s\n", best);
    return 0;
}
