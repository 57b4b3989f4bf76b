/*
 * test_speech.c — the speech encoder's batch forward (engine/speech.c) against the independent float64 reference
 * (tests/reference/gen_speech_golden.py). For each golden model and run (three items of different lengths: shorter
 * than a chunk, a tail that is not a whole token, several chunks, no token at all; every policy, mixed in one batch,
 * and forced k): logits within max|Δ| / max(1, max|ref|) <= 1e-4, k maps identical, tokens, FLOPs (1e-9 relative) and
 * realised budgets (1e-9) equal, in every execution schedule and in the REFERENCE oracle. Also: an item's result does
 * not depend on what it is batched with; the loader reads the speech fields.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "safetensors.h"
#include "tests/engine/speech_golden.h"
#include "vit.h"

static void check_model_mode(const char *name, int mode) {
    sg_golden g;
    sg_open(&g, name);
    const acm_config *c = acm_model_config(g.m);
    const int A = c->num_acms, K = c->num_classes;
    char err[256];
    acm_worker *w = acm_worker_new(g.m, (acm_worker_params){.max_batch = 3, .max_tokens = 64}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm__worker_scratch(w)->mode = mode;
    size_t nr = json_array_size(g.runs);
    cr_assert_geq(nr, 5);
    for (size_t r = 0; r < nr; r++) {
        json_t *run = json_array_get(g.runs, r);
        acm_item items[3];
        acm_result res[3];
        static float logits[3][64 * 64];
        static uint8_t kmap[3][64 * 64];
        for (int b = 0; b < 3; b++) {
            items[b] = sg_item(&g, (int)r, b);
            res[b] = (acm_result){.logits = logits[b], .kmap = kmap[b]};
        }
        cr_assert_eq(acm_worker_run(w, items, res, 3, err, sizeof err), 0, "%s", err);
        for (int b = 0; b < 3; b++) {
            const int T = (int)json_integer_value(json_array_get(json_object_get(run, "tokens"), (size_t)b));
            cr_assert_eq(res[b].tokens, T, "%s run %zu item %d: %d tokens, reference %d", name, r, b, res[b].tokens, T);
            cr_assert_eq(acm_speech_tokens(g.m, items[b].samples), T);
            const float *ref = sg_tensor(&g, (int)r, "logits", b);
            const uint8_t *rk = sg_tensor(&g, (int)r, "kmap", b);
            cr_assert(T == 0 || ref, "%s run %zu item %d: reference logits missing", name, r, b);
            double maxd = 0, maxref = 1;
            for (int i = 0; i < T * K; i++) {
                maxref = fmax(maxref, fabs(ref[i]));
                maxd = fmax(maxd, fabs((double)ref[i] - logits[b][i]));
            }
            cr_expect_leq(maxd / maxref, 1e-4, "%s run %zu item %d: logits max|Δ|/max(1,|ref|) = %.3g", name, r, b,
                          maxd / maxref);
            for (int i = 0; A && i < A * T; i++)
                cr_assert_eq(kmap[b][i], rk[i], "%s run %zu item %d: kmap[acm %d][token %d] = %d, reference %d", name,
                             r, b, i / T, i % T, kmap[b][i], rk[i]);
            double fl = json_number_value(json_array_get(json_object_get(run, "flops"), (size_t)b));
            double fd = json_number_value(json_array_get(json_object_get(run, "flops_dense"), (size_t)b));
            double bu = json_number_value(json_array_get(json_object_get(run, "budget"), (size_t)b));
            cr_expect(fabs(res[b].flops - fl) <= 1e-9 * fmax(1, fl), "%s run %zu item %d: flops %.1f vs ref %.1f", name,
                      r, b, res[b].flops, fl);
            cr_expect(fabs(res[b].flops_dense - fd) <= 1e-9 * fmax(1, fd), "%s run %zu item %d: dense %.1f vs %.1f",
                      name, r, b, res[b].flops_dense, fd);
            cr_expect(fabs(res[b].budget - bu) <= 1e-9, "%s run %zu item %d: budget %.12f vs ref %.12f", name, r, b,
                      res[b].budget, bu);
        }
        /* each item alone: the same decisions and logits (to float rounding of differently blocked GEMMs) */
        for (int b = 0; b < 3; b++) {
            static float one[64 * 64];
            static uint8_t k1[64 * 64];
            acm_result r1 = {.logits = one, .kmap = k1};
            cr_assert_eq(acm_worker_run(w, &items[b], &r1, 1, err, sizeof err), 0, "%s", err);
            double maxd = 0;
            for (int i = 0; i < r1.tokens * K; i++) maxd = fmax(maxd, fabs(one[i] - logits[b][i]));
            cr_expect_leq(maxd, 1e-5, "%s run %zu item %d alone: max|Δ| %.3g", name, r, b, maxd);
            cr_expect_eq(memcmp(k1, kmap[b], (size_t)A * r1.tokens), 0, "%s run %zu item %d alone: k map differs", name,
                         r, b);
        }
    }
    acm_worker_free(w);
    sg_close(&g);
}

