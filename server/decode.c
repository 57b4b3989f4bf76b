/*
 * decode.c — stage 1 of a batch (worker thread): a request's body to the input the engine runs. /classify: one
 * image (PNG, JPEG, PNM) made the model's input (image.h); OIP infer: the JSON or binary tensors (oip.h), `image`
 * UINT8 [B,H,W,C] or `pixel_values` FP32 [B,C,S,S], and the outputs it names. The decoded input lives in the
 * request's arena and counts against --max-buffered-bytes until the engine has run it (batch.c releases it).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "acmd.h"
#include "audio.h"
#include "image.h"
#include "oip.h"

/* The OIP inputs a worker runs, in order of preference (the first present is taken). */
static const char *const decode__oip_inputs[] = {"image", "pixel_values"};

int64_t acmd_decode_oip_items(const acm_oip_peek *oip) {
    for (size_t i = 0; i < sizeof decode__oip_inputs / sizeof *decode__oip_inputs; i++) {
        const int64_t n = acm_oip_peek_items(oip, decode__oip_inputs[i]);
        if (n > 0) return n < ACMD_MAX_ITEMS_PER_REQUEST ? n : ACMD_MAX_ITEMS_PER_REQUEST;
    }
    return 1;
}

static acm_image_params decode__img_params(const acmd_server *s, const acmd_model *m) {
    acm_image_params p = {.size = m->S, .channels = m->C, .max_pixels = s->cfg.max_image_pixels,
                          .max_decode_bytes = (size_t)s->cfg.max_decode_bytes}; /* background: black (image.h) */
    for (int c = 0; c < m->C && c < 3; c++) p.mean[c] = m->cfg->mean[c], p.std[c] = m->cfg->std[c];
    return p;
}

/* The decoded input of n image items, counted against --max-buffered-bytes until the engine has run them. */
static float *decode__pixels(acmd_server *s, acmd_req *r, size_t n) {
    const acmd_model *m = r->model;
    const size_t bytes = sizeof(float) * (size_t)m->C * m->S * m->S * n;
    r->in.kind = ACMD_INPUT_IMAGE;
    r->in.n_items = (int)n;
    r->in.data = acmd_arena_realloc(&r->arena, NULL, 0, bytes);
    if (r->in.data) r->in.mem = bytes, acmd_mem_add(s, (long long)bytes);
    return r->in.data;
}

static void decode__classify(acmd_worker *w, acmd_req *r) {
    const acm_image_params p = decode__img_params(w->srv, r->model);
    snprintf(r->out.id, sizeof r->out.id, "%s", r->http.id);
    if (!decode__pixels(w->srv, r, 1)) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        return;
    }
    char e[256];
    int rc = acm_image_to_tensor(r->in.data, r->body.data, r->body.len, &p, e, sizeof e);
    if (rc) acmd_req_fail(r, acmd_err_of(ACMD_FROM_IMAGE, rc), "image: %s", e);
}

