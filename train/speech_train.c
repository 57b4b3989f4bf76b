/*
 * speech_train.c — trainable static speech encoder (see speech_train.h). Forward, per batch of packed rows:
 *
 *   xin = (frames - mel_mean) / mel_std, S frames per row;  x0 = xin·Wfᵀ + bf
 *   per block:  ln1 = LN1(x);  qkv = ln1·Wqkvᵀ + b
 *               per chunk u (queries: its rows; keys: the L rows before it in the item, then its rows):
 *                 q' = rope(q, positions nk-Tq..nk-1), k' = rope(k, 0..nk-1); P = softmax(q'k'ᵀ/√hd) per head;
 *                 y = P·v
 *               x1 = x + y·Woᵀ + bo;  ln2 = LN2(x1);  h = GELU(ln2·W1ᵀ + b1);  x2 = x1 + h·W2ᵀ + b2
 *   lnf = LN(x);  logits = lnf·Whᵀ + bh  (every row);  loss = CTC per item (train/ctc_loss.h)
 *
 * Backward mirrors it in reverse with one residual gradient buffer (dres), as vit_train.c. A key row is rotated
 * differently in each chunk that sees it (its position counts from that chunk's first key), so the backward of a
 * chunk recomputes its rotated q' and k' (a copy and a rotation: cheap next to the products), un-rotates dq' and dk'
 * (the transposed rotation) and adds them into the rows they came from.
 */
#include "train/speech_train.h"

#include <cblas.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "logmel.h"
#include "model.h"
#include "safetensors.h"
#include "train/ctc_loss.h"

acmt_speech_config acmt_speech_default_config(void) {
    acmt_speech_config c = {.n_mels = 80, .stack = 4, .dim = 144, .depth = 6, .heads = 4, .mlp_hidden = 576,
                            .chunk = 16, .left_context = 32, .rope_base = 10000.0f, .ln_eps = 1e-6f};
    snprintf(c.alphabet, sizeof c.alphabet, "%s", "abcdefghijklmnopqrstuvwxyz' ");
    return c;
}

/* ---- the tensor table ------------------------------------------------------------------------------------------- */

static void add(acmt_param *tab, int *n, int64_t *off, const char *name, int decay, int ndim, int64_t d0,
                int64_t d1) {
    if (tab) {
        acmt_param *p = &tab[*n];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = ndim;
        p->shape[0] = d0;
        p->shape[1] = d1;
        p->numel = ndim == 1 ? d0 : d0 * d1;
        p->offset = *off;
        p->decay = decay;
    }
    (*n)++;
    *off += ndim == 1 ? d0 : d0 * d1;
}

static int build_table(const acmt_speech_config *c, int K, acmt_param *tab, int64_t *total) {
    int n = 0;
    int64_t off = 0;
    const int D = c->dim, Hd = c->mlp_hidden, SM = c->stack * c->n_mels;
    char nm[64];
    add(tab, &n, &off, "frontend.mel_mean", 0, 1, c->n_mels, 0);
    add(tab, &n, &off, "frontend.mel_std", 0, 1, c->n_mels, 0);
    add(tab, &n, &off, "frontend.proj.weight", 1, 2, D, SM);
    add(tab, &n, &off, "frontend.proj.bias", 0, 1, D, 0);
    for (int l = 0; l < c->depth; l++) {
#define BLK(suffix, decay, nd, a, b)                                                                                 \
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);                                                            \
    add(tab, &n, &off, nm, decay, nd, a, b)
        BLK("norm1.weight", 0, 1, D, 0);
        BLK("norm1.bias", 0, 1, D, 0);
        BLK("attn.qkv.weight", 1, 2, 3 * D, D);
        BLK("attn.qkv.bias", 0, 1, 3 * D, 0);
        BLK("attn.proj.weight", 1, 2, D, D);
        BLK("attn.proj.bias", 0, 1, D, 0);
        BLK("norm2.weight", 0, 1, D, 0);
        BLK("norm2.bias", 0, 1, D, 0);
        BLK("mlp.fc1.weight", 1, 2, Hd, D);
        BLK("mlp.fc1.bias", 0, 1, Hd, 0);
        BLK("mlp.fc2.weight", 1, 2, D, Hd);
        BLK("mlp.fc2.bias", 0, 1, D, 0);
#undef BLK
    }
    add(tab, &n, &off, "norm.weight", 0, 1, D, 0);
    add(tab, &n, &off, "norm.bias", 0, 1, D, 0);
    add(tab, &n, &off, "head.weight", 1, 2, K, D);
    add(tab, &n, &off, "head.bias", 0, 1, K, 0);
    *total = off;
    return n;
}

