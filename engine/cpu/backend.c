/*
 * backend.c — the CPU backend (engine/backend.h): host memory and the kernels of engine/kernels.h on OpenBLAS.
 *
 * Nothing here copies what it need not: host_view and to_backend return the buffer they are given, weights are the
 * model's own pointers (the mmap'd file), and buffers are 64-byte aligned host memory. The object has no state, so
 * one static instance serves every worker.
 */
#include <emmintrin.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "kernels.h"

static void *cpu_alloc(acm__backend *be, size_t bytes) {
    (void)be;
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p) memset(p, 0, bytes);
    return p;
}
static void cpu_free(acm__backend *be, void *p) {
    (void)be;
    free(p);
}
static void cpu_memcpy(acm__backend *be, void *dst, const void *src, size_t n) {
    (void)be;
    if (n && dst != src) memcpy(dst, src, n);
}
static const void *cpu_view(acm__backend *be, void *buf, const void *src, size_t n) {
    (void)be;
    (void)buf;
    (void)n;
    return src;
}
static int cpu_sync(acm__backend *be, char *err, size_t errlen) {
    (void)be;
    (void)err;
    (void)errlen;
    return 0;
}

static void cpu_layernorm(acm__backend *be, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t N, int C, float eps) {
    (void)be;
    acm__layernorm_forward(out, mean, rstd, inp, weight, bias, N, C, eps);
}
static void cpu_matmul(acm__backend *be, float *out, int ldo, const float *inp, int ldi, const float *weight, int ldw,
                       const float *bias, int64_t N, int C, int OC, int accumulate) {
    (void)be;
    acm__matmul_forward(out, ldo, inp, ldi, weight, ldw, bias, N, C, OC, accumulate);
}
static void cpu_gelu(acm__backend *be, float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols) {
    (void)be;
    if (ldo == cols && ldi == cols) {
        acm__gelu_forward(out, inp, rows * cols);
        return;
    }
    for (int64_t i = 0; i < rows; i++) acm__gelu_forward(out + i * ldo, inp + i * ldi, cols);
}
static void cpu_attention(acm__backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                          int ld, int B, int T, int D, int H) {
    (void)be;
    acm__attention_forward(out, att, q, k, v, ld, B, T, D, H);
}
static void cpu_im2col(acm__backend *be, float *out, const acm_item *items, int B, int C, int Hi, int Wi, int P) {
    (void)be;
    const int64_t rows = (int64_t)(Hi / P) * (Wi / P) * C * P * P;
    for (int b = 0; b < B; b++) acm__im2col_patches(out + b * rows, items[b].pixels, C, Hi, Wi, P);
}
static void cpu_vit_embed(acm__backend *be, float *x, const float *cls, const float *pos, int B, int T, int D) {
    (void)be;
    for (int b = 0; b < B; b++) {
        float *xb = x + (int64_t)b * T * D;
        memcpy(xb, cls, sizeof(float) * (size_t)D);
        acm__add(xb, xb, pos, (int64_t)T * D);
    }
}
static void cpu_add(acm__backend *be, float *out, const float *a, const float *b, int64_t n) {
    (void)be;
    acm__add(out, a, b, n);
}
static void cpu_rope(acm__backend *be, float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t,
                     const float *sin_t) {
    (void)be;
    acm__rope_forward(x, ld, n, pos0, H, hd, cos_t, sin_t);
}
static void cpu_normalise_cols(acm__backend *be, float *x, int64_t rows, int cols, const float *sub, const float *div) {
    (void)be;
    acm__normalise_cols(x, rows, cols, sub, div);
}
static void cpu_copy_rows(acm__backend *be, float *dst, int ldd, const float *src, int lds, int64_t rows, int cols) {
    (void)be;
    acm__copy_rows(dst, ldd, src, lds, rows, cols);
}
static void cpu_attention_window(acm__backend *be, float *out, int ldo, float *scores, const float *q, int ldq,
                                 const float *k, int ldk, const float *v, int ldv, int Tq, int Tk, int D, int H) {
    (void)be;
    acm__attention_window_forward(out, ldo, scores, q, ldq, k, ldk, v, ldv, Tq, Tk, D, H);
}

/* o[0..n) += y[0..n) */
static void add_row(float *restrict o, const float *restrict y, int n) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        _mm_storeu_ps(o + j, _mm_add_ps(_mm_loadu_ps(o + j), _mm_loadu_ps(y + j)));
        _mm_storeu_ps(o + j + 4, _mm_add_ps(_mm_loadu_ps(o + j + 4), _mm_loadu_ps(y + j + 4)));
    }
    for (; j < n; j++) o[j] += y[j];
}
static void cpu_gather_rows(acm__backend *be, float *xg, int ld, const float *x, int ldx, const int32_t *perm,
                            int64_t n, int din) {
    (void)be;
    for (int64_t i = 0; i < n; i++) memcpy(xg + i * ld, x + (int64_t)perm[i] * ldx, sizeof(float) * (size_t)din);
}
static void cpu_scatter_rows(acm__backend *be, float *out, int ldo, int accumulate, const float *y, int ldy,
                             const int32_t *perm, int64_t n, int dout) {
    (void)be;
    for (int64_t i = 0; i < n; i++) {
        float *o = out + (int64_t)perm[i] * ldo;
        if (accumulate)
            add_row(o, y + i * ldy, dout);
        else
            memcpy(o, y + i * ldy, sizeof(float) * (size_t)dout);
    }
}
static void cpu_zero_rows(acm__backend *be, float *out, int ldo, const int32_t *perm, int64_t n, int dout) {
    (void)be;
    for (int64_t i = 0; i < n; i++) memset(out + (int64_t)perm[i] * ldo, 0, sizeof(float) * (size_t)dout);
}
static void cpu_close(acm__backend *be) { (void)be; }

static acm__backend cpu_backend = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .host_view = cpu_view,
    .to_backend = cpu_view,
    .sync = cpu_sync,
    .layernorm_forward = cpu_layernorm,
    .matmul_forward = cpu_matmul,
    .gelu_forward = cpu_gelu,
    .attention_forward = cpu_attention,
    .im2col_patches = cpu_im2col,
    .vit_embed = cpu_vit_embed,
    .add = cpu_add,
    .rope_forward = cpu_rope,
    .normalise_cols = cpu_normalise_cols,
    .copy_rows = cpu_copy_rows,
    .attention_window_forward = cpu_attention_window,
    .gather_rows = cpu_gather_rows,
    .scatter_rows = cpu_scatter_rows,
    .zero_rows = cpu_zero_rows,
    .close = cpu_close,
};

acm__backend *acm__backend_cpu(void) { return &cpu_backend; }
