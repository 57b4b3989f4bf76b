/*
 * logmel.c — log-mel front end on fftw3f (definition in logmel.h). One allocation at create: the carry buffer, the
 * FFT buffers (fftwf_malloc, so that the plan's alignment holds), the window and the sparse filterbank (each triangle
 * stored as [first bin, count, weights]).
 */
#include "logmel.h"

#include <fftw3.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct acm_logmel {
    acm_logmel_params p;
    int n_bins;         /* n_fft / 2 + 1 */
    float *pend;        /* [win] samples of the frame being filled */
    int have;           /* samples in pend */
    float *frame;       /* [n_fft] windowed frame (fftwf_malloc) */
    fftwf_complex *spec; /* [n_bins] (fftwf_malloc) */
    float *window;      /* [win] */
    float *power;       /* [n_bins] */
    int *fb_first;      /* [M] first bin of triangle m */
    int *fb_count;      /* [M] bins in triangle m */
    int *fb_off;        /* [M] offset of triangle m in fb_w */
    float *fb_w;        /* weights */
    fftwf_plan plan;
};

/* FFTW's planner (plan creation and destruction) is not thread-safe; executing a plan is. Speech workers and streams
 * each own a plan and may be created on any thread, so every planner call in the process goes through this lock. */
static pthread_mutex_t planner_lock = PTHREAD_MUTEX_INITIALIZER;

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

acm_logmel_params acm_logmel_default_params(void) {
    acm_logmel_params p = {.sample_rate = 16000,
                           .n_fft = 512,
                           .win_length = 400,
                           .hop_length = 160,
                           .n_mels = 80,
                           .fmin = 0.0f,
                           .fmax = 8000.0f,
                           .log_floor = 1e-10f};
    return p;
}

static double hz_to_mel(double f) { return 2595.0 * log10(1.0 + f / 700.0); }
static double mel_to_hz(double m) { return 700.0 * (pow(10.0, m / 2595.0) - 1.0); }

acm_logmel *acm_logmel_create(acm_logmel_params p, char *err, size_t errlen) {
    if (p.sample_rate <= 0 || p.n_fft < 16 || p.n_fft > 65536 || p.win_length < 1 || p.win_length > p.n_fft ||
        p.hop_length < 1 || p.hop_length > p.win_length || p.n_mels < 1 || p.n_mels > 1024 || !(p.fmin >= 0) ||
        !(p.fmax > p.fmin) || p.fmax > p.sample_rate / 2.0f || !(p.log_floor > 0)) {
        fail(err, errlen,
             "logmel: invalid parameters (rate %d, n_fft %d, win %d, hop %d, mels %d, fmin %g, fmax %g, floor %g)",
             p.sample_rate, p.n_fft, p.win_length, p.hop_length, p.n_mels, (double)p.fmin, (double)p.fmax,
             (double)p.log_floor);
        return NULL;
    }
    acm_logmel *m = calloc(1, sizeof *m);
    if (!m) goto oom;
    m->p = p;
    m->n_bins = p.n_fft / 2 + 1;
    int M = p.n_mels, K = m->n_bins;
    /* triangle m spans (pts[m], pts[m+2]); count bins first to size the weights */
    double *pts = malloc((size_t)(M + 2) * sizeof *pts);
    if (!pts) goto oom;
    double lo = hz_to_mel(p.fmin), hi = hz_to_mel(p.fmax);
    for (int i = 0; i < M + 2; i++) pts[i] = mel_to_hz(lo + (hi - lo) * i / (M + 1));
    double bin_hz = (double)p.sample_rate / p.n_fft;
    size_t total = 0;
    m->fb_first = malloc((size_t)M * sizeof(int));
    m->fb_count = malloc((size_t)M * sizeof(int));
    m->fb_off = malloc((size_t)M * sizeof(int));
    if (!m->fb_first || !m->fb_count || !m->fb_off) {
        free(pts);
        goto oom;
    }
    for (int j = 0; j < M; j++) {
        int first = -1, last = -1;
        for (int k = 0; k < K; k++) {
            double f = k * bin_hz;
            if (f > pts[j] && f < pts[j + 2]) {
                if (first < 0) first = k;
                last = k;
            }
        }
        m->fb_first[j] = first < 0 ? 0 : first;
        m->fb_count[j] = first < 0 ? 0 : last - first + 1;
        m->fb_off[j] = (int)total;
        total += (size_t)m->fb_count[j];
    }
    m->fb_w = malloc((total ? total : 1) * sizeof(float));
    m->pend = malloc((size_t)p.win_length * sizeof(float));
    m->window = malloc((size_t)p.win_length * sizeof(float));
    m->power = malloc((size_t)K * sizeof(float));
    m->frame = fftwf_malloc((size_t)p.n_fft * sizeof(float));
    m->spec = fftwf_malloc((size_t)K * sizeof(fftwf_complex));
    if (!m->fb_w || !m->pend || !m->window || !m->power || !m->frame || !m->spec) {
        free(pts);
        goto oom;
    }
    for (int j = 0; j < M; j++)
        for (int i = 0; i < m->fb_count[j]; i++) {
            double f = (m->fb_first[j] + i) * bin_hz;
            double up = (f - pts[j]) / (pts[j + 1] - pts[j]), down = (pts[j + 2] - f) / (pts[j + 2] - pts[j + 1]);
            m->fb_w[m->fb_off[j] + i] = (float)(up < down ? up : down);
        }
    free(pts);
    for (int n = 0; n < p.win_length; n++)
        m->window[n] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * n / p.win_length));
    memset(m->frame, 0, (size_t)p.n_fft * sizeof(float));
    pthread_mutex_lock(&planner_lock);
    m->plan = fftwf_plan_dft_r2c_1d(p.n_fft, m->frame, m->spec, FFTW_ESTIMATE);
    pthread_mutex_unlock(&planner_lock);
    if (!m->plan) goto oom;
    return m;
