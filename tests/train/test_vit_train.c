/*
 * test_vit_train.c — the whole training composition (engine forward + train/vit_train.c backward) against central
 * finite differences of the loss, on a tiny ViT (8×8 images, patch 4, D 8, 2 blocks, 2 heads, 3 classes, batch 3),
 * and on the same with a two-layer convolutional stem (3 channels stride 1, 4 channels stride 2: 8×8 -> 4×4, patch 2).
 * Every parameter tensor is probed (up to 6 elements each). The forward runs in float, so the difference uses
 * h = 1e-2 on a loss of order 1 (rounding noise ≈ 1e-7/h = 1e-5, truncation O(h²)·f''' ≈ 1e-4) and the tolerance is
 * |analytic − numeric| ≤ 1e-3 + 2e-2·|numeric|. A wrong buffer or a missing term gives errors of order 100%.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "train/vit_train.h"

static const acmt_vit_config tiny = {.image_size = 8, .patch_size = 4, .in_chans = 1, .dim = 8, .depth = 2,
                                     .heads = 2, .mlp_hidden = 16, .num_classes = 3, .ln_eps = 1e-6f};

static const acmt_vit_config tiny_stem = {.image_size = 8, .patch_size = 2, .in_chans = 1, .dim = 8, .depth = 2,
                                          .heads = 2, .mlp_hidden = 16, .num_classes = 3, .ln_eps = 1e-6f,
                                          .stem_depth = 2, .stem_chans = {3, 4}, .stem_stride = {1, 2}};

static double loss_at(acmt_vit *v, const float *x, const int32_t *y, int B) {
    char err[256];
    cr_assert_eq(acmt_vit_forward(v, x, B, err, sizeof err), 0, "%s", err);
    /* mean smoothed cross-entropy, computed in double from the logits */
    double L = 0;
    const int K = v->cfg.num_classes;
    for (int b = 0; b < B; b++) {
        const float *z = v->acts.logits + b * K;
        double mx = z[0], s = 0;
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        for (int k = 0; k < K; k++) s += exp(z[k] - mx);
        for (int k = 0; k < K; k++) L -= (0.1 / K + (k == y[b] ? 0.9 : 0)) * (z[k] - mx - log(s));
    }
    return L / B;
}

static void check_gradients(const acmt_vit_config *cfg) {
    char err[256];
    const int B = 3;
    acmt_vit *v = acmt_vit_new(cfg, B, err, sizeof err);
    cr_assert(v, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 7, 0);
    /* larger than timm's init, so that every path carries a gradient well above the noise */
    for (int64_t i = 0; i < v->nparams; i++) v->params[i] = 0.4f * acmt_rng_normal(&r);
    for (int i = 0; i < v->ntab; i++)
        if (strstr(v->tab[i].name, "norm") && strstr(v->tab[i].name, "weight"))
            for (int64_t j = 0; j < v->tab[i].numel; j++) v->params[v->tab[i].offset + j] += 1.0f;
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = acmt_rng_normal(&r);
    int32_t y[3] = {0, 2, 1};

    cr_assert_eq(acmt_vit_forward(v, x, B, err, sizeof err), 0, "%s", err);
    double L0 = acmt_vit_backward(v, y, B, 0.1f, NULL);
    cr_assert(fabs(L0 - loss_at(v, x, y, B)) < 1e-5, "loss %g vs %g", L0, loss_at(v, x, y, B));
    float *g = malloc(sizeof(float) * (size_t)v->nparams);
    memcpy(g, v->grads, sizeof(float) * (size_t)v->nparams);

    const double h = 1e-2;
    double worst = 0;
    const char *worst_name = "";
    int probed = 0;
    for (int t = 0; t < v->ntab; t++) {
        const acmt_param *p = &v->tab[t];
        int64_t step = p->numel / 6 + 1;
        for (int64_t j = 0; j < p->numel; j += step) {
            float *w = v->params + p->offset + j, keep = *w;
            *w = keep + (float)h;
            double lp = loss_at(v, x, y, B);
            *w = keep - (float)h;
            double lm = loss_at(v, x, y, B);
            *w = keep;
            double num = (lp - lm) / (2 * h), ana = g[p->offset + j];
            double excess = fabs(num - ana) - 2e-2 * fabs(num);
            if (excess > worst) {
                worst = excess;
                worst_name = p->name;
            }
            if (excess > 1e-3)
                cr_log_error("%s[%lld]: analytic %.6g, numeric %.6g", p->name, (long long)j, ana, num);
            probed++;
        }
    }
    cr_assert(worst <= 1e-3, "max |analytic - numeric| - 2e-2*|numeric| = %.3g (in %s; %d elements probed)", worst,
              worst_name, probed);
    free(g);
    acmt_vit_free(v);
}

Test(vit_train, gradients_match_finite_differences) { check_gradients(&tiny); }

Test(vit_train, stem_gradients_match_finite_differences) {
    check_gradients(&tiny_stem);
}

