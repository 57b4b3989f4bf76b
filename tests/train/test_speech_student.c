/*
 * test_speech_student.c — the speech encoder with ACM MLPs (train/speech_student.c): at initialisation its learners
 * together are the teacher's MLP (the student with every learner equals the teacher when the MLP's output bias is 0,
 * which the ACM drops), the backward through the ACMs against finite differences (fixed selections), and the model
 * file it writes run by the engine (acm_worker_run from PCM) gives the training forward's logits: at full budget
 * (FIXED, k = N) and under ARGMAX with budget-conditioned gates (FiLM at gate_beta).
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
#include "vit.h"
#include "train/speech_student.h"

static acmt_speech_config small(void) {
    acmt_speech_config c = acmt_speech_default_config();
    c.dim = 32;
    c.depth = 2;
    c.heads = 2;
    c.mlp_hidden = 64;
    c.chunk = 4;
    c.left_context = 6;
    return c;
}

static float *param(acmt_speech *s, const char *name) {
    for (int i = 0; i < s->ntab; i++)
        if (!strcmp(s->tab[i].name, name)) return s->params + s->tab[i].offset;
    cr_assert_fail("no tensor %s", name);
    return NULL;
}

static void random_frames(acmt_rng *r, float **fr, const int64_t *tok, int B, int SM) {
    for (int b = 0; b < B; b++) {
        fr[b] = malloc(sizeof(float) * (size_t)(tok[b] * SM));
        for (int64_t i = 0; i < tok[b] * SM; i++) fr[b][i] = acmt_rng_normal(r);
    }
}

Test(speech_student, learners_together_are_the_teacher_at_init) {
    char err[256];
    acmt_speech_config c = small();
    acmt_speech *sp = acmt_speech_new(&c, 2, 64, 64, 8, err, sizeof err);
    cr_assert(sp, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 7, 0);
    acmt_speech_init(sp, &r);
    for (int64_t i = 0; i < sp->nparams; i++) sp->params[i] += 0.1f * acmt_rng_normal(&r);
    for (int l = 0; l < c.depth; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blocks.%d.mlp.fc2.bias", l);
        memset(param(sp, nm), 0, sizeof(float) * (size_t)c.dim);
    }
    float *fr[2];
    const int64_t tok[2] = {13, 6};
    random_frames(&r, fr, tok, 2, sp->SM);
    cr_assert_eq(acmt_speech_forward(sp, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);
    const int64_t n = sp->R * sp->K;
    float *teacher = malloc(sizeof(float) * (size_t)n);
    memcpy(teacher, sp->logits, sizeof(float) * (size_t)n);
    acmt_speech_student *s = acmt_speech_student_new(sp, 4, 8, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_speech_student_init(s, &r);
    s->uniform_k = 4;
    cr_assert_eq(acmt_speech_student_forward(s, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(teacher[i] - sp->logits[i]));
        scale = fmax(scale, fabs(teacher[i]));
    }
    cr_expect(worst <= 1e-4 * fmax(1, scale), "student at k = N differs from the teacher by %g", worst);
    /* fewer learners change the output: the comparison above can fail */
    s->uniform_k = 2;
    cr_assert_eq(acmt_speech_student_forward(s, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);
    double diff = 0;
    for (int64_t i = 0; i < n; i++) diff = fmax(diff, fabs(teacher[i] - sp->logits[i]));
    cr_expect(diff > 1e-3, "k = 2 gives the teacher's logits too (%g)", diff);
    for (int b = 0; b < 2; b++) free(fr[b]);
    free(teacher);
    acmt_speech_student_free(s);
}

