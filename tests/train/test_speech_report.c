/*
 * test_speech_report.c — `acm-train speech-report` (train/speech_report.c) on a tiny encoder and its ACM conversion
 * (train_fixture.h): the table has a row per split for the static model and per budget for the ACM model, both
 * pictures are PNG files, and the compute picture's data are what the pictures claim: the spectrogram of each
 * utterance (80 mel rows, 4 frames per token) and per token the learners used / N of every block and of all blocks,
 * whose mean over the tokens is the utterance's realised budget, within [beta - 0.02, beta] under cap. A static model,
 * and a --map-beta outside the budgets (no compute picture) are told apart.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/commands.h"
#include "train_fixture.h"

static char dir[64];

static int is_png(const char *path) {
    unsigned char sig[8] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(sig, 1, 8, f);
    fclose(f);
    return n == 8 && !memcmp(sig, "\x89PNG\r\n\x1a\n", 8);
}

/* Rows of a whitespace-separated matrix file; *cols gets the first row's column count, every row must match. */
static int matrix_rows(const char *path, int *cols, double *sum_last_row) {
    FILE *f = fopen(path, "r");
    cr_assert(f, "%s missing", path);
    char *line = NULL;
    size_t cap = 0;
    int rows = 0;
    *cols = -1;
    while (getline(&line, &cap, f) > 0) {
        int c = 0;
        double s = 0;
        for (char *sv = NULL, *t = strtok_r(line, " \n", &sv); t; t = strtok_r(NULL, " \n", &sv), c++) s += atof(t);
        if (*cols < 0) *cols = c;
        cr_assert_eq(c, *cols, "%s: row %d has %d columns, the first %d", path, rows, c, *cols);
        if (sum_last_row) *sum_last_row = s;
        rows++;
    }
    free(line);
    fclose(f);
    return rows;
}

Test(speech_report, table_pictures_and_the_compute_data, .timeout = 300) {
    char base[128], acm[128], out[128], path[256];
    fixture_speech_models(dir, sizeof dir, "speech-report", base, acm, sizeof base);
    snprintf(out, sizeof out, "%s/rep", dir);
    const char *a[] = {acm, "--base", base, "--corpus", dir, "--out", out, "--betas", "0.5,1", "--map-beta", "0.5",
                       "--utterances", "2", "--beam", "2", "--threads", "1"};
    cr_assert_eq(fixture_run(cmd_speech_report, "speech-report", 17, a), 0);
    snprintf(path, sizeof path, "%s/wer_vs_gflops.png", out);
    cr_expect(is_png(path), "%s", path);
    snprintf(path, sizeof path, "%s/compute_along_speech.png", out);
    cr_expect(is_png(path), "%s", path);
    snprintf(path, sizeof path, "%s/table.md", out);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    char line[512];
    int stat_rows = 0, acm_rows = 0;
    while (fgets(line, sizeof line, f)) {
        stat_rows += !strncmp(line, "| static | test-", 16);
        acm_rows += !strncmp(line, "| acm | test-", 13);
    }
    fclose(f);
    cr_expect_eq(stat_rows, 2);
    cr_expect_eq(acm_rows, 4);
    for (int i = 0; i < 2; i++) {
        int sc, cc;
        double all = 0;
        snprintf(path, sizeof path, "%s/spectrogram_%d.dat", out, i);
        cr_expect_eq(matrix_rows(path, &sc, NULL), 80);
        snprintf(path, sizeof path, "%s/compute_%d.dat", out, i);
        cr_expect_eq(matrix_rows(path, &cc, &all), 3, "2 blocks and the row of all");
        cr_expect_eq(sc, 4 * cc, "%d frames for %d tokens", sc, cc);
        const double budget = all / cc;
        cr_expect(budget >= 0.48 - 1e-6 && budget <= 0.5 + 1e-6, "utterance %d: mean compute %.4f under cap 0.5", i,
                  budget);
    }
    snprintf(path, sizeof path, "%s/compute_2.dat", out);
    f = fopen(path, "r");
    cr_expect(!f, "only --utterances 2 are drawn");
    if (f) fclose(f);

    const char *s[] = {base, "--corpus", dir, "--out", out};
    cr_expect_eq(fixture_run(cmd_speech_report, "speech-report", 5, s), 1, "a static model is refused");
    const char *nomap[] = {acm, "--corpus", dir, "--out", out, "--betas", "1", "--map-beta", "0.5", "--threads", "1"};
    cr_expect_eq(fixture_run(cmd_speech_report, "speech-report", 11, nomap), 0);
    fixture_remove_dir(dir);
}
