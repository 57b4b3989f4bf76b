/*
 * test_pool.c — the CPU backend's per-worker thread pool (engine/cpu/pool.c) and the backend ops that run on it
 * (engine/cpu/backend.c): every index of a region runs exactly once, in the chunk fixed for it; a pool of
 * one thread is a plain loop on the caller; a region started inside a chunk runs inline; back-to-back regions lose no wake-up; creating and freeing pools leaks
 * nothing (ASan) and races nothing (TSan: make SANITIZE=thread build/san-thread/tests/engine/test_pool); and the
 * backend's LayerNorm, GELU, add, attention and row moves give the same bits on pools of 1, 2 and 3 threads as on the
 * shared one-thread instance.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu/cpu.h"
#include "cpu/pool.h"

enum { MAXN = 5000 };

typedef struct {
    atomic_int runs[MAXN];
    int tid[MAXN];
    int threads;
    atomic_int bad_tid;
} count_ctx;

static void count_task(void *c, int64_t i0, int64_t i1, int tid) {
    count_ctx *a = c;
    if (tid < 0 || tid >= a->threads) atomic_fetch_add(&a->bad_tid, 1);
    for (int64_t i = i0; i < i1; i++) {
        atomic_fetch_add(&a->runs[i], 1);
        a->tid[i] = tid;
    }
}

Test(pool, every_index_runs_exactly_once_on_its_chunk) {
    static count_ctx a;
    const int64_t ns[] = {0, 1, 2, 3, 7, 64, 197, 1576, MAXN};
    for (int threads = 1; threads <= 4; threads++) {
        acm__pool *p = acm__pool_new(threads);
        cr_assert(p);
        cr_expect_eq(acm__pool_threads(p), threads);
        for (size_t j = 0; j < sizeof ns / sizeof *ns; j++) {
            const int64_t n = ns[j];
            memset(&a, 0, sizeof a);
            a.threads = threads;
            acm__pool_run(p, n, count_task, &a);
            cr_expect_eq(atomic_load(&a.bad_tid), 0);
            for (int64_t i = 0; i < n; i++) {
                cr_assert_eq(atomic_load(&a.runs[i]), 1, "threads %d n %ld: index %ld ran %d times", threads, (long)n,
                             (long)i, atomic_load(&a.runs[i]));
                /* chunk t is [t n / threads, (t + 1) n / threads), or all on the caller when n < threads */
                int t = 0;
                while (n >= threads && (int64_t)(t + 1) * n / threads <= i) t++;
                cr_assert_eq(a.tid[i], n < threads ? 0 : t, "threads %d n %ld index %ld: chunk %d", threads, (long)n,
                             (long)i, a.tid[i]);
            }
            for (int64_t i = n; i < MAXN; i++) cr_assert_eq(atomic_load(&a.runs[i]), 0);
        }
        acm__pool_free(p);
    }
}

typedef struct {
    pthread_t caller;
    atomic_int foreign;
} self_ctx;
static void self_task(void *c, int64_t i0, int64_t i1, int tid) {
    self_ctx *a = c;
    (void)i0;
    (void)i1;
    if (tid != 0 || !pthread_equal(pthread_self(), a->caller)) atomic_fetch_add(&a->foreign, 1);
}

Test(pool, one_thread_runs_on_the_caller) {
    acm__pool *p = acm__pool_new(1);
    cr_assert(p);
    self_ctx a = {.caller = pthread_self()};
    atomic_init(&a.foreign, 0);
    acm__pool_run(p, 1000, self_task, &a);
    acm__pool_run(NULL, 1000, self_task, &a); /* no pool: the same plain loop */
    cr_expect_eq(atomic_load(&a.foreign), 0);
    acm__pool_free(p);
    acm__pool_free(NULL);
}

typedef struct {
    double *part; /* [threads] */
} sum_ctx;
static void sum_task(void *c, int64_t i0, int64_t i1, int tid) {
    sum_ctx *a = c;
    for (int64_t i = i0; i < i1; i++) a->part[tid] += (double)i;
}