static void decode__infer(acmd_worker *w, acmd_req *r) {
    const acmd_model *m = r->model;
    const size_t CSS = (size_t)m->C * m->S * m->S;
    acm_oip_request o;
    acm_oip_limits lim = {.max_elements = (size_t)w->srv->cfg.max_body_bytes};
    char e[512];
    int rc = acm_oip_parse_request_bin(&o, (const char *)r->body.data, r->body.len, r->body.json_len, &lim, e, sizeof e);
    if (rc) {
        acmd_req_fail(r, acmd_err_of(ACMD_FROM_OIP, rc), "%s", e);
        return;
    }
    snprintf(r->out.id, sizeof r->out.id, "%s", o.id[0] ? o.id : r->http.id);
    r->out.explain |= o.par.explain;
    r->out.want_logits = acm_oip_output_requested(&o, "logits"), r->out.want_label = acm_oip_output_requested(&o, "label");
    r->out.bin_logits = r->out.want_logits && acm_oip_output_binary(&o, "logits");
    r->out.bin_label = r->out.want_label && acm_oip_output_binary(&o, "label");
    for (int i = 0; i < o.n_outputs; i++)
        if (strcmp(o.outputs[i].name, "logits") && strcmp(o.outputs[i].name, "label")) {
            acmd_req_fail(r, ACMD_E_BAD_REQUEST, "outputs[%d]: unknown output \"%.64s\" (logits, label)", i, o.outputs[i].name);
            goto out;
        }
    const acm_oip_tensor *img = acm_oip_find_input(&o, decode__oip_inputs[0]),
                         *pv = acm_oip_find_input(&o, decode__oip_inputs[1]);
    if (!img && !pv) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST,
                      "expected an input named 'image' (UINT8 [B,H,W,C]) or 'pixel_values' (FP32 [B,%d,%d,%d])", m->C,
                      m->S, m->S);
        goto out;
    }
    const acm_oip_tensor *t = img ? img : pv;
    if (img && t->dtype != ACM_OIP_UINT8) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'image' must be UINT8, got %s", acm_oip_dtype_name(t->dtype));
        goto out;
    }
    if (!img && t->dtype != ACM_OIP_FP32) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'pixel_values' must be FP32, got %s", acm_oip_dtype_name(t->dtype));
        goto out;
    }
    int B = (int)(t->ndim >= 1 && t->shape[0] <= ACMD_MAX_ITEMS_PER_REQUEST ? t->shape[0] : -1);
    if (B < 1) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input '%s': the batch dimension must be in 1..%d", t->name,
                      ACMD_MAX_ITEMS_PER_REQUEST);
        goto out;
    }
    if (img) {
        if ((t->ndim != 4 && t->ndim != 3) || (t->ndim == 4 && (t->shape[3] < 1 || t->shape[3] > 4)) ||
            t->shape[1] < 1 || t->shape[2] < 1) {
            acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'image' must have shape [B,H,W,C] (C in 1..4) or [B,H,W]");
            goto out;
        }
    } else if (t->ndim != 4 || t->shape[1] != m->C || t->shape[2] != m->S || t->shape[3] != m->S) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'pixel_values' must have shape [B,%d,%d,%d]", m->C, m->S, m->S);
        goto out;
    }
    float *px = decode__pixels(w->srv, r, (size_t)B);
    const size_t per = t->count / (size_t)B;
    uint8_t *u8 = img ? acmd_arena_realloc(&r->arena, NULL, 0, per) : NULL; /* one item's bytes */
    if (!px || (img && !u8)) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        goto out;
    }
    const acm_image_params p = decode__img_params(w->srv, m);
    for (int b = 0; b < B; b++) {
        if (img) {
            for (size_t i = 0; i < per; i++) u8[i] = (uint8_t)t->data[(size_t)b * per + i];
            int H = (int)t->shape[1], W = (int)t->shape[2], C = t->ndim == 4 ? (int)t->shape[3] : 1;
            if ((rc = acm_image_u8_to_tensor(px + (size_t)b * CSS, u8, H, W, C, &p, e, sizeof e))) {
                acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'image'[%d]: %s", b, e);
                break;
            }
        } else {
            for (size_t i = 0; i < per; i++) px[(size_t)b * CSS + i] = (float)t->data[(size_t)b * per + i];
        }
    }
    acmd_arena_release(&r->arena, u8); /* scratch: dies now */
out:
    acm_oip_request_free(&o);
}

/* ---- audio (/transcribe) ---------------------------------------------------------------------------------------- */

/* The body's format: its Content-Type (checked at the headers: http.c), else sniffed from its first bytes. */
static int decode__audio_format(acm_audio_format *f, const acmd_req *r, char *e, size_t n) {
    if (r->body.type[0] && strncasecmp(r->body.type, "application/octet-stream", 24) != 0)
        return acm_audio_parse_type(f, r->body.type, e, n);
    return acm_audio_sniff(f, r->body.data, r->body.len, e, n);
}

