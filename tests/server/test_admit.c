/*
 * test_admit.c — server/admit.c's policy decision (acmd_admit_policy), a pure function of the budget range, the
 * deadline and the policy names: deadline requests run under cap at their ceiling (beta decided at dispatch), a floor
 * raises the default budget, argmax cannot honour a floor, and bad names are refused. The 504 at admission is tested
 * end to end in test_sla.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/acmd.h"

static acm_sla_budget range(acm_budget_source src, double lo, double hi, int floor_set) {
    acm_sla_budget b;
    memset(&b, 0, sizeof b);
    b.source = src, b.min = lo, b.max = hi, b.floor_set = floor_set;
    return b;
}

static acm_policy argmax_default(void) {
    acm_policy p = acm_policy_default();
    p.beta = 1;
    return p;
}

Test(admit, a_deadline_runs_under_cap_at_its_ceiling) {
    acm_sla_budget b = range(ACM_BUDGET_DEFAULT, 0.25, 1, 0);
    acm_policy p;
    char e[256];
    cr_assert_eq(acmd_admit_policy(&p, &b, 1, NULL, argmax_default(), "cap", e, sizeof e), 0);
    cr_expect_eq(p.kind, ACM_POLICY_CAP);
    cr_expect_float_eq(p.beta, 1.0f, 1e-7);
    cr_expect_eq(b.source, ACM_BUDGET_DEADLINE, "no ceiling asked: the deadline chose it");
    acm_sla_budget h = range(ACM_BUDGET_HEADER, 0.25, 0.6, 0);
    cr_assert_eq(acmd_admit_policy(&p, &h, 1, "cap", argmax_default(), "cap", e, sizeof e), 0);
    cr_expect_float_eq(p.beta, 0.6f, 1e-7);
    cr_expect_eq(h.source, ACM_BUDGET_HEADER);
    cr_expect_eq(acmd_admit_policy(&p, &h, 1, "mean", argmax_default(), "cap", e, sizeof e), -1);
    cr_expect(strstr(e, "runs under cap"), "%s", e);
}

Test(admit, a_floor_raises_the_default_budget_and_argmax_cannot_honour_it) {
    acm_policy def = acm_policy_default(), p;
    def.kind = ACM_POLICY_MEAN, def.beta = 0.3f;
    char e[256];
    acm_sla_budget b = range(ACM_BUDGET_DEFAULT, 0.5, 1, 1);
    cr_assert_eq(acmd_admit_policy(&p, &b, 0, NULL, def, "cap", e, sizeof e), 0);
    cr_expect_eq(p.kind, ACM_POLICY_MEAN);
    cr_expect_float_eq(p.beta, 0.5f, 1e-7, "raised to the floor");
    /* a default argmax: the request policy at the default budget, raised */
    cr_assert_eq(acmd_admit_policy(&p, &b, 0, NULL, argmax_default(), "cap", e, sizeof e), 0);
    cr_expect_eq(p.kind, ACM_POLICY_CAP);
    cr_expect_float_eq(p.beta, 1.0f, 1e-7);
    cr_expect_eq(acmd_admit_policy(&p, &b, 0, "argmax", argmax_default(), "cap", e, sizeof e), -1);
    cr_expect(strstr(e, "cannot honour a budget floor"), "%s", e);
}

Test(admit, a_ceiling_runs_under_the_request_policy) {
    acm_policy p;
    char e[256];
    acm_sla_budget b = range(ACM_BUDGET_PARAMETER, 0.25, 0.4, 0);
    cr_assert_eq(acmd_admit_policy(&p, &b, 0, "", argmax_default(), "cap", e, sizeof e), 0);
    cr_expect_eq(p.kind, ACM_POLICY_CAP);
    cr_expect_float_eq(p.beta, 0.4f, 1e-7);
    cr_assert_eq(acmd_admit_policy(&p, &b, 0, "mean", argmax_default(), "cap", e, sizeof e), 0);
    cr_expect_eq(p.kind, ACM_POLICY_MEAN);
    const char *bad[] = {"fixed", "greedy", "CAPX"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_eq(acmd_admit_policy(&p, &b, 0, bad[i], argmax_default(), "cap", e, sizeof e), -1, "%s", bad[i]);
}
