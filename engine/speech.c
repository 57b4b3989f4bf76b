/*
 * speech.c — the speech encoder (docs/DESIGN.md §4b, file format in model.h): whole items (acm_worker_run) and
 * streams (acm_stream_*, acm_worker_run_streams) through one forward pass over packed rows.
 *
 * Forward, for R rows made of U chunks (decision units):
 *   log-mel frames (per item, or the stream's carried frames) -> (x - mel_mean) / mel_std -> S frames per token, read
 *   as one row of S*M (the frames of a token are consecutive, so stacking is a reinterpretation, not a copy) ->
 *   frontend.proj -> depth x pre-LN block { x += o(attention); x += mlp(LN2(x)) } -> norm -> head, on every row.
 *   Attention of a chunk: its keys are the L tokens before it (the same item's rows in a batch, the stream's ring in a
 *   stream) and its own rows; keys and queries are rotated with positions counted from the chunk's first key.
 *   Every module is static or an ACM; ACM decisions are made per chunk (acm__acm_scratch.unit_off), so `cap` spends
 *   each chunk's own budget and a stream decides exactly as the whole-file forward.
 *
 * Streams: a stream holds the log-mel carry, the frames of the chunk being filled, per layer a ring of the last L
 * tokens' k | v (k unrotated) and its CTC decoder (engine/ctc.h), into which each chunk run pushes its logits.
 *
 * Invariants: nothing here allocates after acm__speech_scratch_new / acm_stream_new; a chunk's result does not depend
 * on what it is batched with (the row-wise GEMMs aside, whose blocking may differ in the last bits).
 */
#include "speech.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "util.h"

struct acm__speech_scratch {
    acm__backend *be;   /* the CPU backend (speech models run there only, for now: worker.c) */
    int max_items, max_tokens;
    acm_logmel *mel;    /* the batch front end */
    float *frames;      /* [(R + 1) * S, M] normalised frames, token-major: token r reads rows r*S .. r*S+S-1 */
    float *x;           /* [R, D] residual stream */
    float *ln;          /* [R, D] LayerNorm outputs */
    float *qkv;         /* [R, 3D] */
    float *att_y;       /* [R, D] attention output */
    float *fc1;         /* [R, Hd] static MLP hidden */
    float *logits;      /* [R, K] */
    float *kv;          /* [L + C, 2D] one chunk's keys (rotated) | values */
    float *qr;          /* [C, D] one chunk's rotated queries */
    float *scores;      /* [C, L + C] */
    float *rope_cos, *rope_sin; /* [L + C, hd/2] */
    acm_item *units;    /* [R] one per chunk: the item's policy, force_k into `force` */
    int64_t *unit_off;  /* [R + 1] rows of chunk u: [unit_off[u], unit_off[u + 1]) */
    int64_t *unit_key0; /* [R] batch: first key row of chunk u */
    int32_t *unit_item; /* [R] the item (or stream) of chunk u */
    int64_t *item_off;  /* [max_items + 1] first row of each item */
    float *lambda, *gbeta; /* [R] per chunk */
    double *eflops, *lflops, *aflops; /* [R] per chunk: ACM FLOPs executed, of which learners; attention FLOPs */
    uint8_t *force;     /* [A, R] forced k regrouped per chunk ([A, T_u] at A * unit_off[u]) */
    void *mem;
};

struct acm_stream {
    const acm_model *m;
    acm_logmel *mel;
    acm_ctc_decoder *ctc; /* the CTC carry-over: each chunk's logits are pushed here (NULL: no decoder) */
    float *frames;      /* [S*C, M] log-mel frames of the chunk being filled */
    int nframes;        /* frames held */
    int ready;          /* a chunk is ready to run */
    int finished;       /* acm_stream_finish was called: no more samples */
    int64_t tokens_done;
    float *ring;        /* [depth, L, 2D]: k | v (k unrotated) of the last L tokens, circular */
    int ring_head;      /* slot of the oldest token */
    int ring_count;     /* tokens held (<= L) */
};

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)

/* ---- sizes ------------------------------------------------------------------------------------------------------ */

int64_t acm_speech_tokens(const acm_model *m, int64_t samples) {
    const acm_config *c = &m->cfg;
    if (c->arch != ACM_ARCH_SPEECH || samples < c->win_length) return 0;
    int64_t frames = (samples - c->win_length) / c->hop_length + 1;
    return frames / c->stack;
}

static size_t stream_frames_bytes(const acm_config *c) { return (size_t)c->stack * c->chunk * c->n_mels * 4; }
static size_t stream_ring_bytes(const acm_config *c) { return (size_t)c->depth * c->left_context * 2 * c->dim * 4; }

