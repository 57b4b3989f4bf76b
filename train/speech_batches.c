/*
 * speech_batches.c — epochs of length-bucketed batches (see speech_batches.h).
 */
#include "train/speech_batches.h"

#include <stdlib.h>

/* qsort has no context argument: the window sort reads the lengths through this (one training thread). */
static const int64_t *sort_tokens;

static int by_length(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    if (sort_tokens[x] != sort_tokens[y]) return sort_tokens[x] < sort_tokens[y] ? -1 : 1;
    return x < y ? -1 : x > y; /* a total order: qsort is not stable */
}

int64_t acmt_batches_cut(const int64_t *tokens, const int32_t *order, int64_t n, acmt_batch_params p, int64_t *bstart) {
    int64_t nb = 0, tok = 0, items = 0;
    bstart[0] = 0;
    for (int64_t i = 0; i < n; i++) {
        const int64_t t = tokens[order[i]];
        if (items && (tok + t > p.batch_tokens || items == p.max_items)) {
            bstart[++nb] = i;
            tok = items = 0;
        }
        tok += t;
        items++;
    }
    if (items) bstart[++nb] = n;
    return nb;
}

int64_t acmt_batches_epoch(const int64_t *tokens, int64_t n, acmt_batch_params p, acmt_rng *r, int32_t *order,
                           int64_t *bstart, int32_t *perm) {
    acmt_rng_shuffle(r, order, n);
    int64_t sum = 0;
    for (int64_t i = 0; i < n; i++) sum += tokens[i];
    /* utterances per batch, on average: bounded by max_items and by batch_tokens over the mean length */
    double per_batch = n ? (double)p.batch_tokens * (double)n / (double)(sum ? sum : 1) : 1;
    if (per_batch > p.max_items) per_batch = p.max_items;
    int64_t win = (int64_t)(per_batch * p.bucket_batches);
    if (win < 1) win = 1;
    sort_tokens = tokens;
    for (int64_t i = 0; i < n; i += win)
        qsort(order + i, (size_t)(n - i < win ? n - i : win), sizeof *order, by_length);
    const int64_t nb = acmt_batches_cut(tokens, order, n, p, bstart);
    for (int64_t b = 0; b < n; b++) perm[b] = b < nb ? (int32_t)b : -1; /* the tail is checkpointed too */
    acmt_rng_shuffle(r, perm, nb);
    return nb;
}
