/*
 * soak_client.c — the adversarial half of bench/soak.sh, and its judge. Two commands:
 *
 *   soak_client load --port P --rate R --duration S --request-timeout T --out FILE.json
 *                    [--pid PID --samples FILE.csv --sample-s 2] [--mix BAD,BODY,COMPUTE,SLOW] [--max-slow 32]
 *                    [--seed N]
 *     Poisson arrivals at R per second for S seconds, each a new TCP connection to 127.0.0.1:P carrying one request
 *     of a kind drawn from SOAK_KINDS below: bad requests (each must get a 4xx), client disconnects mid-body and
 *     mid-compute, and slow clients that drip a request a byte at a time, some finishing within the server's
 *     --request-timeout T (they must get 200) and some not (the server must close them, or answer 408, after T and
 *     not before). --mix weighs the four groups (default 60,10,15,15); within a group kinds are equally likely;
 *     while --max-slow slow clients are open the draw leaves the slow group out (such draws are counted). Every
 *     connection ends in exactly one outcome (a status, our own planned disconnect, or a failure: closed or reset
 *     without an answer, truncated, refused, no answer within the client's limit) and every outcome gets a verdict
 *     (SOAK_VERDICTS). With --pid the server process is sampled every --sample-s seconds (VmRSS and Threads from
 *     /proc/PID/status, open descriptors from /proc/PID/fd) into a CSV: t_s,rss_kb,fds,threads,client_open.
 *     Writes a JSON report of counts per kind, outcome and verdict, with the first few failures described.
 *
 *   soak_client report --bench FILE.json --adversarial FILE.json --samples FILE.csv --metrics FILE
 *                      [--metrics-start FILE] --duration S
 *                      --saturation S_RPS --rate R --fd-baseline N --fd-end N --exit-code N [--log FILE]
 *                      [--warmup-frac F] [--rss-limit 0.02] [--out FILE.json]
 *     Reads the good traffic's `acm bench --json` report, the load's report, the samples and the server's /metrics
 *     (at the end, less the one taken before the load when given), prints the soak's tables and the checks, writes a JSON summary, and exits 1 when a check
 *     fails (each failed check is named with its figures), 0 when all pass. The checks:
 *       accounted      every good request got an HTTP status (acm bench: sent = answered, no transport error), and
 *                      every adversarial connection got a status or was one of our planned disconnects (a slow
 *                      client past the timeout may instead be closed by the server)
 *       no_5xx         no 5xx seen by any client, and none counted by the server (acm_http_requests_total)
 *       bad_4xx        every bad request got a 4xx (the expected code is in the table; another 4xx passes)
 *       good_200       every good request got 200 (429 passes: overload protection, reported; the slow clients
 *                      that finish and the mid-compute ones answered before our close count here too)
 *       request_timeout  no slow client closed before --request-timeout; every one past it closed or got 408 (a
 *                      slow_complete client whose own drip ran past the timeout, on a machine too loaded to keep its
 *                      timers, counts as a slow_timeout one: reported as drip_late)
 *       rss_flat       the server's RSS after warm-up grows by less than --rss-limit (default 2%): the least-squares
 *                      line through the samples at t >= F·S (F = --warmup-frac, default 1/6: the last 5/6 of the
 *                      run, 50 of 60 minutes) rises, from the first such sample to the last, by less than the limit
 *                      times its value at the first
 *       fds_baseline   the server's open descriptors at the end (clients gone) are at most the baseline (before load)
 *       sigterm_exit_0 the server exited 0 on SIGTERM at the end
 *       no_crash       the server lived through the run (every sample found it), did not die by a signal, and its
 *                      log holds no sanitizer report
 *
 * What this program deliberately does not do: the good traffic (acm bench does it, with accuracy and latency from
 * each scheduled send), keep-alive reuse for the adversarial requests (one request per connection), TLS.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <spng.h>
#include <uv.h>

#define BENCH_NAME "soak_client"
#include "bench/bench_util.h"

/* ---- what is sent ----------------------------------------------------------------------------------------------- */

/* How a kind is judged (soak__verdict). */
typedef enum {
    SC_BAD,          /* a 4xx */
    SC_BAD_OR_CLOSE, /* a 4xx, or closed without an answer (libmicrohttpd closes on a line that is not HTTP) */
    SC_MID_BODY,     /* our disconnect */
    SC_MID_COMPUTE,  /* our disconnect, or 200 when the answer came first */
    SC_SLOW_OK,      /* 200 */
    SC_SLOW_TIMEOUT, /* closed, reset or 408 at or after the request timeout */
} soak_class;

/* The groups that --mix weighs. */
enum { SG_BAD, SG_BODY, SG_COMPUTE, SG_SLOW, SG_COUNT };

/* id, name, group, class, expected status (0: none), what is sent */
#define SOAK_KINDS(X)                                                                                                  \
    X(BAD_PNG, "bad_image", SG_BAD, SC_BAD, 400, "classify, Content-Type image/png, 256 bytes that are no image")     \
    X(BAD_TYPE, "wrong_content_type", SG_BAD, SC_BAD, 415, "classify, a PNG sent as text/plain")                     \
    X(NO_TYPE, "no_content_type", SG_BAD, SC_BAD, 415, "classify, a PNG without Content-Type")                        \
    X(BAD_BUDGET, "bad_budget", SG_BAD, SC_BAD, 400, "classify, X-Compute-Budget abc, 2, -0.5, nan, 0 or inf")       \
    X(BAD_DEADLINE, "bad_deadline", SG_BAD, SC_BAD, 400, "classify, X-Deadline-Ms -5, abc, 0 or 1e99")                \
    X(BAD_PRIORITY, "bad_priority", SG_BAD, SC_BAD, 400, "classify, Priority u=99, u=-1 or u=abc")                     \
    X(HUGE_LENGTH, "huge_content_length", SG_BAD, SC_BAD, 413,                                                          \
      "classify, Content-Length 99999999999, then 64 KiB of body at once (as a client that does not wait)")            \
    X(OIP_JSON, "oip_malformed_json", SG_BAD, SC_BAD, 400, "OIP infer, a valid body cut short at a random byte")       \
    X(OIP_SHAPE, "oip_short_data", SG_BAD, SC_BAD, 400, "OIP infer, shape [1,28,28,1] with 2 values")                  \
    X(OIP_TYPE, "oip_content_type", SG_BAD, SC_BAD, 415, "OIP infer, a JSON body sent as text/plain")                  \
    X(NO_MODEL, "unknown_model", SG_BAD, SC_BAD, 404, "classify on a model that is not served")                        \
    X(BAD_METHOD, "wrong_method", SG_BAD, SC_BAD, 405, "DELETE on the classify route")                                 \
    X(BAD_LINE, "not_http", SG_BAD, SC_BAD_OR_CLOSE, 0, "a request line that is not HTTP (GARBAGE)")                  \
    X(MID_BODY, "disconnect_mid_body", SG_BODY, SC_MID_BODY, 0,                                                         \
      "a valid classify or OIP request: headers and half the body, then close")                                        \
    X(MID_COMPUTE, "disconnect_mid_compute", SG_COMPUTE, SC_MID_COMPUTE, 0,                                            \
      "a valid classify or OIP request, whole, then close (FIN or RST, alternately) 0-10 ms later")                     \
    X(SLOW_OK, "slow_complete", SG_SLOW, SC_SLOW_OK, 200, "a valid classify request dripped over half the timeout")    \
    X(SLOW_TIMEOUT, "slow_timeout", SG_SLOW, SC_SLOW_TIMEOUT, 0,                                                     \
      "a valid classify request dripped over twice the timeout")

