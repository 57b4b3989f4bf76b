/*
 * wer.h — word and character error rates: the Levenshtein distance between a reference and a hypothesis, counted in
 * words (split at spaces; runs of spaces and leading/trailing ones ignored) or in characters (every byte, spaces
 * included). An error rate is the summed distance over the summed reference length of a set of utterances (not a
 * mean of per-utterance rates); an empty reference set gives a rate of 0 when nothing was hypothesised.
 */
#ifndef ACM_TRAIN_WER_H
#define ACM_TRAIN_WER_H

#include <stdint.h>

typedef struct {
    int64_t word_errors, words; /* summed word distance, summed reference words */
    int64_t char_errors, chars; /* the same in characters */
    int64_t utterances;
} acmt_wer;

/* Adds one (reference, hypothesis) pair. Returns 0, or -1 when out of memory (nothing added). */
int acmt_wer_add(acmt_wer *w, const char *ref, const char *hyp);
double acmt_wer_word_rate(const acmt_wer *w);
double acmt_wer_char_rate(const acmt_wer *w);

/* Levenshtein distance between the words of a and b, and between their characters. -1 when out of memory. */
int64_t acmt_word_distance(const char *a, const char *b);
int64_t acmt_char_distance(const char *a, const char *b);
/* Words in a text. */
int64_t acmt_word_count(const char *a);

#endif
