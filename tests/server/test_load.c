/*
 * test_load.c — acmd under concurrency and failure: many clients with different images each get their own answer,
 * the bounded queue answers 429 + Retry-After, a client that leaves while queued is cancelled without running,
 * 503 while warming up, the SIGTERM drain step by step (grace period, listener closed, queued requests run, exit
 * timeout, second signal, exit 0), the request timeout against a drip-feeding client, the per-IP connection limit,
 * and drip-feeders do not slow a normal client down. A worker is busy because the test holds it (--test-hold,
 * tests/server/harness.h), never because a batch is assumed to take long: the tests hold on any CPU.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acm.h"
#include "image.h"
#include "server/harness.h"

TestSuite(load, .timeout = 90);

static void picture(uint8_t *px, int w, int h, int seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) px[y * w + x] = (uint8_t)((x * (7 + seed) + y * (13 + 3 * seed) + seed * 31) % 256);
}

/* ---- many clients at once ---------------------------------------------------------------------------------------- */

#define NCLIENTS 16
#define PER_CLIENT 8

typedef struct {
    int port, client;
    int ok, mismatched;
    const int *want; /* [NCLIENTS * PER_CLIENT] expected labels */
    char msg[256];
} client_arg;

static void *client_main(void *p) {
    client_arg *a = p;
    for (int i = 0; i < PER_CLIENT; i++) {
        int idx = a->client * PER_CLIENT + i;
        uint8_t px[28 * 28];
        picture(px, 28, 28, idx);
        size_t n;
        uint8_t *png = th_png(px, 28, 28, 1, &n);
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Content-Type: image/png\r\nX-Request-Id: c%d-i%d\r\n", a->client, i);
        th_resp r;
        if (th_http(a->port, "POST", "/v1/models/a/classify", hdr, png, n, &r) == 0 && r.status == 200) {
            json_t *j = json_loads(r.body, 0, NULL);
            char want_id[32], got_id[160];
            snprintf(want_id, sizeof want_id, "c%d-i%d", a->client, i);
            const char *bid = json_string_value(json_object_get(j, "id"));
            if (th_header(&r, "X-Request-Id", got_id, sizeof got_id) && !strcmp(got_id, want_id) && bid &&
                !strcmp(bid, want_id) && json_integer_value(json_object_get(j, "index")) == a->want[idx])
                a->ok++;
            else
                a->mismatched++, snprintf(a->msg, sizeof a->msg, "%s: %.200s", want_id, r.body);
            json_decref(j);
        } else {
            snprintf(a->msg, sizeof a->msg, "request failed: status %d", r.status);
        }
        th_resp_free(&r);
        free(png);
    }
    return NULL;
}