int64_t acmd_decode_audio_items(const acmd_req *r) {
    const acmd_model *m = r->model;
    acm_audio_format f;
    char e[128];
    double samples = (double)r->body.len / 2; /* containers: 16-bit mono 16 kHz */
    if (r->route == ACMD_ROUTE_INFER) /* OIP: FP32 at 16 kHz, 4 bytes each in the binary section, ~10 as JSON text */
        samples = r->body.json_len < r->body.len ? (double)(r->body.len - r->body.json_len) / 4 : (double)r->body.len / 10;
    if (r->body.type[0] && !acm_audio_parse_type(&f, r->body.type, e, sizeof e) && f.rate > 0 && f.channels > 0)
        samples = (double)r->body.len / ((f.kind == ACM_AUDIO_F32LE ? 4.0 : 2.0) * f.channels) * ACM_AUDIO_RATE / f.rate;
    const double chunks = m->chunk_samples > 0 ? samples / (double)m->chunk_samples : 1;
    return chunks < 1 ? 1 : chunks > 1e9 ? (int64_t)1e9 : (int64_t)chunks + 1;
}

/* The whole body decoded, made mono and resampled to 16 kHz (proto/audio.h), into the request's arena. */
static void decode__audio(acmd_worker *w, acmd_req *r) {
    acmd_server *s = w->srv;
    snprintf(r->out.id, sizeof r->out.id, "%s", r->http.id);
    acm_audio_format f;
    char e[256];
    int rc = decode__audio_format(&f, r, e, sizeof e);
    if (rc) {
        acmd_req_fail(r, rc == ACM_AUDIO_EFORMAT ? ACMD_E_MEDIA_TYPE : ACMD_E_BAD_REQUEST, "%s (accepted: %s)", e,
                      ACMD_AUDIO_TYPES);
        return;
    }
    acm_audio_format sniffed;
    if (f.kind >= ACM_AUDIO_L16 && !acm_audio_sniff(&sniffed, r->body.data, r->body.len, e, sizeof e)) {
        /* a container sent as raw PCM would be transcribed as noise (its header read as samples): say so instead */
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "the body is a %s file but Content-Type \"%.100s\" declares raw PCM: send "
                      "it as %s or application/octet-stream", sniffed.kind == ACM_AUDIO_WAV ? "WAV" : sniffed.kind ==
                      ACM_AUDIO_FLAC ? "FLAC" : "Ogg", r->body.type, sniffed.kind == ACM_AUDIO_WAV ? "audio/wav" :
                      sniffed.kind == ACM_AUDIO_FLAC ? "audio/flac" : "audio/ogg");
        return;
    }
    acm_audio_params p = acm_audio_default_params();
    p.max_samples = (size_t)(s->cfg.max_audio_seconds * ACM_AUDIO_RATE);
    p.max_buffered = (size_t)s->cfg.max_body_bytes;
    float *pcm = NULL;
    size_t n = 0;
    rc = acm_audio_decode(&f, r->body.data, r->body.len, p, &pcm, &n, e, sizeof e);
    if (rc == ACM_AUDIO_ETOOLONG) {
        free(pcm);
        acmd_req_fail(r, ACMD_E_TOO_LARGE, "audio: longer than the limit of %g seconds (--max-audio-seconds)",
                      s->cfg.max_audio_seconds);
        return;
    }
    if (rc) {
        free(pcm);
        acmd_req_fail(r, acmd_err_of(ACMD_FROM_AUDIO, rc), "%s", e);
        return;
    }
    r->in.kind = ACMD_INPUT_AUDIO;
    r->in.n_items = 1;
    r->in.n_samples = n;
    r->in.data = acmd_arena_adopt(&r->arena, pcm);
    if (!r->in.data) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        return;
    }
    r->in.mem = n * sizeof(float);
    acmd_mem_add(s, (long long)r->in.mem);
    r->out.audio_s = (double)n / ACM_AUDIO_RATE;
}

/* OIP infer on a speech model: input `audio` FP32 [1, S] (or [S]) at parameter sample_rate (default 16000), resampled
 * to 16 kHz; outputs `text` BYTES [1] and `logits` FP32 [T, K], those the request names (none named: text only). */
