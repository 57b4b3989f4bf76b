/*
 * acm_module.c — training one ACM: learners, phase-1 distillation, phase-2 labels, gate, phase-3 Gumbel selection.
 * See acm_module.h. Every matrix product goes through the engine's kernels (engine/kernels.h).
 */
#include "train/acm_module.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

void acmt_acm_layout_init(acmt_acm_layout *L, const char *name, int din, int dout, int n, int h, int is_mlp, int gh) {
    memset(L, 0, sizeof *L);
    snprintf(L->name, sizeof L->name, "%s", name);
    L->din = din, L->dout = dout, L->n = n, L->h = h, L->nh = n * h, L->gh = gh;
    L->kmin = is_mlp ? 0 : 1;
    L->gelu = is_mlp;
    L->choices = is_mlp ? n + 1 : n;
    int64_t o = 0;
    L->w1 = o, o += (int64_t)L->nh * din;
    L->b1 = o, o += L->nh;
    L->w2 = o, o += (int64_t)dout * L->nh;
    L->gate = o;
    L->g0w = o, o += (int64_t)gh * din;
    L->g0b = o, o += gh;
    L->g1w = o, o += (int64_t)gh * gh;
    L->g1b = o, o += gh;
    L->g2w = o, o += (int64_t)L->choices * gh;
    L->g2b = o, o += L->choices;
    L->numel = o;
}

int acmt_acm_acts_alloc(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M) {
    memset(a, 0, sizeof *a);
    size_t f[] = {
        (size_t)M * L->nh, (size_t)M * L->nh, (size_t)L->n * M * L->dout, (size_t)M * L->gh, (size_t)M * L->gh,
        (size_t)M * L->choices, (size_t)M * L->choices, (size_t)M * L->dout, (size_t)M * L->nh, (size_t)M * L->gh,
        (size_t)M * L->gh, (size_t)M * L->choices, (size_t)M * L->din, (size_t)M * L->din, (size_t)M * L->gh,
        (size_t)M * L->gh, (size_t)M,
    };
    float **ptr[] = {&a->hid, &a->act, &a->cum, &a->g0, &a->g1, &a->logits, &a->ysoft, &a->ds, &a->dact,
                     &a->dg0, &a->dg1, &a->dlogits, &a->zs, &a->dzs, &a->g1f, &a->dg1f, (float **)&a->perm};
    size_t total = 0;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) total += f[i];
    float *mem = calloc(total * sizeof(float) + (size_t)M, 1);
    if (!mem) return -1;
    a->mem = mem;
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        *ptr[i] = mem;
        mem += f[i];
    }
    a->k = (uint8_t *)mem;
    return 0;
}

void acmt_acm_acts_free(acmt_acm_acts *a) {
    free(a->mem);
    memset(a, 0, sizeof *a);
}

static void uniform(float *x, int64_t n, float bound, acmt_rng *rng) {
    for (int64_t i = 0; i < n; i++) x[i] = (2.0f * acmt_rng_float(rng) - 1.0f) * bound;
}

static void init_gate(float *p, const acmt_acm_layout *L, acmt_rng *rng) {
    uniform(p + L->g0w, (int64_t)L->gh * L->din, 1.0f / sqrtf((float)L->din), rng);
    uniform(p + L->g0b, L->gh, 1.0f / sqrtf((float)L->din), rng);
    uniform(p + L->g1w, (int64_t)L->gh * L->gh, 1.0f / sqrtf((float)L->gh), rng);
    uniform(p + L->g1b, L->gh, 1.0f / sqrtf((float)L->gh), rng);
    uniform(p + L->g2w, (int64_t)L->choices * L->gh, 1.0f / sqrtf((float)L->gh), rng);
    uniform(p + L->g2b, L->choices, 1.0f / sqrtf((float)L->gh), rng);
}

