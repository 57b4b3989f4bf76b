/*
 * backend.c — the CPU backend (engine/backend.h): host memory and the kernels of engine/kernels.h on OpenBLAS.
 *
 * Nothing here copies what it need not: host_view and to_backend return the buffer they are given, weights are the
 * model's own pointers (the mmap'd file), and buffers are 64-byte aligned host memory. A worker of one thread uses the
 * shared static instance (no state); a worker of several threads gets its own instance (acm__backend_cpu_new) whose
 * impl is its thread pool (engine/cpu/pool.h): LayerNorm, GELU, attention (one task per item and head), adds and the
 * ACM executor's row moves then run on every thread of the worker, between the GEMMs, which stay on OpenBLAS's
 * threads. Every parallel loop splits independent indices (rows, elements, heads), so its results are the same bits at
 * any thread count.
 *
 * A pooled worker's GEMMs can instead split their rows across the pool, one single-threaded sgemm per member, with
 * OpenBLAS at one thread for the region as below (acm__cpu_gemm_split; a GEMM of fewer than SPLIT_MIN_ROWS rows per
 * member stays whole). Off by default: measured against OpenBLAS's own threads it lost (0.71-0.99, bench/RESULTS.md,
 * issue 26), each member packing the whole weight matrix where OpenBLAS's threads share one packed copy.
 *
 * Attention's per-head products are GEMMs called from several threads at once: for that region OpenBLAS is set to one
 * thread (openblas_set_num_threads is process-wide), and set back after it, so the pool's threads and OpenBLAS's never
 * run at the same time. A process with several multi-threaded workers would race on that setting; acm_worker_new
 * refuses workers x threads beyond the cores, and acmd's multi-worker layouts run one thread per worker (no pool).
 */
#include <emmintrin.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu.h"
#include "kernels.h"
#include "pool.h"

/* The pool of a backend: NULL for the shared instance (one thread). */
static acm__pool *pool_of(acm__backend *be) { return be ? (acm__pool *)be->impl : NULL; }

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

