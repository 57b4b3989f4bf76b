/*
 * test_acm_module.c — training of one ACM: the phase-2 label rule on the worked examples of docs/METHOD.md §4 and its
 * edge cases; the phase-1 "detach" gradients, the gate's backward and the phase-3 learner gradients against central
 * finite differences in double; the straight-through Gumbel gradient against its formula.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/acm_module.h"

Test(acm_module, label_rule_worked_examples) {
    const double a[5] = {10, 4, 2, 1.9, 1.8}, b[5] = {10, 4, 2, 1, 0.5}, c[5] = {10, 9, 3, 1, 0.5},
                 d[5] = {10, 4, 3.9, 1, 0.5};
    cr_expect_eq(acmt_label_rule(a, 4), 3);
    cr_expect_eq(acmt_label_rule(b, 4), 4);
    cr_expect_eq(acmt_label_rule(c, 4), 4);
    cr_expect_eq(acmt_label_rule(d, 4), 2);
}

Test(acm_module, label_rule_edge_cases) {
    const double exact[5] = {10, 4, 0, 0, 0};   /* r_1 = ∞ (improved), r_2 = 0/0 (not improved) -> 3 */
    const double zero[5] = {0, 0, 0, 0, 0};     /* r_0 = 0/0 < 1.2 -> N */
    const double last[5] = {10, 5, 2.5, 1.25, 1.1}; /* only r_3 = 1.136 < 1.2 -> 4 */
    const double n2[3] = {10, 5, 4.5};          /* N = 2: r_1 = 1.11 -> 2 */
    cr_expect_eq(acmt_label_rule(exact, 4), 3);
    cr_expect_eq(acmt_label_rule(zero, 4), 4);
    cr_expect_eq(acmt_label_rule(last, 4), 4);
    cr_expect_eq(acmt_label_rule(n2, 2), 2);
    const double boundary[5] = {12, 10, 5, 2, 1}; /* r_0 = 1.2 exactly is not < 1.2 */
    cr_expect_eq(acmt_label_rule(boundary, 4), 4);
}

typedef struct {
    acmt_acm_layout L;
    acmt_acm_acts a;
    float *p, *g, *z, *o;
    int64_t M;
} fx;

static void fx_open(fx *f, int is_mlp, int M) {
    acmt_acm_layout_init(&f->L, "t", 7, 5, 3, 4, is_mlp, 6);
    f->M = M;
    cr_assert_eq(acmt_acm_acts_alloc(&f->a, &f->L, M), 0);
    f->p = malloc(sizeof(float) * (size_t)f->L.numel);
    f->g = calloc((size_t)f->L.numel, sizeof(float));
    f->z = malloc(sizeof(float) * (size_t)M * 7);
    f->o = malloc(sizeof(float) * (size_t)M * 5);
    acmt_rng r;
    acmt_rng_seed(&r, 42, is_mlp);
    acmt_acm_init_random(f->p, &f->L, &r);
    /* w2 starts at zero in training; random here, so that every path of the backward carries a signal */
    for (int64_t i = 0; i < (int64_t)f->L.dout * f->L.nh; i++) f->p[f->L.w2 + i] = acmt_rng_float(&r) - 0.5f;
    for (int i = 0; i < M * 7; i++) f->z[i] = 2 * acmt_rng_float(&r) - 1;
    for (int i = 0; i < M * 5; i++) f->o[i] = 2 * acmt_rng_float(&r) - 1;
}

static void fx_close(fx *f) {
    acmt_acm_acts_free(&f->a);
    free(f->p), free(f->g), free(f->z), free(f->o);
}

/* Which learner (0-based) a parameter index belongs to, or -1 for the gate. */
static int learner_of(const acmt_acm_layout *L, int64_t i) {
    if (i < L->b1) return (int)(i / L->din) / L->h;
    if (i < L->w2) return (int)(i - L->b1) / L->h;
    if (i < L->gate) return (int)((i - L->w2) % L->nh) / L->h;
    return -1;
}