static float *P_(const acmt_speech *s, float *base, const char *name) {
    for (int i = 0; i < s->ntab; i++)
        if (!strcmp(s->tab[i].name, name)) return base + s->tab[i].offset;
    fprintf(stderr, "acm-train: internal error: no parameter %s\n", name);
    abort();
}

static float *Pb(const acmt_speech *s, float *base, int l, const char *suffix) {
    char nm[64];
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);
    return P_(s, base, nm);
}

static const float *lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    const acmt_speech *s = ctx;
    for (int i = 0; i < s->ntab; i++)
        if (!strcmp(s->tab[i].name, name)) {
            *ndim = s->tab[i].ndim;
            *shape = s->tab[i].shape;
            return s->params + s->tab[i].offset;
        }
    return NULL;
}

int acmt_speech_trainable(const acmt_speech *s, int i) { return strncmp(s->tab[i].name, "frontend.mel_", 13) != 0; }

char *acmt_speech_meta_json(const acmt_speech_config *c, const char *extra_json) {
    json_t *o = json_object(), *fe = json_object();
    json_object_set_new(o, "format_version", json_integer(ACM_FORMAT_VERSION));
    json_object_set_new(o, "arch", json_string("speech"));
    json_object_set_new(o, "dim", json_integer(c->dim));
    json_object_set_new(o, "depth", json_integer(c->depth));
    json_object_set_new(o, "heads", json_integer(c->heads));
    json_object_set_new(o, "mlp_hidden", json_integer(c->mlp_hidden));
    json_object_set_new(o, "ln_eps", json_real(c->ln_eps));
    json_object_set_new(o, "alphabet", json_string(c->alphabet));
    json_object_set_new(o, "chunk", json_integer(c->chunk));
    json_object_set_new(o, "left_context", json_integer(c->left_context));
    json_object_set_new(o, "rope_base", json_real(c->rope_base));
    json_object_set_new(fe, "n_mels", json_integer(c->n_mels));
    json_object_set_new(fe, "stack", json_integer(c->stack));
    json_object_set_new(o, "frontend", fe);
    if (extra_json) {
        json_t *x = json_loads(extra_json, 0, NULL);
        if (json_is_object(x)) json_object_update(o, x);
        json_decref(x);
    }
    char *str = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    return str;
}

/* ---- allocation ------------------------------------------------------------------------------------------------- */

