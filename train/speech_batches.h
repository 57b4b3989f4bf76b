/*
 * speech_batches.h — the batches of an epoch of `acm-train speech-base`, with length bucketing: shuffle the
 * utterances, sort windows of about `bucket_batches` batches' worth of them by length, cut batches greedily (at most
 * batch_tokens tokens and max_items utterances; a single longer utterance makes a batch of its own), shuffle the batch
 * order. Deterministic for a given RNG state; the batches are a function of the order alone (acmt_batches_cut), so a
 * checkpoint holds the order and the batch permutation, not the batches.
 */
#ifndef ACM_TRAIN_SPEECH_BATCHES_H
#define ACM_TRAIN_SPEECH_BATCHES_H

#include <stdint.h>

#include "train/rng.h"

typedef struct {
    int64_t batch_tokens;
    int max_items;
    int bucket_batches;
} acmt_batch_params;

/* Cuts order [n] (indices into tokens) into batches: bstart[0..nb], bstart[nb] = n. Returns nb (0 when n = 0). */
int64_t acmt_batches_cut(const int64_t *tokens, const int32_t *order, int64_t n, acmt_batch_params p, int64_t *bstart);

/* A new epoch: shuffles order [n] (a permutation of 0..n-1) with r, sorts the windows by length (ties by index), cuts
 * the batches into bstart [n + 1] and writes a random order of them into perm [n] (entries from nb on: -1). Returns
 * nb. */
int64_t acmt_batches_epoch(const int64_t *tokens, int64_t n, acmt_batch_params p, acmt_rng *r, int32_t *order,
                           int64_t *bstart, int32_t *perm);

#endif
