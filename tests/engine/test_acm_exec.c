/*
 * test_acm_exec.c — the fast ACM execution (engine/acm_exec.c: fused q|k|v gates, GROUPS and PREFIX schedules,
 * scatter fused with the residual add, the unpermuted single-k path) against the REFERENCE mode (every token alone,
 * in double, gates unfused), on the golden models and on random larger models, batch 1 and 8, every policy, forced k.
 *
 * Criteria (issue 6):
 *   logits: max|Δ| / max(1, max|ref|) <= 1e-4 per item;
 *   k maps: >= 99.9% identical overall, and identical wherever the decision is clear: in the first module (in
 *   execution order) where an item's k differs, every differing token must have had a gate margin below 1e-4 of its
 *   logit scale (top-two gap of the policy's biased logits vs max(1, max|logit|)); after such a legitimate flip the
 *   item's activations differ and later modules are only counted.
 *   FLOPs: identical (they depend on k alone).
 * The margin rule applies to ARGMAX and MEAN, whose decisions are per-token argmaxes; CAP ranks tokens against each
 * other, so a flip there is only counted (and FIXED and forced k cannot differ at all).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "bench/vit_random.h"
#include "model.h"
#include "vit.h"

#define MAXB 8

typedef struct {
    long tokens, same;
} kstats;

/* Top-two gap of the biased logits of one token, and its scale. */
static void margin(const float *l, int C, const acm_model *m, const acm__module *md, acm_policy p, double *gap,
                   double *scale) {
    double lambda = 0, unit = 0;
    if (p.kind == ACM_POLICY_MEAN) {
        lambda = p.lambda_set ? p.lambda : acm__mean_lambda(m, p.beta);
        unit = md->learner_flops / m->learner_flops_mean;
    }
    double v1 = -INFINITY, v2 = -INFINITY, sc = 1;
    for (int c = 0; c < C; c++) {
        double v = l[c] - (float)(lambda * (md->info.kmin + c) * unit);
        sc = fmax(sc, fabs(l[c]));
        if (v > v1) v2 = v1, v1 = v;
        else if (v > v2) v2 = v;
    }
    *gap = v1 - v2;
    *scale = sc;
}

/* Runs the batch in `mode` and in REFERENCE, and checks the criteria. */
static void compare(const char *what, acm_model *m, acm_worker *w, const acm_item *items, int B, int mode,
                    kstats *ks) {
    const acm_config *c = acm_model_config(m);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes, Cmax = m->max_choices > 0 ? m->max_choices : 1;
    char err[256];
    acm_result rf[MAXB], rr[MAXB];
    float *lf = calloc((size_t)MAXB * K, sizeof(float)), *lr = calloc((size_t)MAXB * K, sizeof(float));
    uint8_t *kf = calloc((size_t)MAXB * (A ? A : 1) * T, 1), *kr = calloc((size_t)MAXB * (A ? A : 1) * T, 1);
    float *glog = calloc((size_t)(A ? A : 1) * B * T * Cmax, sizeof(float));
    cr_assert(lf && lr && kf && kr && glog);
    for (int b = 0; b < B; b++) {
        rf[b] = (acm_result){.logits = lf + b * K, .kmap = kf + (size_t)b * A * T};
        rr[b] = (acm_result){.logits = lr + b * K, .kmap = kr + (size_t)b * A * T};
    }
    acm__acm_scratch *s = acm__worker_scratch(w);
    s->mode = mode;
    cr_assert_eq(acm_worker_run(w, items, rf, B, err, sizeof err), 0, "%s", err);
    s->mode = ACM__EXEC_REFERENCE;
    s->gate_log = glog;
    cr_assert_eq(acm_worker_run(w, items, rr, B, err, sizeof err), 0, "%s", err);
    s->gate_log = NULL;
    s->mode = ACM__EXEC_AUTO;
    for (int b = 0; b < B; b++) {
        double maxref = 1, maxd = 0;
        for (int k = 0; k < K; k++) {
            maxref = fmax(maxref, fabs(lr[b * K + k]));
            maxd = fmax(maxd, fabs((double)lr[b * K + k] - lf[b * K + k]));
        }
        cr_expect_leq(maxd / maxref, 1e-4, "%s mode %d item %d: logits max|Δ|/max(1,|ref|) = %.3g", what, mode, b,
                      maxd / maxref);
        int flipped = 0;
        for (int a = 0; a < A; a++) {
            const acm_module_info *in = acm_model_acm(m, a);
            const acm__module *md = m->acms[a];
            int module_flips = 0;
            for (int t = 0; t < T; t++) {
                size_t i = (size_t)b * A * T + (size_t)a * T + t;
                ks->tokens++;
                if (kf[i] == kr[i]) {
                    ks->same++;
                    continue;
                }
                module_flips++;
                acm_policy p = items[b].policy;
                cr_expect(!items[b].force_k && p.kind != ACM_POLICY_FIXED,
                          "%s mode %d item %d: forced/fixed k differs (%s token %d)", what, mode, b, in->name, t);
                if (flipped || p.kind == ACM_POLICY_CAP || items[b].force_k) continue;
                double gap, scale;
                margin(glog + ((size_t)a * B * T + (size_t)b * T + t) * Cmax, md->choices, m, md, p, &gap, &scale);
                cr_expect_leq(gap, 1e-4 * scale,
                              "%s mode %d item %d: %s token %d: k %d vs reference %d with a clear gate margin %.3g "
                              "(scale %.3g)",
                              what, mode, b, in->name, t, kf[i], kr[i], gap, scale);
            }
            if (module_flips) flipped = 1;
        }
        if (!flipped)
            cr_expect_eq(rf[b].flops, rr[b].flops, "%s mode %d item %d: flops %.17g vs reference %.17g", what, mode, b,
                         rf[b].flops, rr[b].flops);
    }
    free(lf);
    free(lr);
    free(kf);
    free(kr);
    free(glog);
}

