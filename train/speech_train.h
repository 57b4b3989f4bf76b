/*
 * speech_train.h — a trainable static speech encoder (arch "speech", engine/model.h, docs/DESIGN.md §4b): parameters,
 * gradients and AdamW moments in four flat buffers (one table of tensor names gives every offset), a training forward
 * that saves its activations, and the backward pass down to the frontend projection, with the CTC loss
 * (train/ctc_loss.h) on top.
 *
 * The training forward is the engine's forward (engine/speech.c, acm__speech_run) restated with saved activations:
 * the same kernels (engine/kernels.h) in the same order on the same packed rows, the same chunks (whole items cut
 * every C tokens from the item's first token), the same keys (the L tokens before the chunk, then the chunk's own),
 * the same rotary tables and positions (counted from the chunk's first key). tests/train/test_speech_train.c checks
 * that both give the same logits on the same weights and audio. The one difference is the input: the engine starts
 * from PCM, training from the corpus's log-mel frames (the same front end made them, speech_corpus.c).
 *
 * Shapes: B items, R packed rows (tokens of every item, one after another), U chunks, D width, H heads, hd = D/H,
 * Hd MLP hidden width, M mels, S frames per token, SM = S*M, C tokens per chunk, L left-context tokens, K classes
 * (class 0 the blank, then the alphabet).
 *
 * The engine's acm_model is built over the parameter buffer itself (as for the ViT, vit_train.h), so it sees every
 * update and can evaluate or save the model being trained. frontend.mel_mean and .mel_std are statistics, not trained:
 * the optimiser leaves them alone (acmt_speech_trainable).
 *
 * Not thread-safe: one acmt_speech per training thread. Not here: data, SpecAugment, the optimiser loop
 * (cmd_speech_base.c), ACM modules.
 */
#ifndef ACM_TRAIN_SPEECH_TRAIN_H
#define ACM_TRAIN_SPEECH_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"
#include "train/rng.h"
#include "train/vit_train.h"

typedef struct {
    int n_mels, stack;                 /* M, S */
    int dim, depth, heads, mlp_hidden; /* D, depth, H, Hd */
    int chunk, left_context;           /* C, L */
    float rope_base, ln_eps;
    char alphabet[128]; /* the K-1 non-blank classes, one character each */
} acmt_speech_config;

/* A small default: D 144, 6 blocks, 4 heads, Hd 576, 80 mels stacked by 4, chunks of 16 tokens with 32 of left
 * context, rope base 10000, LayerNorm eps 1e-6, the corpus alphabet "abcdefghijklmnopqrstuvwxyz' ". */
acmt_speech_config acmt_speech_default_config(void);

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* [R, D], [R], [R] */
    float *qkv;                       /* [R, 3D] (q and k unrotated) */
    float *att;                       /* per chunk u at att_off[u]: [H, Tq, nk] softmax probabilities */
    float *att_y;                     /* [R, D] */
    float *x1;                        /* [R, D] after the attention residual */
    float *ln2, *ln2_mean, *ln2_rstd; /* [R, D], [R], [R] */
    float *fc1, *gelu;                /* [R, Hd] before and after GELU */
    float *x2;                        /* [R, D] block output */
} acmt_speech_block_acts;

