/*
 * test_policy.c — budget policies: the CAP allocation against a brute-force greedy, CAP's per-item guarantee
 * (realised <= beta) on real forward passes, MEAN's monotonicity in beta, FIXED and full-budget semantics.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "kernels.h"
#include "model.h"
#include "vit.h"

static unsigned rs = 777;
static float frand(void) {
    rs = rs * 1664525u + 1013904223u;
    return (float)((rs >> 8) / 16777216.0 * 2.0 - 1.0);
}

/* CAP via the definition: give one learner at a time to the token with the largest P(K >= k_t + 1). */
static void cap_bruteforce(uint8_t *k, const float *logits, int T, int C, int N, int kmin, float beta) {
    memset(k, kmin, (size_t)T);
    long units = (long)floor((double)beta * T * N + 1e-9) - (long)T * kmin;
    for (; units > 0; units--) {
        int best = -1;
        double bg = -1;
        for (int t = 0; t < T; t++) {
            if (k[t] >= N) continue;
            double p[32], mx = -1e30, s = 0, g = 0;
            for (int c = 0; c < C; c++) mx = fmax(mx, logits[t * C + c]);
            for (int c = 0; c < C; c++) s += (p[c] = exp(logits[t * C + c] - mx));
            for (int c = 0; c < C; c++)
                if (kmin + c >= k[t] + 1) g += p[c] / s;
            if (g > bg) {
                bg = g;
                best = t;
            }
        }
        if (best < 0) break;
        k[best]++;
    }
}

Test(policy, cap_matches_bruteforce_greedy) {
    for (int kind = 0; kind < 2; kind++) {
        const int T = 23, N = 4, kmin = kind ? 1 : 0, C = kind ? N : N + 1;
        acm__module md = {.info = {.n = N, .kmin = kmin}, .choices = C};
        float logits[23 * 5];
        float gain[23 * 4], probs[5];
        int32_t idx[23 * 4];
        acm__acm_scratch s = {.cap_gain = gain, .cap_idx = idx, .probs = probs};
        for (int trial = 0; trial < 50; trial++) {
            for (int i = 0; i < T * C; i++) logits[i] = 2.0f * frand();
            float beta = 0.3f + 0.6f * (trial % 7) / 6.0f;
            uint8_t k[23], ref[23];
            acm__decide_k(k, logits, T, NULL, &md, (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta, .fixed_k = 0}, 0, &s);
            cap_bruteforce(ref, logits, T, C, N, kmin, beta);
            cr_assert_eq(memcmp(k, ref, T), 0, "kmin %d trial %d beta %.3f: allocation differs", kmin, trial, beta);
            int used = 0;
            for (int t = 0; t < T; t++) used += k[t];
            cr_expect_leq(used, (int)floor(beta * T * N + 1e-9));
        }
    }
}

/* CAP in LEVEL order via the definition: learner j of every token before learner j+1 of any, the tokens of a level
 * ranked by P(K >= j) (ties: lower token). */
static void cap_level_bruteforce(uint8_t *k, const float *logits, int T, int C, int N, int kmin, float beta) {
    memset(k, kmin, (size_t)T);
    long units = (long)floor((double)beta * T * N + 1e-9) - (long)T * kmin;
    for (int j = kmin + 1; j <= N && units > 0; j++) {
        for (; units > 0; units--) {
            int best = -1;
            double bg = -1;
            for (int t = 0; t < T; t++) {
                if (k[t] != j - 1) continue;
                double p[32], mx = -1e30, s = 0, g = 0;
                for (int c = 0; c < C; c++) mx = fmax(mx, logits[t * C + c]);
                for (int c = 0; c < C; c++) s += (p[c] = exp(logits[t * C + c] - mx));
                for (int c = 0; c < C; c++)
                    if (kmin + c >= j) g += p[c] / s;
                if (g > bg) {
                    bg = g;
                    best = t;
                }
            }
            if (best < 0) break; /* level j is full */
            k[best]++;
        }
    }
}

