/*
 * cmd_speech_acmize.c — `acm-train acmize` on a static speech model (arch "speech"; acmize.c hands it over): the
 * paper's three phases (docs/METHOD.md §3-5) for the encoder's MLPs, on the corpus of `acm-train speech-corpus`.
 *
 *   phase 1  module-wise distillation: the frozen teacher runs on training batches; every MLP's learners learn the
 *            MLP's output o (with its bias) from its input z (the block's ln2 rows), mean over k of MSE(h(z, k), o)
 *            with "detach" gradients; per-ACM clip, Adam, cosine.
 *   phase 2  gate pre-training, learners frozen: labels from the 1.2 improvement-factor rule, cross-entropy; Adam.
 *   phase 3  end-to-end: every parameter (static ones, learners, gates and their FiLM) on CTC + w_b L_b + w_e L_e +
 *            w_d L_d, hard Gumbel-softmax gates (tau 0.8, straight-through). The budget target beta is drawn per batch
 *            uniformly from --beta-sample (default 0.25:1) and fed to every gate (FiLM), so one model serves every
 *            budget (acmize --film). L_b is measured over the batch's tokens: an utterance weighs by its length
 *            (speech_student.h).
 * Batches: the length-bucketed batches of speech-base (speech_batches.h) over the training split; no SpecAugment
 * (the teacher's targets are of the clean frames). Utterances as speech-base keeps them (alphabet, 1..max_tokens
 * tokens, enough tokens for the labels).
 * Checkpoint (ckpt.h): static parameters and Adam moments, ACM and FiLM parameters and moments, the epoch order and
 * batch permutation, the phase, its step, and the RNG streams; every --ckpt-every seconds, at phase ends, at
 * --max-steps and on SIGINT/SIGTERM; --resume continues bit for bit (it keeps the run's thread count: with another,
 * OpenBLAS may sum in another order). CSV log (OUT.csv), one row per --log-every steps. At the end the model (arch
 * "speech", ACM MLPs with FiLM gates, budget.gate_beta the middle of the range, budget.beta_min its low end) goes
 * to --out.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "kernels.h"
#include "safetensors.h"
#include "train/ckpt.h"
#include "train/commands.h"
#include "train/ctc_loss.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/rng.h"
#include "train/run_common.h"
#include "train/speech_batches.h"
#include "train/speech_corpus.h"
#include "train/speech_student.h"
#include "train/speech_utts.h"

#define ME "acm-train acmize"
#define SACM_THREADS 2 /* OpenBLAS threads when --threads is not given */

typedef struct {
    char base[1024], out[1024], ckpt[1100], csv[1100], corpus[1024];
    int learners, gate_hidden, threads, max_items, max_tokens, bucket_batches, log_every;
    int64_t batch_tokens, train_limit, seed, max_steps, sigterm_at;
    double epochs[3], lr[3], lr_min, clip, beta_lo, beta_hi, w_b, w_e, w_d, tau, ckpt_every_s;
} sacm_cfg;

static sacm_cfg cfg_default(void) {
    sacm_cfg c;
    memset(&c, 0, sizeof c);
    /* threads 0: not given; a resumed run keeps its stored count (the sums of OpenBLAS's products depend on it, so
     * another count would not continue bit for bit), a fresh one takes SACM_THREADS */
    c.learners = 4, c.gate_hidden = 16, c.threads = 0, c.max_items = 64, c.max_tokens = 600, c.bucket_batches = 50;
    c.log_every = 25, c.batch_tokens = 4000, c.seed = 1, c.sigterm_at = -1;
    c.epochs[0] = 1, c.epochs[1] = 0.5, c.epochs[2] = 2;
    c.lr[0] = 1e-3, c.lr[1] = 1e-2, c.lr[2] = 1e-4, c.lr_min = 1e-6, c.clip = 1.0;
    c.beta_lo = 0.25, c.beta_hi = 1.0, c.w_b = 0.1, c.w_e = 0.05, c.w_d = 0.05, c.tau = 0.8, c.ckpt_every_s = 300;
    return c;
}

static json_t *cfg_json(const sacm_cfg *c) {
    return json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:I, s:I, s:I, s:[f,f,f], s:[f,f,f], s:f, s:f, "
                     "s:[f,f], s:[f,f,f], s:f}",
                     "base", c->base, "corpus", c->corpus, "learners", c->learners, "gate_hidden", c->gate_hidden,
                     "threads", c->threads, "max_items", c->max_items, "max_tokens", c->max_tokens, "bucket_batches",
                     c->bucket_batches, "batch_tokens", (json_int_t)c->batch_tokens, "train_limit",
                     (json_int_t)c->train_limit, "seed", (json_int_t)c->seed, "epochs", c->epochs[0], c->epochs[1],
                     c->epochs[2], "lr", c->lr[0], c->lr[1], c->lr[2], "lr_min", c->lr_min, "clip", c->clip,
                     "beta_sample", c->beta_lo, c->beta_hi, "weights", c->w_b, c->w_e, c->w_d, "tau", c->tau);
}