/* Every policy (and forced k), batch 1 and 8, every execution mode, on model m; MEAN at budget bm, CAP at bc. */
static void check_at(const char *what, acm_model *m, uint64_t seed, float bm, float bc) {
    const acm_config *c = acm_model_config(m);
    const int T = c->tokens, A = c->num_acms;
    const size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    char err[256];
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = MAXB}, err, sizeof err);
    cr_assert(w, "%s", err);
    float *pix = malloc(sizeof(float) * img * MAXB);
    uint8_t *force = malloc((size_t)MAXB * (A ? A : 1) * T);
    cr_assert(pix && force);
    uint64_t rng = seed;
    for (size_t i = 0; i < img * MAXB; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
    for (int b = 0; b < MAXB; b++) vr_draw_k(force + (size_t)b * A * T, m, 0.3 + 0.1 * b, &rng);
    const int has_mean = c->mean_table_len > 0;
    acm_policy pols[] = {
        {.kind = ACM_POLICY_ARGMAX},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 2},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 99}, /* every learner: the unpermuted path */
        {.kind = ACM_POLICY_MEAN, .beta = bm, .lambda_set = !has_mean, .lambda = 1.0f},
        {.kind = ACM_POLICY_CAP, .beta = bc},
        {.kind = ACM_POLICY_CAP, .beta = 1.0f},
    };
    const int npol = (int)(sizeof pols / sizeof *pols);
    kstats ks = {0};
    acm_item items[MAXB];
    static const int batches[2] = {1, MAXB};
    static const int modes[3] = {ACM__EXEC_AUTO, ACM__EXEC_GROUPS, ACM__EXEC_PREFIX};
    for (int bi = 0; bi < 2; bi++) {
        const int B = batches[bi];
        for (int pi = 0; pi <= npol + 1; pi++) {
            for (int b = 0; b < B; b++) {
                items[b] = (acm_item){.pixels = pix + b * img};
                if (pi < npol) items[b].policy = pols[pi];
                else if (pi == npol) items[b].policy = pols[b % npol]; /* every policy mixed in one batch */
                else items[b].force_k = force + (size_t)b * A * T, items[b].policy = pols[0];
            }
            for (int mi = 0; mi < 3; mi++) {
                char tag[128];
                snprintf(tag, sizeof tag, "%s batch %d %s", what, B,
                         pi < npol ? acm_policy_name(pols[pi].kind) : pi == npol ? "mixed" : "forced");
                compare(tag, m, w, items, B, modes[mi], &ks);
            }
        }
    }
    if (A) {
        double frac = (double)ks.same / (double)ks.tokens;
        cr_expect_geq(frac, 0.999, "%s: only %.4f%% of k decisions identical (%ld of %ld)", what, 100 * frac, ks.same,
                      ks.tokens);
    }
    acm_worker_free(w);
    free(pix);
    free(force);
}