size_t acm_stream_state_bytes(const acm_model *m) {
    const acm_config *c = &m->cfg;
    if (c->arch != ACM_ARCH_SPEECH) return 0;
    /* the log-mel object (logmel.c): carry and window [win], frame [n_fft], spectrum [n_bins] complex, power [n_bins],
     * the sparse filterbank (3 ints per mel; every bin lies in at most two triangles, so <= 2 n_bins weights) and the
     * object itself (< 256 bytes); FFTW's plan is FFTW's own and not counted */
    const size_t nb = (size_t)c->n_fft / 2 + 1;
    size_t mel = (size_t)c->win_length * 8 + (size_t)c->n_fft * 4 + nb * 12 + (size_t)c->n_mels * 12 + 2 * nb * 4 + 256;
    return sizeof(acm_stream) + ALIGN64(stream_frames_bytes(c)) + ALIGN64(stream_ring_bytes(c)) + mel;
}

/* ---- scratch ---------------------------------------------------------------------------------------------------- */

acm__speech_scratch *acm__speech_scratch_new(const acm_model *m, int max_items, int max_tokens, acm__acm_scratch *acm,
                                             char *err, size_t errlen) {
    const acm_config *c = &m->cfg;
    if (max_tokens < 1 || max_tokens > (1 << 24)) {
        acm__fail(err, errlen, ACM_EINVAL, "max_tokens %d outside [1, %d]", max_tokens, 1 << 24);
        return NULL;
    }
    const size_t R = (size_t)max_tokens, D = (size_t)c->dim, S = (size_t)c->stack, M = (size_t)c->n_mels;
    const size_t C = (size_t)c->chunk, L = (size_t)c->left_context, K = (size_t)c->num_classes;
    const size_t A = (size_t)(c->num_acms ? c->num_acms : 1), hd = D / (size_t)c->heads;
    size_t hid = (size_t)(c->mlp_hidden > m->max_hidden ? c->mlp_hidden : m->max_hidden);
    size_t nmax = 1;
    for (int i = 0; i < c->num_acms; i++)
        if ((size_t)m->acms[i]->info.n > nmax) nmax = (size_t)m->acms[i]->info.n;
    size_t cmax = (size_t)(m->max_choices > 1 ? m->max_choices : 1), gm = (size_t)(m->gate_mult > 1 ? 2 : 1);
    size_t sizes[] = {
        (R + 1) * S * M * 4,    /* frames */
        R * D * 4,              /* x */
        R * D * 4,              /* ln */
        R * 3 * D * 4,          /* qkv */
        R * D * 4,              /* att_y */
        R * hid * 4,            /* fc1 */
        R * K * 4,              /* logits */
        (L + C) * 2 * D * 4,    /* kv */
        C * D * 4,              /* qr */
        C * (L + C) * 4,        /* scores */
        (L + C) * (hd / 2) * 4, /* rope_cos */
        (L + C) * (hd / 2) * 4, /* rope_sin */
        R * sizeof(acm_item),   /* units */
        (R + 1) * 8,            /* unit_off */
        R * 8,                  /* unit_key0 */
        R * 4,                  /* unit_item */
        ((size_t)max_items + 1) * 8, /* item_off */
        R * 4, R * 4,           /* lambda, gbeta */
        R * 8, R * 8, R * 8,    /* eflops, lflops, aflops */
        A * R,                  /* force */
        /* the ACM scratch (worker.c's table, for R rows; CAP works on one chunk of at most C tokens) */
        R * (3 * gm + 1) * cmax * 4, /* gate */
        3 * R,                       /* k */
        R * 4,                       /* perm */
        R * D * 4,                   /* xg */
        R * hid * 4,                 /* hid */
        R * D * 4,                   /* yg */
        C * nmax * 8,                /* cap_gain (double) */
        C * nmax * 4,                /* cap_idx */
        (hid + (size_t)m->max_width) * 8,           /* ref */
        (size_t)c->depth * 3 * gm * cmax * D * 4,   /* qkv_gate_w */
        (size_t)c->depth * 3 * gm * cmax * 4,       /* qkv_gate_b */
        (gm > 1) * (size_t)c->depth * 3 * cmax * D * 4, /* qkv_fold_w (FiLM only; else qkv_gate_w) */
        (gm > 1) * (size_t)c->depth * 3 * cmax * 4,     /* qkv_fold_b */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += ALIGN64(sizes[i]);
    acm__speech_scratch *sp = calloc(1, sizeof *sp);
    char *mem = sp ? aligned_alloc(64, total) : NULL;
    char msg[200] = "";
    acm_logmel *mel = mem ? acm_logmel_create(acm__speech_logmel_params(c), msg, sizeof msg) : NULL;
    if (!mel) {
        free(mem);
        free(sp);
        acm__fail(err, errlen, ACM_ENOMEM, "speech worker: %s", *msg ? msg : "out of memory");
        return NULL;
    }
    memset(mem, 0, total);
    sp->mem = mem;
    sp->be = acm->be ? acm->be : acm__backend_cpu();
    sp->mel = mel;
    sp->max_items = max_items;
    sp->max_tokens = max_tokens;
    void **ptrs[] = {
        (void **)&sp->frames, (void **)&sp->x, (void **)&sp->ln, (void **)&sp->qkv, (void **)&sp->att_y,
        (void **)&sp->fc1, (void **)&sp->logits, (void **)&sp->kv, (void **)&sp->qr, (void **)&sp->scores,
        (void **)&sp->rope_cos, (void **)&sp->rope_sin, (void **)&sp->units, (void **)&sp->unit_off,
        (void **)&sp->unit_key0, (void **)&sp->unit_item, (void **)&sp->item_off, (void **)&sp->lambda,
        (void **)&sp->gbeta, (void **)&sp->eflops, (void **)&sp->lflops, (void **)&sp->aflops, (void **)&sp->force,
        (void **)&acm->gate, (void **)&acm->k, (void **)&acm->perm, (void **)&acm->xg, (void **)&acm->hid,
        (void **)&acm->yg, (void **)&acm->cap_gain, (void **)&acm->cap_idx, (void **)&acm->ref,
        (void **)&acm->qkv_gate_w, (void **)&acm->qkv_gate_b, (void **)&acm->qkv_fold_w, (void **)&acm->qkv_fold_b,
    };
    ACM_ASSERT(sizeof ptrs / sizeof *ptrs == sizeof sizes / sizeof *sizes);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *ptrs[i] = mem;
        mem += ALIGN64(sizes[i]);
    }
    if (gm == 1) { /* without FiLM the folded gates are the gates (worker.c) */
        acm->qkv_fold_w = acm->qkv_gate_w;
        acm->qkv_fold_b = acm->qkv_gate_b;
    }
    acm__acm_scratch_fill(acm, m);
    /* rotary tables: angle p * base^(-2j/hd), in double */
    for (size_t p = 0; p < L + C; p++)
        for (size_t j = 0; j < hd / 2; j++) {
            double a = (double)p * pow((double)c->rope_base, -2.0 * (double)j / (double)hd);
            sp->rope_cos[p * (hd / 2) + j] = (float)cos(a);
            sp->rope_sin[p * (hd / 2) + j] = (float)sin(a);
        }
    return sp;
}

