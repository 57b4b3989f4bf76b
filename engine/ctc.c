/*
 * ctc.c — CTC decoding (definitions in ctc.h): greedy, prefix beam search, word-list trie.
 *
 * Beam search data structures. A hypothesis' text and alignment live in a tree of immutable history nodes: a node is
 * one character placed on one frame (its parent the history before it), and also records where the parent's run of
 * frames ended and the Viterbi score at that point, so that no node ever changes once made. A hypothesis ("entry")
 * holds two histories, the best blank-ending and the best symbol-ending alignment of its text, so two nodes of the
 * same text may coexist; identity of texts is therefore checked on the entries (64-bit hash of the text, confirmed by
 * walking the two chains until they meet). Nodes are reference counted (entries and children hold references) and
 * recycled through a free list: the pool is sized at creation for the worst case (2 histories x beam x max_text).
 *
 * Per frame: every entry's own proposal ("stay") is written first, at the entry's index, so that an extension y+c
 * whose text is another entry z adds into z's slot; other extensions are appended. The `beam` best proposals
 * (by P_b + P_nb, ties by the order they were first proposed) become the entries of the next frame; only then are
 * the new nodes made, and the old entries' references dropped.
 */
#include "ctc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "util.h"

/* ---- alphabet ---------------------------------------------------------------------------------------------------- */

int acm_ctc_alphabet_init(acm_ctc_alphabet *a, const char *symbols, int blank, char *err, size_t errlen) {
    if (!a || !symbols) return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: no symbols given");
    size_t v = strlen(symbols);
    if (v < 2)
        return acm__fail(err, errlen, ACM_EINVAL,
                         "ctc alphabet: %zu symbols; a blank and at least one symbol are needed", v);
    if (v > ACM_CTC_MAX_SYMBOLS)
        return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: %zu symbols, at most %d", v, ACM_CTC_MAX_SYMBOLS);
    if (blank < 0 || (size_t)blank >= v)
        return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: blank index %d outside [0, %zu)", blank, v);
    acm_ctc_alphabet t;
    memset(&t, 0, sizeof t);
    for (int i = 0; i < 256; i++) t.index[i] = -1;
    t.size = (int)v;
    t.blank = blank;
    t.space = -1;
    for (size_t i = 0; i < v; i++) {
        unsigned char c = (unsigned char)symbols[i];
        if (c < 0x20 || c > 0x7e)
            return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: symbol %zu is byte 0x%02x, not printable ASCII", i,
                             c);
        t.symbols[i] = (char)c;
        if ((int)i == blank) continue;
        if (t.index[c] >= 0)
            return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: symbol '%c' appears twice (%d and %zu)", c,
                             t.index[c], i);
        t.index[c] = (int16_t)i;
        if (c == ' ') t.space = (int)i;
    }
    *a = t;
    return 0;
}

int acm_ctc_alphabet_init_blank_first(acm_ctc_alphabet *a, const char *chars, char *err, size_t errlen) {
    if (!chars) return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: no symbols given");
    char sym[ACM_CTC_MAX_SYMBOLS + 2];
    const size_t n = strlen(chars);
    if (n + 1 > ACM_CTC_MAX_SYMBOLS)
        return acm__fail(err, errlen, ACM_EINVAL, "ctc alphabet: %zu symbols, at most %d", n + 1, ACM_CTC_MAX_SYMBOLS);
    sym[0] = '_'; /* the blank's placeholder */
    memcpy(sym + 1, chars, n + 1);
    return acm_ctc_alphabet_init(a, sym, 0, err, errlen);
}

acm_ctc_alphabet acm_ctc_alphabet_default(void) {
    acm_ctc_alphabet a;
    int rc = acm_ctc_alphabet_init(&a, "_abcdefghijklmnopqrstuvwxyz' ", 0, NULL, 0);
    ACM_ASSERT(rc == 0);
    return a;
}

static int same_alphabet(const acm_ctc_alphabet *a, const acm_ctc_alphabet *b) {
    return a->size == b->size && a->blank == b->blank && memcmp(a->index, b->index, sizeof a->index) == 0;
}

/* ---- word lists: a trie, stored breadth first so that a node's children are contiguous and sorted by symbol ----- */

struct acm_ctc_lexicon {
    acm_ctc_alphabet alpha;
    int32_t n_nodes;
    int32_t *first; /* [n_nodes] index of the first child */
    uint8_t *count; /* [n_nodes] children */
    uint8_t *sym;   /* [n_nodes] symbol on the edge into the node (root: 0) */
    int32_t *word;  /* [n_nodes] id of the word that ends here, or -1 */
    int32_t n_words;
    int32_t *word_off; /* [n_words] offset in pool */
    char *pool;        /* words, NUL-terminated */
};

/* The trie while it is built: first-child / next-sibling lists, siblings sorted by symbol. */
typedef struct {
    int32_t *child, *next, *word;
    uint8_t *sym;
    int32_t n, cap;
    char *pool;
    size_t pool_len, pool_cap;
    int32_t *word_off;
    int32_t n_words, words_cap;
} lex_build;

