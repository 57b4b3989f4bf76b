/*
 * pool.c — the CPU backend's per-worker thread pool (pool.h).
 *
 * A region: the caller publishes (fn, ctx, n), sets pending = helpers and bumps the generation under the mutex, wakes
 * the helpers (broadcast) when one sleeps, runs chunk 0 itself, then waits for pending to reach 0 (a short spin, then
 * the condition variable). A helper waits for a new generation (a short spin on the atomic counter, then the
 * condition variable), runs its chunk and decrements pending; the last one signals the caller. All state shared with
 * the helpers is either atomic or written under the mutex before the generation moves.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "pool.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define POOL_PAUSE() _mm_pause()
#else
#define POOL_PAUSE() ((void)0)
#endif

/* Spin iterations before sleeping: a few microseconds, enough for back-to-back regions between which there is no GEMM. */
enum { POOL_SPIN = 4000 };

typedef struct {
    acm__pool *pool;
    int tid;
} pool_member;

struct acm__pool {
    int threads;
    pthread_t *tids;     /* [threads - 1] */
    pool_member *members; /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake; /* helpers: a new generation or stop */
    pthread_cond_t done; /* caller: pending reached 0 */
    atomic_uint gen;     /* region counter */
    atomic_int pending;  /* helpers still running the current region */
    atomic_int sleepers; /* helpers waiting on wake */
    int stop;
    int caller_waiting;
    acm__pool_fn fn;
    void *ctx;
    int64_t n;
};

/* Set while this thread runs a chunk: a region started from inside one runs inline (regions do not nest). */
static _Thread_local int pool_inside;

static void run_chunk(acm__pool *p, int tid) {
    const int64_t i0 = p->n * tid / p->threads, i1 = p->n * (tid + 1) / p->threads;
    pool_inside = 1;
    if (i1 > i0) p->fn(p->ctx, i0, i1, tid);
    pool_inside = 0;
}

static void *helper(void *arg) {
    pool_member *me = arg;
    acm__pool *p = me->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && spins < POOL_SPIN) {
            POOL_PAUSE();
            spins++;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && !p->stop) {
            atomic_fetch_add(&p->sleepers, 1);
            pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        const int stop = p->stop;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_chunk(p, me->tid);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waiting) pthread_cond_signal(&p->done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

int acm__pool_threads(const acm__pool *p) { return p ? p->threads : 1; }

acm__pool *acm__pool_new(int threads) {
    if (threads < 1) threads = 1;
    acm__pool *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->threads = threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->sleepers, 0);
    if (threads == 1) return p;
    p->tids = calloc((size_t)threads - 1, sizeof *p->tids);
    p->members = calloc((size_t)threads - 1, sizeof *p->members);
    if (!p->tids || !p->members) {
        p->threads = 1;
        acm__pool_free(p);
        return NULL;
    }
    for (int t = 1; t < threads; t++) {
        p->members[t - 1] = (pool_member){p, t};
        if (pthread_create(&p->tids[t - 1], NULL, helper, &p->members[t - 1])) {
            p->threads = t; /* join the ones that started */
            acm__pool_free(p);
            return NULL;
        }
    }
    return p;
}

void acm__pool_free(acm__pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->threads; t++) pthread_join(p->tids[t - 1], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
    free(p->members);
    free(p->tids);
    free(p);
}

void acm__pool_run(acm__pool *p, int64_t n, acm__pool_fn fn, void *ctx) {
    if (n <= 0) return;
    if (!p || p->threads == 1 || n < p->threads || pool_inside) {
        fn(ctx, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->n = n;
    atomic_store_explicit(&p->pending, p->threads - 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunk(p, 0);
    int spins = 0;
    while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && spins < POOL_SPIN) {
        POOL_PAUSE();
        spins++;
    }
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        p->caller_waiting = 1;
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) pthread_cond_wait(&p->done, &p->mu);
        p->caller_waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}