void acm__speech_scratch_free(acm__speech_scratch *sp) {
    if (!sp) return;
    acm_logmel_free(sp->mel);
    free(sp->mem);
    free(sp);
}

/* ---- the forward pass ------------------------------------------------------------------------------------------- */

static int check_policy(const acm_model *m, acm_policy p, int b, char *err, size_t errlen) {
    const acm_config *c = &m->cfg;
    if ((unsigned)p.kind > ACM_POLICY_CAP)
        return acm__fail(err, errlen, ACM_EINVAL, "item %d: unknown policy %d", b, (int)p.kind);
    if (p.kind == ACM_POLICY_CAP && (unsigned)p.cap_order > ACM_CAP_ORDER_RANDOM)
        return acm__fail(err, errlen, ACM_EINVAL, "item %d: unknown CAP order %d", b, (int)p.cap_order);
    if ((p.kind == ACM_POLICY_MEAN || p.kind == ACM_POLICY_CAP) && !(p.beta > 0.0f && p.beta <= 1.0f))
        return acm__fail(err, errlen, ACM_EINVAL, "item %d: budget %g outside (0, 1]", b, (double)p.beta);
    /* refused, not raised, as for images (vit.c): the caller must know what ran */
    if ((p.kind == ACM_POLICY_CAP || (p.kind == ACM_POLICY_MEAN && !p.lambda_set)) && p.beta < c->beta_min)
        return acm__fail(err, errlen, ACM_EINVAL,
                         "item %d: budget %g below the model's beta_min %g (its floor, every ACM at kmin learners: %g)",
                         b, (double)p.beta, (double)c->beta_min, (double)c->beta_floor);
    if (p.kind == ACM_POLICY_MEAN && p.lambda_set && !isfinite(p.lambda))
        return acm__fail(err, errlen, ACM_EINVAL, "item %d: lambda is not finite", b);
    if (p.kind == ACM_POLICY_MEAN && !p.lambda_set && c->num_acms && c->mean_table_len == 0)
        return acm__fail(err, errlen, ACM_EINVAL,
                         "item %d: policy 'mean' needs the model's lambda table, which this model does not have", b);
    return 0;
}

