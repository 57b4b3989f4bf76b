/*
 * args.c — option parsing helpers, checked numbers, per-request value distributions, a small RNG (xoroshiro128+
 * seeded through splitmix64), whole-file reads and the monotonic clock. No printing: messages go to the caller.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acmc.h"

int acmc_opt(int argc, char **argv, int *i, const char *name, const char **val, char *err, size_t errlen) {
    const char *a = argv[*i];
    size_t n = strlen(name);
    if (strncmp(a, name, n) != 0) return 0;
    if (a[n] == '=') {
        *val = a + n + 1;
        return 1;
    }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) {
        snprintf(err, errlen, "%s needs a value", name);
        return -1;
    }
    *val = argv[++*i];
    return 1;
}

int acmc_parse_double(const char *name, const char *s, double lo, double hi, int lo_open, double *out, char *err,
                      size_t errlen) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v)) {
        snprintf(err, errlen, "%s: '%s' is not a number", name, s);
        return ACMC_EXIT_USAGE;
    }
    if ((lo_open ? v <= lo : v < lo) || v > hi) {
        snprintf(err, errlen, "%s: %s is outside %s%g, %g]", name, s, lo_open ? "(" : "[", lo, hi);
        return ACMC_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

int acmc_parse_long(const char *name, const char *s, long lo, long hi, long *out, char *err, size_t errlen) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno == ERANGE) {
        snprintf(err, errlen, "%s: '%s' is not a whole number", name, s);
        return ACMC_EXIT_USAGE;
    }
    if (v < lo || v > hi) {
        snprintf(err, errlen, "%s: %s is outside [%ld, %ld]", name, s, lo, hi);
        return ACMC_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

/* ---- RNG ------------------------------------------------------------------------------------------------------------ */

static uint64_t args__splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void acmc_rng_seed(acmc_rng *r, uint64_t seed) {
    r->s[0] = args__splitmix(&seed);
    r->s[1] = args__splitmix(&seed);
}

static uint64_t args__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t acmc_rng_next(acmc_rng *r) {
    uint64_t s0 = r->s[0], s1 = r->s[1], out = s0 + s1;
    s1 ^= s0;
    r->s[0] = args__rotl(s0, 24) ^ s1 ^ (s1 << 16);
    r->s[1] = args__rotl(s1, 37);
    return out;
}

double acmc_rng_uniform(acmc_rng *r) { return (double)(acmc_rng_next(r) >> 11) * 0x1.0p-53; }

/* ---- distributions -------------------------------------------------------------------------------------------------- */

static int args__value(const char *name, const char *s, double lo, double hi, int lo_open, int integer, double *v,
                       char *err, size_t errlen) {
    if (integer) {
        long l;
        int rc = acmc_parse_long(name, s, (long)ceil(lo_open ? lo + 1 : lo), (long)hi, &l, err, errlen);
        *v = (double)l;
        return rc;
    }
    return acmc_parse_double(name, s, lo, hi, lo_open, v, err, errlen);
}

