/*
 * gelu_lab.c — kernel lab (an experiment kept apart from engine/, with its own benchmark; only a winner moves into the
 * engine): exact-GELU forward variants, speed and accuracy against a double reference.
 *
 *   v1  the engine's acm__gelu_forward today: 0.5 x (1 + erff(x/√2)), glibc erff, one lane.
 *   v2  4 SSE2 lanes: Φ(x) from erfc(|x|/√2) ≈ t·exp(−z² + P(t)), t = 1/(1 + z/2) (Numerical Recipes' erfcc, relative
 *       error < 1.2e-7 for all z ≥ 0), Φ = erfc/2 for x < 0 and 1 − erfc/2 otherwise; exp by Cephes' expf polynomial.
 *       Computing the small tail erfc directly also avoids v1's cancellation in 1 + erf(x/√2) for negative x.
 *
 * Accuracy: max over a grid of x in [-12, 12] of |v − gelu_double(x)| / max(|gelu_double(x)|, 1e-3), i.e. relative
 * error where GELU is not tiny and absolute error (scaled by 1e3) near its zero.
 * Speed: ns per element on B·T·Hd = 128·50·768 = 4.9M elements (one training batch's MLP), best of --reps.
 *
 * build and run (not part of make):
 *   cc -O2 -march=x86-64-v2 -fno-fast-math -o build/gelu_lab bench/lab/gelu/gelu_lab.c -lm && build/gelu_lab [REPS [N]]
 */
#include <emmintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void gelu_v1(float *out, const float *inp, int64_t n) {
    const float inv_sqrt2 = 0.70710678118654752440f;
    for (int64_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * inv_sqrt2));
    }
}

static inline __m128 exp4(__m128 x) {
    x = _mm_min_ps(_mm_max_ps(x, _mm_set1_ps(-87.0f)), _mm_set1_ps(88.0f));
    __m128i n = _mm_cvtps_epi32(_mm_mul_ps(x, _mm_set1_ps(1.44269504088896341f)));
    __m128 nf = _mm_cvtepi32_ps(n);
    __m128 r = _mm_sub_ps(_mm_sub_ps(x, _mm_mul_ps(nf, _mm_set1_ps(0.693359375f))),
                          _mm_mul_ps(nf, _mm_set1_ps(-2.12194440e-4f)));
    __m128 p = _mm_set1_ps(1.9875691500e-4f);
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.3981999507e-3f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(8.3334519073e-3f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(4.1665795894e-2f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(1.6666665459e-1f));
    p = _mm_add_ps(_mm_mul_ps(p, r), _mm_set1_ps(5.0000001201e-1f));
    p = _mm_add_ps(_mm_add_ps(_mm_mul_ps(_mm_mul_ps(p, r), r), r), _mm_set1_ps(1.0f));
    __m128 two_n = _mm_castsi128_ps(_mm_slli_epi32(_mm_add_epi32(n, _mm_set1_epi32(127)), 23));
    return _mm_mul_ps(p, two_n);
}

static inline __m128 gelu4(__m128 x) {
    const __m128 absmask = _mm_castsi128_ps(_mm_set1_epi32(0x7fffffff));
    __m128 z = _mm_mul_ps(_mm_and_ps(x, absmask), _mm_set1_ps(0.70710678118654752440f));
    __m128 t = _mm_div_ps(_mm_set1_ps(1.0f), _mm_add_ps(_mm_set1_ps(1.0f), _mm_mul_ps(_mm_set1_ps(0.5f), z)));
    static const float c[10] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f,
                                -0.18628806f, 0.09678418f,  0.37409196f, 1.00002368f, -1.26551223f};
    __m128 p = _mm_set1_ps(c[0]);
    for (int i = 1; i < 10; i++) p = _mm_add_ps(_mm_mul_ps(p, t), _mm_set1_ps(c[i]));
    __m128 erfc = _mm_mul_ps(t, exp4(_mm_sub_ps(p, _mm_mul_ps(z, z))));
    __m128 half_erfc = _mm_mul_ps(_mm_set1_ps(0.5f), erfc);
    __m128 neg = _mm_cmplt_ps(x, _mm_setzero_ps());
    __m128 phi = _mm_or_ps(_mm_and_ps(neg, half_erfc), _mm_andnot_ps(neg, _mm_sub_ps(_mm_set1_ps(1.0f), half_erfc)));
    return _mm_mul_ps(x, phi);
}

static void gelu_v2(float *out, const float *inp, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) _mm_storeu_ps(out + i, gelu4(_mm_loadu_ps(inp + i)));
    if (i < n) { /* tail through one padded vector */
        float buf[4] = {0, 0, 0, 0};
        memcpy(buf, inp + i, sizeof(float) * (size_t)(n - i));
        _mm_storeu_ps(buf, gelu4(_mm_loadu_ps(buf)));
        memcpy(out + i, buf, sizeof(float) * (size_t)(n - i));
    }
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef void (*gelu_fn)(float *, const float *, int64_t);

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 5;
    const int64_t n = argc > 2 ? atoll(argv[2]) : 128LL * 50 * 768;
    float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(((i * 2654435761u) % 20000) * 0.0006 - 6.0); /* [-6, 6) */
    const int64_t G = 2400001;
    float *gx = malloc(sizeof(float) * G), *gy = malloc(sizeof(float) * G);
    for (int64_t i = 0; i < G; i++) gx[i] = (float)(-12.0 + 24.0 * (double)i / (G - 1));
    struct {
        const char *name;
        gelu_fn f;
    } v[2] = {{"v1 erff (engine today)", gelu_v1}, {"v2 SSE erfc + exp", gelu_v2}};
    for (int k = 0; k < 2; k++) {
        double best = 1e9;
        for (int r = 0; r < reps; r++) {
            double t0 = now_s();
            v[k].f(y, x, n);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        v[k].f(gy, gx, G);
        double maxe = 0, at = 0;
        for (int64_t i = 0; i < G; i++) {
            double xd = gx[i], ref = 0.5 * xd * erfc(-xd / sqrt(2.0));
            double e = fabs(gy[i] - ref) / fmax(fabs(ref), 1e-3);
            if (e > maxe) maxe = e, at = xd;
        }
        printf("%-24s %6.2f ns/element (%.1f ms per 4.9M)   max error %.3g (at x = %.4g)\n", v[k].name,
               best * 1e9 / n, best * 1e3, maxe, at);
    }
    free(x);
    free(y);
    free(gx);
    free(gy);
    return 0;
}