static void usage(FILE *f) {
    sacm_cfg d = cfg_default();
    fprintf(f,
            "usage: acm-train acmize --base SPEECH.safetensors --corpus DIR --out ACM.safetensors [options]\n"
            "  (a speech base model: the encoder's MLPs become ACMs with budget-conditioned gates)\n"
            "  --ckpt PATH            checkpoint (default OUT.ckpt)      --csv PATH   log (default OUT.csv)\n"
            "  --resume               continue from --ckpt (its stored configuration wins; --threads N overrides\n"
            "                         the stored thread count, then the run no longer continues bit for bit)\n"
            "  --learners N           learners per MLP (default %d)     --gate-hidden H   (default %d)\n"
            "  --epochs P1,P2,P3      epochs of each phase (default %g,%g,%g; fractions allowed)\n"
            "  --lr P1,P2,P3          peak learning rates (default %g,%g,%g), cosine to %g\n"
            "  --beta-sample LO:HI    phase-3 budget target drawn per batch in [LO, HI] (default %g:%g)\n"
            "  --weights WB,WE,WD     budget, entropy, diversity loss weights (default %g,%g,%g)\n"
            "  --batch-tokens N       tokens per batch (default %lld)  --max-items N (default %d)\n"
            "  --max-tokens N         longest utterance kept, in tokens (default %d)\n"
            "  --train-limit N        first N kept training utterances (default all)\n"
            "  --threads N            OpenBLAS threads (default %d)   --seed N (default %lld)\n"
            "  --ckpt-every S         seconds between checkpoints (default %g)   --log-every N (default %d)\n"
            "  --max-steps N          stop with a checkpoint after N steps in all phases (0: run to the end)\n"
            "  --quiet                no progress output\n"
            "  --test-sigterm-at N    raise SIGTERM after total step N (tests of the signal path)\n",
            d.learners, d.gate_hidden, d.epochs[0], d.epochs[1], d.epochs[2], d.lr[0], d.lr[1], d.lr[2], d.lr_min,
            d.beta_lo, d.beta_hi, d.w_b, d.w_e, d.w_d, (long long)d.batch_tokens, d.max_items, d.max_tokens,
            SACM_THREADS, (long long)d.seed, d.ckpt_every_s, d.log_every);
}

static int parse3(const char *s, double out[3]) {
    char *e;
    for (int i = 0; i < 3; i++) {
        out[i] = strtod(s, &e);
        if (e == s || out[i] < 0) return -1;
        if (i < 2) {
            if (*e != ',') return -1;
            s = e + 1;
        }
    }
    return *e ? -1 : 0;
}

static void cfg_from_json(sacm_cfg *c, const json_t *o) {
    const json_t *v;
#define I(key, dst) if (json_is_integer(v = json_object_get(o, key))) dst = (int)json_integer_value(v)
#define L(key, dst) if (json_is_integer(v = json_object_get(o, key))) dst = json_integer_value(v)
#define F(key, dst) if (json_is_number(v = json_object_get(o, key))) dst = json_number_value(v)
#define A(key, dst, n) for (int i_ = 0; i_ < n; i_++) if (json_is_number(v = json_array_get(json_object_get(o, key), i_))) dst[i_] = json_number_value(v)
    if (json_is_string(v = json_object_get(o, "corpus")) && !c->corpus[0])
        snprintf(c->corpus, sizeof c->corpus, "%s", json_string_value(v));
    I("learners", c->learners);
    I("threads", c->threads);
    I("gate_hidden", c->gate_hidden);
    I("max_items", c->max_items);
    I("max_tokens", c->max_tokens);
    I("bucket_batches", c->bucket_batches);
    L("batch_tokens", c->batch_tokens);
    L("train_limit", c->train_limit);
    L("seed", c->seed);
    A("epochs", c->epochs, 3);
    A("lr", c->lr, 3);
    F("lr_min", c->lr_min);
    F("clip", c->clip);
    F("tau", c->tau);
    double bs[2] = {c->beta_lo, c->beta_hi}, w[3] = {c->w_b, c->w_e, c->w_d};
    A("beta_sample", bs, 2);
    A("weights", w, 3);
    c->beta_lo = bs[0], c->beta_hi = bs[1], c->w_b = w[0], c->w_e = w[1], c->w_d = w[2];
#undef I
#undef L
#undef F
#undef A
}

/* ---- data (the utterances speech-base trains on) ---------------------------------------------------------------- */