acmt_speech *acmt_speech_new(const acmt_speech_config *cfg, int max_items, int64_t max_rows, int64_t max_item_tokens,
                             int max_labels, char *err, size_t errlen) {
    const acmt_speech_config *c = cfg;
    if (c->heads < 1 || c->dim % c->heads || (c->dim / c->heads) % 2 || c->depth < 1 || c->mlp_hidden < 1 ||
        c->n_mels < 1 || c->stack < 1 || c->chunk < 1 || c->left_context < 0 || !c->alphabet[0] || max_items < 1 ||
        max_rows < 1 || max_item_tokens < 1 || max_labels < 0 || strlen(c->alphabet) > 255) {
        snprintf(err, errlen, "invalid speech configuration (dim %d, heads %d, depth %d, chunk %d, left context %d)",
                 c->dim, c->heads, c->depth, c->chunk, c->left_context);
        return NULL;
    }
    acmt_speech *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->cfg = *c;
    s->K = 1 + (int)strlen(c->alphabet);
    s->SM = c->stack * c->n_mels;
    s->hd = c->dim / c->heads;
    s->max_items = max_items;
    s->max_rows = max_rows;
    s->max_item_tokens = max_item_tokens < max_rows ? max_item_tokens : max_rows;
    s->max_labels = max_labels;
    s->ntab = build_table(c, s->K, NULL, &s->nparams);
    s->tab = calloc((size_t)s->ntab, sizeof *s->tab);
    if (!s->tab) goto oom;
    build_table(c, s->K, s->tab, &s->nparams);
    const size_t np = (size_t)s->nparams;
    s->params = calloc(np, sizeof(float));
    s->grads = calloc(np, sizeof(float));
    s->m = calloc(np, sizeof(float));
    s->v = calloc(np, sizeof(float));
    if (!s->params || !s->grads || !s->m || !s->v) goto oom;
    float *std = P_(s, s->params, "frontend.mel_std");
    for (int i = 0; i < c->n_mels; i++) std[i] = 1.0f;

    const int64_t R = max_rows, D = c->dim, Hd = c->mlp_hidden, H = c->heads, K = s->K, SM = s->SM;
    const int64_t C = c->chunk, L = c->left_context, W = L + C, half = s->hd / 2;
    /* ln1 + stats, qkv, att, att_y, x1, ln2 + stats, fc1 and gelu, x2 */
    const int64_t per_block = R * D + 2 * R + R * 3 * D + H * R * W + R * D + R * D + R * D + 2 * R + 2 * R * Hd +
                              R * D;
    const int64_t act_total = R * SM + R * D + c->depth * per_block + R * D + 2 * R + R * K + 2 * W * half;
    s->act_mem = malloc(sizeof(float) * (size_t)act_total);
    s->blk = calloc((size_t)c->depth, sizeof *s->blk);
    if (!s->act_mem || !s->blk) goto oom;
    float *p = s->act_mem;
#define TAKE(ptr, n) (ptr = p, p += (n))
    TAKE(s->xin, R * SM);
    TAKE(s->x0, R * D);
    for (int l = 0; l < c->depth; l++) {
        acmt_speech_block_acts *a = &s->blk[l];
        TAKE(a->ln1, R * D);
        TAKE(a->ln1_mean, R);
        TAKE(a->ln1_rstd, R);
        TAKE(a->qkv, R * 3 * D);
        TAKE(a->att, H * R * W);
        TAKE(a->att_y, R * D);
        TAKE(a->x1, R * D);
        TAKE(a->ln2, R * D);
        TAKE(a->ln2_mean, R);
        TAKE(a->ln2_rstd, R);
        TAKE(a->fc1, R * Hd);
        TAKE(a->gelu, R * Hd);
        TAKE(a->x2, R * D);
    }
    TAKE(s->lnf, R * D);
    TAKE(s->lnf_mean, R);
    TAKE(s->lnf_rstd, R);
    TAKE(s->logits, R * K);
    TAKE(s->rope_cos, W * half);
    TAKE(s->rope_sin, W * half);
    if (p != s->act_mem + act_total) abort(); /* the size table and the pointers disagree: a bug here */
    const int64_t bwd_total = 3 * R * D + R * 3 * D + 2 * R * Hd + R * K + C * D + W * D + C * D + W * D + C * W;
    s->bwd_mem = malloc(sizeof(float) * (size_t)bwd_total);
    if (!s->bwd_mem) goto oom;
    p = s->bwd_mem;
    TAKE(s->dres, R * D);
    TAKE(s->dln, R * D);
    TAKE(s->dattn, R * D);
    TAKE(s->dqkv, R * 3 * D);
    TAKE(s->dhid, R * Hd);
    TAKE(s->dfc1, R * Hd);
    TAKE(s->dlogits, R * K);
    TAKE(s->qr, C * D);
    TAKE(s->kr, W * D);
    TAKE(s->dqr, C * D);
    TAKE(s->dkr, W * D);
    TAKE(s->dp, C * W);
#undef TAKE
    if (p != s->bwd_mem + bwd_total) abort();
    s->item_off = calloc((size_t)max_items + 1, sizeof(int64_t));
    s->unit_off = calloc((size_t)R + 1, sizeof(int64_t));
    s->unit_key0 = calloc((size_t)R, sizeof(int64_t));
    s->att_off = calloc((size_t)R + 1, sizeof(int64_t));
    s->ctc_work_n = acmt_ctc_workspace(s->max_item_tokens, (int)K, max_labels);
    s->ctc_work = malloc(sizeof(double) * s->ctc_work_n);
    if (!s->item_off || !s->unit_off || !s->unit_key0 || !s->att_off || !s->ctc_work) goto oom;
    /* rotary tables exactly as the engine makes them (speech.c): angle p * base^(-2j/hd) in double */
    for (int64_t q = 0; q < W; q++)
        for (int64_t j = 0; j < half; j++) {
            double ang = (double)q * pow((double)c->rope_base, -2.0 * (double)j / (double)s->hd);
            s->rope_cos[q * half + j] = (float)cos(ang);
            s->rope_sin[q * half + j] = (float)sin(ang);
        }
    char *meta = acmt_speech_meta_json(c, NULL);
    if (!meta) goto oom;
    s->model = acm__model_build(meta, lookup, s, err, errlen);
    free(meta);
    if (!s->model) {
        acmt_speech_free(s);
        return NULL;
    }
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    acmt_speech_free(s);
    return NULL;
}

