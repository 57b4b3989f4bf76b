/*
 * test_speech_batches.c — length bucketing (train/speech_batches.c): every utterance once per epoch, batches within
 * their token and item limits (a single longer utterance alone), windows sorted by length, batches of similar lengths
 * (much more alike than without bucketing), a batch permutation with a -1 tail, and the same epoch from the same RNG.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "train/speech_batches.h"

enum { N = 1000 };

static void lengths(int64_t *tok) {
    acmt_rng r;
    acmt_rng_seed(&r, 4, 0);
    for (int i = 0; i < N; i++) tok[i] = 10 + acmt_rng_below(&r, 240); /* 0.4 s .. 10 s */
    tok[17] = 900;                                                     /* longer than a batch */
}

/* Mean over batches of (longest - shortest) / longest. */
static double spread(const int64_t *tok, const int32_t *order, const int64_t *bs, int64_t nb) {
    double s = 0;
    for (int64_t b = 0; b < nb; b++) {
        int64_t lo = 1 << 30, hi = 0;
        for (int64_t i = bs[b]; i < bs[b + 1]; i++) {
            lo = tok[order[i]] < lo ? tok[order[i]] : lo;
            hi = tok[order[i]] > hi ? tok[order[i]] : hi;
        }
        s += (double)(hi - lo) / (double)hi;
    }
    return s / (double)nb;
}

Test(speech_batches, an_epoch_is_a_bucketed_partition) {
    int64_t tok[N], bs[N + 1];
    int32_t order[N], perm[N];
    lengths(tok);
    for (int i = 0; i < N; i++) order[i] = i;
    acmt_rng r;
    acmt_rng_seed(&r, 1, 2);
    const acmt_batch_params p = {.batch_tokens = 800, .max_items = 8, .bucket_batches = 10};
    const int64_t nb = acmt_batches_epoch(tok, N, p, &r, order, bs, perm);
    cr_assert(nb > 0 && nb <= N);
    cr_assert_eq(bs[0], 0);
    cr_assert_eq(bs[nb], N);
    char seen[N] = {0};
    for (int i = 0; i < N; i++) {
        cr_assert(order[i] >= 0 && order[i] < N && !seen[order[i]], "order is not a permutation at %d", i);
        seen[order[i]] = 1;
    }
    for (int64_t b = 0; b < nb; b++) {
        int64_t t = 0, k = bs[b + 1] - bs[b];
        for (int64_t i = bs[b]; i < bs[b + 1]; i++) t += tok[order[i]];
        cr_assert(k >= 1 && k <= p.max_items, "batch %lld: %lld items", (long long)b, (long long)k);
        cr_assert(t <= p.batch_tokens || k == 1, "batch %lld: %lld tokens in %lld items", (long long)b, (long long)t,
                  (long long)k);
        if (bs[b + 1] < N) /* greedy: the next utterance did not fit */
            cr_assert(t + tok[order[bs[b + 1]]] > p.batch_tokens || k == p.max_items);
    }
    char used[N] = {0};
    for (int64_t b = 0; b < N; b++) {
        if (b >= nb) {
            cr_assert_eq(perm[b], -1);
            continue;
        }
        cr_assert(perm[b] >= 0 && perm[b] < nb && !used[perm[b]], "perm is not a permutation of the batches");
        used[perm[b]] = 1;
    }
    /* the windows (about 10 batches' worth of utterances each) are sorted by length: few descents in the order */
    int descents = 0;
    for (int i = 1; i < N; i++) descents += tok[order[i]] < tok[order[i - 1]];
    cr_expect(descents < N / 20, "%d descents: windows not sorted", descents);
    /* bucketed batches are far more alike than the same cut of a plain shuffle */
    const double bucketed = spread(tok, order, bs, nb);
    int32_t plain[N];
    int64_t bp[N + 1];
    for (int i = 0; i < N; i++) plain[i] = i;
    acmt_rng_shuffle(&r, plain, N);
    const int64_t np = acmt_batches_cut(tok, plain, N, p, bp);
    const double unbucketed = spread(tok, plain, bp, np);
    cr_expect(bucketed < 0.5 * unbucketed, "length spread in a batch: %.3f bucketed, %.3f shuffled", bucketed,
              unbucketed);
    cr_log_info("speech batches: %lld batches; spread %.3f bucketed vs %.3f shuffled", (long long)nb, bucketed,
                unbucketed);
}

Test(speech_batches, the_same_rng_state_gives_the_same_epoch) {
    int64_t tok[N], b1[N + 1], b2[N + 1];
    int32_t o1[N], o2[N], p1[N], p2[N];
    lengths(tok);
    for (int i = 0; i < N; i++) o1[i] = o2[i] = i;
    acmt_rng r1, r2;
    acmt_rng_seed(&r1, 9, 2);
    r2 = r1;
    const acmt_batch_params p = {.batch_tokens = 1000, .max_items = 64, .bucket_batches = 5};
    const int64_t n1 = acmt_batches_epoch(tok, N, p, &r1, o1, b1, p1);
    const int64_t n2 = acmt_batches_epoch(tok, N, p, &r2, o2, b2, p2);
    cr_assert_eq(n1, n2);
    cr_assert(!memcmp(o1, o2, sizeof o1) && !memcmp(p1, p2, sizeof p1) && !memcmp(b1, b2, sizeof(int64_t) * (n1 + 1)));
    /* and the batches are a function of the order alone (what a checkpoint relies on) */
    int64_t b3[N + 1];
    cr_assert_eq(acmt_batches_cut(tok, o1, N, p, b3), n1);
    cr_assert(!memcmp(b1, b3, sizeof(int64_t) * (n1 + 1)));
}
