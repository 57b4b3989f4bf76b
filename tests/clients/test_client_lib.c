/*
 * test_client_lib.c — the pure parts of the acm client (clients/args.c, stats.c, http.c's URL check, heatmap.c):
 * option values and their ranges, per-request distributions (every draw inside its range, every choice drawn), the
 * nearest-rank percentiles against a hand count, server URLs, and the heatmap's pixels against the colours its
 * header promises for a hand-made compute map.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <spng.h>

#include "clients/acmc.h"
#include "server/harness.h"

Test(args, numbers_and_ranges) {
    char err[256];
    double d;
    long l;
    cr_assert_eq(acmc_parse_double("--budget", "0.5", 0, 1, 1, &d, err, sizeof err), 0);
    cr_assert_float_eq(d, 0.5, 0);
    cr_assert_eq(acmc_parse_double("--budget", "0", 0, 1, 1, &d, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "--budget: 0 is outside (0, 1]"), "%s", err);
    cr_assert_eq(acmc_parse_double("--budget", "1.0001", 0, 1, 1, &d, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_parse_double("--budget", "0.5x", 0, 1, 1, &d, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "'0.5x' is not a number"), "%s", err);
    cr_assert_eq(acmc_parse_double("--budget", "nan", 0, 1, 1, &d, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_parse_double("--budget", "", 0, 1, 1, &d, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_parse_long("--priority", "7", 0, 7, &l, err, sizeof err), 0);
    cr_assert_eq(acmc_parse_long("--priority", "8", 0, 7, &l, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_parse_long("--priority", "1.5", 0, 7, &l, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_parse_long("-n", "99999999999999999999", 1, 100, &l, err, sizeof err), ACMC_EXIT_USAGE);
}

Test(args, opt_forms) {
    char err[128];
    char *argv[] = {"x", "--budget=0.3", "--model", "m", "--server"};
    const char *v;
    int i = 1;
    cr_assert_eq(acmc_opt(5, argv, &i, "--budget", &v, err, sizeof err), 1);
    cr_assert_str_eq(v, "0.3");
    cr_assert_eq(i, 1);
    i = 2;
    cr_assert_eq(acmc_opt(5, argv, &i, "--budget", &v, err, sizeof err), 0);
    cr_assert_eq(acmc_opt(5, argv, &i, "--model", &v, err, sizeof err), 1);
    cr_assert_str_eq(v, "m");
    cr_assert_eq(i, 3);
    i = 4;
    cr_assert_eq(acmc_opt(5, argv, &i, "--server", &v, err, sizeof err), -1);
    cr_assert(strstr(err, "--server needs a value"));
    i = 1; /* a longer option with the same prefix is not this one */
    cr_assert_eq(acmc_opt(5, argv, &i, "--budg", &v, err, sizeof err), 0);
}

