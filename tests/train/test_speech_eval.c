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
#include "speech_fixture.h"
#include "train_fixture.h"
#include "train/wer.h"

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
    acmt_speech_config c = fixture_speech_small(8, 8);
    acmt_rng r;
    acmt_speech *s = fixture_speech_random(&c, 1, 16, 0, 2, &r);
    acms_utt *u = NULL;
    size_t n = 0;
    cr_assert_eq(acms_load_split(dir, "real", &u, &n, err, sizeof err), 0, "%s", err);
    cr_assert_eq(n, 12);
    fixture_mel_acc acc = {0};
    for (size_t i = 0; i < n; i++) {
        float *f = malloc(sizeof(float) * (size_t)u[i].frames * ACMS_MELS);
        cr_assert_eq(acms_read_frames(dir, "real", &u[i], f, err, sizeof err), 0, "%s", err);
        fixture_mel_add(&acc, f, u[i].frames);
        free(f);
    }
    free(u);
    float mean[ACMS_MELS], sd[ACMS_MELS];
    fixture_mel_stats(&acc, mean, sd);
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

/* Writes text into dir/name and returns the path in out. */
static const char *write_words(const char *dir, const char *name, const char *text, char *out, size_t cap) {
    snprintf(out, cap, "%s/%s", dir, name);
    FILE *f = fopen(out, "w");
    cr_assert(f);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
    return out;
}

Test(speech_eval, a_word_list_constrains_the_beam_only, .timeout = 300) {
    char dir[96], model[160], err[512], path[200];
    fixture_speech_corpus(dir, sizeof dir, "speech-eval-words");
    fixture_speech_split(dir, "test-seen", 8, 3);
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    fixture_speech_base(dir, model, 2);
    acmt_speech_eval_params p = {.corpus = dir, .split = "test-seen", .beam = 4};
    acmt_speech_eval_result free_beam, other, missing;
    cr_assert_eq(acmt_speech_eval(model, &p, &free_beam, err, sizeof err), 0, "%s", err);
    /* a list whose only word is in no transcript (they are spelled with a, b, c): every word the beam says is wrong,
     * so its errors reach the number of reference words; greedy is untouched */
    p.words = write_words(dir, "other.txt", "q\n", path, sizeof path);
    cr_assert_eq(acmt_speech_eval(model, &p, &other, err, sizeof err), 0, "%s", err);
    cr_expect_geq(acmt_wer_word_rate(&other.beam), 1.0, "beam on the list {q}: WER %.3f",
                  acmt_wer_word_rate(&other.beam));
    cr_expect_eq(acmt_wer_word_rate(&other.greedy), acmt_wer_word_rate(&free_beam.greedy));
    cr_expect_eq(other.utterances, free_beam.utterances);
    /* every word of the transcripts: the beam can say them all again */
    acms_utt *u = NULL;
    size_t n = 0;
    cr_assert_eq(acms_load_split(dir, "test-seen", &u, &n, err, sizeof err), 0, "%s", err);
    char all[4096] = "";
    for (size_t i = 0; i < n; i++) {
        strncat(all, u[i].text, sizeof all - strlen(all) - 2);
        strcat(all, "\n");
    }
    free(u);
    acmt_speech_eval_result own;
    p.words = write_words(dir, "own.txt", all, path, sizeof path);
    cr_assert_eq(acmt_speech_eval(model, &p, &own, err, sizeof err), 0, "%s", err);
    cr_expect_lt(acmt_wer_word_rate(&own.beam), acmt_wer_word_rate(&other.beam), "own list %.3f, {q} %.3f, free %.3f",
                 acmt_wer_word_rate(&own.beam), acmt_wer_word_rate(&other.beam), acmt_wer_word_rate(&free_beam.beam));
    /* a missing list and an unspellable word are refused, naming the file */
    p.words = "/nonexistent/words.txt";
    cr_expect_eq(acmt_speech_eval(model, &p, &missing, err, sizeof err), -1);
    cr_expect(strstr(err, "/nonexistent/words.txt"), "%s", err);
    p.words = write_words(dir, "bad.txt", "abc\nn0pe\n", path, sizeof path);
    cr_expect_eq(acmt_speech_eval(model, &p, &missing, err, sizeof err), -1);
    cr_expect(strstr(err, "bad.txt"), "%s", err);
    free(free_beam.speakers);
    free(other.speakers);
    free(own.speakers);
    fixture_remove_dir(dir);
}
