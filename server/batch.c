/*
 * batch.c — a batch on a worker thread, in three stages: decode every request's body (decode.c), run the engine in
 * calls of at most max_batch items, items of several requests side by side (non-finite logits are a 500), and write
 * the response bodies (respond.c). The batch's engine time and shape go back, on its first request, as the cost
 * model's sample. A worker owns the batch's requests until it posts them back (workers.c).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acmd.h"

typedef struct {
    acmd_req *r;
    int item;
} batch__slot;

/* Output buffers of the requests that decoded: logits, and the compute map when asked. */
static void batch__outputs(const acmd_model *m, acmd_req *r) {
    const int A = m->num_acms ? m->num_acms : 1;
    r->out.logits = acmd_arena_alloc(&r->arena, sizeof(float) * (size_t)r->in.n_items * m->K);
    r->out.kmap = r->out.explain && m->num_acms ? acmd_arena_alloc(&r->arena, (size_t)r->in.n_items * A * m->T) : NULL;
    if (!r->out.logits || (r->out.explain && m->num_acms && !r->out.kmap)) acmd_req_fail(r, ACMD_E_INTERNAL, "out of memory");
}

/* Images: engine calls of at most max_batch items, items of several requests side by side. */
static void batch__images(acmd_worker *w, acmd_model *m, acmd_req *batch, double *b_items, double *b_flops,
                          uint64_t *engine_ns) {
    const int mi = m->idx, MB = m->max_batch, A = m->num_acms ? m->num_acms : 1;
    batch__slot slots[1024];
    acmd_req *r = batch;
    int item = 0;
    for (;;) {
        int n = 0;
        while (r && n < MB && n < 1024) {
            if (r->resp.status || item >= r->in.n_items) {
                r = r->next, item = 0;
                continue;
            }
            acm_item *it = &w->eng[mi].items[n];
            it->pixels = r->in.data + (size_t)item * m->C * m->S * m->S;
            it->policy = r->sla.policy;
            it->force_k = NULL;
            w->eng[mi].res[n] = (acm_result){.logits = w->eng[mi].logits + (size_t)n * m->K,
                                             .kmap = r->out.kmap ? w->eng[mi].kmap + (size_t)n * A * m->T : NULL};
            slots[n++] = (batch__slot){r, item++};
        }
        if (!n) break;
        char e[256];
        const uint64_t te = acmd_now_ns();
        int rc = acm_worker_run(w->eng[mi].w, w->eng[mi].items, w->eng[mi].res, n, e, sizeof e);
        *engine_ns += acmd_now_ns() - te;
        for (int i = 0; i < n; i++) {
            acmd_req *q = slots[i].r;
            if (rc && rc != ACM_ENUMERIC) { /* ACM_ENUMERIC: only the items with NaN logits failed (checked below) */
                if (!q->resp.status) acmd_req_fail(q, acmd_err_of(ACMD_FROM_ENGINE, rc), "engine: %s", e);
                continue;
            }
            const acm_result *res = &w->eng[mi].res[i];
            *b_items += 1, *b_flops += res->flops;
            if (q->resp.status) continue;
            int finite = 1;
            for (int k = 0; k < m->K; k++) finite &= isfinite(res->logits[k]) != 0;
            if (!finite) { /* JSON cannot carry NaN or Inf, and a label picked among them means nothing */
                acmd_req_fail(q, ACMD_E_INTERNAL, "engine: item %d gave non-finite logits (NaN or Inf: the computation "
                                                  "overflowed float; inputs far outside the model's range do that)",
                              slots[i].item);
                continue;
            }
            memcpy(q->out.logits + (size_t)slots[i].item * m->K, res->logits, sizeof(float) * m->K);
            if (q->out.kmap) memcpy(q->out.kmap + (size_t)slots[i].item * A * m->T, res->kmap, (size_t)A * m->T);
            q->out.flops += res->flops;
            q->out.flops_dense += res->flops_dense;
            q->out.realised += res->budget / q->in.n_items;
            if (q->out.batch_size < n) q->out.batch_size = n;
        }
        slots[0].r->out.batch_first = 1;
    }
}

