/*
 * base_config.h — the configuration of `acm-train base` (a JSON file; every key optional, unknown keys rejected).
 *
 *   key               default     meaning
 *   image_size        28          input side (Fashion-MNIST: 28)
 *   patch_size        4           patch side (28/4 = 7x7 = 49 patches + class token = 50 tokens)
 *   stem              ""          convolutional stem before the patches, "C/s,C/s,...": 3x3 layers (padding 1, +bias,
 *                                 GELU) to C channels at stride s; the patch then cuts the stem's output (e.g. "32/1,
 *                                 64/2" with patch_size 2: 28 -> 28 -> 14 -> 7x7 patches). "": none
 *   dim               192         width D
 *   depth             6           blocks
 *   heads             3           attention heads (D/heads = 64)
 *   mlp_ratio         4           MLP hidden = mlp_ratio * D
 *   epochs            10          passes over the training split (the last partial batch of each is dropped)
 *   batch_size        128
 *   lr                1e-3        peak learning rate (AdamW)
 *   lr_min            1e-5        end of the cosine
 *   warmup_steps      500         linear warm-up
 *   weight_decay      0.05        decoupled, on weight matrices only
 *   beta1, beta2, eps 0.9, 0.999, 1e-8
 *   grad_clip         1.0         global L2 norm (0: off)
 *   label_smoothing   0.1
 *   crop_pad          2           random crop after zero padding (0: off)
 *   flip              0.5         horizontal flip probability
 *   erase_prob        0.25        random erasing probability (area 0.02..0.25 of the image)
 *   mixup_prob        0           probability that a batch is mixed by mixup (train/data.h, acmt_mix_batch)
 *   cutmix_prob       0           probability that a batch is mixed by CutMix (mixup_prob + cutmix_prob <= 1)
 *   mixup_alpha       0.8         mixup's Beta(alpha, alpha)
 *   cutmix_alpha      1.0         CutMix's Beta(alpha, alpha)
 *   val_size          5000        validation images taken from the training set
 *   train_limit       0           use only this many training images (0: all; for smoke tests)
 *   seed              1           initialisation, order and augmentation
 *   split_seed        0           the validation split (independent of seed)
 *   threads           2           OpenBLAS threads
 *   log_every         50          steps between CSV rows
 *   ckpt_every_s      300         seconds between checkpoints
 *   data_dir          /usr/share/datasets/fashion-mnist
 */
#ifndef ACM_TRAIN_BASE_CONFIG_H
#define ACM_TRAIN_BASE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "train/vit_train.h"

typedef struct {
    int image_size, patch_size, dim, depth, heads, mlp_ratio;
    int epochs, batch_size;
    double lr, lr_min;
    int warmup_steps;
    double weight_decay, beta1, beta2, eps, grad_clip, label_smoothing;
    int crop_pad;
    double flip, erase_prob;
    double mixup_prob, cutmix_prob, mixup_alpha, cutmix_alpha;
    int val_size, train_limit;
    int64_t seed, split_seed;
    int threads, log_every;
    double ckpt_every_s;
    char data_dir[1024];
    char stem[1024]; /* "C/s,..." or "" (acmt_base_config_stem) */
} acmt_base_config;

acmt_base_config acmt_base_config_default(void);
/* Applies the keys of a JSON object onto c. Returns 0 or -1 with a message naming the key. */
int acmt_base_config_apply(acmt_base_config *c, const json_t *o, char *err, size_t errlen);
/* The full configuration as a JSON object (new reference). */
json_t *acmt_base_config_json(const acmt_base_config *c);
/* The ViT the configuration trains (Fashion-MNIST: one channel, 10 classes), its stem parsed. Returns 0 or -1 with a
 * message naming the key. */
int acmt_base_config_vit(const acmt_base_config *c, acmt_vit_config *vc, char *err, size_t errlen);
/* Prints the table of keys with their defaults (for --help). */
void acmt_base_config_help(void);

#endif
