/*
 * test_base.c — `acm-train base` end to end on a tiny ViT and a slice of Fashion-MNIST (seconds, never the real
 * training): the loss falls in a smoke run, and a run interrupted by SIGTERM and resumed ends bit for bit where an
 * uninterrupted run ends (parameters, AdamW moments, data order, RNG states).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "safetensors.h"
#include "train/ckpt.h"
#include "train/commands.h"
#include "train_fixture.h"

static char dir[64];

static void make_dir(void) { fixture_make_dir(dir, sizeof dir, "base"); }

static void write_config(const char *path, const char *extra) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f,
            "{\"patch_size\": 7, \"dim\": 16, \"depth\": 1, \"heads\": 2, \"mlp_ratio\": 2, \"epochs\": 1, "
            "\"batch_size\": 32, \"train_limit\": 2048, \"val_size\": 200, \"lr\": 3e-3, \"warmup_steps\": 5, "
            "\"log_every\": 5, \"threads\": 2%s}\n",
            extra ? extra : "");
    fclose(f);
}

static int run(int n, const char **args) { return fixture_run(cmd_base, "base", n, args); }

static void cleanup(void) { fixture_remove_dir(dir); }

Test(base, smoke_loss_falls) {
    make_dir();
    char cfg[128], out[128], csv[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(csv, sizeof csv, "%s/m.safetensors.csv", dir);
    write_config(cfg, ", \"dim\": 32, \"epochs\": 2, \"crop_pad\": 0, \"flip\": 0, \"erase_prob\": 0");
    const char *a[] = {"--config", cfg, "--out", out, "--max-steps", "60", "--quiet"};
    cr_assert_eq(run(7, a), 0);
    FILE *f = fopen(csv, "r");
    cr_assert(f);
    char line[512];
    double first = -1, last = -1;
    int rows = 0;
    cr_assert(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f)) {
        double loss;
        /* step,epoch,images,lr,loss,... */
        cr_assert_eq(sscanf(line, "%*d,%*f,%*d,%*f,%lf", &loss), 1, "bad row: %s", line);
        if (rows++ == 0) first = loss;
        last = loss;
    }
    fclose(f);
    cr_assert_eq(rows, 12, "60 steps, a row every 5: got %d rows", rows);
    cr_assert(last < first - 0.3, "loss did not fall: first window %.4f, last %.4f", first, last);
    cleanup();
}

/* Compares every tensor of two checkpoints byte for byte, and their step and RNG states. */
static void same_checkpoints(const char *p1, const char *p2) {
    const char *names[] = {"params", "adam_m", "adam_v", "order"};
    const char *keys[] = {"step", "epoch", "pos", "rng_order", "rng_aug"};
    json_t *sa = fixture_same_checkpoints(p1, p2, names, 4, keys, 5);
    cr_assert_eq(json_integer_value(json_object_get(sa, "step")), 20);
    json_decref(sa);
}

