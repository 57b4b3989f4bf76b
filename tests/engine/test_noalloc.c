/*
 * test_noalloc.c — acm_worker_run allocates nothing (docs/DESIGN.md §2: scratch is sized at worker creation).
 *
 * Allocator calls are counted by alloc_count.h (this binary is linked with --wrap=malloc & co.): OpenBLAS's buffers,
 * libc's and Criterion's own allocations are invisible to it. That is why policy.c's CAP sorts in place (glibc's
 * qsort_r would malloc a merge buffer, unseen here).
 *
 * For every policy, forced k and a mix in one batch, at the worker's largest batch and at batch 1, in every execution
 * mode but the test-only REFERENCE, after one warm-up batch: zero calls. Models: the golden ones and a random all-ACM
 * model (stacked q|k|v gates).
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "bench/vit_random.h"
#include "model.h"
#include "vit.h"
#include "alloc_count.h"

#define MAXB 8

/* The wrapper sees our own allocations: a sanity check that the link flags are in place. */
Test(noalloc, wrapper_counts) {
    alloc_counting = 1;
    alloc_calls = 0;
    void *p = malloc(16);
    free(p);
    alloc_counting = 0;
    cr_assert_eq(alloc_calls, 2, "the --wrap link flags are missing: %ld calls counted", alloc_calls);
}

static void check(const char *what, const acm_model *m) {
    const acm_config *c = acm_model_config(m);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes;
    const size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    char err[256];
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = MAXB}, err, sizeof err);
    cr_assert(w, "%s", err);
    float *pix = malloc(sizeof(float) * img * MAXB), *logits = malloc(sizeof(float) * K * MAXB);
    uint8_t *kmap = malloc((size_t)MAXB * (A ? A : 1) * T), *force = malloc((size_t)MAXB * (A ? A : 1) * T);
    cr_assert(pix && logits && kmap && force);
    uint64_t rng = 9;
    for (size_t i = 0; i < img * MAXB; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
    for (int b = 0; b < MAXB; b++) vr_draw_k(force + (size_t)b * A * T, m, 0.5, &rng);
    const int has_mean = c->mean_table_len > 0;
    acm_policy pols[] = {
        {.kind = ACM_POLICY_ARGMAX},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 1},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 99},
        {.kind = ACM_POLICY_MEAN, .beta = 0.5f, .lambda_set = !has_mean, .lambda = 1.0f},
        {.kind = ACM_POLICY_CAP, .beta = 0.3f},
        {.kind = ACM_POLICY_CAP, .beta = 1.0f},
    };
    const int npol = (int)(sizeof pols / sizeof *pols);
    acm_item items[MAXB];
    acm_result res[MAXB];
    acm__acm_scratch *s = acm__worker_scratch(w);
    static const int modes[3] = {ACM__EXEC_AUTO, ACM__EXEC_GROUPS, ACM__EXEC_PREFIX};
    static const int batches[2] = {MAXB, 1};
    for (int bi = 0; bi < 2; bi++) {
        const int B = batches[bi];
        for (int pi = 0; pi <= npol + 1; pi++) {
            for (int b = 0; b < B; b++) {
                items[b] = (acm_item){.pixels = pix + b * img};
                if (pi < npol) items[b].policy = pols[pi];
                else if (pi == npol) items[b].policy = pols[b % npol];
                else items[b].force_k = force + (size_t)b * A * T, items[b].policy = pols[0];
                res[b] = (acm_result){.logits = logits + b * K, .kmap = kmap + (size_t)b * A * T};
            }
            for (int mi = 0; mi < 3; mi++) {
                s->mode = modes[mi];
                cr_assert_eq(acm_worker_run(w, items, res, B, err, sizeof err), 0, "%s", err); /* warm-up */
                alloc_calls = 0;
                alloc_counting = 1;
                int rc = acm_worker_run(w, items, res, B, err, sizeof err);
                rc |= acm_worker_run(w, items, res, B, err, sizeof err);
                alloc_counting = 0;
                cr_assert_eq(rc, 0, "%s", err);
                cr_expect_eq(alloc_calls, 0, "%s batch %d policy %s mode %d: %ld allocator calls in acm_worker_run", what, B,
                             pi < npol ? acm_policy_name(pols[pi].kind) : pi == npol ? "mixed" : "forced", modes[mi],
                             alloc_calls);
            }
        }
    }
    s->mode = ACM__EXEC_AUTO;
    acm_worker_free(w);
    free(pix);
    free(logits);
    free(kmap);
    free(force);
}

static void check_golden(const char *name) {
    char path[256], err[512];
    snprintf(path, sizeof path, "tests/golden/%s.safetensors", name);
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "load %s: %s", path, err);
    check(name, m);
    acm_model_free(m);
}

Test(noalloc, golden_a) { check_golden("vit_a"); }
Test(noalloc, golden_b) { check_golden("vit_b"); }
Test(noalloc, golden_c) { check_golden("vit_c"); }
Test(noalloc, golden_d_stem) { check_golden("vit_d"); }

Test(noalloc, random_all_acm) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 5};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    check("random all-ACM", m);
    acm_model_free(m);
    vr_store_free(&st);
}

/* Budget-conditioned (FiLM) gates: the A|B gate halves and their per-item combination allocate nothing either. */
Test(noalloc, random_film_all_acm) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 5, .film = 1};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_assert_gt(acm_model_config(m)->film_gates, 0);
    check("random FiLM all-ACM", m);
    acm_model_free(m);
    vr_store_free(&st);
}
