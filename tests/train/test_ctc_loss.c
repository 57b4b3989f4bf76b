/*
 * test_ctc_loss.c — train/ctc_loss.c against the float64 numpy reference (tests/golden/ctc_loss_cases.json, made by
 * tests/reference/gen_ctc_loss.py: brute force over every path on tiny cases, the alpha recursion on long ones) and
 * against central finite differences of its own loss.
 *
 * Tolerances: the C code works in double from the same float32 logits, so the loss agrees to 1e-9 relative; the
 * gradient is written as float (one rounding of values in [-1, 1]): 1e-6 absolute.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/ctc_loss.h"

static json_t *load_golden(void) {
    json_error_t je;
    json_t *g = json_load_file("tests/golden/ctc_loss_cases.json", 0, &je);
    cr_assert(g, "tests/golden/ctc_loss_cases.json: %s (line %d); run /usr/bin/python3 tests/reference/gen_ctc_loss.py",
              je.text, je.line);
    return g;
}

Test(ctc_loss, golden_numpy_float64) {
    json_t *golden = load_golden(), *cases = json_object_get(golden, "cases");
    size_t i;
    json_t *c;
    int n_ok = 0, n_skip = 0;
    double worst_loss = 0, worst_grad = 0;
    json_array_foreach(cases, i, c) {
        const char *name = json_string_value(json_object_get(c, "name"));
        const int T = (int)json_integer_value(json_object_get(c, "T"));
        const int K = (int)json_integer_value(json_object_get(c, "K"));
        json_t *jl = json_object_get(c, "labels"), *jz = json_object_get(c, "logits");
        const int U = (int)json_array_size(jl);
        int32_t *lab = malloc(sizeof(int32_t) * (size_t)(U + 1));
        float *z = malloc(sizeof(float) * (size_t)(T * K + 1)), *g = calloc((size_t)(T * K + 1), sizeof(float));
        double *work = malloc(sizeof(double) * acmt_ctc_workspace(T, K, U));
        for (int j = 0; j < U; j++) lab[j] = (int32_t)json_integer_value(json_array_get(jl, (size_t)j));
        for (int j = 0; j < T * K; j++) z[j] = (float)json_real_value(json_array_get(jz, (size_t)j));
        double loss = -1;
        int rc = acmt_ctc_loss(&loss, g, K, z, K, T, K, lab, U, 1.0f, work);
        if (!strcmp(json_string_value(json_object_get(c, "status")), "skip")) {
            cr_expect_eq(rc, ACMT_CTC_SKIP, "%s: status %d, want skip", name, rc);
            cr_expect_eq(loss, -1, "%s: a skip wrote the loss", name);
            for (int j = 0; j < T * K; j++) cr_expect_eq(g[j], 0.0f, "%s: a skip wrote the gradient", name);
            n_skip++;
        } else {
            cr_assert_eq(rc, ACMT_CTC_OK, "%s: %s", name, acmt_ctc_strerror(rc));
            const double want = json_real_value(json_object_get(c, "loss"));
            const double dl = fabs(loss - want) / fmax(1.0, fabs(want));
            cr_expect(dl < 1e-9, "%s: loss %.12g, numpy %.12g", name, loss, want);
            worst_loss = fmax(worst_loss, dl);
            json_t *jg = json_object_get(c, "grad");
            double wg = 0;
            for (int j = 0; j < T * K; j++) {
                const double d = fabs(g[j] - json_real_value(json_array_get(jg, (size_t)j)));
                cr_assert(isfinite(g[j]), "%s: gradient %d not finite", name, j);
                wg = fmax(wg, d);
            }
            cr_expect(wg < 1e-6, "%s: gradient max |diff| %g against numpy", name, wg);
            worst_grad = fmax(worst_grad, wg);
            n_ok++;
        }
        free(lab);
        free(z);
        free(g);
        free(work);
    }
    cr_assert(n_ok >= 10 && n_skip >= 3, "%d ok and %d skip cases", n_ok, n_skip);
    cr_log_info("ctc loss golden: %d cases, %d skips; max loss rel diff %.3g, max grad diff %.3g", n_ok, n_skip,
                worst_loss, worst_grad);
    json_decref(golden);
}

/* Central differences of the loss itself, in double through float logits: h = 1e-2 on values of order 1 gives a
 * truncation error ~h² and float rounding of the logits is exact for these multiples. */