Test(args, distributions) {
    char err[256], txt[256];
    acmc_dist d;
    acmc_rng r;
    acmc_rng_seed(&r, 42);
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "uniform:0.25:0.75", 0, 1, 1, 0, err, sizeof err), 0, "%s", err);
    double lo = 1, hi = 0, sum = 0;
    for (int i = 0; i < 20000; i++) {
        double x = acmc_dist_draw(&d, &r);
        cr_assert(x >= 0.25 && x <= 0.75, "draw %g outside [0.25, 0.75]", x);
        lo = fmin(lo, x), hi = fmax(hi, x), sum += x;
    }
    cr_assert(lo < 0.26 && hi > 0.74, "draws span [%g, %g]", lo, hi);
    cr_assert(fabs(sum / 20000 - 0.5) < 0.01, "mean %g", sum / 20000);
    acmc_dist_format(&d, txt, sizeof txt);
    cr_assert_str_eq(txt, "uniform:0.25:0.75");

    cr_assert_eq(acmc_dist_parse(&d, "--priority", "choice:0,3,7", 0, 7, 0, 1, err, sizeof err), 0, "%s", err);
    int seen[8] = {0};
    for (int i = 0; i < 3000; i++) {
        double x = acmc_dist_draw(&d, &r);
        cr_assert(x == 0 || x == 3 || x == 7, "draw %g", x);
        seen[(int)x]++;
    }
    for (int k = 0; k < 8; k++)
        if (k == 0 || k == 3 || k == 7) cr_assert(seen[k] > 850 && seen[k] < 1150, "choice %d drawn %d of 3000", k, seen[k]);
    cr_assert_float_eq(acmc_dist_mean(&d), 10.0 / 3, 1e-12);

    cr_assert_eq(acmc_dist_parse(&d, "--priority", "uniform:1:2", 0, 7, 0, 1, err, sizeof err), 0);
    int ones = 0;
    for (int i = 0; i < 1000; i++) {
        double x = acmc_dist_draw(&d, &r);
        cr_assert(x == 1 || x == 2, "integer uniform drew %g", x);
        ones += x == 1;
    }
    cr_assert(ones > 400 && ones < 600, "%d ones of 1000", ones);

    cr_assert_eq(acmc_dist_parse(&d, "--deadline-ms", "50", 0, 3600e3, 1, 0, err, sizeof err), 0);
    cr_assert_eq(acmc_dist_draw(&d, &r), 50);
    /* errors name the option and the problem */
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "uniform:0.9:0.2", 0, 1, 1, 0, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "--budget") && strstr(err, "LOW is above HIGH"), "%s", err);
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "uniform:0.5", 0, 1, 1, 0, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "choice:0.5,2", 0, 1, 1, 0, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "2 is outside (0, 1]"), "%s", err);
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "choice:", 0, 1, 1, 0, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_dist_parse(&d, "--priority", "choice:1,x", 0, 7, 0, 1, err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "'x' is not a whole number"), "%s", err);
    cr_assert_eq(acmc_dist_parse(&d, "--budget", "normal:0.5:0.1", 0, 1, 1, 0, err, sizeof err), ACMC_EXIT_USAGE);
}

Test(stats, nearest_rank_percentiles) {
    acmc_samples s = {0};
    cr_assert(isnan(acmc_samples_quantile(&s, 0.5)));
    for (int i = 1000; i >= 1; i--) cr_assert_eq(acmc_samples_add(&s, i), 0); /* 1..1000, reversed */
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.5), 500, 0);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.9), 900, 0);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.99), 990, 0);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.999), 999, 0);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0), 1, 0);
    cr_assert_float_eq(acmc_samples_max(&s), 1000, 0);
    cr_assert_float_eq(acmc_samples_mean(&s), 500.5, 1e-9);
    acmc_samples_add(&s, 5000); /* an add after sorting sorts again */
    cr_assert_float_eq(acmc_samples_max(&s), 5000, 0);
    acmc_samples_free(&s);
    /* 100 samples: p99 is the 99th, not the 100th */
    for (int i = 1; i <= 100; i++) acmc_samples_add(&s, i);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.99), 99, 0);
    cr_assert_float_eq(acmc_samples_quantile(&s, 0.999), 100, 0);
    acmc_samples_free(&s);
}

