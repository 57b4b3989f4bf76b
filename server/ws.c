/*
 * ws.c — GET /v1/models/{m}/stream: a transcription stream over a WebSocket (RFC 6455).
 *
 * The handshake is checked here (Upgrade, Connection, Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 bytes in
 * base64, a speech model, --max-streams) and answered 101 through libmicrohttpd's upgrade API; the upgraded socket is
 * then ours: a uv_poll on the I/O thread's loop watches it and libwslay frames it (masking, fragments, ping/pong,
 * the close handshake, --max-frame-bytes). Audio frames are decoded as they come (decode.c's incremental decoder,
 * as for a streamed /transcribe upload) into the stream's request, which the scheduler queues whenever a chunk's
 * worth waits: its jobs run on the workers, batched with every other stream's and request's, on the request's own
 * acm_stream (batch.c). Nothing here computes: each job that comes back (acmd_ws_back, called by workers.c) turns
 * into a `partial`, and a segment's end into a `final`, read from the stream's CTC decoder.
 *
 * The protocol (docs/API.md, *Streaming*):
 *   client -> server  binary: PCM in the format of the query (?rate=R&format=s16le|f32le, mono; default 16000 s16le)
 *                     text: {"type":"configure", budget, deadline_ms, priority, endpoint_ms, rate, format}
 *                           {"type":"finalize"}  {"type":"keepalive"}  {"type":"end"}
 *   server -> client  {"type":"ready", ...}  {"type":"partial", ...}  {"type":"final", ...}  {"type":"error", ...}
 * A segment ends (a `final`) after endpoint_ms of trailing blank frames once it holds a word, at `finalize` (the
 * samples that wait are flushed: the stream's left context starts again), and at `end`, which then closes with 1000.
 *
 * Overload (ws__pace): the audio a stream has waiting for the workers shrinks its budget ceiling, down to the model's
 * floor, before a `warning` and then the close 1013 (--stream-max-behind).
 *
 * Ownership: the acmd_ws and its request are the I/O thread's, except while the request is RUNNING (a worker's). A
 * stream whose socket closes while a worker holds its job is detached (r->ws = NULL) and freed when the job is back.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>
#include <jansson.h>
#include <nettle/base64.h>
#include <wslay/wslay.h>

#include "acmd.h"
#include "ctc.h"
#include "jsonw.h"
#include "ws_io.h"

typedef struct acmd_ws {
    acm_ws_io io;                      /* first: libwslay's callbacks (proto/ws_io.h) read the socket through it */
    acmd_server *s;
    acmd_req *r;                       /* the stream's request (au.on): its queue jobs */
    acmd_model *m;
    struct MHD_UpgradeResponseHandle *urh;
    uv_poll_t poll;
    uv_timer_t idle;
    int closing;                       /* handles being closed: freed in the close callbacks */
    int close_code;                    /* a close to send once the queued messages are out (0: none) */
    char close_reason[120];
    size_t seg_bytes;                  /* audio bytes given to the current decoder */
    int n_closed;
    wslay_event_context_ptr ctx;
    uint8_t *extra_buf;                /* bytes MHD read past the handshake (io.extra: framed first) */
    /* the stream's terms */
    int rate, f32;                     /* the PCM format of binary frames */
    double endpoint_s;                 /* trailing blank that ends a segment (0: none) */
    int audio_seen;                    /* a binary frame came (the format is fixed from then on) */
    int ending;                        /* `end` asked: close 1000 after the final */
    int flushing;                      /* a `finalize` or `end` is being run (au.last set) */
    uint8_t *hold;                     /* audio that came while a flush ran: decoded once it is done */
    size_t n_hold, cap_hold;
    /* what was said so far */
    int segment;                       /* segments ended */
    int words_sent;                    /* words of the current segment already in a partial */
    double t_base;                     /* seconds of audio before the stream's last reset (finalize) */
    uint64_t t_ready;                  /* when a chunk's worth was first waiting (latency of its partial) */
    double flops, flops_dense;         /* the stream's totals */
    /* overload (ws__pace): the stream's own budget terms, and what its backlog made of them */
    acm_policy own;                    /* the policy the stream asked for (query, configure) */
    double own_max;                    /* its budget ceiling */
    int warned;                        /* a behind_real_time warning was sent (again once the backlog is small) */
    char key[64];
    char id[64];
    struct acmd_ws *prev, *next;
} acmd_ws;

static acmd_ws ws__list = {.prev = &ws__list, .next = &ws__list}; /* I/O thread only */

static void ws__close(acmd_ws *w);
static void ws__update(acmd_ws *w);

/* ---- messages -------------------------------------------------------------------------------------------------- */

static void ws__send_json(acmd_ws *w, json_t *j) {
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!t || !w->ctx) { free(t); return; }
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)t, strlen(t)};
    wslay_event_queue_msg(w->ctx, &msg);
    free(t);
}