void acmt_speech_free(acmt_speech *s) {
    if (!s) return;
    if (s->model) acm_model_free(s->model);
    free(s->tab);
    free(s->params);
    free(s->grads);
    free(s->m);
    free(s->v);
    free(s->act_mem);
    free(s->blk);
    free(s->bwd_mem);
    free(s->item_off);
    free(s->unit_off);
    free(s->unit_key0);
    free(s->att_off);
    free(s->ctc_work);
    free(s);
}

static float trunc_normal(acmt_rng *r, float std) {
    for (;;) {
        float x = acmt_rng_normal(r);
        if (x >= -2.0f && x <= 2.0f) return x * std;
    }
}

void acmt_speech_init(acmt_speech *s, acmt_rng *rng) {
    memset(s->params, 0, sizeof(float) * (size_t)s->nparams);
    for (int i = 0; i < s->ntab; i++) {
        const acmt_param *t = &s->tab[i];
        float *w = s->params + t->offset;
        const size_t n = strlen(t->name);
        if ((n >= 5 && !strcmp(t->name + n - 5, ".bias")) || !strcmp(t->name, "frontend.mel_mean")) continue;
        if (strstr(t->name, "norm") || !strcmp(t->name, "frontend.mel_std")) {
            for (int64_t j = 0; j < t->numel; j++) w[j] = 1.0f;
        } else {
            const float sd = !strcmp(t->name, "frontend.proj.weight") ? 1.0f / sqrtf((float)s->SM) : 0.02f;
            for (int64_t j = 0; j < t->numel; j++) w[j] = trunc_normal(rng, sd);
        }
    }
}

void acmt_speech_set_mel_stats(acmt_speech *s, const float *mean, const float *std) {
    memcpy(P_(s, s->params, "frontend.mel_mean"), mean, sizeof(float) * (size_t)s->cfg.n_mels);
    memcpy(P_(s, s->params, "frontend.mel_std"), std, sizeof(float) * (size_t)s->cfg.n_mels);
}

/* ---- rotary positions ------------------------------------------------------------------------------------------- */

/* The transpose of acm__rope_forward (a rotation by minus the angle): the gradient through a rotation. */
static void rope_backward(float *dx, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t,
                          const float *sin_t) {
    const int half = hd / 2;
    for (int64_t i = 0; i < n; i++) {
        const float *c = cos_t + (pos0 + i) * half, *sn = sin_t + (pos0 + i) * half;
        float *row = dx + i * ld;
        for (int h = 0; h < H; h++) {
            float *a = row + h * hd, *b = a + half;
            for (int j = 0; j < half; j++) {
                const float g0 = a[j], g1 = b[j];
                a[j] = g0 * c[j] + g1 * sn[j];
                b[j] = g1 * c[j] - g0 * sn[j];
            }
        }
    }
}

/* ---- forward ---------------------------------------------------------------------------------------------------- */

