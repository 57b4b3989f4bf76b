/*
 * profile_vit — issue 26's op-by-op profile of the engine's static ViT-B/16 (random weights, bench/vit_random.h):
 * where a forward's time goes, by op, against PyTorch's profiler on torchvision's vit_b_16 (bench/profile_vit.sh runs
 * both and joins the tables; bench/RESULTS.md).
 *
 * How: the worker's backend (engine/backend.h) is wrapped by one whose ops time themselves (wall clock, so at two
 * threads an op's figure is what it costs the forward, pool and OpenBLAS threads together) and call the real op. GEMMs
 * are told apart by shape: patch (one per item, Np rows), qkv (D -> 3D), proj (D -> D), fc1 (D -> 4D), fc2 (4D -> D),
 * head. Attention is timed in its three parts: the wrapper runs the engine's own per-(item, head) loop (kernels.c,
 * acm__attention_head; on the worker's pool with OpenBLAS at one thread, as engine/cpu/backend.c does) with a clock
 * around QK^T, the softmax rows and PV; per-thread sums are scaled to the region's wall time. What no op accounts for
 * (the worker's own work, the clock itself) is "other".
 *
 * Prints, per batch, a Markdown table (op, calls per forward, ms per forward, share) and one machine-readable line per
 * op: "PROF <threads> <batch> <op> <ms>".
 *
 * usage: profile_vit [--threads N] [--rounds R (5)] [--batches 1,8] [--depth L (12)] [--sse] [--model PATH]
 *   --sse: the kernels' SSE path where the CPU has AVX-512 (engine/cpu/simd.h), i.e. the engine before issue 26's
 *          wide kernels.
 *   --model: a model file instead of the random ViT-B (e.g. models/fmnist-vit.safetensors), random pixels in [-1, 1],
 *          the gates' own choice for an ACM model. A convolutional stem is one line, "stem": its im2col_conv calls
 *          and the GEMMs and GELUs between the first of them and the patch embedding's im2col.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "backend.h"
#include "cpu/cpu.h"
#include "cpu/pool.h"
#include "cpu/simd.h"
#define BENCH_NAME "profile_vit"
#include "bench/bench_util.h"
#include "bench/vit_random.h"
#include "kernels.h"
#include "vit.h"

enum { P_STEM, P_PATCH, P_EMBED, P_LN, P_QKV, P_QK, P_SOFTMAX, P_PV, P_PROJ, P_COPY, P_FC1, P_BIAS_GELU, P_GELU, P_FC2,
       P_ADD, P_HEAD, P_GEMM_OTHER, P_N };
static const char *const p_name[P_N] = {"stem (im2col + GEMM + GELU per layer)", "patch embed (im2col + GEMM)",
                                        "cls + pos", "LayerNorm", "GEMM qkv", "attention QK^T", "attention softmax",
                                        "attention PV", "GEMM proj", "residual copy", "GEMM fc1", "bias + GELU", "GELU",
                                        "GEMM fc2", "add", "head (GEMM)", "GEMM other"};
static const char *const p_key[P_N] = {"stem", "patch", "embed", "layernorm", "qkv", "att_qk", "att_softmax", "att_pv",
                                       "proj", "residual_copy", "fc1", "bias_gelu", "gelu", "fc2", "add", "head",
                                       "gemm_other"};

typedef struct {
    acm__backend be;     /* a copy of the inner backend with some ops replaced: must stay first */
    acm__backend *inner; /* the real one */
    int T, Np, D, Hd;
    int Pz;       /* patch size */
    int in_stem;  /* between a stem im2col and the patch embedding's: the stem's GEMMs and GELUs */
    int in_patch; /* after the patch embedding's im2col: the next GEMM is its */
    double t[P_N];
    long calls[P_N];
    double head_t[64][3]; /* attention parts per pool member, seconds */
} prof_be;

