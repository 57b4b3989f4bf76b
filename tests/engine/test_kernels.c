/*
 * test_kernels.c — every forward layer kernel against a naive double-precision loop, with odd sizes and leading
 * dimensions. Tolerance: max|Δ| / max(1, max|ref|) <= 1e-5; the max difference is printed on failure.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

static unsigned rng_state = 12345;
static float frand(void) {
    rng_state = rng_state * 1664525u + 1013904223u;
    return (float)((rng_state >> 8) / 16777216.0 * 2.0 - 1.0);
}
static float *randv(size_t n) {
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = frand();
    return v;
}

static void expect_close(const float *got, const double *ref, size_t n, double tol, const char *what) {
    double maxref = 1, maxd = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        maxref = fmax(maxref, fabs(ref[i]));
        double d = fabs(got[i] - ref[i]);
        if (d > maxd) {
            maxd = d;
            at = i;
        }
    }
    cr_expect_leq(maxd / maxref, tol, "%s: max|Δ| %.3g at %zu (got %.8g, ref %.8g)", what, maxd, at, got[at], ref[at]);
}

Test(kernels, layernorm) {
    const int N = 7, C = 37;
    float *x = randv(N * C), *w = randv(C), *b = randv(C), out[7 * 37], mean[7], rstd[7];
    for (int i = 0; i < N * C; i++) x[i] = x[i] * 3 + 10; /* offset: a naive one-pass variance would lose digits */
    acm__layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-6f);
    double ref[7 * 37];
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[i * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[i * C + c] - m) * (x[i * C + c] - m);
        v /= C;
        for (int c = 0; c < C; c++) ref[i * C + c] = (x[i * C + c] - m) / sqrt(v + 1e-6) * w[c] + b[c];
        cr_expect(fabs(mean[i] - m) < 1e-5 * fabs(m), "mean[%d]", i);
        cr_expect(fabs(rstd[i] - 1 / sqrt(v + 1e-6)) < 1e-5 / sqrt(v + 1e-6), "rstd[%d]", i);
    }
    expect_close(out, ref, N * C, 1e-5, "layernorm");
    free(x), free(w), free(b);
}

Test(kernels, matmul_with_leading_dims_bias_and_accumulate) {
    const int N = 5, C = 13, OC = 11, ldi = 17, ldw = 19, ldo = 23;
    float *x = randv(N * ldi), *w = randv(OC * ldw), *b = randv(OC), *out = randv(N * ldo);
    float *orig = malloc(sizeof(float) * N * ldo);
    memcpy(orig, out, sizeof(float) * N * ldo);
    for (int acc = 0; acc <= 1; acc++)
        for (int withb = 0; withb <= 1; withb++) {
            memcpy(out, orig, sizeof(float) * N * ldo);
            acm__matmul_forward(out, ldo, x, ldi, w, ldw, withb ? b : NULL, N, C, OC, acc);
            double ref[5 * 23];
            float got[5 * 23];
            for (int i = 0; i < N; i++)
                for (int j = 0; j < ldo; j++) {
                    double r = orig[i * ldo + j];
                    if (j < OC) {
                        double s = withb ? b[j] : 0;
                        for (int k = 0; k < C; k++) s += (double)x[i * ldi + k] * w[j * ldw + k];
                        r = acc ? r + s : s;
                    }
                    ref[i * ldo + j] = r;
                    got[i * ldo + j] = out[i * ldo + j];
                }
            expect_close(got, ref, N * ldo, 1e-5, acc ? "matmul (accumulate)" : "matmul");
        }
    free(x), free(w), free(b), free(out), free(orig);
}

Test(kernels, gelu_exact_erf) {
    float x[9] = {-6, -3, -1, -0.5f, 0, 0.5f, 1, 3, 6}, y[9];
    acm__gelu_forward(y, x, 9);
    double ref[9];
    for (int i = 0; i < 9; i++) ref[i] = 0.5 * x[i] * (1 + erf(x[i] / sqrt(2.0)));
    expect_close(y, ref, 9, 1e-6, "gelu");
    /* not the tanh approximation: at x = 1 they differ by ~1.6e-4 */
    cr_expect(fabs(y[6] - 0.8413447) < 1e-6, "gelu(1) = %.8f", y[6]);
}