void acmt_acm_init_random(float *p, const acmt_acm_layout *L, acmt_rng *rng) {
    uniform(p + L->w1, (int64_t)L->nh * L->din, 1.0f / sqrtf((float)L->din), rng);
    uniform(p + L->b1, L->nh, 1.0f / sqrtf((float)L->din), rng);
    /* Learners are additive corrections: w2 = 0 makes every learner start as a no-op (h(z, k) = 0, error e_0 for
     * every k), as LoRA starts its B matrix, instead of adding noise that later learners must first cancel. */
    memset(p + L->w2, 0, sizeof(float) * (size_t)L->dout * L->nh);
    init_gate(p, L, rng);
}

void acmt_acm_init_from_mlp(float *p, const acmt_acm_layout *L, const float *fc1_w, const float *fc1_b,
                            const float *fc2_w, acmt_rng *rng) {
    memcpy(p + L->w1, fc1_w, sizeof(float) * (size_t)L->nh * L->din);
    memcpy(p + L->b1, fc1_b, sizeof(float) * (size_t)L->nh);
    memcpy(p + L->w2, fc2_w, sizeof(float) * (size_t)L->dout * L->nh);
    init_gate(p, L, rng);
}

void acmt_acm_learners_forward(acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z, int ldz,
                               int64_t M) {
    const int nh = L->nh, h = L->h, dout = L->dout;
    acm__matmul_forward(a->hid, nh, z, ldz, p + L->w1, L->din, p + L->b1, M, L->din, nh, 0);
    if (L->gelu)
        acm__gelu_forward(a->act, a->hid, M * nh);
    else
        memcpy(a->act, a->hid, sizeof(float) * (size_t)(M * nh));
    for (int n = 0; n < L->n; n++) {
        float *cn = a->cum + (int64_t)n * M * dout;
        acm__matmul_forward(cn, dout, a->act + n * h, nh, p + L->w2 + n * h, nh, NULL, M, h, dout, 0);
        if (n) acm__add(cn, cn, cn - M * dout, M * dout);
    }
}

/* Learner n's part of the backward given ds = dL/ds_n [M, Dout]: dW2 block n and dact block n. */
static void learner_out_backward(float *g, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, int n,
                                 int64_t M) {
    const int nh = L->nh, h = L->h;
    acm__matmul_backward(a->dact + n * h, nh, g + L->w2 + n * h, NULL, a->ds, L->dout, a->act + n * h, nh,
                         p + L->w2 + n * h, nh, M, h, L->dout);
}

/* After every learner's dact block: through the activation and the first layer. */
static void learners_in_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p,
                                 const acmt_acm_layout *L, const float *z, int ldz, int64_t M) {
    const int nh = L->nh;
    float *dhid = a->dact;
    if (L->gelu) {
        /* dhid = dact ⊙ gelu'(hid): gelu_backward accumulates, so go through act (free now) as the output */
        memset(a->act, 0, sizeof(float) * (size_t)(M * nh));
        acm__gelu_backward(a->act, a->hid, a->dact, M * nh);
        dhid = a->act;
    }
    acm__matmul_backward(dz, lddz, g + L->w1, g + L->b1, dhid, nh, z, ldz, p + L->w1, L->din, M, L->din, nh);
}

double acmt_acm_distill_backward(float *g, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z,
                                 int ldz, const float *o, int ldo, int64_t M, double *errs) {
    const int dout = L->dout, N = L->n;
    const double scale = 1.0 / ((double)N * M * dout);
    double loss = 0;
    if (errs) {
        double e0 = 0;
        for (int64_t i = 0; i < M; i++)
            for (int j = 0; j < dout; j++) e0 += (double)o[i * ldo + j] * o[i * ldo + j];
        errs[0] = e0 / ((double)M * dout);
    }
    memset(a->dact, 0, sizeof(float) * (size_t)(M * L->nh));
    for (int n = 0; n < N; n++) {
        const float *cn = a->cum + (int64_t)n * M * dout;
        double se = 0;
        for (int64_t i = 0; i < M; i++)
            for (int j = 0; j < dout; j++) {
                double d = (double)cn[i * dout + j] - o[i * ldo + j];
                se += d * d;
                a->ds[i * dout + j] = (float)(2.0 * scale * d);
            }
        loss += se * scale;
        if (errs) errs[n + 1] = se / ((double)M * dout);
        learner_out_backward(g, a, p, L, n, M);
    }
    learners_in_backward(g, NULL, 0, a, p, L, z, ldz, M);
    return loss;
}