/* The close frame goes once the messages queued before it have gone (libwslay sends control frames first). */
static void ws__close_with(acmd_ws *w, int code, const char *reason) {
    if (!w->ctx || w->close_code) return;
    w->close_code = code;
    acmd_copy(w->close_reason, sizeof w->close_reason, reason);
}

static void ws__error(acmd_ws *w, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void ws__error(acmd_ws *w, int code, const char *fmt, ...) {
    char e[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e, sizeof e, fmt, ap);
    va_end(ap);
    ws__send_json(w, json_pack("{s:s,s:s,s:i}", "type", "error", "error", e, "close_code", code));
    char reason[120]; /* a close frame's reason is at most 123 bytes */
    snprintf(reason, sizeof reason, "%.100s", e);
    ws__close_with(w, code, reason);
}

static json_t *ws__words(const acm_ctc_result *cr, int from, double base) {
    json_t *a = json_array();
    for (int i = from; i < cr->n_words; i++) {
        const acm_ctc_word *wd = &cr->words[i];
        json_array_append_new(a, json_pack("{s:s%,s:f,s:f,s:f}", "word", cr->text + wd->offset, (size_t)wd->len,
                                           "start", base + wd->start_s, "end", base + wd->end_s, "confidence",
                                           wd->confidence));
    }
    return a;
}

/* The text of a result without the space greedy decoding may end it with. */
static json_t *ws__text(const acm_ctc_result *cr) {
    int len = cr->len;
    while (len > 0 && cr->text[len - 1] == ' ') len--;
    return json_stringn(cr->text, (size_t)len);
}

/* Ends the current segment: its final (every word, with times and confidence). */
static void ws__final(acmd_ws *w, const char *reason) {
    acm_ctc_decoder *d = acm_stream_decoder(w->r->au.st);
    acm_ctc_result cr;
    acm_ctc_result_get(d, ACM_CTC_FINAL, &cr);
    json_t *j = json_pack("{s:s,s:i,s:s,s:o,s:o,s:f}", "type", "final", "segment", w->segment, "reason", reason, "text",
                          ws__text(&cr), "words", ws__words(&cr, 0, w->t_base), "audio_s",
                          (double)w->r->au.samples / ACM_AUDIO_RATE);
    ws__send_json(w, j);
    acm_ctc_reset(d, acm_ctc_next_frame(d));
    w->segment++, w->words_sent = 0;
    char l[128] = "";
    acmd_label(l, sizeof l, "model", w->m->name);
    acmd_metric_add(w->s->metrics, ACMD_M_ASR_SEGMENTS, l, 1);
}

/* ---- audio in -------------------------------------------------------------------------------------------------- */

static int ws__decoder(acmd_ws *w, char *e, size_t n) {
    acmd_req *r = w->r;
    snprintf(r->body.type, sizeof r->body.type, "audio/x-raw;format=%s;rate=%d", w->f32 ? "F32LE" : "S16LE", w->rate);
    acm_audio_format f;
    int rc = acm_audio_parse_type(&f, r->body.type, e, n);
    if (rc) return -1;
    acm_audio_params p = acm_audio_default_params();
    p.max_samples = (size_t)(w->s->cfg.max_audio_seconds * ACM_AUDIO_RATE);
    p.max_buffered = (size_t)w->s->cfg.max_frame_bytes;
    acm_audio_stream *d = acm_audio_stream_create(&f, p, e, n);
    if (!d) return -1;
    acm_audio_stream_free(r->au.dec);
    r->au.dec = d;
    r->au.n_head = sizeof r->au.head; /* raw PCM by construction: no container sniffing */
    return 0;
}

/* Overload: the audio that waits for the workers (decoded, not yet in a job), in seconds of the stream. A stream the
 * workers keep up with has less than a chunk or two waiting; past a quarter of --stream-max-behind its budget ceiling
 * goes down linearly with the backlog, to the model's floor at half of it; at three quarters (the floor did not
 * suffice) a warning; at all of it the stream is closed with 1013. Decided from the backlog alone (no clock): the same
 * audio waiting gives the same decision on any CPU. The ceiling applies to the stream's next job (never to one that
 * runs: that one is the worker's). */
static void ws__pace(acmd_ws *w) {
    acmd_req *r = w->r;
    const double lim = w->s->cfg.stream_max_behind;
    if (!r || !(lim > 0) || w->close_code) return;
    const double behind = (double)r->au.n_pend / ACM_AUDIO_RATE, floor = w->m->beta_floor;
    const double own = w->own.kind == ACM_POLICY_CAP ? (double)w->own.beta : 1.0;
    double cap = 1;
    if (behind >= lim / 2) cap = floor;
    else if (behind > lim / 4) cap = own - (own - floor) * (behind - lim / 4) / (lim / 4);
    char l[160] = "";
    acmd_label(l, sizeof l, "model", w->m->name);
    if (behind >= lim) {
        acmd_label(l, sizeof l, "reason", "behind_real_time");
        acmd_metric_add(w->s->metrics, ACMD_M_ASR_STREAMS_DROPPED, l, 1);
        ws__error(w, 1013, "the stream fell %.1f s behind real time at the budget floor (--stream-max-behind %g s): "
                           "try again later", behind, lim);
        return;
    }
    if (behind >= 3 * lim / 4 && !w->warned) {
        w->warned = 1;
        acmd_metric_add(w->s->metrics, ACMD_M_ASR_STREAMS_WARNED, l, 1);
        ws__send_json(w, json_pack("{s:s,s:s,s:f,s:f,s:f}", "type", "warning", "reason", "behind_real_time",
                                   "behind_s", behind, "max_behind_s", lim, "budget", cap < own ? cap : own));
    } else if (behind <= lim / 4) {
        w->warned = 0;
    }
    if (r->state == ACMD_REQ_RUNNING) return;
    if (cap < own) {
        acm_policy p = acm_policy_default();
        p.kind = ACM_POLICY_CAP, p.beta = (float)cap;
        r->sla.policy = p, r->sla.budget.max = cap;
    } else {
        r->sla.policy = w->own, r->sla.budget.max = w->own_max;
    }
}

/* Queues the stream's next job when it is free and something waits for it. */
static void ws__maybe_queue(acmd_ws *w) {
    acmd_req *r = w->r;
    if (r->state == ACMD_REQ_QUEUED && r->au.last) acmd_queue_wake(w->s, 0); /* a flush does not wait (--stream-gather-ms) */
    if (r->state != ACMD_REQ_RECEIVING) return;
    if (r->au.last || r->au.n_pend >= (size_t)w->m->chunk_samples) acmd_queue_stream(w->s, r);
}

static void ws__audio(acmd_ws *w, const uint8_t *b, size_t n) {
    acmd_req *r = w->r;
    w->audio_seen = 1;
    if (w->flushing) { /* the decoder has ended for the flush: keep the bytes for the next one */
        if (w->n_hold + n > w->cap_hold) {
            size_t c = w->cap_hold ? w->cap_hold : 65536;
            while (c < w->n_hold + n) c *= 2;
            uint8_t *p = realloc(w->hold, c);
            if (!p) { ws__error(w, 1011, "out of memory"); return; }
            w->hold = p, w->cap_hold = c;
        }
        memcpy(w->hold + w->n_hold, b, n);
        w->n_hold += n;
        return;
    }
    const size_t before = r->au.n_pend;
    w->seg_bytes += n;
    if (acmd_decode_stream_push(w->s, r, b, n)) {
        const int code = r->au.fail_err == ACMD_E_TOO_LARGE ? 1009 : r->au.fail_err == ACMD_E_INTERNAL ? 1011 : 1003;
        { ws__error(w, code, "%s", r->au.fail_msg); return; }
    }
    const size_t cs = (size_t)w->m->chunk_samples;
    if (before < cs && r->au.n_pend >= cs) w->t_ready = acmd_now_ns();
    ws__pace(w);
    ws__maybe_queue(w);
}

/* finalize / end: the decoder's tail and the stream's last short chunk run as the segment's last job. */
static void ws__flush(acmd_ws *w) {
    acmd_req *r = w->r;
    if (w->flushing) return;
    if (!w->seg_bytes) r->au.last = 1; /* nothing since the last flush: an empty segment (the decoder wants bytes) */
    else if (acmd_decode_stream_end(w->s, r)) { ws__error(w, 1011, "%s", r->au.fail_msg); return; }
    w->flushing = 1;
    if (!w->t_ready) w->t_ready = acmd_now_ns();
    ws__maybe_queue(w);
}

/* ---- control messages ------------------------------------------------------------------------------------------ */

static int ws__configure(acmd_ws *w, json_t *j, char *e, size_t n) {
    acmd_req *r = w->r;
    json_t *v;
    if ((v = json_object_get(j, "budget"))) {
        if (json_is_null(v)) {
            r->sla.policy = w->m->default_policy, r->sla.budget.max = 1;
        } else {
            const double b = json_number_value(v);
            if (!json_is_number(v) || !(b > 0 && b <= 1)) return snprintf(e, n, "budget must be a number in (0, 1]"), -1;
            acm_policy p = acm_policy_default();
            p.kind = ACM_POLICY_CAP, p.beta = (float)(b < w->m->beta_floor ? w->m->beta_floor : b);
            r->sla.policy = p, r->sla.budget.max = p.beta;
            r->sla.budget.source = ACM_BUDGET_PARAMETER;
        }
    }
    if ((v = json_object_get(j, "deadline_ms"))) {
        const double d = json_number_value(v);
        if (json_is_null(v)) r->sla.has_deadline = 0;
        else if (!json_is_number(v) || !(d > 0 && d <= 3.6e6)) return snprintf(e, n, "deadline_ms must be a number in (0, 3600000]"), -1;
        else {
            r->sla.has_deadline = 1, r->sla.sched.deadline_ms = d;
            if (r->sla.policy.kind != ACM_POLICY_CAP) { /* a deadline chooses the budget below the ceiling (1) */
                acm_policy p = acm_policy_default();
                p.kind = ACM_POLICY_CAP, p.beta = 1;
                r->sla.policy = p, r->sla.budget.max = 1;
            }
        }
    }
    if ((v = json_object_get(j, "priority"))) {
        const json_int_t u = json_integer_value(v);
        if (!json_is_integer(v) || u < 0 || u > 7) return snprintf(e, n, "priority must be an integer 0..7 (0: most urgent)"), -1;
        r->sla.sched.urgency = (int)u < w->s->cfg.min_client_urgency ? (int)w->s->cfg.min_client_urgency : (int)u;
    }
    if ((v = json_object_get(j, "endpoint_ms"))) {
        const double d = json_number_value(v);
        if (!json_is_number(v) || d < 0 || d > 60000) return snprintf(e, n, "endpoint_ms must be a number in [0, 60000] (0: no endpointing)"), -1;
        w->endpoint_s = d / 1000;
        r->au.job_chunks = w->endpoint_s > 0 ? 1 : 0;
    }
    json_t *rate = json_object_get(j, "rate"), *fmt = json_object_get(j, "format");
    if (rate || fmt) {
        if (w->audio_seen) return snprintf(e, n, "rate and format are set before the first audio frame"), -1;
        if (rate && (!json_is_integer(rate) || json_integer_value(rate) < 8000 || json_integer_value(rate) > 192000))
            return snprintf(e, n, "rate must be an integer in [8000, 192000]"), -1;
        const char *f = fmt ? json_string_value(fmt) : NULL;
        if (fmt && (!f || (strcasecmp(f, "s16le") && strcasecmp(f, "f32le"))))
            return snprintf(e, n, "format must be \"s16le\" or \"f32le\""), -1;
        if (rate) w->rate = (int)json_integer_value(rate);
        if (f) w->f32 = strcasecmp(f, "f32le") == 0;
        if (ws__decoder(w, e, n)) return -1;
    }
    return 0;
}

static int ws__utf8_ok(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        const size_t k = acm_utf8_seq((const char *)p + i, n - i);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

static void ws__text_msg(acmd_ws *w, const uint8_t *p, size_t n) {
    if (!ws__utf8_ok(p, n)) { ws__error(w, 1007, "a text frame that is not UTF-8"); return; }
    json_error_t je;
    json_t *j = json_loadb((const char *)p, n, 0, &je);
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    char e[256] = "";
    if (!type) {
        json_decref(j);
        { ws__error(w, 1008, "a text message must be a JSON object with a \"type\" (configure, finalize, keepalive, end)"); return; }
    }
    if (strcmp(type, "configure") == 0) {
        const acm_policy now = w->r->sla.policy;
        const double now_max = w->r->sla.budget.max;
        w->r->sla.policy = w->own, w->r->sla.budget.max = w->own_max; /* configure changes the stream's own terms */
        const int bad = ws__configure(w, j, e, sizeof e);
        if (bad) w->r->sla.policy = now, w->r->sla.budget.max = now_max;
        else w->own = w->r->sla.policy, w->own_max = w->r->sla.budget.max, ws__pace(w);
        if (bad) {
            ws__send_json(w, json_pack("{s:s,s:s}", "type", "error", "error", e)); /* the stream goes on unchanged */
        } else {
            ws__send_json(w, json_pack("{s:s,s:f,s:f,s:i,s:b}", "type", "configured", "budget",
                                       w->own.kind == ACM_POLICY_CAP ? (double)w->own.beta : 1.0,
                                       "endpoint_ms", w->endpoint_s * 1000, "priority", w->r->sla.sched.urgency,
                                       "deadline", w->r->sla.has_deadline));
        }
    } else if (strcmp(type, "finalize") == 0) {
        ws__flush(w);
    } else if (strcmp(type, "end") == 0) {
        w->ending = 1;
        ws__flush(w);
    } else if (strcmp(type, "keepalive") != 0) {
        ws__send_json(w, json_pack("{s:s,s:s}", "type", "error", "error",
                                   "unknown message type (configure, finalize, keepalive, end)"));
    }
    json_decref(j);
}

/* ---- libwslay callbacks ---------------------------------------------------------------------------------------- */

static void ws__on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user) {
    acmd_ws *w = user;
    (void)ctx;
    uv_timer_again(&w->idle);
    if (a->opcode == WSLAY_BINARY_FRAME) ws__audio(w, a->msg, a->msg_length);
    else if (a->opcode == WSLAY_TEXT_FRAME) ws__text_msg(w, a->msg, a->msg_length);
}

/* ---- the socket ------------------------------------------------------------------------------------------------ */

static void ws__poll_cb(uv_poll_t *h, int status, int events) {
    acmd_ws *w = h->data;
    if (status < 0) { ws__close(w); return; }
    if ((events & UV_READABLE) && wslay_event_recv(w->ctx) != 0) { ws__close(w); return; }
    if ((events & UV_WRITABLE) && wslay_event_send(w->ctx) != 0) { ws__close(w); return; }
    ws__update(w);
}

/* Sends what can go now and watches the socket for what libwslay still wants; closes once it wants nothing. */
static void ws__update(acmd_ws *w) {
    if (w->closing) return;
    if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) { ws__close(w); return; }
    if (w->close_code && !wslay_event_get_close_sent(w->ctx) && wslay_event_get_queued_msg_count(w->ctx) == 0) {
        wslay_event_queue_close(w->ctx, (uint16_t)w->close_code, (const uint8_t *)w->close_reason, strlen(w->close_reason));
        if (wslay_event_send(w->ctx) != 0) { ws__close(w); return; }
    }
    const int ev = (wslay_event_want_read(w->ctx) ? UV_READABLE : 0) | (wslay_event_want_write(w->ctx) ? UV_WRITABLE : 0);
    if (!ev) { ws__close(w); return; }
    uv_poll_start(&w->poll, ev, ws__poll_cb);
}

