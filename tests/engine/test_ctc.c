/*
 * test_ctc.c — engine/ctc.c against the float64 numpy reference (tests/reference/gen_ctc.py ->
 * tests/golden/ctc_cases.json): texts, character spans, word frames and ids equal; scores and confidences within 1e-9
 * (relative); partial results frame by frame (text, stable prefix, stable words). Then what the reference cannot
 * say: chunked feeding in random splits gives the whole-sequence result bit for bit, greedy partials are append-only,
 * a beam's stable prefix and stable words never change afterwards, nothing is allocated per chunk, long streams stay
 * within the fixed state, bad input is refused with a message and changes nothing, and the word-list parser.
 *
 * This binary is linked with -Wl,--wrap=malloc,... (Makefile) to count allocations, as test_noalloc is.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "ctc.h"
#include "train/speech_grammar.h"
#include "alloc_count.h"

/* ---- golden cases ------------------------------------------------------------------------------------------------ */

typedef struct {
    int32_t prev, word;
    double score;
} score_row;

typedef struct {
    const char *name;
    json_t *j;   /* the case object */
    json_t *exp; /* its "expected" */
    acm_ctc_alphabet alpha;
    acm_ctc_lexicon *lex;
    acm_ctc_params p;
    score_row *scores;
    int n_scores;
    int64_t first_frame;
    int64_t T;
    int V;
    float *logits; /* [T, V] */
} gcase;

static json_t *golden;

static double table_score(void *ctx, int32_t prev, int32_t word) {
    const gcase *c = ctx;
    for (int i = 0; i < c->n_scores; i++)
        if (c->scores[i].prev == prev && c->scores[i].word == word) return c->scores[i].score;
    return 0;
}

static int load_cases(gcase **out) {
    json_error_t je;
    if (!golden) golden = json_load_file("tests/golden/ctc_cases.json", 0, &je);
    cr_assert(golden, "tests/golden/ctc_cases.json: %s (line %d); run /usr/bin/python3 tests/reference/gen_ctc.py",
              je.text, je.line);
    json_t *inputs = json_object_get(golden, "inputs"), *cases = json_object_get(golden, "cases");
    cr_assert(json_is_array(inputs) && json_is_array(cases));
    int n = (int)json_array_size(cases);
    gcase *cs = calloc((size_t)n, sizeof *cs);
    cr_assert(cs);
    for (int i = 0; i < n; i++) {
        gcase *c = &cs[i];
        c->j = json_array_get(cases, (size_t)i);
        c->exp = json_object_get(c->j, "expected");
        c->name = json_string_value(json_object_get(c->j, "name"));
        char err[512] = "";
        cr_assert_eq(acm_ctc_alphabet_init(&c->alpha, json_string_value(json_object_get(c->j, "alphabet")),
                                           (int)json_integer_value(json_object_get(c->j, "blank")), err, sizeof err),
                     0, "%s: %s", c->name, err);
        c->p = acm_ctc_default_params();
        c->p.mode =
            strcmp(json_string_value(json_object_get(c->j, "mode")), "beam") == 0 ? ACM_CTC_BEAM : ACM_CTC_GREEDY;
        c->p.beam = (int)json_integer_value(json_object_get(c->j, "beam"));
        json_t *pr = json_object_get(c->j, "prune");
        c->p.prune = json_is_number(pr) ? json_number_value(pr) : INFINITY;
        c->p.max_text = (int)json_integer_value(json_object_get(c->j, "max_text"));
        c->p.frame_seconds = json_real_value(json_object_get(c->j, "frame_seconds"));
        c->first_frame = json_integer_value(json_object_get(c->j, "first_frame"));
        json_t *words = json_object_get(c->j, "words");
        if (json_is_array(words)) {
            size_t nw = json_array_size(words);
            const char **w = malloc(nw * sizeof *w);
            for (size_t k = 0; k < nw; k++) w[k] = json_string_value(json_array_get(words, k));
            c->lex = acm_ctc_lexicon_new(&c->alpha, w, nw, err, sizeof err);
            cr_assert(c->lex, "%s: %s", c->name, err);
            free(w);
            c->p.lexicon = c->lex;
        }
        json_t *sc = json_object_get(c->j, "word_scores");
        if (json_is_array(sc)) {
            c->n_scores = (int)json_array_size(sc);
            c->scores = calloc((size_t)c->n_scores, sizeof *c->scores);
            for (int k = 0; k < c->n_scores; k++) {
                json_t *r = json_array_get(sc, (size_t)k);
                c->scores[k] = (score_row){(int32_t)json_integer_value(json_array_get(r, 0)),
                                           (int32_t)json_integer_value(json_array_get(r, 1)),
                                           json_number_value(json_array_get(r, 2))};
            }
            c->p.word_score = table_score;
            c->p.word_score_ctx = c;
        }
        c->T = json_integer_value(json_object_get(c->j, "T"));
        c->V = (int)json_integer_value(json_object_get(c->j, "V"));
        json_t *x = json_array_get(inputs, (size_t)json_integer_value(json_object_get(c->j, "input")));
        cr_assert_eq((int64_t)json_array_size(x), c->T * c->V, "%s: input size", c->name);
        c->logits = malloc((size_t)(c->T * c->V + 1) * sizeof *c->logits);
        for (int64_t k = 0; k < c->T * c->V; k++) c->logits[k] = (float)json_number_value(json_array_get(x, (size_t)k));
    }
    *out = cs;
    return n;
}

