/*
 * http.c — the MHD access handler: message framing and Host (duplicate Content-Length, Transfer-Encoding -> 400/501),
 * routing, header checks before the body (413, 415, 503; budget, deadline and priority headers and
 * Inference-Header-Content-Length -> 400), body accumulation, admission (image header probe, the OIP parameter peek,
 * queue bound -> 429, then admit.c's SLA admission -> 400/504), suspension while queued, the model stats route,
 * responses with the headers of docs/DESIGN.md §6, the completion callback (access log, HTTP metrics, freeing the
 * request) and the lingering close of a connection answered before its body was read.
 * Everything here runs on the I/O thread.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acmd.h"
#include "audio.h"
#include "image.h"
#include "jsonw.h"
#include "oip.h"

void acmd_conn_busy(struct MHD_Connection *conn, int busy); /* server.c */
void acmd_conn_req(struct MHD_Connection *conn, acmd_req *r); /* server.c */

#define ACM__STR2(x) #x
#define ACM__STR(x) ACM__STR2(x)

void acmd_mem_add(acmd_server *s, long long bytes) { atomic_fetch_add(&s->buffered, bytes); }

/* Counts `bytes` more of r's body against --max-buffered-bytes: 0, or -1 (nothing counted) when that would pass it.
 * Only the I/O thread reserves, so the check and the add cannot interleave with another reservation (workers only
 * add decoded inputs of requests already admitted, and release). */
static int http__mem_reserve(acmd_server *s, acmd_req *r, size_t bytes) {
    const long long limit = s->cfg.max_buffered_bytes;
    if (limit > 0 && atomic_load(&s->buffered) + (long long)bytes > limit) return -1;
    acmd_mem_add(s, (long long)bytes);
    r->body.mem += bytes;
    return 0;
}

acmd_req *acmd_req_new(void) { return calloc(1, sizeof(acmd_req)); }

/* The one free path of a request: everything it owns is in its arena. */
void acmd_req_free(acmd_server *s, acmd_req *r) {
    acmd_decode_stream_free(s, r);
    acmd_mem_add(s, -(long long)(r->body.mem + r->in.mem));
    acmd_arena_free(&r->arena);
    free(r);
}

/* 503 for memory: the message says which limit and how much is held. */
static void http__mem_error(acmd_server *s, acmd_req *r, size_t want) {
    acmd_req_fail(r, ACMD_E_MEMORY, "the server holds %lld bytes of request bodies and decoded inputs; %zu more would pass "
                           "--max-buffered-bytes %ld: retry later", (long long)atomic_load(&s->buffered), want,
                   s->cfg.max_buffered_bytes);
}

static const char *http__hdr(struct MHD_Connection *c, const char *name) {
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static acmd_model *http__model(acmd_server *s, const char *name) {
    for (int i = 0; i < s->n_models; i++)
        if (strcmp(s->models[i].name, name) == 0) return &s->models[i];
    return NULL;
}

/* Every JSON body ends with a newline, whichever writer made it (jansson, jsonw, acm_error_body): `curl -s` output
 * then ends its line and the shell prompt starts on its own. The OIP binary extension's bodies are
 * application/octet-stream and are left alone: their JSON header keeps the length Inference-Header-Content-Length
 * announces, and the binary sections follow it directly. */
static void http__json_newline(acmd_req *r) {
    if (!r->resp.body || !r->resp.len || r->resp.body[r->resp.len - 1] == '\n') return;
    if (r->resp.type && strcmp(r->resp.type, "application/json") != 0) return;
    char *p = acmd_arena_realloc(&r->arena, r->resp.body, r->resp.len, r->resp.len + 1);
    if (!p) return; /* out of memory: the body as it is */
    p[r->resp.len++] = '\n';
    r->resp.body = p;
}

/* Sends r's response now (resp.status, resp.body). */
static enum MHD_Result http__respond(acmd_server *s, acmd_req *r) {
    if (r->resp.responded) return MHD_YES;
    r->resp.responded = 1;
    http__json_newline(r);
    r->t.done = acmd_now_ns();
    /* the body stays in the request's arena, which lives until MHD's completion callback (after the last byte) */
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(r->resp.len, r->resp.body ? r->resp.body : (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!resp) return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->resp.type ? r->resp.type : "application/json");
    MHD_add_response_header(resp, "X-Request-Id", r->http.id);
    if (r->resp.status == 405) MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->resp.allow);
    if (r->resp.status == 401) MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"acmd\"");
    if (r->resp.ws_version) MHD_add_response_header(resp, "Sec-WebSocket-Version", "13");
    if (r->resp.status == 200 && r->resp.json_len) {
        char v[32];
        snprintf(v, sizeof v, "%zu", r->resp.json_len);
        MHD_add_response_header(resp, "Inference-Header-Content-Length", v);
    }
    if (r->resp.status == 429 || (r->resp.status == 503 && !s->draining)) {
        char v[24];
        acmd_fmt_u64(v, sizeof v, r->resp.retry_after > 0 ? (uint64_t)r->resp.retry_after : 1);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (s->draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->resp.status == 200 && acmd_route_infers(r->route)) {
        char v[160];
        acmd_fmt_float(v, sizeof v, (float)acmd_budget_applied(r));
        MHD_add_response_header(resp, "X-Compute-Budget-Applied", v);
        snprintf(v, sizeof v, "%.0f", r->out.flops);
        MHD_add_response_header(resp, "X-Flops", v);
        snprintf(v, sizeof v, "%.0f", r->out.flops_dense);
        MHD_add_response_header(resp, "X-Flops-Dense", v);
        snprintf(v, sizeof v, "queue;dur=%.3f, compute;dur=%.3f, total;dur=%.3f", (double)(r->t.dispatch - r->t.queued) * 1e-6,
                 r->out.compute_s * 1e3, (double)(r->t.done - r->t.arrive) * 1e-6);
        MHD_add_response_header(resp, "Server-Timing", v);
    }
    r->http.bytes_out = r->resp.len;
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)r->resp.status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result http__error(acmd_server *s, acmd_req *r, acmd_err e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static enum MHD_Result http__error(acmd_server *s, acmd_req *r, acmd_err e, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    acmd_req_fail(r, e, "%s", msg);
    return http__respond(s, r);
}

static enum MHD_Result http__json(acmd_server *s, acmd_req *r, int status, json_t *o) {
    r->resp.body = acmd_arena_adopt(&r->arena, json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9)));
    json_decref(o);
    if (!r->resp.body) return http__error(s, r, ACMD_E_INTERNAL, "out of memory");
    r->resp.len = strlen(r->resp.body);
    r->resp.type = "application/json";
    r->resp.status = status;
    return http__respond(s, r);
}

/* A constant JSON body (static storage: MHD sends it as it is). */
static enum MHD_Result http__const(acmd_server *s, acmd_req *r, int status, const char *body) {
    r->resp.body = (char *)(uintptr_t)body; /* never written: it ends with its newline already */
    r->resp.len = strlen(body);
    r->resp.type = "application/json";
    r->resp.status = status;
    return http__respond(s, r);
}

/* ---- GET routes ---------------------------------------------------------------------------------------------------- */

