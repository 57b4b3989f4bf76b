/*
 * test_speech_corpus.c — train/speech_corpus.c: fp16 conversions, the speaker split, per-seed plans, and a tiny real
 * build (12 synthesised utterances + the real-speech set): expected counts and durations, features consistent with
 * the audio length, verification catching a planted leak, and identical bytes from 1 and 2 workers.
 * Needs espeak-ng, flite, festival (+ voices), sox and pocketsphinx-testdata (make deps).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "audio.h"
#include "logmel.h"
#include "train/speech_corpus.h"

Test(speech_corpus, fp16_conversions) {
    cr_assert_eq(acms_f32_to_f16(1.0f), 0x3C00);
    cr_assert_eq(acms_f32_to_f16(-2.0f), 0xC000);
    cr_assert_eq(acms_f32_to_f16(65504.0f), 0x7BFF);
    cr_assert_eq(acms_f32_to_f16(1e6f), 0x7C00, "overflow -> inf");
    cr_assert_eq(acms_f32_to_f16(0.0f), 0x0000);
    cr_assert_eq(acms_f32_to_f16(5.9604645e-8f), 0x0001, "smallest subnormal");
    cr_assert_eq(acms_f32_to_f16(1.0f + 1.0f / 2048), 0x3C00, "a tie rounds to even");
    cr_assert_eq(acms_f32_to_f16(1.0f + 3.0f / 2048), 0x3C02, "a tie rounds to even (up)");
    cr_assert(isnan(acms_f16_to_f32(acms_f32_to_f16(NAN))));
    /* every finite half survives the round trip; floats come back within half an ulp */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7C00) == 0x7C00) continue;
        float f = acms_f16_to_f32((uint16_t)h);
        cr_assert_eq(acms_f32_to_f16(f), h, "half 0x%04x -> %g -> 0x%04x", h, (double)f, acms_f32_to_f16(f));
    }
    for (float x = -23.1f; x < 20.0f; x += 0.0137f) {
        float y = acms_f16_to_f32(acms_f32_to_f16(x));
        cr_assert(fabsf(y - x) <= fabsf(x) * (1.0f / 2048) + 1e-7f, "%g -> %g", (double)x, (double)y);
    }
}

Test(speech_corpus, speakers_split_by_identity) {
    acms_voice v[256];
    size_t n = acms_voices(v, 256);
    cr_assert(n > 90 && n < 256);
    int kal_engines = 0, slt_engines = 0, unseen_named = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++)
            if (!strcmp(v[i].speaker, v[j].speaker))
                cr_assert_eq(v[i].unseen, v[j].unseen, "speaker %s both seen and unseen", v[i].speaker);
        if (!strcmp(v[i].speaker, "kal")) kal_engines |= 1 << v[i].engine;
        if (!strcmp(v[i].speaker, "slt")) slt_engines |= 1 << v[i].engine;
        if (v[i].unseen && (!strcmp(v[i].speaker, "awb") || !strcmp(v[i].speaker, "ked") ||
                            strstr(v[i].speaker, "en-029") || strstr(v[i].speaker, "en-gb-scotland")))
            unseen_named++;
        if (v[i].unseen) cr_assert(unseen_named, "unexpected unseen speaker %s", v[i].speaker);
    }
    cr_assert_eq(kal_engines, (1 << ACMS_FLITE) | (1 << ACMS_FESTIVAL), "kal is one speaker in flite and festival");
    cr_assert_eq(slt_engines, (1 << ACMS_FLITE) | (1 << ACMS_FESTIVAL), "slt is one speaker in flite and festival");
    cr_assert_eq(unseen_named, 2 + 2 * 12);
}

Test(speech_corpus, plans_deterministic_and_speaker_disjoint) {
    int engines[3] = {0}, clean = 0;
    for (int s = 0; s < ACMS_SPLIT_COUNT; s++)
        for (uint64_t i = 0; i < 1500; i++) {
            acms_plan a, b;
            acms_plan_make(&a, 42, (acms_split)s, i);
            acms_plan_make(&b, 42, (acms_split)s, i);
            cr_assert(!memcmp(&a, &b, sizeof a), "plan %s differs between two calls", a.id);
            cr_assert_eq(a.voice.unseen, s == ACMS_SPLIT_TEST_UNSEEN, "%s drew %s", a.id, a.voice.speaker);
            cr_assert_eq(acms_pool_of(a.text),
                         s == ACMS_SPLIT_TRAIN ? ACMS_POOL_TRAIN : s == ACMS_SPLIT_VAL ? ACMS_POOL_VAL : ACMS_POOL_TEST);
            if (s == ACMS_SPLIT_TRAIN) {
                engines[a.voice.engine]++;
                char aug[64];
                acms_plan_augment_name(&a, aug, sizeof aug);
                clean += !strcmp(aug, "clean");
            }
        }
    for (int e = 0; e < 3; e++) cr_assert(engines[e] > 200, "engine %d drawn %d times of 1500", e, engines[e]);
    cr_assert(clean > 200 && clean < 900, "%d of 1500 clean", clean);
}

