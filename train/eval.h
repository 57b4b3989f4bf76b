/*
 * eval.h — test-set evaluation of a model file through the engine's public API (acm_model_load, acm_worker_run):
 * accuracy, per-class accuracy and the confusion matrix on the 10k Fashion-MNIST test images.
 */
#ifndef ACM_TRAIN_EVAL_H
#define ACM_TRAIN_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"

#define ACMT_EVAL_MAX_CLASSES 16

typedef struct {
    int64_t n, correct;
    double accuracy;
    int classes;
    int64_t confusion[ACMT_EVAL_MAX_CLASSES][ACMT_EVAL_MAX_CLASSES]; /* [true][predicted] */
    double seconds;
    /* per image, under the policy: realised budget (mean, standard deviation, extremes), FLOPs executed (mean) */
    double budget_mean, budget_std, budget_min, budget_max;
    double flops_mean, flops_dense;
    char backend[16]; /* the engine backend the images ran on (acm_worker_backend) */
} acmt_eval_result;

/* The engine backend the evaluations of this process run on ("cpu" unless set; acm_worker_params.backend). */
void acmt_eval_set_backend(const char *name);

/* The images the evaluations of this process run on: the 10k test images (val_n 0, the default), or the validation
 * split that base training and acmize keep out of the 60k training images (val_n of them, split_seed: as
 * acmt_images_split; training's defaults are 5000 and 0): for choosing between models without the test set. */
void acmt_eval_set_split(int64_t val_n, uint64_t split_seed);

/* Evaluates every test image under `policy` (acm_policy_default(): the gates' argmax). */
int acmt_eval_model(const char *model_path, const char *data_dir, int batch, acm_policy policy, acmt_eval_result *r,
                    char *err, size_t errlen);

/* Called once per test image, in order: its index, true label, predicted class, the engine's result (with kmap
 * [num_acms, T] when the model has ACMs) and the raw pixels [rows * cols]. */
typedef void (*acmt_eval_image_fn)(void *ctx, const acm_model *m, int64_t index, int label, int predicted,
                                   const acm_result *res, const uint8_t *pixels);

/* acmt_eval_model on the first `limit` test images (0: all), calling `fn` (may be NULL) for each. */
int acmt_eval_model_ex(const char *model_path, const char *data_dir, int batch, acm_policy policy, int64_t limit,
                       acmt_eval_image_fn fn, void *ctx, acmt_eval_result *r, char *err, size_t errlen);

#endif