int acmt_label_rule(const double *e, int N) {
    if (N < 2) return N;
    for (int j = 0; j < N; j++) {
        double r;
        if (e[j + 1] == 0)
            r = e[j] == 0 ? 1.0 : INFINITY; /* 0/0: not improved; x/0: improved */
        else
            r = e[j] / e[j + 1];
        if (r < 1.2) return j == 0 ? N : j + 1;
    }
    return N;
}

void acmt_acm_gate_labels(int32_t *labels, const acmt_acm_acts *a, const acmt_acm_layout *L, const float *o, int ldo,
                          int64_t M) {
    const int dout = L->dout, N = L->n;
    double e[32];
    for (int64_t i = 0; i < M; i++) {
        double s = 0;
        for (int j = 0; j < dout; j++) s += (double)o[i * ldo + j] * o[i * ldo + j];
        e[0] = sqrt(s);
        for (int n = 0; n < N; n++) {
            const float *c = a->cum + ((int64_t)n * M + i) * dout;
            s = 0;
            for (int j = 0; j < dout; j++) {
                double d = (double)c[j] - o[i * ldo + j];
                s += d * d;
            }
            e[n + 1] = sqrt(s);
        }
        labels[i] = acmt_label_rule(e, N) - L->kmin;
    }
}

void acmt_acm_gate_forward(acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z, int ldz,
                           int64_t M) {
    acmt_acm_gate_forward_film(a, p, NULL, L, z, ldz, M);
}

void acmt_acm_gate_forward_film(acmt_acm_acts *a, const float *p, const acmt_film *film, const acmt_acm_layout *L,
                                const float *z, int ldz, int64_t M) {
    const int gh = L->gh;
    acm__matmul_forward(a->g0, gh, z, ldz, p + L->g0w, L->din, p + L->g0b, M, L->din, gh, 0);
    acm__matmul_forward(a->g1, gh, a->g0, gh, p + L->g1w, gh, p + L->g1b, M, gh, gh, 0);
    const float *last = a->g1;
    memset(&a->film, 0, sizeof a->film);
    if (film) {
        /* g1' = g1 + beta (gamma ⊙ g1 + delta) */
        const float *sc = film->p, *sh = film->p + gh;
        a->film = *film;
        for (int64_t i = 0; i < M; i++) {
            const float b = film->beta[i], *g1 = a->g1 + i * gh;
            float *o = a->g1f + i * gh;
            for (int j = 0; j < gh; j++) o[j] = g1[j] + b * (sc[j] * g1[j] + sh[j]);
        }
        last = a->g1f;
    }
    acm__matmul_forward(a->logits, L->choices, last, gh, p + L->g2w, gh, p + L->g2b, M, gh, L->choices, 0);
}

void acmt_acm_gate_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                            const float *z, int ldz, int64_t M) {
    const int gh = L->gh, C = L->choices;
    memset(a->dg1, 0, sizeof(float) * (size_t)(M * gh));
    memset(a->dg0, 0, sizeof(float) * (size_t)(M * gh));
    if (a->film.p) {
        /* through g1' = g1 + beta (gamma ⊙ g1 + delta): dg1' first, then dgamma, ddelta and dg1 */
        const acmt_film *f = &a->film;
        const float *sc = f->p;
        memset(a->dg1f, 0, sizeof(float) * (size_t)(M * gh));
        acm__matmul_backward(a->dg1f, gh, g + L->g2w, g + L->g2b, a->dlogits, C, a->g1f, gh, p + L->g2w, gh, M, gh, C);
        for (int j = 0; j < gh && f->g; j++) {
            double ds = 0, dd = 0;
            for (int64_t i = 0; i < M; i++) {
                double bd = (double)f->beta[i] * a->dg1f[i * gh + j];
                ds += bd * a->g1[i * gh + j];
                dd += bd;
            }
            f->g[j] += (float)ds;
            f->g[gh + j] += (float)dd;
        }
        for (int64_t i = 0; i < M; i++)
            for (int j = 0; j < gh; j++) a->dg1[i * gh + j] = a->dg1f[i * gh + j] * (1.0f + f->beta[i] * sc[j]);
    } else {
        acm__matmul_backward(a->dg1, gh, g + L->g2w, g + L->g2b, a->dlogits, C, a->g1, gh, p + L->g2w, gh, M, gh, C);
    }
    acm__matmul_backward(a->dg0, gh, g + L->g1w, g + L->g1b, a->dg1, gh, a->g0, gh, p + L->g1w, gh, M, gh, gh);
    acm__matmul_backward(dz, lddz, g + L->g0w, g + L->g0b, a->dg0, gh, z, ldz, p + L->g0w, L->din, M, L->din, gh);
}

