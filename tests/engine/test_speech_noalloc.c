/*
 * test_speech_noalloc.c — the speech encoder allocates nothing per call: whole items (acm_worker_run) and stream
 * chunks (acm_stream_feed, acm_stream_finish, acm_worker_run_streams), every policy and execution schedule.
 * Like test_noalloc.c, this binary alone is linked with -Wl,--wrap=malloc,calloc,realloc,free,aligned_alloc,
 * posix_memalign (Makefile), so every allocation from our code is counted; OpenBLAS's and libc's own are not seen.
 *
 * The long test streams 10 minutes of audio (seeded noise under a moving envelope) through four streams batched
 * together, each under its own policy: zero allocations after the first chunk, every chunk C tokens until the last,
 * a CAP chunk never above its budget, the dense FLOPs of a chunk the same for every chunk once the left context is
 * full (constant cost per chunk, however long the stream), and the state size of a stream what it was at the start.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "model.h"
#include "vit.h"
#include "alloc_count.h"

Test(speech_noalloc, wrapper_counts) {
    alloc_counting = 1;
    alloc_calls = 0;
    void *p = malloc(16);
    free(p);
    alloc_counting = 0;
    cr_assert_eq(alloc_calls, 2, "the --wrap link flags are missing: %ld calls counted", alloc_calls);
}

/* Seeded noise under an envelope that moves every 0.5 s: loud and quiet stretches. */
static void noise(float *x, size_t n, uint64_t *state, int64_t *t) {
    for (size_t i = 0; i < n; i++, (*t)++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(*state >> 11) / 9007199254740992.0 - 0.5;
        double env = 0.3 * (1.0 + sin((double)(*t / 8000) * 1.7));
        x[i] = (float)(u * env);
    }
}

#define NPOL 6
static acm_policy policy(int i) {
    static const acm_policy p[NPOL] = {
        {.kind = ACM_POLICY_ARGMAX},      {.kind = ACM_POLICY_FIXED, .fixed_k = 1},
        {.kind = ACM_POLICY_MEAN, .beta = 0.5f}, {.kind = ACM_POLICY_CAP, .beta = 0.3f},
        {.kind = ACM_POLICY_CAP, .beta = 0.6f},  {.kind = ACM_POLICY_CAP, .beta = 1.0f},
    };
    return p[i % NPOL];
}

Test(speech_noalloc, batch) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/speech_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    const int A = c->num_acms, K = c->num_classes;
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 4, .max_tokens = 256}, err, sizeof err);
    cr_assert(w, "%s", err);
    static const int64_t len[4] = {1840, 6200, 16000, 300};
    float *pcm = malloc(sizeof(float) * 16000 * 4), *logits = malloc(sizeof(float) * 256 * K);
    uint8_t *kmap = malloc((size_t)A * 256), *force = malloc((size_t)A * 256);
    cr_assert(pcm && logits && kmap && force);
    uint64_t st = 3;
    int64_t t = 0;
    noise(pcm, 16000 * 4, &st, &t);
    for (int i = 0; i < A * 256; i++) force[i] = (uint8_t)(i * 7 % 5);
    acm__acm_scratch *s = acm__worker_scratch(w);
    static const int modes[3] = {ACM__EXEC_AUTO, ACM__EXEC_GROUPS, ACM__EXEC_PREFIX};
    for (int pi = 0; pi <= NPOL + 1; pi++) {
        acm_item items[4];
        acm_result res[4];
        int64_t off = 0;
        for (int b = 0; b < 4; b++) {
            int64_t T = acm_speech_tokens(m, len[b]);
            items[b] = (acm_item){.kind = ACM_ITEM_AUDIO, .pcm = pcm + b * 16000, .samples = len[b],
                                  .policy = policy(pi < NPOL ? pi : b + pi)};
            if (pi == NPOL + 1) items[b].force_k = force + off * A;
            res[b] = (acm_result){.logits = logits + off * K, .kmap = kmap + off * A};
            off += T;
        }
        for (int mi = 0; mi < 3; mi++) {
            s->mode = modes[mi];
            cr_assert_eq(acm_worker_run(w, items, res, 4, err, sizeof err), 0, "%s", err); /* warm-up */
            alloc_calls = 0;
            alloc_counting = 1;
            int rc = acm_worker_run(w, items, res, 4, err, sizeof err);
            alloc_counting = 0;
            cr_assert_eq(rc, 0, "%s", err);
            cr_expect_eq(alloc_calls, 0, "policy set %d, mode %d: %ld allocations", pi, modes[mi], alloc_calls);
        }
    }
    free(pcm);
    free(logits);
    free(kmap);
    free(force);
    acm_worker_free(w);
    acm_model_free(m);
}