Test(policy, cap_level_order_matches_bruteforce_and_is_uniform_at_multiples_of_one_over_n) {
    for (int kind = 0; kind < 2; kind++) {
        const int T = 23, N = 4, kmin = kind ? 1 : 0, C = kind ? N : N + 1;
        acm__module md = {.info = {.n = N, .kmin = kmin}, .choices = C};
        float logits[23 * 5];
        float gain[23 * 4], probs[5];
        int32_t idx[23 * 4];
        acm__acm_scratch s = {.cap_gain = gain, .cap_idx = idx, .probs = probs};
        for (int trial = 0; trial < 50; trial++) {
            for (int i = 0; i < T * C; i++) logits[i] = 3.0f * frand();
            float beta = 0.1f + 0.8f * (trial % 9) / 8.0f;
            uint8_t k[23], ref[23], g[23];
            acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = beta, .cap_order = ACM_CAP_ORDER_LEVEL};
            acm__decide_k(k, logits, T, NULL, &md, pol, 0, &s);
            cap_level_bruteforce(ref, logits, T, C, N, kmin, beta);
            cr_assert_eq(memcmp(k, ref, T), 0, "kmin %d trial %d beta %.3f: allocation differs", kmin, trial, beta);
            /* the same number of units as GAIN order, spread: no token two learners above another */
            pol.cap_order = ACM_CAP_ORDER_GAIN;
            acm__decide_k(g, logits, T, NULL, &md, pol, 0, &s);
            int used = 0, used_g = 0, lo = N, hi = 0;
            for (int t = 0; t < T; t++) {
                used += k[t], used_g += g[t];
                lo = k[t] < lo ? k[t] : lo, hi = k[t] > hi ? k[t] : hi;
            }
            cr_expect_eq(used, used_g, "trial %d: level %d units, gain %d", trial, used, used_g);
            cr_expect_leq(hi - lo, 1, "trial %d: k from %d to %d", trial, lo, hi);
        }
        /* at beta = j/N every token runs exactly j learners (the uniform allocation), whatever the gate says */
        for (int j = kmin; j <= N; j++) {
            for (int i = 0; i < T * C; i++) logits[i] = 3.0f * frand();
            uint8_t k[23];
            acm__decide_k(k, logits, T, NULL, &md,
                          (acm_policy){.kind = ACM_POLICY_CAP, .beta = (float)j / N, .cap_order = ACM_CAP_ORDER_LEVEL},
                          0, &s);
            for (int t = 0; t < T; t++) cr_expect_eq(k[t], j, "beta %d/%d token %d: k %d", j, N, t, k[t]);
        }
        /* RANDOM (the gate-blind control): LEVEL's budget and levels, a different choice of tokens within a level */
        int differs = 0;
        for (int trial = 0; trial < 20; trial++) {
            for (int i = 0; i < T * C; i++) logits[i] = 3.0f * frand();
            float beta = 0.1f + 0.04f * trial;
            uint8_t k[23], r1[23], r2[23];
            acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = beta, .cap_order = ACM_CAP_ORDER_LEVEL};
            acm__decide_k(k, logits, T, NULL, &md, pol, 0, &s);
            pol.cap_order = ACM_CAP_ORDER_RANDOM;
            acm__decide_k(r1, logits, T, NULL, &md, pol, 0, &s);
            acm__decide_k(r2, logits, T, NULL, &md, pol, 0, &s);
            cr_assert_eq(memcmp(r1, r2, T), 0, "trial %d: RANDOM is not deterministic", trial);
            int used = 0, used_r = 0, lo = N, hi = 0, lo_l = N;
            for (int t = 0; t < T; t++) {
                used += k[t], used_r += r1[t];
                lo = r1[t] < lo ? r1[t] : lo, hi = r1[t] > hi ? r1[t] : hi, lo_l = k[t] < lo_l ? k[t] : lo_l;
            }
            cr_expect_eq(used_r, used, "trial %d: random %d units, level %d", trial, used_r, used);
            cr_expect(hi - lo <= 1 && lo == lo_l, "trial %d: random k in [%d, %d], level from %d", trial, lo, hi, lo_l);
            differs += memcmp(k, r1, T) != 0;
        }
        cr_expect_geq(differs, 10, "RANDOM chose LEVEL's tokens in %d of 20 trials", 20 - differs);
        /* ties (every token the same logits): the partial level goes to the lowest tokens, as the definition says */
        for (int i = 0; i < T * C; i++) logits[i] = (float)(i % C);
        for (int trial = 0; trial < 9; trial++) {
            float beta = 0.1f + 0.1f * trial;
            uint8_t k[23], ref[23];
            acm__decide_k(k, logits, T, NULL, &md,
                          (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta, .cap_order = ACM_CAP_ORDER_LEVEL}, 0, &s);
            cap_level_bruteforce(ref, logits, T, C, N, kmin, beta);
            cr_assert_eq(memcmp(k, ref, T), 0, "kmin %d beta %.2f, tied gains: allocation differs", kmin, beta);
            for (int t = 1; t < T; t++)
                cr_expect_geq(k[t - 1], k[t], "beta %.2f: token %d above token %d", beta, t, t - 1);
        }
    }
}

