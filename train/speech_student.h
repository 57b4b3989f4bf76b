/*
 * speech_student.h — a speech encoder in ACM conversion: a static speech encoder (speech_train.h) whose MLPs are
 * replaced by ACMs (acm_module.h), one per block, named blocks.{l}.mlp as the engine expects (engine/model.h). It owns
 * the ACMs' flat parameter block (with gradients and Adam moments), their budget-conditioned gates' FiLM parameters
 * (acm_module.h; 0 at the start, so the gate is the unconditioned one until phase 3 trains them), their activations,
 * and the writer of the model file (arch "speech" with ACM modules, which the engine loads and runs per chunk).
 *
 * Why MLPs only: in this encoder (D 144, Hd 4D) an MLP is 2/3 of a block's matrix-product FLOPs, the projections
 * (qkv and o, 4 D^2) the rest, and an ACM projection costs as much as the projection at full budget while adding a
 * gate and N small products (the ViT measurements in bench/RESULTS.md: split q/k/v ACMs lose the fused qkv product);
 * so the MLPs carry the budget here. A projection ACM is not supported by this student.
 *
 * The forward is acmt_speech_forward with the MLP hook (speech_train.h): each ACM decides per token (gate, then a hard
 * Gumbel-softmax sample or the argmax), or every token runs uniform_k learners (no gate: uniform_k = N is the full
 * model), and runs only the selected learners. Rows are the packed tokens of the batch (item b at
 * sp->item_off[b]..). Not thread-safe.
 */
#ifndef ACM_TRAIN_SPEECH_STUDENT_H
#define ACM_TRAIN_SPEECH_STUDENT_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"
#include "train/acm_module.h"
#include "train/acm_student.h"
#include "train/rng.h"
#include "train/speech_train.h"

typedef struct {
    acmt_speech *sp;         /* the static part (owned); its MLP tensors are the teacher's, kept for phases 1-2 */
    int n_acm;               /* = depth: ACM a replaces block a's MLP */
    acmt_acm_layout *L;      /* [n_acm] */
    int64_t *off;            /* [n_acm] offsets into the ACM block */
    int64_t nparams;
    float *ap, *ag, *am, *av; /* ACM parameters, gradients, Adam m, v */
    int64_t nfilm;           /* 2 gh per ACM */
    float *fp, *fg, *fm, *fv; /* FiLM scale and shift of every gate [n_acm, 2, gh] */
    float *row_beta;         /* [max_rows] the budget every row's gate sees */
    acmt_acm_acts *acts;     /* [n_acm] for sp->max_rows rows */
    float **dy_aux;          /* [n_acm] [max_rows, C] auxiliary-loss gradients w.r.t. the hard one-hot */
    double p_learner;        /* FLOPs of one learner for one token (the same in every block) */
    /* forward settings */
    int uniform_k;           /* > 0: every token runs this k, no gate */
    int train_gates;         /* 1: Gumbel noise from rng; 0: argmax */
    float tau, beta;         /* Gumbel temperature; the budget the FiLM gates see */
    acmt_rng *rng;
    /* evaluation under an engine policy (acmt_speech_student_set_policy): decisions per chunk by the engine's own
     * acm__decide_k on the gate logits, FiLM gates at the budget the engine gives them */
    const acm_model *pm;
    void *pscratch; /* the acm__acm_scratch of a worker over pm */
    acm_policy pol;
} acmt_speech_student;

/* Builds the student around sp (taken over on success): N learners of width Hd/N, gate hidden width gh. */
acmt_speech_student *acmt_speech_student_new(acmt_speech *sp, int n_learners, int gh, char *err, size_t errlen);
void acmt_speech_student_free(acmt_speech_student *s);

/* A student over the weights of an ACM speech model file (one MLP ACM per block, FiLM gates; as
 * acmt_speech_student_save writes them), for batches of up to max_items items and max_rows tokens. NULL with a message
 * naming the file and the tensor on a mismatch. */
acmt_speech_student *acmt_speech_student_load(const char *path, int max_items, int64_t max_rows, char *err,
                                              size_t errlen);

/* Forward decisions as the engine makes them for policy p on model m (loaded from the same file): per chunk of the
 * batch (the engine's decision units), acm__decide_k on the gate logits; scratch is acm__worker_scratch of a worker
 * over m. m NULL: back to the training decisions. */
void acmt_speech_student_set_policy(acmt_speech_student *s, const acm_model *m, void *scratch, acm_policy p);

/* FLOPs of item b in the last forward, counted as the engine counts them: the static products, the selected learners,
 * the gates where the policy consults them (not FIXED, not CAP at beta >= 1), attention per chunk. */
double acmt_speech_student_item_flops(const acmt_speech_student *s, int b);

/* Learner n takes hidden units n*h.. of the teacher's MLP (so h(z, N) is the teacher's MLP without its output bias),
 * gates at random, FiLM 0. */
void acmt_speech_student_init(acmt_speech_student *s, acmt_rng *rng);

/* The ACM forward of B items (frames and tokens as acmt_speech_forward); logits in s->sp->logits. */
int acmt_speech_student_forward(acmt_speech_student *s, const float *const *frames, const int64_t *tokens, int B,
                                char *err, size_t errlen);

/* Budget, entropy and diversity losses on the last forward's choices (docs/METHOD.md §5), with items of different
 * lengths: the realised budget is the batch's learner FLOPs over what N learners everywhere would cost, i.e. the
 * items' budgets weighted by their lengths, and L_b = |realised - beta|; the entropy of item b's k histogram over its
 * T_b tokens and the diversity of the items' mean k as acmt_aux_losses. Fills s->dy_aux. */
acmt_aux acmt_speech_student_aux(acmt_speech_student *s, double beta, double w_b, double w_e, double w_d);

/* The realised budget of item b in the last forward (its learner FLOPs over N learners on every token). */
double acmt_speech_student_item_budget(const acmt_speech_student *s, int b);

/* CTC backward through the static layers and the ACMs (learners, gates straight-through, FiLM, the auxiliary
 * gradients unless uniform_k): zeroes and fills sp->grads, s->ag and s->fg. Returns as acmt_speech_backward. */
double acmt_speech_student_backward(acmt_speech_student *s, const int32_t *const *labels, const int *nlabels,
                                    int *skipped);

/* Writes the ACM model file: the static tensors but the MLPs, every ACM's tensors with its FiLM scale and shift, the
 * metadata of the static model with the ACM list and extra_json merged at the top level (it must give
 * "budget": {"gate_beta": ...}). */
int acmt_speech_student_save(const acmt_speech_student *s, const char *path, const char *extra_json, char *err,
                             size_t errlen);

#endif
