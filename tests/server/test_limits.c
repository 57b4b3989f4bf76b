/*
 * test_limits.c — what keeps acmd's I/O thread and memory bounded whatever clients send (docs/DESIGN.md §6, limits):
 * the budget of buffered bytes (--max-buffered-bytes: 503 + Retry-After before the body when Content-Length passes
 * it, when a chunked body grows past it; released when requests end; the acm_buffered_bytes gauge), the OIP
 * parameters limit of the admission peek, the cost model learning from the engine's time only, and the default of
 * --max-per-ip. Every wait is a poll of a condition with a bounded timeout.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/harness.h"

static void start(th_acmd *s, const char *const *args) {
    cr_assert_eq(th_acmd_start(s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(s, 30), 0, "acmd not ready");
}

static void send_str(int fd, const char *s) { cr_assert_eq(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s)); }

/* Polls the gauge acm_buffered_bytes until it equals want (returns 1) or 10 s pass (0). */
static int gauge_becomes(int port, double want, double *last) {
    const double t0 = th_now();
    do {
        *last = th_metric(port, "\nacm_buffered_bytes ");
        if (*last == want) return 1;
        usleep(10000);
    } while (th_now() - t0 < 10);
    return 0;
}

static uint8_t *grey_png(int w, int h, size_t *len) {
    uint8_t *px = malloc((size_t)w * h);
    for (int i = 0; i < w * h; i++) px[i] = (uint8_t)(i * 37 % 251);
    uint8_t *png = th_png(px, w, h, 1, len);
    free(px);
    return png;
}

/* Uploads that stall hold the budget (Content-Length reserved at the headers); a request that would pass it is answered
 * 503 with Retry-After before its body is read (and a chunked one when its body grows past it); once the uploads end
 * the budget is free again and the gauge is back at 0. */
Test(limits, buffered_bytes_budget_refuses_then_recovers, .timeout = 90) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-body-bytes", "65536",
                          "--max-buffered-bytes", "100000", "--log-level", "warn", NULL};
    start(&s, args);
    double g;
    cr_expect(gauge_becomes(s.port, 0, &g), "gauge %g at start", g);
    /* A: announces 60000 bytes, sends 10, stalls */
    int a = th_connect(s.port);
    cr_assert_geq(a, 0);
    send_str(a, "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 60000\r\n\r\n");
    send_str(a, "\x89PNG\r\n\x1a\n\0\0");
    cr_assert(gauge_becomes(s.port, 60000, &g), "gauge %g with one upload of 60000 bytes held", g);
    /* B: 60000 more would pass 100000: 503 + Retry-After at the headers (no body sent) */
    int b = th_connect(s.port);
    send_str(b, "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 60000\r\n"
                "Connection: close\r\n\r\n");
    th_resp r;
    cr_assert_eq(th_read_response(b, &r), 0);
    close(b);
    cr_expect_eq(r.status, 503, "%d %s", r.status, r.body);
    char v[64];
    cr_expect(th_header(&r, "Retry-After", v, sizeof v), "no Retry-After: %s", r.head);
    cr_expect(strstr(r.body, "--max-buffered-bytes"), "%s", r.body);
    th_resp_free(&r);
    /* C: chunked (no Content-Length), 48 KiB: its buffer grows past what is left (40000) -> 503 at the end */
    int c = th_connect(s.port);
    send_str(c, "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
    char chunk[4096 + 16];
    memset(chunk, 'x', sizeof chunk);
    memcpy(chunk, "1000\r\n", 6);
    memcpy(chunk + 6 + 4096, "\r\n", 2);
    for (int i = 0; i < 12; i++) cr_assert_eq(send(c, chunk, 6 + 4096 + 2, MSG_NOSIGNAL), 6 + 4096 + 2);
    send_str(c, "0\r\n\r\n");
    cr_assert_eq(th_read_response(c, &r), 0);
    close(c);
    cr_expect_eq(r.status, 503, "%d %s", r.status, r.body);
    cr_expect(th_header(&r, "Retry-After", v, sizeof v), "no Retry-After: %s", r.head);
    th_resp_free(&r);
    cr_expect(gauge_becomes(s.port, 60000, &g), "gauge %g: the refused chunked body was not released", g);
    cr_expect_eq(th_metric(s.port, "acm_inference_rejections_total{model=\"a\",reason=\"memory\"} "), 2);
    /* A leaves: its reservation is released, and a request of the same size goes through */
    close(a);
    cr_expect(gauge_becomes(s.port, 0, &g), "gauge %g after the stalled upload closed", g);
    size_t n;
    uint8_t *png = grey_png(28, 28, &n);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(th_http(s.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
        cr_expect_eq(r.status, 200, "%d %s", r.status, r.body);
        th_resp_free(&r);
    }
    free(png);
    cr_expect(gauge_becomes(s.port, 0, &g), "gauge %g after requests completed", g);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

Test(limits, buffered_bytes_option_is_checked) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--max-body-bytes", "65536",
                          "--max-buffered-bytes", "1000", NULL};
    cr_assert_eq(th_acmd_start(&s, args), -1, "acmd accepted --max-buffered-bytes below --max-body-bytes");
    th_acmd_cleanup(&s);
}

