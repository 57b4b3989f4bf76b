/*
 * vit.c — the ViT forward pass with ACM modules, and the inference worker (acm_worker_*).
 *
 * One forward pass (timm semantics): im2col patches -> patch GEMM + bias -> [class token; patches] + position ->
 * depth x pre-LN block { x += o(attention(q, k, v of LN1(x))); x += mlp(LN2(x)) } -> LN of the class tokens -> head.
 * Every linear module may be static or an ACM; the q, k, v outputs land in one [B*T, 3D] buffer either way.
 *
 * An ACM module runs as: collapsed gate GEMM -> k per token (policy) -> counting sort of the batch's tokens by k ->
 * learner GEMMs over contiguous rows -> scatter (add) into the output: engine/acm_exec.c (acm__acm_forward; the
 * q, k, v ACMs of a block share one gate GEMM through acm__acm_qkv_forward).
 *
 * FLOPs are counted per item as the forward runs: the model's fixed (non-ACM) FLOPs plus, per ACM and token,
 * 2*Din*C for the gate where a decision needs it (2*Din*2C for a budget-conditioned one under MEAN and CAP; none under
 * FIXED, forced k or beta >= 1: acm_exec.c, gate_class) and k*p for the learners. 2 FLOPs per multiply-add.
 * Per-item values (lambda, gate beta, FLOPs) live in the activation record (the worker's arena): nothing on the
 * caller's stack grows with the batch.
 */
#include "vit.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

/* Runs a static or ACM module: out (ldo) = or += module(x). */
static void run_module(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                       const acm__vit_acts *a, const acm__module *md, float *fc1, float *gelu, const acm_item *items,
                       const float *lambda, const float *gbeta, int B, int T, acm__acm_scratch *s, acm_result *res,
                       double *flops, double *lflops) {
    const int64_t BT = (int64_t)B * T;
    const acm_module_info *in = &md->info;
    acm__backend *be = s->be ? s->be : acm__backend_cpu();
    switch (in->kind) {
    case ACM_MOD_LINEAR:
        be->matmul_forward(be, out, ldo, x, ldx, md->w, in->din, md->b, BT, in->din, in->dout, accumulate);
        return;
    case ACM_MOD_MLP:
        if (be->bias_gelu) { /* the GEMM without its bias, then bias and GELU in one pass over each row */
            be->matmul_forward(be, fc1, in->hidden, x, ldx, md->fc1_w, in->din, NULL, BT, in->din, in->hidden, 0);
            be->bias_gelu(be, fc1, in->hidden, gelu, in->hidden, md->fc1_b, BT, in->hidden);
        } else {
            be->matmul_forward(be, fc1, in->hidden, x, ldx, md->fc1_w, in->din, md->fc1_b, BT, in->din, in->hidden, 0);
            be->gelu_forward(be, gelu, in->hidden, fc1, in->hidden, BT, in->hidden);
        }
        be->matmul_forward(be, out, ldo, gelu, in->hidden, md->fc2_w, in->hidden, md->fc2_b, BT, in->hidden, in->dout,
                           accumulate);
        return;
    case ACM_MOD_ACM:
        if (a->acm_hook) {
            a->acm_hook(a->acm_hook_ctx, out, ldo, accumulate, x, ldx, md, B, T);
            return;
        }
        acm__acm_forward(out, ldo, accumulate, x, ldx, m, md, items, lambda, gbeta, B, T, s, flops, lflops);
        for (int b = 0; b < B; b++)
            if (res[b].kmap) memcpy(res[b].kmap + (int64_t)in->acm_index * T, s->k + (int64_t)b * T, (size_t)T);
        return;
    }
}

/* Each stem layer: im2col (3x3, padding 1), one GEMM with the bias, GELU in place; then the last map cut into the
 * patch rows (k = stride = P, no padding). Maps are channel-last [B, H, W, C]: a GEMM's output rows are pixels. */
void acm__stem_forward(acm__backend *be, const acm_model *m, acm__vit_acts *a, const acm_item *items, int B) {
    const acm_config *c = &m->cfg;
    int side = c->image_size, ci = c->in_chans;
    for (int i = 0; i < c->stem_depth; i++) {
        const int so = (side - 1) / c->stem_stride[i] + 1, co = c->stem_chans[i], K = ci * 9;
        const int64_t rows = (int64_t)B * so * so;
        be->im2col_conv(be, a->stem_col[i], i ? a->stem_act[i - 1] : NULL, i ? NULL : items, B, ci, side, side, 3,
                        c->stem_stride[i], 1, so, so);
        be->matmul_forward(be, a->stem_pre[i], co, a->stem_col[i], K, m->stem_w[i], K, m->stem_b[i], rows, K, co, 0);
        be->gelu_forward(be, a->stem_act[i], co, a->stem_pre[i], co, rows, co);
        side = so;
        ci = co;
    }
    be->im2col_conv(be, a->patches, a->stem_act[c->stem_depth - 1], NULL, B, ci, side, side, c->patch_size,
                    c->patch_size, 0, c->grid, c->grid);
}