/* Chunk u's decision unit: the item's policy, its lambda and gate beta, zeroed counters. */
static void unit_setup(const acm_model *m, acm__speech_scratch *sp, int u, acm_policy p) {
    sp->units[u].policy = p;
    sp->units[u].force_k = NULL;
    sp->lambda[u] = p.kind != ACM_POLICY_MEAN ? 0.0f : p.lambda_set ? p.lambda : acm__mean_lambda(m, p.beta);
    sp->gbeta[u] = acm__gate_beta(m, p);
    sp->eflops[u] = sp->lflops[u] = sp->aflops[u] = 0;
}

/* Runs a static or ACM module over the R packed rows: out (ldo) = or += module(x). */
static void run_module(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                       const acm__module *md, acm__speech_scratch *sp, acm__acm_scratch *s, int U, int64_t R) {
    const acm_module_info *in = &md->info;
    acm__backend *be = sp->be;
    switch (in->kind) {
    case ACM_MOD_LINEAR:
        be->matmul_forward(be, out, ldo, x, ldx, md->w, in->din, md->b, R, in->din, in->dout, accumulate);
        return;
    case ACM_MOD_MLP:
        be->matmul_forward(be, sp->fc1, in->hidden, x, ldx, md->fc1_w, in->din, md->fc1_b, R, in->din, in->hidden, 0);
        be->gelu_forward(be, sp->fc1, in->hidden, sp->fc1, in->hidden, R, in->hidden);
        be->matmul_forward(be, out, ldo, sp->fc1, in->hidden, md->fc2_w, in->hidden, md->fc2_b, R, in->hidden, in->dout,
                            accumulate);
        return;
    case ACM_MOD_ACM:
        acm__acm_forward(out, ldo, accumulate, x, ldx, m, md, sp->units, sp->lambda, sp->gbeta, U, 0, s, sp->eflops,
                         sp->lflops);
        return;
    }
}

/* k of ACM module `md` (per row, karr [R]) into each item's kmap [A, T_item]. */
static void copy_kmap(const acm__module *md, const uint8_t *karr, const int64_t *item_off, acm_result *res, int n) {
    if (md->info.kind != ACM_MOD_ACM) return;
    for (int b = 0; b < n; b++)
        if (res[b].kmap) {
            const int64_t T = item_off[b + 1] - item_off[b];
            memcpy(res[b].kmap + (int64_t)md->info.acm_index * T, karr + item_off[b], (size_t)T);
        }
}

/* Attention of chunk u at layer l: keys = the stream's ring (st != NULL) or the item's rows [unit_key0[u], ...) before
 * the chunk, then the chunk's own rows. */
static void chunk_attention(const acm_model *m, acm__speech_scratch *sp, int u, int l, const acm_stream *st) {
    const acm_config *c = &m->cfg;
    const int D = c->dim, H = c->heads, hd = D / H, L = c->left_context;
    const int64_t r0 = sp->unit_off[u], Tq = sp->unit_off[u + 1] - r0;
    acm__backend *be = sp->be;
    float *kv = sp->kv; /* [Tk, 2D]: k | v */
    int64_t nk = 0;
    if (st && st->ring_count) { /* the ring, oldest first: [head, L) then [0, head) */
        const float *ring = st->ring + (int64_t)l * L * 2 * D;
        const int first = st->ring_count < L - st->ring_head ? st->ring_count : L - st->ring_head;
        be->copy_rows(be, kv, 2 * D, ring + (int64_t)st->ring_head * 2 * D, 2 * D, first, 2 * D);
        be->copy_rows(be, kv + (int64_t)first * 2 * D, 2 * D, ring, 2 * D, st->ring_count - first, 2 * D);
        nk = st->ring_count;
    }
    const int64_t k0 = st ? r0 : sp->unit_key0[u];
    be->copy_rows(be, kv + nk * 2 * D, 2 * D, sp->qkv + k0 * 3 * D + D, 3 * D, r0 + Tq - k0, 2 * D);
    nk += r0 + Tq - k0;
    be->copy_rows(be, sp->qr, D, sp->qkv + r0 * 3 * D, 3 * D, Tq, D);
    be->rope_forward(be, kv, 2 * D, nk, 0, H, hd, sp->rope_cos, sp->rope_sin);
    be->rope_forward(be, sp->qr, D, Tq, (int)(nk - Tq), H, hd, sp->rope_cos, sp->rope_sin);
    be->attention_window_forward(be, sp->att_y + r0 * D, D, sp->scores, sp->qr, D, kv, 2 * D, kv + D, 2 * D, (int)Tq,
                                  (int)nk, D, H);
    sp->aflops[u] += 4.0 * (double)Tq * (double)nk * D; /* QKᵀ and A·V */
}