Test(speech_noalloc, ten_minute_streams, .timeout = 120) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/speech_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    const int A = c->num_acms, K = c->num_classes, C = c->chunk, NS = 4;
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = NS}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm_stream *st[4];
    acm_policy pol[4];
    acm_result res[4];
    float *logits = malloc(sizeof(float) * (size_t)NS * C * K);
    uint8_t *kmap = malloc((size_t)NS * A * C);
    cr_assert(logits && kmap);
    const size_t bytes = acm_stream_state_bytes(m);
    for (int i = 0; i < NS; i++) {
        st[i] = acm_stream_new(m, err, sizeof err);
        cr_assert(st[i], "%s", err);
        pol[i] = policy(i + 2); /* mean 0.5, cap 0.3, cap 0.6, cap 1 */
        res[i] = (acm_result){.logits = logits + (size_t)i * C * K, .kmap = kmap + (size_t)i * A * C};
    }
    const int64_t total = 10 * 60 * 16000;
    uint64_t seed[4] = {1, 2, 3, 4};
    int64_t t[4] = {0, 0, 0, 0}, fed[4] = {0, 0, 0, 0}, chunks = 0;
    double dense_full = 0;
    /* pieces of 333 ms; a piece not taken (a chunk became ready) is fed again after the run */
    size_t have[4] = {0, 0, 0, 0}, at[4] = {0, 0, 0, 0};
    static float pieces[4][5328];
    int finished = 0;
    while (!finished) {
        for (int i = 0; i < NS; i++)
            while (!acm_stream_ready(st[i]) && fed[i] < total) {
                if (at[i] == have[i]) {
                    have[i] = (size_t)(total - fed[i] < 5328 ? total - fed[i] : 5328);
                    noise(pieces[i], have[i], &seed[i], &t[i]);
                    at[i] = 0;
                }
                int64_t took = acm_stream_feed(st[i], pieces[i] + at[i], have[i] - at[i], err, sizeof err);
                cr_assert_geq(took, 0, "%s", err);
                at[i] += (size_t)took;
                fed[i] += took;
            }
        if (fed[0] == total && !acm_stream_ready(st[0])) {
            for (int i = 0; i < NS; i++) acm_stream_finish(st[i]);
            finished = 1;
            if (!acm_stream_ready(st[0])) break;
        }
        for (int i = 0; i < NS; i++) cr_assert(acm_stream_ready(st[i]), "streams fed alike are ready alike");
        int rc = acm_worker_run_streams(w, st, pol, res, NS, err, sizeof err);
        cr_assert_eq(rc, 0, "%s", err);
        if (chunks == 0) { /* the first chunk warms OpenBLAS up; count from here */
            alloc_calls = 0;
            alloc_counting = 1;
        }
        chunks++;
        for (int i = 0; i < NS; i++) {
            if (!finished) cr_assert_eq(res[i].tokens, C);
            if (pol[i].kind == ACM_POLICY_CAP)
                cr_assert_leq(res[i].budget, pol[i].beta + 1e-12, "chunk %lld stream %d: budget %.4f over %.2f",
                              (long long)chunks, i, res[i].budget, (double)pol[i].beta);
        }
        /* once the left context is full, every chunk has the same keys and so the same dense FLOPs */
        if (!finished && acm_stream_tokens_done(st[0]) > c->left_context + C) {
            if (dense_full == 0) dense_full = res[0].flops_dense;
            cr_assert_eq(res[0].flops_dense, dense_full, "chunk %lld: dense FLOPs changed", (long long)chunks);
        }
    }
    alloc_counting = 0;
    cr_expect_eq(alloc_calls, 0, "%ld allocations over %lld chunks", alloc_calls, (long long)chunks);
    cr_expect_eq(acm_stream_tokens_done(st[0]), acm_speech_tokens(m, total));
    cr_expect_eq(acm_stream_state_bytes(m), bytes);
    cr_expect_gt(chunks, 3700);
    for (int i = 0; i < NS; i++) acm_stream_free(st[i]);
    free(logits);
    free(kmap);
    acm_worker_free(w);
    acm_model_free(m);
}