static int grow(void **p, size_t elem, int32_t need, int32_t *cap) {
    if (need <= *cap) return 0;
    int32_t nc = *cap ? *cap : 64;
    while (nc < need) {
        if (nc > INT32_MAX / 2) return -1;
        nc *= 2;
    }
    void *q = realloc(*p, (size_t)nc * elem);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int lb_node(lex_build *b, uint8_t s) {
    int32_t cap = b->cap;
    if (b->n == b->cap) {
        int32_t c1 = cap, c2 = cap, c3 = cap;
        if (grow((void **)&b->child, sizeof *b->child, b->n + 1, &c1) ||
            grow((void **)&b->next, sizeof *b->next, b->n + 1, &c2) ||
            grow((void **)&b->word, sizeof *b->word, b->n + 1, &c3) || grow((void **)&b->sym, 1, b->n + 1, &cap))
            return -1;
        b->cap = cap;
    }
    b->child[b->n] = b->next[b->n] = b->word[b->n] = -1;
    b->sym[b->n] = s;
    return b->n++;
}

/* Adds word w[0, n) (already checked and lowered); returns 0 or ACM_ENOMEM. */
static int lb_add(lex_build *b, const char *w, size_t n, const acm_ctc_alphabet *a) {
    int32_t cur = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t s = (uint8_t)a->index[(unsigned char)w[i]];
        int32_t prev = -1, c = b->child[cur];
        while (c >= 0 && b->sym[c] < s) prev = c, c = b->next[c];
        if (c < 0 || b->sym[c] != s) {
            int32_t nn = lb_node(b, s);
            if (nn < 0) return ACM_ENOMEM;
            b->next[nn] = c;
            if (prev < 0)
                b->child[cur] = nn;
            else
                b->next[prev] = nn;
            c = nn;
        }
        cur = c;
    }
    if (b->word[cur] >= 0) return 0; /* duplicate */
    if (grow((void **)&b->word_off, sizeof *b->word_off, b->n_words + 1, &b->words_cap)) return ACM_ENOMEM;
    if (b->pool_len + n + 1 > b->pool_cap) {
        size_t nc = b->pool_cap ? b->pool_cap : 1024;
        while (nc < b->pool_len + n + 1) nc *= 2;
        char *q = realloc(b->pool, nc);
        if (!q) return ACM_ENOMEM;
        b->pool = q;
        b->pool_cap = nc;
    }
    b->word_off[b->n_words] = (int32_t)b->pool_len;
    memcpy(b->pool + b->pool_len, w, n);
    b->pool[b->pool_len + n] = 0;
    b->pool_len += n + 1;
    b->word[cur] = b->n_words++;
    return 0;
}

static void lb_free(lex_build *b) {
    free(b->child);
    free(b->next);
    free(b->word);
    free(b->sym);
    free(b->pool);
    free(b->word_off);
}

static int is_ws(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/* Checks one word and writes it, capitals lowered where the alphabet wants, into out. */
static int word_check(const acm_ctc_alphabet *a, const char *w, size_t n, char *out, size_t line, char *err,
                      size_t errlen) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)w[i];
        if (a->index[c] < 0 && c >= 'A' && c <= 'Z' && a->index[c + 32] >= 0) c = (unsigned char)(c + 32);
        int s = a->index[c];
        if (s < 0 || s == a->space) {
            char shown[16];
            if (c >= 0x21 && c <= 0x7e)
                snprintf(shown, sizeof shown, "'%c'", c);
            else
                snprintf(shown, sizeof shown, "byte 0x%02x", c);
            int wl = n > 40 ? 40 : (int)n;
            return acm__fail(err, errlen, ACM_EINVAL,
                             "word list line %zu: word \"%.*s%s\" has %s, which is not in the alphabet \"%s\"", line,
                             wl, w, n > 40 ? "..." : "", shown, a->symbols);
        }
        out[i] = (char)c;
    }
    return 0;
}

static acm_ctc_lexicon *lb_finish(lex_build *b, const acm_ctc_alphabet *a, char *err, size_t errlen) {
    if (b->n_words == 0) {
        acm__fail(err, errlen, ACM_EINVAL, "word list is empty");
        return NULL;
    }
    acm_ctc_lexicon *l = calloc(1, sizeof *l);
    if (!l) goto nomem;
    l->alpha = *a;
    l->n_nodes = b->n;
    l->n_words = b->n_words;
    l->first = malloc((size_t)b->n * sizeof *l->first);
    l->count = malloc((size_t)b->n);
    l->sym = malloc((size_t)b->n);
    l->word = malloc((size_t)b->n * sizeof *l->word);
    l->word_off = malloc((size_t)b->n_words * sizeof *l->word_off);
    l->pool = malloc(b->pool_len);
    int32_t *order = malloc((size_t)b->n * sizeof *order); /* breadth-first order: order[new id] = build id */
    int32_t *newid = malloc((size_t)b->n * sizeof *newid);
    if (!l->first || !l->count || !l->sym || !l->word || !l->word_off || !l->pool || !order || !newid) {
        free(order);
        free(newid);
        acm_ctc_lexicon_free(l);
        goto nomem;
    }
    memcpy(l->word_off, b->word_off, (size_t)b->n_words * sizeof *l->word_off);
    memcpy(l->pool, b->pool, b->pool_len);
    int32_t head = 0, tail = 0;
    order[tail++] = 0;
    while (head < tail) {
        int32_t u = order[head++];
        for (int32_t c = b->child[u]; c >= 0; c = b->next[c]) order[tail++] = c;
    }
    ACM_ASSERT(tail == b->n);
    for (int32_t i = 0; i < b->n; i++) newid[order[i]] = i;
    for (int32_t i = 0; i < b->n; i++) {
        int32_t u = order[i], cnt = 0;
        for (int32_t c = b->child[u]; c >= 0; c = b->next[c]) cnt++;
        l->first[i] = b->child[u] >= 0 ? newid[b->child[u]] : 0;
        l->count[i] = (uint8_t)cnt;
        l->sym[i] = b->sym[u];
        l->word[i] = b->word[u];
    }
    free(order);
    free(newid);
    return l;
nomem:
    acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
    return NULL;
}

