/*
 * test_cost.c — server/cost.c: the batch cost model recovers known coefficients, follows a change through its
 * forgetting factor, keeps b and c non-negative, and reports its one-step prediction errors; and the dispatch
 * decision its error model drives stays put for identical requests under noise yet follows a real change of speed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "server/acmd.h"

static double truth(double a, double b, double c, double tok, double fl) { return a + b * tok + c * fl; }

Test(cost, recovers_coefficients_from_varied_batches) {
    acmd_cost m;
    acmd_cost_init(&m, 50, 3e6, 0.97);
    const double a = 2e-4, b = 1e-6, c = 4e-9; /* seconds, per token, per FLOP */
    for (int i = 0; i < 200; i++) {
        const double items = 1 + i % 8, beta = 0.1 + 0.9 * ((i * 7) % 10) / 9.0;
        const double tok = items * 50, fl = items * (1e6 + beta * 2e6);
        acmd_cost_add(&m, tok, fl, truth(a, b, c, tok, fl), i < 4);
    }
    double ga, gb, gc;
    acmd_cost_coef(&m, &ga, &gb, &gc);
    cr_expect(fabs(ga - a) < 1e-9 && fabs(gb - b) < 1e-11 && fabs(gc - c) < 1e-14, "a %g b %g c %g", ga, gb, gc);
    cr_expect(fabs(acmd_cost_predict(&m, 400, 2.4e7) - truth(a, b, c, 400, 2.4e7)) < 1e-9);
    double mean_abs, mean_rel, max_abs;
    cr_expect_eq(acmd_cost_error(&m, &mean_abs, &mean_rel, &max_abs), ACMD_COST_RING);
    cr_expect_lt(max_abs, 1e-9, "exact data, error %g", max_abs);
}

Test(cost, forgetting_follows_a_slowdown_and_the_prior_keeps_it_solvable) {
    acmd_cost m;
    acmd_cost_init(&m, 50, 3e6, 0.9);
    /* prior: four varied warm-up batches of the fast machine */
    const double fast[3] = {1e-4, 1e-6, 2e-9}, slow[3] = {1e-4, 1e-6, 6e-9};
    const double pt[4][2] = {{50, 1.2e6}, {400, 9.6e6}, {50, 3e6}, {400, 2.4e7}};
    for (int k = 0; k < 4; k++) acmd_cost_add(&m, pt[k][0], pt[k][1], truth(fast[0], fast[1], fast[2], pt[k][0], pt[k][1]), 1);
    /* then only one kind of batch, on a machine three times slower per FLOP */
    for (int i = 0; i < 300; i++) acmd_cost_add(&m, 50, 3e6, truth(slow[0], slow[1], slow[2], 50, 3e6), 0);
    const double want = truth(slow[0], slow[1], slow[2], 50, 3e6), got = acmd_cost_predict(&m, 50, 3e6);
    cr_expect_lt(fabs(got - want) / want, 0.02, "after the slowdown: predicted %g, measured %g", got, want);
    double a, b, c;
    acmd_cost_coef(&m, &a, &b, &c);
    cr_expect(isfinite(a) && isfinite(b) && isfinite(c) && b >= 0 && c >= 0, "a %g b %g c %g", a, b, c);
    double mean_abs, mean_rel, max_abs;
    cr_expect_gt(acmd_cost_error(&m, &mean_abs, &mean_rel, &max_abs), 0);
    cr_expect_lt(mean_rel, 0.05, "recent relative error %g", mean_rel);
}

Test(cost, slopes_stay_non_negative) {
    acmd_cost m;
    acmd_cost_init(&m, 50, 3e6, 0.97);
    /* data where more FLOPs took less time (noise): c must not go negative */
    acmd_cost_add(&m, 50, 1e6, 0.010, 0);
    acmd_cost_add(&m, 50, 3e6, 0.008, 0);
    acmd_cost_add(&m, 400, 8e6, 0.050, 0);
    acmd_cost_add(&m, 400, 2.4e7, 0.045, 0);
    double a, b, c;
    acmd_cost_coef(&m, &a, &b, &c);
    cr_expect(b >= 0 && c >= 0, "b %g c %g", b, c);
    cr_expect_geq(acmd_cost_predict(&m, 0, 0), 0);
}

/* The dispatch margin: the 90th percentile of the last 64 absolute errors, so that one hiccup among 64 batches does
 * not set it, and a steady error does. */