Test(policy, fixed_clamps_to_module_range) {
    acm__module mlp = {.info = {.n = 4, .kmin = 0}, .choices = 5}, proj = {.info = {.n = 2, .kmin = 1}, .choices = 2};
    float logits[3 * 5] = {0};
    uint8_t k[3];
    acm__decide_k(k, logits, 3, NULL, &mlp, (acm_policy){.kind = ACM_POLICY_FIXED, .beta = 1, .fixed_k = 0}, 0, NULL);
    cr_expect(k[0] == 0 && k[1] == 0 && k[2] == 0);
    acm__decide_k(k, logits, 3, NULL, &proj, (acm_policy){.kind = ACM_POLICY_FIXED, .beta = 1, .fixed_k = 0}, 0, NULL);
    cr_expect(k[0] == 1 && k[2] == 1, "projections run at least one learner");
    acm__decide_k(k, logits, 3, NULL, &proj, (acm_policy){.kind = ACM_POLICY_FIXED, .beta = 1, .fixed_k = 9}, 0, NULL);
    cr_expect(k[0] == 2, "k clamps to N");
}

Test(policy, argmax_takes_first_maximum) {
    acm__module mlp = {.info = {.n = 4, .kmin = 0}, .choices = 5}, proj = {.info = {.n = 4, .kmin = 1}, .choices = 4};
    float logits[2 * 5] = {0, 3, 1, 3, 2, /**/ -1, -2, -3, -0.5f, -9};
    uint8_t k[2];
    acm__decide_k(k, logits, 2, NULL, &mlp, acm_policy_default(), 0, NULL);
    cr_expect_eq(k[0], 1);
    cr_expect_eq(k[1], 3);
    float pl[4] = {0, 0, 5, 0};
    acm__decide_k(k, pl, 1, NULL, &proj, acm_policy_default(), 0, NULL);
    cr_expect_eq(k[0], 3, "projection choice c means k = c + 1");
}

Test(policy, parse_and_names) {
    for (int i = ACM_POLICY_ARGMAX; i <= ACM_POLICY_CAP; i++)
        cr_expect_eq(acm_policy_parse(acm_policy_name((acm_policy_kind)i)), i);
    cr_expect_eq(acm_policy_parse("greedy"), -1);
}

/* Forward passes on the all-ACM golden model with random inputs. */
typedef struct {
    acm_model *m;
    acm_worker *w;
    float *px;
    int n;
} fixture;

static void fx_open(fixture *f, int n) {
    char err[256];
    f->m = acm_model_load("tests/golden/vit_c.safetensors", err, sizeof err);
    cr_assert(f->m, "%s", err);
    f->w = acm_worker_new(f->m, (acm_worker_params){.max_batch = n}, err, sizeof err);
    cr_assert(f->w, "%s", err);
    const acm_config *c = acm_model_config(f->m);
    size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    f->px = malloc(sizeof(float) * img * n);
    for (size_t i = 0; i < img * n; i++) f->px[i] = 1.5f * frand();
    f->n = n;
}

