/*
 * test_cost.c — server/cost.c: the batch cost model recovers known coefficients, follows a change through its
 * forgetting factor, keeps b and c non-negative, and reports its one-step prediction errors.
 */
#include <criterion/criterion.h>
#include <math.h>

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
