/*
 * eval.c — see eval.h. Pixels are normalised with the model's own preprocessing (acm_config mean/std).
 */
#include "train/eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "train/data.h"

static const char *eval_backend = "cpu";
void acmt_eval_set_backend(const char *name) { eval_backend = name; }
static int64_t eval_val_n;
static uint64_t eval_split_seed;
void acmt_eval_set_split(int64_t val_n, uint64_t split_seed) { eval_val_n = val_n, eval_split_seed = split_seed; }

/* The images to evaluate on (acmt_eval_set_split): the test set, or the validation split of the training set. */
static int load_images(acmt_images *out, const char *data_dir, char *err, size_t errlen) {
    if (!eval_val_n) return acmt_images_load(out, data_dir, "t10k", err, errlen);
    acmt_images src, train;
    if (acmt_images_load(&src, data_dir, "train", err, errlen)) return -1;
    int rc = acmt_images_split(&train, out, &src, eval_val_n, eval_split_seed, 0, err, errlen);
    acmt_images_free(&src);
    if (!rc) acmt_images_free(&train);
    return rc;
}

int acmt_eval_model(const char *model_path, const char *data_dir, int batch, acm_policy policy, acmt_eval_result *r,
                    char *err, size_t errlen) {
    return acmt_eval_model_ex(model_path, data_dir, batch, policy, 0, NULL, NULL, r, err, errlen);
}

int acmt_eval_model_ex(const char *model_path, const char *data_dir, int batch, acm_policy policy, int64_t limit,
                       acmt_eval_image_fn fn, void *ctx, acmt_eval_result *r, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    acm_model *m = acm_model_load(model_path, err, errlen);
    if (!m) return -1;
    const acm_config *c = acm_model_config(m);
    if (c->num_classes > ACMT_EVAL_MAX_CLASSES || c->in_chans != 1) {
        snprintf(err, errlen, "%s: %d classes, %d channels: not a Fashion-MNIST model", model_path, c->num_classes,
                 c->in_chans);
        acm_model_free(m);
        return -1;
    }
    acmt_images test;
    if (load_images(&test, data_dir, err, errlen)) {
        acm_model_free(m);
        return -1;
    }
    if (test.rows != c->image_size || test.cols != c->image_size) {
        snprintf(err, errlen, "%s: model input %d, images %dx%d", model_path, c->image_size, test.rows,
                 test.cols);
        acmt_images_free(&test);
        acm_model_free(m);
        return -1;
    }
    acm_worker_params wp = acm_worker_default_params();
    wp.max_batch = batch;
    wp.backend = eval_backend;
    acm_worker *w = acm_worker_new(m, wp, err, errlen);
    if (w) snprintf(r->backend, sizeof r->backend, "%s", acm_worker_backend(w));
    const int px = test.rows * test.cols, K = c->num_classes;
    float *x = malloc(sizeof(float) * (size_t)batch * px), *logits = malloc(sizeof(float) * (size_t)batch * K);
    uint8_t *kmaps = fn && c->num_acms ? malloc((size_t)batch * c->num_acms * c->tokens) : NULL;
    if (limit > 0 && limit < test.n) test.n = limit;
    acm_item *items = calloc((size_t)batch, sizeof *items);
    acm_result *res = calloc((size_t)batch, sizeof *res);
    int rc = 0;
    if (!w || !x || !logits || !items || !res) {
        if (w) snprintf(err, errlen, "out of memory");
        rc = -1;
        goto done;
    }
    r->classes = K;
    r->budget_min = 1e300;
    r->budget_max = -1e300;
    double bsum = 0, bsq = 0, fsum = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int64_t i = 0; i < test.n && !rc; i += batch) {
        int n = (int)(test.n - i < batch ? test.n - i : batch);
        for (int b = 0; b < n; b++) {
            const uint8_t *s = test.pixels + (size_t)(i + b) * px;
            for (int j = 0; j < px; j++) x[(size_t)b * px + j] = ((float)s[j] / 255.0f - c->mean[0]) / c->std[0];
            items[b].pixels = x + (size_t)b * px;
            items[b].policy = policy;
            res[b].logits = logits + (size_t)b * K;
            res[b].kmap = kmaps ? kmaps + (size_t)b * c->num_acms * c->tokens : NULL;
        }
        rc = acm_worker_run(w, items, res, n, err, errlen) ? -1 : 0;
        for (int b = 0; b < n && !rc; b++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (res[b].logits[k] > res[b].logits[best]) best = k;
            int t = test.labels[i + b];
            if (t >= K) {
                snprintf(err, errlen, "label %d outside the model's %d classes", t, K);
                rc = -1;
                break;
            }
            bsum += res[b].budget;
            bsq += res[b].budget * res[b].budget;
            fsum += res[b].flops;
            r->flops_dense = res[b].flops_dense;
            if (res[b].budget < r->budget_min) r->budget_min = res[b].budget;
            if (res[b].budget > r->budget_max) r->budget_max = res[b].budget;
            r->confusion[t][best]++;
            if (fn) fn(ctx, m, i + b, t, best, &res[b], test.pixels + (size_t)(i + b) * px);
            r->correct += best == t;
            r->n++;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    r->accuracy = r->n ? (double)r->correct / (double)r->n : 0;
    if (r->n) {
        r->budget_mean = bsum / (double)r->n;
        double var = bsq / (double)r->n - r->budget_mean * r->budget_mean;
        r->budget_std = var > 0 ? sqrt(var) : 0;
        r->flops_mean = fsum / (double)r->n;
    }
done:
    free(kmaps);
    free(x);
    free(logits);
    free(items);
    free(res);
    acm_worker_free(w);
    acmt_images_free(&test);
    acm_model_free(m);
    return rc;
}