static void check_distill(int is_mlp) {
    fx f;
    fx_open(&f, is_mlp, 9);
    double errs[8];
    acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_distill_backward(f.g, &f.a, f.p, &f.L, f.z, 7, f.o, 5, f.M, errs);
    /* detach rule: dL/dθ for learner n's θ is the derivative of errs[n+1] / N alone */
    double maxrel = 0;
    for (int64_t i = 0; i < f.L.gate; i++) {
        int n = learner_of(&f.L, i);
        float keep = f.p[i];
        const float eps = 1e-2f;
        double e2[8];
        f.p[i] = keep + eps;
        acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
        float *gtmp = calloc((size_t)f.L.numel, sizeof(float));
        acmt_acm_distill_backward(gtmp, &f.a, f.p, &f.L, f.z, 7, f.o, 5, f.M, e2);
        double up = e2[n + 1];
        f.p[i] = keep - eps;
        acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
        acmt_acm_distill_backward(gtmp, &f.a, f.p, &f.L, f.z, 7, f.o, 5, f.M, e2);
        double dn = e2[n + 1];
        f.p[i] = keep;
        free(gtmp);
        double fd = (up - dn) / (2 * eps) / f.L.n;
        double rel = fabs(fd - f.g[i]) / fmax(1e-3, fabs(fd));
        maxrel = fmax(maxrel, rel);
        cr_expect(rel < 2e-2, "param %lld (learner %d): analytic %.6g vs finite difference %.6g", (long long)i, n,
                  f.g[i], fd);
    }
    for (int64_t i = f.L.gate; i < f.L.numel; i++) cr_expect_eq(f.g[i], 0.0f, "phase 1 must not touch the gate");
    cr_log_info("distill (mlp %d): max relative difference %.3g", is_mlp, maxrel);
    fx_close(&f);
}

Test(acm_module, distill_detach_gradients_mlp) { check_distill(1); }
Test(acm_module, distill_detach_gradients_projection) { check_distill(0); }

/* loss = Σ logits ⊙ R */
static double gate_loss(fx *f, const float *R) {
    acmt_acm_gate_forward(&f->a, f->p, &f->L, f->z, 7, f->M);
    double s = 0;
    for (int64_t i = 0; i < f->M * f->L.choices; i++) s += (double)f->a.logits[i] * R[i];
    return s;
}

Test(acm_module, gate_backward) {
    fx f;
    fx_open(&f, 1, 6);
    int64_t nl = f.M * f.L.choices;
    float *R = malloc(sizeof(float) * (size_t)nl), *dz = calloc((size_t)f.M * 7, sizeof(float));
    for (int64_t i = 0; i < nl; i++) R[i] = (float)sin(1.7 * i);
    gate_loss(&f, R);
    memcpy(f.a.dlogits, R, sizeof(float) * (size_t)nl);
    acmt_acm_gate_backward(f.g, dz, 7, &f.a, f.p, &f.L, f.z, 7, f.M);
    const float eps = 1e-2f;
    for (int64_t i = f.L.gate; i < f.L.numel; i++) {
        float keep = f.p[i];
        f.p[i] = keep + eps;
        double up = gate_loss(&f, R);
        f.p[i] = keep - eps;
        double dn = gate_loss(&f, R);
        f.p[i] = keep;
        double fd = (up - dn) / (2 * eps);
        cr_expect(fabs(fd - f.g[i]) <= 1e-3 * fmax(1, fabs(fd)), "gate param %lld: %.6g vs %.6g", (long long)i,
                  f.g[i], fd);
    }
    for (int64_t i = 0; i < f.M * 7; i++) {
        float keep = f.z[i];
        f.z[i] = keep + eps;
        double up = gate_loss(&f, R);
        f.z[i] = keep - eps;
        double dn = gate_loss(&f, R);
        f.z[i] = keep;
        double fd = (up - dn) / (2 * eps);
        cr_expect(fabs(fd - dz[i]) <= 1e-3 * fmax(1, fabs(fd)), "dz %lld: %.6g vs %.6g", (long long)i, dz[i], fd);
    }
    free(R), free(dz);
    fx_close(&f);
}

/* loss = Σ out ⊙ R with the selection held fixed */
static double select_loss(fx *f, const float *R, const uint8_t *k) {
    acmt_acm_learners_forward(&f->a, f->p, &f->L, f->z, 7, f->M);
    memcpy(f->a.k, k, (size_t)f->M);
    float out[64 * 5];
    acmt_acm_select_forward(out, 5, 0, &f->a, &f->L, f->M);
    double s = 0;
    for (int64_t i = 0; i < f->M * 5; i++) s += (double)out[i] * R[i];
    return s;
}

