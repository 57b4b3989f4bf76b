/*
 * data.h — Fashion-MNIST for training: loading (proto/idx.c on the files of Debian's dataset-fashion-mnist), the
 * validation split, per-epoch shuffling, augmentation and normalisation into batches.
 *
 * Determinism: the split depends only on split_seed; the order of each epoch and every augmentation draw come from two
 * acmt_rng streams (order, aug) that the caller owns and checkpoints. The same states give the same batches,
 * bit for bit. The test set is loaded separately and is never seen by training (only by `acm-train eval`).
 *
 * Augmentation of one 28×28 image (applied in this order, each optional):
 *   random crop with padding: pad by `crop_pad` pixels of background (0), take a random 28×28 window;
 *   horizontal flip with probability `flip`;
 *   random erasing (Zhong et al. 2017) with probability `erase_prob`: one rectangle of area fraction
 *     U(erase_min, erase_max) and aspect ratio log-uniform in [0.3, 3.3], filled with 0 after normalisation
 *     (the data-set mean).
 * Normalisation: x = (pixel/255 − mean) / std, mean 0.2860, std 0.3530 (Fashion-MNIST training set statistics).
 */
#ifndef ACM_TRAIN_DATA_H
#define ACM_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "train/rng.h"

/* The ten classes' names, in label order (0 "T-shirt/top" .. 9 "Ankle boot"): the data set's documentation. */
extern const char *const acmt_fmnist_labels[10];

#define ACMT_FMNIST_MEAN 0.2860f
#define ACMT_FMNIST_STD 0.3530f

typedef struct {
    int64_t n;          /* images */
    int rows, cols;     /* 28, 28 */
    uint8_t *pixels;    /* [n, rows, cols], owned */
    int32_t *labels;    /* [n], owned */
} acmt_images;

typedef struct {
    int crop_pad;      /* 2 */
    float flip;        /* 0.5 */
    float erase_prob;  /* 0.25 */
    float erase_min, erase_max; /* 0.02, 0.25 */
} acmt_augment;

acmt_augment acmt_augment_default(void);
acmt_augment acmt_augment_none(void);

/* Reads DIR/{prefix}-images-idx3-ubyte.gz and DIR/{prefix}-labels-idx1-ubyte.gz (prefix "train" or "t10k").
 * Returns 0 or -1 with a message naming the file. */
int acmt_images_load(acmt_images *out, const char *dir, const char *prefix, char *err, size_t errlen);
void acmt_images_free(acmt_images *x);

/* Splits src into train and val: a permutation of src from split_seed, the first val_n images to val, the rest to
 * train (both keep the permuted order). limit_train > 0 keeps only that many training images (smoke tests).
 * Returns 0 or -1 (out of memory, or val_n out of range). */
int acmt_images_split(acmt_images *train, acmt_images *val, const acmt_images *src, int64_t val_n, uint64_t split_seed,
                      int64_t limit_train, char *err, size_t errlen);

/* Writes B normalised images x[B, 1, rows, cols] and labels y[B] for the items idx[0..B), augmented with aug from
 * rng (aug NULL or rng NULL: no augmentation). */
void acmt_make_batch(float *x, int32_t *y, const acmt_images *set, const int32_t *idx, int B, const acmt_augment *aug,
                     acmt_rng *rng);

/* Batch mixing (after acmt_make_batch): with probability cutmix_prob CutMix (Yun et al. 2019), else with probability
 * mixup_prob mixup (Zhang et al. 2018), else nothing; both off (0) by default, and then no random number is drawn,
 * so runs without mixing are bit-identical to runs made before it existed. As timm does, one weight per batch and
 * item b is mixed with item B-1-b (the batch reversed):
 *   mixup:  lambda ~ Beta(mixup_alpha, mixup_alpha); x_b = lambda x_b + (1 - lambda) x_{B-1-b}
 *   CutMix: lambda ~ Beta(cutmix_alpha, cutmix_alpha); a box of side sqrt(1 - lambda) times the image's, centre
 *           uniform over the image, clipped to it, is copied from x_{B-1-b}; lambda becomes 1 - (box area)/(image area)
 * The loss is then lambda CE(y) + (1 - lambda) CE(y2) with y2[b] = y[B-1-b] (acmt_vit_backward_mixed). */
typedef struct {
    float mixup_prob, cutmix_prob; /* 0, 0 (mixup_prob + cutmix_prob <= 1) */
    float mixup_alpha, cutmix_alpha; /* 0.8, 1.0 (timm's) */
} acmt_mix;

/* Mixes x[B, C, H, W] in place and writes y2[B]; returns lambda (1 and y2 = y when the batch is not mixed). */
float acmt_mix_batch(float *x, int32_t *y2, const int32_t *y, int B, int C, int H, int W, const acmt_mix *mix,
                     acmt_rng *rng);

/* A draw of Beta(a, a), a > 0 (two Gamma(a) draws by Marsaglia and Tsang). */
double acmt_rng_beta(acmt_rng *r, double a);

#endif
