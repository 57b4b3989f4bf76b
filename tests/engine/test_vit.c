/*
 * test_vit.c — the engine's forward pass against the independent float64 reference (tests/reference/gen_golden.py).
 * For each golden model and run: logits within max|Δ| / max(1, max|ref|) <= 1e-4, k maps identical, FLOPs identical,
 * realised budgets equal to 1e-9. Runs cover every policy, mixed in one batch, and forced k (numerics apart from the
 * gates' decisions). Also: batch composition does not change an item's result.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "safetensors.h"

typedef struct {
    acm_model *m;
    acm_st_file exp;
    json_t *runs;
} golden;

static void golden_open(golden *g, const char *name) {
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

static void golden_close(golden *g) {
    json_decref(g->runs);
    acm__st_close(&g->exp);
    acm_model_free(g->m);
}

static const void *tensor(golden *g, int r, const char *what) {
    char nm[64];
    snprintf(nm, sizeof nm, "run%d.%s", r, what);
    const acm_st_tensor *t = acm__st_find(&g->exp, nm);
    return t ? t->data : NULL;
}

static acm_policy policy_of(json_t *j) {
    acm_policy p = acm_policy_default();
    int kind = acm_policy_parse(json_string_value(json_object_get(j, "kind")));
    cr_assert_geq(kind, 0);
    p.kind = (acm_policy_kind)kind;
    if (json_object_get(j, "beta")) p.beta = (float)json_number_value(json_object_get(j, "beta"));
    if (json_object_get(j, "k")) p.fixed_k = (int)json_integer_value(json_object_get(j, "k"));
    return p;
}

static void check_model(const char *name) {
    golden g;
    golden_open(&g, name);
    const acm_config *c = acm_model_config(g.m);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes;
    const size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    char err[256];
    acm_worker *w = acm_worker_new(g.m, (acm_worker_params){.max_batch = 3}, err, sizeof err);
    cr_assert(w, "%s", err);
    size_t nr = json_array_size(g.runs);
    cr_assert_geq(nr, 5);
    for (size_t r = 0; r < nr; r++) {
        json_t *run = json_array_get(g.runs, r);
        const float *pixels = tensor(&g, (int)r, "pixels");
        const float *ref_logits = tensor(&g, (int)r, "logits");
        const uint8_t *ref_kmap = tensor(&g, (int)r, "kmap");
        const uint8_t *force = tensor(&g, (int)r, "force_k");
        cr_assert(pixels && ref_logits && ref_kmap, "%s run %zu: tensors missing", name, r);
        acm_item items[3];
        acm_result res[3];
        float logits[3][64];
        uint8_t kmap[3][4096];
        cr_assert_leq(K, 64);
        cr_assert_leq((size_t)A * T, sizeof kmap[0]);
        for (int b = 0; b < 3; b++) {
            items[b] = (acm_item){.pixels = pixels + b * img,
                                  .policy = policy_of(json_array_get(json_object_get(run, "policies"), b)),
                                  .force_k = force ? force + (size_t)b * A * T : NULL};
            res[b] = (acm_result){.logits = logits[b], .kmap = kmap[b]};
        }
        cr_assert_eq(acm_worker_run(w, items, res, 3, err, sizeof err), 0, "%s", err);
        for (int b = 0; b < 3; b++) {
            double maxref = 1, maxd = 0;
            for (int k = 0; k < K; k++) {
                double rv = ref_logits[b * K + k];
                maxref = fmax(maxref, fabs(rv));
                maxd = fmax(maxd, fabs(rv - logits[b][k]));
            }
            cr_expect_leq(maxd / maxref, 1e-4, "%s run %zu item %d: logits max|Δ|/max(1,|ref|) = %.3g", name, r, b,
                          maxd / maxref);
            int diff = 0, first = -1;
            for (int i = 0; i < A * T; i++)
                if (kmap[b][i] != ref_kmap[(size_t)b * A * T + i]) {
                    diff++;
                    if (first < 0) first = i;
                }
            cr_expect_eq(diff, 0, "%s run %zu item %d: %d k decisions differ (first: ACM %d token %d: %d vs ref %d)",
                         name, r, b, diff, first / T, first % T, first >= 0 ? kmap[b][first] : 0,
                         first >= 0 ? ref_kmap[(size_t)b * A * T + first] : 0);
            double f = json_number_value(json_array_get(json_object_get(run, "flops"), b));
            double fd = json_number_value(json_array_get(json_object_get(run, "flops_dense"), b));
            double bu = json_number_value(json_array_get(json_object_get(run, "budget"), b));
            cr_expect_eq(res[b].flops, f, "%s run %zu item %d: flops %.17g vs ref %.17g", name, r, b, res[b].flops, f);
            cr_expect_eq(res[b].flops_dense, fd, "%s run %zu item %d: flops_dense %.17g vs ref %.17g", name, r, b,
                         res[b].flops_dense, fd);
            cr_expect(fabs(res[b].budget - bu) <= 1e-9, "%s run %zu item %d: budget %.12f vs ref %.12f", name, r, b,
                      res[b].budget, bu);
        }
        /* The same items one at a time give the same answers: nothing leaks between items of a batch. */
        for (int b = 0; b < 3; b++) {
            float one[64];
            uint8_t km[4096];
            acm_result r1 = {.logits = one, .kmap = km};
            cr_assert_eq(acm_worker_run(w, &items[b], &r1, 1, err, sizeof err), 0, "%s", err);
            double maxd = 0;
            for (int k = 0; k < K; k++) maxd = fmax(maxd, fabs(one[k] - logits[b][k]));
            cr_expect_leq(maxd, 1e-5, "%s run %zu item %d alone: logits differ by %.3g from the batch", name, r, b, maxd);
            cr_expect_eq(memcmp(km, kmap[b], (size_t)A * T), 0, "%s run %zu item %d alone: k map differs", name, r, b);
            cr_expect_eq(r1.flops, res[b].flops);
        }
    }
    acm_worker_free(w);
    golden_close(&g);
}

