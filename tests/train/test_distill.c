/*
 * test_distill.c — train/distill.c: the logit-distillation term against its definition (KL computed here in double,
 * independently), its gradient against central finite differences (tolerance 1e-6 + 1e-3 relative: the loss is
 * evaluated in double from float logits, h = 1e-3), zero loss and gradient when student and teacher agree, and the
 * T² scaling.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "train/distill.h"

enum { B = 3, K = 5 };

static double kl_reference(const float *zs, const float *zt, double T, double w) {
    double L = 0;
    for (int b = 0; b < B; b++) {
        double ss = 0, st = 0;
        for (int k = 0; k < K; k++) ss += exp(zs[b * K + k] / T), st += exp(zt[b * K + k] / T);
        for (int k = 0; k < K; k++) {
            double ps = exp(zs[b * K + k] / T) / ss, pt = exp(zt[b * K + k] / T) / st;
            L += pt * log(pt / ps);
        }
    }
    return w * T * T * L / B;
}

static void fill(float *zs, float *zt) {
    for (int i = 0; i < B * K; i++) {
        zs[i] = (float)sin(1.7 * i) * 2.0f;
        zt[i] = (float)cos(0.9 * i) * 3.0f;
    }
}

Test(distill, loss_matches_the_definition_and_gradient_the_differences) {
    float zs[B * K], zt[B * K], g[B * K];
    fill(zs, zt);
    const float Ts[] = {1.0f, 2.0f, 4.0f}, w = 0.7f;
    for (int t = 0; t < 3; t++) {
        memset(g, 0, sizeof g);
        double L = acmt_distill_loss(g, zs, zt, B, K, Ts[t], w);
        double ref = kl_reference(zs, zt, Ts[t], w);
        cr_assert(fabs(L - ref) < 1e-9 * (1 + fabs(ref)), "T %g: loss %.12g, definition %.12g", Ts[t], L, ref);
        cr_assert(L > 0);
        const float h = 1e-3f;
        for (int i = 0; i < B * K; i++) {
            float keep = zs[i];
            zs[i] = keep + h;
            double lp = acmt_distill_loss(NULL, zs, zt, B, K, Ts[t], w);
            zs[i] = keep - h;
            double lm = acmt_distill_loss(NULL, zs, zt, B, K, Ts[t], w);
            zs[i] = keep;
            double num = (lp - lm) / ((double)(keep + h) - (double)(keep - h));
            cr_assert(fabs(num - g[i]) <= 1e-6 + 1e-3 * fabs(num), "T %g logit %d: analytic %.8g, numeric %.8g",
                      Ts[t], i, g[i], num);
        }
    }
}

Test(distill, agreeing_student_costs_nothing) {
    float zs[B * K], zt[B * K], g[B * K] = {0};
    fill(zs, zt);
    for (int i = 0; i < B * K; i++) zt[i] = zs[i] + 5.0f; /* a shift of every logit: the same distribution */
    double L = acmt_distill_loss(g, zs, zt, B, K, 2.0f, 1.0f);
    cr_assert(fabs(L) < 1e-12, "loss %g", L);
    for (int i = 0; i < B * K; i++) cr_assert(fabsf(g[i]) < 1e-7f, "gradient[%d] = %g", i, g[i]);
}

Test(distill, gradient_adds_to_what_is_there) {
    float zs[B * K], zt[B * K], g1[B * K] = {0}, g2[B * K];
    fill(zs, zt);
    acmt_distill_loss(g1, zs, zt, B, K, 1.0f, 1.0f);
    for (int i = 0; i < B * K; i++) g2[i] = 1.0f;
    acmt_distill_loss(g2, zs, zt, B, K, 1.0f, 1.0f);
    for (int i = 0; i < B * K; i++) cr_assert(fabsf(g2[i] - 1.0f - g1[i]) < 1e-6f);
}