/* Reads a whole file (for byte comparisons). */
static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    cr_assert(fread(b, 1, (size_t)len, f) == (size_t)len);
    fclose(f);
    b[len] = 0;
    *n = (size_t)len;
    return b;
}

static void build_tiny(const char *dir, int jobs, int real) {
    acms_build_params p = acms_build_default_params();
    p.out = dir;
    p.seed = 5;
    p.jobs = jobs;
    p.count[0] = 6, p.count[1] = 2, p.count[2] = 2, p.count[3] = 2;
    p.shard = 4;
    p.real = real;
    p.quiet = 1;
    p.min_free_gb = 0.01;
    char err[1024] = "";
    cr_assert_eq(acms_build(&p, err, sizeof err), 0, "build: %s", err);
}

Test(speech_corpus, tiny_build, .timeout = 120) {
    char d1[] = "/tmp/acm_speech_tiny1_XXXXXX", d2[] = "/tmp/acm_speech_tiny2_XXXXXX";
    cr_assert(mkdtemp(d1) && mkdtemp(d2));
    build_tiny(d1, 2, 1);
    build_tiny(d2, 1, 0);
    const char *splits[] = {"train", "val", "test-seen", "test-unseen", "real"};
    size_t want[] = {6, 2, 2, 2, 12};
    acm_logmel_params lp = acm_logmel_default_params();
    char err[1024] = "";
    for (int s = 0; s < 5; s++) {
        acms_utt *u;
        size_t n;
        cr_assert_eq(acms_load_split(d1, splits[s], &u, &n, err, sizeof err), 0, "%s", err);
        cr_assert_eq(n, want[s], "%s: %zu utterances", splits[s], n);
        for (size_t i = 0; i < n; i++) {
            double sec = (double)u[i].samples / 16000;
            cr_assert(sec > 0.4 && sec < 40, "%s: %.2f s", u[i].id, sec);
            cr_assert_eq((size_t)u[i].frames, acm_logmel_frames_whole(&lp, (size_t)u[i].samples), "%s", u[i].id);
            if (s < 4) {
                /* synthetic speech runs at 1.5 to 6 words per second */
                size_t words = 1;
                for (const char *c = u[i].text; *c; c++) words += *c == ' ';
                cr_assert(words / sec > 0.7 && words / sec < 7, "%s: %zu words in %.2f s (%s)", u[i].id, words, sec,
                          u[i].text);
            }
            float *x = malloc((size_t)u[i].frames * ACMS_MELS * sizeof *x);
            cr_assert_eq(acms_read_frames(d1, splits[s], &u[i], x, err, sizeof err), 0, "%s", err);
            double mean = 0;
            for (int64_t k = 0; k < u[i].frames * ACMS_MELS; k++) {
                cr_assert(isfinite(x[k]) && x[k] >= -23.1f && x[k] < 20, "%s: log-mel %g", u[i].id, (double)x[k]);
                mean += x[k];
            }
            mean /= (double)(u[i].frames * ACMS_MELS);
            cr_assert(mean > -15 && mean < 5, "%s: mean log-mel %g (silence is -23)", u[i].id, mean);
            free(x);
        }
        if (s == 4) cr_assert_str_eq(u[0].text, "ten of clubs");
        free(u);
    }
    /* 1 worker and 2 workers give the same bytes */
    const char *files[] = {"train.tsv", "train/shard-00000.f16", "train/shard-00001.f16", "test-unseen.tsv",
                           "test-unseen/shard-00000.f16", "val/shard-00000.f16"};
    for (int i = 0; i < 6; i++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, "%s/%s", d1, files[i]);
        snprintf(p2, sizeof p2, "%s/%s", d2, files[i]);
        size_t n1, n2;
        char *a = slurp(p1, &n1), *b = slurp(p2, &n2);
        cr_assert(a && b, "%s", files[i]);
        cr_assert(n1 == n2 && !memcmp(a, b, n1), "%s differs between 1 and 2 workers", files[i]);
        free(a), free(b);
    }
    /* a rerun keeps complete shards and verifies again */
    build_tiny(d1, 2, 1);
    cr_assert_eq(acms_verify(d1, err, sizeof err), 0, "%s", err);
    /* a test sentence planted in train is caught */
    acms_utt *t;
    size_t nt;
    cr_assert_eq(acms_load_split(d1, "test-seen", &t, &nt, err, sizeof err), 0);
    char tp[256];
    snprintf(tp, sizeof tp, "%s/train.tsv", d1);
    FILE *f = fopen(tp, "a");
    fprintf(f, "train-9999999\t0\t0\t0\t0\tkal\tflite\tkal16\tcommand\tclean\t%s\n", t[0].text);
    fclose(f);
    cr_assert_eq(acms_verify(d1, err, sizeof err), -1);
    cr_assert(strstr(err, "also in train"), "%s", err);
    free(t);
    /* an unseen speaker planted in train (instead of the leaked sentence) is caught */
    size_t len;
    char *all = slurp(tp, &len);
    cr_assert(all && len > 1);
    char *last = all + len - 1; /* the final '\n' */
    while (last > all && last[-1] != '\n') last--;
    f = fopen(tp, "w");
    fwrite(all, 1, (size_t)(last - all), f);
    fprintf(f, "train-9999998\t0\t0\t0\t0\tawb\tflite\tawb\tcommand\tclean\thi\n");
    fclose(f);
    free(all);
    cr_assert_eq(acms_verify(d1, err, sizeof err), -1);
    cr_assert(strstr(err, "awb must not be in train"), "%s", err);
    char cmd[600];
    cr_assert((size_t)snprintf(cmd, sizeof cmd, "rm -rf %s %s", d1, d2) < sizeof cmd);
    cr_assert_eq(system(cmd), 0);
}

