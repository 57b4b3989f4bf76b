/*
 * test_data.c — train/data.c: the validation split (disjoint, deterministic, independent of the training seed),
 * normalisation, and each augmentation on a hand-made image; batches are the same for the same RNG state.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/data.h"

/* n images of 28x28 whose pixel (r, c) of image i is (i + r * 28 + c) % 256; label i % 10. */
static acmt_images fake(int64_t n) {
    acmt_images s = {.n = n, .rows = 28, .cols = 28};
    s.pixels = malloc((size_t)n * 784);
    s.labels = malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        for (int p = 0; p < 784; p++) s.pixels[i * 784 + p] = (uint8_t)((i + p) % 256);
        s.labels[i] = (int32_t)(i % 10);
    }
    return s;
}

static float norm(int v) { return ((float)v / 255.0f - ACMT_FMNIST_MEAN) / ACMT_FMNIST_STD; }

Test(data, split_is_disjoint_and_deterministic) {
    acmt_images all = fake(100), tr, va, tr2, va2;
    char err[128];
    cr_assert_eq(acmt_images_split(&tr, &va, &all, 20, 5, 0, err, sizeof err), 0, "%s", err);
    cr_assert_eq(tr.n, 80);
    cr_assert_eq(va.n, 20);
    cr_assert_eq(acmt_images_split(&tr2, &va2, &all, 20, 5, 0, err, sizeof err), 0);
    cr_assert(memcmp(va.pixels, va2.pixels, 20 * 784) == 0);
    acmt_images_free(&tr2);
    acmt_images_free(&va2);
    /* image i is identified by its first pixel (i % 256 for i < 100): every image lands in exactly one part */
    int seen[100] = {0};
    for (int64_t i = 0; i < tr.n; i++) seen[tr.pixels[i * 784]]++;
    for (int64_t i = 0; i < va.n; i++) seen[va.pixels[i * 784]]++;
    for (int i = 0; i < 100; i++) cr_assert_eq(seen[i], 1, "image %d seen %d times", i, seen[i]);
    cr_assert(acmt_images_split(&tr2, &va2, &all, 100, 5, 0, err, sizeof err) < 0);
    acmt_images_free(&tr);
    acmt_images_free(&va);
    acmt_images_free(&all);
}

Test(data, normalisation_without_augmentation) {
    acmt_images s = fake(3);
    float x[2 * 784];
    int32_t y[2], idx[2] = {2, 0};
    acmt_make_batch(x, y, &s, idx, 2, NULL, NULL);
    cr_assert_eq(y[0], 2);
    cr_assert_eq(y[1], 0);
    for (int p = 0; p < 784; p += 97) cr_assert_float_eq(x[p], norm((2 + p) % 256), 1e-6f);
    acmt_images_free(&s);
}

Test(data, flip_crop_erase) {
    acmt_images s = fake(1);
    float x[784];
    int32_t y, idx = 0;
    acmt_rng r;
    acmt_rng_seed(&r, 1, 0);
    acmt_augment flip = {.flip = 1.0f};
    acmt_make_batch(x, &y, &s, &idx, 1, &flip, &r);
    cr_assert_float_eq(x[3 * 28 + 0], norm((3 * 28 + 27) % 256), 1e-6f); /* column 0 <- column 27 */
    /* crop: every output pixel is either background or a source pixel shifted by the same (dy, dx) in [-2, 2] */
    acmt_augment crop = {.crop_pad = 2};
    for (int trial = 0; trial < 20; trial++) {
        acmt_make_batch(x, &y, &s, &idx, 1, &crop, &r);
        int found = 0;
        for (int dy = -2; dy <= 2 && !found; dy++)
            for (int dx = -2; dx <= 2 && !found; dx++) {
                int ok = 1;
                for (int rr = 0; rr < 28 && ok; rr++)
                    for (int c = 0; c < 28 && ok; c++) {
                        int sr = rr + dy, sc = c + dx;
                        float want = (sr >= 0 && sr < 28 && sc >= 0 && sc < 28) ? norm((sr * 28 + sc) % 256) : norm(0);
                        ok = fabsf(x[rr * 28 + c] - want) < 1e-6f;
                    }
                found = ok;
            }
        cr_assert(found, "crop %d is not a shift within the padding", trial);
    }
    /* erase: some pixels become exactly 0 (the mean after normalisation), a rectangle of 2..25% of the image */
    acmt_augment erase = {.erase_prob = 1.0f, .erase_min = 0.02f, .erase_max = 0.25f};
    acmt_make_batch(x, &y, &s, &idx, 1, &erase, &r);
    int zeros = 0;
    for (int p = 0; p < 784; p++) zeros += x[p] == 0.0f;
    cr_assert(zeros >= 10 && zeros <= 240, "%d erased pixels", zeros);
    acmt_images_free(&s);
}

Test(data, same_rng_state_same_batch) {
    acmt_images s = fake(8);
    acmt_augment a = acmt_augment_default();
    acmt_rng r1, r2;
    acmt_rng_seed(&r1, 9, 3);
    r2 = r1;
    float x1[8 * 784], x2[8 * 784];
    int32_t y1[8], y2[8], idx[8] = {7, 6, 5, 4, 3, 2, 1, 0};
    acmt_make_batch(x1, y1, &s, idx, 8, &a, &r1);
    acmt_make_batch(x2, y2, &s, idx, 8, &a, &r2);
    cr_assert(memcmp(x1, x2, sizeof x1) == 0 && memcmp(y1, y2, sizeof y1) == 0);
    cr_assert(memcmp(&r1, &r2, sizeof r1) == 0);
    acmt_images_free(&s);
}

