/*
 * test_speech_acmize.c — `acm-train acmize` on a static speech model (train/cmd_speech_acmize.c) end to end on a tiny
 * encoder trained by `acm-train speech-base` on a small corpus written by the test (the layout of speech_corpus.h, as
 * test_speech_base.c): the three phases run and write an ACM speech model that the engine loads (one ACM per block,
 * FiLM gates, budget.gate_beta), acm-train eval's path (speech_eval.c) keeps CAP's realised budget per utterance in
 * [beta - 0.02, beta] and refuses a budget below beta_min, acm-train calibrate on the val utterances writes the
 * MEAN and CAP tables (MEAN then lands near its budget), the log has rows of every phase, a run stopped by SIGTERM in phase 3 and resumed
 * ends bit for bit where an uninterrupted run ends (every checkpoint tensor and the state), and bad input is refused:
 * an image model given with a corpus, a corpus missing, a speech model that already has ACMs, a resume without a
 * checkpoint.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acm.h"
#include "safetensors.h"
#include "train/commands.h"
#include "train/rng.h"
#include "train/speech_corpus.h"
#include "train/speech_eval.h"
#include "train_fixture.h"

static char dir[64];

static void make_corpus(void) { fixture_speech_corpus(dir, sizeof dir, "speech-acmize"); }

static int run(int (*cmd)(int, char **), const char *name, int n, const char **args) {
    return fixture_run(cmd, name, n, args);
}

static void cleanup(void) { fixture_remove_dir(dir); }

/* A tiny static base model (2 blocks) trained for a few steps: the teacher. */
static void make_base(const char *out) { fixture_speech_base(dir, out, 2); }

#define CONV_ARGS "--learners", "4", "--gate-hidden", "4", "--epochs", "1,1,2", "--batch-tokens", "200", \
                  "--max-tokens", "40", "--log-every", "2", "--threads", "1", "--quiet"

