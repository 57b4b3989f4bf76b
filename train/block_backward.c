/*
 * block_backward.c — backward pieces of the transformer block shared by the trainers (see block_backward.h).
 */
#include "train/block_backward.h"

#include <string.h>

#include "kernels.h"

void acmt_mlp_backward(float *dln, float *dW1, float *db1, float *dW2, float *db2, float *dhid, float *dfc1,
                       const float *dout, const float *ln2, const float *fc1, const float *gelu, const float *W1,
                       const float *W2, int64_t M, int D, int Hd) {
    memset(dhid, 0, sizeof(float) * (size_t)(M * Hd));
    acm__matmul_backward(dhid, Hd, dW2, db2, dout, D, gelu, Hd, W2, Hd, M, Hd, D);
    memset(dfc1, 0, sizeof(float) * (size_t)(M * Hd));
    acm__gelu_backward_out(dfc1, fc1, gelu, dhid, M * Hd);
    acm__matmul_backward(dln, D, dW1, db1, dfc1, Hd, ln2, D, W1, D, M, D, Hd);
}
