/*
 * test_speech_grammar.c — train/speech_grammar.c: determinism per seed, the spoken-form alphabet, every template kind
 * and slot reachable, the vocabulary covering what the grammar says, and the sentence pools keeping test sentences
 * out of training.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "train/speech_grammar.h"

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

Test(speech_grammar, deterministic_per_seed) {
    char a[ACMS_MAX_TEXT], b[ACMS_MAX_TEXT];
    int differ = 0;
    for (uint64_t i = 0; i < 500; i++) {
        acms_kind ka = acms_sentence(7, 3, i, a), kb = acms_sentence(7, 3, i, b);
        cr_assert_eq(ka, kb);
        cr_assert_str_eq(a, b, "sentence %llu differs between two calls", (unsigned long long)i);
        acms_sentence(8, 3, i, b);
        differ += strcmp(a, b) != 0;
    }
    cr_assert(differ > 400, "another seed must give other sentences (%d of 500 differ)", differ);
    /* the corpus is defined by this code: a change to the tables or the generator changes these */
    acms_sentence(1, 11, 0, a);
    acms_sentence(1, 11, 1, b);
    cr_assert(strlen(a) > 0 && strlen(b) > 0 && strcmp(a, b));
}

Test(speech_grammar, spoken_form_alphabet_and_every_kind) {
    char t[ACMS_MAX_TEXT];
    int kinds[ACMS_KIND_COUNT] = {0};
    size_t words = 0, n = 20000;
    for (uint64_t i = 0; i < n; i++) {
        acms_kind k = acms_sentence(1, 0, i, t);
        cr_assert(k >= 0 && k < ACMS_KIND_COUNT);
        kinds[k]++;
        size_t len = strlen(t);
        cr_assert(len > 0 && len < ACMS_MAX_TEXT - 1);
        cr_assert(t[0] != ' ' && t[len - 1] != ' ', "stray space: '%s'", t);
        for (size_t j = 0; j < len; j++) {
            char c = t[j];
            cr_assert((c >= 'a' && c <= 'z') || c == '\'' || c == ' ', "character '%c' in '%s'", c, t);
            cr_assert(!(c == ' ' && t[j + 1] == ' '), "double space in '%s'", t);
            words += c == ' ';
        }
        words++;
    }
    for (int k = 0; k < ACMS_KIND_COUNT; k++)
        cr_assert(kinds[k] > 100, "kind %s drawn %d times in %zu", acms_kind_name((acms_kind)k), kinds[k], n);
    double avg = (double)words / (double)n;
    cr_assert(avg > 5 && avg < 15, "average %.1f words per sentence", avg);
}

Test(speech_grammar, vocabulary_covers_the_grammar) {
    const char *v[4096];
    size_t nv = acms_vocabulary(v, 4096);
    cr_assert(nv >= 300 && nv <= 1000, "a vocabulary of a few hundred words, got %zu", nv);
    for (size_t i = 1; i < nv; i++) cr_assert(strcmp(v[i - 1], v[i]) < 0, "sorted and unique");
    char t[ACMS_MAX_TEXT];
    for (uint64_t i = 0; i < 5000; i++) {
        acms_sentence(3, 1, i, t);
        for (char *w = strtok(t, " "); w; w = strtok(NULL, " ")) {
            const char *key = w;
            cr_assert(bsearch(&key, v, nv, sizeof *v, cmp_str), "word '%s' is not in the vocabulary", w);
        }
    }
}

Test(speech_grammar, pools_keep_test_sentences_out_of_training) {
    enum { NTRAIN = 20000, NTEST = 2000 };
    char **train = malloc(NTRAIN * sizeof *train);
    char t[ACMS_MAX_TEXT];
    for (int i = 0; i < NTRAIN; i++) {
        cr_assert(acms_sentence_for_pool(1, 11, (uint64_t)i, ACMS_POOL_TRAIN, t) >= 0);
        cr_assert_eq(acms_pool_of(t), ACMS_POOL_TRAIN);
        train[i] = strdup(t);
    }
    qsort(train, NTRAIN, sizeof *train, cmp_str);
    int found = 0;
    for (int i = 0; i < NTEST; i++) {
        cr_assert(acms_sentence_for_pool(1, 13, (uint64_t)i, ACMS_POOL_TEST, t) >= 0);
        cr_assert_eq(acms_pool_of(t), ACMS_POOL_TEST);
        const char *key = t;
        found += bsearch(&key, train, NTRAIN, sizeof *train, cmp_str) != NULL;
    }
    cr_assert_eq(found, 0, "%d test sentences also drawn for training", found);
    /* and the split of the hash space is roughly 90 / 4 / 6 */
    int pool[3] = {0};
    for (uint64_t i = 0; i < 20000; i++) {
        acms_sentence(5, 0, i, t);
        pool[acms_pool_of(t)]++;
    }
    cr_assert(pool[ACMS_POOL_TEST] > 800 && pool[ACMS_POOL_TEST] < 1600, "test pool %d of 20000", pool[2]);
    cr_assert(pool[ACMS_POOL_VAL] > 500 && pool[ACMS_POOL_VAL] < 1100, "val pool %d of 20000", pool[1]);
    for (int i = 0; i < NTRAIN; i++) free(train[i]);
    free(train);
}

Test(speech_grammar, rng_ranges) {
    acms_rng r;
    acms_rng_seed(&r, 1, 2, 3);
    int hist[7] = {0};
    double sum = 0, sq = 0;
    for (int i = 0; i < 70000; i++) {
        uint32_t k = acms_rng_below(&r, 7);
        cr_assert(k < 7);
        hist[k]++;
        double u = acms_rng_uniform(&r);
        cr_assert(u >= 0 && u < 1);
        double z = acms_rng_normal(&r);
        sum += z, sq += z * z;
    }
    for (int k = 0; k < 7; k++) cr_assert(hist[k] > 9000 && hist[k] < 11000, "bucket %d: %d", k, hist[k]);
    cr_assert(sum / 70000 > -0.03 && sum / 70000 < 0.03 && sq / 70000 > 0.95 && sq / 70000 < 1.05);
}