typedef enum {
#define X(id, name, group, cls, expect, doc) SK_##id,
    SOAK_KINDS(X)
#undef X
    SK_COUNT
} soak_kind;

static const struct {
    const char *name;
    int group;
    soak_class cls;
    int expect;
    const char *doc;
} soak_kinds[SK_COUNT] = {
#define X(id, name, group, cls, expect, doc) {name, group, cls, expect, doc},
    SOAK_KINDS(X)
#undef X
};

/* How a connection ended, besides a status. */
#define SOAK_OUTCOMES(X)                                                                                               \
    X(STATUS, "status", "a complete HTTP answer")                                                                      \
    X(DISCONNECT, "disconnect", "we closed the connection on purpose, before the answer")                            \
    X(CLOSED, "closed", "the server closed the connection without an answer")                                         \
    X(RESET, "reset", "the connection was reset before an answer")                                                    \
    X(TRUNCATED, "truncated", "the connection ended inside the answer, or the answer is not HTTP")                    \
    X(CONNECT, "connect_error", "the connection could not be made")                                                   \
    X(NO_ANSWER, "no_answer", "nothing within the client's limit (the request timeout + 10 s, or 30 s)")

typedef enum {
#define X(id, name, doc) SO_##id,
    SOAK_OUTCOMES(X)
#undef X
    SO_COUNT
} soak_outcome;
static const char *const soak_outcome_names[SO_COUNT] = {
#define X(id, name, doc) name,
    SOAK_OUTCOMES(X)
#undef X
};

/* What an outcome means for the checks (soak__verdict). */
#define SOAK_VERDICTS(X)                                                                                               \
    X(OK, "ok", "as it should be")                                                                                     \
    X(LOST, "lost", "no status and not our disconnect: the request is not accounted for")                            \
    X(WRONG, "wrong_status", "a status this kind must not get (not 4xx for a bad request, not 200 for a good one)")    \
    X(E5XX, "5xx", "a server error")                                                                                   \
    X(EARLY, "closed_early", "a slow client closed before the request timeout")                                      \
    X(NOT_TIMED_OUT, "not_timed_out", "a slow client past the request timeout was neither closed nor answered 408")

typedef enum {
#define X(id, name, doc) SV_##id,
    SOAK_VERDICTS(X)
#undef X
    SV_COUNT
} soak_verdict;
static const char *const soak_verdict_names[SV_COUNT] = {
#define X(id, name, doc) name,
    SOAK_VERDICTS(X)
#undef X
};

#define SOAK_MAX_STATUS 600
#define SOAK_MAX_EXAMPLES 20
#define SOAK_SLOW_SLACK_S 0.25 /* the server's timer and ours: a slow client closed this much before T is early */

typedef struct {
    long started;
    long outcome[SO_COUNT];
    long status[SOAK_MAX_STATUS];
    long verdict[SV_COUNT];
    double close_min_s, close_max_s; /* slow_timeout: when the server ended it */
    long drip_late;                  /* slow_complete: ended by the timeout because this client's drip ran late */
} soak_tally;

/* drip_late: a slow client whose last byte left at or after the timeout (less the slack), or never: this client ran
 * late (a loaded machine delays its timers), and the server was right to end it. */
static soak_verdict soak__verdict(soak_kind k, soak_outcome o, int status, double t_s, double timeout_s, int drip_late) {
    if (o == SO_STATUS && status >= 500) return SV_E5XX;
    const int is4xx = o == SO_STATUS && status >= 400 && status < 500;
    const int timed_out = o == SO_CLOSED || o == SO_RESET || (o == SO_STATUS && status == 408);
    switch (soak_kinds[k].cls) {
    case SC_BAD: return is4xx ? SV_OK : o == SO_STATUS ? SV_WRONG : SV_LOST;
    case SC_BAD_OR_CLOSE: return is4xx || o == SO_CLOSED ? SV_OK : o == SO_STATUS ? SV_WRONG : SV_LOST;
    case SC_MID_BODY: return o == SO_DISCONNECT ? SV_OK : o == SO_STATUS ? SV_WRONG : SV_LOST;
    case SC_MID_COMPUTE:
        return o == SO_DISCONNECT || (o == SO_STATUS && status == 200) ? SV_OK : o == SO_STATUS ? SV_WRONG : SV_LOST;
    case SC_SLOW_OK:
        if (timed_out && drip_late) return t_s >= timeout_s - SOAK_SLOW_SLACK_S ? SV_OK : SV_EARLY;
        return o == SO_STATUS ? (status == 200 ? SV_OK : SV_WRONG) : SV_LOST;
    case SC_SLOW_TIMEOUT:
        if (timed_out) return t_s >= timeout_s - SOAK_SLOW_SLACK_S ? SV_OK : SV_EARLY;
        return o == SO_NO_ANSWER || (o == SO_STATUS && status == 200) ? SV_NOT_TIMED_OUT : o == SO_STATUS ? SV_WRONG : SV_LOST;
    }
    return SV_LOST;
}

/* ---- the load ----------------------------------------------------------------------------------------------------- */

typedef struct {
    uint64_t s;
} soak_rng;
static uint64_t soak__rand(soak_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static double soak__uniform(soak_rng *r) { return (double)(soak__rand(r) >> 11) * 0x1.0p-53; }

typedef struct {
    int port;
    double rate, duration_s, timeout_s, sample_s;
    double mix[SG_COUNT];
    int max_slow, pid;
    uint64_t seed;
    const char *out, *samples;
} soak_params;

typedef struct soak_load {
    soak_params p;
    uv_loop_t *loop;
    uv_timer_t arrival, sampler;
    soak_rng rng;
    double t_start, next_arrival;
    int generating, open, open_slow;
    long slow_full_draws, server_gone_samples; /* draws made without the slow group: --max-slow open */
    double server_gone_at;
    uint8_t *png; /* a valid 28x28 grey PNG */
    size_t png_len;
    char *oip; /* a valid OIP infer body for it */
    size_t oip_len;
    FILE *csv;
    soak_tally tally[SK_COUNT];
    json_t *examples;
    int mid_compute_n; /* alternates FIN and RST */
} soak_load;

typedef struct soak_conn {
    uv_tcp_t tcp; /* first */
    uv_connect_t connect;
    uv_write_t write;
    uv_timer_t timer; /* the drip, or the delay before a planned close */
    uv_timer_t limit; /* the client's limit on the exchange */
    soak_load *L;
    soak_kind kind;
    char *req; /* the bytes to send */
    size_t req_len, send_len, dripped;
    double drip_ms, drip_s, t0, t_drip, t_last_byte; /* drip_s: the drip's length; t_drip: its start */
    char resp[4096];
    size_t resp_len, resp_total, head_len, body_len; /* head_len 0: headers not complete yet */
    int status, reset_close, done, handles;
} soak_conn;

static char *soak__request(size_t *len, const char *method, const char *path, const char *ctype, const char *extra,
                           const void *body, size_t body_len, const char *content_length) {
    char head[1024];
    char cl[32];
    if (!content_length) snprintf(cl, sizeof cl, "%zu", body_len), content_length = cl;
    int h = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: soak_client\r\n%s%s%s%s"
                                        "Content-Length: %s\r\n\r\n",
                     method, path, ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "",
                     extra ? extra : "", content_length);
    char *r = malloc((size_t)h + body_len + 1);
    if (!r) bu_die("request", "out of memory");
    memcpy(r, head, (size_t)h);
    if (body_len) memcpy(r + h, body, body_len);
    *len = (size_t)h + body_len;
    return r;
}

#define SOAK_CLASSIFY "/v1/models/fmnist/classify"
#define SOAK_INFER "/v2/models/fmnist/infer"

