/*
 * test_replay.c — every committed fuzz corpus file (tests/fuzz/corpus/<target>/, seeds and any input a fuzzing run
 * found worth keeping) through its target, in the ordinary build (gcc, and under SANITIZE=address,undefined): the
 * corpora are regression tests. The targets (tests/fuzz/targets/) are compiled here with FUZZ_ENTRY = acm_fuzz_<name>
 * (Makefile); `make fuzz` builds the same files with clang's libFuzzer and runs them.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FUZZ_TARGETS(X) X(oip_json) X(oip_binary) X(image) X(sla) X(idx) X(safetensors) X(audio) X(model) X(ctc)

#define X(t) int acm_fuzz_##t(const uint8_t *data, size_t size);
FUZZ_TARGETS(X)
#undef X

static int replay(const char *name, int (*fn)(const uint8_t *, size_t)) {
    char dir[256];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", name);
    DIR *d = opendir(dir);
    cr_assert(d, "no corpus %s", dir);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || stat(path, &st) || !S_ISREG(st.st_mode)) continue;
        FILE *f = fopen(path, "rb");
        cr_assert(f, "%s", path);
        uint8_t *buf = malloc((size_t)st.st_size + 1);
        cr_assert_eq(fread(buf, 1, (size_t)st.st_size, f), (size_t)st.st_size, "%s", path);
        fclose(f);
        cr_expect_eq(fn(buf, (size_t)st.st_size), 0, "%s", path);
        free(buf);
        n++;
    }
    closedir(d);
    return n;
}

#define X(t)                                                                                                          \
    Test(fuzz_replay, t) {                                                                                            \
        int n = replay(#t, acm_fuzz_##t);                                                                             \
        cr_expect_geq(n, 3, "corpus of " #t " has %d files", n);                                                      \
    }
FUZZ_TARGETS(X)
#undef X