static void check(const char *what, acm_model *m, uint64_t seed) { check_at(what, m, seed, 0.5f, 0.4f); }

static void check_golden(const char *name) {
    char path[256], err[512];
    snprintf(path, sizeof path, "tests/golden/%s.safetensors", name);
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "load %s: %s", path, err);
    check(name, m, 11);
    acm_model_free(m);
}

Test(acm_exec, golden_a) { check_golden("vit_a"); }
Test(acm_exec, golden_b) { check_golden("vit_b"); }
Test(acm_exec, golden_c) { check_golden("vit_c"); }

/* Every position an ACM (stacked q|k|v gates), 3 channels, T = 65, N = 4 with the paper's projection width. */
Test(acm_exec, random_all_acm) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 5};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    check("random all-ACM", m, 21);
    acm_model_free(m);
    vr_store_free(&st);
}

/* q, v and the MLP ACMs with N = 3 (split q|k|v, no stacked gates), one channel, T = 17. */
Test(acm_exec, random_mixed) {
    vr_config vc = {.image_size = 28, .patch_size = 7, .in_chans = 1, .dim = 64, .depth = 3, .heads = 2,
                    .mlp_hidden = 192, .num_classes = 10, .learners = 3,
                    .acm_mask = (1u << ACM_POS_Q) | (1u << ACM_POS_V) | (1u << ACM_POS_MLP), .seed = 6};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    check("random mixed", m, 22);
    acm_model_free(m);
    vr_store_free(&st);
}

/* Workers x BLAS threads are validated against the cores. */
Test(acm_exec, threads_validated) {
    char err[256];
    acm_model *m = acm_model_load("tests/golden/vit_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    const int cores = acm_cpu_count();
    cr_assert_geq(cores, 1);
    int before = acm_blas_threads();
    cr_expect_null(acm_worker_new(m, (acm_worker_params){.max_batch = 1, .workers = cores + 1, .cpu_threads = 1},
                                  err, sizeof err));
    cr_expect(strstr(err, "cores"), "message: %s", err);
    cr_expect_null(acm_worker_new(m, (acm_worker_params){.max_batch = 1, .workers = 1, .cpu_threads = -1}, err,
                                  sizeof err));
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1, .workers = cores, .cpu_threads = 1}, err,
                                   sizeof err);
    cr_expect(w, "%s", err);
    cr_expect_eq(acm_blas_threads(), 1);
    acm_worker_free(w);
    int wk, th;
    acm_threads_default(cores, 0, &wk, &th);
    cr_expect(wk * th <= cores && wk >= 1 && th >= 1);
    acm_threads_default(cores, 1, &wk, &th);
    cr_expect(wk == 1 && th == cores);
    acm_blas_set_threads(before);
    acm_model_free(m);
}

/* Budget-conditioned (FiLM) gates, every position an ACM (stacked q|k|v gates with A|B halves): the fast paths equal
 * the reference at several budgets, MEAN and CAP giving each gate the item's beta, ARGMAX the model's gate_beta; the
 * mixed batch has a different beta per item. */
Test(acm_exec, random_film_all_acm) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 5, .film = 1};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_assert_eq(acm_model_config(m)->film_gates, 10);
    check_at("random FiLM all-ACM", m, 23, 0.5f, 0.4f);
    check_at("random FiLM all-ACM b.25", m, 24, 0.25f, 0.3f);
    check_at("random FiLM all-ACM b.75", m, 25, 0.75f, 0.8f);
    acm_model_free(m);
    vr_store_free(&st);
}

