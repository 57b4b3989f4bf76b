/*
 * speech_utts.h — the utterances of one corpus split that speech training uses (speech-base, acmize on a speech model):
 * those whose text is in the model's alphabet, with 1..max_tokens tokens and at least as many tokens as CTC needs for
 * their labels, in manifest order; with their token counts and encoded labels. Frames stay in the shards and are read
 * per batch (acmt_speech_utts_read; the page cache keeps them).
 */
#ifndef ACM_TRAIN_SPEECH_UTTS_H
#define ACM_TRAIN_SPEECH_UTTS_H

#include <stddef.h>
#include <stdint.h>

#include "train/speech_corpus.h"
#include "train/speech_train.h"

typedef struct {
    const char *split;
    acms_utt *utts;   /* kept utterances */
    int64_t n;
    int64_t *tokens;  /* [n] */
    int64_t *lab_off; /* [n + 1] into lab */
    int32_t *lab;
    int max_labels;
    int64_t dropped; /* utterances left out (alphabet, length) */
} acmt_speech_utts;

/* Loads split `split` (a string that outlives s) of the corpus at `corpus`, keeping at most `limit` utterances
 * (limit <= 0: all). Returns 0 (s->n may be 0: the caller says what that means to it) or -1 with a message (the
 * manifest, memory); either way acmt_speech_utts_free releases s. */
int acmt_speech_utts_load(acmt_speech_utts *s, const char *corpus, const char *split, const acmt_speech_config *mc,
                          int max_tokens, int64_t limit, char *err, size_t errlen);
void acmt_speech_utts_free(acmt_speech_utts *s);

/* Reads the frames of utterances idx[0..n) into buf, one after another (tokens*stack frames each; tmp holds the
 * longest utterance's frames), and points fr[b], tok[b], lab[b], nl[b] at utterance idx[b]'s frames, tokens and
 * labels. Returns 0 or -1 with a message naming the shard. */
int acmt_speech_utts_read(const acmt_speech_utts *s, const char *corpus, const int32_t *idx, int n, int stack,
                          float *buf, float *tmp, const float **fr, int64_t *tok, const int32_t **lab, int *nl,
                          char *err, size_t errlen);

#endif
