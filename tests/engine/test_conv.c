/*
 * test_conv.c — engine/cpu/conv.c: im2col of a padded, strided 3x3 convolution against the definition (channel-first
 * and channel-last reads of the same values), and col2im as its exact adjoint: <col2im(d), x> = <d, im2col(x)>.
 * The stem's forward as a whole is checked against numpy in test_vit (golden vit_d), its backward in test_vit_train.
 */
#include <criterion/criterion.h>
#include <math.h>

#include "kernels.h"

enum { C = 2, H = 5, W = 4, K = 3, S = 2, PAD = 1, HO = 3, WO = 2, R = C * K * K };

static float at(const float *chw, int c, int y, int x) {
    return y < 0 || y >= H || x < 0 || x >= W ? 0.0f : chw[(c * H + y) * W + x];
}

Test(conv, im2col_matches_the_definition_in_both_layouts) {
    float chw[C * H * W], hwc[H * W * C], a[HO * WO * R], b[HO * WO * R];
    for (int i = 0; i < C * H * W; i++) chw[i] = (float)(i * 7 % 11) - 5.0f;
    for (int c = 0; c < C; c++)
        for (int p = 0; p < H * W; p++) hwc[p * C + c] = chw[c * H * W + p];
    acm__im2col_conv(a, chw, C, H, W, H * W, 1, K, S, PAD, HO, WO);
    acm__im2col_conv(b, hwc, C, H, W, 1, C, K, S, PAD, HO, WO);
    int bad = 0;
    for (int oy = 0; oy < HO; oy++)
        for (int ox = 0; ox < WO; ox++)
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int i = (oy * WO + ox) * R + (c * K + ky) * K + kx;
                        float want = at(chw, c, oy * S + ky - PAD, ox * S + kx - PAD);
                        bad += a[i] != want || b[i] != want;
                    }
    cr_assert_eq(bad, 0, "%d row entries differ from the definition", bad);
}

Test(conv, col2im_is_the_adjoint_of_im2col) {
    float x[H * W * C], d[HO * WO * R], col[HO * WO * R], dx[H * W * C] = {0};
    for (int i = 0; i < H * W * C; i++) x[i] = sinf((float)i);
    for (int i = 0; i < HO * WO * R; i++) d[i] = cosf(0.3f * (float)i);
    acm__im2col_conv(col, x, C, H, W, 1, C, K, S, PAD, HO, WO);
    acm__col2im_conv(dx, d, C, H, W, 1, C, K, S, PAD, HO, WO);
    double lhs = 0, rhs = 0;
    for (int i = 0; i < H * W * C; i++) lhs += (double)dx[i] * x[i];
    for (int i = 0; i < HO * WO * R; i++) rhs += (double)d[i] * col[i];
    cr_assert(fabs(lhs - rhs) <= 1e-5 * (1 + fabs(rhs)), "<col2im(d), x> = %.9g, <d, im2col(x)> = %.9g", lhs, rhs);
}