/* FiLM on split q, v and MLP gates (no stacking), N = 3. */
Test(acm_exec, random_film_mixed) {
    vr_config vc = {.image_size = 28, .patch_size = 7, .in_chans = 1, .dim = 64, .depth = 3, .heads = 2,
                    .mlp_hidden = 192, .num_classes = 10, .learners = 3,
                    .acm_mask = (1u << ACM_POS_Q) | (1u << ACM_POS_V) | (1u << ACM_POS_MLP), .seed = 6, .film = 1};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    check_at("random FiLM mixed", m, 26, 0.3f, 0.6f);
    acm_model_free(m);
    vr_store_free(&st);
}

/* The k maps of one input under a fixed lambda (MEAN, lambda_set) at two budgets: a FiLM model's gates move with beta
 * (the decisions differ), an unconditioned model's do not (identical); ARGMAX follows budget.gate_beta. */
static int kmaps_differ(acm_model *m, acm_worker *w, const float *pix, acm_policy p1, acm_policy p2) {
    const acm_config *c = acm_model_config(m);
    const size_t n = (size_t)c->num_acms * c->tokens;
    uint8_t *k1 = malloc(n), *k2 = malloc(n);
    float l1[10], l2[10];
    char err[256];
    acm_item it = {.pixels = pix, .policy = p1};
    acm_result r1 = {.logits = l1, .kmap = k1}, r2 = {.logits = l2, .kmap = k2};
    cr_assert_eq(acm_worker_run(w, &it, &r1, 1, err, sizeof err), 0, "%s", err);
    it.policy = p2;
    cr_assert_eq(acm_worker_run(w, &it, &r2, 1, err, sizeof err), 0, "%s", err);
    int differ = memcmp(k1, k2, n) != 0;
    free(k1);
    free(k2);
    return differ;
}

Test(acm_exec, film_decisions_follow_beta) {
    for (int film = 0; film <= 1; film++) {
        vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                        .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 7,
                        .film = film};
        vr_store st;
        char err[256];
        acm_model *m = vr_build(&vc, &st, err, sizeof err);
        cr_assert(m, "%s", err);
        acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1}, err, sizeof err);
        cr_assert(w, "%s", err);
        float pix[3 * 32 * 32];
        uint64_t rng = 99;
        for (int i = 0; i < 3 * 32 * 32; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
        acm_policy lo = {.kind = ACM_POLICY_MEAN, .beta = 0.25f, .lambda_set = 1, .lambda = 0.5f};
        acm_policy hi = lo;
        hi.beta = 0.75f;
        acm_policy amax = {.kind = ACM_POLICY_ARGMAX, .beta = 0.9f};
        acm_policy mid = {.kind = ACM_POLICY_MEAN, .beta = 0.5f, .lambda_set = 1, .lambda = 0.0f};
        acm_policy mid2 = mid;
        mid2.beta = 0.9f;
        if (film) {
            cr_expect(kmaps_differ(m, w, pix, lo, hi), "FiLM gates: the same decisions at beta 0.25 and 0.75");
            /* ARGMAX sees gate_beta 0.5 whatever policy.beta says: MEAN with lambda 0 at beta 0.5 decides alike */
            cr_expect(!kmaps_differ(m, w, pix, amax, mid), "ARGMAX must see budget.gate_beta (0.5)");
            cr_expect(kmaps_differ(m, w, pix, amax, mid2), "MEAN with lambda 0 at beta 0.9 should differ from 0.5");
        } else {
            cr_expect(!kmaps_differ(m, w, pix, lo, hi), "unconditioned gates must ignore beta");
            cr_expect(!kmaps_differ(m, w, pix, amax, mid2), "unconditioned: ARGMAX = MEAN with lambda 0");
        }
        acm_worker_free(w);
        acm_model_free(m);
        vr_store_free(&st);
    }
}

/* ---- the gate runs only where a decision needs it; non-finite gate logits are an error --------------------------- */

/* One item through worker w under policy p (force: optional k map): returns acm_worker_run's code. */
static int run1(acm_worker *w, const float *pix, acm_policy p, const uint8_t *force, float *logits, uint8_t *kmap,
                double *flops, char *err, size_t errlen) {
    acm_item it = {.pixels = pix, .policy = p, .force_k = force};
    acm_result r = {.logits = logits, .kmap = kmap};
    int rc = acm_worker_run(w, &it, &r, 1, err, errlen);
    if (flops) *flops = r.flops;
    return rc;
}

