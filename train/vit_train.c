/*
 * vit_train.c — trainable static ViT (see vit_train.h). The forward is engine/vit.c's; the backward below mirrors it
 * block by block, in reverse:
 *
 *   x0 = [cls; patches·Wpᵀ + bp] + pos
 *   per block:  ln1 = LN1(x);  qkv = ln1·Wqkvᵀ + b;  y = attention(qkv);  x1 = x + y·Woᵀ + bo
 *               ln2 = LN2(x1); h = GELU(ln2·W1ᵀ + b1);                     x2 = x1 + h·W2ᵀ + b2
 *   lnf = LN(x2[class tokens]);  logits = lnf·Whᵀ + bh;  loss = CE_smoothed(logits, targets), mean over B
 *
 * The gradient of the residual stream lives in one buffer, dres, updated in place: it holds dx2, gains the MLP
 * branch's LN2 gradient to become dx1, then the attention branch's LN1 gradient to become the block input's gradient.
 */
#include "train/vit_train.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "safetensors.h"
#include "train/block_backward.h"
#include "train/data.h"


/* The side of the patch convolution's input: the image, or the stem's output (3x3, padding 1: S -> (S-1)/s + 1). */
static int stem_side(const acmt_vit_config *c) {
    int S = c->image_size;
    for (int i = 0; i < c->stem_depth; i++) S = (S - 1) / c->stem_stride[i] + 1;
    return S;
}

/* The table of tensors, in timm's order (the stem first). Returns the count (tab may be NULL to count). */
static int build_table(const acmt_vit_config *c, acmt_param *tab, int64_t *total) {
    int n = 0;
    int64_t off = 0;
    const int D = c->dim, Hd = c->mlp_hidden, P = c->patch_size, S = stem_side(c), T = (S / P) * (S / P) + 1;
    char nm[64];
#define ADD(name, decay, nd, a, b, cc, d) acmt_param_add(tab, &n, &off, name, decay, nd, a, b, cc, d)
    for (int i = 0; i < c->stem_depth; i++) {
        snprintf(nm, sizeof nm, "stem.%d.weight", i);
        ADD(nm, 1, 4, c->stem_chans[i], i ? c->stem_chans[i - 1] : c->in_chans, 3, 3);
        snprintf(nm, sizeof nm, "stem.%d.bias", i);
        ADD(nm, 0, 1, c->stem_chans[i], 0, 0, 0);
    }
    ADD("patch_embed.proj.weight", 1, 4, D, c->stem_depth ? c->stem_chans[c->stem_depth - 1] : c->in_chans, P, P);
    ADD("patch_embed.proj.bias", 0, 1, D, 0, 0, 0);
    ADD("cls_token", 0, 3, 1, 1, D, 0);
    ADD("pos_embed", 0, 3, 1, T, D, 0);
    for (int l = 0; l < c->depth; l++) {
#define BLK(suffix, decay, nd, a, b)                           \
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);        \
    ADD(nm, decay, nd, a, b, 0, 0)
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
    ADD("norm.weight", 0, 1, D, 0, 0, 0);
    ADD("norm.bias", 0, 1, D, 0, 0, 0);
    ADD("head.weight", 1, 2, c->num_classes, D, 0, 0);
    ADD("head.bias", 0, 1, c->num_classes, 0, 0, 0);
#undef ADD
    *total = off;
    return n;
}

static const acmt_param *find(const acmt_vit *v, const char *name) { return acmt_param_find(v->tab, v->ntab, name); }

static float *P_(const acmt_vit *v, float *base, const char *name) {
    return acmt_param_data(v->tab, v->ntab, base, name);
}

float *acmt_vit_param(const acmt_vit *v, float *base, const char *name) {
    const acmt_param *p = find(v, name);
    return p ? base + p->offset : NULL;
}

static float *Pb(const acmt_vit *v, float *base, int l, const char *suffix) {
    char nm[64];
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);
    return P_(v, base, nm);
}