static void check_select(int is_mlp) {
    fx f;
    fx_open(&f, is_mlp, 8);
    const int C = f.L.choices;
    float R[8 * 5], dy_aux[8 * 4], *dz = calloc(8 * 7, sizeof(float));
    for (int i = 0; i < 8 * 5; i++) R[i] = (float)cos(0.9 * i);
    for (int i = 0; i < 8 * C; i++) dy_aux[i] = 0.1f * (float)sin(2.3 * i);
    acmt_rng r;
    acmt_rng_seed(&r, 7, 0);
    acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_gate_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_gumbel_select(&f.a, &f.L, f.M, 0.8f, &r);
    uint8_t k[8];
    memcpy(k, f.a.k, sizeof k);
    int seen[8] = {0};
    for (int i = 0; i < 8; i++) {
        cr_assert(k[i] >= f.L.kmin && k[i] <= f.L.n);
        seen[k[i]] = 1;
        double s = 0;
        for (int c = 0; c < C; c++) s += f.a.ysoft[i * C + c];
        cr_expect(fabs(s - 1) < 1e-5, "ysoft sums to 1");
    }
    float ysoft[8 * 4];
    memcpy(ysoft, f.a.ysoft, sizeof(float) * (size_t)(8 * C));
    acmt_acm_select_backward(f.g, dz, 7, &f.a, f.p, &f.L, f.z, 7, R, 5, dy_aux, 0.8f, 1, f.M);
    /* the straight-through logits gradient against its formula */
    for (int i = 0; i < 8; i++) {
        double dy[5] = {0}, dot = 0;
        if (k[i] > 0) {
            /* <dout, h(z, k)>: recompute h(z, k) */
            acmt_acm_acts tmp;
            cr_assert_eq(acmt_acm_acts_alloc(&tmp, &f.L, f.M), 0);
            acmt_acm_learners_forward(&tmp, f.p, &f.L, f.z, 7, f.M);
            for (int j = 0; j < 5; j++) dy[k[i] - f.L.kmin] += (double)R[i * 5 + j] * tmp.cum[((k[i] - 1) * f.M + i) * 5 + j];
            acmt_acm_acts_free(&tmp);
        }
        for (int c = 0; c < C; c++) dy[c] += dy_aux[i * C + c];
        for (int c = 0; c < C; c++) dot += ysoft[i * C + c] * dy[c];
        for (int c = 0; c < C; c++) {
            double want = ysoft[i * C + c] * (dy[c] - dot) / 0.8;
            cr_expect(fabs(f.a.dlogits[i * C + c] - want) <= 1e-5 * fmax(1, fabs(want)), "dlogit[%d][%d] %.6g vs %.6g",
                      i, c, f.a.dlogits[i * C + c], want);
        }
    }
    /* the learners' gradients against finite differences of Σ out ⊙ R with k fixed */
    const float eps = 1e-2f;
    for (int64_t i = 0; i < f.L.gate; i++) {
        float keep = f.p[i];
        f.p[i] = keep + eps;
        double up = select_loss(&f, R, k);
        f.p[i] = keep - eps;
        double dn = select_loss(&f, R, k);
        f.p[i] = keep;
        double fd = (up - dn) / (2 * eps);
        cr_expect(fabs(fd - f.g[i]) <= 2e-3 * fmax(1, fabs(fd)), "learner param %lld: %.6g vs %.6g", (long long)i,
                  f.g[i], fd);
    }
    /* dz = learners' part (finite differences) + gate part (gate_backward with the same dlogits) */
    float *dz_gate = calloc(8 * 7, sizeof(float)), *gg = calloc((size_t)f.L.numel, sizeof(float));
    acmt_acm_gate_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_gate_backward(gg, dz_gate, 7, &f.a, f.p, &f.L, f.z, 7, f.M);
    for (int64_t i = 0; i < 8 * 7; i++) {
        float keep = f.z[i];
        f.z[i] = keep + eps;
        double up = select_loss(&f, R, k);
        f.z[i] = keep - eps;
        double dn = select_loss(&f, R, k);
        f.z[i] = keep;
        double fd = (up - dn) / (2 * eps) + dz_gate[i];
        cr_expect(fabs(fd - dz[i]) <= 2e-3 * fmax(1, fabs(fd)), "dz %lld: %.6g vs %.6g", (long long)i, dz[i], fd);
    }
    (void)seen;
    free(dz), free(dz_gate), free(gg);
    fx_close(&f);
}

Test(acm_module, select_backward_mlp) { check_select(1); }
Test(acm_module, select_backward_projection) { check_select(0); }