Test(vit, golden_a_mixed_fused_qkv_mlp_acm) { check_model("vit_a"); }
Test(vit, golden_b_three_channels_split_qkv) { check_model("vit_b"); }
Test(vit, golden_c_all_acm_f16) { check_model("vit_c"); }
Test(vit, golden_d_convolutional_stem) { check_model("vit_d"); }

Test(vit, worker_rejects_bad_runs) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/vit_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2}, err, sizeof err);
    cr_assert(w, "%s", err);
    float px[28 * 28] = {0}, lg[10];
    acm_item it = {.pixels = px, .policy = {.kind = ACM_POLICY_CAP, .beta = 0.0f}};
    acm_result r = {.logits = lg};
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "budget"), "message: %s", err);
    it.policy.beta = 1.5f;
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), ACM_EINVAL);
    it.policy.beta = NAN;
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), ACM_EINVAL);
    it.policy.beta = 0.5f;
    it.policy.cap_order = (acm_cap_order)7;
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "CAP order"), "message: %s", err);
    it.policy = acm_policy_default();
    px[100] = INFINITY; /* non-finite input: refused before anything runs, so a non-finite gate is the model's fault */
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "input value 100 is not finite"), "message: %s", err);
    px[100] = 0;
    acm_item three[3] = {it, it, it};
    acm_result rr[3] = {r, r, r};
    cr_expect_eq(acm_worker_run(w, three, rr, 3, err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "batch"), "message: %s", err);
    cr_expect_eq(acm_worker_run(w, three, rr, 0, err, sizeof err), ACM_EINVAL);
    cr_expect_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), 0, "%s", err);
    cr_expect_null(acm_worker_new(m, (acm_worker_params){.max_batch = 0}, err, sizeof err));
    acm_worker_free(w);
    acm_model_free(m);
}
