/*
 * test_sla.c — acmd's SLA scheduling against a real server (docs/DESIGN.md §5): the budget a deadline allows, 504
 * when even the floor cannot make it, urgency ordering of the queue (RFC 9218 Priority and Triton's priority, with
 * the clamp), deadline misses counted, the cost model and its path error model on /v2/models/{m}/stats, the request
 * phases in /metrics, bad SLA values refused by name, and
 * the OIP binary tensor extension giving the same answers as JSON tensors.
 *
 * Decisions, not clocks: every check is on what the server decided (budget applied, predicted finish, status, order,
 * counters). Where a worker must be busy the test holds it (--test-hold, harness.h) instead of sizing a workload from
 * the machine's speed; only a deadline that must pass is waited out, in time. The heavy model is
 * a random ACM ViT written at test time whose FLOPs are mostly learners (tests/server/harness.c), so that the budget
 * moves its latency far enough to matter.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/harness.h"

TestSuite(sla, .timeout = 120);

#define BETA_MIN 0.05

static char heavy_path[300];
static const char *heavy_model(void) {
    snprintf(heavy_path, sizeof heavy_path, "/tmp/acmd-sla-heavy-%d.safetensors", (int)getpid());
    cr_assert_eq(th_heavy_acm_model(heavy_path, 64, 8, 96, 2, 6144, BETA_MIN), 0, "cannot write the heavy ACM model");
    return heavy_path;
}

/* The heavy model on one worker, batches of one, with extra arguments; held: under the worker hold (harness.h). */
static void start_heavy_with(th_acmd *s, const char *const *extra, int held) {
    static char model_arg[400];
    snprintf(model_arg, sizeof model_arg, "h=%s", heavy_model());
    const char *base[] = {"--model", model_arg, "--workers", "1", "--max-batch", "1", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start_with(s, base, extra, held), 0);
    if (held) th_hold_release(s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(s, 60), 0);
}

static void start_heavy(th_acmd *s, const char *const *extra) { start_heavy_with(s, extra, 0); }

static uint8_t *heavy_png(int seed, size_t *n) {
    uint8_t px[64 * 64];
    for (int i = 0; i < 64 * 64; i++) px[i] = (uint8_t)((i * (7 + seed) + seed * 31) % 256);
    return th_png(px, 64, 64, 1, n);
}