Test(kernels, attention_multihead_strided) {
    const int B = 2, T = 5, D = 12, H = 3, hd = 4, ld = 3 * D;
    float *qkv = randv(B * T * ld), out[2 * 5 * 12], att[2 * 3 * 5 * 5];
    acm__attention_forward(out, att, qkv, qkv + D, qkv + 2 * D, ld, B, T, D, H);
    double ref[2 * 5 * 12], refa[2 * 3 * 5 * 5];
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                double s[5], mx = -1e300, sum = 0;
                for (int u = 0; u < T; u++) {
                    s[u] = 0;
                    for (int d = 0; d < hd; d++)
                        s[u] += (double)qkv[(b * T + t) * ld + h * hd + d] * qkv[(b * T + u) * ld + D + h * hd + d];
                    s[u] /= sqrt((double)hd);
                    mx = fmax(mx, s[u]);
                }
                for (int u = 0; u < T; u++) sum += (s[u] = exp(s[u] - mx));
                for (int u = 0; u < T; u++) refa[((b * H + h) * T + t) * T + u] = s[u] / sum;
                for (int d = 0; d < hd; d++) {
                    double o = 0;
                    for (int u = 0; u < T; u++) o += s[u] / sum * qkv[(b * T + u) * ld + 2 * D + h * hd + d];
                    ref[(b * T + t) * D + h * hd + d] = o;
                }
            }
    expect_close(out, ref, B * T * D, 1e-5, "attention output");
    expect_close(att, refa, B * H * T * T, 1e-6, "attention probabilities");
    free(qkv);
}

Test(kernels, im2col_matches_conv_weight_order) {
    const int C = 3, S = 8, P = 4, g = 2;
    float *img = randv(C * S * S), out[4 * 48];
    acm__im2col_patches(out, img, C, S, S, P);
    for (int py = 0; py < g; py++)
        for (int px = 0; px < g; px++)
            for (int c = 0; c < C; c++)
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++)
                        cr_assert_eq(out[(py * g + px) * C * P * P + (c * P + y) * P + x],
                                     img[(c * S + py * P + y) * S + px * P + x]);
    free(img);
}

Test(kernels, softmax_row_stable) {
    float in[4] = {1000, 1001, 999, -1e30f}, out[4];
    acm__softmax_row(out, in, 4);
    double e0 = exp(-1.0), e2 = exp(-2.0), s = e0 + 1 + e2;
    double ref[4] = {e0 / s, 1 / s, e2 / s, 0};
    expect_close(out, ref, 4, 1e-6, "softmax");
}

/* The vectorised GELU over a dense grid: relative error <= 2e-6 where |GELU| >= 1e-3, absolute <= 2e-9 below. */
Test(kernels, gelu_accuracy_grid) {
    enum { N = 24001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    acm__gelu_forward(y, x, N);
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        double xd = x[i], ref = xd * 0.5 * erfc(-xd / sqrt(2.0));
        double e = fabs(y[i] - ref) / fmax(fabs(ref), 1e-3);
        if (e > worst) worst = e, at = i;
    }
    cr_expect_leq(worst, 2e-6, "gelu: worst scaled error %.3g at x = %g", worst, (double)x[at]);
}

/* ---- the AVX-512 path (engine/cpu/simd.h): each kernel against the double-precision reference, at lengths with and
 * without a masked tail; skipped on a CPU without AVX-512 F/DQ (the SSE path is what the tests above check there) */
#include "cpu/simd.h"

static double gelu_ref(double x) { return x * 0.5 * erfc(-x / sqrt(2.0)); }