Test(cost, error_quantile_of_the_recent_batches) {
    acmd_cost m;
    acmd_cost_init(&m, 50, 3e6, 1.0);
    cr_expect_eq(acmd_cost_error_quantile(&m, 0.9), 0, "no batch yet: no margin");
    for (int k = 0; k < 4; k++) acmd_cost_add(&m, 50.0 * (k + 1), 3e6 * (k % 2 + 1), 0.001 * (k + 1), 1);
    /* a model that the measurements match exactly, then one hiccup of 50 ms among 64 batches */
    const double t = acmd_cost_predict(&m, 50, 3e6);
    for (int i = 0; i < 64; i++) acmd_cost_add(&m, 50, 3e6, i == 10 ? t + 0.050 : t, 0);
    const double q90 = acmd_cost_error_quantile(&m, 0.9), q100 = acmd_cost_error_quantile(&m, 1.0);
    cr_expect_lt(q90, 0.005, "one hiccup moved the 90th percentile to %g s", q90);
    cr_expect_gt(q100, 0.040, "the maximum must see the hiccup (%g s)", q100);
    /* every batch 3 ms slower than predicted: the margin follows */
    for (int i = 0; i < 64; i++) acmd_cost_add(&m, 50, 3e6, acmd_cost_predict(&m, 50, 3e6) + 0.003, 0);
    cr_expect_float_eq(acmd_cost_error_quantile(&m, 0.9), 0.003, 1e-4);
}

/* ---- the dispatch decision under noise (decisions, not clocks) --------------------------------------------------------
 * One deadline request at a time, as a client with a fixed deadline and no other load sends them. The machine is
 * simulated: a batch of one item at budget beta takes t(beta) = 2 ms + 3 ms x beta on the engine (the shipped model's
 * shape: beta 0.25 is 1.8x faster than beta 1) times 1 +- 3 % noise, with a 2 ms hiccup in one batch of 25; the rest
 * of the path after the decision (hand-over, decoding, bodies, the way back, sending) takes 0.6 ms plus noise and its
 * own hiccups. The noise is a fixed sequence (a seeded generator), so every run sees the same observations. The cost
 * model learns the engine times, its error model the whole path; the decision is the server's (budget.c). */

typedef struct {
    uint64_t x;
} sim_rng;