Test(pool, back_to_back_regions_lose_no_wakeup) {
    for (int threads = 2; threads <= 3; threads++) {
        acm__pool *p = acm__pool_new(threads);
        cr_assert(p);
        double part[3];
        for (int r = 0; r < 20000; r++) {
            memset(part, 0, sizeof part);
            sum_ctx a = {part};
            const int64_t n = 3 + r % 50;
            acm__pool_run(p, n, sum_task, &a);
            const double s = part[0] + part[1] + part[2];
            cr_assert_eq(s, (double)(n * (n - 1) / 2), "threads %d round %d", threads, r);
        }
        acm__pool_free(p);
    }
}

Test(pool, the_region_counter_wraps, .timeout = 30) { /* without the wrap the caller waits forever */
    for (int threads = 2; threads <= 3; threads++) {
        acm__pool *p = acm__pool_new(threads);
        cr_assert(p);
        acm__pool_set_generation(p, 0xfffffffeu); /* the next regions are 0xffffffff, then 0, then 1 */
        for (int r = 0; r < 4; r++) {
            double part[3] = {0};
            sum_ctx a = {part};
            acm__pool_run(p, 100, sum_task, &a);
            cr_assert_eq(part[0] + part[1] + part[2], 4950.0, "threads %d, region %d after the wrap", threads, r);
        }
        acm__pool_free(p);
    }
}

Test(pool, create_and_free_repeatedly) {
    for (int r = 0; r < 50; r++) {
        acm__pool *p = acm__pool_new(1 + r % 4);
        cr_assert(p);
        if (r % 2) {
            double part[4] = {0};
            sum_ctx a = {part};
            acm__pool_run(p, 100, sum_task, &a);
        }
        acm__pool_free(p);
    }
}

typedef struct {
    acm__pool *pool;
    int inner[4];        /* indices run by the nested region started from member t */
    pthread_t self[4];   /* the thread member t ran on */
    atomic_int foreign;  /* nested indices that ran on another thread than their starter */
} nest_ctx;
typedef struct {
    nest_ctx *outer;
    int tid;
} nest_arg;
static void inner_task(void *c, int64_t i0, int64_t i1, int tid) {
    nest_arg *a = c;
    if (tid != 0 || !pthread_equal(pthread_self(), a->outer->self[a->tid])) atomic_fetch_add(&a->outer->foreign, 1);
    a->outer->inner[a->tid] += (int)(i1 - i0);
}
static void outer_task(void *c, int64_t i0, int64_t i1, int tid) {
    nest_ctx *a = c;
    (void)i0;
    (void)i1;
    a->self[tid] = pthread_self();
    nest_arg arg = {a, tid};
    acm__pool_run(a->pool, 100, inner_task, &arg);
}

Test(pool, a_region_inside_a_chunk_runs_inline) {
    for (int threads = 1; threads <= 3; threads++) {
        nest_ctx a = {.pool = acm__pool_new(threads)};
        cr_assert(a.pool);
        atomic_init(&a.foreign, 0);
        acm__pool_run(a.pool, threads, outer_task, &a);
        for (int t = 0; t < threads; t++) cr_expect_eq(a.inner[t], 100, "threads %d member %d", threads, t);
        cr_expect_eq(atomic_load(&a.foreign), 0);
        acm__pool_free(a.pool);
    }
}

/* ---- the backend ops on the pool: the same bits at every thread count --------------------------------------------- */

