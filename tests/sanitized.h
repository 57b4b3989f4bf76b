/*
 * sanitized.h — TH_SANITIZED is 1 in a build under AddressSanitizer or ThreadSanitizer (gcc or clang), else 0: the
 * slowest tests check a subset there (3-10x slower code) and say so.
 */
#ifndef ACM_TESTS_SANITIZED_H
#define ACM_TESTS_SANITIZED_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TH_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TH_SANITIZED 1
#endif
#endif
#ifndef TH_SANITIZED
#define TH_SANITIZED 0
#endif

#endif