/* Appends a chunk's rows of logits to a transcription's [tokens, K] (grown in its arena); 0 or -1 out of memory. */
static int batch__append(acmd_req *q, size_t *cap, const float *lg, int rows, int K) {
    const size_t need = (size_t)(q->out.tokens + rows) * K;
    if (need > *cap) {
        size_t c = *cap ? *cap * 2 : (size_t)K * 256;
        while (c < need) c *= 2;
        float *p = acmd_arena_realloc(&q->arena, q->out.logits, *cap * sizeof(float), c * sizeof(float));
        if (!p) return -1;
        q->out.logits = p, *cap = c;
    }
    memcpy(q->out.logits + (size_t)q->out.tokens * K, lg, sizeof(float) * (size_t)rows * K);
    q->out.tokens += rows;
    return 0;
}

/* The transcript of a finished stream (its greedy CTC decoder) copied into the request's arena. */
static int batch__transcript(acmd_req *q, acm_stream *st) {
    acm_ctc_result cr;
    acm_ctc_result_get(acm_stream_decoder(st), ACM_CTC_FINAL, &cr);
    int len = cr.len;
    while (len > 0 && cr.text[len - 1] == ' ') len--; /* greedy text may end with the space after its last word */
    q->out.text = acmd_arena_alloc(&q->arena, (size_t)len + 1);
    q->out.words = acmd_arena_alloc(&q->arena, sizeof(acm_ctc_word) * (size_t)(cr.n_words ? cr.n_words : 1));
    if (!q->out.text || !q->out.words) return -1;
    memcpy(q->out.text, cr.text, (size_t)len);
    q->out.text[len] = 0;
    memcpy(q->out.words, cr.words, sizeof(acm_ctc_word) * (size_t)cr.n_words);
    q->out.n_words = cr.n_words;
    return 0;
}

/* Transcriptions, each request one stream fed its samples chunk by chunk; the ready chunks of up to max_batch
 * requests run as one engine call (acm_worker_run_streams), so that the cost model sees chunks (its items), tokens and
 * FLOPs as it sees images. A body decoded whole runs on a stream of this worker (reset first), all of it at once; a
 * body decoded as it arrives runs on its own stream the samples of the job in hand, and the stream carries over to its
 * next job (the last chunk and the text come with the last job). The text is the stream's own CTC decoder's. */
static void batch__audio(acmd_worker *w, acmd_model *m, acmd_req *batch, double *b_items, double *b_flops,
                         uint64_t *engine_ns) {
    enum { G = 1024 }; /* --stream-batch and max_batch at most: ~90 KB of the worker's stack */
    const int mi = m->idx, K = m->K, T = m->T, MB = m->max_batch < G ? m->max_batch : G;
    acmd_req *r = batch;
    while (r) {
        acmd_req *g[G];
        acm_stream *sts[G];
        const float *x[G];
        size_t pos[G], len[G];
        int n = 0, fin[G], last[G];
        for (; r && n < MB; r = r->next) {
            if (r->resp.status) continue;
            g[n] = r, pos[n] = 0, fin[n] = 0;
            if (r->au.on) {
                sts[n] = r->au.st, x[n] = r->au.job, len[n] = r->au.n_job, last[n] = r->au.job_last;
            } else {
                sts[n] = w->eng[mi].streams[n], x[n] = r->in.data, len[n] = r->in.n_samples, last[n] = 1;
                acm_stream_reset(sts[n]);
            }
            n++;
        }
        for (;;) {
            acm_stream *run[G];
            acm_policy pol[G];
            int who[G], k = 0;
            char e[256];
            for (int i = 0; i < n; i++) {
                acmd_req *q = g[i];
                acm_stream *st = sts[i];
                if (q->resp.status) continue;
                while (!acm_stream_ready(st) && pos[i] < len[i]) {
                    const int64_t took = acm_stream_feed(st, x[i] + pos[i], len[i] - pos[i], e, sizeof e);
                    if (took <= 0) break; /* a non-finite sample cannot come out of the decoders; stop rather than spin */
                    pos[i] += (size_t)took;
                }
                if (!acm_stream_ready(st) && last[i] && !fin[i]) acm_stream_finish(st), fin[i] = 1;
                if (!acm_stream_ready(st)) continue; /* done (or, mid-stream, waiting for the next job's samples) */
                run[k] = st, pol[k] = q->sla.policy, who[k] = i;
                w->eng[mi].res[k] = (acm_result){.logits = w->eng[mi].logits + (size_t)k * T * K};
                k++;
            }
            if (!k) break;
            const uint64_t te = acmd_now_ns();
            const int rc = acm_worker_run_streams(w->eng[mi].w, run, pol, w->eng[mi].res, k, e, sizeof e);
            *engine_ns += acmd_now_ns() - te;
            for (int j = 0; j < k; j++) {
                acmd_req *q = g[who[j]];
                const acm_result *res = &w->eng[mi].res[j];
                if (rc && rc != ACM_ENUMERIC) {
                    acmd_req_fail(q, acmd_err_of(ACMD_FROM_ENGINE, rc), "engine: %s", e);
                    continue;
                }
                *b_items += 1, *b_flops += res->flops;
                int finite = 1;
                for (size_t v = 0; v < (size_t)res->tokens * K; v++) finite &= isfinite(res->logits[v]) != 0;
                if (!finite) {
                    acmd_req_fail(q, ACMD_E_INTERNAL, "engine: non-finite logits at token %lld (NaN or Inf: the computation "
                                                      "overflowed float)", (long long)q->out.tokens);
                    continue;
                }
                if (batch__append(q, &q->au.logits_cap, res->logits, res->tokens, K)) {
                    acmd_req_fail(q, ACMD_E_INTERNAL, "out of memory");
                    continue;
                }
                q->out.flops += res->flops;
                q->out.flops_dense += res->flops_dense;
                q->out.realised += res->budget * res->tokens; /* token-weighted; divided below */
                if (q->out.batch_size < k) q->out.batch_size = k;
            }
            if (!g[who[0]]->out.batch_first) g[who[0]]->out.batch_first = 1;
        }
        for (int i = 0; i < n; i++) {
            acmd_req *q = g[i];
            if (q->au.on) free(q->au.job), q->au.job = NULL, q->au.n_job = 0, q->au.jobs++;
            if (q->resp.status || !last[i]) continue;
            if (q->au.on) q->out.audio_s = (double)q->au.samples / ACM_AUDIO_RATE;
            q->out.realised = q->out.tokens ? q->out.realised / (double)q->out.tokens : 0;
            if (batch__transcript(q, sts[i])) acmd_req_fail(q, ACMD_E_INTERNAL, "out of memory");
        }
    }
}