/* Chunk u's rotated queries into s->qr [Tq, D] and keys into s->kr [nk, D], from qkv [R, 3D]. */
static void chunk_rotate(acmt_speech *s, const float *qkv, int u, int64_t *r0p, int64_t *Tqp, int64_t *k0p,
                         int64_t *nkp) {
    const int D = s->cfg.dim, H = s->cfg.heads;
    const int64_t r0 = s->unit_off[u], Tq = s->unit_off[u + 1] - r0, k0 = s->unit_key0[u], nk = r0 + Tq - k0;
    acm__copy_rows(s->kr, D, qkv + k0 * 3 * D + D, 3 * D, nk, D);
    acm__copy_rows(s->qr, D, qkv + r0 * 3 * D, 3 * D, Tq, D);
    acm__rope_forward(s->kr, D, nk, 0, H, s->hd, s->rope_cos, s->rope_sin);
    acm__rope_forward(s->qr, D, Tq, (int)(nk - Tq), H, s->hd, s->rope_cos, s->rope_sin);
    *r0p = r0;
    *Tqp = Tq;
    *k0p = k0;
    *nkp = nk;
}

static void chunk_forward(acmt_speech *s, acmt_speech_block_acts *a, int u) {
    const int D = s->cfg.dim, H = s->cfg.heads, hd = s->hd;
    int64_t r0, Tq, k0, nk;
    chunk_rotate(s, a->qkv, u, &r0, &Tq, &k0, &nk);
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        float *P = a->att + s->att_off[u] + (int64_t)h * Tq * nk; /* [Tq, nk] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)nk, hd, scale, s->qr + h * hd, D,
                    s->kr + h * hd, D, 0.0f, P, (int)nk);
        for (int64_t t = 0; t < Tq; t++) acm__softmax_row(P + t * nk, P + t * nk, (int)nk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, hd, (int)nk, 1.0f, P, (int)nk,
                    a->qkv + k0 * 3 * D + 2 * D + h * hd, 3 * D, 0.0f, a->att_y + r0 * D + h * hd, D);
    }
}

int acmt_speech_forward(acmt_speech *s, const float *const *frames, const int64_t *tokens, int B, char *err,
                        size_t errlen) {
    const acmt_speech_config *c = &s->cfg;
    const int D = c->dim, Hd = c->mlp_hidden, K = s->K, SM = s->SM, C = c->chunk, L = c->left_context, H = c->heads;
    if (B < 1 || B > s->max_items) {
        snprintf(err, errlen, "batch of %d items outside 1..%d", B, s->max_items);
        return ACM_EINVAL;
    }
    int64_t R = 0;
    for (int b = 0; b < B; b++) {
        if (tokens[b] < 0 || tokens[b] > s->max_rows - R || tokens[b] > s->max_item_tokens) {
            snprintf(err, errlen, "item %d: %lld tokens: over %lld per item or %lld per batch", b,
                     (long long)tokens[b], (long long)s->max_item_tokens, (long long)s->max_rows);
            return ACM_EINVAL;
        }
        s->item_off[b] = R;
        R += tokens[b];
    }
    s->item_off[B] = R;
    s->B = B;
    s->R = R;
    int U = 0;
    int64_t att = 0;
    for (int b = 0; b < B; b++) {
        const int64_t i0 = s->item_off[b], T = tokens[b];
        for (int64_t t = 0; t < T; t += C, U++) {
            const int64_t Tq = T - t < C ? T - t : C, k0 = t > L ? t - L : 0;
            s->unit_off[U] = i0 + t;
            s->unit_key0[U] = i0 + k0;
            s->att_off[U] = att;
            att += (int64_t)H * Tq * (t + Tq - k0);
        }
        if (T) {
            memcpy(s->xin + i0 * SM, frames[b], sizeof(float) * (size_t)(T * SM));
            acm__normalise_cols(s->xin + i0 * SM, T * c->stack, c->n_mels, P_(s, s->params, "frontend.mel_mean"),
                                P_(s, s->params, "frontend.mel_std"));
        }
    }
    s->unit_off[U] = R;
    s->att_off[U] = att;
    s->U = U;
    if (!R) return 0;
    float *W = s->params;
    acm__matmul_forward(s->x0, D, s->xin, SM, P_(s, W, "frontend.proj.weight"), SM, P_(s, W, "frontend.proj.bias"), R,
                        SM, D, 0);
    const float *x = s->x0;
    for (int l = 0; l < c->depth; l++) {
        acmt_speech_block_acts *a = &s->blk[l];
        acm__layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, Pb(s, W, l, "norm1.weight"),
                               Pb(s, W, l, "norm1.bias"), R, D, c->ln_eps);
        acm__matmul_forward(a->qkv, 3 * D, a->ln1, D, Pb(s, W, l, "attn.qkv.weight"), D, Pb(s, W, l, "attn.qkv.bias"),
                            R, D, 3 * D, 0);
        for (int u = 0; u < U; u++) chunk_forward(s, a, u);
        memcpy(a->x1, x, sizeof(float) * (size_t)(R * D));
        acm__matmul_forward(a->x1, D, a->att_y, D, Pb(s, W, l, "attn.proj.weight"), D, Pb(s, W, l, "attn.proj.bias"),
                            R, D, D, 1);
        acm__layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->x1, Pb(s, W, l, "norm2.weight"),
                               Pb(s, W, l, "norm2.bias"), R, D, c->ln_eps);
        if (s->mlp_fwd) {
            memcpy(a->x2, a->x1, sizeof(float) * (size_t)(R * D));
            s->mlp_fwd(s->mlp_ctx, l, a->x2, a->ln2, R);
            x = a->x2;
            continue;
        }
        acm__matmul_forward(a->fc1, Hd, a->ln2, D, Pb(s, W, l, "mlp.fc1.weight"), D, Pb(s, W, l, "mlp.fc1.bias"), R, D,
                            Hd, 0);
        acm__gelu_forward(a->gelu, a->fc1, R * Hd);
        memcpy(a->x2, a->x1, sizeof(float) * (size_t)(R * D));
        acm__matmul_forward(a->x2, D, a->gelu, Hd, Pb(s, W, l, "mlp.fc2.weight"), Hd, Pb(s, W, l, "mlp.fc2.bias"), R,
                            Hd, D, 1);
        x = a->x2;
    }
    acm__layernorm_forward(s->lnf, s->lnf_mean, s->lnf_rstd, x, P_(s, W, "norm.weight"), P_(s, W, "norm.bias"), R, D,
                           c->ln_eps);
    acm__matmul_forward(s->logits, K, s->lnf, D, P_(s, W, "head.weight"), D, P_(s, W, "head.bias"), R, D, K, 0);
    return 0;
}

/* ---- backward --------------------------------------------------------------------------------------------------- */

/* Chunk u's attention backward: s->dattn rows (dO) into s->dqkv (q, k and v parts of the rows they came from). */
static void chunk_backward(acmt_speech *s, const acmt_speech_block_acts *a, int u) {
    const int D = s->cfg.dim, H = s->cfg.heads, hd = s->hd;
    int64_t r0, Tq, k0, nk;
    chunk_rotate(s, a->qkv, u, &r0, &Tq, &k0, &nk);
    const float scale = 1.0f / sqrtf((float)hd);
    memset(s->dqr, 0, sizeof(float) * (size_t)(Tq * D));
    memset(s->dkr, 0, sizeof(float) * (size_t)(nk * D));
    for (int h = 0; h < H; h++) {
        const float *P = a->att + s->att_off[u] + (int64_t)h * Tq * nk, *dO = s->dattn + r0 * D + h * hd;
        const float *v = a->qkv + k0 * 3 * D + 2 * D + h * hd;
        float *dP = s->dp;
        /* dP = dO·Vᵀ; dV += Pᵀ·dO; dS = P ⊙ (dP − rowsum(dP ⊙ P)); dq' += scale·dS·k'; dk' += scale·dSᵀ·q' */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Tq, (int)nk, hd, 1.0f, dO, D, v, 3 * D, 0.0f, dP,
                    (int)nk);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, hd, (int)Tq, 1.0f, P, (int)nk, dO, D, 1.0f,
                    s->dqkv + k0 * 3 * D + 2 * D + h * hd, 3 * D);
        for (int64_t t = 0; t < Tq; t++) {
            const float *pr = P + t * nk;
            float *dr = dP + t * nk;
            double dot = 0;
            for (int64_t j = 0; j < nk; j++) dot += (double)dr[j] * pr[j];
            for (int64_t j = 0; j < nk; j++) dr[j] = pr[j] * (dr[j] - (float)dot);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Tq, hd, (int)nk, scale, dP, (int)nk,
                    s->kr + h * hd, D, 1.0f, s->dqr + h * hd, D);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)nk, hd, (int)Tq, scale, dP, (int)nk, s->qr + h * hd,
                    D, 1.0f, s->dkr + h * hd, D);
    }
    rope_backward(s->dqr, D, Tq, (int)(nk - Tq), H, hd, s->rope_cos, s->rope_sin);
    rope_backward(s->dkr, D, nk, 0, H, hd, s->rope_cos, s->rope_sin);
    for (int64_t i = 0; i < Tq; i++) acm__accumulate(s->dqkv + (r0 + i) * 3 * D, s->dqr + i * D, D);
    for (int64_t i = 0; i < nk; i++) acm__accumulate(s->dqkv + (k0 + i) * 3 * D + D, s->dkr + i * D, D);
}

