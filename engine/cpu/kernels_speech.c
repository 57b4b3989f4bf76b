/*
 * kernels_speech.c — the CPU kernels the speech encoder adds to engine/kernels.h: rotary positions and attention over a
 * window of keys (a chunk and its left context). The scores of one head go through OpenBLAS like the ViT's attention.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

void acm__rope_forward(float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t, const float *sin_t) {
    const int half = hd / 2;
    for (int64_t i = 0; i < n; i++) {
        const float *c = cos_t + (pos0 + i) * half, *s = sin_t + (pos0 + i) * half;
        float *row = x + i * ld;
        for (int h = 0; h < H; h++) {
            float *a = row + h * hd, *b = a + half;
            for (int j = 0; j < half; j++) {
                const float x0 = a[j], x1 = b[j];
                a[j] = x0 * c[j] - x1 * s[j];
                b[j] = x1 * c[j] + x0 * s[j];
            }
        }
    }
}

void acm__normalise_cols(float *x, int64_t rows, int cols, const float *sub, const float *div) {
    for (int64_t i = 0; i < rows; i++)
        for (int j = 0; j < cols; j++) x[i * cols + j] = (x[i * cols + j] - sub[j]) / div[j];
}

void acm__copy_rows(float *dst, int ldd, const float *src, int lds, int64_t rows, int cols) {
    for (int64_t i = 0; i < rows; i++) memcpy(dst + i * ldd, src + i * lds, sizeof(float) * (size_t)cols);
}

void acm__attention_window_forward(float *out, int ldo, float *scores, const float *q, int ldq, const float *k, int ldk,
                                   const float *v, int ldv, int Tq, int Tk, int D, int H) {
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < H; h++) {
        /* scores[Tq, Tk] = scale · Q_h K_hᵀ; softmax per row; out_h[Tq, hd] = scores · V_h */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Tq, Tk, hd, scale, q + h * hd, ldq, k + h * hd, ldk, 0.0f,
                    scores, Tk);
        for (int t = 0; t < Tq; t++) acm__softmax_row(scores + (int64_t)t * Tk, scores + (int64_t)t * Tk, Tk);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Tq, hd, Tk, 1.0f, scores, Tk, v + h * hd, ldv, 0.0f,
                    out + h * hd, ldo);
    }
}