static double sim_uniform(sim_rng *r) { /* xorshift64*: a fixed, recorded sequence */
    r->x ^= r->x >> 12, r->x ^= r->x << 25, r->x ^= r->x >> 27;
    return (double)((r->x * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static double sim_noise(sim_rng *r) { return sim_uniform(r) + sim_uniform(r) + sim_uniform(r) - 1.5; } /* ~N(0, 0.5) */

typedef struct {
    acmd_model m;
    acmd_req r;
    double slow;   /* the machine's speed factor (1: as at warm-up) */
    sim_rng rng;
    int late;
} sim;

static double sim_engine(const sim *s, double beta) { return s->slow * (2e-3 + 3e-3 * beta); }

static void sim_init(sim *s) {
    memset(s, 0, sizeof *s);
    s->slow = 1, s->rng.x = 0x9E3779B97F4A7C15ull;
    s->m.T = 16, s->m.max_batch = 8, s->m.flops_fixed = 1e6, s->m.flops_learner = 3e6, s->m.beta_prev = -1;
    acmd_cost_init(&s->m.cost, 16, 4e6, 0.97);
    /* the warm-up prior, as workers.c measures it: 1 and 2 items at beta 1 and at the floor */
    const double pts[4][2] = {{1, 1}, {1, 0.25}, {2, 1}, {2, 0.25}};
    for (int k = 0; k < 4; k++)
        acmd_cost_add(&s->m.cost, pts[k][0] * 16, pts[k][0] * (1e6 + pts[k][1] * 3e6), pts[k][0] * sim_engine(s, pts[k][1]), 1);
    s->r.sla.items = 1, s->r.sla.has_deadline = 1;
    s->r.sla.budget.min = 0.1, s->r.sla.budget.max = 1;
}

/* One request with a deadline of deadline_s, decided admit_s after its arrival; returns the beta it ran at. */
static double sim_request(sim *s, double deadline_s, double admit_s) {
    const double slack = deadline_s - admit_s - acmd_cost_margin(&s->m.cost);
    const double c = acmd_budget_decide_held(&s->m, &s->r, slack, acmd_cost_band(&s->m.cost), &s->m.beta_prev);
    const double beta = acmd_budget_clamp(&s->r, c);
    const double pred = acmd_budget_batch_time(&s->m, &s->r, c);
    const int hiccup = sim_uniform(&s->rng) < 0.003, hiccup2 = sim_uniform(&s->rng) < 0.003;
    const double engine = sim_engine(s, beta) * (1 + 0.06 * sim_noise(&s->rng)) + (hiccup ? 2e-3 : 0);
    const double rest = 0.6e-3 + 0.1e-3 * fabs(sim_noise(&s->rng)) + (hiccup2 ? 1e-3 : 0);
    acmd_cost_add(&s->m.cost, 16, 1e6 + beta * 3e6, engine, 0);
    acmd_cost_path_add(&s->m.cost, engine + rest - pred);
    s->late += admit_s + engine + rest > deadline_s;
    return beta;
}

Test(cost, a_fixed_deadline_gets_the_same_beta_request_after_request) {
    sim s;
    sim_init(&s);
    double beta[300];
    for (int i = 0; i < 300; i++) beta[i] = sim_request(&s, 5.5e-3, 0.1e-3);
    /* once the error model has its first samples (its histogram holds about 30 requests), every decision within +-0.05
     * of the median */
    double sorted[270];
    memcpy(sorted, beta + 30, sizeof sorted);
    for (int i = 1; i < 270; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            const double t = sorted[j];
            sorted[j] = sorted[j - 1], sorted[j - 1] = t;
        }
    const double med = sorted[135];
    cr_expect(med > 0.3 && med < 1, "the deadline leaves room for beta %g", med);
    for (int i = 30; i < 300; i++) cr_assert_leq(fabs(beta[i] - med), 0.05, "request %d: beta %g, median %g", i, beta[i], med);
    /* and the deadline is kept: the misses are the first requests' (an error model still empty) and the hiccups */
    cr_expect_leq(s.late, 300 * 6 / 100, "%d of 300 late", s.late);
}

Test(cost, the_decision_follows_a_real_change_of_speed) {
    sim s;
    sim_init(&s);
    double before = 0, after = 0;
    for (int i = 0; i < 200; i++) {
        const double b = sim_request(&s, 5.5e-3, 0.1e-3);
        if (i >= 150) before += b / 50;
    }
    s.slow = 1.3, s.late = 0; /* the machine becomes 30 % slower (another tenant, a lower clock) */
    for (int i = 0; i < 200; i++) {
        const double b = sim_request(&s, 5.5e-3, 0.1e-3);
        if (i >= 150) after += b / 50;
    }
    cr_expect_lt(after, before - 0.2, "beta before %g, after the slowdown %g", before, after);
    cr_expect_leq(s.late, 200 * 10 / 100, "%d of 200 late after the slowdown", s.late);
    /* and back: speed restored, the budget comes back up */
    s.slow = 1;
    double back = 0;
    for (int i = 0; i < 200; i++) {
        const double b = sim_request(&s, 5.5e-3, 0.1e-3);
        if (i >= 150) back += b / 50;
    }
    cr_expect_gt(back, before - 0.05, "beta before %g, back at full speed %g", before, back);
}

/* The forgetting histogram behind the margin: quantiles within a bucket (10 %) of the exact ones, negative values in
 * the first bucket, and the past fading out. */
Test(cost, forgetting_histogram_quantiles) {
    acmd_hist h;
    acmd_hist_init(&h, 0.999);
    cr_expect_eq(acmd_hist_quantile(&h, 0.5), 0, "empty: 0");
    for (int i = 1; i <= 1000; i++) acmd_hist_add(&h, i * 1e-6); /* 1 us .. 1 ms, uniform */
    const double qs[] = {0.5, 0.75, 0.95, 0.99};
    for (size_t k = 0; k < sizeof qs / sizeof *qs; k++) {
        /* the exact quantile of what the histogram holds, each value weighted as it decayed */
        double w[1000], total = 0, cum = 0, exact = 0;
        for (int i = 0; i < 1000; i++) w[i] = pow(0.999, 999 - i), total += w[i];
        for (int i = 0; i < 1000 && !exact; i++)
            if ((cum += w[i]) >= qs[k] * total) exact = (i + 1) * 1e-6;
        const double got = acmd_hist_quantile(&h, qs[k]);
        cr_expect(fabs(got - exact) <= 0.1 * exact, "q%g: %g, exact %g", qs[k], got, exact);
    }
    acmd_hist_add(&h, -1e-3); /* faster than predicted: counts at the bottom */
    cr_expect_leq(acmd_hist_quantile(&h, 0.0001), ACMD_HIST_MIN);
    for (int i = 0; i < 5000; i++) acmd_hist_add(&h, 5e-3); /* the past fades: 0.999^5000 < 1 % */
    cr_expect(fabs(acmd_hist_quantile(&h, 0.5) - 5e-3) < 0.5e-3, "%g", acmd_hist_quantile(&h, 0.5));
    cr_expect(fabs(acmd_hist_quantile(&h, 1.0) - 5e-3) < 0.5e-3, "the top: %g", acmd_hist_quantile(&h, 1.0));
}
