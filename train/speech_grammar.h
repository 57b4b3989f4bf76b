/*
 * speech_grammar.h — the text of the synthetic speech corpus: telephone and voice-assistant speech from a grammar of
 * templates (digit strings, phone numbers, numbers, times, dates, money amounts, spelled letters plain and NATO,
 * playing cards, and commands and phrases over a vocabulary of a few hundred words).
 *
 * Every sentence is written as it is spoken: lowercase words from [a-z'] separated by one space, numbers in words
 * ("two hundred and five", "seven thirty p m"), letters as single-letter words ("s m i t h") or NATO words. So the
 * transcript is exactly what the synthesiser is asked to say, with no text normalisation in between.
 *
 * Deterministic: sentence (seed, stream, index) is a pure function of its arguments (a splitmix64 hash seeds a
 * generator per sentence), so any worker can make any sentence, in any order, with the same result on every platform.
 *
 * Sentence splits: a sentence belongs to exactly one pool by a hash of its text (acms_pool_of), so that a test
 * sentence can never be drawn for training, whatever seed or count is used: pools TEST (6 % of the hash space),
 * VAL (4 %), TRAIN (the rest). acms_sentence_for_pool draws until the sentence falls in the pool asked for.
 */
#ifndef ACM_TRAIN_SPEECH_GRAMMAR_H
#define ACM_TRAIN_SPEECH_GRAMMAR_H

#include <stddef.h>
#include <stdint.h>

#define ACMS_MAX_TEXT 512 /* bytes, with the terminating NUL; every sentence fits */

/* The generator of one sentence (or one utterance's augmentation): splitmix64 over a 64-bit counter. */
typedef struct {
    uint64_t s;
} acms_rng;

uint64_t acms_hash(uint64_t a, uint64_t b, uint64_t c); /* mixes three words into one (splitmix64 finaliser) */
void acms_rng_seed(acms_rng *r, uint64_t seed, uint64_t stream, uint64_t index);
uint64_t acms_rng_u64(acms_rng *r);
uint32_t acms_rng_below(acms_rng *r, uint32_t n); /* uniform in [0, n), n >= 1 */
double acms_rng_uniform(acms_rng *r);             /* [0, 1) */
double acms_rng_range(acms_rng *r, double lo, double hi);
double acms_rng_normal(acms_rng *r);

typedef enum { ACMS_POOL_TRAIN = 0, ACMS_POOL_VAL = 1, ACMS_POOL_TEST = 2 } acms_pool;

/* Template kinds, for statistics and tests. */
#define ACMS_KIND_LIST(X)                                                                                            \
    X(DIGITS, "digits")                                                                                              \
    X(PHONE, "phone")                                                                                                \
    X(NUMBER, "number")                                                                                              \
    X(TIME, "time")                                                                                                  \
    X(DATE, "date")                                                                                                  \
    X(MONEY, "money")                                                                                                \
    X(SPELL, "spell")                                                                                                \
    X(NATO, "nato")                                                                                                  \
    X(CARDS, "cards")                                                                                                \
    X(COMMAND, "command")
typedef enum {
#define X(e, s) ACMS_KIND_##e,
    ACMS_KIND_LIST(X)
#undef X
        ACMS_KIND_COUNT
} acms_kind;
const char *acms_kind_name(acms_kind k);

/* Writes sentence (seed, stream, index) into out[ACMS_MAX_TEXT]; returns its kind. */
acms_kind acms_sentence(uint64_t seed, uint64_t stream, uint64_t index, char out[ACMS_MAX_TEXT]);

/* The pool a sentence belongs to (FNV-1a of its bytes, seed-independent). */
acms_pool acms_pool_of(const char *text);

/* The index-th sentence of `stream` that belongs to `pool`: draws (seed, stream, index << 12 | attempt) for
 * attempt = 0, 1, ... until one falls in the pool (at most 4096 attempts; a test-pool sentence needs ~17 on
 * average). Returns the kind, or -1 if none was found. */
int acms_sentence_for_pool(uint64_t seed, uint64_t stream, uint64_t index, acms_pool pool, char out[ACMS_MAX_TEXT]);

/* Every word the grammar can produce, for the model's vocabulary: writes up to max pointers to static strings, returns
 * the total number (sorted, unique). */
size_t acms_vocabulary(const char **words, size_t max);

#endif
