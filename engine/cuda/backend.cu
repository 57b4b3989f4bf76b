/*
 * backend.cu — the CUDA backend (engine/backend.h): device memory, cuBLAS for every GEMM, kernels for the rest.
 *
 * What it does: one stream and one cuBLAS handle per worker; every op is queued on that stream and nothing waits
 * except download, host_view (the gate logits of one module, once per module: the ACM executor, acm_exec.c, decides
 * k on the host) and sync (once per acm_worker_run). The model's weights are uploaded once, when its first worker
 * opens the backend, into one device allocation, and shared by its workers (a registry keyed by the model, counted);
 * ops are given the model's host addresses (backend.h) and map them by address range (a sorted table, binary search).
 * GEMMs: out = inp · Wᵀ + b is one cublasSgemm (the bias is broadcast into out first, then beta = 1); attention is
 * two cublasSgemmStridedBatched per head (batched over the items), the softmax a kernel. TF32 is off unless
 * ACM_CUDA_TF32=1: the tests hold the logits to 1e-4 of the CPU's.
 *
 * What it does not (yet): the speech encoder (its streams keep their left context and log-mel frames in host memory;
 * acm_worker_new refuses speech models on this backend); deciding k on the device (the host does it, behind one
 * download of the gate logits per module); CUDA graphs.
 *
 * Errors: every CUDA and cuBLAS call goes through CK(), which records the first failure (statement, file, line) in
 * the backend; sync reports it and clears it. Kernel launches are followed by cudaGetLastError().
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "backend.h"
#include "cuda/cuda.h"
#include "util.h"
}

/* ---- the model's weights on the device, shared by its workers -------------------------------------------------- */

typedef struct {
    const char *host; /* first byte on the host */
    size_t bytes;
    size_t off; /* offset in the device block */
} range;

typedef struct dev_model {
    const acm_model *m;
    int refs;
    char *dev;     /* one allocation */
    range *ranges; /* sorted by host address */
    int n;
    struct dev_model *next;
} dev_model;

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static dev_model *registry;

/* ---- the backend object ---------------------------------------------------------------------------------------- */

typedef struct {
    acm__backend be;
    cudaStream_t stream;
    cublasHandle_t blas;
    dev_model *w;
    float *img;       /* [max_batch, C*H*W] the items' images, uploaded for im2col */
    size_t img_elems; /* floats per image */
    int max_batch;
    int dev;       /* the device (ACM_CUDA_DEVICE) */
    char err[256]; /* the first failure since the last sync ("" when none) */
} cuda_be;

/* The backend's state, with its device made the calling thread's current one (a worker may be created on one thread
 * and run on another; the CUDA runtime's current device is per thread). */
static cuda_be *impl(acm__backend *be) {
    static __thread int current = -1;
    cuda_be *c = (cuda_be *)be->impl;
    if (current != c->dev && cudaSetDevice(c->dev) == cudaSuccess) current = c->dev;
    return c;
}

