/*
 * test_models.c — every shipped model reproduces its card (issues 3 and 4). For each models/NAME.md, the front matter
 * (the block between the first two "---" lines) may hold
 *     test_accuracy: X                     percent on the Fashion-MNIST test set under the default policy (argmax)
 *     test_accuracy_POLICY_BETA: X         the same under policy mean or cap at budget BETA, e.g. test_accuracy_cap_0.25
 * and models/NAME.safetensors is evaluated through the engine's public API (train/eval.c) for each key: it must give X
 * within ±0.05 points. For every cap key the realised budget of every test image must also lie in [BETA - 0.02, BETA]
 * (docs/METHOD.md §6: the cap policy is exact per item). A card without keys is not checked; no models is not a failure.
 * Under a sanitizer (3-10x slower) only each card's first cap key is evaluated (the policy with the most code: gates,
 * shares, the per-image budget check; it runs every layer a static model has too); the ordinary build checks every
 * key of every card.
 *
 * A speech model's card holds subset_wer keys instead (train/speech_card.h: the WER of greedy or beam decoding per
 * test split, under cap at a budget for an ACM model), re-evaluated on the test subset that `make test` builds into
 * $ACM_BUILD/speech-subset (`make speech-subset`): within ±1 WER point, every utterance's realised budget under cap
 * within [BETA - 0.02, BETA]. A malformed key fails with the card's name; under a sanitizer only the first key runs.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "sanitized.h"
#include "train/eval.h"
#include "train/speech_card.h"

#define MAX_KEYS 16


typedef struct {
    acm_policy policy;
    double want;
    char key[64];
} card_key;

/* Reads the test_accuracy keys of a card's front matter; returns how many (a malformed key fails the test). */
static int card_keys(const char *path, card_key *keys) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int in_front = 0, n = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "---", 3)) {
            if (in_front) break;
            in_front = 1;
            continue;
        }
        if (!in_front) break;
        if (strncmp(line, "test_accuracy", 13)) continue;
        cr_assert_lt(n, MAX_KEYS, "%s: too many test_accuracy keys", path);
        card_key *k = &keys[n];
        char *colon = strchr(line, ':');
        cr_assert(colon, "%s: '%s' has no ':'", path, line);
        *colon = 0;
        snprintf(k->key, sizeof k->key, "%.63s", line);
        cr_assert_eq(sscanf(colon + 1, "%lf", &k->want), 1, "%s: %s has no number", path, k->key);
        k->policy = acm_policy_default();
        if (strcmp(line, "test_accuracy")) {
            char pol[16];
            double beta;
            cr_assert_eq(sscanf(line, "test_accuracy_%15[a-z]_%lf", pol, &beta), 2,
                         "%s: key %s is not test_accuracy_POLICY_BETA", path, k->key);
            int kind = acm_policy_parse(pol);
            cr_assert(kind == ACM_POLICY_MEAN || kind == ACM_POLICY_CAP, "%s: %s: policy must be mean or cap", path,
                      k->key);
            cr_assert(beta > 0 && beta <= 1, "%s: %s: budget outside (0, 1]", path, k->key);
            k->policy.kind = (acm_policy_kind)kind;
            k->policy.beta = (float)beta;
        }
        n++;
    }
    fclose(f);
    return n;
}

Test(models, cards_reproduce, .timeout = 900) {
    DIR *d = opendir("models");
    if (!d) {
        cr_log_info("no models/ folder: nothing to check");
        return;
    }
    acm_blas_set_threads(2);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 4 || strcmp(e->d_name + L - 3, ".md")) continue;
        char card[512], model[512];
        snprintf(card, sizeof card, "models/%s", e->d_name);
        snprintf(model, sizeof model, "models/%.*s.safetensors", (int)(L - 3), e->d_name);
        card_key keys[MAX_KEYS];
        int n = card_keys(card, keys), first_cap = -1;
        for (int i = 0; i < n && first_cap < 0; i++)
            if (keys[i].policy.kind == ACM_POLICY_CAP) first_cap = i;
        for (int i = 0; i < n; i++) {
            if (TH_SANITIZED && i != first_cap) {
                cr_log_info("%s: %s not evaluated under a sanitizer", model, keys[i].key);
                continue;
            }
            acmt_eval_result r;
            char err[512];
            cr_assert_eq(acmt_eval_model(model, "/usr/share/datasets/fashion-mnist", 100, keys[i].policy, &r, err,
                                         sizeof err),
                         0, "%s: %s", model, err);
            double got = 100.0 * r.accuracy;
            cr_assert(got >= keys[i].want - 0.05 && got <= keys[i].want + 0.05, "%s: %s %.2f%%, card says %.2f%%",
                      model, keys[i].key, got, keys[i].want);
            if (keys[i].policy.kind == ACM_POLICY_CAP) {
                double b = keys[i].policy.beta;
                cr_assert(r.budget_min >= b - 0.02 - 1e-9 && r.budget_max <= b + 1e-9,
                          "%s: cap %.2f realised budgets in [%.4f, %.4f], not within [%.2f, %.2f]", model, b,
                          r.budget_min, r.budget_max, b - 0.02, b);
            }
            cr_log_info("%s: %s %.2f%% (%.1f s)", model, keys[i].key, got, r.seconds);
            checked++;
        }
    }
    closedir(d);
    cr_log_info("%d card figure(s) checked", checked);
}

Test(models, speech_cards_reproduce, .timeout = 900) {
    DIR *d = opendir("models");
    if (!d) {
        cr_log_info("no models/ folder: nothing to check");
        return;
    }
    acm_blas_set_threads(2);
    const char *build = getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build";
    char subset[512];
    snprintf(subset, sizeof subset, "%s/speech-subset", build);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 4 || strcmp(e->d_name + L - 3, ".md")) continue;
        char card[512], model[512], err[1024], report[8192] = "";
        snprintf(card, sizeof card, "models/%s", e->d_name);
        snprintf(model, sizeof model, "models/%.*s.safetensors", (int)(L - 3), e->d_name);
        acmt_card_key keys[ACMT_CARD_MAX_KEYS];
        const int n = acmt_card_read(card, keys, ACMT_CARD_MAX_KEYS, err, sizeof err);
        cr_assert_geq(n, 0, "%s", err);
        if (!n) continue;
        if (access(model, R_OK)) {
            cr_log_info("%s: %s is missing: not checked", card, model);
            continue;
        }
        char probe[600];
        snprintf(probe, sizeof probe, "%s/corpus.json", subset);
        cr_assert_eq(access(probe, R_OK), 0, "%s: the test subset %s is missing: make speech-subset", card, subset);
        const int bad = acmt_card_check(card, model, subset, TH_SANITIZED ? 1 : 0, report, sizeof report, err,
                                        sizeof err);
        cr_assert_geq(bad, 0, "%s", err);
        cr_assert_eq(bad, 0, "%d key(s) of %s do not reproduce:\n%s", bad, card, report);
        cr_log_info("%s", report);
        checked += TH_SANITIZED ? 1 : n;
    }
    closedir(d);
    cr_log_info("%d speech card figure(s) checked", checked);
}
