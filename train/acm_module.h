/*
 * acm_module.h — training one Adaptive Computation Module (docs/METHOD.md §1-5): its parameters in a flat layout,
 * the forward of all N learners, the phase-1 distillation loss with "detach" gradients, the phase-2 gate labels, the
 * gate (three linear layers, trained uncollapsed), and the phase-3 straight-through Gumbel-softmax selection.
 *
 * Shapes: M rows (tokens of a batch), Din / Dout widths, N learners of width h (Nh = N*h), C gate choices, gh the gate's
 * hidden width. A parameter block holds, in this order and like nn.Linear:
 *   w1 [Nh, Din], b1 [Nh], w2 [Dout, Nh], gate.0.weight [gh, Din], gate.0.bias [gh], gate.1.weight [gh, gh],
 *   gate.1.bias [gh], gate.2.weight [C, gh], gate.2.bias [C]
 * — exactly the tensors of an ACM in a model file (engine/model.h), so saving is a copy of slices.
 * Gradients use the same layout and are ACCUMULATED. Choice c means k = kmin + c (kmin 0 for MLP ACMs, 1 for
 * projections).
 *
 * Budget-conditioned gates (acm-train acmize --film; docs/METHOD.md §6): FiLM on the gate's second hidden layer. With
 * g1 = gate.1(gate.0(z)) [M, gh], row i of the last layer's input becomes
 *     g1'_i = g1_i + beta_i (gamma ⊙ g1_i + delta),        logits_i = W2 g1'_i + b2,
 * gamma ("scale") and delta ("shift") [gh] per ACM, kept outside the parameter block (acmt_film) and initialised to 0,
 * so that a gate without them, or with them at 0, is exactly the unconditioned one. Bilinear in (z, beta): the engine
 * collapses it into two [C, Din] matrices (engine/model.h).
 */
#ifndef ACM_TRAIN_ACM_MODULE_H
#define ACM_TRAIN_ACM_MODULE_H

#include <stdint.h>

#include "train/rng.h"

#define ACMT_MAX_CHOICES 17

typedef struct {
    char name[64]; /* e.g. "blocks.2.attn.q" */
    int din, dout, n, h, nh, kmin, gelu, choices, gh;
    int64_t w1, b1, w2, g0w, g0b, g1w, g1b, g2w, g2b; /* offsets in floats within the block */
    int64_t gate;  /* offset of the first gate tensor (the gate's parameters are [gate, numel)) */
    int64_t numel;
} acmt_acm_layout;

void acmt_acm_layout_init(acmt_acm_layout *L, const char *name, int din, int dout, int n, int h, int is_mlp, int gh);

/* A gate's FiLM parameters and the budget each row's gate sees. */
typedef struct {
    const float *p;    /* [2, gh]: scale (gamma) then shift (delta) */
    float *g;          /* [2, gh] their gradient, accumulated by the gate backward (NULL: not accumulated) */
    const float *beta; /* [M] beta per row */
} acmt_film;

/* Everything one ACM's forward keeps for its backward, for up to max_rows rows. */
typedef struct {
    float *hid;    /* [M, Nh] learner pre-activations */
    float *act;    /* [M, Nh] learner activations (GELU for MLP ACMs; a copy of hid for projections) */
    float *cum;    /* [N, M, Dout]: cum[k-1] = h(z, k) = s_1(z) + ... + s_k(z) */
    float *g0, *g1, *logits; /* [M, gh], [M, gh], [M, C] gate layers */
    float *g1f, *dg1f; /* [M, gh] FiLM: g1' (the last layer's input) and its gradient */
    acmt_film film;    /* the FiLM of the last gate forward (film.p NULL: none), for the gate backward */
    float *ysoft;  /* [M, C] phase 3: softmax((logits + gumbel) / tau) */
    uint8_t *k;    /* [M] phase 3: selected k */
    /* backward scratch */
    float *ds;     /* [M, Dout] */
    float *dact;   /* [M, Nh] */
    float *dg0, *dg1, *dlogits; /* [M, gh], [M, gh], [M, C] */
    float *zs, *dzs;   /* [M, Din] rows sorted by k (phase 3, learners on demand) and their gradient */
    int32_t *perm;     /* [M] sorted row -> original row */
    void *mem;
} acmt_acm_acts;

int acmt_acm_acts_alloc(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t max_rows);
void acmt_acm_acts_free(acmt_acm_acts *a);

/* Initialisation: w1, b1 and the gate like nn.Linear (uniform ±1/√fan_in); w2 = 0, so every learner starts as a
 * no-op correction. */
void acmt_acm_init_random(float *p, const acmt_acm_layout *L, acmt_rng *rng);
/* MLP ACMs only: learner n takes hidden units n*h .. n*h+h-1 of the teacher's fc1/fc2, so that h(z, N) equals the
 * teacher's MLP without its output bias. Gate initialised at random. */
void acmt_acm_init_from_mlp(float *p, const acmt_acm_layout *L, const float *fc1_w, const float *fc1_b,
                            const float *fc2_w, acmt_rng *rng);

/* All N learners on M rows z [M, Din] (row stride ldz): hid, act, cum. */
void acmt_acm_learners_forward(acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z, int ldz,
                               int64_t M);

/* Phase 1. Loss = (1/N) Σ_k mean over rows and Dout of (h(z, k) − o)². Gradients with the "detach" rule: learner k only
 * receives the gradient of the k-th term (out_k = s_k(z) + stopgrad(h(z, k−1))). Returns the loss; accumulates
 * into g. errs (optional, [N+1]): the mean squared error of each k = 0..N (k = 0: the error of predicting 0). */
