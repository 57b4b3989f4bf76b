/*
 * speech_config.c — `acm-train speech-base` configuration (see speech_config.h). One table drives parsing, printing
 * and help, as base_config.c.
 */
#include "train/speech_config.h"

#include <stddef.h>
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

#define F(key, k, lo, hi, help) {#key, k, offsetof(acmt_speech_train_config, key), lo, hi, help}
static const field fields[] = {
    F(dim, K_INT, 4, 4096, "width D"),
    F(depth, K_INT, 1, 64, "blocks"),
    F(heads, K_INT, 1, 64, "attention heads (dim/heads even: rotary)"),
    F(mlp_ratio, K_INT, 1, 16, "MLP hidden = mlp_ratio * D"),
    F(stack, K_INT, 1, 64, "log-mel frames per token (10 ms each)"),
    F(chunk, K_INT, 1, 1024, "tokens per chunk (streaming latency)"),
    F(left_context, K_INT, 0, 65536, "tokens before its chunk a token sees"),
    F(epochs, K_INT, 1, 10000, "passes over the training split"),
    F(batch_tokens, K_INT, 16, 1000000, "tokens per step (utterances packed, no padding)"),
    F(max_items, K_INT, 1, 4096, "utterances per step at most"),
    F(bucket_batches, K_INT, 1, 100000, "length bucketing: sort windows of this many batches by length"),
    F(lr, K_DBL, 0, 1, "peak learning rate"),
    F(lr_min, K_DBL, 0, 1, "final learning rate (cosine)"),
    F(warmup_steps, K_INT, 0, 10000000, "linear warm-up steps"),
    F(weight_decay, K_DBL, 0, 10, "AdamW decoupled weight decay (matrices)"),
    F(beta1, K_DBL, 0, 1, "AdamW beta1"),
    F(beta2, K_DBL, 0, 1, "AdamW beta2"),
    F(eps, K_DBL, 0, 1, "AdamW epsilon"),
    F(grad_clip, K_DBL, 0, 1e9, "global gradient norm clip (0: off)"),
    F(time_masks, K_INT, 0, 100, "SpecAugment: time masks per utterance"),
    F(time_mask_max, K_INT, 0, 10000, "SpecAugment: widest time mask, frames"),
    F(freq_masks, K_INT, 0, 100, "SpecAugment: frequency masks per utterance"),
    F(freq_mask_max, K_INT, 0, 1024, "SpecAugment: widest frequency mask, mel bins"),
    F(max_tokens, K_INT, 1, 1000000, "longer training utterances are left out (tokens)"),
    F(train_limit, K_INT, 0, 100000000, "training utterances used (0: all; smoke tests)"),
    F(val_limit, K_INT, 0, 100000000, "validation utterances evaluated per epoch (0: all)"),
    F(stats_utts, K_INT, 1, 100000000, "utterances the log-mel mean and std are measured on"),
    F(seed, K_I64, 0, 9e18, "seed of initialisation, order, augmentation"),
    F(threads, K_INT, 1, 256, "OpenBLAS threads"),
    F(log_every, K_INT, 1, 1000000, "steps between CSV rows"),
    F(ckpt_every_s, K_DBL, 1, 1e9, "seconds between checkpoints"),
    F(corpus, K_STR, 0, 0, "corpus directory (acm-train speech-corpus --out)"),
};
#undef F
#define NFIELDS ((int)(sizeof fields / sizeof fields[0]))

acmt_speech_train_config acmt_speech_train_config_default(void) {
    acmt_speech_train_config c = {
        .dim = 144, .depth = 6, .heads = 4, .mlp_ratio = 4, .stack = 4, .chunk = 16, .left_context = 32,
        .epochs = 10, .batch_tokens = 4000, .max_items = 64, .bucket_batches = 50,
        .lr = 1e-3, .lr_min = 1e-5, .warmup_steps = 300, .weight_decay = 0.01, .beta1 = 0.9, .beta2 = 0.98,
        .eps = 1e-8, .grad_clip = 1.0, .time_masks = 2, .time_mask_max = 30, .freq_masks = 2, .freq_mask_max = 12,
        .max_tokens = 600, .train_limit = 0, .val_limit = 300, .stats_utts = 500,
        .seed = 1, .threads = 2, .log_every = 20, .ckpt_every_s = 300,
    };
    snprintf(c.corpus, sizeof c.corpus, "%s", "data/speech");
    return c;
}

int acmt_speech_train_config_apply(acmt_speech_train_config *c, const json_t *o, char *err, size_t errlen) {
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
            if (!json_is_string(val) || strlen(json_string_value(val)) >= sizeof c->corpus) {
                snprintf(err, errlen, "configuration: '%s' must be a string (under 1024 bytes)", key);
                return -1;
            }
            snprintf(p, sizeof c->corpus, "%s", json_string_value(val));
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
    if (c->dim % c->heads || (c->dim / c->heads) % 2) {
        snprintf(err, errlen, "configuration: dim must be a multiple of heads with an even head width (rotary)");
        return -1;
    }
    if (c->max_tokens > c->batch_tokens) {
        snprintf(err, errlen, "configuration: max_tokens %d exceeds batch_tokens %d (an utterance must fit a step)",
                 c->max_tokens, c->batch_tokens);
        return -1;
    }
    return 0;
}

json_t *acmt_speech_train_config_json(const acmt_speech_train_config *c) {
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

void acmt_speech_train_config_help(void) {
    acmt_speech_train_config d = acmt_speech_train_config_default();
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
        printf("  %-16s %-24s %s\n", fields[i].key, def, fields[i].help);
    }
}