/* Batch mixing (acmt_mix_batch) on a batch of 5 (odd: the middle item is its own partner). */
static void mix_inputs(float *x, int32_t *y) {
    for (int b = 0; b < 5; b++) {
        y[b] = b + 3;
        for (int p = 0; p < 784; p++) x[b * 784 + p] = (float)(b * 1000 + p);
    }
}

Test(data, mixing_off_draws_nothing_and_changes_nothing) {
    float x[5 * 784], x0[5 * 784];
    int32_t y[5], y2[5];
    mix_inputs(x, y);
    memcpy(x0, x, sizeof x);
    acmt_rng r, r0;
    acmt_rng_seed(&r, 4, 1);
    r0 = r;
    acmt_mix off = {.mixup_alpha = 0.8f, .cutmix_alpha = 1.0f};
    cr_assert_eq(acmt_mix_batch(x, y2, y, 5, 1, 28, 28, &off, &r), 1.0f);
    cr_assert(memcmp(&r, &r0, sizeof r) == 0, "the augmentation stream moved: runs without mixing would change");
    cr_assert(memcmp(x, x0, sizeof x) == 0 && memcmp(y, y2, sizeof y) == 0);
}

Test(data, mixup_blends_reversed_partners_and_is_seeded) {
    float x[5 * 784], x0[5 * 784], xs[5 * 784];
    int32_t y[5], y2[5], y2s[5];
    mix_inputs(x, y);
    memcpy(x0, x, sizeof x);
    memcpy(xs, x, sizeof x);
    acmt_rng r, rs;
    acmt_rng_seed(&r, 4, 1);
    rs = r;
    acmt_mix mx = {.mixup_prob = 1, .mixup_alpha = 0.8f, .cutmix_alpha = 1.0f};
    float lam = acmt_mix_batch(x, y2, y, 5, 1, 28, 28, &mx, &r);
    cr_assert(lam > 0 && lam < 1, "lambda %g", lam);
    for (int b = 0; b < 5; b++) {
        cr_assert_eq(y2[b], y[4 - b]);
        for (int p = 0; p < 784; p += 97) {
            float want = lam * x0[b * 784 + p] + (1 - lam) * x0[(4 - b) * 784 + p];
            cr_assert(fabsf(x[b * 784 + p] - want) <= 1e-3f, "item %d pixel %d: %g, want %g", b, p, x[b * 784 + p],
                      want);
        }
    }
    cr_assert_eq(acmt_mix_batch(xs, y2s, y, 5, 1, 28, 28, &mx, &rs), lam); /* same state, same batch */
    cr_assert(memcmp(x, xs, sizeof x) == 0 && memcmp(y2, y2s, sizeof y2) == 0 && memcmp(&r, &rs, sizeof r) == 0);
}

Test(data, cutmix_pastes_a_box_whose_area_sets_lambda) {
    acmt_mix cm = {.cutmix_prob = 1, .mixup_alpha = 0.8f, .cutmix_alpha = 1.0f};
    acmt_rng r;
    acmt_rng_seed(&r, 11, 2);
    int boxes = 0;
    for (int trial = 0; trial < 20; trial++) {
        float x[5 * 784];
        int32_t y[5], y2[5];
        mix_inputs(x, y);
        float lam = acmt_mix_batch(x, y2, y, 5, 1, 28, 28, &cm, &r);
        for (int b = 0; b < 5; b++) {
            int own = 0, other = 0;
            for (int p = 0; p < 784; p++) {
                own += x[b * 784 + p] == (float)(b * 1000 + p);
                other += x[b * 784 + p] == (float)((4 - b) * 1000 + p);
            }
            cr_assert_eq(y2[b], y[4 - b]);
            if (b == 2) continue; /* its own partner */
            cr_assert_eq(own + other, 784, "item %d: pixels from neither image", b);
            cr_assert(fabsf((float)own / 784 - lam) < 1e-6f, "item %d keeps %d of 784 pixels, lambda %g", b, own, lam);
        }
        boxes += lam < 1;
    }
    cr_assert(boxes >= 10, "only %d of 20 batches got a box", boxes);
}

Test(data, beta_draws_have_the_right_mean_and_spread) {
    acmt_rng r;
    acmt_rng_seed(&r, 5, 0);
    for (int k = 0; k < 2; k++) {
        double a = k ? 0.4 : 2.0, m = 0, m2 = 0;
        const int n = 20000;
        for (int i = 0; i < n; i++) {
            double v = acmt_rng_beta(&r, a);
            cr_assert(v >= 0 && v <= 1);
            m += v / n;
            m2 += v * v / n;
        }
        double var = m2 - m * m, want = 1 / (4 * (2 * a + 1)); /* Beta(a, a): mean 1/2, variance 1/(4(2a+1)) */
        cr_assert(fabs(m - 0.5) < 0.01 && fabs(var - want) < 0.1 * want, "Beta(%g): mean %g, variance %g (want %g)",
                  a, m, var, want);
    }
}
