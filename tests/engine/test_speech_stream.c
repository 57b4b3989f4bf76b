/*
 * test_speech_stream.c — acm_stream (engine/speech.c) against the batch forward: the golden audio fed in pieces of
 * 1 sample, 10 ms, 333 ms, all at once and random sizes gives, chunk after chunk, logits within 1e-4 (relative to
 * max(1, |logit|)) of the whole-item forward, identical k maps, the same tokens, FLOPs and learner budget, and the
 * stream's own greedy CTC text, append-only chunk after chunk, equal to the whole logits' decoded at once. Several
 * streams fed at different paces run batched, each under its own policy, with the same results. A model with
 * budget-conditioned (FiLM) gates and a left context shorter than a chunk (the ring keeps the chunk's last L tokens):
 * batch == REFERENCE oracle == stream, and a batch mixing budgets == each item alone (each chunk's gates see its own
 * item's beta). Misuse is refused.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "bench/speech_random.h"
#include "tests/engine/speech_golden.h"
#include "vit.h"

#define MAXT 64
#define MAXK 32
#define MAXA 16

typedef struct {
    float logits[MAXT * MAXK];
    uint8_t kmap[MAXA * MAXT];
    int tokens;
    double flops, flops_dense, learner; /* learner: budget x tokens, summed over chunks */
} collected;

/* Appends one chunk's result. */
static void collect(collected *c, const acm_result *r, const float *lg, const uint8_t *km, int K, int A) {
    cr_assert_leq(c->tokens + r->tokens, MAXT);
    memcpy(c->logits + c->tokens * K, lg, sizeof(float) * (size_t)(r->tokens * K));
    /* per chunk kmap [A, Tc] into the item's [A, MAXT] (stride MAXT) */
    for (int a = 0; a < A; a++) memcpy(c->kmap + a * MAXT + c->tokens, km + a * r->tokens, (size_t)r->tokens);
    c->tokens += r->tokens;
    c->flops += r->flops;
    c->flops_dense += r->flops_dense;
    c->learner += r->budget * r->tokens;
}

/* Compares a stream's collected chunks with the batch result of the same item. */
static void same_as_batch(const collected *s, const acm_result *b, const float *blog, const uint8_t *bk, int K, int A,
                          const char *what) {
    cr_assert_eq(s->tokens, b->tokens, "%s: %d tokens streamed, %d in batch", what, s->tokens, b->tokens);
    double maxd = 0, maxref = 1;
    for (int i = 0; i < b->tokens * K; i++) {
        maxref = fmax(maxref, fabs(blog[i]));
        maxd = fmax(maxd, fabs((double)blog[i] - s->logits[i]));
    }
    cr_expect_leq(maxd / maxref, 1e-4, "%s: logits max|Δ|/max(1,|ref|) = %.3g", what, maxd / maxref);
    for (int a = 0; a < A; a++)
        for (int t = 0; t < b->tokens; t++)
            cr_assert_eq(s->kmap[a * MAXT + t], bk[a * b->tokens + t], "%s: k[acm %d][token %d] = %d, batch %d", what,
                         a, t, s->kmap[a * MAXT + t], bk[a * b->tokens + t]);
    cr_expect(fabs(s->flops - b->flops) <= 1e-9 * fmax(1, b->flops), "%s: flops %.1f vs %.1f", what, s->flops,
              b->flops);
    cr_expect(fabs(s->flops_dense - b->flops_dense) <= 1e-9 * fmax(1, b->flops_dense), "%s: dense %.1f vs %.1f", what,
              s->flops_dense, b->flops_dense);
    if (b->tokens)
        cr_expect(fabs(s->learner / b->tokens - b->budget) <= 1e-9, "%s: budget %.12f vs %.12f", what,
                  s->learner / b->tokens, b->budget);
}

/* The text so far of a stream's decoder (greedy: append-only) into prev; checks that it extends what prev held. */
static void partial_extends(acm_stream *st, char *prev, size_t cap, const char *what) {
    acm_ctc_result r;
    acm_ctc_result_get(acm_stream_decoder(st), ACM_CTC_PARTIAL, &r);
    cr_assert_lt((size_t)r.len, cap);
    cr_assert_eq(strncmp(r.text, prev, strlen(prev)), 0, "%s: partial '%s' does not extend '%s'", what, r.text, prev);
    memcpy(prev, r.text, (size_t)r.len + 1);
}