static json_t *http__model_meta(const acmd_server *s, const acmd_model *m) {
    json_t *labels = json_array();
    for (int k = 0; k < m->K; k++) json_array_append_new(labels, json_string(m->cfg->labels[k]));
    json_t *o = json_pack("{s:s, s:[s], s:s, s:s, s:[{s:s, s:s, s:[i,i,i,i]}, {s:s, s:s, s:[i,i,i,i]}], "
                          "s:[{s:s, s:s, s:[i,i]}, {s:s, s:s, s:[i]}]}",
                          "name", m->name, "versions", m->version, "platform", "acm", "model_version", m->version,
                          "inputs", "name", "image", "datatype", "UINT8", "shape", -1, -1, -1, m->C, "name",
                          "pixel_values", "datatype", "FP32", "shape", -1, m->C, m->S, m->S, "outputs", "name", "logits",
                          "datatype", "FP32", "shape", -1, m->K, "name", "label", "datatype", "BYTES", "shape", -1);
    json_object_set_new(o, "labels", labels);
    if (m->speech) { /* OIP `audio` in, `text` and the CTC `logits` out (labels: the CTC classes, blank first) */
        json_object_set_new(o, "inputs", json_pack("[{s:s, s:s, s:[i,i]}]", "name", "audio", "datatype", "FP32", "shape", 1, -1));
        json_object_set_new(o, "outputs", json_pack("[{s:s, s:s, s:[i]}, {s:s, s:s, s:[i,i]}]", "name", "text", "datatype",
                                                    "BYTES", "shape", 1, "name", "logits", "datatype", "FP32", "shape", -1, m->K));
        json_object_set_new(o, "sample_rate", json_integer(ACM_AUDIO_RATE));
        json_object_set_new(o, "chunk_tokens", json_integer(m->T));
        json_object_set_new(o, "token_seconds", json_real((double)m->cfg->stack * m->cfg->hop_length / ACM_AUDIO_RATE));
    } else {
        json_object_set_new(o, "image_size", json_integer(m->S));
        json_object_set_new(o, "channels", json_integer(m->C));
    }
    json_object_set_new(o, "acm_modules", json_integer(m->num_acms));
    json_object_set_new(o, "beta_min", json_real(m->cfg->beta_min));
    json_object_set_new(o, "beta_floor", json_real(m->beta_floor));
    json_object_set_new(o, "cap_order", json_string(acm_cap_order_name((acm_cap_order)m->cfg->cap_order)));
    json_object_set_new(o, "flops_dense", json_real(acm_model_flops_dense(m->m)));
    json_object_set_new(o, "default_policy", json_string(acm_policy_name(m->default_policy.kind)));
    json_object_set_new(o, "max_batch", json_integer(m->max_batch));
    json_object_set_new(o, "backend", json_string(s->cfg.backend)); /* the engine backend its workers run on */
    return o;
}

static json_t *http__model_stats(const acmd_server *s, const acmd_model *m) {
    double a, b, c, mean_abs, mean_rel, max_abs;
    acmd_cost_coef(&m->cost, &a, &b, &c);
    const int n = acmd_cost_error(&m->cost, &mean_abs, &mean_rel, &max_abs);
    const double fl = m->flops_fixed, fb = m->flops_fixed + m->flops_learner, bmin = m->beta_floor;
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "name", m->name, "version", m->version, "workers",
                          s->n_workers, "blas_threads", (int)s->cfg.blas_threads, "max_batch", m->max_batch,
                          "queue_depth", m->q_items, "running", m->running);
    json_object_set_new(o, "cost_model",
        json_pack("{s:s, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:f, s:{s:i, s:f, s:f, s:f}, s:{s:f, s:f, s:f}}",
                  "formula", "t = a + b*tokens + c*flops (per batch, seconds)", "a", a, "b", b, "c", c,
                  "forgetting", m->cost.forget, "samples", (json_int_t)m->cost.samples, "prior_samples",
                  (json_int_t)m->cost.prior_samples, "flops_fixed_per_item", fl, "flops_learners_per_item",
                  m->flops_learner, "recent_error", "batches", n, "mean_abs_ms", mean_abs * 1e3, "mean_rel", mean_rel,
                  "max_abs_ms", max_abs * 1e3, "predict_ms", "one_item_full",
                  acmd_cost_predict(&m->cost, m->T, fb) * 1e3, "one_item_floor",
                  acmd_cost_predict(&m->cost, m->T, fl + bmin * m->flops_learner) * 1e3, "full_batch_full",
                  acmd_cost_predict(&m->cost, (double)m->T * m->max_batch, fb * m->max_batch) * 1e3));
    json_object_set_new(json_object_get(o, "cost_model"), "last_batch",
                        json_pack("{s:f, s:f, s:f}", "items", m->T ? m->cost.last[0] / m->T : 0, "flops", m->cost.last[1],
                                  "seconds", m->cost.last[2]));
    json_object_set_new(json_object_get(o, "cost_model"), "path",
                        json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f}", "what",
                                  "per request: (bytes sent - dispatch) - predicted batch time, seconds", "samples",
                                  (json_int_t)m->cost.path.n, "p50_ms", acmd_hist_quantile(&m->cost.path, 0.5) * 1e3,
                                  "p95_ms", acmd_hist_quantile(&m->cost.path, 0.95) * 1e3, "margin_ms",
                                  acmd_cost_margin(&m->cost) * 1e3, "band_ms", acmd_cost_band(&m->cost) * 1e3,
                                  "last_beta", m->beta_prev));
    json_object_set_new(o, "deadlines", json_pack("{s:I, s:{s:I, s:I, s:I}}", "requests", (json_int_t)m->dl_requests,
                                                  "misses", "admission", (json_int_t)m->dl_misses[ACMD_MISS_ADMISSION],
                                                  "queue", (json_int_t)m->dl_misses[ACMD_MISS_QUEUE], "compute",
                                                  (json_int_t)m->dl_misses[ACMD_MISS_COMPUTE]));
    return o;
}

static enum MHD_Result http__get(acmd_server *s, acmd_req *r, const acmd_route_args *a) {
    switch (r->route) {
    /* the probes' answers are constant: no JSON tree per probe (jansson was 4.5 % of a health check) */
    case ACMD_ROUTE_HEALTH_LIVE: return http__const(s, r, 200, "{\"live\":true}\n");
    case ACMD_ROUTE_HEALTH_READY:
        return http__const(s, r, s->ready ? 200 : 503, s->ready ? "{\"ready\":true}\n" : "{\"ready\":false}\n");
    case ACMD_ROUTE_SERVER_META:
        return http__json(s, r, 200, json_pack("{s:s, s:s, s:[]}", "name", "acmd", "version", ACMD_VERSION, "extensions"));
    case ACMD_ROUTE_MODEL_META: return http__json(s, r, 200, http__model_meta(s, r->model));
    case ACMD_ROUTE_MODEL_STATS: return http__json(s, r, 200, http__model_stats(s, r->model));
    case ACMD_ROUTE_MODEL_READY: return http__json(s, r, s->ready ? 200 : 503, json_pack("{s:s, s:b}", "name", r->model->name, "ready", s->ready));
    case ACMD_ROUTE_METRICS: {
        acmd_metric_set(s->metrics, ACMD_M_CONNECTIONS, "", s->connections);
        acmd_metric_set(s->metrics, ACMD_M_BUFFERED, "", (double)atomic_load(&s->buffered));
        r->resp.body = acmd_arena_adopt(&r->arena, acmd_metrics_render(s->metrics, &r->resp.len));
        if (!r->resp.body) return http__error(s, r, ACMD_E_INTERNAL, "out of memory");
        r->resp.type = "text/plain; version=0.0.4; charset=utf-8";
        r->resp.status = 200;
        return http__respond(s, r);
    }
    case ACMD_ROUTE_DEMO:
        r->resp.body = (char *)(uintptr_t)acmd_demo_page(&r->resp.len); /* static, never written */
        r->resp.type = "text/html; charset=utf-8";
        r->resp.status = 200;
        return http__respond(s, r);
    default: (void)a; return http__error(s, r, ACMD_E_INTERNAL, "unhandled route");
    }
}

