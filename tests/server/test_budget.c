/*
 * test_budget.c — server/budget.c: the applied budget (one place), FLOPs at a beta, a batch's predicted time with its
 * deadline requests clamped to their own ranges, and the common beta dispatch chooses for a slack. Pure arithmetic on
 * a model whose cost coefficients are set by hand: decisions, not clocks.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "server/acmd.h"

/* A model of T = 16 tokens, 1 MFLOP outside the learners and 3 MFLOP of learners per item, and a batch time of
 * t = 1 ms + 1 ms per dense item of FLOPs (4 MFLOP). */
static acmd_model model(void) {
    acmd_model m;
    memset(&m, 0, sizeof m);
    m.T = 16, m.max_batch = 8;
    m.flops_fixed = 1e6, m.flops_learner = 3e6;
    acmd_cost_init(&m.cost, 16, 4e6, 0.97);
    m.cost.theta[0] = 1e-3, m.cost.theta[1] = 0, m.cost.theta[2] = 1e-3;
    return m;
}

static acmd_req deadline_req(int64_t items, double lo, double hi) {
    acmd_req r;
    memset(&r, 0, sizeof r);
    r.sla.items = items, r.sla.has_deadline = 1;
    r.sla.budget.min = lo, r.sla.budget.max = hi;
    r.sla.policy = acm_policy_default();
    r.sla.policy.kind = ACM_POLICY_CAP, r.sla.policy.beta = (float)hi;
    return r;
}

Test(budget, applied_is_the_policy_beta_and_1_under_argmax) {
    acmd_req r;
    memset(&r, 0, sizeof r);
    r.sla.policy = acm_policy_default(); /* argmax: the gates alone decide, reported as 1 */
    r.sla.policy.beta = 0.3f;
    cr_expect_eq(acmd_budget_applied(&r), 1.0);
    r.sla.policy.kind = ACM_POLICY_CAP;
    cr_expect_eq(acmd_budget_applied(&r), (double)0.3f);
    r.sla.policy.kind = ACM_POLICY_MEAN, r.sla.policy.beta = 0.7f;
    cr_expect_eq(acmd_budget_applied(&r), (double)0.7f);
}

Test(budget, flops_and_least_cost) {
    const acmd_model m = model();
    acmd_req d = deadline_req(2, 0.25, 1);
    cr_expect_float_eq(acmd_budget_flops(&m, &d, 0.5), 2 * (1e6 + 0.5 * 3e6), 1e-3);
    cr_expect_float_eq(acmd_budget_min_flops(&m, &d), 2 * (1e6 + 0.25 * 3e6), 1e-3, "a deadline request: its floor");
    acmd_req a;
    memset(&a, 0, sizeof a);
    a.sla.items = 1, a.sla.policy = acm_policy_default(); /* argmax counts as full compute */
    cr_expect_float_eq(acmd_budget_min_flops(&m, &a), 4e6, 1e-3);
    a.sla.policy.kind = ACM_POLICY_CAP, a.sla.policy.beta = 0.5f;
    cr_expect_float_eq(acmd_budget_min_flops(&m, &a), 1e6 + 0.5 * 3e6, 1e-3);
}

Test(budget, batch_time_clamps_each_request_to_its_range) {
    const acmd_model m = model();
    acmd_req a = deadline_req(1, 0.5, 1), b = deadline_req(1, 0.1, 0.2);
    a.next = &b;
    /* c = 0.3: a at 0.5 (its floor), b at 0.2 (its ceiling) */
    const double flops = (1e6 + 0.5 * 3e6) + (1e6 + 0.2 * 3e6);
    cr_expect_float_eq(acmd_budget_batch_time(&m, &a, 0.3), 1e-3 + 1e-3 * flops / 4e6, 1e-12);
    cr_expect_eq(acmd_budget_clamp(&a, 0.3), 0.5);
    cr_expect_eq(acmd_budget_clamp(&b, 0.3), 0.2);
}

Test(budget, decide_gives_the_largest_beta_that_fits) {
    const acmd_model m = model();
    acmd_req r = deadline_req(1, 0.1, 1);
    /* t(beta) = 1 ms + (1 + 3 beta) / 4 ms: beta = 0.5 takes 1.625 ms */
    cr_expect_float_eq(acmd_budget_decide(&m, &r, 1.625e-3), 0.5, 1e-9);
    cr_expect_eq(acmd_budget_decide(&m, &r, 1.0), 1.0, "room for full compute: 1");
    cr_expect_lt(acmd_budget_decide(&m, &r, 1e-3), 1e-9, "no room at all: 0 (the floors apply)");
    /* monotone: more slack never buys less compute */
    double prev = 0;
    for (double s = 1e-3; s < 2.5e-3; s += 1e-5) {
        const double c = acmd_budget_decide(&m, &r, s);
        cr_assert_geq(c, prev - 1e-12, "slack %g: %g after %g", s, c, prev);
        prev = c;
    }
}

Test(budget, the_held_decision_moves_down_at_once_and_up_only_past_the_band) {
    const acmd_model m = model();
    acmd_req r = deadline_req(1, 0.1, 1);
    /* t(beta) = 1.25 ms + 0.75 ms x beta: a slack of 1.625 ms fits 0.5; a band of 0.075 ms is 0.1 of beta */
    double prev = -1;
    cr_expect_float_eq(acmd_budget_decide_held(&m, &r, 1.625e-3, 0.075e-3, &prev), 0.5, 1e-9, "no memory: the most that fits");
    cr_expect_float_eq(prev, 0.5, 1e-9);
    /* a little more room (less than the band): kept */
    cr_expect_float_eq(acmd_budget_decide_held(&m, &r, 1.625e-3 + 0.05e-3, 0.075e-3, &prev), 0.5, 1e-9);
    /* past the band: up, to what still fits with the band left over */
    cr_expect_float_eq(acmd_budget_decide_held(&m, &r, 1.625e-3 + 0.15e-3, 0.075e-3, &prev), 0.6, 1e-9);
    /* less room: down at once, to the most that fits (never late for the sake of stability) */
    cr_expect_float_eq(acmd_budget_decide_held(&m, &r, 1.625e-3 - 0.03e-3, 0.075e-3, &prev), 0.46, 1e-9);
    /* no band: the plain decision */
    cr_expect_float_eq(acmd_budget_decide_held(&m, &r, 1.625e-3 + 0.05e-3, 0, &prev), acmd_budget_decide(&m, &r, 1.625e-3 + 0.05e-3), 1e-12);
}