/* The train split's usable utterances; none is an error. */
static int set_load(acmt_speech_utts *s, const char *corpus, const acmt_speech_config *mc, int max_tokens,
                    int64_t limit, char *err, size_t errlen) {
    if (acmt_speech_utts_load(s, corpus, "train", mc, max_tokens, limit, err, errlen)) return -1;
    if (!s->n) {
        snprintf(err, errlen, "%s: the train split has no usable utterance (%lld left out)", corpus,
                 (long long)s->dropped);
        return -1;
    }
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------------------------------- */

typedef struct {
    int phase; /* 1..3; 4 = done */
    int64_t step, total_steps, epoch, bpos, nb;
    acmt_rng order, gumbel;
    double seconds[3];
} sacm_state;

typedef struct {
    sacm_cfg cfg;
    sacm_state st;
    acmt_speech_utts train;
    acmt_speech_student *s;
    int32_t *order, *perm, *labels;
    int64_t *bstart, *tok;
    float *buf, *tmp, *o, *loss_rows;
    const float **fr;
    const int32_t **lab;
    int *nl, B;
    int64_t steps_per_epoch;
} sacm_run;

static json_t *state_json(const sacm_state *s, const sacm_cfg *c) {
    char h1[65], h2[65];
    acmt_rng_to_hex(&s->order, h1);
    acmt_rng_to_hex(&s->gumbel, h2);
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:s, s:s, s:[f,f,f], s:s}", "kind", "speech-acmize",
                          "phase", s->phase, "step", (json_int_t)s->step, "total_steps", (json_int_t)s->total_steps,
                          "epoch", (json_int_t)s->epoch, "bpos", (json_int_t)s->bpos, "nb", (json_int_t)s->nb,
                          "rng_order", h1, "rng_gumbel", h2, "seconds", s->seconds[0], s->seconds[1], s->seconds[2],
                          "blas_core", acm_blas_core());
    json_object_set_new(o, "config", cfg_json(c));
    return o;
}

static int state_from_json(sacm_state *s, const json_t *o, char *err, size_t errlen) {
    const json_t *k = json_object_get(o, "kind");
    if (!json_is_string(k) || strcmp(json_string_value(k), "speech-acmize")) {
        snprintf(err, errlen, "not a checkpoint of acmize on a speech model");
        return -1;
    }
    const char *keys[] = {"phase", "step", "total_steps", "epoch", "bpos", "nb"};
    int64_t v[6];
    for (int i = 0; i < 6; i++) {
        const json_t *j = json_object_get(o, keys[i]);
        if (!json_is_integer(j)) {
            snprintf(err, errlen, "checkpoint state: '%s' missing", keys[i]);
            return -1;
        }
        v[i] = json_integer_value(j);
    }
    s->phase = (int)v[0], s->step = v[1], s->total_steps = v[2], s->epoch = v[3], s->bpos = v[4], s->nb = v[5];
    if (acmt_rng_from_hex(&s->order, json_string_value(json_object_get(o, "rng_order"))) ||
        acmt_rng_from_hex(&s->gumbel, json_string_value(json_object_get(o, "rng_gumbel")))) {
        snprintf(err, errlen, "checkpoint state: RNG states missing");
        return -1;
    }
    for (int i = 0; i < 3; i++) s->seconds[i] = json_number_value(json_array_get(json_object_get(o, "seconds"), i));
    return 0;
}

static int ckpt_entries(sacm_run *r, acmt_ckpt_entry *e) {
    acmt_speech_student *s = r->s;
    acmt_speech *sp = s->sp;
    const int64_t n = r->train.n;
    acmt_ckpt_entry x[] = {
        {"params", 0, sp->nparams, sp->params}, {"adam_m", 0, sp->nparams, sp->m}, {"adam_v", 0, sp->nparams, sp->v},
        {"acm_params", 0, s->nparams, s->ap},   {"acm_m", 0, s->nparams, s->am},   {"acm_v", 0, s->nparams, s->av},
        {"film_params", 0, s->nfilm, s->fp},    {"film_m", 0, s->nfilm, s->fm},    {"film_v", 0, s->nfilm, s->fv},
        {"order", 1, n, r->order},              {"perm", 1, n, r->perm},
    };
    memcpy(e, x, sizeof x);
    return (int)(sizeof x / sizeof *x);
}

static int64_t phase_steps(const sacm_run *r, int ph) {
    return (int64_t)llround(r->cfg.epochs[ph - 1] * (double)r->steps_per_epoch);
}

static acmt_batch_params batch_params(const sacm_cfg *c) {
    return (acmt_batch_params){.batch_tokens = c->batch_tokens, .max_items = c->max_items,
                               .bucket_batches = c->bucket_batches};
}

/* The next batch of the epoch (a new epoch when this one is used up): frames, tokens and labels in r. */
static int next_batch(sacm_run *r, char *err, size_t errlen) {
    sacm_state *st = &r->st;
    if (st->bpos == st->nb) {
        st->epoch++;
        st->bpos = 0;
        st->nb = acmt_batches_epoch(r->train.tokens, r->train.n, batch_params(&r->cfg), &st->order, r->order,
                                    r->bstart, r->perm);
    }
    const int64_t b0 = r->bstart[r->perm[st->bpos]], nb = r->bstart[r->perm[st->bpos] + 1] - b0;
    st->bpos++;
    const int S = r->s->sp->cfg.stack;
    if (acmt_speech_utts_read(&r->train, r->cfg.corpus, r->order + b0, (int)nb, S, r->buf, r->tmp, r->fr, r->tok,
                              r->lab, r->nl, err, errlen))
        return -1;
    r->B = (int)nb;
    return 0;
}