static double num(const json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

static json_t *stats(int port, const char *model) {
    char path[128];
    snprintf(path, sizeof path, "/v2/models/%s/stats", model);
    th_resp r;
    cr_assert_eq(th_http(port, "GET", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

/* POST a heavy PNG with extra headers; not read: returns the socket. */
static int send_png(int port, const char *extra, int seed) {
    size_t n;
    uint8_t *png = heavy_png(seed, &n);
    int fd = th_connect(port);
    cr_assert(fd >= 0);
    char head[512];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/models/h/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\n"
                      "%sContent-Length: %zu\r\n\r\n", extra ? extra : "", n);
    cr_assert_eq(send(fd, head, (size_t)hn, 0), hn);
    cr_assert_eq(send(fd, png, n, MSG_NOSIGNAL), (ssize_t)n);
    free(png);
    return fd;
}

/* An OIP request of B heavy images (one queue item, B engine items), with `params` inside "parameters"; not read. */
static int send_batch(int port, int B, const char *params, const char *id) {
    size_t cap = (size_t)B * 64 * 64 * 4 + 512;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"parameters\":{%s},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
                                        "\"shape\":[%d,64,64,1],\"data\":[", params ? params : "", B);
    for (int i = 0; i < B * 64 * 64; i++) o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", i * 7 % 256);
    o += (size_t)snprintf(s + o, cap - o, "]}]}");
    int fd = th_connect(port);
    char head[256];
    int hn = snprintf(head, sizeof head, "POST /v2/models/h/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                         "X-Request-Id: %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                      id ? id : "batch", o);
    cr_assert_eq(send(fd, head, (size_t)hn, 0), hn);
    cr_assert_eq(send(fd, s, o, MSG_NOSIGNAL), (ssize_t)o);
    free(s);
    return fd;
}

static th_resp read_resp(int fd);

static th_resp read_resp(int fd) {
    th_resp r;
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    return r;
}

Test(sla, idle_server_half_the_full_latency_gets_a_smaller_budget_predicted_in_time) {
    th_acmd s;
    start_heavy(&s, NULL);
    /* the beta = 1 latency, as the server measures it (arrival to response), the smallest of a few */
    double full_ms = INFINITY;
    for (int i = 0; i < 4; i++) {
        th_resp r = read_resp(send_png(s.port, "X-Compute-Budget: 1\r\n", i));
        cr_assert_eq(r.status, 200, "%s", r.body);
        json_t *j = th_json(&r);
        cr_expect_eq(num(j, "budget_applied"), 1.0);
        const double t = num(json_object_get(j, "timing"), "total_ms");
        if (t < full_ms) full_ms = t;
        json_decref(j);
        th_resp_free(&r);
    }
    json_t *st = stats(s.port, "h");
    json_t *cm = json_object_get(st, "cost_model");
    cr_expect_geq(json_integer_value(json_object_get(cm, "samples")), 4, "the measured batches were not learnt");
    cr_expect_eq(json_integer_value(json_object_get(cm, "prior_samples")), 4, "warm-up prior");
    cr_expect(num(cm, "c") > 0, "the FLOPs coefficient is %g: the budget would not buy time", num(cm, "c"));
    cr_expect(json_object_get(json_object_get(cm, "recent_error"), "mean_abs_ms"));
    /* the error model of dispatch: one residual of the path after dispatch per answered request */
    json_t *path = json_object_get(cm, "path");
    cr_expect_eq(json_integer_value(json_object_get(path, "samples")), 4, "%s", json_dumps(path, 0));
    cr_expect_gt(num(path, "margin_ms"), 0, "the path after the engine takes time: a margin above 0");
    json_decref(st);
    char hdr[64];
    const double deadline = full_ms / 2;
    snprintf(hdr, sizeof hdr, "X-Deadline-Ms: %.3f\r\n", deadline);
    th_resp r = read_resp(send_png(s.port, hdr, 9));
    cr_assert_eq(r.status, 200, "deadline %.3f ms (full %.3f ms): %s", deadline, full_ms, r.body);
    json_t *j = th_json(&r);
    const double applied = num(j, "budget_applied"), predicted = num(j, "predicted_ms");
    cr_expect_lt(applied, 1.0, "beta applied %g for a deadline of half the full latency", applied);
    cr_expect_geq(applied, BETA_MIN - 1e-6, "beta %g under the floor", applied);
    cr_expect_leq(num(j, "budget_realised"), applied + 1e-6, "cap realised more than applied");
    cr_expect_leq(predicted, deadline, "predicted finish %.3f ms after a deadline of %.3f ms", predicted, deadline);
    cr_expect_gt(predicted, 0);
    cr_expect_eq(num(j, "deadline_ms"), atof(hdr + 15));
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "deadline");
    cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), "cap");
    json_decref(j);
    th_resp_free(&r);
    cr_expect_eq(th_metric(s.port, "acm_request_budget_ratio_count{source=\"deadline\"} "), 1);
    /* every phase of the five answered requests measured */
    const char *phases[] = {"admission", "queue", "handover", "compute", "return", "send"};
    for (int i = 0; i < 6; i++) {
        char series[128];
        snprintf(series, sizeof series, "acm_request_phase_seconds_count{model=\"h\",phase=\"%s\"} ", phases[i]);
        cr_expect_eq(th_metric(s.port, series), 5, "%s", series);
    }
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

