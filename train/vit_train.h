/*
 * vit_train.h — a trainable static ViT: parameters, gradients and AdamW moments in three flat buffers (one table of
 * timm-named tensors gives every offset), the activation record of the engine's forward pass (engine/vit.c, the
 * one forward pass of the project) with a buffer per block, and the backward pass composed from the backward kernels
 * of engine/kernels.h.
 *
 * The engine's acm_model is built over the parameter buffer itself (acm__model_build with a lookup into the table), so
 * an optimizer update is seen by the next forward without copying. Shapes: B items, T = Np + 1 tokens, D width,
 * H heads, Hd MLP hidden width, K classes, PP = C·P·P.
 *
 * Not here: ACM modules (acmize, later), data, the optimizer loop (cmd_base.c).
 */
#ifndef ACM_TRAIN_VIT_TRAIN_H
#define ACM_TRAIN_VIT_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"
#include "train/param_table.h"
#include "train/rng.h"
#include "vit.h"

typedef struct {
    int image_size, patch_size, in_chans;
    int dim, depth, heads, mlp_hidden, num_classes;
    float ln_eps;
    /* convolutional stem (engine/model.h "stem"; 0 layers: none): 3x3, padding 1, stride stem_stride[i], to
     * stem_chans[i] channels, + bias, GELU; the patch convolution reads its output */
    int stem_depth;
    int stem_chans[ACM_MAX_STEM], stem_stride[ACM_MAX_STEM];
} acmt_vit_config;

typedef struct {
    acmt_vit_config cfg;
    int T, Np, PP;
    int max_batch;
    acmt_param *tab; /* [ntab], timm order */
    int ntab;
    int64_t nparams;
    float *params, *grads, *m, *v; /* [nparams] each */
    acm_model *model;              /* the engine's model over params */
    /* activations for max_batch items, one set per block */
    float *act_mem;
    acm__block_acts *blk;
    acm__vit_acts acts;
    acm__acm_scratch scratch; /* unused by a static model */
    acm_item *items;
    acm_result *res;
    const float *extra_dlogits; /* [B, K] added to the loss's gradient at the logits by the backward (NULL: none;
                                   acmize's distillation term, train/distill.h) */
    /* backward scratch */
    float *bwd_mem;
    float *dres;   /* [B*T, D] gradient of the residual stream */
    float *dln;    /* [B*T, D] */
    float *dattn;  /* [B*T, D] */
    float *dqkv;   /* [B*T, 3D] */
    float *dhid;   /* [B*T, Hd] gradient at the GELU output */
    float *dfc1;   /* [B*T, Hd] gradient at the GELU input */
    float *dpatch; /* [B*Np, D] gradient at the patch embeddings */
    /* the stem's (NULL without one): its activations, one set per layer, and gradient scratch */
    float *stem_mem;
    float *drows;  /* [B*Np, PP] gradient at the patch rows */
    float *dmap;   /* [B * max Ho*Wo*Co] gradient at a stem layer's output (its GELU's output) */
    float *dmap2;  /* [B * max Ho*Wo*Co] gradient at its GELU's input */
    float *dcol;   /* [B * max Ho*Wo*Ci*9] gradient at a stem layer's rows */
    int stem_side[ACM_MAX_STEM]; /* output side of each stem layer */
    float *dlnf;   /* [B, D] */
    float *dlogits, *probs; /* [B, K] */
    float *att_scratch;     /* [T, T] */
} acmt_vit;

/* Allocates everything for batches of up to max_batch. Returns NULL with a message. Parameters are zero until
 * acmt_vit_init or a load. */
acmt_vit *acmt_vit_new(const acmt_vit_config *cfg, int max_batch, char *err, size_t errlen);
void acmt_vit_free(acmt_vit *v);

/* timm's initialisation: Linear weights and pos_embed truncated normal (σ 0.02, cut at ±2σ), patch embedding LeCun
 * normal (σ = 1/√PP), cls_token normal σ 1e-6, biases 0, LayerNorm weight 1 and bias 0. */
void acmt_vit_init(acmt_vit *v, acmt_rng *rng);

/* Forward for B items of x[B, C, S, S] (normalised); logits land in v->acts.logits [B, K]. Returns 0 or an error. */
int acmt_vit_forward(acmt_vit *v, const float *x, int B, char *err, size_t errlen);

/* After acmt_vit_forward on the same batch: cross-entropy with label smoothing (mean over B), zeroes v->grads and
 * writes the gradient of the mean loss. Returns the mean loss; *correct gets the number of argmax hits. */
double acmt_vit_backward(acmt_vit *v, const int32_t *targets, int B, float smoothing, int *correct);
/* The same for a mixed batch (acmt_mix_batch): loss lam CE(targets) + (1 - lam) CE(targets2); *correct counts hits
 * of the label with the larger weight. */
double acmt_vit_backward_mixed(acmt_vit *v, const int32_t *targets, const int32_t *targets2, float lam, int B,
                               float smoothing, int *correct);

/* The backward of an ACM module inside acmt_vit_backward_ex: accumulate the input gradient into dz [B*T, .] (row
 * stride lddz) from dout (row stride lddo), and the module's own parameter gradients wherever the hook keeps them. */
typedef void (*acmt_acm_backward_hook)(void *ctx, float *dz, int lddz, const float *dout, int lddo,
                                       const acm__module *md, int B, int T);

/* acmt_vit_backward for a model in which some modules are ACMs: `model` is the engine model the forward ran (its ACM
 * modules take the hook; its static q, k, v beside an ACM are slices of this ViT's fused qkv). model NULL: static. */
double acmt_vit_backward_ex(acmt_vit *v, const acm_model *model, acmt_acm_backward_hook hook, void *ctx,
                            const int32_t *targets, int B, float smoothing, int *correct);

/* Number of argmax hits of the current logits against targets (no backward). */
int acmt_vit_correct(const acmt_vit *v, const int32_t *targets, int B);

/* The model metadata document (model.h) for this configuration, with Fashion-MNIST labels and preprocessing; extra
 * (may be NULL): a JSON object merged in at the top level (e.g. {"eval": {...}}). Caller frees (free()). */
char *acmt_vit_meta_json(const acmt_vit_config *cfg, const char *extra_json);

/* Writes the parameters as a model file (timm names; patch_embed.proj.weight as [D, C, P, P]) atomically. */
int acmt_vit_save_model(const acmt_vit *v, const char *path, const char *extra_json, char *err, size_t errlen);

/* The tensor `name` (a timm name of the table) inside base (v->params, v->grads, ...), or NULL if there is none. */
float *acmt_vit_param(const acmt_vit *v, float *base, const char *name);

/* Loads parameters from a model file of the same configuration (names and shapes must match). */
int acmt_vit_load_params(acmt_vit *v, const char *path, char *err, size_t errlen);

/* Matrix-product FLOPs of one item's forward pass (2 per multiply-add; the patch GEMM, every linear, QKᵀ, A·V, head). */
double acmt_vit_forward_flops(const acmt_vit_config *cfg);

#endif
