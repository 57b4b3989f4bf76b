/*
 * conv.c — the ViT's convolutional stem on the CPU: im2col + one BLAS GEMM per layer, and the inverse of im2col for
 * training (engine/kernels.h, acm__conv_*; engine/vit.h, acm__stem_forward).
 *
 * Feature maps between stem layers are channel-last, [B, H, W, C] (rows of a GEMM's output are pixels); the image
 * itself is channel-first [C, H, W]. acm__im2col_conv reads either through a channel stride and a pixel stride, and
 * writes rows in (c, ky, kx) order, the order of a Conv2d weight [Co, Ci, k, k], so that a convolution is
 * rows · Wᵀ. The last layer's output is cut into the patch rows [B*Np, C*P*P] by the same function (k = stride = P,
 * no padding). Not here: other backends (acm_worker_new refuses a stem model on them).
 */
#include <string.h>

#include "kernels.h"
#include "vit.h"

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

void acm__stem_forward(const acm_model *m, acm__vit_acts *a, const acm_item *items, int B) {
    const acm_config *c = &m->cfg;
    int side = c->image_size, ci = c->in_chans;
    for (int i = 0; i < c->stem_depth; i++) {
        const int so = (side - 1) / c->stem_stride[i] + 1, co = c->stem_chans[i], K = ci * 9;
        const int64_t hw = (int64_t)so * so, hwi = (int64_t)side * side;
        for (int b = 0; b < B; b++) {
            if (i == 0) /* the image, channel-first */
                acm__im2col_conv(a->stem_col[i] + b * hw * K, items[b].pixels, ci, side, side, hwi, 1, 3,
                                 c->stem_stride[i], 1, so, so);
            else /* the previous layer's output, channel-last */
                acm__im2col_conv(a->stem_col[i] + b * hw * K, a->stem_act[i - 1] + b * hwi * ci, ci, side, side, 1,
                                 ci, 3, c->stem_stride[i], 1, so, so);
        }
        acm__matmul_forward(a->stem_pre[i], co, a->stem_col[i], K, m->stem_w[i], K, m->stem_b[i], B * hw, K, co, 0);
        acm__gelu_forward(a->stem_act[i], a->stem_pre[i], B * hw * co);
        side = so;
        ci = co;
    }
    const int P = c->patch_size, g = c->grid;
    const int64_t hw = (int64_t)side * side, rows = (int64_t)g * g * ci * P * P;
    for (int b = 0; b < B; b++)
        acm__im2col_conv(a->patches + b * rows, a->stem_act[c->stem_depth - 1] + b * hw * ci, ci, side, side, 1, ci,
                         P, P, 0, g, g);
}
