/*
 * test_sla.c — proto/sla: budget values and their resolution from headers and OIP parameters.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "sla.h"

Test(sla, parse_budget) {
    double v;
    char err[128];
    cr_expect_eq(acm_sla_parse_budget("0.4", &v, "X", err, sizeof err), 0);
    cr_expect_eq(v, 0.4);
    cr_expect_eq(acm_sla_parse_budget(" 1 ", &v, "X", err, sizeof err), 0);
    cr_expect_eq(v, 1.0);
    cr_expect_eq(acm_sla_parse_budget("5e-1", &v, "X", err, sizeof err), 0);
    cr_expect_eq(v, 0.5);
    cr_expect_eq(acm_sla_parse_budget(".25", &v, "X", err, sizeof err), 0);
    const char *bad[] = {"0", "0.0", "1.01", "-0.5", "nan", "inf", "0x0.8p0", "", "0.5x", "1e", "0.5 0.6", "+0.5"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(acm_sla_parse_budget(bad[i], &v, "X-Compute-Budget", err, sizeof err), ACM_SLA_EINVAL, "accepted \"%s\"", bad[i]);
        cr_expect(strstr(err, "X-Compute-Budget"), "%s", err);
    }
}

Test(sla, resolve) {
    acm_sla_budget b;
    char err[128];
    cr_assert_eq(acm_sla_resolve(&b, NULL, NULL, NULL, NULL, 0.2, err, sizeof err), 0);
    cr_expect_eq(b.source, ACM_BUDGET_DEFAULT);
    cr_expect_eq(b.min, 0.2);
    cr_assert_eq(acm_sla_resolve(&b, "0.5", NULL, NULL, NULL, 0.2, err, sizeof err), 0);
    cr_expect(b.source == ACM_BUDGET_HEADER && b.max == 0.5 && b.min == 0.2 && !b.raised);
    double pm = 0.7, pmin = 0.3;
    cr_assert_eq(acm_sla_resolve(&b, NULL, NULL, &pm, &pmin, 0.2, err, sizeof err), 0);
    cr_expect(b.source == ACM_BUDGET_PARAMETER && b.max == 0.7 && b.min == 0.3);
    cr_assert_eq(acm_sla_resolve(&b, "0.6", NULL, &pm, NULL, 0.2, err, sizeof err), 0); /* header wins */
    cr_expect(b.source == ACM_BUDGET_HEADER && b.max == 0.6);
    cr_assert_eq(acm_sla_resolve(&b, "0.1", NULL, NULL, NULL, 0.25, err, sizeof err), 0); /* raised to beta_min */
    cr_expect(b.raised && b.max == 0.25 && b.requested == 0.1);
    cr_expect_eq(acm_sla_resolve(&b, "0.3", "0.5", NULL, NULL, 0.2, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect(strstr(err, "floor"), "%s", err);
    pm = 1.5;
    cr_expect_eq(acm_sla_resolve(&b, NULL, NULL, &pm, NULL, 0.2, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect(strstr(err, "compute_budget"), "%s", err);
    cr_expect_str_eq(acm_budget_source_name(ACM_BUDGET_PARAMETER), "parameter");
}