Test(ctc_loss, gradient_matches_finite_differences) {
    const int T = 9, K = 5, U = 4;
    const int32_t lab[4] = {2, 2, 4, 1};
    float z[9 * 5], g[9 * 5] = {0};
    unsigned s = 12345;
    for (int i = 0; i < T * K; i++) {
        s = s * 1103515245u + 12345u;
        z[i] = (float)((int)(s >> 16 & 0xff) - 128) / 64.0f;
    }
    double *work = malloc(sizeof(double) * acmt_ctc_workspace(T, K, U)), L0;
    cr_assert_eq(acmt_ctc_loss(&L0, g, K, z, K, T, K, lab, U, 0.5f, work), ACMT_CTC_OK);
    double worst = 0;
    for (int i = 0; i < T * K; i++) {
        const float z0 = z[i];
        const float h = 1.0f / 128;
        double lp, lm;
        z[i] = z0 + h;
        acmt_ctc_loss(&lp, NULL, K, z, K, T, K, lab, U, 1, work);
        z[i] = z0 - h;
        acmt_ctc_loss(&lm, NULL, K, z, K, T, K, lab, U, 1, work);
        z[i] = z0;
        const double fd = 0.5 * (lp - lm) / (2.0 * h);
        worst = fmax(worst, fabs(fd - g[i]));
        cr_expect(fabs(fd - g[i]) < 1e-4, "logit %d: analytic %g, numeric %g", i, (double)g[i], fd);
    }
    cr_log_info("ctc loss finite differences: max |diff| %.3g", worst);
    free(work);
}

Test(ctc_loss, gradient_accumulates_and_rows_sum_to_zero) {
    const int T = 6, K = 4, U = 2;
    const int32_t lab[2] = {3, 1};
    float z[24], g[24];
    for (int i = 0; i < T * K; i++) z[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
    double *work = malloc(sizeof(double) * acmt_ctc_workspace(T, K, U)), L;
    for (int i = 0; i < T * K; i++) g[i] = 1.0f;
    cr_assert_eq(acmt_ctc_loss(&L, g, K, z, K, T, K, lab, U, 1.0f, work), ACMT_CTC_OK);
    for (int t = 0; t < T; t++) {
        double sum = 0;
        for (int k = 0; k < K; k++) sum += g[t * K + k] - 1.0f;
        cr_expect(fabs(sum) < 1e-6, "frame %d: gradient sums to %g (softmax minus a distribution sums to 0)", t, sum);
    }
    free(work);
}

Test(ctc_loss, bad_labels_and_nonfinite_logits_are_errors) {
    float z[12] = {0}, g[12] = {0};
    double work[64], L = 7;
    const int32_t blank[1] = {0}, big[1] = {4};
    cr_expect_eq(acmt_ctc_loss(&L, g, 4, z, 4, 3, 4, blank, 1, 1, work), ACMT_CTC_EBADLABEL);
    cr_expect_eq(acmt_ctc_loss(&L, g, 4, z, 4, 3, 4, big, 1, 1, work), ACMT_CTC_EBADLABEL);
    z[5] = NAN;
    const int32_t one[1] = {1};
    cr_expect_eq(acmt_ctc_loss(&L, g, 4, z, 4, 3, 4, one, 1, 1, work), ACMT_CTC_ENONFINITE);
    cr_expect_eq(L, 7, "an error wrote the loss");
    for (int i = 0; i < 12; i++) cr_expect_eq(g[i], 0.0f, "an error wrote the gradient");
    cr_expect_eq(acmt_ctc_min_frames((const int32_t[]){1, 1, 2, 2, 2}, 5), 8);
}
