/*
 * bench_util.h — the small helpers every bench/ program needs: a monotonic clock, the median of a few rounds, a fatal
 * error naming the program, a strict comma-separated list parser and whole-file reading. Header-only (static
 * functions), like vit_random.h.
 *
 * Define BENCH_NAME (the program's name, for error messages) before including it.
 */
#ifndef ACM_BENCH_UTIL_H
#define ACM_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench/bench_util.h"
#endif

/* Seconds on the monotonic clock. */
static inline double bu_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* "BENCH_NAME: what: err" on stderr, exit 1. */
static inline _Noreturn void bu_die(const char *what, const char *err) {
    fprintf(stderr, BENCH_NAME ": %s: %s\n", what, err);
    exit(1);
}

static inline int bu_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (n ≥ 1); v is left as it was. */
static inline double bu_median(const double *v, int n) {
    double small[64], *t = n <= 64 ? small : malloc(sizeof(double) * (size_t)n);
    if (!t) bu_die("median", "out of memory");
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), bu_cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    if (t != small) free(t);
    return m;
}

/* "0.25,0.5,1" into out[0..max): the count, or -1 when s is empty, holds something that is not a number, has an empty
 * element or more than max of them. */
static inline int bu_parse_list(const char *s, double *out, int max) {
    int n = 0;
    for (;;) {
        char *end;
        if (n == max) return -1;
        out[n++] = strtod(s, &end);
        if (end == s) return -1;
        if (*end == '\0') return n;
        if (*end != ',') return -1;
        s = end + 1;
    }
}

/* The whole file at path in a malloc'ed buffer (*buf, *len); dies naming the file when it cannot. */
static inline void bu_read_file(const char *path, uint8_t **buf, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) bu_die(path, "cannot open");
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) bu_die(path, "cannot seek");
    *buf = malloc(n ? (size_t)n : 1);
    if (!*buf || fread(*buf, 1, (size_t)n, f) != (size_t)n) bu_die(path, "cannot read");
    fclose(f);
    *len = (size_t)n;
}

#endif