static void free_cases(gcase *cs, int n) {
    for (int i = 0; i < n; i++) {
        acm_ctc_lexicon_free(cs[i].lex);
        free(cs[i].scores);
        free(cs[i].logits);
    }
    free(cs);
    json_decref(golden);
    golden = NULL;
}

static acm_ctc_decoder *mk(const gcase *c) {
    char err[512] = "";
    acm_ctc_decoder *d = acm_ctc_decoder_new(&c->alpha, c->p, err, sizeof err);
    cr_assert(d, "%s: %s", c->name, err);
    acm_ctc_reset(d, c->first_frame);
    return d;
}

static void push(acm_ctc_decoder *d, const gcase *c, int64_t from, int64_t n) {
    char err[512] = "";
    cr_assert_eq(acm_ctc_push(d, c->logits + from * c->V, n, c->V, err, sizeof err), 0, "%s: %s", c->name, err);
}

static double rel(double a, double b) { return fabs(a - b) / fmax(1.0, fabs(b)); }

/* Every case, whole: the final result against the reference. */
Test(ctc, golden_numpy_float64) {
    gcase *cs;
    int n = load_cases(&cs);
    cr_assert_geq(n, 80);
    double max_score = 0, max_conf = 0;
    int beams = 0, lexicons = 0, hooks = 0, pruned = 0;
    for (int i = 0; i < n; i++) {
        const gcase *c = &cs[i];
        acm_ctc_decoder *d = mk(c);
        push(d, c, 0, c->T);
        acm_ctc_result r;
        acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
        const char *want = json_string_value(json_object_get(c->exp, "text"));
        cr_assert_str_eq(r.text, want, "%s: text \"%s\", reference \"%s\"", c->name, r.text, want);
        cr_assert_eq(r.len, (int32_t)strlen(want));
        double ds = rel(r.score, json_real_value(json_object_get(c->exp, "score")));
        if (ds > max_score) max_score = ds;
        cr_assert(ds <= 1e-9, "%s: score %.17g, reference %.17g", c->name, r.score,
                  json_real_value(json_object_get(c->exp, "score")));
        json_t *chars = json_object_get(c->exp, "chars");
        for (int32_t k = 0; k < r.len; k++) {
            json_t *s = json_array_get(chars, (size_t)k);
            cr_assert(r.char_start[k] == json_integer_value(json_array_get(s, 0)) &&
                          r.char_end[k] == json_integer_value(json_array_get(s, 1)),
                      "%s: character %d '%c' spans [%lld, %lld), reference [%lld, %lld)", c->name, k, r.text[k],
                      (long long)r.char_start[k], (long long)r.char_end[k],
                      (long long)json_integer_value(json_array_get(s, 0)),
                      (long long)json_integer_value(json_array_get(s, 1)));
        }
        json_t *words = json_object_get(c->exp, "words");
        cr_assert_eq(r.n_words, (int32_t)json_array_size(words), "%s: %d words, reference %zu", c->name, r.n_words,
                     json_array_size(words));
        for (int32_t k = 0; k < r.n_words; k++) {
            json_t *w = json_array_get(words, (size_t)k);
            const acm_ctc_word *g = &r.words[k];
            const char *wt = json_string_value(json_array_get(w, 0));
            cr_assert(g->len == (int32_t)strlen(wt) && strncmp(r.text + g->offset, wt, (size_t)g->len) == 0,
                      "%s: word %d \"%.*s\", reference \"%s\"", c->name, k, g->len, r.text + g->offset, wt);
            cr_assert(g->start == json_integer_value(json_array_get(w, 1)) &&
                          g->end == json_integer_value(json_array_get(w, 2)),
                      "%s: word \"%s\" frames [%lld, %lld), reference [%lld, %lld)", c->name, wt, (long long)g->start,
                      (long long)g->end, (long long)json_integer_value(json_array_get(w, 1)),
                      (long long)json_integer_value(json_array_get(w, 2)));
            cr_assert(g->start_s == (double)g->start * 0.04 && g->end_s == (double)g->end * 0.04);
            double dc = rel(g->confidence, json_real_value(json_array_get(w, 3)));
            if (dc > max_conf) max_conf = dc;
            cr_assert(dc <= 1e-9 && g->confidence > 0 && g->confidence <= 1,
                      "%s: word \"%s\" confidence %.17g, reference %.17g", c->name, wt, g->confidence,
                      json_real_value(json_array_get(w, 3)));
            cr_assert_eq(g->id, (int32_t)json_integer_value(json_array_get(w, 4)), "%s: word \"%s\" id %d", c->name, wt,
                         g->id);
        }
        cr_assert_eq(r.truncated, (int)json_integer_value(json_object_get(c->exp, "truncated")), "%s: truncated",
                     c->name);
        cr_assert_eq(r.incomplete, (int)json_integer_value(json_object_get(c->exp, "incomplete")), "%s: incomplete",
                     c->name);
        cr_assert_eq(r.frames, c->T);
        cr_assert_eq(r.trailing_blank, json_integer_value(json_object_get(c->exp, "trailing_blank")),
                     "%s: %lld trailing blank frames", c->name, (long long)r.trailing_blank);
        cr_assert_eq(acm_ctc_next_frame(d), c->first_frame + c->T);
        beams += c->p.mode == ACM_CTC_BEAM;
        lexicons += c->lex != NULL;
        hooks += c->n_scores > 0;
        pruned += isfinite(c->p.prune);
        acm_ctc_decoder_free(d);
    }
    cr_log_info("ctc golden: %d cases (%d beam, %d with a word list, %d with word scores, %d with a threshold); max "
                "relative difference: score %.3g, confidence %.3g",
                n, beams, lexicons, hooks, pruned, max_score, max_conf);
    cr_assert(beams >= 40 && lexicons >= 10 && hooks >= 10 && pruned >= 10);
    free_cases(cs, n);
}

