/*
 * test_optim.c — train/optim.c and train/rng.c: the schedule at its corners, one AdamW step against the formula in
 * double, clipping, and the RNG's determinism, range and state round trip.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "train/optim.h"
#include "train/rng.h"

Test(optim, schedule) {
    /* warm-up 10 steps to 1e-3, cosine to 1e-5 at the last of 110 steps */
    cr_assert_float_eq(acmt_lr_schedule(0, 110, 10, 1e-3f, 1e-5f), 1e-4f, 1e-9f);
    cr_assert_float_eq(acmt_lr_schedule(9, 110, 10, 1e-3f, 1e-5f), 1e-3f, 1e-9f);
    cr_assert_float_eq(acmt_lr_schedule(10, 110, 10, 1e-3f, 1e-5f), 1e-3f, 1e-9f);
    cr_assert_float_eq(acmt_lr_schedule(109, 110, 10, 1e-3f, 1e-5f), 1e-5f, 1e-9f);
    float mid = acmt_lr_schedule(10 + 99 / 2, 110, 10, 1e-3f, 1e-5f); /* half way through the cosine */
    cr_assert(fabsf(mid - 0.5f * (1e-3f + 1e-5f)) < 1e-5f, "mid %g", mid);
    for (int s = 11; s < 110; s++)
        cr_assert(acmt_lr_schedule(s, 110, 10, 1e-3f, 1e-5f) <= acmt_lr_schedule(s - 1, 110, 10, 1e-3f, 1e-5f));
}

Test(optim, adamw_step_matches_formula) {
    acmt_adamw o = acmt_adamw_default();
    o.lr = 0.01f;
    o.weight_decay = 0.1f;
    float p[3] = {1.0f, -2.0f, 0.5f}, g[3] = {0.3f, -0.1f, 0.0f}, m[3] = {0}, v[3] = {0};
    double pd[3] = {1.0, -2.0, 0.5}, md[3] = {0}, vd[3] = {0};
    for (int t = 1; t <= 3; t++) {
        acmt_adamw_update(&o, p, g, m, v, 3, t, 1);
        for (int i = 0; i < 3; i++) {
            md[i] = 0.9 * md[i] + 0.1 * g[i];
            vd[i] = 0.999 * vd[i] + 0.001 * (double)g[i] * g[i];
            double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
            pd[i] -= 0.01 * mh / (sqrt(vh) + 1e-8) + 0.01 * 0.1 * pd[i];
        }
    }
    for (int i = 0; i < 3; i++) cr_assert(fabs(p[i] - pd[i]) < 1e-6, "param %d: %.8f vs %.8f", i, p[i], pd[i]);
    /* without decay a zero gradient leaves the parameter alone */
    float q = 3.0f, z = 0.0f, mq = 0, vq = 0;
    acmt_adamw_update(&o, &q, &z, &mq, &vq, 1, 1, 0);
    cr_assert_eq(q, 3.0f);
}

Test(optim, clip_grad_norm) {
    float g[4] = {3, 4, 0, 0};
    double n = acmt_clip_grad_norm(g, 4, 1.0);
    cr_assert(fabs(n - 5.0) < 1e-12);
    cr_assert(fabsf(g[0] - 0.6f) < 1e-6f && fabsf(g[1] - 0.8f) < 1e-6f, "%g %g", g[0], g[1]);
    float h[2] = {0.3f, 0.4f};
    acmt_clip_grad_norm(h, 2, 1.0); /* below the limit: untouched */
    cr_assert(h[0] == 0.3f && h[1] == 0.4f);
}

Test(rng, deterministic_ranges_and_round_trip) {
    acmt_rng a, b;
    acmt_rng_seed(&a, 42, 1);
    acmt_rng_seed(&b, 42, 1);
    for (int i = 0; i < 100; i++) cr_assert_eq(acmt_rng_u64(&a), acmt_rng_u64(&b));
    acmt_rng_seed(&b, 42, 2); /* another stream differs */
    cr_assert_neq(acmt_rng_u64(&a), acmt_rng_u64(&b));
    int hist[7] = {0};
    double sum = 0, sq = 0;
    for (int i = 0; i < 70000; i++) {
        uint32_t k = acmt_rng_below(&a, 7);
        cr_assert(k < 7);
        hist[k]++;
        float f = acmt_rng_float(&a);
        cr_assert(f >= 0.0f && f < 1.0f);
        float z = acmt_rng_normal(&a);
        sum += z;
        sq += (double)z * z;
    }
    for (int k = 0; k < 7; k++) cr_assert(hist[k] > 9400 && hist[k] < 10600, "bucket %d: %d", k, hist[k]);
    cr_assert(fabs(sum / 70000) < 0.03 && fabs(sq / 70000 - 1) < 0.03, "normal: mean %g, var %g", sum / 70000,
              sq / 70000);
    char hex[65];
    acmt_rng_to_hex(&a, hex);
    cr_assert_eq(acmt_rng_from_hex(&b, hex), 0);
    cr_assert(memcmp(&a, &b, sizeof a) == 0);
    cr_assert_eq(acmt_rng_from_hex(&b, "xyz"), -1);
    int32_t idx[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, seen = 0;
    acmt_rng_shuffle(&a, idx, 10);
    for (int i = 0; i < 10; i++) seen |= 1 << idx[i];
    cr_assert_eq(seen, 0x3ff, "shuffle is a permutation");
}
