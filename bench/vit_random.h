/*
 * vit_random.h — ViT models with random weights, built in memory (no file): the benchmarks' ViT-B/16 and the tests'
 * random larger models. Header-only (static functions) so that bench/ programs and tests/ can both include it.
 *
 * Tensors follow engine/model.h (timm names, nn.Linear layout); the metadata is the document model.h specifies. Weights
 * are uniform with the standard deviation 1/√fan_in (activations stay O(1) through the depth), LayerNorm weights
 * 1 ± 0.1, biases ±0.02; gates are three linear layers D -> 16 -> 16 -> C (the authors' shape) with a gain that spreads
 * their decisions over every k. A "budget.mean" λ(β) table is included so that every policy runs.
 *
 * What it is not: a trained model. Its logits mean nothing; its k decisions by policy are arbitrary but deterministic
 * (seeded), and the benchmarks feed k through acm_item.force_k anyway.
 */
#ifndef ACM_BENCH_VIT_RANDOM_H
#define ACM_BENCH_VIT_RANDOM_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "model.h"

typedef struct {
    int image_size, patch_size, in_chans, dim, depth, heads, mlp_hidden, num_classes;
    int learners;       /* N for every ACM; 0: a static model */
    int proj_h;         /* projection learner width; 0: round((D² + D) / (2D + 1) / N), the paper's rule */
    unsigned acm_mask;  /* bit ACM_POS_Q .. ACM_POS_MLP: which positions of every block are ACMs */
    int film;           /* 1: budget-conditioned gates (random FiLM scale and shift, budget.gate_beta 0.5) */
    uint64_t seed;
} vr_config;

typedef struct {
    char name[80];
    int ndim;
    int64_t shape[4];
    float *data;
} vr_tensor;

typedef struct {
    vr_tensor *t;
    int n, cap;
    uint64_t rng;
} vr_store;