static void decode__infer_audio(acmd_worker *w, acmd_req *r) {
    acmd_server *s = w->srv;
    acm_oip_request o;
    acm_oip_limits lim = {.max_elements = (size_t)s->cfg.max_body_bytes};
    char e[512];
    int rc = acm_oip_parse_request_bin(&o, (const char *)r->body.data, r->body.len, r->body.json_len, &lim, e, sizeof e);
    if (rc) {
        acmd_req_fail(r, acmd_err_of(ACMD_FROM_OIP, rc), "%s", e);
        return;
    }
    snprintf(r->out.id, sizeof r->out.id, "%s", o.id[0] ? o.id : r->http.id);
    r->out.want_logits = o.n_outputs > 0 && acm_oip_output_requested(&o, "logits");
    r->out.want_label = acm_oip_output_requested(&o, "text");
    r->out.bin_logits = r->out.want_logits && acm_oip_output_binary(&o, "logits");
    r->out.bin_label = r->out.want_label && acm_oip_output_binary(&o, "text");
    for (int i = 0; i < o.n_outputs; i++)
        if (strcmp(o.outputs[i].name, "logits") && strcmp(o.outputs[i].name, "text")) {
            acmd_req_fail(r, ACMD_E_BAD_REQUEST, "outputs[%d]: unknown output \"%.64s\" of a speech model (text, logits)",
                          i, o.outputs[i].name);
            goto out;
        }
    const acm_oip_tensor *t = acm_oip_find_input(&o, "audio");
    if (!t) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "expected an input named 'audio' (FP32 [1,S]) for speech model %s",
                      r->model->name);
        goto out;
    }
    if (t->dtype != ACM_OIP_FP32) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'audio' must be FP32, got %s", acm_oip_dtype_name(t->dtype));
        goto out;
    }
    if (!((t->ndim == 2 && t->shape[0] == 1) || t->ndim == 1) || t->count == 0) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "input 'audio' must have shape [1,S] with S >= 1 (one signal per request)");
        goto out;
    }
    const double rate = o.par.has_sample_rate ? o.par.sample_rate : ACM_AUDIO_RATE;
    if (rate != (double)(int)rate || rate < ACM_AUDIO_MIN_RATE || rate > ACM_AUDIO_MAX_RATE) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "parameter sample_rate %g is not an integer in [%d, %d]", rate,
                      ACM_AUDIO_MIN_RATE, ACM_AUDIO_MAX_RATE);
        goto out;
    }
    if ((double)t->count / rate > s->cfg.max_audio_seconds) {
        acmd_req_fail(r, ACMD_E_TOO_LARGE, "input 'audio': %.3f seconds, longer than the limit of %g seconds "
                                           "(--max-audio-seconds)", (double)t->count / rate, s->cfg.max_audio_seconds);
        goto out;
    }
    float *x = malloc(sizeof(float) * t->count);
    if (!x) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < t->count; i++) x[i] = (float)t->data[i];
    float *pcm = x;
    size_t n = t->count;
    if ((int)rate != ACM_AUDIO_RATE) {
        rc = acm_audio_resample(x, t->count, (int)rate, &pcm, &n, e, sizeof e);
        free(x);
        if (rc) {
            acmd_req_fail(r, acmd_err_of(ACMD_FROM_AUDIO, rc), "input 'audio': %s", e);
            goto out;
        }
    }
    r->in.kind = ACMD_INPUT_AUDIO;
    r->in.n_items = 1;
    r->in.n_samples = n;
    r->in.data = acmd_arena_adopt(&r->arena, pcm);
    if (!r->in.data) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
        goto out;
    }
    r->in.mem = n * sizeof(float);
    acmd_mem_add(s, (long long)r->in.mem);
    r->out.audio_s = (double)n / ACM_AUDIO_RATE;
out:
    acm_oip_request_free(&o);
}

void acmd_decode(acmd_worker *w, acmd_req *r) {
    if (r->route == ACMD_ROUTE_TRANSCRIBE) decode__audio(w, r);
    else if (r->model->speech) decode__infer_audio(w, r);
    else if (r->route == ACMD_ROUTE_CLASSIFY) decode__classify(w, r);
    else decode__infer(w, r);
}

/* ---- audio decoded as the body arrives (I/O thread) ---------------------------------------------------------------
 * WAV and raw PCM are decoded piece by piece as MHD hands the body over (proto/audio's incremental decoder: the same
 * samples however the bytes are split), so that a worker can run the chunks that are ready while the upload goes on.
 * Only decoding and resampling happen here; feeding the engine stream (log-mel) and running it are a worker's
 * (batch.c). The limits are checked as the bytes come: the body's size, the audio's length, and the rate and channels
 * of a WAV header as soon as it is complete. */

