/*
 * test_speech_train.c — the speech trainer (train/speech_train.c): its backward against central finite differences
 * of the CTC loss on a tiny encoder (every tensor probed; chunks of 3 with 2 tokens of left context so that keys are
 * shared between chunks and rotated differently in each), an item too short for its labels skipped without changing
 * the others' gradients, and its forward against the engine's (engine/speech.c through acm_worker_run) on the same
 * weights and audio: the model trained is the model served.
 *
 * Finite differences: the forward runs in float; h = 1e-2 on a loss of order 1 (rounding ≈ 1e-7/h = 1e-5,
 * truncation ≈ h²) and |analytic − numeric| ≤ 1e-3 + 2e-2·|numeric|, as test_vit_train.c.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "logmel.h"
#include "model.h"
#include "train/speech_train.h"
#include "speech_fixture.h"

static acmt_speech_config tiny(void) {
    acmt_speech_config c = {.n_mels = 6, .stack = 2, .dim = 8, .depth = 2, .heads = 2, .mlp_hidden = 16, .chunk = 3,
                            .left_context = 2, .rope_base = 100.0f, .ln_eps = 1e-6f};
    snprintf(c.alphabet, sizeof c.alphabet, "abc");
    return c;
}

/* Parameters large enough that every path carries a gradient well above the noise; mel statistics non-trivial. */
static void big_params(acmt_speech *s, acmt_rng *r) {
    for (int64_t i = 0; i < s->nparams; i++) s->params[i] = 0.4f * acmt_rng_normal(r);
    for (int i = 0; i < s->ntab; i++) {
        const acmt_param *t = &s->tab[i];
        if ((strstr(t->name, "norm") && strstr(t->name, "weight")) || !strcmp(t->name, "frontend.mel_std"))
            for (int64_t j = 0; j < t->numel; j++) s->params[t->offset + j] = 1.0f + 0.3f * fabsf(acmt_rng_normal(r));
    }
}

static double loss_of(acmt_speech *s, const float *const *fr, const int64_t *tok, int B, const int32_t *const *lab,
                      const int *nl) {
    char err[256];
    cr_assert_eq(acmt_speech_forward(s, fr, tok, B, err, sizeof err), 0, "%s", err);
    return acmt_speech_backward(s, lab, nl, NULL);
}

Test(speech_train, gradients_match_finite_differences) {
    char err[256];
    acmt_speech_config c = tiny();
    acmt_speech *s = acmt_speech_new(&c, 2, 16, 16, 8, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 5, 0);
    big_params(s, &r);
    const int64_t tok[2] = {7, 5};
    float f0[7 * 12], f1[5 * 12];
    for (int i = 0; i < 7 * 12; i++) f0[i] = acmt_rng_normal(&r);
    for (int i = 0; i < 5 * 12; i++) f1[i] = acmt_rng_normal(&r);
    const float *fr[2] = {f0, f1};
    const int32_t l0[3] = {1, 1, 2}, l1[2] = {3, 2};
    const int32_t *lab[2] = {l0, l1};
    const int nl[2] = {3, 2};
    const double L0 = loss_of(s, fr, tok, 2, lab, nl);
    cr_assert(isfinite(L0) && L0 > 0, "loss %g", L0);
    float *g = malloc(sizeof(float) * (size_t)s->nparams);
    memcpy(g, s->grads, sizeof(float) * (size_t)s->nparams);
    const double h = 1e-2;
    double worst = 0;
    int probed = 0;
    for (int i = 0; i < s->ntab; i++) {
        const acmt_param *t = &s->tab[i];
        if (!acmt_speech_trainable(s, i)) continue;
        for (int j = 0; j < 6 && j < t->numel; j++) {
            const int64_t at = t->offset + (j * 7919) % t->numel;
            const float p0 = s->params[at];
            s->params[at] = (float)(p0 + h);
            const double lp = loss_of(s, fr, tok, 2, lab, nl);
            s->params[at] = (float)(p0 - h);
            const double lm = loss_of(s, fr, tok, 2, lab, nl);
            s->params[at] = p0;
            const double fd = (lp - lm) / (2 * h), d = fabs(fd - g[at]);
            cr_expect(d <= 1e-3 + 2e-2 * fabs(fd), "%s[%lld]: analytic %g, numeric %g", t->name,
                      (long long)(at - t->offset), (double)g[at], fd);
            worst = fmax(worst, d / (1e-3 + 2e-2 * fabs(fd)));
            probed++;
        }
    }
    cr_log_info("speech_train finite differences: %d values, worst error / tolerance %.3f", probed, worst);
    free(g);
    acmt_speech_free(s);
}