/* ---- admission of POST routes --------------------------------------------------------------------------------------- */

static int http__copy_hdr(char *dst, size_t n, const char *v) {
    if (!v) return 0;
    acmd_copy(dst, n, v);
    return 1;
}

/* Whether new inference requests are taken: ready, or draining within the grace period (server.c). */
static int http__taking(const acmd_server *s) { return s->draining ? s->accepting && !s->cut : s->ready; }

/* The age of a request at its arrival from its X-Request-Start stamp: the wall clock now, less the monotonic time
 * since the headers came in, less the stamp. A stamp up to a second ahead of acmd's clock is skew between the client's
 * host and this one (age 0); further ahead, or over an hour old, it is a wrong clock or unit: 400. */
#define HTTP_REQUEST_START_SKEW_S 1.0
#define HTTP_REQUEST_START_MAX_AGE_S 3600.0
static int http__request_age(acmd_req *r, const char *v, char *err, size_t errlen) {
    double stamp;
    if (acm_sla_parse_request_start(v, &stamp, err, errlen)) return -1;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const double arrived = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - (double)(acmd_now_ns() - r->t.arrive) * 1e-9;
    const double age = arrived - stamp;
    if (age < -HTTP_REQUEST_START_SKEW_S || age > HTTP_REQUEST_START_MAX_AGE_S) {
        snprintf(err, errlen, "X-Request-Start \"%.40s\" is %.3f s %s acmd's clock (at most %g s ahead or %g s behind): a "
                              "wrong clock or unit", v, fabs(age), age < 0 ? "ahead of" : "behind",
                 HTTP_REQUEST_START_SKEW_S, HTTP_REQUEST_START_MAX_AGE_S);
        return -1;
    }
    r->sla.age_s = age > 0 ? age : 0;
    return 0;
}

/* Returns 0 when the request may wait for its body, or responds (4xx/503) and returns 1. */
static int http__admit_headers(acmd_server *s, acmd_req *r) {
    if (!http__taking(s)) {
        http__error(s, r, s->draining ? ACMD_E_DRAINING : ACMD_E_NOT_READY,
                    s->draining ? "the server is shutting down" : "the server is warming up");
        return 1;
    }
    const char *cl = http__hdr(r->conn, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (end == cl || n > (unsigned long long)s->cfg.max_body_bytes) {
            http__error(s, r, ACMD_E_TOO_LARGE, "the body of %s bytes is over the limit of %ld bytes", cl, s->cfg.max_body_bytes);
            return 1;
        }
    }
    const char *ct = http__hdr(r->conn, MHD_HTTP_HEADER_CONTENT_TYPE);
    http__copy_hdr(r->body.type, sizeof r->body.type, ct);
    if (r->route == ACMD_ROUTE_CLASSIFY && acm_image_format_from_type(ct) == ACM_IMAGE_UNKNOWN) {
        http__error(s, r, ACMD_E_MEDIA_TYPE, "Content-Type \"%s\" is not an image type served here (image/png, image/jpeg, "
                               "image/x-portable-anymap)", ct ? ct : "");
        return 1;
    }
    if (r->route == ACMD_ROUTE_TRANSCRIBE && !r->model->speech) {
        http__error(s, r, ACMD_E_BAD_REQUEST, "model %s is not a speech model: /transcribe takes speech models only",
                    r->model->name);
        return 1;
    }
    if (r->route == ACMD_ROUTE_CLASSIFY && r->model->speech) {
        http__error(s, r, ACMD_E_BAD_REQUEST, "model %s is a speech model: POST audio to /v1/models/%s/transcribe "
                    "(or an OIP `audio` input to /v2/models/%s/infer)", r->model->name, r->model->name, r->model->name);
        return 1;
    }
    if (r->route == ACMD_ROUTE_TRANSCRIBE && ct && strncasecmp(ct, "application/octet-stream", 24) != 0) {
        acm_audio_format f;
        char ae[256];
        const int rc = acm_audio_parse_type(&f, ct, ae, sizeof ae);
        if (rc == ACM_AUDIO_EFORMAT) {
            http__error(s, r, ACMD_E_MEDIA_TYPE, "Content-Type \"%.100s\" is not an audio type served here (%s)", ct,
                        ACMD_AUDIO_TYPES);
            return 1;
        }
        if (rc) {
            http__error(s, r, ACMD_E_BAD_REQUEST, "Content-Type \"%.100s\": %s", ct, ae);
            return 1;
        }
    }
    const char *ihcl = http__hdr(r->conn, "Inference-Header-Content-Length");
    if (r->route == ACMD_ROUTE_INFER && ct && strncasecmp(ct, "application/json", 16) != 0 &&
        !(ihcl && strncasecmp(ct, "application/octet-stream", 24) == 0)) {
        http__error(s, r, ACMD_E_MEDIA_TYPE, "Content-Type \"%s\": OIP inference takes application/json (or "
                               "application/octet-stream with Inference-Header-Content-Length)", ct);
        return 1;
    }
    r->body.json_len = SIZE_MAX; /* the whole body, unless the binary extension says otherwise */
    if (ihcl) {
        char *end;
        unsigned long long n = strtoull(ihcl, &end, 10);
        unsigned long long cl_n = cl ? strtoull(cl, NULL, 10) : ULLONG_MAX;
        if (r->route != ACMD_ROUTE_INFER || !isdigit((unsigned char)ihcl[0]) || *end || n > cl_n || n == 0) {
            http__error(s, r, ACMD_E_BAD_REQUEST, "Inference-Header-Content-Length \"%.40s\" must be the byte length (> 0) of the JSON "
                                   "header of an OIP inference body, at most Content-Length", ihcl);
            return 1;
        }
        r->body.json_len = (size_t)n;
    }
    /* the SLA headers, parsed once, here, so that a bad one fails before the body is read (admit.c resolves them) */
    char e[256];
    http__copy_hdr(r->sla.policy_name, sizeof r->sla.policy_name, http__hdr(r->conn, "X-Compute-Policy"));
    if (acm_sla_parse_headers(&r->sla.hdr, http__hdr(r->conn, "X-Compute-Budget"), http__hdr(r->conn, "X-Compute-Budget-Min"),
                              http__hdr(r->conn, "X-Deadline-Ms"), http__hdr(r->conn, "Priority"), e, sizeof e)) {
        http__error(s, r, ACMD_E_BAD_REQUEST, "%s", e);
        return 1;
    }
    /* X-Request-Start: the deadline counts from where the client (or the proxy in front) started the request */
    const char *rs = http__hdr(r->conn, "X-Request-Start");
    if (rs && http__request_age(r, rs, e, sizeof e)) {
        http__error(s, r, ACMD_E_BAD_REQUEST, "%s", e);
        return 1;
    }
    /* a deadline that not even the floor can make: 504 now, before the body is read */
    if (acmd_admit_early(s, r)) {
        http__respond(s, r);
        return 1;
    }
    const char *ex = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "explain");
    r->out.explain = ex && (strcmp(ex, "1") == 0 || strcmp(ex, "true") == 0);
    /* the body's bytes, reserved now when Content-Length announces them (checked above: <= --max-body-bytes); a body
     * decoded as it arrives is not kept: its stream's state is counted instead (decode.c) */
    const int streams = !r->http.bodiless && acmd_decode_streams(r);
    const size_t cl_n = cl && !streams ? (size_t)strtoull(cl, NULL, 10) : 0;
    if (cl_n && http__mem_reserve(s, r, cl_n)) {
        http__mem_error(s, r, cl_n);
        http__respond(s, r);
        return 1;
    }
    /* WAV and raw PCM are decoded as they arrive, and run chunk by chunk while the upload goes on: admitted now */
    if (streams) {
        if (r->model->q_items + 1 > s->cfg.max_queue) {
            http__error(s, r, ACMD_E_QUEUE_FULL, "the queue of model %s is full (%ld items)", r->model->name, s->cfg.max_queue);
            return 1;
        }
        if (acmd_decode_stream_begin(s, r) || acmd_admit(s, r, NULL)) {
            http__respond(s, r);
            return 1;
        }
    }
    return 0;
}

