/*
 * ctc_loss.h — the CTC loss (Graves et al., 2006) of one utterance and its gradient with respect to the logits, in
 * log space and double precision, so that no sequence length underflows.
 *
 * Shapes: T frames (tokens), K classes (class 0 is the blank, the model convention of engine/model.h), U labels in
 * 1..K-1, S = 2U + 1 states of the label sequence with blanks between and around. The loss is −log p(labels | logits)
 * with p the sum over every alignment (a path of T classes that collapses to the labels: repeats merged, blanks
 * dropped) of the product of the frames' softmax probabilities. A label repeated back to back needs a blank between,
 * so the labels need U + (number of adjacent equal pairs) frames; fewer is no alignment at all: the call says so
 * (ACMT_CTC_SKIP) and writes nothing, instead of an infinite loss or NaN.
 *
 * Not here: batching, the reduction over a batch (the caller scales the gradient), decoding (engine/ctc.h).
 * Thread-safe: no state besides the caller's workspace.
 */
#ifndef ACM_TRAIN_CTC_LOSS_H
#define ACM_TRAIN_CTC_LOSS_H

#include <stddef.h>
#include <stdint.h>

enum {
    ACMT_CTC_OK = 0,
    ACMT_CTC_SKIP = 1,       /* T frames are fewer than the labels need: no alignment, nothing written */
    ACMT_CTC_EBADLABEL = -1, /* a label outside 1..K-1 (0 is the blank) */
    ACMT_CTC_ENONFINITE = -2 /* non-finite logits: loss not finite, nothing written */
};

/* Frames the labels need: U plus one blank between each pair of equal adjacent labels. */
int64_t acmt_ctc_min_frames(const int32_t *labels, int U);

/* Doubles of workspace acmt_ctc_loss needs for T frames, K classes and U labels: T*K + 2*T*(2U+1) + K. */
size_t acmt_ctc_workspace(int64_t T, int K, int U);

/* logits [T, K] (row stride ld). On ACMT_CTC_OK: *loss = −log p(labels | logits) and, when dlogits is not NULL,
 * dlogits [T, K] (row stride lddl) += scale · d loss / d logits = scale · (softmax − occupancy), where occupancy[t, k]
 * is the posterior probability that frame t emits class k. work: acmt_ctc_workspace(T, K, U) doubles. T = 0 with no
 * labels is a loss of 0. Returns one of the ACMT_CTC_ codes. */
int acmt_ctc_loss(double *loss, float *dlogits, int lddl, const float *logits, int ld, int64_t T, int K,
                  const int32_t *labels, int U, float scale, double *work);

/* A message for a status code. */
const char *acmt_ctc_strerror(int status);

#endif