/* Word errors against hand-counted cases (and the same values from a plain Levenshtein in Python). */
Test(stats, word_error_rate) {
    const struct {
        const char *ref, *hyp;
        long errors, words;
    } c[] = {
        {"the cat sat on the mat", "the cat sat on the mat", 0, 6},
        {"the cat sat on the mat", "the cat sat on mat", 1, 6},             /* one deletion */
        {"the cat sat on the mat", "a cat sat on the the mat", 2, 6},       /* a substitution and an insertion */
        {"i like green apples", "i love apples very much", 4, 4},          /* 1 sub, 1 del, 2 ins */
        {"a b c", "c b a", 2, 3},                                           /* two substitutions, not a move */
        {"The  CAT\tsat\n", "the cat sat", 0, 3},                         /* case and whitespace runs */
        {"", "x y", 2, 0},
        {"x y", "", 2, 2},
        {"", "", 0, 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        long e = -1, w = -1;
        cr_assert_eq(acmc_wer_counts(c[i].hyp, c[i].ref, &e, &w), 0);
        cr_expect_eq(e, c[i].errors, "case %zu: %ld errors, want %ld", i, e, c[i].errors);
        cr_expect_eq(w, c[i].words, "case %zu: %ld words, want %ld", i, w, c[i].words);
    }
}

/* A stream's finals joined against the whole file's text: identical words however segmented and spaced count as
 * the same; a word changed, split, merged, added, dropped or in another case does not (acmc_same_words); the same
 * letters with words cut elsewhere count under acmc_same_letters. */
Test(stats, same_words_across_segments) {
    const struct {
        const char *a, *b;
        int same;
    } c[] = {
        {"go forward ten meters", "go forward ten meters", 1},
        {"go forward ten meters", "go forward  ten meters ", 1}, /* two segments joined with a space */
        {"go forward ten meters", "\tgo forward\nten meters", 1},
        {"", "  ", 1},
        {"go forward ten meters", "go forward ten meter", 0},   /* a shorter last word */
        {"go forward ten meters", "go forward ten metres", 0},
        {"go forward ten meters", "go for ward ten meters", 0}, /* a word split at a segment's end */
        {"go for ward ten meters", "go forward ten meters", 0},
        {"go forward ten meters", "go forward ten meters six", 0},
        {"go forward ten meters six", "go forward ten meters", 0},
        {"go forward ten meters", "Go forward ten meters", 0},
        {"a", "", 0},
        {"", "a", 0},
    };
    for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
        cr_expect_eq(acmc_same_words(c[i].a, c[i].b), c[i].same, "case %zu: '%s' against '%s'", i, c[i].a, c[i].b);
        cr_expect_eq(acmc_same_words(c[i].b, c[i].a), c[i].same, "case %zu reversed", i);
    }
    /* letters, whitespace aside: a word split or merged is the same text; any other change is not */
    const struct {
        const char *a, *b;
        int same;
    } l[] = {
        {"go forward ten meters", "go for ward ten meters", 1},
        {"customnuostcan you", "customnuost can you", 1},
        {"go forward ten meters", " goforward\ttenmeters ", 1},
        {"", " ", 1},
        {"go forward ten meters", "go forward ten meter", 0},
        {"go forward ten meters", "go forward ten meterss", 0},
        {"go forward ten meters", "go forward ten metres", 0},
        {"go forward", "Go forward", 0},
        {"a", "", 0},
    };
    for (size_t i = 0; i < sizeof l / sizeof *l; i++) {
        cr_expect_eq(acmc_same_letters(l[i].a, l[i].b), l[i].same, "letters %zu: '%s' against '%s'", i, l[i].a, l[i].b);
        cr_expect_eq(acmc_same_letters(l[i].b, l[i].a), l[i].same, "letters %zu reversed", i);
    }
}