Test(load, many_clients_each_get_their_own_answer) {
    /* expected labels from the engine in-process (argmax policy: no budget interplay between batch members) */
    static int want[NCLIENTS * PER_CLIENT];
    char err[256];
    acm_model *m = acm_model_load("tests/golden/vit_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker_params wp = acm_worker_default_params();
    wp.max_batch = 1;
    acm_worker *w = acm_worker_new(m, wp, err, sizeof err);
    acm_image_params ip = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};
    for (int i = 0; i < NCLIENTS * PER_CLIENT; i++) {
        uint8_t px[28 * 28];
        float x[28 * 28], lg[10];
        picture(px, 28, 28, i);
        cr_assert_eq(acm_image_u8_to_tensor(x, px, 28, 28, 1, &ip, err, sizeof err), 0);
        acm_item it = {.pixels = x, .policy = acm_policy_default()};
        acm_result res = {.logits = lg};
        cr_assert_eq(acm_worker_run(w, &it, &res, 1, err, sizeof err), 0);
        want[i] = 0;
        for (int k = 1; k < 10; k++)
            if (lg[k] > lg[want[i]]) want[i] = k;
    }
    acm_worker_free(w);
    acm_model_free(m);
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "2", "--max-batch", "8",
                          "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    pthread_t t[NCLIENTS];
    client_arg ca[NCLIENTS];
    for (int c = 0; c < NCLIENTS; c++) {
        ca[c] = (client_arg){.port = s.port, .client = c, .want = want};
        pthread_create(&t[c], NULL, client_main, &ca[c]);
    }
    int ok = 0;
    for (int c = 0; c < NCLIENTS; c++) {
        pthread_join(t[c], NULL);
        ok += ca[c].ok;
        cr_expect_eq(ca[c].ok, PER_CLIENT, "client %d: %d ok; %s", c, ca[c].ok, ca[c].msg);
    }
    cr_expect_eq(ok, NCLIENTS * PER_CLIENT);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_expect(strstr(r.body, "outcome=\"success\"} 128"), "success count");
    th_resp_free(&r);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* ---- heavy model: queueing, cancellation, drain ------------------------------------------------------------------ */

static char heavy_path[300];
static const char *heavy_model(void) {
    snprintf(heavy_path, sizeof heavy_path, "/tmp/acmd-heavy-%d.safetensors", (int)getpid());
    cr_assert_eq(th_heavy_model(heavy_path, 64, 4, 128, 4), 0, "cannot write the heavy model");
    return heavy_path;
}

/* A POST of a 64x64 PNG to the heavy model with extra headers ("Name: value\r\n"...), sent but not read: returns
 * the socket. */
static int send_heavy_hdr(int port, const char *id, const char *extra) {
    static uint8_t *png;
    static size_t n;
    if (!png) {
        uint8_t px[64 * 64];
        picture(px, 64, 64, 1);
        png = th_png(px, 64, 64, 1, &n);
    }
    int fd = th_connect(port);
    cr_assert(fd >= 0);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "POST /v1/models/h/classify HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: image/png\r\n"
                      "X-Request-Id: %s\r\n%sContent-Length: %zu\r\n\r\n", id, extra, n);
    cr_assert_eq(send(fd, head, (size_t)hn, 0), hn);
    cr_assert_eq(send(fd, png, n, 0), (ssize_t)n);
    return fd;
}

static int send_heavy(int port, const char *id) { return send_heavy_hdr(port, id, ""); }

/* Waits for the exit (status 0), then expects `needle` in the server's log. */
static void stop_expect_log(th_acmd *s, const char *needle, const char *what) {
    s->keep = 1;
    cr_expect_eq(th_acmd_stop(s, 0, 20), 0, "exit status %s", what);
    char *log = th_acmd_log(s);
    cr_expect(strstr(log, needle), "%s", log);
    free(log);
    th_acmd_cleanup(s);
}

/* The heavy model on one worker under the worker hold (harness.h): every batch waits until the test releases it.
 * warm: release the warm-up and wait until ready. */
static void start_held(th_acmd *s, const char *const *extra, int warm) {
    static char model_arg[400];
    snprintf(model_arg, sizeof model_arg, "h=%s", heavy_model());
    const char *base[] = {"--model", model_arg, "--workers", "1", "--max-batch", "4", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start_with(s, base, extra, 1), 0);
    if (!warm) return;
    th_hold_release(s, 1);
    cr_assert_eq(th_acmd_wait_ready(s, 60), 0);
}

/* Polls /metrics until series reads v; returns the last value read. */
static double wait_metric(int port, const char *series, double v, double timeout_s) {
    double got = -1;
    for (double t0 = th_now(); th_now() - t0 < timeout_s; usleep(5000))
        if ((got = th_metric(port, series)) == v) break;
    return got;
}

static int status_of(int fd) {
    th_resp r;
    int st = th_read_response(fd, &r) == 0 ? r.status : -1;
    if (st >= 0) th_resp_free(&r);
    close(fd);
    return st;
}

Test(load, client_that_leaves_while_queued_is_cancelled_not_run) {
    th_acmd s;
    start_held(&s, NULL, 1);
    int busy = send_heavy(s.port, "busy"); /* held on the only worker */
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0);
    int leaver = send_heavy(s.port, "leaver");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    close(leaver); /* gone while queued */
    th_hold_end(&s);
    cr_expect_eq(status_of(busy), 200);
    cr_expect_eq(wait_metric(s.port, "outcome=\"cancelled\"} ", 1, 10), 1);
    cr_expect_eq(th_metric(s.port, "outcome=\"success\"} "), 1);
    /* never run: the only batch is the busy request's */
    cr_expect_eq(th_metric(s.port, "acm_batch_size_count{model=\"h\"} "), 1);
    cr_expect_eq(th_metric(s.port, "acm_flops_executed_total{model=\"h\"} ") > 0, 1);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

