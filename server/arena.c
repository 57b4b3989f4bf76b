/*
 * arena.c — the per-request arena (acmd.h): every block a request owns, freed at once by acmd_arena_free. Small
 * blocks are cut from chunks (fewer mallocs on the hot path: error text, response bodies of a few hundred bytes);
 * large ones are blocks of their own, so that a body can grow by realloc and a decoded input can be released as soon
 * as the engine has run it. Not thread-safe: one owner at a time (the request's state says who).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "acmd.h"

#define ARENA__CHUNK 4096 /* a chunk: most requests' small blocks fit in one */
#define ARENA__SMALL 1024 /* blocks up to this are cut from a chunk; larger ones get their own */
#define ARENA__ALIGN 16

/* Records a malloc'd block as owned; -1 when the list cannot grow. */
static int arena__own(acmd_arena *a, void *p) {
    if (a->n == a->cap) {
        const size_t cap = a->cap ? 2 * a->cap : 8;
        void **b = realloc(a->blk, cap * sizeof *b);
        if (!b) return -1;
        a->blk = b, a->cap = cap;
    }
    a->blk[a->n++] = p;
    return 0;
}

static size_t arena__find(const acmd_arena *a, const void *p) {
    for (size_t i = a->n; i-- > 0;) /* the newest first: a growing body is near the end */
        if (a->blk[i] == p) return i;
    return SIZE_MAX;
}

void *acmd_arena_realloc(acmd_arena *a, void *p, size_t old, size_t n) {
    const size_t i = p ? arena__find(a, p) : SIZE_MAX;
    if (i == SIZE_MAX) { /* new, or a piece of a chunk: a block of its own, the old bytes copied */
        void *q = malloc(n ? n : 1);
        if (q && arena__own(a, q)) free(q), q = NULL;
        if (q && p) memcpy(q, p, old < n ? old : n);
        return q;
    }
    void *q = realloc(p, n ? n : 1);
    if (q) a->blk[i] = q;
    return q;
}

void *acmd_arena_alloc(acmd_arena *a, size_t n) {
    if (n > ARENA__SMALL) return acmd_arena_realloc(a, NULL, 0, n);
    n = (n + ARENA__ALIGN - 1) & ~(size_t)(ARENA__ALIGN - 1);
    if (!a->chunk || a->used + n > a->size) {
        char *c = acmd_arena_realloc(a, NULL, 0, ARENA__CHUNK);
        if (!c) return NULL;
        a->chunk = c, a->used = 0, a->size = ARENA__CHUNK;
    }
    void *p = a->chunk + a->used;
    a->used += n;
    return p;
}

void *acmd_arena_calloc(acmd_arena *a, size_t n) {
    void *p = acmd_arena_alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void *acmd_arena_adopt(acmd_arena *a, void *p) {
    if (p && arena__own(a, p)) free(p), p = NULL;
    return p;
}

void acmd_arena_release(acmd_arena *a, void *p) {
    if (!p) return;
    const size_t i = arena__find(a, p);
    if (i == SIZE_MAX) abort();
    if (p == a->chunk) a->chunk = NULL, a->used = a->size = 0;
    free(p);
    a->blk[i] = a->blk[--a->n];
}

void acmd_arena_free(acmd_arena *a) {
    for (size_t i = 0; i < a->n; i++) free(a->blk[i]);
    free(a->blk);
    memset(a, 0, sizeof *a);
}
