/*
 * base_config.c — `acm-train base` configuration (see base_config.h). One table drives parsing, printing and help.
 */
#include "train/base_config.h"

#include <stdio.h>
#include <string.h>

typedef enum { K_INT, K_I64, K_DBL, K_STR } kind;
typedef struct {
    const char *key;
    kind k;
    size_t off;
    double lo, hi;
    const char *help;
} field;

#define F(key, k, lo, hi, help) {#key, k, offsetof(acmt_base_config, key), lo, hi, help}
static const field fields[] = {
    F(image_size, K_INT, 4, 1024, "input side"),
    F(patch_size, K_INT, 1, 64, "patch side"),
    F(dim, K_INT, 4, 4096, "width D"),
    F(depth, K_INT, 1, 64, "blocks"),
    F(heads, K_INT, 1, 64, "attention heads"),
    F(mlp_ratio, K_INT, 1, 16, "MLP hidden = mlp_ratio * D"),
    F(epochs, K_INT, 1, 10000, "passes over the training split"),
    F(batch_size, K_INT, 1, 4096, "images per step"),
    F(lr, K_DBL, 0, 1, "peak learning rate"),
    F(lr_min, K_DBL, 0, 1, "final learning rate (cosine)"),
    F(warmup_steps, K_INT, 0, 10000000, "linear warm-up steps"),
    F(weight_decay, K_DBL, 0, 10, "AdamW decoupled weight decay (matrices)"),
    F(beta1, K_DBL, 0, 1, "AdamW beta1"),
    F(beta2, K_DBL, 0, 1, "AdamW beta2"),
    F(eps, K_DBL, 0, 1, "AdamW epsilon"),
    F(grad_clip, K_DBL, 0, 1e9, "global gradient norm clip (0: off)"),
    F(label_smoothing, K_DBL, 0, 1, "label smoothing"),
    F(crop_pad, K_INT, 0, 64, "random crop padding"),
    F(flip, K_DBL, 0, 1, "horizontal flip probability"),
    F(erase_prob, K_DBL, 0, 1, "random erasing probability"),
    F(val_size, K_INT, 1, 1000000, "validation images from the training set"),
    F(train_limit, K_INT, 0, 100000000, "training images used (0: all)"),
    F(seed, K_I64, 0, 9e18, "seed of initialisation, order, augmentation"),
    F(split_seed, K_I64, 0, 9e18, "seed of the validation split"),
    F(threads, K_INT, 1, 256, "OpenBLAS threads"),
    F(log_every, K_INT, 1, 1000000, "steps between CSV rows"),
    F(ckpt_every_s, K_DBL, 1, 1e9, "seconds between checkpoints"),
    F(data_dir, K_STR, 0, 0, "folder of the Fashion-MNIST .gz files"),
};
#undef F
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

acmt_base_config acmt_base_config_default(void) {
    acmt_base_config c = {
        .image_size = 28, .patch_size = 4, .dim = 192, .depth = 6, .heads = 3, .mlp_ratio = 4,
        .epochs = 10, .batch_size = 128, .lr = 1e-3, .lr_min = 1e-5, .warmup_steps = 500,
        .weight_decay = 0.05, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .grad_clip = 1.0, .label_smoothing = 0.1,
        .crop_pad = 2, .flip = 0.5, .erase_prob = 0.25, .val_size = 5000, .train_limit = 0,
        .seed = 1, .split_seed = 0, .threads = 2, .log_every = 50, .ckpt_every_s = 300,
    };
    snprintf(c.data_dir, sizeof c.data_dir, "%s", "/usr/share/datasets/fashion-mnist");
    return c;
}

int acmt_base_config_apply(acmt_base_config *c, const json_t *o, char *err, size_t errlen) {
    if (!json_is_object(o)) {
        snprintf(err, errlen, "configuration: not a JSON object");
        return -1;
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)o, key, val) {
        const field *f = NULL;
        for (int i = 0; i < NFIELDS; i++)
            if (!strcmp(fields[i].key, key)) f = &fields[i];
        if (!f) {
            snprintf(err, errlen, "configuration: unknown key '%s'", key);
            return -1;
        }
        char *p = (char *)c + f->off;
        if (f->k == K_STR) {
            if (!json_is_string(val) || strlen(json_string_value(val)) >= sizeof c->data_dir) {
                snprintf(err, errlen, "configuration: '%s' must be a string (under 1024 bytes)", key);
                return -1;
            }
            snprintf(p, sizeof c->data_dir, "%s", json_string_value(val));
            continue;
        }
        if (!json_is_number(val) || ((f->k == K_INT || f->k == K_I64) && !json_is_integer(val))) {
            snprintf(err, errlen, "configuration: '%s' must be %s", key, f->k == K_DBL ? "a number" : "an integer");
            return -1;
        }
        double x = json_number_value(val);
        if (x < f->lo || x > f->hi) {
            snprintf(err, errlen, "configuration: '%s' = %g outside [%g, %g]", key, x, f->lo, f->hi);
            return -1;
        }
        if (f->k == K_INT) *(int *)p = (int)json_integer_value(val);
        else if (f->k == K_I64) *(int64_t *)p = (int64_t)json_integer_value(val);
        else *(double *)p = x;
    }
    if (c->image_size % c->patch_size || c->dim % c->heads) {
        snprintf(err, errlen, "configuration: image_size must be a multiple of patch_size and dim of heads");
        return -1;
    }
    return 0;
}

json_t *acmt_base_config_json(const acmt_base_config *c) {
    json_t *o = json_object();
    for (int i = 0; i < NFIELDS; i++) {
        const char *p = (const char *)c + fields[i].off;
        switch (fields[i].k) {
        case K_INT: json_object_set_new(o, fields[i].key, json_integer(*(const int *)p)); break;
        case K_I64: json_object_set_new(o, fields[i].key, json_integer(*(const int64_t *)p)); break;
        case K_DBL: json_object_set_new(o, fields[i].key, json_real(*(const double *)p)); break;
        case K_STR: json_object_set_new(o, fields[i].key, json_string(p)); break;
        }
    }
    return o;
}

void acmt_base_config_help(void) {
    acmt_base_config d = acmt_base_config_default();
    printf("configuration keys (JSON object; all optional):\n");
    for (int i = 0; i < NFIELDS; i++) {
        const char *p = (const char *)&d + fields[i].off;
        char def[1100];
        switch (fields[i].k) {
        case K_INT: snprintf(def, sizeof def, "%d", *(const int *)p); break;
        case K_I64: snprintf(def, sizeof def, "%lld", (long long)*(const int64_t *)p); break;
        case K_DBL: snprintf(def, sizeof def, "%g", *(const double *)p); break;
        case K_STR: snprintf(def, sizeof def, "%s", p); break;
        }
        printf("  %-16s %-36s %s\n", fields[i].key, def, fields[i].help);
    }
}