Test(kernels_avx512, gelu_accuracy_and_tails) {
    if (!acm__simd_avx512()) cr_skip_test("no AVX-512 F/DQ on this CPU");
    enum { N = 24001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    acm__gelu_avx512(y, x, N);
    double worst = 0;
    int at = 0;
    for (int i = 0; i < N; i++) {
        double e = fabs(y[i] - gelu_ref(x[i])) / fmax(fabs(gelu_ref(x[i])), 1e-3);
        if (e > worst) worst = e, at = i;
    }
    cr_expect_leq(worst, 2e-6, "gelu: worst scaled error %.3g at x = %g", worst, (double)x[at]);
    /* a tail element gets the value it gets in a full vector, and nothing past n is written */
    for (int n = 1; n <= 33; n++) {
        float out[48];
        for (int i = 0; i < 48; i++) out[i] = -7.0f;
        acm__gelu_avx512(out, x + 1000, n);
        for (int i = 0; i < n; i++) cr_assert_eq(out[i], y[1000 + i], "n %d, element %d", n, i);
        for (int i = n; i < 48; i++) cr_assert_eq(out[i], -7.0f, "n %d: wrote element %d", n, i);
    }
}

Test(kernels_avx512, bias_gelu_equals_bias_then_gelu) {
    if (!acm__simd_avx512()) cr_skip_test("no AVX-512 F/DQ on this CPU");
    for (int n = 1; n <= 70; n += 3) {
        float *pre = randv((size_t)n), *bias = randv((size_t)n), *sum = malloc(sizeof(float) * (size_t)n);
        float *out = malloc(sizeof(float) * (size_t)n), *ref = malloc(sizeof(float) * (size_t)n);
        float *inplace = malloc(sizeof(float) * (size_t)n);
        for (int i = 0; i < n; i++) pre[i] *= 4, sum[i] = pre[i] + bias[i], inplace[i] = pre[i];
        acm__bias_gelu_avx512(pre, out, bias, n);
        acm__gelu_avx512(ref, sum, n);
        acm__bias_gelu_avx512(inplace, inplace, bias, n); /* out = pre */
        for (int i = 0; i < n; i++) {
            cr_assert_eq(pre[i], sum[i], "n %d: pre[%d] is not pre + bias", n, i);
            cr_assert_eq(out[i], ref[i], "n %d: out[%d] is not GELU(pre + bias)", n, i);
            cr_assert_eq(inplace[i], ref[i], "n %d: in place, element %d", n, i);
        }
        free(pre), free(bias), free(sum), free(out), free(ref), free(inplace);
    }
}

Test(kernels_avx512, softmax_rows) {
    if (!acm__simd_avx512()) cr_skip_test("no AVX-512 F/DQ on this CPU");
    const int lens[] = {1, 4, 15, 16, 17, 31, 197, 198};
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
        const int n = lens[li];
        float *in = randv((size_t)n), *out = malloc(sizeof(float) * (size_t)(n + 16));
        double *ref = malloc(sizeof(double) * (size_t)n), mx = -INFINITY, sum = 0;
        for (int i = 0; i < n; i++) in[i] *= 30, mx = fmax(mx, in[i]);
        for (int i = 0; i < n; i++) sum += ref[i] = exp(in[i] - mx);
        for (int i = 0; i < n; i++) ref[i] /= sum;
        for (int i = 0; i < n + 16; i++) out[i] = -7.0f;
        acm__softmax_row_avx512(out, in, n);
        expect_close(out, ref, (size_t)n, 1e-6, "softmax avx512");
        for (int i = n; i < n + 16; i++) cr_assert_eq(out[i], -7.0f, "n %d: wrote element %d", n, i);
        acm__softmax_row_avx512(in, in, n); /* in place */
        expect_close(in, ref, (size_t)n, 1e-6, "softmax avx512 in place");
        free(in), free(out), free(ref);
    }
    float big[4] = {1000, 1001, 999, -1e30f}, o[4];
    acm__softmax_row_avx512(o, big, 4);
    double e0 = exp(-1.0), e2 = exp(-2.0), s = e0 + 1 + e2, r[4] = {e0 / s, 1 / s, e2 / s, 0};
    expect_close(o, r, 4, 1e-6, "softmax avx512, large values");
}