/* Builds c->req for c->kind (and send_len, drip_ms, reset_close). */
static void soak__build(soak_load *L, soak_conn *c) {
    static const char *const budgets[] = {"abc", "2", "-0.5", "nan", "0", "inf"};
    static const char *const deadlines[] = {"-5", "abc", "0", "1e99"};
    static const char *const prios[] = {"u=99", "u=-1", "u=abc"};
    char extra[128];
    const int oip = soak__rand(&L->rng) & 1; /* mid-body and mid-compute: classify or OIP */
    size_t n;
    switch (c->kind) {
    case SK_BAD_PNG: {
        uint8_t junk[256];
        for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)soak__rand(&L->rng);
        junk[0] = 0; /* never a PNG, JPEG or PNM signature */
        c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "image/png", NULL, junk, sizeof junk, NULL);
        break;
    }
    case SK_BAD_TYPE: c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "text/plain", NULL, L->png, L->png_len, NULL); break;
    case SK_NO_TYPE: c->req = soak__request(&n, "POST", SOAK_CLASSIFY, NULL, NULL, L->png, L->png_len, NULL); break;
    case SK_BAD_BUDGET:
    case SK_BAD_DEADLINE:
    case SK_BAD_PRIORITY:
        if (c->kind == SK_BAD_BUDGET) snprintf(extra, sizeof extra, "X-Compute-Budget: %s\r\n", budgets[soak__rand(&L->rng) % 6]);
        else if (c->kind == SK_BAD_DEADLINE) snprintf(extra, sizeof extra, "X-Deadline-Ms: %s\r\n", deadlines[soak__rand(&L->rng) % 4]);
        else snprintf(extra, sizeof extra, "Priority: %s\r\n", prios[soak__rand(&L->rng) % 3]);
        c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "image/png", extra, L->png, L->png_len, NULL);
        break;
    case SK_HUGE_LENGTH: {
        static const uint8_t zeros[65536];
        c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "image/png", NULL, zeros, sizeof zeros, "99999999999");
        break;
    }
    case SK_OIP_JSON:
        c->req = soak__request(&n, "POST", SOAK_INFER, "application/json", NULL, L->oip,
                               1 + (size_t)(soak__rand(&L->rng) % (L->oip_len - 1)), NULL);
        break;
    case SK_OIP_SHAPE: {
        static const char b[] = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,28,28,1],\"data\":[1,2]}]}";
        c->req = soak__request(&n, "POST", SOAK_INFER, "application/json", NULL, b, sizeof b - 1, NULL);
        break;
    }
    case SK_OIP_TYPE: c->req = soak__request(&n, "POST", SOAK_INFER, "text/plain", NULL, L->oip, L->oip_len, NULL); break;
    case SK_NO_MODEL:
        c->req = soak__request(&n, "POST", "/v1/models/no-such-model/classify", "image/png", NULL, L->png, L->png_len, NULL);
        break;
    case SK_BAD_METHOD: c->req = soak__request(&n, "DELETE", SOAK_CLASSIFY, NULL, NULL, NULL, 0, "0"); break;
    case SK_BAD_LINE: {
        static const char g[] = "GARBAGE\r\n\r\n";
        c->req = malloc(sizeof g);
        if (!c->req) bu_die("request", "out of memory");
        memcpy(c->req, g, sizeof g);
        n = sizeof g - 1;
        break;
    }
    case SK_MID_BODY:
    case SK_MID_COMPUTE:
        if (oip) c->req = soak__request(&n, "POST", SOAK_INFER, "application/json", NULL, L->oip, L->oip_len, NULL);
        else c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "image/png", NULL, L->png, L->png_len, NULL);
        break;
    case SK_SLOW_OK:
    case SK_SLOW_TIMEOUT:
        c->req = soak__request(&n, "POST", SOAK_CLASSIFY, "image/png", NULL, L->png, L->png_len, NULL);
        break;
    default: bu_die("request", "unknown kind");
    }
    c->req_len = c->send_len = n;
    if (c->kind == SK_MID_BODY) { /* the headers and half the body */
        const size_t body = oip ? L->oip_len : L->png_len;
        c->send_len = n - body + body / 2;
    }
    if (c->kind == SK_SLOW_OK || c->kind == SK_SLOW_TIMEOUT) {
        const double total_s = c->kind == SK_SLOW_OK ? 0.5 * L->p.timeout_s : 2 * L->p.timeout_s;
        c->drip_ms = fmax(1, floor(total_s * 1e3 / (double)n));
        c->drip_s = total_s;
    }
    if (c->kind == SK_MID_COMPUTE) c->reset_close = L->mid_compute_n++ & 1;
}

static void soak__example(soak_load *L, const soak_conn *c, soak_outcome o, soak_verdict v, double t) {
    if (json_array_size(L->examples) >= SOAK_MAX_EXAMPLES) return;
    char s[256];
    snprintf(s, sizeof s, "%s: %s%s%.0d after %.3f s (%s)", soak_kinds[c->kind].name, soak_outcome_names[o],
             o == SO_STATUS ? " " : "", o == SO_STATUS ? c->status : 0, t, soak_verdict_names[v]);
    json_array_append_new(L->examples, json_string(s));
}

static void soak__maybe_end(soak_load *L);

static void soak__conn_closed(uv_handle_t *h) {
    soak_conn *c = h->data;
    if (--c->handles) return;
    soak_load *L = c->L;
    L->open--;
    if (c->kind == SK_SLOW_OK || c->kind == SK_SLOW_TIMEOUT) L->open_slow--;
    free(c->req);
    free(c);
    soak__maybe_end(L);
}

/* Records how c ended and closes it (RST instead of FIN for a planned reset). */
static void soak__finish(soak_conn *c, soak_outcome o) {
    if (c->done) return;
    c->done = 1;
    soak_load *L = c->L;
    const double t = bu_now_s() - c->t0;
    soak_tally *y = &L->tally[c->kind];
    y->outcome[o]++;
    if (o == SO_STATUS) y->status[c->status > 0 && c->status < SOAK_MAX_STATUS ? c->status : 0]++;
    const int drip_late = c->drip_s > 0 && (c->dripped < c->send_len || c->t_last_byte - c->t0 >= L->p.timeout_s - SOAK_SLOW_SLACK_S);
    const soak_verdict v = soak__verdict(c->kind, o, c->status, t, L->p.timeout_s, drip_late);
    y->verdict[v]++;
    if (c->kind == SK_SLOW_OK && o != SO_STATUS && drip_late) y->drip_late++;
    if (v != SV_OK) soak__example(L, c, o, v, t);
    if (c->kind == SK_SLOW_TIMEOUT && o != SO_NO_ANSWER) {
        if (y->close_min_s == 0 || t < y->close_min_s) y->close_min_s = t;
        if (t > y->close_max_s) y->close_max_s = t;
    }
    uv_close((uv_handle_t *)&c->timer, soak__conn_closed);
    uv_close((uv_handle_t *)&c->limit, soak__conn_closed);
    if (o == SO_DISCONNECT && c->reset_close && uv_tcp_close_reset(&c->tcp, soak__conn_closed) == 0) return;
    uv_close((uv_handle_t *)&c->tcp, soak__conn_closed);
}

