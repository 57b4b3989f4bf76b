/*
 * simd.h — the CPU kernels' wide paths (engine/cpu/kernels_avx512.c). Internal header.
 *
 * The library is built for x86-64-v2 (SSE4.2), so engine/cpu/kernels.c's loops are 4 lanes wide. Where the CPU has
 * AVX-512 (F and DQ: Skylake-X and later Xeons, AMD Zen 4), the memory-bound ops between the GEMMs (LayerNorm, GELU,
 * bias + GELU, the attention softmax) run 16 lanes wide with FMA instead, chosen at run time (functions compiled with
 * target attributes, so the build needs no flag and runs anywhere). Same formulas as the SSE path (Cephes exp,
 * Numerical Recipes' erfc for GELU, double statistics for LayerNorm); results differ from it in the last bits (FMA,
 * lane order of a sum), never between thread counts: each kernel works on one row (or one call's elements) with a
 * masked tail, so a value depends on its row alone, not on where a caller's chunk starts.
 */
#ifndef ACM_CPU_SIMD_H
#define ACM_CPU_SIMD_H

#include <stdint.h>

/* 1 when the wide path runs (the CPU has AVX-512 F and DQ and acm__simd_disable was not called), else 0. */
int acm__simd_avx512(void);
/* Benchmarks and tests: 1 makes every kernel take the SSE path (an A/B in one process), 0 restores the choice. */
void acm__simd_disable(int off);

/* The AVX-512 kernels (call only when acm__simd_avx512() says so): the same contracts as kernels.h's functions. */
void acm__gelu_avx512(float *out, const float *inp, int64_t n);
/* pre[0..n) += bias, then out[0..n) = GELU(pre) (out may be pre). */
void acm__bias_gelu_avx512(float *pre, float *out, const float *bias, int64_t n);
void acm__softmax_row_avx512(float *out, const float *in, int n);
/* One row of acm__layernorm_forward: out[C], its mean and rstd. */
void acm__layernorm_row_avx512(float *out, float *mean, float *rstd, const float *x, const float *weight,
                               const float *bias, int C, float eps);

#endif
