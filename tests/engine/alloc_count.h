/*
 * alloc_count.h — counts the allocator calls of our own code, for the no-allocation tests (test_noalloc,
 * test_speech_noalloc, test_ctc).
 *
 * Include it in exactly one file of a test binary that the Makefile links with
 * -Wl,--wrap=malloc,calloc,realloc,free,aligned_alloc,posix_memalign: every call from our objects and static libraries
 * (libacm, libacmproto, the test itself) then goes through the __wrap_ functions below, which count while
 * `alloc_counting` is set and forward to the real allocator (ASan's under SANITIZE). Invisible to --wrap, and so not
 * counted: allocations made inside shared libraries on their own behalf (OpenBLAS's GEMM buffers, libc's, Criterion's).
 * A binary without the link flags fails to link (__real_malloc is undefined); each of these tests also checks that the
 * wrapper counts a malloc and a free of its own before it trusts a count of zero.
 */
#ifndef ACM_TESTS_ALLOC_COUNT_H
#define ACM_TESTS_ALLOC_COUNT_H
#include <stdlib.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__real_aligned_alloc(size_t a, size_t n);
int __real_posix_memalign(void **p, size_t a, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
void *__wrap_aligned_alloc(size_t a, size_t n);
int __wrap_posix_memalign(void **p, size_t a, size_t n);

static volatile int alloc_counting;
static volatile long alloc_calls;

void *__wrap_malloc(size_t n) {
    if (alloc_counting) alloc_calls++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t s) {
    if (alloc_counting) alloc_calls++;
    return __real_calloc(n, s);
}
void *__wrap_realloc(void *p, size_t n) {
    if (alloc_counting) alloc_calls++;
    return __real_realloc(p, n);
}
void __wrap_free(void *p) {
    if (alloc_counting && p) alloc_calls++;
    __real_free(p);
}
void *__wrap_aligned_alloc(size_t a, size_t n) {
    if (alloc_counting) alloc_calls++;
    return __real_aligned_alloc(a, n);
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    if (alloc_counting) alloc_calls++;
    return __real_posix_memalign(p, a, n);
}
#endif
