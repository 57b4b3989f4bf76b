/*
 * test_local_cluster.c — deploy/local-cluster.sh for real: haproxy in front of 2 acmd instances (1 worker each) and
 * Prometheus scraping them; `acm bench` puts a closed-loop load through haproxy while one instance is SIGTERMed
 * (it drains: readiness 503, haproxy takes it out at its next check, queued requests are answered) and another one is
 * added. Every request is answered 200 (0 failed), every answer is in exactly one instance's access log, the
 * terminated instance stops receiving requests, the added one takes its share, and Prometheus has each instance's
 * counter; then a rolling restart (`roll`: each running instance replaced by a new one, added before the old one
 * drains) under the same load, with the same accounting. Bounded: the load stops once the last instance rolled in has served 100 requests (at most 60 s of load), the cluster stops
 * itself after CLUSTER_MAX_S=300 if the test dies.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deploy/deploy_util.h"
#include "server/harness.h"

static char dir[] = "/tmp/acm-cluster-XXXXXX";
static int lb, admin, hmetrics, prom;
static pid_t bench = -1;

static void stop_all(void) {
    if (bench > 0) kill(bench, SIGKILL);
    dt_sh(NULL, "ACM_BUILD=%s bash deploy/local-cluster.sh stop %s >/dev/null", dt_build(), dir);
    dt_sh(NULL, "rm -rf %s", dir);
}

/* requests an instance answered: classify lines of its access log */
static int served(int slot) {
    char *out;
    dt_sh(&out, "grep -c '\"route\":\"classify\"' %s/instances/%d/log 2>/dev/null || true", dir, slot);
    int n = atoi(out);
    free(out);
    return n;
}

static int wait_served(int slot, int n, double timeout_s) {
    for (double t0 = th_now(); th_now() - t0 < timeout_s; usleep(50000))
        if (served(slot) >= n) return 0;
    return -1;
}

/* Prometheus: acm_inference_requests_total{outcome="success"} of the instance on port (-1 when it has no sample) */
static double prom_success(int port) {
    char path[512];
    snprintf(path, sizeof path,
             "/api/v1/query?query=max_over_time(acm_inference_requests_total%%7Boutcome%%3D%%22success%%22%%2C"
             "instance%%3D%%22127.0.0.1%%3A%d%%22%%7D%%5B5m%%5D)", port);
    th_resp r;
    if (th_http(prom, "GET", path, NULL, NULL, 0, &r) != 0) return -1;
    double v = -1;
    json_t *j = r.status == 200 ? json_loads(r.body, 0, NULL) : NULL;
    json_t *res = json_object_get(json_object_get(j, "data"), "result");
    if (json_array_size(res) > 0) v = atof(json_string_value(json_array_get(json_object_get(json_array_get(res, 0), "value"), 1)));
    json_decref(j);
    th_resp_free(&r);
    return v;
}

static int slot_port(int slot) {
    char p[256];
    snprintf(p, sizeof p, "%s/instances/%d/port", dir, slot);
    char *s = th_slurp(p, NULL);
    int port = s ? atoi(s) : -1;
    free(s);
    return port;
}