static void ws__idle_cb(uv_timer_t *t) {
    acmd_ws *w = t->data;
    if (wslay_event_get_close_sent(w->ctx)) { ws__close(w); return; } /* no close answered within the timeout */
    ws__error(w, 1001, "no message for %g seconds (--stream-idle-timeout; send keepalive)", w->s->cfg.stream_idle_timeout);
    ws__update(w);
}

static void ws__metrics_active(acmd_server *s, acmd_model *m, int d) {
    char l[128] = "";
    acmd_label(l, sizeof l, "model", m->name);
    static int active[ACMD_MAX_MODELS];
    active[m->idx] += d;
    s->streams += d;
    acmd_metric_set(s->metrics, ACMD_M_ASR_ACTIVE_STREAMS, l, active[m->idx]);
}

static void ws__free_req(acmd_server *s, acmd_req *r) {
    acmd_decode_stream_free(s, r);
    acmd_req_free(s, r);
}

static void ws__closed_cb(uv_handle_t *h) {
    acmd_ws *w = h->data;
    if (++w->n_closed < 2) return;
    acmd_server *s = w->s;
    /* bytes of the client's not read yet would make close(2) send a reset, which can destroy our close frame in
     * flight to it (e.g. after a 1009 the rest of the oversized message is still here): finish our side, drop them */
    shutdown(w->io.fd, SHUT_WR);
    char sink[4096];
    for (int k = 0; k < 256 && recv(w->io.fd, sink, sizeof sink, MSG_DONTWAIT) > 0; k++) continue;
    MHD_upgrade_action(w->urh, MHD_UPGRADE_ACTION_CLOSE);
    if (w->ctx) wslay_event_context_free(w->ctx);
    free(w->hold), free(w->extra_buf);
    free(w);
    if (s->mhd) acmd_http_kick(s); /* MHD finishes the upgraded connection (its request's completion) now */
}

