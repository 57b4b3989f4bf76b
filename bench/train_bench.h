/*
 * train_bench.h — the sgemm ceiling that the training-throughput benchmarks (train_throughput, speech_train_throughput)
 * measure in the same run as the steps they compare with it. Include after bench/bench_util.h.
 */
#ifndef ACM_BENCH_TRAIN_BENCH_H
#define ACM_BENCH_TRAIN_BENCH_H

#include <cblas.h>
#include <stdlib.h>

/* GFLOP/s of C[M,N] = A[M,K]·B[N,K]ᵀ (transb) or A[M,K]·B[K,N], repeated for about `seconds` (after one untimed
 * product when warm). */
static inline double tb_sgemm_gflops(int M, int N, int K, int transb, double seconds, int warm) {
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 7) * 0.01f;
    if (warm)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K, 1, a, K, b,
                    transb ? K : N, 0, c, N);
    int reps = 0;
    double t0 = bu_now_s(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K, 1, a, K, b,
                    transb ? K : N, 0, c, N);
        reps++;
    } while ((t = bu_now_s() - t0) < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

/* The ceiling of a transformer training step on M rows of width D: the best of its largest products ([M, D] ×
 * [3D, D]ᵀ, × [4D, D]ᵀ, [M, 4D] × [D, 4D]ᵀ and the backward's [M, 4D] × [4D, D]), 0.4 s each. */
static inline double tb_step_ceiling(int M, int D, int warm) {
    double ceil = 0, g;
    if ((g = tb_sgemm_gflops(M, 3 * D, D, 1, 0.4, warm)) > ceil) ceil = g;
    if ((g = tb_sgemm_gflops(M, 4 * D, D, 1, 0.4, warm)) > ceil) ceil = g;
    if ((g = tb_sgemm_gflops(M, D, 4 * D, 1, 0.4, warm)) > ceil) ceil = g;
    if ((g = tb_sgemm_gflops(M, D, 4 * D, 0, 0.4, warm)) > ceil) ceil = g;
    return ceil;
}

#endif
