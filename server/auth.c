/*
 * auth.c — API keys (--auth-file): the key file, the hash of a key, and the lookup of a presented key.
 *
 * The file (docs/API.md, "API keys") is text, one key per line; '#' starts a comment, blank lines are skipped:
 *
 *     NAME sha256:HEX [LIMIT=VALUE ...]
 *
 *   NAME   1..63 bytes of [A-Za-z0-9_.-], unique in the file: the key's name in the access log and in the `key` label
 *          of /metrics (labels come from this file only, never from a request, so the set of series is fixed).
 *   HEX    64 hex digits: the SHA-256 of the key's bytes (the key itself is never stored; `acmd --hash-key NAME`
 *          makes the line).
 *   LIMIT  per-key limits (admit.c applies them; absent: none): see ACMD_KEY_LIMITS in acmd.h.
 *
 * A presented key (Authorization: Bearer KEY) is hashed, and its hash compared with every entry's, each comparison
 * over all 32 bytes with no early exit and the loop over entries never stopping at a match: the work done does not
 * depend on how much of any hash matches, and since hashes are compared, not keys, a key's prefix tells nothing
 * anyway. acmd_keys_find reports the byte comparisons it made so that a test can check that (test_auth.c).
 *
 * The file is read at start-up and on SIGHUP (server.c); a reload that fails keeps the keys in force. I/O thread
 * only: no locks.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nettle/sha2.h>

#include "acmd.h"

void acmd_key_hash(uint8_t out[ACMD_KEY_HASH], const char *key, size_t n) {
    struct sha256_ctx c;
    sha256_init(&c);
    sha256_update(&c, n, (const uint8_t *)key);
    sha256_digest(&c, ACMD_KEY_HASH, out);
}

int acmd_key_hash_eq(const uint8_t *a, const uint8_t *b, size_t *steps) {
    unsigned diff = 0;
    size_t i = 0;
    for (; i < ACMD_KEY_HASH; i++) diff |= (unsigned)(a[i] ^ b[i]);
    if (steps) *steps += i;
    return diff == 0;
}

int acmd_keys_find(const acmd_keys *k, const char *key, size_t n, size_t *steps) {
    uint8_t h[ACMD_KEY_HASH];
    acmd_key_hash(h, key, n);
    int found = -1;
    for (int i = 0; i < k->n; i++) {
        const int eq = acmd_key_hash_eq(h, k->k[i].hash, steps);
        /* no branch on the comparison: the index is selected with a mask (names are unique, hashes too) */
        const int mask = -eq;
        found = (found & ~mask) | (i & mask);
    }
    return found;
}

static int auth__fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int auth__fail(char *err, size_t errlen, const char *path, int line, const char *fmt, ...) {
    int o = snprintf(err, errlen, "--auth-file %s:%d: ", path, line);
    va_list ap;
    va_start(ap, fmt);
    if (o >= 0 && (size_t)o < errlen) vsnprintf(err + o, errlen - (size_t)o, fmt, ap);
    va_end(ap);
    return -1;
}