/* The greedy text of the batch logits [T, K], decoded at once by a decoder of its own, equals the stream's; returns
 * its length. */
static int same_text(acm_stream *st, const acm_model *m, const float *logits, int T, const char *what) {
    const acm_config *c = acm_model_config(m);
    char chars[64], err[256];
    for (int i = 1; i < c->num_classes; i++) chars[i - 1] = c->labels[i][0];
    chars[c->num_classes - 1] = 0;
    acm_ctc_alphabet a;
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, chars, err, sizeof err), 0, "%s", err);
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, acm_ctc_default_params(), err, sizeof err);
    cr_assert(d, "%s", err);
    acm_ctc_result whole, streamed;
    cr_assert_eq(acm_ctc_decode(d, logits, T, c->num_classes, &whole, err, sizeof err), 0, "%s", err);
    acm_ctc_result_get(acm_stream_decoder(st), ACM_CTC_FINAL, &streamed);
    cr_expect_eq(streamed.frames, T, "%s: the decoder saw %lld frames, the batch %d", what, (long long)streamed.frames,
                 T);
    cr_expect_str_eq(streamed.text, whole.text, "%s: streamed text '%s', whole '%s'", what, streamed.text, whole.text);
    const int len = whole.len;
    acm_ctc_decoder_free(d);
    return len;
}

/* Piece sizes: 0 means random in [1, 8000]. */
static const size_t pieces[] = {1, 160, 5328, (size_t)1 << 30, 0};

static size_t piece(size_t p, unsigned *seed) { return p ? p : 1 + (size_t)(rand_r(seed) % 8000); }