/* Partial results after every frame: text, stable prefix, words and stable words. */
Test(ctc, golden_partials) {
    gcase *cs;
    int n = load_cases(&cs), checked = 0;
    for (int i = 0; i < n; i++) {
        const gcase *c = &cs[i];
        json_t *parts = json_object_get(c->j, "partials");
        if (!json_is_array(parts)) continue;
        cr_assert_eq((int64_t)json_array_size(parts), c->T);
        acm_ctc_decoder *d = mk(c);
        for (int64_t t = 0; t < c->T; t++) {
            push(d, c, t, 1);
            acm_ctc_result r;
            acm_ctc_result_get(d, ACM_CTC_PARTIAL, &r);
            json_t *p = json_array_get(parts, (size_t)t);
            const char *want = json_string_value(json_array_get(p, 0));
            cr_assert_str_eq(r.text, want, "%s frame %lld: partial \"%s\", reference \"%s\"", c->name, (long long)t,
                             r.text, want);
            cr_assert(r.stable_len == json_integer_value(json_array_get(p, 1)) &&
                          r.n_words == json_integer_value(json_array_get(p, 2)) &&
                          r.n_stable_words == json_integer_value(json_array_get(p, 3)),
                      "%s frame %lld \"%s\": stable %d, words %d, stable words %d; reference %lld %lld %lld", c->name,
                      (long long)t, r.text, r.stable_len, r.n_words, r.n_stable_words,
                      (long long)json_integer_value(json_array_get(p, 1)),
                      (long long)json_integer_value(json_array_get(p, 2)),
                      (long long)json_integer_value(json_array_get(p, 3)));
        }
        acm_ctc_decoder_free(d);
        checked++;
    }
    cr_assert_geq(checked, 10);
    free_cases(cs, n);
}

/* ---- streaming -------------------------------------------------------------------------------------------------- */

typedef struct {
    char text[4096];
    int32_t len, stable_len, n_words, n_stable;
    int64_t cs[4096], ce[4096];
    acm_ctc_word words[2048];
    double score;
    int truncated, incomplete;
} snap;

static void take(snap *s, const acm_ctc_result *r) {
    cr_assert(r->len < 4096);
    memcpy(s->text, r->text, (size_t)r->len + 1);
    s->len = r->len, s->stable_len = r->stable_len, s->n_words = r->n_words, s->n_stable = r->n_stable_words;
    memcpy(s->cs, r->char_start, (size_t)r->len * sizeof *s->cs);
    memcpy(s->ce, r->char_end, (size_t)r->len * sizeof *s->ce);
    memcpy(s->words, r->words, (size_t)r->n_words * sizeof *s->words);
    s->score = r->score, s->truncated = r->truncated, s->incomplete = r->incomplete;
}

static int same_word(const acm_ctc_word *a, const acm_ctc_word *b) {
    return a->start == b->start && a->end == b->end && a->confidence == b->confidence && a->offset == b->offset &&
           a->len == b->len && a->id == b->id;
}