static prof_be *P(acm__backend *be) { return (prof_be *)be; }
#define TIMED(cat, call)                                                                                               \
    do {                                                                                                               \
        double t0_ = bu_now_s();                                                                                       \
        call;                                                                                                          \
        P(be)->t[cat] += bu_now_s() - t0_;                                                                             \
        P(be)->calls[cat]++;                                                                                           \
    } while (0)

static void p_layernorm(acm__backend *be, float *out, float *mean, float *rstd, const float *inp, const float *weight,
                        const float *bias, int64_t N, int C, float eps) {
    TIMED(P_LN, P(be)->inner->layernorm_forward(be, out, mean, rstd, inp, weight, bias, N, C, eps));
}
static void p_matmul(acm__backend *be, float *out, int ldo, const float *inp, int ldi, const float *weight, int ldw,
                     const float *bias, int64_t N, int C, int OC, int accumulate) {
    prof_be *p = P(be);
    int cat = P_GEMM_OTHER;
    if (p->in_stem) cat = P_STEM;
    else if (p->in_patch) cat = P_PATCH, p->in_patch = 0;
    else if (OC == 3 * p->D) cat = P_QKV;
    else if (C == p->D && OC == p->D) cat = P_PROJ;
    else if (C == p->D && OC == p->Hd) cat = P_FC1;
    else if (C == p->Hd && OC == p->D) cat = P_FC2;
    else if (C == p->D && N % p->T) cat = P_HEAD;
    TIMED(cat, p->inner->matmul_forward(be, out, ldo, inp, ldi, weight, ldw, bias, N, C, OC, accumulate));
}
static void p_gelu(acm__backend *be, float *out, int ldo, const float *inp, int ldi, int64_t rows, int cols) {
    TIMED(P(be)->in_stem ? P_STEM : P_GELU, P(be)->inner->gelu_forward(be, out, ldo, inp, ldi, rows, cols));
}
static void p_bias_gelu(acm__backend *be, float *pre, int ldp, float *out, int ldo, const float *bias, int64_t rows,
                        int cols) {
    TIMED(P(be)->in_stem ? P_STEM : P_BIAS_GELU, P(be)->inner->bias_gelu(be, pre, ldp, out, ldo, bias, rows, cols));
}
static void p_im2col(acm__backend *be, float *out, const acm_item *items, int B, int C, int Hi, int Wi, int Pz) {
    P(be)->in_stem = 0, P(be)->in_patch = 1;
    TIMED(P_PATCH, P(be)->inner->im2col_patches(be, out, items, B, C, Hi, Wi, Pz));
}
static void p_im2col_conv(acm__backend *be, float *col, const float *src, const acm_item *items, int B, int C, int Hi,
                          int Wi, int k, int stride, int pad, int Ho, int Wo) {
    /* the patch embedding on the stem's map is a convolution too: k = stride = patch size, no padding, last */
    const int patch = k == P(be)->Pz && stride == k && pad == 0 && !items;
    P(be)->in_stem = !patch, P(be)->in_patch = patch;
    TIMED(patch ? P_PATCH : P_STEM,
          P(be)->inner->im2col_conv(be, col, src, items, B, C, Hi, Wi, k, stride, pad, Ho, Wo));
}
static void p_embed(acm__backend *be, float *x, const float *cls, const float *pos, int B, int T, int D) {
    TIMED(P_EMBED, P(be)->inner->vit_embed(be, x, cls, pos, B, T, D));
}
static void p_add(acm__backend *be, float *out, const float *a, const float *b, int64_t n) {
    TIMED(P_ADD, P(be)->inner->add(be, out, a, b, n));
}
static void p_copy(acm__backend *be, void *dst, const void *src, size_t n) {
    TIMED(P_COPY, P(be)->inner->copy(be, dst, src, n));
}

