/*
 * test_http_strict.c — acmd's HTTP/1.1 as its specifications say (server/http.c, server/routes.c): message framing
 * (duplicate Content-Length, Transfer-Encoding, RFC 9112 §6), Host (§3.2), the errors libmicrohttpd writes itself
 * (docs/API.md lists them), answers sent before a body is read reaching a client that is still sending (the lingering
 * close), a trailing slash, and the OIP outputs a request names.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/harness.h"

static th_acmd srv;

#define MAX_BODY 1048576 /* --max-body-bytes of the server under test */

static void start(void) {
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1",
                          "--max-body-bytes", "1048576", NULL};
    cr_assert_eq(th_acmd_start(&srv, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&srv, 20), 0, "acmd not ready");
}
static void stop(void) { cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0, "acmd did not exit 0 on SIGTERM"); }

TestSuite(strict, .init = start, .fini = stop, .timeout = 60);

/* Sends raw bytes on a fresh connection and reads until the server closes; the number of responses in what came back
 * (status lines) goes to *answers. Returns the time it took. */
static double raw(const char *req, size_t n, th_resp *r, int *answers) {
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    const double t0 = th_now();
    cr_assert_eq(th_send_all(fd, req, n), 0);
    cr_assert_eq(th_read_response(fd, r), 0, "no HTTP response");
    const double dt = th_now() - t0;
    close(fd);
    if (answers) {
        *answers = 1;
        for (const char *p = r->body; (p = strstr(p, "HTTP/1.")); p++) ++*answers;
    }
    return dt;
}
#define RAW(s, r, a) raw(s, sizeof s - 1, r, a)

/* A valid OIP request for model a (grey 28x28): one all-zero image, `extra` added to the object (",..." or ""). */
static char *infer_json(const char *extra) {
    size_t cap = 28 * 28 * 2 + 512;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,28,28,1],"
                                        "\"data\":[");
    for (int i = 0; i < 28 * 28; i++) o += (size_t)snprintf(s + o, cap - o, "%s0", i ? "," : "");
    snprintf(s + o, cap - o, "]}]%s}", extra);
    return s;
}

/* Conflicting Content-Length values are a 400 whatever their order, and nothing after them is read as a request: with
 * the first value framing, the tail of the body would be a second (smuggled) request. */
Test(strict, conflicting_content_length_is_400_and_closes) {
    th_resp r;
    int answers;
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 0\r\n"
        "Content-Length: 41\r\n\r\nGET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n",
        &r, &answers);
    th_expect_error(&r, 400, "conflicting Content-Length values 0 and 41");
    cr_expect_eq(answers, 1, "the body was read as a second request:\n%s", r.body);
    th_resp_free(&r);
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 41\r\n"
        "Content-Length: 2\r\n\r\n{}", &r, NULL);
    th_expect_error(&r, 400, "conflicting Content-Length");
    th_resp_free(&r);
    /* a second value that is not a number (libmicrohttpd parses only the first) */
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
        "Content-Length: 2x\r\n\r\n{}", &r, NULL);
    th_expect_error(&r, 400, "Content-Length \"2x\" is not a decimal number");
    th_resp_free(&r);
}

/* Identical duplicates frame the body the same way for every reader: taken as one (RFC 9110 §8.6). */
Test(strict, identical_content_lengths_are_one) {
    char *json = infer_json("");
    char head[256];
    const size_t n = strlen(json);
    snprintf(head, sizeof head, "POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nContent-Length: %zu\r\nContent-Length: %05zu\r\n\r\n", n, n);
    size_t hn = strlen(head);
    char *req = malloc(hn + n);
    memcpy(req, head, hn);
    memcpy(req + hn, json, n);
    th_resp r;
    raw(req, hn + n, &r, NULL);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    free(req), free(json);
}

/* A Transfer-Encoding other than chunked is 501 at once (libmicrohttpd would read the body until the connection
 * closes, so the client waited for the request timeout); with a Content-Length too, or in HTTP/1.0, it is 400. */
Test(strict, transfer_encoding_other_than_chunked_is_501_at_once) {
    th_resp r;
    const double dt = RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Transfer-Encoding: gzip\r\n\r\n{}", &r, NULL);
    th_expect_error(&r, 501, "Transfer-Encoding \"gzip\" is not implemented");
    cr_expect_lt(dt, 5.0, "answered after %.1f s", dt);
    th_resp_free(&r);
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", &r, NULL);
    th_expect_error(&r, 501, "only chunked");
    th_resp_free(&r);
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        "\r\n0\r\n\r\n", &r, NULL);
    th_expect_error(&r, 501, "only chunked");
    th_resp_free(&r);
    RAW("POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n"
        "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", &r, NULL);
    th_expect_error(&r, 400, "both Content-Length and Transfer-Encoding");
    th_resp_free(&r);
    RAW("POST /v2/models/a/infer HTTP/1.0\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\n{}\r\n0\r\n\r\n", &r, NULL);
    th_expect_error(&r, 400, "HTTP/1.0");
    th_resp_free(&r);
}

