/*
 * test_cmd_eval.c — `acm-train eval` (train/cmd_eval.c): the backend the images ran on is reported (text and --json),
 * and a backend that cannot run here is refused at start with the reason, before any image is read; --split val
 * evaluates training's validation split, image for image.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "train/data.h"
#include "train/eval.h"
#include "train_fixture.h"

/* Runs acm-train eval with args (stderr into stdout); returns its output (malloc'd) and exit status. */
static char *run_eval(const char *args, int *status) {
    const char *b = getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/acm-train eval %s 2>&1", b, args);
    return fixture_capture(cmd, status);
}

Test(cmd_eval, backend_reported) {
    int st;
    char *s = run_eval("tests/golden/vit_a.safetensors --backend cpu --json", &st);
    cr_assert_eq(st, 0, "%s", s);
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    cr_assert(o, "not JSON: %s: %s", je.text, s);
    cr_expect_str_eq(json_string_value(json_object_get(o, "backend")), "cpu");
    cr_expect_eq(json_integer_value(json_object_get(o, "n")), 10000);
    json_decref(o);
    free(s);
    s = run_eval("tests/golden/vit_a.safetensors", &st);
    cr_assert_eq(st, 0, "%s", s);
    cr_expect(strstr(s, "images/s, backend cpu, BLAS "), "%s", s);
    free(s);
}

Test(cmd_eval, backend_refused) {
    int st;
    char *s = run_eval("tests/golden/vit_a.safetensors --backend tpu", &st);
    cr_expect_eq(st, 2);
    cr_expect(strstr(s, "acm-train eval: --backend: unknown backend 'tpu'"), "%s", s);
    free(s);
    s = run_eval("tests/golden/vit_a.safetensors --backend cuda", &st);
    /* a build without the CUDA backend, or without a GPU: refused with the reason; with both, it runs */
    cr_expect(st == 2 ? strstr(s, "acm-train eval: --backend: backend 'cuda'") != NULL : st == 0, "exit %d: %s", st, s);
    free(s);
}

/* --split val: the images are the validation split that training keeps out (acmt_images_split of the 60k training
 * images with the same size and seed), image for image, and the report says which split it ran on. */
typedef struct {
    const acmt_images *want;
    int64_t seen, same;
} split_check;

static void on_image(void *ctx, const acm_model *m, int64_t i, int label, int predicted, const acm_result *res,
                     const uint8_t *px) {
    (void)m, (void)predicted, (void)res;
    split_check *c = ctx;
    c->seen++;
    const int n = c->want->rows * c->want->cols;
    c->same += i < c->want->n && c->want->labels[i] == label && !memcmp(c->want->pixels + (size_t)i * n, px, (size_t)n);
}

Test(cmd_eval, validation_split_is_trainings) {
    const char *data = "/usr/share/datasets/fashion-mnist";
    acmt_images src, train, val;
    char err[512];
    cr_assert_eq(acmt_images_load(&src, data, "train", err, sizeof err), 0, "%s", err);
    cr_assert_eq(acmt_images_split(&train, &val, &src, 300, 7, 0, err, sizeof err), 0, "%s", err);
    split_check c = {.want = &val};
    acmt_eval_result r;
    acmt_eval_set_split(300, 7);
    cr_assert_eq(acmt_eval_model_ex("tests/golden/vit_a.safetensors", data, 64, acm_policy_default(), 0, on_image, &c,
                                    &r, err, sizeof err),
                 0, "%s", err);
    acmt_eval_set_split(0, 0);
    cr_expect_eq(r.n, 300);
    cr_expect_eq(c.seen, 300);
    cr_expect_eq(c.same, 300, "%lld of 300 images are the split's", (long long)c.same);
    acmt_images_free(&src), acmt_images_free(&train), acmt_images_free(&val);
    /* the command: the split named in the JSON, the size and seed honoured, bad values refused */
    int st;
    char *s = run_eval("tests/golden/vit_a.safetensors --split val --val-size 300 --split-seed 7 --json", &st);
    cr_assert_eq(st, 0, "%s", s);
    json_t *o = json_loads(s, 0, NULL);
    cr_assert(o, "not JSON: %s", s);
    cr_expect_str_eq(json_string_value(json_object_get(o, "split")), "val");
    cr_expect_eq(json_integer_value(json_object_get(o, "n")), 300);
    cr_expect_eq(json_integer_value(json_object_get(o, "correct")), r.correct);
    json_decref(o);
    free(s);
    s = run_eval("tests/golden/vit_a.safetensors --split train", &st);
    cr_expect(st == 2 && strstr(s, "--split must be test or val"), "exit %d: %s", st, s);
    free(s);
    s = run_eval("tests/golden/vit_a.safetensors --split val --val-size 0", &st);
    cr_expect(st == 2 && strstr(s, "--val-size 0: expected an integer >= 1"), "exit %d: %s", st, s);
    free(s);
}