static int auth__hex(uint8_t *out, const char *s, size_t n) {
    if (strlen(s) != 2 * n) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)s[2 * i]) || !isxdigit((unsigned char)s[2 * i + 1]) || sscanf(s + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

void acmd_key_defaults(acmd_key *k) {
    memset(k, 0, sizeof *k);
    k->urgency_min = 0;
    k->budget_min = 0, k->budget_max = 1;
    k->rate = 0, k->burst = 0, k->flops_rate = 0, k->flops_burst = 0, k->queue_share = 1;
}

/* One LIMIT=VALUE of a line into k; 0, or -1 with the message. */
static int auth__limit(acmd_key *k, const char *tok, const char *path, int line, char *err, size_t errlen) {
    const char *eq = strchr(tok, '=');
    if (!eq || eq == tok) return auth__fail(err, errlen, path, line, "\"%s\" is not LIMIT=VALUE", tok);
    char *end;
    const double v = strtod(eq + 1, &end);
    if (end == eq + 1 || *end || v != v) return auth__fail(err, errlen, path, line, "%s: \"%s\" is not a number", tok, eq + 1);
    const size_t n = (size_t)(eq - tok);
#define X(field, name, lo, hi, help)                                                                                  \
    if (n == strlen(name) && strncmp(tok, name, n) == 0) {                                                            \
        if (!(v >= (lo) && v <= (hi)))                                                                                \
            return auth__fail(err, errlen, path, line, "%s must be in [%g, %g], got %g", name, (double)(lo), (double)(hi), v); \
        k->field = v;                                                                                                 \
        return 0;                                                                                                     \
    }
    ACMD_KEY_LIMITS(X)
#undef X
    return auth__fail(err, errlen, path, line, "unknown limit \"%.*s\" (known: urgency, budget_min, budget_max, rate, "
                      "burst, flops_rate, flops_burst, queue_share)", (int)n, tok);
}

int acmd_keys_load(acmd_keys *out, const char *path, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f) return snprintf(err, errlen, "--auth-file %s: %s", path, strerror(errno)), -1;
    char buf[4096];
    int line = 0, rc = 0;
    while (fgets(buf, sizeof buf, f)) {
        line++;
        if (!strchr(buf, '\n') && !feof(f)) {
            rc = auth__fail(err, errlen, path, line, "line longer than %zu bytes", sizeof buf - 2);
            break;
        }
        char *hash = strchr(buf, '#');
        if (hash) *hash = 0;
        char *save = NULL, *name = strtok_r(buf, " \t\r\n", &save);
        if (!name) continue;
        const size_t nl = strlen(name);
        int ok = nl > 0 && nl < sizeof out->k[0].name;
        for (size_t i = 0; ok && i < nl; i++) ok = isalnum((unsigned char)name[i]) || strchr("_.-", name[i]);
        if (!ok) {
            rc = auth__fail(err, errlen, path, line, "key name \"%.64s\" must be 1..63 bytes of A-Z a-z 0-9 _ . -", name);
            break;
        }
        for (int i = 0; i < out->n; i++)
            if (strcmp(out->k[i].name, name) == 0) {
                rc = auth__fail(err, errlen, path, line, "key name \"%s\" appears twice", name);
                break;
            }
        if (rc) break;
        acmd_key *k = realloc(out->k, (size_t)(out->n + 1) * sizeof *k);
        if (!k) {
            rc = auth__fail(err, errlen, path, line, "out of memory");
            break;
        }
        out->k = k;
        k = &out->k[out->n];
        acmd_key_defaults(k);
        memcpy(k->name, name, nl + 1);
        const char *h = strtok_r(NULL, " \t\r\n", &save);
        if (!h || strncmp(h, "sha256:", 7) != 0 || auth__hex(k->hash, h + 7, ACMD_KEY_HASH)) {
            rc = auth__fail(err, errlen, path, line, "key %s: the second field must be sha256: and 64 hex digits "
                            "(acmd --hash-key %s makes the line)", name, name);
            break;
        }
        for (int i = 0; i < out->n; i++)
            if (acmd_key_hash_eq(out->k[i].hash, k->hash, NULL)) {
                rc = auth__fail(err, errlen, path, line, "key %s has the same hash as key %s", name, out->k[i].name);
                break;
            }
        if (rc) break;
        for (const char *t; !rc && (t = strtok_r(NULL, " \t\r\n", &save));) rc = auth__limit(k, t, path, line, err, errlen);
        if (rc) break;
        if (k->budget_min > k->budget_max) {
            rc = auth__fail(err, errlen, path, line, "key %s: budget_min %g is above budget_max %g", name, k->budget_min,
                            k->budget_max);
            break;
        }
        out->n++;
    }
    if (!rc && ferror(f)) rc = -1, snprintf(err, errlen, "--auth-file %s: read error", path);
    fclose(f);
    if (rc) acmd_keys_free(out);
    return rc;
}

void acmd_keys_free(acmd_keys *k) {
    free(k->k);
    k->k = NULL;
    k->n = 0;
}

void acmd_keys_carry(acmd_keys *next, const acmd_keys *prev) {
    for (int i = 0; i < next->n; i++) {
        const int j = acmd_keys_index(prev, next->k[i].name);
        if (j < 0) continue;
        next->k[i].tok = prev->k[j].tok, next->k[i].ftok = prev->k[j].ftok, next->k[i].t_fill = prev->k[j].t_fill;
    }
}

int acmd_keys_index(const acmd_keys *k, const char *name) {
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->k[i].name, name) == 0) return i;
    return -1;
}

/* The Authorization field's credentials when its scheme is Bearer (case-insensitive, RFC 9110 §11.1), else NULL. */
const char *acmd_auth_bearer(const char *field, size_t *n) {
    if (!field) return NULL;
    while (*field == ' ' || *field == '\t') field++;
    if (strncasecmp(field, "Bearer", 6) != 0 || (field[6] != ' ' && field[6] != '\t')) return NULL;
    const char *t = field + 6;
    while (*t == ' ' || *t == '\t') t++;
    size_t k = strlen(t);
    while (k && (t[k - 1] == ' ' || t[k - 1] == '\t')) k--;
    if (!k) return NULL;
    *n = k;
    return t;
}

int acmd_hash_key_main(const char *name, FILE *in, FILE *out, FILE *msg) {
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p)) {
            fprintf(msg, "acmd: --hash-key: name \"%s\" must be bytes of A-Z a-z 0-9 _ . -\n", name);
            return 1;
        }
    char key[1024] = "";
    if (!fgets(key, sizeof key, in)) key[0] = 0;
    size_t n = strcspn(key, "\r\n");
    key[n] = 0;
    if (n == 0) { /* a new key: 32 random bytes as 64 hex digits */
        uint8_t raw[32];
        FILE *r = fopen("/dev/urandom", "rb");
        if (!r || fread(raw, 1, sizeof raw, r) != sizeof raw) {
            if (r) fclose(r);
            fprintf(msg, "acmd: --hash-key: cannot read /dev/urandom\n");
            return 1;
        }
        fclose(r);
        for (size_t i = 0; i < sizeof raw; i++) snprintf(key + 2 * i, 3, "%02x", raw[i]);
        n = 2 * sizeof raw;
        fprintf(msg, "acmd: new key for %s (give it to the client; only its hash goes into the file):\n%s\n", name, key);
    }
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)key[i] <= 0x20 || key[i] == 0x7f) {
            fprintf(msg, "acmd: --hash-key: a key is visible ASCII without spaces (it travels in a header)\n");
            return 1;
        }
    uint8_t h[ACMD_KEY_HASH];
    acmd_key_hash(h, key, n);
    fprintf(out, "%s sha256:", name);
    for (size_t i = 0; i < sizeof h; i++) fprintf(out, "%02x", h[i]);
    fputc('\n', out);
    return 0;
}
