/*
 * test_prometheus.c — deploy/prometheus and deploy/grafana: the scrape config and the rules pass `promtool check`,
 * the rules' unit tests (acm-rules.test.yml) pass `promtool test rules` and fail when a rule is changed, and every
 * metric and label value that the rules and the dashboard use is one that a running acmd exports (scraped from
 * /metrics), so a renamed metric breaks this test rather than a dashboard in production.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <jansson.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deploy/deploy_util.h"
#include "server/harness.h"

#define RULES "deploy/prometheus/acm-rules.yml"
#define RULES_TEST "deploy/prometheus/acm-rules.test.yml"
#define DASHBOARD "deploy/grafana/acm-dashboard.json"

Test(prometheus, config_and_rules_pass_promtool_check) {
    cr_assert(dt_have("promtool"), "promtool is missing: make deps installs prometheus");
    char *out;
    int rc = dt_sh(&out, "promtool check config deploy/prometheus/prometheus.yml");
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
    rc = dt_sh(&out, "promtool check rules " RULES);
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
}

Test(prometheus, rule_unit_tests_pass_and_bite) {
    char *out;
    int rc = dt_sh(&out, "promtool test rules " RULES_TEST);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "SUCCESS"), "%s", out);
    free(out);
    /* the same tests against rules with the p99 turned into a p98 and the 5xx alert's threshold raised: both caught */
    char dir[] = "/tmp/acm-prom-XXXXXX";
    cr_assert(mkdtemp(dir));
    rc = dt_sh(&out, "cp " RULES_TEST " %s/ && sed -e 's/histogram_quantile(0.99,/histogram_quantile(0.98,/' "
                     "-e 's/acm:http_5xx:ratio_rate5m > 0.01/acm:http_5xx:ratio_rate5m > 0.05/' " RULES " > %s/acm-rules.yml && "
                     "promtool test rules %s/acm-rules.test.yml", dir, dir, dir);
    cr_expect_neq(rc, 0, "changed rules still pass the unit tests:\n%s", out);
    cr_expect(strstr(out, "p99_5m") && strstr(out, "AcmHigh5xx"), "the failures do not name both changes:\n%s", out);
    free(out);
    dt_sh(NULL, "rm -rf %s", dir);
}

/* The metric names of an exposition: each family's name, and _bucket/_sum/_count for histograms. */
static int exported(const char *metrics, const char *name) {
    char needle[256];
    snprintf(needle, sizeof needle, "\n%s{", name);
    if (strstr(metrics, needle)) return 1;
    snprintf(needle, sizeof needle, "\n%s ", name);
    if (strstr(metrics, needle)) return 1;
    snprintf(needle, sizeof needle, "\n# TYPE %s ", name); /* a histogram's family name */
    return strstr(metrics, needle) != NULL;
}

/* Every `acm_...` name in text (not part of a recording rule's name: those have a colon before them) that the
 * exposition lacks, appended to missing. Returns how many. */
static int missing_names(const char *text, const char *metrics, char *missing, size_t n) {
    int bad = 0;
    for (const char *p = text; (p = strstr(p, "acm_")); p++) {
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '_' || p[-1] == ':')) continue;
        size_t len = 0;
        while (isalnum((unsigned char)p[len]) || p[len] == '_') len++;
        if (p[len] == ':') continue; /* "acm_x:..." would be a rule name */
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        if (!exported(metrics, name) && !strstr(missing, name)) {
            bad++;
            size_t o = strlen(missing);
            snprintf(missing + o, n - o, " %s", name);
        }
    }
    return bad;
}

/* Every label matcher key="value" of the rules' expressions that no series of the exposition carries. */
static int missing_labels(const char *rules, const char *metrics, char *missing, size_t n) {
    regex_t re;
    cr_assert_eq(regcomp(&re, "([a-z_]+)=\"([^\"]*)\"", REG_EXTENDED), 0);
    int bad = 0;
    regmatch_t m[3];
    for (const char *p = rules; regexec(&re, p, 3, m, 0) == 0; p += m[0].rm_eo) {
        char pair[256];
        snprintf(pair, sizeof pair, "%.*s", (int)(m[0].rm_eo - m[0].rm_so), p + m[0].rm_so);
        if (!strstr(metrics, pair) && !strstr(missing, pair)) {
            bad++;
            size_t o = strlen(missing);
            snprintf(missing + o, n - o, " %s", pair);
        }
    }
    regfree(&re);
    return bad;
}

Test(prometheus, every_metric_used_is_exported_by_acmd, .timeout = 90) {
    th_acmd s;
    const char *args[] = {"--model", "fmnist=models/fmnist-vit-acm.safetensors", "--workers", "1", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 60), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    char *metrics = malloc(r.len + 2);
    metrics[0] = '\n';
    memcpy(metrics + 1, r.body, r.len + 1);
    th_resp_free(&r);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);

    char missing[2048] = "";
    char *rules = th_slurp(RULES, NULL), *dash = th_slurp(DASHBOARD, NULL);
    cr_assert(rules && dash);
    cr_expect_eq(missing_names(rules, metrics, missing, sizeof missing), 0, RULES " uses metrics acmd does not export:%s", missing);
    missing[0] = 0;
    cr_expect_eq(missing_labels(rules, metrics, missing, sizeof missing), 0, RULES " matches label values acmd never exports:%s",
                 missing);
    missing[0] = 0;
    cr_expect_eq(missing_names(dash, metrics, missing, sizeof missing), 0, DASHBOARD " uses metrics acmd does not export:%s", missing);
    /* the check bites */
    missing[0] = 0;
    cr_expect_eq(missing_names("rate(acm_flops_executed_total[5m]) / acm_flops_exectued_total", metrics, missing, sizeof missing), 1);
    cr_expect(strstr(missing, "acm_flops_exectued_total"), "%s", missing);
    missing[0] = 0;
    cr_expect_eq(missing_labels("acm_inference_rejections_total{reason=\"queue-full\"}", metrics, missing, sizeof missing), 1);

    /* the dashboard's recording-rule names are all recorded by the rules */
    json_error_t e;
    json_t *d = json_load_file(DASHBOARD, 0, &e), *panel, *target;
    cr_assert(d, "%s: %s", DASHBOARD, e.text);
    size_t i, j;
    int n_expr = 0;
    json_array_foreach(json_object_get(d, "panels"), i, panel) {
        json_array_foreach(json_object_get(panel, "targets"), j, target) {
            const char *expr = json_string_value(json_object_get(target, "expr"));
            cr_assert(expr);
            n_expr++;
            const char *c = strchr(expr, ':');
            if (!c) continue;
            const char *b = c;
            while (b > expr && (isalnum((unsigned char)b[-1]) || b[-1] == '_' || b[-1] == ':')) b--;
            size_t len = 0;
            while (isalnum((unsigned char)b[len]) || b[len] == '_' || b[len] == ':') len++;
            char rec[160];
            snprintf(rec, sizeof rec, "record: %.*s\n", (int)len, b);
            cr_expect(strstr(rules, rec), "the dashboard's %.*s is not recorded in " RULES, (int)len, b);
        }
    }
    cr_expect_geq(n_expr, 8);
    json_decref(d);
    free(rules);
    free(dash);
    free(metrics);
}
