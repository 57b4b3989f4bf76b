/*
 * test_kernels_speech.c — the speech encoder's kernels (engine/cpu/kernels_speech.c) against double-precision loops:
 * rotary positions (a rotation: norms kept; the score of two rotated vectors depends only on their distance, which is
 * what lets a chunk count positions from its first key), attention over a window of keys (1e-5), the column
 * normalisation and the strided row copy.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "kernels.h"

static double urand(unsigned *s) { return (double)(rand_r(s) % 20001 - 10000) / 10000.0; }

/* cos/sin tables [P, hd/2] for base b */
static void tables(float *c, float *s, int P, int hd, double base) {
    for (int p = 0; p < P; p++)
        for (int j = 0; j < hd / 2; j++) {
            double a = p * pow(base, -2.0 * j / hd);
            c[p * (hd / 2) + j] = (float)cos(a);
            s[p * (hd / 2) + j] = (float)sin(a);
        }
}

Test(kernels_speech, rope_is_relative) {
    enum { H = 2, hd = 8, D = H * hd, P = 64 };
    static float c[P * hd / 2], s[P * hd / 2];
    tables(c, s, P, hd, 10000.0);
    unsigned seed = 3;
    float q[D], k[D];
    for (int i = 0; i < D; i++) q[i] = (float)urand(&seed), k[i] = (float)urand(&seed);
    double ref = -1;
    for (int shift = 0; shift < 40; shift += 7) {
        float qa[D], ka[D];
        memcpy(qa, q, sizeof q);
        memcpy(ka, k, sizeof k);
        acm__rope_forward(qa, D, 1, shift + 9, H, hd, c, s); /* query 9 positions after the key */
        acm__rope_forward(ka, D, 1, shift, H, hd, c, s);
        double nq = 0, n0 = 0, dot = 0;
        for (int i = 0; i < hd; i++) {
            nq += (double)qa[i] * qa[i];
            n0 += (double)q[i] * q[i];
            dot += (double)qa[i] * ka[i];
        }
        cr_expect(fabs(nq - n0) < 1e-5 * n0, "rotation changed the norm");
        if (ref < -0.5) ref = dot;
        cr_expect(fabs(dot - ref) < 1e-5, "score at shift %d: %.7f, at shift 0: %.7f", shift, dot, ref);
    }
    /* position 0 is the identity; pairs are (j, j + hd/2) */
    float z[D];
    memcpy(z, q, sizeof z);
    acm__rope_forward(z, D, 1, 0, H, hd, c, s);
    cr_expect_eq(memcmp(z, q, sizeof z), 0);
    memcpy(z, q, sizeof z);
    acm__rope_forward(z, D, 1, 1, H, hd, c, s);
    cr_expect_float_eq(z[0], q[0] * cosf(1.0f) - q[hd / 2] * sinf(1.0f), 1e-6);
    cr_expect_float_eq(z[hd / 2], q[hd / 2] * cosf(1.0f) + q[0] * sinf(1.0f), 1e-6);
}

Test(kernels_speech, attention_window) {
    enum { H = 3, hd = 4, D = H * hd, Tq = 5, Tk = 11, ld = 2 * D };
    unsigned seed = 9;
    static float q[Tq * D], kv[Tk * ld], out[Tq * D], sc[Tq * Tk];
    for (int i = 0; i < Tq * D; i++) q[i] = (float)(2 * urand(&seed));
    for (int i = 0; i < Tk * ld; i++) kv[i] = (float)(2 * urand(&seed));
    acm__attention_window_forward(out, D, sc, q, D, kv, ld, kv + D, ld, Tq, Tk, D, H);
    double maxd = 0;
    for (int h = 0; h < H; h++)
        for (int t = 0; t < Tq; t++) {
            double s[Tk], mx = -1e300, z = 0;
            for (int j = 0; j < Tk; j++) {
                s[j] = 0;
                for (int d = 0; d < hd; d++) s[j] += (double)q[t * D + h * hd + d] * kv[j * ld + h * hd + d];
                s[j] /= sqrt((double)hd);
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < Tk; j++) z += (s[j] = exp(s[j] - mx));
            for (int d = 0; d < hd; d++) {
                double o = 0;
                for (int j = 0; j < Tk; j++) o += s[j] / z * kv[j * ld + D + h * hd + d];
                maxd = fmax(maxd, fabs(o - out[t * D + h * hd + d]));
            }
        }
    cr_expect_leq(maxd, 1e-5, "max |Δ| %.3g", maxd);
}

Test(kernels_speech, normalise_and_copy) {
    float x[6] = {1, 2, 3, 4, 5, 6}, sub[3] = {1, 0, -1}, div[3] = {2, 4, 0.5f};
    acm__normalise_cols(x, 2, 3, sub, div);
    const float want[6] = {0, 0.5f, 8, 1.5f, 1.25f, 14};
    for (int i = 0; i < 6; i++) cr_expect_float_eq(x[i], want[i], 1e-6);
    float src[3 * 5], dst[3 * 2] = {0};
    for (int i = 0; i < 15; i++) src[i] = (float)i;
    acm__copy_rows(dst, 2, src + 1, 5, 3, 2); /* columns 1..2 of three rows of five */
    const float w2[6] = {1, 2, 6, 7, 11, 12};
    cr_expect_eq(memcmp(dst, w2, sizeof dst), 0);
}