void acmt_acm_gumbel_select(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M, float tau, acmt_rng *rng) {
    const int C = L->choices;
    float v[64];
    for (int64_t i = 0; i < M; i++) {
        const float *l = a->logits + i * C;
        for (int c = 0; c < C; c++) {
            float gum = 0;
            if (rng) {
                /* Gumbel(0, 1) = -log(-log U), U in (0, 1) */
                float u = acmt_rng_float(rng);
                u = u < 1e-20f ? 1e-20f : u > 1.0f - 1e-7f ? 1.0f - 1e-7f : u;
                gum = -logf(-logf(u));
            }
            v[c] = (l[c] + gum) / tau;
        }
        acm__softmax_row(a->ysoft + i * C, v, C);
        int best = 0;
        for (int c = 1; c < C; c++)
            if (v[c] > v[best]) best = c;
        a->k[i] = (uint8_t)(L->kmin + best);
    }
}

void acmt_acm_select_forward(float *out, int ldo, int accumulate, const acmt_acm_acts *a, const acmt_acm_layout *L,
                             int64_t M) {
    const int dout = L->dout;
    for (int64_t i = 0; i < M; i++) {
        float *o = out + i * ldo;
        int k = a->k[i];
        if (k == 0) {
            if (!accumulate) memset(o, 0, sizeof(float) * (size_t)dout);
            continue;
        }
        const float *c = a->cum + ((int64_t)(k - 1) * M + i) * dout;
        if (accumulate)
            for (int j = 0; j < dout; j++) o[j] += c[j];
        else
            memcpy(o, c, sizeof(float) * (size_t)dout);
    }
}

void acmt_acm_fixed_select(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M, int k) {
    const int C = L->choices;
    k = k < L->kmin ? L->kmin : k > L->n ? L->n : k;
    memset(a->ysoft, 0, sizeof(float) * (size_t)(M * C));
    for (int64_t i = 0; i < M; i++) {
        a->k[i] = (uint8_t)k;
        a->ysoft[i * C + k - L->kmin] = 1;
    }
}

void acmt_acm_select_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                              const float *z, int ldz, const float *dout, int lddo, const float *dy_aux, float tau,
                              int train_gate, int64_t M) {
    const int C = L->choices, D = L->dout;
    /* gate: straight-through from dy to the logits */
    for (int64_t i = 0; i < M && train_gate; i++) {
        double dy[64] = {0};
        int k = a->k[i], sel = k - L->kmin;
        if (k > 0) {
            const float *c = a->cum + ((int64_t)(k - 1) * M + i) * D;
            double s = 0;
            for (int j = 0; j < D; j++) s += (double)dout[i * lddo + j] * c[j];
            dy[sel] = s;
        }
        if (dy_aux)
            for (int c = 0; c < C; c++) dy[c] += dy_aux[i * C + c];
        const float *ys = a->ysoft + i * C;
        double dot = 0;
        for (int c = 0; c < C; c++) dot += ys[c] * dy[c];
        for (int c = 0; c < C; c++) a->dlogits[i * C + c] = (float)(ys[c] * (dy[c] - dot) / tau);
    }
    if (train_gate) acmt_acm_gate_backward(g, dz, lddz, a, p, L, z, ldz, M);
    /* learners: learner n gets dout on the rows that selected k >= n */
    memset(a->dact, 0, sizeof(float) * (size_t)(M * L->nh));
    for (int n = 0; n < L->n; n++) {
        for (int64_t i = 0; i < M; i++) {
            if (a->k[i] > n)
                memcpy(a->ds + i * D, dout + i * lddo, sizeof(float) * (size_t)D);
            else
                memset(a->ds + i * D, 0, sizeof(float) * (size_t)D);
        }
        learner_out_backward(g, a, p, L, n, M);
    }
    learners_in_backward(g, dz, lddz, a, p, L, z, ldz, M);
}

