/*
 * base_config.c — `acm-train base` configuration (see base_config.h). One table drives parsing, printing and help.
 */
#include "train/base_config.h"
#include "train/config_table.h"

#include <stdio.h>
#include <string.h>

#define F(key, k, lo, hi, help) {#key, k, offsetof(acmt_base_config, key), lo, hi, help}
static const acmt_config_key fields[] = {
    F(image_size, ACMT_KEY_INT, 4, 1024, "input side"),
    F(patch_size, ACMT_KEY_INT, 1, 64, "patch side"),
    F(dim, ACMT_KEY_INT, 4, 4096, "width D"),
    F(depth, ACMT_KEY_INT, 1, 64, "blocks"),
    F(heads, ACMT_KEY_INT, 1, 64, "attention heads"),
    F(mlp_ratio, ACMT_KEY_INT, 1, 16, "MLP hidden = mlp_ratio * D"),
    F(epochs, ACMT_KEY_INT, 1, 10000, "passes over the training split"),
    F(batch_size, ACMT_KEY_INT, 1, 4096, "images per step"),
    F(lr, ACMT_KEY_DBL, 0, 1, "peak learning rate"),
    F(lr_min, ACMT_KEY_DBL, 0, 1, "final learning rate (cosine)"),
    F(warmup_steps, ACMT_KEY_INT, 0, 10000000, "linear warm-up steps"),
    F(weight_decay, ACMT_KEY_DBL, 0, 10, "AdamW decoupled weight decay (matrices)"),
    F(beta1, ACMT_KEY_DBL, 0, 1, "AdamW beta1"),
    F(beta2, ACMT_KEY_DBL, 0, 1, "AdamW beta2"),
    F(eps, ACMT_KEY_DBL, 0, 1, "AdamW epsilon"),
    F(grad_clip, ACMT_KEY_DBL, 0, 1e9, "global gradient norm clip (0: off)"),
    F(label_smoothing, ACMT_KEY_DBL, 0, 1, "label smoothing"),
    F(crop_pad, ACMT_KEY_INT, 0, 64, "random crop padding"),
    F(flip, ACMT_KEY_DBL, 0, 1, "horizontal flip probability"),
    F(erase_prob, ACMT_KEY_DBL, 0, 1, "random erasing probability"),
    F(mixup_prob, ACMT_KEY_DBL, 0, 1, "probability of mixup per batch"),
    F(cutmix_prob, ACMT_KEY_DBL, 0, 1, "probability of CutMix per batch (mixup_prob + cutmix_prob <= 1)"),
    F(mixup_alpha, ACMT_KEY_DBL, 0.01, 100, "mixup's Beta(alpha, alpha)"),
    F(cutmix_alpha, ACMT_KEY_DBL, 0.01, 100, "CutMix's Beta(alpha, alpha)"),
    F(val_size, ACMT_KEY_INT, 1, 1000000, "validation images from the training set"),
    F(train_limit, ACMT_KEY_INT, 0, 100000000, "training images used (0: all)"),
    F(seed, ACMT_KEY_I64, 0, 9e18, "seed of initialisation, order, augmentation"),
    F(split_seed, ACMT_KEY_I64, 0, 9e18, "seed of the validation split"),
    F(threads, ACMT_KEY_INT, 1, 256, "OpenBLAS threads"),
    F(log_every, ACMT_KEY_INT, 1, 1000000, "steps between CSV rows"),
    F(ckpt_every_s, ACMT_KEY_DBL, 1, 1e9, "seconds between checkpoints"),
    F(data_dir, ACMT_KEY_STR, 0, 0, "folder of the Fashion-MNIST .gz files"),
    F(stem, ACMT_KEY_STR, 0, 0, "convolutional stem \"C/stride,...\" (3x3 layers; \"\": none)"),
};
#undef F
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

acmt_base_config acmt_base_config_default(void) {
    acmt_base_config c = {
        .image_size = 28, .patch_size = 4, .dim = 192, .depth = 6, .heads = 3, .mlp_ratio = 4,
        .epochs = 10, .batch_size = 128, .lr = 1e-3, .lr_min = 1e-5, .warmup_steps = 500,
        .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .grad_clip = 1.0, .label_smoothing = 0.1,
        .crop_pad = 2, .flip = 0.5, .erase_prob = 0.25, .mixup_alpha = 0.8, .cutmix_alpha = 1.0, .val_size = 5000, .train_limit = 0,
        .seed = 1, .split_seed = 0, .threads = 2, .log_every = 50, .ckpt_every_s = 300,
    };
    snprintf(c.data_dir, sizeof c.data_dir, "%s", "/usr/share/datasets/fashion-mnist");
    return c;
}

int acmt_base_config_apply(acmt_base_config *c, const json_t *o, char *err, size_t errlen) {
    if (acmt_config_keys_apply(fields, NFIELDS, c, sizeof c->data_dir, o, err, errlen)) return -1;
    if (c->mixup_prob + c->cutmix_prob > 1) {
        snprintf(err, errlen, "configuration: mixup_prob + cutmix_prob is %g, more than 1",
                 c->mixup_prob + c->cutmix_prob);
        return -1;
    }
    acmt_vit_config vc;
    if (acmt_base_config_vit(c, &vc, err, errlen)) return -1;
    int side = c->image_size;
    for (int i = 0; i < vc.stem_depth; i++) side = (side - 1) / vc.stem_stride[i] + 1;
    if (side % c->patch_size || c->dim % c->heads) {
        snprintf(err, errlen, "configuration: %s must be a multiple of patch_size and dim of heads",
                 vc.stem_depth ? "the stem's output side" : "image_size");
        return -1;
    }
    return 0;
}

int acmt_base_config_vit(const acmt_base_config *c, acmt_vit_config *vc, char *err, size_t errlen) {
    *vc = (acmt_vit_config){.image_size = c->image_size, .patch_size = c->patch_size, .in_chans = 1, .dim = c->dim,
                            .depth = c->depth, .heads = c->heads, .mlp_hidden = c->mlp_ratio * c->dim,
                            .num_classes = 10, .ln_eps = 1e-6f};
    const char *s = c->stem;
    while (*s) {
        int ch, st, n = 0;
        if (vc->stem_depth == ACM_MAX_STEM || sscanf(s, "%d/%d%n", &ch, &st, &n) != 2 || ch < 1 || ch > 1024 ||
            st < 1 || st > 4 || (s[n] && s[n] != ',') || (s[n] == ',' && !s[n + 1])) {
            snprintf(err, errlen, "configuration: stem \"%.64s\" must be up to %d layers \"C/stride\" separated by "
                     "commas, C in [1, 1024], stride in [1, 4]", c->stem, ACM_MAX_STEM);
            return -1;
        }
        vc->stem_chans[vc->stem_depth] = ch;
        vc->stem_stride[vc->stem_depth++] = st;
        s += n + (s[n] == ',');
    }
    return 0;
}

json_t *acmt_base_config_json(const acmt_base_config *c) {
    return acmt_config_keys_json(fields, NFIELDS, c);
}

void acmt_base_config_help(void) {
    acmt_base_config d = acmt_base_config_default();
    acmt_config_keys_help(fields, NFIELDS, &d, 36);
}
