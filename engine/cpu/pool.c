/*
 * pool.c — the CPU backend's per-worker thread pool (pool.h).
 *
 * A region has `threads` chunks, fixed by n alone. The caller publishes (fn, ctx, n) under the mutex with a new claim
 * word (generation << 32 | next chunk 0), wakes sleeping helpers (broadcast), then claims chunks itself like any
 * member: a compare-and-swap on the claim word takes the next chunk while the generation is unchanged. A helper that
 * is late (descheduled, asleep) finds no chunk left and goes back to waiting, so the caller never waits for a thread
 * that has not started; it waits (a short spin, then the condition variable) only for chunks already claimed. A
 * helper waits for a new generation with a short spin on the claim word, then on the condition variable. fn, ctx and
 * n are read only after a successful claim, while the region is not finished, so the caller cannot be rewriting them.
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

struct acm__pool {
    int threads;
    pthread_t *tids; /* [threads - 1] */
    pthread_mutex_t mu;
    pthread_cond_t wake;       /* helpers: a new generation or stop */
    pthread_cond_t done_cv;    /* caller: every chunk done */
    _Atomic uint64_t claim;    /* generation << 32 | next chunk to take */
    atomic_int done;           /* chunks finished in the current region */
    atomic_int sleepers;       /* helpers waiting on wake */
    int stop;
    int caller_waiting;
    acm__pool_fn fn;
    void *ctx;
    int64_t n;
};

/* Set while this thread runs a chunk: a region started from inside one runs inline (regions do not nest). */
static _Thread_local int pool_inside;

/* Takes and runs chunks of generation gen until none is left; returns how many this thread ran. */
static int run_chunks(acm__pool *p, uint64_t gen) {
    int ran = 0;
    uint64_t s = atomic_load_explicit(&p->claim, memory_order_acquire);
    for (;;) {
        if (s >> 32 != gen || (int)(s & 0xffffffffu) >= p->threads) return ran;
        if (!atomic_compare_exchange_weak_explicit(&p->claim, &s, s + 1, memory_order_acq_rel, memory_order_acquire))
            continue; /* s reloaded */
        const int c = (int)(s & 0xffffffffu);
        const int64_t i0 = p->n * c / p->threads, i1 = p->n * (c + 1) / p->threads;
        pool_inside = 1;
        if (i1 > i0) p->fn(p->ctx, i0, i1, c);
        pool_inside = 0;
        ran++;
        if (atomic_fetch_add_explicit(&p->done, 1, memory_order_acq_rel) + 1 == p->threads) {
            pthread_mutex_lock(&p->mu);
            if (p->caller_waiting) pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
        s = atomic_load_explicit(&p->claim, memory_order_acquire);
    }
}

static void *helper(void *arg) {
    acm__pool *p = arg;
    uint64_t seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&p->claim, memory_order_acquire) >> 32 == seen && spins < POOL_SPIN) {
            POOL_PAUSE();
            spins++;
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->claim, memory_order_acquire) >> 32 == seen && !p->stop) {
            atomic_fetch_add(&p->sleepers, 1);
            pthread_cond_wait(&p->wake, &p->mu);
            atomic_fetch_sub(&p->sleepers, 1);
        }
        const int stop = p->stop;
        seen = atomic_load_explicit(&p->claim, memory_order_acquire) >> 32;
        pthread_mutex_unlock(&p->mu);
        if (stop) return NULL;
        run_chunks(p, seen);
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
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->claim, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->sleepers, 0);
    if (threads == 1) return p;
    p->tids = calloc((size_t)threads - 1, sizeof *p->tids);
    if (!p->tids) {
        p->threads = 1;
        acm__pool_free(p);
        return NULL;
    }
    for (int t = 1; t < threads; t++) {
        if (pthread_create(&p->tids[t - 1], NULL, helper, p)) {
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
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->mu);
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
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    /* the generation wraps within 32 bits (a server runs thousands of regions a second): it only has to differ from
     * the last one each helper saw */
    const uint64_t gen = ((atomic_load_explicit(&p->claim, memory_order_relaxed) >> 32) + 1) & 0xffffffffu;
    atomic_store_explicit(&p->claim, gen << 32, memory_order_release);
    if (atomic_load(&p->sleepers) > 0) pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    run_chunks(p, gen);
    int spins = 0;
    while (atomic_load_explicit(&p->done, memory_order_acquire) < p->threads && spins < POOL_SPIN) {
        POOL_PAUSE();
        spins++;
    }
    if (atomic_load_explicit(&p->done, memory_order_acquire) < p->threads) {
        pthread_mutex_lock(&p->mu);
        p->caller_waiting = 1;
        while (atomic_load_explicit(&p->done, memory_order_acquire) < p->threads) pthread_cond_wait(&p->done_cv, &p->mu);
        p->caller_waiting = 0;
        pthread_mutex_unlock(&p->mu);
    }
}

void acm__pool_set_generation(acm__pool *p, uint32_t g) {
    pthread_mutex_lock(&p->mu);
    atomic_store_explicit(&p->claim, (uint64_t)g << 32 | (uint64_t)p->threads, memory_order_release);
    pthread_mutex_unlock(&p->mu);
}
