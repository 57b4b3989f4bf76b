/*
 * speech_card.h — the figures of a speech model's card that `make test` re-evaluates (tests/train/test_models.c): word
 * error rates on the small fixed test subset (`make speech-subset`: the first 40 utterances of the corpus's test-seen
 * and test-unseen splits, seed 1), written in the card's front matter as
 *     subset_wer_SPLIT_DECODER: X            a static model
 *     subset_wer_SPLIT_DECODER_cap_BETA: X   a model with ACM modules, under the cap policy at budget BETA
 * SPLIT is test-seen or test-unseen, DECODER greedy or beamN (prefix beam of width N), X the WER in percent, e.g.
 *     subset_wer_test-unseen_beam8_cap_0.5: 9.87
 * A key is checked by `acm-train eval MODEL --corpus SUBSET --split SPLIT` (speech_eval.h): X within ±1 point (80
 * utterances: one word flips with the CPU's BLAS kernels) and, for a cap key, every utterance's realised budget within
 * [BETA - 0.02, BETA]. `acm-train speech-card MODEL` prints the keys; `acm-train speech-card --check CARD` checks them.
 */
#ifndef ACM_TRAIN_SPEECH_CARD_H
#define ACM_TRAIN_SPEECH_CARD_H

#include <stddef.h>

#define ACMT_CARD_MAX_KEYS 32
#define ACMT_CARD_WER_TOL 1.0     /* WER points */
#define ACMT_CARD_BUDGET_TOL 0.02 /* cap: realised budget in [beta - this, beta] */

typedef struct {
    char key[96];   /* as written in the card */
    char split[24]; /* test-seen or test-unseen */
    int beam;       /* 0: greedy, else the prefix beam width */
    double beta;    /* cap budget; 0 for a static model's key */
    double want;    /* the card's WER, percent */
} acmt_card_key;

/* Reads the subset_wer keys of a card's front matter (the block between the first two "---" lines; other keys are
 * skipped). Returns how many (0: not a speech card), or -1 with "CARD: line N: problem" in err for a malformed key,
 * too many keys or an unreadable card. */
int acmt_card_read(const char *card, acmt_card_key *keys, int max, char *err, size_t errlen);

/* Formats a key's name into out: "subset_wer_test-seen_greedy", "subset_wer_test-unseen_beam8_cap_0.5". */
void acmt_card_key_name(const char *split, int beam, double beta, char *out, size_t cap);

/* Re-evaluates the first max_keys keys of card (0: all) with model on the corpus (the subset). Returns how many do
 * not reproduce, one line per key (checked or not) appended to report [cap]; -1 with err naming the card for a
 * malformed card, a model that is not a speech model, keys that do not fit the model (cap keys on a static model or
 * none on an ACM one) or an evaluation that fails. */
int acmt_card_check(const char *card, const char *model, const char *corpus, int max_keys, char *report, size_t cap,
                    char *err, size_t errlen);

#endif
