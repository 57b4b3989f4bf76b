/*
 * fuzz_ctc.c — the CTC word-list parser and the decoders (engine/ctc.h) on what it gives. Input: byte 0 picks the
 * decoder (bit 0: beam search, bits 1-3: beam width - 1, bit 4: constrain to the word list, bit 5: a threshold of
 * 3), byte 1 the text limit (1 + byte % 64); then the word list text up to the first 0xff byte; the bytes after it
 * are logits (byte / 16) of frames of the default alphabet (29 symbols, a partial last frame dropped).
 * Invariants: the parser accepts or refuses with a message; a result is NUL-terminated at len <= max_text, never
 * starts with a space or holds two in a row, stable_len <= len, word spans are non-empty with confidence in [0, 1];
 * a final constrained result that is not flagged incomplete is made of listed words; pushing in two halves gives the
 * text of one push.
 */
#include <math.h>
#include <string.h>

#include "ctc.h"
#include "fuzz.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const uint8_t mode = data[0];
    const int max_text = 1 + data[1] % 64;
    data += 2, size -= 2;
    const uint8_t *sep = memchr(data, 0xff, size);
    const size_t wl = sep ? (size_t)(sep - data) : size;
    const acm_ctc_alphabet a = acm_ctc_alphabet_default();
    char err[256] = "";
    acm_ctc_lexicon *lx = acm_ctc_lexicon_parse(&a, (const char *)data, wl, err, sizeof err);
    FUZZ_CHECK(lx || err[0]);
    if (lx) {
        for (int32_t i = 0; i < acm_ctc_lexicon_size(lx); i++)
            FUZZ_CHECK(acm_ctc_lexicon_find(lx, acm_ctc_lexicon_word(lx, i)) == i);
    }
    const uint8_t *lg = sep ? sep + 1 : data + size;
    const int V = a.size;
    const int64_t T = (int64_t)((size_t)(data + size - lg) / (size_t)V);
    float *x = malloc((size_t)(T * V + 1) * sizeof *x);
    FUZZ_CHECK(x);
    for (int64_t i = 0; i < T * V; i++) x[i] = (float)lg[i] / 16.0f;
    acm_ctc_params p = acm_ctc_default_params();
    p.mode = (mode & 1) ? ACM_CTC_BEAM : ACM_CTC_GREEDY;
    p.beam = 1 + ((mode >> 1) & 7);
    p.max_text = max_text;
    p.lexicon = (mode & 1) && (mode & 16) ? lx : NULL;
    p.prune = (mode & 32) ? 3.0 : INFINITY;
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err);
    FUZZ_CHECK(d);
    acm_ctc_result r;
    FUZZ_CHECK(acm_ctc_decode(d, x, T, V, &r, err, sizeof err) == 0);
    FUZZ_CHECK(r.len <= max_text && (int32_t)strlen(r.text) == r.len && r.stable_len <= r.len && r.frames == T);
    FUZZ_CHECK(r.len == 0 || r.text[0] != ' ');
    FUZZ_CHECK(!strstr(r.text, "  "));
    for (int32_t w = 0; w < r.n_words; w++) {
        const acm_ctc_word *k = &r.words[w];
        FUZZ_CHECK(k->start < k->end && k->confidence >= 0 && k->confidence <= 1 && k->len > 0);
        if (p.lexicon && !r.incomplete) FUZZ_CHECK(k->id >= 0);
    }
    char *whole = malloc((size_t)r.len + 1);
    FUZZ_CHECK(whole);
    memcpy(whole, r.text, (size_t)r.len + 1);
    acm_ctc_reset(d, 0);
    FUZZ_CHECK(acm_ctc_push(d, x, T / 2, V, err, sizeof err) == 0);
    FUZZ_CHECK(acm_ctc_push(d, x + (T / 2) * V, T - T / 2, V, err, sizeof err) == 0);
    acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
    FUZZ_CHECK(strcmp(whole, r.text) == 0);
    free(whole);
    acm_ctc_decoder_free(d);
    acm_ctc_lexicon_free(lx);
    free(x);
    return 0;
}