/* The chunk's k | v (unrotated) of layer l into the stream's ring, behind the tokens it holds (ring_head and
 * ring_count are advanced by the caller once every layer is done): at most two contiguous runs of slots. */
static void ring_push(const acm_model *m, const acm__speech_scratch *sp, int u, int l, acm_stream *st) {
    const int D = m->cfg.dim, L = m->cfg.left_context;
    acm__backend *be = sp->be;
    if (L == 0) return;
    const int64_t r0 = sp->unit_off[u], Tq = sp->unit_off[u + 1] - r0;
    float *ring = st->ring + (int64_t)l * L * 2 * D;
    const int64_t skip = Tq > L ? Tq - L : 0, n = Tq - skip; /* only the last L tokens can stay */
    const int slot = (int)((st->ring_head + st->ring_count + skip) % L);
    const int64_t first = n < L - slot ? n : L - slot;
    be->copy_rows(be, ring + (int64_t)slot * 2 * D, 2 * D, sp->qkv + (r0 + skip) * 3 * D + D, 3 * D, first, 2 * D);
    be->copy_rows(be, ring, 2 * D, sp->qkv + (r0 + skip + first) * 3 * D + D, 3 * D, n - first, 2 * D);
}

/* Blocks, final norm and head over the R rows in sp->x (U chunks set up; n items at item_off for the k maps;
 * streams[u] for stream chunks, NULL for a batch). Logits land in sp->logits. */
static void blocks_forward(const acm_model *m, acm__speech_scratch *sp, acm__acm_scratch *s, int U, int64_t R,
                           acm_stream *const *streams, acm_result *res, int n) {
    const acm_config *c = &m->cfg;
    const int D = c->dim;
    acm__backend *be = sp->be;
    s->unit_off = sp->unit_off;
    s->bad_gate = NULL;
    for (int l = 0; l < c->depth; l++) {
        const acm__block *bl = &m->blocks[l];
        be->layernorm_forward(be, sp->ln, NULL, NULL, sp->x, bl->ln1_w, bl->ln1_b, R, D, c->ln_eps);
        if (bl->fused_qkv) {
            run_module(sp->qkv, 3 * D, 0, sp->ln, D, m, &bl->mod[ACM_POS_Q], sp, s, U, R);
        } else if (bl->mod[ACM_POS_Q].info.kind == ACM_MOD_ACM && bl->mod[ACM_POS_K].info.kind == ACM_MOD_ACM &&
                   bl->mod[ACM_POS_V].info.kind == ACM_MOD_ACM) {
            acm__acm_qkv_forward(sp->qkv, 3 * D, sp->ln, D, m, l, sp->units, sp->lambda, sp->gbeta, U, 0, s,
                                 sp->eflops, sp->lflops);
            for (int p = ACM_POS_Q; p <= ACM_POS_V; p++) copy_kmap(&bl->mod[p], s->k + p * R, sp->item_off, res, n);
        } else {
            for (int p = ACM_POS_Q; p <= ACM_POS_V; p++) {
                run_module(sp->qkv + p * D, 3 * D, 0, sp->ln, D, m, &bl->mod[p], sp, s, U, R);
                copy_kmap(&bl->mod[p], s->k, sp->item_off, res, n);
            }
        }
        for (int u = 0; u < U; u++) chunk_attention(m, sp, u, l, streams ? streams[u] : NULL);
        if (streams)
            for (int u = 0; u < U; u++) ring_push(m, sp, u, l, streams[u]);
        run_module(sp->x, D, 1, sp->att_y, D, m, &bl->mod[ACM_POS_O], sp, s, U, R);
        copy_kmap(&bl->mod[ACM_POS_O], s->k, sp->item_off, res, n);
        be->layernorm_forward(be, sp->ln, NULL, NULL, sp->x, bl->ln2_w, bl->ln2_b, R, D, c->ln_eps);
        run_module(sp->x, D, 1, sp->ln, D, m, &bl->mod[ACM_POS_MLP], sp, s, U, R);
        copy_kmap(&bl->mod[ACM_POS_MLP], s->k, sp->item_off, res, n);
    }
    s->unit_off = NULL;
    be->layernorm_forward(be, sp->ln, NULL, NULL, sp->x, m->norm_w, m->norm_b, R, D, c->ln_eps);
    be->matmul_forward(be, sp->logits, c->num_classes, sp->ln, D, m->head_w, D, m->head_b, R, D, c->num_classes, 0);
}