/* FLOPs of an item from its k map alone: the model's fixed part plus k * p per token and ACM, plus 2 din C per token
 * for the gates when `gates` (C: the rows the gate ran with). */
static double analytic_flops(const acm_model *m, const uint8_t *kmap, int gates) {
    const acm_config *c = acm_model_config(m);
    double f = m->flops_fixed;
    for (int a = 0; a < c->num_acms; a++) {
        for (int t = 0; t < c->tokens; t++) f += kmap[(size_t)a * c->tokens + t] * m->acms[a]->learner_flops;
        if (gates) f += 2.0 * m->acms[a]->info.din * m->acms[a]->choices * c->tokens;
    }
    return f;
}

/* FIXED, forced k, and MEAN / CAP at beta 1 need no decision: no gate GEMM runs and none is counted. Shown on a model
 * whose gate weights are all NaN (the results equal the intact model's, bit for bit, with no error) and by FLOPs equal
 * to the count without gates. Stacked q|k|v gates and single ones (all-ACM model), batch 1 and a mixed batch. */
Test(acm_exec, no_gate_without_a_decision) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 48, .depth = 2, .heads = 3,
                    .mlp_hidden = 192, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 8};
    vr_store st, st2;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err), *bad = vr_build(&vc, &st2, err, sizeof err);
    cr_assert(m && bad, "%s", err);
    const acm_config *c = acm_model_config(m);
    for (int a = 0; a < c->num_acms; a++) {
        acm__module *md = bad->acms[a];
        for (size_t i = 0; i < (size_t)md->gate_rows * md->info.din; i++) md->gate_w[i] = NAN;
    }
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 4}, err, sizeof err);
    acm_worker *wb = acm_worker_new(bad, (acm_worker_params){.max_batch = 4}, err, sizeof err);
    cr_assert(w && wb, "%s", err);
    const size_t img = 3 * 32 * 32, AT = (size_t)c->num_acms * c->tokens;
    float pix[4 * 3 * 32 * 32];
    uint64_t rng = 5;
    for (size_t i = 0; i < 4 * img; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
    uint8_t *force = malloc(AT), *k1 = malloc(AT), *k2 = malloc(AT);
    vr_draw_k(force, m, 0.5, &rng);
    acm_policy pols[] = {
        {.kind = ACM_POLICY_FIXED, .fixed_k = 2},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 4},
        {.kind = ACM_POLICY_MEAN, .beta = 1.0f},
        {.kind = ACM_POLICY_CAP, .beta = 1.0f},
        {.kind = ACM_POLICY_ARGMAX}, /* forced below */
    };
    for (int pi = 0; pi < 5; pi++) {
        const uint8_t *fk = pi == 4 ? force : NULL;
        float l1[10], l2[10];
        double f1, f2;
        cr_assert_eq(run1(w, pix, pols[pi], fk, l1, k1, &f1, err, sizeof err), 0, "%s", err);
        cr_expect_eq(run1(wb, pix, pols[pi], fk, l2, k2, &f2, err, sizeof err), 0, "policy %d: %s", pi, err);
        cr_expect_eq(memcmp(l1, l2, sizeof l1), 0, "policy %d: logits differ with NaN gate weights", pi);
        cr_expect_eq(memcmp(k1, k2, AT), 0, "policy %d: k maps differ with NaN gate weights", pi);
        cr_expect_eq(f1, analytic_flops(m, k1, 0), "policy %d: flops %.0f, without gates %.0f", pi, f1,
                     analytic_flops(m, k1, 0));
        cr_expect_eq(f2, f1);
    }
    /* a batch mixing items with and without decisions: each item's FLOPs and results as when it runs alone */
    acm_item it[4];
    acm_result r[4];
    float lg[4][10], one[10];
    uint8_t *km = malloc(4 * AT);
    acm_policy mix[4] = {{.kind = ACM_POLICY_FIXED, .fixed_k = 3}, {.kind = ACM_POLICY_CAP, .beta = 0.5f},
                         {.kind = ACM_POLICY_CAP, .beta = 1.0f}, {.kind = ACM_POLICY_ARGMAX}};
    for (int b = 0; b < 4; b++) {
        it[b] = (acm_item){.pixels = pix + b * img, .policy = mix[b]};
        r[b] = (acm_result){.logits = lg[b], .kmap = km + b * AT};
    }
    cr_assert_eq(acm_worker_run(w, it, r, 4, err, sizeof err), 0, "%s", err);
    for (int b = 0; b < 4; b++) {
        double f1;
        cr_assert_eq(run1(w, pix + b * img, mix[b], NULL, one, k1, &f1, err, sizeof err), 0, "%s", err);
        cr_expect_eq(r[b].flops, f1, "item %d: flops in the batch %.0f, alone %.0f", b, r[b].flops, f1);
        cr_expect_eq(memcmp(k1, km + b * AT, AT), 0, "item %d: k map differs from its run alone", b);
        int gated = b == 1 || b == 3;
        cr_expect_eq(r[b].flops, analytic_flops(m, km + b * AT, gated), "item %d: flops %.0f vs analytic %.0f", b,
                     r[b].flops, analytic_flops(m, km + b * AT, gated));
    }
    /* the NaN gates are an error as soon as a decision needs them, naming the module (the first: blocks.0.attn.q) */
    float l2[10];
    cr_expect_eq(run1(wb, pix, (acm_policy){.kind = ACM_POLICY_CAP, .beta = 0.5f}, NULL, l2, k2, NULL, err, sizeof err),
                 ACM_ENUMERIC);
    cr_expect(strstr(err, "blocks.0.attn.q") && strstr(err, "non-finite"), "message: %s", err);
    free(km);
    free(force);
    free(k1);
    free(k2);
    acm_worker_free(w);
    acm_worker_free(wb);
    acm_model_free(m);
    acm_model_free(bad);
    vr_store_free(&st);
    vr_store_free(&st2);
}