Test(sla, deadline_below_the_floor_gets_504_at_once) {
    th_acmd s;
    start_heavy(&s, NULL);
    json_t *st = stats(s.port, "h");
    const double floor_ms = num(json_object_get(json_object_get(st, "cost_model"), "predict_ms"), "one_item_floor");
    json_decref(st);
    cr_assert_gt(floor_ms, 0);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Deadline-Ms: %.4f\r\n", floor_ms / 3);
    th_resp r = read_resp(send_png(s.port, hdr, 1));
    cr_expect_eq(r.status, 504, "%s", r.body);
    json_t *j = th_json(&r);
    const char *msg = json_string_value(json_object_get(j, "error"));
    cr_expect(msg && strstr(msg, "deadline"), "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    /* refused at admission, before any compute: no batch ran, and the answer came back without one */
    cr_expect_eq(th_metric(s.port, "acm_deadline_misses_total{phase=\"admission\"} "), 1);
    cr_expect_eq(th_metric(s.port, "reason=\"deadline\"} "), 1);
    cr_expect_eq(th_metric(s.port, "outcome=\"timeout\"} "), 1);
    cr_expect_eq(th_metric(s.port, "acm_batch_size_count{model=\"h\"} "), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

/* Asserts that the access log (one worker, batches of one: completion order = dispatch order) lists ids in order. */
static void expect_log_order(th_acmd *s, const char *const *ids, int n) {
    char *log = th_acmd_log(s);
    const char *prev = NULL;
    for (int i = 0; i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"id\":\"%s\"", ids[i]);
        const char *p = strstr(log, key);
        cr_expect(p, "access log lacks %s", ids[i]);
        if (p && prev) cr_expect_lt(prev, p, "%s ran before %s", ids[i], ids[i - 1]);
        if (p) prev = p;
    }
    free(log);
}

/* The heavy model under the worker hold (harness.h): a request "busy" is held on the only worker, so that whatever
 * is sent next waits in the queue for exactly as long as the test needs, on any CPU. Each later send waits until the
 * server has queued it (queue_depth), so the arrival order is the send order. */
static int start_held_busy(th_acmd *s, const char *const *extra) {
    start_heavy_with(s, extra, 1);
    int busy = send_png(s->port, "X-Request-Id: busy\r\n", 0);
    cr_assert_eq(th_wait_stats(s, "h", 1, 0, 10), 0);
    return busy;
}

static void wait_queued(th_acmd *s, int items) { cr_assert_eq(th_wait_stats(s, "h", 1, items, 10), 0); }

Test(sla, under_a_backlog_urgency_0_overtakes_urgency_7) {
    th_acmd s;
    const char *extra[] = {"--aging-ms", "0", "--min-client-urgency", "1", "--log-level", "info", NULL};
    int busy = start_held_busy(&s, extra);
    int low = send_png(s.port, "X-Request-Id: low\r\nPriority: u=7\r\n", 1);
    wait_queued(&s, 1);
    int high = send_png(s.port, "X-Request-Id: high\r\nPriority: u=0, i\r\n", 2);  /* clamped to 1: still ahead of 7 */
    wait_queued(&s, 2);
    int triton = send_batch(s.port, 1, "\"priority\":1", "triton");              /* Triton's highest: urgency 0 -> 1 */
    wait_queued(&s, 3);
    th_hold_end(&s);
    th_resp rb = read_resp(busy), rl = read_resp(low), rh = read_resp(high), rt = read_resp(triton);
    cr_assert(rb.status == 200 && rl.status == 200 && rh.status == 200 && rt.status == 200, "%d %d %d %d: %s %s %s",
              rb.status, rl.status, rh.status, rt.status, rl.body, rh.body, rt.body);
    json_t *jl = th_json(&rl), *jh = th_json(&rh), *jt = th_json(&rt);
    json_t *pt = json_object_get(jt, "parameters");
    cr_expect_eq(json_integer_value(json_object_get(jl, "urgency")), 7);
    cr_expect_eq(json_integer_value(json_object_get(jh, "urgency")), 1, "u=0 not clamped to --min-client-urgency 1");
    cr_expect_eq(json_integer_value(json_object_get(pt, "urgency")), 1, "Triton priority 1 not clamped");
    const double ql = num(json_object_get(jl, "timing"), "queue_ms"), qh = num(json_object_get(jh, "timing"), "queue_ms");
    cr_expect_lt(qh, ql, "u=0 queued %.3f ms, u=7 (sent first) %.3f ms", qh, ql);
    json_decref(jl), json_decref(jh), json_decref(jt);
    th_resp_free(&rb), th_resp_free(&rl), th_resp_free(&rh), th_resp_free(&rt);
    /* one worker, batches of one: the access log's order is the dispatch order */
    s.keep = 1;
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    const char *order[] = {"busy", "high", "triton", "low"};
    expect_log_order(&s, order, 4);
    th_acmd_cleanup(&s);
    unlink(heavy_path);
}

Test(sla, aging_lets_a_long_waiting_request_overtake) {
    th_acmd s;
    const char *extra[] = {"--aging-ms", "25", "--log-level", "info", NULL};
    int busy = start_held_busy(&s, extra);
    int old = send_png(s.port, "X-Request-Id: old\r\nPriority: u=7\r\n", 1);
    wait_queued(&s, 1);
    /* waiting is what aging rewards: after 400 ms u=7 has gained 16 levels, ahead of any fresh request */
    for (double t0 = th_now(); th_now() - t0 < 0.4;) usleep(10000);
    int fresh = send_png(s.port, "X-Request-Id: fresh\r\nPriority: u=0\r\n", 2);
    wait_queued(&s, 2);
    th_hold_end(&s);
    th_resp rb = read_resp(busy), ro = read_resp(old), rf = read_resp(fresh);
    cr_assert(rb.status == 200 && ro.status == 200 && rf.status == 200, "%d %d %d", rb.status, ro.status, rf.status);
    json_t *j = th_json(&ro);
    cr_expect_gt(num(json_object_get(j, "timing"), "queue_ms"), 400);
    json_decref(j);
    th_resp_free(&rb), th_resp_free(&ro), th_resp_free(&rf);
    s.keep = 1;
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    const char *order[] = {"busy", "old", "fresh"};
    expect_log_order(&s, order, 3);
    th_acmd_cleanup(&s);
    unlink(heavy_path);
}

Test(sla, same_urgency_goes_earliest_deadline_first_and_no_deadline_means_the_default) {
    th_acmd s;
    const char *extra[] = {"--aging-ms", "0", "--default-deadline-ms", "1000", "--log-level", "info", NULL};
    int busy = start_held_busy(&s, extra);
    int far = send_png(s.port, "X-Request-Id: far\r\nX-Deadline-Ms: 5000\r\n", 1);    /* arrives first */
    wait_queued(&s, 1);
    int none = send_png(s.port, "X-Request-Id: none\r\n", 2);                         /* arrival + 1000 ms */
    wait_queued(&s, 2);
    int mid = send_batch(s.port, 1, "\"deadline_ms\":2000", "mid");                   /* OIP parameter */
    wait_queued(&s, 3);
    th_hold_end(&s);
    th_resp rb = read_resp(busy), rf = read_resp(far), rn = read_resp(none), rm = read_resp(mid);
    cr_assert(rb.status == 200 && rf.status == 200 && rn.status == 200 && rm.status == 200, "%d %d %d %d: %s %s %s",
              rb.status, rf.status, rn.status, rm.status, rf.body, rn.body, rm.body);
    json_t *j = th_json(&rn);
    cr_expect(json_is_null(json_object_get(j, "deadline_ms")), "a request without a deadline reports one");
    cr_expect_eq(num(j, "budget_applied"), 1.0, "the default deadline must not shrink the budget");
    json_decref(j);
    th_resp_free(&rb), th_resp_free(&rf), th_resp_free(&rn), th_resp_free(&rm);
    s.keep = 1;
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    const char *order[] = {"busy", "none", "mid", "far"};
    expect_log_order(&s, order, 4);
    th_acmd_cleanup(&s);
    unlink(heavy_path);
}

/* "X-Request-Start: t=SECONDS" for a request that started `ago` seconds before now (wall clock, as a proxy stamps). */
static void request_start(char *hdr, size_t n, double ago, const char *more) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(hdr, n, "X-Request-Start: t=%.6f\r\n%s", (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - ago, more);
}

/* X-Request-Start: the deadline counts from the request's start upstream. A request that started 10 s ago without a
 * deadline of its own overtakes an earlier one in the queue (its default deadline is 9 s gone); one whose 2 s deadline
 * ran out upstream is refused at its headers; a stamp from the future or in no known unit is a 400. Decisions only:
 * the ages are seconds, the machine's speed is milliseconds. */
Test(sla, request_start_moves_the_deadline_to_where_the_client_counts_it) {
    th_acmd s;
    const char *extra[] = {"--aging-ms", "0", "--default-deadline-ms", "1000", "--log-level", "info", NULL};
    int busy = start_held_busy(&s, extra);
    int fresh = send_png(s.port, "X-Request-Id: fresh\r\n", 1);
    wait_queued(&s, 1);
    char hdr[256];
    request_start(hdr, sizeof hdr, 10, "X-Request-Id: old\r\n");
    int old = send_png(s.port, hdr, 2);
    wait_queued(&s, 2);
    request_start(hdr, sizeof hdr, 3, "X-Request-Id: late\r\nX-Deadline-Ms: 2000\r\n");
    th_resp rl = read_resp(send_png(s.port, hdr, 3)); /* answered at once: the worker is still held */
    th_expect_error(&rl, 504, "X-Request-Start");
    th_resp_free(&rl);
    const double bad_ago[] = {-30, 7200};
    for (int i = 0; i < 2; i++) {
        request_start(hdr, sizeof hdr, bad_ago[i], "");
        th_resp rb = read_resp(send_png(s.port, hdr, 4));
        th_expect_error(&rb, 400, "wrong clock or unit");
        th_resp_free(&rb);
    }
    th_resp rg = read_resp(send_png(s.port, "X-Request-Start: yesterday\r\n", 4));
    th_expect_error(&rg, 400, "X-Request-Start");
    th_resp_free(&rg);
    th_hold_end(&s);
    th_resp rb = read_resp(busy), rf = read_resp(fresh), ro = read_resp(old);
    cr_assert(rb.status == 200 && rf.status == 200 && ro.status == 200, "%d %d %d: %s %s", rb.status, rf.status,
              ro.status, rf.body, ro.body);
    json_t *j = th_json(&ro);
    cr_expect_eq(num(j, "budget_applied"), 1.0, "a stamp without a deadline must not shrink the budget");
    json_decref(j);
    th_resp_free(&rb), th_resp_free(&rf), th_resp_free(&ro);
    s.keep = 1;
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    const char *order[] = {"busy", "old", "fresh"};
    expect_log_order(&s, order, 3);
    char *log = th_acmd_log(&s);
    const char *o = strstr(log, "\"id\":\"old\"");
    cr_expect(o && strstr(o, "\"before_arrival_ms\":"), "the access log does not show the time before arrival");
    free(log);
    th_acmd_cleanup(&s);
    unlink(heavy_path);
}

Test(sla, deadline_missed_in_the_queue_is_refused_and_counted) {
    th_acmd s;
    const char *extra[] = {"--aging-ms", "0", NULL};
    int busy = start_held_busy(&s, extra);
    /* feasible when it arrives (the held batch is predicted short: the cost model cannot know it is held) ... */
    json_t *st = stats(s.port, "h");
    const double full_ms = num(json_object_get(json_object_get(st, "cost_model"), "predict_ms"), "one_item_full");
    json_decref(st);
    const double deadline = 4 * full_ms + 200;
    char hdr[96];
    snprintf(hdr, sizeof hdr, "Priority: u=7\r\nX-Deadline-Ms: %.3f\r\n", deadline);
    int late = send_png(s.port, hdr, 3);
    wait_queued(&s, 1);
    int urgent = send_batch(s.port, 1, "\"priority\":1", "urgent"); /* ahead of it */
    wait_queued(&s, 2);
    /* ... then its deadline passes while it waits (time itself is the condition) */
    for (double t0 = th_now(); th_now() - t0 < deadline * 1e-3 + 0.05;) usleep(10000);
    th_hold_end(&s);
    th_resp r = read_resp(late);
    cr_expect_eq(r.status, 504, "a request whose %.1f ms deadline passed in the queue: %s", deadline, r.body);
    json_t *j = th_json(&r);
    const char *msg = json_string_value(json_object_get(j, "error"));
    cr_expect(msg && strstr(msg, "queue"), "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    r = read_resp(urgent);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    r = read_resp(busy);
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
    cr_expect_eq(th_metric(s.port, "acm_deadline_misses_total{phase=\"queue\"} "), 1);
    cr_expect_eq(th_metric(s.port, "acm_deadline_misses_total{phase=\"admission\"} "), 0);
    st = stats(s.port, "h");
    json_t *dl = json_object_get(st, "deadlines");
    cr_expect_eq(json_integer_value(json_object_get(dl, "requests")), 1);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(dl, "misses"), "queue")), 1);
    json_decref(st);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

/* ---- the golden model: bad SLA values, binary tensors ------------------------------------------------------------ */

static th_acmd gold;
static void gold_start(void) {
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&gold, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&gold, 30), 0);
}
static void gold_stop(void) { cr_expect_eq(th_acmd_stop(&gold, SIGTERM, 10), 0); }

