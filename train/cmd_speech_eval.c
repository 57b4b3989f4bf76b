/*
 * cmd_speech_eval.c — `acm-train eval SPEECH_MODEL`: WER and CER per corpus split, greedy and beam, per speaker on
 * request, with GFLOPs per second of audio and the real-time factor (speech_eval.h). cmd_eval.c hands speech models
 * here.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/speech_eval.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train eval SPEECH_MODEL.safetensors [options]\n"
               "  --corpus DIR    speech corpus (acm-train speech-corpus --out; default data/speech)\n"
               "  --split LIST    comma-separated splits (default test-seen,test-unseen,real)\n"
               "  --limit N       first N utterances of each split (default 0: all)\n"
               "  --beam N        prefix beam width beside greedy (default 8; 0: greedy only)\n"
               "  --words FILE    the beam spells only the words of FILE (one per line, as the corpus's\n"
               "                  vocab.txt; greedy is unchanged)\n"
               "  --per-speaker   also print each speaker's WER and CER\n"
               "  --audio DIR     recorded split (real) only: decode the recordings in DIR (pocketsphinx-testdata:\n"
               "                  /usr/share/pocketsphinx/test/data) and run them through the engine\n"
               "                  (acm_worker_run), the server's path; prints the largest logit difference against\n"
               "                  the frames path\n"
               "  --policy NAME   models with ACMs: cap (default), fixed, mean or argmax, decided per chunk\n"
               "  --beta LIST     models with ACMs: comma-separated budgets (default 0.25,0.5,0.75,1; fixed: k/N)\n"
               "  --threads N     OpenBLAS threads (default 2)\n"
               "  --json          one JSON object on stdout instead of the text report\n");
}

static json_t *wer_json(const acmt_wer *w) {
    return json_pack("{s:f, s:f, s:I, s:I, s:I, s:I}", "wer", acmt_wer_word_rate(w), "cer", acmt_wer_char_rate(w),
                     "word_errors", (json_int_t)w->word_errors, "words", (json_int_t)w->words, "char_errors",
                     (json_int_t)w->char_errors, "chars", (json_int_t)w->chars);
}

int cmd_speech_eval(int argc, char **argv) {
    const char *model = NULL, *corpus = "data/speech", *splits = "test-seen,test-unseen,real", *audio = NULL;
    const char *betas = "0.25,0.5,0.75,1", *policy = "cap", *words = NULL;
    int beam = 8, threads = 2, json = 0, per_speaker = 0;
    long long limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--corpus") && more) corpus = argv[++i];
        else if (!strcmp(a, "--split") && more) splits = argv[++i];
        else if (!strcmp(a, "--limit") && more) limit = atoll(argv[++i]);
        else if (!strcmp(a, "--beam") && more) beam = atoi(argv[++i]);
        else if (!strcmp(a, "--words") && more) words = argv[++i];
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--per-speaker")) per_speaker = 1;
        else if (!strcmp(a, "--policy") && more) policy = argv[++i];
        else if (!strcmp(a, "--beta") && more) betas = argv[++i];
        else if (!strcmp(a, "--audio") && more) audio = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "acm-train eval: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || beam < 0 || threads < 1 || limit < 0 || (words && !beam)) {
        usage(stderr);
        return 2;
    }
    const int pk = acm_policy_parse(policy);
    if (pk < 0) {
        fprintf(stderr, "acm-train eval: unknown policy '%s' (cap, fixed, mean, argmax)\n", policy);
        return 2;
    }
    /* models with ACMs: one evaluation per budget; static models: one (the list is ignored) */
    char err[1024];
    acm_model *m0 = acm_model_load(model, err, sizeof err);
    if (!m0) {
        fprintf(stderr, "acm-train eval: %s\n", err);
        return 1;
    }
    const int has_acm = acm_model_config(m0)->num_acms > 0, N = has_acm ? acm_model_acm(m0, 0)->n : 1;
    acm_model_free(m0);
    double blist[32];
    int nbeta = 0;
    if (has_acm && pk != ACM_POLICY_ARGMAX) {
        if ((nbeta = acmt_parse_budgets(betas, blist, 32, err, sizeof err)) < 0) {
            fprintf(stderr, "acm-train eval: --beta: %s\n", err);
            return 2;
        }
    } else {
        blist[nbeta++] = 1.0;
    }
    acm_blas_set_threads(threads);
    json_t *out = json_object(), *js = json_object();
    json_object_set_new(out, "model", json_string(model));
    json_object_set_new(out, "corpus", json_string(corpus));
    json_object_set_new(out, "beam", json_integer(beam));
    if (words) json_object_set_new(out, "words", json_string(words));
    json_object_set_new(out, "blas_core", json_string(acm_blas_core()));
    json_object_set_new(out, "threads", json_integer(threads));
    if (!json)
        printf("model %s on %s; greedy%s%s%s; BLAS %s x%d\n", model, corpus, beam ? " and beam" : "",
               words ? " on the words of " : "", words ? words : "", acm_blas_core(), threads);
    char list[1024];
    snprintf(list, sizeof list, "%s", splits);
    int status = 0;
    for (char *save = NULL, *sp = strtok_r(list, ",", &save); sp && !status; sp = strtok_r(NULL, ",", &save))
    for (int bi = 0; bi < nbeta; bi++) {
        acm_policy pol = acm_policy_default();
        pol.kind = (acm_policy_kind)pk;
        pol.beta = (float)blist[bi];
        pol.fixed_k = (int)lround(blist[bi] * N);
        acmt_speech_eval_params p = {.corpus = corpus, .split = sp, .limit = limit, .beam = beam, .words = words,
                                     .audio_dir = audio,
                                     .policy = has_acm ? &pol : NULL};
        acmt_speech_eval_result r;
        if (acmt_speech_eval(model, &p, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train eval: %s: %s\n", sp, err);
            status = 1;
            break;
        }
        char key[96];
        if (has_acm) snprintf(key, sizeof key, "%s@%s=%g", sp, policy, blist[bi]);
        else snprintf(key, sizeof key, "%s", sp);
        const double gfs = r.flops / 1e9 / r.audio_seconds, rtf = r.seconds / r.audio_seconds;
        json_t *o = json_pack("{s:I, s:f, s:f, s:f, s:f}", "utterances", (json_int_t)r.utterances, "audio_seconds",
                              r.audio_seconds, "gflops_per_audio_second", gfs, "realtime_factor", rtf,
                              "budget_realised", r.budget_mean);
        if (has_acm) {
            json_object_set_new(o, "policy", json_string(policy));
            json_object_set_new(o, "beta", json_real(blist[bi]));
            json_object_set_new(o, "budget_min", json_real(r.budget_min));
            json_object_set_new(o, "budget_max", json_real(r.budget_max));
        }
        json_object_set_new(o, "greedy", wer_json(&r.greedy));
        if (audio) {
            json_object_set_new(o, "path", json_string("engine (acm_worker_run) from the recordings"));
            json_object_set_new(o, "max_logit_diff_vs_frames", json_real(r.engine_max_diff));
        }
        if (beam) json_object_set_new(o, "beam", wer_json(&r.beam));
        if (per_speaker) {
            json_t *spk = json_object();
            for (int i = 0; i < r.n_speakers; i++) {
                json_t *x = json_object();
                json_object_set_new(x, "greedy", wer_json(&r.speakers[i].greedy));
                if (beam) json_object_set_new(x, "beam", wer_json(&r.speakers[i].beam));
                json_object_set_new(spk, r.speakers[i].speaker, x);
            }
            json_object_set_new(o, "speakers", spk);
        }
        json_object_set_new(js, key, o);
        if (!json) {
            printf("%-12s %5lld utt %7.1f s  greedy WER %6.2f%% CER %6.2f%%", key, (long long)r.utterances,
                   r.audio_seconds, 100 * acmt_wer_word_rate(&r.greedy), 100 * acmt_wer_char_rate(&r.greedy));
            if (beam)
                printf("  beam %d WER %6.2f%% CER %6.2f%%", beam, 100 * acmt_wer_word_rate(&r.beam),
                       100 * acmt_wer_char_rate(&r.beam));
            printf("  %.3f GFLOPs/s of audio, RTF %.4f", gfs, rtf);
            if (has_acm)
                printf("  budget %.4f [%.4f, %.4f]", r.budget_mean, r.budget_min, r.budget_max);
            printf("\n");
            if (audio)
                printf("    from the recordings through acm_worker_run; logits within %.3g of the frames path\n",
                       r.engine_max_diff);
            for (int i = 0; per_speaker && i < r.n_speakers; i++)
                printf("    %-28s %4lld utt  greedy WER %6.2f%% CER %6.2f%%\n", r.speakers[i].speaker,
                       (long long)r.speakers[i].greedy.utterances, 100 * acmt_wer_word_rate(&r.speakers[i].greedy),
                       100 * acmt_wer_char_rate(&r.speakers[i].greedy));
        }
        free(r.speakers);
    }
    json_object_set_new(out, "splits", js);
    if (json && !status) {
        char *s = json_dumps(out, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        printf("%s\n", s);
        free(s);
    }
    json_decref(out);
    return status;
}