static uint64_t rng_next(uint64_t *s) {
    *s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Random splits (empty chunks, single frames, long ones) give the whole-sequence result bit for bit; along the way
 * greedy text only grows, and a beam's stable prefix and stable words are those of every later result. */
Test(ctc, chunked_equals_whole_and_partials_hold) {
    gcase *cs;
    int n = load_cases(&cs);
    snap *whole = malloc(sizeof *whole), *part = malloc(sizeof *part), *prev = malloc(sizeof *prev);
    snap *hist = malloc(64 * sizeof *hist); /* partials kept to check against later ones */
    uint64_t rng = 42;
    for (int i = 0; i < n; i++) {
        const gcase *c = &cs[i];
        acm_ctc_decoder *d = mk(c);
        push(d, c, 0, c->T);
        acm_ctc_result r;
        acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
        take(whole, &r);
        for (int trial = 0; trial < 4; trial++) {
            acm_ctc_reset(d, c->first_frame);
            int nh = 0;
            prev->len = 0;
            for (int64_t t = 0; t < c->T;) {
                int64_t k;
                switch (rng_next(&rng) % 4) {
                case 0: k = 0; break;
                case 1: k = 1; break;
                case 2: k = (int64_t)(rng_next(&rng) % 8); break;
                default: k = (int64_t)(rng_next(&rng) % (uint64_t)(c->T + 1)); break;
                }
                if (k > c->T - t) k = c->T - t;
                push(d, c, t, k);
                t += k;
                acm_ctc_result_get(d, ACM_CTC_PARTIAL, &r);
                take(part, &r);
                if (c->p.mode == ACM_CTC_GREEDY) {
                    cr_assert(part->len >= prev->len && memcmp(part->text, prev->text, (size_t)prev->len) == 0,
                              "%s: greedy partial \"%s\" does not extend \"%s\"", c->name, part->text, prev->text);
                    cr_assert_eq(part->stable_len, part->len);
                }
                if (nh < 64) hist[nh++] = *part;
                *prev = *part;
            }
            acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
            take(part, &r);
            cr_assert(part->len == whole->len && strcmp(part->text, whole->text) == 0 && part->score == whole->score &&
                          memcmp(part->cs, whole->cs, (size_t)part->len * sizeof *part->cs) == 0 &&
                          memcmp(part->ce, whole->ce, (size_t)part->len * sizeof *part->ce) == 0 &&
                          part->n_words == whole->n_words && part->truncated == whole->truncated &&
                          part->incomplete == whole->incomplete,
                      "%s split %d: \"%s\" (score %.17g), whole \"%s\" (%.17g)", c->name, trial, part->text,
                      part->score, whole->text, whole->score);
            for (int32_t w = 0; w < part->n_words; w++)
                cr_assert(same_word(&part->words[w], &whole->words[w]), "%s split %d: word %d differs", c->name, trial,
                          w);
            /* whatever a partial called stable is in the final result, times and confidences included */
            for (int h = 0; h < nh; h++) {
                const snap *s = &hist[h];
                cr_assert(s->stable_len <= whole->len && memcmp(s->text, whole->text, (size_t)s->stable_len) == 0 &&
                              memcmp(s->cs, whole->cs, (size_t)s->stable_len * sizeof *s->cs) == 0,
                          "%s: stable prefix \"%.*s\" of a partial is not in the final \"%s\"", c->name, s->stable_len,
                          s->text, whole->text);
                for (int32_t k = 0; k + 1 < s->stable_len; k++) cr_assert_eq(s->ce[k], whole->ce[k], "%s", c->name);
                for (int32_t w = 0; w < s->n_stable; w++)
                    cr_assert(w < whole->n_words && same_word(&s->words[w], &whole->words[w]),
                              "%s: stable word %d \"%.*s\" changed", c->name, w, s->words[w].len,
                              s->text + s->words[w].offset);
            }
        }
        acm_ctc_decoder_free(d);
    }
    free(whole);
    free(part);
    free(prev);
    free(hist);
    free_cases(cs, n);
}

/* After creation nothing is allocated: push, result (partial and final), reset, decode; beam with a word list too. */
Test(ctc, no_allocation_per_chunk) {
    alloc_counting = 1;
    alloc_calls = 0;
    void *p = malloc(16);
    free(p);
    alloc_counting = 0;
    cr_assert_eq(alloc_calls, 2, "the --wrap link flags are missing (Makefile): %ld calls counted", alloc_calls);
    gcase *cs;
    int n = load_cases(&cs);
    char err[256];
    for (int i = 0; i < n; i++) {
        const gcase *c = &cs[i];
        acm_ctc_decoder *d = mk(c);
        acm_ctc_result r;
        alloc_calls = 0;
        alloc_counting = 1;
        for (int64_t t = 0; t < c->T; t += 3) {
            int rc = acm_ctc_push(d, c->logits + t * c->V, t + 3 <= c->T ? 3 : c->T - t, c->V, err, sizeof err);
            acm_ctc_result_get(d, ACM_CTC_PARTIAL, &r);
            if (rc) break;
        }
        acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
        acm_ctc_reset(d, acm_ctc_next_frame(d));
        int rc = acm_ctc_decode(d, c->logits, c->T, c->V, &r, err, sizeof err);
        alloc_counting = 0;
        cr_assert_eq(rc, 0);
        cr_expect_eq(alloc_calls, 0, "%s: %ld allocator calls", c->name, alloc_calls);
        acm_ctc_decoder_free(d);
    }
    free_cases(cs, n);
}

/* ---- long streams, segments, the fixed state ------------------------------------------------------------------- */

/* Spiky random logits: mostly blank, now and then a random symbol; or flat noise. */
static void random_logits(float *x, int64_t T, int V, uint64_t *rng, int flat) {
    for (int64_t t = 0; t < T; t++) {
        int hot = (rng_next(rng) % 3 == 0) ? (int)(rng_next(rng) % (uint64_t)V) : 0;
        for (int s = 0; s < V; s++) {
            double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0;
            x[t * V + s] = (float)(flat ? 4 * u : 3 * u + (s == hot ? 6 : 0));
        }
    }
}

/* Ten thousand frames into a small decoder: hypotheses stop at max_text (flagged), the node pool holds (its
 * invariants abort otherwise), partial results stay consistent, and reset starts over with the stream's clock. */
Test(ctc, long_stream_fixed_state) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    const int V = a.size;
    const int64_t T = 10000;
    float *x = malloc((size_t)T * V * sizeof *x);
    uint64_t rng = 7;
    for (int flat = 0; flat < 2; flat++) {
        random_logits(x, T, V, &rng, flat);
        for (int mode = 0; mode < 2; mode++) {
            acm_ctc_params p = acm_ctc_default_params();
            p.mode = mode ? ACM_CTC_BEAM : ACM_CTC_GREEDY;
            p.beam = 6;
            p.max_text = 48;
            char err[256];
            acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err);
            cr_assert(d, "%s", err);
            const size_t bytes = acm_ctc_decoder_bytes(d);
            cr_assert_gt(bytes, 0);
            acm_ctc_result r;
            int full = 0;
            for (int64_t t = 0; t < T; t += 25) {
                cr_assert_eq(acm_ctc_push(d, x + t * V, 25, V, err, sizeof err), 0, "%s", err);
                acm_ctc_result_get(d, ACM_CTC_PARTIAL, &r);
                cr_assert(r.len <= 48 && r.stable_len <= r.len && (int32_t)strlen(r.text) == r.len);
                cr_assert(r.n_stable_words <= r.n_words);
                for (int32_t w = 0; w < r.n_words; w++)
                    cr_assert(r.words[w].start < r.words[w].end && r.words[w].confidence > 0 &&
                              r.words[w].confidence <= 1);
                full |= r.truncated;
                if (r.len == 48 && t % 1000 == 0) acm_ctc_reset(d, acm_ctc_next_frame(d)); /* a caller's segment end */
            }
            cr_assert(full, "the stream never reached max_text: the test lost its point");
            /* the clock goes on across resets */
            acm_ctc_reset(d, acm_ctc_next_frame(d));
            cr_assert_eq(acm_ctc_next_frame(d), T);
            cr_assert_eq(acm_ctc_push(d, x, 40, V, err, sizeof err), 0);
            acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
            cr_assert(r.frames == 40 && (r.len == 0 || r.char_start[0] >= T), "times continue from the stream clock");
            cr_assert_eq(acm_ctc_decoder_bytes(d), bytes);
            acm_ctc_decoder_free(d);
        }
    }
    /* the limit is reported */
    acm_ctc_params p = acm_ctc_default_params();
    p.max_text = 3;
    char err[256];
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err);
    random_logits(x, 200, V, &rng, 0);
    acm_ctc_result r;
    cr_assert_eq(acm_ctc_decode(d, x, 200, V, &r, err, sizeof err), 0);
    cr_assert(r.truncated && r.len == 3);
    acm_ctc_decoder_free(d);
    free(x);
}