static void fx_run(fixture *f, acm_policy p, acm_result *res, float (*logits)[8]) {
    const acm_config *c = acm_model_config(f->m);
    size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    acm_item items[16];
    for (int b = 0; b < f->n; b++) {
        items[b] = (acm_item){.pixels = f->px + b * img, .policy = p};
        res[b] = (acm_result){.logits = logits[b]};
    }
    char err[256];
    cr_assert_eq(acm_worker_run(f->w, items, res, f->n, err, sizeof err), 0, "%s", err);
}

static void fx_close(fixture *f) {
    free(f->px);
    acm_worker_free(f->w);
    acm_model_free(f->m);
}

Test(policy, cap_realises_at_most_beta_per_item) {
    fixture f;
    fx_open(&f, 16);
    acm_result res[16];
    float logits[16][8];
    /* every ACM of vit_c has N = 4 and T = 65 tokens: per module floor(beta*260) units, so realised is within
     * 1/260 of beta except where projections' k >= 1 floor binds (beta < 0.25) */
    for (float beta = 0.25f; beta <= 0.951f; beta += 0.05f) {
        fx_run(&f, (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta, .fixed_k = 0}, res, logits);
        for (int b = 0; b < 16; b++) {
            cr_expect_leq(res[b].budget, (double)beta + 1e-12, "beta %.2f item %d realised %.5f", beta, b, res[b].budget);
            cr_expect_geq(res[b].budget, (double)beta - 1.0 / 260, "beta %.2f item %d realised %.5f", beta, b,
                          res[b].budget);
        }
    }
    fx_close(&f);
}

Test(policy, mean_is_monotone_and_full_budget_is_dense) {
    fixture f;
    fx_open(&f, 16);
    acm_result res[16], full[16];
    float logits[16][8], lf[16][8];
    double prev = -1;
    for (float beta = 0.1f; beta <= 0.951f; beta += 0.1f) {
        fx_run(&f, (acm_policy){.kind = ACM_POLICY_MEAN, .beta = beta, .fixed_k = 0}, res, logits);
        double mean = 0;
        for (int b = 0; b < 16; b++) mean += res[b].budget / 16;
        cr_expect_geq(mean, prev, "mean realised budget fell from %.4f to %.4f at beta %.2f", prev, mean, beta);
        prev = mean;
    }
    /* beta = 1 under MEAN and CAP runs every learner: same logits and FLOPs as FIXED k = N */
    fx_run(&f, (acm_policy){.kind = ACM_POLICY_FIXED, .beta = 1, .fixed_k = 4}, full, lf);
    for (int pk = ACM_POLICY_MEAN; pk <= ACM_POLICY_CAP; pk++) {
        fx_run(&f, (acm_policy){.kind = (acm_policy_kind)pk, .beta = 1.0f}, res, logits);
        for (int b = 0; b < 16; b++) {
            cr_expect_eq(res[b].budget, 1.0);
            cr_expect_eq(res[b].flops, full[b].flops);
            cr_expect_eq(memcmp(logits[b], lf[b], sizeof(float) * (size_t)acm_model_config(f.m)->num_classes), 0);
        }
    }
    /* at full budget, executed FLOPs exceed the dense model's by exactly the gates' cost */
    const acm_config *c = acm_model_config(f.m);
    double gates = 0;
    for (int i = 0; i < c->num_acms; i++) {
        const acm_module_info *a = acm_model_acm(f.m, i);
        gates += 2.0 * a->din * (a->kmin ? a->n : a->n + 1) * c->tokens;
    }
    /* projections' learners together cost 2*4*3*(24+24) = 1152 per token vs 2*24*24 = 1152 dense: equal by design */
    cr_expect_eq(full[0].flops, full[0].flops_dense + gates, "flops %.0f dense %.0f gates %.0f", full[0].flops,
                 full[0].flops_dense, gates);
    fx_close(&f);
}