/* Normalises the S*T frames at sp->frames + row0*S*M and projects them into x rows [row0, row0 + T). */
static void embed(const acm_model *m, acm__speech_scratch *sp, int64_t row0, int64_t T) {
    const acm_config *c = &m->cfg;
    const int M = c->n_mels, SM = c->stack * M;
    acm__backend *be = sp->be;
    float *f = sp->frames + row0 * SM;
    be->normalise_cols(be, f, T * c->stack, M, m->mel_mean, m->mel_std);
    be->matmul_forward(be, sp->x + row0 * c->dim, c->dim, f, SM, m->front_w, SM, m->front_b, T, SM, c->dim, 0);
}

/* Per item: FLOPs, dense FLOPs and budget from its chunks [u0, u1); logits [T, K] copied out. */
static void item_result(const acm_model *m, const acm__speech_scratch *sp, acm_result *r, int u0, int u1,
                        int64_t row0, int64_t T) {
    double ef = 0, lf = 0, af = 0;
    for (int u = u0; u < u1; u++) {
        ef += sp->eflops[u];
        lf += sp->lflops[u];
        af += sp->aflops[u];
    }
    r->tokens = (int)T;
    r->flops = T ? m->flops_fixed * (double)T + ef + af : 0;
    r->flops_dense = T ? m->flops_dense * (double)T + af : 0;
    r->budget = T == 0 ? 0 : m->learner_flops_total > 0 ? lf / (m->learner_flops_total * (double)T) : 1.0;
    const int K = m->cfg.num_classes;
    if (T) sp->be->download(sp->be, r->logits, sp->logits + row0 * K, sizeof(float) * (size_t)(T * K));
    if (isnan(lf)) /* a gate gave non-finite logits in one of its chunks (acm_exec.c, decide): no answer */
        for (int64_t i = 0; i < T * K; i++) r->logits[i] = NAN;
}

/* After a forward: ACM_ENUMERIC naming the first item (or stream) whose gate gave non-finite logits, else 0. */
static int gate_error(const acm__speech_scratch *sp, const acm__acm_scratch *s, const char *what, char *err,
                      size_t errlen) {
    if (!s->bad_gate) return 0;
    return acm__fail(err, errlen, ACM_ENUMERIC,
                     "%s %d: the gate of ACM '%s' gave non-finite logits (NaN or Inf) on finite input: the computation "
                     "overflowed float (the model's weights, or inputs far outside its range)",
                     what, sp->unit_item[s->bad_item], s->bad_gate->info.name);
}

int acm__speech_run(const acm_model *m, acm__speech_scratch *sp, acm__acm_scratch *s, const acm_item *items,
                    acm_result *res, int n, char *err, size_t errlen) {
    const acm_config *c = &m->cfg;
    const int C = c->chunk, L = c->left_context, A = c->num_acms, M = c->n_mels, S = c->stack;
    int64_t R = 0;
    for (int b = 0; b < n; b++) {
        int rc = check_policy(m, items[b].policy, b, err, errlen);
        if (rc) return rc;
        if (items[b].kind != ACM_ITEM_AUDIO || !items[b].pcm || items[b].samples < 0)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: a speech model needs audio (kind AUDIO, pcm, samples)",
                             b);
        const int64_t T = acm_speech_tokens(m, items[b].samples);
        for (int64_t i = 0; i < items[b].samples; i++)
            if (!isfinite(items[b].pcm[i]))
                return acm__fail(err, errlen, ACM_EINVAL, "item %d: sample %lld is not finite (%g)", b, (long long)i,
                                 (double)items[b].pcm[i]);
        if (T > sp->max_tokens - R)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: %lld tokens of audio exceed the worker's %d tokens per "
                             "call", b, (long long)(T + R), sp->max_tokens);
        sp->item_off[b] = R;
        R += T;
    }
    sp->item_off[n] = R;
    /* chunks and their decision units; log-mel and embedding per item */
    int U = 0;
    for (int b = 0; b < n; b++) {
        const int64_t i0 = sp->item_off[b], T = sp->item_off[b + 1] - i0;
        for (int64_t t = 0; t < T; t += C, U++) {
            const int64_t Tu = T - t < C ? T - t : C;
            unit_setup(m, sp, U, items[b].policy);
            sp->unit_off[U] = i0 + t;
            sp->unit_key0[U] = i0 + (t > L ? t - L : 0);
            sp->unit_item[U] = b;
            if (items[b].force_k) {
                uint8_t *f = sp->force + (int64_t)A * (i0 + t);
                for (int a = 0; a < A; a++) memcpy(f + a * Tu, items[b].force_k + (int64_t)a * T + t, (size_t)Tu);
                sp->units[U].force_k = f;
            }
        }
        if (T == 0) continue;
        acm_logmel_reset(sp->mel);
        char msg[200];
        int64_t F = acm_logmel_push(sp->mel, items[b].pcm, (size_t)items[b].samples, sp->frames + i0 * S * M,
                                    (size_t)(T + 1) * S, msg, sizeof msg);
        ACM_ASSERT(F >= T * S); /* the buffer holds T + 1 tokens' frames; T*S <= F < (T+1)*S */
        embed(m, sp, i0, T);
    }
    sp->unit_off[U] = R;
    if (R) blocks_forward(m, sp, s, U, R, NULL, res, n);
    for (int b = 0, u = 0; b < n; b++) {
        int u1 = u;
        while (u1 < U && sp->unit_item[u1] == b) u1++;
        item_result(m, sp, &res[b], u, u1, sp->item_off[b], sp->item_off[b + 1] - sp->item_off[b]);
        u = u1;
    }
    return R ? gate_error(sp, s, "item", err, errlen) : 0;
}

