/*
 * block_backward.h — backward pieces of the pre-norm transformer block that the ViT trainer (vit_train.c) and the
 * speech trainer (speech_train.c) run alike. Shapes: M rows, D width, Hd MLP hidden width.
 */
#ifndef ACM_TRAIN_BLOCK_BACKWARD_H
#define ACM_TRAIN_BLOCK_BACKWARD_H

#include <stdint.h>

/* The static MLP branch out = fc2(gelu(fc1(ln2))), from dout [M, D] (the gradient at its output): dln [M, D]
 * accumulated (the caller zeroes it), the four parameter gradients accumulated, dhid and dfc1 [M, Hd] scratch
 * (overwritten). fc1 and gelu [M, Hd] are the forward's saved activations, ln2 [M, D] its input. */
void acmt_mlp_backward(float *dln, float *dW1, float *db1, float *dW2, float *db2, float *dhid, float *dfc1,
                       const float *dout, const float *ln2, const float *fc1, const float *gelu, const float *W1,
                       const float *W2, int64_t M, int D, int Hd);

#endif
