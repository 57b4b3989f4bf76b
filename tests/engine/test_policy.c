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
        double gain[23 * 4];
        int32_t idx[23 * 4];
        acm__acm_scratch s = {.cap_gain = gain, .cap_idx = idx};
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
        double gain[23 * 4];
        int32_t idx[23 * 4];
        acm__acm_scratch s = {.cap_gain = gain, .cap_idx = idx};
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

static void fx_open_model(fixture *f, int n, const char *path) {
    char err[256];
    f->m = acm_model_load(path, err, sizeof err);
    cr_assert(f->m, "%s", err);
    f->w = acm_worker_new(f->m, (acm_worker_params){.max_batch = n}, err, sizeof err);
    cr_assert(f->w, "%s", err);
    const acm_config *c = acm_model_config(f->m);
    size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    f->px = malloc(sizeof(float) * img * n);
    for (size_t i = 0; i < img * n; i++) f->px[i] = 1.5f * frand();
    f->n = n;
}

static void fx_open(fixture *f, int n) { fx_open_model(f, n, "tests/golden/vit_c.safetensors"); }

static void fx_run(fixture *f, acm_policy p, acm_result *res, float (*logits)[16]) {
    const acm_config *c = acm_model_config(f->m);
    size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    acm_item items[16];
    cr_assert_leq(c->num_classes, 16);
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
    float logits[16][16];
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
    float logits[16][16], lf[16][16];
    double prev = -1;
    for (float beta = 0.25f; beta <= 0.951f; beta += 0.1f) { /* from vit_c's beta_min */
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
    /* at full budget (FIXED k = N, MEAN and CAP at beta 1) no decision is needed, so no gate runs or is counted: the
     * executed FLOPs equal the dense model's exactly (vit_c's projection learners together cost what the dense
     * projection does: 2*4*3*(24+24) = 1152 per token vs 2*24*24 = 1152) */
    for (int b = 0; b < 16; b++) {
        cr_expect_eq(full[b].flops, full[b].flops_dense, "flops %.0f dense %.0f", full[b].flops, full[b].flops_dense);
        cr_expect_eq(res[b].flops, full[b].flops_dense, "CAP at 1: flops %.0f dense %.0f", res[b].flops,
                     full[b].flops_dense);
    }
    fx_close(&f);
}

/* CAP with projection ACMs (kmin = 1) whose share of beta rounds below one learner per token: the floor is raised and
 * the excess taken from the modules with room, so realised <= beta for every item at every beta >= beta_min. Before,
 * vit_a realised 0.357 at beta 0.25 (0.386 at 0.30, 0.443 at 0.40) and vit_b 0.300 at 0.25. */
Test(policy, cap_realises_at_most_beta_with_projection_floors) {
    static const char *models[] = {"tests/golden/vit_a.safetensors", "tests/golden/vit_b.safetensors",
                                   "tests/golden/vit_c.safetensors"};
    static const float betas[] = {0.25f, 0.27f, 0.3f, 0.33f, 0.4f, 0.5f, 0.6f, 0.75f, 0.9f, 0.99f};
    for (int mi = 0; mi < 3; mi++) {
        fixture f;
        fx_open_model(&f, 16, models[mi]);
        const acm_config *c = acm_model_config(f.m);
        acm_result res[16];
        float logits[16][16];
        for (size_t bi = 0; bi < sizeof betas / sizeof *betas; bi++)
            for (int order = ACM_CAP_ORDER_GAIN; order <= ACM_CAP_ORDER_LEVEL; order++) {
                const float beta = betas[bi];
                fx_run(&f, (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta, .cap_order = (acm_cap_order)order}, res,
                       logits);
                for (int b = 0; b < 16; b++) {
                    cr_expect_leq(res[b].budget, (double)beta + 1e-12, "%s beta %.2f order %d item %d realised %.5f",
                                  models[mi], beta, order, b, res[b].budget);
                    /* and close to it: at most one unit per module short, plus the floors' rounding */
                    cr_expect_geq(res[b].budget, (double)beta - 0.03, "%s beta %.2f item %d realised %.5f", models[mi],
                                  beta, b, res[b].budget);
                }
            }
        /* the floor itself is reachable when beta_min allows it: every ACM at kmin, exactly the floor */
        cr_expect_geq(c->beta_min, c->beta_floor);
        fx_close(&f);
    }
}

/* The engine enforces beta_min (0.25 in the golden models) for MEAN and CAP: refused with ACM_EINVAL and a message
 * naming it, not raised in silence. MEAN with lambda_set (calibration) is exempt: its beta only feeds FiLM gates. */
Test(policy, budgets_below_beta_min_are_refused) {
    fixture f;
    fx_open_model(&f, 1, "tests/golden/vit_a.safetensors");
    char err[256];
    float lg[10];
    acm_result r = {.logits = lg};
    for (int pk = ACM_POLICY_MEAN; pk <= ACM_POLICY_CAP; pk++) {
        acm_item it = {.pixels = f.px, .policy = {.kind = (acm_policy_kind)pk, .beta = 0.2f}};
        cr_expect_eq(acm_worker_run(f.w, &it, &r, 1, err, sizeof err), ACM_EINVAL, "%s at 0.2",
                     acm_policy_name((acm_policy_kind)pk));
        cr_expect(strstr(err, "beta_min 0.25") && strstr(err, "floor"), "message: %s", err);
        it.policy.beta = 0.25f;
        cr_expect_eq(acm_worker_run(f.w, &it, &r, 1, err, sizeof err), 0, "%s", err);
    }
    acm_item it = {.pixels = f.px, .policy = {.kind = ACM_POLICY_MEAN, .beta = 0.1f, .lambda_set = 1, .lambda = 2}};
    cr_expect_eq(acm_worker_run(f.w, &it, &r, 1, err, sizeof err), 0, "%s", err);
    fx_close(&f);
}

/* A calibrated table below its first row scales every share down with beta, projections' below their floors too:
 * the same redistribution keeps every item at or under beta, and each module at or above kmin. */
Test(policy, cap_table_below_its_first_row_keeps_the_floors) {
    fixture f;
    fx_open_model(&f, 16, "tests/golden/vit_a.safetensors");
    acm_model *m = f.m;
    /* vit_a: ACM 0 = blocks.0.mlp (N 4), 1-3 = blocks.1.attn.q/k/v (N 2, kmin 1); a row at 0.6: q, k, v at 0.6 */
    float cb[1] = {0.6f}, cs[4] = {0.6f, 0.6f, 0.6f, 0.6f};
    m->cap_beta = cb, m->cap_share = cs, m->cfg.cap_table_len = 1;
    acm_result res[16];
    float logits[16][16];
    uint8_t km[16][4 * 50];
    for (float beta = 0.25f; beta < 0.6f; beta += 0.05f) {
        const acm_config *c = acm_model_config(m);
        size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
        acm_item items[16];
        for (int b = 0; b < 16; b++) {
            items[b] = (acm_item){.pixels = f.px + b * img, .policy = {.kind = ACM_POLICY_CAP, .beta = beta}};
            res[b] = (acm_result){.logits = logits[b], .kmap = km[b]};
        }
        char err[256];
        cr_assert_eq(acm_worker_run(f.w, items, res, 16, err, sizeof err), 0, "%s", err);
        for (int b = 0; b < 16; b++) {
            cr_expect_leq(res[b].budget, (double)beta + 1e-12, "beta %.2f item %d realised %.5f", beta, b,
                          res[b].budget);
            for (int i = 50; i < 4 * 50; i++)
                cr_expect_geq(km[b][i], 1, "beta %.2f: a projection token below kmin", beta);
        }
    }
    m->cap_beta = NULL, m->cap_share = NULL, m->cfg.cap_table_len = 0;
    fx_close(&f);
}

/* MEAN above the last beta of its lambda table (vit_c: 0.9): lambda continues the last segment's line, so the
 * realised budget keeps rising towards 1 instead of staying at its value at 0.9 (and then jumping at beta = 1). */
Test(policy, mean_extrapolates_above_its_table) {
    fixture f;
    fx_open(&f, 16);
    const float last = f.m->mean_beta[f.m->cfg.mean_table_len - 1];
    cr_assert_float_eq(last, 0.9f, 1e-7);
    cr_expect_lt(acm__mean_lambda(f.m, 0.95f), acm__mean_lambda(f.m, 0.9f));
    cr_expect_lt(acm__mean_lambda(f.m, 0.99f), acm__mean_lambda(f.m, 0.95f));
    cr_expect_float_eq(acm__mean_lambda(f.m, 0.75f), 0.0f, 1e-6, "inside the table: linear (0.6 -> 0.5, 0.9 -> -0.5)");
    acm_result res[16];
    float logits[16][16];
    double at_last = 0, above = 0;
    fx_run(&f, (acm_policy){.kind = ACM_POLICY_MEAN, .beta = last}, res, logits);
    for (int b = 0; b < 16; b++) at_last += res[b].budget / 16;
    fx_run(&f, (acm_policy){.kind = ACM_POLICY_MEAN, .beta = 0.99f}, res, logits);
    for (int b = 0; b < 16; b++) above += res[b].budget / 16;
    cr_expect_gt(above, at_last, "mean realised %.4f at beta 0.99, %.4f at the table's last beta", above, at_last);
    fx_close(&f);
}

/* CAP ranks by P(K >= j) kept in double (as odds): two tokens both all but sure to need learner 1 (P = 1 - 1.4e-9 and
 * 1 - 5.2e-10, both 1.0f as floats) are told apart, so the surer token (1) gets the one unit, not the lower index. */
Test(policy, cap_ranks_near_certain_tokens_in_double) {
    const int T = 2, N = 4, C = 5;
    acm__module md = {.info = {.n = N, .kmin = 0}, .choices = C};
    const float logits[2 * 5] = {-19, 0, 0, 0, 0, /**/ -20, 0, 0, 0, 0};
    const float p0 = (float)(1 - exp(-19.0) / (4 + exp(-19.0))), p1 = (float)(1 - exp(-20.0) / (4 + exp(-20.0)));
    cr_assert_eq(p0, p1, "the premise: as floats the two tokens tie");
    double gain[2 * 4];
    int32_t idx[2 * 4];
    acm__acm_scratch s = {.cap_gain = gain, .cap_idx = idx};
    for (int order = ACM_CAP_ORDER_GAIN; order <= ACM_CAP_ORDER_LEVEL; order++) {
        uint8_t k[2], ref[2];
        /* one unit: beta * T * N = 1 */
        acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = 1.0f / (T * N), .cap_order = (acm_cap_order)order};
        acm__decide_k(k, logits, T, NULL, &md, pol, 0, &s);
        cap_bruteforce(ref, logits, T, C, N, 0, pol.beta);
        cr_expect(k[0] == 0 && k[1] == 1, "order %d: k = {%d, %d}, expected {0, 1}", order, k[0], k[1]);
        cr_expect_eq(memcmp(k, ref, 2), 0, "order %d: differs from the definition", order);
    }
}
