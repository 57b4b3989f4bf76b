/*
 * speech_golden.h — reading the speech goldens of tests/reference/gen_speech_golden.py (test_speech*.c).
 */
#ifndef ACM_TESTS_SPEECH_GOLDEN_H
#define ACM_TESTS_SPEECH_GOLDEN_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>

#include "acm.h"
#include "safetensors.h"

typedef struct {
    acm_model *m;
    acm_st_file exp;
    json_t *runs;
} sg_golden;

static inline void sg_open(sg_golden *g, const char *name) {
    char path[256], err[512];
    snprintf(path, sizeof path, "tests/golden/%s.safetensors", name);
    g->m = acm_model_load(path, err, sizeof err);
    cr_assert(g->m, "load %s: %s", path, err);
    snprintf(path, sizeof path, "tests/golden/%s.expected.safetensors", name);
    cr_assert_eq(acm__st_open(&g->exp, path, err, sizeof err), 0, "%s", err);
    json_error_t je;
    json_t *meta = json_loads(acm__st_meta(&g->exp, "golden"), 0, &je);
    cr_assert(meta, "golden metadata: %s", je.text);
    g->runs = json_incref(json_object_get(meta, "runs"));
    json_decref(meta);
}

static inline void sg_close(sg_golden *g) {
    json_decref(g->runs);
    acm__st_close(&g->exp);
    acm_model_free(g->m);
}

/* run{r}.{what}{b}, or NULL */
static inline const void *sg_tensor(sg_golden *g, int r, const char *what, int b) {
    char nm[64];
    snprintf(nm, sizeof nm, "run%d.%s%d", r, what, b);
    const acm_st_tensor *t = acm__st_find(&g->exp, nm);
    return t ? t->data : NULL;
}

static inline acm_policy sg_policy(json_t *j) {
    acm_policy p = acm_policy_default();
    int kind = acm_policy_parse(json_string_value(json_object_get(j, "kind")));
    cr_assert_geq(kind, 0);
    p.kind = (acm_policy_kind)kind;
    if (json_object_get(j, "beta")) p.beta = (float)json_number_value(json_object_get(j, "beta"));
    if (json_object_get(j, "k")) p.fixed_k = (int)json_integer_value(json_object_get(j, "k"));
    return p;
}

/* Item b of run r: its audio, policy and forced k. */
static inline acm_item sg_item(sg_golden *g, int r, int b) {
    json_t *run = json_array_get(g->runs, (size_t)r);
    acm_item it = {.kind = ACM_ITEM_AUDIO,
                   .pcm = sg_tensor(g, r, "pcm", b),
                   .samples = json_integer_value(json_array_get(json_object_get(run, "samples"), (size_t)b)),
                   .policy = sg_policy(json_array_get(json_object_get(run, "policies"), (size_t)b)),
                   .force_k = sg_tensor(g, r, "force_k", b)};
    cr_assert(it.pcm, "run %d item %d: pcm missing", r, b);
    return it;
}

#endif