/* Chunked itself (any case) still works. */
Test(strict, chunked_body_is_served) {
    char *json = infer_json("");
    const size_t n = strlen(json);
    char head[256];
    snprintf(head, sizeof head, "POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
             "Content-Type: application/json\r\nTransfer-Encoding: Chunked\r\n\r\n%zx\r\n", n);
    size_t hn = strlen(head);
    char *req = malloc(hn + n + 16);
    memcpy(req, head, hn);
    memcpy(req + hn, json, n);
    memcpy(req + hn + n, "\r\n0\r\n\r\n", 7);
    th_resp r;
    raw(req, hn + n + 7, &r, NULL);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    free(req), free(json);
}

/* RFC 9112 §3.2: HTTP/1.1 needs exactly one Host; HTTP/1.0 may go without. */
Test(strict, host_is_required_in_http_1_1) {
    th_resp r;
    RAW("GET /v2/health/live HTTP/1.1\r\nConnection: close\r\n\r\n", &r, NULL);
    th_expect_error(&r, 400, "Host");
    th_resp_free(&r);
    RAW("GET /v2/health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n", &r, NULL);
    th_expect_error(&r, 400, "more than one Host");
    th_resp_free(&r);
    RAW("GET /v2/health/live HTTP/1.0\r\n\r\n", &r, NULL);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
}

/* What libmicrohttpd answers itself, before acmd sees the request (docs/API.md, "Errors libmicrohttpd writes"): the
 * statuses are pinned here so that the list stays true across libmicrohttpd versions. */
Test(strict, libmicrohttpd_errors_are_as_documented) {
    th_resp r;
    RAW("GET /v2 HTTP/1.1 x\r\nHost: x\r\n\r\n", &r, NULL);
    cr_expect_eq(r.status, 400);
    th_resp_free(&r);
    RAW("GET /v2 HTTP/2.0\r\nHost: x\r\n\r\n", &r, NULL);
    cr_expect_eq(r.status, 505);
    th_resp_free(&r);
    RAW("GET /v2 HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n", &r, NULL);
    cr_expect_eq(r.status, 400);
    th_resp_free(&r);
    size_t n = 40000;
    char *big = malloc(n + 64);
    int k = snprintf(big, 64, "GET /v2 HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(big + k, 'a', n);
    memcpy(big + k + n, "\r\n\r\n", 4);
    raw(big, (size_t)k + n + 4, &r, NULL);
    cr_expect_eq(r.status, 431);
    th_resp_free(&r);
    free(big);
}

/* An answer sent before the body is read (here 413 from Content-Length, 415 from Content-Type) reaches a client that
 * sends its whole body before reading: every send succeeds (no reset) and the status is there after it. */
static void send_everything_then_read(const char *path, const char *type, size_t n, int status, const char *needle) {
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    char head[256];
    snprintf(head, sizeof head, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %zu\r\n\r\n", path,
             type, n);
    cr_assert_eq(th_send_all(fd, head, strlen(head)), 0);
    char *body = calloc(1, 65536);
    size_t sent = 0;
    int err = 0;
    while (sent < n) {
        const size_t k = n - sent < 65536 ? n - sent : 65536;
        if (th_send_all(fd, body, k)) {
            err = errno;
            break;
        }
        sent += k;
    }
    free(body);
    cr_expect_eq(sent, n, "sent %zu of %zu bytes, then %s", sent, n, strerror(err));
    th_resp r;
    cr_assert_eq(th_read_response(fd, &r), 0, "no response after the body (%s)", strerror(errno));
    th_expect_error(&r, status, needle);
    th_resp_free(&r);
    close(fd);
}

Test(strict, early_answer_reaches_a_client_that_sends_everything_first) {
    send_everything_then_read("/v2/models/a/infer", "application/json", 16 * MAX_BODY, 413, "over the limit");
    send_everything_then_read("/v1/models/a/classify", "text/plain", MAX_BODY, 415, "not an image type");
    /* and the server is still well */
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
}

/* A client that reads while it sends sees the answer, stops, and gets the whole answer. */
Test(strict, early_answer_reaches_a_client_that_reads_while_sending) {
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    char head[256];
    const size_t n = 64 * MAX_BODY;
    snprintf(head, sizeof head, "POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n", n);
    cr_assert_eq(th_send_all(fd, head, strlen(head)), 0);
    char *body = calloc(1, 65536);
    size_t sent = 0;
    const double t0 = th_now();
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};
        cr_assert(poll(&p, 1, 5000) > 0 && th_now() - t0 < 20, "no answer while sending");
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) break; /* the answer (or the end) is here */
        const ssize_t k = send(fd, body, n - sent < 65536 ? n - sent : 65536, MSG_NOSIGNAL | MSG_DONTWAIT);
        cr_assert(k > 0 || errno == EAGAIN || errno == EINTR, "send failed after %zu bytes: %s", sent, strerror(errno));
        if (k > 0) sent += (size_t)k;
        cr_assert_lt(sent, n, "the whole body went out before any answer");
    }
    free(body);
    th_resp r;
    cr_assert_eq(th_read_response(fd, &r), 0);
    th_expect_error(&r, 413, "over the limit");
    th_resp_free(&r);
    close(fd);
}