acm_ctc_lexicon *acm_ctc_lexicon_parse(const acm_ctc_alphabet *a, const char *text, size_t len, char *err,
                                       size_t errlen) {
    if (!a || a->size < 2) {
        acm__fail(err, errlen, ACM_EINVAL, "word list: no alphabet");
        return NULL;
    }
    if (!text && len) {
        acm__fail(err, errlen, ACM_EINVAL, "word list: no text");
        return NULL;
    }
    lex_build b;
    memset(&b, 0, sizeof b);
    acm_ctc_lexicon *l = NULL;
    char *word = malloc(len + 1);
    if (!word || lb_node(&b, 0) < 0) {
        acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
        goto out;
    }
    size_t line = 1, i = 0;
    while (i < len) {
        unsigned char c = (unsigned char)text[i];
        if (c == 0) {
            acm__fail(err, errlen, ACM_EINVAL, "word list line %zu: NUL byte", line);
            goto out;
        }
        if (is_ws(c)) {
            line += c == '\n';
            i++;
            continue;
        }
        size_t s = i;
        while (i < len && text[i] && !is_ws((unsigned char)text[i])) i++;
        if (word_check(a, text + s, i - s, word, line, err, errlen)) goto out;
        if (lb_add(&b, word, i - s, a)) {
            acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
            goto out;
        }
    }
    l = lb_finish(&b, a, err, errlen);
out:
    free(word);
    lb_free(&b);
    return l;
}

acm_ctc_lexicon *acm_ctc_lexicon_new(const acm_ctc_alphabet *a, const char *const *words, size_t n, char *err,
                                     size_t errlen) {
    if (!a || a->size < 2) {
        acm__fail(err, errlen, ACM_EINVAL, "word list: no alphabet");
        return NULL;
    }
    if (!words && n) {
        acm__fail(err, errlen, ACM_EINVAL, "word list: no words");
        return NULL;
    }
    lex_build b;
    memset(&b, 0, sizeof b);
    acm_ctc_lexicon *l = NULL;
    char *word = NULL;
    if (lb_node(&b, 0) < 0) {
        acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
        goto out;
    }
    for (size_t k = 0; k < n; k++) {
        const char *w = words[k];
        size_t m = w ? strlen(w) : 0;
        if (m == 0) {
            acm__fail(err, errlen, ACM_EINVAL, "word list line %zu: empty word", k + 1);
            goto out;
        }
        for (size_t j = 0; j < m; j++)
            if (is_ws((unsigned char)w[j])) {
                acm__fail(err, errlen, ACM_EINVAL, "word list line %zu: \"%s\" is not one word (whitespace)", k + 1, w);
                goto out;
            }
        char *nw = realloc(word, m);
        if (!nw) {
            acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
            goto out;
        }
        word = nw;
        if (word_check(a, w, m, word, k + 1, err, errlen)) goto out;
        if (lb_add(&b, word, m, a)) {
            acm__fail(err, errlen, ACM_ENOMEM, "word list: out of memory");
            goto out;
        }
    }
    l = lb_finish(&b, a, err, errlen);
out:
    free(word);
    lb_free(&b);
    return l;
}

void acm_ctc_lexicon_free(acm_ctc_lexicon *l) {
    if (!l) return;
    free(l->first);
    free(l->count);
    free(l->sym);
    free(l->word);
    free(l->word_off);
    free(l->pool);
    free(l);
}

int32_t acm_ctc_lexicon_size(const acm_ctc_lexicon *l) { return l ? l->n_words : 0; }

const char *acm_ctc_lexicon_word(const acm_ctc_lexicon *l, int32_t id) {
    if (!l || id < 0 || id >= l->n_words) return NULL;
    return l->pool + l->word_off[id];
}

static int32_t lex_child(const acm_ctc_lexicon *l, int32_t node, int sym) {
    for (int32_t i = 0; i < l->count[node]; i++)
        if (l->sym[l->first[node] + i] == sym) return l->first[node] + i;
    return -1;
}

int32_t acm_ctc_lexicon_find(const acm_ctc_lexicon *l, const char *word) {
    if (!l || !word) return -1;
    int32_t cur = 0;
    for (const char *p = word; *p; p++) {
        int s = l->alpha.index[(unsigned char)*p];
        if (s < 0 || (cur = lex_child(l, cur, s)) < 0) return -1;
    }
    return l->word[cur];
}

/* ---- decoder ----------------------------------------------------------------------------------------------------- */

typedef struct {
    int32_t parent; /* -1 for the root */
    int32_t refs;   /* entries and children holding it; 0: on the free list (next free in parent) */
    int32_t depth;  /* characters from the root */
    int16_t sym;
    int64_t start; /* frame the character was placed on */
    int64_t pend;  /* end (exclusive) of the parent character's run on this history */
    double vstart; /* Viterbi score of frames [first, start) on this history */
    double vpend;  /* Viterbi score of frames [first, pend) */
} ctc_node;

typedef struct {
    double pb, pnb, vb, vnb;
    int32_t b_node;       /* best blank-ending history (-1 when vb = -inf) */
    int64_t b_end;        /* its last character's run end */
    double b_vend;        /* and the Viterbi score there */
    int32_t nb_node;      /* best symbol-ending history (-1 when vnb = -inf) */
    uint64_t hash, phash; /* of the text, and of the text without its last character */
    int32_t len;
    int16_t last;      /* last symbol, -1 for the empty text */
    int32_t lex;       /* trie node of the word being spelled (0: at a word start) */
    int32_t prev_word; /* last word closed by a space, -1 */
} ctc_entry;

