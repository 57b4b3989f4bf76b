/*
 * kernels_avx512.c — AVX-512 versions of the CPU kernels between the GEMMs (engine/cpu/simd.h says when they run).
 * Each function is compiled for AVX-512 F/DQ by a target attribute and called only after the run-time check, so the
 * rest of the library stays x86-64-v2. Tails are masked 16-lane operations (no scalar loop), so an element's result
 * does not depend on its position in the call.
 */
#include "simd.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#include <math.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))

static int simd_off;

int acm__simd_avx512(void) {
    return !simd_off && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
}
void acm__simd_disable(int off) { simd_off = off; }

/* e^x, 16 lanes: kernels.c's exp4 (Cephes expf: x clamped to [-87, 88], n = round(x / ln2), r = x - n ln2 in two parts,
 * degree-6 polynomial) with FMA, and 2^n applied by scalef. */
AVX512 static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* x Φ(x), 16 lanes: kernels.c's gelu4 (Φ from erfc(|x|/√2) ≈ t exp(−z² + P(t)), t = 1/(1 + z/2)). */
AVX512 static inline __m512 gelu16(__m512 x) {
    static const float c[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f, -1.26551223f};
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752440f));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(c[0]);
    for (int i = 1; i < 10; i++) p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c[i]));
    __m512 half_erfc = _mm512_mul_ps(_mm512_set1_ps(0.5f), _mm512_mul_ps(t, exp16(_mm512_fnmadd_ps(z, z, p))));
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 phi = _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0f), half_erfc), half_erfc);
    return _mm512_mul_ps(x, phi);
}

static inline __mmask16 tail_mask(int64_t left) { return (__mmask16)((1u << left) - 1u); }

AVX512 void acm__gelu_avx512(float *out, const float *inp, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, gelu16(_mm512_loadu_ps(inp + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(out + i, m, gelu16(_mm512_maskz_loadu_ps(m, inp + i)));
    }
}

AVX512 void acm__bias_gelu_avx512(float *pre, float *out, const float *bias, int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_add_ps(_mm512_loadu_ps(pre + i), _mm512_loadu_ps(bias + i));
        _mm512_storeu_ps(pre + i, v);
        _mm512_storeu_ps(out + i, gelu16(v));
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, pre + i), _mm512_maskz_loadu_ps(m, bias + i));
        _mm512_mask_storeu_ps(pre + i, m, v);
        _mm512_mask_storeu_ps(out + i, m, gelu16(v));
    }
}

/* max, then e^(x - max) with its sum (16 float lanes, reduced in double), then the scale: three passes over a row
 * that stays in L1. */
AVX512 void acm__softmax_row_avx512(float *out, const float *in, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(in + i));
    const __mmask16 mt = tail_mask(n - i);
    const int nt = i;
    if (i < n) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), mt, in + i));
    const __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 acc = _mm512_setzero_ps();
    for (i = 0; i < nt; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(in + i), m));
        _mm512_storeu_ps(out + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (nt < n) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_mask_loadu_ps(m, mt, in + nt), m));
        _mm512_mask_storeu_ps(out + nt, mt, e);
        acc = _mm512_mask_add_ps(acc, mt, acc, e);
    }
    __m512d s = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(acc)),
                              _mm512_cvtps_pd(_mm512_extractf32x8_ps(acc, 1)));
    const __m512 inv = _mm512_set1_ps((float)(1.0 / _mm512_reduce_add_pd(s)));
    for (i = 0; i < nt; i += 16) _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_loadu_ps(out + i), inv));
    if (nt < n) _mm512_mask_storeu_ps(out + nt, mt, _mm512_mul_ps(_mm512_maskz_loadu_ps(mt, out + nt), inv));
}

/* Mean and variance in double (8 lanes, as kernels.c's loop but in lane order), then (x - mean) rstd w + b. */
AVX512 void acm__layernorm_row_avx512(float *out, float *mean, float *rstd, const float *x, const float *weight,
                                      const float *bias, int C, float eps) {
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + c)));
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_loadu_ps(x + c + 8)));
    }
    double tail = 0.0;
    for (int j = c; j < C; j++) tail += x[j];
    const double m = (_mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + tail) / C;
    const __m512d md = _mm512_set1_pd(m);
    a0 = a1 = _mm512_setzero_pd();
    for (c = 0; c + 16 <= C; c += 16) {
        __m512d d0 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + c)), md);
        __m512d d1 = _mm512_sub_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + c + 8)), md);
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    tail = 0.0;
    for (int j = c; j < C; j++) tail += (x[j] - m) * (x[j] - m);
    const double v = (_mm512_reduce_add_pd(_mm512_add_pd(a0, a1)) + tail) / C;
    const float s = (float)(1.0 / sqrt(v + eps)), mf = (float)m;
    const __m512 sv = _mm512_set1_ps(s), mv = _mm512_set1_ps(mf);
    for (c = 0; c + 16 <= C; c += 16) {
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + c), mv), sv);
        _mm512_storeu_ps(out + c, _mm512_fmadd_ps(t, _mm512_loadu_ps(weight + c), _mm512_loadu_ps(bias + c)));
    }
    if (c < C) {
        __mmask16 mt = tail_mask(C - c);
        __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(mt, x + c), mv), sv);
        _mm512_mask_storeu_ps(out + c, mt,
                              _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(mt, weight + c), _mm512_maskz_loadu_ps(mt, bias + c)));
    }
    if (mean) *mean = mf;
    if (rstd) *rstd = s;
}

#else /* not x86-64 with GCC or Clang: no wide path */
int acm__simd_avx512(void) { return 0; }
void acm__simd_disable(int off) { (void)off; }
void acm__gelu_avx512(float *out, const float *inp, int64_t n) { (void)out, (void)inp, (void)n; }
void acm__bias_gelu_avx512(float *pre, float *out, const float *bias, int64_t n) {
    (void)pre, (void)out, (void)bias, (void)n;
}
void acm__softmax_row_avx512(float *out, const float *in, int n) { (void)out, (void)in, (void)n; }
void acm__layernorm_row_avx512(float *out, float *mean, float *rstd, const float *x, const float *weight,
                               const float *bias, int C, float eps) {
    (void)out, (void)mean, (void)rstd, (void)x, (void)weight, (void)bias, (void)C, (void)eps;
}
#endif