/* Gate weights that overflow make inf or NaN logits on finite input: acm_worker_run returns ACM_ENUMERIC with a
 * message naming the module, under every policy that reads the gate, in every execution mode, for a single gate (the
 * MLP) and for a stacked q|k|v one (k); the failed item's logits are NaN, its batch mate's results intact. Weights
 * of 3e38 overflow the float GEMM, but not always REFERENCE mode's double sums (the terms may cancel below FLT_MAX),
 * so the weights here are infinite: +-inf terms, inf or NaN sums. */
Test(acm_exec, non_finite_gate_logits_are_an_error) {
    static const char *names[2] = {"blocks.1.mlp", "blocks.0.attn.k"};
    for (int which = 0; which < 2; which++) {
        char err[256];
        acm_model *m = acm_model_load("tests/golden/vit_c.safetensors", err, sizeof err);
        cr_assert(m, "%s", err);
        acm__module *md = NULL;
        for (int a = 0; a < m->cfg.num_acms; a++)
            if (!strcmp(m->acms[a]->info.name, names[which])) md = m->acms[a];
        cr_assert(md);
        for (int d = 0; d < md->info.din; d++) md->gate_w[(size_t)1 * md->info.din + d] = INFINITY; /* choice 1 */
        acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2}, err, sizeof err);
        cr_assert(w, "%s", err);
        float pix[2 * 32 * 32], lg[2][5];
        for (int i = 0; i < 2 * 32 * 32; i++) pix[i] = (float)sin(0.1 * i);
        acm_policy pols[3] = {{.kind = ACM_POLICY_ARGMAX}, {.kind = ACM_POLICY_MEAN, .beta = 0.5f},
                              {.kind = ACM_POLICY_CAP, .beta = 0.5f}};
        static const int modes[4] = {ACM__EXEC_AUTO, ACM__EXEC_GROUPS, ACM__EXEC_PREFIX, ACM__EXEC_REFERENCE};
        for (int pi = 0; pi < 3; pi++)
            for (int mi = 0; mi < 4; mi++) {
                acm__worker_scratch(w)->mode = modes[mi];
                acm_item it[2] = {{.pixels = pix, .policy = {.kind = ACM_POLICY_FIXED, .fixed_k = 1}},
                                  {.pixels = pix + 32 * 32, .policy = pols[pi]}};
                acm_result r[2] = {{.logits = lg[0]}, {.logits = lg[1]}};
                err[0] = 0;
                cr_expect_eq(acm_worker_run(w, it, r, 2, err, sizeof err), ACM_ENUMERIC, "%s policy %d mode %d",
                             names[which], pi, mi);
                cr_expect(strstr(err, names[which]) && strstr(err, "item 1"), "message: %s", err);
                /* only the failed item lacks an answer: item 0 (FIXED, no gate) is as when it runs alone */
                float alone[5];
                double fa;
                cr_expect(isnan(lg[1][0]) && isnan(r[1].budget), "the failed item's logits and budget are NaN");
                cr_assert_eq(run1(w, pix, it[0].policy, NULL, alone, NULL, &fa, err, sizeof err), 0, "%s", err);
                /* equal up to rounding, not bit for bit: a GEMM over more rows may sum in another order (OpenBLAS's
                 * Haswell kernels do, on AMD EPYC); the decisions and FLOPs, which depend on k alone, are exact */
                double dmax = 0, amax = 1;
                for (int c = 0; c < 5; c++) {
                    const double d = fabs((double)alone[c] - lg[0][c]);
                    dmax = isnan(d) ? INFINITY : fmax(dmax, d); /* a NaN leaking from item 1 fails */
                    amax = fmax(amax, fabs((double)alone[c]));
                }
                cr_expect_leq(dmax / amax, 1e-5, "item 0's logits differ from its run alone by %.3g", dmax);
                cr_expect_eq(r[0].flops, fa);
            }
        acm_worker_free(w);
        acm_model_free(m);
    }
}