double acmt_acm_distill_backward(float *g, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z,
                                 int ldz, const float *o, int ldo, int64_t M, double *errs);

/* Phase 2 label rule (docs/METHOD.md §4) on one token's errors e[0..N] (e[0] = ‖o‖): the first j >= 1 with
 * e[j]/e[j+1] < 1.2 gives k = j + 1; none, or e[0]/e[1] < 1.2 already, gives N. e[j+1] = 0 counts as improved
 * (ratio ∞) unless e[j] = 0 too (0/0: not improved). Returns k in 2..N (N for N < 2). */
int acmt_label_rule(const double *e, int N);

/* Phase 2 labels for M rows, as choice indices (k − kmin), from the learners' cum (after acmt_acm_learners_forward)
 * and the teacher's output o. */
void acmt_acm_gate_labels(int32_t *labels, const acmt_acm_acts *a, const acmt_acm_layout *L, const float *o, int ldo,
                          int64_t M);

/* The gate's three layers: g0, g1, logits. */
void acmt_acm_gate_forward(acmt_acm_acts *a, const float *p, const acmt_acm_layout *L, const float *z, int ldz,
                           int64_t M);
/* The same with FiLM on g1 (film NULL: exactly acmt_acm_gate_forward): g0, g1, g1f, logits. The acts remember film,
 * so that the backward (acmt_acm_gate_backward, and the select/sparse backwards that call it) goes through it too:
 * dgamma += sum_i beta_i dg1'_i ⊙ g1_i, ddelta += sum_i beta_i dg1'_i (into film->g), dg1_i = dg1'_i ⊙ (1 + beta_i
 * gamma). */
void acmt_acm_gate_forward_film(acmt_acm_acts *a, const float *p, const acmt_film *film, const acmt_acm_layout *L,
                                const float *z, int ldz, int64_t M);
/* Back through the gate from a->dlogits [M, C]: gate gradients into g, and dz [M, Din] (row stride lddz, may be NULL)
 * accumulated; through the FiLM of the last forward, if it had one. */
void acmt_acm_gate_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                            const float *z, int ldz, int64_t M);

/* Phase 2 (gate pre-training) on one ACM whose learners' forward has run on z: labels[M] from the learners' outputs
 * against the target o (acmt_acm_gate_labels), the gate forward, its cross-entropy on the labels (loss_rows [M]
 * scratch) and the backward of the mean over M into the gate gradients g. Returns the mean loss; *hits gains the rows
 * whose highest gate logit is the label. */
double acmt_acm_gate_pretrain(float *g, int32_t *labels, float *loss_rows, double *hits, acmt_acm_acts *a,
                              const float *p, const acmt_acm_layout *L, const float *z, int ldz, const float *o,
                              int ldo, int64_t M);

/* Phase 3: hard Gumbel-softmax selection at temperature tau from a->logits: ysoft, k. rng NULL: no noise (argmax). */
void acmt_acm_gumbel_select(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M, float tau, acmt_rng *rng);

/* out[M, Dout] (row stride ldo; added when accumulate) = h(z, k_m) · y_m[k_m] where y is the hard one-hot (value 1):
 * the selected prefix sum, zero for k = 0. */
void acmt_acm_select_forward(float *out, int ldo, int accumulate, const acmt_acm_acts *a, const acmt_acm_layout *L,
                             int64_t M);

/* Every row runs k = clamp(k, kmin, N) learners; no gate (the uniform baseline). ysoft becomes the one-hot. */
void acmt_acm_fixed_select(acmt_acm_acts *a, const acmt_acm_layout *L, int64_t M, int k);

/* Backward of acmt_acm_select_forward from dout [M, Dout] (row stride lddo) plus dy_aux [M, C] (gradient of auxiliary
 * losses with respect to the hard one-hot y; may be NULL). train_gate = 0 skips the gate (fixed selections). Straight-through: the gradient with respect to y (task: only
 * the selected entry, <dout, h(z, k)>; plus dy_aux) reaches the logits through the soft sample:
 * dlogit_j = ysoft_j (dy_j − Σ_c ysoft_c dy_c) / tau. Learner n receives dout on the rows with k >= n.
 * Accumulates parameter gradients into g and the input gradient into dz (row stride lddz) from both the learners and
 * the gate. */
void acmt_acm_select_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                              const float *z, int ldz, const float *dout, int lddo, const float *dy_aux, float tau,
                              int train_gate, int64_t M);

/* Phase 3 with learners on demand (after the gate and a selection have set k): rows sorted by k so that learner n
 * runs only on the rows with k >= n + 1, as at inference. Same result as acmt_acm_learners_forward +
 * acmt_acm_select_forward, at the cost of the selected learners only; hid, act and cum are kept in sorted order for
 * acmt_acm_sparse_backward, which matches acmt_acm_select_backward. */
void acmt_acm_sparse_forward(float *out, int ldo, int accumulate, acmt_acm_acts *a, const float *p,
                             const acmt_acm_layout *L, const float *z, int ldz, int64_t M);
void acmt_acm_sparse_backward(float *g, float *dz, int lddz, acmt_acm_acts *a, const float *p, const acmt_acm_layout *L,
                              const float *z, int ldz, const float *dout, int lddo, const float *dy_aux, float tau,
                              int train_gate, int64_t M);

#endif