static void fill(float *x, int64_t n, uint64_t seed) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (int64_t i = 0; i < n; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        x[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
}

typedef struct {
    float *ln, *mean, *rstd, *gelu, *gelu_ld, *add, *att_out, *att, *gath, *scat, *zero, *mm, *mm_acc, *bg_pre, *bg_out;
} outputs;

enum { B = 2, T = 37, D = 48, H = 3, LD = 3 * D, N = B * T };

static void run_ops(acm__backend *be, const float *x, const float *w, const float *bias, const float *qkv,
                    const int32_t *perm, const outputs *o) {
    be->layernorm_forward(be, o->ln, o->mean, o->rstd, x, w, bias, N, D, 1e-6f);
    be->matmul_forward(be, o->mm, D, x, D, qkv, D, bias, N, D, D, 0); /* bias rows on the pool, then the GEMM */
    memcpy(o->mm_acc, x, sizeof(float) * N * D);
    be->matmul_forward(be, o->mm_acc, D, x, D, qkv, D, bias, N, D, D, 1);
    be->gelu_forward(be, o->gelu, D, x, D, N, D);
    memcpy(o->gelu_ld, x, sizeof(float) * N * D);
    be->gelu_forward(be, o->gelu_ld, D, o->gelu_ld, D, N, D / 2); /* in place, strided */
    be->add(be, o->add, x, qkv, (int64_t)N * D);
    memcpy(o->bg_pre, x, sizeof(float) * N * D);
    be->bias_gelu(be, o->bg_pre, D, o->bg_out, D, bias, N, D);
    be->attention_forward(be, o->att_out, o->att, qkv, qkv + D, qkv + 2 * D, LD, B, T, D, H);
    be->gather_rows(be, o->gath, D, qkv, LD, perm, N, D);
    memcpy(o->scat, x, sizeof(float) * N * D);
    be->scatter_rows(be, o->scat, D, 1, qkv, LD, perm, N - 5, D);
    memcpy(o->zero, x, sizeof(float) * N * D);
    be->zero_rows(be, o->zero, D, perm, 11, D);
}

static outputs outputs_new(void) {
    outputs o;
    float **f[] = {&o.ln, &o.gelu, &o.gelu_ld, &o.add, &o.att_out, &o.gath, &o.scat, &o.zero, &o.mm, &o.mm_acc, &o.bg_pre, &o.bg_out};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) *f[i] = calloc((size_t)N * D, sizeof(float));
    o.mean = calloc(N, sizeof(float));
    o.rstd = calloc(N, sizeof(float));
    o.att = calloc((size_t)B * H * T * T, sizeof(float));
    return o;
}
static void outputs_free(outputs *o) {
    float *f[] = {o->ln,   o->gelu, o->gelu_ld, o->add, o->att_out, o->gath, o->scat,
                  o->zero, o->mm,   o->mm_acc,  o->mean, o->rstd,   o->att, o->bg_pre, o->bg_out};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) free(f[i]);
}

Test(pool, backend_ops_give_the_same_bits_at_every_thread_count) {
    float *x = malloc(sizeof(float) * N * D), *qkv = malloc(sizeof(float) * N * LD), w[D], bias[D];
    int32_t perm[N];
    cr_assert(x && qkv);
    fill(x, (int64_t)N * D, 1);
    fill(qkv, (int64_t)N * LD, 2);
    fill(w, D, 3);
    fill(bias, D, 4);
    for (int i = 0; i < N; i++) perm[i] = (int32_t)((i * 29 + 7) % N); /* 29 is prime to N = 74 */
    const int blas = acm_blas_threads();
    acm_blas_set_threads(1); /* the reference's GEMMs on one OpenBLAS thread, as the pool's attention runs them */
    outputs ref = outputs_new();
    run_ops(acm__backend_cpu(), x, w, bias, qkv, perm, &ref);
    acm_blas_set_threads(blas);
    for (int threads = 1; threads <= 3; threads++) {
        acm__backend *be = acm__backend_cpu_new(threads);
        cr_assert(be);
        cr_expect(acm__backend_is_cpu(be));
        cr_expect_eq(threads == 1, be == acm__backend_cpu(), "one thread: the shared instance");
        outputs o = outputs_new();
        run_ops(be, x, w, bias, qkv, perm, &o);
        cr_expect_eq(acm_blas_threads(), blas, "attention puts OpenBLAS's threads back");
        const struct {
            const char *name;
            const float *a, *b;
            size_t n;
        } cmp[] = {{"layernorm", o.ln, ref.ln, (size_t)N * D},  {"mean", o.mean, ref.mean, N},
                   {"rstd", o.rstd, ref.rstd, N},                {"gelu", o.gelu, ref.gelu, (size_t)N * D},
                   {"gelu strided", o.gelu_ld, ref.gelu_ld, (size_t)N * D}, {"add", o.add, ref.add, (size_t)N * D},
                   {"attention", o.att_out, ref.att_out, (size_t)N * D},
                   {"attention probabilities", o.att, ref.att, (size_t)B * H * T * T},
                   {"gather", o.gath, ref.gath, (size_t)N * D}, {"scatter", o.scat, ref.scat, (size_t)N * D},
                   {"zero", o.zero, ref.zero, (size_t)N * D}, {"matmul + bias", o.mm, ref.mm, (size_t)N * D},
                   {"matmul + bias, accumulate", o.mm_acc, ref.mm_acc, (size_t)N * D},
                   {"bias + GELU: pre", o.bg_pre, ref.bg_pre, (size_t)N * D},
                   {"bias + GELU: out", o.bg_out, ref.bg_out, (size_t)N * D}};
        for (size_t i = 0; i < sizeof cmp / sizeof *cmp; i++)
            cr_expect(!memcmp(cmp[i].a, cmp[i].b, sizeof(float) * cmp[i].n), "%s differs at %d threads", cmp[i].name,
                      threads);
        outputs_free(&o);
        acm__backend_close(be);
    }
    /* and the reference itself is right where it is easy to check: gather and zero */
    for (int i = 0; i < N; i++) cr_assert_eq(ref.gath[(size_t)i * D + 5], qkv[(size_t)perm[i] * LD + 5]);
    for (int i = 0; i < 11; i++) cr_assert_eq(ref.zero[(size_t)perm[i] * D], 0.0f);
    for (int i = 0; i < N * D; i += 97) { /* bias + GELU: pre = x + bias, out = GELU(pre) (exact, kernels.h) */
        const float pre = x[i] + bias[i % D];
        cr_assert_eq(ref.bg_pre[i], pre);
        const double g = 0.5 * pre * (1.0 + erf(pre / sqrt(2.0)));
        cr_assert(fabs(ref.bg_out[i] - g) <= 1e-5 * (1 + fabs(g)), "GELU(%g) = %g, not %g", pre, ref.bg_out[i], g);
    }
    outputs_free(&ref);
    free(x);
    free(qkv);
}