double acmt_speech_backward(acmt_speech *s, const int32_t *const *labels, const int *nlabels, int *skipped) {
    const acmt_speech_config *c = &s->cfg;
    const int D = c->dim, Hd = c->mlp_hidden, K = s->K, SM = s->SM;
    const int64_t R = s->R;
    float *G = s->grads, *W = s->params;
    memset(G, 0, sizeof(float) * (size_t)s->nparams);
    int n_ok = 0, n_skip = 0;
    for (int b = 0; b < s->B; b++) {
        if (nlabels[b] > s->max_labels) return NAN; /* the caller sized the workspace for fewer */
        if (s->item_off[b + 1] - s->item_off[b] >= acmt_ctc_min_frames(labels[b], nlabels[b]))
            n_ok++;
        else
            n_skip++;
    }
    if (skipped) *skipped = n_skip;
    if (!n_ok || !R) return 0;
    memset(s->dlogits, 0, sizeof(float) * (size_t)(R * K));
    double loss = 0;
    for (int b = 0; b < s->B; b++) {
        const int64_t i0 = s->item_off[b], T = s->item_off[b + 1] - i0;
        const int nl = nlabels[b];
        const double per = (double)n_ok * (nl > 0 ? nl : 1);
        double lb;
        int rc = acmt_ctc_loss(&lb, s->dlogits + i0 * K, K, s->logits + i0 * K, K, T, K, labels[b], nl,
                               (float)(1.0 / per), s->ctc_work);
        if (rc == ACMT_CTC_SKIP) continue;
        if (rc != ACMT_CTC_OK) return NAN;
        loss += lb / per;
    }
    /* head and final norm, on every row */
    memset(s->dln, 0, sizeof(float) * (size_t)(R * D));
    acm__matmul_backward(s->dln, D, P_(s, G, "head.weight"), P_(s, G, "head.bias"), s->dlogits, K, s->lnf, D,
                         P_(s, W, "head.weight"), D, R, D, K);
    memset(s->dres, 0, sizeof(float) * (size_t)(R * D));
    acm__layernorm_backward(s->dres, P_(s, G, "norm.weight"), P_(s, G, "norm.bias"), s->dln,
                            s->blk[c->depth - 1].x2, P_(s, W, "norm.weight"), s->lnf_mean, s->lnf_rstd, R, D);
    for (int l = c->depth - 1; l >= 0; l--) {
        const acmt_speech_block_acts *a = &s->blk[l];
        const float *xin = l ? s->blk[l - 1].x2 : s->x0;
        /* MLP branch; dres holds dx2 */
        if (s->mlp_bwd) {
            memset(s->dln, 0, sizeof(float) * (size_t)(R * D));
            s->mlp_bwd(s->mlp_ctx, l, s->dln, s->dres, R);
            goto norm2;
        }
        memset(s->dhid, 0, sizeof(float) * (size_t)(R * Hd));
        acm__matmul_backward(s->dhid, Hd, Pb(s, G, l, "mlp.fc2.weight"), Pb(s, G, l, "mlp.fc2.bias"), s->dres, D,
                             a->gelu, Hd, Pb(s, W, l, "mlp.fc2.weight"), Hd, R, Hd, D);
        memset(s->dfc1, 0, sizeof(float) * (size_t)(R * Hd));
        acm__gelu_backward_out(s->dfc1, a->fc1, a->gelu, s->dhid, R * Hd);
        memset(s->dln, 0, sizeof(float) * (size_t)(R * D));
        acm__matmul_backward(s->dln, D, Pb(s, G, l, "mlp.fc1.weight"), Pb(s, G, l, "mlp.fc1.bias"), s->dfc1, Hd,
                             a->ln2, D, Pb(s, W, l, "mlp.fc1.weight"), D, R, D, Hd);
    norm2:
        acm__layernorm_backward(s->dres, Pb(s, G, l, "norm2.weight"), Pb(s, G, l, "norm2.bias"), s->dln, a->x1,
                                Pb(s, W, l, "norm2.weight"), a->ln2_mean, a->ln2_rstd, R, D);
        /* attention branch; dres holds dx1 */
        memset(s->dattn, 0, sizeof(float) * (size_t)(R * D));
        acm__matmul_backward(s->dattn, D, Pb(s, G, l, "attn.proj.weight"), Pb(s, G, l, "attn.proj.bias"), s->dres, D,
                             a->att_y, D, Pb(s, W, l, "attn.proj.weight"), D, R, D, D);
        memset(s->dqkv, 0, sizeof(float) * (size_t)(R * 3 * D));
        for (int u = 0; u < s->U; u++) chunk_backward(s, a, u);
        memset(s->dln, 0, sizeof(float) * (size_t)(R * D));
        acm__matmul_backward(s->dln, D, Pb(s, G, l, "attn.qkv.weight"), Pb(s, G, l, "attn.qkv.bias"), s->dqkv, 3 * D,
                             a->ln1, D, Pb(s, W, l, "attn.qkv.weight"), D, R, D, 3 * D);
        acm__layernorm_backward(s->dres, Pb(s, G, l, "norm1.weight"), Pb(s, G, l, "norm1.bias"), s->dln, xin,
                                Pb(s, W, l, "norm1.weight"), a->ln1_mean, a->ln1_rstd, R, D);
    }
    /* frontend projection (dres = dx0); the frames themselves need no gradient */
    acm__matmul_backward(NULL, 0, P_(s, G, "frontend.proj.weight"), P_(s, G, "frontend.proj.bias"), s->dres, D, s->xin,
                         SM, P_(s, W, "frontend.proj.weight"), SM, R, SM, D);
    return loss;
}

