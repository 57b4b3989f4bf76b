/*
 * test_speech_base.c — `acm-train speech-base` end to end on a tiny encoder and a small corpus written by the test
 * (the layout of speech_corpus.h: manifests and fp16 shards; random frames, texts over "abc "): the loss falls, a run
 * interrupted by SIGTERM and resumed ends bit for bit where an uninterrupted run ends (parameters, AdamW moments,
 * order, batch permutation, RNG states; across an epoch boundary after the resume), the model it writes loads in the
 * engine, `acm-train eval` (speech_eval.c) reproduces the run's final validation CER, and bad input is refused.
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

static void make_corpus(void) { fixture_speech_corpus(dir, sizeof dir, "speech-base"); }

static void write_config(const char *path, const char *extra) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "{\"corpus\": \"%s\", \"dim\": 16, \"depth\": 1, \"heads\": 2, \"mlp_ratio\": 2, \"chunk\": 4, "
            "\"left_context\": 6, \"epochs\": 3, \"batch_tokens\": 200, \"max_tokens\": 40, \"bucket_batches\": 3, "
            "\"lr\": 3e-3, \"warmup_steps\": 3, \"log_every\": 2, \"stats_utts\": 20, \"threads\": 2%s}\n",
            dir, extra ? extra : "");
    fclose(f);
}

static int run(int n, const char **args) { return fixture_run(cmd_speech_base, "speech-base", n, args); }

static void cleanup(void) { fixture_remove_dir(dir); }

Test(speech_base, smoke_loss_falls_and_the_engine_loads_the_model) {
    make_corpus();
    char cfg[128], out[128], csv[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(csv, sizeof csv, "%s/m.safetensors.csv", dir);
    write_config(cfg, ", \"dim\": 32, \"epochs\": 6");
    const char *a[] = {"--config", cfg, "--out", out, "--quiet"};
    cr_assert_eq(run(5, a), 0);
    FILE *f = fopen(csv, "r");
    cr_assert(f);
    char line[512];
    double first = -1, last = -1, val_cer = -1;
    int rows = 0;
    cr_assert(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f)) {
        double loss, vl, vc;
        /* step,epoch,utterances,tokens,lr,loss,grad_norm,tok_per_s,train_s,skipped,val_loss,val_cer,val_wer */
        if (sscanf(line, "%*d,%*f,%*d,%*d,%*f,%lf", &loss) == 1) {
            if (rows++ == 0) first = loss;
            last = loss;
        } else {
            cr_assert_eq(sscanf(line, "%*d,%*f,0,0,,,,,%*f,0,%lf,%lf", &vl, &vc), 2, "bad final row: %s", line);
            val_cer = vc;
        }
    }
    fclose(f);
    cr_assert(rows >= 10, "%d rows", rows);
    cr_assert(last < first - 0.5, "loss did not fall: first window %.4f, last %.4f", first, last);
    cr_assert(val_cer >= 0 && val_cer <= 1.5, "final validation row missing or CER %g", val_cer);
    char err[256];
    acm_model *m = acm_model_load(out, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->arch, ACM_ARCH_SPEECH);
    cr_expect_eq(c->num_classes, 29);
    cr_expect_eq(c->chunk, 4);
    cr_expect_eq(c->left_context, 6);
    acm_model_free(m);
    /* the evaluation of the written model on val: the same forward and the same greedy decoder as the validation */
    acmt_speech_eval_params ep = {.corpus = dir, .split = "val", .beam = 4};
    acmt_speech_eval_result r;
    cr_assert_eq(acmt_speech_eval(out, &ep, &r, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.utterances, 8);
    cr_expect(fabs(acmt_wer_char_rate(&r.greedy) - val_cer) < 1e-6, "eval CER %.6f, training's final validation %.6f",
              acmt_wer_char_rate(&r.greedy), val_cer);
    cr_expect_eq(r.beam.utterances, 8);
    cr_expect(r.n_speakers == 3, "%d speakers", r.n_speakers);
    cr_expect(r.flops > 0 && r.audio_seconds > 0);
    free(r.speakers);
    ep.limit = 3;
    cr_assert_eq(acmt_speech_eval(out, &ep, &r, err, sizeof err), 0, "%s", err);
    cr_expect_eq(r.utterances, 3);
    free(r.speakers);
    /* a transcript outside the alphabet is named */
    char tsv[128];
    snprintf(tsv, sizeof tsv, "%s/val.tsv", dir);
    FILE *t = fopen(tsv, "a");
    fprintf(t, "val-x\t0\t0\t40\t6640\tspk0\tespeak-ng\tv\tcommand\tclean\tHello\n");
    fclose(t);
    ep.limit = 0;
    cr_assert_eq(acmt_speech_eval(out, &ep, &r, err, sizeof err), -1);
    cr_expect(strstr(err, "val-x") && strstr(err, "'H'"), "%s", err);
    cleanup();
}

/* Compares every tensor of two checkpoints byte for byte, and their state. */
static void same_checkpoints(const char *p1, const char *p2, int64_t step) {
    const char *names[] = {"params", "adam_m", "adam_v", "order", "perm"};
    const char *keys[] = {"step", "total", "epoch", "bpos", "nb", "rng_order", "rng_aug", "best_val_cer"};
    json_t *sa = fixture_same_checkpoints(p1, p2, names, 5, keys, 8);
    cr_assert_eq(json_integer_value(json_object_get(sa, "step")), step);
    cr_assert(json_integer_value(json_object_get(sa, "epoch")) >= 1, "the runs should cross an epoch boundary");
    json_decref(sa);
}

