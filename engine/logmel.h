/*
 * logmel.h — the speech front end: 16 kHz mono float PCM -> log-mel frames [T, M] (T frames, M mel bins), whole or
 * incrementally on chunks. Chunked output is bit-identical to whole-signal output: frames depend only on the samples
 * they cover, and the state carries the samples of the next frame over from one chunk to the next.
 *
 * Definition (default parameters; tests/reference/gen_logmel.py is the independent float64 reference):
 *   frame t covers samples [t·hop, t·hop + win): a signal of S samples gives T = S < win ? 0 : (S - win) / hop + 1
 *     frames (no centring, no padding: the stream never waits for samples it has not seen; a tail shorter than
 *     one window yields no frame)
 *   x_t[n] = s[t·hop + n] · w[n], w = periodic Hann of length win (0.5 - 0.5 cos(2πn / win)), zero-padded to n_fft
 *   P_t[k] = |FFT(x_t)[k]|², k = 0 .. n_fft/2          (no pre-emphasis, no dither, no DC removal)
 *   E_t[m] = Σ_k F[m][k] · P_t[k], F = triangles on the HTK mel scale (mel(f) = 2595 log10(1 + f/700)) with M + 2
 *     equally spaced mel points from fmin to fmax; triangle m rises from point m to m+1 and falls to m+2; peak 1,
 *     no area normalisation; bin k sits at k · rate / n_fft Hz
 *   out[t][m] = ln(max(E_t[m], floor))
 * Normalisation (per-utterance or global mean/variance) belongs to the model, not here.
 *
 * Threads: an acm_logmel is one stream's state; distinct objects may run on distinct threads. acm_logmel_create and
 * acm_logmel_free call FFTW's planner, which is not thread-safe: this file serialises them with its own lock, so they
 * may be called from any thread (another user of FFTW's planner in the same process must not run at the same time).
 * No allocation after create.
 */
#ifndef ACM_LOGMEL_H
#define ACM_LOGMEL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int sample_rate; /* Hz; 16000 */
    int n_fft;       /* 512 */
    int win_length;  /* samples; 400 = 25 ms */
    int hop_length;  /* samples; 160 = 10 ms */
    int n_mels;      /* M; 80 */
    float fmin;      /* Hz; 0 */
    float fmax;      /* Hz; 8000 (= rate / 2) */
    float log_floor; /* 1e-10 */
} acm_logmel_params;

acm_logmel_params acm_logmel_default_params(void);

typedef struct acm_logmel acm_logmel;

/* NULL on invalid parameters (message in err) or no memory. */
acm_logmel *acm_logmel_create(acm_logmel_params p, char *err, size_t errlen);
void acm_logmel_free(acm_logmel *m);
acm_logmel_params acm_logmel_get_params(const acm_logmel *m);

/* Forgets the carried samples: the next push starts a new signal. */
void acm_logmel_reset(acm_logmel *m);

/* Frames that pushing n more samples will produce (given the samples carried now). */
size_t acm_logmel_frames_for(const acm_logmel *m, size_t n);
/* Frames a whole signal of n samples gives. */
size_t acm_logmel_frames_whole(const acm_logmel_params *p, size_t n);

/* Appends x[0..n) to the stream and writes every completed frame to out [max_frames, M]. Returns the number of
 * frames written (>= 0), or -1 (nothing consumed, message in err) when max_frames < acm_logmel_frames_for(m, n). */
int64_t acm_logmel_push(acm_logmel *m, const float *x /* [n] */, size_t n, float *out /* [max_frames, M] */,
                        size_t max_frames, char *err, size_t errlen);

/* The mel filterbank, for tests and plots: F [M, n_fft/2 + 1]. */
void acm_logmel_filters(const acm_logmel *m, float *F);

#endif
