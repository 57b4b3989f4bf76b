/*
 * model.h — the in-memory ACM ViT: configuration, weights bound by name, ACM modules with collapsed gates.
 * Internal to libacm and train/.
 *
 * The model file (safetensors, see safetensors.h for the container) — __metadata__["acm"] is a JSON document:
 *   format_version  1
 *   arch            "vit"
 *   image_size, patch_size, in_chans (1 or 3), dim, depth, heads, mlp_hidden, num_classes   (integers)
 *   ln_eps          LayerNorm epsilon (default 1e-6, timm's ViT)
 *   preprocess      {"mean": [in_chans floats], "std": [in_chans floats]}: x = (pixel/255 - mean) / std
 *   labels          [num_classes strings] (optional; default "0", "1", ...)
 *   acm             {"modules": [{"name": "blocks.0.mlp", "learners": 4}, ...]} (optional): the modules replaced by
 *                   ACMs; names are blocks.{i}.mlp, blocks.{i}.attn.q, .k, .v and blocks.{i}.attn.proj (o)
 *   budget          {"beta_min": 0.25, "mean": [[beta, lambda], ...], "cap_order": "level", "gate_beta": 0.625,
 *                    "cap": {"betas": [b_0, ...], "shares": [[s_0 for every ACM], ...]}} (all optional): the floor of
 *                   request budgets, at least the model's floor sum_l kmin_l p_l / sum_l N_l p_l (its default); the
 *                   lambda(beta) table of the MEAN policy, ascending in beta; the CAP policy's share of each ACM's
 *                   learners per beta (ascending betas, one share in [kmin_l/N_l, 1] per ACM in execution order (1e-6
 *                   of slack for 6-decimal writing), with sum_l s_l N_l p_l <= beta sum_l N_l p_l on every row);
 *                   "cap_order": "gain" (default) or "level", the order in which CAP hands out learners (acm.h);
 *                   gate_beta in (0, 1]: the budget FiLM gates see under ARGMAX, required when any gate has FiLM,
 *                   ignored otherwise
 *   stem            {"channels": [C_0, ...], "strides": [s_0, ...]} (optional, 1..4 layers): a convolutional stem
 *                   before the patch embedding; layer i is a 3x3 convolution, padding 1, stride s_i, to C_i channels,
 *                   plus bias, then GELU. The patch convolution (patch_size) then reads the last layer's output
 *                   (C_last channels, side S' with S' = (S - 1) / s + 1 per layer), which patch_size must divide.
 *   eval            free-form: evaluation results recorded when the file was made (not read by the engine)
 *   (other keys are kept verbatim and ignored)
 *
 * Tensors (timm VisionTransformer names; W[out, in] like nn.Linear; D dim, T tokens, K classes, P patch, C chans):
 *   stem.{i}.weight [C_i, C_{i-1}, 3, 3], stem.{i}.bias [C_i]   (with a stem only; C_{-1} = C)
 *   patch_embed.proj.weight [D, C, P, P] (or [D, C*P*P]), patch_embed.proj.bias [D]   (C = C_last with a stem)
 *   cls_token [1, 1, D], pos_embed [1, T, D]
 *   blocks.{i}.norm1.weight/.bias [D], blocks.{i}.norm2.weight/.bias [D]
 *   attention, static:  blocks.{i}.attn.qkv.weight [3D, D], .bias [3D]   (fused; only when none of q, k, v is an ACM)
 *                  or   blocks.{i}.attn.{q,k,v}.weight [D, D], .bias [D] (split, when some of them are ACMs)
 *                       blocks.{i}.attn.proj.weight [D, D], .bias [D]
 *   MLP, static:        blocks.{i}.mlp.fc1.weight [hidden, D], .bias [hidden], .fc2.weight [D, hidden], .bias [D]
 *   an ACM at NAME:     NAME.w1 [N*h, Din], NAME.b1 [N*h], NAME.w2 [Dout, N*h]   (learner n = rows/cols n*h..n*h+h-1)
 *                       NAME.gate.{j}.weight [o_j, i_j], NAME.gate.{j}.bias [o_j] for j = 0..L-1 (L >= 1 linear
 *                       layers, no nonlinearity; the authors use D -> 16 -> 16 -> C). C = N+1 choices for the MLP
 *                       (choice c means k = c), N for projections (choice c means k = c+1).
 *                       Optional, both or neither (acm-train acmize --film; needs L >= 2):
 *                       NAME.gate.film.scale [gh] (gamma), NAME.gate.film.shift [gh] (delta), gh = i_{L-1} the input
 *                       width of the last layer: a budget-conditioned gate. With u the input of the last layer and
 *                       b the budget, the last layer reads u' = u + b (gamma ⊙ u + delta). Since u = G z + g is linear
 *                       in z (G = W_{L-2} ... W_0), the logits are (A + b B) z + (c + b c'):
 *                         A = W_{L-1} G, c = W_{L-1} g + b_{L-1}, B = W_{L-1} diag(gamma) G, c' = W_{L-1} (gamma ⊙ g +
 *                         delta),
 *                       one GEMM with A and B stacked. gamma = delta = 0 is the unconditioned gate.
 *   norm.weight/.bias [D], head.weight [K, D], head.bias [K]
 * Every tensor the configuration needs must be present with exactly this shape; no other tensor may be present.
 *
 * Speech encoder (arch "speech", docs/DESIGN.md §4b): the same document with, instead of the image fields
 * (image_size, patch_size, in_chans, num_classes, preprocess, labels):
 *   alphabet        string of K-1 distinct printable ASCII characters (e.g. "abcdefghijklmnopqrstuvwxyz' "): CTC
 *                   classes 1..K-1; class 0 is the blank. num_classes = K.
 *   chunk           C in [1, 1024]: tokens per chunk
 *   left_context    L in [0, 65536]: tokens before its chunk that a token sees
 *   rope_base       rotary base, > 1 (default 10000); dim / heads must be even
 *   frontend        {"n_mels": 80, "stack": 4, and optionally "sample_rate": 16000, "n_fft": 512, "win_length": 400,
 *                    "hop_length": 160, "fmin": 0, "fmax": 8000, "log_floor": 1e-10} (engine/logmel.h; defaults as
 *                   shown; stack in [1, 64])
 *   dim, depth, heads, mlp_hidden, ln_eps, acm, budget, eval   as above
 * Tensors (M mels, S stack, K classes):
 *   frontend.mel_mean [M], frontend.mel_std [M] (finite; std > 0): x = (logmel - mean) / std per bin
 *   frontend.proj.weight [D, S*M], frontend.proj.bias [D]: token t reads frames 4t..4t+3 concatenated (frame-major)
 *   blocks.{i}.*    as above (fused qkv or split, ACMs the same)
 *   norm.weight/.bias [D], head.weight [K, D], head.bias [K]: applied to every token
 */
