/*
 * fuzz.h — shared by the libFuzzer targets (tests/fuzz/targets/fuzz_*.c). Each target defines FUZZ_ENTRY, which is
 * LLVMFuzzerTestOneInput in the clang/libFuzzer build (`make fuzz`) and acm_fuzz_<target> in the ordinary build, where
 * tests/fuzz/test_replay.c runs every committed corpus file through every target (gcc too). A target returns 0 and
 * must never crash, leak, hang or trip a sanitizer on any input; FUZZ_CHECK is an always-on invariant check.
 */
#ifndef ACM_TESTS_FUZZ_H
#define ACM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_ENTRY
#define FUZZ_ENTRY LLVMFuzzerTestOneInput
#endif

#define FUZZ_CHECK(c)                                                                                                 \
    do {                                                                                                              \
        if (!(c)) {                                                                                                   \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #c);                                 \
            abort();                                                                                                  \
        }                                                                                                             \
    } while (0)

int FUZZ_ENTRY(const uint8_t *data, size_t size);

#endif
