/*
 * respond.c — what a request answers: the error table (acmd.h ACMD_ERRORS: code -> HTTP status and rejection reason,
 * proto/ and engine/ codes mapped in), error bodies, and the 200 bodies of /classify and OIP infer (stage 3 of a
 * batch, on the worker that ran it). The HTTP side of sending them (headers, MHD) is http.c's.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acmd.h"
#include "audio.h"
#include "image.h"
#include "jsonw.h"
#include "oip.h"

/* ---- errors --------------------------------------------------------------------------------------------------------- */

static const struct {
    int status;
    const char *reason;
} respond__errors[ACMD_E_COUNT] = {
#define X(id, status, reason) [ACMD_E_##id] = {status, reason},
    ACMD_ERRORS(X)
#undef X
};

int acmd_err_status(acmd_err e) { return e < ACMD_E_COUNT ? respond__errors[e].status : 500; }
const char *acmd_err_reason(acmd_err e) { return e < ACMD_E_COUNT ? respond__errors[e].reason : NULL; }

acmd_err acmd_err_of(acmd_err_domain d, int rc) {
    switch (d) {
    case ACMD_FROM_IMAGE: return rc == ACM_IMAGE_ENOMEM ? ACMD_E_INTERNAL : ACMD_E_BAD_REQUEST;
    case ACMD_FROM_OIP: return rc == ACM_OIP_ENOMEM ? ACMD_E_INTERNAL : ACMD_E_BAD_REQUEST;
    case ACMD_FROM_AUDIO: return rc == ACM_AUDIO_ENOMEM || rc == ACM_AUDIO_ESPACE ? ACMD_E_INTERNAL : ACMD_E_BAD_REQUEST;
    case ACMD_FROM_ENGINE: return ACMD_E_INTERNAL;
    }
    return ACMD_E_INTERNAL;
}

void acmd_req_fail(acmd_req *r, acmd_err e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->resp.err, sizeof r->resp.err, fmt, ap);
    va_end(ap);
    const size_t cap = strlen(r->resp.err) * 6 + 32;
    r->resp.body = acmd_arena_alloc(&r->arena, cap);
    r->resp.len = r->resp.body ? acm_error_body(r->resp.body, cap, r->resp.err) : 0;
    r->resp.type = "application/json";
    r->resp.status = acmd_err_status(e);
    if (r->state == ACMD_REQ_RECEIVING) r->resp.reason = acmd_err_reason(e); /* refused before queueing */
}

/* ---- 200 bodies ------------------------------------------------------------------------------------------------------ */

static json_t *respond__common(const acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    json_t *o = json_object();
    json_object_set_new(o, "budget_requested", acmd_budget_asked(r) ? json_real(r->sla.budget.requested) : json_null());
    char beta[32]; /* the float budget as the decimal it was asked as: 0.3, not 0.300000012 */
    acmd_fmt_float(beta, sizeof beta, (float)acmd_budget_applied(r));
    json_object_set_new(o, "budget_applied", json_real(strtod(beta, NULL)));
    json_object_set_new(o, "budget_realised", json_real(r->out.realised));
    json_object_set_new(o, "budget_source", json_string(acm_budget_source_name(r->sla.budget.source)));
    json_object_set_new(o, "budget_raised", json_boolean(r->sla.budget.raised));
    json_object_set_new(o, "policy", json_string(acm_policy_name(r->sla.policy.kind)));
    json_object_set_new(o, "flops", json_real(r->out.flops));
    json_object_set_new(o, "flops_dense", json_real(r->out.flops_dense));
    json_object_set_new(o, "timing", json_pack("{s:f, s:f, s:f, s:f}", "queue_ms", (double)(r->t.dispatch - r->t.queued) * 1e-6,
                                               "compute_ms", r->out.compute_s * 1e3, "engine_ms", r->out.engine_s * 1e3,
                                               "total_ms", (double)(now - r->t.arrive) * 1e-6));
    json_object_set_new(o, "batch_size", json_integer(r->out.batch_size));
    json_object_set_new(o, "deadline_ms", r->sla.has_deadline ? json_real(r->sla.sched.deadline_ms) : json_null());
    json_object_set_new(o, "predicted_ms", r->sla.predicted_ms >= 0 ? json_real(r->sla.predicted_ms) : json_null());
    json_object_set_new(o, "urgency", json_integer(r->sla.sched.urgency));
    json_object_set_new(o, "model", json_string(m->name));
    json_object_set_new(o, "model_version", json_string(m->version));
    return o;
}