/* A pooled worker's GEMM large enough to be split by rows across the pool (engine/cpu/backend.c, acm__cpu_gemm_split)
 * gives the product within float rounding of the whole GEMM, the same bits at every repetition for a thread count, and
 * puts OpenBLAS's threads back; with the split off it is OpenBLAS's own threads. */
Test(pool, gemm_split_by_rows_matches_the_whole_gemm) {
    enum { M = 301, C = 40, OC = 33, LDO = 37 };
    float *x = malloc(sizeof(float) * M * C), *w = malloc(sizeof(float) * OC * C), bias[OC];
    float *ref = malloc(sizeof(float) * M * LDO), *got = malloc(sizeof(float) * M * LDO);
    float *again = malloc(sizeof(float) * M * LDO);
    cr_assert(x && w && ref && got && again);
    fill(x, (int64_t)M * C, 5);
    fill(w, (int64_t)OC * C, 6);
    fill(bias, OC, 7);
    const int blas = acm_blas_threads();
    for (int acc = 0; acc <= 1; acc++) {
        fill(ref, (int64_t)M * LDO, 8);
        acm__backend_cpu()->matmul_forward(acm__backend_cpu(), ref, LDO, x, C, w, C, bias, M, C, OC, acc);
        for (int threads = 2; threads <= 3; threads++)
            for (int split = 0; split <= 1; split++) {
                acm__cpu_gemm_split(split);
                acm_blas_set_threads(threads);
                acm__backend *be = acm__backend_cpu_new(threads);
                cr_assert(be);
                fill(got, (int64_t)M * LDO, 8);
                fill(again, (int64_t)M * LDO, 8);
                be->matmul_forward(be, got, LDO, x, C, w, C, bias, M, C, OC, acc);
                be->matmul_forward(be, again, LDO, x, C, w, C, bias, M, C, OC, acc);
                cr_expect_eq(acm_blas_threads(), threads, "OpenBLAS's threads put back");
                cr_expect(!memcmp(got, again, sizeof(float) * M * LDO), "threads %d split %d: not repeatable",
                          threads, split);
                double worst = 0;
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < LDO; j++) {
                        const float r = ref[i * LDO + j], g = got[i * LDO + j];
                        if (j >= OC) cr_assert_eq(g, r, "column %d past OC written", j);
                        worst = fmax(worst, fabs((double)g - r) / (1 + fabs((double)r)));
                    }
                cr_expect_leq(worst, 1e-5, "threads %d split %d acc %d: off by %g", threads, split, acc, worst);
                acm__backend_close(be);
            }
    }
    acm__cpu_gemm_split(0);
    acm_blas_set_threads(blas);
    free(x), free(w), free(ref), free(got), free(again);
}