/* A proposal: an entry-to-be. Its symbol-ending history may be a node not made yet (nb_new). */
typedef struct {
    ctc_entry e;
    int nb_new;
    int32_t new_parent;
    int64_t new_pend;
    double new_vpend, new_vstart;
    int32_t order; /* first proposed; -1: not proposed this frame */
    double total;
} ctc_cand;

struct acm_ctc_decoder {
    acm_ctc_alphabet alpha;
    acm_ctc_params p;
    int V;
    int64_t t0, t; /* first frame of the segment, frames pushed since */
    int truncated;
    int64_t tail_blank; /* frames since the last one whose argmax was not the blank */
    size_t bytes;
    double *lp; /* [V] */
    /* greedy */
    int g_prev;    /* argmax of the previous frame (blank at a segment start) */
    int32_t g_run; /* character the current run extends, -1 */
    double g_v;    /* Viterbi (best path) score so far */
    /* beam */
    ctc_node *nodes; /* [n_nodes] */
    int32_t n_nodes, free_head;
    ctc_entry *ent, *ent_next; /* [beam] */
    int n_ent;
    ctc_cand *cand;    /* [beam * V] */
    int32_t *child_of; /* [beam, V] entry whose text is entry i + symbol c, -1 */
    int32_t *top;      /* [beam] */
    /* result buffers */
    char *text;             /* [max_text + 1] */
    int64_t *cstart, *cend; /* [max_text] */
    double *cvs, *cve;      /* [max_text] Viterbi scores at a character's start and run end */
    acm_ctc_word *words;    /* [max_text] */
    int32_t g_len;          /* greedy: characters so far */
};

acm_ctc_params acm_ctc_default_params(void) {
    acm_ctc_params p;
    memset(&p, 0, sizeof p);
    p.mode = ACM_CTC_GREEDY;
    p.beam = 8;
    p.prune = INFINITY;
    p.max_text = 1024;
    p.frame_seconds = 0.04;
    return p;
}

static double lse(double a, double b) {
    if (a < b) {
        double t = a;
        a = b, b = t;
    }
    if (b == -INFINITY) return a;
    return a + log1p(exp(b - a));
}