#ifndef ACM_MODEL_H
#define ACM_MODEL_H

#include <jansson.h>

#include "acm.h"
#include "logmel.h"
#include "safetensors.h"

#define ACM_MAX_LEARNERS 16
#define ACM_MAX_CHOICES (ACM_MAX_LEARNERS + 1)

typedef struct {
    acm_module_info info;
    /* LINEAR */
    const float *w, *b; /* [dout, din], [dout] */
    /* MLP */
    const float *fc1_w, *fc1_b, *fc2_w, *fc2_b; /* [hidden, din], [hidden], [dout, hidden], [dout] */
    /* ACM */
    const float *w1, *b1, *w2; /* [N*h, din], [N*h], [dout, N*h] */
    int choices;               /* C */
    int gate_rows;             /* rows of gate_w: C, or 2C for a FiLM gate */
    float *gate_w, *gate_b;    /* collapsed gate [gate_rows, din], [gate_rows] (owned by the model): A and c; a FiLM
                                  gate's rows C..2C-1 are B and c' (logits = A z + c + beta (B z + c')) */
    const float *fold_w, *fold_b; /* [C, din], [C]: the gate ARGMAX runs: gate_w itself, or for a FiLM gate A +
                                     gate_beta B and c + gate_beta c' (folded at load, stored behind B in gate_w) */
    double learner_flops;      /* p: one learner, one token: 2 (din h + h dout) */
} acm__module;

typedef struct {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;
    int fused_qkv;                  /* 1: mod[ACM_POS_Q] is the fused [3D, D] linear, K and V unused */
    acm__module mod[ACM_POS_COUNT]; /* Q, K, V, O, MLP */
} acm__block;

/* Looks a tensor up by name for acm__model_build: returns its F32 data and shape, or NULL if absent. */
typedef const float *(*acm__tensor_lookup)(void *ctx, const char *name, int *ndim, const int64_t **shape);

struct acm_model {
    acm_config cfg;
    acm_st_file file;  /* the mapping, when loaded from a file */
    json_t *meta;      /* parsed "acm" metadata (owned) */
    char *meta_json;   /* verbatim */
    char version[13];
    char **labels;
    const float *patch_w, *patch_b, *cls, *pos, *norm_w, *norm_b, *head_w, *head_b;
    const float *stem_w[ACM_MAX_STEM], *stem_b[ACM_MAX_STEM]; /* [Co, Ci, 3, 3], [Co] per stem layer (cfg.stem_*) */
    const float *mel_mean, *mel_std, *front_w, *front_b; /* speech: [M], [M], [D, S*M], [D] */
    acm__block *blocks;  /* [depth] */
    acm__module **acms;  /* [num_acms], execution order */
    float *mean_beta, *mean_lambda; /* [mean_table_len] */
    float *cap_beta, *cap_share;    /* [cap_table_len], [cap_table_len, num_acms] */
    double learner_flops_total; /* sum over ACMs of N p: the budget denominator per token */
    double learner_flops_mean;  /* mean cost of one learner over all ACMs' learners (MEAN policy's unit) */
    double flops_dense; /* ViT: per item; speech: per token without attention (it depends on the chunk's keys) */
    double flops_fixed; /* per item: everything but the ACM modules (patches, static modules, attention, head);
                           speech: per token, without attention */
    int64_t params;
    int max_choices, max_hidden, max_width; /* scratch sizing */
    int gate_mult; /* 2 when some gate has FiLM (its collapsed gate has 2C rows), else 1: scratch sizing */
    const float **bound; /* data of every tensor bound, [nbound] */
    size_t *bound_bytes; /* their sizes in bytes, [nbound] (a backend with its own memory uploads these) */
    int nbound;
};

/* Builds a model from metadata JSON and a tensor lookup (the file loader and train/ both use it). The lookup's data
 * must outlive the model. */
acm_model *acm__model_build(const char *meta_json, acm__tensor_lookup lookup, void *ctx, char *err, size_t errlen);

/* The log-mel parameters of a speech model's front end. */
acm_logmel_params acm__speech_logmel_params(const acm_config *c);

#endif