/* An 8 MB OIP body whose parameters value is one huge array: 400 from the peek's bound (a scan, not a decode on the
 * I/O thread: tests/proto/test_oip.c counts its allocations), and the server answers the next request. */
Test(limits, huge_oip_parameters_are_refused, .timeout = 90) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-level", "warn", NULL};
    start(&s, args);
    const size_t N = 8000000;
    char *b = malloc(N + 8);
    size_t o = (size_t)sprintf(b, "{\"parameters\":[0");
    while (o + 4 < N) b[o++] = ',', b[o++] = '0';
    b[o++] = ']', b[o++] = '}';
    th_resp r;
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", b, o, &r), 0);
    free(b);
    cr_expect_eq(r.status, 400, "%d %s", r.status, r.body);
    cr_expect(strstr(r.body, "parameters") && strstr(r.body, "65536"), "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(th_http(s.port, "GET", "/v2/health/live", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

static json_t *get_json(int port, const char *path) {
    th_resp r;
    cr_assert_eq(th_http(port, "GET", path, NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s: %d %s", path, r.status, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert(j, "%s", r.body);
    th_resp_free(&r);
    return j;
}

/* The cost model learns from what it predicts, the engine calls: each batch's sample (/stats cost_model.last_batch) is
 * the engine time its response reports (timing.engine_ms), not the batch's whole time (compute_ms), which adds the
 * decoding of the input (a large PNG here, scaled down to 28x28) and the writing of the body. One worker and one
 * request at a time: every batch holds one request. */
Test(limits, cost_model_learns_engine_time_only, .timeout = 90) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-image-pixels",
                          "1000000", "--log-level", "warn", NULL};
    start(&s, args);
    size_t n;
    uint8_t *png = grey_png(1000, 1000, &n);
    for (int i = 0; i < 3; i++) {
        th_resp r;
        cr_assert_eq(th_http(s.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
        cr_assert_eq(r.status, 200, "%d %s", r.status, r.body);
        json_t *j = json_loads(r.body, 0, NULL), *t = json_object_get(j, "timing");
        cr_assert(json_is_real(json_object_get(t, "engine_ms")), "no timing.engine_ms: %s", r.body);
        const double engine_ms = json_real_value(json_object_get(t, "engine_ms"));
        const double compute_ms = json_real_value(json_object_get(t, "compute_ms"));
        json_decref(j);
        th_resp_free(&r);
        json_t *st = get_json(s.port, "/v2/models/a/stats");
        json_t *last = json_object_get(json_object_get(st, "cost_model"), "last_batch");
        const double secs = json_number_value(json_object_get(last, "seconds"));
        cr_expect_eq(json_number_value(json_object_get(last, "items")), 1);
        cr_expect_leq(fabs(secs * 1e3 - engine_ms), 1e-5 + 1e-6 * engine_ms,
                      "request %d: the cost model learnt %.6f ms, the engine took %.6f ms (the batch %.6f ms)", i,
                      secs * 1e3, engine_ms, compute_ms);
        cr_expect_leq(engine_ms, compute_ms);
        json_decref(st);
    }
    free(png);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* Opens k connections; returns how many of them get 200 for a health request sent after all are open (the rest were
 * closed by the per-address limit). */
static int served_of(int port, int k) {
    int fd[32], ok = 0;
    for (int i = 0; i < k; i++) fd[i] = th_connect(port);
    usleep(100000); /* let the server accept (or close) them all before any is used */
    for (int i = 0; i < k; i++) {
        const char *req = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        send(fd[i], req, strlen(req), MSG_NOSIGNAL);
    }
    for (int i = 0; i < k; i++) {
        th_resp r;
        if (th_read_response(fd[i], &r) == 0 && r.status == 200) ok++;
        th_resp_free(&r);
        close(fd[i]);
    }
    return ok;
}

/* --max-per-ip's default: on a loopback listener (only local clients: a reverse proxy, a load generator) no limit; on
 * any other address a quarter of --max-connections, so that one address cannot hold every slot. */
Test(limits, per_ip_default_follows_the_listen_address, .timeout = 90) {
    th_acmd s;
    const char *lo[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-connections", "8",
                        "--log-level", "warn", NULL};
    start(&s, lo);
    usleep(100000); /* the readiness probe's connection is gone */
    cr_expect_eq(served_of(s.port, 6), 6, "loopback listener: one address should get every connection");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    const char *any[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-connections", "8",
                         "--listen", "0.0.0.0:0", "--log-level", "warn", NULL};
    start(&s, any);
    usleep(100000);
    cr_expect_eq(served_of(s.port, 6), 2, "0.0.0.0 listener: one address should get a quarter of 8 connections");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}