/* ---- bad input --------------------------------------------------------------------------------------------------- */

Test(ctc, alphabet_refusals) {
    acm_ctc_alphabet a;
    char err[256];
    cr_assert_eq(acm_ctc_alphabet_init(&a, "", 0, err, sizeof err), ACM_EINVAL);
    cr_assert(strstr(err, "0 symbols"), "%s", err);
    cr_assert_eq(acm_ctc_alphabet_init(&a, "_", 0, err, sizeof err), ACM_EINVAL);
    cr_assert_eq(acm_ctc_alphabet_init(&a, NULL, 0, err, sizeof err), ACM_EINVAL);
    cr_assert_eq(acm_ctc_alphabet_init(&a, "_ab", 3, err, sizeof err), ACM_EINVAL);
    cr_assert(strstr(err, "blank index 3"), "%s", err);
    cr_assert_eq(acm_ctc_alphabet_init(&a, "_ab", -1, err, sizeof err), ACM_EINVAL);
    cr_assert_eq(acm_ctc_alphabet_init(&a, "_aba", 0, err, sizeof err), ACM_EINVAL);
    cr_assert(strstr(err, "'a' appears twice"), "%s", err);
    cr_assert_eq(acm_ctc_alphabet_init(&a, "_a\tb", 0, err, sizeof err), ACM_EINVAL);
    cr_assert(strstr(err, "0x09"), "%s", err);
    char big[ACM_CTC_MAX_SYMBOLS + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_assert_eq(acm_ctc_alphabet_init(&a, big, 0, err, sizeof err), ACM_EINVAL);
    /* the blank's byte may repeat a symbol: it is a placeholder */
    cr_assert_eq(acm_ctc_alphabet_init(&a, "a ab", 0, err, sizeof err), 0, "%s", err);
    cr_assert(a.size == 4 && a.blank == 0 && a.space == 1 && a.index['a'] == 2 && a.index['b'] == 3);
    acm_ctc_alphabet dflt = acm_ctc_alphabet_default();
    cr_assert(dflt.size == 29 && dflt.blank == 0 && dflt.space == 28 && dflt.index['\''] == 27 && dflt.index['a'] == 1);
    /* a speech model's alphabet string: the blank goes first */
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, "abcdefghijklmnopqrstuvwxyz' ", err, sizeof err), 0, "%s", err);
    cr_assert(a.size == dflt.size && a.blank == 0 && a.space == dflt.space &&
              memcmp(a.index, dflt.index, sizeof a.index) == 0);
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, "_x", err, sizeof err), 0, "%s", err); /* '_' is a symbol there */
    cr_assert(a.size == 3 && a.index['_'] == 1 && a.index['x'] == 2);
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, "", err, sizeof err), ACM_EINVAL);
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, "aa", err, sizeof err), ACM_EINVAL);
    cr_assert_eq(acm_ctc_alphabet_init_blank_first(&a, big, err, sizeof err), ACM_EINVAL);
    cr_assert(strstr(err, "at most 128"), "%s", err);
}

