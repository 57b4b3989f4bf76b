/*
 * speech_config.c — `acm-train speech-base` configuration (see speech_config.h). One table drives parsing, printing
 * and help, as base_config.c.
 */
#include "train/speech_config.h"
#include "train/config_table.h"
#include "train/speech_corpus.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#define F(key, k, lo, hi, help) {#key, k, offsetof(acmt_speech_train_config, key), lo, hi, help}
static const acmt_config_key fields[] = {
    F(dim, ACMT_KEY_INT, 4, 4096, "width D"),
    F(depth, ACMT_KEY_INT, 1, 64, "blocks"),
    F(heads, ACMT_KEY_INT, 1, 64, "attention heads (dim/heads even: rotary)"),
    F(mlp_ratio, ACMT_KEY_INT, 1, 16, "MLP hidden = mlp_ratio * D"),
    F(stack, ACMT_KEY_INT, 1, 64, "log-mel frames per token (10 ms each)"),
    F(chunk, ACMT_KEY_INT, 1, 1024, "tokens per chunk (streaming latency)"),
    F(left_context, ACMT_KEY_INT, 0, 65536, "tokens before its chunk a token sees"),
    F(epochs, ACMT_KEY_INT, 1, 10000, "passes over the training split"),
    F(batch_tokens, ACMT_KEY_INT, 16, 1000000, "tokens per step (utterances packed, no padding)"),
    F(max_items, ACMT_KEY_INT, 1, 4096, "utterances per step at most"),
    F(bucket_batches, ACMT_KEY_INT, 1, 100000, "length bucketing: sort windows of this many batches by length"),
    F(lr, ACMT_KEY_DBL, 0, 1, "peak learning rate"),
    F(lr_min, ACMT_KEY_DBL, 0, 1, "final learning rate (cosine)"),
    F(warmup_steps, ACMT_KEY_INT, 0, 10000000, "linear warm-up steps"),
    F(weight_decay, ACMT_KEY_DBL, 0, 10, "AdamW decoupled weight decay (matrices)"),
    F(beta1, ACMT_KEY_DBL, 0, 1, "AdamW beta1"),
    F(beta2, ACMT_KEY_DBL, 0, 1, "AdamW beta2"),
    F(eps, ACMT_KEY_DBL, 0, 1, "AdamW epsilon"),
    F(grad_clip, ACMT_KEY_DBL, 0, 1e9, "global gradient norm clip (0: off)"),
    F(time_masks, ACMT_KEY_INT, 0, 100, "SpecAugment: time masks per utterance"),
    F(time_mask_max, ACMT_KEY_INT, 0, 10000, "SpecAugment: widest time mask, frames"),
    F(freq_masks, ACMT_KEY_INT, 0, 100, "SpecAugment: frequency masks per utterance"),
    F(freq_mask_max, ACMT_KEY_INT, 0, 1024, "SpecAugment: widest frequency mask, mel bins"),
    F(max_tokens, ACMT_KEY_INT, 1, 1000000, "longer training utterances are left out (tokens)"),
    F(train_limit, ACMT_KEY_INT, 0, 100000000, "training utterances used (0: all; smoke tests)"),
    F(val_limit, ACMT_KEY_INT, 0, 100000000, "validation utterances evaluated per epoch (0: all)"),
    F(stats_utts, ACMT_KEY_INT, 1, 100000000, "utterances the log-mel mean and std are measured on"),
    F(seed, ACMT_KEY_I64, 0, 9e18, "seed of initialisation, order, augmentation"),
    F(threads, ACMT_KEY_INT, 1, 256, "OpenBLAS threads"),
    F(log_every, ACMT_KEY_INT, 1, 1000000, "steps between CSV rows"),
    F(ckpt_every_s, ACMT_KEY_DBL, 1, 1e9, "seconds between checkpoints"),
    F(corpus, ACMT_KEY_STR, 0, 0, "corpus directory (acm-train speech-corpus --out)"),
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
    if (acmt_config_keys_apply(fields, NFIELDS, c, sizeof c->corpus, o, err, errlen)) return -1;
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
    return acmt_config_keys_json(fields, NFIELDS, c);
}

void acmt_speech_train_config_help(void) {
    acmt_speech_train_config d = acmt_speech_train_config_default();
    acmt_config_keys_help(fields, NFIELDS, &d, 24);
}

acmt_speech_config acmt_speech_train_model_config(const acmt_speech_train_config *c) {
    acmt_speech_config mc = acmt_speech_default_config();
    mc.n_mels = ACMS_MELS;
    mc.stack = c->stack;
    mc.dim = c->dim;
    mc.depth = c->depth;
    mc.heads = c->heads;
    mc.mlp_hidden = c->mlp_ratio * c->dim;
    mc.chunk = c->chunk;
    mc.left_context = c->left_context;
    return mc;
}
