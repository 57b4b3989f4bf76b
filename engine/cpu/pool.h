/*
 * pool.h — a worker's own thread pool for the CPU backend's loops (engine/cpu/backend.c). Internal header.
 *
 * OpenBLAS parallelises the GEMMs with its own threads; everything between two GEMMs (LayerNorm, GELU, softmax and the
 * per-head products of attention, residual adds, the ACM executor's gather and scatter) runs on this pool. The pool
 * has threads - 1 helper threads, created once with the worker, and the calling thread as a member; a region splits the
 * index range [0, n) into `threads` contiguous chunks fixed by n alone (chunk c is [c n / threads, (c + 1) n / threads)),
 * and each chunk runs on whichever member claims it first (the caller claims too, so a helper that the scheduler has not
 * run yet delays nothing: the caller takes its chunk). What a chunk computes does not depend on which thread runs it,
 * so a loop whose indices are independent gives the same bits at any thread count.
 *
 * Between regions the helpers spin briefly on the claim word, then sleep on a condition variable, so they never
 * compete with OpenBLAS's threads for the cores while a GEMM runs. No allocation after acm__pool_new; a region runs
 * nothing on the helpers when n < threads or the pool has one thread (then it is a plain loop on the caller).
 *
 * Threading: one caller at a time (the worker's thread). Regions do not nest: a region started from inside a chunk
 * (a backend op called by a task of acm__backend.run_parts) is a plain loop on the thread that started it.
 */
#ifndef ACM_CPU_POOL_H
#define ACM_CPU_POOL_H

#include <stdint.h>

typedef struct acm__pool acm__pool;

/* fn(ctx, i0, i1, c): run the indices [i0, i1), chunk c in [0, threads) of the region (one thread runs a chunk, so
 * scratch indexed by c is safe). */
typedef void (*acm__pool_fn)(void *ctx, int64_t i0, int64_t i1, int tid);

/* A pool of `threads` members (>= 1; the caller is one of them). NULL when out of memory or a thread cannot start. */
acm__pool *acm__pool_new(int threads);
/* Stops and joins the helpers and frees the pool (NULL: nothing). */
void acm__pool_free(acm__pool *p);
int acm__pool_threads(const acm__pool *p);
/* Runs fn over [0, n) split into the pool's chunks; returns when every chunk has run. p NULL, or called from inside a
 * chunk: fn(ctx, 0, n, 0) on the calling thread. */
void acm__pool_run(acm__pool *p, int64_t n, acm__pool_fn fn, void *ctx);

/* Tests: sets the region counter (32 bits, wrapping) as if g regions had run, with no region in flight. */
void acm__pool_set_generation(acm__pool *p, uint32_t g);

/* The CPU backend's (engine/cpu/backend.c) choice for benchmarks' A/B: 1 splits a pooled worker's GEMMs by rows across
 * its pool with single-threaded sgemm, 0 (default: it measured slower) leaves them to OpenBLAS's threads. Process-wide; set it between
 * runs, not during one. */
void acm__cpu_gemm_split(int on);

#endif