Test(http, server_urls) {
    char out[256], err[256];
    cr_assert_eq(acmc_server_url(out, sizeof out, "http://127.0.0.1:8080/", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "http://127.0.0.1:8080");
    cr_assert_eq(acmc_server_url(out, sizeof out, "https://example.org/prefix//", err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(out, "https://example.org/prefix");
    cr_assert_eq(acmc_server_url(out, sizeof out, "ftp://h", err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert(strstr(err, "only http:// and https://"), "%s", err);
    cr_assert_eq(acmc_server_url(out, sizeof out, "http://h:8080/?x=1", err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_server_url(out, sizeof out, "http://", err, sizeof err), ACMC_EXIT_USAGE);
    cr_assert_eq(acmc_server_url(out, sizeof out, "http://h:99999", err, sizeof err), ACMC_EXIT_USAGE);
}

Test(http, server_error_line) {
    char out[256];
    acmc_resp r = {.status = 404};
    const char *body = "{\"error\": \"unknown model \\\"x\\\"\"}";
    acmc_buf_append(&r.body, body, strlen(body));
    acmc_server_error(&r, out, sizeof out);
    cr_assert_str_eq(out, "404 Not Found: unknown model \"x\"");
    acmc_resp_free(&r);
    r = (acmc_resp){.status = 502};
    acmc_buf_append(&r.body, "<html>bad\tgateway\n<body>", 24);
    acmc_server_error(&r, out, sizeof out);
    cr_assert_str_eq(out, "502 Bad Gateway: <html>bad?gateway");
    acmc_resp_free(&r);
}

static void viridis_expect(const uint8_t *px, double v, const char *what) {
    /* the header's table at the stops */
    static const int stop[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    int i = (int)lround(v * 4);
    for (int c = 0; c < 3; c++)
        cr_assert(abs(px[c] - stop[i][c]) <= 1, "%s: channel %d is %d, viridis(%g) has %d", what, c, px[c], v, stop[i][c]);
}

Test(heatmap, pixels_follow_the_map) {
    /* a black 28x28 image; grid 2 (4 patches) + class token; two modules of 4 and 2 learners:
     * patch fractions (k1 + k2) / 6: 0, 6/6, 3/6, 0 */
    uint8_t black[28 * 28] = {0};
    size_t plen;
    uint8_t *img = th_png(black, 28, 28, 1, &plen);
    const char *map = "{\"tokens\":5,\"grid\":2,\"modules\":[{\"name\":\"a\",\"learners\":4,\"k\":[4,0,4,2,0]},"
                      "{\"name\":\"b\",\"learners\":2,\"k\":[2,0,2,1,0]}]}";
    uint8_t *png;
    size_t len;
    double mean;
    char err[256];
    cr_assert_eq(acmc_heatmap_png(img, plen, map, &png, &len, &mean, err, sizeof err), 0, "%s", err);
    cr_assert_float_eq(mean, (0 + 1 + 0.5 + 0) / 4, 1e-12);
    spng_ctx *ctx = spng_ctx_new(0);
    spng_set_png_buffer(ctx, png, len);
    struct spng_ihdr ih;
    cr_assert_eq(spng_get_ihdr(ctx, &ih), 0);
    cr_assert_eq(ih.width, 224); /* 2 x ceil(224 / 2) */
    cr_assert_eq(ih.height, 224 + 16);
    size_t n;
    spng_decoded_image_size(ctx, SPNG_FMT_RGB8, &n);
    uint8_t *rgb = malloc(n);
    cr_assert_eq(spng_decode_image(ctx, rgb, n, SPNG_FMT_RGB8, 0), 0);
    /* black image: a pixel is 0.6 x the patch's colour */
    const int W = 224;
    const double frac[4] = {0, 1, 0.5, 0};
    for (int p = 0; p < 4; p++) {
        int x = (p % 2) * 112 + 56, y = (p / 2) * 112 + 56;
        const uint8_t *px = rgb + ((size_t)y * W + x) * 3;
        uint8_t undo[3];
        for (int c = 0; c < 3; c++) undo[c] = (uint8_t)lround(px[c] / 0.6);
        char what[32];
        snprintf(what, sizeof what, "patch %d", p);
        viridis_expect(undo, frac[p], what);
    }
    viridis_expect(rgb + ((size_t)(224 + 10) * W + 0) * 3, 0, "colour bar, left");
    viridis_expect(rgb + ((size_t)(224 + 10) * W + 223) * 3, 1, "colour bar, right");
    free(rgb);
    spng_ctx_free(ctx);
    free(png);

    /* maps that do not fit are refused with a reason */
    const char *bad[] = {"{\"tokens\":5,\"grid\":2,\"modules\":[]}",
                         "{\"tokens\":5,\"grid\":3,\"modules\":[{\"learners\":1,\"k\":[1,1,1,1,1]}]}",
                         "{\"tokens\":5,\"grid\":2,\"modules\":[{\"learners\":1,\"k\":[1,1,1,1]}]}",
                         "{\"tokens\":5,\"grid\":2,\"modules\":[{\"learners\":1,\"k\":[1,1,2,1,1]}]}", "not json"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(acmc_heatmap_png(img, plen, bad[i], &png, &len, NULL, err, sizeof err), ACMC_EXIT_SERVER, "map %zu", i);
        cr_assert_null(png);
        cr_log_info("bad map %zu: %s", i, err);
    }
    /* an image that does not decode */
    cr_assert_eq(acmc_heatmap_png((const uint8_t *)"hello", 5, map, &png, &len, NULL, err, sizeof err), ACMC_EXIT_INPUT);
    free(img);
}