/* The answer so far: the status and Content-Length once the headers are complete; finishes c when it is whole. */
static void soak__parse(soak_conn *c) {
    if (!c->head_len) {
        char *end = memmem(c->resp, c->resp_len, "\r\n\r\n", 4);
        if (!end) {
            if (c->resp_len == sizeof c->resp) soak__finish(c, SO_TRUNCATED); /* 4 KiB of headers: not our server */
            return;
        }
        c->head_len = (size_t)(end - c->resp) + 4;
        *end = 0;
        int st = 0;
        if (sscanf(c->resp, "HTTP/1.%*d %d", &st) != 1 || st < 100 || st >= SOAK_MAX_STATUS) {
            soak__finish(c, SO_TRUNCATED);
            return;
        }
        c->status = st;
        c->body_len = 0;
        for (char *l = strstr(c->resp, "\r\n"); l; l = strstr(l + 2, "\r\n"))
            if (strncasecmp(l + 2, "Content-Length:", 15) == 0) c->body_len = strtoul(l + 17, NULL, 10);
    }
    if (c->resp_total >= c->head_len + c->body_len) soak__finish(c, SO_STATUS);
}

static void soak__alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
    soak_conn *c = h->data;
    static char sink[65536]; /* body bytes past what is kept: counted, not stored */
    (void)hint;
    if (c->resp_len < sizeof c->resp) *buf = uv_buf_init(c->resp + c->resp_len, (unsigned)(sizeof c->resp - c->resp_len));
    else *buf = uv_buf_init(sink, sizeof sink);
}

static void soak__read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
    soak_conn *c = s->data;
    if (c->done) return;
    if (n > 0) {
        if (buf->base == c->resp + c->resp_len) c->resp_len += (size_t)n;
        c->resp_total += (size_t)n;
        soak__parse(c);
    } else if (n < 0) {
        if (c->resp_total) soak__finish(c, SO_TRUNCATED);
        else soak__finish(c, n == UV_EOF ? SO_CLOSED : SO_RESET);
    }
}

/* A byte per tick; a tick that comes late (a loaded machine) sends every byte due by then, so that the drip keeps to
 * its schedule of send_len bytes over drip_s seconds as far as this process gets the CPU. */
static void soak__drip(uv_timer_t *t) {
    soak_conn *c = t->data;
    if (c->done) return;
    const double now = bu_now_s();
    if (!c->t_drip) c->t_drip = now;
    size_t due = (size_t)ceil((now - c->t_drip) / c->drip_s * (double)c->send_len);
    due = due < c->dripped + 1 ? c->dripped + 1 : due > c->send_len ? c->send_len : due;
    uv_buf_t b = uv_buf_init(c->req + c->dripped, (unsigned)(due - c->dripped));
    int r = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (r > 0) c->dripped += (size_t)r;
    else if (r != UV_EAGAIN) uv_timer_stop(t); /* the server closed: the read side says how */
    if (c->dripped == c->send_len) {
        c->t_last_byte = now;
        uv_timer_stop(t);
    }
}

static void soak__planned_close(uv_timer_t *t) { soak__finish(t->data, SO_DISCONNECT); }

static void soak__written(uv_write_t *w, int status) {
    soak_conn *c = w->data;
    if (c->done || status < 0) return; /* a bad request may be answered and closed before all of it is sent */
    if (c->kind == SK_MID_BODY) soak__finish(c, SO_DISCONNECT);
    else if (c->kind == SK_MID_COMPUTE) uv_timer_start(&c->timer, soak__planned_close, soak__rand(&c->L->rng) % 11, 0);
}

static void soak__limit(uv_timer_t *t) { soak__finish(t->data, SO_NO_ANSWER); }

static void soak__connected(uv_connect_t *req, int status) {
    soak_conn *c = req->data;
    if (c->done) return;
    if (status < 0) {
        soak__finish(c, status == UV_ECONNRESET ? SO_RESET : SO_CONNECT);
        return;
    }
    uv_read_start((uv_stream_t *)&c->tcp, soak__alloc, soak__read);
    if (c->drip_ms > 0) {
        uv_timer_start(&c->timer, soak__drip, 0, (uint64_t)c->drip_ms);
        return;
    }
    uv_buf_t b = uv_buf_init(c->req, (unsigned)c->send_len);
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, &b, 1, soak__written)) soak__finish(c, SO_RESET);
}

static soak_kind soak__draw(soak_load *L) {
    const soak_params *p = &L->p;
    const int slow_full = L->open_slow >= p->max_slow;
    if (slow_full && p->mix[SG_SLOW] > 0) L->slow_full_draws++;
    double total = 0;
    for (int g = 0; g < SG_COUNT; g++) total += g == SG_SLOW && slow_full ? 0 : p->mix[g];
    double x = soak__uniform(&L->rng) * total;
    int group = 0;
    for (; group < SG_COUNT - 1; group++) {
        double w = group == SG_SLOW && slow_full ? 0 : p->mix[group];
        if (x < w) break;
        x -= w;
    }
    if (slow_full && group == SG_SLOW) group = SG_BAD; /* rounding at the top end */
    int n = 0, pick;
    for (int k = 0; k < SK_COUNT; k++) n += soak_kinds[k].group == group;
    pick = (int)(soak__rand(&L->rng) % (uint64_t)n);
    for (int k = 0; k < SK_COUNT; k++)
        if (soak_kinds[k].group == group && pick-- == 0) return (soak_kind)k;
    return SK_BAD_PNG;
}

static void soak__launch(soak_load *L) {
    soak_conn *c = calloc(1, sizeof *c);
    if (!c) bu_die("load", "out of memory");
    c->L = L;
    c->kind = soak__draw(L);
    soak__build(L, c);
    c->t0 = bu_now_s();
    c->tcp.data = c->timer.data = c->limit.data = c->connect.data = c;
    uv_tcp_init(L->loop, &c->tcp);
    uv_timer_init(L->loop, &c->timer);
    uv_timer_init(L->loop, &c->limit);
    c->handles = 3;
    L->open++;
    if (c->kind == SK_SLOW_OK || c->kind == SK_SLOW_TIMEOUT) L->open_slow++;
    L->tally[c->kind].started++;
    const int slow = c->kind == SK_SLOW_OK || c->kind == SK_SLOW_TIMEOUT;
    uv_timer_start(&c->limit, soak__limit, (uint64_t)(1e3 * (slow ? L->p.timeout_s + 10 : 30)), 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", L->p.port, &a);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&a, soak__connected)) soak__finish(c, SO_CONNECT);
}

static void soak__sample(soak_load *L) {
    if (!L->csv || !L->p.pid) return;
    char path[64], line[256];
    long rss = -1, threads = -1;
    int fds = -1;
    snprintf(path, sizeof path, "/proc/%d/status", L->p.pid);
    FILE *f = fopen(path, "r");
    if (f) {
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "VmRSS:", 6)) rss = strtol(line + 6, NULL, 10);
            else if (!strncmp(line, "Threads:", 8)) threads = strtol(line + 8, NULL, 10);
        }
        fclose(f);
    }
    snprintf(path, sizeof path, "/proc/%d/fd", L->p.pid);
    DIR *d = opendir(path);
    if (d) {
        fds = 0;
        for (struct dirent *e; (e = readdir(d));) fds += e->d_name[0] != '.';
        closedir(d);
    }
    const double t = bu_now_s() - L->t_start;
    if (rss < 0 || fds < 0) { /* the server is gone */
        if (!L->server_gone_samples++) L->server_gone_at = t;
        return;
    }
    fprintf(L->csv, "%.3f,%ld,%d,%ld,%d\n", t, rss, fds, threads, L->open);
    fflush(L->csv);
}

static void soak__sampler(uv_timer_t *t) { soak__sample(t->data); }