static json_t *respond__kmap(const acmd_model *m, const uint8_t *kmap) {
    json_t *mods = json_array();
    for (int a = 0; a < m->num_acms; a++) {
        const acm_module_info *mi = acm_model_acm(m->m, a);
        json_t *k = json_array();
        for (int t = 0; t < m->T; t++) json_array_append_new(k, json_integer(kmap[(size_t)a * m->T + t]));
        json_array_append_new(mods, json_pack("{s:s, s:i, s:o}", "name", mi->name, "learners", mi->n, "k", k));
    }
    return json_pack("{s:i, s:i, s:o}", "tokens", m->T, "grid", m->cfg->grid, "modules", mods);
}

/* The /classify body, written directly (no jansson tree: this is on every request's path). Keys as docs/API.md. */
static char *respond__classify(acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    const float *lg = r->out.logits;
    int K = m->K, best = 0;
    double z = 0;
    for (int k = 1; k < K; k++)
        if (lg[k] > lg[best]) best = k;
    const double mx = lg[best];
    for (int k = 0; k < K; k++) z += exp((double)lg[k] - mx);
    acmd_jw w = {0};
    /* numbers a client set or can check exactly (budgets, deadline, FLOPs) in their shortest exact form (jsonw.h) */
    acmd_jw_raw(&w, "{\"budget_requested\":");
    if (acmd_budget_asked(r)) acmd_jw_num(&w, r->sla.budget.requested);
    else acmd_jw_raw(&w, "null");
    acmd_jw_raw(&w, ",\"budget_applied\":");
    acmd_jw_numf(&w, (float)acmd_budget_applied(r));
    acmd_jw_raw(&w, ",\"budget_realised\":%.9g", r->out.realised);
    acmd_jw_kstr(&w, "budget_source", acm_budget_source_name(r->sla.budget.source));
    acmd_jw_raw(&w, ",\"budget_raised\":%s", r->sla.budget.raised ? "true" : "false");
    acmd_jw_kstr(&w, "policy", acm_policy_name(r->sla.policy.kind));
    acmd_jw_raw(&w, ",\"flops\":");
    acmd_jw_num(&w, r->out.flops);
    acmd_jw_raw(&w, ",\"flops_dense\":");
    acmd_jw_num(&w, r->out.flops_dense);
    acmd_jw_raw(&w, ",\"timing\":{\"queue_ms\":%.6f,\"compute_ms\":%.6f,\"engine_ms\":%.6f,\"total_ms\":%.6f}",
                (double)(r->t.dispatch - r->t.queued) * 1e-6, (double)(now - r->t.dispatch) * 1e-6,
                r->out.engine_s * 1e3, (double)(now - r->t.arrive) * 1e-6);
    acmd_jw_raw(&w, ",\"batch_size\":%d", r->out.batch_size);
    acmd_jw_raw(&w, ",\"deadline_ms\":");
    if (r->sla.has_deadline) acmd_jw_num(&w, r->sla.sched.deadline_ms);
    else acmd_jw_raw(&w, "null");
    if (r->sla.predicted_ms >= 0) acmd_jw_raw(&w, ",\"predicted_ms\":%.6f", r->sla.predicted_ms);
    else acmd_jw_raw(&w, ",\"predicted_ms\":null");
    acmd_jw_raw(&w, ",\"urgency\":%d", r->sla.sched.urgency);
    acmd_jw_kstr(&w, "model", m->name);
    acmd_jw_kstr(&w, "model_version", m->version);
    acmd_jw_kstr(&w, "label", m->cfg->labels[best]);
    acmd_jw_raw(&w, ",\"index\":%d,\"confidence\":%.9g,\"top_k\":[", best, 1.0 / z);
    int order[1024], n = K < 1024 ? K : 1024;
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 0; i < n && i < 5; i++) { /* partial selection sort: the 5 largest */
        int b = i;
        for (int k = i + 1; k < n; k++)
            if (lg[order[k]] > lg[order[b]]) b = k;
        int t = order[i];
        order[i] = order[b], order[b] = t;
        acmd_jw_raw(&w, "%s{", i ? "," : "");
        acmd_jw_kstr(&w, "label", m->cfg->labels[order[i]]);
        acmd_jw_raw(&w, ",\"index\":%d,\"confidence\":%.9g}", order[i], exp((double)lg[order[i]] - mx) / z);
    }
    acmd_jw_raw(&w, "]");
    acmd_jw_kstr(&w, "id", r->out.id);
    if (r->out.explain && r->out.kmap) {
        json_t *cm = respond__kmap(m, r->out.kmap);
        char *s = json_dumps(cm, JSON_COMPACT);
        json_decref(cm);
        if (s) acmd_jw_raw(&w, ",\"compute_map\":%s", s);
        else w.oom = 1;
        free(s);
    }
    acmd_jw_raw(&w, "}");
    return acmd_jw_finish(&w, NULL);
}

