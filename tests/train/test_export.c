/*
 * test_export.c — `acm-train export` (train/export.c) on a speech-base checkpoint: a tiny encoder trained to its end by
 * `acm-train speech-base` on a small corpus written by the test; the export of the checkpoint it leaves at its last
 * step holds every tensor of the model the run wrote, byte for byte, and the same architecture metadata, so it loads
 * and evaluates identically. A file that is not a training checkpoint is refused with its name.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "acm.h"
#include "safetensors.h"
#include "train/commands.h"
#include "train/speech_eval.h"
#include "train_fixture.h"

static char dir[64];

/* The "acm" metadata of a model file without its "train" part (what the run and the export say about themselves). */
static json_t *arch_meta(acm_st_file *f) {
    json_t *m = json_loads(acm__st_meta(f, "acm") ? acm__st_meta(f, "acm") : "", 0, NULL);
    cr_assert(m, "no acm metadata");
    json_object_del(m, "train");
    return m;
}

Test(export, a_speech_base_checkpoint_gives_the_model_the_run_writes, .timeout = 120) {
    fixture_speech_corpus(dir, sizeof dir, "export");
    char model[128], ckpt[128], exported[128], err[512];
    snprintf(model, sizeof model, "%s/m.safetensors", dir);
    snprintf(ckpt, sizeof ckpt, "%s/m.safetensors.ckpt", dir);
    snprintf(exported, sizeof exported, "%s/e.safetensors", dir);
    fixture_speech_base(dir, model, 2);
    const char *e[] = {ckpt, "--out", exported};
    cr_assert_eq(fixture_run(cmd_export, "export", 3, e), 0);

    acm_st_file m, x;
    cr_assert_eq(acm__st_open(&m, model, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acm__st_open(&x, exported, err, sizeof err), 0, "%s", err);
    cr_assert_eq(x.n, m.n, "%d tensors exported, the run wrote %d", x.n, m.n);
    for (int i = 0; i < m.n; i++) {
        const acm_st_tensor *t = &m.tensors[i], *u = acm__st_find(&x, t->name);
        cr_assert(u, "%s not exported", t->name);
        cr_assert(u->numel == t->numel && u->dtype == t->dtype, "%s: shape or type differs", t->name);
        cr_assert_eq(memcmp(u->data, t->data, (size_t)t->numel * 4), 0, "%s differs", t->name);
    }
    json_t *mm = arch_meta(&m), *xm = arch_meta(&x);
    cr_expect(json_equal(mm, xm), "the architecture metadata differs");
    json_t *xt = json_loads(acm__st_meta(&x, "acm"), 0, NULL);
    cr_expect(json_integer_value(json_object_get(json_object_get(xt, "train"), "exported_from_step")) > 0);
    json_decref(xt);
    json_decref(mm);
    json_decref(xm);
    acm__st_close(&m);
    acm__st_close(&x);

    /* and so the same evaluation */
    acmt_speech_eval_params p = {.corpus = dir, .split = "val", .beam = 4};
    acmt_speech_eval_result r1, r2;
    cr_assert_eq(acmt_speech_eval(model, &p, &r1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acmt_speech_eval(exported, &p, &r2, err, sizeof err), 0, "%s", err);
    cr_expect(r1.greedy.char_errors == r2.greedy.char_errors && r1.beam.word_errors == r2.beam.word_errors);
    free(r1.speakers);
    free(r2.speakers);

    const char *bad[] = {model, "--out", exported};
    cr_expect_eq(fixture_run(cmd_export, "export", 3, bad), 1, "a model file is not a checkpoint");
    fixture_remove_dir(dir);
}