static void soak__arrivals(uv_timer_t *t) {
    soak_load *L = t->data;
    const double now = bu_now_s(), end = L->t_start + L->p.duration_s;
    while (L->generating && L->next_arrival <= now) {
        if (L->next_arrival >= end) {
            L->generating = 0;
            break;
        }
        soak__launch(L);
        L->next_arrival += -log(1 - soak__uniform(&L->rng)) / L->p.rate;
    }
    if (L->generating && L->next_arrival >= end) L->generating = 0;
    if (L->generating) uv_timer_start(t, soak__arrivals, (uint64_t)ceil((L->next_arrival - now) * 1e3), 0);
    else soak__maybe_end(L);
}

static void soak__maybe_end(soak_load *L) {
    if (L->generating || L->open) return;
    if (uv_is_closing((uv_handle_t *)&L->sampler)) return;
    soak__sample(L); /* the last sample: every adversarial connection is closed */
    uv_close((uv_handle_t *)&L->sampler, NULL);
    uv_close((uv_handle_t *)&L->arrival, NULL);
}

/* A 28x28 grey PNG (a soft gradient with a square: small, so that a slow client drips few bytes) and the same image
 * as an OIP infer body. */
static void soak__inputs(soak_load *L) {
    uint8_t px[28 * 28];
    for (int y = 0; y < 28; y++)
        for (int x = 0; x < 28; x++) px[y * 28 + x] = (uint8_t)(x * 4 + y * 3 + ((x > 8 && x < 20 && y > 6 && y < 22) ? 120 : 0));
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    int e = ctx ? spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) : SPNG_EMEM;
    struct spng_ihdr ih = {.width = 28, .height = 28, .bit_depth = 8, .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
    if (!e) e = spng_set_ihdr(ctx, &ih);
    if (!e) e = spng_encode_image(ctx, px, sizeof px, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (!e) L->png = spng_get_png_buffer(ctx, &L->png_len, &e);
    spng_ctx_free(ctx);
    if (e || !L->png) bu_die("PNG", "encoding failed");
    size_t cap = 256 + 4 * sizeof px, n = 0;
    if (!(L->oip = malloc(cap))) bu_die("OIP body", "out of memory");
    n += (size_t)snprintf(L->oip + n, cap - n, "{\"id\":\"soak\",\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
                                                "\"shape\":[1,28,28,1],\"data\":[");
    for (size_t i = 0; i < sizeof px; i++) n += (size_t)snprintf(L->oip + n, cap - n, "%s%u", i ? "," : "", px[i]);
    n += (size_t)snprintf(L->oip + n, cap - n, "]}]}");
    L->oip_len = n;
}

static json_t *soak__load_report(const soak_load *L, double elapsed) {
    json_t *o = json_object(), *kinds = json_object();
    json_object_set_new(o, "rate", json_real(L->p.rate));
    json_object_set_new(o, "duration_s", json_real(L->p.duration_s));
    json_object_set_new(o, "elapsed_s", json_real(elapsed));
    json_object_set_new(o, "request_timeout_s", json_real(L->p.timeout_s));
    json_object_set_new(o, "slow_full_draws", json_integer(L->slow_full_draws));
    json_object_set_new(o, "server_gone_at_s", L->server_gone_samples ? json_real(L->server_gone_at) : json_null());
    long started = 0, ended = 0, verdicts[SV_COUNT] = {0};
    for (int k = 0; k < SK_COUNT; k++) {
        const soak_tally *y = &L->tally[k];
        json_t *ko = json_object(), *oc = json_object(), *vc = json_object();
        json_object_set_new(ko, "started", json_integer(y->started));
        char ex[64];
        static const char *const cls_text[] = {"%d", "4xx or a close", "our disconnect", "our disconnect or 200", "%d",
                                               "a close or 408, after the timeout"};
        snprintf(ex, sizeof ex, cls_text[soak_kinds[k].cls], soak_kinds[k].expect);
        json_object_set_new(ko, "expect", json_string(ex));
        json_object_set_new(ko, "group", json_string((const char *[]){"bad", "mid_body", "mid_compute", "slow"}[soak_kinds[k].group]));
        json_object_set_new(ko, "sends", json_string(soak_kinds[k].doc));
        for (int s = 0; s < SOAK_MAX_STATUS; s++)
            if (y->status[s]) {
                char key[16];
                snprintf(key, sizeof key, "%d", s);
                json_object_set_new(oc, key, json_integer(y->status[s]));
            }
        for (int x = 1; x < SO_COUNT; x++)
            if (y->outcome[x]) json_object_set_new(oc, soak_outcome_names[x], json_integer(y->outcome[x]));
        for (int v = 0; v < SV_COUNT; v++) {
            if (y->verdict[v]) json_object_set_new(vc, soak_verdict_names[v], json_integer(y->verdict[v]));
            verdicts[v] += y->verdict[v];
        }
        json_object_set_new(ko, "outcomes", oc);
        json_object_set_new(ko, "verdicts", vc);
        if (k == SK_SLOW_OK) json_object_set_new(ko, "drip_late", json_integer(y->drip_late));
        if (k == SK_SLOW_TIMEOUT && y->close_max_s > 0) {
            json_object_set_new(ko, "closed_after_s_min", json_real(y->close_min_s));
            json_object_set_new(ko, "closed_after_s_max", json_real(y->close_max_s));
        }
        json_object_set_new(kinds, soak_kinds[k].name, ko);
        started += y->started;
        for (int x = 0; x < SO_COUNT; x++) ended += y->outcome[x];
    }
    json_object_set_new(o, "started", json_integer(started));
    json_object_set_new(o, "ended", json_integer(ended));
    json_t *vt = json_object();
    for (int v = 0; v < SV_COUNT; v++) json_object_set_new(vt, soak_verdict_names[v], json_integer(verdicts[v]));
    json_object_set_new(o, "verdicts", vt);
    json_object_set_new(o, "kinds", kinds);
    json_object_set_new(o, "failures_first", json_incref(L->examples));
    return o;
}

static int soak__parse_mix(const char *s, double *mix) {
    double v[SG_COUNT + 1];
    if (bu_parse_list(s, v, SG_COUNT + 1) != SG_COUNT) return -1;
    double total = 0;
    for (int g = 0; g < SG_COUNT; g++) {
        if (!(v[g] >= 0)) return -1;
        mix[g] = v[g], total += v[g];
    }
    return total > 0 ? 0 : -1;
}

static const char *const soak_usage =
    "usage: soak_client load --port P --rate R --duration S --request-timeout T --out FILE.json\n"
    "                        [--pid PID --samples FILE.csv] [--sample-s 2] [--mix 60,10,15,15] [--max-slow 32] [--seed 1]\n"
    "       soak_client report --bench FILE --adversarial FILE --samples FILE --metrics FILE [--metrics-start FILE]\n"
    "                          --duration S\n"
    "                          --saturation RPS --rate RPS --fd-baseline N --fd-end N --exit-code N [--log FILE]\n"
    "                          [--warmup-frac 0.1667] [--rss-limit 0.02] [--out FILE.json]\n"
    "       soak_client get FILE.json a/b/c   (prints one number of a JSON file)\n"
    "(bench/soak.sh runs both; the file's header comment says what each does and checks)\n";

static _Noreturn void soak__usage(const char *msg) {
    fprintf(stderr, "soak_client: %s\n%s", msg, soak_usage);
    exit(2);
}

static double soak__num(const char *name, const char *v, double lo, double hi) {
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) {
        char m[160];
        snprintf(m, sizeof m, "%s: '%s' is not a number in [%g, %g]", name, v, lo, hi);
        soak__usage(m);
    }
    return x;
}