/* A streamed transcription's body has ended: its last job is queued (or follows the one running) and the connection
 * waits, suspended, for the answer. A body refused while it arrived is answered now (MHD 0.9.75 takes a response
 * only once the body has been read), or once the job a worker holds is back. */
static enum MHD_Result http__stream_end(acmd_server *s, acmd_req *r) {
    if (r->state == ACMD_REQ_DONE || r->state == ACMD_REQ_CANCELLED) return http__respond(s, r);
    if (!r->au.failed) acmd_decode_stream_end(s, r);
    if (r->au.failed && r->state == ACMD_REQ_QUEUED) acmd_queue_remove(s, r), r->state = ACMD_REQ_RECEIVING;
    if (r->au.failed && r->state == ACMD_REQ_RECEIVING) return http__error(s, r, r->au.fail_err, "%s", r->au.fail_msg);
    MHD_suspend_connection(r->conn);
    r->http.suspended = 1;
    s->suspended++;
    acmd_conn_busy(r->conn, 1);
    if (r->state == ACMD_REQ_RECEIVING) acmd_queue_stream(s, r);
    return MHD_YES;
}

/* The whole body is here: last checks, then queue and suspend. */
static enum MHD_Result http__admit_body(acmd_server *s, acmd_req *r) {
    if (r->body.error == 503) {
        http__mem_error(s, r, r->body.len);
        return http__respond(s, r);
    }
    if (r->body.error) {
        return http__error(s, r, ACMD_E_TOO_LARGE, "the body is over the limit of %ld bytes", s->cfg.max_body_bytes);
    }
    if (!http__taking(s)) {
        return http__error(s, r, s->draining ? ACMD_E_DRAINING : ACMD_E_NOT_READY,
                           s->draining ? "the server is shutting down" : "the server is warming up");
    }
    if (r->body.len == 0) {
        return http__error(s, r, ACMD_E_BAD_REQUEST, "the request has no body");
    }
    if (r->route == ACMD_ROUTE_CLASSIFY) { /* header only: size before any pixel is decoded */
        acm_image_info info;
        char e[256];
        int rc = acm_image_probe(&info, r->body.data, r->body.len, e, sizeof e);
        if (rc) {
            return http__error(s, r, ACMD_E_BAD_REQUEST, "image: %s", e);
        }
        if ((int64_t)info.width * info.height > s->cfg.max_image_pixels) {
            return http__error(s, r, ACMD_E_IMAGE_TOO_LARGE, "image: %s image of %dx%d pixels is over the limit of %ld pixels",
                               acm_image_format_name(info.format), info.width, info.height, s->cfg.max_image_pixels);
        }
    }
    acm_oip_peek pk, *peek = NULL;
    if (r->route == ACMD_ROUTE_INFER) { /* the parameters (deadline, priority, budget) are needed to queue it */
        if (r->body.json_len == SIZE_MAX) r->body.json_len = r->body.len;
        if (r->body.json_len > r->body.len) {
            return http__error(s, r, ACMD_E_BAD_REQUEST, "Inference-Header-Content-Length %zu is past the body's %zu bytes", r->body.json_len,
                               r->body.len);
        }
        char e[512];
        if (acm_oip_peek_request(&pk, (const char *)r->body.data, r->body.json_len, e, sizeof e)) {
            return http__error(s, r, ACMD_E_BAD_REQUEST, "%s", e);
        }
        peek = &pk;
    }
    if (r->model->q_items + 1 > s->cfg.max_queue) {
        return http__error(s, r, ACMD_E_QUEUE_FULL, "the queue of model %s is full (%ld items)", r->model->name, s->cfg.max_queue);
    }
    if (acmd_admit(s, r, peek)) return http__respond(s, r);
    MHD_suspend_connection(r->conn);
    r->http.suspended = 1;
    s->suspended++;
    acmd_conn_busy(r->conn, 1);
    acmd_queue_push(s, r);
    return MHD_YES;
}

void acmd_http_finish(acmd_server *s, acmd_req *r) {
    if (r->state != ACMD_REQ_CANCELLED) r->state = ACMD_REQ_DONE;
    if (r->http.suspended) {
        r->http.suspended = 0;
        s->suspended--;
        MHD_resume_connection(r->conn);
    }
}

/* X-Request-Id is echoed as it came, in a response header and in JSON: 1..ACM_OIP_MAX_ID bytes of visible ASCII
 * (0x20..0x7E; MHD strips the spaces around it). Anything else is refused (400 in the handler, with a generated id):
 * silently replacing it would break the client's correlation without telling it. Absent or empty: generated. */