int acm__vit_forward(const acm_model *m, acm__vit_acts *a, acm__acm_scratch *s, const acm_item *items,
                     acm_result *res, int B, char *err, size_t errlen) {
    const acm_config *c = &m->cfg;
    const int D = c->dim, T = c->tokens, Np = c->num_patches, H = c->heads, K = c->num_classes;
    const int PP = c->feat_chans * c->patch_size * c->patch_size, S = c->image_size;
    const int64_t BT = (int64_t)B * T;
    float *lambda = a->lambda, *gbeta = a->gbeta;           /* [B] */
    double *eflops = a->flops_acm, *lflops = a->flops_learn; /* [B] per item: ACM FLOPs executed; of which learners */
    for (int b = 0; b < B; b++) {
        acm_policy p = items[b].policy;
        if ((unsigned)p.kind > ACM_POLICY_CAP)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: unknown policy %d", b, (int)p.kind);
        if (p.kind == ACM_POLICY_CAP && (unsigned)p.cap_order > ACM_CAP_ORDER_RANDOM)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: unknown CAP order %d", b, (int)p.cap_order);
        if ((p.kind == ACM_POLICY_MEAN || p.kind == ACM_POLICY_CAP) && !(p.beta > 0.0f && p.beta <= 1.0f))
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: budget %g outside (0, 1]", b, (double)p.beta);
        /* a budget below beta_min is refused, not raised: the caller (acmd raises and reports it, proto/sla.c) must
         * know what ran. MEAN with lambda_set is calibration: its beta only feeds FiLM gates. */
        if ((p.kind == ACM_POLICY_CAP || (p.kind == ACM_POLICY_MEAN && !p.lambda_set)) && p.beta < c->beta_min)
            return acm__fail(err, errlen, ACM_EINVAL,
                             "item %d: budget %g below the model's beta_min %g (its floor, every ACM at kmin "
                             "learners: %g)", b, (double)p.beta, (double)c->beta_min, (double)c->beta_floor);
        if (p.kind == ACM_POLICY_MEAN && p.lambda_set && !isfinite(p.lambda))
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: lambda is not finite", b);
        if (p.kind == ACM_POLICY_MEAN && !p.lambda_set && c->num_acms && c->mean_table_len == 0)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: policy 'mean' needs the model's lambda table, which "
                                                      "this model does not have", b);
        if (!items[b].pixels) return acm__fail(err, errlen, ACM_EINVAL, "item %d: no input", b);
        for (int64_t i = 0; i < (int64_t)c->in_chans * S * S; i++)
            if (!isfinite(items[b].pixels[i]))
                return acm__fail(err, errlen, ACM_EINVAL, "item %d: input value %lld is not finite", b, (long long)i);
        lambda[b] = p.kind != ACM_POLICY_MEAN ? 0.0f : p.lambda_set ? p.lambda : acm__mean_lambda(m, p.beta);
        gbeta[b] = acm__gate_beta(m, p);
        eflops[b] = lflops[b] = 0;
    }
    /* patch embedding (after the convolutional stem, when the model has one): im2col, one GEMM over the B*Np patch
     * rows, then [cls; patches] + pos. The GEMM writes into blk[0].ln1 (free until block 0's LayerNorm) and each
     * item's rows are copied after its class token: one GEMM per item straight into x0 (Np rows each) took about
     * 4x as long at batch 64 on a stem model, whose patch rows are 256 wide (9.0 against 2.2 ms: bench/RESULTS.md). */
    acm__backend *be = s->be ? s->be : acm__backend_cpu();
    if (c->stem_depth) {
        acm__stem_forward(be, m, a, items, B);
    } else {
        be->im2col_patches(be, a->patches, items, B, c->in_chans, S, S, c->patch_size);
    }
    float *pe = a->blk[0].ln1; /* [B*Np, D] of its [B*T, D] */
    be->matmul_forward(be, pe, D, a->patches, PP, m->patch_w, PP, m->patch_b, (int64_t)B * Np, PP, D, 0);
    for (int b = 0; b < B; b++)
        be->copy(be, a->x0 + (int64_t)b * T * D + D, pe + (int64_t)b * Np * D, sizeof(float) * (size_t)Np * D);
    be->vit_embed(be, a->x0, m->cls, m->pos, B, T, D);
    const float *x = a->x0;
    s->bad_gate = NULL;
    for (int l = 0; l < c->depth; l++) {
        const acm__block *bl = &m->blocks[l];
        acm__block_acts *ba = &a->blk[a->blk_shared ? 0 : l];
        be->layernorm_forward(be, ba->ln1, ba->ln1_mean, ba->ln1_rstd, x, bl->ln1_w, bl->ln1_b, BT, D, c->ln_eps);
        if (bl->fused_qkv) {
            run_module(ba->qkv, 3 * D, 0, ba->ln1, D, m, a, &bl->mod[ACM_POS_Q], NULL, NULL, items, lambda, gbeta, B,
                       T, s, res, eflops, lflops);
        } else if (!a->acm_hook && bl->mod[ACM_POS_Q].info.kind == ACM_MOD_ACM &&
                   bl->mod[ACM_POS_K].info.kind == ACM_MOD_ACM && bl->mod[ACM_POS_V].info.kind == ACM_MOD_ACM) {
            acm__acm_qkv_forward(ba->qkv, 3 * D, ba->ln1, D, m, l, items, lambda, gbeta, B, T, s, eflops, lflops);
            for (int p = ACM_POS_Q; p <= ACM_POS_V; p++)
                for (int b = 0; b < B; b++)
                    if (res[b].kmap)
                        memcpy(res[b].kmap + (int64_t)bl->mod[p].info.acm_index * T, s->k + p * BT + (int64_t)b * T,
                               (size_t)T);
        } else {
            for (int p = ACM_POS_Q; p <= ACM_POS_V; p++)
                run_module(ba->qkv + p * D, 3 * D, 0, ba->ln1, D, m, a, &bl->mod[p], NULL, NULL, items, lambda, gbeta,
                           B, T, s, res, eflops, lflops);
        }
        be->attention_forward(be, ba->attn_y, ba->att, ba->qkv, ba->qkv + D, ba->qkv + 2 * D, 3 * D, B, T, D, H);
        if (ba->x1 != x) be->copy(be, ba->x1, x, sizeof(float) * (size_t)(BT * D));
        run_module(ba->x1, D, 1, ba->attn_y, D, m, a, &bl->mod[ACM_POS_O], NULL, NULL, items, lambda, gbeta, B, T, s,
                   res, eflops, lflops);
        be->layernorm_forward(be, ba->ln2, ba->ln2_mean, ba->ln2_rstd, ba->x1, bl->ln2_w, bl->ln2_b, BT, D, c->ln_eps);
        if (ba->x2 != ba->x1) be->copy(be, ba->x2, ba->x1, sizeof(float) * (size_t)(BT * D));
        run_module(ba->x2, D, 1, ba->ln2, D, m, a, &bl->mod[ACM_POS_MLP], ba->fc1, ba->gelu, items, lambda, gbeta, B,
                   T, s, res, eflops, lflops);
        x = ba->x2;
    }
    /* final norm on the class tokens, head */
    for (int b = 0; b < B; b++)
        be->layernorm_forward(be, a->lnf + (int64_t)b * D, a->lnf_mean ? a->lnf_mean + b : NULL,
                              a->lnf_rstd ? a->lnf_rstd + b : NULL, x + (int64_t)b * T * D, m->norm_w, m->norm_b, 1, D,
                              c->ln_eps);
    be->matmul_forward(be, a->logits, K, a->lnf, D, m->head_w, D, m->head_b, B, D, K, 0);
    /* a gate gave non-finite logits (acm_exec.c, decide): no answer for this item. The logits are the backend's: the
     * item's budget is NaN, and whoever brings its logits to the host (acm_worker_run) makes them NaN. */
    for (int b = 0; b < B; b++) {
        res[b].flops = m->flops_fixed + eflops[b];
        res[b].flops_dense = m->flops_dense;
        res[b].budget = m->learner_flops_total > 0 ? lflops[b] / (m->learner_flops_total * T) : 1.0;
        if (isnan(lflops[b]) && acm__backend_is_cpu(be))
            for (int k = 0; k < K; k++) a->logits[(int64_t)b * K + k] = NAN;
    }
    /* the input was finite, so a non-finite gate logit means the computation overflowed float (the model's weights,
     * or inputs far outside its range): the caller must hear it. Only the items marked failed lack an answer. */
    if (s->bad_gate)
        return acm__fail(err, errlen, ACM_ENUMERIC,
                         "item %d: the gate of ACM '%s' gave non-finite logits (NaN or Inf) on finite input: the "
                         "computation overflowed float (the model's weights, or inputs far outside its range)",
                         s->bad_item, s->bad_gate->info.name);
    return 0;
}
