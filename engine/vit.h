/*
 * vit.h — the one ViT forward pass, shared by inference (acm_worker_run) and training (train/). Internal header.
 *
 * The forward writes every intermediate tensor into an activation record. Inference points every block's record at
 * the same scratch (and lets x0 = x1 = x2, fc1 = gelu, so residual adds and GELU run in place); training gives each
 * block its own buffers and keeps them for the backward pass. Shapes: B items, T tokens, D width, H heads,
 * Np patches, PP = C*P*P, Hd = MLP hidden width, K classes.
 */
#ifndef ACM_VIT_H
#define ACM_VIT_H

#include <stdint.h>

#include "acm.h"
#include "model.h"

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* [B*T, D], [B*T], [B*T] (mean/rstd may be NULL) */
    float *qkv;                       /* [B*T, 3D]: q | k | v per row */
    float *att;                       /* [B, H, T, T] softmax probabilities */
    float *attn_y;                    /* [B*T, D] attention output, input of the o projection */
    float *x1;                        /* [B*T, D] residual stream after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [B*T, D], [B*T], [B*T] */
    float *fc1;                       /* [B*T, Hd] static MLP pre-activation */
    float *gelu;                      /* [B*T, Hd] static MLP activation (may equal fc1: in place) */
    float *x2;                        /* [B*T, D] block output */
} acm__block_acts;

/* Training runs ACM modules its own way (all learners, Gumbel gates, saved activations) inside the same forward pass:
 * when acm__vit_acts.acm_hook is set, every ACM module calls it instead of acm__acm_forward. It must write (or add,
 * when accumulate) the module's output for all B*T rows. */
typedef void (*acm__acm_hook)(void *ctx, float *out, int ldo, int accumulate, const float *x, int ldx,
                              const acm__module *md, int B, int T);

typedef struct {
    acm__acm_hook acm_hook;           /* NULL for inference */
    void *acm_hook_ctx;
    float *patches;                   /* [B*Np, PP] im2col rows */
    float *x0;                        /* [B*T, D] embeddings: class token + patches, plus position */
    acm__block_acts *blk;             /* [depth], or [1] when blk_shared */
    int blk_shared;                   /* 1: every block uses blk[0] (inference) */
    float *lnf, *lnf_mean, *lnf_rstd; /* [B, D], [B], [B]: final norm of the class tokens only */
    float *logits;                    /* [B, K] */
} acm__vit_acts;

/* Scratch of the ACM modules: gate logits, k per token, the sorted permutation and gathered rows. */
typedef struct {
    float *gate;       /* [B*T, Cmax] */
    uint8_t *k;        /* [B*T] */
    int32_t *perm;     /* [B*T] tokens sorted by k, descending */
    float *xg;         /* [B*T, D] gathered inputs of one k-group */
    float *hid;        /* [B*T, max N*h] learner hidden activations */
    float *yg;         /* [B*T, max(3D, D)] group outputs before scatter */
    float *cap_gain;   /* [T * Nmax] CAP policy: marginal gains */
    int32_t *cap_idx;  /* [T * Nmax] */
    float *probs;      /* [Cmax] */
} acm__acm_scratch;

/* Runs B items through the model. Per-item ACM decisions, kmaps, FLOPs and budgets go to res[b] (logits are left
 * in a->logits; the caller copies them). Returns 0 or ACM_EINVAL (policy invalid for this model) with a message. */
int acm__vit_forward(const acm_model *m, acm__vit_acts *a, acm__acm_scratch *s, const acm_item *items,
                     acm_result *res, int B, char *err, size_t errlen);

/* Runs one ACM module over B items of T tokens: decides k per token (policy of each item, or forced), sorts the tokens
 * by k, runs learners 1..k of each group as one GEMM pair and scatters the result into out (ldo; accumulate or
 * overwrite; tokens with k = 0 contribute nothing). Writes k per token into s->k, per-item executed learner FLOPs and
 * gate FLOPs are added to flops[b], learner FLOPs also to learner_flops[b]. */
void acm__acm_forward(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                      const acm__module *md, const acm_item *items, const float *lambda, int B, int T,
                      acm__acm_scratch *s, double *flops, double *learner_flops);

/* Decides k for the T tokens of one item from their gate logits [T, C] under a policy (not forced). lambda is the
 * MEAN policy's bias. */
void acm__decide_k(uint8_t *k, const float *logits, int T, const acm_model *m, const acm__module *md,
                   acm_policy pol, float lambda, acm__acm_scratch *s);

/* CAP: the fraction of module md's learners an item may use at budget beta (the model's table, or beta). */
double acm__cap_share(const acm_model *m, const acm__module *md, float beta);

/* lambda(beta) from the model's table (linear interpolation, clamped to the ends). */
float acm__mean_lambda(const acm_model *m, float beta);

#endif