static void http__request_id(acmd_req *r) {
    const char *id = http__hdr(r->conn, "X-Request-Id");
    if (id && *id) {
        const size_t n = strlen(id);
        int ok = n <= ACM_OIP_MAX_ID;
        for (size_t i = 0; ok && i < n; i++) ok = id[i] >= 0x20 && id[i] < 0x7F;
        if (ok) {
            memcpy(r->http.id, id, n + 1);
            return;
        }
        r->http.id_error = n > ACM_OIP_MAX_ID ? "X-Request-Id is over the limit of " ACM__STR(ACM_OIP_MAX_ID) " bytes"
                                         : "X-Request-Id must be visible ASCII (0x20..0x7E): it is echoed as a header";
    }
    static uint64_t counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = ((uint64_t)ts.tv_sec << 20 ^ (uint64_t)ts.tv_nsec) * 0x9E3779B97F4A7C15ull + ++counter;
    const size_t k = acmd_fmt_hex(r->http.id, sizeof r->http.id, x, 16); /* 16 hex digits, then at least 8 */
    acmd_fmt_hex(r->http.id + k, sizeof r->http.id - k, counter, 8);
}

/* ---- API keys (--auth-file; auth.c) -------------------------------------------------------------------------------
 * Every inference route (acmd_route_infers: classify, OIP infer, transcribe) wants a key; /metrics too with
 * --metrics-auth. Health, readiness and
 * model metadata stay open (probes and load balancers carry no key). */
static int http__wants_key(const acmd_server *s, acmd_route route) {
    if (!s->auth) return 0;
    if (route == ACMD_ROUTE_METRICS) return s->cfg.metrics_auth != 0;
    return acmd_route_infers(route) || route == ACMD_ROUTE_STREAM;
}

/* 0 with r->http.key set, or -1 with the 401 filled. */
static int http__authorize(acmd_server *s, acmd_req *r) {
    size_t n = 0;
    const char *field = http__hdr(r->conn, MHD_HTTP_HEADER_AUTHORIZATION);
    const char *key = acmd_auth_bearer(field, &n);
    /* a browser cannot set headers on a WebSocket handshake: the stream route takes the key as ?access_token= too */
    const char *qt = r->route == ACMD_ROUTE_STREAM && !field
                         ? MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, "access_token") : NULL;
    if (qt && *qt) key = qt, n = strlen(qt);
    if (!key) {
        acmd_req_fail(r, ACMD_E_UNAUTHORIZED, field ? "the Authorization field must be \"Bearer KEY\""
                                                    : "this route wants an API key: Authorization: Bearer KEY");
        return -1;
    }
    const int i = acmd_keys_find(&s->keys, key, n, NULL);
    if (i < 0) {
        acmd_req_fail(r, ACMD_E_UNAUTHORIZED, "unknown API key");
        return -1;
    }
    acmd_copy(r->http.key, sizeof r->http.key, s->keys.k[i].name);
    return 0;
}

/* ---- framing and Host (RFC 9112 §3.2, §6.1, §6.3) ------------------------------------------------------------------
 * libmicrohttpd 0.9.75 frames a body by the first Content-Length and ignores the others, reads a body of a
 * Transfer-Encoding other than chunked until the connection closes, and lets an HTTP/1.1 request without Host through
 * (unless MHD_OPTION_STRICT_FOR_CLIENT, whose answer is an HTML page). Behind a proxy that frames by another
 * Content-Length than ours, the rest of a body becomes a smuggled request. So every field line is looked at here, in the
 * handler's first call, before any body byte is read:
 *   - Content-Length: each must be 1*DIGIT; several must all be the same number (RFC 9110 §8.6 lets a recipient take
 *     identical duplicates as one); different values -> 400.
 *   - Transfer-Encoding: only "chunked", alone, is implemented; anything else -> 501 (RFC 9112 §6.1). With a
 *     Content-Length too -> 400 (RFC 9112 §6.1: "ought to be handled as an error"), and in an HTTP/1.0 request -> 400
 *     (faulty framing, §6.1).
 *   - Host: an HTTP/1.1 request without one, or with more than one -> 400 (RFC 9112 §3.2).
 * Such an answer is queued in the first call, so libmicrohttpd closes the connection after it: no next request is read
 * from bytes whose framing is in doubt. A first Content-Length that is not a number is libmicrohttpd's own (HTML) 400 or
 * 413, already queued when the handler is first called. */
typedef struct {
    int n_cl, cl_bad, cl_first_bad, cl_conflict, n_te, n_host;
    const char *cl, *cl_other, *te;
} http__frame;

static int http__digits(const char *v) {
    if (!*v) return 0;
    for (; *v; v++)
        if (*v < '0' || *v > '9') return 0;
    return 1;
}

/* Two decimal strings name the same number (leading zeros aside). */
static int http__same_number(const char *a, const char *b) {
    while (*a == '0' && a[1]) a++;
    while (*b == '0' && b[1]) b++;
    return strcmp(a, b) == 0;
}

static enum MHD_Result http__frame_field(void *cls, enum MHD_ValueKind kind, const char *key, const char *value) {
    http__frame *f = cls;
    (void)kind;
    if (!value) value = "";
    if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        if (!http__digits(value)) {
            if (!f->n_cl) f->cl_first_bad = 1;
            if (!f->cl_bad) f->cl_other = value;
            f->cl_bad = 1;
        } else if (f->cl && !f->cl_bad && !f->cl_conflict && !http__same_number(f->cl, value)) {
            f->cl_conflict = 1, f->cl_other = value;
        }
        if (!f->n_cl++) f->cl = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        if (!f->n_te++) f->te = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
        f->n_host++;
    }
    return MHD_YES;
}

/* A field value for a message: printable ASCII only (others as '?'), at most n - 1 bytes. */
static const char *http__printable(char *dst, size_t n, const char *v) {
    size_t i = 0;
    for (; v && v[i] && i + 1 < n; i++) dst[i] = v[i] >= 0x20 && v[i] < 0x7f ? v[i] : '?';
    dst[i] = 0;
    return dst;
}

/* Returns 0 when the framing and Host are sound; else the status (400, 501) with the message in e, or -1 when
 * libmicrohttpd has answered already (a first Content-Length that is not a number). */
static int http__check_framing(struct MHD_Connection *conn, const char *version, char *e, size_t n) {
    http__frame f = {0};
    char v1[48], v2[48];
    MHD_get_connection_values(conn, MHD_HEADER_KIND, http__frame_field, &f);
    if (f.cl_first_bad) return -1;
    if (f.cl_bad)
        return snprintf(e, n, "Content-Length \"%s\" is not a decimal number", http__printable(v1, 40, f.cl_other)), 400;
    if (f.cl_conflict)
        return snprintf(e, n, "conflicting Content-Length values %s and %s", http__printable(v1, 40, f.cl),
                        http__printable(v2, 40, f.cl_other)), 400;
    if (f.n_te && f.n_cl) return snprintf(e, n, "a request may not have both Content-Length and Transfer-Encoding"), 400;
    if (f.n_te && strcmp(version, MHD_HTTP_VERSION_1_0) == 0)
        return snprintf(e, n, "Transfer-Encoding in an HTTP/1.0 request"), 400;
    if (f.n_te) {
        const char *t = f.te;
        while (*t == ' ' || *t == '\t') t++;
        size_t k = strlen(t);
        while (k && (t[k - 1] == ' ' || t[k - 1] == '\t')) k--;
        if (f.n_te > 1 || k != 7 || strncasecmp(t, "chunked", 7) != 0)
            return snprintf(e, n, "Transfer-Encoding \"%s\" is not implemented (only chunked)",
                            http__printable(v1, 40, f.te)), 501;
    }
    if (strcmp(version, MHD_HTTP_VERSION_1_0) != 0 && f.n_host != 1) /* HTTP/1.1 and later 1.x (MHD: 505 else) */
        return snprintf(e, n, f.n_host ? "more than one Host header" : "an HTTP/1.1 request needs a Host header"), 400;
    return 0;
}