static int soak_load_main(int argc, char **argv) {
    static soak_load L;
    soak_params *p = &L.p;
    p->sample_s = 2, p->max_slow = 32, p->seed = 1;
    p->mix[SG_BAD] = 60, p->mix[SG_BODY] = 10, p->mix[SG_COMPUTE] = 15, p->mix[SG_SLOW] = 15;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) soak__usage("every option takes a value");
        i++;
        if (!strcmp(a, "--port")) p->port = (int)soak__num(a, v, 1, 65535);
        else if (!strcmp(a, "--rate")) p->rate = soak__num(a, v, 1e-3, 1e6);
        else if (!strcmp(a, "--duration")) p->duration_s = soak__num(a, v, 0.1, 86400 * 7);
        else if (!strcmp(a, "--request-timeout")) p->timeout_s = soak__num(a, v, 0.5, 3600);
        else if (!strcmp(a, "--sample-s")) p->sample_s = soak__num(a, v, 0.05, 3600);
        else if (!strcmp(a, "--max-slow")) p->max_slow = (int)soak__num(a, v, 0, 100000);
        else if (!strcmp(a, "--pid")) p->pid = (int)soak__num(a, v, 1, 1 << 30);
        else if (!strcmp(a, "--seed")) p->seed = (uint64_t)soak__num(a, v, 0, 1e15);
        else if (!strcmp(a, "--out")) p->out = v;
        else if (!strcmp(a, "--samples")) p->samples = v;
        else if (!strcmp(a, "--mix")) {
            if (soak__parse_mix(v, p->mix)) soak__usage("--mix: four weights >= 0, not all 0: BAD,BODY,COMPUTE,SLOW");
        } else {
            char m[128];
            snprintf(m, sizeof m, "load: unknown option '%s'", a);
            soak__usage(m);
        }
    }
    if (!p->port || !p->rate || !p->duration_s || !p->timeout_s || !p->out)
        soak__usage("load needs --port, --rate, --duration, --request-timeout and --out");
    signal(SIGPIPE, SIG_IGN);
    L.loop = uv_default_loop();
    L.rng.s = p->seed * 0x9e3779b97f4a7c15ull + 7;
    L.examples = json_array();
    soak__inputs(&L);
    if (p->samples) {
        if (!(L.csv = fopen(p->samples, "w"))) bu_die(p->samples, strerror(errno));
        fprintf(L.csv, "t_s,rss_kb,fds,threads,client_open\n");
    }
    uv_timer_init(L.loop, &L.arrival);
    uv_timer_init(L.loop, &L.sampler);
    L.arrival.data = L.sampler.data = &L;
    L.t_start = L.next_arrival = bu_now_s();
    L.generating = 1;
    uv_timer_start(&L.sampler, soak__sampler, 0, (uint64_t)(p->sample_s * 1e3));
    uv_timer_start(&L.arrival, soak__arrivals, 0, 0);
    uv_run(L.loop, UV_RUN_DEFAULT);
    const double elapsed = bu_now_s() - L.t_start;
    uv_loop_close(L.loop);
    if (L.csv) fclose(L.csv);
    json_t *o = soak__load_report(&L, elapsed);
    if (json_dump_file(o, p->out, JSON_INDENT(2) | JSON_REAL_PRECISION(6))) bu_die(p->out, "cannot write");
    json_decref(o);
    json_decref(L.examples);
    free(L.png), free(L.oip);
    return 0;
}

/* ---- the report --------------------------------------------------------------------------------------------------- */

typedef struct {
    double t;
    long rss_kb, threads;
    int fds, open;
} soak_sample;

static json_t *soak__load_json(const char *path) {
    json_error_t e;
    json_t *o = json_load_file(path, 0, &e);
    if (!o) {
        char m[400];
        snprintf(m, sizeof m, "line %d: %s", e.line, e.text);
        bu_die(path, m);
    }
    return o;
}

static double soak__jnum(const json_t *o, const char *path) { /* "a/b/c"; NAN when absent */
    char key[64];
    const char *p = path;
    while (o && *p) {
        size_t n = strcspn(p, "/");
        snprintf(key, sizeof key, "%.*s", (int)n, p);
        o = json_object_get(o, key);
        p += n + (p[n] == '/');
    }
    return json_is_number(o) ? json_number_value(o) : NAN;
}

static soak_sample *soak__read_samples(const char *path, int *n) {
    FILE *f = fopen(path, "r");
    if (!f) bu_die(path, strerror(errno));
    char line[256];
    int cap = 256;
    soak_sample *s = malloc(sizeof *s * (size_t)cap);
    if (!s) bu_die(path, "out of memory");
    *n = 0;
    while (fgets(line, sizeof line, f)) {
        soak_sample x;
        if (sscanf(line, "%lf,%ld,%d,%ld,%d", &x.t, &x.rss_kb, &x.fds, &x.threads, &x.open) != 5) continue; /* header */
        if (*n == cap && !(s = realloc(s, sizeof *s * (size_t)(cap *= 2)))) bu_die(path, "out of memory");
        s[(*n)++] = x;
    }
    fclose(f);
    return s;
}

/* Adds the series of acm_http_requests_total in the /metrics text at path into by_code ({"200": n, ...}) times sign. */
static void soak__metric_codes(const char *path, double sign, json_t *by_code) {
    FILE *f = fopen(path, "r");
    if (!f) bu_die(path, strerror(errno));
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "acm_http_requests_total{", 24) != 0) continue;
        char *c = strstr(line, "code=\""), *sp = strrchr(line, ' ');
        char code[8] = "";
        if (!c || !sp || sscanf(c + 6, "%7[0-9]", code) != 1) continue;
        const double v = strtod(sp + 1, NULL) * sign;
        json_t *old = json_object_get(by_code, code);
        json_object_set_new(by_code, code, json_real((old ? json_number_value(old) : 0) + v));
    }
    fclose(f);
}

static int soak__log_clean(const char *path, char *first, size_t n) {
    static const char *const bad[] = {"AddressSanitizer", "LeakSanitizer", "ThreadSanitizer", "runtime error:",
                                      "Segmentation fault", "Aborted"};
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f) return 1;
    char line[2048];
    int clean = 1;
    while (clean && fgets(line, sizeof line, f))
        for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
            if (strstr(line, bad[i])) {
                line[strcspn(line, "\n")] = 0;
                snprintf(first, n, "%.200s", line);
                clean = 0;
                break;
            }
    fclose(f);
    return clean;
}

typedef struct {
    const char *name;
    int pass;
    char detail[512];
} soak_check;