Test(speech, golden_a) { check_model_mode("speech_a", ACM__EXEC_AUTO); }
Test(speech, golden_b) { check_model_mode("speech_b", ACM__EXEC_AUTO); }
Test(speech, golden_c) { check_model_mode("speech_c", ACM__EXEC_AUTO); }
/* the other schedules and the token-by-token double-precision oracle see the same per-chunk units */
Test(speech, golden_groups) {
    check_model_mode("speech_a", ACM__EXEC_GROUPS);
    check_model_mode("speech_b", ACM__EXEC_GROUPS);
}
Test(speech, golden_reference_mode) {
    check_model_mode("speech_a", ACM__EXEC_REFERENCE);
    check_model_mode("speech_b", ACM__EXEC_REFERENCE);
}

Test(speech, config) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/speech_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->arch, ACM_ARCH_SPEECH);
    cr_expect_eq(c->chunk, 4);
    cr_expect_eq(c->left_context, 6);
    cr_expect_eq(c->stack, 4);
    cr_expect_eq(c->n_mels, 80);
    cr_expect_eq(c->num_classes, 29);
    cr_expect_str_eq(c->labels[0], "");
    cr_expect_str_eq(c->labels[1], "a");
    cr_expect_str_eq(c->labels[28], " ");
    cr_expect_eq(c->num_acms, 5);
    cr_expect_eq(acm_speech_tokens(m, 399), 0);
    cr_expect_eq(acm_speech_tokens(m, 400 + 160 * 3), 1);
    cr_expect_eq(acm_speech_tokens(m, 400 + 160 * 2), 0);
    /* an image item on a speech model, too much audio: refused */
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2, .max_tokens = 10}, err, sizeof err);
    cr_assert(w, "%s", err);
    static float pcm[16000], out[64 * 29];
    acm_result r = {.logits = out};
    acm_item img = {.pixels = pcm, .policy = acm_policy_default()};
    cr_expect_eq(acm_worker_run(w, &img, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "audio"), "%s", err);
    acm_item au = {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = 16000, .policy = acm_policy_default()};
    cr_expect_eq(acm_worker_run(w, &au, &r, 1, err, sizeof err), ACM_EINVAL); /* 24 tokens > 10 */
    cr_expect(strstr(err, "tokens"), "%s", err);
    au.samples = 400 + 160 * 39; /* 40 frames, 10 tokens: fits */
    pcm[7] = INFINITY;
    cr_expect_eq(acm_worker_run(w, &au, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "sample 7 is not finite"), "%s", err);
    pcm[7] = 0;
    cr_expect_eq(acm_worker_run(w, &au, &r, 1, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.tokens, 10);
    acm_worker_free(w);
    acm_model_free(m);
}