Test(load, queue_full_answers_429_with_retry_after) {
    th_acmd s;
    const char *extra[] = {"--max-queue", "1", NULL};
    start_held(&s, extra, 1);
    int busy = send_heavy(s.port, "busy");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0);
    int queued = send_heavy(s.port, "q1");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    th_resp r;
    int fd = send_heavy(s.port, "q2");
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_expect_eq(r.status, 429, "%s", r.body);
    char ra[16];
    cr_expect(th_header(&r, "Retry-After", ra, sizeof ra), "no Retry-After: %s", r.head);
    th_resp_free(&r);
    th_hold_end(&s);
    cr_expect_eq(status_of(busy), 200);
    cr_expect_eq(status_of(queued), 200);
    cr_expect_eq(th_metric(s.port, "reason=\"queue_full\"} "), 1);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

/* ---- the drain (server/server.c) ----------------------------------------------------------------------------------- */

static int http_status(int port, const char *path) {
    th_resp r;
    if (th_http(port, "GET", path, NULL, NULL, 0, &r)) return -1;
    int st = r.status;
    th_resp_free(&r);
    return st;
}

/* Grace period: readiness 503 at once, live 200, the listener stays open and a request that arrives then is accepted
 * and answered; what was queued runs; a second signal ends it at once: what is queued then gets 503, exit 0. */
Test(load, drain_grace_keeps_accepting_then_a_second_signal_stops_cleanly) {
    th_acmd s;
    const char *extra[] = {"--drain-grace-s", "600", "--max-batch", "1", "--log-level", "info", NULL};
    start_held(&s, extra, 1);
    int busy = send_heavy(s.port, "busy");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0);
    int queued = send_heavy(s.port, "queued");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    kill(s.pid, SIGTERM);
    int ready = 0;
    for (double t0 = th_now(); th_now() - t0 < 10 && (ready = http_status(s.port, "/v2/health/ready")) != 503;) usleep(2000);
    cr_expect_eq(ready, 503, "readiness did not turn 503 after SIGTERM");
    cr_expect_eq(http_status(s.port, "/v2/health/live"), 200);
    int during = send_heavy(s.port, "during"); /* a new connection, in the grace period */
    cr_assert_eq(th_wait_stats(&s, "h", 1, 2, 10), 0, "a request sent in the grace period was not queued");
    th_hold_release(&s, 2); /* busy, then queued */
    th_resp r;
    cr_assert_eq(th_read_response(busy, &r), 0);
    cr_expect_eq(r.status, 200, "in flight: %s", r.body);
    char conn[32];
    cr_expect(th_header(&r, "Connection", conn, sizeof conn) && !strcmp(conn, "close"), "draining answers close");
    th_resp_free(&r);
    close(busy);
    cr_expect_eq(status_of(queued), 200, "queued before the signal");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0); /* "during" is held on the worker now */
    int late = send_heavy(s.port, "late"); /* still in the grace period: queued */
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    kill(s.pid, SIGTERM); /* second signal: now */
    cr_expect_eq(status_of(late), 503, "queued at the second signal");
    stop_expect_log(&s, "second signal", "after a second signal"); /* releases "during" */
    close(during);
    unlink(heavy_path);
}

/* No grace: the listener closes at once, every request already accepted runs (none is lost), a deadline request
 * whose deadline passes in the queue gets its 504, and the process exits 0 once all are answered. */
Test(load, drain_without_grace_runs_every_accepted_request_and_exits_0) {
    th_acmd s;
    const char *extra[] = {"--drain-grace-s", "0", "--log-level", "info", NULL};
    start_held(&s, extra, 1);
    int busy = send_heavy(s.port, "busy");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0);
    /* a deadline request: admitted (only the held batch is ahead of it, predicted to take far less than 4 s even
     * under a sanitizer on a loaded machine), then its deadline passes while held */
    int dl = send_heavy_hdr(s.port, "dl", "X-Deadline-Ms: 4000\r\n");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    const double t_sent = th_now();
    int q[3];
    for (int i = 0; i < 3; i++) {
        char id[16];
        snprintf(id, sizeof id, "q%d", i);
        q[i] = send_heavy(s.port, id);
        cr_assert_eq(th_wait_stats(&s, "h", 1, i + 2, 10), 0);
    }
    kill(s.pid, SIGTERM);
    cr_expect_eq(th_wait_refused(s.port, 10), 0, "the listener stayed open without a grace period");
    while (th_now() - t_sent < 4.2) usleep(10000); /* the deadline passes (time itself is the condition here) */
    th_hold_end(&s);
    cr_expect_eq(status_of(busy), 200);
    for (int i = 0; i < 3; i++) cr_expect_eq(status_of(q[i]), 200, "q%d was accepted before the signal", i);
    cr_expect_eq(status_of(dl), 504, "a deadline that passed in the queue");
    stop_expect_log(&s, "drained: 0 in flight, 0 suspended", "after the drain");
    unlink(heavy_path);
}