static double loss_of(acmt_speech_student *s, float **fr, const int64_t *tok, const int32_t *const *lab,
                      const int *nl) {
    char err[256];
    cr_assert_eq(acmt_speech_student_forward(s, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);
    return acmt_speech_student_backward(s, lab, nl, NULL);
}

/* The ACM backward wired into the speech backward: analytic gradients of the CTC loss with respect to ACM learner
 * parameters and static parameters against central differences, every token at a fixed k = 3 of 4. */
Test(speech_student, gradients_match_finite_differences) {
    char err[256];
    acmt_speech_config c = {.n_mels = 6, .stack = 2, .dim = 8, .depth = 2, .heads = 2, .mlp_hidden = 16, .chunk = 3,
                            .left_context = 2, .rope_base = 100.0f, .ln_eps = 1e-6f};
    snprintf(c.alphabet, sizeof c.alphabet, "abc");
    acmt_speech *sp = acmt_speech_new(&c, 2, 16, 16, 8, err, sizeof err);
    cr_assert(sp, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 11, 0);
    for (int64_t i = 0; i < sp->nparams; i++) sp->params[i] = 0.4f * acmt_rng_normal(&r);
    for (int i = 0; i < sp->ntab; i++)
        if ((strstr(sp->tab[i].name, "norm") && strstr(sp->tab[i].name, "weight")) ||
            !strcmp(sp->tab[i].name, "frontend.mel_std"))
            for (int64_t j = 0; j < sp->tab[i].numel; j++) sp->params[sp->tab[i].offset + j] = 1.0f;
    acmt_speech_student *s = acmt_speech_student_new(sp, 4, 4, err, sizeof err);
    cr_assert(s, "%s", err);
    for (int64_t i = 0; i < s->nparams; i++) s->ap[i] = 0.4f * acmt_rng_normal(&r);
    s->uniform_k = 3;
    float *fr[2];
    const int64_t tok[2] = {7, 5};
    random_frames(&r, fr, tok, 2, sp->SM);
    const int32_t l0[3] = {1, 1, 2}, l1[2] = {3, 2};
    const int32_t *lab[2] = {l0, l1};
    const int nl[2] = {3, 2};
#define LOSS() loss_of(s, fr, tok, lab, nl)
    const double L0 = LOSS();
    cr_assert(isfinite(L0) && L0 > 0);
    float *ga = malloc(sizeof(float) * (size_t)s->nparams), *gs = malloc(sizeof(float) * (size_t)sp->nparams);
    memcpy(ga, s->ag, sizeof(float) * (size_t)s->nparams);
    memcpy(gs, sp->grads, sizeof(float) * (size_t)sp->nparams);
    const double h = 1e-2;
    double worst = 0;
    int probed = 0;
    for (int l = 0; l < c.depth; l++) {
        const acmt_acm_layout *L = &s->L[l];
        const int64_t at[3] = {s->off[l] + L->w1 + 5, s->off[l] + L->b1 + 2 * L->h + 1, s->off[l] + L->w2 + 3};
        for (int j = 0; j < 3; j++) {
            const float p0 = s->ap[at[j]];
            s->ap[at[j]] = (float)(p0 + h);
            const double lp = LOSS();
            s->ap[at[j]] = (float)(p0 - h);
            const double lm = LOSS();
            s->ap[at[j]] = p0;
            const double num = (lp - lm) / (2 * h), d = fabs(ga[at[j]] - num);
            cr_expect(d <= 1e-3 + 2e-2 * fabs(num), "%s param %lld: analytic %g, numeric %g", L->name,
                      (long long)at[j], ga[at[j]], num);
            worst = fmax(worst, fabs(num));
            probed++;
        }
    }
    /* a static tensor below the ACMs: the gradient went through them */
    const int64_t at = sp->tab[2].offset + 7; /* frontend.proj.weight */
    const float p0 = sp->params[at];
    sp->params[at] = (float)(p0 + h);
    const double lp = LOSS();
    sp->params[at] = (float)(p0 - h);
    const double lm = LOSS();
    sp->params[at] = p0;
    const double num = (lp - lm) / (2 * h);
    cr_expect(fabs(gs[at] - num) <= 1e-3 + 2e-2 * fabs(num), "frontend.proj.weight: analytic %g, numeric %g", gs[at],
              num);
    cr_expect(worst > 1e-3, "every probed gradient is ~0 (%g): the check means nothing", worst);
    cr_expect_eq(probed, 6);
#undef LOSS
    for (int b = 0; b < 2; b++) free(fr[b]);
    free(ga), free(gs);
    acmt_speech_student_free(s);
}

/* The file the student writes, run by the engine from audio, against the training forward. */
Test(speech_student, the_engine_runs_the_converted_model_as_trained) {
    char err[512];
    acmt_speech_config c = small();
    acmt_speech *sp = acmt_speech_new(&c, 2, 200, 200, 8, err, sizeof err);
    cr_assert(sp, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 3, 0);
    acmt_speech_init(sp, &r);
    for (int64_t i = 0; i < sp->nparams; i++) sp->params[i] += 0.1f * acmt_rng_normal(&r);
    const int64_t ns[2] = {11680, 4960};
    float *pcm[2];
    for (int b = 0; b < 2; b++) {
        pcm[b] = malloc(sizeof(float) * (size_t)ns[b]);
        for (int64_t i = 0; i < ns[b]; i++)
            pcm[b][i] = 0.3f * sinf(0.05f * (float)i * (float)(b + 1)) + 0.05f * acmt_rng_normal(&r);
    }
    acm_logmel *mel = acm_logmel_create(acm__speech_logmel_params(&sp->model->cfg), err, sizeof err);
    cr_assert(mel, "%s", err);
    float *fr[2];
    int64_t tok[2];
    for (int b = 0; b < 2; b++) {
        const size_t F = acm_logmel_frames_for(mel, (size_t)ns[b]);
        fr[b] = malloc(sizeof(float) * F * 80);
        acm_logmel_reset(mel);
        int64_t got = acm_logmel_push(mel, pcm[b], (size_t)ns[b], fr[b], F, err, sizeof err);
        cr_assert(got >= 0, "%s", err);
        tok[b] = got / c.stack;
    }
    acm_logmel_free(mel);
    float mean[80], sd[80];
    for (int m = 0; m < 80; m++) mean[m] = -5.0f + 0.01f * (float)m, sd[m] = 2.0f;
    acmt_speech_set_mel_stats(sp, mean, sd);
    acmt_speech_student *s = acmt_speech_student_new(sp, 4, 8, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_speech_student_init(s, &r);
    for (int64_t i = 0; i < s->nparams; i++) s->ap[i] += 0.05f * acmt_rng_normal(&r);
    for (int64_t i = 0; i < s->nfilm; i++) s->fp[i] = 0.5f * acmt_rng_normal(&r);
    char path[] = "/tmp/acm-test-speech-student-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    const float gate_beta = 0.6f;
    char extra[128];
    snprintf(extra, sizeof extra, "{\"budget\": {\"beta_min\": 0.25, \"gate_beta\": %g}}", (double)gate_beta);
    cr_assert_eq(acmt_speech_student_save(s, path, extra, err, sizeof err), 0, "%s", err);
    acm_model *m = acm_model_load(path, err, sizeof err);
    unlink(path);
    cr_assert(m, "%s", err);
    cr_expect_eq(acm_model_config(m)->num_acms, c.depth);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2, .max_tokens = 64}, err, sizeof err);
    cr_assert(w, "%s", err);
    const int K = sp->K;
    /* 0: FIXED k = N (full budget); 1: ARGMAX, FiLM at gate_beta (the training decisions); 2, 3: CAP at 0.5 (GAIN) and
     * 0.4 (LEVEL) through acmt_speech_student_set_policy (the engine's decisions per chunk: the acm-train eval path) */
    for (int pass = 0; pass < 4; pass++) {
        s->uniform_k = pass == 0 ? 4 : 0;
        s->train_gates = 0;
        s->beta = gate_beta;
        acm_policy cap = acm_policy_default();
        cap.kind = ACM_POLICY_CAP;
        cap.beta = pass == 2 ? 0.5f : 0.4f;
        cap.cap_order = pass == 2 ? ACM_CAP_ORDER_GAIN : ACM_CAP_ORDER_LEVEL;
        if (pass >= 2) acmt_speech_student_set_policy(s, m, acm__worker_scratch(w), cap);
        cr_assert_eq(acmt_speech_student_forward(s, (const float *const *)fr, tok, 2, err, sizeof err), 0, "%s", err);
        float *lg[2];
        uint8_t *km[2];
        acm_item it[2];
        acm_result res[2];
        for (int b = 0; b < 2; b++) {
            lg[b] = malloc(sizeof(float) * (size_t)(tok[b] * K));
            km[b] = malloc((size_t)(tok[b] * c.depth));
            acm_policy p = acm_policy_default();
            if (pass == 0) p.kind = ACM_POLICY_FIXED, p.fixed_k = 4;
            if (pass >= 2) p = cap;
            it[b] = (acm_item){.kind = ACM_ITEM_AUDIO, .pcm = pcm[b], .samples = ns[b], .policy = p};
            res[b] = (acm_result){.logits = lg[b], .kmap = km[b]};
        }
        cr_assert_eq(acm_worker_run(w, it, res, 2, err, sizeof err), 0, "%s", err);
        double worst = 0, scale = 0;
        int64_t kdiff = 0, kvar = 0;
        for (int b = 0; b < 2; b++) {
            cr_assert_eq(res[b].tokens, tok[b]);
            for (int64_t i = 0; i < tok[b] * K; i++) {
                worst = fmax(worst, fabs(lg[b][i] - sp->logits[sp->item_off[b] * K + i]));
                scale = fmax(scale, fabs(lg[b][i]));
            }
            for (int l = 0; l < c.depth; l++)
                for (int64_t t = 0; t < tok[b]; t++) {
                    const int ke = km[b][l * tok[b] + t], kt = s->acts[l].k[sp->item_off[b] + t];
                    kdiff += ke != kt;
                    kvar += ke != km[0][0];
                }
        }
        cr_expect(worst <= 1e-4 * fmax(1, scale), "pass %d: engine and training logits differ by %g (up to %g)", pass,
                  worst, scale);
        cr_expect_eq(kdiff, 0, "pass %d: %lld token choices differ", pass, (long long)kdiff);
        if (pass == 1 || pass == 3) cr_expect(kvar > 0, "pass %d: every choice is the same: the gate test means little", pass);
        for (int b = 0; pass >= 2 && b < 2; b++) {
            const double rb = acmt_speech_student_item_budget(s, b);
            cr_expect(fabs(rb - res[b].budget) < 1e-9, "pass %d item %d: budget %g, engine %g", pass, b, rb,
                      res[b].budget);
            cr_expect(fabs(acmt_speech_student_item_flops(s, b) - res[b].flops) <= 1e-9 * res[b].flops,
                      "pass %d item %d: FLOPs %.6g, engine %.6g", pass, b, acmt_speech_student_item_flops(s, b),
                      res[b].flops);
            cr_expect(rb <= cap.beta + 1e-9, "CAP %g: realised %g", (double)cap.beta, rb);
        }
        cr_log_info("speech student vs engine, pass %d: max |logit diff| %.3g (logits up to %.3g)", pass, worst,
                    scale);
        for (int b = 0; b < 2; b++) free(lg[b]), free(km[b]);
    }
    for (int b = 0; b < 2; b++) free(fr[b]), free(pcm[b]);
    acm_worker_free(w);
    acm_model_free(m);
    acmt_speech_student_free(s);
}
