/*
 * cost.c — the batch cost model t = a + b·tokens + c·FLOPs (acmd.h, "cost model"): exponentially forgetting least
 * squares over measured batches, with the warm-up batches as a permanent prior, coefficients a, b, c >= 0, and the
 * recent one-step-ahead prediction errors; and the error model dispatch uses: a high quantile of each request's whole
 * path after the decision, from a histogram that forgets (acmd_hist), with a dead band of one bucket. Pure
 * arithmetic on the caller's struct; the I/O thread owns it.
 *
 * Why this and not the 90th percentile of a ring of the last 64 batch-time errors (used before): that margin did not
 * see the time after the engine (hand-over, decoding, bodies, the way back, sending), so deadline requests finished
 * late by about that much; and a ring's quantile jumps when one sample enters or leaves it: where a batch's time
 * depends little on beta, a jump of a fraction of a millisecond moves the decision across the whole range, and
 * identical requests got beta 0.1 and 1 alternately. A forgetting histogram moves smoothly (a sample fades out), its
 * quantile is read between bucket edges, and the decision's dead band (budget.c) is one bucket wide, so what is left
 * of the noise cannot make the decision alternate. A real change of speed is the cost model's to follow (forgetting
 * least squares); the margin only covers the noise around it.
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
    acmd_hist_init(&c->path, ACMD_COST_PATH_DECAY);
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

/* ---- the path's error model ---------------------------------------------------------------------------------------- */

#define COST__BAND (ACMD_HIST_RATIO - 1) /* the dead band: one bucket of the histogram, relative to the margin */

void acmd_hist_init(acmd_hist *h, double decay) {
    memset(h, 0, sizeof *h);
    h->decay = decay;
}

void acmd_hist_add(acmd_hist *h, double x) {
    if (x != x) return; /* NaN */
    int b = 0;
    if (x > ACMD_HIST_MIN) {
        const double k = floor(log(x / ACMD_HIST_MIN) / log(ACMD_HIST_RATIO)) + 1;
        b = k >= ACMD_HIST_N - 1 ? ACMD_HIST_N - 1 : (int)k;
    }
    for (int i = 0; i < ACMD_HIST_N; i++) h->w[i] *= h->decay;
    h->w[b] += 1;
    h->total = h->total * h->decay + 1;
    h->n++;
}

/* Bucket b holds (edge(b - 1), edge(b)]; bucket 0 everything up to ACMD_HIST_MIN. */
static double hist__edge(int b) { return ACMD_HIST_MIN * pow(ACMD_HIST_RATIO, b); }

double acmd_hist_quantile(const acmd_hist *h, double q) {
    int top = ACMD_HIST_N - 1; /* the highest bucket holding anything: the answer past the sum's rounding */
    while (top > 0 && !(h->w[top] > 0)) top--;
    if (!(h->total > 0)) return 0;
    const double want = q * h->total;
    double cum = 0;
    for (int b = 0; b < top; b++) {
        if (h->w[b] > 0 && cum + h->w[b] >= want) {
            if (b == 0) return ACMD_HIST_MIN;
            const double lo = hist__edge(b - 1), hi = hist__edge(b), f = (want - cum) / h->w[b];
            return lo + (hi - lo) * (f < 0 ? 0 : f > 1 ? 1 : f);
        }
        cum += h->w[b];
    }
    if (top == 0) return ACMD_HIST_MIN;
    const double lo = hist__edge(top - 1), hi = hist__edge(top), f = h->w[top] > 0 ? (want - cum) / h->w[top] : 1;
    return lo + (hi - lo) * (f < 0 ? 0 : f > 1 ? 1 : f);
}

void acmd_cost_path_add(acmd_cost *c, double residual_s) { acmd_hist_add(&c->path, residual_s); }

double acmd_cost_margin(const acmd_cost *c) {
    if (c->path.n == 0) return acmd_cost_error_quantile(c, 0.9);
    /* the first few requests: the largest residual yet (a high quantile needs more than a few samples) */
    if (c->path.n < ACMD_COST_PATH_MIN) return acmd_hist_quantile(&c->path, 1.0);
    /* the 99th percentile of the body of the distribution, from its quartiles as for a normal one (z(0.99) = 2.326 =
     * 3.45 x z(0.75)): the quartiles move little per sample and rare hiccups (under a quarter of the requests) do not
     * move them at all, where a 0.99 quantile read directly jumps whenever hiccups of about 1 % come and go; but
     * never below the directly read 95th percentile, which covers a body with a heavier tail than a normal one */
    const double q50 = acmd_hist_quantile(&c->path, 0.5), q75 = acmd_hist_quantile(&c->path, 0.75);
    const double body = q50 + 3.45 * (q75 - q50), q95 = acmd_hist_quantile(&c->path, 0.95);
    const double m = body > q95 ? body : q95;
    return m > 0 ? m : 0;
}

double acmd_cost_band(const acmd_cost *c) { return COST__BAND * acmd_cost_margin(c); }
