/*
 * distill.h — knowledge distillation on logits (Hinton et al. 2015), for phase 3 of acmize (--distill W[,T]).
 *
 * With q^s = softmax(z^s / T) and q^t = softmax(z^t / T) per item, the term is
 *   L_kd = w · T² · (1/B) Σ_b KL(q^t_b ‖ q^s_b) = w · T² · (1/B) Σ_b Σ_k q^t_bk (log q^t_bk − log q^s_bk)
 * (T² keeps the gradient's scale independent of T), and its gradient with respect to the student's logits is
 *   ∂L_kd / ∂z^s_bk = w · T · (q^s_bk − q^t_bk) / B.
 * The teacher's logits are constants (no gradient flows to the teacher).
 */
#ifndef ACM_TRAIN_DISTILL_H
#define ACM_TRAIN_DISTILL_H

/* student, teacher: [B, K] logits. Adds the gradient into dlogits [B, K] (NULL: not wanted) and returns L_kd. */
double acmt_distill_loss(float *dlogits, const float *student, const float *teacher, int B, int K, float T, float w);

#endif
