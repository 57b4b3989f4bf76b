/*
 * backend.h — the seam between the engine's forward passes and the hardware they run on. Internal header.
 *
 * A backend owns memory (buffers) and runs the dense ops of engine/kernels.h on that memory. The forward passes
 * (vit.c, speech.c) and the ACM executor (acm_exec.c) call only these: they never touch an activation with memcpy or
 * a host pointer, so the same code runs on every backend. Two backends:
 *   "cpu"   engine/cpu/backend.c: host memory, the kernels.h functions on OpenBLAS (engine/cpu/cpu.h). Buffers are the
 *           worker's aligned arena, weights the mmap'd model file: upload, download and copy are memcpy, host_view is
 *           the buffer itself (no copy at all), sync does nothing. Zero allocations per call.
 *   "cuda"  engine/cuda/: device memory (cudaMalloc), cuBLAS for every GEMM, kernels for the rest, one stream per
 *           worker (every op is queued on it; sync waits for it). Built only where nvcc is found (Makefile).
 *
 * Weights: ops take weight and bias arguments as the model's host addresses (model.h: pointers into the mapped file,
 * or the model's collapsed gates). A backend with its own memory maps such an address to its copy, uploaded once per
 * model (CUDA: by address range; any address outside the model is taken to be the backend's own memory already, as
 * the stacked q|k|v gates of the ACM scratch are). The CPU backend uses them as they are.
 *
 * The ACM executor (acm_exec.c) is shared: the gate GEMM runs on the backend, its logits come to the host through one
 * host_view per module (the CPU: no copy; CUDA: one download of [rows, C] floats), the policies decide k per token on
 * the host (policy.c, the same code for every backend, so decisions cannot differ between backends given the same
 * logits), the counting sort builds a plan (acm__acm_plan: k per token, counts, the permutation), which goes back to
 * the backend through one to_backend copy, and the learners run as backend GEMMs over gathered rows. Where the budget
 * decision runs is thus the host for both backends today; a backend may take the whole module over later (deciding on
 * the device) by setting acm_forward and acm_qkv_forward.
 *
 * Threading: a backend object belongs to one worker (one thread at a time), like the worker's scratch; the CPU
 * backend of a multi-threaded worker runs its loops on the worker's own pool (engine/cpu/backend.c).
 * Errors: ops cannot fail on valid arguments (the CPU) or record the first failure, which sync reports (CUDA: the
 * failing statement, file and line); the worker checks sync once per call.
 */
#ifndef ACM_BACKEND_H
#define ACM_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

typedef struct acm__backend acm__backend;
typedef struct acm__acm_scratch acm__acm_scratch;

/* The execution plan of one ACM module, backend-neutral: k per token, the tokens sorted by k (descending) and where
 * each k-group starts. Group g occupies sorted rows [start[g], start[g] + count[g]); the tokens with k >= n are the
 * prefix [0, start[n - 1]). perm lives on the host; perm_be is its copy in backend memory (the same buffer on the
 * CPU), filled by acm__acm_plan_build's caller with to_backend. */
typedef struct {
    const uint8_t *k;                    /* [rows] k per token (host) */
    int64_t rows;                        /* tokens of the module's call */
    int n;                               /* learners N */
    int64_t count[ACM_MAX_LEARNERS + 1]; /* tokens per k */
    int64_t start[ACM_MAX_LEARNERS + 1]; /* first sorted row of each k */
    int32_t *perm;                       /* [rows] host: sorted position -> token */
    const int32_t *perm_be;              /* [rows] the same in backend memory */
    int uniform;                         /* 1..N: every token has this k (no permutation needed); else 0 */
} acm__acm_plan;

/* Counting sort of k[0..rows) (values 0..n) into p->perm; fills counts, starts, uniform. perm_be is left to the
 * caller. */
void acm__acm_plan_build(acm__acm_plan *p, const uint8_t *k, int64_t rows, int n, int32_t *perm);

struct acm__backend {
    const char *name; /* "cpu", "cuda" */
    void *impl;       /* the backend's own state (CUDA: stream, cuBLAS handle, the model's uploaded weights) */

    /* ---- buffers: bytes of backend memory, 64-byte aligned, zeroed at allocation; NULL when out of memory */
    void *(*alloc)(acm__backend *be, size_t bytes);
    void (*free)(acm__backend *be, void *p);
    /* host -> backend, backend -> host, backend -> backend (bytes; n = 0 does nothing). Download waits for the work
     * queued before it. */
    void (*upload)(acm__backend *be, void *dst, const void *src, size_t n);
    void (*download)(acm__backend *be, void *dst, const void *src, size_t n);
    void (*copy)(acm__backend *be, void *dst, const void *src, size_t n);
    /* Host view of n bytes of backend memory: src itself where the host can read it (CPU), else a download into
     * host_buf (which must hold n bytes) and host_buf. */
    const void *(*host_view)(acm__backend *be, void *host_buf, const void *src, size_t n);
    /* Backend view of n bytes of host memory: src itself where the backend can read it (CPU), else an upload into
     * be_buf and be_buf. */
    const void *(*to_backend)(acm__backend *be, void *be_buf, const void *src, size_t n);
    /* Waits for everything queued; returns 0 or ACM_EIO with the first failure since the last sync in err. */
    int (*sync)(acm__backend *be, char *err, size_t errlen);