static void record(cuda_be *c, const char *what, const char *msg, const char *file, int line) {
    if (c && !c->err[0]) snprintf(c->err, sizeof c->err, "%s failed: %s (%s:%d)", what, msg, file, line);
}
#define CK(c, stmt)                                                                                            \
    do {                                                                                                       \
        cudaError_t e_ = (stmt);                                                                               \
        if (e_ != cudaSuccess) record((c), #stmt, cudaGetErrorString(e_), __FILE__, __LINE__);                 \
    } while (0)
#define CKB(c, stmt)                                                                                           \
    do {                                                                                                       \
        cublasStatus_t s_ = (stmt);                                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS) record((c), #stmt, cublasGetStatusString(s_), __FILE__, __LINE__);    \
    } while (0)
#define LAUNCHED(c) CK((c), cudaGetLastError())

/* The device address of a model tensor given by its host address; any other address is the backend's already. */
static const float *W(cuda_be *c, const float *host) {
    if (!host || !c->w) return host;
    const char *p = (const char *)host;
    int lo = 0, hi = c->w->n - 1;
    while (lo <= hi) {
        const int mid = (lo + hi) / 2;
        const range *r = &c->w->ranges[mid];
        if (p < r->host)
            hi = mid - 1;
        else if (p >= r->host + r->bytes)
            lo = mid + 1;
        else
            return (const float *)(c->w->dev + r->off + (size_t)(p - r->host));
    }
    return host;
}

static int cmp_range(const void *a, const void *b) {
    const char *x = ((const range *)a)->host, *y = ((const range *)b)->host;
    return x < y ? -1 : x > y;
}

/* Uploads m's tensors (every tensor it bound, model.h, and the collapsed gates it owns) into one device block. */
static dev_model *upload_model(const acm_model *m, char *err, size_t errlen) {
    int n = m->nbound + 2 * m->cfg.num_acms;
    range *rs = (range *)calloc((size_t)(n ? n : 1), sizeof *rs);
    dev_model *d = (dev_model *)calloc(1, sizeof *d);
    if (!rs || !d) {
        free(rs);
        free(d);
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        return NULL;
    }
    int k = 0;
    for (int i = 0; i < m->nbound; i++) rs[k++] = (range){(const char *)m->bound[i], m->bound_bytes[i], 0};
    for (int i = 0; i < m->cfg.num_acms; i++) {
        const acm__module *md = m->acms[i];
        const size_t R = (size_t)(md->info.film ? 3 * md->choices : md->choices); /* model.c: A, B, the fold */
        rs[k++] = (range){(const char *)md->gate_w, R * (size_t)md->info.din * 4, 0};
        rs[k++] = (range){(const char *)md->gate_b, R * 4, 0};
    }
    qsort(rs, (size_t)k, sizeof *rs, cmp_range);
    size_t total = 0;
    for (int i = 0; i < k; i++) {
        rs[i].off = total;
        total += (rs[i].bytes + 255) & ~(size_t)255;
    }
    cudaError_t e = cudaMalloc((void **)&d->dev, total ? total : 256);
    for (int i = 0; e == cudaSuccess && i < k; i++)
        e = cudaMemcpy(d->dev + rs[i].off, rs[i].host, rs[i].bytes, cudaMemcpyHostToDevice);
    if (e != cudaSuccess) {
        if (d->dev) cudaFree(d->dev);
        free(rs);
        free(d);
        acm__fail(err, errlen, ACM_ENOMEM, "backend 'cuda': uploading the model's %zu bytes of weights: %s", total,
                  cudaGetErrorString(e));
        return NULL;
    }
    d->m = m;
    d->ranges = rs;
    d->n = k;
    return d;
}

static dev_model *model_acquire(const acm_model *m, char *err, size_t errlen) {
    pthread_mutex_lock(&registry_mu);
    dev_model *d = registry;
    while (d && d->m != m) d = d->next;
    if (!d && (d = upload_model(m, err, errlen)) != NULL) {
        d->next = registry;
        registry = d;
    }
    if (d) d->refs++;
    pthread_mutex_unlock(&registry_mu);
    return d;
}

static void model_release(dev_model *d) {
    if (!d) return;
    pthread_mutex_lock(&registry_mu);
    if (--d->refs == 0) {
        dev_model **p = &registry;
        while (*p != d) p = &(*p)->next;
        *p = d->next;
        cudaFree(d->dev);
        free(d->ranges);
        free(d);
    }
    pthread_mutex_unlock(&registry_mu);
}

/* ---- kernels ----------------------------------------------------------------------------------------------------- */

static unsigned blocks_for(int64_t n, int threads) { return (unsigned)((n + threads - 1) / threads); }

/* One block per row: mean and variance in two passes (float, block reductions), then the affine map. */
__global__ void k_layernorm(float *out, float *mean, float *rstd, const float *inp, const float *w, const float *b,
                            int C, float eps) {
    __shared__ float red[32];
    const int64_t row = blockIdx.x;
    const float *x = inp + row * C;
    float s = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) s += x[c];
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x < 32) {
        s = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (threadIdx.x == 0) red[0] = s;
    }
    __syncthreads();
    const float m = red[0] / C;
    __syncthreads();
    float v = 0;
    for (int c = threadIdx.x; c < C; c += blockDim.x) v += (x[c] - m) * (x[c] - m);
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    if (threadIdx.x < 32) {
        v = threadIdx.x < (blockDim.x >> 5) ? red[threadIdx.x] : 0.0f;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (threadIdx.x == 0) red[0] = v;
    }
    __syncthreads();
    const float r = rsqrtf(red[0] / C + eps);
    float *o = out + row * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = (x[c] - m) * r * w[c] + b[c];
    if (threadIdx.x == 0) {
        if (mean) mean[row] = m;
        if (rstd) rstd[row] = r;
    }
}

