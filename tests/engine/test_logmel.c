/*
 * test_logmel.c — engine/logmel.c against the float64 numpy reference (tests/reference/gen_logmel.py, tolerance 1e-4
 * absolute on log-mel values), chunked == whole bit for bit, frame counts, buffer checks and parameter validation.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "logmel.h"

static float *slurp_f32(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (tests run from the repository root)", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    cr_assert(len > 0 && len % 4 == 0);
    float *b = malloc((size_t)len);
    cr_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    *n = (size_t)len / 4;
    return b;
}

static acm_logmel *mk(void) {
    char err[256] = "";
    acm_logmel *m = acm_logmel_create(acm_logmel_default_params(), err, sizeof err);
    cr_assert(m, "create: %s", err);
    return m;
}

Test(logmel, golden_numpy_float64) {
    size_t S, E;
    float *x = slurp_f32("tests/golden/logmel_signal.f32", &S);
    float *want = slurp_f32("tests/golden/logmel_expected.f32", &E);
    acm_logmel *m = mk();
    acm_logmel_params p = acm_logmel_default_params();
    size_t T = acm_logmel_frames_whole(&p, S);
    cr_assert_eq(T * 80, E, "frames %zu x 80 != golden %zu values", T, E);
    float *got = malloc(E * sizeof *got);
    char err[128];
    cr_assert_eq(acm_logmel_push(m, x, S, got, T, err, sizeof err), (int64_t)T);
    double maxd = 0;
    size_t at = 0;
    for (size_t i = 0; i < E; i++) {
        double d = fabs((double)got[i] - want[i]);
        if (d > maxd) maxd = d, at = i;
    }
    cr_assert(maxd <= 1e-4, "max |C - numpy| = %.3g at frame %zu mel %zu (got %f want %f)", maxd, at / 80, at % 80,
              (double)got[at], (double)want[at]);
    acm_logmel_free(m);
    free(x);
    free(want);
    free(got);
}

/* Chunks of irregular sizes (0, 1, around the hop and the window, large) give the same bits as one push. */
Test(logmel, chunked_equals_whole) {
    size_t S;
    float *x = slurp_f32("tests/golden/logmel_signal.f32", &S);
    acm_logmel *whole = mk(), *chunked = mk();
    acm_logmel_params p = acm_logmel_default_params();
    size_t T = acm_logmel_frames_whole(&p, S);
    float *a = malloc(T * 80 * sizeof *a), *b = malloc(T * 80 * sizeof *b);
    char err[128];
    cr_assert_eq(acm_logmel_push(whole, x, S, a, T, err, sizeof err), (int64_t)T);
    static const size_t sizes[] = {0, 1, 159, 160, 161, 399, 400, 401, 7, 1000, 3, 2048};
    size_t off = 0, t = 0;
    for (int i = 0; off < S; i++) {
        size_t n = sizes[i % 12];
        if (n > S - off) n = S - off;
        size_t expect = acm_logmel_frames_for(chunked, n);
        int64_t got = acm_logmel_push(chunked, x + off, n, b + t * 80, T - t, err, sizeof err);
        cr_assert_eq(got, (int64_t)expect, "chunk %d of %zu samples: %lld frames, expected %zu", i, n, (long long)got,
                     expect);
        t += (size_t)got;
        off += n;
    }
    cr_assert_eq(t, T);
    cr_assert(!memcmp(a, b, T * 80 * sizeof *a), "chunked output differs from whole-signal output");
    /* after a reset the stream starts afresh */
    acm_logmel_reset(chunked);
    cr_assert_eq(acm_logmel_push(chunked, x, S, b, T, err, sizeof err), (int64_t)T);
    cr_assert(!memcmp(a, b, T * 80 * sizeof *a));
    acm_logmel_free(whole);
    acm_logmel_free(chunked);
    free(x);
    free(a);
    free(b);
}

