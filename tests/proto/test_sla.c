/*
 * test_sla.c — proto/sla: budget values and their resolution from headers and OIP parameters.
 */
#include <criterion/criterion.h>
#include <math.h>
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

Test(sla, parse_deadline) {
    double v;
    char err[160];
    cr_expect_eq(acm_sla_parse_deadline("30", &v, "X-Deadline-Ms", err, sizeof err), 0);
    cr_expect_eq(v, 30.0);
    cr_expect_eq(acm_sla_parse_deadline(" 12.5 ", &v, "X-Deadline-Ms", err, sizeof err), 0);
    cr_expect_eq(v, 12.5);
    cr_expect_eq(acm_sla_parse_deadline("3600000", &v, "X-Deadline-Ms", err, sizeof err), 0);
    const char *bad[] = {"0", "-5", "3600001", "nan", "inf", "", "30ms", "1e9", "0x10", "+3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(acm_sla_parse_deadline(bad[i], &v, "X-Deadline-Ms", err, sizeof err), ACM_SLA_EINVAL,
                     "accepted \"%s\"", bad[i]);
        cr_expect(strstr(err, "X-Deadline-Ms"), "%s", err);
    }
}

Test(sla, parse_request_start_in_every_unit) {
    double v;
    char err[200];
    /* the same instant, 2026-12-03 10:00:00.25 UTC, as nginx, Heroku and the agents write it */
    const char *same[] = {"t=1796292000.25", "1796292000.25", "t=1796292000250", "1796292000250000",
                          " t=1796292000250000000 "};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        cr_expect_eq(acm_sla_parse_request_start(same[i], &v, err, sizeof err), 0, "%s: %s", same[i], err);
        cr_expect(fabs(v - 1796292000.25) < 1e-6, "%s -> %.9f", same[i], v);
    }
    const char *bad[] = {"", "t=", "now", "t=-5", "0", "t=1e999", "nan", "inf", "t=1796292000.25s", "0x10", "t =1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(acm_sla_parse_request_start(bad[i], &v, err, sizeof err), ACM_SLA_EINVAL, "accepted \"%s\"", bad[i]);
        cr_expect(strstr(err, "X-Request-Start"), "%s", err);
    }
}

Test(sla, parse_priority_rfc9218) {
    int u, inc;
    char err[160];
    static const struct {
        const char *s;
        int u, inc;
    } good[] = {{"u=1", 1, 0},       {"u=0", 0, 0},           {"u=7, i", 7, 1},        {"i, u=2", 2, 1},
                {"", 3, 0},          {"  u=5  ", 5, 0},       {"i=?0", 3, 0},          {"u=4;x=1, i=?1", 4, 1},
                {"u=6, foo=\"a b\"", 6, 0}, {"u=2, x=(1 2 tok), y=:AAA=:", 2, 0}, {"u=1, u=6", 6, 0},
                {"z=1.5, u=3", 3, 0}};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cr_expect_eq(acm_sla_parse_priority(good[i].s, &u, &inc, err, sizeof err), 0, "\"%s\": %s", good[i].s, err);
        cr_expect_eq(u, good[i].u, "\"%s\": u %d", good[i].s, u);
        cr_expect_eq(inc, good[i].inc, "\"%s\": i %d", good[i].s, inc);
    }
    const char *bad[] = {"u=8", "u=-1", "u=1.0", "u=high", "U=1", "u=1,", "u=1 i", "u=\"1\"", "i=1", ",u=1",
                         "u=1, =2", "u=1, x=\"unterminated", "u=9999999999999999", "x=(1 2"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(acm_sla_parse_priority(bad[i], &u, &inc, err, sizeof err), ACM_SLA_EINVAL, "accepted \"%s\"", bad[i]);
        cr_expect(strstr(err, "Priority"), "%s", err);
    }
}

Test(sla, triton_priority_and_resolution) {
    int u;
    char err[160];
    cr_expect(acm_sla_urgency_from_triton(0, &u, err, sizeof err) == 0 && u == 3);
    cr_expect(acm_sla_urgency_from_triton(1, &u, err, sizeof err) == 0 && u == 0);
    cr_expect(acm_sla_urgency_from_triton(5, &u, err, sizeof err) == 0 && u == 4);
    cr_expect(acm_sla_urgency_from_triton(100, &u, err, sizeof err) == 0 && u == 7);
    cr_expect_eq(acm_sla_urgency_from_triton(-1, &u, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect_eq(acm_sla_urgency_from_triton(1.5, &u, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect(strstr(err, "priority"), "%s", err);
    acm_sla_sched s;
    cr_assert_eq(acm_sla_resolve_sched(&s, NULL, NULL, NULL, NULL, 0, err, sizeof err), 0);
    cr_expect(s.deadline_source == ACM_BUDGET_DEFAULT && s.deadline_ms == 0 && s.urgency == 3 && !s.clamped);
    double pd = 40, pp = 1;
    cr_assert_eq(acm_sla_resolve_sched(&s, "25", "u=5", &pd, &pp, 0, err, sizeof err), 0); /* headers win */
    cr_expect(s.deadline_source == ACM_BUDGET_HEADER && s.deadline_ms == 25 && s.urgency == 5);
    cr_assert_eq(acm_sla_resolve_sched(&s, NULL, NULL, &pd, &pp, 2, err, sizeof err), 0); /* clamped to 2 */
    cr_expect(s.deadline_source == ACM_BUDGET_PARAMETER && s.deadline_ms == 40 && s.urgency == 2 && s.clamped &&
              s.urgency_requested == 0);
    pd = 0;
    cr_expect_eq(acm_sla_resolve_sched(&s, NULL, NULL, &pd, NULL, 0, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect(strstr(err, "deadline_ms"), "%s", err);
    cr_expect_eq(acm_sla_resolve_sched(&s, "abc", NULL, NULL, NULL, 0, err, sizeof err), ACM_SLA_EINVAL);
    cr_expect(strstr(err, "X-Deadline-Ms"), "%s", err);
}