/* out[i, :] = bias (accumulate 0) or out[i, :] += bias (1), rows x cols, row stride ld */
__global__ void k_bias(float *out, int ld, const float *bias, int64_t rows, int cols, int accumulate) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int64_t r = i / cols;
    const int c = (int)(i % cols);
    float *o = out + r * ld + c;
    *o = accumulate ? *o + bias[c] : bias[c];
}

__global__ void k_gelu(float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int64_t r = i / cols;
    const int c = (int)(i % cols);
    const float x = inp[r * ldi + c];
    out[r * ldo + c] = 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

/* One warp per row of n values, in place allowed. */
__global__ void k_softmax(float *a, int64_t rows, int n) {
    const int64_t row = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float *x = a + row * n;
    float mx = -INFINITY;
    for (int j = lane; j < n; j += 32) mx = fmaxf(mx, x[j]);
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float s = 0;
    for (int j = lane; j < n; j += 32) {
        const float e = expf(x[j] - mx);
        x[j] = e;
        s += e;
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float inv = 1.0f / s;
    for (int j = lane; j < n; j += 32) x[j] *= inv;
}

/* Patches of B images [B, C, Hi, Wi] into rows [B * Np, C*P*P], (c, py, px) order within a row. */
__global__ void k_im2col(float *out, const float *img, int B, int C, int Hi, int Wi, int P) {
    const int gw = Wi / P, np = (Hi / P) * gw, pp = C * P * P;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)B * np * pp) return;
    const int j = (int)(i % pp);
    const int64_t rowi = i / pp;
    const int b = (int)(rowi / np), p = (int)(rowi % np);
    const int c = j / (P * P), py = (j / P) % P, px = j % P;
    const int y = (p / gw) * P + py, x = (p % gw) * P + px;
    out[i] = img[(((int64_t)b * C + c) * Hi + y) * Wi + x];
}

/* col[B*Ho*Wo, C*k*k] from src, item b at src + b*Hi*Wi*C, pixel (y, x) of channel c at c*cs + (y*Wi + x)*ps */
__global__ void k_im2col_conv(float *col, const float *src, int B, int C, int Hi, int Wi, int64_t cs, int64_t ps, int k,
                              int stride, int pad, int Ho, int Wo) {
    const int K = C * k * k;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)B * Ho * Wo * K) return;
    const int j = (int)(i % K);
    const int64_t row = i / K;
    const int b = (int)(row / ((int64_t)Ho * Wo)), p = (int)(row % ((int64_t)Ho * Wo));
    const int c = j / (k * k), ky = (j / k) % k, kx = j % k;
    const int y = (p / Wo) * stride + ky - pad, x = (p % Wo) * stride + kx - pad;
    col[i] = y < 0 || y >= Hi || x < 0 || x >= Wi
                 ? 0.0f
                 : src[(int64_t)b * Hi * Wi * C + c * cs + ((int64_t)y * Wi + x) * ps];
}

__global__ void k_vit_embed(float *x, const float *cls, const float *pos, int B, int T, int D) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (int64_t)B * T * D) return;
    const int64_t td = i % ((int64_t)T * D);
    const int t = (int)(td / D), d = (int)(td % D);
    x[i] = (t == 0 ? cls[d] : x[i]) + pos[td];
}

__global__ void k_add(float *out, const float *a, const float *b, int64_t n) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a[i] + b[i];
}

__global__ void k_rope(float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t, const float *sin_t) {
    const int half = hd / 2;
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n * H * half) return;
    const int64_t r = i / ((int64_t)H * half);
    const int h = (int)((i / half) % H), j = (int)(i % half);
    float *a = x + r * ld + h * hd;
    const float c = cos_t[(pos0 + r) * half + j], s = sin_t[(pos0 + r) * half + j];
    const float x0 = a[j], x1 = a[j + half];
    a[j] = x0 * c - x1 * s;
    a[j + half] = x1 * c + x0 * s;
}

