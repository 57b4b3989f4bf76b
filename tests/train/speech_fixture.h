/*
 * speech_fixture.h — what the speech trainer's unit tests share (test_speech_train, test_speech_student,
 * test_speech_eval): a small encoder configuration, a randomly initialised encoder, two items of noisy tone audio with
 * their log-mel frames from the engine's front end, and per-bin log-mel statistics.
 */
#ifndef ACM_TESTS_SPEECH_FIXTURE_H
#define ACM_TESTS_SPEECH_FIXTURE_H

#include <stdint.h>

#include "train/rng.h"
#include "train/speech_train.h"

/* The default speech configuration made small: dim 32, 2 blocks, 2 heads, MLP 64; chunk and left context as given. */
acmt_speech_config fixture_speech_small(int chunk, int left_context);

/* A trainable encoder for up to max_items items and max_rows tokens (also per item), its timm initialisation from
 * *r seeded with seed, then every parameter moved by 0.1 N(0, 1) (away from the initialisation). r goes on from there. */
acmt_speech *fixture_speech_random(const acmt_speech_config *c, int max_items, int64_t max_rows, int max_labels,
                                   uint64_t seed, acmt_rng *r);

/* Two items of noise over a tone, 11680 and 4960 samples (0.73 s and 0.31 s), drawn from r into pcm[b] (ns[b]
 * samples), and their log-mel frames by the engine's front end of model m into fr[b] (nframes[b] frames, tok[b] =
 * nframes[b] / stack tokens). The caller frees pcm[b] and fr[b]. */
void fixture_tone_audio(acmt_rng *r, const acm_model *m, int stack, int64_t ns[2], float *pcm[2], float *fr[2],
                        int64_t tok[2], int64_t nframes[2]);

/* Per-bin sums of log-mel frames (80 bins), and the mean and std they give (variance floored at 1e-4). */
typedef struct {
    double sum[80], sq[80];
    int64_t n;
} fixture_mel_acc;
void fixture_mel_add(fixture_mel_acc *a, const float *frames, int64_t n);
void fixture_mel_stats(const fixture_mel_acc *a, float mean[80], float sd[80]);

#endif