static char *respond__infer(acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    json_t *par = respond__common(r, now);
    if (r->out.explain && r->out.kmap) {
        json_t *maps = json_array();
        for (int b = 0; b < r->in.n_items; b++)
            json_array_append_new(maps, respond__kmap(m, r->out.kmap + (size_t)b * (m->num_acms ? m->num_acms : 1) * m->T));
        json_object_set_new(par, "compute_maps", maps);
    }
    const char **labels = acmd_arena_alloc(&r->arena, sizeof(char *) * (size_t)r->in.n_items);
    if (!labels) {
        json_decref(par);
        return NULL;
    }
    for (int b = 0; b < r->in.n_items; b++) {
        const float *lg = r->out.logits + (size_t)b * m->K;
        int best = 0;
        for (int k = 1; k < m->K; k++)
            if (lg[k] > lg[best]) best = k;
        labels[b] = m->cfg->labels[best];
    }
    size_t jl, total;
    char *body = acm_oip_response_bin(m->name, m->version, r->out.id, par, r->out.want_logits ? r->out.logits : NULL,
                                      r->in.n_items, m->K, r->out.want_label ? labels : NULL, r->out.bin_logits,
                                      r->out.bin_label, &jl, &total);
    if (body) r->resp.len = total, r->resp.json_len = jl;
    return body;
}

/* The /transcribe body: the common budget, FLOPs and timing keys, then the transcript (docs/API.md). */
static char *respond__transcribe(acmd_req *r, uint64_t now) {
    json_t *o = respond__common(r, now);
    json_object_set_new(o, "text", json_string(r->out.text ? r->out.text : ""));
    json_t *words = json_array();
    for (int i = 0; i < r->out.n_words; i++) {
        const acm_ctc_word *wd = &r->out.words[i];
        json_array_append_new(words, json_pack("{s:s#, s:f, s:f, s:f}", "word", r->out.text + wd->offset, (int)wd->len,
                                               "start", wd->start_s, "end", wd->end_s, "confidence", wd->confidence));
    }
    json_object_set_new(o, "words", words);
    json_object_set_new(o, "audio_seconds", json_real(r->out.audio_s));
    json_object_set_new(o, "tokens", json_integer(r->out.tokens));
    /* compute time (decode, engine, bodies) per second of audio: below 1 is faster than real time */
    json_object_set_new(o, "real_time_factor", json_real(r->out.audio_s > 0 ? r->out.compute_s / r->out.audio_s : 0));
    json_object_set_new(o, "id", json_string(r->out.id));
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return body;
}

/* OIP infer on a speech model: the common parameters plus the transcription's, outputs logits [T, K] and text [1]. */
static char *respond__infer_audio(acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    json_t *par = respond__common(r, now);
    json_object_set_new(par, "audio_seconds", json_real(r->out.audio_s));
    json_object_set_new(par, "tokens", json_integer(r->out.tokens));
    json_object_set_new(par, "real_time_factor", json_real(r->out.audio_s > 0 ? r->out.compute_s / r->out.audio_s : 0));
    json_t *words = json_array();
    for (int i = 0; i < r->out.n_words; i++) {
        const acm_ctc_word *wd = &r->out.words[i];
        json_array_append_new(words, json_pack("{s:s#, s:f, s:f, s:f}", "word", r->out.text + wd->offset, (int)wd->len,
                                               "start", wd->start_s, "end", wd->end_s, "confidence", wd->confidence));
    }
    json_object_set_new(par, "words", words);
    size_t jl, total;
    static const float none[1] = {0};
    const float *lg = r->out.want_logits ? (r->out.logits ? r->out.logits : none) : NULL;
    char *body = acm_oip_response_asr(m->name, m->version, r->out.id, par, lg, (int)r->out.tokens, m->K,
                                      r->out.want_label ? (r->out.text ? r->out.text : "") : NULL, r->out.bin_logits,
                                      r->out.bin_label, &jl, &total);
    if (body) r->resp.len = total, r->resp.json_len = jl;
    return body;
}

int acmd_respond_body(acmd_req *r, uint64_t now) {
    const int binary = r->route == ACMD_ROUTE_INFER && (r->out.bin_logits || r->out.bin_label);
    r->resp.json_len = 0;
    char *body = acmd_arena_adopt(&r->arena, r->route == ACMD_ROUTE_CLASSIFY     ? respond__classify(r, now)
                                             : r->route == ACMD_ROUTE_TRANSCRIBE ? respond__transcribe(r, now)
                                             : r->model->speech                  ? respond__infer_audio(r, now)
                                                                                 : respond__infer(r, now));
    if (!body) return -1;
    r->resp.body = body;
    r->resp.status = 200;
    if (binary) { /* resp.len and resp.json_len: the body writer's */
        r->resp.type = "application/octet-stream";
    } else {
        r->resp.len = strlen(body), r->resp.type = "application/json", r->resp.json_len = 0;
    }
    return 0;
}