Test(speech_acmize, three_phases_write_a_model_the_engine_runs) {
    make_corpus();
    char base[128], out[128], csv[128];
    snprintf(base, sizeof base, "%s/base.safetensors", dir);
    snprintf(out, sizeof out, "%s/acm.safetensors", dir);
    snprintf(csv, sizeof csv, "%s/acm.safetensors.csv", dir);
    make_base(base);
    const char *a[] = {"--base", base, "--corpus", dir, "--out", out, CONV_ARGS};
    cr_assert_eq(run(cmd_acmize, "acmize", (int)(sizeof a / sizeof *a), a), 0);
    char err[512];
    acm_model *m = acm_model_load(out, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->arch, ACM_ARCH_SPEECH);
    cr_expect_eq(c->num_acms, 2);
    cr_expect(fabsf(c->gate_beta - 0.625f) < 1e-4f, "gate_beta %g", (double)c->gate_beta);
    /* the engine runs it under CAP: the realised budget never exceeds beta */
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1, .max_tokens = 64}, err, sizeof err);
    cr_assert(w, "%s", err);
    float pcm[8000];
    acmt_rng r;
    acmt_rng_seed(&r, 9, 0);
    for (int i = 0; i < 8000; i++) pcm[i] = 0.2f * acmt_rng_normal(&r);
    float lg[64 * 32]; /* up to 64 tokens of 29 classes */
    for (int bi = 0; bi < 3; bi++) {
        const float beta = bi == 0 ? 0.25f : bi == 1 ? 0.5f : 1.0f;
        acm_policy p = acm_policy_default();
        p.kind = ACM_POLICY_CAP;
        p.beta = beta;
        acm_item it = {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = 8000, .policy = p};
        acm_result res = {.logits = lg};
        cr_assert_eq(acm_worker_run(w, &it, &res, 1, err, sizeof err), 0, "%s", err);
        cr_expect(res.budget <= beta + 1e-6, "beta %g: realised %g", (double)beta,
                  (double)res.budget);
        cr_assert(res.tokens > 0 && res.tokens <= 64);
        for (int i = 0; i < res.tokens * 29; i++) cr_assert(isfinite(lg[i]));
    }
    acm_worker_free(w);
    acm_model_free(m);
    /* acm-train eval's path on the val split: under CAP every utterance's realised budget in [beta - 0.02, beta]
     * (N = 4: beta = 0.25 and 0.5 are whole learners per token, so CAP spends them exactly), FLOPs rising with
     * beta, the full budget as FIXED k = N */
    double gf[3];
    for (int bi = 0; bi < 3; bi++) {
        acm_policy p = acm_policy_default();
        p.kind = ACM_POLICY_CAP;
        p.beta = bi == 0 ? 0.25f : bi == 1 ? 0.5f : 1.0f;
        acmt_speech_eval_params ep = {.corpus = dir, .split = "val", .beam = 2, .policy = &p};
        acmt_speech_eval_result er;
        cr_assert_eq(acmt_speech_eval(out, &ep, &er, err, sizeof err), 0, "%s", err);
        cr_expect_eq(er.utterances, 8);
        cr_expect(er.budget_max <= p.beta + 1e-9 && er.budget_min >= p.beta - 0.02 - 1e-9,
                  "CAP %g: realised budget per utterance in [%g, %g]", (double)p.beta, er.budget_min, er.budget_max);
        gf[bi] = er.flops / er.audio_seconds;
        free(er.speakers);
    }
    cr_expect(gf[0] < gf[1] && gf[1] < gf[2], "FLOPs per second of audio %g %g %g", gf[0], gf[1], gf[2]);
    /* acm-train calibrate on the val utterances: MEAN's lambda table and CAP's shares and order in the file; CAP on
     * the calibrated model still keeps every utterance within its budget */
    char cal[160];
    snprintf(cal, sizeof cal, "%s/cal.safetensors", dir);
    const char *ca[] = {out, "--corpus", dir, "--utterances", "8", "--betas", "0.3:0.9:0.2", "--out", cal,
                        "--threads", "1"};
    cr_assert_eq(run(cmd_calibrate, "calibrate", 11, ca), 0);
    acm_model *cm = acm_model_load(cal, err, sizeof err);
    cr_assert(cm, "%s", err);
    cr_expect(acm_model_config(cm)->mean_table_len >= 2, "mean table of %d", acm_model_config(cm)->mean_table_len);
    cr_expect(acm_model_config(cm)->cap_table_len >= 2, "cap table of %d", acm_model_config(cm)->cap_table_len);
    acm_model_free(cm);
    for (int bi = 0; bi < 2; bi++) {
        acm_policy p = acm_policy_default();
        p.kind = bi ? ACM_POLICY_MEAN : ACM_POLICY_CAP;
        p.beta = 0.5f;
        acmt_speech_eval_params ep = {.corpus = dir, .split = "val", .policy = &p};
        acmt_speech_eval_result er;
        cr_assert_eq(acmt_speech_eval(cal, &ep, &er, err, sizeof err), 0, "%s", err);
        if (!bi) cr_expect(er.budget_max <= 0.5 + 1e-9, "calibrated CAP 0.5: realised up to %g", er.budget_max);
        else cr_expect(fabs(er.budget_mean - 0.5) < 0.1, "calibrated MEAN 0.5: mean realised %g", er.budget_mean);
        free(er.speakers);
    }
    acm_policy low = acm_policy_default();
    low.kind = ACM_POLICY_CAP;
    low.beta = 0.1f; /* below the model's beta_min (0.25, the low end of the trained range): refused */
    acmt_speech_eval_params lp = {.corpus = dir, .split = "val", .policy = &low};
    acmt_speech_eval_result lr;
    cr_expect_eq(acmt_speech_eval(out, &lp, &lr, err, sizeof err), -1);
    cr_expect(strstr(err, "beta_min"), "%s", err);
    /* the log: rows of the three phases, phase 1's relative error of N learners below that of one */
    FILE *f = fopen(csv, "r");
    cr_assert(f);
    char line[1024];
    int seen[4] = {0};
    cr_assert(fgets(line, sizeof line, f));
    while (fgets(line, sizeof line, f)) {
        int ph;
        double e1, eN;
        cr_assert_eq(sscanf(line, "%d,%*d,%*f,%*f,%*f,%*f,%*f,%*f,%*f,%*f,%*f,%lf,%lf", &ph, &e1, &eN), 3, "%s", line);
        cr_assert(ph >= 1 && ph <= 3);
        seen[ph]++;
        if (ph == 1) cr_expect(eN < e1, "phase 1: N learners (%g) no better than one (%g)", eN, e1);
    }
    fclose(f);
    cr_expect(seen[1] && seen[2] && seen[3], "phases in the log: %d %d %d", seen[1], seen[2], seen[3]);
    cleanup();
}

static void same_checkpoints(const char *p1, const char *p2) {
    const char *names[] = {"params", "adam_m", "adam_v", "acm_params", "acm_m", "acm_v",
                           "film_params", "film_m", "film_v", "order", "perm"};
    const char *keys[] = {"phase", "step", "total_steps", "epoch", "bpos", "nb", "rng_order", "rng_gumbel"};
    json_t *sa = fixture_same_checkpoints(p1, p2, names, 11, keys, 8);
    cr_assert_eq(json_integer_value(json_object_get(sa, "phase")), 4);
    json_decref(sa);
}

