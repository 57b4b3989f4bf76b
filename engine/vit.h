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
#include "backend.h"
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
    float *stem_col[ACM_MAX_STEM];    /* stem layer i (cfg.stem_*): [B*Ho*Wo, Ci*9] im2col rows of its input */
    float *stem_pre[ACM_MAX_STEM];    /* [B*Ho*Wo, Co] convolution + bias (channel-last) */
    float *stem_act[ACM_MAX_STEM];    /* [B*Ho*Wo, Co] GELU (inference: = stem_pre, and every layer shares one
                                         buffer of each kind: a layer's rows are cut before its output is written) */
    float *x0;                        /* [B*T, D] embeddings: class token + patches, plus position */
    acm__block_acts *blk;             /* [depth], or [1] when blk_shared */
    int blk_shared;                   /* 1: every block uses blk[0] (inference) */
    float *lnf, *lnf_mean, *lnf_rstd; /* [B, D], [B], [B]: final norm of the class tokens only */
    float *logits;                    /* [B, K] */
    float *lambda, *gbeta;            /* [B] per item: the MEAN bias, the budget FiLM gates see */
    double *flops_acm, *flops_learn;  /* [B] per item: ACM FLOPs executed (gates + learners); learners alone */
} acm__vit_acts;

/* How ACM modules run their learners (engine/acm_exec.c). AUTO picks per module and batch; the others force one
 * schedule (benchmarks and tests). */
typedef enum {
    ACM__EXEC_AUTO = 0,  /* the schedule measured fastest for the module's shape (see acm_exec.c) */
    ACM__EXEC_GROUPS,    /* one GEMM pair per k-group over learners 1..k */
    ACM__EXEC_PREFIX,    /* learner n over the prefix of sorted tokens with k >= n */
    ACM__EXEC_REFERENCE, /* token by token in double, gates unfused: the tests' oracle (slow) */
} acm__exec_mode;

/* Seconds spent in the phases of ACM modules, accumulated while acm__acm_scratch.times is set (benchmarks). */
typedef struct {
    double gate;    /* gate GEMM + k decisions */
    double sort;    /* counting sort + gathering rows */
    double gemm;    /* learner GEMMs and GELU */
    double scatter; /* writing or adding rows back */
} acm__exec_times;

/* Scratch of the ACM modules: gate logits, k per token, the sorted permutation and gathered rows. Buffers marked
 * (backend) are in the backend's memory, the others on the host (engine/backend.h; on the CPU both are host memory, and
 * gate_host and perm_be may be NULL). */
struct acm__acm_scratch {
    acm__backend *be;  /* NULL: the CPU backend */
    float *gate;       /* (backend) [B*T, (3G+1)*Cmax], G = gate_mult: the gate GEMMs' output */
    float *gate_host;  /* [B*T, (3G+1)*Cmax]: logits of one module [B*T, C] (FiLM: its [B*T, 2C] raw A|B logits
                          first, combined in place), or fused q|k|v raw logits then one module's; NULL: gate itself (CPU) */
    uint8_t *k;        /* [3, B*T]: k per token of the last module (q, k, v at offsets 0, B*T, 2*B*T when fused) */
    int32_t *perm;     /* [B*T] tokens sorted by k, descending */
    int32_t *perm_be;  /* (backend) [B*T] perm's copy (NULL on the CPU: to_backend hands perm itself) */
    float *xg;         /* (backend) [B*T, D] gathered inputs, in sorted order */
    float *hid;        /* (backend) [B*T, max N*h] learner hidden activations (row stride N*h) */
    float *yg;         /* (backend) [B*T, max(3D, D)] outputs in sorted order, before scatter */
    double *cap_gain;  /* [T * Nmax] CAP policy: the rank of each (token, learner) pair (policy.c, cap_odds) */
    int32_t *cap_idx;  /* [T * Nmax] */
    double *ref;       /* [max N*h + max(3D, D)] REFERENCE mode: one token's hidden and output in double */
    float *qkv_gate_w; /* (backend) [depth, 3*G*Cmax, D] per block whose q, k, v are all ACMs: the three gates' gate_rows
                          stacked (or NULL) */
    float *qkv_gate_b; /* (backend) [depth, 3*G*Cmax] */
    float *qkv_fold_w; /* (backend) [depth, 3*Cmax, D]: the same blocks' gates folded for ARGMAX (FiLM: A + gate_beta B, model.h;
                          unconditioned: the gate itself), C rows each; equal to qkv_gate_w without FiLM */
    float *qkv_fold_b; /* (backend) [depth, 3*Cmax] */
    float *gate_log;   /* tests: [num_acms, B*T, Cmax] every module's gate logits, kept when set (NULL: not kept) */
    const int64_t *unit_off; /* NULL: the B items of a call have T rows each; else [B+1]: item (decision unit) b
                                has rows [unit_off[b], unit_off[b+1]) and T is ignored (speech: one unit per chunk) */
    int mode;              /* acm__exec_mode (0: AUTO) */
    int no_parts;          /* 1: PREFIX never splits into the backend's parts (benchmarks compare; 0 in service) */
    const acm__module *bad_gate; /* the first module whose gate gave a non-finite logit for an item that needed a
                                    decision (NULL: none; the item's k were set to kmin, its learner FLOPs to NaN).
                                    acm__vit_forward resets and reads it */
    int bad_item;                /* that item */
    acm__exec_times *times; /* NULL: not measured */
};

