/*
 * test_wer.c — word and character error rates (train/wer.c) on pairs whose distances are counted by hand.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "train/wer.h"

Test(wer, distances_counted_by_hand) {
    /* substitution, deletion, insertion */
    cr_expect_eq(acmt_word_distance("turn on the light", "turn of the light"), 1);
    cr_expect_eq(acmt_word_distance("turn on the light", "turn the light"), 1);
    cr_expect_eq(acmt_word_distance("turn on the light", "turn on on the light please"), 2);
    cr_expect_eq(acmt_word_distance("", "a b c"), 3);
    cr_expect_eq(acmt_word_distance("a b c", ""), 3);
    cr_expect_eq(acmt_word_distance("  a  b ", "a b"), 0, "runs of spaces are one separator");
    cr_expect_eq(acmt_word_distance("one two three four", "two three four five"), 2);
    cr_expect_eq(acmt_char_distance("kitten", "sitting"), 3);
    cr_expect_eq(acmt_char_distance("flaw", "lawn"), 2);
    cr_expect_eq(acmt_char_distance("ab c", "abc"), 1, "a space is a character");
    cr_expect_eq(acmt_word_count(" set  an alarm "), 3);
}

Test(wer, rates_sum_errors_over_reference_lengths) {
    acmt_wer w = {0};
    cr_assert_eq(acmt_wer_add(&w, "call mom", "call tom"), 0);      /* 1 of 2 words, 1 of 8 chars */
    cr_assert_eq(acmt_wer_add(&w, "seven three one", "seven three one"), 0); /* 0 of 3, 0 of 15 */
    cr_assert_eq(acmt_wer_add(&w, "yes", "yes no"), 0);             /* 1 of 1, 3 of 3 */
    cr_expect_eq(w.word_errors, 2);
    cr_expect_eq(w.words, 6);
    cr_expect_eq(w.char_errors, 4);
    cr_expect_eq(w.chars, 26);
    cr_expect(fabs(acmt_wer_word_rate(&w) - 2.0 / 6) < 1e-12);
    cr_expect(fabs(acmt_wer_char_rate(&w) - 4.0 / 26) < 1e-12);
    acmt_wer e = {0};
    cr_expect_eq(acmt_wer_word_rate(&e), 0.0);
}