/* snprintf for tensor names (names are short; a truncated one would fail the model build, loudly). */
static inline void vr_name(char *dst, size_t n, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

static inline double vr_uniform(uint64_t *s) { /* splitmix64 -> [0, 1) */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Adds a tensor filled with center ± sqrt(3)·sd (uniform). Returns 0, or -1 out of memory. */
static inline int vr_add(vr_store *st, const char *name, int ndim, const int64_t *shape, double center, double sd) {
    if (st->n == st->cap) {
        int nc = st->cap ? 2 * st->cap : 64;
        vr_tensor *t = realloc(st->t, sizeof *t * (size_t)nc);
        if (!t) return -1;
        st->t = t;
        st->cap = nc;
    }
    vr_tensor *t = &st->t[st->n];
    vr_name(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= (t->shape[i] = shape[i]);
    t->data = malloc(sizeof(float) * (size_t)numel);
    if (!t->data) return -1;
    const double a = sqrt(3.0) * sd;
    for (int64_t i = 0; i < numel; i++) t->data[i] = (float)(center + a * (2.0 * vr_uniform(&st->rng) - 1.0));
    st->n++;
    return 0;
}

static inline const float *vr_lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    vr_store *st = ctx;
    for (int i = 0; i < st->n; i++)
        if (!strcmp(st->t[i].name, name)) {
            *ndim = st->t[i].ndim;
            *shape = st->t[i].shape;
            return st->t[i].data;
        }
    return NULL;
}

static inline void vr_store_free(vr_store *st) {
    for (int i = 0; i < st->n; i++) free(st->t[i].data);
    free(st->t);
    memset(st, 0, sizeof *st);
}

#define VR_ADD(st, name, center, sd, ...)                                                                           \
    vr_add((st), (name), (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}, \
           (center), (sd))

static inline int vr_linear(vr_store *st, const char *name, int dout, int din) {
    char nm[96];
    vr_name(nm, sizeof nm, "%s.weight", name);
    if (VR_ADD(st, nm, 0.0, 1.0 / sqrt(din), dout, din)) return -1;
    vr_name(nm, sizeof nm, "%s.bias", name);
    return VR_ADD(st, nm, 0.0, 0.02, dout);
}

static inline int vr_acm(vr_store *st, const char *name, int din, int dout, int N, int h, int C, int film) {
    char nm[96];
    int rc = 0;
    vr_name(nm, sizeof nm, "%s.w1", name);
    rc |= VR_ADD(st, nm, 0.0, 1.0 / sqrt(din), N * h, din);
    vr_name(nm, sizeof nm, "%s.b1", name);
    rc |= VR_ADD(st, nm, 0.0, 0.02, N * h);
    vr_name(nm, sizeof nm, "%s.w2", name);
    rc |= VR_ADD(st, nm, 0.0, 1.0 / sqrt(N * h), dout, N * h);
    const int widths[4] = {din, 16, 16, C};
    for (int j = 0; j < 3; j++) {
        vr_name(nm, sizeof nm, "%s.gate.%d.weight", name, j);
        rc |= VR_ADD(st, nm, 0.0, 1.6 / sqrt(widths[j]), widths[j + 1], widths[j]);
        vr_name(nm, sizeof nm, "%s.gate.%d.bias", name, j);
        rc |= VR_ADD(st, nm, 0.0, 0.3, widths[j + 1]);
    }
    if (film) { /* large enough that the decisions move with beta */
        vr_name(nm, sizeof nm, "%s.gate.film.scale", name);
        rc |= VR_ADD(st, nm, 0.0, 1.0, 16);
        vr_name(nm, sizeof nm, "%s.gate.film.shift", name);
        rc |= VR_ADD(st, nm, 0.0, 1.0, 16);
    }
    return rc;
}

/* The paper's projection learner width: N learners of width h cost what a D x D linear layer costs. */
static inline int vr_proj_h(int D, int N) { return (int)lround((double)(D * D + D) / (2.0 * D + 1) / N); }

/* Builds the model; *st receives the tensors, which must outlive it (free with vr_store_free after acm_model_free). */
static inline acm_model *vr_build(const vr_config *c, vr_store *st, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    st->rng = c->seed * 0x2545F4914F6CDD1Dull + 1;
    const int D = c->dim, P = c->patch_size, G = c->image_size / P, T = G * G + 1, N = c->learners;
    const int hp = c->proj_h ? c->proj_h : N ? vr_proj_h(D, N) : 0;
    static const char *pos[ACM_POS_COUNT] = {"attn.q", "attn.k", "attn.v", "attn.proj", "mlp"};
    char meta[65536], nm[96];
    int off = snprintf(meta, sizeof meta,
                       "{\"format_version\":1,\"arch\":\"vit\",\"image_size\":%d,\"patch_size\":%d,\"in_chans\":%d,"
                       "\"dim\":%d,\"depth\":%d,\"heads\":%d,\"mlp_hidden\":%d,\"num_classes\":%d,\"ln_eps\":1e-6,"
                       "\"preprocess\":{\"mean\":[",
                       c->image_size, P, c->in_chans, D, c->depth, c->heads, c->mlp_hidden, c->num_classes);
    for (int i = 0; i < c->in_chans; i++) off += snprintf(meta + off, sizeof meta - off, "%s0.5", i ? "," : "");
    off += snprintf(meta + off, sizeof meta - off, "],\"std\":[");
    for (int i = 0; i < c->in_chans; i++) off += snprintf(meta + off, sizeof meta - off, "%s0.25", i ? "," : "");
    off += snprintf(meta + off, sizeof meta - off, "]}");
    int rc = 0;
    rc |= VR_ADD(st, "patch_embed.proj.weight", 0.0, 1.0 / sqrt(c->in_chans * P * P), D, c->in_chans, P, P);
    rc |= VR_ADD(st, "patch_embed.proj.bias", 0.0, 0.02, D);
    rc |= VR_ADD(st, "cls_token", 0.0, 0.5, 1, 1, D);
    rc |= VR_ADD(st, "pos_embed", 0.0, 0.5, 1, T, D);
    if (N) off += snprintf(meta + off, sizeof meta - off, ",\"acm\":{\"modules\":[");
    int first = 1;
    for (int l = 0; l < c->depth; l++) {
        vr_name(nm, sizeof nm, "blocks.%d.norm1.weight", l);
        rc |= VR_ADD(st, nm, 1.0, 0.1, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm1.bias", l);
        rc |= VR_ADD(st, nm, 0.0, 0.02, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm2.weight", l);
        rc |= VR_ADD(st, nm, 1.0, 0.1, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm2.bias", l);
        rc |= VR_ADD(st, nm, 0.0, 0.02, D);
        unsigned mask = N ? c->acm_mask : 0;
        if (!(mask & 7u)) {
            vr_name(nm, sizeof nm, "blocks.%d.attn.qkv", l);
            rc |= vr_linear(st, nm, 3 * D, D);
        }
        for (int p = 0; p < ACM_POS_COUNT; p++) {
            if (p < 3 && !(mask & 7u)) continue;
            if (p == ACM_POS_MLP) vr_name(nm, sizeof nm, "blocks.%d.mlp", l);
            else vr_name(nm, sizeof nm, "blocks.%d.%s", l, pos[p]);
            if (mask & (1u << p)) {
                off += snprintf(meta + off, sizeof meta - off, "%s{\"name\":\"%s\",\"learners\":%d}", first ? "" : ",",
                                nm, N);
                first = 0;
                rc |= p == ACM_POS_MLP ? vr_acm(st, nm, D, D, N, c->mlp_hidden / N, N + 1, c->film)
                                       : vr_acm(st, nm, D, D, N, hp, N, c->film);
            } else if (p == ACM_POS_MLP) {
                char n2[96];
                vr_name(n2, sizeof n2, "%s.fc1", nm);
                rc |= vr_linear(st, n2, c->mlp_hidden, D);
                vr_name(n2, sizeof n2, "%s.fc2", nm);
                rc |= vr_linear(st, n2, D, c->mlp_hidden);
            } else {
                rc |= vr_linear(st, nm, D, D);
            }
        }
    }
    if (N)
        off += snprintf(meta + off, sizeof meta - off,
                        "]},\"budget\":{\"beta_min\":0.25,\"mean\":[[0.25,3.0],[0.5,1.5],[0.75,0.6],[1.0,0.0]]%s}",
                        c->film ? ",\"gate_beta\":0.5" : "");
    off += snprintf(meta + off, sizeof meta - off, "}");
    rc |= VR_ADD(st, "norm.weight", 1.0, 0.1, D);
    rc |= VR_ADD(st, "norm.bias", 0.0, 0.02, D);
    rc |= vr_linear(st, "head", c->num_classes, D);
    if (rc || off >= (int)sizeof meta) {
        snprintf(err, errlen, "vit_random: out of memory or metadata too long");
        vr_store_free(st);
        return NULL;
    }
    acm_model *m = acm__model_build(meta, vr_lookup, st, err, errlen);
    if (!m) vr_store_free(st);
    return m;
}

/* k per token drawn from the maximum-entropy distribution on {kmin..N} with mean `mean` (p_k ∝ exp(θ k), θ by
 * bisection; a mean at an end of the range gives all tokens that k). */
static inline void vr_maxent(double *p, int kmin, int N, double mean) {
    double lo = -60, hi = 60, th = 0;
    for (int it = 0; it < 200; it++) {
        th = 0.5 * (lo + hi);
        double z = 0, m = 0;
        for (int k = kmin; k <= N; k++) z += exp(th * (k - N)), m += k * exp(th * (k - N));
        if (m / z < mean) lo = th;
        else hi = th;
    }
    double z = 0;
    for (int k = kmin; k <= N; k++) z += (p[k] = exp(th * (k - N)));
    for (int k = 0; k <= N; k++) p[k] = k < kmin ? 0 : p[k] / z;
}

/* force_k [num_acms, T] for one item: every ACM's k drawn from the max-entropy distribution with mean beta * N. */
static inline void vr_draw_k(uint8_t *k, const acm_model *m, double beta, uint64_t *rng) {
    const acm_config *c = acm_model_config(m);
    for (int a = 0; a < c->num_acms; a++) {
        const acm_module_info *in = acm_model_acm(m, a);
        double p[ACM_MAX_CHOICES + 1];
        double mean = beta * in->n;
        if (mean < in->kmin) mean = in->kmin;
        vr_maxent(p, in->kmin, in->n, mean);
        for (int t = 0; t < c->tokens; t++) {
            double u = vr_uniform(rng), cum = 0;
            int kk = in->n;
            for (int j = in->kmin; j <= in->n; j++) {
                cum += p[j];
                if (u < cum) {
                    kk = j;
                    break;
                }
            }
            k[(size_t)a * c->tokens + t] = (uint8_t)kk;
        }
    }
}

#endif