/* ARGMAX on budget-conditioned gates runs the C folded rows (A + gate_beta B, at load) instead of 2C: the B halves
 * poisoned with NaN after load change nothing under ARGMAX (and are an error under MEAN, which needs them); the
 * decisions and logits equal those of the unfolded A|B gate at beta = gate_beta (MEAN with lambda 0), and the FLOPs
 * count C gate rows. */
Test(acm_exec, film_argmax_runs_the_folded_gate) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 9, .film = 1};
    vr_store st, st2;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err), *bad = vr_build(&vc, &st2, err, sizeof err);
    cr_assert(m && bad, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_assert_float_eq(c->gate_beta, 0.5f, 1e-7);
    for (int a = 0; a < c->num_acms; a++) {
        acm__module *md = bad->acms[a];
        cr_assert(md->info.film);
        for (size_t i = (size_t)md->choices * md->info.din; i < (size_t)2 * md->choices * md->info.din; i++)
            md->gate_w[i] = NAN;
    }
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1}, err, sizeof err);
    acm_worker *wb = acm_worker_new(bad, (acm_worker_params){.max_batch = 1}, err, sizeof err);
    cr_assert(w && wb, "%s", err);
    const size_t AT = (size_t)c->num_acms * c->tokens;
    uint8_t *k1 = malloc(AT), *k2 = malloc(AT), *k3 = malloc(AT);
    float pix[3 * 32 * 32];
    uint64_t rng = 17;
    for (int trial = 0; trial < 4; trial++) {
        for (int i = 0; i < 3 * 32 * 32; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
        float l1[10], l2[10], l3[10];
        double f1, f2, f3;
        const acm_policy amax = {.kind = ACM_POLICY_ARGMAX};
        const acm_policy unfolded = {.kind = ACM_POLICY_MEAN, .beta = 0.5f, .lambda_set = 1, .lambda = 0};
        cr_assert_eq(run1(w, pix, amax, NULL, l1, k1, &f1, err, sizeof err), 0, "%s", err);
        cr_expect_eq(run1(wb, pix, amax, NULL, l2, k2, &f2, err, sizeof err), 0, "NaN B halves under ARGMAX: %s", err);
        cr_assert_eq(run1(w, pix, unfolded, NULL, l3, k3, &f3, err, sizeof err), 0, "%s", err);
        cr_expect_eq(memcmp(k1, k2, AT), 0, "trial %d: decisions depend on the B halves", trial);
        cr_expect_eq(memcmp(l1, l2, sizeof l1), 0);
        cr_expect_eq(memcmp(k1, k3, AT), 0, "trial %d: folded and unfolded gates decide differently", trial);
        double maxd = 0;
        for (int k = 0; k < 10; k++) maxd = fmax(maxd, fabs((double)l1[k] - l3[k]));
        cr_expect_leq(maxd, 1e-6, "trial %d: logits differ by %.3g", trial, maxd);
        cr_expect_eq(f1, analytic_flops(m, k1, 1), "trial %d: ARGMAX flops %.0f, with C-row gates %.0f", trial, f1,
                     analytic_flops(m, k1, 1));
        cr_expect_eq(f3 - f1, analytic_flops(m, k1, 1) - analytic_flops(m, k1, 0), "the unfolded gate costs 2C rows");
        cr_expect_eq(run1(wb, pix, unfolded, NULL, l2, k2, NULL, err, sizeof err), ACM_ENUMERIC);
    }
    free(k1);
    free(k2);
    free(k3);
    acm_worker_free(w);
    acm_worker_free(wb);
    acm_model_free(m);
    acm_model_free(bad);
    vr_store_free(&st);
    vr_store_free(&st2);
}

