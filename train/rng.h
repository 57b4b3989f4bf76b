/*
 * rng.h — the deterministic random number generator of acm-train: xoshiro256** (Blackman & Vigna), seeded through
 * splitmix64. The whole state is four uint64 words, saved in checkpoints so that a resumed run draws the same
 * numbers. Not for cryptography. Same sequence on every platform (no libc rand, no floating-point in the core).
 */
#ifndef ACM_TRAIN_RNG_H
#define ACM_TRAIN_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} acmt_rng;

/* Seeds from (seed, stream): different streams of one seed are independent sequences. */
void acmt_rng_seed(acmt_rng *r, uint64_t seed, uint64_t stream);
uint64_t acmt_rng_u64(acmt_rng *r);
/* Uniform in [0, n) without modulo bias (n >= 1). */
uint32_t acmt_rng_below(acmt_rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float acmt_rng_float(acmt_rng *r);
/* Standard normal (Box–Muller on two uniforms; one value per call). */
float acmt_rng_normal(acmt_rng *r);
/* Fisher–Yates shuffle of idx[0..n). */
void acmt_rng_shuffle(acmt_rng *r, int32_t *idx, int64_t n);

/* 64 hex digits <-> state (for checkpoint metadata). Parse returns 0 or -1. */
void acmt_rng_to_hex(const acmt_rng *r, char out[65]);
int acmt_rng_from_hex(acmt_rng *r, const char *hex);

#endif