__global__ void k_normalise_cols(float *x, int64_t rows, int cols, const float *sub, const float *div) {
    const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * cols) return;
    const int c = (int)(i % cols);
    x[i] = (x[i] - sub[c]) / div[c];
}

/* One block per row (gather: dst row i <- src row perm[i]; scatter: dst row perm[i] <- or += src row i). */
__global__ void k_gather(float *xg, int ld, const float *x, int ldx, const int32_t *perm, int din) {
    const int64_t i = blockIdx.x;
    const float *s = x + (int64_t)perm[i] * ldx;
    float *d = xg + i * ld;
    for (int c = threadIdx.x; c < din; c += blockDim.x) d[c] = s[c];
}
__global__ void k_scatter(float *out, int ldo, int accumulate, const float *y, int ldy, const int32_t *perm,
                          int dout) {
    const int64_t i = blockIdx.x;
    float *o = out + (int64_t)perm[i] * ldo;
    const float *s = y + i * ldy;
    for (int c = threadIdx.x; c < dout; c += blockDim.x) o[c] = accumulate ? o[c] + s[c] : s[c];
}
__global__ void k_zero_rows(float *out, int ldo, const int32_t *perm, int dout) {
    float *o = out + (int64_t)perm[blockIdx.x] * ldo;
    for (int c = threadIdx.x; c < dout; c += blockDim.x) o[c] = 0.0f;
}

/* ---- buffers ----------------------------------------------------------------------------------------------------- */

static void *cu_alloc(acm__backend *be, size_t bytes) {
    cuda_be *c = impl(be);
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 256) != cudaSuccess) return NULL;
    CK(c, cudaMemsetAsync(p, 0, bytes, c->stream));
    return p;
}
static void cu_free(acm__backend *be, void *p) {
    (void)be;
    if (p) cudaFree(p);
}
static void cu_upload(acm__backend *be, void *dst, const void *src, size_t n) {
    cuda_be *c = impl(be);
    if (n) CK(c, cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, c->stream));
}
static void cu_download(acm__backend *be, void *dst, const void *src, size_t n) {
    cuda_be *c = impl(be);
    if (!n) return;
    CK(c, cudaMemcpyAsync(dst, W(c, (const float *)src), n, cudaMemcpyDeviceToHost, c->stream));
    CK(c, cudaStreamSynchronize(c->stream));
}
static void cu_copy(acm__backend *be, void *dst, const void *src, size_t n) {
    cuda_be *c = impl(be);
    if (n && dst != src) CK(c, cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, c->stream));
}
static const void *cu_host_view(acm__backend *be, void *host_buf, const void *src, size_t n) {
    cu_download(be, host_buf, src, n);
    return host_buf;
}
static const void *cu_to_backend(acm__backend *be, void *be_buf, const void *src, size_t n) {
    cu_upload(be, be_buf, src, n);
    return be_buf;
}
static int cu_sync(acm__backend *be, char *err, size_t errlen) {
    cuda_be *c = impl(be);
    CK(c, cudaStreamSynchronize(c->stream));
    if (!c->err[0]) return 0;
    int rc = acm__fail(err, errlen, ACM_EIO, "backend 'cuda': %s", c->err);
    c->err[0] = 0;
    return rc;
}

/* ---- dense ops --------------------------------------------------------------------------------------------------- */

static void cu_layernorm(acm__backend *be, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                         const float *bias, int64_t N, int C, float eps) {
    cuda_be *c = impl(be);
    if (N <= 0) return;
    k_layernorm<<<(unsigned)N, 256, 0, c->stream>>>(out, mean, rstd, inp, W(c, weight), W(c, bias), C, eps);
    LAUNCHED(c);
}

/* Row-major out[N, OC] = inp[N, C] · W[OC, C]ᵀ (+ bias) is column-major outᵀ[OC, N] = W · inpᵀ: (op T on W, op N on
 * inp), m = OC, n = N, k = C. */