/* ---- phase 3, learners on demand --------------------------------------------------------------------------------
 * Rows sorted by k, descending (counting sort): learner n runs on the prefix of sorted rows with k >= n + 1, so a
 * token costs what its k costs, as at inference. hid, act and cum are in sorted order; cum[n] is defined on the first
 * m[n] sorted rows only. */
static void sort_by_k(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M, int64_t *m) {
    int64_t count[ACMT_MAX_CHOICES + 1] = {0}, start[ACMT_MAX_CHOICES + 1] = {0};
    for (int64_t i = 0; i < M; i++) count[a->k[i]]++;
    int64_t pos = 0;
    for (int k = L->n; k >= 0; k--) start[k] = pos, pos += count[k];
    for (int64_t i = 0; i < M; i++) a->perm[start[a->k[i]]++] = (int32_t)i;
    /* m[n]: rows with k >= n + 1 */
    int64_t acc = 0;
    for (int n = L->n - 1; n >= 0; n--) acc += count[n + 1], m[n] = acc;
}

void acmt_acm_sparse_forward(float *out, int ldo, int accumulate, acmt_acm_acts *a, const float *p,
                             const acmt_acm_layout *L, const float *z, int ldz, int64_t M) {
    const int nh = L->nh, h = L->h, dout = L->dout, din = L->din;
    int64_t m[ACMT_MAX_CHOICES] = {0};
    sort_by_k(a, L, M, m);
    for (int64_t i = 0; i < m[0]; i++) memcpy(a->zs + i * din, z + (int64_t)a->perm[i] * ldz, sizeof(float) * (size_t)din);
    for (int n = 0; n < L->n && m[n] > 0; n++) {
        float *hn = a->hid + n * h, *an = a->act + n * h, *cn = a->cum + (int64_t)n * M * dout;
        acm__matmul_forward(hn, nh, a->zs, din, p + L->w1 + (int64_t)n * h * din, din, p + L->b1 + n * h, m[n], din,
                            h, 0);
        for (int64_t i = 0; i < m[n]; i++) {
            if (L->gelu)
                acm__gelu_forward(an + i * nh, hn + i * nh, h);
            else
                memcpy(an + i * nh, hn + i * nh, sizeof(float) * (size_t)h);
        }
        acm__matmul_forward(cn, dout, an, nh, p + L->w2 + n * h, nh, NULL, m[n], h, dout, 0);
        if (n) acm__add(cn, cn, cn - M * dout, m[n] * dout);
    }
    for (int64_t i = 0; i < M; i++) {
        float *o = out + (int64_t)a->perm[i] * ldo;
        int k = a->k[a->perm[i]];
        if (k == 0) {
            if (!accumulate) memset(o, 0, sizeof(float) * (size_t)dout);
            continue;
        }
        const float *c = a->cum + ((int64_t)(k - 1) * M + i) * dout;
        if (accumulate)
            for (int j = 0; j < dout; j++) o[j] += c[j];
        else
            memcpy(o, c, sizeof(float) * (size_t)dout);
    }
}