Test(vit_train, model_sees_parameter_updates) {
    /* The engine model is built over the parameter buffer: changing a parameter changes the next forward. */
    char err[256];
    acmt_vit *v = acmt_vit_new(&tiny, 1, err, sizeof err);
    cr_assert(v, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 1, 0);
    acmt_vit_init(v, &r);
    float x[64] = {0};
    cr_assert_eq(acmt_vit_forward(v, x, 1, err, sizeof err), 0);
    float before = v->acts.logits[1];
    for (int i = 0; i < v->ntab; i++)
        if (!strcmp(v->tab[i].name, "head.bias")) v->params[v->tab[i].offset + 1] += 1.0f;
    cr_assert_eq(acmt_vit_forward(v, x, 1, err, sizeof err), 0);
    cr_assert_float_eq(v->acts.logits[1], before + 1.0f, 1e-5f);
    acmt_vit_free(v);
}

/* save -> acm_model_load -> acm_worker_run gives the training forward's logits (one forward pass, same kernels) and
 * the engine counts the FLOPs the training side counts */
static void check_engine_equal(const acmt_vit_config *cfg) {
    char err[256], path[] = "/tmp/acm-test-vit-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    const int B = 3;
    acmt_vit *v = acmt_vit_new(cfg, B, err, sizeof err);
    cr_assert(v, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 3, 0);
    acmt_vit_init(v, &r);
    for (int64_t i = 0; i < v->nparams; i++) v->params[i] += 0.05f * acmt_rng_normal(&r);
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = acmt_rng_normal(&r);
    cr_assert_eq(acmt_vit_forward(v, x, B, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acmt_vit_save_model(v, path, "{\"eval\": {\"note\": \"test\"}}", err, sizeof err), 0, "%s", err);

    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_assert_eq(acm_model_param_count(m), v->nparams);
    acm_worker_params wp = acm_worker_default_params();
    wp.max_batch = B;
    acm_worker *w = acm_worker_new(m, wp, err, sizeof err);
    cr_assert(w, "%s", err);
    acm_item items[3];
    acm_result res[3];
    float logits[3][3];
    for (int b = 0; b < B; b++) {
        memset(&items[b], 0, sizeof items[b]);
        memset(&res[b], 0, sizeof res[b]);
        items[b].pixels = x + b * 64;
        items[b].policy = acm_policy_default();
        res[b].logits = logits[b];
    }
    cr_assert_eq(acm_worker_run(w, items, res, B, err, sizeof err), 0, "%s", err);
    for (int b = 0; b < B; b++)
        for (int k = 0; k < 3; k++)
            cr_assert_float_eq(logits[b][k], v->acts.logits[b * 3 + k], 1e-5f, "item %d class %d: engine %g, training %g",
                               b, k, logits[b][k], v->acts.logits[b * 3 + k]);
    cr_assert(fabs(res[0].flops_dense - acmt_vit_forward_flops(cfg)) < 1e-6 * res[0].flops_dense,
              "engine counts %.0f FLOPs, training %.0f", res[0].flops_dense, acmt_vit_forward_flops(cfg));
    acm_worker_free(w);
    acm_model_free(m);
    acmt_vit_free(v);
    unlink(path);
}

Test(vit_train, saved_model_runs_in_the_engine_with_the_same_logits) { check_engine_equal(&tiny); }

Test(vit_train, saved_stem_model_runs_in_the_engine_with_the_same_logits) { check_engine_equal(&tiny_stem); }

/* A mixed batch's loss and gradient are lam times those of the first labels plus (1 - lam) times the second's. */
Test(vit_train, mixed_loss_is_the_weighted_sum) {
    char err[256];
    const int B = 3;
    acmt_vit *v = acmt_vit_new(&tiny, B, err, sizeof err);
    cr_assert(v, "%s", err);
    acmt_rng r;
    acmt_rng_seed(&r, 5, 0);
    acmt_vit_init(v, &r);
    for (int64_t i = 0; i < v->nparams; i++) v->params[i] += 0.2f * acmt_rng_normal(&r);
    float x[3 * 64];
    for (int i = 0; i < 3 * 64; i++) x[i] = acmt_rng_normal(&r);
    int32_t ya[3] = {0, 2, 1}, yb[3] = {1, 2, 0};
    const float lam = 0.3f;
    float *ga = malloc(sizeof(float) * (size_t)v->nparams), *gb = malloc(sizeof(float) * (size_t)v->nparams);
    cr_assert_eq(acmt_vit_forward(v, x, B, err, sizeof err), 0, "%s", err);
    double la = acmt_vit_backward(v, ya, B, 0.1f, NULL);
    memcpy(ga, v->grads, sizeof(float) * (size_t)v->nparams);
    double lb = acmt_vit_backward(v, yb, B, 0.1f, NULL);
    memcpy(gb, v->grads, sizeof(float) * (size_t)v->nparams);
    double lm = acmt_vit_backward_mixed(v, ya, yb, lam, B, 0.1f, NULL);
    cr_assert(fabs(lm - (lam * la + (1 - lam) * lb)) < 1e-6, "mixed loss %g, want %g", lm, lam * la + (1 - lam) * lb);
    double worst = 0;
    for (int64_t i = 0; i < v->nparams; i++)
        worst = fmax(worst, fabs(v->grads[i] - (lam * ga[i] + (1 - lam) * gb[i])));
    cr_assert(worst < 1e-5, "max gradient difference %.3g", worst);
    free(ga);
    free(gb);
    acmt_vit_free(v);
}
