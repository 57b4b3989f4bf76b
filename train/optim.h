/*
 * optim.h — AdamW (Loshchilov & Hutter: decoupled weight decay, bias-corrected moments), the learning-rate schedule
 * (linear warm-up, then cosine decay to a floor) and global-norm gradient clipping. Shared by `base` and `acmize`.
 * Plain loops over float arrays; the moments m, v have the parameters' layout and travel in checkpoints.
 */
#ifndef ACM_TRAIN_OPTIM_H
#define ACM_TRAIN_OPTIM_H

#include <stdint.h>

typedef struct {
    float lr;           /* set per step from the schedule */
    float beta1, beta2; /* 0.9, 0.999 */
    float eps;          /* 1e-8 */
    float weight_decay; /* decoupled: p -= lr * wd * p, only for tensors marked decay */
} acmt_adamw;

acmt_adamw acmt_adamw_default(void);

/* One AdamW update of n parameters; t = 1 for the first step (bias correction). decay: apply weight decay (matrices
 * yes; biases, norms, embeddings no). */
void acmt_adamw_update(const acmt_adamw *o, float *param, const float *grad, float *m, float *v, int64_t n, int64_t t,
                       int decay);

/* Learning rate at step (0-based) of total: linear warm-up from lr_max/warmup to lr_max over `warmup` steps, then
 * cosine from lr_max down to lr_min at step total-1. */
float acmt_lr_schedule(int64_t step, int64_t total, int64_t warmup, float lr_max, float lr_min);

/* Global L2 norm of g[0..n) (double accumulation); if max_norm > 0 and the norm exceeds it, g is scaled by
 * max_norm / norm. Returns the norm before clipping. */
double acmt_clip_grad_norm(float *g, int64_t n, double max_norm);

#endif