Test(kernels_avx512, layernorm_rows) {
    if (!acm__simd_avx512()) cr_skip_test("no AVX-512 F/DQ on this CPU");
    const int Cs[] = {1, 5, 8, 16, 37, 768};
    for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
        const int C = Cs[ci];
        float *x = randv((size_t)C), *w = randv((size_t)C), *b = randv((size_t)C);
        float *out = malloc(sizeof(float) * (size_t)(C + 16)), mean, rstd;
        for (int c = 0; c < C; c++) x[c] = x[c] * 3 + 10; /* offset, as the test above */
        for (int c = 0; c < C + 16; c++) out[c] = -7.0f;
        acm__layernorm_row_avx512(out, &mean, &rstd, x, w, b, C, 1e-6f);
        double m = 0, v = 0, *ref = malloc(sizeof(double) * (size_t)C);
        for (int c = 0; c < C; c++) m += x[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= C;
        for (int c = 0; c < C; c++) ref[c] = (x[c] - m) / sqrt(v + 1e-6) * w[c] + b[c];
        cr_expect(fabs(mean - m) < 1e-5 * fabs(m), "C %d: mean", C);
        cr_expect(fabs(rstd - 1 / sqrt(v + 1e-6)) < 1e-5 / sqrt(v + 1e-6), "C %d: rstd", C);
        expect_close(out, ref, (size_t)C, 1e-5, "layernorm avx512");
        for (int c = C; c < C + 16; c++) cr_assert_eq(out[c], -7.0f, "C %d: wrote element %d", C, c);
        free(x), free(w), free(b), free(out), free(ref);
    }
}

/* Whichever path runs, an element's GELU does not depend on where a caller's chunk starts (the pool splits GELU into
 * blocks of 4096 and rows): one call over n equals calls over pieces cut at multiples of 16. */
Test(kernels, gelu_independent_of_the_split) {
    enum { N = 1000 };
    static float x[N], whole[N], parts[N];
    for (int i = 0; i < N; i++) x[i] = -6.0f + 12.0f * (float)i / (N - 1);
    acm__gelu_forward(whole, x, N);
    const int cuts[] = {0, 16, 48, 512, 992, N};
    for (int c = 0; c + 1 < (int)(sizeof cuts / sizeof cuts[0]); c++)
        acm__gelu_forward(parts + cuts[c], x + cuts[c], cuts[c + 1] - cuts[c]);
    cr_assert_eq(memcmp(whole, parts, sizeof whole), 0);
}

/* The SSE path (every CPU without AVX-512 runs it; acm__simd_disable forces it here): the same checks as above, so a
 * machine with AVX-512 still tests the code the others run. Criterion runs each test in its own process: the switch
 * does not leak into other tests. */
Test(kernels, sse_path_gelu_softmax_layernorm) {
    acm__simd_disable(1);
    cr_assert_eq(acm__simd_avx512(), 0);
    enum { N = 24001 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) x[i] = -12.0f + 24.0f * (float)i / (N - 1);
    acm__gelu_forward(y, x, N);
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(y[i] - gelu_ref(x[i])) / fmax(fabs(gelu_ref(x[i])), 1e-3));
    cr_expect_leq(worst, 2e-6, "SSE gelu: worst scaled error %.3g", worst);
    float pre[37], bias[37], out[37], sum[37], ref[37];
    for (int i = 0; i < 37; i++) pre[i] = 3 * frand(), bias[i] = frand(), sum[i] = pre[i] + bias[i];
    acm__bias_gelu_forward(pre, out, bias, 37);
    acm__gelu_forward(ref, sum, 37);
    for (int i = 0; i < 37; i++) cr_assert(pre[i] == sum[i] && out[i] == ref[i], "SSE bias + GELU, element %d", i);
    float in[197], sm[197];
    double e[197], mx = -INFINITY, s = 0;
    for (int i = 0; i < 197; i++) in[i] = 30 * frand(), mx = fmax(mx, in[i]);
    for (int i = 0; i < 197; i++) s += e[i] = exp(in[i] - mx);
    for (int i = 0; i < 197; i++) e[i] /= s;
    acm__softmax_row(sm, in, 197);
    expect_close(sm, e, 197, 1e-6, "SSE softmax");
    enum { C = 37 };
    float *lx = randv(C), *w = randv(C), *b = randv(C), lo[C], mean, rstd;
    for (int c = 0; c < C; c++) lx[c] = lx[c] * 3 + 10;
    acm__layernorm_forward(lo, &mean, &rstd, lx, w, b, 1, C, 1e-6f);
    double m = 0, v = 0, lr[C];
    for (int c = 0; c < C; c++) m += lx[c];
    m /= C;
    for (int c = 0; c < C; c++) v += (lx[c] - m) * (lx[c] - m);
    v /= C;
    for (int c = 0; c < C; c++) lr[c] = (lx[c] - m) / sqrt(v + 1e-6) * w[c] + b[c];
    expect_close(lo, lr, C, 1e-5, "SSE layernorm");
    free(lx), free(w), free(b);
}
