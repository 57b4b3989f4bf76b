/*
 * test_cmd_eval.c — `acm-train eval --backend` (train/cmd_eval.c): the backend the images ran on is reported (text and
 * --json), and a backend that cannot run here is refused at start with the reason, before any image is read.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