Test(ctc, decoder_refusals) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default(), other;
    cr_assert_eq(acm_ctc_alphabet_init(&other, "_ab ", 0, NULL, 0), 0);
    char err[256];
    acm_ctc_lexicon *lx = acm_ctc_lexicon_parse(&a, "one two", 7, err, sizeof err),
                    *lo = acm_ctc_lexicon_parse(&other, "ab", 2, err, sizeof err);
    cr_assert(lx && lo);
    struct {
        acm_ctc_params p;
        const char *msg;
    } bad[] = {
        {{.mode = ACM_CTC_BEAM, .beam = 0, .max_text = 10, .frame_seconds = 0.04}, "beam width 0"},
        {{.mode = ACM_CTC_BEAM, .beam = -3, .max_text = 10, .frame_seconds = 0.04}, "beam width -3"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 0, .frame_seconds = 0.04}, "max_text"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 10, .frame_seconds = 0}, "frame_seconds"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 10, .frame_seconds = NAN}, "frame_seconds"},
        {{.mode = (acm_ctc_mode)7, .max_text = 10, .frame_seconds = 0.04}, "mode"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 10, .frame_seconds = 0.04, .lexicon = lx}, "needs the beam"},
        {{.mode = ACM_CTC_BEAM, .beam = 2, .max_text = 10, .frame_seconds = 0.04, .lexicon = lo}, "another alphabet"},
        {{.mode = ACM_CTC_BEAM, .beam = 2, .max_text = 10, .frame_seconds = 0.04, .word_score = table_score},
         "needs a word list"},
        {{.mode = ACM_CTC_BEAM, .beam = 1 << 16, .max_text = 1 << 24, .frame_seconds = 0.04}, "too large"},
        {{.mode = ACM_CTC_BEAM, .beam = 4, .prune = -1, .max_text = 10, .frame_seconds = 0.04}, "prune"},
        {{.mode = ACM_CTC_BEAM, .beam = 4, .prune = NAN, .max_text = 10, .frame_seconds = 0.04}, "prune"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 10, .frame_seconds = 0.04, .pause_break_s = -1}, "pause_break_s"},
        {{.mode = ACM_CTC_GREEDY, .max_text = 10, .frame_seconds = 0.04, .pause_break_s = INFINITY}, "pause_break_s"},
        {{.mode = ACM_CTC_BEAM, .beam = 2, .max_text = 10, .frame_seconds = 0.04, .pause_break_s = 0.8}, "GREEDY"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        cr_assert_null(acm_ctc_decoder_new(&a, bad[i].p, err, sizeof err), "case %zu accepted", i);
        cr_assert(strstr(err, bad[i].msg), "case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].msg);
    }
    acm_ctc_alphabet empty;
    memset(&empty, 0, sizeof empty);
    cr_assert_null(acm_ctc_decoder_new(&empty, acm_ctc_default_params(), err, sizeof err));
    cr_assert(strstr(err, "alphabet"), "%s", err);
    cr_assert_null(acm_ctc_decoder_new(NULL, acm_ctc_default_params(), err, sizeof err));
    acm_ctc_lexicon_free(lx);
    acm_ctc_lexicon_free(lo);
}

/* Greedy text of "a", `gap` blank frames, "b", a space frame, "c" (argmax logits over the default alphabet), with the
 * pause break at pause_s (frames of 0.04 s). */
static void pause_text(int gap, double pause_s, char *out, size_t n) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    acm_ctc_params p = acm_ctc_default_params();
    p.pause_break_s = pause_s;
    char err[256];
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err);
    cr_assert(d, "%s", err);
    const int V = a.size, T = gap + 4;
    float *x = calloc((size_t)T * V, sizeof *x);
    int t = 0, sym[3] = {-1, -1, -1};
    for (int k = 0; k < V; k++) {
        if (a.symbols[k] == 'a') sym[0] = k;
        if (a.symbols[k] == 'b') sym[1] = k;
        if (a.symbols[k] == 'c') sym[2] = k;
    }
    cr_assert(sym[0] >= 0 && sym[1] >= 0 && sym[2] >= 0 && a.space >= 0);
    x[t++ * V + sym[0]] = 5;
    for (int g = 0; g < gap; g++) x[t++ * V + a.blank] = 5;
    x[t++ * V + sym[1]] = 5;
    x[t++ * V + a.space] = 5;
    x[t++ * V + sym[2]] = 5;
    cr_assert_eq(acm_ctc_push(d, x, T, V, err, sizeof err), 0, "%s", err);
    acm_ctc_result r;
    acm_ctc_result_get(d, ACM_CTC_FINAL, &r);
    snprintf(out, n, "%s", r.text);
    free(x);
    acm_ctc_decoder_free(d);
}

/* pause_break_s: a blank run of at least that long between two characters puts a space in (whole-file decoding
 * breaks a word where a stream's endpoint would end its segment); shorter runs, a space already there, or the break
 * off leave the text as the model spelled it. */
Test(ctc, pause_breaks_the_word) {
    char t[64];
    pause_text(20, 0, t, sizeof t);
    cr_expect_str_eq(t, "ab c", "off");
    pause_text(20, 0.8, t, sizeof t); /* 20 frames of 0.04 s: 0.8 s */
    cr_expect_str_eq(t, "a b c");
    pause_text(19, 0.8, t, sizeof t); /* 0.76 s: too short */
    cr_expect_str_eq(t, "ab c");
    pause_text(40, 0.8, t, sizeof t);
    cr_expect_str_eq(t, "a b c");
}