/* --exit-timeout 0 with a batch in flight: what is queued gets 503, the process exits 0 once the batch ends (it used
 * to free the workers and then write to them: SIGSEGV, exit 139). */
Test(load, exit_timeout_with_a_batch_in_flight_answers_503_and_exits_0) {
    th_acmd s;
    const char *extra[] = {"--drain-grace-s", "0", "--exit-timeout", "0", NULL};
    start_held(&s, extra, 1);
    int busy = send_heavy(s.port, "busy");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 0, 10), 0);
    int queued = send_heavy(s.port, "queued");
    cr_assert_eq(th_wait_stats(&s, "h", 1, 1, 10), 0);
    kill(s.pid, SIGTERM);
    cr_expect_eq(status_of(queued), 503);
    cr_expect_eq(th_acmd_stop(&s, 0, 20), 0, "exit status (139: the shutdown crash)"); /* the batch ends now */
    close(busy);
    unlink(heavy_path);
}

Test(load, not_ready_while_warming_up) {
    th_acmd s;
    start_held(&s, NULL, 0); /* the warm-up waits for the test */
    cr_expect_eq(http_status(s.port, "/v2/health/ready"), 503);
    th_resp r;
    int fd = send_heavy(s.port, "early");
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_expect_eq(r.status, 503, "%s", r.body);
    cr_expect(strstr(r.body, "warming up"), "%s", r.body);
    th_resp_free(&r);
    cr_expect_eq(http_status(s.port, "/v2/health/live"), 200);
    th_hold_end(&s);
    cr_expect_eq(th_acmd_wait_ready(&s, 60), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0);
    unlink(heavy_path);
}

/* ---- slow clients ------------------------------------------------------------------------------------------------ */

Test(load, request_timeout_closes_a_drip_feeder) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--request-timeout", "1",
                          "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    int fd = th_connect(s.port);
    const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    double t0 = th_now();
    int closed = 0;
    for (size_t i = 0; i < 100 && !closed; i++) { /* one byte every 100 ms, forever */
        if (send(fd, i < strlen(req) ? req + i : "a", 1, MSG_NOSIGNAL) != 1) closed = 1;
        usleep(100000);
        char c;
        ssize_t k = recv(fd, &c, 1, MSG_DONTWAIT);
        if (k == 0) closed = 1;
    }
    double dt = th_now() - t0;
    cr_expect(closed, "the drip-feeder was never closed");
    cr_expect(dt < 3.0, "closed after %.2f s (timeout 1 s)", dt);
    close(fd);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* Polls until the server counts `n` open connections (the metrics request itself included). */
static void wait_connections(int port, int n) {
    double v = -1;
    for (double t0 = th_now(); th_now() - t0 < 10 && (v = th_metric(port, "\nacm_http_connections ")) != n;) usleep(5000);
    cr_assert_eq(v, n, "the server counts %.0f connections, want %d", v, n);
}

/* A keep-alive request on fd, and the first bytes of its answer: the server has accepted fd and holds it open. */
static void accepted(int fd) {
    const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[4096];
    cr_assert_gt(recv(fd, buf, sizeof buf, 0), 0, "no answer on an accepted connection");
}

Test(load, per_ip_connection_limit) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-per-ip", "2",
                          "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    wait_connections(s.port, 1); /* the readiness probe's connection is gone */
    int a = th_connect(s.port), b = th_connect(s.port);
    accepted(a), accepted(b);
    int c = th_connect(s.port);
    const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(c, req, strlen(req), MSG_NOSIGNAL);
    th_resp r;
    cr_expect_neq(th_read_response(c, &r), 0, "third connection from one address was served");
    if (r.body) th_resp_free(&r);
    close(a), close(b), close(c);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* Over --max-connections, MHD stops accepting: a further connection waits in the listen backlog, unanswered, until a
 * slot frees. */