Test(speech_acmize, sigterm_and_resume_is_bit_exact) {
    make_corpus();
    char base[128], out1[128], out2[128], ck2[128];
    snprintf(base, sizeof base, "%s/base.safetensors", dir);
    snprintf(out1, sizeof out1, "%s/straight.safetensors", dir);
    snprintf(out2, sizeof out2, "%s/resumed.safetensors", dir);
    snprintf(ck2, sizeof ck2, "%s/resumed.safetensors.ckpt", dir);
    make_base(base);
    const char *a[] = {"--base", base, "--corpus", dir, "--out", out1, CONV_ARGS};
    cr_assert_eq(run(cmd_acmize, "acmize", (int)(sizeof a / sizeof *a), a), 0);
    /* ~7 steps per phase-epoch: total step 18 is inside phase 3 (after 7 + 7 steps), mid-epoch */
    const char *b[] = {"--base", base, "--corpus", dir, "--out", out2, "--test-sigterm-at", "18", CONV_ARGS};
    cr_assert_eq(run(cmd_acmize, "acmize", (int)(sizeof b / sizeof *b), b), 0);
    cr_assert(access(out2, F_OK) != 0, "a stopped run wrote the model");
    acm_st_file f;
    char err[256];
    cr_assert_eq(acm__st_open(&f, ck2, err, sizeof err), 0, "%s", err);
    json_t *st = json_loads(acm__st_meta(&f, "acm_train"), 0, NULL);
    cr_expect_eq(json_integer_value(json_object_get(st, "phase")), 3, "the stop should fall in phase 3");
    cr_expect_eq(json_integer_value(json_object_get(st, "total_steps")), 18);
    json_decref(st);
    acm__st_close(&f);
    const char *c[] = {"--base", base, "--out", out2, "--resume", "--quiet"};
    cr_assert_eq(run(cmd_acmize, "acmize", 6, c), 0);
    char ck1[160];
    snprintf(ck1, sizeof ck1, "%s.ckpt", out1);
    same_checkpoints(ck1, ck2);
    /* the resume gave no --threads: it kept the run's one thread (two would split OpenBLAS's sums differently on
     * some kernels, e.g. Haswell's, and the run would not continue bit for bit there) */
    cr_assert_eq(acm__st_open(&f, ck2, err, sizeof err), 0, "%s", err);
    st = json_loads(acm__st_meta(&f, "acm_train"), 0, NULL);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(st, "config"), "threads")), 1);
    json_decref(st);
    acm__st_close(&f);
    cr_assert(access(out2, F_OK) == 0, "the resumed run did not write the model");
    cleanup();
}

Test(speech_acmize, bad_input_is_refused) {
    make_corpus();
    char base[128], out[128], acm[128], missing[128];
    snprintf(base, sizeof base, "%s/base.safetensors", dir);
    snprintf(out, sizeof out, "%s/x.safetensors", dir);
    snprintf(acm, sizeof acm, "%s/acm.safetensors", dir);
    snprintf(missing, sizeof missing, "%s/no-such-corpus", dir);
    make_base(base);
    /* a corpus that is not there */
    const char *a[] = {"--base", base, "--corpus", missing, "--out", out, "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 7, a), 0);
    /* no --corpus for a speech base */
    const char *b[] = {"--base", base, "--out", out, "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 5, b), 0);
    /* resume without a checkpoint */
    const char *c[] = {"--base", base, "--corpus", dir, "--out", out, "--resume", "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 8, c), 0);
    /* learners that do not divide the MLP width (32) */
    const char *d[] = {"--base", base, "--corpus", dir, "--out", out, "--learners", "5", "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 9, d), 0);
    cr_expect(access(out, F_OK) != 0, "a refused run wrote %s", out);
    /* an ACM speech model as the base: convert once (short), then feed its output back */
    const char *e[] = {"--base", base, "--corpus", dir, "--out", acm, "--epochs", "0.2,0.2,0.2", "--batch-tokens",
                       "200", "--max-tokens", "40", "--learners", "2", "--quiet"};
    cr_assert_eq(run(cmd_acmize, "acmize", 15, e), 0);
    const char *g[] = {"--base", acm, "--corpus", dir, "--out", out, "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 7, g), 0);
    cr_expect(access(out, F_OK) != 0, "a refused run wrote %s", out);
    /* a static image model given with a corpus: the ViT path refuses --corpus, nothing is written */
    const char *img = "models/fmnist-vit.safetensors";
    cr_assert(access(img, R_OK) == 0, "%s missing (tests run from the repository root)", img);
    const char *h[] = {"--base", img, "--corpus", dir, "--out", out, "--quiet"};
    cr_expect_neq(run(cmd_acmize, "acmize", 7, h), 0);
    cr_expect(access(out, F_OK) != 0, "a refused run wrote %s", out);
    cleanup();
}
