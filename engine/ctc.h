/*
 * ctc.h — CTC decoding: per-frame symbol scores [T, V] -> text, with per-character frame spans and word times.
 * Greedy (best path) and prefix beam search, the latter optionally constrained to a word list; whole or fed chunk by
 * chunk, with partial results that a streaming caller can show as they come.
 *
 * What it is not: no acoustic model (the speech encoder produces the scores), no language model (a hook takes a
 * word-level score; nothing in libacm supplies one), no text normalisation beyond the space rules below.
 *
 * Alphabet: V symbols, one byte each (printable ASCII), one of which is the CTC blank; the byte ' ', when present,
 * separates words. The model file carries the alphabet; acm_ctc_alphabet_default() is the one our speech models use:
 * blank, a-z, apostrophe, space (V = 29, blank 0).
 *
 * Input: logits [T, V] float, one row per frame, any finite values. The decoder applies log-softmax to each row
 * itself (in double), so rows that are already log-probabilities give the same result. A non-finite value is an
 * error: nothing is consumed, the state is unchanged.
 *
 * Definitions (tests/reference/gen_ctc.py is the independent float64 reference):
 *   lp_t(s) = logits[t][s] - log Σ_s' exp(logits[t][s'])
 *   Greedy: a_t = argmax_s lp_t(s) (ties: the lowest index). Frame t emits a_t when a_t ≠ blank and a_t ≠ a_{t-1}
 *     (a_{-1} = blank; a segment starts with blank history). A character spans the frames of its run, [first, last+1).
 *   Space rule (both decoders): the text never starts with a space and never holds two spaces in a row; greedy drops
 *     such a space (it still ends the run before it), beam search never extends a prefix that way.
 *   Prefix beam search (Hannun et al. 2014): every hypothesis y carries P_b(y), P_nb(y), the probability of the
 *     alignments of frames [0, t) that collapse to y and end in blank / in y's last symbol. Per frame, every
 *     hypothesis proposes itself (blank, or its last symbol repeated) and every allowed extension y+c (from P_b + P_nb,
 *     or from P_b alone when c repeats y's last symbol); proposals of the same text are summed; the `beam` best by
 *     P_b + P_nb survive. Ties: the proposal made first (hypotheses in rank order, each proposing itself before its
 *     extensions, extensions in alphabet order). With `prune`, survivors whose log(P_b + P_nb) falls more than prune
 *     below the best one's are dropped too (a beam threshold: it bounds how long weak alternatives hold the stable
 *     prefix back, and saves time).
 *   Word list: a trie over the words. A prefix extends only along the trie; a space only after a complete word; with
 *     a word-score hook, score(prev_word, word) (log domain) is added when a word is closed by a space, and for the
 *     segment's last word when a final result is taken. A final result is the best hypothesis whose last word is
 *     complete (the best of all, flagged incomplete, when none is).
 *   Alignment of a beam hypothesis: beside the sums, each hypothesis keeps the Viterbi (max) scores of its blank- and
 *     symbol-ending alignments and the alignment that achieves each (ties: the hypothesis' own before an extension,
 *     blank-ending before symbol-ending). Character spans and word times come from the better of the two: the most
 *     probable single CTC path to the text among the paths the beam kept (with a beam wide enough to keep every
 *     prefix, the forced alignment of the text).
 *   Word: a maximal run of non-space characters. Its frames [start, end): from its first character's first frame to
 *     the end of its last character's run; seconds = frame * frame_seconds (0.04 s for our models: 4 stacked 10 ms
 *     mel frames). Frame numbers count from the frame given at reset (0 at creation), across chunks.
 *   Confidence of a word: exp of the mean, over its frames, of lp_t of the symbol (blank included) that the chosen
 *     alignment puts on frame t: in [0, 1], 1 when every frame was certain.
 *
 * Streaming: acm_ctc_push() takes frames in any split; the result after any sequence of pushes equals the result of
 * pushing the same frames at once (bit for bit). acm_ctc_result_get() gives:
 *   greedy: the text so far, append-only (what was emitted never changes; the last word's end may still grow);
 *   beam: the current best hypothesis, and stable_len: the prefix of it that every surviving hypothesis shares with
 *     the same alignment, so its text and its characters' first frames will not change (nor the ends of their runs,
 *     but for the last one's); words closed by a space inside that prefix are stable, times and confidence included.
 *
 * Use, for one stream of a speech model (its alphabet string has no blank; the blank is class 0):
 *   acm_ctc_alphabet_init_blank_first(&a, model_alphabet, err, n);  d = acm_ctc_decoder_new(&a, params, err, n);
 *   per chunk:     acm_ctc_push(d, chunk_logits, tokens, K, err, n);  acm_ctc_result_get(d, ACM_CTC_PARTIAL, &r);
 *   at a segment's end (r.trailing_blank long enough, or r.len near max_text):
 *                  acm_ctc_result_get(d, ACM_CTC_FINAL, &r);  acm_ctc_reset(d, acm_ctc_next_frame(d));
 *
 * Memory: everything is allocated at acm_ctc_decoder_new, sized by beam and max_text (acm_ctc_decoder_bytes());
 * push, result and reset allocate nothing. A hypothesis never grows past max_text characters (the result then says
 * `truncated`): a streaming caller ends the segment (acm_ctc_reset) before that, e.g. at trailing silence.
 *
 * Threads: an alphabet and a lexicon are immutable once made and may be shared by any number of threads and decoders;
 * a decoder is one stream's state and belongs to one thread at a time.
 *
 * Errors: 0 or a negative ACM_E* code (acm.h) with a message in the caller's buffer; constructors return NULL.
 */