/* The audio re-made from the plans (acms_write_wavs) gives the stored features back bit for bit: checked here
 * independently, by decoding each WAV as the server does and computing its log-mel frames; a manifest line that is
 * not the plan's is refused, and so is the real split. */
Test(speech_corpus, wavs_remade_from_plans, .timeout = 120) {
    char d[] = "/tmp/acm_speech_wav_XXXXXX";
    cr_assert(mkdtemp(d));
    build_tiny(d, 1, 0);
    char out[300], err[1024] = "";
    snprintf(out, sizeof out, "%s/wav", d);
    const char *splits[] = {"test-seen", "test-unseen"};
    acm_logmel *lm = acm_logmel_create(acm_logmel_default_params(), err, sizeof err);
    cr_assert(lm, "%s", err);
    acm_logmel_params lp = acm_logmel_get_params(lm);
    for (int s = 0; s < 2; s++) {
        acms_wav_report r;
        cr_assert_eq(acms_write_wavs(d, splits[s], out, 0, &r, err, sizeof err), 0, "%s", err);
        cr_assert(r.written == 2 && r.same == 2 && r.same_length == 2 && r.max_abs_diff == 0,
                  "%s: %zu written, %zu same, max diff %g", splits[s], r.written, r.same, r.max_abs_diff);
        acms_utt *u;
        size_t n;
        cr_assert_eq(acms_load_split(d, splits[s], &u, &n, err, sizeof err), 0, "%s", err);
        for (size_t i = 0; i < n; i++) {
            char path[400];
            snprintf(path, sizeof path, "%s/%s.wav", out, u[i].id);
            size_t nb = 0, nx = 0;
            char *b = slurp(path, &nb);
            float *x = NULL;
            cr_assert(b, "%s", path);
            cr_assert_eq(acm_audio_decode(NULL, b, nb, acm_audio_default_params(), &x, &nx, err, sizeof err), 0,
                         "%s: %s", path, err);
            cr_assert_eq((int64_t)nx, u[i].samples, "%s: %zu samples, the manifest says %lld", path, nx,
                         (long long)u[i].samples);
            size_t T = acm_logmel_frames_whole(&lp, nx);
            float *mel = malloc(T * ACMS_MELS * sizeof *mel), *stored = malloc(T * ACMS_MELS * sizeof *stored);
            acm_logmel_reset(lm);
            cr_assert_eq(acm_logmel_push(lm, x, nx, mel, T, err, sizeof err), (int64_t)T, "%s", err);
            cr_assert_eq(acms_read_frames(d, splits[s], &u[i], stored, err, sizeof err), 0, "%s", err);
            for (size_t k = 0; k < T * ACMS_MELS; k++)
                cr_assert_eq(acms_f16_to_f32(acms_f32_to_f16(mel[k])), stored[k], "%s: feature %zu: %g, stored %g",
                             u[i].id, k, (double)mel[k], (double)stored[k]);
            free(mel), free(stored), free(x), free(b);
        }
        free(u);
    }
    acm_logmel_free(lm);
    /* the list names every file with its text */
    size_t nl;
    snprintf(out, sizeof out, "%s/wav/test-seen.tsv", d);
    char *list = slurp(out, &nl);
    cr_assert(list && strstr(list, "test-seen-0000001.wav\t"), "%s", list ? list : "(none)");
    free(list);
    /* a manifest whose text is not the plan's (another seed, another builder) is refused */
    snprintf(out, sizeof out, "%s/test-seen.tsv", d);
    size_t len;
    char *m = slurp(out, &len);
    cr_assert(m);
    char *tab = m + len - 1;
    while (tab > m && tab[-1] != '\t') tab--;
    *tab = *tab == 'z' ? 'y' : 'z'; /* the last line's text, first letter */
    FILE *f = fopen(out, "w");
    fwrite(m, 1, len, f);
    fclose(f);
    free(m);
    snprintf(out, sizeof out, "%s/wav2", d);
    acms_wav_report r;
    cr_assert_eq(acms_write_wavs(d, "test-seen", out, 0, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "test-seen-0000001") && strstr(err, "is not the manifest's"), "%s", err);
    cr_assert_eq(acms_write_wavs(d, "real", out, 0, &r, err, sizeof err), -1);
    cr_assert(strstr(err, "real"), "%s", err);
    char cmd[600];
    cr_assert((size_t)snprintf(cmd, sizeof cmd, "rm -rf %s", d) < sizeof cmd);
    cr_assert_eq(system(cmd), 0);
}
