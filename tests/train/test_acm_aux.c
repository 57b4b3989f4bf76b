/*
 * test_acm_aux.c — the phase-3 auxiliary losses (docs/METHOD.md §5): values and gradients with respect to the one-hot
 * choices against a continuous re-statement of the definitions, differentiated by central finite differences.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "train/acm_student.h"

enum { A = 3, B = 4, T = 12, CMAX = 5 };

static acmt_acm_layout L[A];
static double P[A] = {3000, 700, 700};

/* The definitions on a continuous y[a][b][t][c]. */
static void losses(double y[A][B][T][CMAX], double beta, double out[3]) {
    double Ptot = 0, r[B] = {0}, q[B] = {0};
    for (int a = 0; a < A; a++) Ptot += L[a].n * P[a];
    double le = 0;
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            double h[CMAX] = {0};
            for (int t = 0; t < T; t++)
                for (int c = 0; c < L[a].choices; c++) {
                    double k = y[a][b][t][c] * (L[a].kmin + c);
                    r[b] += k * P[a] / (T * Ptot);
                    q[b] += k / L[a].n / ((double)T * A);
                    h[c] += y[a][b][t][c] / T;
                }
            for (int c = 0; c < L[a].choices; c++) le += h[c] * log(h[c]) / log(L[a].n + 1.0) / (B * A);
        }
    double mr = 0;
    for (int b = 0; b < B; b++) mr += r[b] / B;
    double ld = 0;
    for (int i = 0; i < B; i++)
        for (int m = i + 1; m < B; m++) ld += fabs(q[i] - q[m]);
    out[0] = fabs(mr - beta);
    out[1] = le;
    out[2] = -2.0 * ld / (B * (B - 1) / 2.0);
}

Test(acm_aux, values_and_gradients_match_the_definitions) {
    acmt_acm_layout_init(&L[0], "blocks.0.mlp", 8, 8, 4, 2, 1, 4);
    acmt_acm_layout_init(&L[1], "blocks.0.attn.q", 8, 8, 4, 1, 0, 4);
    acmt_acm_layout_init(&L[2], "blocks.1.attn.q", 8, 8, 2, 1, 0, 4);
    static uint8_t kk[A][B * T];
    static float dyb[A][B * T * CMAX];
    static double y[A][B][T][CMAX];
    memset(y, 0, sizeof y);
    /* every choice appears in every (ACM, item), so the entropy is differentiable; items differ in mean k */
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int C = L[a].choices;
                int c = t < C ? t : (t * 7 + b * 3 + a) % C;
                if (t >= C && b >= 2) c = C - 1; /* items 2, 3 lean expensive */
                kk[a][b * T + t] = (uint8_t)(L[a].kmin + c);
                y[a][b][t][c] = 1;
            }
    const uint8_t *k[A] = {kk[0], kk[1], kk[2]};
    float *dy[A] = {dyb[0], dyb[1], dyb[2]};
    const double wb = 0.1, we = 0.05, wd = 0.05, beta = 0.3;
    acmt_aux r = acmt_aux_losses(dy, k, L, P, A, B, T, beta, wb, we, wd);
    double ref[3];
    losses(y, beta, ref);
    cr_expect(fabs(r.budget - ref[0]) < 1e-12, "L_b %.9f vs %.9f", r.budget, ref[0]);
    cr_expect(fabs(r.entropy - ref[1]) < 1e-12, "L_e %.9f vs %.9f", r.entropy, ref[1]);
    cr_expect(fabs(r.diversity - ref[2]) < 1e-12, "L_d %.9f vs %.9f", r.diversity, ref[2]);
    cr_expect(r.realised > beta, "this configuration is over budget (%.3f)", r.realised);
    const double eps = 1e-6;
    double maxd = 0;
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++)
                for (int c = 0; c < L[a].choices; c++) {
                    double keep = y[a][b][t][c], up[3], dn[3];
                    y[a][b][t][c] = keep + eps;
                    losses(y, beta, up);
                    y[a][b][t][c] = keep - eps;
                    losses(y, beta, dn);
                    y[a][b][t][c] = keep;
                    double fd = (wb * (up[0] - dn[0]) + we * (up[1] - dn[1]) + wd * (up[2] - dn[2])) / (2 * eps);
                    double got = dy[a][(b * T + t) * L[a].choices + c];
                    maxd = fmax(maxd, fabs(got - fd));
                    cr_expect(fabs(got - fd) <= 1e-6 + 1e-4 * fabs(fd), "dy[%d][%d][%d][%d] %.8g vs %.8g", a, b, t, c,
                              got, fd);
                }
    cr_log_info("aux losses: max |analytic - finite difference| = %.3g", maxd);
}