#ifndef ACM_CTC_H
#define ACM_CTC_H

#include <stddef.h>
#include <stdint.h>

#define ACM_CTC_MAX_SYMBOLS 128

typedef struct {
    int size;                              /* V */
    int blank;                             /* index of the blank */
    int space;                             /* index of ' ', or -1: no word separator (the text is one word) */
    char symbols[ACM_CTC_MAX_SYMBOLS + 1]; /* symbol i is symbols[i] (the blank's byte is a placeholder); NUL-ended */
    int16_t index[256];                    /* byte -> symbol index, -1 if none (the blank has none) */
} acm_ctc_alphabet;

/* blank, a-z, apostrophe, space: "_abcdefghijklmnopqrstuvwxyz' " with blank 0. */
acm_ctc_alphabet acm_ctc_alphabet_default(void);
/* As a speech model file states it (engine/model.h "alphabet"): the characters without the blank, which is symbol 0
 * (V = 1 + strlen(chars)). */
int acm_ctc_alphabet_init_blank_first(acm_ctc_alphabet *a, const char *chars, char *err, size_t errlen);
/* symbols: V = strlen(symbols) bytes, symbol i = symbols[i]; the byte at `blank` is not a symbol (any printable byte).
 * The others must be printable ASCII (0x20-0x7e) and distinct; 2 <= V <= ACM_CTC_MAX_SYMBOLS. */
int acm_ctc_alphabet_init(acm_ctc_alphabet *a, const char *symbols, int blank, char *err, size_t errlen);

/* ---- word lists ------------------------------------------------------------------------------------------------- */

typedef struct acm_ctc_lexicon acm_ctc_lexicon;

/* A word list in text: words separated by ASCII whitespace (one per line, as data/speech/vocab.txt). Every byte of a
 * word must be a symbol of the alphabet other than the blank and the space; an ASCII capital that is not a symbol
 * is read as its lowercase. Duplicates are merged; word ids count unique words in order of first appearance. An empty
 * list, a NUL byte, or an unspellable word (the message names its line) is an error. */
acm_ctc_lexicon *acm_ctc_lexicon_parse(const acm_ctc_alphabet *a, const char *text, size_t len, char *err,
                                       size_t errlen);
/* The same from an array of n words (each must be one word: no whitespace). */
acm_ctc_lexicon *acm_ctc_lexicon_new(const acm_ctc_alphabet *a, const char *const *words, size_t n, char *err,
                                     size_t errlen);
void acm_ctc_lexicon_free(acm_ctc_lexicon *l);
int32_t acm_ctc_lexicon_size(const acm_ctc_lexicon *l);                 /* unique words */
const char *acm_ctc_lexicon_word(const acm_ctc_lexicon *l, int32_t id); /* NULL outside [0, size) */
/* The id of a word, or -1. */
int32_t acm_ctc_lexicon_find(const acm_ctc_lexicon *l, const char *word);

/* ---- decoder ---------------------------------------------------------------------------------------------------- */

typedef enum { ACM_CTC_GREEDY = 0, ACM_CTC_BEAM = 1 } acm_ctc_mode;

/* Log-domain score of `word` following `prev_word` (lexicon ids; prev_word -1 at the start of a segment). Called from
 * acm_ctc_push and acm_ctc_result_get on the decoder's thread; must not call back into the decoder. A NaN or +inf is
 * read as -inf (the word is refused there). */
typedef double (*acm_ctc_word_score_fn)(void *ctx, int32_t prev_word, int32_t word);