/* Whether the request announces a body: a Content-Length above 0, or any Transfer-Encoding (chunked). */
static int http__has_body(struct MHD_Connection *conn) {
    const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (te) return 1;
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (!cl) return 0;
    while (*cl == ' ' || *cl == '\t') cl++;
    return !(cl[0] == '0' && (cl[1] == 0 || cl[1] == ' ' || cl[1] == '\t'));
}

enum MHD_Result acmd_http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
    acmd_server *s = cls;
    acmd_req *r = *con_cls;
    if (!r) {
        r = acmd_req_new();
        if (!r) return MHD_NO;
        *con_cls = r;
        s->open_requests++;
        r->srv = s, r->conn = conn, r->t.arrive = acmd_now_ns();
        acmd_conn_req(conn, r);
        r->t.queued = r->t.dispatch = r->t.arrive;
        acmd_copy(r->http.method, sizeof r->http.method, method);
        r->http.http11 = strcmp(version, MHD_HTTP_VERSION_1_0) != 0;
        acmd_copy(r->http.path, sizeof r->http.path, url);
        http__request_id(r);
        http__copy_hdr(r->http.traceparent, sizeof r->http.traceparent, http__hdr(conn, "traceparent"));
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)ci->client_addr;
            const uint32_t a = ntohl(in->sin_addr.s_addr); /* a.b.c.d:port (inet_ntop would printf) */
            char *p = r->http.peer;
            size_t o = 0;
            for (int k = 3; k >= 0; k--) {
                o += acmd_fmt_u64(p + o, sizeof r->http.peer - o, (a >> (8 * k)) & 255);
                p[o++] = k ? '.' : ':';
            }
            acmd_fmt_u64(p + o, sizeof r->http.peer - o, ntohs(in->sin_port));
        }
        char e[160];
        const int bad = http__check_framing(conn, version, e, sizeof e);
        if (bad) {
            r->http.started = 1, r->route = ACMD_ROUTE_NONE;
            if (bad > 0) return http__error(s, r, bad == 501 ? ACMD_E_NOT_IMPLEMENTED : ACMD_E_BAD_REQUEST, "%s", e);
            r->resp.responded = 1, r->resp.status = 400; /* libmicrohttpd's own answer (400, or 413 past 2^64) */
            snprintf(r->resp.err, sizeof r->resp.err, "malformed Content-Length (answered by libmicrohttpd)");
            return MHD_YES;
        }
        /* libmicrohttpd (0.9.75) closes the connection when a response is queued in the first call, before it
         * knows the request has no body. A request without a body is therefore answered in the second call (which
         * comes at once, with no data), so GETs keep their connection alive; one with a body is admitted or refused
         * here, before its body is read. */
        if (!http__has_body(conn)) {
            r->http.bodiless = 1;
            return MHD_YES;
        }
    }
    if (!r->http.started) {
        r->http.started = 1;
        if (r->http.id_error) return http__error(s, r, ACMD_E_BAD_REQUEST, "%s", r->http.id_error);
        acmd_route_args a;
        int path_matched;
        r->route = acmd_route_match(method, url, &a, &path_matched, r->resp.allow, sizeof r->resp.allow);
        if (r->route == ACMD_ROUTE_NONE) {
            if (path_matched) return http__error(s, r, ACMD_E_METHOD, "method %s is not allowed on %s (allowed: %s)", method, url, r->resp.allow);
            return http__error(s, r, ACMD_E_NOT_FOUND, "no route for %s", url);
        }
        /* the key before anything else is looked at: without one, a client learns nothing (not even model names) */
        if (http__wants_key(s, r->route) && http__authorize(s, r)) return http__respond(s, r);
        if (a.model[0]) {
            r->model = http__model(s, a.model);
            if (!r->model) return http__error(s, r, ACMD_E_NOT_FOUND, "unknown model \"%s\"", a.model);
            if (a.version[0] && strcmp(a.version, r->model->version) != 0)
                return http__error(s, r, ACMD_E_NOT_FOUND, "model %s has no version \"%s\" (served: %s)", r->model->name, a.version,
                                   r->model->version);
        }
        if (r->route == ACMD_ROUTE_STREAM) {
            const int rc = acmd_ws_handshake(s, r, conn);
            return rc < 0 ? http__respond(s, r) : rc ? MHD_NO : MHD_YES;
        }
        if (!acmd_route_infers(r->route)) return http__get(s, r, &a);
        if (http__admit_headers(s, r)) return MHD_YES;
        if (!r->http.bodiless) return MHD_YES; /* wait for the body */
        /* no body to wait for: this call is the one that ends the upload */
    }
    if (*upload_data_size && r->au.on) {
        r->http.bytes_in += *upload_data_size;
        if (!r->resp.responded && r->state != ACMD_REQ_DONE && r->state != ACMD_REQ_CANCELLED && !r->au.failed) {
            if (acmd_decode_stream_push(s, r, upload_data, *upload_data_size)) {
                if (r->state == ACMD_REQ_QUEUED) acmd_queue_remove(s, r), r->state = ACMD_REQ_RECEIVING;
            } else if (r->state == ACMD_REQ_RECEIVING && r->au.n_pend >= (size_t)r->model->chunk_samples) {
                acmd_queue_stream(s, r);
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        r->http.bytes_in += *upload_data_size;
        if (!r->resp.responded && !r->body.error) {
            size_t need = r->body.len + *upload_data_size;
            if (need > (size_t)s->cfg.max_body_bytes) {
                r->body.error = 413;
            } else {
                if (need > r->body.cap) {
                    size_t cap = r->body.cap ? r->body.cap : 4096;
                    while (cap < need) cap *= 2;
                    if (need <= r->body.mem && cap > r->body.mem) cap = r->body.mem; /* Content-Length: exactly */
                    if (cap > r->body.mem && http__mem_reserve(s, r, cap - r->body.mem)) {
                        /* a body without Content-Length grew past --max-buffered-bytes: drop it, read on, 503 */
                        r->body.error = 503;
                        acmd_mem_add(s, -(long long)r->body.mem);
                        acmd_arena_release(&r->arena, r->body.data);
                        r->body.data = NULL, r->body.cap = r->body.mem = 0;
                        *upload_data_size = 0;
                        return MHD_YES;
                    }
                    uint8_t *b = acmd_arena_realloc(&r->arena, r->body.data, r->body.len, cap);
                    if (!b) return MHD_NO;
                    r->body.data = b, r->body.cap = cap;
                }
                memcpy(r->body.data + r->body.len, upload_data, *upload_data_size);
                r->body.len = need;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    r->http.body_done = 1;
    if (r->resp.responded) return MHD_YES;
    if (r->au.on) return http__stream_end(s, r);
    if (r->state == ACMD_REQ_RECEIVING) return http__admit_body(s, r);
    if (r->state == ACMD_REQ_DONE || r->state == ACMD_REQ_CANCELLED) return http__respond(s, r);
    return MHD_YES;
}

/* A client-given field of the text access log: one line per request and fields split by spaces, so control
 * characters, spaces, '\\' and bytes that are not well-formed UTF-8 are written \\xHH (a decoded "%0A" in a path
 * must not start a line of its own). dst holds 4 bytes per byte of s. */
static void http__text_field(char *dst, size_t n, const char *s) {
    size_t o = 0;
    for (size_t i = 0, len = strlen(s); i < len && o + 5 <= n;) {
        const unsigned char c = (unsigned char)s[i];
        const size_t k = c >= 0x80 ? acm_utf8_seq(s + i, len - i) : 0;
        if (k) {
            if (o + k + 1 > n) break;
            memcpy(dst + o, s + i, k);
            o += k, i += k;
        } else if (c <= 0x20 || c == 0x7F || c == '\\' || c >= 0x80) {
            o += (size_t)snprintf(dst + o, n - o, "\\x%02X", c);
            i++;
        } else {
            dst[o++] = (char)c;
            i++;
        }
    }
    dst[o] = 0;
}

/* ---- lingering close ------------------------------------------------------------------------------------------------
 * An answer queued before the body was read (413, 415, 503 and the 4xx/501 of the headers) makes libmicrohttpd close
 * the connection while the client may still be sending. Closing a socket with unread bytes makes the kernel send a
 * reset, and so does every segment that arrives after the close: the client's send fails, and a client that reads the
 * answer only after sending its body (most do) reports "connection reset" instead of the status. So such a socket
 * outlives libmicrohttpd's close (Apache's and nginx's "lingering close"): a duplicate of its descriptor is shut for
 * writing (the FIN follows the answer), then read and thrown away until the client's FIN, HTTP__LINGER_S or the
 * server's stop, and closed. At most --max-connections sockets linger at once (past that, closed at once). */
#define HTTP__LINGER_S 5.0
#define HTTP__LINGER_TICK_MS 100 /* how often a lingering socket looks at its deadline and at the server's stop */

typedef struct {
    uv_poll_t poll;
    uv_timer_t timer;
    acmd_server *s;
    int fd, handles; /* handles still open: the socket is closed when both are */
    uint64_t t_end;
} http__linger;

static int http__lingering; /* sockets lingering now (I/O thread) */

static void http__linger_closed(uv_handle_t *h) {
    http__linger *l = h->data;
    if (--l->handles) return;
    close(l->fd);
    free(l);
    http__lingering--;
}

static void http__linger_end(http__linger *l) {
    if (uv_is_closing((uv_handle_t *)&l->poll)) return;
    uv_close((uv_handle_t *)&l->poll, http__linger_closed);
    uv_close((uv_handle_t *)&l->timer, http__linger_closed);
}

/* Reads at most HTTP__LINGER_READS x 64 KiB a call (the poll is level-triggered: the rest comes on the next turn of
 * the loop), so that a client sending as fast as it is read cannot hold the I/O thread. */
#define HTTP__LINGER_READS 16
static void http__linger_read(uv_poll_t *p, int status, int events) {
    static char sink[65536]; /* I/O thread only */
    http__linger *l = p->data;
    (void)events;
    ssize_t k = 1;
    for (int i = 0; status == 0 && i < HTTP__LINGER_READS; i++) {
        k = recv(l->fd, sink, sizeof sink, 0);
        if (k <= 0 && !(k < 0 && errno == EINTR)) break;
    }
    if (status < 0 || k == 0 || (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) http__linger_end(l); /* FIN, error */
}

static void http__linger_tick(uv_timer_t *t) {
    http__linger *l = t->data;
    if (l->s->stopping || acmd_now_ns() >= l->t_end) http__linger_end(l);
}

static void http__linger_start(acmd_server *s, struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci || s->stopping || http__lingering >= s->cfg.max_connections) return;
    http__linger *l = calloc(1, sizeof *l);
    if (!l) return;
    l->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
    if (l->fd < 0 || fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) | O_NONBLOCK) < 0 ||
        uv_poll_init(s->loop, &l->poll, l->fd)) {
        if (l->fd >= 0) close(l->fd);
        free(l);
        return;
    }
    shutdown(l->fd, SHUT_WR); /* the answer is in the socket's send queue: the FIN goes after it */
    l->s = s, l->handles = 2;
    l->t_end = acmd_now_ns() + (uint64_t)(HTTP__LINGER_S * 1e9);
    l->poll.data = l->timer.data = l;
    uv_timer_init(s->loop, &l->timer);
    uv_poll_start(&l->poll, UV_READABLE | UV_DISCONNECT, http__linger_read);
    uv_timer_start(&l->timer, http__linger_tick, HTTP__LINGER_TICK_MS, HTTP__LINGER_TICK_MS);
    http__lingering++;
}

/* The access log is written per request on the I/O thread, so it goes through the flat writer (jsonw.h), not a
 * jansson tree (which cost ~25 us a line, a third of a /v2/health/live request). One write per line: lines never mix. */
static void http__access_log(acmd_server *s, const acmd_req *r, const char *route) {
    if (s->log_level < 2) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    const uint64_t end = acmd_now_ns();
    /* total: arrival to the response handed to MHD (what the server controls); complete: to the last byte sent */
    const double total_ms = (double)((r->t.done ? r->t.done : end) - r->t.arrive) * 1e-6;
    const double complete_ms = (double)(end - r->t.arrive) * 1e-6;
    const int infer = acmd_route_infers(r->route) && r->model;
    if (!s->log_json) {
        char text[4 * (sizeof r->http.path + sizeof r->http.id) + 256], method[4 * sizeof r->http.method], path[4 * sizeof r->http.path],
            id[4 * sizeof r->http.id];
        http__text_field(method, sizeof method, r->http.method);
        http__text_field(path, sizeof path, r->http.path);
        http__text_field(id, sizeof id, r->http.id);
        const int tn = snprintf(text, sizeof text, "%s %s %s %d %s %.3fms (%.3fms sent) in=%zu out=%zu id=%s%s%s\n", r->http.peer,
                                method, path, r->resp.status, route, total_ms, complete_ms, r->http.bytes_in, r->http.bytes_out, id,
                                r->http.key[0] ? " key=" : "", r->http.key);
        if (tn > 0) acmd_log_access(s, text, (size_t)tn < sizeof text ? (size_t)tn : sizeof text - 1);
        return;
    }
    char when[40];
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(when + k, sizeof when - k, ".%06ldZ", ts.tv_nsec / 1000);
    acmd_jw l = {0};
    acmd_jw_raw(&l, "{\"ts\":\"%s\"", when);
    acmd_jw_kstr(&l, "id", r->http.id);
    acmd_jw_kstr(&l, "method", r->http.method);
    acmd_jw_kstr(&l, "path", r->http.path);
    acmd_jw_kstr(&l, "route", route);
    acmd_jw_raw(&l, ",\"status\":%d", r->resp.status);
    if (r->http.key[0]) acmd_jw_kstr(&l, "key", r->http.key);
    if (r->model) {
        acmd_jw_kstr(&l, "model", r->model->name);
        acmd_jw_kstr(&l, "version", r->model->version);
    }
    if (infer && r->resp.status == 200) {
        acmd_jw_raw(&l, ",\"budget_requested\":");
        if (acmd_budget_asked(r)) acmd_jw_num(&l, r->sla.budget.requested);
        else acmd_jw_raw(&l, "null");
        acmd_jw_raw(&l, ",\"budget_applied\":");
        acmd_jw_numf(&l, (float)acmd_budget_applied(r));
        acmd_jw_raw(&l, ",\"budget_realised\":%.6g", r->out.realised);
        acmd_jw_kstr(&l, "budget_source", acm_budget_source_name(r->sla.budget.source));
        if (r->sla.has_deadline) acmd_jw_raw(&l, ",\"deadline_ms\":%.6g,\"predicted_ms\":%.6g", r->sla.sched.deadline_ms, r->sla.predicted_ms);
        if (r->sla.age_s > 0) acmd_jw_raw(&l, ",\"before_arrival_ms\":%.6g", r->sla.age_s * 1e3);
        acmd_jw_raw(&l, ",\"urgency\":%d", r->sla.sched.urgency);
        acmd_jw_raw(&l, ",\"flops\":%.0f,\"flops_dense\":%.0f,\"queue_ms\":%.6g,\"compute_ms\":%.6g,\"batch_size\":%d",
                   r->out.flops, r->out.flops_dense, (double)(r->t.dispatch - r->t.queued) * 1e-6, r->out.compute_s * 1e3,
                   r->out.batch_size);
        /* the I/O thread's share: headers to queued (body, admission), and batch done to response queued */
        acmd_jw_raw(&l, ",\"admit_ms\":%.6g,\"resume_ms\":%.6g", (double)(r->t.queued - r->t.arrive) * 1e-6,
                   (double)(r->t.done - r->t.computed) * 1e-6);
    }
    if (r->resp.status >= 400 && r->resp.err[0]) acmd_jw_kstr(&l, "error", r->resp.err);
    acmd_jw_raw(&l, ",\"total_ms\":%.6g,\"complete_ms\":%.6g,\"bytes_in\":%zu,\"bytes_out\":%zu", total_ms,
               complete_ms, r->http.bytes_in, r->http.bytes_out);
    acmd_jw_kstr(&l, "peer", r->http.peer);
    if (r->http.traceparent[0]) acmd_jw_kstr(&l, "traceparent", r->http.traceparent);
    acmd_jw_raw(&l, "}\n");
    size_t n;
    char *line = acmd_jw_finish(&l, &n);
    if (line) acmd_log_access(s, line, n);
    free(line);
}

/* A request's end: its status if it had none, the HTTP and inference metrics, the access log; conn (NULL: gone
 * already) for the lingering close of one answered before its body was read. */
static void http__done(acmd_server *s, acmd_req *r, struct MHD_Connection *conn, enum MHD_RequestTerminationCode toe) {
    if (!r->resp.status) { /* never answered: timed out (MHD's idle timeout or the sweep's total one), or the client left */
        if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED || r->http.timed_out)
            acmd_req_fail(r, ACMD_E_ARRIVAL_TIMEOUT, "the request did not arrive within --request-timeout (%g s)", s->cfg.request_timeout);
        else
            r->resp.status = 499;
    }
    const char *route = r->route < ACMD_ROUTE_COUNT ? acmd_route_name(r->route) : "unknown";
    char l[256] = "", code[8];
    acmd_fmt_u64(code, sizeof code, (unsigned)r->resp.status);
    acmd_label(l, sizeof l, "route", route);
    acmd_label(l, sizeof l, "method", r->route < ACMD_ROUTE_COUNT ? acmd_route_method(r->route) : "other");
    acmd_label(l, sizeof l, "code", code);
    acmd_metric_add(s->metrics, ACMD_M_HTTP_REQUESTS, l, 1);
    if (r->http.key[0]) {
        l[0] = 0;
        acmd_label(l, sizeof l, "key", r->http.key);
        acmd_label(l, sizeof l, "code", code);
        acmd_metric_add(s->metrics, ACMD_M_KEY_REQUESTS, l, 1);
    }
    if (acmd_route_infers(r->route) && r->model) {
        const char *outcome = r->resp.status == 200 ? "success" : r->state == ACMD_REQ_CANCELLED ? "cancelled"
                              : r->resp.status == 504 ? "timeout" : r->resp.reason && (r->resp.status == 429 || r->resp.status == 503) ? "rejected"
                              : r->resp.status == 499 ? "cancelled" : "failure";
        l[0] = 0;
        acmd_label(l, sizeof l, "model", r->model->name);
        acmd_label(l, sizeof l, "version", r->model->version);
        acmd_label(l, sizeof l, "outcome", outcome);
        acmd_metric_add(s->metrics, ACMD_M_INFER_REQUESTS, l, 1);
        l[0] = 0;
        acmd_label(l, sizeof l, "model", r->model->name);
        if (r->resp.reason) {
            char l2[256];
            memcpy(l2, l, sizeof l2);
            acmd_label(l2, sizeof l2, "reason", r->resp.reason);
            acmd_metric_add(s->metrics, ACMD_M_REJECTIONS, l2, 1);
        }
        if (r->resp.status == 200) {
            r->t.sent = acmd_now_ns();
            acmd_metric_observe(s->metrics, ACMD_M_REQ_DURATION, l, (double)(r->t.sent - r->t.arrive) * 1e-9);
            if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK) acmd_queue_observe_path(s, r);
        }
    }
    http__access_log(s, r, route);
    /* answered before its body was read: the client may still be sending */
    if (conn && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK && r->resp.responded && !r->http.bodiless && !r->http.body_done)
        http__linger_start(s, conn);
}

