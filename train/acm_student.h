/*
 * acm_student.h — an ACM model in training: a static ViT (vit_train.h) whose chosen modules are replaced by ACMs
 * (acm_module.h). It owns the ACMs' flat parameter block (with gradients and Adam moments), their activations, the
 * engine model built over both parameter sets (so the one forward pass of engine/vit.c runs it, with the ACM hook),
 * the phase-3 auxiliary losses, and the writer of the model file.
 *
 * Which modules: a mask of positions (ACM_POS_Q .. ACM_POS_MLP) applied to every block. q, k and v split timm's fused
 * qkv; a static q, k or v beside an ACM one is a slice of the fused weight (rows p*D .. p*D+D-1), so nothing is copied.
 * ACMs are numbered in execution order (per block: q, k, v, o, MLP), the engine's order.
 */
#ifndef ACM_TRAIN_ACM_STUDENT_H
#define ACM_TRAIN_ACM_STUDENT_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"
#include "train/acm_module.h"
#include "train/rng.h"
#include "train/vit_train.h"

#define ACMT_POS_BIT(p) (1u << (p))
#define ACMT_POS_ALL 0x1fu

typedef struct {
    char name[96];
    float *p, *g; /* data and gradient (gradient NULL for slices: their gradient lives in the fused tensor) */
    int ndim;
    int64_t shape[4];
} acmt_tensor_ref;

typedef struct {
    acmt_vit *v;           /* the static part (owned) */
    unsigned mask;         /* positions replaced by ACMs */
    int n_acm;
    acmt_acm_layout *L;    /* [n_acm] */
    int64_t *off;          /* [n_acm] offsets into the ACM block */
    int64_t *blk_of;       /* [n_acm] block index; pos_of below */
    int *pos_of;           /* [n_acm] acm_position */
    int64_t nparams;       /* floats in the ACM block */
    float *ap, *ag, *am, *av; /* ACM parameters, gradients, Adam m, v */
    acmt_acm_acts *acts;   /* [n_acm] for v->max_batch * T rows */
    const float **z;       /* [n_acm] input of each ACM in the last forward (row stride ldz) */
    int *ldz;
    float **dy_aux;        /* [n_acm] [M, C] auxiliary-loss gradients w.r.t. the hard one-hot */
    acmt_tensor_ref *tens; /* the model file's tensors */
    int n_tens;
    acm_model *model;      /* the engine model over v->params and ap */
    char *meta_json;       /* its metadata */
    /* phase 3 forward */
    int train_gates;       /* 1: Gumbel noise from rng; 0: argmax */
    int uniform_k;         /* > 0: every token runs this k in every ACM, no gates (the uniform baseline) */
    float tau;
    acmt_rng *rng;
    double *p_learner;     /* [n_acm] FLOPs of one learner for one token */
    double p_total;        /* sum over ACMs of N p */
    /* budget-conditioned gates (acmt_student_film; acm_module.h): FiLM scale and shift of every ACM's gate */
    int film;              /* 1 when enabled */
    int64_t nfilm;         /* floats: sum over ACMs of 2 gh */
    int64_t *foff;         /* [n_acm] offset of ACM a's [2, gh] (scale, shift) */
    float *fp, *fg, *fm, *fv; /* [nfilm] FiLM parameters (0 at start), gradients, Adam m, v */
    float *row_beta;       /* [max_batch * T] the beta each row's gate sees in the phase-3 forward */
    float beta;            /* phase 3: the budget target of the batch, which the gates see when film is on */
} acmt_student;

/* Parses "q,k,v,o,mlp" (any subset, or "all") into a mask; -1 if invalid. */
int acmt_parse_modules(const char *s);

/* Builds the student around v (taken over; freed with the student) for the masked positions, N learners, gate hidden
 * width gh. Projection learners get h = round((D^2 + D) / (2D + 1) / N) (docs/METHOD.md §1). */
acmt_student *acmt_student_new(acmt_vit *v, unsigned mask, int n_learners, int gh, char *err, size_t errlen);
void acmt_student_free(acmt_student *s);

/* Turns on budget-conditioned gates: allocates every ACM's FiLM scale and shift at 0 (the gates are unchanged until
 * phase 3 trains them). The phase-3 forward then feeds s->beta to every gate, the backward fills s->fg, and the model
 * file gets NAME.gate.film.scale and NAME.gate.film.shift. Returns 0, or -1 with a message. */
int acmt_student_film(acmt_student *s, char *err, size_t errlen);

/* Initialises every ACM: init_mlp_from_teacher = 1 copies the teacher's MLP weights into MLP ACMs (learner n = hidden
 * units n*h..), the rest at random. */
void acmt_student_init(acmt_student *s, int init_mlp_from_teacher, acmt_rng *rng);

/* Phase-3 forward of B items x[B, C, S, S]: Gumbel (train_gates) or argmax gates, conditioned on s->beta when
 * s->film; logits in s->v->acts.logits. */
int acmt_student_forward(acmt_student *s, const float *x, int B, char *err, size_t errlen);

/* Phase-3 auxiliary losses on the last forward's hard choices (docs/METHOD.md §5): fills s->dy_aux with
 * w_b dL_b + w_e dL_e + w_d dL_d with respect to the one-hot choices and returns the three losses and the mean realised
 * budget. */
typedef struct {
    double budget, entropy, diversity; /* L_b, L_e, L_d */
    double realised;                   /* mean over the batch of the realised learner-compute fraction */
} acmt_aux;
acmt_aux acmt_student_aux(acmt_student *s, int B, double beta_target, double w_b, double w_e, double w_d);

/* The same on explicit choices: k[a] [B*T] per ACM a, layouts L[a], learner FLOPs p[a]; writes dy[a] [B*T, C_a].
 * Definitions (k as kmin + c on the one-hot y, so every derivative is with respect to y):
 *   L_b = |mean_b r_b - beta|, r_b = sum_{t,a} k p_a / (T sum_a N_a p_a)
 *   L_e = mean over (b, a) of sum_c h_c log h_c / log(N_a + 1), h_c = (1/T) sum_t y_tc
 *   L_d = -2 mean over pairs b < m of |q_b - q_m|, q_b = (1/(T A)) sum_{t,a} k / N_a */
acmt_aux acmt_aux_losses(float *const *dy, const uint8_t *const *k, const acmt_acm_layout *L, const double *p,
                         int A, int B, int T, double beta, double w_b, double w_e, double w_d);

/* The diversity term on the items' mean choices q[B] (B >= 2): returns L_d = -2 mean over pairs b < m of |q_b - q_m|
 * and adds dL_d/dq_b into dq[b]. */
double acmt_diversity_loss(const double *q, int B, double *dq);

/* Backward after acmt_student_forward + acmt_student_aux: cross-entropy with label smoothing on the logits, then the
 * static layers and every ACM (learners, gates via straight-through, auxiliary gradients). Zeroes and fills v->grads
 * and s->ag (and s->fg with FiLM). Returns the mean cross-entropy. */
double acmt_student_backward(acmt_student *s, const int32_t *targets, int B, float smoothing, int *correct);

/* Writes the ACM model file: static tensors, ACM tensors (with FiLM: NAME.gate.film.scale and .shift [gh] too),
 * metadata (the student's, with extra_json merged at the top level, e.g. {"budget": ..., "eval": ...}; a FiLM model
 * needs "budget": {"gate_beta": ...}, engine/model.h). */
int acmt_student_save(const acmt_student *s, const char *path, const char *extra_json, char *err, size_t errlen);

#endif