typedef struct {
    acm_ctc_mode mode;
    int beam;                         /* BEAM: hypotheses kept, >= 1 */
    double prune;                     /* BEAM: also drop hypotheses more than this below the best (log domain;
                                       * 0 or INFINITY: off) */
    int max_text;                     /* characters per segment, >= 1 */
    double frame_seconds;             /* > 0: seconds per frame */
    const acm_ctc_lexicon *lexicon;   /* BEAM: optional word list (must outlive the decoder); GREEDY: must be NULL */
    acm_ctc_word_score_fn word_score; /* BEAM with a lexicon: optional */
    void *word_score_ctx;
    double pause_break_s;             /* GREEDY: a run of blank frames at least this long (frames x frame_seconds)
                                       * between two characters of a segment ends the word before it: a space goes
                                       * in where the model emitted none, as a stream's endpoint would end the
                                       * segment there; 0: off */
} acm_ctc_params;

/* GREEDY, beam 8, prune off (INFINITY), max_text 1024, frame_seconds 0.04, no lexicon, no hook, no pause break. */
acm_ctc_params acm_ctc_default_params(void);

typedef struct acm_ctc_decoder acm_ctc_decoder;

/* Copies the alphabet. NULL (message in err) on bad parameters: beam < 1, max_text < 1, frame_seconds not > 0, a
 * lexicon built for another alphabet or given to greedy, a hook without a lexicon. */
acm_ctc_decoder *acm_ctc_decoder_new(const acm_ctc_alphabet *a, acm_ctc_params p, char *err, size_t errlen);
void acm_ctc_decoder_free(acm_ctc_decoder *d);
/* Bytes the decoder holds (fixed at creation). */
size_t acm_ctc_decoder_bytes(const acm_ctc_decoder *d);

/* Starts a new segment: empty text; the next frame pushed is numbered first_frame (pass acm_ctc_next_frame(d) to keep
 * a stream's clock, 0 to start over). */
void acm_ctc_reset(acm_ctc_decoder *d, int64_t first_frame);
int64_t acm_ctc_next_frame(const acm_ctc_decoder *d);

/* Consumes T frames of logits [T, V]. Returns 0, or ACM_EINVAL (nothing consumed) when V is not the alphabet's size,
 * T < 0, logits is NULL with T > 0, or a value is not finite (the message names frame and symbol). */
int acm_ctc_push(acm_ctc_decoder *d, const float *logits /* [T, V] */, int64_t T, int V, char *err, size_t errlen);

typedef struct {
    int64_t start, end;    /* frames [start, end) */
    double start_s, end_s; /* seconds */
    double confidence;     /* [0, 1] */
    int32_t offset, len;   /* bytes of the word in the result's text */
    int32_t id;            /* lexicon id, -1 without a lexicon */
} acm_ctc_word;

typedef struct {
    const char *text;          /* NUL-terminated; may end with a space (greedy: append-only) */
    int32_t len;               /* bytes of text (= characters) */
    int32_t stable_len;        /* text[0, stable_len) will not change (greedy: len) */
    const int64_t *char_start; /* [len] first frame of each character */
    const int64_t *char_end;   /* [len] end (exclusive) of each character's run */
    const acm_ctc_word *words; /* [n_words] */
    int32_t n_words;
    int32_t n_stable_words; /* words[0, n_stable_words) will not change, times included */
    double score;           /* log-probability: greedy, of the best path; beam, P_b + P_nb of the text (+ hook) */
    int64_t frames;         /* frames pushed since the last reset */
    int64_t trailing_blank; /* the last frames of the segment whose most probable symbol is the blank (ties: the
                               * lower index), e.g. for a caller's end-of-segment rule: silence is blank */
    int truncated;          /* max_text was reached: greedy dropped a character, or a hypothesis could not grow */
    int incomplete;         /* final with a lexicon: no hypothesis ended in a complete word; this is the best */
} acm_ctc_result;

typedef enum { ACM_CTC_PARTIAL = 0, ACM_CTC_FINAL = 1 } acm_ctc_when;

/* The result so far, in buffers owned by the decoder: valid until the next call on it. FINAL differs from PARTIAL only
 * for a beam search with a lexicon (complete words only, the hook's score for the last word); neither changes the
 * state, so pushing may go on after either. */
void acm_ctc_result_get(acm_ctc_decoder *d, acm_ctc_when when, acm_ctc_result *r);

/* reset(0) + push(logits) + result(FINAL). */
int acm_ctc_decode(acm_ctc_decoder *d, const float *logits /* [T, V] */, int64_t T, int V, acm_ctc_result *r, char *err,
                   size_t errlen);

#endif
