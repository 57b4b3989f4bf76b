/*
 * speech_config.h — the configuration of `acm-train speech-base` (a JSON file; every key optional, unknown keys
 * rejected). `acm-train speech-base --help` prints every key with its default and meaning; the same table
 * (speech_config.c) parses, prints and stores it in checkpoints.
 */
#ifndef ACM_TRAIN_SPEECH_CONFIG_H
#define ACM_TRAIN_SPEECH_CONFIG_H

#include <stdint.h>

#include <jansson.h>

#include "train/speech_train.h"

typedef struct {
    int dim, depth, heads, mlp_ratio, stack, chunk, left_context;
    int epochs, batch_tokens, max_items;
    int bucket_batches;
    double lr, lr_min;
    int warmup_steps;
    double weight_decay, beta1, beta2, eps, grad_clip;
    int time_masks, time_mask_max, freq_masks, freq_mask_max;
    int max_tokens, train_limit, val_limit, stats_utts;
    int64_t seed;
    int threads, log_every;
    double ckpt_every_s;
    char corpus[1024];
} acmt_speech_train_config;

acmt_speech_train_config acmt_speech_train_config_default(void);
/* Applies the keys of a JSON object onto c. Returns 0 or -1 with a message naming the key. */
int acmt_speech_train_config_apply(acmt_speech_train_config *c, const json_t *o, char *err, size_t errlen);
/* The full configuration as a JSON object (new reference). */
json_t *acmt_speech_train_config_json(const acmt_speech_train_config *c);
/* The encoder a configuration trains (80 mels; the rest from c): what speech-base and `acm-train export` build. */
acmt_speech_config acmt_speech_train_model_config(const acmt_speech_train_config *c);
/* Prints the table of keys with their defaults (for --help). */
void acmt_speech_train_config_help(void);

#endif
