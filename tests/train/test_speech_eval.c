/*
 * test_speech_eval.c — `acm-train eval` on a speech model (train/speech_eval.c) over the corpus's recorded split
 * (pocketsphinx-testdata, built by acms_build in a second): the frames path (the training forward over the corpus's
 * fp16 log-mel) against the server's path (each recording decoded by proto/audio and run through acm_worker_run) on
 * the same random-weight model. They differ only by the fp16 rounding of the stored frames: logits within 0.05 (about
 * 1e-3 is typical), the same utterances, audio length and FLOPs. A model with ACM modules other than the speech conversion's, or a missing recording
 * directory is refused.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "train/rng.h"
#include "train/speech_corpus.h"
#include "train/speech_eval.h"
#include "train/speech_train.h"

#define REAL_DIR "/usr/share/pocketsphinx/test/data"

Test(speech_eval, the_server_path_on_recordings_equals_the_frames_path) {
    char dir[64], err[512], model[128];
    snprintf(dir, sizeof dir, "/tmp/acm-test-speech-eval-XXXXXX");
    cr_assert(mkdtemp(dir));
    acms_build_params bp = acms_build_default_params();
    bp.out = dir;
    bp.jobs = 1;
    bp.quiet = 1;
    bp.real_dir = REAL_DIR;
    for (int s = 0; s < ACMS_SPLIT_COUNT; s++) bp.count[s] = 0;
    cr_assert_eq(acms_build(&bp, err, sizeof err), 0, "%s (make deps: pocketsphinx-testdata)", err);

    /* a random model whose log-mel statistics come from the recordings, so that its logits vary */
    acmt_speech_config c = acmt_speech_default_config();
    c.dim = 32;
    c.depth = 2;
    c.heads = 2;
    c.mlp_hidden = 64;
    c.chunk = 8;
    c.left_context = 8;
    acmt_speech *s = acmt_speech_new(&c, 1, 16, 16, 0, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 2, 0);
    acmt_speech_init(s, &r);
    for (int64_t i = 0; i < s->nparams; i++) s->params[i] += 0.1f * acmt_rng_normal(&r);
    acms_utt *u = NULL;
    size_t n = 0;
    cr_assert_eq(acms_load_split(dir, "real", &u, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 12);
    double sum[ACMS_MELS] = {0}, sq[ACMS_MELS] = {0};
    int64_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        float *f = malloc(sizeof(float) * (size_t)u[i].frames * ACMS_MELS);
        cr_assert_eq(acms_read_frames(dir, "real", &u[i], f, err, sizeof err), 0, "%s", err);
        for (int64_t t = 0; t < u[i].frames; t++, nf++)
            for (int m = 0; m < ACMS_MELS; m++) {
                sum[m] += f[t * ACMS_MELS + m];
                sq[m] += (double)f[t * ACMS_MELS + m] * f[t * ACMS_MELS + m];
            }
        free(f);
    }
    free(u);
    float mean[ACMS_MELS], sd[ACMS_MELS];
    for (int m = 0; m < ACMS_MELS; m++) {
        mean[m] = (float)(sum[m] / nf);
        sd[m] = (float)sqrt(fmax(sq[m] / nf - (sum[m] / nf) * (sum[m] / nf), 1e-4));
    }
    acmt_speech_set_mel_stats(s, mean, sd);
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    cr_assert_eq(acmt_speech_save_model(s, model, NULL, err, sizeof err), 0, "%s", err);
    acmt_speech_free(s);

    acmt_speech_eval_params p = {.corpus = dir, .split = "real", .beam = 2};
    acmt_speech_eval_result fr, en;
    cr_assert_eq(acmt_speech_eval(model, &p, &fr, err, sizeof err), 0, "%s", err);
    p.audio_dir = REAL_DIR;
    cr_assert_eq(acmt_speech_eval(model, &p, &en, err, sizeof err), 0, "%s", err);
    cr_expect_eq(fr.utterances, 12);
    cr_expect_eq(en.utterances, 12);
    cr_expect_eq(fr.tokens, en.tokens);
    cr_expect(fabs(fr.audio_seconds - en.audio_seconds) < 1e-9 && fr.audio_seconds > 30);
    cr_expect(fabs(fr.flops - en.flops) < 1e-6 * fr.flops);
    cr_expect(en.engine_max_diff < 0.05, "the engine's logits from the recordings differ by %g", en.engine_max_diff);
    cr_expect_eq(fr.greedy.words, en.greedy.words);
    cr_log_info("speech eval: engine from audio vs frames: max |logit diff| %.3g; greedy CER %.3f vs %.3f",
                en.engine_max_diff, acmt_wer_char_rate(&en.greedy), acmt_wer_char_rate(&fr.greedy));
    free(fr.speakers);
    free(en.speakers);

    p.audio_dir = "/nonexistent";
    cr_assert_eq(acmt_speech_eval(model, &p, &en, err, sizeof err), -1);
    cr_expect(strstr(err, "/nonexistent/"), "%s", err);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(speech_eval, a_model_with_other_acm_modules_is_refused) {
    char dir[64], path[128], err[512];
    snprintf(dir, sizeof dir, "/tmp/acm-test-speech-eval-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/real.tsv", dir); /* an empty split: the model is what gets refused */
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fclose(f);
    acmt_speech_eval_params p = {.corpus = dir, .split = "real"};
    acmt_speech_eval_result r;
    /* the committed speech golden model whose every module is an ACM (tests/reference/gen_speech_golden.py) */
    cr_assert_eq(acmt_speech_eval("tests/golden/speech_b.safetensors", &p, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "one FiLM-gated MLP ACM per block"), "%s", err);
    unlink(path);
    rmdir(dir);
}