    /* ---- dense ops: engine/kernels.h, the same arguments after the backend (every pointer is backend memory, weights
     * as described at the top) */
    void (*layernorm_forward)(acm__backend *be, float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int64_t N, int C, float eps);
    void (*matmul_forward)(acm__backend *be, float *out, int ldo, const float *inp, int ldi, const float *weight,
                           int ldw, const float *bias, int64_t N, int C, int OC, int accumulate);
    /* GELU in place allowed, on rows x cols of a matrix with row stride ld (ld = cols: one contiguous run) */
    void (*gelu_forward)(acm__backend *be, float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols);
    void (*attention_forward)(acm__backend *be, float *out, float *att, const float *q, const float *k,
                              const float *v, int ld, int B, int T, int D, int H);
    /* The B items' images (items[b].pixels [C, Hi, Wi], host memory: the caller's) into patch rows [B*Np, C*P*P],
     * item after item (kernels.h, acm__im2col_patches) */
    void (*im2col_patches)(acm__backend *be, float *out, const acm_item *items, int B, int C, int Hi, int Wi, int P);
    /* The rows of a convolution (kernels.h, acm__im2col_conv: k x k, stride, zero padding pad) of B items into col
     * [B*Ho*Wo, C*k*k], item after item, read either from the items' images (items != NULL: items[b].pixels
     * [C, Hi, Wi], host memory, channel-first; src unused) or from src [B, Hi, Wi, C] (items == NULL: backend memory,
     * channel-last, as the convolutional stem keeps its feature maps) */
    void (*im2col_conv)(acm__backend *be, float *col, const float *src, const acm_item *items, int B, int C, int Hi,
                        int Wi, int k, int stride, int pad, int Ho, int Wo);
    /* x [B, T, D]: row 0 of each item = cls [D]; then every item += pos [T, D] (the ViT's token embedding) */
    void (*vit_embed)(acm__backend *be, float *x, const float *cls, const float *pos, int B, int T, int D);
    void (*add)(acm__backend *be, float *out, const float *a, const float *b, int64_t n);
    void (*rope_forward)(acm__backend *be, float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t,
                         const float *sin_t);
    void (*normalise_cols)(acm__backend *be, float *x, int64_t rows, int cols, const float *sub, const float *div);
    void (*copy_rows)(acm__backend *be, float *dst, int ldd, const float *src, int lds, int64_t rows, int cols);
    void (*attention_window_forward)(acm__backend *be, float *out, int ldo, float *scores, const float *q, int ldq,
                                     const float *k, int ldk, const float *v, int ldv, int Tq, int Tk, int D, int H);

    /* ---- the ACM executor's row ops (perm in backend memory) */
    /* xg[i] (row stride ld) = x[perm[i]] (row stride ldx), i < n, din columns */
    void (*gather_rows)(acm__backend *be, float *xg, int ld, const float *x, int ldx, const int32_t *perm, int64_t n,
                        int din);
    /* out[perm[i]] (row stride ldo) = or += y[i] (row stride ldy), i < n, dout columns */
    void (*scatter_rows)(acm__backend *be, float *out, int ldo, int accumulate, const float *y, int ldy,
                         const int32_t *perm, int64_t n, int dout);
    /* out[perm[i]] = 0, i < n, dout columns */
    void (*zero_rows)(acm__backend *be, float *out, int ldo, const int32_t *perm, int64_t n, int dout);

    /* ---- optional: pre[i, :] += bias, then out[i, :] = GELU(pre[i, :]) row by row (out may be pre): the bias of a
     * GEMM run without it fused with its GELU, one pass while the row is in cache (NULL: the caller runs the GEMM
     * with its bias, then gelu_forward) */
    void (*bias_gelu)(acm__backend *be, float *pre, int ldp, float *out, int ldo, const float *bias, int64_t rows,
                      int cols);

    /* ---- optional: independent parts of one op sequence at once (NULL: the backend has no such threads). parts(be)
     * is how many run at once (1: none); run_parts calls fn(ctx, part) for every part in [0, parts(be)), each on its
     * own thread, and returns when all are done. Inside fn every op runs on its calling thread alone (the CPU: the
     * pool's loops inline, OpenBLAS set to one thread for the region), so fn's parts must write disjoint memory. */
    int (*parts)(acm__backend *be);
    void (*run_parts)(acm__backend *be, void (*fn)(void *ctx, int part), void *ctx);

    /* Frees the backend object (its buffers must have been freed). */
    void (*close)(acm__backend *be);
};

/* A backend by name ("cpu", or "cuda" where built) for one worker of model m running at most max_batch items per call
 * (CUDA: uploads m's weights on first use and shares them between the model's workers). NULL with a message: unknown
 * name, not built, no device. */
acm__backend *acm__backend_open(const char *name, const acm_model *m, int max_batch, char *err, size_t errlen);
void acm__backend_close(acm__backend *be);
/* The CPU backend, shared: it has no state. Used where no backend was given (train/, tests building their own
 * scratch). */
acm__backend *acm__backend_cpu(void);
/* The CPU backend for one worker of `threads` threads: the shared instance for 1, else an instance of its own with a
 * thread pool of that many members (engine/cpu/pool.h), freed by acm__backend_close. NULL when out of memory or a
 * thread cannot start. */
acm__backend *acm__backend_cpu_new(int threads);
/* Whether be is a CPU backend (the shared instance or one of acm__backend_cpu_new's); NULL counts as the CPU. */
int acm__backend_is_cpu(const acm__backend *be);

#endif