void acmt_acm_sparse_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                              const float *z, int ldz, const float *dout, int lddo, const float *dy_aux, float tau,
                              int train_gate, int64_t M) {
    const int C = L->choices, D = L->dout, nh = L->nh, h = L->h, din = L->din;
    int64_t m[ACMT_MAX_CHOICES] = {0};
    int64_t count[ACMT_MAX_CHOICES + 1] = {0};
    for (int64_t i = 0; i < M; i++) count[a->k[i]]++;
    int64_t acc = 0;
    for (int n = L->n - 1; n >= 0; n--) acc += count[n + 1], m[n] = acc;
    if (train_gate) {
        /* straight-through, as in acmt_acm_select_backward; h(z, k) of original row r sits at sorted row i */
        for (int64_t i = 0; i < M; i++) {
            int64_t r = a->perm[i];
            double dy[ACMT_MAX_CHOICES] = {0};
            int k = a->k[r];
            if (k > 0) {
                const float *c = a->cum + ((int64_t)(k - 1) * M + i) * D;
                double s = 0;
                for (int j = 0; j < D; j++) s += (double)dout[r * lddo + j] * c[j];
                dy[k - L->kmin] = s;
            }
            if (dy_aux)
                for (int c = 0; c < C; c++) dy[c] += dy_aux[r * C + c];
            const float *ys = a->ysoft + r * C;
            double dot = 0;
            for (int c = 0; c < C; c++) dot += ys[c] * dy[c];
            for (int c = 0; c < C; c++) a->dlogits[r * C + c] = (float)(ys[c] * (dy[c] - dot) / tau);
        }
        acmt_acm_gate_backward(g, dz, lddz, a, p, L, z, ldz, M);
    }
    if (m[0] == 0) return;
    /* ds rows in sorted order: every learner n sees the same dout on its prefix */
    for (int64_t i = 0; i < m[0]; i++)
        memcpy(a->ds + i * D, dout + (int64_t)a->perm[i] * lddo, sizeof(float) * (size_t)D);
    memset(a->dzs, 0, sizeof(float) * (size_t)(m[0] * din));
    for (int n = 0; n < L->n && m[n] > 0; n++) {
        float *dan = a->dact + n * h;
        for (int64_t i = 0; i < m[n]; i++) memset(dan + i * nh, 0, sizeof(float) * (size_t)h);
        acm__matmul_backward(dan, nh, g + L->w2 + n * h, NULL, a->ds, D, a->act + n * h, nh, p + L->w2 + n * h, nh,
                             m[n], h, D);
        float *dhn = dan;
        if (L->gelu) {
            /* through GELU into the act buffer (free after the line above) */
            float *an = a->act + n * h;
            for (int64_t i = 0; i < m[n]; i++) {
                memset(an + i * nh, 0, sizeof(float) * (size_t)h);
                acm__gelu_backward(an + i * nh, a->hid + n * h + i * nh, dan + i * nh, h);
            }
            dhn = an;
        }
        acm__matmul_backward(a->dzs, din, g + L->w1 + (int64_t)n * h * din, g + L->b1 + n * h, dhn, nh, a->zs, din,
                             p + L->w1 + (int64_t)n * h * din, din, m[n], din, h);
    }
    if (dz)
        for (int64_t i = 0; i < m[0]; i++) {
            float *d = dz + (int64_t)a->perm[i] * lddz;
            const float *s = a->dzs + i * din;
            for (int j = 0; j < din; j++) d[j] += s[j];
        }
}

double acmt_acm_gate_pretrain(float *g, int32_t *labels, float *loss_rows, double *hits, acmt_acm_acts *a,
                              const float *p, const acmt_acm_layout *L, const float *z, int ldz, const float *o,
                              int ldo, int64_t M) {
    acmt_acm_gate_labels(labels, a, L, o, ldo, M);
    acmt_acm_gate_forward(a, p, L, z, ldz, M);
    const double loss = acm__crossentropy_forward(loss_rows, a->ysoft, a->logits, labels, (int)M, L->choices, 0.0f);
    memset(a->dlogits, 0, sizeof(float) * (size_t)M * L->choices);
    acm__crossentropy_backward(a->dlogits, a->ysoft, labels, (int)M, L->choices, 0.0f, 1.0f / (float)M);
    acmt_acm_gate_backward(g, NULL, 0, a, p, L, z, ldz, M);
    for (int64_t i = 0; i < M; i++) {
        const float *lg = a->logits + i * L->choices;
        int best = 0;
        for (int c = 1; c < L->choices; c++)
            if (lg[c] > lg[best]) best = c;
        *hits += best == labels[i];
    }
    return loss;
}