/* ---- streams ---------------------------------------------------------------------------------------------------- */

acm_stream *acm_stream_new(const acm_model *m, char *err, size_t errlen) {
    acm_ctc_params p = acm_ctc_default_params();
    return acm_stream_new_ctc(m, &p, err, errlen);
}

acm_stream *acm_stream_new_ctc(const acm_model *m, const acm_ctc_params *ctc, char *err, size_t errlen) {
    const acm_config *c = &m->cfg;
    if (c->arch != ACM_ARCH_SPEECH) {
        acm__fail(err, errlen, ACM_EINVAL, "streams need a speech model");
        return NULL;
    }
    acm_ctc_decoder *dec = NULL;
    if (ctc) {
        /* the model's alphabet: the blank is class 0, the others one character each (labels[1..K-1]) */
        char chars[256];
        for (int i = 1; i < c->num_classes; i++) chars[i - 1] = c->labels[i][0];
        chars[c->num_classes - 1] = 0;
        acm_ctc_alphabet a;
        if (acm_ctc_alphabet_init_blank_first(&a, chars, err, errlen)) return NULL;
        acm_ctc_params p = *ctc;
        p.frame_seconds = (double)c->stack * c->hop_length / c->sample_rate;
        if (!(dec = acm_ctc_decoder_new(&a, p, err, errlen))) return NULL;
    }
    const size_t fb = ALIGN64(stream_frames_bytes(c)), rb = ALIGN64(stream_ring_bytes(c));
    acm_stream *st = calloc(1, sizeof *st);
    char *mem = st ? aligned_alloc(64, fb + rb + 64) : NULL;
    char msg[200] = "";
    acm_logmel *mel = mem ? acm_logmel_create(acm__speech_logmel_params(c), msg, sizeof msg) : NULL;
    if (!mel) {
        free(mem);
        free(st);
        acm_ctc_decoder_free(dec);
        acm__fail(err, errlen, ACM_ENOMEM, "stream: %s", *msg ? msg : "out of memory");
        return NULL;
    }
    memset(mem, 0, fb + rb + 64);
    st->m = m;
    st->mel = mel;
    st->ctc = dec;
    st->frames = (float *)mem;
    st->ring = (float *)(mem + fb);
    return st;
}

void acm_stream_free(acm_stream *st) {
    if (!st) return;
    acm_ctc_decoder_free(st->ctc);
    acm_logmel_free(st->mel);
    free(st->frames); /* the start of the one allocation */
    free(st);
}

acm_ctc_decoder *acm_stream_decoder(acm_stream *st) { return st->ctc; }

void acm_stream_reset(acm_stream *st) {
    acm_logmel_reset(st->mel);
    if (st->ctc) acm_ctc_reset(st->ctc, 0);
    st->nframes = st->ready = st->finished = 0;
    st->tokens_done = 0;
    st->ring_head = st->ring_count = 0;
}