/* V mismatch, NaN, infinities, negative T, NULL: refused with a message, and the state is as it was. */
Test(ctc, push_refusals_change_nothing) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    const int V = a.size;
    float x[40 * 29];
    uint64_t rng = 3;
    random_logits(x, 40, V, &rng, 0);
    for (int mode = 0; mode < 2; mode++) {
        acm_ctc_params p = acm_ctc_default_params();
        p.mode = mode ? ACM_CTC_BEAM : ACM_CTC_GREEDY;
        char err[256];
        acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err),
                        *ref = acm_ctc_decoder_new(&a, p, err, sizeof err);
        cr_assert_eq(acm_ctc_push(d, x, 20, V, err, sizeof err), 0);
        cr_assert_eq(acm_ctc_push(ref, x, 20, V, err, sizeof err), 0);
        float y[20 * 29];
        memcpy(y, x + 20 * V, sizeof y);
        cr_assert_eq(acm_ctc_push(d, y, 20, V - 1, err, sizeof err), ACM_EINVAL);
        cr_assert(strstr(err, "28 symbols per frame, the alphabet has 29"), "%s", err);
        cr_assert_eq(acm_ctc_push(d, y, -1, V, err, sizeof err), ACM_EINVAL);
        cr_assert_eq(acm_ctc_push(d, NULL, 2, V, err, sizeof err), ACM_EINVAL);
        cr_assert_eq(acm_ctc_push(d, NULL, 0, V, err, sizeof err), 0);
        y[13 * V + 5] = NAN;
        cr_assert_eq(acm_ctc_push(d, y, 20, V, err, sizeof err), ACM_EINVAL);
        cr_assert(strstr(err, "frame 13 symbol 5 ('e') is NaN"), "%s", err);
        y[13 * V + 5] = INFINITY;
        cr_assert_eq(acm_ctc_push(d, y, 20, V, err, sizeof err), ACM_EINVAL);
        cr_assert(strstr(err, "infinite"), "%s", err);
        y[13 * V + 5] = -INFINITY;
        acm_ctc_result r;
        cr_assert_eq(acm_ctc_decode(d, y, 20, V, &r, err, sizeof err), ACM_EINVAL, "decode refuses too");
        /* nothing was consumed: the same continuation gives the same result as the untouched decoder */
        cr_assert_eq(acm_ctc_push(d, x + 20 * V, 20, V, err, sizeof err), 0);
        cr_assert_eq(acm_ctc_push(ref, x + 20 * V, 20, V, err, sizeof err), 0);
        acm_ctc_result r1, r2;
        acm_ctc_result_get(d, ACM_CTC_FINAL, &r1);
        char t1[1100];
        snprintf(t1, sizeof t1, "%s", r1.text);
        double s1 = r1.score;
        acm_ctc_result_get(ref, ACM_CTC_FINAL, &r2);
        cr_assert(strcmp(t1, r2.text) == 0 && s1 == r2.score && r1.frames == 40, "\"%s\" vs \"%s\"", t1, r2.text);
        acm_ctc_decoder_free(d);
        acm_ctc_decoder_free(ref);
    }
}

/* ---- word lists -------------------------------------------------------------------------------------------------- */

Test(ctc, word_list_parse) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    char err[256];
    const char *txt = "hello\nworld\r\n  o'clock\tHello\n\nworld\nI'd";
    acm_ctc_lexicon *l = acm_ctc_lexicon_parse(&a, txt, strlen(txt), err, sizeof err);
    cr_assert(l, "%s", err);
    cr_assert_eq(acm_ctc_lexicon_size(l), 4, "duplicates and capitals merged: %d", acm_ctc_lexicon_size(l));
    cr_assert_str_eq(acm_ctc_lexicon_word(l, 0), "hello");
    cr_assert_str_eq(acm_ctc_lexicon_word(l, 1), "world");
    cr_assert_str_eq(acm_ctc_lexicon_word(l, 2), "o'clock");
    cr_assert_str_eq(acm_ctc_lexicon_word(l, 3), "i'd");
    cr_assert_null(acm_ctc_lexicon_word(l, 4));
    cr_assert_null(acm_ctc_lexicon_word(l, -1));
    cr_assert_eq(acm_ctc_lexicon_find(l, "world"), 1);
    cr_assert_eq(acm_ctc_lexicon_find(l, "worl"), -1);
    cr_assert_eq(acm_ctc_lexicon_find(l, "worlds"), -1);
    cr_assert_eq(acm_ctc_lexicon_find(l, "w#"), -1);
    acm_ctc_lexicon_free(l);

    struct {
        const char *text;
        const char *msg;
    } bad[] = {
        {"", "empty"},
        {" \n\t ", "empty"},
        {"one\ntwo\ncaf\xc3\xa9\n", "line 3: word \"caf\xc3\xa9\" has byte 0xc3"},
        {"one\nt_o", "line 2: word \"t_o\" has '_'"},
        {"one\n3rd", "line 2: word \"3rd\" has '3'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = 0;
        cr_assert_null(acm_ctc_lexicon_parse(&a, bad[i].text, strlen(bad[i].text), err, sizeof err), "case %zu", i);
        cr_assert(strstr(err, bad[i].msg), "case %zu: \"%s\" does not say \"%s\"", i, err, bad[i].msg);
    }
    cr_assert_null(acm_ctc_lexicon_parse(&a, "ab\0cd", 5, err, sizeof err));
    cr_assert(strstr(err, "line 1: NUL byte"), "%s", err);
    cr_assert_null(acm_ctc_lexicon_parse(NULL, "ab", 2, err, sizeof err));
    const char *sp[] = {"one", "two words"};
    cr_assert_null(acm_ctc_lexicon_new(&a, sp, 2, err, sizeof err));
    cr_assert(strstr(err, "line 2") && strstr(err, "not one word"), "%s", err);
    const char *emp[] = {"one", ""};
    cr_assert_null(acm_ctc_lexicon_new(&a, emp, 2, err, sizeof err));
    cr_assert(strstr(err, "empty word"), "%s", err);
    /* an alphabet without capitals' lowercase keeps them as errors; one with capitals takes them as they are */
    acm_ctc_alphabet up;
    cr_assert_eq(acm_ctc_alphabet_init(&up, "_ABC ", 0, NULL, 0), 0);
    cr_assert_null(acm_ctc_lexicon_parse(&up, "abc", 3, err, sizeof err));
    l = acm_ctc_lexicon_parse(&up, "CAB", 3, err, sizeof err);
    cr_assert(l && acm_ctc_lexicon_find(l, "CAB") == 0);
    acm_ctc_lexicon_free(l);
}