void acmd_http_orphan_back(acmd_server *s, acmd_req *r) {
    if (r->resp.status == 200) r->resp.status = 0; /* made, never sent: the client had left (499) */
    http__done(s, r, NULL, (enum MHD_RequestTerminationCode)r->http.toe);
    acmd_req_free(s, r);
}

void acmd_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    acmd_server *s = cls;
    acmd_req *r = *con_cls;
    if (!r) return;
    *con_cls = NULL;
    s->open_requests--;
    acmd_conn_busy(conn, 0);
    acmd_conn_req(conn, NULL);
    if (r->state == ACMD_REQ_RUNNING && r->au.on) {
        /* a streamed transcription whose client left while a worker runs a job of it: the worker owns its answer and
         * arena until the job is back, where it is counted, logged and freed (acmd_http_orphan_back) */
        r->http.orphan = 1, r->http.toe = (int)toe;
        return;
    }
    http__done(s, r, conn, toe);
    if (r->state == ACMD_REQ_RUNNING) { /* a worker still holds it: freed when its batch comes back */
        r->http.orphan = 1;
        return;
    }
    if (r->state == ACMD_REQ_QUEUED) acmd_queue_remove(s, r); /* cannot happen (queued connections are suspended) */
    acmd_req_free(s, r);
}