Test(acm_module, init_from_mlp_reproduces_the_mlp_at_full_k) {
    fx f;
    fx_open(&f, 1, 5);
    const int hid = f.L.nh;
    float *fc1w = malloc(sizeof(float) * hid * 7), *fc1b = malloc(sizeof(float) * hid),
          *fc2w = malloc(sizeof(float) * 5 * hid);
    for (int i = 0; i < hid * 7; i++) fc1w[i] = (float)sin(i);
    for (int i = 0; i < hid; i++) fc1b[i] = (float)cos(i);
    for (int i = 0; i < 5 * hid; i++) fc2w[i] = (float)sin(0.3 * i);
    acmt_rng r;
    acmt_rng_seed(&r, 1, 1);
    acmt_acm_init_from_mlp(f.p, &f.L, fc1w, fc1b, fc2w, &r);
    acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 5; j++) {
            double o = 0;
            for (int u = 0; u < hid; u++) {
                double a = fc1b[u];
                for (int c = 0; c < 7; c++) a += (double)fc1w[u * 7 + c] * f.z[i * 7 + c];
                o += 0.5 * a * (1 + erf(a / sqrt(2.0))) * fc2w[j * hid + u];
            }
            float got = f.a.cum[((f.L.n - 1) * f.M + i) * 5 + j];
            cr_expect(fabs(got - o) <= 1e-4 * fmax(1, fabs(o)), "h(z, N)[%d][%d] %.6g vs MLP %.6g", i, j, got, o);
        }
    free(fc1w), free(fc1b), free(fc2w);
    fx_close(&f);
}

/* Learners on demand (rows sorted by k) give the dense path's outputs and gradients. */
static void check_sparse(int is_mlp) {
    fx f;
    fx_open(&f, is_mlp, 23);
    const int C = f.L.choices;
    acmt_rng r;
    acmt_rng_seed(&r, 11, 0);
    acmt_acm_gate_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_gumbel_select(&f.a, &f.L, f.M, 0.8f, &r);
    float R[23 * 5], dy_aux[23 * 4], out_d[23 * 5], out_s[23 * 5];
    for (int i = 0; i < 23 * 5; i++) R[i] = (float)cos(0.37 * i);
    for (int i = 0; i < 23 * C; i++) dy_aux[i] = 0.05f * (float)sin(1.3 * i);
    /* dense */
    acmt_acm_learners_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_select_forward(out_d, 5, 0, &f.a, &f.L, f.M);
    float *gd = calloc((size_t)f.L.numel, sizeof(float)), *dzd = calloc(23 * 7, sizeof(float));
    acmt_acm_select_backward(gd, dzd, 7, &f.a, f.p, &f.L, f.z, 7, R, 5, dy_aux, 0.8f, 1, f.M);
    /* sparse, from the same gate state (logits, ysoft, k) */
    acmt_acm_gate_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
    float *gs = calloc((size_t)f.L.numel, sizeof(float)), *dzs = calloc(23 * 7, sizeof(float));
    acmt_acm_sparse_forward(out_s, 5, 0, &f.a, f.p, &f.L, f.z, 7, f.M);
    acmt_acm_sparse_backward(gs, dzs, 7, &f.a, f.p, &f.L, f.z, 7, R, 5, dy_aux, 0.8f, 1, f.M);
    int ks[8] = {0};
    for (int i = 0; i < 23; i++) ks[f.a.k[i]]++;
    for (int i = 0; i < 23 * 5; i++)
        cr_expect(fabs(out_d[i] - out_s[i]) <= 1e-5 * fmax(1, fabs(out_d[i])), "out[%d] %.7g vs %.7g", i, out_s[i],
                  out_d[i]);
    for (int64_t i = 0; i < f.L.numel; i++)
        cr_expect(fabs(gd[i] - gs[i]) <= 1e-4 * fmax(1, fabs(gd[i])), "grad[%lld] sparse %.7g dense %.7g",
                  (long long)i, gs[i], gd[i]);
    for (int i = 0; i < 23 * 7; i++)
        cr_expect(fabs(dzd[i] - dzs[i]) <= 1e-4 * fmax(1, fabs(dzd[i])), "dz[%d] %.7g vs %.7g", i, dzs[i], dzd[i]);
    cr_log_info("sparse (mlp %d): k counts %d %d %d %d", is_mlp, ks[0], ks[1], ks[2], ks[3]);
    free(gd), free(dzd), free(gs), free(dzs);
    fx_close(&f);
}

Test(acm_module, sparse_matches_dense_mlp) { check_sparse(1); }
Test(acm_module, sparse_matches_dense_projection) { check_sparse(0); }

/* ---- FiLM on the gate (budget-conditioned gates): g1' = g1 + beta (gamma ⊙ g1 + delta) ---------------------------- */