Test(load, connection_limit) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-connections", "2",
                          "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    wait_connections(s.port, 1);
    int a = th_connect(s.port), b = th_connect(s.port);
    accepted(a), accepted(b);
    int c = th_connect(s.port);
    const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send(c, req, strlen(req), MSG_NOSIGNAL);
    /* not served while both slots are held (a wait can only let this pass wrongly, never fail it wrongly) */
    usleep(200000);
    char ch;
    cr_expect_lt(recv(c, &ch, 1, MSG_DONTWAIT), 0, "a connection over --max-connections was served at once");
    close(a), close(b);
    th_resp r;
    cr_expect_eq(th_read_response(c, &r), 0, "the waiting connection was not served after a slot freed");
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
    close(c);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* 200 clients drip-feed their headers (slowloris: each sends one byte a second, round-robin, so the server sees a
 * byte every 5 ms and holds 200 half-received requests); a normal client's p99 over 200 requests stays below 2x its
 * p99 without them. */
#define NDRIP 200
static volatile int drip_stop, drip_open;
static void *drip_main(void *p) {
    int port = *(int *)p, fds[NDRIP];
    size_t pos[NDRIP] = {0};
    for (int i = 0; i < NDRIP; i++) fds[i] = th_connect(port);
    const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nX-Drip: ";
    for (int i = 0; !drip_stop; i = (i + 1) % NDRIP) {
        if (fds[i] >= 0) {
            send(fds[i], pos[i] < strlen(req) ? req + pos[i] : "a", 1, MSG_NOSIGNAL);
            pos[i]++;
        }
        usleep(1000000 / NDRIP);
    }
    int open = 0;
    for (int i = 0; i < NDRIP; i++) {
        char c;
        if (fds[i] >= 0 && recv(fds[i], &c, 1, MSG_DONTWAIT) < 0) open++; /* EAGAIN: still connected, unanswered */
        if (fds[i] >= 0) close(fds[i]);
    }
    drip_open = open;
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double p99_classify(int port, const uint8_t *png, size_t n) {
    double t[200];
    for (int i = 0; i < 200; i++) {
        th_resp r;
        double t0 = th_now();
        cr_assert_eq(th_http(port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
        t[i] = th_now() - t0;
        cr_assert_eq(r.status, 200);
        th_resp_free(&r);
    }
    qsort(t, 200, sizeof *t, cmp_d);
    return t[197];
}

Test(load, drip_feeders_do_not_slow_a_normal_client) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    uint8_t px[28 * 28];
    picture(px, 28, 28, 0);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    /* The machine is shared: a p99 of 200 samples catches scheduler hiccups of ~10 ms from other processes. A real
     * slowdown shows in every attempt; noise does not, so up to three attempts, each a fresh baseline then the same
     * client with the drip-feeders connected. */
    double base = 0, with = 0, ref = 0;
    for (int attempt = 0; attempt < 3; attempt++) {
        base = p99_classify(s.port, png, n);
        drip_stop = 0, drip_open = 0;
        pthread_t t;
        pthread_create(&t, NULL, drip_main, &s.port);
        usleep(1200000); /* every drip-feeder has sent a few bytes */
        with = p99_classify(s.port, png, n);
        drip_stop = 1;
        pthread_join(t, NULL);
        cr_expect_eq(drip_open, NDRIP, "only %d of the drip-feeders were still connected", drip_open);
        /* a floor of 1 ms for the baseline: sub-millisecond p99s are mostly scheduler noise */
        ref = base > 1e-3 ? base : 1e-3;
        cr_log_info("attempt %d: p99 %.3f ms with %d drip-feeders, %.3f ms without", attempt, with * 1e3, NDRIP, base * 1e3);
        if (with < 2 * ref) break;
    }
    cr_expect_lt(with, 2 * ref, "p99 %.3f ms with %d drip-feeders vs %.3f ms without", with * 1e3, NDRIP, base * 1e3);
    free(png);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}