static void check_resume(const char *extra) {
    make_dir();
    char cfg[128], out[128], ck1[128], ck2[128], csv1[128], csv2[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(ck1, sizeof ck1, "%s/straight.ckpt", dir);
    snprintf(ck2, sizeof ck2, "%s/resumed.ckpt", dir);
    snprintf(csv1, sizeof csv1, "%s/straight.csv", dir);
    snprintf(csv2, sizeof csv2, "%s/resumed.csv", dir);
    /* epochs 2 with 2048/32 = 64 steps each: the schedule is the same for both runs whatever --max-steps says */
    write_config(cfg, extra);
    const char *straight[] = {"--config", cfg, "--out", out, "--ckpt", ck1, "--csv", csv1, "--max-steps", "20",
                              "--quiet"};
    cr_assert_eq(run(11, straight), 0);
    const char *first[] = {"--config", cfg, "--out", out, "--ckpt", ck2, "--csv", csv2, "--test-sigterm-at", "10",
                           "--quiet"};
    cr_assert_eq(run(11, first), 0);
    const char *second[] = {"--out", out, "--ckpt", ck2, "--csv", csv2, "--resume", "--max-steps", "20", "--quiet"};
    cr_assert_eq(run(10, second), 0);
    same_checkpoints(ck1, ck2);
    cr_assert(access(out, F_OK) != 0, "no model is written before the last step");
    cleanup();
}

Test(base, sigterm_and_resume_is_bit_exact) { check_resume(", \"epochs\": 2, \"erase_prob\": 0.5"); }

/* the same with mixup and CutMix on: their draws come from the checkpointed augmentation stream */
Test(base, sigterm_and_resume_is_bit_exact_with_mixing) {
    check_resume(", \"epochs\": 2, \"erase_prob\": 0.5, \"mixup_prob\": 0.4, \"cutmix_prob\": 0.4");
}

Test(base, bad_config_is_refused) {
    make_dir();
    char cfg[128], out[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    FILE *f = fopen(cfg, "w");
    fprintf(f, "{\"dim\": 16, \"no_such_key\": 1}");
    fclose(f);
    const char *a[] = {"--config", cfg, "--out", out, "--quiet"};
    cr_assert_eq(run(5, a), 1);
    const char *b[] = {"--out", out, "--resume", "--quiet"}; /* no checkpoint */
    cr_assert_eq(run(4, b), 1);
    cleanup();
}

/* --epochs on resume shortens (or lengthens) a run: the schedule is recomputed and the run ends at the new total; a
 * total at or before the checkpoint's step is refused and changes nothing; --epochs without --resume is refused. */
Test(base, resume_with_other_epochs) {
    make_dir();
    char cfg[128], out[128], ck[128], csv[128];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    snprintf(ck, sizeof ck, "%s/r.ckpt", dir);
    snprintf(csv, sizeof csv, "%s/r.csv", dir);
    write_config(cfg, ", \"epochs\": 3");
    const char *fresh_epochs[] = {"--config", cfg, "--out", out, "--epochs", "2", "--quiet"};
    cr_assert_eq(run(7, fresh_epochs), 2);
    const char *first[] = {"--config", cfg, "--out", out, "--ckpt", ck, "--csv", csv, "--max-steps", "70",
                           "--quiet"};
    cr_assert_eq(run(11, first), 0);
    const char *too_short[] = {"--out", out, "--ckpt", ck, "--csv", csv, "--resume", "--epochs", "1", "--quiet"};
    cr_assert_eq(run(10, too_short), 1, "64 steps in all, checkpoint at 70: refused");
    cr_assert(access(out, F_OK) != 0);
    const char *bad[] = {"--out", out, "--ckpt", ck, "--resume", "--epochs", "two", "--quiet"};
    cr_assert_eq(run(8, bad), 2);
    const char *shorter[] = {"--out", out, "--ckpt", ck, "--csv", csv, "--resume", "--epochs", "2", "--no-final",
                             "--quiet"};
    cr_assert_eq(run(11, shorter), 0);
    json_t *st = NULL;
    char err[256];
    cr_assert_eq(acmt_ckpt_read(ck, NULL, 0, &st, err, sizeof err), 0, "%s", err);
    cr_assert_eq(json_integer_value(json_object_get(st, "step")), 128, "the run ends at 2 epochs x 64 steps");
    cr_assert_eq(json_integer_value(json_object_get(json_object_get(st, "config"), "epochs")), 2);
    json_decref(st);
    cleanup();
}

/* A stem configuration trains and writes a model whose file carries the stem (the engine loads it and counts its
 * FLOPs); a malformed stem is refused with the key named. */
Test(base, stem_config_trains_and_bad_stem_is_refused) {
    make_dir();
    char cfg[128], out[128], err[256];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    snprintf(out, sizeof out, "%s/m.safetensors", dir);
    write_config(cfg, ", \"patch_size\": 2, \"stem\": \"4/1,6/2\", \"train_limit\": 256, \"val_size\": 64");
    const char *a[] = {"--config", cfg, "--out", out, "--quiet"};
    cr_assert_eq(run(5, a), 0);
    acm_model *m = acm_model_load(out, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_assert(c->stem_depth == 2 && c->stem_chans[1] == 6 && c->stem_stride[1] == 2 && c->tokens == 50);
    acm_model_free(m);
    const char *bad[] = {"4/1,6", "4/1,", "0/1", "4/5", "4/1,4/1,4/1,4/1,4/1"};
    for (int i = 0; i < 5; i++) {
        char extra[96];
        snprintf(extra, sizeof extra, ", \"patch_size\": 2, \"stem\": \"%s\"", bad[i]);
        write_config(cfg, extra);
        cr_assert_eq(run(5, a), 1, "stem \"%s\" accepted", bad[i]);
    }
    write_config(cfg, ", \"patch_size\": 4, \"stem\": \"4/1,6/2\""); /* the stem gives 14 x 14: 4 does not divide */
    cr_assert_eq(run(5, a), 1);
    cleanup();
}