/* Tears the stream down: the socket goes back to MHD (closed), the request is freed now or when its job is back. */
static void ws__close(acmd_ws *w) {
    if (w->closing) return;
    w->closing = 1;
    w->prev->next = w->next, w->next->prev = w->prev;
    acmd_server *s = w->s;
    acmd_req *r = w->r;
    if (r) {
        r->ws = NULL;
        if (r->state == ACMD_REQ_QUEUED) acmd_queue_remove(s, r), r->state = ACMD_REQ_RECEIVING;
        if (r->state != ACMD_REQ_RUNNING) ws__free_req(s, r); /* else freed when its job is back (acmd_ws_back) */
        w->r = NULL;
    }
    ws__metrics_active(s, w->m, -1);
    uv_poll_stop(&w->poll);
    uv_close((uv_handle_t *)&w->poll, ws__closed_cb);
    uv_close((uv_handle_t *)&w->idle, ws__closed_cb);
    acmd_log(s, 3, "stream %s closed", w->id);
}

/* A job of a stream is back from its worker (workers.c): its partial, and its final at an endpoint or a flush. */
void acmd_ws_back(acmd_server *s, acmd_req *r) {
    acmd_ws *w = r->ws;
    r->state = ACMD_REQ_RECEIVING;
    if (!w) { ws__free_req(s, r); return; } /* its socket closed while the job ran */
    if (r->au.failed && !r->resp.status) acmd_req_fail(r, r->au.fail_err, "%s", r->au.fail_msg);
    if (r->resp.status && r->resp.status != 200) {
        ws__error(w, r->resp.status == 413 ? 1009 : 1011, "%s", r->resp.err);
        ws__update(w);
        return;
    }
    r->resp.status = 0;
    const uint64_t now = acmd_now_ns();
    const double lat = w->t_ready ? (double)(now - w->t_ready) * 1e-9 : 0;
    const int64_t tokens = r->out.tokens;
    const double budget = !tokens ? 0 : r->au.job_last ? r->out.realised : r->out.realised / (double)tokens;
    const double applied = acmd_budget_applied(r); /* the job's ceiling: the backlog changes it after (ws__pace) */
    w->flops += r->out.flops, w->flops_dense += r->out.flops_dense;
    char l[128] = "";
    acmd_label(l, sizeof l, "model", w->m->name);
    if (tokens) {
        acmd_metric_observe(s->metrics, ACMD_M_ASR_CHUNK_LATENCY, l, lat);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS, l, r->out.flops);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS_DENSE, l, r->out.flops_dense);
        acmd_metric_add(s->metrics, ACMD_M_ASR_COMPUTE_SECONDS, l, r->out.compute_s);
        acm_ctc_result cr;
        acm_ctc_result_get(acm_stream_decoder(r->au.st), ACM_CTC_PARTIAL, &cr);
        json_t *j = json_pack("{s:s,s:i,s:o,s:o,s:f,s:{s:I,s:f,s:f,s:f,s:f,s:f,s:i}}", "type", "partial", "segment",
                              w->segment, "text", ws__text(&cr), "words", ws__words(&cr, w->words_sent, w->t_base),
                              "audio_s", w->t_base + (double)acm_stream_tokens_done(r->au.st) * w->m->chunk_samples /
                                                         w->m->T / ACM_AUDIO_RATE,
                              "chunk", "tokens", (json_int_t)tokens, "flops", r->out.flops, "flops_dense",
                              r->out.flops_dense, "budget", budget, "budget_cap", applied, "latency_ms", lat * 1e3,
                              "batch", r->out.batch_size);
        ws__send_json(w, j);
        w->words_sent = cr.n_words;
        const double frame_s = (double)w->m->chunk_samples / w->m->T / ACM_AUDIO_RATE;
        if (!r->au.job_last && ((w->endpoint_s > 0 && cr.len > 0 && cr.trailing_blank * frame_s >= w->endpoint_s) ||
                                cr.truncated))
            ws__final(w, cr.truncated ? "max_text" : "endpoint");
    }
    /* the next job starts its own sums (the logits rows are the engine's scratch: a long stream must not grow them) */
    r->out.tokens = 0, r->out.flops = r->out.flops_dense = r->out.realised = 0, r->out.batch_size = 0;
    r->out.batch_first = 0, r->out.batch_lead = 0;
    w->t_ready = r->au.n_pend >= (size_t)w->m->chunk_samples ? now : 0;
    if (r->au.job_last) { /* a flush ended: the final, then a fresh stream for what comes next */
        ws__final(w, w->ending ? "end" : "finalize");
        w->t_base = (double)r->au.samples / ACM_AUDIO_RATE;
        acm_stream_reset(r->au.st);
        r->au.last = r->au.job_last = 0;
        w->flushing = 0;
        char e[256];
        const size_t had = w->seg_bytes;
        w->seg_bytes = 0;
        if (w->ending) {
            ws__send_json(w, json_pack("{s:s,s:f,s:i,s:f,s:f}", "type", "end", "audio_s", w->t_base, "segments",
                                       w->segment, "flops", w->flops, "flops_dense", w->flops_dense));
            ws__close_with(w, 1000, "end");
        } else if (had && ws__decoder(w, e, sizeof e)) {
            ws__error(w, 1011, "%s", e);
        } else if (w->n_hold) {
            const size_t n = w->n_hold;
            w->n_hold = 0;
            ws__audio(w, w->hold, n);
        }
    }
    ws__pace(w);
    ws__maybe_queue(w);
    ws__update(w);
}

