/*
 * conv.c — im2col for the ViT's convolutional stem (a convolution is then one GEMM), and its adjoint col2im for
 * training (engine/kernels.h). Inference runs the stem through its backend (engine/vit.c, acm__stem_forward: the CPU
 * backend's im2col_conv is acm__im2col_conv, followed by the backend's GEMM and GELU).
 *
 * Feature maps between stem layers are channel-last, [B, H, W, C] (rows of a GEMM's output are pixels); the image
 * itself is channel-first [C, H, W]. acm__im2col_conv reads either through a channel stride and a pixel stride, and
 * writes rows in (c, ky, kx) order, the order of a Conv2d weight [Co, Ci, k, k], so that a convolution is
 * rows · Wᵀ. The last layer's output is cut into the patch rows [B*Np, C*P*P] by the same function (k = stride = P,
 * no padding).
 */
#include <string.h>

#include "kernels.h"

void acm__im2col_conv(float *col, const float *img, int C, int H, int W, int64_t cs, int64_t ps, int k, int stride,
                      int pad, int Ho, int Wo) {
    const int64_t K = (int64_t)C * k * k;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            float *row = col + ((int64_t)oy * Wo + ox) * K;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < k; ky++) {
                    const int y = oy * stride + ky - pad;
                    for (int kx = 0; kx < k; kx++) {
                        const int x = ox * stride + kx - pad;
                        *row++ = y < 0 || y >= H || x < 0 || x >= W ? 0.0f : img[c * cs + ((int64_t)y * W + x) * ps];
                    }
                }
        }
}

void acm__col2im_conv(float *dimg, const float *dcol, int C, int H, int W, int64_t cs, int64_t ps, int k, int stride,
                      int pad, int Ho, int Wo) {
    const int64_t K = (int64_t)C * k * k;
    for (int oy = 0; oy < Ho; oy++)
        for (int ox = 0; ox < Wo; ox++) {
            const float *row = dcol + ((int64_t)oy * Wo + ox) * K;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < k; ky++) {
                    const int y = oy * stride + ky - pad;
                    for (int kx = 0; kx < k; kx++, row++) {
                        const int x = ox * stride + kx - pad;
                        if (y >= 0 && y < H && x >= 0 && x < W) dimg[c * cs + ((int64_t)y * W + x) * ps] += *row;
                    }
                }
        }
}