static int soak_report_main(int argc, char **argv) {
    const char *bench_path = NULL, *adv_path = NULL, *samples_path = NULL, *metrics_path = NULL, *metrics0_path = NULL,
               *log_path = NULL, *out_path = NULL;
    double duration = 0, saturation = 0, rate = 0, warm = 1.0 / 6, rss_limit = 0.02;
    int fd_base = -1, fd_end = -1, exit_code = -1000;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) soak__usage("every option takes a value");
        i++;
        if (!strcmp(a, "--bench")) bench_path = v;
        else if (!strcmp(a, "--adversarial")) adv_path = v;
        else if (!strcmp(a, "--samples")) samples_path = v;
        else if (!strcmp(a, "--metrics")) metrics_path = v;
        else if (!strcmp(a, "--metrics-start")) metrics0_path = v;
        else if (!strcmp(a, "--log")) log_path = v;
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--duration")) duration = soak__num(a, v, 0.1, 86400 * 7);
        else if (!strcmp(a, "--saturation")) saturation = soak__num(a, v, 0, 1e9);
        else if (!strcmp(a, "--rate")) rate = soak__num(a, v, 0, 1e9);
        else if (!strcmp(a, "--warmup-frac")) warm = soak__num(a, v, 0, 0.9);
        else if (!strcmp(a, "--rss-limit")) rss_limit = soak__num(a, v, 0, 10);
        else if (!strcmp(a, "--fd-baseline")) fd_base = (int)soak__num(a, v, 0, 1e9);
        else if (!strcmp(a, "--fd-end")) fd_end = (int)soak__num(a, v, -1, 1e9);
        else if (!strcmp(a, "--exit-code")) exit_code = (int)soak__num(a, v, -1000, 1000);
        else {
            char m[128];
            snprintf(m, sizeof m, "report: unknown option '%s'", a);
            soak__usage(m);
        }
    }
    if (!bench_path || !adv_path || !samples_path || !metrics_path || !duration || fd_base < 0)
        soak__usage("report needs --bench, --adversarial, --samples, --metrics, --duration and --fd-baseline");

    json_t *bench = soak__load_json(bench_path), *adv = soak__load_json(adv_path);
    int ns = 0;
    soak_sample *smp = soak__read_samples(samples_path, &ns);
    json_t *srv_codes = json_object(); /* answers the server counted during the soak, by status */
    soak__metric_codes(metrics_path, 1, srv_codes);
    if (metrics0_path) soak__metric_codes(metrics0_path, -1, srv_codes);
    double srv_all = 0, srv_5xx = 0;
    const char *key;
    json_t *val;
    void *tmp;
    json_object_foreach_safe(srv_codes, tmp, key, val) {
        const double v = json_number_value(val);
        if (v == 0) {
            json_object_del(srv_codes, key);
            continue;
        }
        srv_all += v;
        if (key[0] == '5') srv_5xx += v;
    }

    /* the good traffic (acm bench) */
    const double g_sent = soak__jnum(bench, "sent"), g_answered = soak__jnum(bench, "answered"),
                 g_errors = soak__jnum(bench, "errors");
    const json_t *g_by = json_object_get(bench, "by_status");
    double g_200 = 0, g_429 = 0, g_5xx = 0, g_other = 0;
    json_object_foreach((json_t *)g_by, key, val) {
        const int st = atoi(key);
        const double v = json_number_value(val);
        if (st == 200) g_200 += v;
        else if (st == 429) g_429 += v;
        else if (st >= 500) g_5xx += v;
        else g_other += v;
    }

    /* the adversarial traffic */
    const json_t *kinds = json_object_get(adv, "kinds");
    double a_started = soak__jnum(adv, "started"), a_ended = soak__jnum(adv, "ended");
    double v_lost = soak__jnum(adv, "verdicts/lost"), v_5xx = soak__jnum(adv, "verdicts/5xx"),
           v_early = soak__jnum(adv, "verdicts/closed_early"), v_nto = soak__jnum(adv, "verdicts/not_timed_out");
    double wrong_bad = 0, wrong_good = 0, a_answered = 0, a_disconnect = 0;
    json_object_foreach((json_t *)kinds, key, val) {
        const double w = soak__jnum(val, "verdicts/wrong_status");
        const char *grp = json_string_value(json_object_get(val, "group"));
        if (grp && !strcmp(grp, "bad")) wrong_bad += isnan(w) ? 0 : w;
        else wrong_good += isnan(w) ? 0 : w;
        const char *ok;
        json_t *cnt;
        json_object_foreach(json_object_get(val, "outcomes"), ok, cnt) {
            if (ok[0] >= '1' && ok[0] <= '9') a_answered += json_number_value(cnt);
            else if (!strcmp(ok, "disconnect")) a_disconnect += json_number_value(cnt);
        }
    }

    /* RSS after warm-up: least squares over the samples at t >= warm * duration */
    const double t_warm = warm * duration;
    double st = 0, sr = 0, stt = 0, str = 0, m = 0, t_first = NAN, t_last = NAN, rss_first = NAN, rss_last = NAN,
           rss_max = 0, rss_min = INFINITY;
    for (int i = 0; i < ns; i++) {
        if (smp[i].t < t_warm) continue;
        const double t = smp[i].t, r = (double)smp[i].rss_kb;
        if (isnan(t_first)) t_first = t, rss_first = r;
        t_last = t, rss_last = r;
        st += t, sr += r, stt += t * t, str += t * r, m++;
        rss_max = fmax(rss_max, r), rss_min = fmin(rss_min, r);
    }
    double slope = NAN, growth = NAN;
    if (m >= 3 && stt * m - st * st > 0) {
        slope = (m * str - st * sr) / (m * stt - st * st); /* kB per second */
        const double icept = (sr - slope * st) / m;
        growth = slope * (t_last - t_first) / (icept + slope * t_first);
    }
    int fd_min = INT32_MAX, fd_max = 0;
    for (int i = 0; i < ns; i++) fd_min = smp[i].fds < fd_min ? smp[i].fds : fd_min, fd_max = smp[i].fds > fd_max ? smp[i].fds : fd_max;
    const double gone = soak__jnum(adv, "server_gone_at_s");
    char log_line[256] = "";
    const int log_clean = soak__log_clean(log_path, log_line, sizeof log_line);

    soak_check ck[9];
    int nc = 0;
#define CHECK(n, cond, ...) (ck[nc].name = (n), ck[nc].pass = (cond), snprintf(ck[nc].detail, sizeof ck[nc].detail, __VA_ARGS__), nc++)
    CHECK("accounted", g_sent == g_answered + g_errors && g_errors == 0 && a_started == a_ended && v_lost == 0,
          "good: %.0f sent = %.0f answered + %.0f transport errors; adversarial: %.0f started, %.0f ended, %.0f without "
          "a status or a planned disconnect",
          g_sent, g_answered, g_errors, a_started, a_ended, v_lost);
    CHECK("no_5xx", g_5xx == 0 && v_5xx == 0 && srv_5xx == 0, "5xx seen: good %.0f, adversarial %.0f; counted by the server %.0f",
          g_5xx, v_5xx, srv_5xx);
    CHECK("bad_4xx", wrong_bad == 0, "%.0f bad requests answered with something other than a 4xx", wrong_bad);
    CHECK("good_200", g_other == 0 && wrong_good == 0,
          "good requests: %.0f answered neither 200 nor 429 (%.0f got 429); slow and mid-compute clients: %.0f wrong "
          "statuses", g_other, g_429, wrong_good);
    CHECK("request_timeout", v_early == 0 && v_nto == 0,
          "slow clients: %.0f closed before the timeout, %.0f past it neither closed nor answered 408", v_early, v_nto);
    CHECK("rss_flat", !isnan(growth) && growth < rss_limit,
          "RSS, least-squares line over the %.0f samples at t >= %.0f s (of %.0f s): %+.2f%% from t = %.0f to %.0f s "
          "(limit %.0f%%); first %.1f MiB, last %.1f MiB, min %.1f, max %.1f",
          m, t_warm, duration, 100 * growth, t_first, t_last, 100 * rss_limit, rss_first / 1024, rss_last / 1024,
          rss_min / 1024, rss_max / 1024);
    CHECK("fds_baseline", fd_end >= 0 && fd_end <= fd_base,
          "open descriptors: %d before the load, %d at the end (clients gone%s); %d..%d during the run", fd_base, fd_end,
          fd_end < 0 ? ": the server was gone" : "", fd_min, fd_max);
    CHECK("sigterm_exit_0", exit_code == 0, "%s: %d%s", fd_end < 0 ? "the server died before SIGTERM, exit status" : "exit status after SIGTERM",
          exit_code, exit_code == -1 ? " (did not exit in time: killed)" : exit_code > 128 ? " (killed by a signal)" : "");
    CHECK("no_crash", isnan(gone) && exit_code <= 128 && exit_code != -1 && log_clean,
          "server %s during the run; %s", isnan(gone) ? "alive" : "GONE", log_clean ? "its log holds no sanitizer or crash report" : log_line);