int acmc_dist_parse(acmc_dist *d, const char *name, const char *s, double lo, double hi, int lo_open, int integer,
                    char *err, size_t errlen) {
    memset(d, 0, sizeof *d);
    d->integer = integer;
    char buf[1024];
    if (strlen(s) >= sizeof buf) {
        snprintf(err, errlen, "%s: value too long", name);
        return ACMC_EXIT_USAGE;
    }
    snprintf(buf, sizeof buf, "%s", s);
    if (strncmp(buf, "uniform:", 8) == 0) {
        char *a = buf + 8, *b = strchr(a, ':');
        if (!b) {
            snprintf(err, errlen, "%s: '%s': expected uniform:LOW:HIGH", name, s);
            return ACMC_EXIT_USAGE;
        }
        *b++ = 0;
        int rc = args__value(name, a, lo, hi, lo_open, integer, &d->a, err, errlen);
        if (!rc) rc = args__value(name, b, lo, hi, lo_open, integer, &d->b, err, errlen);
        if (rc) return rc;
        if (d->b < d->a) {
            snprintf(err, errlen, "%s: '%s': LOW is above HIGH", name, s);
            return ACMC_EXIT_USAGE;
        }
        d->kind = ACMC_DIST_UNIFORM;
        return 0;
    }
    if (strncmp(buf, "choice:", 7) == 0) {
        char *save = NULL;
        for (char *t = strtok_r(buf + 7, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (d->n == ACMC_DIST_MAX) {
                snprintf(err, errlen, "%s: more than %d choices", name, ACMC_DIST_MAX);
                return ACMC_EXIT_USAGE;
            }
            int rc = args__value(name, t, lo, hi, lo_open, integer, &d->v[d->n++], err, errlen);
            if (rc) return rc;
        }
        if (!d->n) {
            snprintf(err, errlen, "%s: '%s': expected choice:V1,V2,...", name, s);
            return ACMC_EXIT_USAGE;
        }
        d->kind = ACMC_DIST_CHOICE;
        return 0;
    }
    int rc = args__value(name, buf, lo, hi, lo_open, integer, &d->a, err, errlen);
    if (rc) return rc;
    d->kind = ACMC_DIST_FIXED;
    return 0;
}

double acmc_dist_draw(const acmc_dist *d, acmc_rng *r) {
    switch (d->kind) {
    case ACMC_DIST_FIXED: return d->a;
    case ACMC_DIST_UNIFORM:
        if (d->integer) return d->a + (double)(acmc_rng_next(r) % (uint64_t)(d->b - d->a + 1));
        return d->a + (d->b - d->a) * acmc_rng_uniform(r);
    case ACMC_DIST_CHOICE: return d->v[acmc_rng_next(r) % (uint64_t)d->n];
    default: return NAN;
    }
}

double acmc_dist_mean(const acmc_dist *d) {
    switch (d->kind) {
    case ACMC_DIST_FIXED: return d->a;
    case ACMC_DIST_UNIFORM: return (d->a + d->b) / 2;
    case ACMC_DIST_CHOICE: {
        double s = 0;
        for (int i = 0; i < d->n; i++) s += d->v[i];
        return s / d->n;
    }
    default: return NAN;
    }
}

void acmc_dist_format(const acmc_dist *d, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    switch (d->kind) {
    case ACMC_DIST_FIXED: snprintf(buf, n, "%g", d->a); break;
    case ACMC_DIST_UNIFORM: snprintf(buf, n, "uniform:%g:%g", d->a, d->b); break;
    case ACMC_DIST_CHOICE:
        k = (size_t)snprintf(buf, n, "choice:");
        for (int i = 0; i < d->n && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%g", i ? "," : "", d->v[i]);
        break;
    default: snprintf(buf, n, "none"); break;
    }
}

/* ---- files, clock --------------------------------------------------------------------------------------------------- */

int acmc_read_file(const char *path, uint8_t **data, size_t *len, size_t max_len, char *err, size_t errlen) {
    *data = NULL, *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return ACMC_EXIT_INPUT;
    }
    size_t cap = 65536, n = 0;
    uint8_t *b = malloc(cap);
    for (;;) {
        if (!b) {
            fclose(f);
            snprintf(err, errlen, "%s: out of memory", path);
            return ACMC_EXIT_FAIL;
        }
        size_t k = fread(b + n, 1, cap - n, f);
        n += k;
        if (k == 0) break;
        if (n > max_len) {
            free(b);
            fclose(f);
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max_len);
            return ACMC_EXIT_INPUT;
        }
        if (n == cap) {
            uint8_t *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int bad = ferror(f);
    int e = errno;
    fclose(f);
    if (bad) {
        free(b);
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return ACMC_EXIT_INPUT;
    }
    *data = b, *len = n;
    return 0;
}

double acmc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