int acmd_decode_streams(const acmd_req *r) {
    acm_audio_format f;
    char e[128];
    return r->route == ACMD_ROUTE_TRANSCRIBE && r->model && r->model->speech && r->body.type[0] &&
           acm_audio_parse_type(&f, r->body.type, e, sizeof e) == 0 && f.kind != ACM_AUDIO_FLAC && f.kind != ACM_AUDIO_OGG;
}

static acm_audio_params decode__audio_params(const acmd_server *s) {
    acm_audio_params p = acm_audio_default_params();
    p.max_samples = (size_t)(s->cfg.max_audio_seconds * ACM_AUDIO_RATE);
    p.max_buffered = (size_t)s->cfg.max_body_bytes;
    return p;
}

/* Records why the body is refused (the answer once the request is free again) and stops decoding it. */
static int decode__stream_fail(acmd_req *r, acmd_err err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int decode__stream_fail(acmd_req *r, acmd_err err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->au.fail_msg, sizeof r->au.fail_msg, fmt, ap);
    va_end(ap);
    r->au.failed = 1, r->au.fail_err = err;
    return -1;
}

static int decode__stream_code(acmd_server *s, acmd_req *r, int rc, const char *e) {
    if (rc == ACM_AUDIO_ETOOLONG)
        return decode__stream_fail(r, ACMD_E_TOO_LARGE, "audio: longer than the limit of %g seconds (--max-audio-seconds)",
                                   s->cfg.max_audio_seconds);
    return decode__stream_fail(r, acmd_err_of(ACMD_FROM_AUDIO, rc), "%s", e);
}

int acmd_decode_stream_begin(acmd_server *s, acmd_req *r) {
    acm_audio_format f;
    char e[256];
    int rc = acm_audio_parse_type(&f, r->body.type, e, sizeof e);
    if (!rc) {
        r->au.dec = acm_audio_stream_create(&f, decode__audio_params(s), e, sizeof e);
        rc = r->au.dec ? 0 : ACM_AUDIO_EINVAL;
    }
    if (rc) {
        acmd_req_fail(r, acmd_err_of(ACMD_FROM_AUDIO, rc), "Content-Type \"%.100s\": %s", r->body.type, e);
        return -1;
    }
    r->au.st = acmd_transcribe_stream_new(r->model->m, e, sizeof e);
    if (!r->au.st) {
        acmd_req_fail(r, ACMD_E_INTERNAL, "%s", e);
        return -1;
    }
    r->au.on = 1, r->au.raw = f.kind >= ACM_AUDIO_L16;
    r->au.mem = acm_stream_state_bytes(r->model->m);
    acmd_mem_add(s, (long long)r->au.mem);
    snprintf(r->out.id, sizeof r->out.id, "%s", r->http.id);
    return 0;
}

/* Grows au.pend to hold `more` samples past n_pend; 0 or -1 out of memory. */
static int decode__pend_room(acmd_req *r, size_t more) {
    if (r->au.n_pend + more <= r->au.cap_pend) return 0;
    size_t cap = r->au.cap_pend ? r->au.cap_pend : 4096;
    while (cap < r->au.n_pend + more) cap *= 2;
    float *p = realloc(r->au.pend, cap * sizeof *p);
    if (!p) return -1;
    r->au.pend = p, r->au.cap_pend = cap;
    return 0;
}