typedef struct {
    acmt_speech_config cfg;
    int K, SM, hd;
    int max_items;
    int64_t max_rows, max_item_tokens;
    int max_labels;
    acmt_param *tab; /* [ntab] */
    int ntab;
    int64_t nparams;
    float *params, *grads, *m, *v; /* [nparams] each */
    acm_model *model;              /* the engine's model over params */
    /* the batch of the last forward */
    int B, U;
    int64_t R;
    int64_t *item_off;  /* [max_items + 1] first row of each item */
    int64_t *unit_off;  /* [max_rows + 1] rows of chunk u: [unit_off[u], unit_off[u+1]) */
    int64_t *unit_key0; /* [max_rows] first key row of chunk u */
    int64_t *att_off;   /* [max_rows + 1] offset of chunk u's probabilities in a block's att */
    /* activations */
    float *act_mem;
    float *xin;  /* [R, SM] normalised stacked frames */
    float *x0;   /* [R, D] */
    acmt_speech_block_acts *blk; /* [depth] */
    float *lnf, *lnf_mean, *lnf_rstd; /* [R, D], [R], [R] */
    float *logits;                    /* [R, K] */
    float *rope_cos, *rope_sin;       /* [L + C, hd/2] */
    /* backward scratch */
    float *bwd_mem;
    float *dres, *dln, *dattn, *dqkv, *dhid, *dfc1, *dlogits; /* [R, D] [R, D] [R, D] [R, 3D] [R, Hd] [R, Hd] [R, K] */
    float *qr, *kr, *dqr, *dkr, *dp; /* one chunk: [C, D], [L+C, D], [C, D], [L+C, D], [C, L+C] */
    double *ctc_work;
    size_t ctc_work_n; /* doubles */
    /* ACM MLPs (speech_student.h): when mlp_fwd is set, every block's MLP branch is mlp_fwd(ctx, l, x2, ln2, R), which
     * adds the branch's output to x2 [R, D] from its input ln2 [R, D] (the static fc1/fc2 are not run), and its
     * backward is mlp_bwd(ctx, l, dln, dx2, R), which writes the input gradient into dln [R, D] (zeroed before) from
     * the branch's output gradient dx2 [R, D]; the static MLP tensors then get no gradient. */
    void (*mlp_fwd)(void *ctx, int l, float *x2, const float *ln2, int64_t R);
    void (*mlp_bwd)(void *ctx, int l, float *dln, const float *dx2, int64_t R);
    void *mlp_ctx;
} acmt_speech;

/* Allocates everything for batches of up to max_items items and max_rows tokens in all, items of up to max_item_tokens
 * tokens and max_labels labels (the CTC workspace). NULL with a message on a bad configuration or no memory.
 * Parameters are zero (mel_std 1) until acmt_speech_init or a load. */
acmt_speech *acmt_speech_new(const acmt_speech_config *cfg, int max_items, int64_t max_rows, int64_t max_item_tokens,
                             int max_labels, char *err, size_t errlen);
void acmt_speech_free(acmt_speech *s);

/* Initialisation as for the ViT (vit_train.h): linear weights truncated normal σ 0.02, the frontend projection
 * LeCun normal (σ 1/√SM), biases 0, LayerNorm weights 1; mel_mean 0 and mel_std 1 (set them with
 * acmt_speech_set_mel_stats). */
void acmt_speech_init(acmt_speech *s, acmt_rng *rng);
void acmt_speech_set_mel_stats(acmt_speech *s, const float *mean, const float *std);

/* 1 if the optimiser updates tensor i of the table (everything but the log-mel statistics). */
int acmt_speech_trainable(const acmt_speech *s, int i);

/* Forward for B items: item b's log-mel frames frames[b] [tokens[b]*S, M] (not normalised). Logits land in
 * s->logits [R, K], item b at rows item_off[b]... Returns 0 or an error (sizes). */
int acmt_speech_forward(acmt_speech *s, const float *const *frames, const int64_t *tokens, int B, char *err,
                        size_t errlen);

/* After acmt_speech_forward on the same batch: the CTC loss of item b with labels[b] [nlabels[b]] (classes 1..K-1),
 * divided by its number of labels (at least 1), averaged over the items that have an alignment; items with fewer
 * tokens than their labels need are skipped (counted into *skipped, may be NULL) and give no gradient. Zeroes
 * s->grads and writes the gradient of that mean. Returns the mean (0 when every item was skipped), or NAN if a loss was
 * not finite or an item has more than max_labels labels (gradients then unusable). */
double acmt_speech_backward(acmt_speech *s, const int32_t *const *labels, const int *nlabels, int *skipped);

/* Classes of a text in the model's alphabet into out [strlen(text)]: the number written, or -1 for a character
 * outside the alphabet (its index in *bad). */
int acmt_speech_encode_text(const acmt_speech_config *c, const char *text, int32_t *out, int *bad);

/* The model metadata document (model.h) of this configuration; extra (may be NULL): a JSON object merged in at the
 * top level. Caller frees. */
char *acmt_speech_meta_json(const acmt_speech_config *c, const char *extra_json);

/* Writes the parameters as a speech model file the engine loads, atomically. */
int acmt_speech_save_model(const acmt_speech *s, const char *path, const char *extra_json, char *err, size_t errlen);

/* Matrix-product FLOPs of one token's forward without attention, and attention's per query-key pair (2 per
 * multiply-add). */
double acmt_speech_token_flops(const acmt_speech_config *c);

#endif