static const float *lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    const acmt_vit *v = ctx;
    return acmt_param_lookup(v->tab, v->ntab, v->params, name, ndim, shape);
}

char *acmt_vit_meta_json(const acmt_vit_config *c, const char *extra_json) {
    json_t *o = json_object();
    json_object_set_new(o, "format_version", json_integer(ACM_FORMAT_VERSION));
    json_object_set_new(o, "arch", json_string("vit"));
    json_object_set_new(o, "image_size", json_integer(c->image_size));
    json_object_set_new(o, "patch_size", json_integer(c->patch_size));
    json_object_set_new(o, "in_chans", json_integer(c->in_chans));
    json_object_set_new(o, "dim", json_integer(c->dim));
    json_object_set_new(o, "depth", json_integer(c->depth));
    json_object_set_new(o, "heads", json_integer(c->heads));
    json_object_set_new(o, "mlp_hidden", json_integer(c->mlp_hidden));
    json_object_set_new(o, "num_classes", json_integer(c->num_classes));
    json_object_set_new(o, "ln_eps", json_real(c->ln_eps));
    if (c->stem_depth) {
        json_t *st = json_object(), *ch = json_array(), *sd = json_array();
        for (int i = 0; i < c->stem_depth; i++) {
            json_array_append_new(ch, json_integer(c->stem_chans[i]));
            json_array_append_new(sd, json_integer(c->stem_stride[i]));
        }
        json_object_set_new(st, "channels", ch);
        json_object_set_new(st, "strides", sd);
        json_object_set_new(o, "stem", st);
    }
    json_t *pre = json_object(), *mean = json_array(), *std = json_array();
    for (int i = 0; i < c->in_chans; i++) {
        json_array_append_new(mean, json_real(0.2860));
        json_array_append_new(std, json_real(0.3530));
    }
    json_object_set_new(pre, "mean", mean);
    json_object_set_new(pre, "std", std);
    json_object_set_new(o, "preprocess", pre);
    if (c->num_classes == 10) {
        json_t *lab = json_array();
        for (int i = 0; i < 10; i++) json_array_append_new(lab, json_string(acmt_fmnist_labels[i]));
        json_object_set_new(o, "labels", lab);
    }
    if (extra_json) {
        json_t *x = json_loads(extra_json, 0, NULL);
        if (json_is_object(x)) json_object_update(o, x);
        json_decref(x);
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(o);
    return s;
}

acmt_vit *acmt_vit_new(const acmt_vit_config *cfg, int max_batch, char *err, size_t errlen) {
    const acmt_vit_config *c = cfg;
    int stem_ok = c->stem_depth >= 0 && c->stem_depth <= ACM_MAX_STEM;
    for (int i = 0; stem_ok && i < c->stem_depth; i++)
        stem_ok = c->stem_chans[i] >= 1 && c->stem_stride[i] >= 1 && c->stem_stride[i] <= 4;
    if (!stem_ok || c->patch_size <= 0 || stem_side(c) % c->patch_size || c->heads <= 0 || c->dim % c->heads ||
        max_batch < 1 || c->depth < 1 || c->num_classes < 2 || c->mlp_hidden < 1 || c->in_chans < 1) {
        snprintf(err, errlen, "invalid ViT configuration (image %d, patch %d, dim %d, heads %d, depth %d)",
                 c->image_size, c->patch_size, c->dim, c->heads, c->depth);
        return NULL;
    }
    acmt_vit *v = calloc(1, sizeof *v);
    if (!v) goto oom;
    v->cfg = *c;
    v->max_batch = max_batch;
    const int Sf = stem_side(c), Cf = c->stem_depth ? c->stem_chans[c->stem_depth - 1] : c->in_chans;
    v->Np = (Sf / c->patch_size) * (Sf / c->patch_size);
    v->T = v->Np + 1;
    v->PP = Cf * c->patch_size * c->patch_size;
    v->ntab = build_table(c, NULL, &v->nparams);
    v->tab = calloc((size_t)v->ntab, sizeof *v->tab);
    if (!v->tab) goto oom;
    build_table(c, v->tab, &v->nparams);
    size_t np = (size_t)v->nparams;
    v->params = calloc(np, sizeof(float));
    v->grads = calloc(np, sizeof(float));
    v->m = calloc(np, sizeof(float));
    v->v = calloc(np, sizeof(float));
    if (!v->params || !v->grads || !v->m || !v->v) goto oom;

    /* activations: size table, then one allocation */
    const int64_t B = max_batch, T = v->T, D = c->dim, Hd = c->mlp_hidden, BT = B * T, H = c->heads;
    const int64_t per_block = BT * D /*ln1*/ + 2 * BT /*stats*/ + BT * 3 * D + B * H * T * T + BT * D /*attn_y*/ +
                              BT * D /*x1*/ + BT * D + 2 * BT + 2 * BT * Hd + BT * D /*x2*/;
    const int64_t act_total = B * v->Np * v->PP + BT * D + c->depth * per_block + B * D + 2 * B + B * c->num_classes;
    v->act_mem = malloc(sizeof(float) * (size_t)act_total);
    v->blk = calloc((size_t)c->depth, sizeof *v->blk);
    if (!v->act_mem || !v->blk) goto oom;
    float *p = v->act_mem;
#define TAKE(ptr, n) (ptr = p, p += (n))
    TAKE(v->acts.patches, B * v->Np * v->PP);
    TAKE(v->acts.x0, BT * D);
    for (int l = 0; l < c->depth; l++) {
        acm__block_acts *a = &v->blk[l];
        TAKE(a->ln1, BT * D);
        TAKE(a->ln1_mean, BT);
        TAKE(a->ln1_rstd, BT);
        TAKE(a->qkv, BT * 3 * D);
        TAKE(a->att, B * H * T * T);
        TAKE(a->attn_y, BT * D);
        TAKE(a->x1, BT * D);
        TAKE(a->ln2, BT * D);
        TAKE(a->ln2_mean, BT);
        TAKE(a->ln2_rstd, BT);
        TAKE(a->fc1, BT * Hd);
        TAKE(a->gelu, BT * Hd);
        TAKE(a->x2, BT * D);
    }
    v->acts.blk = v->blk;
    TAKE(v->acts.lnf, B * D);
    TAKE(v->acts.lnf_mean, B);
    TAKE(v->acts.lnf_rstd, B);
    TAKE(v->acts.logits, B * c->num_classes);
    if (p != v->act_mem + act_total) abort(); /* the size table and the pointers disagree: a bug here */

    const int64_t K = c->num_classes;
    const int64_t bwd_total = BT * D * 3 + BT * 3 * D + 2 * BT * Hd + B * v->Np * D + B * D + 2 * B * K + T * T;
    v->bwd_mem = malloc(sizeof(float) * (size_t)bwd_total);
    if (!v->bwd_mem) goto oom;
    p = v->bwd_mem;
    TAKE(v->dres, BT * D);
    TAKE(v->dln, BT * D);
    TAKE(v->dattn, BT * D);
    TAKE(v->dqkv, BT * 3 * D);
    TAKE(v->dhid, BT * Hd);
    TAKE(v->dfc1, BT * Hd);
    TAKE(v->dpatch, B * v->Np * D);
    TAKE(v->dlnf, B * D);
    TAKE(v->dlogits, B * K);
    TAKE(v->probs, B * K);
    TAKE(v->att_scratch, T * T);
    if (p != v->bwd_mem + bwd_total) abort();
    if (c->stem_depth) { /* per layer: rows, pre-activation, GELU; then the gradient scratch */
        int64_t per[ACM_MAX_STEM][3], total = B * v->Np * v->PP, dmax = 0, cmax = 0;
        for (int i = 0, side = c->image_size, ci = c->in_chans; i < c->stem_depth; ci = c->stem_chans[i++]) {
            side = v->stem_side[i] = (side - 1) / c->stem_stride[i] + 1;
            per[i][0] = B * side * side * ci * 9;
            per[i][1] = per[i][2] = B * side * side * c->stem_chans[i];
            total += per[i][0] + 2 * per[i][1];
            if (per[i][1] > dmax) dmax = per[i][1];
            if (per[i][0] > cmax) cmax = per[i][0];
        }
        total += 2 * dmax + cmax;
        v->stem_mem = malloc(sizeof(float) * (size_t)total);
        if (!v->stem_mem) goto oom;
        p = v->stem_mem;
        for (int i = 0; i < c->stem_depth; i++) {
            TAKE(v->acts.stem_col[i], per[i][0]);
            TAKE(v->acts.stem_pre[i], per[i][1]);
            TAKE(v->acts.stem_act[i], per[i][2]);
        }
        TAKE(v->drows, B * v->Np * v->PP);
        TAKE(v->dmap, dmax);
        TAKE(v->dmap2, dmax);
        TAKE(v->dcol, cmax);
        if (p != v->stem_mem + total) abort();
    }
#undef TAKE
    v->items = calloc((size_t)B, sizeof *v->items);
    v->res = calloc((size_t)B, sizeof *v->res);
    /* the forward's per-item values (engine/vit.h) */
    v->acts.lambda = calloc((size_t)B, sizeof(float));
    v->acts.gbeta = calloc((size_t)B, sizeof(float));
    v->acts.flops_acm = calloc((size_t)B, sizeof(double));
    v->acts.flops_learn = calloc((size_t)B, sizeof(double));
    if (!v->items || !v->res || !v->acts.lambda || !v->acts.gbeta || !v->acts.flops_acm || !v->acts.flops_learn)
        goto oom;

    char *meta = acmt_vit_meta_json(c, NULL);
    if (!meta) goto oom;
    v->model = acm__model_build(meta, lookup, v, err, errlen);
    free(meta);
    if (!v->model) {
        acmt_vit_free(v);
        return NULL;
    }
    return v;
oom:
    snprintf(err, errlen, "out of memory");
    acmt_vit_free(v);
    return NULL;
}

void acmt_vit_free(acmt_vit *v) {
    if (!v) return;
    if (v->model) acm_model_free(v->model);
    free(v->tab);
    free(v->params);
    free(v->grads);
    free(v->m);
    free(v->v);
    free(v->act_mem);
    free(v->blk);
    free(v->bwd_mem);
    free(v->stem_mem);
    free(v->items);
    free(v->res);
    free(v->acts.lambda);
    free(v->acts.gbeta);
    free(v->acts.flops_acm);
    free(v->acts.flops_learn);
    free(v);
}

void acmt_vit_init(acmt_vit *v, acmt_rng *rng) {
    memset(v->params, 0, sizeof(float) * (size_t)v->nparams);
    for (int i = 0; i < v->ntab; i++) {
        const acmt_param *t = &v->tab[i];
        float *w = v->params + t->offset;
        const char *nm = t->name;
        size_t L = strlen(nm);
        int is_bias = L >= 5 && !strcmp(nm + L - 5, ".bias");
        int is_norm = strstr(nm, "norm") != NULL;
        if (is_bias) continue; /* zero */
        if (is_norm) {
            for (int64_t j = 0; j < t->numel; j++) w[j] = 1.0f;
        } else if (!strcmp(nm, "patch_embed.proj.weight")) {
            float s = 1.0f / sqrtf((float)v->PP);
            for (int64_t j = 0; j < t->numel; j++) w[j] = acmt_trunc_normal(rng, s);
        } else if (!strncmp(nm, "stem.", 5)) { /* He normal, σ = √(2 / fan_in): each layer is followed by GELU */
            float s = sqrtf(2.0f / (float)(t->shape[1] * 9));
            for (int64_t j = 0; j < t->numel; j++) w[j] = acmt_trunc_normal(rng, s);
        } else if (!strcmp(nm, "cls_token")) {
            for (int64_t j = 0; j < t->numel; j++) w[j] = 1e-6f * acmt_rng_normal(rng);
        } else {
            for (int64_t j = 0; j < t->numel; j++) w[j] = acmt_trunc_normal(rng, 0.02f);
        }
    }
}

int acmt_vit_forward(acmt_vit *v, const float *x, int B, char *err, size_t errlen) {
    if (B < 1 || B > v->max_batch) {
        snprintf(err, errlen, "batch %d outside 1..%d", B, v->max_batch);
        return ACM_EINVAL;
    }
    const int64_t per = (int64_t)v->cfg.in_chans * v->cfg.image_size * v->cfg.image_size;
    for (int b = 0; b < B; b++) {
        v->items[b].pixels = x + b * per;
        v->items[b].policy = acm_policy_default();
        v->items[b].force_k = NULL;
        memset(&v->res[b], 0, sizeof v->res[b]);
    }
    return acm__vit_forward(v->model, &v->acts, &v->scratch, v->items, v->res, B, err, errlen);
}

int acmt_vit_correct(const acmt_vit *v, const int32_t *targets, int B) {
    const int K = v->cfg.num_classes;
    int correct = 0;
    for (int b = 0; b < B; b++) {
        const float *z = v->acts.logits + (int64_t)b * K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (z[k] > z[best]) best = k;
        correct += best == targets[b];
    }
    return correct;
}

static double backward(acmt_vit *v, const acm_model *model, acmt_acm_backward_hook hook, void *ctx,
                       const int32_t *targets, const int32_t *targets2, float lam, int B, float smoothing,
                       int *correct);

double acmt_vit_backward(acmt_vit *v, const int32_t *targets, int B, float smoothing, int *correct) {
    return backward(v, NULL, NULL, NULL, targets, NULL, 1.0f, B, smoothing, correct);
}

double acmt_vit_backward_mixed(acmt_vit *v, const int32_t *targets, const int32_t *targets2, float lam, int B,
                               float smoothing, int *correct) {
    return backward(v, NULL, NULL, NULL, targets, targets2, lam, B, smoothing, correct);
}

/* The stem's backward, from v->drows (the patch rows' gradient): per layer, in reverse, rows -> output map
 * (col2im, channel-last) -> GELU -> weight, bias and rows of the layer's input (the image's gradient is not wanted). */
static void stem_backward(acmt_vit *v, int B) {
    const acmt_vit_config *c = &v->cfg;
    const int L = c->stem_depth, P = c->patch_size;
    float *G = v->grads;
    int side = v->stem_side[L - 1], co = c->stem_chans[L - 1], g = side / P;
    int64_t hw = (int64_t)side * side;
    memset(v->dmap, 0, sizeof(float) * (size_t)(B * hw * co));
    for (int b = 0; b < B; b++)
        acm__col2im_conv(v->dmap + b * hw * co, v->drows + (int64_t)b * v->Np * v->PP, co, side, side, 1, co, P, P, 0,
                         g, g);
    char nw[32], nb[32];
    for (int i = L - 1; i >= 0; i--) {
        const int ci = i ? c->stem_chans[i - 1] : c->in_chans, K = ci * 9;
        side = v->stem_side[i];
        co = c->stem_chans[i];
        hw = (int64_t)side * side;
        const int64_t n = B * hw * co;
        memset(v->dmap2, 0, sizeof(float) * (size_t)n);
        acm__gelu_backward_out(v->dmap2, v->acts.stem_pre[i], v->acts.stem_act[i], v->dmap, n);
        snprintf(nw, sizeof nw, "stem.%d.weight", i);
        snprintf(nb, sizeof nb, "stem.%d.bias", i);
        if (i) memset(v->dcol, 0, sizeof(float) * (size_t)(B * hw * K));
        acm__matmul_backward(i ? v->dcol : NULL, K, P_(v, G, nw), P_(v, G, nb), v->dmap2, co, v->acts.stem_col[i], K,
                             P_(v, v->params, nw), K, B * hw, K, co);
        if (!i) break;
        const int si = v->stem_side[i - 1];
        const int64_t hwi = (int64_t)si * si;
        memset(v->dmap, 0, sizeof(float) * (size_t)(B * hwi * ci));
        for (int b = 0; b < B; b++)
            acm__col2im_conv(v->dmap + b * hwi * ci, v->dcol + b * hw * K, ci, si, si, 1, ci, 3, c->stem_stride[i], 1,
                             side, side);
    }
}

/* The ACM at (block l, position pos) of `model`, or NULL for a static module (NULL model: the static ViT). */
static const acm__module *acm_at(const acm_model *model, int l, int pos) {
    if (!model) return NULL;
    const acm__block *bl = &model->blocks[l];
    if (bl->fused_qkv && pos <= ACM_POS_V) return NULL;
    return bl->mod[pos].info.kind == ACM_MOD_ACM ? &bl->mod[pos] : NULL;
}

double acmt_vit_backward_ex(acmt_vit *v, const acm_model *model, acmt_acm_backward_hook hook, void *ctx,
                            const int32_t *targets, int B, float smoothing, int *correct) {
    return backward(v, model, hook, ctx, targets, NULL, 1.0f, B, smoothing, correct);
}

/* targets2 NULL: the loss is CE(targets); else lam CE(targets) + (1 - lam) CE(targets2) (mixed batches). */
static double backward(acmt_vit *v, const acm_model *model, acmt_acm_backward_hook hook, void *ctx,
                       const int32_t *targets, const int32_t *targets2, float lam, int B, float smoothing,
                       int *correct) {
    const acmt_vit_config *c = &v->cfg;
    const int D = c->dim, Hd = c->mlp_hidden, K = c->num_classes, T = v->T, Np = v->Np, PP = v->PP, H = c->heads;
    const int64_t BT = (int64_t)B * T;
    float *G = v->grads;
    memset(G, 0, sizeof(float) * (size_t)v->nparams);

    double loss = acm__crossentropy_forward(NULL, v->probs, v->acts.logits, targets, B, K, smoothing);
    memset(v->dlogits, 0, sizeof(float) * (size_t)B * K);
    if (!targets2) {
        if (correct) *correct = acmt_vit_correct(v, targets, B);
        acm__crossentropy_backward(v->dlogits, v->probs, targets, B, K, smoothing, 1.0f / (float)B);
    } else { /* the cross-entropy is linear in the target distribution: two weighted backward passes add up */
        double loss2 = acm__crossentropy_forward(NULL, v->probs, v->acts.logits, targets2, B, K, smoothing);
        loss = lam * loss + (1 - lam) * loss2;
        if (correct) *correct = acmt_vit_correct(v, lam >= 0.5f ? targets : targets2, B);
        acm__crossentropy_backward(v->dlogits, v->probs, targets, B, K, smoothing, lam / (float)B);
        acm__crossentropy_backward(v->dlogits, v->probs, targets2, B, K, smoothing, (1 - lam) / (float)B);
    }
    if (v->extra_dlogits) acm__accumulate(v->dlogits, v->extra_dlogits, (int64_t)B * K);

    /* head and final norm (class tokens only) */
    memset(v->dlnf, 0, sizeof(float) * (size_t)B * D);
    acm__matmul_backward(v->dlnf, D, P_(v, G, "head.weight"), P_(v, G, "head.bias"), v->dlogits, K, v->acts.lnf, D,
                         P_(v, v->params, "head.weight"), D, B, D, K);
    const float *xlast = v->blk[c->depth - 1].x2;
    memset(v->dres, 0, sizeof(float) * (size_t)BT * D);
    for (int b = 0; b < B; b++)
        acm__layernorm_backward(v->dres + (int64_t)b * T * D, P_(v, G, "norm.weight"), P_(v, G, "norm.bias"),
                                v->dlnf + (int64_t)b * D, xlast + (int64_t)b * T * D, P_(v, v->params, "norm.weight"),
                                v->acts.lnf_mean + b, v->acts.lnf_rstd + b, 1, D);

    for (int l = c->depth - 1; l >= 0; l--) {
        const acm__block_acts *a = &v->blk[l];
        const float *xin = l ? v->blk[l - 1].x2 : v->acts.x0;
        /* MLP branch: x2 = x1 + fc2(gelu(fc1(ln2))) ; dres holds dx2 */
        memset(v->dln, 0, sizeof(float) * (size_t)BT * D);
        const acm__module *am = acm_at(model, l, ACM_POS_MLP);
        if (am) {
            hook(ctx, v->dln, D, v->dres, D, am, B, T);
        } else {
            acmt_mlp_backward(v->dln, Pb(v, G, l, "mlp.fc1.weight"), Pb(v, G, l, "mlp.fc1.bias"),
                              Pb(v, G, l, "mlp.fc2.weight"), Pb(v, G, l, "mlp.fc2.bias"), v->dhid, v->dfc1, v->dres,
                              a->ln2, a->fc1, a->gelu, Pb(v, v->params, l, "mlp.fc1.weight"),
                              Pb(v, v->params, l, "mlp.fc2.weight"), BT, D, Hd);
        }
        acm__layernorm_backward(v->dres, Pb(v, G, l, "norm2.weight"), Pb(v, G, l, "norm2.bias"), v->dln, a->x1,
                                Pb(v, v->params, l, "norm2.weight"), a->ln2_mean, a->ln2_rstd, BT, D);
        /* dres = dx1. Attention branch: x1 = x + proj(attention(qkv(ln1))) */
        memset(v->dattn, 0, sizeof(float) * (size_t)BT * D);
        const acm__module *ao = acm_at(model, l, ACM_POS_O);
        if (ao)
            hook(ctx, v->dattn, D, v->dres, D, ao, B, T);
        else
            acm__matmul_backward(v->dattn, D, Pb(v, G, l, "attn.proj.weight"), Pb(v, G, l, "attn.proj.bias"), v->dres,
                                 D, a->attn_y, D, Pb(v, v->params, l, "attn.proj.weight"), D, BT, D, D);
        memset(v->dqkv, 0, sizeof(float) * (size_t)BT * 3 * D);
        acm__attention_backward(v->dqkv, v->dqkv + D, v->dqkv + 2 * D, v->att_scratch, v->dattn, a->att, a->qkv,
                                a->qkv + D, a->qkv + 2 * D, 3 * D, B, T, D, H);
        memset(v->dln, 0, sizeof(float) * (size_t)BT * D);
        /* q, k, v: each an ACM, or rows p*D .. p*D+D-1 of the fused static qkv (all three static: one product) */
        if (!acm_at(model, l, ACM_POS_Q) && !acm_at(model, l, ACM_POS_K) && !acm_at(model, l, ACM_POS_V)) {
            acm__matmul_backward(v->dln, D, Pb(v, G, l, "attn.qkv.weight"), Pb(v, G, l, "attn.qkv.bias"), v->dqkv,
                                 3 * D, a->ln1, D, Pb(v, v->params, l, "attn.qkv.weight"), D, BT, D, 3 * D);
        } else {
            for (int p = ACM_POS_Q; p <= ACM_POS_V; p++) {
                const acm__module *aq = acm_at(model, l, p);
                if (aq)
                    hook(ctx, v->dln, D, v->dqkv + p * D, 3 * D, aq, B, T);
                else
                    acm__matmul_backward(v->dln, D, Pb(v, G, l, "attn.qkv.weight") + (int64_t)p * D * D,
                                         Pb(v, G, l, "attn.qkv.bias") + p * D, v->dqkv + p * D, 3 * D, a->ln1, D,
                                         Pb(v, v->params, l, "attn.qkv.weight") + (int64_t)p * D * D, D, BT, D, D);
            }
        }
        acm__layernorm_backward(v->dres, Pb(v, G, l, "norm1.weight"), Pb(v, G, l, "norm1.bias"), v->dln, xin,
                                Pb(v, v->params, l, "norm1.weight"), a->ln1_mean, a->ln1_rstd, BT, D);
    }
    /* embeddings: dres = dx0 */
    float *dcls = P_(v, G, "cls_token"), *dpos = P_(v, G, "pos_embed");
    for (int b = 0; b < B; b++) {
        const float *g = v->dres + (int64_t)b * T * D;
        acm__accumulate(dpos, g, (int64_t)T * D);
        acm__accumulate(dcls, g, D);
        memcpy(v->dpatch + (int64_t)b * Np * D, g + D, sizeof(float) * (size_t)Np * D);
    }
    if (c->stem_depth) memset(v->drows, 0, sizeof(float) * (size_t)B * Np * PP);
    acm__matmul_backward(v->drows, PP, P_(v, G, "patch_embed.proj.weight"), P_(v, G, "patch_embed.proj.bias"),
                         v->dpatch, D, v->acts.patches, PP, P_(v, v->params, "patch_embed.proj.weight"), PP,
                         (int64_t)B * Np, PP, D);
    if (c->stem_depth) stem_backward(v, B);
    return loss;
}

int acmt_vit_save_model(const acmt_vit *v, const char *path, const char *extra_json, char *err, size_t errlen) {
    char *meta = acmt_vit_meta_json(&v->cfg, extra_json);
    int rc = acmt_params_save(v->tab, v->ntab, v->params, meta, path, err, errlen);
    free(meta);
    return rc;
}

int acmt_vit_load_params(acmt_vit *v, const char *path, char *err, size_t errlen) {
    acm_st_file f;
    int rc = acm__st_open(&f, path, err, errlen);
    if (rc) return rc;
    for (int i = 0; i < v->ntab && !rc; i++) {
        const acmt_param *p = &v->tab[i];
        const acm_st_tensor *t = acm__st_find(&f, p->name);
        if (!t || t->numel != p->numel || (t->dtype != ACM_ST_F32 && t->dtype != ACM_ST_F16 && t->dtype != ACM_ST_BF16)) {
            snprintf(err, errlen, "%s: tensor '%s' missing or of the wrong size", path, p->name);
            rc = ACM_EFORMAT;
            break;
        }
        memcpy(v->params + p->offset, t->data, sizeof(float) * (size_t)p->numel);
    }
    acm__st_close(&f);
    return rc;
}

double acmt_vit_forward_flops(const acmt_vit_config *c) {
    const double D = c->dim, Hd = c->mlp_hidden, P = c->patch_size, S = stem_side(c);
    const double Np = (S / P) * (S / P), T = Np + 1;
    const double PP = (c->stem_depth ? c->stem_chans[c->stem_depth - 1] : c->in_chans) * P * P;
    double f = Np * PP * D;                            /* patch GEMM */
    for (int i = 0, side = c->image_size, ci = c->in_chans; i < c->stem_depth; ci = c->stem_chans[i++]) {
        side = (side - 1) / c->stem_stride[i] + 1;
        f += (double)side * side * c->stem_chans[i] * ci * 9; /* stem convolutions */
    }
    f += c->depth * (T * (3 * D * D + D * D + 2 * D * Hd) /* qkv, proj, fc1, fc2 */
                     + 2 * T * T * D);                    /* QKᵀ and A·V over all heads */
    f += D * c->num_classes;                           /* head (class token) */
    return 2.0 * f;
}