/* The OpenAPI file's server metadata path is "/v2/": a trailing slash is ignored on every route, two are not. */
Test(strict, trailing_slash_is_ignored) {
    th_resp a, b;
    cr_assert_eq(th_http(srv.port, "GET", "/v2", NULL, NULL, 0, &a), 0);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/", NULL, NULL, 0, &b), 0);
    cr_expect_eq(b.status, 200, "%s", b.body);
    cr_expect_str_eq(b.body, a.body);
    th_resp_free(&a), th_resp_free(&b);
    const char *ok[] = {"/v2/health/live/", "/v2/health/ready/", "/v2/models/a/", "/v2/models/a/ready/", "/metrics/"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        cr_assert_eq(th_http(srv.port, "GET", ok[i], NULL, NULL, 0, &a), 0);
        cr_expect_eq(a.status, 200, "%s: %d %s", ok[i], a.status, a.body);
        th_resp_free(&a);
    }
    const char *no[] = {"/v2//", "/v2/health/live//", "//v2"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        cr_assert_eq(th_http(srv.port, "GET", no[i], NULL, NULL, 0, &a), 0);
        th_expect_error(&a, 404, "no route");
        th_resp_free(&a);
    }
    char *json = infer_json("");
    cr_assert_eq(th_http(srv.port, "POST", "/v2/models/a/infer/", "Content-Type: application/json\r\n", json,
                         strlen(json), &a), 0);
    cr_expect_eq(a.status, 200, "%s", a.body);
    th_resp_free(&a);
    free(json);
}

/* The names of the outputs of an OIP response, in order, joined by ','. */
static void output_names(const th_resp *r, char *out, size_t n) {
    json_t *j = th_json(r);
    json_t *outs = json_object_get(j, "outputs"), *o;
    size_t i;
    out[0] = 0;
    json_array_foreach(outs, i, o) {
        strncat(out, i ? "," : "", n - strlen(out) - 1);
        strncat(out, json_string_value(json_object_get(o, "name")), n - strlen(out) - 1);
    }
    json_decref(j);
}

/* OIP: the outputs a request names are the outputs returned (none named: all). */
Test(strict, oip_returns_the_outputs_requested) {
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {"", "logits,label"},
        {",\"outputs\":[]", "logits,label"},
        {",\"outputs\":[{\"name\":\"label\"}]", "label"},
        {",\"outputs\":[{\"name\":\"logits\"}]", "logits"},
        {",\"outputs\":[{\"name\":\"label\"},{\"name\":\"logits\"}]", "logits,label"},
        {",\"outputs\":[{\"name\":\"label\"}],\"parameters\":{\"binary_data_output\":true}", "label"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *json = infer_json(cases[i].extra), names[64];
        th_resp r;
        cr_assert_eq(th_http(srv.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", json,
                             strlen(json), &r), 0);
        cr_assert_eq(r.status, 200, "%s: %s", cases[i].extra, r.body);
        if (strstr(cases[i].extra, "binary")) { /* the JSON header, then the label's bytes */
            char v[32];
            cr_assert(th_header(&r, "Inference-Header-Content-Length", v, sizeof v));
            const size_t jl = (size_t)atol(v);
            cr_assert_lt(jl, r.len);
            cr_expect_eq(r.len - jl, 4 + strlen(r.body + jl + 4), "the binary section holds the label alone");
            r.body[jl] = 0;
        }
        output_names(&r, names, sizeof names);
        cr_expect_str_eq(names, cases[i].want, "%s", cases[i].extra);
        th_resp_free(&r);
        free(json);
    }
    char *json = infer_json(",\"outputs\":[{\"name\":\"label\"},{\"name\":\"label\"}]");
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", json,
                         strlen(json), &r), 0);
    th_expect_error(&r, 400, "named twice");
    th_resp_free(&r);
    free(json);
}