static void cu_matmul(acm__backend *be, float *out, int ldo, const float *inp, int ldi, const float *weight, int ldw,
                      const float *bias, int64_t N, int C, int OC, int accumulate) {
    cuda_be *c = impl(be);
    if (N <= 0 || OC <= 0) return;
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        k_bias<<<blocks_for(N * OC, 256), 256, 0, c->stream>>>(out, ldo, W(c, bias), N, OC, accumulate);
        LAUNCHED(c);
        beta = 1.0f;
    }
    const float alpha = 1.0f;
    CKB(c, cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, (int)N, C, &alpha, W(c, weight), ldw, inp, ldi, &beta,
                       out, ldo));
}
static void cu_gelu(acm__backend *be, float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols) {
    cuda_be *c = impl(be);
    if (rows <= 0 || cols <= 0) return;
    k_gelu<<<blocks_for(rows * cols, 256), 256, 0, c->stream>>>(out, ldo, inp, ldi, rows, cols);
    LAUNCHED(c);
}

/* Per head h: S_b = scale Q_b K_bᵀ [T, T] into att[b, h] for every item b (one strided-batched GEMM over the items),
 * softmax per row (one kernel for all), then O_b[:, h] = A_b V_b (another). Column-major: Sᵀ = K Qᵀ, Oᵀ = Vᵀ Aᵀ. */
static void cu_attention(acm__backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                         int ld, int B, int T, int D, int H) {
    cuda_be *c = impl(be);
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    const long long sx = (long long)T * ld, sa = (long long)H * T * T, so = (long long)T * D;
    for (int h = 0; h < H; h++)
        CKB(c, cublasSgemmStridedBatched(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hd, &scale, k + h * hd, ld, sx,
                                         q + h * hd, ld, sx, &zero, att + (int64_t)h * T * T, T, sa, B));
    const int64_t rows = (int64_t)B * H * T;
    k_softmax<<<blocks_for(rows, 8), 256, 0, c->stream>>>(att, rows, T);
    LAUNCHED(c);
    for (int h = 0; h < H; h++)
        CKB(c, cublasSgemmStridedBatched(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, T, T, &one, v + h * hd, ld, sx,
                                         att + (int64_t)h * T * T, T, sa, &zero, out + h * hd, D, so, B));
}
/* The B items' images [C, Hi, Wi] (host) into the staging buffer c->img, item after item; 0, or -1 (recorded) when
 * they do not fit what the backend was opened for. */
