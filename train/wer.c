/*
 * wer.c — word and character error rates (see wer.h): one Levenshtein routine over tokens given as (offset, length)
 * spans, used for words and for characters alike.
 */
#include "train/wer.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t off, len;
} span;

/* Word spans of s into *out (malloc'd). Returns the count, or -1 when out of memory. */
static int64_t words_of(const char *s, span **out) {
    int64_t n = 0, cap = 16;
    span *w = malloc(sizeof *w * (size_t)cap);
    if (!w) return -1;
    for (int32_t i = 0; s[i];) {
        while (s[i] == ' ') i++;
        if (!s[i]) break;
        int32_t j = i;
        while (s[j] && s[j] != ' ') j++;
        if (n == cap) {
            span *g = realloc(w, sizeof *w * (size_t)(cap *= 2));
            if (!g) {
                free(w);
                return -1;
            }
            w = g;
        }
        w[n++] = (span){i, j - i};
        i = j;
    }
    *out = w;
    return n;
}

static int same(const char *a, span x, const char *b, span y) {
    return x.len == y.len && !memcmp(a + x.off, b + y.off, (size_t)x.len);
}

/* Levenshtein distance between token sequences (two rows of the table). */
static int64_t levenshtein(const char *a, const span *ta, int64_t na, const char *b, const span *tb, int64_t nb) {
    int64_t *prev = malloc(sizeof(int64_t) * (size_t)(nb + 1)), *cur = malloc(sizeof(int64_t) * (size_t)(nb + 1));
    if (!prev || !cur) {
        free(prev);
        free(cur);
        return -1;
    }
    for (int64_t j = 0; j <= nb; j++) prev[j] = j;
    for (int64_t i = 1; i <= na; i++) {
        cur[0] = i;
        for (int64_t j = 1; j <= nb; j++) {
            int64_t sub = prev[j - 1] + !same(a, ta[i - 1], b, tb[j - 1]), del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
        int64_t *t = prev;
        prev = cur;
        cur = t;
    }
    int64_t d = prev[nb];
    free(prev);
    free(cur);
    return d;
}

int64_t acmt_word_distance(const char *a, const char *b) {
    span *wa = NULL, *wb = NULL;
    int64_t na = words_of(a, &wa), nb = na < 0 ? -1 : words_of(b, &wb), d = -1;
    if (na >= 0 && nb >= 0) d = levenshtein(a, wa, na, b, wb, nb);
    free(wa);
    free(wb);
    return d;
}

int64_t acmt_char_distance(const char *a, const char *b) {
    const int64_t na = (int64_t)strlen(a), nb = (int64_t)strlen(b);
    span *ca = malloc(sizeof *ca * (size_t)(na + 1)), *cb = malloc(sizeof *cb * (size_t)(nb + 1));
    int64_t d = -1;
    if (ca && cb) {
        for (int64_t i = 0; i < na; i++) ca[i] = (span){(int32_t)i, 1};
        for (int64_t i = 0; i < nb; i++) cb[i] = (span){(int32_t)i, 1};
        d = levenshtein(a, ca, na, b, cb, nb);
    }
    free(ca);
    free(cb);
    return d;
}

int64_t acmt_word_count(const char *a) {
    int64_t n = 0;
    for (int i = 0; a[i]; i++) n += a[i] != ' ' && (i == 0 || a[i - 1] == ' ');
    return n;
}

int acmt_wer_add(acmt_wer *w, const char *ref, const char *hyp) {
    const int64_t dw = acmt_word_distance(ref, hyp), dc = acmt_char_distance(ref, hyp);
    if (dw < 0 || dc < 0) return -1;
    w->word_errors += dw;
    w->words += acmt_word_count(ref);
    w->char_errors += dc;
    w->chars += (int64_t)strlen(ref);
    w->utterances++;
    return 0;
}

static double rate(int64_t e, int64_t n) { return n ? (double)e / (double)n : e ? 1.0 : 0.0; }
double acmt_wer_word_rate(const acmt_wer *w) { return rate(w->word_errors, w->words); }
double acmt_wer_char_rate(const acmt_wer *w) { return rate(w->char_errors, w->chars); }
