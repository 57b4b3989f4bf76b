/*
 * test_ws.c — GET /v1/models/{m}/stream (server/ws.c) on the golden random-weight speech model, through a real acmd
 * and a small WebSocket client written here over raw sockets (frames built by hand, so that they can be made wrong):
 * the handshake (the accept key of RFC 6455's example, a missing Upgrade, a bad version, a bad key, an unknown model,
 * a model that is not a speech model, API keys by header and by ?access_token=, --max-streams), framing (unmasked
 * client frames refused with 1002, fragmented messages, a message over --max-frame-bytes 1009, a text frame that is
 * not UTF-8 1007, the close handshake, ping/pong), the idle timeout (1001), a client vanishing mid-stream (freed: the
 * active-streams gauge goes back to 0; no leak under ASan), several concurrent streams each with a final equal to the
 * /transcribe answer on the same audio, finalize / configure / end, and overload (a stream's budget shrinks with its
 * backlog, then a warning, then the close 1013; another stream untouched) under the worker hold, and the chunks of
 * many streams run as one engine call (more of them than --max-batch), gathered for --stream-gather-ms.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/model_mut.h"
#include "server/acmd.h"
#include "server/harness.h"

#define MODEL "tests/golden/speech_a.safetensors"

static void start(th_acmd *s, const char *const *args) {
    cr_assert_eq(th_acmd_start(s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(s, 30), 0, "acmd not ready");
}

/* n samples of s16 mono at 16 kHz: a chirp plus a little noise, different for every seed. */
static int16_t *signal_s16(size_t n, unsigned seed) {
    int16_t *x = malloc(n * sizeof *x);
    uint32_t r = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        const double t = (double)i / 16000, f = 150 + 90 * seed + 400 * t;
        r = r * 1664525u + 1013904223u;
        const double v = 0.5 * sin(2 * M_PI * f * t) * (0.6 + 0.4 * sin(2 * M_PI * 1.5 * t)) +
                         0.05 * ((double)(r >> 8) / (1 << 24) - 0.5);
        x[i] = (int16_t)lrint(v * 32767);
    }
    return x;
}

/* ---- a WebSocket client ---------------------------------------------------------------------------------------- */

typedef struct {
    int fd;
    int status;        /* of the handshake */
    char head[4096];
    uint8_t buf[1 << 16];
    size_t n;          /* bytes read past what was parsed */
} ws_t;