typedef struct {
    float *out, *mean, *rstd;
    const float *inp, *weight, *bias;
    int C;
    float eps;
} ln_ctx;
static void ln_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const ln_ctx *a = c;
    acm__layernorm_forward(a->out + i0 * a->C, a->mean ? a->mean + i0 : NULL, a->rstd ? a->rstd + i0 : NULL,
                           a->inp + i0 * a->C, a->weight, a->bias, i1 - i0, a->C, a->eps);
}
static void cpu_layernorm(acm__backend *be, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                          const float *bias, int64_t N, int C, float eps) {
    ln_ctx a = {out, mean, rstd, inp, weight, bias, C, eps};
    acm__pool_run(pool_of(be), N, ln_task, &a);
}
typedef struct {
    float *out;
    const float *bias;
    int ldo, OC, accumulate;
} bias_ctx;
static void bias_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const bias_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) {
        float *o = a->out + i * a->ldo;
        if (a->accumulate)
            for (int j = 0; j < a->OC; j++) o[j] += a->bias[j];
        else
            memcpy(o, a->bias, sizeof(float) * (size_t)a->OC);
    }
}
typedef struct {
    float *out;
    const float *inp, *weight, *bias;
    int ldo, ldi, ldw, C, OC, accumulate;
} mm_ctx;
static void mm_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const mm_ctx *a = c;
    acm__matmul_forward(a->out + i0 * a->ldo, a->ldo, a->inp + i0 * a->ldi, a->ldi, a->weight, a->ldw, a->bias, i1 - i0,
                        a->C, a->OC, a->accumulate);
}
static int gemm_split = 0;
void acm__cpu_gemm_split(int on) { gemm_split = on; }
/* Rows per member below which a GEMM stays whole on OpenBLAS's threads. */
enum { SPLIT_MIN_ROWS = 64 };
static void cpu_matmul(acm__backend *be, float *out, int ldo, const float *inp, int ldi, const float *weight, int ldw,
                       const float *bias, int64_t N, int C, int OC, int accumulate) {
    acm__pool *p = pool_of(be);
    const int threads = acm__pool_threads(p);
    /* the rows split across the pool, one single-threaded sgemm per member (not from inside a region, where OpenBLAS
     * is at one thread already: acm_blas_threads() says so) */
    if (gemm_split && threads > 1 && N >= (int64_t)SPLIT_MIN_ROWS * threads && C > 0 && OC > 0 &&
        acm_blas_threads() > 1) {
        mm_ctx a = {out, inp, weight, bias, ldo, ldi, ldw, C, OC, accumulate};
        const int blas = acm_blas_threads();
        acm_blas_set_threads(1);
        acm__pool_run(p, N, mm_task, &a);
        acm_blas_set_threads(blas);
        return;
    }
    if (bias && C > 0 && N > 0 && OC > 0 && acm__pool_threads(p) > 1) {
        /* the bias rows on the pool, then the GEMM adds into them: what acm__matmul_forward does, in the same order */
        bias_ctx a = {out, bias, ldo, OC, accumulate};
        acm__pool_run(p, N, bias_task, &a);
        acm__matmul_forward(out, ldo, inp, ldi, weight, ldw, NULL, N, C, OC, 1);
        return;
    }
    acm__matmul_forward(out, ldo, inp, ldi, weight, ldw, bias, N, C, OC, accumulate);
}
typedef struct {
    float *out;
    const float *inp;
    int ldo, ldi, cols;
    int64_t n; /* the flat task's elements */
} gelu_ctx;
static void gelu_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const gelu_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) acm__gelu_forward(a->out + i * a->ldo, a->inp + i * a->ldi, a->cols);
}
/* Contiguous runs are split into blocks of GELU_BLOCK elements (the unit a member takes), rows otherwise. */
enum { GELU_BLOCK = 4096 };
static void gelu_flat_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const gelu_ctx *a = c;
    const int64_t e0 = i0 * GELU_BLOCK, e1 = i1 * GELU_BLOCK < a->n ? i1 * GELU_BLOCK : a->n;
    acm__gelu_forward(a->out + e0, a->inp + e0, e1 - e0);
}
static void cpu_gelu(acm__backend *be, float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols) {
    if (ldo == cols && ldi == cols) {
        const int64_t n = rows * cols;
        gelu_ctx a = {out, inp, cols, cols, cols, n};
        acm__pool_run(pool_of(be), (n + GELU_BLOCK - 1) / GELU_BLOCK, gelu_flat_task, &a);
        return;
    }
    gelu_ctx a = {out, inp, ldo, ldi, cols, 0};
    acm__pool_run(pool_of(be), rows, gelu_task, &a);
}
typedef struct {
    float *pre, *out;
    const float *bias;
    int ldp, ldo, cols;
} bias_gelu_ctx;
static void bias_gelu_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const bias_gelu_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) acm__bias_gelu_forward(a->pre + i * a->ldp, a->out + i * a->ldo, a->bias, a->cols);
}
static void cpu_bias_gelu(acm__backend *be, float *pre, int ldp, float *out, int ldo, const float *bias, int64_t rows,
                          int cols) {
    bias_gelu_ctx a = {pre, out, bias, ldp, ldo, cols};
    acm__pool_run(pool_of(be), rows, bias_gelu_task, &a);
}
typedef struct {
    float *out, *att;
    const float *q, *k, *v;
    int ld, T, D, H;
} att_ctx;
static void att_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const att_ctx *a = c;
    for (int64_t i = i0; i < i1; i++)
        acm__attention_head(a->out, a->att, a->q, a->k, a->v, a->ld, a->T, a->D, a->H, (int)(i / a->H), (int)(i % a->H));
}
static void cpu_attention(acm__backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                          int ld, int B, int T, int D, int H) {
    acm__pool *p = pool_of(be);
    if (acm__pool_threads(p) == 1) {
        acm__attention_forward(out, att, q, k, v, ld, B, T, D, H);
        return;
    }
    /* one (item, head) per task, each GEMM on one OpenBLAS thread: the pool's threads are the parallelism here */
    att_ctx a = {out, att, q, k, v, ld, T, D, H};
    const int blas = acm_blas_threads();
    acm_blas_set_threads(1);
    acm__pool_run(p, (int64_t)B * H, att_task, &a);
    acm_blas_set_threads(blas);
}
static void cpu_im2col(acm__backend *be, float *out, const acm_item *items, int B, int C, int Hi, int Wi, int P) {
    (void)be;
    const int64_t rows = (int64_t)(Hi / P) * (Wi / P) * C * P * P;
    for (int b = 0; b < B; b++) acm__im2col_patches(out + b * rows, items[b].pixels, C, Hi, Wi, P);
}
static void cpu_im2col_conv(acm__backend *be, float *col, const float *src, const acm_item *items, int B, int C,
                            int Hi, int Wi, int k, int stride, int pad, int Ho, int Wo) {
    (void)be;
    const int64_t rows = (int64_t)Ho * Wo * C * k * k, hw = (int64_t)Hi * Wi;
    for (int b = 0; b < B; b++) {
        if (items)
            acm__im2col_conv(col + b * rows, items[b].pixels, C, Hi, Wi, hw, 1, k, stride, pad, Ho, Wo);
        else
            acm__im2col_conv(col + b * rows, src + b * hw * C, C, Hi, Wi, 1, C, k, stride, pad, Ho, Wo);
    }
}
static void cpu_vit_embed(acm__backend *be, float *x, const float *cls, const float *pos, int B, int T, int D) {
    (void)be;
    for (int b = 0; b < B; b++) {
        float *xb = x + (int64_t)b * T * D;
        memcpy(xb, cls, sizeof(float) * (size_t)D);
        acm__add(xb, xb, pos, (int64_t)T * D);
    }
}
typedef struct {
    float *out;
    const float *a, *b;
    int64_t n;
} add_ctx;
enum { ADD_BLOCK = 4096 };
static void add_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const add_ctx *a = c;
    const int64_t e0 = i0 * ADD_BLOCK, e1 = i1 * ADD_BLOCK < a->n ? i1 * ADD_BLOCK : a->n;
    acm__add(a->out + e0, a->a + e0, a->b + e0, e1 - e0);
}
static void cpu_add(acm__backend *be, float *out, const float *a, const float *b, int64_t n) {
    add_ctx c = {out, a, b, n};
    acm__pool_run(pool_of(be), (n + ADD_BLOCK - 1) / ADD_BLOCK, add_task, &c);
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
typedef struct {
    float *dst;
    const float *src;
    const int32_t *perm;
    int ldd, lds, cols, accumulate;
} rows_ctx;
static void gather_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const rows_ctx *a = c;
    for (int64_t i = i0; i < i1; i++)
        memcpy(a->dst + i * a->ldd, a->src + (int64_t)a->perm[i] * a->lds, sizeof(float) * (size_t)a->cols);
}
/* perm is a permutation: the rows a member writes are its own */
static void scatter_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const rows_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) {
        float *o = a->dst + (int64_t)a->perm[i] * a->ldd;
        if (a->accumulate)
            add_row(o, a->src + i * a->lds, a->cols);
        else
            memcpy(o, a->src + i * a->lds, sizeof(float) * (size_t)a->cols);
    }
}
static void zero_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const rows_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) memset(a->dst + (int64_t)a->perm[i] * a->ldd, 0, sizeof(float) * (size_t)a->cols);
}
static void cpu_gather_rows(acm__backend *be, float *xg, int ld, const float *x, int ldx, const int32_t *perm,
                            int64_t n, int din) {
    rows_ctx a = {xg, x, perm, ld, ldx, din, 0};
    acm__pool_run(pool_of(be), n, gather_task, &a);
}
static void cpu_scatter_rows(acm__backend *be, float *out, int ldo, int accumulate, const float *y, int ldy,
                             const int32_t *perm, int64_t n, int dout) {
    rows_ctx a = {out, y, perm, ldo, ldy, dout, accumulate};
    acm__pool_run(pool_of(be), n, scatter_task, &a);
}
static void cpu_zero_rows(acm__backend *be, float *out, int ldo, const int32_t *perm, int64_t n, int dout) {
    rows_ctx a = {out, NULL, perm, ldo, 0, dout, 0};
    acm__pool_run(pool_of(be), n, zero_task, &a);
}
static int cpu_parts(acm__backend *be) { return acm__pool_threads(pool_of(be)); }
typedef struct {
    void (*fn)(void *ctx, int part);
    void *ctx;
} parts_ctx;
static void parts_task(void *c, int64_t i0, int64_t i1, int tid) {
    (void)tid;
    const parts_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) a->fn(a->ctx, (int)i);
}
static void cpu_run_parts(acm__backend *be, void (*fn)(void *ctx, int part), void *ctx) {
    acm__pool *p = pool_of(be);
    parts_ctx a = {fn, ctx};
    if (acm__pool_threads(p) == 1) {
        parts_task(&a, 0, 1, 0);
        return;
    }
    const int blas = acm_blas_threads();
    acm_blas_set_threads(1);
    acm__pool_run(p, acm__pool_threads(p), parts_task, &a);
    acm_blas_set_threads(blas);
}
static void cpu_close(acm__backend *be) { (void)be; }
static void cpu_close_own(acm__backend *be) {
    acm__pool_free(pool_of(be));
    free(be);
}

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
    .im2col_conv = cpu_im2col_conv,
    .vit_embed = cpu_vit_embed,
    .add = cpu_add,
    .rope_forward = cpu_rope,
    .normalise_cols = cpu_normalise_cols,
    .copy_rows = cpu_copy_rows,
    .attention_window_forward = cpu_attention_window,
    .gather_rows = cpu_gather_rows,
    .scatter_rows = cpu_scatter_rows,
    .zero_rows = cpu_zero_rows,
    .bias_gelu = cpu_bias_gelu,
    .parts = cpu_parts,
    .run_parts = cpu_run_parts,
    .close = cpu_close,
};

acm__backend *acm__backend_cpu(void) { return &cpu_backend; }

acm__backend *acm__backend_cpu_new(int threads) {
    if (threads <= 1) return &cpu_backend;
    acm__backend *be = malloc(sizeof *be);
    if (!be) return NULL;
    *be = cpu_backend;
    be->impl = acm__pool_new(threads);
    if (!be->impl) {
        free(be);
        return NULL;
    }
    be->close = cpu_close_own;
    return be;
}

int acm__backend_is_cpu(const acm__backend *be) { return !be || be->alloc == cpu_alloc; }