/* Phases 1-2: the teacher's forward (the static part without hooks: its MLPs are the teacher's until phase 3), then
 * per ACM its input z (ln2) and the MLP's output o into r->o. */
static void teacher_mlp_out(sacm_run *r, int l) {
    acmt_speech *sp = r->s->sp;
    const int D = sp->cfg.dim, Hd = sp->cfg.mlp_hidden;
    const float *W2 = acmt_speech_block_param(sp, sp->params, l, "mlp.fc2.weight");
    const float *b2 = acmt_speech_block_param(sp, sp->params, l, "mlp.fc2.bias");
    acm__matmul_forward(r->o, D, sp->blk[l].gelu, Hd, W2, Hd, b2, sp->R, Hd, D, 0);
}

static void update_acms(sacm_run *r, int gate_part, float lr, int64_t t) {
    acmt_speech_student *s = r->s;
    acmt_adamw o = acmt_adamw_default();
    o.lr = lr;
    o.weight_decay = 0;
    for (int a = 0; a < s->n_acm; a++) {
        const int64_t lo = s->off[a] + (gate_part ? s->L[a].gate : 0);
        const int64_t hi = s->off[a] + (gate_part ? s->L[a].numel : s->L[a].gate);
        acmt_clip_grad_norm(s->ag + lo, hi - lo, r->cfg.clip);
        acmt_adamw_update(&o, s->ap + lo, s->ag + lo, s->am + lo, s->av + lo, hi - lo, t, 0);
    }
}

typedef struct {
    double loss, rel_err[17], gate_acc, ctc;
    acmt_aux aux;
    double beta;
    int64_t tokens;
} step_out;

static int phase12_step(sacm_run *r, int ph, float lr, step_out *so, char *err, size_t errlen) {
    acmt_speech_student *s = r->s;
    acmt_speech *sp = s->sp;
    if (acmt_speech_forward(sp, r->fr, r->tok, r->B, err, errlen)) return -1;
    memset(s->ag, 0, sizeof(float) * (size_t)s->nparams);
    const int D = sp->cfg.dim;
    const int64_t M = sp->R;
    double hit = 0;
    for (int a = 0; a < s->n_acm; a++) {
        const acmt_acm_layout *L = &s->L[a];
        acmt_acm_acts *ac = &s->acts[a];
        const float *p = s->ap + s->off[a], *z = sp->blk[a].ln2;
        teacher_mlp_out(r, a);
        acmt_acm_learners_forward(ac, p, L, z, D, M);
        if (ph == 1) {
            double e[17] = {0};
            so->loss += acmt_acm_distill_backward(s->ag + s->off[a], ac, p, L, z, D, r->o, D, M, e) / s->n_acm;
            for (int k = 0; k <= L->n && k < 17; k++) so->rel_err[k] += e[k] / (e[0] > 0 ? e[0] : 1) / s->n_acm;
            continue;
        }
        const double ce =
            acmt_acm_gate_pretrain(s->ag + s->off[a], r->labels, r->loss_rows, &hit, ac, p, L, z, D, r->o, D, M);
        so->loss += ce / s->n_acm;
    }
    so->gate_acc = hit / ((double)M * s->n_acm);
    update_acms(r, ph == 2, lr, r->st.step + 1);
    return 0;
}

static int phase3_step(sacm_run *r, float lr, step_out *so, char *err, size_t errlen) {
    acmt_speech_student *s = r->s;
    acmt_speech *sp = s->sp;
    const sacm_cfg *c = &r->cfg;
    s->train_gates = 1;
    s->uniform_k = 0;
    s->tau = (float)c->tau;
    s->rng = &r->st.gumbel;
    so->beta = c->beta_lo + (c->beta_hi - c->beta_lo) * acmt_rng_float(&r->st.gumbel);
    s->beta = (float)so->beta;
    if (acmt_speech_student_forward(s, r->fr, r->tok, r->B, err, errlen)) return -1;
    so->aux = acmt_speech_student_aux(s, so->beta, c->w_b, c->w_e, c->w_d);
    so->ctc = acmt_speech_student_backward(s, r->lab, r->nl, NULL);
    if (!isfinite(so->ctc)) {
        snprintf(err, errlen, "the CTC loss is not finite");
        return -1;
    }
    so->loss = so->ctc + c->w_b * so->aux.budget + c->w_e * so->aux.entropy + c->w_d * so->aux.diversity;
    /* one global clip over every trained parameter (the static MLPs and the mel statistics get no gradient) */
    double n2 = 0;
    for (int64_t i = 0; i < sp->nparams; i++) n2 += (double)sp->grads[i] * sp->grads[i];
    for (int64_t i = 0; i < s->nparams; i++) n2 += (double)s->ag[i] * s->ag[i];
    for (int64_t i = 0; i < s->nfilm; i++) n2 += (double)s->fg[i] * s->fg[i];
    const double norm = sqrt(n2), sc = norm > c->clip && c->clip > 0 ? c->clip / norm : 1.0;
    if (sc < 1.0) {
        for (int64_t i = 0; i < sp->nparams; i++) sp->grads[i] *= (float)sc;
        for (int64_t i = 0; i < s->nparams; i++) s->ag[i] *= (float)sc;
        for (int64_t i = 0; i < s->nfilm; i++) s->fg[i] *= (float)sc;
    }
    acmt_adamw o = acmt_adamw_default();
    o.lr = lr;
    o.weight_decay = 0;
    const int64_t t = r->st.step + 1;
    for (int i = 0; i < sp->ntab; i++) {
        const acmt_param *p = &sp->tab[i];
        if (acmt_speech_trainable(sp, i) && !strstr(p->name, ".mlp."))
            acmt_adamw_update(&o, sp->params + p->offset, sp->grads + p->offset, sp->m + p->offset, sp->v + p->offset,
                              p->numel, t, 0);
    }
    acmt_adamw_update(&o, s->ap, s->ag, s->am, s->av, s->nparams, t, 0);
    acmt_adamw_update(&o, s->fp, s->fg, s->fm, s->fv, s->nfilm, t, 0);
    return 0;
}

