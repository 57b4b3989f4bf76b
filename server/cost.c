/*
 * cost.c — the batch cost model t = a + b·tokens + c·FLOPs (acmd.h, "cost model"): exponentially forgetting least
 * squares over measured batches, with the warm-up batches as a permanent prior, coefficients a, b, c >= 0, and the
 * recent one-step-ahead prediction errors. Pure arithmetic on the caller's struct; the I/O thread owns it.
 */
#include <math.h>
#include <string.h>
#include <stdlib.h>

#include "acmd.h"

#define COST__RIDGE 1e-9 /* relative to the diagonal: keeps an unexcited direction solvable, changes nothing else */
#define COST__PRIOR_WEIGHT 0.05 /* a warm-up batch counts 1/20 of a measured one: it fills what is unexcited, little more */

void acmd_cost_init(acmd_cost *c, double tokens_per_item, double flops_per_item, double forget) {
    memset(c, 0, sizeof *c);
    c->forget = forget;
    c->u_tok = tokens_per_item > 0 ? tokens_per_item : 1;
    c->u_flop = flops_per_item > 0 ? flops_per_item : 1;
}

static void cost__x(const acmd_cost *c, double tokens, double flops, double x[3]) {
    x[0] = 1, x[1] = tokens / c->u_tok, x[2] = flops / c->u_flop;
}

/* Solves the normal equations restricted to the coefficients in `use` (others 0); -1 if singular. */
static int cost__solve(double A[3][3], const double b[3], const int use[3], double th[3]) {
    int idx[3], n = 0;
    for (int i = 0; i < 3; i++)
        if (use[i]) idx[n++] = i;
    double M[3][4];
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) M[i][j] = A[idx[i]][idx[j]];
        M[i][n] = b[idx[i]];
    }
    for (int k = 0; k < n; k++) { /* Gauss-Jordan with partial pivoting */
        int p = k;
        for (int i = k + 1; i < n; i++)
            if (fabs(M[i][k]) > fabs(M[p][k])) p = i;
        if (!(fabs(M[p][k]) > 0)) return -1;
        for (int j = 0; j <= n; j++) {
            double t = M[k][j];
            M[k][j] = M[p][j], M[p][j] = t;
        }
        for (int i = 0; i < n; i++) {
            if (i == k) continue;
            const double f = M[i][k] / M[k][k];
            for (int j = k; j <= n; j++) M[i][j] -= f * M[k][j];
        }
    }
    th[0] = th[1] = th[2] = 0;
    for (int i = 0; i < n; i++) th[idx[i]] = M[i][n] / M[i][i];
    return 0;
}

/* Non-negative least squares over three coefficients, exactly: every subset of free coefficients is solved (the others
 * held at 0), and the feasible solution (all >= 0) with the least squared error wins. */
static void cost__fit(acmd_cost *c) {
    double A[3][3], b[3];
    for (int i = 0; i < 3; i++) {
        b[i] = c->r[i] + COST__PRIOR_WEIGHT * c->q[i];
        for (int j = 0; j < 3; j++) A[i][j] = c->S[i][j] + COST__PRIOR_WEIGHT * c->P[i][j];
    }
    for (int i = 0; i < 3; i++) A[i][i] += COST__RIDGE * (A[i][i] > 0 ? A[i][i] : 1);
    double best = INFINITY, th_best[3] = {0, 0, 0};
    for (int set = 1; set < 8; set++) {
        const int use[3] = {set & 1, (set >> 1) & 1, (set >> 2) & 1};
        double th[3];
        if (cost__solve(A, b, use, th) || th[0] < 0 || th[1] < 0 || th[2] < 0) continue;
        double f = 0; /* th' A th - 2 th' b: the squared error up to a constant */
        for (int i = 0; i < 3; i++) {
            f -= 2 * th[i] * b[i];
            for (int j = 0; j < 3; j++) f += th[i] * A[i][j] * th[j];
        }
        if (f < best) best = f, memcpy(th_best, th, sizeof th);
    }
    if (isfinite(best)) memcpy(c->theta, th_best, sizeof th_best);
}

double acmd_cost_predict(const acmd_cost *c, double tokens, double flops) {
    double x[3];
    cost__x(c, tokens, flops, x);
    const double t = c->theta[0] * x[0] + c->theta[1] * x[1] + c->theta[2] * x[2];
    return t > 0 ? t : 0;
}

void acmd_cost_add(acmd_cost *c, double tokens, double flops, double seconds, int prior) {
    if (!(seconds >= 0) || !(tokens >= 0) || !(flops >= 0)) return;
    double x[3];
    cost__x(c, tokens, flops, x);
    if (prior) {
        for (int i = 0; i < 3; i++) {
            c->q[i] += x[i] * seconds;
            for (int j = 0; j < 3; j++) c->P[i][j] += x[i] * x[j];
        }
        c->prior_samples++;
    } else {
        if (c->samples + c->prior_samples > 0) { /* one-step-ahead error, before the batch is learnt */
            const double e = fabs(seconds - acmd_cost_predict(c, tokens, flops));
            c->err_abs[c->ring_i] = e;
            c->err_rel[c->ring_i] = seconds > 0 ? e / seconds : 0;
            c->ring_i = (c->ring_i + 1) % ACMD_COST_RING;
            if (c->ring_n < ACMD_COST_RING) c->ring_n++;
        }
        for (int i = 0; i < 3; i++) {
            c->r[i] = c->forget * c->r[i] + x[i] * seconds;
            for (int j = 0; j < 3; j++) c->S[i][j] = c->forget * c->S[i][j] + x[i] * x[j];
        }
        c->samples++;
        c->last[0] = tokens, c->last[1] = flops, c->last[2] = seconds;
    }
    cost__fit(c);
}

void acmd_cost_coef(const acmd_cost *c, double *a, double *b_tok, double *c_flop) {
    *a = c->theta[0];
    *b_tok = c->theta[1] / c->u_tok;
    *c_flop = c->theta[2] / c->u_flop;
}

int acmd_cost_error(const acmd_cost *c, double *mean_abs, double *mean_rel, double *max_abs) {
    double sa = 0, sr = 0, mx = 0;
    for (int i = 0; i < c->ring_n; i++) {
        sa += c->err_abs[i], sr += c->err_rel[i];
        if (c->err_abs[i] > mx) mx = c->err_abs[i];
    }
    *mean_abs = c->ring_n ? sa / c->ring_n : 0;
    *mean_rel = c->ring_n ? sr / c->ring_n : 0;
    *max_abs = mx;
    return c->ring_n;
}

static int cost__cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double acmd_cost_error_quantile(const acmd_cost *c, double q) {
    if (c->ring_n == 0) return 0;
    double v[ACMD_COST_RING];
    memcpy(v, c->err_abs, sizeof(double) * (size_t)c->ring_n);
    qsort(v, (size_t)c->ring_n, sizeof *v, cost__cmp);
    int i = (int)ceil(q * c->ring_n) - 1;
    return v[i < 0 ? 0 : i >= c->ring_n ? c->ring_n - 1 : i];
}