static uint64_t hmix(uint64_t h, int sym) {
    uint64_t z = h ^ ((uint64_t)(sym + 1) * 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
#define HASH_EMPTY 0x6a09e667f3bcc909ULL

static void node_ref(acm_ctc_decoder *d, int32_t n) {
    if (n >= 0) d->nodes[n].refs++;
}

static void node_unref(acm_ctc_decoder *d, int32_t n) {
    while (n >= 0) {
        ctc_node *x = &d->nodes[n];
        ACM_ASSERT(x->refs > 0);
        if (--x->refs > 0) return;
        int32_t parent = x->parent;
        x->parent = d->free_head;
        d->free_head = n;
        n = parent;
    }
}

static int32_t node_new(acm_ctc_decoder *d, int32_t parent, int sym, int64_t start, int64_t pend, double vstart,
                        double vpend) {
    int32_t n = d->free_head;
    ACM_ASSERT(n >= 0); /* the pool is sized for the worst case */
    ctc_node *x = &d->nodes[n];
    d->free_head = x->parent;
    x->parent = parent;
    x->refs = 0;
    x->depth = d->nodes[parent].depth + 1;
    x->sym = (int16_t)sym;
    x->start = start;
    x->pend = pend;
    x->vstart = vstart;
    x->vpend = vpend;
    node_ref(d, parent);
    return n;
}

size_t acm_ctc_decoder_bytes(const acm_ctc_decoder *d) { return d ? d->bytes : 0; }
int64_t acm_ctc_next_frame(const acm_ctc_decoder *d) { return d->t0 + d->t; }

void acm_ctc_reset(acm_ctc_decoder *d, int64_t first_frame) {
    d->t0 = first_frame;
    d->t = 0;
    d->truncated = 0;
    d->tail_blank = 0;
    d->g_prev = d->alpha.blank;
    d->g_run = -1;
    d->g_v = 0;
    d->g_len = 0;
    if (d->p.mode != ACM_CTC_BEAM) return;
    /* every node back on the free list; node 0 is the root, held for good */
    d->free_head = -1;
    for (int32_t i = d->n_nodes - 1; i >= 1; i--) {
        d->nodes[i].refs = 0;
        d->nodes[i].parent = d->free_head;
        d->free_head = i;
    }
    ctc_node *r = &d->nodes[0];
    memset(r, 0, sizeof *r);
    r->parent = -1;
    r->refs = 1;
    r->sym = -1;
    ctc_entry *e = &d->ent[0];
    memset(e, 0, sizeof *e);
    e->pb = 0, e->pnb = -INFINITY, e->vb = 0, e->vnb = -INFINITY;
    e->b_node = 0, e->b_end = first_frame, e->b_vend = 0;
    e->nb_node = -1;
    e->hash = HASH_EMPTY, e->phash = 0;
    e->len = 0, e->last = -1, e->lex = 0, e->prev_word = -1;
    node_ref(d, 0);
    d->n_ent = 1;
}

acm_ctc_decoder *acm_ctc_decoder_new(const acm_ctc_alphabet *a, acm_ctc_params p, char *err, size_t errlen) {
    if (!a || a->size < 2 || a->size > ACM_CTC_MAX_SYMBOLS || a->blank < 0 || a->blank >= a->size) {
        acm__fail(err, errlen, ACM_EINVAL, "ctc decoder: the alphabet is empty or not initialised");
        return NULL;
    }
    const char *bad = NULL;
    if (p.mode != ACM_CTC_GREEDY && p.mode != ACM_CTC_BEAM)
        bad = "mode is neither greedy nor beam";
    else if (p.mode == ACM_CTC_BEAM && p.beam < 1)
        bad = "beam width must be >= 1";
    else if (p.mode == ACM_CTC_BEAM && p.beam > 1 << 16)
        bad = "beam width must be <= 65536";
    else if (!(p.prune >= 0))
        bad = "prune must be >= 0 (0 or INFINITY: off)";
    else if (p.max_text < 1)
        bad = "max_text must be >= 1";
    else if (p.max_text > 1 << 24)
        bad = "max_text must be <= 16777216";
    else if (!(p.frame_seconds > 0) || !isfinite(p.frame_seconds))
        bad = "frame_seconds must be > 0";
    else if (!(p.pause_break_s >= 0) || !isfinite(p.pause_break_s))
        bad = "pause_break_s must be >= 0 and finite";
    else if (p.pause_break_s > 0 && p.mode != ACM_CTC_GREEDY)
        bad = "pause_break_s needs GREEDY";
    else if (p.lexicon && p.mode != ACM_CTC_BEAM)
        bad = "a word list needs the beam search";
    else if (p.word_score && !p.lexicon)
        bad = "a word-score hook needs a word list";
    else if (p.lexicon && !same_alphabet(&p.lexicon->alpha, a))
        bad = "the word list was built for another alphabet";
    if (bad) {
        if (p.mode == ACM_CTC_BEAM && p.beam < 1)
            acm__fail(err, errlen, ACM_EINVAL, "ctc decoder: beam width %d: must be >= 1", p.beam);
        else
            acm__fail(err, errlen, ACM_EINVAL, "ctc decoder: %s", bad);
        return NULL;
    }
    acm_ctc_decoder *d = calloc(1, sizeof *d);
    if (!d) goto nomem;
    d->alpha = *a;
    d->p = p;
    d->V = a->size;
    const size_t L = (size_t)p.max_text, V = (size_t)a->size;
    d->lp = malloc(V * sizeof *d->lp);
    d->text = malloc(L + 1);
    d->cstart = malloc(L * sizeof *d->cstart);
    d->cend = malloc(L * sizeof *d->cend);
    d->cvs = malloc(L * sizeof *d->cvs);
    d->cve = malloc(L * sizeof *d->cve);
    d->words = malloc(L * sizeof *d->words);
    d->bytes =
        sizeof *d + V * sizeof *d->lp + L + 1 + L * (2 * sizeof(int64_t) + 2 * sizeof(double) + sizeof *d->words);
    if (!d->lp || !d->text || !d->cstart || !d->cend || !d->cvs || !d->cve || !d->words) goto nomem_free;
    if (p.mode == ACM_CTC_BEAM) {
        const size_t B = (size_t)p.beam;
        /* live nodes: each of <= 2B histories is a chain of <= L nodes, plus the root, plus <= B made in a frame */
        size_t nn = 2 * B * (L + 1) + B + 2;
        if (nn > INT32_MAX) {
            acm__fail(err, errlen, ACM_EINVAL, "ctc decoder: beam %d x max_text %d is too large", p.beam, p.max_text);
            acm_ctc_decoder_free(d);
            return NULL;
        }
        d->n_nodes = (int32_t)nn;
        d->nodes = malloc(nn * sizeof *d->nodes);
        d->ent = malloc(B * sizeof *d->ent);
        d->ent_next = malloc(B * sizeof *d->ent_next);
        d->cand = malloc(B * V * sizeof *d->cand);
        d->child_of = malloc(B * V * sizeof *d->child_of);
        d->top = malloc(B * sizeof *d->top);
        d->bytes += nn * sizeof *d->nodes + 2 * B * sizeof *d->ent + B * V * (sizeof *d->cand + sizeof *d->child_of) +
                    B * sizeof *d->top;
        if (!d->nodes || !d->ent || !d->ent_next || !d->cand || !d->child_of || !d->top) goto nomem_free;
    }
    acm_ctc_reset(d, 0);
    return d;
nomem_free:
    acm_ctc_decoder_free(d);
nomem:
    acm__fail(err, errlen, ACM_ENOMEM, "ctc decoder: out of memory");
    return NULL;
}

void acm_ctc_decoder_free(acm_ctc_decoder *d) {
    if (!d) return;
    free(d->lp);
    free(d->text);
    free(d->cstart);
    free(d->cend);
    free(d->cvs);
    free(d->cve);
    free(d->words);
    free(d->nodes);
    free(d->ent);
    free(d->ent_next);
    free(d->cand);
    free(d->child_of);
    free(d->top);
    free(d);
}

/* lp = log-softmax(x), in double. */
static void log_softmax(double *lp, const float *x, int V) {
    double m = x[0];
    for (int s = 1; s < V; s++)
        if (x[s] > m) m = x[s];
    double sum = 0;
    for (int s = 0; s < V; s++) sum += exp((double)x[s] - m);
    double lz = m + log(sum);
    for (int s = 0; s < V; s++) lp[s] = (double)x[s] - lz;
}

/* ---- greedy ------------------------------------------------------------------------------------------------------ */

/* run: the blank frames just before this one (the pause a character after them ends, for pause_break_s). */
static void greedy_frame(acm_ctc_decoder *d, const float *x, int a, int64_t run) {
    const int V = d->V, blank = d->alpha.blank, space = d->alpha.space;
    log_softmax(d->lp, x, V);
    const int64_t f = d->t0 + d->t;
    const double v0 = d->g_v;
    d->g_v += d->lp[a];
    if (a == blank) {
        d->g_run = -1;
    } else if (a == d->g_prev) {
        if (d->g_run >= 0) d->cend[d->g_run] = f + 1, d->cve[d->g_run] = d->g_v;
    } else {
        d->g_run = -1;
        int32_t n = d->g_len;
        if (d->p.pause_break_s > 0 && a != space && n > 0 && d->text[n - 1] != ' ' && n < d->p.max_text &&
            (double)run * d->p.frame_seconds >= d->p.pause_break_s) { /* the pause ends the word: a space first */
            d->text[n] = ' ';
            d->cstart[n] = f - run, d->cend[n] = f;
            d->cvs[n] = d->cve[n] = v0;
            d->g_len = ++n;
        }
        if (a == space && (n == 0 || d->text[n - 1] == ' ')) {
            /* the space rule: dropped */
        } else if (n == d->p.max_text) {
            d->truncated = 1;
        } else {
            d->text[n] = d->alpha.symbols[a];
            d->cstart[n] = f, d->cend[n] = f + 1;
            d->cvs[n] = v0, d->cve[n] = d->g_v;
            d->g_run = n;
            d->g_len = n + 1;
        }
    }
    d->g_prev = a;
}

/* ---- beam search ------------------------------------------------------------------------------------------------- */

/* Whether entries a and b (b one character longer) are b = a + b.last: hashes, then the chains. */
static int is_child_text(const acm_ctc_decoder *d, const ctc_entry *a, const ctc_entry *b) {
    if (b->len != a->len + 1 || b->phash != a->hash) return 0;
    int32_t x = a->nb_node >= 0 ? a->nb_node : a->b_node;
    int32_t y = b->nb_node >= 0 ? b->nb_node : b->b_node;
    y = d->nodes[y].parent;
    while (x != y) {
        if (d->nodes[x].sym != d->nodes[y].sym) return 0;
        x = d->nodes[x].parent, y = d->nodes[y].parent;
    }
    return 1;
}

static double hook_score(const acm_ctc_decoder *d, int32_t prev, int32_t word) {
    if (!d->p.word_score) return 0;
    double s = d->p.word_score(d->p.word_score_ctx, prev, word);
    return (isnan(s) || s == INFINITY) ? -INFINITY : s;
}

/* Proposes y + c (index i of entry y) at frame f. */
static void propose(acm_ctc_decoder *d, int i, int c, int32_t lex, int32_t prev_word, double ws, int64_t f,
                    int32_t *n_cand, int32_t *order) {
    const ctc_entry *y = &d->ent[i];
    const double lpc = d->lp[c];
    /* from P_b alone when c repeats the last symbol (else the two would collapse) */
    const int rep = c == y->last;
    const double p = (rep ? y->pb : lse(y->pb, y->pnb)) + lpc + ws;
    const int from_b = rep || y->vb >= y->vnb;
    const double v = from_b ? y->vb : y->vnb;
    if (p == -INFINITY || v == -INFINITY) return; /* no path, or a word the hook refuses: nothing to add */
    int32_t z = d->child_of[(size_t)i * d->V + c];
    ctc_cand *k;
    if (z >= 0) {
        k = &d->cand[z];
        if (k->order < 0) k->order = (*order)++;
        k->e.pnb = lse(k->e.pnb, p);
        if (!(v + lpc > k->e.vnb)) return; /* ties: the entry's own history */
        k->e.vnb = v + lpc;
    } else {
        k = &d->cand[(*n_cand)++];
        k->order = (*order)++;
        k->e.pb = -INFINITY, k->e.pnb = p, k->e.vb = -INFINITY, k->e.vnb = v + lpc;
        k->e.b_node = -1, k->e.b_end = f, k->e.b_vend = -INFINITY;
        k->e.nb_node = -1;
        k->e.hash = hmix(y->hash, c), k->e.phash = y->hash;
        k->e.len = y->len + 1, k->e.last = (int16_t)c, k->e.lex = lex, k->e.prev_word = prev_word;
    }
    k->nb_new = 1;
    k->new_parent = from_b ? y->b_node : y->nb_node;
    k->new_pend = from_b ? y->b_end : f;
    k->new_vpend = from_b ? y->b_vend : y->vnb;
    k->new_vstart = v;
}

static void beam_frame(acm_ctc_decoder *d) {
    const int V = d->V, blank = d->alpha.blank, space = d->alpha.space, B = d->p.beam, n = d->n_ent;
    const int64_t f = d->t0 + d->t;
    const acm_ctc_lexicon *lx = d->p.lexicon;
    /* 1. every entry proposes itself, at its own index */
    for (int i = 0; i < n; i++) {
        const ctc_entry *y = &d->ent[i];
        ctc_cand *k = &d->cand[i];
        k->e = *y;
        k->nb_new = 0;
        k->order = -1;
        k->e.pb = lse(y->pb, y->pnb) + d->lp[blank];
        if (y->vb >= y->vnb) {
            k->e.vb = y->vb + d->lp[blank];
        } else {
            k->e.vb = y->vnb + d->lp[blank];
            k->e.b_node = y->nb_node, k->e.b_end = f, k->e.b_vend = y->vnb;
        }
        k->e.pnb = y->len ? y->pnb + d->lp[y->last] : -INFINITY;
        k->e.vnb = y->len ? y->vnb + d->lp[y->last] : -INFINITY;
        for (int c = 0; c < V; c++) d->child_of[(size_t)i * V + c] = -1;
    }
    for (int j = 0; j < n; j++)
        for (int i = 0; i < n; i++)
            if (is_child_text(d, &d->ent[i], &d->ent[j])) d->child_of[(size_t)i * V + d->ent[j].last] = j;
    /* 2. extensions, entries in rank order, symbols in alphabet order */
    int32_t n_cand = n, order = 0;
    for (int i = 0; i < n; i++) {
        const ctc_entry *y = &d->ent[i];
        if (d->cand[i].order < 0) d->cand[i].order = order++;
        if (y->len >= d->p.max_text) {
            d->truncated = 1;
            continue;
        }
        if (!lx) {
            for (int c = 0; c < V; c++) {
                if (c == blank || (c == space && (y->len == 0 || y->last == space))) continue;
                propose(d, i, c, 0, -1, 0, f, &n_cand, &order);
            }
            continue;
        }
        /* the trie's children of y's word node, with the space (after a complete word) in its alphabet place */
        const int32_t first = lx->first[y->lex], cnt = lx->count[y->lex];
        const int sp_ok = space >= 0 && lx->word[y->lex] >= 0;
        int sp_done = !sp_ok;
        for (int32_t ci = 0; ci <= cnt; ci++) {
            const int c = ci < cnt ? lx->sym[first + ci] : V;
            if (!sp_done && space < c) {
                const int32_t w = lx->word[y->lex];
                propose(d, i, space, 0, w, hook_score(d, y->prev_word, w), f, &n_cand, &order);
                sp_done = 1;
            }
            if (ci < cnt) propose(d, i, c, first + ci, y->prev_word, 0, f, &n_cand, &order);
        }
    }
    /* 3. the B best by P_b + P_nb, ties by first proposal (insertion into a sorted list of at most B) */
    int nt = 0;
    for (int32_t j = 0; j < n_cand; j++) {
        ctc_cand *k = &d->cand[j];
        k->total = lse(k->e.pb, k->e.pnb);
        if (k->total == -INFINITY) continue;
        int pos = nt;
        while (pos > 0) {
            const ctc_cand *o = &d->cand[d->top[pos - 1]];
            if (o->total > k->total || (o->total == k->total && o->order < k->order)) break;
            pos--;
        }
        if (pos >= B) continue;
        if (nt < B) nt++;
        for (int q = nt - 1; q > pos; q--) d->top[q] = d->top[q - 1];
        d->top[pos] = j;
    }
    ACM_ASSERT(nt >= 1);
    if (d->p.prune > 0) { /* the beam threshold */
        const double floor = d->cand[d->top[0]].total - d->p.prune;
        while (nt > 1 && d->cand[d->top[nt - 1]].total < floor) nt--;
    }
    /* 4. the survivors become entries: new nodes first (their parents are still held), then old references go */
    for (int q = 0; q < nt; q++) {
        ctc_cand *k = &d->cand[d->top[q]];
        ctc_entry *e = &d->ent_next[q];
        *e = k->e;
        if (k->nb_new) e->nb_node = node_new(d, k->new_parent, k->e.last, f, k->new_pend, k->new_vstart, k->new_vpend);
        if (e->vb == -INFINITY) e->b_node = -1;
        node_ref(d, e->b_node);
        node_ref(d, e->nb_node);
    }
    for (int i = 0; i < n; i++) {
        node_unref(d, d->ent[i].b_node);
        node_unref(d, d->ent[i].nb_node);
    }
    ctc_entry *t = d->ent;
    d->ent = d->ent_next;
    d->ent_next = t;
    d->n_ent = nt;
}

/* Validates a push before anything is consumed. */
static int check_logits(const acm_ctc_decoder *d, const float *logits, int64_t T, int V, char *err, size_t errlen) {
    if (V != d->V)
        return acm__fail(err, errlen, ACM_EINVAL, "ctc: logits have %d symbols per frame, the alphabet has %d", V,
                         d->V);
    if (T < 0) return acm__fail(err, errlen, ACM_EINVAL, "ctc: %lld frames", (long long)T);
    if (T > 0 && !logits) return acm__fail(err, errlen, ACM_EINVAL, "ctc: no logits for %lld frames", (long long)T);
    for (int64_t t = 0; t < T; t++)
        for (int s = 0; s < V; s++) {
            const float x = logits[t * V + s];
            if (!isfinite(x))
                return acm__fail(err, errlen, ACM_EINVAL, "ctc: logits frame %lld symbol %d ('%c') is %s", (long long)t,
                                 s, d->alpha.symbols[s], isnan(x) ? "NaN" : "infinite");
        }
    return 0;
}

int acm_ctc_push(acm_ctc_decoder *d, const float *logits, int64_t T, int V, char *err, size_t errlen) {
    int rc = check_logits(d, logits, T, V, err, errlen);
    if (rc) return rc;
    for (int64_t t = 0; t < T; t++) {
        const float *x = logits + t * V;
        int a = 0; /* argmax, ties: the lowest index */
        for (int s = 1; s < V; s++)
            if (x[s] > x[a]) a = s;
        const int64_t run = d->tail_blank;
        d->tail_blank = a == d->alpha.blank ? d->tail_blank + 1 : 0;
        if (d->p.mode == ACM_CTC_GREEDY) {
            greedy_frame(d, x, a, run);
        } else {
            log_softmax(d->lp, x, V);
            beam_frame(d);
        }
        d->t++;
    }
    return 0;
}

/* ---- results ----------------------------------------------------------------------------------------------------- */

/* Words from the characters in d->text/cstart/cend/cvs/cve [0, len); stable: characters [0, stable) are final. */
static void build_words(acm_ctc_decoder *d, acm_ctc_result *r, int32_t len, int32_t stable) {
    int32_t nw = 0, ns = 0;
    for (int32_t i = 0; i < len;) {
        if (d->text[i] == ' ') {
            i++;
            continue;
        }
        int32_t j = i;
        while (j < len && d->text[j] != ' ') j++;
        acm_ctc_word *w = &d->words[nw++];
        w->offset = i, w->len = j - i;
        w->start = d->cstart[i], w->end = d->cend[j - 1];
        w->start_s = (double)w->start * d->p.frame_seconds, w->end_s = (double)w->end * d->p.frame_seconds;
        const double span = (double)(w->end - w->start);
        w->confidence = exp((d->cve[j - 1] - d->cvs[i]) / span);
        w->id = -1;
        if (d->p.lexicon) {
            char save = d->text[j];
            d->text[j] = 0;
            w->id = acm_ctc_lexicon_find(d->p.lexicon, d->text + i);
            d->text[j] = save;
        }
        if (j < len && j < stable) ns = nw; /* closed by a space that will not change */
        i = j;
    }
    r->words = d->words;
    r->n_words = nw;
    r->n_stable_words = ns;
}

/* Writes the text and spans of history `leaf` (last run ending at last_end with score last_v) into the buffers. */
static int32_t walk(acm_ctc_decoder *d, int32_t leaf, int64_t last_end, double last_v) {
    const int32_t len = d->nodes[leaf].depth;
    int64_t end = last_end;
    double vend = last_v;
    for (int32_t n = leaf, i = len - 1; i >= 0; i--) {
        const ctc_node *x = &d->nodes[n];
        d->text[i] = d->alpha.symbols[x->sym];
        d->cstart[i] = x->start, d->cend[i] = end;
        d->cvs[i] = x->vstart, d->cve[i] = vend;
        end = x->pend, vend = x->vpend;
        n = x->parent;
    }
    d->text[len] = 0;
    return len;
}

/* Depth of the deepest node every entry's histories pass through. */
static int32_t stable_depth(const acm_ctc_decoder *d) {
    int32_t common = -1;
    for (int i = 0; i < d->n_ent; i++) {
        const int32_t hs[2] = {d->ent[i].b_node, d->ent[i].nb_node};
        for (int h = 0; h < 2; h++) {
            int32_t x = hs[h];
            if (x < 0) continue;
            if (common < 0) {
                common = x;
                continue;
            }
            while (d->nodes[x].depth > d->nodes[common].depth) x = d->nodes[x].parent;
            while (d->nodes[common].depth > d->nodes[x].depth) common = d->nodes[common].parent;
            while (x != common) x = d->nodes[x].parent, common = d->nodes[common].parent;
        }
    }
    return common < 0 ? 0 : d->nodes[common].depth;
}

void acm_ctc_result_get(acm_ctc_decoder *d, acm_ctc_when when, acm_ctc_result *r) {
    memset(r, 0, sizeof *r);
    r->frames = d->t;
    r->trailing_blank = d->tail_blank;
    r->truncated = d->truncated;
    const int64_t now = d->t0 + d->t;
    if (d->p.mode == ACM_CTC_GREEDY) {
        d->text[d->g_len] = 0;
        r->text = d->text;
        r->len = r->stable_len = d->g_len;
        r->char_start = d->cstart, r->char_end = d->cend;
        r->score = d->g_v;
        build_words(d, r, d->g_len, d->g_len);
        return;
    }
    int best = 0;
    double best_score = lse(d->ent[0].pb, d->ent[0].pnb);
    const acm_ctc_lexicon *lx = d->p.lexicon;
    if (lx && when == ACM_CTC_FINAL) {
        best = -1;
        for (int i = 0; i < d->n_ent; i++) {
            const ctc_entry *e = &d->ent[i];
            const int32_t w = lx->word[e->lex];
            if (e->lex != 0 && w < 0) continue;
            double s = lse(e->pb, e->pnb) + (e->lex != 0 ? hook_score(d, e->prev_word, w) : 0);
            if (s == -INFINITY) continue;
            if (best < 0 || s > best_score) best = i, best_score = s;
        }
        if (best < 0) {
            best = 0, best_score = lse(d->ent[0].pb, d->ent[0].pnb);
            r->incomplete = 1;
        }
    }
    const ctc_entry *e = &d->ent[best];
    int32_t len;
    if (e->vb >= e->vnb)
        len = walk(d, e->b_node, e->b_end, e->b_vend);
    else
        len = walk(d, e->nb_node, now, e->vnb);
    r->text = d->text;
    r->len = len;
    r->stable_len = stable_depth(d);
    ACM_ASSERT(r->stable_len <= len);
    r->char_start = d->cstart, r->char_end = d->cend;
    r->score = best_score;
    build_words(d, r, len, r->stable_len);
}

int acm_ctc_decode(acm_ctc_decoder *d, const float *logits, int64_t T, int V, acm_ctc_result *r, char *err,
                   size_t errlen) {
    int rc = check_logits(d, logits, T, V, err, errlen);
    if (rc) return rc;
    acm_ctc_reset(d, 0);
    rc = acm_ctc_push(d, logits, T, V, err, errlen);
    ACM_ASSERT(rc == 0);
    acm_ctc_result_get(d, ACM_CTC_FINAL, r);
    return 0;
}