/* ---- the handshake --------------------------------------------------------------------------------------------- */

/* Whether a comma-separated header value holds a token (case-insensitive). */
static int ws__has_token(const char *v, const char *tok) {
    const size_t n = strlen(tok);
    while (v && *v) {
        while (*v == ' ' || *v == '\t' || *v == ',') v++;
        const char *e = v;
        while (*e && *e != ',') e++;
        const char *t = e;
        while (t > v && (t[-1] == ' ' || t[-1] == '\t')) t--;
        if ((size_t)(t - v) == n && strncasecmp(v, tok, n) == 0) return 1;
        v = e;
    }
    return 0;
}

/* The stream's settings of the handshake (query parameters), carried to the upgrade. */
typedef struct {
    acmd_server *s;
    acmd_model *m;
    int rate, f32;
    double endpoint_s, budget;
    int urgency;
    char key[64], id[64];
} ws__pending;

static void ws__upgraded(void *cls, struct MHD_Connection *conn, void *con_cls, const char *extra_in,
                         size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh) {
    ws__pending *p = cls;
    acmd_server *s = p->s;
    (void)conn, (void)con_cls;
    acmd_ws *w = calloc(1, sizeof *w);
    acmd_req *r = acmd_req_new();
    char e[256] = "out of memory";
    if (!w || !r) goto fail;
    w->s = s, w->m = p->m, w->urh = urh, w->io.fd = sock, w->rate = p->rate, w->f32 = p->f32;
    w->endpoint_s = p->endpoint_s;
    acmd_copy(w->key, sizeof w->key, p->key), acmd_copy(w->id, sizeof w->id, p->id);
    if (extra_in_size && !(w->extra_buf = malloc(extra_in_size))) goto fail;
    if (extra_in_size) memcpy(w->extra_buf, extra_in, extra_in_size);
    w->io.extra = w->extra_buf, w->io.n_extra = extra_in_size;
    r->srv = s, r->route = ACMD_ROUTE_STREAM, r->model = p->m, r->ws = w;
    r->t.arrive = r->t.queued = r->t.dispatch = acmd_now_ns();
    acmd_copy(r->http.id, sizeof r->http.id, p->id), acmd_copy(r->http.key, sizeof r->http.key, p->key);
    r->sla.policy = p->m->default_policy, r->sla.budget.max = 1, r->sla.budget.min = p->m->beta_floor;
    r->sla.sched.urgency = p->urgency;
    if (p->budget > 0) {
        acm_policy pol = acm_policy_default();
        pol.kind = ACM_POLICY_CAP, pol.beta = (float)(p->budget < p->m->beta_floor ? p->m->beta_floor : p->budget);
        r->sla.policy = pol, r->sla.budget.max = pol.beta, r->sla.budget.source = ACM_BUDGET_PARAMETER;
    }
    w->r = r;
    w->own = r->sla.policy, w->own_max = r->sla.budget.max;
    if (ws__decoder(w, e, sizeof e)) goto fail;
    if (!(r->au.st = acm_stream_new(p->m->m, e, sizeof e))) goto fail;
    r->au.on = 1, r->au.raw = 1, r->au.job_chunks = w->endpoint_s > 0 ? 1 : 0;
    r->au.mem = acm_stream_state_bytes(p->m->m);
    acmd_mem_add(s, (long long)r->au.mem);
    acmd_copy(r->out.id, sizeof r->out.id, p->id);
    const int fl = fcntl(sock, F_GETFL);
    if (fl < 0 || fcntl(sock, F_SETFL, fl | O_NONBLOCK) < 0) goto fail;
    struct wslay_event_callbacks cb = {acm_ws_io_recv, acm_ws_io_send, NULL, NULL, NULL, NULL, ws__on_msg};
    if (wslay_event_context_server_init(&w->ctx, &cb, w) != 0) goto fail;
    wslay_event_config_set_max_recv_msg_length(w->ctx, (uint64_t)s->cfg.max_frame_bytes);
    uv_poll_init_socket(s->loop, &w->poll, sock);
    uv_timer_init(s->loop, &w->idle);
    w->poll.data = w->idle.data = w;
    const uint64_t idle_ms = (uint64_t)(s->cfg.stream_idle_timeout * 1000);
    uv_timer_start(&w->idle, ws__idle_cb, idle_ms, idle_ms);
    w->next = ws__list.next, w->prev = &ws__list;
    ws__list.next->prev = w, ws__list.next = w;
    ws__metrics_active(s, w->m, 1);
    free(p);
    ws__send_json(w, json_pack("{s:s,s:s,s:s,s:i,s:s,s:f,s:f,s:i}", "type", "ready", "id", w->id, "model", w->m->name,
                               "rate", w->rate, "format", w->f32 ? "f32le" : "s16le", "chunk_s",
                               (double)w->m->chunk_samples / ACM_AUDIO_RATE, "endpoint_ms", w->endpoint_s * 1000,
                               "max_frame_bytes", (int)s->cfg.max_frame_bytes));
    ws__update(w);
    return;
fail:
    acmd_log(s, 1, "stream %s: cannot start: %s", p->id, e);
    if (r) {
        if (r->au.on) acmd_decode_stream_free(s, r);
        else acm_audio_stream_free(r->au.dec), acm_stream_free(r->au.st);
        acmd_req_free(s, r);
    }
    if (w) free(w->extra_buf), free(w);
    free(p);
    MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
}

