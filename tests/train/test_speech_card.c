/*
 * test_speech_card.c — the check of a speech model's card (train/speech_card.c), on a tiny encoder trained by
 * `acm-train speech-base` and converted by `acm-train acmize` on a small corpus written by the test (the layout of
 * speech_corpus.h, with test-seen and test-unseen splits): the keys `acm-train speech-card MODEL` prints reproduce
 * when checked (static and ACM models); a figure more than 1 WER point off is reported as a mismatch naming the key;
 * one within the tolerance passes; a malformed key, a key given twice, a budget on a static model's key and a key
 * without a budget on an ACM model fail with the card's name.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/speech_card.h"
#include "train/speech_eval.h"
#include "train/speech_train.h"
#include "speech_fixture.h"
#include "train_fixture.h"

static char dir[64];

/* A card: the front matter holds the lines of keys (NULL-terminated), then a body. */
static void write_card(const char *path, const char *keys) {
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "---\nmodel: x\n%s---\n# a card\n\nsubset_wer_outside_the_front_matter: 1\n", keys);
    fclose(f);
}

/* What `acm-train speech-card MODEL --corpus DIR --beam 4 [--beta B]` prints (the program in $ACM_BUILD). */
static void card_keys_of(const char *model, const char *beta, char *out, size_t cap) {
    char cmd[512];
    const char *build = getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/acm-train speech-card %s --corpus %s --beam 4 --threads 1%s%s", build, model, dir,
             beta ? " --beta " : "", beta ? beta : "");
    FILE *p = popen(cmd, "r");
    cr_assert(p, "%s", cmd);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    cr_assert_eq(pclose(p), 0, "%s failed: %s", cmd, out);
}

/* Checks card against model; returns the count of mismatches (-1: error in err). */
static int check(const char *card, const char *model, char *report, size_t rcap, char *err, size_t elen) {
    report[0] = 0;
    return acmt_card_check(card, model, dir, 0, report, rcap, err, elen);
}

Test(speech_card, printed_keys_reproduce_and_a_wrong_figure_is_a_mismatch, .timeout = 300) {
    char base[128], acm[128], card[128], keys[4096], report[8192], err[1024];
    fixture_speech_models(dir, sizeof dir, "speech-card", base, acm, sizeof base);
    acm_blas_set_threads(1);
    snprintf(card, sizeof card, "%s/card.md", dir);

    /* the static model: 2 splits x greedy and beam4 */
    card_keys_of(base, NULL, keys, sizeof keys);
    cr_assert(strstr(keys, "\nsubset_wer_test-seen_greedy: ") && strstr(keys, "\nsubset_wer_test-unseen_beam4: "), "%s",
              keys);
    write_card(card, strchr(keys, '\n') + 1); /* the first line is a comment: kept out of the front matter */
    cr_assert_eq(check(card, base, report, sizeof report, err, sizeof err), 0, "%s%s", report, err);
    cr_expect_eq(acmt_card_read(card, (acmt_card_key[ACMT_CARD_MAX_KEYS]){0}, ACMT_CARD_MAX_KEYS, err, sizeof err), 4);

    /* the true greedy WER of test-unseen; the card within the tolerance passes, beyond it is a mismatch */
    acmt_speech_eval_params p = {.corpus = dir, .split = "test-unseen"};
    acmt_speech_eval_result r;
    cr_assert_eq(acmt_speech_eval(base, &p, &r, err, sizeof err), 0, "%s", err);
    free(r.speakers);
    const double wer = 100.0 * acmt_wer_word_rate(&r.greedy);
    char line[128];
    snprintf(line, sizeof line, "subset_wer_test-unseen_greedy: %.2f\n", wer + 0.9);
    write_card(card, line);
    cr_expect_eq(check(card, base, report, sizeof report, err, sizeof err), 0, "%s%s", report, err);
    snprintf(line, sizeof line, "subset_wer_test-seen_beam4: 0\nsubset_wer_test-unseen_greedy: %.2f\n", wer + 1.2);
    write_card(card, line);
    cr_expect_geq(check(card, base, report, sizeof report, err, sizeof err), 1, "%s%s", report, err);
    cr_expect(strstr(report, "subset_wer_test-unseen_greedy: WER") && strstr(report, "MISMATCH") &&
                  strstr(report, card),
              "%s", report);

    /* the ACM model under cap: the keys at two budgets reproduce (and their budgets lie in [beta - 0.02, beta]) */
    card_keys_of(acm, "0.5,1", keys, sizeof keys);
    cr_assert(strstr(keys, "\nsubset_wer_test-seen_beam4_cap_0.5: ") && strstr(keys, "subset_wer_test-unseen_greedy_cap_1: "),
              "%s", keys);
    write_card(card, strchr(keys, '\n') + 1);
    cr_assert_eq(check(card, acm, report, sizeof report, err, sizeof err), 0, "%s%s", report, err);
    cr_expect(strstr(report, "realised budgets ["), "%s", report);
    char *at = strstr(keys, "subset_wer_test-seen_greedy_cap_0.5: ");
    cr_assert(at);
    const double acm_wer = atof(at + strlen("subset_wer_test-seen_greedy_cap_0.5: "));
    snprintf(line, sizeof line, "subset_wer_test-seen_greedy_cap_0.5: %.2f\n", acm_wer > 50 ? acm_wer - 5 : acm_wer + 5);
    write_card(card, line);
    cr_expect_eq(check(card, acm, report, sizeof report, err, sizeof err), 1, "%s%s", report, err);
    fixture_remove_dir(dir);
}