/* Fills s->qkv_gate_w and qkv_gate_b (allocated by the worker) with the stacked collapsed gates of every block whose
 * q, k, v are all ACMs. */
void acm__acm_scratch_fill(acm__acm_scratch *s, const acm_model *m);

/* The convolutional stem of a model with one, on backend be: writes a->stem_* and the patch rows a->patches from the
 * items' pixels (engine/vit.c). */
void acm__stem_forward(acm__backend *be, const acm_model *m, acm__vit_acts *a, const acm_item *items, int B);

/* Runs B items through the model. Per-item ACM decisions, kmaps, FLOPs and budgets go to res[b] (logits are left
 * in a->logits; the caller copies them). Returns 0 or ACM_EINVAL (policy invalid for this model) with a message. */
int acm__vit_forward(const acm_model *m, acm__vit_acts *a, acm__acm_scratch *s, const acm_item *items,
                     acm_result *res, int B, char *err, size_t errlen);

/* Runs one ACM module over B items of T tokens (or, when s->unit_off is set, B decision units of their own lengths,
 * packed: the speech encoder's chunks; T is then ignored): decides k per token (policy of each item, or forced),
 * sorts the tokens by k, runs learners 1..k of each group as one GEMM pair and scatters the result into out (ldo;
 * accumulate or overwrite; tokens with k = 0 contribute nothing). Writes k per token into s->k, per-item executed learner FLOPs and
 * gate FLOPs are added to flops[b], learner FLOPs also to learner_flops[b]. lambda [B]: each item's MEAN bias;
 * gbeta [B]: the budget each item's FiLM gates see (acm__gate_beta; read only for FiLM gates, may be NULL without). */
void acm__acm_forward(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                      const acm__module *md, const acm_item *items, const float *lambda, const float *gbeta, int B,
                      int T, acm__acm_scratch *s, double *flops, double *learner_flops);

/* The q, k, v ACMs of block `block`, which all read x: one gate GEMM for the three (the stacked gates of
 * s->qkv_gate_w), then each module as acm__acm_forward, writing columns 0, D, 2D of qkv (ldo). k of module p (0..2)
 * lands in s->k + p*B*T. Falls back to three acm__acm_forward calls without stacked gates or in REFERENCE mode. */
void acm__acm_qkv_forward(float *qkv, int ldo, const float *x, int ldx, const acm_model *m, int block,
                          const acm_item *items, const float *lambda, const float *gbeta, int B, int T,
                          acm__acm_scratch *s, double *flops, double *learner_flops);

/* The budget a FiLM gate sees under policy p (acm.h): the model's gate_beta for ARGMAX, else p.beta. */
float acm__gate_beta(const acm_model *m, acm_policy p);

/* The ACM scratch of a worker, to force a schedule (s->mode) or time the phases (s->times): tests and benchmarks. */
acm__acm_scratch *acm__worker_scratch(acm_worker *w);

/* Decides k for the T tokens of one item from their gate logits [T, C] under a policy (not forced). lambda is the
 * MEAN policy's bias. */
void acm__decide_k(uint8_t *k, const float *logits, int T, const acm_model *m, const acm__module *md,
                   acm_policy pol, float lambda, acm__acm_scratch *s);

/* CAP: the fraction of module md's learners an item may use at budget beta (the model's table, or beta). */
double acm__cap_share(const acm_model *m, const acm__module *md, float beta);

/* lambda(beta) from the model's table (linear interpolation, clamped to the ends). */
float acm__mean_lambda(const acm_model *m, float beta);

#endif