Test(speech_base, sigterm_and_resume_is_bit_exact) {
    make_corpus();
    char cfg[128], out[128], ck1[128], ck2[128], csv1[128], csv2[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(ck1, sizeof ck1, "%s/straight.ckpt", dir);
    snprintf(ck2, sizeof ck2, "%s/resumed.ckpt", dir);
    snprintf(csv1, sizeof csv1, "%s/straight.csv", dir);
    snprintf(csv2, sizeof csv2, "%s/resumed.csv", dir);
    write_config(cfg, NULL);
    /* 60 utterances of ~22 tokens in batches of 200 tokens: ~7 steps per epoch; stop at 4, resume to 12 */
    const char *straight[] = {"--config", cfg, "--out", out, "--ckpt", ck1, "--csv", csv1, "--max-steps", "12",
                              "--quiet"};
    cr_assert_eq(run(11, straight), 0);
    const char *first[] = {"--config", cfg, "--out", out, "--ckpt", ck2, "--csv", csv2, "--test-sigterm-at", "4",
                           "--quiet"};
    cr_assert_eq(run(11, first), 0);
    const char *second[] = {"--out", out, "--ckpt", ck2, "--csv", csv2, "--resume", "--max-steps", "12", "--quiet"};
    cr_assert_eq(run(10, second), 0);
    same_checkpoints(ck1, ck2, 12);
    cr_assert(access(out, F_OK) != 0, "no model is written before the last step");
    /* the CSV of the resumed run equals the straight one but for the timing columns: same steps and losses */
    FILE *f1 = fopen(csv1, "r"), *f2 = fopen(csv2, "r");
    char l1[512], l2[512];
    int rows = 0;
    while (fgets(l1, sizeof l1, f1)) {
        cr_assert(fgets(l2, sizeof l2, f2), "resumed CSV shorter");
        double a1, a2;
        long s1, s2;
        if (rows++ && sscanf(l1, "%ld,%*f,%*d,%*d,%*f,%lf", &s1, &a1) == 2) {
            cr_assert_eq(sscanf(l2, "%ld,%*f,%*d,%*d,%*f,%lf", &s2, &a2), 2);
            cr_assert_eq(s1, s2);
            cr_assert_eq(a1, a2, "step %ld: loss %.6f vs %.6f", s1, a1, a2);
        }
    }
    cr_assert(!fgets(l2, sizeof l2, f2), "resumed CSV longer");
    fclose(f1);
    fclose(f2);
    cleanup();
}

/* --epochs on resume lengthens or shortens a run: the schedule is laid out again and the run ends at the new total; a
 * total at or before the checkpoint's step is refused and changes nothing; --epochs without --resume is refused. */
Test(speech_base, resume_with_other_epochs) {
    make_corpus();
    char cfg[128], out[128], ck[128], csv[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(ck, sizeof ck, "%s/m.ckpt", dir);
    snprintf(csv, sizeof csv, "%s/m.csv", dir);
    write_config(cfg, NULL); /* 3 epochs */
    const char *first[] = {"--config", cfg, "--out", out, "--ckpt", ck, "--csv", csv, "--max-steps", "10", "--quiet"};
    cr_assert_eq(run(11, first), 0);
    acm_st_file f;
    char err[256];
    cr_assert_eq(acm__st_open(&f, ck, err, sizeof err), 0, "%s", err);
    json_t *st = json_loads(acm__st_meta(&f, "acm_train"), 0, NULL);
    const int64_t total3 = json_integer_value(json_object_get(st, "total"));
    json_decref(st);
    acm__st_close(&f);
    cr_assert(total3 > 10 && total3 % 3 == 0, "total %lld", (long long)total3);
    const char *too_short[] = {"--out", out, "--ckpt", ck, "--csv", csv, "--resume", "--epochs", "1", "--quiet"};
    cr_assert_eq(run(10, too_short), 1, "one epoch ends before step 10");
    const char *no_resume[] = {"--config", cfg, "--out", out, "--epochs", "2", "--quiet"};
    cr_assert_eq(run(7, no_resume), 2);
    const char *longer[] = {"--out", out, "--ckpt", ck, "--csv", csv, "--resume", "--epochs", "4", "--quiet"};
    cr_assert_eq(run(10, longer), 0);
    cr_assert_eq(acm__st_open(&f, ck, err, sizeof err), 0, "%s", err);
    st = json_loads(acm__st_meta(&f, "acm_train"), 0, NULL);
    cr_expect_eq(json_integer_value(json_object_get(st, "step")), total3 / 3 * 4, "the run ends at 4 epochs");
    cr_expect_eq(json_integer_value(json_object_get(st, "total")), total3 / 3 * 4);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(st, "config"), "epochs")), 4);
    json_decref(st);
    acm__st_close(&f);
    cr_assert(access(out, F_OK) == 0, "the model is written at the end");
    cleanup();
}

Test(speech_base, bad_input_is_refused) {
    make_corpus();
    char cfg[128], out[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"dim\": 16, \"no_such_key\": 1}");
    fclose(f);
    const char *a[] = {"--config", cfg, "--out", out, "--quiet"};
    cr_assert_eq(run(5, a), 1);
    f = fopen(cfg, "w");
    fprintf(f, "{\"dim\": 15, \"heads\": 3}"); /* head width 5: odd, no rotary */
    fclose(f);
    cr_assert_eq(run(5, a), 1);
    f = fopen(cfg, "w");
    fprintf(f, "{\"corpus\": \"%s/nowhere\"}", dir);
    fclose(f);
    cr_assert_eq(run(5, a), 1);
    const char *b[] = {"--out", out, "--resume", "--quiet"}; /* no checkpoint */
    cr_assert_eq(run(4, b), 1);
    cr_assert(access(out, F_OK) != 0);
    cleanup();
}