/* loss = Σ logits ⊙ R through the FiLM gate */
static double film_loss(fx *f, const float *fp, const float *beta, const float *R) {
    acmt_film film = {fp, NULL, beta};
    acmt_acm_gate_forward_film(&f->a, f->p, &film, &f->L, f->z, 7, f->M);
    double s = 0;
    for (int64_t i = 0; i < f->M * f->L.choices; i++) s += (double)f->a.logits[i] * R[i];
    return s;
}

/* Gradients of gamma, delta, every gate weight and z against central differences, with a different beta != 0 per
 * row; and gamma = delta = 0 gives exactly the unconditioned gate. */
Test(acm_module, film_gate_backward) {
    fx f;
    fx_open(&f, 1, 6);
    const int gh = f.L.gh;
    int64_t nl = f.M * f.L.choices;
    float *R = malloc(sizeof(float) * (size_t)nl), *dz = calloc((size_t)f.M * 7, sizeof(float));
    float fp[2 * 6], fg[2 * 6] = {0}, beta[6] = {0.25f, 1.0f, 0.5f, 0.8f, 0.1f, 0.65f};
    for (int j = 0; j < 2 * gh; j++) fp[j] = (float)(0.8 * sin(1.1 * j + 0.4));
    for (int64_t i = 0; i < nl; i++) R[i] = (float)sin(1.7 * i);
    /* at gamma = delta = 0 the FiLM gate is the plain gate, bit for bit */
    {
        float zero[2 * 6] = {0}, *plain = malloc(sizeof(float) * (size_t)nl);
        acmt_acm_gate_forward(&f.a, f.p, &f.L, f.z, 7, f.M);
        memcpy(plain, f.a.logits, sizeof(float) * (size_t)nl);
        film_loss(&f, zero, beta, R);
        cr_expect_eq(memcmp(plain, f.a.logits, sizeof(float) * (size_t)nl), 0, "FiLM at 0 changed the logits");
        free(plain);
    }
    film_loss(&f, fp, beta, R);
    memcpy(f.a.dlogits, R, sizeof(float) * (size_t)nl);
    f.a.film.g = fg; /* the forward above ran without a gradient buffer; the backward reads it from the acts */
    acmt_acm_gate_backward(f.g, dz, 7, &f.a, f.p, &f.L, f.z, 7, f.M);
    const float eps = 1e-2f;
    double maxrel = 0;
    for (int j = 0; j < 2 * gh; j++) {
        float keep = fp[j];
        fp[j] = keep + eps;
        double up = film_loss(&f, fp, beta, R);
        fp[j] = keep - eps;
        double dn = film_loss(&f, fp, beta, R);
        fp[j] = keep;
        double fd = (up - dn) / (2 * eps);
        maxrel = fmax(maxrel, fabs(fd - fg[j]) / fmax(1, fabs(fd)));
        cr_expect(fabs(fd - fg[j]) <= 1e-3 * fmax(1, fabs(fd)), "%s %d: analytic %.6g vs finite difference %.6g",
                  j < gh ? "scale" : "shift", j % gh, fg[j], fd);
        cr_expect(fabs(fd) > 1e-3, "%s %d: no signal", j < gh ? "scale" : "shift", j % gh);
    }
    for (int64_t i = f.L.gate; i < f.L.numel; i++) {
        float keep = f.p[i];
        f.p[i] = keep + eps;
        double up = film_loss(&f, fp, beta, R);
        f.p[i] = keep - eps;
        double dn = film_loss(&f, fp, beta, R);
        f.p[i] = keep;
        double fd = (up - dn) / (2 * eps);
        maxrel = fmax(maxrel, fabs(fd - f.g[i]) / fmax(1, fabs(fd)));
        cr_expect(fabs(fd - f.g[i]) <= 1e-3 * fmax(1, fabs(fd)), "gate param %lld: %.6g vs %.6g", (long long)i,
                  f.g[i], fd);
    }
    for (int64_t i = 0; i < f.M * 7; i++) {
        float keep = f.z[i];
        f.z[i] = keep + eps;
        double up = film_loss(&f, fp, beta, R);
        f.z[i] = keep - eps;
        double dn = film_loss(&f, fp, beta, R);
        f.z[i] = keep;
        double fd = (up - dn) / (2 * eps);
        maxrel = fmax(maxrel, fabs(fd - dz[i]) / fmax(1, fabs(fd)));
        cr_expect(fabs(fd - dz[i]) <= 1e-3 * fmax(1, fabs(fd)), "dz %lld: %.6g vs %.6g", (long long)i, dz[i], fd);
    }
    cr_log_info("FiLM gate: max relative difference %.3g", maxrel);
    free(R), free(dz);
    fx_close(&f);
}