Test(local_cluster, sigterm_add_and_roll_under_load_lose_nothing, .timeout = 240, .fini = stop_all) {
    cr_assert(dt_have("haproxy") && dt_have("prometheus"), "haproxy or prometheus is missing: make deps installs them");
    cr_assert(mkdtemp(dir));
    lb = dt_free_port(), admin = dt_free_port(), hmetrics = dt_free_port(), prom = dt_free_port();
    cr_assert(lb > 0 && admin > 0 && hmetrics > 0 && prom > 0);
    cr_assert(lb != admin && lb != hmetrics && lb != prom && admin != hmetrics && admin != prom && hmetrics != prom);
    char *out;
    int rc = dt_sh(&out, "ACM_BUILD=%s LB_PORT=%d ADMIN_PORT=%d HAPROXY_METRICS_PORT=%d PROM_PORT=%d CLUSTER_MAX_S=300 "
                         "bash deploy/local-cluster.sh start %s 2 --workers 1", dt_build(), lb, admin, hmetrics, prom, dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "instance 1 ready") && strstr(out, "instance 2 ready") && strstr(out, "2 instance(s) behind haproxy"), "%s", out);
    free(out);

    /* the load: closed loop, 4 connections through haproxy, until SIGINT (at most 60 s) */
    char url[64], report[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", lb);
    snprintf(report, sizeof report, "%s/bench.json", dir);
    bench = fork();
    cr_assert(bench >= 0);
    if (bench == 0) {
        if (!freopen(report, "w", stdout)) _exit(126);
        setpgid(0, 0);
        char prog[512];
        snprintf(prog, sizeof prog, "%s/acm", dt_build());
        execl(prog, "acm", "bench", "--server", url, "-c", "4", "-d", "60", "--json", "--no-progress", (char *)NULL);
        _exit(127);
    }
    /* both instances take traffic, and Prometheus has scraped the first one's */
    cr_assert_eq(wait_served(1, 100, 60), 0, "instance 1 served %d", served(1));
    cr_assert_eq(wait_served(2, 100, 60), 0, "instance 2 served %d", served(2));
    double p1 = -1;
    for (double t0 = th_now(); th_now() - t0 < 30 && p1 <= 0; usleep(200000)) p1 = prom_success(slot_port(1));
    cr_assert_gt(p1, 0, "Prometheus has no traffic of instance 1");

    /* SIGTERM to instance 1: the script returns once it has drained and exited */
    const int port1 = slot_port(1);
    rc = dt_sh(&out, "ACM_BUILD=%s bash deploy/local-cluster.sh term %s 1", dt_build(), dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "instance 1 drained and exited (\"msg\":\"exit 0\")"), "%s", out);
    free(out);
    const int after_term = served(1);
    const int two_at_term = served(2);
    cr_assert_eq(wait_served(2, two_at_term + 100, 30), 0, "instance 2 alone does not carry the load");

    /* one more instance: ready, UP in haproxy, and takes its share */
    rc = dt_sh(&out, "ACM_BUILD=%s bash deploy/local-cluster.sh add %s --workers 1", dt_build(), dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "instance 3 ready"), "%s", out);
    free(out);
    cr_assert_eq(wait_served(3, 200, 60), 0, "instance 3 served %d", served(3));
    double p3 = -1;
    for (double t0 = th_now(); th_now() - t0 < 30 && p3 <= 0; usleep(200000)) p3 = prom_success(slot_port(3));
    cr_expect_gt(p3, 0, "Prometheus has no traffic of instance 3");
    cr_expect_geq(prom_success(port1), 1, "Prometheus lost instance 1's series");

    /* a rolling restart of the two running instances: 4 replaces 2, then 5 replaces 3, each added before the old
     * one drains */
    rc = dt_sh(&out, "ACM_BUILD=%s bash deploy/local-cluster.sh roll %s", dt_build(), dir);
    cr_assert_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "instance 4 ready") && strstr(out, "instance 2 drained and exited") && strstr(out, "instance 5 ready")
              && strstr(out, "instance 3 drained and exited"), "%s", out);
    free(out);
    const int after_roll2 = served(2), after_roll3 = served(3);
    cr_assert_eq(wait_served(5, 100, 60), 0, "instance 5 served %d", served(5));

    cr_assert_eq(kill(bench, SIGINT), 0);
    int st;
    cr_assert_eq(waitpid(bench, &st, 0), bench);
    bench = -1;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "acm bench: status %d", st);
    json_error_t e;
    json_t *j = json_load_file(report, 0, &e);
    cr_assert(j, "%s: %s", report, e.text);
    const json_int_t sent = json_integer_value(json_object_get(j, "sent"));
    const json_int_t answered = json_integer_value(json_object_get(j, "answered"));
    const json_int_t errors = json_integer_value(json_object_get(j, "errors"));
    json_t *by = json_object_get(j, "by_status");
    const json_int_t ok = json_integer_value(json_object_get(by, "200"));
    cr_expect_gt(sent, 500);
    cr_expect_eq(errors, 0, "transport errors: %s", json_dumps(json_object_get(j, "errors_by_kind"), 0));
    cr_expect_eq(answered, sent);
    cr_expect_eq(ok, sent, "not every answer was 200: %s", json_dumps(by, 0));
    cr_expect_eq(json_object_size(by), 1, "%s", json_dumps(by, 0));
    /* every answer came from exactly one instance's log; the terminated one took nothing after its exit */
    const int s1 = served(1), s2 = served(2), s3 = served(3), s4 = served(4), s5 = served(5);
    cr_expect_eq(s1, after_term, "instance 1 served after its exit");
    cr_expect(s2 == after_roll2 && s3 == after_roll3, "instances 2 and 3 served after the rolling restart");
    cr_expect_gt(s4, 0);
    cr_expect_eq((json_int_t)(s1 + s2 + s3 + s4 + s5), ok, "instance logs %d + %d + %d + %d + %d != %lld answered 200", s1, s2, s3,
                 s4, s5, (long long)ok);
    cr_log_info("through haproxy: %lld requests, 0 failed; per instance %d (terminated), %d, %d (added), %d, %d (rolled in)",
                (long long)sent, s1, s2, s3, s4, s5);
    json_decref(j);
}