static int stage_images(cuda_be *c, const char *op, const acm_item *items, int B, int C, int Hi, int Wi) {
    const size_t el = (size_t)C * Hi * Wi;
    if (B > c->max_batch || el != c->img_elems) {
        record(c, op, "batch or image size beyond what the backend was opened for", __FILE__, __LINE__);
        return -1;
    }
    for (int b = 0; b < B; b++)
        CK(c, cudaMemcpyAsync(c->img + (size_t)b * el, items[b].pixels, el * 4, cudaMemcpyHostToDevice, c->stream));
    return 0;
}
static void cu_im2col(acm__backend *be, float *out, const acm_item *items, int B, int C, int Hi, int Wi, int P) {
    cuda_be *c = impl(be);
    if (stage_images(c, "im2col", items, B, C, Hi, Wi)) return;
    const int64_t n = (int64_t)B * (Hi / P) * (Wi / P) * C * P * P;
    k_im2col<<<blocks_for(n, 256), 256, 0, c->stream>>>(out, c->img, B, C, Hi, Wi, P);
    LAUNCHED(c);
}
/* From the items: staged as for cu_im2col, then read channel-first; from src: channel-last. */
static void cu_im2col_conv(acm__backend *be, float *col, const float *src, const acm_item *items, int B, int C, int Hi,
                           int Wi, int k, int stride, int pad, int Ho, int Wo) {
    cuda_be *c = impl(be);
    int64_t cs = 1, ps = C;
    if (items) {
        if (stage_images(c, "im2col_conv", items, B, C, Hi, Wi)) return;
        src = c->img;
        cs = (int64_t)Hi * Wi, ps = 1;
    }
    const int64_t n = (int64_t)B * Ho * Wo * C * k * k;
    if (n <= 0) return;
    k_im2col_conv<<<blocks_for(n, 256), 256, 0, c->stream>>>(col, src, B, C, Hi, Wi, cs, ps, k, stride, pad, Ho, Wo);
    LAUNCHED(c);
}
static void cu_vit_embed(acm__backend *be, float *x, const float *cls, const float *pos, int B, int T, int D) {
    cuda_be *c = impl(be);
    k_vit_embed<<<blocks_for((int64_t)B * T * D, 256), 256, 0, c->stream>>>(x, W(c, cls), W(c, pos), B, T, D);
    LAUNCHED(c);
}
static void cu_add(acm__backend *be, float *out, const float *a, const float *b, int64_t n) {
    cuda_be *c = impl(be);
    if (n <= 0) return;
    k_add<<<blocks_for(n, 256), 256, 0, c->stream>>>(out, W(c, a), W(c, b), n);
    LAUNCHED(c);
}
static void cu_rope(acm__backend *be, float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t,
                    const float *sin_t) {
    cuda_be *c = impl(be);
    const int64_t total = n * H * (hd / 2);
    if (total <= 0) return;
    k_rope<<<blocks_for(total, 256), 256, 0, c->stream>>>(x, ld, n, pos0, H, hd, cos_t, sin_t);
    LAUNCHED(c);
}
static void cu_normalise_cols(acm__backend *be, float *x, int64_t rows, int cols, const float *sub, const float *div) {
    cuda_be *c = impl(be);
    if (rows * cols <= 0) return;
    k_normalise_cols<<<blocks_for(rows * cols, 256), 256, 0, c->stream>>>(x, rows, cols, W(c, sub), W(c, div));
    LAUNCHED(c);
}
static void cu_copy_rows(acm__backend *be, float *dst, int ldd, const float *src, int lds, int64_t rows, int cols) {
    cuda_be *c = impl(be);
    if (rows <= 0 || cols <= 0) return;
    CK(c, cudaMemcpy2DAsync(dst, (size_t)ldd * 4, W(c, src), (size_t)lds * 4, (size_t)cols * 4, (size_t)rows,
                            cudaMemcpyDeviceToDevice, c->stream));
}
static void cu_attention_window(acm__backend *be, float *out, int ldo, float *scores, const float *q, int ldq,
                                const float *k, int ldk, const float *v, int ldv, int Tq, int Tk, int D, int H) {
    cuda_be *c = impl(be);
    const int hd = D / H;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    for (int h = 0; h < H; h++) {
        CKB(c, cublasSgemm(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, Tk, Tq, hd, &scale, k + h * hd, ldk, q + h * hd, ldq,
                           &zero, scores, Tk));
        k_softmax<<<blocks_for(Tq, 8), 256, 0, c->stream>>>(scores, Tq, Tk);
        LAUNCHED(c);
        CKB(c, cublasSgemm(c->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, Tq, Tk, &one, v + h * hd, ldv, scores, Tk, &zero,
                           out + h * hd, ldo));
    }
}

/* ---- the ACM executor's row ops ---------------------------------------------------------------------------------- */

static void cu_gather_rows(acm__backend *be, float *xg, int ld, const float *x, int ldx, const int32_t *perm,
                           int64_t n, int din) {
    cuda_be *c = impl(be);
    if (n <= 0) return;
    k_gather<<<(unsigned)n, 128, 0, c->stream>>>(xg, ld, x, ldx, perm, din);
    LAUNCHED(c);
}
static void cu_scatter_rows(acm__backend *be, float *out, int ldo, int accumulate, const float *y, int ldy,
                            const int32_t *perm, int64_t n, int dout) {
    cuda_be *c = impl(be);
    if (n <= 0) return;
    k_scatter<<<(unsigned)n, 128, 0, c->stream>>>(out, ldo, accumulate, y, ldy, perm, dout);
    LAUNCHED(c);
}
static void cu_zero_rows(acm__backend *be, float *out, int ldo, const int32_t *perm, int64_t n, int dout) {
    cuda_be *c = impl(be);
    if (n <= 0) return;
    k_zero_rows<<<(unsigned)n, 128, 0, c->stream>>>(out, ldo, perm, dout);
    LAUNCHED(c);
}

static void cu_close(acm__backend *be) {
    cuda_be *c = impl(be);
    if (c->img) cudaFree(c->img);
    if (c->blas) cublasDestroy(c->blas);
    if (c->stream) cudaStreamDestroy(c->stream);
    model_release(c->w);
    free(c);
}