#undef CHECK

    /* the tables */
    printf("\nsoak: %.0f s at %.0f%% of saturation (S = %.1f ok/s closed loop), offered %.1f req/s: good %.1f + "
           "adversarial %.1f\n",
           duration, saturation > 0 ? 100 * (rate + soak__jnum(adv, "rate")) / saturation : 0, saturation,
           rate + soak__jnum(adv, "rate"), rate, soak__jnum(adv, "rate"));
    printf("\n| traffic | sent | answered | status counts | planned disconnects | failures | p50 ms | p99 ms |\n"
           "|---|---|---|---|---|---|---|---|\n");
    char codes[512] = "";
    size_t o = 0;
    json_object_foreach((json_t *)g_by, key, val) o += (size_t)snprintf(codes + o, sizeof codes - o, "%s%s: %.0f", o ? ", " : "", key, json_number_value(val));
    printf("| good (acm bench, Poisson) | %.0f | %.0f | %s | 0 | %.0f | %.2f | %.2f |\n", g_sent, g_answered, codes,
           g_errors, soak__jnum(bench, "latency_ms/p50"), soak__jnum(bench, "latency_ms/p99"));
    json_object_foreach((json_t *)kinds, key, val) {
        double ans = 0, disc = 0, fail = 0;
        const char *ok;
        json_t *cnt;
        codes[0] = 0, o = 0;
        json_object_foreach(json_object_get(val, "outcomes"), ok, cnt) {
            const double c = json_number_value(cnt);
            if (ok[0] >= '1' && ok[0] <= '9') ans += c;
            else if (!strcmp(ok, "disconnect")) disc += c;
            if (strcmp(ok, "disconnect")) o += (size_t)snprintf(codes + o, sizeof codes - o, "%s%s: %.0f", o ? ", " : "", ok, c);
        }
        json_object_foreach(json_object_get(val, "verdicts"), ok, cnt) if (strcmp(ok, "ok")) fail += json_number_value(cnt);
        char name[128];
        snprintf(name, sizeof name, "%s (expect %s)", key, json_string_value(json_object_get(val, "expect")));
        printf("| %s | %.0f | %.0f | %s | %.0f | %.0f | | |\n", name, soak__jnum(val, "started"), ans, codes[0] ? codes : "-",
               disc, fail);
    }
    const double lo = soak__jnum(kinds, "slow_timeout/closed_after_s_min"), hi = soak__jnum(kinds, "slow_timeout/closed_after_s_max");
    if (!isnan(lo))
        printf("\nslow clients past the %.1f s request timeout were ended %.2f-%.2f s after they connected\n",
               soak__jnum(adv, "request_timeout_s"), lo, hi);
    const double late = soak__jnum(kinds, "slow_complete/drip_late");
    if (late > 0)
        printf("slow_complete clients ended by the timeout because their own drip ran past it (this client late on a "
               "loaded machine; the server right): %.0f\n", late);
    codes[0] = 0, o = 0;
    json_object_foreach(srv_codes, key, val)
        o += (size_t)snprintf(codes + o, sizeof codes - o, "%s%s: %.0f", o ? ", " : "", key, json_number_value(val));
    printf("answered in all: %.0f (good %.0f, adversarial %.0f); planned disconnects %.0f\n"
           "the server's count (acm_http_requests_total from ready to the end: the saturation and warm-up runs "
           "included): %.0f, %s\n",
           g_answered + a_answered, g_answered, a_answered, a_disconnect, srv_all, codes);
    const json_t *ff = json_object_get(adv, "failures_first");
    for (size_t i = 0; i < json_array_size(ff); i++) printf("  adversarial failure: %s\n", json_string_value(json_array_get(ff, i)));

    printf("\nserver samples (t from the start of the load; warm-up until %.0f s)\n| t s | RSS MiB | open fds | threads |\n"
           "|---|---|---|---|\n", t_warm);
    const int rows = 12;
    for (int r = 0, last = -1; r <= rows && ns; r++) {
        const double want = smp[ns - 1].t * r / rows;
        int best = 0;
        for (int i = 0; i < ns; i++) if (fabs(smp[i].t - want) < fabs(smp[best].t - want)) best = i;
        if (best == last) continue;
        last = best;
        printf("| %.0f | %.1f | %d | %ld |\n", smp[best].t, (double)smp[best].rss_kb / 1024, smp[best].fds, smp[best].threads);
    }

    int failed = 0;
    printf("\nchecks:\n");
    for (int i = 0; i < nc; i++) {
        printf("  %s %-16s %s\n", ck[i].pass ? "PASS" : "FAIL", ck[i].name, ck[i].detail);
        failed += !ck[i].pass;
    }
    if (failed) {
        printf("soak: FAILED:");
        for (int i = 0; i < nc; i++) if (!ck[i].pass) printf(" %s", ck[i].name);
        printf("\n");
    } else printf("soak: all %d checks passed\n", nc);

    if (out_path) {
        json_t *s = json_object(), *cj = json_object();
        for (int i = 0; i < nc; i++)
            json_object_set_new(cj, ck[i].name, json_pack("{s:b, s:s}", "pass", ck[i].pass, "detail", ck[i].detail));
        json_object_set_new(s, "duration_s", json_real(duration));
        json_object_set_new(s, "saturation_rps", json_real(saturation));
        json_object_set_new(s, "good_rate", json_real(rate));
        json_object_set_new(s, "adversarial_rate", json_real(soak__jnum(adv, "rate")));
        json_object_set_new(s, "answered", json_real(g_answered + a_answered));
        json_object_set_new(s, "good", json_pack("{s:f, s:f, s:f, s:O, s:f, s:f}", "sent", g_sent, "answered", g_answered,
                                                 "transport_errors", g_errors, "by_status", g_by, "p50_ms",
                                                 soak__jnum(bench, "latency_ms/p50"), "p99_ms", soak__jnum(bench, "latency_ms/p99")));
        json_object_set_new(s, "adversarial", json_pack("{s:f, s:f, s:f, s:O}", "started", a_started, "answered", a_answered,
                                                        "planned_disconnects", a_disconnect, "kinds", kinds));
        json_object_set_new(s, "server_answers_by_code", srv_codes), srv_codes = NULL;
        json_object_set_new(s, "rss", json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "warmup_until_s", t_warm, "first_kb", rss_first,
                                                "last_kb", rss_last, "max_kb", rss_max, "slope_kb_per_s", slope, "growth", growth));
        json_object_set_new(s, "fds", json_pack("{s:i, s:i, s:i, s:i}", "baseline", fd_base, "end", fd_end, "min", fd_min, "max", fd_max));
        json_object_set_new(s, "exit_code", json_integer(exit_code));
        json_object_set_new(s, "checks", cj);
        json_object_set_new(s, "pass", json_boolean(!failed));
        if (json_dump_file(s, out_path, JSON_INDENT(2) | JSON_REAL_PRECISION(6))) bu_die(out_path, "cannot write");
        json_decref(s);
    }
    json_decref(srv_codes);
    json_decref(bench), json_decref(adv);
    free(smp);
    return failed ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "load")) return soak_load_main(argc, argv);
    if (argc == 4 && !strcmp(argv[1], "get")) { /* one number of a JSON file, for the script */
        json_t *o = soak__load_json(argv[2]);
        const double v = soak__jnum(o, argv[3]);
        json_decref(o);
        if (isnan(v)) bu_die(argv[2], "no such number");
        printf("%.9g\n", v);
        return 0;
    }
    if (argc >= 2 && !strcmp(argv[1], "report")) return soak_report_main(argc, argv);
    if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(soak_usage, stdout);
        return 0;
    }
    soak__usage("a command: load or report");
}