static void check_model(const char *name) {
    sg_golden g;
    sg_open(&g, name);
    const acm_config *c = acm_model_config(g.m);
    const int A = c->num_acms, K = c->num_classes, C = c->chunk;
    cr_assert_leq(K, MAXK);
    cr_assert_leq(A, MAXA);
    char err[256];
    acm_worker *w = acm_worker_new(g.m, (acm_worker_params){.max_batch = 3, .max_tokens = MAXT}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm_stream *st[3];
    for (int i = 0; i < 3; i++) {
        st[i] = acm_stream_new(g.m, err, sizeof err);
        cr_assert(st[i], "%s", err);
    }
    unsigned seed = 7;
    int text_chars = 0; /* the random models do emit characters: the text comparisons compare something */
    static float lg[3][MAXT * MAXK], blog[MAXT * MAXK];
    static uint8_t km[3][MAXA * MAXT], bk[MAXA * MAXT];
    static collected col[3];
    size_t nr = json_array_size(g.runs);
    for (size_t r = 0; r < nr; r++) {
        json_t *run = json_array_get(g.runs, r);
        if (json_is_true(json_object_get(run, "forced"))) continue; /* streams decide by policy only */
        acm_item items[3];
        for (int b = 0; b < 3; b++) items[b] = sg_item(&g, (int)r, b);
        /* one stream alone, every piece size */
        for (int b = 0; b < 3; b++) {
            acm_result br = {.logits = blog, .kmap = bk};
            cr_assert_eq(acm_worker_run(w, &items[b], &br, 1, err, sizeof err), 0, "%s", err);
            for (size_t p = 0; p < sizeof pieces / sizeof *pieces; p++) {
                char what[96];
                snprintf(what, sizeof what, "%s run %zu item %d, pieces of %zu", name, r, b, pieces[p]);
                acm_stream_reset(st[0]);
                memset(&col[0], 0, sizeof col[0]);
                char prev[1100] = "";
                size_t pos = 0, S = (size_t)items[b].samples;
                while (pos < S || acm_stream_ready(st[0])) {
                    if (acm_stream_ready(st[0])) {
                        acm_result rr = {.logits = lg[0], .kmap = km[0]};
                        cr_assert_eq(acm_worker_run_streams(w, &st[0], &items[b].policy, &rr, 1, err, sizeof err), 0,
                                     "%s: %s", what, err);
                        cr_assert_eq(rr.tokens, C, "%s: a chunk before the end has %d tokens", what, rr.tokens);
                        collect(&col[0], &rr, lg[0], km[0], K, A);
                        partial_extends(st[0], prev, sizeof prev, what);
                        continue;
                    }
                    size_t n = piece(pieces[p], &seed);
                    if (n > S - pos) n = S - pos;
                    int64_t took = acm_stream_feed(st[0], items[b].pcm + pos, n, err, sizeof err);
                    cr_assert_geq(took, 0, "%s: %s", what, err);
                    cr_assert((size_t)took == n || acm_stream_ready(st[0]),
                              "%s: took %lld of %zu without a chunk ready", what, (long long)took, n);
                    pos += (size_t)took;
                }
                acm_stream_finish(st[0]);
                if (acm_stream_ready(st[0])) {
                    acm_result rr = {.logits = lg[0], .kmap = km[0]};
                    cr_assert_eq(acm_worker_run_streams(w, &st[0], &items[b].policy, &rr, 1, err, sizeof err), 0, "%s",
                                 err);
                    cr_assert(rr.tokens >= 1 && rr.tokens <= C);
                    collect(&col[0], &rr, lg[0], km[0], K, A);
                }
                cr_expect_eq(acm_stream_feed(st[0], items[b].pcm, 1, err, sizeof err), 0,
                             "a finished stream takes no samples");
                cr_expect_eq(acm_stream_tokens_done(st[0]), br.tokens);
                same_as_batch(&col[0], &br, blog, bk, K, A, what);
                text_chars += same_text(st[0], g.m, blog, br.tokens, what);
            }
        }
        /* three streams fed at different paces, each until its chunk is ready (or its audio ends), then run together,
         * each under its own policy */
        for (int b = 0; b < 3; b++) {
            acm_stream_reset(st[b]);
            memset(&col[b], 0, sizeof col[b]);
        }
        size_t pos[3] = {0, 0, 0};
        const size_t pace[3] = {160, 5328, 0};
        int done[3] = {0, 0, 0}, batched = 0;
        for (;;) {
            acm_stream *ready[3];
            acm_policy pol[3];
            int idx[3], n = 0;
            for (int b = 0; b < 3; b++) {
                while (!acm_stream_ready(st[b]) && pos[b] < (size_t)items[b].samples) {
                    size_t k = piece(pace[b], &seed), left = (size_t)items[b].samples - pos[b];
                    int64_t took = acm_stream_feed(st[b], items[b].pcm + pos[b], k < left ? k : left, err, sizeof err);
                    cr_assert_geq(took, 0, "%s", err);
                    pos[b] += (size_t)took;
                }
                if (!done[b] && pos[b] == (size_t)items[b].samples && !acm_stream_ready(st[b])) {
                    acm_stream_finish(st[b]);
                    done[b] = 1;
                }
                if (acm_stream_ready(st[b])) {
                    idx[n] = b;
                    pol[n] = items[b].policy;
                    ready[n++] = st[b];
                }
            }
            if (n == 0) {
                if (done[0] && done[1] && done[2]) break;
                continue;
            }
            acm_result rr[3];
            for (int i = 0; i < n; i++) rr[i] = (acm_result){.logits = lg[i], .kmap = km[i]};
            cr_assert_eq(acm_worker_run_streams(w, ready, pol, rr, n, err, sizeof err), 0, "%s", err);
            batched += n > 1;
            for (int i = 0; i < n; i++) collect(&col[idx[i]], &rr[i], lg[i], km[i], K, A);
        }
        for (int b = 0; b < 3; b++) {
            acm_result br = {.logits = blog, .kmap = bk};
            cr_assert_eq(acm_worker_run(w, &items[b], &br, 1, err, sizeof err), 0, "%s", err);
            char what[96];
            snprintf(what, sizeof what, "%s run %zu item %d, batched streams", name, r, b);
            same_as_batch(&col[b], &br, blog, bk, K, A, what);
            text_chars += same_text(st[b], g.m, blog, br.tokens, what);
        }
        cr_expect_gt(batched, 0, "%s run %zu: no call ran two streams together", name, r);
    }
    cr_expect_gt(text_chars, 0, "%s: every decoded text was empty", name);
    for (int i = 0; i < 3; i++) acm_stream_free(st[i]);
    acm_worker_free(w);
    sg_close(&g);
}

Test(speech_stream, same_as_batch_a) { check_model("speech_a"); }
Test(speech_stream, same_as_batch_b) { check_model("speech_b"); }
Test(speech_stream, same_as_batch_c) { check_model("speech_c"); }

Test(speech_stream, misuse) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/speech_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm_stream *s = acm_stream_new(m, err, sizeof err);
    cr_assert(s, "%s", err);
    cr_expect_gt(acm_stream_state_bytes(m), 2 * 2 * 6 * 32 * 4); /* at least the rings: 2 layers x L 6 x 2D */
    static float out[8 * 29], pcm[16000];
    acm_result r = {.logits = out};
    acm_policy p = acm_policy_default();
    /* nothing ready */
    cr_expect_eq(acm_worker_run_streams(w, &s, &p, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "ready"), "%s", err);
    /* a chunk: C = 4 tokens = 16 frames = 400 + 15 * 160 samples */
    /* a non-finite sample among those it would take: refused, nothing taken */
    pcm[100] = NAN;
    cr_expect_eq(acm_stream_feed(s, pcm, 16000, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "sample 100"), "%s", err);
    cr_expect_eq(acm_stream_feed(s, pcm, 100, err, sizeof err), 100, "the samples before it are fine");
    pcm[100] = 0;
    acm_stream_reset(s);
    cr_expect_eq(acm_stream_feed(s, NULL, 5, err, sizeof err), ACM_EINVAL);
    cr_expect_eq(acm_stream_feed(s, pcm, 16000, err, sizeof err), 400 + 15 * 160 + 159);
    cr_expect(acm_stream_ready(s));
    cr_expect_eq(acm_stream_feed(s, pcm, 16000, err, sizeof err), 0, "a stream with a chunk ready takes nothing");
    acm_stream *twice[2] = {s, s};
    acm_policy pp[2] = {p, p};
    acm_result rr[2] = {{.logits = out}, {.logits = out}};
    cr_expect_eq(acm_worker_run_streams(w, twice, pp, rr, 2, err, sizeof err), ACM_EINVAL);
    p.kind = ACM_POLICY_CAP;
    p.beta = 1.5f;
    cr_expect_eq(acm_worker_run_streams(w, &s, &p, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(acm_stream_ready(s), "a refused call changes nothing");
    p.beta = 0.5f;
    cr_expect_eq(acm_worker_run_streams(w, &s, &p, &r, 1, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.tokens, 4);
    cr_expect(r.budget <= 0.5 + 1e-12);
    cr_expect_eq(acm_stream_tokens_done(s), 4);
    /* a stream without a decoder runs the same; one with bad decoder parameters is refused */
    acm_stream *bare = acm_stream_new_ctc(m, NULL, err, sizeof err);
    cr_assert(bare, "%s", err);
    cr_expect_null(acm_stream_decoder(bare));
    cr_expect_eq(acm_stream_feed(bare, pcm, 16000, err, sizeof err), 400 + 15 * 160 + 159);
    cr_expect_eq(acm_worker_run_streams(w, &bare, &p, &r, 1, err, sizeof err), 0, "%s", err);
    acm_stream_free(bare);
    acm_ctc_params bad = acm_ctc_default_params();
    bad.beam = 0;
    bad.mode = ACM_CTC_BEAM;
    cr_expect_null(acm_stream_new_ctc(m, &bad, err, sizeof err));
    cr_expect(strstr(err, "beam"), "%s", err);
    /* an image model has no streams */
    acm_model *vit = acm_model_load("tests/golden/vit_a.safetensors", err, sizeof err);
    cr_assert(vit, "%s", err);
    cr_expect_null(acm_stream_new(vit, err, sizeof err));
    cr_expect_eq(acm_stream_state_bytes(vit), 0);
    acm_model_free(vit);
    acm_stream_free(s);
    acm_worker_free(w);
    acm_model_free(m);
}

/* Runs one audio item alone in a worker (mode set), returning its result into lg/km. */
static acm_result run_one(acm_worker *w, const float *pcm, int64_t n, acm_policy p, float *lg, uint8_t *km) {
    char err[256];
    acm_item it = {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = n, .policy = p};
    acm_result r = {.logits = lg, .kmap = km};
    cr_assert_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), 0, "%s", err);
    return r;
}

Test(speech_stream, film_gates) {
    sr_config cfg = {.dim = 32, .depth = 2, .heads = 2, .mlp_hidden = 64, .chunk = 4, .left_context = 3, .learners = 4,
                     .acm_mask = 0x1f, .film = 1, .seed = 5};
    vr_store store;
    char err[512];
    acm_model *m = sr_build(&cfg, &store, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_assert_gt(c->film_gates, 0);
    const int A = c->num_acms, K = c->num_classes;
    cr_assert_leq(A, MAXA);
    const int64_t n = 9000; /* 13 tokens: 4 chunks, the last short */
    static float pcm[3][9000];
    uint64_t rng = 77;
    for (int b = 0; b < 3; b++)
        for (int i = 0; i < n; i++) /* loud and quiet stretches */
            pcm[b][i] = (float)(0.3 * (2 * vr_uniform(&rng) - 1) * (i % 3000 < 1500 ? 1 : 0.05));
    acm_policy pols[3] = {{.kind = ACM_POLICY_MEAN, .beta = 0.5f}, {.kind = ACM_POLICY_CAP, .beta = 0.4f},
                          {.kind = ACM_POLICY_ARGMAX}};
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 3, .max_tokens = MAXT}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm_stream *st = acm_stream_new(m, err, sizeof err);
    cr_assert(st, "%s", err);
    static float lg[3][MAXT * MAXK], lr[MAXT * MAXK], mixed[MAXT * 3 * MAXK];
    static uint8_t km[3][MAXA * MAXT], kr[MAXA * MAXT], mk[3 * MAXA * MAXT];
    acm_result alone[3];
    for (int b = 0; b < 3; b++) {
        acm__worker_scratch(w)->mode = ACM__EXEC_AUTO;
        alone[b] = run_one(w, pcm[b], n, pols[b], lg[b], km[b]);
        cr_assert_eq(alone[b].tokens, 13);
        /* the double-precision oracle: same decisions, same logits */
        acm__worker_scratch(w)->mode = ACM__EXEC_REFERENCE;
        acm_result rr = run_one(w, pcm[b], n, pols[b], lr, kr);
        acm__worker_scratch(w)->mode = ACM__EXEC_AUTO;
        cr_expect_eq(memcmp(kr, km[b], (size_t)A * 13), 0, "item %d: REFERENCE k map differs", b);
        double maxd = 0;
        for (int i = 0; i < 13 * K; i++) maxd = fmax(maxd, fabs(lr[i] - lg[b][i]));
        cr_expect_leq(maxd, 1e-4, "item %d: REFERENCE logits differ by %.3g", b, maxd);
        cr_expect(fabs(rr.flops - alone[b].flops) <= 1e-9 * alone[b].flops);
        /* streamed in 10 ms pieces */
        acm_stream_reset(st);
        collected col;
        memset(&col, 0, sizeof col);
        int64_t pos = 0;
        static float sl[MAXT * MAXK];
        static uint8_t sk[MAXA * MAXT];
        for (;;) {
            if (acm_stream_ready(st)) {
                acm_result r = {.logits = sl, .kmap = sk};
                cr_assert_eq(acm_worker_run_streams(w, &st, &pols[b], &r, 1, err, sizeof err), 0, "%s", err);
                collect(&col, &r, sl, sk, K, A);
                continue;
            }
            if (pos == n) {
                acm_stream_finish(st);
                if (!acm_stream_ready(st)) break;
                continue;
            }
            int64_t took = acm_stream_feed(st, pcm[b] + pos, (size_t)(n - pos < 160 ? n - pos : 160), err, sizeof err);
            cr_assert_geq(took, 0, "%s", err);
            pos += took;
        }
        char what[64];
        snprintf(what, sizeof what, "FiLM item %d streamed", b);
        same_as_batch(&col, &alone[b], lg[b], km[b], K, A, what);
    }
    /* the three budgets in one batch: every chunk's gates see its own item's beta */
    acm_item items[3];
    acm_result res[3];
    for (int b = 0; b < 3; b++) {
        items[b] = (acm_item){.kind = ACM_ITEM_AUDIO, .pcm = pcm[b], .samples = n, .policy = pols[b]};
        res[b] = (acm_result){.logits = mixed + b * MAXT * MAXK, .kmap = mk + b * MAXA * MAXT};
    }
    cr_assert_eq(acm_worker_run(w, items, res, 3, err, sizeof err), 0, "%s", err);
    for (int b = 0; b < 3; b++) {
        cr_expect_eq(memcmp(res[b].kmap, km[b], (size_t)A * 13), 0, "item %d: k map differs in a mixed batch", b);
        double maxd = 0;
        for (int i = 0; i < 13 * K; i++) maxd = fmax(maxd, fabs(res[b].logits[i] - lg[b][i]));
        cr_expect_leq(maxd, 1e-5, "item %d in a mixed batch: max|Δ| %.3g", b, maxd);
    }
    acm_stream_free(st);
    acm_worker_free(w);
    acm_model_free(m);
    vr_store_free(&store);
}

/* A gate that overflows float (two of its layers scaled by 1e30: the collapsed gate is beyond float): the item or
 * stream that needs it fails with ACM_ENUMERIC naming it, its logits NaN; one under FIXED (no gate) in the same call
 * is answered. */
Test(speech_stream, overflowing_gate) {
    sr_config cfg = {.dim = 32, .depth = 1, .heads = 2, .mlp_hidden = 64, .chunk = 4, .left_context = 4, .learners = 4,
                     .acm_mask = 0x10, .seed = 9};
    vr_store store;
    char err[512];
    acm_model *probe = sr_build(&cfg, &store, err, sizeof err); /* the tensors, to scale before the real build */
    cr_assert(probe, "%s", err);
    acm_model_free(probe);
    for (int i = 0; i < store.n; i++)
        if (!strcmp(store.t[i].name, "blocks.0.mlp.gate.0.weight") ||
            !strcmp(store.t[i].name, "blocks.0.mlp.gate.1.weight"))
            for (int64_t j = 0; j < store.t[i].shape[0] * store.t[i].shape[1]; j++) store.t[i].data[j] *= 1e30f;
    /* rebuild from the scaled tensors: the same metadata as sr_build writes */
    char meta[1024];
    snprintf(meta, sizeof meta,
             "{\"format_version\":1,\"arch\":\"speech\",\"dim\":32,\"depth\":1,\"heads\":2,\"mlp_hidden\":64,"
             "\"ln_eps\":1e-6,\"alphabet\":\"abcdefghijklmnopqrstuvwxyz' \",\"chunk\":4,\"left_context\":4,"
             "\"frontend\":{\"n_mels\":80,\"stack\":4},"
             "\"acm\":{\"modules\":[{\"name\":\"blocks.0.mlp\",\"learners\":4}]},"
             "\"budget\":{\"beta_min\":0.25,\"mean\":[[0.25,3.0],[0.5,1.5],[0.75,0.6],[1.0,0.0]]}}");
    acm_model *m = acm__model_build(meta, vr_lookup, &store, err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2, .max_tokens = 64}, err, sizeof err);
    cr_assert(w, "%s", err);
    static float pcm[8000], lg[2][64 * 29];
    uint64_t rng = 1;
    for (int i = 0; i < 8000; i++) pcm[i] = (float)(0.2 * (2 * vr_uniform(&rng) - 1));
    acm_item it[2] = {{.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = 8000, .policy = {.kind = ACM_POLICY_FIXED,
                                                                                        .fixed_k = 2}},
                      {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = 8000, .policy = {.kind = ACM_POLICY_ARGMAX}}};
    acm_result r[2] = {{.logits = lg[0]}, {.logits = lg[1]}};
    cr_assert_eq(acm_worker_run(w, it, r, 2, err, sizeof err), ACM_ENUMERIC);
    cr_expect(strstr(err, "item 1") && strstr(err, "blocks.0.mlp"), "%s", err);
    cr_expect(isfinite(lg[0][0]) && isfinite(r[0].budget), "the item without a gate is answered");
    cr_expect(isnan(lg[1][0]) && isnan(r[1].budget));
    /* streams: the same */
    acm_stream *st[2];
    for (int i = 0; i < 2; i++) {
        st[i] = acm_stream_new(m, err, sizeof err);
        cr_assert(st[i], "%s", err);
        cr_assert_gt(acm_stream_feed(st[i], pcm, 8000, err, sizeof err), 0, "%s", err);
        cr_assert(acm_stream_ready(st[i]));
    }
    acm_policy pol[2] = {it[1].policy, it[0].policy};
    cr_assert_eq(acm_worker_run_streams(w, st, pol, r, 2, err, sizeof err), ACM_ENUMERIC);
    cr_expect(strstr(err, "stream 0"), "%s", err);
    cr_expect(isnan(lg[0][0]) && isfinite(lg[1][0]));
    for (int i = 0; i < 2; i++) acm_stream_free(st[i]);
    acm_worker_free(w);
    acm_model_free(m);
    vr_store_free(&store);
}