/* The engine's attention (kernels.c, acm__attention_head) with a clock around each of its three parts. */
typedef struct {
    prof_be *p;
    float *out, *att;
    const float *q, *k, *v;
    int ld, T, D, H;
} att_ctx;
static void att_task(void *c, int64_t i0, int64_t i1, int tid) {
    const att_ctx *a = c;
    const int T = a->T, H = a->H, hd = a->D / H;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int64_t i = i0; i < i1; i++) {
        const int b = (int)(i / H), h = (int)(i % H);
        const float *qb = a->q + (int64_t)b * T * a->ld + h * hd, *kb = a->k + (int64_t)b * T * a->ld + h * hd;
        const float *vb = a->v + (int64_t)b * T * a->ld + h * hd;
        float *m = a->att + ((int64_t)b * H + h) * T * T, *ob = a->out + (int64_t)b * T * a->D + h * hd;
        double t0 = bu_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, T, hd, scale, qb, a->ld, kb, a->ld, 0.0f, m, T);
        double t1 = bu_now_s();
        for (int t = 0; t < T; t++) acm__softmax_row(m + (int64_t)t * T, m + (int64_t)t * T, T);
        double t2 = bu_now_s();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, hd, T, 1.0f, m, T, vb, a->ld, 0.0f, ob, a->D);
        double t3 = bu_now_s();
        a->p->head_t[tid][0] += t1 - t0;
        a->p->head_t[tid][1] += t2 - t1;
        a->p->head_t[tid][2] += t3 - t2;
    }
}
static void p_attention(acm__backend *be, float *out, float *att, const float *q, const float *k, const float *v,
                        int ld, int B, int T, int D, int H) {
    prof_be *p = P(be);
    acm__pool *pool = be->impl; /* the CPU backend's pool (NULL: one thread) */
    memset(p->head_t, 0, sizeof p->head_t);
    att_ctx a = {p, out, att, q, k, v, ld, T, D, H};
    double t0 = bu_now_s();
    if (pool) {
        const int blas = acm_blas_threads();
        acm_blas_set_threads(1);
        acm__pool_run(pool, (int64_t)B * H, att_task, &a);
        acm_blas_set_threads(blas);
    } else {
        att_task(&a, 0, (int64_t)B * H, 0);
    }
    double wall = bu_now_s() - t0, parts[3] = {0}, sum = 0;
    for (int i = 0; i < 64; i++)
        for (int j = 0; j < 3; j++) parts[j] += p->head_t[i][j];
    sum = parts[0] + parts[1] + parts[2];
    for (int j = 0; j < 3; j++) {
        p->t[P_QK + j] += sum > 0 ? wall * parts[j] / sum : 0;
        p->calls[P_QK + j]++;
    }
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    int threads = acm_cpu_count(), rounds = 5, depth = 12;
    double batches[4] = {1, 8};
    int nbatch = 2;
    const char *model_path = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) nbatch = bu_parse_list(argv[++i], batches, 4);
        else if (!strcmp(argv[i], "--sse")) acm__simd_disable(1);
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model_path = argv[++i];
        else {
            printf("usage: profile_vit [--threads N] [--rounds R (5)] [--batches 1,8] [--depth L (12)] [--sse] "
                   "[--model PATH]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (rounds < 1 || threads < 1 || threads > 64 || nbatch < 1) bu_die("arguments", "out of range");
    int maxB = 1;
    for (int i = 0; i < nbatch; i++) maxB = (int)batches[i] > maxB ? (int)batches[i] : maxB;
    acm_blas_set_threads(threads);
    char err[512];
    vr_config vc = {.image_size = 224, .patch_size = 16, .in_chans = 3, .dim = 768, .depth = depth, .heads = 12,
                    .mlp_hidden = 3072, .num_classes = 1000, .learners = 0, .seed = 1};
    vr_store st = {0};
    const char *what = model_path ? model_path : "static ViT-B";
    acm_model *m = model_path ? acm_model_load(model_path, err, sizeof err) : vr_build(&vc, &st, err, sizeof err);
    if (!m) bu_die(what, err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = maxB, .cpu_threads = threads}, err, sizeof err);
    if (!w) bu_die("worker", err);
    const acm_config *c = acm_model_config(m);
    acm__acm_scratch *sc = acm__worker_scratch(w);
    acm__backend *inner = sc->be ? sc->be : acm__backend_cpu();
    prof_be *p = calloc(1, sizeof *p);
    p->be = *inner;
    p->inner = inner;
    p->T = c->tokens;
    p->Np = c->num_patches;
    p->D = c->dim;
    p->Hd = c->mlp_hidden;
    p->Pz = c->patch_size;
    p->be.layernorm_forward = p_layernorm;
    p->be.matmul_forward = p_matmul;
    p->be.gelu_forward = p_gelu;
    if (inner->bias_gelu) p->be.bias_gelu = p_bias_gelu;
    p->be.im2col_patches = p_im2col;
    p->be.im2col_conv = p_im2col_conv;
    p->be.vit_embed = p_embed;
    p->be.add = p_add;
    p->be.copy = p_copy;
    p->be.attention_forward = p_attention;

    const size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    float *pix = malloc(sizeof(float) * img * maxB);
    float *logits = malloc(sizeof(float) * (size_t)c->num_classes * maxB);
    if (!pix || !logits) bu_die("buffers", "out of memory");
    acm_item items[64];
    acm_result res[64];
    uint64_t rng = 7;
    for (size_t i = 0; i < img * maxB; i++) pix[i] = (float)(2.0 * vr_uniform(&rng) - 1.0);
    for (int b = 0; b < maxB; b++) {
        items[b] = (acm_item){.pixels = pix + b * img, .policy = acm_policy_default()};
        res[b] = (acm_result){.logits = logits + (size_t)b * c->num_classes};
    }
    printf("profile_vit: BLAS core %s, %d threads (worker pool %s), kernels %s, %d cores, %s, depth %d, "
           "%d rounds\n", acm_blas_core(), threads, inner->impl ? "on" : "off", acm__simd_avx512() ? "AVX-512" : "SSE",
           acm_cpu_count(), what, c->depth, rounds);
    for (int bi = 0; bi < nbatch; bi++) {
        const int B = (int)batches[bi];
        if (acm_worker_run(w, items, res, B, err, sizeof err)) bu_die("forward", err); /* warm-up */
        sc->be = &p->be;
        memset(p->t, 0, sizeof p->t);
        memset(p->calls, 0, sizeof p->calls);
        double total = 0;
        for (int r = 0; r < rounds; r++) {
            double t0 = bu_now_s();
            if (acm_worker_run(w, items, res, B, err, sizeof err)) bu_die("forward", err);
            total += bu_now_s() - t0;
        }
        sc->be = inner;
        double sum = 0;
        printf("\n### engine, %s, batch %d, %d threads: %.1f ms per forward (mean of %d)\n"
               "| op | calls | ms | share |\n|---|---|---|---|\n", what, B, threads, total / rounds * 1e3, rounds);
        for (int k = 0; k < P_N; k++) {
            sum += p->t[k];
            if (!p->calls[k]) continue;
            printf("| %s | %ld | %.2f | %.1f%% |\n", p_name[k], p->calls[k] / rounds, p->t[k] / rounds * 1e3,
                   100 * p->t[k] / total);
        }
        printf("| other | | %.2f | %.1f%% |\n", (total - sum) / rounds * 1e3, 100 * (total - sum) / total);
        for (int k = 0; k < P_N; k++)
            if (p->calls[k]) printf("PROF %d %d %s %.3f\n", threads, B, p_key[k], p->t[k] / rounds * 1e3);
        printf("PROF %d %d other %.3f\nPROF %d %d total %.3f\n", threads, B, (total - sum) / rounds * 1e3, threads, B,
               total / rounds * 1e3);
        fflush(stdout);
    }
    acm_worker_free(w);
    acm_model_free(m);
    if (!model_path) vr_store_free(&st);
    free(p);
    free(pix);
    free(logits);
    return 0;
}