/* ---- opening ----------------------------------------------------------------------------------------------------- */

extern "C" int acm__cuda_check(char *err, size_t errlen) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return acm__fail(err, errlen, ACM_EINVAL, "backend 'cuda': no usable GPU (%s%s)", cudaGetErrorString(e),
                         e == cudaErrorInsufficientDriver ? ": no NVIDIA driver (libcuda.so) found, or one older than "
                                                            "this CUDA runtime"
                                                          : "");
    if (n == 0) return acm__fail(err, errlen, ACM_EINVAL, "backend 'cuda': no CUDA device visible");
    const char *dv = getenv("ACM_CUDA_DEVICE");
    const int dev = dv ? atoi(dv) : 0;
    if (dev < 0 || dev >= n)
        return acm__fail(err, errlen, ACM_EINVAL, "backend 'cuda': ACM_CUDA_DEVICE=%s outside the %d device(s)", dv,
                         n);
    return 0;
}

extern "C" acm__backend *acm__cuda_open(const acm_model *m, int max_batch, char *err, size_t errlen) {
    if (acm__cuda_check(err, errlen)) return NULL;
    const char *dv = getenv("ACM_CUDA_DEVICE"), *tf = getenv("ACM_CUDA_TF32");
    cuda_be *c = (cuda_be *)calloc(1, sizeof *c);
    if (!c) {
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        return NULL;
    }
    c->be.name = "cuda";
    c->be.impl = c;
    c->be.alloc = cu_alloc;
    c->be.free = cu_free;
    c->be.upload = cu_upload;
    c->be.download = cu_download;
    c->be.copy = cu_copy;
    c->be.host_view = cu_host_view;
    c->be.to_backend = cu_to_backend;
    c->be.sync = cu_sync;
    c->be.layernorm_forward = cu_layernorm;
    c->be.matmul_forward = cu_matmul;
    c->be.gelu_forward = cu_gelu;
    c->be.attention_forward = cu_attention;
    c->be.im2col_patches = cu_im2col;
    c->be.im2col_conv = cu_im2col_conv;
    c->be.vit_embed = cu_vit_embed;
    c->be.add = cu_add;
    c->be.rope_forward = cu_rope;
    c->be.normalise_cols = cu_normalise_cols;
    c->be.copy_rows = cu_copy_rows;
    c->be.attention_window_forward = cu_attention_window;
    c->be.gather_rows = cu_gather_rows;
    c->be.scatter_rows = cu_scatter_rows;
    c->be.zero_rows = cu_zero_rows;
    c->be.close = cu_close;
    c->be.impl = c;
    c->dev = dv ? atoi(dv) : 0;
    cudaError_t e = cudaSetDevice(c->dev);
    if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking);
    cublasStatus_t bs = CUBLAS_STATUS_SUCCESS;
    if (e == cudaSuccess) bs = cublasCreate(&c->blas);
    if (e == cudaSuccess && bs == CUBLAS_STATUS_SUCCESS) bs = cublasSetStream(c->blas, c->stream);
    if (e == cudaSuccess && bs == CUBLAS_STATUS_SUCCESS)
        bs = cublasSetMathMode(c->blas, tf && !strcmp(tf, "1") ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
    const acm_config *cf = m ? &m->cfg : NULL;
    c->img_elems = cf && cf->arch == ACM_ARCH_VIT ? (size_t)cf->in_chans * cf->image_size * cf->image_size : 0;
    c->max_batch = max_batch;
    if (e == cudaSuccess && bs == CUBLAS_STATUS_SUCCESS && c->img_elems)
        e = cudaMalloc((void **)&c->img, (size_t)max_batch * c->img_elems * 4);
    if (e != cudaSuccess || bs != CUBLAS_STATUS_SUCCESS) {
        acm__fail(err, errlen, ACM_EIO, "backend 'cuda': %s",
                  e != cudaSuccess ? cudaGetErrorString(e) : cublasGetStatusString(bs));
        cu_close(&c->be);
        return NULL;
    }
    if (m && !(c->w = model_acquire(m, err, errlen))) {
        cu_close(&c->be);
        return NULL;
    }
    return &c->be;
}
