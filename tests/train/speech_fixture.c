/*
 * speech_fixture.c — shared pieces of the speech trainer's unit tests (see speech_fixture.h).
 */
#include "speech_fixture.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "logmel.h"
#include "model.h"

acmt_speech_config fixture_speech_small(int chunk, int left_context) {
    acmt_speech_config c = acmt_speech_default_config();
    c.dim = 32;
    c.depth = 2;
    c.heads = 2;
    c.mlp_hidden = 64;
    c.chunk = chunk;
    c.left_context = left_context;
    return c;
}

acmt_speech *fixture_speech_random(const acmt_speech_config *c, int max_items, int64_t max_rows, int max_labels,
                                   uint64_t seed, acmt_rng *r) {
    char err[256];
    acmt_speech *s = acmt_speech_new(c, max_items, max_rows, max_rows, max_labels, err, sizeof err);
    cr_assert(s, "%s", err);
    acmt_rng_seed(r, seed, 0);
    acmt_speech_init(s, r);
    for (int64_t i = 0; i < s->nparams; i++) s->params[i] += 0.1f * acmt_rng_normal(r);
    return s;
}

void fixture_tone_audio(acmt_rng *r, const acm_model *m, int stack, int64_t ns[2], float *pcm[2], float *fr[2],
                        int64_t tok[2], int64_t nframes[2]) {
    char err[256];
    ns[0] = 11680;
    ns[1] = 4960;
    for (int b = 0; b < 2; b++) {
        pcm[b] = malloc(sizeof(float) * (size_t)ns[b]);
        for (int64_t i = 0; i < ns[b]; i++)
            pcm[b][i] = 0.3f * sinf(0.05f * (float)i * (float)(b + 1)) + 0.05f * acmt_rng_normal(r);
    }
    acm_logmel *mel = acm_logmel_create(acm__speech_logmel_params(&m->cfg), err, sizeof err);
    cr_assert(mel, "%s", err);
    for (int b = 0; b < 2; b++) {
        const size_t F = acm_logmel_frames_for(mel, (size_t)ns[b]);
        fr[b] = malloc(sizeof(float) * F * 80);
        acm_logmel_reset(mel);
        int64_t got = acm_logmel_push(mel, pcm[b], (size_t)ns[b], fr[b], F, err, sizeof err);
        cr_assert(got >= 0, "%s", err);
        nframes[b] = got;
        tok[b] = got / stack;
    }
    acm_logmel_free(mel);
}

void fixture_mel_add(fixture_mel_acc *a, const float *frames, int64_t n) {
    for (int64_t i = 0; i < n; i++, a->n++)
        for (int m = 0; m < 80; m++) {
            a->sum[m] += frames[i * 80 + m];
            a->sq[m] += (double)frames[i * 80 + m] * frames[i * 80 + m];
        }
}

void fixture_mel_stats(const fixture_mel_acc *a, float mean[80], float sd[80]) {
    const double nf = (double)a->n;
    for (int m = 0; m < 80; m++) {
        mean[m] = (float)(a->sum[m] / nf);
        sd[m] = (float)sqrt(fmax(a->sq[m] / nf - (a->sum[m] / nf) * (a->sum[m] / nf), 1e-4));
    }
}