Test(speech_card, malformed_keys_fail_with_the_cards_name) {
    fixture_make_dir(dir, sizeof dir, "speech-card-bad");
    char card[128], err[512];
    snprintf(card, sizeof card, "%s/bad.md", dir);
    acmt_card_key k[ACMT_CARD_MAX_KEYS];
    const char *bad[][2] = {
        {"subset_wer_test-seen_greedy 12.5\n", "has no ':'"},
        {"subset_wer_test-seen_greedy: 12.5x\n", "not a WER"},
        {"subset_wer_test-seen_greedy: -1\n", "not a WER"},
        {"subset_wer_val_greedy: 12.5\n", "is not subset_wer_SPLIT_DECODER"},
        {"subset_wer_test-seen: 12.5\n", "is not subset_wer_SPLIT_DECODER"},
        {"subset_wer_test-seen_beam: 12.5\n", "decoder 'beam'"},
        {"subset_wer_test-seen_beam8x: 12.5\n", "decoder 'beam8x'"},
        {"subset_wer_test-seen_greedy_mean_0.5: 12.5\n", "_cap_BETA"},
        {"subset_wer_test-seen_greedy_cap_1.5: 12.5\n", "_cap_BETA"},
        {"subset_wer_test-seen_greedy_cap_: 12.5\n", "is not subset_wer_SPLIT_DECODER"},
        {"subset_wer_test-seen_greedy: 1\nsubset_wer_test-seen_greedy: 2\n", "given twice"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_card(card, bad[i][0]);
        err[0] = 0;
        cr_expect_eq(acmt_card_read(card, k, ACMT_CARD_MAX_KEYS, err, sizeof err), -1, "accepted: %s", bad[i][0]);
        cr_expect(strstr(err, card) && strstr(err, "line ") && strstr(err, bad[i][1]), "%s -> %s", bad[i][0], err);
    }
    write_card(card, "test_accuracy: 88.07\nsubset_wer_test-seen_greedy: 12.5\nsubset_wer_test-unseen_beam8_cap_0.25: 3\n");
    cr_assert_eq(acmt_card_read(card, k, ACMT_CARD_MAX_KEYS, err, sizeof err), 2, "%s", err);
    cr_expect(!strcmp(k[1].split, "test-unseen") && k[1].beam == 8 && k[1].beta == 0.25 && k[1].want == 3);
    char report[256] = "", model[128];
    /* a budget on a static model (a random one), none on an ACM model (the golden one); an image model */
    acmt_speech_config c = fixture_speech_small(8, 8);
    acmt_rng r;
    acmt_speech *s = fixture_speech_random(&c, 1, 16, 0, 2, &r);
    snprintf(model, sizeof model, "%s/static.safetensors", dir);
    cr_assert_eq(acmt_speech_save_model(s, model, NULL, err, sizeof err), 0, "%s", err);
    acmt_speech_free(s);
    cr_expect_eq(acmt_card_check(card, model, dir, 0, report, sizeof report, err, sizeof err), -1);
    cr_expect(strstr(err, card) && strstr(err, "no _cap_BETA"), "%s", err);
    write_card(card, "subset_wer_test-seen_greedy: 12.5\n");
    cr_expect_eq(acmt_card_check(card, "tests/golden/speech_a.safetensors", dir, 0, report, sizeof report, err,
                                 sizeof err),
                 -1);
    cr_expect(strstr(err, card) && strstr(err, "needs _cap_BETA"), "%s", err);
    cr_expect_eq(acmt_card_check(card, "models/fmnist-vit.safetensors", dir, 0, report, sizeof report, err, sizeof err),
                 -1);
    cr_expect(strstr(err, "not a speech model") || strstr(err, "fmnist-vit"), "%s", err);
    fixture_remove_dir(dir);
}