void acmd_batch_run(acmd_worker *w, acmd_model *m, acmd_req *batch) {
    const uint64_t t0 = acmd_now_ns();
    /* stage 1: decode. The queue time ends here, when a worker takes the batch up (the hand-over's wake-up included). */
    for (acmd_req *r = batch; r; r = r->next) {
        r->t.dispatch = t0;
        r->resp.status = 0;
        if (!r->au.on) acmd_decode(w, r); /* a streamed body was decoded as it arrived (decode.c) */
        if (!r->resp.status && !m->speech) batch__outputs(m, r);
    }
    /* stage 2: engine calls of at most max_batch items, items of several requests side by side */
    double b_items = 0, b_flops = 0; /* the cost model's sample: what the engine ran, and its time */
    uint64_t engine_ns = 0;
    if (m->speech) batch__audio(w, m, batch, &b_items, &b_flops, &engine_ns);
    else batch__images(w, m, batch, &b_items, &b_flops, &engine_ns);
    /* the decoded inputs are spent */
    for (acmd_req *q = batch; q; q = q->next) {
        acmd_arena_release(&q->arena, q->in.data);
        q->in.data = NULL;
        acmd_mem_add(w->srv, -(long long)q->in.mem);
        q->in.mem = 0;
    }
    /* stage 3: bodies. compute time = the whole batch: decode, engine, bodies (the body's own timing says "so far") */
    const uint64_t now = acmd_now_ns();
    for (acmd_req *q = batch; q; q = q->next) { /* a streamed transcription's: the sums over its jobs */
        q->out.compute_s = q->au.compute_s + (double)(now - t0) * 1e-9;
        q->out.engine_s = q->au.engine_s + (double)engine_ns * 1e-9;
        if (q->resp.status || (q->au.on && !q->au.job_last)) continue;
        if (acmd_respond_body(q, now)) acmd_req_fail(q, ACMD_E_INTERNAL, "out of memory");
    }
    const uint64_t done = acmd_now_ns();
    for (acmd_req *q = batch; q; q = q->next) {
        q->out.compute_s = q->au.compute_s + (double)(done - t0) * 1e-9, q->t.computed = done;
        q->au.compute_s = q->out.compute_s, q->au.engine_s = q->out.engine_s;
    }
    batch->out.batch_lead = 1, batch->out.b_items = b_items, batch->out.b_flops = b_flops;
    batch->out.b_secs = (double)engine_ns * 1e-9;
}