/* Opens a stream: `headers` replaces the handshake's own fields when not NULL. Returns 0 (status and head filled). */
static int ws_open(ws_t *w, int port, const char *path, const char *headers) {
    memset(w, 0, sizeof *w);
    w->fd = th_connect(port);
    if (w->fd < 0) return -1;
    char req[2048];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path,
             headers ? headers : "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
    if (th_send_all(w->fd, req, strlen(req))) return -1;
    size_t got = 0;
    for (;;) {
        struct pollfd p = {w->fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0) return -1;
        ssize_t k = recv(w->fd, w->head + got, sizeof w->head - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k;
        w->head[got] = 0;
        char *e = strstr(w->head, "\r\n\r\n");
        if (e && w->head[9] == '1') { /* 101: what follows the headers is frames */
            const size_t hl = (size_t)(e + 4 - w->head);
            memcpy(w->buf, w->head + hl, got - hl);
            w->n = got - hl;
            w->head[hl] = 0;
            break;
        }
        if (e && strstr(w->head, "Content-Length: ")) {
            const size_t cl = strtoul(strstr(w->head, "Content-Length: ") + 16, NULL, 10);
            if (got >= (size_t)(e + 4 - w->head) + cl) break;
        }
    }
    w->status = atoi(w->head + 9);
    return 0;
}

/* Sends one frame: masked (as a client must) unless mask is 0. */
static void ws_frame(ws_t *w, int opcode, int fin, int mask, const void *p, size_t n) {
    uint8_t *f = malloc(n + 14), m[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t o = 0;
    f[o++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    const uint8_t mb = mask ? 0x80 : 0;
    if (n < 126) f[o++] = mb | (uint8_t)n;
    else if (n < 65536) f[o++] = mb | 126, f[o++] = (uint8_t)(n >> 8), f[o++] = (uint8_t)n;
    else {
        f[o++] = mb | 127;
        for (int i = 7; i >= 0; i--) f[o++] = (uint8_t)((uint64_t)n >> (8 * i));
    }
    if (mask) memcpy(f + o, m, 4), o += 4;
    for (size_t i = 0; i < n; i++) f[o + i] = ((const uint8_t *)p)[i] ^ (mask ? m[i & 3] : 0);
    cr_assert_eq(th_send_all(w->fd, f, o + n), 0);
    free(f);
}

static void ws_text(ws_t *w, const char *s) { ws_frame(w, 1, 1, 1, s, strlen(s)); }

/* Reads one frame of the server (unmasked): its opcode, payload in out (NUL-terminated, malloc'd); -1 at EOF or after
 * timeout_s. */
static int ws_read(ws_t *w, uint8_t **out, size_t *len, double timeout_s) {
    const double until = th_now() + timeout_s;
    for (;;) {
        if (w->n >= 2) {
            size_t n = w->buf[1] & 0x7f, h = 2;
            cr_assert_eq(w->buf[1] & 0x80, 0, "a server frame must not be masked");
            if (n == 126 && w->n >= 4) n = (size_t)w->buf[2] << 8 | w->buf[3], h = 4;
            else if (n == 127 && w->n >= 10) {
                n = 0, h = 10;
                for (int i = 0; i < 8; i++) n = n << 8 | w->buf[2 + i];
            }
            if ((n < 126 || h > 2) && w->n >= h + n) {
                const int op = w->buf[0] & 0x0f;
                cr_assert(w->buf[0] & 0x80, "the server sends no fragments");
                *out = malloc(n + 1);
                memcpy(*out, w->buf + h, n);
                (*out)[n] = 0;
                *len = n;
                memmove(w->buf, w->buf + h + n, w->n - h - n);
                w->n -= h + n;
                return op;
            }
        }
        const double left = until - th_now();
        struct pollfd p = {w->fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) <= 0) return -1;
        const ssize_t k = recv(w->fd, w->buf + w->n, sizeof w->buf - w->n, 0);
        if (k <= 0) return -1;
        w->n += (size_t)k;
    }
}

/* The next JSON message of type `type` ("*": any; others skipped, pings answered), or NULL at a close (its code in *close). */
static json_t *ws_expect(ws_t *w, const char *type, int *close) {
    for (;;) {
        uint8_t *p;
        size_t n;
        const int op = ws_read(w, &p, &n, 30);
        if (op < 0) return NULL;
        if (op == 8) {
            if (close) *close = n >= 2 ? p[0] << 8 | p[1] : 1005;
            free(p);
            return NULL;
        }
        if (op == 9) ws_frame(w, 10, 1, 1, p, n);
        json_t *j = op == 1 ? json_loads((const char *)p, 0, NULL) : NULL;
        free(p);
        if (op == 1) cr_assert(j, "a text message that is not JSON");
        const char *t = j ? json_string_value(json_object_get(j, "type")) : NULL;
        if (t && (strcmp(t, type) == 0 || strcmp(type, "*") == 0)) return j;
        json_decref(j);
    }
}

/* Reads until the server's close frame; its code (-1: none came). */
static int ws_close_code(ws_t *w) {
    int code = -1;
    json_t *j;
    while ((j = ws_expect(w, "-", &code))) json_decref(j);
    return code;
}

/* Sends PCM in frames of `frame` samples. */
static void ws_audio(ws_t *w, const int16_t *x, size_t n, size_t frame) {
    for (size_t i = 0; i < n; i += frame) ws_frame(w, 2, 1, 1, x + i, 2 * (n - i < frame ? n - i : frame));
}

/* /transcribe's answer on the same samples (raw PCM). */
static json_t *transcribe_at(int port, const int16_t *x, size_t n, const char *budget) {
    th_resp r;
    char h[256];
    snprintf(h, sizeof h, "Content-Type: audio/x-raw;format=S16LE;rate=16000\r\n%s%s%s", budget ? "X-Compute-Budget: " : "",
             budget ? budget : "", budget ? "\r\n" : "");
    cr_assert_eq(th_http(port, "POST", "/v1/models/s/transcribe", h, x, n * 2, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    th_resp_free(&r);
    return j;
}

static json_t *transcribe(int port, const int16_t *x, size_t n) { return transcribe_at(port, x, n, NULL); }

static void expect_same_words(json_t *fin, json_t *ref) {
    cr_expect_str_eq(json_string_value(json_object_get(fin, "text")), json_string_value(json_object_get(ref, "text")));
    json_t *a = json_object_get(fin, "words"), *b = json_object_get(ref, "words");
    cr_assert_eq(json_array_size(a), json_array_size(b));
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *u = json_array_get(a, i), *v = json_array_get(b, i);
        cr_expect_str_eq(json_string_value(json_object_get(u, "word")), json_string_value(json_object_get(v, "word")));
        cr_expect(fabs(json_number_value(json_object_get(u, "start")) - json_number_value(json_object_get(v, "start"))) < 1e-6,
                  "word %zu starts at %g, /transcribe says %g", i, json_number_value(json_object_get(u, "start")),
                  json_number_value(json_object_get(v, "start")));
        cr_expect(fabs(json_number_value(json_object_get(u, "end")) - json_number_value(json_object_get(v, "end"))) < 1e-6);
        const double c = json_number_value(json_object_get(u, "confidence"));
        cr_expect(c >= 0 && c <= 1);
    }
}

static double wait_metric(int port, const char *series, double want, double timeout_s) {
    const double until = th_now() + timeout_s;
    double v;
    while ((v = th_metric(port, series)) != want && th_now() < until) usleep(20000);
    return v;
}

/* ---- handshake ------------------------------------------------------------------------------------------------- */

Test(ws, handshake, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--model", "v=tests/golden/vit_a.safetensors", "--workers",
                                    "1", NULL});
    ws_t w;
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    cr_assert_eq(w.status, 101, "%s", w.head);
    cr_expect(strstr(w.head, "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), "%s", w.head);
    cr_expect(strcasestr(w.head, "Upgrade: websocket\r\n"), "%s", w.head);
    json_t *j = ws_expect(&w, "ready", NULL);
    cr_assert(j);
    cr_expect_eq(json_integer_value(json_object_get(j, "rate")), 16000);
    json_decref(j);
    cr_expect_eq(wait_metric(s.port, "acm_asr_active_streams{model=\"s\"}", 1, 10), 1);
    close(w.fd);
    const struct {
        const char *path, *headers, *needle;
        int status;
    } bad[] = {
        {"/v1/models/s/stream", "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Upgrade: websocket", 400},
        {"/v1/models/s/stream", "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Upgrade: websocket", 400},
        {"/v1/models/s/stream", "Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "Version must be 13", 400},
        {"/v1/models/s/stream", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: c2hvcnQ=\r\n", "16 bytes", 400},
        {"/v1/models/s/stream", "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n", "16 bytes", 400},
        {"/v1/models/nope/stream", NULL, "unknown model", 404},
        {"/v1/models/v/stream", NULL, "not a speech model", 400},
        {"/v1/models/s/stream?rate=12", NULL, "rate", 400},
        {"/v1/models/s/stream?format=mp3", NULL, "format", 400},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(ws_open(&w, s.port, bad[i].path, bad[i].headers), 0);
        cr_expect_eq(w.status, bad[i].status, "case %zu: %s", i, w.head);
        cr_expect(strstr(w.head, bad[i].needle), "case %zu: wanted \"%s\" in %s", i, bad[i].needle, w.head);
        if (i == 2) cr_expect(strstr(w.head, "Sec-WebSocket-Version: 13\r\n"), "%s", w.head);
        close(w.fd);
    }
    cr_expect_eq(wait_metric(s.port, "acm_asr_active_streams{model=\"s\"}", 0, 10), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

Test(ws, keys_and_the_stream_limit, .timeout = 60) {
    th_acmd s;
    char dir[] = "/tmp/acm_ws_XXXXXX", path[64], line[256];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/keys", dir);
    uint8_t h[ACMD_KEY_HASH];
    acmd_key_hash(h, "alice-key-0123", 14);
    size_t o = (size_t)snprintf(line, sizeof line, "alice sha256:");
    for (int i = 0; i < ACMD_KEY_HASH; i++) o += (size_t)snprintf(line + o, sizeof line - o, "%02x", h[i]);
    snprintf(line + o, sizeof line - o, "\n");
    FILE *f = fopen(path, "w");
    fputs(line, f);
    fclose(f);
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--auth-file", path, "--max-streams", "1", NULL});
    ws_t w, w2;
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    cr_expect_eq(w.status, 401, "%s", w.head);
    close(w.fd);
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream?access_token=wrong", NULL), 0);
    cr_expect_eq(w.status, 401, "%s", w.head);
    close(w.fd);
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream",
                         "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nAuthorization: Bearer alice-key-0123\r\n"), 0);
    cr_expect_eq(w.status, 101, "%s", w.head);
    json_decref(ws_expect(&w, "ready", NULL));
    /* one stream open: the limit */
    cr_assert_eq(ws_open(&w2, s.port, "/v1/models/s/stream?access_token=alice-key-0123", NULL), 0);
    cr_expect_eq(w2.status, 503, "%s", w2.head);
    cr_expect(strstr(w2.head, "--max-streams"), "%s", w2.head);
    close(w2.fd);
    ws_text(&w, "{\"type\":\"end\"}");
    cr_expect_eq(ws_close_code(&w), 1000);
    close(w.fd);
    cr_expect_eq(wait_metric(s.port, "acm_asr_active_streams{model=\"s\"}", 0, 10), 0);
    cr_assert_eq(ws_open(&w2, s.port, "/v1/models/s/stream?access_token=alice-key-0123", NULL), 0);
    cr_expect_eq(w2.status, 101, "%s", w2.head);
    close(w2.fd);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
    unlink(path), rmdir(dir);
}

/* ---- framing --------------------------------------------------------------------------------------------------- */

Test(ws, framing, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--max-frame-bytes", "4096", NULL});
    ws_t w;
    /* an unmasked client frame: protocol error */
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    cr_assert_eq(w.status, 101);
    ws_frame(&w, 1, 1, 0, "{\"type\":\"keepalive\"}", 20);
    cr_expect_eq(ws_close_code(&w), 1002);
    close(w.fd);
    /* a message over --max-frame-bytes */
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    uint8_t *big = calloc(1, 8192);
    ws_frame(&w, 2, 1, 1, big, 8192);
    cr_expect_eq(ws_close_code(&w), 1009);
    close(w.fd);
    /* over it in fragments that are each under it */
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    ws_frame(&w, 2, 0, 1, big, 3000);
    ws_frame(&w, 0, 1, 1, big, 3000);
    cr_expect_eq(ws_close_code(&w), 1009);
    close(w.fd);
    free(big);
    /* a text frame that is not UTF-8 */
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    ws_text(&w, "{\"type\":\"keepalive\",\"x\":\"\xc3\x28\"}");
    cr_expect_eq(ws_close_code(&w), 1007);
    close(w.fd);
    /* not JSON, an unknown type (answered, the stream goes on), ping -> pong, the close handshake */
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    json_decref(ws_expect(&w, "ready", NULL));
    ws_text(&w, "{\"type\":\"dance\"}");
    json_t *e = ws_expect(&w, "error", NULL);
    cr_assert(e);
    cr_expect(strstr(json_string_value(json_object_get(e, "error")), "unknown message type"));
    json_decref(e);
    ws_frame(&w, 9, 1, 1, "abc", 3);
    uint8_t *p;
    size_t n;
    cr_assert_eq(ws_read(&w, &p, &n, 10), 10, "a pong answers a ping");
    cr_expect(n == 3 && memcmp(p, "abc", 3) == 0);
    free(p);
    ws_frame(&w, 8, 1, 1, "\x03\xe8", 2);
    cr_expect_eq(ws_close_code(&w), 1000);
    close(w.fd);
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    ws_text(&w, "not json");
    cr_expect_eq(ws_close_code(&w), 1008);
    close(w.fd);
    cr_expect_eq(wait_metric(s.port, "acm_asr_active_streams{model=\"s\"}", 0, 10), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

Test(ws, idle_timeout, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--stream-idle-timeout", "0.3", NULL});
    ws_t w;
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    int code = 0;
    json_t *e = ws_expect(&w, "error", &code);
    cr_assert(e, "an error message before the close");
    cr_expect(strstr(json_string_value(json_object_get(e, "error")), "no message"));
    json_decref(e);
    cr_expect_eq(ws_close_code(&w), 1001);
    close(w.fd);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* ---- transcripts ----------------------------------------------------------------------------------------------- */

typedef struct {
    int port;
    unsigned seed;
    size_t n, frame;
    int fragmented;
    json_t *final;
    int partials, close;
} stream_t;

static void *stream_run(void *arg) {
    stream_t *t = arg;
    int16_t *x = signal_s16(t->n, t->seed);
    ws_t w;
    cr_assert_eq(ws_open(&w, t->port, "/v1/models/s/stream?endpoint_ms=0", NULL), 0);
    cr_assert_eq(w.status, 101);
    if (t->fragmented) { /* each message in three fragments */
        for (size_t i = 0; i < t->n; i += t->frame) {
            const size_t k = t->n - i < t->frame ? t->n - i : t->frame, a = k / 3;
            ws_frame(&w, 2, 0, 1, x + i, 2 * a);
            ws_frame(&w, 0, 0, 1, x + i + a, 2 * a);
            ws_frame(&w, 0, 1, 1, x + i + 2 * a, 2 * (k - 2 * a));
        }
    } else {
        ws_audio(&w, x, t->n, t->frame);
    }
    ws_text(&w, "{\"type\":\"end\"}");
    for (;;) {
        uint8_t *p;
        size_t n;
        const int op = ws_read(&w, &p, &n, 30);
        if (op < 0) break;
        if (op == 8) {
            t->close = n >= 2 ? p[0] << 8 | p[1] : 1005;
            free(p);
            ws_frame(&w, 8, 1, 1, "\x03\xe8", 2);
            break;
        }
        json_t *j = json_loads((const char *)p, 0, NULL);
        free(p);
        const char *ty = json_string_value(json_object_get(j, "type"));
        if (ty && !strcmp(ty, "partial")) t->partials++;
        if (ty && !strcmp(ty, "final")) t->final = json_incref(j);
        json_decref(j);
    }
    close(w.fd);
    free(x);
    return NULL;
}

Test(ws, concurrent_streams_match_transcribe, .timeout = 120) {
    th_acmd s;
    /* the audio goes as fast as the sockets take it, not in real time: with the overload's budget shrinking off
     * (--stream-max-behind 0), so that every final is /transcribe's at the full budget */
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "2", "--stream-max-behind", "0", NULL});
    enum { N = 4 };
    stream_t t[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        t[i] = (stream_t){.port = s.port, .seed = (unsigned)i + 1, .n = 16000 * 3 + 977 * (size_t)i,
                          .frame = 1600 + 333 * (size_t)i, .fragmented = i == 1};
        pthread_create(&th[i], NULL, stream_run, &t[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        cr_assert(t[i].final, "stream %d: no final", i);
        cr_expect_eq(t[i].close, 1000, "stream %d", i);
        cr_expect_gt(t[i].partials, 2, "stream %d: partials as chunks ran", i);
        cr_expect_str_eq(json_string_value(json_object_get(t[i].final, "reason")), "end");
        int16_t *x = signal_s16(t[i].n, t[i].seed);
        json_t *ref = transcribe(s.port, x, t[i].n);
        expect_same_words(t[i].final, ref);
        json_decref(ref), json_decref(t[i].final);
        free(x);
    }
    /* a latency observed per partial */
    int partials = 0;
    for (int i = 0; i < N; i++) partials += t[i].partials;
    cr_expect_eq(th_metric(s.port, "acm_asr_chunk_latency_seconds_count{model=\"s\"}"), partials);
    cr_expect_eq(th_metric(s.port, "acm_asr_segments_total{model=\"s\"}"), N);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

Test(ws, client_vanishes_mid_stream, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    int16_t *x = signal_s16(16000 * 4, 3);
    for (int k = 0; k < 3; k++) {
        ws_t w;
        cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
        ws_audio(&w, x, 16000 * 4, 4000);
        if (k == 1) json_decref(ws_expect(&w, "partial", NULL)); /* chunks ran, more are queued or running */
        close(w.fd);                                              /* gone without a close frame */
    }
    cr_expect_eq(wait_metric(s.port, "acm_asr_active_streams{model=\"s\"}", 0, 20), 0);
    /* the server still serves */
    json_t *ref = transcribe(s.port, x, 16000);
    json_decref(ref);
    free(x);
    cr_expect_eq(wait_metric(s.port, "acm_buffered_bytes", 0, 20), 0, "the streams' memory is released");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

Test(ws, finalize_configure_end, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(2 * n, 5);
    ws_t w;
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream?endpoint_ms=0", NULL), 0);
    json_decref(ws_expect(&w, "ready", NULL));
    /* a bad configure is answered and changes nothing */
    ws_text(&w, "{\"type\":\"configure\",\"budget\":7}");
    json_t *e = ws_expect(&w, "error", NULL);
    cr_assert(e);
    cr_expect(strstr(json_string_value(json_object_get(e, "error")), "budget"));
    json_decref(e);
    ws_text(&w, "{\"type\":\"configure\",\"budget\":0.5,\"endpoint_ms\":0}");
    json_t *c = ws_expect(&w, "configured", NULL);
    cr_assert(c);
    cr_expect_float_eq(json_number_value(json_object_get(c, "budget")), 0.5, 1e-6);
    json_decref(c);
    ws_audio(&w, x, n, 3200);
    json_t *p = ws_expect(&w, "partial", NULL);
    cr_assert(p);
    const double b = json_number_value(json_object_get(json_object_get(p, "chunk"), "budget"));
    cr_expect(b > 0 && b <= 0.5 + 1e-6, "chunk budget %g under configure's 0.5", b);
    json_decref(p);
    ws_text(&w, "{\"type\":\"finalize\"}");
    json_t *f1 = ws_expect(&w, "final", NULL);
    cr_assert(f1);
    cr_expect_str_eq(json_string_value(json_object_get(f1, "reason")), "finalize");
    cr_expect_eq(json_integer_value(json_object_get(f1, "segment")), 0);
    cr_expect_float_eq(json_number_value(json_object_get(f1, "audio_s")), 2.0, 1e-9);
    /* the second half: a segment of its own, its times after the first's */
    ws_audio(&w, x + n, n, 3200);
    ws_text(&w, "{\"type\":\"end\"}");
    json_t *f2 = ws_expect(&w, "final", NULL);
    cr_assert(f2);
    cr_expect_str_eq(json_string_value(json_object_get(f2, "reason")), "end");
    cr_expect_eq(json_integer_value(json_object_get(f2, "segment")), 1);
    json_t *words = json_object_get(f2, "words");
    for (size_t i = 0; i < json_array_size(words); i++)
        cr_expect_geq(json_number_value(json_object_get(json_array_get(words, i), "start")), 2.0 - 1e-9);
    /* each segment as /transcribe reads its half alone (the stream starts again at finalize) */
    json_t *r1 = transcribe_at(s.port, x, n, "0.5"), *r2 = transcribe_at(s.port, x + n, n, "0.5");
    cr_expect_str_eq(json_string_value(json_object_get(f1, "text")), json_string_value(json_object_get(r1, "text")));
    cr_expect_str_eq(json_string_value(json_object_get(f2, "text")), json_string_value(json_object_get(r2, "text")));
    json_t *end = ws_expect(&w, "end", NULL);
    cr_assert(end);
    cr_expect_eq(json_integer_value(json_object_get(end, "segments")), 2);
    json_decref(end);
    cr_expect_eq(ws_close_code(&w), 1000);
    close(w.fd);
    json_decref(f1), json_decref(f2), json_decref(r1), json_decref(r2);
    free(x);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Overload, by construction: under the worker hold (harness.h) the stream's audio piles up whatever the CPU's speed.
 * With --stream-max-behind 8, a backlog past 2 s shrinks the budget (the floor, 0.25, from 4 s), 6 s gets a warning,
 * 8 s the close 1013, in that order; a stream the workers keep up with, open all along, is untouched. A chunk is
 * 2560 samples (0.16 s) and a job takes 8 chunks at most, so every backlog below is known exactly. */
Test(ws, overload_shrinks_then_warns_then_closes, .timeout = 90) {
    th_acmd s;
    cr_assert_eq(th_acmd_start_held(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1",
                                                              "--stream-max-behind", "8", NULL}), 0);
    th_hold_release(&s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    int16_t *x = signal_s16(16000 * 12, 3);
    ws_t a, b;
    cr_assert_eq(ws_open(&a, s.port, "/v1/models/s/stream?endpoint_ms=0", NULL), 0);
    cr_assert_eq(ws_open(&b, s.port, "/v1/models/s/stream?endpoint_ms=0", NULL), 0);
    json_t *rd = ws_expect(&a, "ready", NULL);
    cr_assert(rd);
    cr_assert_float_eq(json_number_value(json_object_get(rd, "chunk_s")), 0.16, 1e-9);
    json_decref(rd), json_decref(ws_expect(&b, "ready", NULL));
    size_t at = 0;
    ws_audio(&a, x, 5120, 5120), at += 5120; /* job 1: two chunks (a partial: the frontend's window), held */
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 30), 0);
    ws_audio(&a, x + at, 88000, 3200), at += 88000; /* 5.5 s behind: the floor from the next job on, no warning yet */
    th_hold_release(&s, 1); /* job 1 back; job 2 (8 chunks, at the floor) held: 4.22 s behind */
    json_t *m = ws_expect(&a, "*", NULL);
    cr_assert(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "partial", "%s", json_dumps(m, 0));
    cr_expect_float_eq(json_number_value(json_object_get(json_object_get(m, "chunk"), "budget_cap")), 1.0, 1e-6,
                       "the job dispatched before the backlog ran at the stream's own budget");
    json_decref(m);
    th_hold_release(&s, 1); /* job 2 back; job 3 (at the floor) held: 2.94 s behind */
    m = ws_expect(&a, "*", NULL);
    cr_assert(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "partial", "%s", json_dumps(m, 0));
    cr_expect_float_eq(json_number_value(json_object_get(json_object_get(m, "chunk"), "budget_cap")), 0.25, 1e-6,
                       "the budget shrinks to the floor first");
    json_decref(m);
    cr_expect_eq(th_metric(s.port, "acm_asr_streams_behind_total{model=\"s\"}"), 0);
    ws_audio(&a, x + at, 51200, 3200), at += 51200; /* 6.14 s behind at the floor: the warning */
    m = ws_expect(&a, "*", NULL);
    cr_assert(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "warning", "%s", json_dumps(m, 0));
    cr_expect_str_eq(json_string_value(json_object_get(m, "reason")), "behind_real_time");
    cr_expect_float_eq(json_number_value(json_object_get(m, "behind_s")), 98240.0 / 16000, 1e-6);
    cr_expect_float_eq(json_number_value(json_object_get(m, "budget")), 0.25, 1e-6);
    json_decref(m);
    ws_audio(&b, x, 2560, 2560); /* the other stream: one chunk, queued behind the held job */
    ws_audio(&a, x + at, 32000, 3200), at += 32000; /* 8.14 s behind: closed */
    m = ws_expect(&a, "*", NULL);
    cr_assert(m);
    cr_assert_str_eq(json_string_value(json_object_get(m, "type")), "error", "%s", json_dumps(m, 0));
    cr_expect_eq(json_integer_value(json_object_get(m, "close_code")), 1013);
    cr_expect(strstr(json_string_value(json_object_get(m, "error")), "behind real time"));
    json_decref(m);
    cr_expect_eq(ws_close_code(&a), 1013);
    close(a.fd);
    th_hold_end(&s);
    /* the stream within real time: every job at its own budget, no warning, its end as usual */
    ws_text(&b, "{\"type\":\"end\"}");
    int code = -1, partials = 0;
    while ((m = ws_expect(&b, "*", &code))) {
        const char *t = json_string_value(json_object_get(m, "type"));
        cr_expect(strcmp(t, "warning") && strcmp(t, "error"), "%s", t);
        if (!strcmp(t, "partial")) {
            partials++;
            cr_expect_float_eq(json_number_value(json_object_get(json_object_get(m, "chunk"), "budget_cap")), 1.0, 1e-6);
        }
        json_decref(m);
    }
    cr_expect_eq(code, 1000);
    cr_expect_geq(partials, 1);
    close(b.fd);
    cr_expect_eq(wait_metric(s.port, "acm_asr_streams_dropped_total{model=\"s\",reason=\"behind_real_time\"}", 1, 10), 1);
    cr_expect_eq(th_metric(s.port, "acm_asr_streams_behind_total{model=\"s\"}"), 1);
    free(x);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* n streams opened (endpointing off), each past its `ready`. */
static ws_t *open_streams(int port, int n) {
    ws_t *w = calloc((size_t)n, sizeof *w);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(ws_open(&w[i], port, "/v1/models/s/stream?endpoint_ms=0", NULL), 0);
        json_decref(ws_expect(&w[i], "ready", NULL));
    }
    return w;
}

/* The next partial of streams [from, to) each: its chunk ran in an engine call of `batch` chunks. */
static void expect_batch(ws_t *w, int from, int to, int batch) {
    for (int i = from; i < to; i++) {
        json_t *m = ws_expect(&w[i], "partial", NULL);
        cr_assert(m, "stream %d: no partial", i);
        const json_int_t b = json_integer_value(json_object_get(json_object_get(m, "chunk"), "batch"));
        cr_expect_eq(b, batch, "stream %d: its chunk ran in an engine call of %d chunks, not %d", i, (int)b, batch);
        json_decref(m);
    }
}

/* Batching, by construction: under the worker hold, one stream's job holds the only worker while 20 other streams
 * each queue a chunk; once it is back, the 20 chunks go to the worker as one batch and run as one engine call (every
 * partial says batch 20). More than --max-batch's 8: a speech model's batch is --stream-batch chunks (64). */
Test(ws, chunks_of_many_streams_run_as_one_batch, .timeout = 90) {
    enum { N = 20 };
    th_acmd s;
    cr_assert_eq(th_acmd_start_held(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL}), 0);
    th_hold_release(&s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    int16_t *x = signal_s16(5120, 5);
    ws_t *w = open_streams(s.port, N + 1);
    ws_audio(&w[0], x, 5120, 5120); /* its job holds the worker */
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 30), 0);
    for (int i = 1; i <= N; i++) ws_audio(&w[i], x, 5120, 5120); /* a chunk each, queued */
    cr_assert_eq(th_wait_stats(&s, "s", 1, N, 30), 0);
    th_hold_release(&s, 1); /* stream 0's job runs; the N queued go to the worker together, held */
    expect_batch(w, 0, 1, 1);
    cr_assert_eq(th_wait_stats(&s, "s", N, 0, 30), 0, "the %d streams' jobs were not taken as one batch", N);
    th_hold_release(&s, 1);
    expect_batch(w, 1, N + 1, N);
    th_hold_end(&s);
    for (int i = 0; i <= N; i++) close(w[i].fd);
    free(w), free(x);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* Gathering, by construction: with --stream-gather-ms far longer than the test, streams' chunks wait in the queue
 * (the worker free) until --stream-batch of them are there, then run as one call; a finalize does not wait. */
Test(ws, chunks_wait_for_a_full_batch_with_stream_gather, .timeout = 90) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--stream-batch", "3",
                                    "--stream-gather-ms", "60000", NULL});
    int16_t *x = signal_s16(5120, 6);
    ws_t *w = open_streams(s.port, 4);
    ws_audio(&w[3], x, 5120, 5120); /* queued, gathering; its finalize sends it at once */
    ws_text(&w[3], "{\"type\":\"finalize\"}");
    json_t *m = ws_expect(&w[3], "final", NULL);
    cr_assert(m, "a finalize waited for the batch to fill");
    json_decref(m);
    ws_audio(&w[0], x, 5120, 5120);
    ws_audio(&w[1], x, 5120, 5120);
    cr_assert_eq(th_wait_stats(&s, "s", 0, 2, 30), 0, "two chunks queued, the worker free: they wait for a third");
    ws_audio(&w[2], x, 5120, 5120); /* the batch is full: one call */
    expect_batch(w, 0, 3, 3);
    for (int i = 0; i < 4; i++) close(w[i].fd);
    free(w), free(x);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* ---- endpointing ------------------------------------------------------------------------------------------------ */

/* The golden speech model made into a loudness detector: every block's output projection zero (the residual stream
 * is the front end's projection alone), the front end the mean of the stacked log-mel frames less 12 along
 * v = (1, -1, 1, ...), so that the final LayerNorm gives +v on loud frames (log-mel mean about 0) and -v on digital
 * silence (log(1e-10) = -23); the head reads +v as "a" and -v as the blank. Written to path. */
static void loudness_model(const char *path) {
    model_mut m;
    model_mut_open(&m, MODEL);
    static float zero[64 * 64], v[32], proj[32 * 320], bias[32], ones[80], head[29 * 32], hb[29];
    for (int i = 0; i < 32; i++) v[i] = i % 2 ? -1.f : 1.f, bias[i] = 12.f * v[i];
    for (int i = 0; i < 32 * 320; i++) proj[i] = v[i / 320] / 320.f;
    for (int i = 0; i < 80; i++) ones[i] = 1;
    for (int i = 0; i < 32; i++) head[i] = -v[i], head[32 + i] = v[i]; /* row 0: the blank; row 1: "a" */
    for (int i = 2; i < 29; i++) hb[i] = -100;
    static const char *const zeros[] = {"blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.0.mlp.w2",
                                        "blocks.1.attn.proj.w2", "blocks.1.mlp.fc2.weight", "blocks.1.mlp.fc2.bias"};
    for (size_t i = 0; i < sizeof zeros / sizeof *zeros; i++) m.t[model_mut_find(&m, zeros[i])].data = zero;
    m.t[model_mut_find(&m, "frontend.mel_mean")].data = zero;
    m.t[model_mut_find(&m, "frontend.mel_std")].data = ones;
    m.t[model_mut_find(&m, "frontend.proj.weight")].data = proj;
    m.t[model_mut_find(&m, "frontend.proj.bias")].data = bias;
    m.t[model_mut_find(&m, "head.weight")].data = head;
    m.t[model_mut_find(&m, "head.bias")].data = hb;
    char err[256];
    char *js = json_dumps(m.acm, JSON_COMPACT);
    json_t *meta = json_pack("{s:s}", "acm", js);
    free(js);
    cr_assert_eq(acm__st_write(path, m.t, m.n, meta, err, sizeof err), 0, "%s", err);
    json_decref(meta);
    model_mut_close(&m);
}

/* The loudness model written to a fresh file from the template path (mkstemp's XXXXXX), and its --model argument
 * "s=PATH" in arg. */
static void loudness_model_tmp(char *path, char *arg, size_t n) {
    const int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    loudness_model(path);
    snprintf(arg, n, "s=%s", path);
}

/* Streams speech (1 s), digital silence (3 s: longer than two jobs of 8 chunks, so that some job ends inside it
 * however the audio was cut into jobs), speech (1 s), then `end`; every message until the close, in order. */
static json_t *endpoint_run(int port, const char *path, const char *configure) {
    const size_t sec = 16000;
    int16_t *x = calloc(5 * sec, sizeof *x), *sp = signal_s16(sec, 2);
    memcpy(x, sp, sec * sizeof *x), memcpy(x + 4 * sec, sp, sec * sizeof *x);
    ws_t w;
    cr_assert_eq(ws_open(&w, port, path, NULL), 0);
    json_decref(ws_expect(&w, "ready", NULL));
    if (configure) {
        ws_text(&w, configure);
        json_decref(ws_expect(&w, "configured", NULL));
    }
    ws_audio(&w, x, 5 * sec, 3200);
    ws_text(&w, "{\"type\":\"end\"}");
    json_t *all = json_array(), *m;
    int code = -1;
    while ((m = ws_expect(&w, "*", &code))) json_array_append_new(all, m);
    cr_expect_eq(code, 1000);
    close(w.fd);
    free(x), free(sp);
    return all;
}

Test(ws, endpoint_after_silence, .timeout = 60) {
    char path[] = "/tmp/acm-ws-loud-XXXXXX", arg[300];
    loudness_model_tmp(path, arg, sizeof arg);
    th_acmd s;
    start(&s, (const char *const[]){"--model", arg, "--workers", "1", "--stream-max-behind", "0", NULL});
    /* endpoint_ms 300: a final after the silence with the first word, then a new segment for the second */
    json_t *all = endpoint_run(s.port, "/v1/models/s/stream?endpoint_ms=300", NULL);
    int finals = 0, seg1_partial = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *m = json_array_get(all, i);
        const char *t = json_string_value(json_object_get(m, "type"));
        const int seg = (int)json_integer_value(json_object_get(m, "segment"));
        if (!strcmp(t, "final")) {
            const char *want = finals == 0 ? "endpoint" : "end";
            cr_expect_str_eq(json_string_value(json_object_get(m, "reason")), want);
            cr_expect_eq(seg, finals);
            cr_expect_str_eq(json_string_value(json_object_get(m, "text")), "a", "%s", json_dumps(m, 0));
            json_t *wd = json_array_get(json_object_get(m, "words"), 0);
            const double st = json_number_value(json_object_get(wd, "start"));
            if (finals == 0) cr_expect(st < 1.0 && json_number_value(json_object_get(wd, "end")) <= 1.1, "%s", json_dumps(m, 0));
            else cr_expect(st >= 3.9 && st < 5.0, "the second word starts at %g", st);
            if (finals == 0) cr_expect_eq(seg1_partial, 0, "a partial of segment 1 before segment 0's final");
            finals++;
        } else if (!strcmp(t, "partial") && seg == 1) {
            seg1_partial++;
            cr_expect_eq(finals, 1);
        }
    }
    cr_expect_eq(finals, 2, "%s", json_dumps(all, 0));
    cr_expect_geq(seg1_partial, 1, "the speech after the endpoint comes in partials of segment 1");
    json_decref(all);
    /* the same stream with endpoint_ms raised by configure past the silence: one segment, ended by `end` */
    all = endpoint_run(s.port, "/v1/models/s/stream?endpoint_ms=300", "{\"type\":\"configure\",\"endpoint_ms\":5000}");
    finals = 0;
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *m = json_array_get(all, i);
        if (strcmp(json_string_value(json_object_get(m, "type")), "final")) continue;
        finals++;
        cr_expect_str_eq(json_string_value(json_object_get(m, "reason")), "end");
        cr_expect_str_eq(json_string_value(json_object_get(m, "text")), "aa", "%s", json_dumps(m, 0));
    }
    cr_expect_eq(finals, 1);
    json_decref(all);
    cr_expect_eq(th_metric(s.port, "acm_asr_segments_total{model=\"s\"}"), 3);
    unlink(path);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* A whole file breaks a word where a stream ends a segment: speech (1 s), 3 s of silence, speech (1 s), streamed with
 * the default endpoint_ms (800) gives the finals "a" and "a"; POST /transcribe of the same samples gives "a a" (a
 * space where the pause was: the model emits none), not "aa". */
Test(ws, whole_file_breaks_words_where_a_stream_ends_segments, .timeout = 60) {
    char path[] = "/tmp/acm-ws-loud-XXXXXX", arg[300];
    loudness_model_tmp(path, arg, sizeof arg);
    th_acmd s;
    start(&s, (const char *const[]){"--model", arg, "--workers", "1", "--stream-max-behind", "0", NULL});
    json_t *all = endpoint_run(s.port, "/v1/models/s/stream", NULL);
    char joined[64] = "";
    for (size_t i = 0; i < json_array_size(all); i++) {
        json_t *m = json_array_get(all, i);
        if (strcmp(json_string_value(json_object_get(m, "type")), "final")) continue;
        const char *t = json_string_value(json_object_get(m, "text"));
        if (*t) snprintf(joined + strlen(joined), sizeof joined - strlen(joined), "%s%s", *joined ? " " : "", t);
    }
    json_decref(all);
    cr_expect_str_eq(joined, "a a", "the stream's finals");
    const size_t sec = 16000;
    int16_t *x = calloc(5 * sec, sizeof *x), *sp = signal_s16(sec, 2);
    memcpy(x, sp, sec * sizeof *x), memcpy(x + 4 * sec, sp, sec * sizeof *x);
    json_t *ref = transcribe(s.port, x, 5 * sec);
    cr_expect_str_eq(json_string_value(json_object_get(ref, "text")), "a a", "%s", json_dumps(ref, 0));
    cr_expect_eq(json_array_size(json_object_get(ref, "words")), 2, "%s", json_dumps(ref, 0));
    json_decref(ref);
    free(x), free(sp);
    unlink(path);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* An endpoint does not depend on how the audio was paced: speech (1 s), 0.8 s of silence, speech (1 s) and `end`
 * reach the server as one message while another stream's job holds the only worker (the hold), so that all 2.8 s
 * wait in the stream's buffer when its turn comes. Jobs of 8 chunks (1.28 s) would end at most 0.28 s into the
 * silence and then in the second speech: no job would end on 300 ms of blank, one segment "aa". One chunk a job
 * finds the endpoint where a stream paced in real time finds it: a final "a" (endpoint), then "a" (end). */
Test(ws, endpoint_does_not_depend_on_pacing, .timeout = 60) {
    char path[] = "/tmp/acm-ws-loud-XXXXXX", arg[300], url[128];
    loudness_model_tmp(path, arg, sizeof arg);
    th_acmd s;
    cr_assert_eq(th_acmd_start_held(&s, (const char *const[]){"--model", arg, "--workers", "1", "--stream-max-behind",
                                                               "0", NULL}), 0);
    th_hold_release(&s, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    const size_t sec = 16000, n = 28 * sec / 10;
    int16_t *x = calloc(n, sizeof *x), *sp = signal_s16(sec, 2);
    memcpy(x, sp, sec * sizeof *x), memcpy(x + 18 * sec / 10, sp, sec * sizeof *x);
    ws_t hold, w;
    snprintf(url, sizeof url, "/v1/models/s/stream?endpoint_ms=0");
    cr_assert_eq(ws_open(&hold, s.port, url, NULL), 0);
    json_decref(ws_expect(&hold, "ready", NULL));
    snprintf(url, sizeof url, "/v1/models/s/stream?endpoint_ms=300");
    cr_assert_eq(ws_open(&w, s.port, url, NULL), 0);
    json_decref(ws_expect(&w, "ready", NULL));
    ws_audio(&hold, sp, 5120, 5120); /* its job takes the worker, held */
    cr_assert_eq(th_wait_stats(&s, "s", 1, 0, 30), 0);
    ws_audio(&w, x, n, n); /* one message: all of it decoded at once, queued behind the held job */
    ws_text(&w, "{\"type\":\"end\"}");
    cr_assert_eq(th_wait_stats(&s, "s", 1, 1, 30), 0);
    th_hold_end(&s);
    json_t *m;
    int code = -1, finals = 0;
    while ((m = ws_expect(&w, "*", &code))) {
        if (!strcmp(json_string_value(json_object_get(m, "type")), "final")) {
            cr_expect_str_eq(json_string_value(json_object_get(m, "reason")), finals ? "end" : "endpoint", "%s",
                             json_dumps(m, 0));
            cr_expect_str_eq(json_string_value(json_object_get(m, "text")), "a", "%s", json_dumps(m, 0));
            finals++;
        }
        json_decref(m);
    }
    cr_expect_eq(code, 1000);
    cr_expect_eq(finals, 2, "one segment per utterance, the first ended by the silence");
    close(w.fd), close(hold.fd);
    free(x), free(sp);
    unlink(path);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* clients/python/acm_stream.py (standard library only) under Debian's python3: its final line is /transcribe's text. */
Test(ws, python_example, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", NULL});
    const size_t n = 16000 * 2;
    int16_t *x = signal_s16(n, 7);
    char dir[] = "/tmp/acm_wspy_XXXXXX", wav[64], out[64], cmd[512];
    cr_assert(mkdtemp(dir));
    snprintf(wav, sizeof wav, "%s/a.wav", dir), snprintf(out, sizeof out, "%s/out", dir);
    FILE *f = fopen(wav, "wb");
    const uint32_t data = (uint32_t)(2 * n), v32[] = {36 + data, 16, 16000, 32000, data};
    const uint16_t fmt[] = {1, 1}, blk[] = {2, 16};
    fwrite("RIFF", 1, 4, f), fwrite(&v32[0], 4, 1, f), fwrite("WAVEfmt ", 1, 8, f), fwrite(&v32[1], 4, 1, f);
    fwrite(fmt, 2, 2, f), fwrite(&v32[2], 4, 2, f), fwrite(blk, 2, 2, f), fwrite("data", 1, 4, f), fwrite(&v32[4], 4, 1, f);
    fwrite(x, 2, n, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 clients/python/acm_stream.py --url ws://127.0.0.1:%d --model s %s > %s",
             s.port, wav, out);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *got = th_slurp(out, NULL);
    json_t *ref = transcribe(s.port, x, n);
    char want[512];
    snprintf(want, sizeof want, "%s\n", json_string_value(json_object_get(ref, "text")));
    cr_expect_str_eq(got, want);
    free(got), free(x);
    json_decref(ref);
    unlink(wav), unlink(out), rmdir(dir);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* SIGTERM with a stream open: the stream is told (an error message, close 1001) and the server exits 0. */
Test(ws, drain_closes_streams, .timeout = 60) {
    th_acmd s;
    start(&s, (const char *const[]){"--model", "s=" MODEL, "--workers", "1", "--drain-grace-s", "0", NULL});
    ws_t w;
    cr_assert_eq(ws_open(&w, s.port, "/v1/models/s/stream", NULL), 0);
    json_decref(ws_expect(&w, "ready", NULL));
    int16_t *x = signal_s16(16000, 4);
    ws_audio(&w, x, 16000, 1600);
    free(x);
    kill(s.pid, SIGTERM);
    int code = 0;
    json_t *e = ws_expect(&w, "error", &code);
    cr_assert(e, "an error message before the close (close code %d)", code);
    cr_expect(strstr(json_string_value(json_object_get(e, "error")), "shutting down"));
    json_decref(e);
    cr_expect_eq(ws_close_code(&w), 1001);
    ws_frame(&w, 8, 1, 1, "\x03\xe9", 2);
    close(w.fd);
    cr_expect_eq(th_acmd_stop(&s, 0, 30), 0);
}
