/*
 * cmd_speech_card.c — `acm-train speech-card`: the subset_wer keys of a speech model's card (speech_card.h), printed
 * from an evaluation on the test subset, or checked against the model as `make test` checks them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/speech_card.h"
#include "train/speech_eval.h"

#define DEFAULT_SUBSET "build/speech-subset"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train speech-card MODEL.safetensors [options]     print the card's subset_wer keys\n"
               "       acm-train speech-card --check CARD.md [options]       re-evaluate a card's keys\n"
               "  --corpus DIR    the test subset (default " DEFAULT_SUBSET ": make speech-subset)\n"
               "  --beta LIST     models with ACMs: cap budgets of the keys (default 0.25,0.5,0.75,1)\n"
               "  --beam N        also a beamN key per split and budget (default 8; 0: greedy only)\n"
               "  --model PATH    --check: the model (default: the card's name with .safetensors)\n"
               "  --threads N     OpenBLAS threads (default 2)\n"
               "Keys: subset_wer_SPLIT_DECODER[_cap_BETA]: WER%% (SPLIT test-seen, test-unseen; DECODER greedy, beamN);\n"
               "a check allows ±%.1f WER points and, under cap, realised budgets within [BETA - %.2f, BETA].\n",
            ACMT_CARD_WER_TOL, ACMT_CARD_BUDGET_TOL);
}

static int check(const char *card, const char *model, const char *corpus) {
    char path[1024], err[1024], report[8192] = "";
    if (!model) {
        size_t L = strlen(card);
        if (L < 3 || strcmp(card + L - 3, ".md") || L > 1000) {
            fprintf(stderr, "acm-train speech-card: --check %s: a card's name ends in .md (or give --model)\n", card);
            return 2;
        }
        snprintf(path, sizeof path, "%.*s.safetensors", (int)(L - 3), card);
        model = path;
    }
    int bad = acmt_card_check(card, model, corpus, 0, report, sizeof report, err, sizeof err);
    fputs(report, stdout);
    if (bad < 0) {
        fprintf(stderr, "acm-train speech-card: %s\n", err);
        return 1;
    }
    printf("%s: %d key(s) do not reproduce\n", card, bad);
    return bad ? 1 : 0;
}

int cmd_speech_card(int argc, char **argv) {
    const char *model = NULL, *card = NULL, *corpus = DEFAULT_SUBSET, *betas = "0.25,0.5,0.75,1";
    int beam = 8, threads = 2;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--check") && more) card = argv[++i];
        else if (!strcmp(a, "--model") && more) model = argv[++i];
        else if (!strcmp(a, "--corpus") && more) corpus = argv[++i];
        else if (!strcmp(a, "--beta") && more) betas = argv[++i];
        else if (!strcmp(a, "--beam") && more) beam = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (a[0] != '-' && !model && !card) model = a;
        else {
            fprintf(stderr, "acm-train speech-card: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if ((!model && !card) || beam < 0 || beam > 64 || threads < 1) {
        usage(stderr);
        return 2;
    }
    acm_blas_set_threads(threads);
    if (card) return check(card, model, corpus);
    char err[1024];
    acm_model *m = acm_model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "acm-train speech-card: %s\n", err);
        return 1;
    }
    const int speech = acm_model_config(m)->arch == ACM_ARCH_SPEECH, has_acm = acm_model_config(m)->num_acms > 0;
    acm_model_free(m);
    if (!speech) {
        fprintf(stderr, "acm-train speech-card: %s is not a speech model\n", model);
        return 1;
    }
    double blist[16] = {0};
    int nb = 1;
    if (has_acm && (nb = acmt_parse_budgets(betas, blist, 16, err, sizeof err)) < 0) {
        fprintf(stderr, "acm-train speech-card: --beta: %s\n", err);
        return 2;
    }
    const char *splits[] = {"test-seen", "test-unseen"};
    printf("# %s on %s (acm-train speech-card; BLAS %s x%d)\n", model, corpus, acm_blas_core(), threads);
    for (int s = 0; s < 2; s++)
        for (int b = 0; b < nb; b++) {
            acm_policy pol = acm_policy_default();
            pol.kind = ACM_POLICY_CAP;
            pol.beta = (float)blist[b];
            acmt_speech_eval_params p = {.corpus = corpus, .split = splits[s], .beam = beam,
                                         .policy = has_acm ? &pol : NULL};
            acmt_speech_eval_result r;
            if (acmt_speech_eval(model, &p, &r, err, sizeof err)) {
                fprintf(stderr, "acm-train speech-card: %s: %s\n", splits[s], err);
                return 1;
            }
            free(r.speakers);
            char key[96];
            acmt_card_key_name(splits[s], 0, blist[b], key, sizeof key);
            printf("%s: %.2f\n", key, 100.0 * acmt_wer_word_rate(&r.greedy));
            if (beam) {
                acmt_card_key_name(splits[s], beam, blist[b], key, sizeof key);
                printf("%s: %.2f\n", key, 100.0 * acmt_wer_word_rate(&r.beam));
            }
        }
    return 0;
}