Test(logmel, frame_counts_and_short_signals) {
    acm_logmel_params p = acm_logmel_default_params();
    cr_assert_eq(acm_logmel_frames_whole(&p, 0), 0);
    cr_assert_eq(acm_logmel_frames_whole(&p, 399), 0);
    cr_assert_eq(acm_logmel_frames_whole(&p, 400), 1);
    cr_assert_eq(acm_logmel_frames_whole(&p, 559), 1);
    cr_assert_eq(acm_logmel_frames_whole(&p, 560), 2);
    cr_assert_eq(acm_logmel_frames_whole(&p, 16000), 98); /* 1 s -> 98 frames of 25 ms every 10 ms */
    acm_logmel *m = mk();
    float x[400] = {0}, out[80];
    char err[128] = "";
    cr_assert_eq(acm_logmel_push(m, x, 399, out, 0, err, sizeof err), 0);
    cr_assert_eq(acm_logmel_frames_for(m, 1), 1);
    /* no room for the frame: refused, and nothing consumed */
    cr_assert_eq(acm_logmel_push(m, x, 1, out, 0, err, sizeof err), -1);
    cr_assert(strstr(err, "frames"), "message: %s", err);
    cr_assert_eq(acm_logmel_push(m, x, 1, out, 1, err, sizeof err), 1);
    /* silence hits the floor exactly */
    for (int j = 0; j < 80; j++) cr_assert_float_eq(out[j], logf(1e-10f), 1e-5);
    acm_logmel_free(m);
}

Test(logmel, filterbank_shape) {
    acm_logmel *m = mk();
    float *F = malloc(80 * 257 * sizeof *F);
    acm_logmel_filters(m, F);
    int prev_peak = -1;
    for (int j = 0; j < 80; j++) {
        float mx = 0;
        int at = 0, nz = 0;
        for (int k = 0; k < 257; k++) {
            cr_assert(F[j * 257 + k] >= 0 && F[j * 257 + k] <= 1.0f);
            if (F[j * 257 + k] > mx) mx = F[j * 257 + k], at = k;
            nz += F[j * 257 + k] > 0;
        }
        cr_assert(nz >= 1, "mel filter %d covers no FFT bin", j);
        cr_assert(at >= prev_peak, "filter peaks must not go down in frequency (%d at bin %d)", j, at);
        prev_peak = at;
    }
    acm_logmel_free(m);
    free(F);
}

Test(logmel, invalid_parameters) {
    char err[256] = "";
    acm_logmel_params p = acm_logmel_default_params();
    p.win_length = 1024; /* longer than n_fft */
    cr_assert_null(acm_logmel_create(p, err, sizeof err));
    cr_assert(strstr(err, "invalid"), "message: %s", err);
    p = acm_logmel_default_params();
    p.fmax = 9000; /* above Nyquist */
    cr_assert_null(acm_logmel_create(p, err, sizeof err));
    p = acm_logmel_default_params();
    p.hop_length = 0;
    cr_assert_null(acm_logmel_create(p, err, sizeof err));
}

/* Objects created and freed on many threads at once (speech workers and streams are): FFTW's planner is serialised
 * inside logmel.c, so nothing is corrupted and every object computes the same frames. */
static void *create_many(void *arg) {
    float *out = arg; /* [2, 80]: the frames of one 560-sample signal */
    static float x[560];
    for (int i = 0; i < 560; i++) x[i] = (float)sin(0.05 * i);
    for (int r = 0; r < 300; r++) {
        char err[128];
        acm_logmel *m = acm_logmel_create(acm_logmel_default_params(), err, sizeof err);
        if (!m) return (void *)1;
        if (acm_logmel_push(m, x, 560, out, 2, err, sizeof err) != 2) return (void *)1;
        acm_logmel_free(m);
    }
    return NULL;
}

Test(logmel, create_on_many_threads) {
    pthread_t th[4];
    static float out[4][160];
    for (int i = 0; i < 4; i++) cr_assert_eq(pthread_create(&th[i], NULL, create_many, out[i]), 0);
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        cr_expect_null(rv, "thread %d failed", i);
    }
    for (int i = 1; i < 4; i++) cr_expect_eq(memcmp(out[0], out[i], sizeof out[0]), 0, "thread %d computed differently", i);
}
