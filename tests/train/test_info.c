/*
 * test_info.c — `acm-train info` (train/info.c) on a speech model: the JSON carries the speech fields (arch, chunk,
 * left context, rotary base, the front end), the text says them in words; a ViT model's output keeps its fields.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train_fixture.h"

/* Runs acm-train info with args; returns its stdout (malloc'd), asserting that it succeeded. */
static char *run_info(const char *args) {
    const char *b = getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/acm-train info %s", b, args);
    int st;
    char *out = fixture_capture(cmd, &st);
    if (st) free(out);
    cr_assert_eq(st, 0, "%s failed", cmd);
    return out;
}

Test(info, speech_json) {
    char *s = run_info("tests/golden/speech_a.safetensors --json");
    json_error_t je;
    json_t *o = json_loads(s, 0, &je);
    cr_assert(o, "not JSON: %s", je.text);
    json_t *a = json_object_get(o, "architecture");
    cr_expect_str_eq(json_string_value(json_object_get(a, "arch")), "speech");
    cr_expect_eq(json_integer_value(json_object_get(a, "chunk")), 4);
    cr_expect_eq(json_integer_value(json_object_get(a, "left_context")), 6);
    cr_expect_eq(json_integer_value(json_object_get(a, "num_classes")), 29);
    json_t *fe = json_object_get(a, "frontend");
    cr_expect_eq(json_integer_value(json_object_get(fe, "n_mels")), 80);
    cr_expect_eq(json_integer_value(json_object_get(fe, "stack")), 4);
    cr_expect_eq(json_integer_value(json_object_get(fe, "hop_length")), 160);
    cr_expect(json_number_value(json_object_get(o, "flops_dense_per_token")) > 0);
    cr_expect_null(json_object_get(o, "flops_dense_per_item"));
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(o, "labels"), 0)), "");
    json_decref(o);
    free(s);
}

Test(info, speech_text) {
    char *s = run_info("tests/golden/speech_a.safetensors");
    cr_expect(strstr(s, "speech encoder: width 32, depth 2, heads 2"), "%s", s);
    cr_expect(strstr(s, "4 frames per token (40 ms)"), "%s", s);
    cr_expect(strstr(s, "chunks         4 tokens (160 ms), left context 6 tokens (240 ms)"), "%s", s);
    cr_expect(strstr(s, "alphabet       blank, 'a', 'b'"), "%s", s);
    free(s);
}

Test(info, vit_unchanged) {
    char *s = run_info("tests/golden/vit_a.safetensors --json");
    json_t *o = json_loads(s, 0, NULL);
    cr_assert(o);
    cr_expect_null(json_object_get(json_object_get(o, "architecture"), "arch"));
    cr_expect(json_number_value(json_object_get(o, "flops_dense_per_item")) > 0);
    json_decref(o);
    free(s);
}