/* The speech corpus's vocabulary (train/speech_grammar.c, data/speech/vocab.txt) is spellable in the default
 * alphabet, and the constrained search can say every word of it. */
Test(ctc, corpus_vocabulary) {
    const char *words[4096];
    size_t n = acms_vocabulary(words, 4096);
    cr_assert(n > 100 && n < 4096, "%zu words", n);
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(words[i]) + 1;
    char *txt = malloc(len + 1), *p = txt;
    for (size_t i = 0; i < n; i++) p += sprintf(p, "%s\n", words[i]);
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    char err[256];
    acm_ctc_lexicon *l = acm_ctc_lexicon_parse(&a, txt, (size_t)(p - txt), err, sizeof err);
    cr_assert(l, "%s", err);
    cr_assert_geq(acm_ctc_lexicon_size(l), (int32_t)n - 8, "%d unique of %zu", acm_ctc_lexicon_size(l), n);
    /* one frame per character, each certain: the constrained beam gives the word back */
    acm_ctc_params pp = acm_ctc_default_params();
    pp.mode = ACM_CTC_BEAM;
    pp.lexicon = l;
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, pp, err, sizeof err);
    cr_assert(d, "%s", err);
    float x[64 * 29];
    for (int32_t w = 0; w < acm_ctc_lexicon_size(l); w += 7) {
        const char *s = acm_ctc_lexicon_word(l, w);
        int T = 0;
        for (const char *q = s; *q && T < 62; q++) {
            if (T && q[-1] == *q) { /* a blank between repeats */
                for (int v = 0; v < 29; v++) x[T * 29 + v] = v == 0 ? 5.f : 0.f;
                T++;
            }
            for (int v = 0; v < 29; v++) x[T * 29 + v] = v == a.index[(unsigned char)*q] ? 5.f : 0.f;
            T++;
        }
        acm_ctc_result r;
        cr_assert_eq(acm_ctc_decode(d, x, T, 29, &r, err, sizeof err), 0, "%s", err);
        cr_assert_str_eq(r.text, s);
        cr_assert(r.n_words == 1 && r.words[0].id == w && !r.incomplete);
    }
    acm_ctc_decoder_free(d);
    acm_ctc_lexicon_free(l);
    free(txt);
}

/* The hook is called with (previous word, word) and decides; NaN or +inf from it refuses the word. */
static double refuse_two(void *ctx, int32_t prev, int32_t word) {
    (void)prev;
    const acm_ctc_lexicon *l = ctx;
    return strcmp(acm_ctc_lexicon_word(l, word), "two") == 0 ? NAN : 0.0;
}
static double refuse_two_inf(void *ctx, int32_t prev, int32_t word) {
    return isnan(refuse_two(ctx, prev, word)) ? INFINITY : 0.0;
}

Test(ctc, word_score_hook) {
    acm_ctc_alphabet a = acm_ctc_alphabet_default();
    char err[256];
    const char *ws = "two\nto\n";
    acm_ctc_lexicon *l = acm_ctc_lexicon_parse(&a, ws, strlen(ws), err, sizeof err);
    cr_assert(l, "%s", err);
    /* t w o, clearly */
    float x[6 * 29];
    const char *say = "t_w_o_";
    for (int t = 0; t < 6; t++)
        for (int v = 0; v < 29; v++)
            x[t * 29 + v] = v == (say[t] == '_' ? 0 : a.index[(unsigned char)say[t]]) ? 4.f : 0.f;
    acm_ctc_params p = acm_ctc_default_params();
    p.mode = ACM_CTC_BEAM;
    p.lexicon = l;
    acm_ctc_decoder *d = acm_ctc_decoder_new(&a, p, err, sizeof err);
    acm_ctc_result r;
    cr_assert_eq(acm_ctc_decode(d, x, 6, 29, &r, err, sizeof err), 0);
    cr_assert_str_eq(r.text, "two");
    acm_ctc_decoder_free(d);
    acm_ctc_word_score_fn fns[2] = {refuse_two, refuse_two_inf};
    for (int i = 0; i < 2; i++) {
        p.word_score = fns[i];
        p.word_score_ctx = l;
        d = acm_ctc_decoder_new(&a, p, err, sizeof err);
        cr_assert_eq(acm_ctc_decode(d, x, 6, 29, &r, err, sizeof err), 0);
        cr_assert_str_eq(r.text, "to", "hook %d: \"%s\"", i, r.text);
        cr_assert(isfinite(r.score));
        acm_ctc_decoder_free(d);
    }
    acm_ctc_lexicon_free(l);
}