int64_t acm_stream_feed(acm_stream *st, const float *pcm, size_t n, char *err, size_t errlen) {
    const acm_config *c = &st->m->cfg;
    const int want = c->stack * c->chunk;
    if (st->ready || st->finished || n == 0) return 0;
    if (!pcm) return acm__fail(err, errlen, ACM_EINVAL, "no samples (pcm is NULL)");
    /* the most samples whose frames still fit the chunk: frames_for grows with n by at most 1 per hop */
    size_t take = n;
    const size_t room = (size_t)(want - st->nframes);
    if (acm_logmel_frames_for(st->mel, take) > room) {
        size_t lo = 0, hi = n; /* frames_for(lo) <= room < frames_for(hi) */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (acm_logmel_frames_for(st->mel, mid) <= room)
                lo = mid;
            else
                hi = mid;
        }
        take = lo;
    }
    for (size_t i = 0; i < take; i++)
        if (!isfinite(pcm[i]))
            return acm__fail(err, errlen, ACM_EINVAL, "sample %zu of the %zu given is not finite (%g)", i, n,
                             (double)pcm[i]);
    char msg[64];
    int64_t got = acm_logmel_push(st->mel, pcm, take, st->frames + (size_t)st->nframes * c->n_mels, room, msg,
                                  sizeof msg);
    ACM_ASSERT(got >= 0);
    st->nframes += (int)got;
    if (st->nframes == want) st->ready = 1;
    return (int64_t)take;
}

void acm_stream_finish(acm_stream *st) {
    st->finished = 1;
    if (st->nframes >= st->m->cfg.stack) st->ready = 1;
}

int acm_stream_ready(const acm_stream *st) { return st->ready; }
int64_t acm_stream_tokens_done(const acm_stream *st) { return st->tokens_done; }

int acm__speech_run_streams(const acm_model *m, acm__speech_scratch *sp, acm__acm_scratch *s,
                            acm_stream *const *streams, const acm_policy *policies, acm_result *res, int n, char *err,
                            size_t errlen) {
    const acm_config *c = &m->cfg;
    const int S = c->stack, M = c->n_mels, L = c->left_context;
    int64_t R = 0;
    for (int i = 0; i < n; i++) {
        int rc = check_policy(m, policies[i], i, err, errlen);
        if (rc) return rc;
        if (!streams[i] || streams[i]->m != m || !streams[i]->ready)
            return acm__fail(err, errlen, ACM_EINVAL, "stream %d: no chunk ready (or a stream of another model)", i);
        for (int j = 0; j < i; j++)
            if (streams[j] == streams[i]) return acm__fail(err, errlen, ACM_EINVAL, "stream %d is listed twice", i);
        if (!res[i].logits) return acm__fail(err, errlen, ACM_EINVAL, "stream %d: no logits buffer", i);
        const int64_t T = streams[i]->nframes / S;
        if (T > sp->max_tokens - R)
            return acm__fail(err, errlen, ACM_EINVAL, "%lld tokens exceed the worker's %d tokens per call",
                             (long long)(T + R), sp->max_tokens);
        sp->item_off[i] = sp->unit_off[i] = R;
        R += T;
    }
    sp->item_off[n] = sp->unit_off[n] = R;
    for (int i = 0; i < n; i++) {
        const acm_stream *st = streams[i];
        const int64_t T = sp->item_off[i + 1] - sp->item_off[i];
        unit_setup(m, sp, i, policies[i]);
        sp->unit_item[i] = i;
        sp->be->upload(sp->be, sp->frames + sp->item_off[i] * S * M, st->frames, sizeof(float) * (size_t)(T * S * M));
        embed(m, sp, sp->item_off[i], T);
    }
    blocks_forward(m, sp, s, n, R, streams, res, n);
    for (int i = 0; i < n; i++) {
        acm_stream *st = streams[i];
        const int64_t T = sp->item_off[i + 1] - sp->item_off[i];
        item_result(m, sp, &res[i], i, i + 1, sp->item_off[i], T);
        /* the CTC carry-over: the chunk's logits into the decoder (a chunk whose gate failed has NaN logits, which the
         * decoder refuses: its text stays as it was) */
        if (st->ctc && !isnan(res[i].budget))
            acm_ctc_push(st->ctc, res[i].logits, T, c->num_classes, NULL, 0);
        /* advance the ring past this chunk (its k | v were written layer by layer) */
        if (L) {
            int64_t cnt = st->ring_count + T;
            st->ring_head = (int)((st->ring_head + (cnt > L ? cnt - L : 0)) % L);
            st->ring_count = (int)(cnt > L ? L : cnt);
        }
        st->tokens_done += T;
        st->nframes = 0;
        st->ready = 0;
    }
    return gate_error(sp, s, "stream", err, errlen);
}