oom:
    fail(err, errlen, "logmel: out of memory");
    acm_logmel_free(m);
    return NULL;
}

void acm_logmel_free(acm_logmel *m) {
    if (!m) return;
    if (m->plan) {
        pthread_mutex_lock(&planner_lock);
        fftwf_destroy_plan(m->plan);
        pthread_mutex_unlock(&planner_lock);
    }
    fftwf_free(m->frame);
    fftwf_free(m->spec);
    free(m->pend);
    free(m->window);
    free(m->power);
    free(m->fb_first);
    free(m->fb_count);
    free(m->fb_off);
    free(m->fb_w);
    free(m);
}

acm_logmel_params acm_logmel_get_params(const acm_logmel *m) { return m->p; }

void acm_logmel_reset(acm_logmel *m) { m->have = 0; }

size_t acm_logmel_frames_whole(const acm_logmel_params *p, size_t n) {
    return n < (size_t)p->win_length ? 0 : (n - (size_t)p->win_length) / (size_t)p->hop_length + 1;
}

size_t acm_logmel_frames_for(const acm_logmel *m, size_t n) {
    /* pend holds the first `have` samples of the next frame, so it behaves as a signal of have + n samples */
    return acm_logmel_frames_whole(&m->p, (size_t)m->have + n);
}

/* pend (a full window) -> out [M] */
static void one_frame(acm_logmel *m, float *out) {
    const acm_logmel_params *p = &m->p;
    for (int n = 0; n < p->win_length; n++) m->frame[n] = m->pend[n] * m->window[n];
    /* frame[win..n_fft) stays zero: fftw's r2c does not overwrite its input for out-of-place 1-d transforms */
    fftwf_execute(m->plan);
    for (int k = 0; k < m->n_bins; k++) {
        float re = m->spec[k][0], im = m->spec[k][1];
        m->power[k] = re * re + im * im;
    }
    for (int j = 0; j < p->n_mels; j++) {
        const float *w = m->fb_w + m->fb_off[j], *pw = m->power + m->fb_first[j];
        double e = 0.0;
        for (int i = 0; i < m->fb_count[j]; i++) e += (double)w[i] * pw[i];
        out[j] = (float)log(e > p->log_floor ? e : (double)p->log_floor);
    }
}

int64_t acm_logmel_push(acm_logmel *m, const float *x, size_t n, float *out, size_t max_frames, char *err,
                        size_t errlen) {
    size_t need = acm_logmel_frames_for(m, n);
    if (need > max_frames)
        return fail(err, errlen, "logmel: output holds %zu frames, %zu needed", max_frames, need);
    const int win = m->p.win_length, hop = m->p.hop_length, M = m->p.n_mels;
    int64_t t = 0;
    while (n) {
        size_t take = (size_t)(win - m->have) < n ? (size_t)(win - m->have) : n;
        memcpy(m->pend + m->have, x, take * sizeof *x);
        m->have += (int)take;
        x += take;
        n -= take;
        if (m->have == win) {
            one_frame(m, out + (size_t)t * (size_t)M);
            t++;
            memmove(m->pend, m->pend + hop, (size_t)(win - hop) * sizeof(float));
            m->have = win - hop;
        }
    }
    return t;
}

void acm_logmel_filters(const acm_logmel *m, float *F) {
    memset(F, 0, (size_t)m->p.n_mels * (size_t)m->n_bins * sizeof *F);
    for (int j = 0; j < m->p.n_mels; j++)
        for (int i = 0; i < m->fb_count[j]; i++)
            F[(size_t)j * (size_t)m->n_bins + (size_t)(m->fb_first[j] + i)] = m->fb_w[m->fb_off[j] + i];
}