static void expect_400(const char *path, const char *headers, const char *body, size_t len, const char *needle) {
    th_resp r;
    cr_assert_eq(th_http(gold.port, "POST", path, headers, body, len, &r), 0);
    cr_expect_eq(r.status, 400, "%s %s: status %d: %s", headers, needle, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    const char *msg = json_string_value(json_object_get(j, "error"));
    cr_expect(msg && strstr(msg, needle), "error lacks \"%s\": %s", needle, r.body);
    json_decref(j);
    th_resp_free(&r);
}

static char *oip_image(int B, const char *params, size_t *len) {
    size_t cap = (size_t)B * 28 * 28 * 4 + 512;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"parameters\":{%s},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
                                        "\"shape\":[%d,28,28,1],\"data\":[", params, B);
    for (int i = 0; i < B * 28 * 28; i++) o += (size_t)snprintf(s + o, cap - o, "%s%d", i ? "," : "", (i * 13 + i / 28) % 256);
    o += (size_t)snprintf(s + o, cap - o, "]}]}");
    *len = o;
    return s;
}

Test(sla, bad_sla_values_are_refused_by_name, .init = gold_start, .fini = gold_stop) {
    uint8_t px[28 * 28] = {0};
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    static const struct {
        const char *hdr, *needle;
    } bad[] = {{"X-Deadline-Ms: soon\r\n", "X-Deadline-Ms"},
               {"X-Deadline-Ms: 0\r\n", "X-Deadline-Ms"},
               {"X-Deadline-Ms: -5\r\n", "X-Deadline-Ms"},
               {"X-Deadline-Ms: 1e9\r\n", "X-Deadline-Ms"},
               {"Priority: u=9\r\n", "Priority"},
               {"Priority: u=high\r\n", "Priority"},
               {"Priority: u=1,\r\n", "Priority"},
               {"X-Deadline-Ms: 500\r\nX-Compute-Policy: mean\r\n", "cap"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char h[256];
        snprintf(h, sizeof h, "Content-Type: image/png\r\n%s", bad[i].hdr);
        expect_400("/v1/models/a/classify", h, (const char *)png, n, bad[i].needle);
    }
    free(png);
    static const struct {
        const char *params, *needle;
    } badp[] = {{"\"deadline_ms\":\"soon\"", "deadline_ms"}, {"\"deadline_ms\":0", "deadline_ms"},
                {"\"priority\":-1", "priority"},           {"\"priority\":1.5", "priority"},
                {"\"priority\":\"high\"", "priority"},     {"\"compute_policy\":\"argmax\",\"deadline_ms\":100", "cap"}};
    for (size_t i = 0; i < sizeof badp / sizeof *badp; i++) {
        size_t len;
        char *b = oip_image(1, badp[i].params, &len);
        expect_400("/v2/models/a/infer", "Content-Type: application/json\r\n", b, len, badp[i].needle);
        free(b);
    }
    /* an OIP deadline and priority that are fine: 200 with them reported */
    size_t len;
    char *b = oip_image(1, "\"deadline_ms\":5000,\"priority\":3", &len);
    th_resp r;
    cr_assert_eq(th_http(gold.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", b, len, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    json_t *j = json_loads(r.body, 0, NULL), *p = json_object_get(j, "parameters");
    cr_expect_eq(num(p, "deadline_ms"), 5000);
    cr_expect_eq(json_integer_value(json_object_get(p, "urgency")), 2);
    cr_expect_leq(num(p, "predicted_ms"), 5000);
    json_decref(j);
    th_resp_free(&r);
    free(b);
}

/* Request bytes for the binary extension: JSON header + raw input bytes; returns the body, *hl the header length. */
static char *binary_request(int B, const uint8_t *px, int out_binary, size_t *len, size_t *hl) {
    char hdr[512];
    int k = snprintf(hdr, sizeof hdr,
                     "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[%d,28,28,1],"
                     "\"parameters\":{\"binary_data_size\":%d}}]%s}", B, B * 28 * 28,
                     out_binary ? ",\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}},"
                                  "{\"name\":\"label\",\"parameters\":{\"binary_data\":true}}]" : "");
    char *b = malloc((size_t)k + (size_t)B * 28 * 28);
    memcpy(b, hdr, (size_t)k);
    memcpy(b + k, px, (size_t)B * 28 * 28);
    *hl = (size_t)k, *len = (size_t)k + (size_t)B * 28 * 28;
    return b;
}

Test(sla, binary_and_json_tensors_give_identical_results, .init = gold_start, .fini = gold_stop) {
    enum { B = 3 };
    uint8_t px[B * 28 * 28];
    for (int i = 0; i < B * 28 * 28; i++) px[i] = (uint8_t)((i * 13 + i / 28) % 256);
    size_t jlen;
    char *js = oip_image(B, "", &jlen);
    th_resp rj;
    cr_assert_eq(th_http(gold.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", js, jlen, &rj), 0);
    free(js);
    cr_assert_eq(rj.status, 200, "%s", rj.body);
    json_t *jj = th_json(&rj);
    json_t *lg_json = json_object_get(json_array_get(json_object_get(jj, "outputs"), 0), "data");
    json_t *lb_json = json_object_get(json_array_get(json_object_get(jj, "outputs"), 1), "data");
    cr_assert_eq(json_array_size(lg_json), B * 10);
    for (int out_binary = 0; out_binary < 2; out_binary++) {
        size_t len, hl;
        char *b = binary_request(B, px, out_binary, &len, &hl);
        char h[160];
        snprintf(h, sizeof h, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n", hl);
        th_resp r;
        cr_assert_eq(th_http(gold.port, "POST", "/v2/models/a/infer", h, b, len, &r), 0);
        free(b);
        cr_assert_eq(r.status, 200, "%s", r.body);
        char ihcl[32];
        if (!out_binary) {
            json_t *j = th_json(&r);
            json_t *lg = json_object_get(json_array_get(json_object_get(j, "outputs"), 0), "data");
            for (int i = 0; i < B * 10; i++)
                cr_expect_eq(json_number_value(json_array_get(lg, (size_t)i)), json_number_value(json_array_get(lg_json, (size_t)i)),
                             "logit %d differs between binary and JSON inputs", i);
            cr_expect(!th_header(&r, "Inference-Header-Content-Length", ihcl, sizeof ihcl));
            json_decref(j);
        } else {
            cr_assert(th_header(&r, "Inference-Header-Content-Length", ihcl, sizeof ihcl), "%s", r.head);
            const size_t jl = (size_t)atol(ihcl);
            cr_assert_leq(jl, r.len);
            json_t *j = json_loadb(r.body, jl, 0, NULL);
            cr_assert(j, "JSON header of %zu bytes does not parse", jl);
            json_t *o0 = json_array_get(json_object_get(j, "outputs"), 0), *o1 = json_array_get(json_object_get(j, "outputs"), 1);
            const size_t n0 = (size_t)json_integer_value(json_object_get(json_object_get(o0, "parameters"), "binary_data_size"));
            const size_t n1 = (size_t)json_integer_value(json_object_get(json_object_get(o1, "parameters"), "binary_data_size"));
            cr_assert_eq(n0, B * 10 * 4);
            cr_assert_eq(jl + n0 + n1, r.len, "binary section of %zu bytes, outputs say %zu + %zu", r.len - jl, n0, n1);
            for (int i = 0; i < B * 10; i++) {
                float f;
                memcpy(&f, r.body + jl + 4 * i, 4);
                cr_expect_eq(f, (float)json_number_value(json_array_get(lg_json, (size_t)i)), "binary logit %d: %.9g", i, f);
            }
            const char *p = r.body + jl + n0;
            for (int i = 0; i < B; i++) { /* BYTES: 4-byte little-endian length, then the bytes */
                uint32_t l;
                memcpy(&l, p, 4);
                const char *want = json_string_value(json_array_get(lb_json, (size_t)i));
                cr_expect(l == strlen(want) && memcmp(p + 4, want, l) == 0, "label %d", i);
                p += 4 + l;
            }
            json_decref(j);
        }
        th_resp_free(&r);
    }
    json_decref(jj);
    th_resp_free(&rj);
    /* malformed binary requests: 400 naming what is wrong */
    size_t len, hl;
    char *b = binary_request(1, px, 0, &len, &hl);
    char h[200];
    snprintf(h, sizeof h, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n", hl);
    expect_400("/v2/models/a/infer", h, b, len - 1, "binary_data_size");   /* section one byte short */
    snprintf(h, sizeof h, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %zu\r\n", hl - 1);
    expect_400("/v2/models/a/infer", h, b, len, "JSON");                   /* header cut short */
    expect_400("/v2/models/a/infer", "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: x\r\n",
               b, len, "Inference-Header-Content-Length");
    expect_400("/v2/models/a/infer", "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: 99999\r\n",
               b, len, "Inference-Header-Content-Length");
    free(b);
    const char *unk = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,1,1,1],\"data\":[1]}],"
                      "\"outputs\":[{\"name\":\"probs\"}]}";
    expect_400("/v2/models/a/infer", "Content-Type: application/json\r\n", unk, strlen(unk), "probs");
}

/* A deadline that not even the floor can make is refused at the headers: the 504 comes back although the body was
 * never sent, and nothing ran. */
Test(sla, a_hopeless_deadline_is_refused_before_the_body_is_read) {
    th_acmd s;
    start_heavy(&s, NULL);
    json_t *st = stats(s.port, "h");
    const double floor_ms = num(json_object_get(json_object_get(st, "cost_model"), "predict_ms"), "one_item_floor");
    json_decref(st);
    cr_assert_gt(floor_ms, 0);
    const char *paths[] = {"/v1/models/h/classify", "/v2/models/h/infer"};
    const char *types[] = {"image/png", "application/json"};
    for (int i = 0; i < 2; i++) {
        int fd = th_connect(s.port);
        cr_assert(fd >= 0);
        char head[512];
        const int hn = snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
                                                   "X-Deadline-Ms: %.4f\r\nContent-Length: 100000\r\n\r\n",
                                paths[i], types[i], floor_ms / 3);
        cr_assert_eq(send(fd, head, (size_t)hn, 0), hn);
        th_resp r = read_resp(fd); /* no body sent: only an answer at the headers can come back */
        th_expect_error(&r, 504, "before the body was read");
        th_resp_free(&r);
    }
    cr_expect_eq(th_metric(s.port, "acm_deadline_misses_total{phase=\"admission\"} "), 2);
    cr_expect_eq(th_metric(s.port, "reason=\"deadline\"} "), 2);
    cr_expect_eq(th_metric(s.port, "acm_batch_size_count{model=\"h\"} "), 0);
    json_t *st2 = stats(s.port, "h");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(st2, "deadlines"), "requests")), 2);
    json_decref(st2);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

/* --beta-floor: the same model served as h with a floor of 0.5 and as g with its own beta_min (0.05). A deadline
 * between g's predicted time at 0.05 and h's at 0.5 is served by g and shed by h (504 at admission, not a garbage
 * answer at a budget below the floor); no budget of h goes under 0.5. */
Test(sla, the_beta_floor_sheds_what_cannot_make_it_at_the_floor) {
    th_acmd s;
    static char h_arg[400], g_arg[400];
    snprintf(h_arg, sizeof h_arg, "h=%s", heavy_model());
    snprintf(g_arg, sizeof g_arg, "g=%s", heavy_path);
    const char *args[] = {"--model", h_arg, "--model", g_arg, "--beta-floor", "h=0.5", "--workers", "1", "--max-batch",
                          "1", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 60), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/h", NULL, NULL, 0, &r), 0);
    json_t *meta = th_json(&r);
    cr_expect_float_eq(num(meta, "beta_floor"), 0.5, 1e-9);
    cr_expect_float_eq(num(meta, "beta_min"), BETA_MIN, 1e-6, "the model card's own figure is still shown");
    json_decref(meta);
    th_resp_free(&r);
    json_t *sh = stats(s.port, "h"), *sg = stats(s.port, "g");
    const double h_floor = num(json_object_get(json_object_get(sh, "cost_model"), "predict_ms"), "one_item_floor");
    const double g_floor = num(json_object_get(json_object_get(sg, "cost_model"), "predict_ms"), "one_item_floor");
    json_decref(sh), json_decref(sg);
    cr_assert_lt(g_floor * 1.5, h_floor, "the learners dominate: beta 0.05 (%g ms) well under beta 0.5 (%g ms)", g_floor,
                 h_floor);
    char hdr[64];
    snprintf(hdr, sizeof hdr, "X-Deadline-Ms: %.4f\r\n", (g_floor + h_floor) / 2);
    size_t n;
    uint8_t *png = heavy_png(3, &n);
    char head[256];
    snprintf(head, sizeof head, "Content-Type: image/png\r\n%s", hdr);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/h/classify", head, png, n, &r), 0);
    th_expect_error(&r, 504, "budget floor 0.5");
    th_resp_free(&r);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/g/classify", head, png, n, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    /* a ceiling under the floor is raised to it */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/h/classify", "Content-Type: image/png\r\nX-Compute-Budget: 0.1\r\n",
                         png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    cr_expect_float_eq(num(j, "budget_applied"), 0.5, 1e-9);
    cr_expect(json_is_true(json_object_get(j, "budget_raised")));
    json_decref(j);
    th_resp_free(&r);
    free(png);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

Test(sla, beta_floor_flag_and_file_key_are_checked_and_round_trip) {
    const char *b = getenv("ACM_BUILD");
    b = b && *b ? b : "build";
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "d=$(mktemp -d) && %s/acmd --model a=tests/golden/vit_a.safetensors --beta-floor a=0.3 --print-config > "
             "$d/c.json && %s/acmd --config $d/c.json --print-config | cmp -s - $d/c.json && "
             "grep -q '\"beta_floor\": 0.3' $d/c.json; rc=$?; rm -rf $d; exit $rc", b, b);
    cr_expect_eq(system(cmd), 0, "--beta-floor does not round-trip through --config");
    const char *bad[] = {"--beta-floor a=2", "--beta-floor a=", "--beta-floor a", "--beta-floor zz=0.3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors %s --listen 127.0.0.1:0 2>/dev/null",
                 b, bad[i]);
        cr_expect_eq(WEXITSTATUS(system(cmd)), 2, "%s accepted", bad[i]);
    }
}