Test(speech_train, short_items_are_skipped_and_change_nothing) {
    char err[256];
    acmt_speech_config c = tiny();
    acmt_speech *s = acmt_speech_new(&c, 2, 16, 16, 8, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 9, 0);
    big_params(s, &r);
    float f0[6 * 12], f1[2 * 12];
    for (int i = 0; i < 6 * 12; i++) f0[i] = acmt_rng_normal(&r);
    for (int i = 0; i < 2 * 12; i++) f1[i] = acmt_rng_normal(&r);
    const float *fr[2] = {f0, f1};
    const int64_t tok[2] = {6, 2};
    const int32_t l0[2] = {2, 3}, l1[2] = {1, 1}; /* item 1: two 1s need 3 tokens, it has 2 */
    const int32_t *lab[2] = {l0, l1};
    const int nl[2] = {2, 2};
    int skipped = -1;
    cr_assert_eq(acmt_speech_forward(s, fr, tok, 2, err, sizeof err), 0, "%s", err);
    const double L2 = acmt_speech_backward(s, lab, nl, &skipped);
    cr_assert_eq(skipped, 1);
    cr_assert(isfinite(L2));
    float *g2 = malloc(sizeof(float) * (size_t)s->nparams);
    memcpy(g2, s->grads, sizeof(float) * (size_t)s->nparams);
    /* the same item alone: the same loss and gradients (item 1's rows do not reach item 0's) */
    cr_assert_eq(acmt_speech_forward(s, fr, tok, 1, err, sizeof err), 0, "%s", err);
    const double L1 = acmt_speech_backward(s, lab, nl, &skipped);
    cr_assert_eq(skipped, 0);
    cr_expect(fabs(L1 - L2) < 1e-6, "loss %g with the skipped item, %g alone", L2, L1);
    double worst = 0;
    for (int64_t i = 0; i < s->nparams; i++) {
        cr_assert(isfinite(g2[i]));
        worst = fmax(worst, fabs(g2[i] - s->grads[i]));
    }
    cr_expect(worst < 1e-5, "gradients differ by %g", worst);
    /* every item skipped: loss 0, gradient 0 */
    cr_assert_eq(acmt_speech_forward(s, fr + 1, tok + 1, 1, err, sizeof err), 0, "%s", err);
    cr_expect_eq(acmt_speech_backward(s, lab + 1, nl + 1, &skipped), 0.0);
    cr_expect_eq(skipped, 1);
    for (int64_t i = 0; i < s->nparams; i++) cr_assert_eq(s->grads[i], 0.0f);
    free(g2);
    acmt_speech_free(s);
}

/* The training forward from log-mel frames against the engine's forward from PCM, same weights. */
Test(speech_train, forward_equals_the_engine) {
    char err[256];
    acmt_speech_config c = fixture_speech_small(4, 6);
    acmt_rng r;
    acmt_speech *s = fixture_speech_random(&c, 2, 200, 8, 3, &r);
    /* two items of noise with a tone, 0.73 s and 0.31 s: 18 and 7 tokens, several chunks with left context; log-mel
     * frames by the engine's front end; the model's statistics from them */
    int64_t ns[2], tok[2], nframes[2];
    float *pcm[2], *fr[2];
    fixture_tone_audio(&r, s->model, c.stack, ns, pcm, fr, tok, nframes);
    fixture_mel_acc acc = {0};
    for (int b = 0; b < 2; b++) {
        cr_assert_eq(tok[b], acm_speech_tokens(s->model, ns[b]));
        fixture_mel_add(&acc, fr[b], nframes[b]);
    }
    float mean[80], sd[80];
    fixture_mel_stats(&acc, mean, sd);
    acmt_speech_set_mel_stats(s, mean, sd);
    cr_assert_eq(acmt_speech_forward(s, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);

    char path[] = "/tmp/acm-test-speech-train-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(acmt_speech_save_model(s, path, NULL, err, sizeof err), 0, "%s", err);
    acm_model *m = acm_model_load(path, err, sizeof err);
    unlink(path);
    cr_assert(m, "%s", err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2, .max_tokens = 64}, err, sizeof err);
    cr_assert(w, "%s", err);
    const int K = s->K;
    float *lg[2];
    acm_item it[2];
    acm_result res[2];
    for (int b = 0; b < 2; b++) {
        lg[b] = malloc(sizeof(float) * (size_t)(tok[b] * K));
        it[b] = (acm_item){.kind = ACM_ITEM_AUDIO, .pcm = pcm[b], .samples = ns[b], .policy = acm_policy_default()};
        res[b] = (acm_result){.logits = lg[b]};
    }
    cr_assert_eq(acm_worker_run(w, it, res, 2, err, sizeof err), 0, "%s", err);
    double worst = 0, scale = 0;
    for (int b = 0; b < 2; b++) {
        cr_assert_eq(res[b].tokens, tok[b]);
        for (int64_t i = 0; i < tok[b] * K; i++) {
            worst = fmax(worst, fabs(lg[b][i] - s->logits[s->item_off[b] * K + i]));
            scale = fmax(scale, fabs(lg[b][i]));
        }
    }
    cr_expect(worst <= 1e-4, "training and engine logits differ by %g (logits up to %g)", worst, scale);
    cr_expect(scale > 0.1, "logits too small (%g) for the comparison to mean anything", scale);
    cr_log_info("speech_train vs engine: max |logit diff| %.3g over logits up to %.3g", worst, scale);
    for (int b = 0; b < 2; b++) {
        free(lg[b]);
        free(fr[b]);
        free(pcm[b]);
    }
    acm_worker_free(w);
    acm_model_free(m);
    acmt_speech_free(s);
}