/* ---- text, files, FLOPs ----------------------------------------------------------------------------------------- */

int acmt_speech_encode_text(const acmt_speech_config *c, const char *text, int32_t *out, int *bad) {
    int n = 0;
    for (const char *p = text; *p; p++) {
        const char *hit = strchr(c->alphabet, *p);
        if (!hit) {
            if (bad) *bad = (int)(p - text);
            return -1;
        }
        out[n++] = (int32_t)(hit - c->alphabet) + 1;
    }
    return n;
}

int acmt_speech_save_model(const acmt_speech *s, const char *path, const char *extra_json, char *err, size_t errlen) {
    acm_st_out *out = calloc((size_t)s->ntab, sizeof *out);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return ACM_ENOMEM;
    }
    for (int i = 0; i < s->ntab; i++) {
        out[i].name = s->tab[i].name;
        out[i].dtype = ACM_ST_F32;
        out[i].ndim = s->tab[i].ndim;
        for (int d = 0; d < s->tab[i].ndim; d++) out[i].shape[d] = s->tab[i].shape[d];
        out[i].data = s->params + s->tab[i].offset;
    }
    char *meta = acmt_speech_meta_json(&s->cfg, extra_json);
    json_t *md = json_object();
    json_object_set_new(md, "acm", json_string(meta ? meta : "{}"));
    free(meta);
    int rc = acm__st_write(path, out, s->ntab, md, err, errlen);
    json_decref(md);
    free(out);
    return rc;
}

double acmt_speech_token_flops(const acmt_speech_config *c) {
    const double D = c->dim, Hd = c->mlp_hidden, SM = (double)c->stack * c->n_mels;
    const double K = 1.0 + (double)strlen(c->alphabet);
    return 2.0 * (SM * D + c->depth * (3 * D * D + D * D + 2 * D * Hd) + D * K);
}