/* A query parameter as a number in [lo, hi]: 0 (absent: *out unchanged), or -1 with the message. */
static int ws__arg(struct MHD_Connection *c, const char *name, double lo, double hi, double *out, char *e, size_t n) {
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v) return 0;
    char *end;
    const double d = strtod(v, &end);
    if (!*v || *end || !(d >= lo && d <= hi))
        return snprintf(e, n, "query parameter %s=\"%.40s\" must be a number in [%g, %g]", name, v, lo, hi), -1;
    *out = d;
    return 0;
}

int acmd_ws_handshake(acmd_server *s, acmd_req *r, struct MHD_Connection *conn) {
    const char *up = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_UPGRADE);
    const char *co = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONNECTION);
    const char *ver = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Version");
    const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-WebSocket-Key");
    if (!r->http.http11)
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "a WebSocket handshake needs HTTP/1.1"), -1;
    if (!up || !ws__has_token(up, "websocket") || !co || !ws__has_token(co, "upgrade"))
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "this route is a WebSocket: the request needs Upgrade: websocket and "
                                                    "Connection: Upgrade (RFC 6455)"), -1;
    if (!ver || strcmp(ver, "13") != 0) {
        r->resp.ws_version = 1; /* 426 with Sec-WebSocket-Version: 13 (RFC 6455 §4.4) */
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "Sec-WebSocket-Version must be 13"), -1;
    }
    uint8_t raw[32];
    size_t n_raw = sizeof raw;
    struct base64_decode_ctx b64;
    base64_decode_init(&b64);
    if (strlen(key ? key : "") != 24 || !base64_decode_update(&b64, &n_raw, raw, 24, key) ||
        !base64_decode_final(&b64) || n_raw != 16)
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "Sec-WebSocket-Key must be 16 bytes in base64 (24 characters)"), -1;
    if (!r->model->speech)
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "model %s is not a speech model: it has no stream", r->model->name), -1;
    if (s->tls)
        return acmd_req_fail(r, ACMD_E_NOT_IMPLEMENTED, "WebSocket streams are served over plain HTTP only: terminate TLS "
                                                        "at a reverse proxy in front of acmd"), -1;
    if (!s->ready || s->draining)
        return acmd_req_fail(r, s->draining ? ACMD_E_DRAINING : ACMD_E_NOT_READY, "the server is %s",
                             s->draining ? "shutting down" : "not ready yet"), -1;
    if (s->streams >= s->cfg.max_streams)
        return acmd_req_fail(r, ACMD_E_MEMORY, "%d streams are open: the limit (--max-streams)", s->streams),
               r->resp.reason = "streams", -1;
    ws__pending *p = calloc(1, sizeof *p);
    if (!p) return acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory"), -1;
    p->s = s, p->m = r->model, p->rate = ACM_AUDIO_RATE, p->endpoint_s = ACMD_ENDPOINT_S, p->urgency = 3;
    char e[200];
    double rate = p->rate, ep = ACMD_ENDPOINT_S * 1000, budget = 0, prio = 3;
    const char *fmt = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "format");
    if (ws__arg(conn, "rate", 8000, 192000, &rate, e, sizeof e) || ws__arg(conn, "endpoint_ms", 0, 60000, &ep, e, sizeof e) ||
        ws__arg(conn, "budget", 1e-9, 1, &budget, e, sizeof e) || ws__arg(conn, "priority", 0, 7, &prio, e, sizeof e) ||
        (fmt && strcasecmp(fmt, "s16le") && strcasecmp(fmt, "f32le") &&
         snprintf(e, sizeof e, "query parameter format=\"%.40s\" must be s16le or f32le", fmt) > 0)) {
        free(p);
        return acmd_req_fail(r, ACMD_E_BAD_REQUEST, "%s", e), -1;
    }
    p->rate = (int)rate, p->endpoint_s = ep / 1000, p->budget = budget, p->f32 = fmt && !strcasecmp(fmt, "f32le");
    p->urgency = (int)prio < s->cfg.min_client_urgency ? (int)s->cfg.min_client_urgency : (int)prio;
    acmd_copy(p->key, sizeof p->key, r->http.key), acmd_copy(p->id, sizeof p->id, r->http.id);
    char accept[ACM_WS_ACCEPT_LEN];
    acm_ws_accept(accept, key);
    struct MHD_Response *resp = MHD_create_response_for_upgrade(ws__upgraded, p);
    if (!resp) {
        free(p);
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        return -1;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_UPGRADE, "websocket");
    MHD_add_response_header(resp, "Sec-WebSocket-Accept", accept);
    MHD_add_response_header(resp, "X-Request-Id", r->http.id);
    r->resp.responded = 1, r->resp.status = 101, r->t.done = acmd_now_ns();
    const enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_SWITCHING_PROTOCOLS, resp);
    MHD_destroy_response(resp);
    if (ok != MHD_YES) free(p);
    return ok == MHD_YES ? 0 : 1;
}

void acmd_ws_shutdown(acmd_server *s, int now) {
    for (acmd_ws *w = ws__list.next, *nx; w != &ws__list; w = nx) {
        nx = w->next;
        if (now) {
            ws__close(w);
        } else {
            ws__error(w, 1001, "the server is shutting down");
            ws__update(w);
        }
    }
}