/* The worker's pool (engine/cpu/pool.h): the same forward on pooled CPU backends of 2 and 3 threads (ACM PREFIX
 * modules split into row parts, each on one thread; LayerNorm, GELU, attention and row moves on the pool) and on the
 * shared one-thread instance: the same k maps (the gates are GEMMs over the same rows), logits within 1e-5 (a part's
 * GEMMs run on fewer rows, which OpenBLAS may sum in another order), whatever the machine's cores (the backends are
 * swapped into the worker's scratch, so no thread count is refused). */
Test(acm_exec, pool_parts_match_one_thread) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .seed = 11};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    const int B = 4, T = c->tokens, A = c->num_acms, K = c->num_classes, img = 3 * 32 * 32;
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = B}, err, sizeof err);
    cr_assert(w, "%s", err);
    acm__acm_scratch *s = acm__worker_scratch(w);
    acm__backend *own = s->be;
    float *pix = malloc(sizeof(float) * img * B), *logits = malloc(sizeof(float) * K * B * 3);
    uint8_t *force = malloc((size_t)B * A * T), *kmap = malloc((size_t)B * A * T * 3);
    cr_assert(pix && logits && force && kmap);
    uint64_t rng = 5;
    for (int i = 0; i < img * B; i++) pix[i] = (float)(4.0 * vr_uniform(&rng) - 2.0);
    for (int b = 0; b < B; b++) vr_draw_k(force + (size_t)b * A * T, m, 0.5, &rng);
    const acm_policy pols[] = {{.kind = ACM_POLICY_ARGMAX}, {.kind = ACM_POLICY_CAP, .beta = 0.5f}};
    for (int pi = 0; pi <= 2; pi++) {
        acm_item items[4];
        acm_result res[4];
        for (int v = 0; v < 3; v++) {
            acm__backend *be = v == 0 ? acm__backend_cpu() : acm__backend_cpu_new(v + 1);
            cr_assert(be);
            s->be = be;
            for (int b = 0; b < B; b++) {
                items[b] = (acm_item){.pixels = pix + b * img, .policy = pols[pi % 2],
                                      .force_k = pi == 2 ? force + (size_t)b * A * T : NULL};
                res[b] = (acm_result){.logits = logits + ((size_t)v * B + b) * K,
                                      .kmap = kmap + ((size_t)v * B + b) * A * T};
            }
            cr_assert_eq(acm_worker_run(w, items, res, B, err, sizeof err), 0, "%s", err);
            s->be = own;
            if (v) acm__backend_close(be);
        }
        for (int v = 1; v < 3; v++) {
            cr_expect(!memcmp(kmap, kmap + (size_t)v * B * A * T, (size_t)B * A * T), "policy %d: k maps at %d threads",
                      pi, v + 1);
            double dmax = 0, ref = 1;
            for (int i = 0; i < B * K; i++) {
                dmax = fmax(dmax, fabs((double)logits[(size_t)v * B * K + i] - logits[i]));
                ref = fmax(ref, fabs((double)logits[i]));
            }
            cr_expect_leq(dmax / ref, 1e-5, "policy %d, %d threads: logits differ by %g", pi, v + 1, dmax / ref);
        }
    }
    acm_worker_free(w);
    acm_model_free(m);
    vr_store_free(&st);
    free(pix);
    free(logits);
    free(force);
    free(kmap);
}