/* The static speech model at path into a new trainer sized for the run. */
static acmt_speech *load_base(const char *path, const sacm_cfg *c, int max_labels, char *err, size_t errlen) {
    acm_model *m = acm_model_load(path, err, errlen);
    if (!m) return NULL;
    const acm_config *mc = acm_model_config(m);
    if (mc->arch != ACM_ARCH_SPEECH || mc->num_acms) {
        snprintf(err, errlen, "%.1000s: %s", path,
                 mc->arch != ACM_ARCH_SPEECH ? "not a speech model" : "already has ACM modules (a static base is needed)");
        acm_model_free(m);
        return NULL;
    }
    acmt_speech_config sc = {.n_mels = mc->n_mels, .stack = mc->stack, .dim = mc->dim, .depth = mc->depth,
                             .heads = mc->heads, .mlp_hidden = mc->mlp_hidden, .chunk = mc->chunk,
                             .left_context = mc->left_context, .rope_base = mc->rope_base, .ln_eps = mc->ln_eps};
    for (int k = 1; k < mc->num_classes && k < (int)sizeof sc.alphabet; k++) sc.alphabet[k - 1] = mc->labels[k][0];
    acm_model_free(m);
    if (sc.n_mels != ACMS_MELS) {
        snprintf(err, errlen, "%.1000s: %d mels, the corpus has %d", path, sc.n_mels, ACMS_MELS);
        return NULL;
    }
    acmt_speech *sp = acmt_speech_new(&sc, c->max_items, c->batch_tokens, c->max_tokens, max_labels, err, errlen);
    if (!sp) return NULL;
    acm_st_file f;
    if (acm__st_open(&f, path, err, errlen)) {
        acmt_speech_free(sp);
        return NULL;
    }
    for (int i = 0; i < sp->ntab; i++) {
        const acm_st_tensor *t = acm__st_find(&f, sp->tab[i].name);
        if (!t || t->numel != sp->tab[i].numel) {
            snprintf(err, errlen, "%.1000s: tensor '%s' missing or of the wrong size", path, sp->tab[i].name);
            acm__st_close(&f);
            acmt_speech_free(sp);
            return NULL;
        }
        memcpy(sp->params + sp->tab[i].offset, t->data, sizeof(float) * (size_t)t->numel);
    }
    acm__st_close(&f);
    return sp;
}