int acmd_decode_stream_push(acmd_server *s, acmd_req *r, const void *bytes, size_t n) {
    if (r->au.failed) return -1;
    if (r->http.bytes_in > (size_t)s->cfg.max_body_bytes)
        return decode__stream_fail(r, ACMD_E_TOO_LARGE, "the body is over the limit of %ld bytes", s->cfg.max_body_bytes);
    char e[256];
    if (r->au.raw && r->au.n_head < sizeof r->au.head) {
        /* raw PCM: a container sent as such would be transcribed as noise (its header read as samples): say so */
        const size_t k = n < sizeof r->au.head - r->au.n_head ? n : sizeof r->au.head - r->au.n_head;
        memcpy(r->au.head + r->au.n_head, bytes, k);
        r->au.n_head += k;
        acm_audio_format sn;
        if (r->au.n_head == sizeof r->au.head && !acm_audio_sniff(&sn, r->au.head, r->au.n_head, e, sizeof e))
            return decode__stream_fail(r, ACMD_E_BAD_REQUEST, "the body is a %s file but Content-Type \"%.100s\" declares "
                                       "raw PCM: send it as %s or application/octet-stream",
                                       sn.kind == ACM_AUDIO_WAV ? "WAV" : sn.kind == ACM_AUDIO_FLAC ? "FLAC" : "Ogg",
                                       r->body.type, sn.kind == ACM_AUDIO_WAV ? "audio/wav" :
                                       sn.kind == ACM_AUDIO_FLAC ? "audio/flac" : "audio/ogg");
    }
    if (decode__pend_room(r, acm_audio_stream_max_out(r->au.dec, n)))
        return decode__stream_fail(r, ACMD_E_INTERNAL, "out of memory");
    size_t got = 0;
    const int rc = acm_audio_stream_push(r->au.dec, bytes, n, r->au.pend + r->au.n_pend, r->au.cap_pend - r->au.n_pend,
                                         &got, e, sizeof e);
    if (rc) return decode__stream_code(s, r, rc, e);
    r->au.n_pend += got, r->au.samples += got;
    return 0;
}

int acmd_decode_stream_end(acmd_server *s, acmd_req *r) {
    if (r->au.failed) return -1;
    char e[256];
    if (decode__pend_room(r, acm_audio_stream_max_finish(r->au.dec)))
        return decode__stream_fail(r, ACMD_E_INTERNAL, "out of memory");
    size_t got = 0;
    const int rc = acm_audio_stream_finish(r->au.dec, r->au.pend + r->au.n_pend, r->au.cap_pend - r->au.n_pend, &got, e,
                                           sizeof e);
    if (rc) return decode__stream_code(s, r, rc, e);
    r->au.n_pend += got, r->au.samples += got;
    r->au.last = 1;
    return 0;
}

acm_stream *acmd_transcribe_stream_new(const acm_model *m, char *err, size_t errlen) {
    acm_ctc_params p = acm_ctc_default_params();
    p.pause_break_s = ACMD_ENDPOINT_S;
    return acm_stream_new_ctc(m, &p, err, errlen);
}

void acmd_decode_stream_hand(acmd_req *r) {
    /* at most ACMD_JOB_CHUNKS chunks a job: a file that came at once (or a worker that fell behind) goes back to the
     * queue between jobs, so that other requests, images too, take turns with it on the workers. A WebSocket stream
     * with endpointing takes one chunk a job (au.job_chunks): a segment ends after the first chunk whose trailing
     * blank reaches endpoint_ms, the same chunk whether the audio came paced or all at once */
    const int chunks = r->au.job_chunks > 0 ? r->au.job_chunks : ACMD_JOB_CHUNKS;
    const size_t cap = (size_t)chunks * (size_t)r->model->chunk_samples;
    float *rest = NULL;
    const size_t n_rest = r->au.n_pend > cap ? r->au.n_pend - cap : 0;
    if (n_rest && (rest = malloc(n_rest * sizeof *rest))) memcpy(rest, r->au.pend + cap, n_rest * sizeof *rest);
    r->au.job = r->au.pend, r->au.n_job = rest ? cap : r->au.n_pend; /* no memory for the split: all of it */
    r->au.pend = rest, r->au.n_pend = r->au.cap_pend = rest ? n_rest : 0;
    r->au.job_last = r->au.last && !rest;
}

void acmd_decode_stream_free(acmd_server *s, acmd_req *r) {
    if (!r->au.on) return;
    acm_audio_stream_free(r->au.dec);
    acm_stream_free(r->au.st);
    free(r->au.pend), free(r->au.job);
    acmd_mem_add(s, -(long long)r->au.mem);
    memset(&r->au, 0, sizeof r->au);
}