static int parse_args(sacm_cfg *c, int *resume, int *quiet, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
#define NEED_V                                                                                                       \
    if (!v) {                                                                                                          \
        fprintf(stderr, ME ": %s needs a value\n", a);                                                                 \
        return 2;                                                                                                      \
    }                                                                                                                  \
    i++;
#define BAD(what)                                                                                                      \
    do {                                                                                                               \
        fprintf(stderr, ME ": %s %s: %s\n", a, v, what);                                                               \
        return 2;                                                                                                      \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--resume")) {
            *resume = 1;
        } else if (!strcmp(a, "--quiet")) {
            *quiet = 1;
        } else if (!strcmp(a, "--base") || !strcmp(a, "--out") || !strcmp(a, "--ckpt") || !strcmp(a, "--csv") ||
                   !strcmp(a, "--corpus")) {
            NEED_V char *dst = !strcmp(a, "--base") ? c->base : !strcmp(a, "--out") ? c->out
                               : !strcmp(a, "--ckpt") ? c->ckpt : !strcmp(a, "--csv") ? c->csv : c->corpus;
            size_t cap = !strcmp(a, "--ckpt") || !strcmp(a, "--csv") ? sizeof c->ckpt : sizeof c->base;
            if (strlen(v) >= cap - 16) BAD("path too long");
            snprintf(dst, cap, "%s", v);
        } else if (!strcmp(a, "--epochs") || !strcmp(a, "--lr") || !strcmp(a, "--weights")) {
            NEED_V double t[3];
            if (parse3(v, t)) BAD("expected three numbers >= 0, comma-separated");
            double *dst = !strcmp(a, "--epochs") ? c->epochs : !strcmp(a, "--lr") ? c->lr : NULL;
            if (dst) memcpy(dst, t, sizeof t);
            else c->w_b = t[0], c->w_e = t[1], c->w_d = t[2];
        } else if (!strcmp(a, "--beta-sample")) {
            NEED_V if (sscanf(v, "%lf:%lf", &c->beta_lo, &c->beta_hi) != 2 ||
                       !(c->beta_lo > 0 && c->beta_lo <= c->beta_hi && c->beta_hi <= 1))
                BAD("expected LO:HI with 0 < LO <= HI <= 1");
        } else if (!strcmp(a, "--ckpt-every")) {
            NEED_V c->ckpt_every_s = strtod(v, &end);
            if (*end || !(c->ckpt_every_s >= 0)) BAD("expected seconds >= 0");
        } else {
            int64_t *i64 = NULL, lo = 1;
            int *i32 = NULL;
            if (!strcmp(a, "--learners")) i32 = &c->learners;
            else if (!strcmp(a, "--gate-hidden")) i32 = &c->gate_hidden;
            else if (!strcmp(a, "--threads")) i32 = &c->threads;
            else if (!strcmp(a, "--max-items")) i32 = &c->max_items;
            else if (!strcmp(a, "--max-tokens")) i32 = &c->max_tokens;
            else if (!strcmp(a, "--log-every")) i32 = &c->log_every;
            else if (!strcmp(a, "--batch-tokens")) i64 = &c->batch_tokens;
            else if (!strcmp(a, "--train-limit")) i64 = &c->train_limit, lo = 0;
            else if (!strcmp(a, "--seed")) i64 = &c->seed, lo = 0;
            else if (!strcmp(a, "--max-steps")) i64 = &c->max_steps, lo = 0;
            else if (!strcmp(a, "--test-sigterm-at")) i64 = &c->sigterm_at, lo = 0;
            else {
                fprintf(stderr, ME ": unknown option '%s'\n", a);
                usage(stderr);
                return 2;
            }
            NEED_V long long x = strtoll(v, &end, 10);
            if (*end || x < lo || (i32 && x > 1 << 30)) BAD("expected an integer in range");
            if (i32) *i32 = (int)x;
            else *i64 = x;
        }
#undef NEED_V
#undef BAD
    }
    if (!c->base[0] || !c->out[0]) {
        fprintf(stderr, ME ": --base and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (!c->ckpt[0]) snprintf(c->ckpt, sizeof c->ckpt, "%s.ckpt", c->out);
    if (!c->csv[0]) snprintf(c->csv, sizeof c->csv, "%s.csv", c->out);
    return 0;
}

static void run_free(sacm_run *r) {
    acmt_speech_student_free(r->s);
    acmt_speech_utts_free(&r->train);
    free(r->order), free(r->perm), free(r->labels), free(r->bstart), free(r->tok), free(r->buf), free(r->tmp);
    free(r->o), free(r->loss_rows), free(r->fr), free(r->lab), free(r->nl);
}

int cmd_speech_acmize(int argc, char **argv) {
    static sacm_run R; /* large: not on the stack */
    memset(&R, 0, sizeof R);
    R.cfg = cfg_default();
    sacm_cfg *c = &R.cfg;
    int resume = 0, quiet = 0;
    int rc = parse_args(c, &resume, &quiet, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    char err[4096];
    const int64_t sigterm_at = c->sigterm_at, max_steps = c->max_steps;
    const double ckpt_every = c->ckpt_every_s;
    if (resume) { /* the stored configuration wins (the batches, the model's shape and the schedule depend on it) */
        json_t *st = NULL;
        if (acmt_ckpt_read(c->ckpt, NULL, 0, &st, err, sizeof err) || state_from_json(&R.st, st, err, sizeof err)) {
            fprintf(stderr, ME ": --resume: %s\n", err);
            json_decref(st);
            return 1;
        }
        const int given = c->threads;
        cfg_from_json(c, json_object_get(st, "config"));
        json_decref(st);
        if (given && c->threads && given != c->threads && !quiet)
            fprintf(stderr, ME ": --resume: --threads %d where the run had %d: it continues, not bit for bit\n", given,
                    c->threads);
        if (given) c->threads = given;
    }
    if (!c->threads) c->threads = SACM_THREADS;
    if (!c->corpus[0]) {
        fprintf(stderr, ME ": a speech base model needs --corpus DIR (the corpus of acm-train speech-corpus)\n");
        return 2;
    }
    acm_blas_set_threads(c->threads);
    /* the alphabet comes from the model: read it before the corpus */
    acmt_speech *sp = load_base(c->base, c, 0, err, sizeof err);
    if (!sp) {
        fprintf(stderr, ME ": %s\n", err);
        return 1;
    }
    const acmt_speech_config mc = sp->cfg;
    acmt_speech_free(sp);
    if (set_load(&R.train, c->corpus, &mc, c->max_tokens, c->train_limit, err, sizeof err) ||
        !(sp = load_base(c->base, c, R.train.max_labels, err, sizeof err))) {
        fprintf(stderr, ME ": %s\n", err);
        run_free(&R);
        return 1;
    }
    R.s = acmt_speech_student_new(sp, c->learners, c->gate_hidden, err, sizeof err);
    if (!R.s) {
        acmt_speech_free(sp);
        fprintf(stderr, ME ": %s\n", err);
        run_free(&R);
        return 1;
    }
    const int64_t n = R.train.n, rows = c->batch_tokens;
    int64_t maxf = 0;
    for (int64_t i = 0; i < n; i++) maxf = R.train.utts[i].frames > maxf ? R.train.utts[i].frames : maxf;
    R.order = malloc(sizeof(int32_t) * (size_t)n);
    R.perm = malloc(sizeof(int32_t) * (size_t)n);
    R.bstart = malloc(sizeof(int64_t) * (size_t)(n + 1));
    R.labels = malloc(sizeof(int32_t) * (size_t)rows);
    R.tok = malloc(sizeof(int64_t) * (size_t)c->max_items);
    R.buf = malloc(sizeof(float) * (size_t)(rows * mc.stack * ACMS_MELS));
    R.tmp = malloc(sizeof(float) * (size_t)((maxf + 1) * ACMS_MELS));
    R.o = malloc(sizeof(float) * (size_t)(rows * mc.dim));
    R.loss_rows = malloc(sizeof(float) * (size_t)rows);
    R.fr = malloc(sizeof *R.fr * (size_t)c->max_items);
    R.lab = malloc(sizeof *R.lab * (size_t)c->max_items);
    R.nl = malloc(sizeof(int) * (size_t)c->max_items);
    if (!R.order || !R.perm || !R.bstart || !R.labels || !R.tok || !R.buf || !R.tmp || !R.o || !R.loss_rows ||
        !R.fr || !R.lab || !R.nl) {
        fprintf(stderr, ME ": out of memory\n");
        run_free(&R);
        return 1;
    }
    /* steps per epoch: the first epoch's batches (the same for every epoch up to the bucketing's rounding) */
    {
        acmt_rng r0;
        acmt_rng_seed(&r0, (uint64_t)c->seed, 1);
        for (int64_t i = 0; i < n; i++) R.order[i] = (int32_t)i;
        R.steps_per_epoch = acmt_batches_epoch(R.train.tokens, n, batch_params(c), &r0, R.order, R.bstart, R.perm);
    }
    acmt_ckpt_entry ce[16];
    const int nce = ckpt_entries(&R, ce);
    if (resume) {
        json_t *st = NULL;
        if (acmt_ckpt_read(c->ckpt, ce, nce, &st, err, sizeof err)) {
            fprintf(stderr, ME ": --resume: %s\n", err);
            run_free(&R);
            return 1;
        }
        json_decref(st);
        if (acmt_batches_cut(R.train.tokens, R.order, n, batch_params(c), R.bstart) != R.st.nb) {
            fprintf(stderr, ME ": --resume: %s does not match the corpus (the batches differ)\n", c->ckpt);
            run_free(&R);
            return 1;
        }
    } else {
        acmt_rng init;
        acmt_rng_seed(&init, (uint64_t)c->seed, 0);
        acmt_rng_seed(&R.st.order, (uint64_t)c->seed, 2);
        acmt_rng_seed(&R.st.gumbel, (uint64_t)c->seed, 3);
        acmt_speech_student_init(R.s, &init);
        R.st.phase = 1;
        R.st.bpos = R.st.nb = 0; /* a fresh epoch on the first batch */
        if (acmt_csv_create(c->csv, "phase,step,lr,loss,ctc,budget_loss,entropy,diversity,beta,realised,gate_acc,"
                                    "rel_err_k1,rel_err_kN,tokens,seconds")) {
            fprintf(stderr, ME ": %s: %s\n", c->csv, strerror(errno));
            run_free(&R);
            return 1;
        }
    }
    FILE *csv = fopen(c->csv, "a");
    if (!csv) {
        fprintf(stderr, ME ": %s: %s\n", c->csv, strerror(errno));
        run_free(&R);
        return 1;
    }
    if (!quiet)
        fprintf(stderr,
                ME ": %s -> %s: %d MLP ACMs (N=%d, gate %d, FiLM), %lld ACM parameters, %lld train utterances "
                   "(%lld left out), phases %lld/%lld/%lld steps, beta in [%.2f, %.2f], BLAS %s x%d%s\n",
                c->base, c->out, R.s->n_acm, c->learners, c->gate_hidden, (long long)R.s->nparams, (long long)n,
                (long long)R.train.dropped, (long long)phase_steps(&R, 1), (long long)phase_steps(&R, 2),
                (long long)phase_steps(&R, 3), c->beta_lo, c->beta_hi, acm_blas_core(), c->threads,
                resume ? " (resumed)" : "");
    acmt_signals sigs;
    acmt_signals_catch(&sigs);
    acmt_progress prog;
    acmt_progress_start(&prog, quiet);
    prog.rate_unit = "tok/s";
    prog.acc_label = NULL;
    double last_ckpt = acmt_now_s();
    rc = 0;
    int stopped = 0;
    while (R.st.phase <= 3 && !rc && !stopped) {
        const int ph = R.st.phase;
        const int64_t total = phase_steps(&R, ph);
        double win[10] = {0}, tstart = acmt_now_s();
        int64_t nwin = 0, session_tok = 0, session_steps = 0;
        while (R.st.step < total) {
            const double ts = acmt_now_s();
            const float lr = acmt_lr_schedule(R.st.step, total, 0, (float)c->lr[ph - 1], (float)c->lr_min);
            step_out so;
            memset(&so, 0, sizeof so);
            if (next_batch(&R, err, sizeof err) ||
                (ph < 3 ? phase12_step(&R, ph, lr, &so, err, sizeof err) : phase3_step(&R, lr, &so, err, sizeof err))) {
                fprintf(stderr, "\n" ME ": phase %d step %lld: %s\n", ph, (long long)R.st.step + 1, err);
                rc = 1;
                break;
            }
            R.st.step++;
            R.st.total_steps++;
            R.st.seconds[ph - 1] += acmt_now_s() - ts;
            session_tok += R.s->sp->R;
            session_steps++;
            win[0] += so.loss, win[1] += so.ctc, win[2] += so.aux.budget, win[3] += so.aux.entropy;
            win[4] += so.aux.diversity, win[5] += so.beta, win[6] += so.aux.realised, win[7] += so.gate_acc;
            win[8] += so.rel_err[1], win[9] += so.rel_err[c->learners < 16 ? c->learners : 16];
            nwin++;
            const double el = acmt_now_s() - tstart;
            acmt_progress_update(&prog, R.st.step, total, so.loss, 0, (double)session_tok / (el > 0 ? el : 1),
                                 (double)(total - R.st.step) * el / (double)session_steps);
            if (R.st.step % c->log_every == 0 || R.st.step == total) {
                fprintf(csv, "%d,%lld,%.4g", ph, (long long)R.st.step, lr);
                for (int k = 0; k < 10; k++) fprintf(csv, ",%.6f", win[k] / (double)nwin);
                fprintf(csv, ",%lld,%.1f\n", (long long)session_tok, R.st.seconds[ph - 1]);
                fflush(csv);
                memset(win, 0, sizeof win);
                nwin = 0;
            }
            if (sigterm_at >= 0 && R.st.total_steps == sigterm_at) raise(SIGTERM);
            const int at_max = max_steps > 0 && R.st.total_steps >= max_steps;
            if (R.st.step == total) {
                acmt_progress_note(&prog, "phase %d done: %lld steps, %.0f s", ph, (long long)total,
                                   R.st.seconds[ph - 1]);
                R.st.phase++;
                R.st.step = 0;
                /* a fresh optimiser for the next phase */
                memset(R.s->am, 0, sizeof(float) * (size_t)R.s->nparams);
                memset(R.s->av, 0, sizeof(float) * (size_t)R.s->nparams);
            }
            if (acmt_stop_signal || at_max || R.st.step == 0 || acmt_now_s() - last_ckpt >= ckpt_every) {
                json_t *st = state_json(&R.st, c);
                if (acmt_ckpt_write(c->ckpt, ce, nce, st, err, sizeof err)) {
                    fprintf(stderr, "\n" ME ": checkpoint: %s\n", err);
                    rc = 1;
                }
                json_decref(st);
                last_ckpt = acmt_now_s();
            }
            if (acmt_stop_signal || at_max) {
                acmt_progress_note(&prog, "stopped at phase %d step %lld; checkpoint %s; continue with --resume",
                                   R.st.phase, (long long)R.st.step, c->ckpt);
                stopped = 1;
                break;
            }
            if (R.st.phase != ph) break;
        }
        if (total == 0 && R.st.phase == ph) R.st.phase++; /* a phase of 0 epochs is skipped */
    }
    acmt_progress_end(&prog);
    acmt_signals_restore(&sigs);
    fclose(csv);
    if (!rc && R.st.phase == 4) {
        char extra[2048];
        snprintf(extra, sizeof extra,
                 "{\"budget\": {\"beta_min\": %.4f, \"gate_beta\": %.4f}, \"train\": {\"command\": \"acm-train "
                 "acmize\", \"acmize_seconds\": [%.1f, %.1f, %.1f], \"beta_sample\": [%.3f, %.3f], \"film\": true, "
                 "\"learners\": %d, \"train_utterances\": %lld}}",
                 c->beta_lo, 0.5 * (c->beta_lo + c->beta_hi), R.st.seconds[0], R.st.seconds[1], R.st.seconds[2],
                 c->beta_lo, c->beta_hi, c->learners, (long long)n);
        if (acmt_speech_student_save(R.s, c->out, extra, err, sizeof err)) {
            fprintf(stderr, ME ": %s\n", err);
            rc = 1;
        } else if (!quiet) {
            fprintf(stderr, ME ": wrote %s (phases %.0f + %.0f + %.0f s)\n", c->out, R.st.seconds[0], R.st.seconds[1],
                    R.st.seconds[2]);
        }
    }
    run_free(&R);
    return rc;
}
