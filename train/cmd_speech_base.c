/*
 * cmd_speech_base.c — `acm-train speech-base`: trains the static speech encoder with CTC on the corpus of
 * `acm-train speech-corpus` (issue 19; docs/TRAINING.md "Speech").
 *
 * Data: the train and val manifests (speech_corpus.h); an utterance is kept when its text is in the alphabet, it has
 * 1..max_tokens tokens and at least as many tokens as its labels need. The log-mel mean and std per bin are measured
 * on the first stats_utts kept training utterances (manifest order) and stored in the model (frontend.mel_mean/std).
 * Frames are read from the fp16 shards per step (the page cache keeps them).
 * Epoch: the order is shuffled, windows of bucket_batches batches' worth of utterances are sorted by length (length
 * bucketing: a batch holds utterances of similar length), batches are cut greedily up to batch_tokens tokens and
 * max_items utterances, and the batch order is shuffled. The schedule's length is epochs x the first epoch's batches.
 * Step: SpecAugment (time and frequency masks set to the bin's mean, i.e. 0 after normalisation; from a checkpointed
 * RNG stream) -> forward + CTC backward (speech_train.h) -> global-norm clip -> AdamW with warm-up + cosine.
 * Validation (every epoch, and at the end): CTC loss and greedy CER / WER on the first val_limit val utterances.
 * Checkpoints every ckpt_every_s seconds, at --max-steps, at the end and on SIGINT/SIGTERM, as `acm-train base`
 * (cmd_base.c): parameters, moments, order, batch permutation and RNG states, so that --resume continues bit for bit
 * (same thread count). Parallelism: OpenBLAS threads inside the products (threads), as `acm-train base`.
 * At the end the model is written to --out (arch "speech", the engine's format) with its validation figures.
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
#include "ctc.h"
#include "train/ckpt.h"
#include "train/commands.h"
#include "train/ctc_loss.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/rng.h"
#include "train/run_common.h"
#include "train/speech_batches.h"
#include "train/speech_config.h"
#include "train/speech_corpus.h"
#include "train/speech_eval.h"
#include "train/speech_train.h"
#include "train/speech_utts.h"
#include "train/wer.h"

#define ME "acm-train speech-base"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train speech-base --out MODEL.safetensors [options]\n"
               "  --config FILE.json     training configuration (keys below; default: all defaults)\n"
               "  --out PATH             the trained model (required)\n"
               "  --ckpt PATH            checkpoint file (default: OUT.ckpt)\n"
               "  --csv PATH             training log (default: OUT.csv)\n"
               "  --resume               continue from --ckpt (its stored configuration wins over --config)\n"
               "  --epochs N             with --resume: change the run's length to N epochs (the cosine schedule\n"
               "                         is laid out again for the new total; it must lie beyond the current step)\n"
               "  --max-steps N          stop (with a checkpoint) after step N; 0 = run to the end (default 0)\n"
               "  --no-final             at the end, skip the final validation and writing --out\n"
               "  --quiet                no progress output\n"
               "  --test-sigterm-at N    raise SIGTERM after step N (tests of the signal path; default off)\n\n");
    acmt_speech_train_config_help();
}

/* ---- data ------------------------------------------------------------------------------------------------------- */

/* The split's usable utterances; none is an error naming max_tokens (the likely cause). */
static int set_load(acmt_speech_utts *s, const acmt_speech_train_config *tc, const acmt_speech_config *mc,
                    const char *split, int64_t limit, char *err, size_t errlen) {
    if (acmt_speech_utts_load(s, tc->corpus, split, mc, tc->max_tokens, limit, err, errlen)) return -1;
    if (!s->n) {
        snprintf(err, errlen, "split %s of the corpus: no usable utterance (%lld left out: text outside the alphabet, "
                 "or over max_tokens %d)", split, (long long)s->dropped, tc->max_tokens);
        return -1;
    }
    return 0;
}

/* Per-bin mean and std of the log-mel frames of the first `count` utterances. */
static int mel_stats(const acmt_speech_utts *s, const char *corpus, int count, float *mean, float *sd, char *err,
                     size_t errlen) {
    double sum[ACMS_MELS] = {0}, sq[ACMS_MELS] = {0};
    int64_t nf = 0, maxf = 0;
    for (int64_t i = 0; i < s->n && i < count; i++) maxf = s->utts[i].frames > maxf ? s->utts[i].frames : maxf;
    float *f = malloc(sizeof(float) * (size_t)(maxf * ACMS_MELS + 1));
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (int64_t i = 0; i < s->n && i < count; i++) {
        if (acms_read_frames(corpus, s->split, &s->utts[i], f, err, errlen)) {
            free(f);
            return -1;
        }
        for (int64_t t = 0; t < s->utts[i].frames; t++, nf++)
            for (int m = 0; m < ACMS_MELS; m++) {
                const double x = f[t * ACMS_MELS + m];
                sum[m] += x;
                sq[m] += x * x;
            }
    }
    free(f);
    for (int m = 0; m < ACMS_MELS; m++) {
        const double mu = sum[m] / (double)nf, var = sq[m] / (double)nf - mu * mu;
        mean[m] = (float)mu;
        sd[m] = (float)sqrt(var > 1e-6 ? var : 1e-6);
    }
    return 0;
}

/* ---- epochs and batches ----------------------------------------------------------------------------------------- */

static acmt_batch_params batch_params(const acmt_speech_train_config *c) {
    acmt_batch_params p = {.batch_tokens = c->batch_tokens, .max_items = c->max_items,
                           .bucket_batches = c->bucket_batches};
    return p;
}

/* SpecAugment on one utterance's frames [F, M]: masked values become the bin's mean (0 after normalisation). */
static void spec_augment(float *f, int64_t F, const float *mean, const acmt_speech_train_config *c, acmt_rng *r) {
    for (int k = 0; k < c->freq_masks; k++) {
        const int w = (int)acmt_rng_below(r, (uint32_t)c->freq_mask_max + 1);
        const int m0 = (int)acmt_rng_below(r, (uint32_t)(ACMS_MELS - w + 1));
        for (int64_t t = 0; t < F; t++)
            for (int m = m0; m < m0 + w; m++) f[t * ACMS_MELS + m] = mean[m];
    }
    /* a time mask covers at most a fifth of the utterance, so that short ones keep their words */
    const int64_t wmax = c->time_mask_max < F / 5 ? c->time_mask_max : F / 5;
    for (int k = 0; k < c->time_masks && wmax > 0; k++) {
        const int64_t w = acmt_rng_below(r, (uint32_t)wmax + 1), t0 = acmt_rng_below(r, (uint32_t)(F - w + 1));
        for (int64_t t = t0; t < t0 + w; t++)
            for (int m = 0; m < ACMS_MELS; m++) f[t * ACMS_MELS + m] = mean[m];
    }
}

typedef struct {
    double loss, cer, wer;
} val_result;

/* CTC loss (mean per label), greedy CER and WER (the engine's greedy decoder, as acm-train eval) over the set, batches
 * in manifest order, no augmentation. */
static int validate(acmt_speech *sp, const acmt_speech_utts *s, const acmt_speech_train_config *c, float *buf, float *tmp,
                    val_result *out, char *err, size_t errlen) {
    const int maxn = sp->max_items;
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)maxn);
    const float **fr = malloc(sizeof *fr * (size_t)maxn);
    int64_t *tok = malloc(sizeof(int64_t) * (size_t)maxn);
    const int32_t **lab = malloc(sizeof *lab * (size_t)maxn);
    int *nl = malloc(sizeof(int) * (size_t)maxn);
    char *hyp = malloc(4096);
    int rc = -1;
    acm_ctc_decoder *dec = NULL;
    acm_ctc_alphabet al;
    if (acm_ctc_alphabet_init_blank_first(&al, sp->cfg.alphabet, err, errlen) ||
        !(dec = acm_ctc_decoder_new(&al, acm_ctc_default_params(), err, errlen)))
        goto done;
    if (!idx || !fr || !tok || !lab || !nl || !hyp) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    acmt_wer w = {0};
    double L = 0;
    int64_t nloss = 0;
    for (int64_t i = 0; i < s->n;) {
        int n = 0;
        int64_t t = 0;
        while (i < s->n && n < maxn && t + s->tokens[i] <= c->batch_tokens) {
            t += s->tokens[i];
            idx[n++] = (int32_t)i++;
        }
        if (acmt_speech_utts_read(s, c->corpus, idx, n, sp->cfg.stack, buf, tmp, fr, tok, lab, nl, err, errlen) ||
            acmt_speech_forward(sp, fr, tok, n, err, errlen))
            goto done;
        for (int b = 0; b < n; b++) {
            const float *z = sp->logits + sp->item_off[b] * sp->K;
            double lb;
            if (acmt_ctc_loss(&lb, NULL, 0, z, sp->K, tok[b], sp->K, lab[b], nl[b], 0, sp->ctc_work) == ACMT_CTC_OK) {
                L += lb / (nl[b] > 0 ? nl[b] : 1);
                nloss++;
            }
            acm_ctc_result g;
            if (acm_ctc_decode(dec, z, tok[b], sp->K, &g, err, errlen)) goto done;
            if (acmt_wer_add(&w, s->utts[idx[b]].text, acmt_ctc_text(&g, hyp, 4096))) {
                snprintf(err, errlen, "out of memory");
                goto done;
            }
        }
    }
    out->loss = nloss ? L / (double)nloss : NAN;
    out->cer = acmt_wer_char_rate(&w);
    out->wer = acmt_wer_word_rate(&w);
    rc = 0;
done:
    acm_ctc_decoder_free(dec);
    free(idx);
    free(fr);
    free(tok);
    free(lab);
    free(nl);
    free(hyp);
    return rc;
}

/* ---- checkpoint state ------------------------------------------------------------------------------------------- */

typedef struct {
    int64_t step, total, epoch, bpos, nb;
    acmt_rng rng_order, rng_aug;
    double train_seconds, best_val_cer; /* best_val_cer -1: no validation yet (JSON has no infinity) */
} run_state;

static json_t *state_json(const run_state *s, const acmt_speech_train_config *c) {
    char ho[65], ha[65];
    acmt_rng_to_hex(&s->rng_order, ho);
    acmt_rng_to_hex(&s->rng_aug, ha);
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string("speech-base"));
    json_object_set_new(o, "step", json_integer(s->step));
    json_object_set_new(o, "total", json_integer(s->total));
    json_object_set_new(o, "epoch", json_integer(s->epoch));
    json_object_set_new(o, "bpos", json_integer(s->bpos));
    json_object_set_new(o, "nb", json_integer(s->nb));
    json_object_set_new(o, "rng_order", json_string(ho));
    json_object_set_new(o, "rng_aug", json_string(ha));
    json_object_set_new(o, "train_seconds", json_real(s->train_seconds));
    json_object_set_new(o, "best_val_cer", json_real(s->best_val_cer));
    json_object_set_new(o, "config", acmt_speech_train_config_json(c));
    json_object_set_new(o, "blas_core", json_string(acm_blas_core()));
    return o;
}

static int state_from_json(run_state *s, const json_t *o, char *err, size_t errlen) {
    const char *keys[] = {"step", "total", "epoch", "bpos", "nb"};
    int64_t *dst[] = {&s->step, &s->total, &s->epoch, &s->bpos, &s->nb};
    for (int i = 0; i < 5; i++) {
        json_t *v = json_object_get(o, keys[i]);
        if (!json_is_integer(v)) {
            snprintf(err, errlen, "checkpoint state: '%s' missing", keys[i]);
            return -1;
        }
        *dst[i] = json_integer_value(v);
    }
    if (!json_is_string(json_object_get(o, "kind")) || strcmp(json_string_value(json_object_get(o, "kind")),
                                                              "speech-base")) {
        snprintf(err, errlen, "not a speech-base checkpoint");
        return -1;
    }
    if (acmt_rng_from_hex(&s->rng_order, json_string_value(json_object_get(o, "rng_order"))) ||
        acmt_rng_from_hex(&s->rng_aug, json_string_value(json_object_get(o, "rng_aug")))) {
        snprintf(err, errlen, "checkpoint state: RNG states missing");
        return -1;
    }
    s->train_seconds = json_number_value(json_object_get(o, "train_seconds"));
    json_t *bv = json_object_get(o, "best_val_cer");
    s->best_val_cer = json_is_number(bv) ? json_number_value(bv) : -1;
    return 0;
}

/* ---- the command ------------------------------------------------------------------------------------------------ */

int cmd_speech_base(int argc, char **argv) {
    acmt_run_args ra = {.me = ME, .sigterm_at = -1, .max_epochs = 10000, .epochs_rule = "in [1, 10000]"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        const int took = acmt_run_args_take(&ra, argc, argv, &i);
        if (took == 2) return 2;
        if (took) continue;
        fprintf(stderr, ME ": unknown or incomplete option '%s'\n", a);
        usage(stderr);
        return 2;
    }
    if (acmt_run_args_check(&ra, usage)) return 2;
    const char *config_path = ra.config, *out = ra.out, *ckpt_path = ra.ckpt_path, *csv_path = ra.csv_path;
    const int resume = ra.resume, quiet = ra.quiet, no_final = ra.no_final;
    const int64_t max_steps = ra.max_steps, sigterm_at = ra.sigterm_at;
    const long new_epochs = ra.new_epochs;
    char err[1024];

    acmt_speech_train_config cfg = acmt_speech_train_config_default();
    json_t *st0 = NULL;
    if (config_path && !resume) {
        json_error_t je;
        json_t *j = json_load_file(config_path, 0, &je);
        if (!j) {
            fprintf(stderr, ME ": %s:%d: %s\n", config_path, je.line, je.text);
            return 1;
        }
        int rc = acmt_speech_train_config_apply(&cfg, j, err, sizeof err);
        json_decref(j);
        if (rc) {
            fprintf(stderr, ME ": %s: %s\n", config_path, err);
            return 1;
        }
    }
    if (resume) {
        if (acmt_ckpt_read(ckpt_path, NULL, 0, &st0, err, sizeof err) ||
            acmt_speech_train_config_apply(&cfg, json_object_get(st0, "config"), err, sizeof err)) {
            fprintf(stderr, ME ": --resume: %s\n", err);
            json_decref(st0);
            return 1;
        }
        json_decref(st0);
    }
    const int old_epochs = cfg.epochs;
    if (new_epochs) cfg.epochs = (int)new_epochs;
    acm_blas_set_threads(cfg.threads);

    const acmt_speech_config mc = acmt_speech_train_model_config(&cfg);

    acmt_speech_utts train = {0}, val = {0};
    acmt_speech *sp = NULL;
    int32_t *order = NULL, *perm = NULL, *idx = NULL;
    int64_t *bstart = NULL, *tok = NULL;
    float *buf = NULL, *tmp = NULL;
    const float **fr = NULL;
    const int32_t **lab = NULL;
    int *nl = NULL;
    FILE *csv = NULL;
    int status = 1;
    if (set_load(&train, &cfg, &mc, "train", cfg.train_limit, err, sizeof err) ||
        set_load(&val, &cfg, &mc, "val", cfg.val_limit, err, sizeof err)) {
        fprintf(stderr, ME ": %s\n", err);
        goto done;
    }
    const int max_labels = train.max_labels > val.max_labels ? train.max_labels : val.max_labels;
    sp = acmt_speech_new(&mc, cfg.max_items, cfg.batch_tokens, cfg.max_tokens, max_labels, err, sizeof err);
    const int64_t n = train.n, maxf = (int64_t)cfg.max_tokens * cfg.stack + cfg.stack;
    order = malloc(sizeof(int32_t) * (size_t)n);
    perm = malloc(sizeof(int32_t) * (size_t)n);
    bstart = malloc(sizeof(int64_t) * (size_t)(n + 1));
    idx = malloc(sizeof(int32_t) * (size_t)cfg.max_items);
    tok = malloc(sizeof(int64_t) * (size_t)cfg.max_items);
    fr = malloc(sizeof *fr * (size_t)cfg.max_items);
    lab = malloc(sizeof *lab * (size_t)cfg.max_items);
    nl = malloc(sizeof(int) * (size_t)cfg.max_items);
    buf = malloc(sizeof(float) * (size_t)cfg.batch_tokens * cfg.stack * ACMS_MELS);
    int64_t maxframes = 0;
    for (int64_t i = 0; i < n; i++) maxframes = train.utts[i].frames > maxframes ? train.utts[i].frames : maxframes;
    for (int64_t i = 0; i < val.n; i++) maxframes = val.utts[i].frames > maxframes ? val.utts[i].frames : maxframes;
    tmp = malloc(sizeof(float) * (size_t)((maxframes > maxf ? maxframes : maxf) * ACMS_MELS));
    if (!sp || !order || !perm || !bstart || !idx || !tok || !fr || !lab || !nl || !buf || !tmp) {
        fprintf(stderr, ME ": %s\n", sp ? "out of memory" : err);
        goto done;
    }

    run_state s = {0};
    s.best_val_cer = -1;
    acmt_ckpt_entry ce[5] = {{"params", 0, sp->nparams, sp->params},
                             {"adam_m", 0, sp->nparams, sp->m},
                             {"adam_v", 0, sp->nparams, sp->v},
                             {"order", 1, n, order},
                             {"perm", 1, n, perm}};
    if (resume) {
        json_t *st = NULL;
        if (acmt_ckpt_read(ckpt_path, ce, 5, &st, err, sizeof err) || state_from_json(&s, st, err, sizeof err)) {
            fprintf(stderr, ME ": --resume: %s\n", err);
            json_decref(st);
            goto done;
        }
        json_decref(st);
        if (acmt_batches_cut(train.tokens, order, n, batch_params(&cfg), bstart) != s.nb) {
            fprintf(stderr, ME ": --resume: %s does not match the corpus (the batches differ)\n", ckpt_path);
            goto done;
        }
        if (new_epochs) { /* the schedule is epochs x the first epoch's batches: lay it out again */
            const int64_t total = s.total / old_epochs * new_epochs;
            if (total <= s.step) {
                fprintf(stderr, ME ": --epochs %ld: %lld steps in all, but the checkpoint is at step %lld\n",
                        new_epochs, (long long)total, (long long)s.step);
                goto done;
            }
            s.total = total;
        }
        if (acmt_csv_truncate(csv_path, s.step)) fprintf(stderr, ME ": warning: cannot trim %s\n", csv_path);
    } else {
        acmt_rng rng_init;
        acmt_rng_seed(&rng_init, (uint64_t)cfg.seed, 1);
        acmt_rng_seed(&s.rng_order, (uint64_t)cfg.seed, 2);
        acmt_rng_seed(&s.rng_aug, (uint64_t)cfg.seed, 3);
        acmt_speech_init(sp, &rng_init);
        float mean[ACMS_MELS], sd[ACMS_MELS];
        if (mel_stats(&train, cfg.corpus, cfg.stats_utts, mean, sd, err, sizeof err)) {
            fprintf(stderr, ME ": %s\n", err);
            goto done;
        }
        acmt_speech_set_mel_stats(sp, mean, sd);
        for (int64_t i = 0; i < n; i++) order[i] = (int32_t)i;
        s.nb = acmt_batches_epoch(train.tokens, n, batch_params(&cfg), &s.rng_order, order, bstart, perm);
        s.total = s.nb * cfg.epochs;
        if (acmt_csv_create(csv_path, "step,epoch,utterances,tokens,lr,loss,grad_norm,tok_per_s,train_s,skipped,"
                                      "val_loss,val_cer,val_wer")) {
            fprintf(stderr, ME ": %s: %s\n", csv_path, strerror(errno));
            goto done;
        }
    }
    csv = fopen(csv_path, "a");
    if (!csv) {
        fprintf(stderr, ME ": %s: %s\n", csv_path, strerror(errno));
        goto done;
    }
    const int64_t total = s.total, stop_at = max_steps > 0 && max_steps < total ? max_steps : total;
    const float *mel_mean = sp->params + sp->tab[0].offset; /* frontend.mel_mean: the table's first tensor */
    acmt_adamw opt = {.beta1 = (float)cfg.beta1, .beta2 = (float)cfg.beta2, .eps = (float)cfg.eps,
                      .weight_decay = (float)cfg.weight_decay};
    if (!quiet)
        fprintf(stderr,
                ME ": %lld parameters, %lld train utterances (%lld left out) / %lld val, %lld steps (%lld/epoch), "
                   "%.1f MFLOP/token forward, BLAS %s x%d%s\n",
                (long long)sp->nparams, (long long)n, (long long)train.dropped, (long long)val.n, (long long)total,
                (long long)s.nb, acmt_speech_token_flops(&mc) / 1e6, acm_blas_core(), cfg.threads,
                resume ? " (resumed)" : "");

    acmt_signals sigs;
    acmt_signals_catch(&sigs);

    acmt_progress prog;
    acmt_progress_start(&prog, quiet);
    prog.rate_unit = "tok/s";
    prog.acc_label = NULL;
    double last_ckpt = acmt_now_s(), win_loss = 0, win_gn = 0, win_time = 0, session_time = 0;
    int64_t win_steps = 0, win_utts = 0, win_tok = 0, win_skip = 0, session_tok = 0;
    status = 0;
    const int64_t first_step = s.step;
    while (s.step < stop_at) {
        const double t0 = acmt_now_s();
        if (s.bpos == s.nb) {
            s.epoch++;
            s.bpos = 0;
            s.nb = acmt_batches_epoch(train.tokens, n, batch_params(&cfg), &s.rng_order, order, bstart, perm);
        }
        const int64_t b0 = bstart[perm[s.bpos]], nbat = bstart[perm[s.bpos] + 1] - b0;
        s.bpos++;
        int64_t step_tok = 0;
        if (acmt_speech_utts_read(&train, cfg.corpus, order + b0, (int)nbat, cfg.stack, buf, tmp, fr, tok, lab, nl, err,
                       sizeof err)) {
            fprintf(stderr, "\n" ME ": %s\n", err);
            status = 1;
            break;
        }
        for (int b = 0; b < nbat; b++) {
            spec_augment((float *)fr[b], tok[b] * cfg.stack, mel_mean, &cfg, &s.rng_aug);
            step_tok += tok[b];
        }
        if (acmt_speech_forward(sp, fr, tok, (int)nbat, err, sizeof err)) {
            fprintf(stderr, "\n" ME ": %s\n", err);
            status = 1;
            break;
        }
        int skipped = 0;
        const double loss = acmt_speech_backward(sp, lab, nl, &skipped);
        const double gn = acmt_clip_grad_norm(sp->grads, sp->nparams, cfg.grad_clip);
        opt.lr = acmt_lr_schedule(s.step, total, cfg.warmup_steps, (float)cfg.lr, (float)cfg.lr_min);
        for (int i = 0; i < sp->ntab; i++) {
            const acmt_param *p = &sp->tab[i];
            if (acmt_speech_trainable(sp, i))
                acmt_adamw_update(&opt, sp->params + p->offset, sp->grads + p->offset, sp->m + p->offset,
                                  sp->v + p->offset, p->numel, s.step + 1, p->decay);
        }
        s.step++;
        const double dt = acmt_now_s() - t0;
        s.train_seconds += dt;
        session_time += dt;
        session_tok += step_tok;
        win_loss += loss;
        win_gn += gn;
        win_steps++;
        win_utts += nbat;
        win_tok += step_tok;
        win_skip += skipped;
        win_time += dt;
        if (!isfinite(loss)) {
            fprintf(stderr, "\n" ME ": loss is %g at step %lld; stopping (checkpoint kept as it was)\n", loss,
                    (long long)s.step);
            status = 1;
            break;
        }
        const int end_of_epoch = s.bpos == s.nb || s.step == total;
        if (s.step % cfg.log_every == 0 || end_of_epoch || s.step == stop_at) {
            val_result vr = {NAN, NAN, NAN};
            if (end_of_epoch && s.step != total) { /* the last one is the final validation below */
                if (validate(sp, &val, &cfg, buf, tmp, &vr, err, sizeof err)) {
                    fprintf(stderr, "\n" ME ": validation: %s\n", err);
                    status = 1;
                    break;
                }
                if (s.best_val_cer < 0 || vr.cer < s.best_val_cer) s.best_val_cer = vr.cer;
                acmt_progress_note(&prog, "epoch %lld: val loss %.4f, CER %.2f%%, WER %.2f%% (greedy)",
                                   (long long)s.epoch + 1, vr.loss, 100 * vr.cer, 100 * vr.wer);
            }
            fprintf(csv, "%lld,%.4f,%lld,%lld,%.6g,%.6f,%.4f,%.1f,%.1f,%lld,", (long long)s.step,
                    (double)s.epoch + (double)s.bpos / (double)s.nb, (long long)win_utts, (long long)win_tok, opt.lr,
                    win_loss / win_steps, win_gn / win_steps, win_tok / win_time, s.train_seconds,
                    (long long)win_skip);
            if (isfinite(vr.loss)) fprintf(csv, "%.6f,%.6f,%.6f\n", vr.loss, vr.cer, vr.wer);
            else fprintf(csv, ",,\n");
            fflush(csv);
            win_loss = win_gn = win_time = 0;
            win_steps = win_utts = win_tok = win_skip = 0;
        }
        acmt_progress_update(&prog, s.step, total, loss, 0, (double)session_tok / session_time,
                             (double)(total - s.step) * session_time / (double)(s.step - first_step));
        if (sigterm_at >= 0 && s.step == sigterm_at) raise(SIGTERM);
        if (acmt_stop_signal || s.step == stop_at || acmt_now_s() - last_ckpt >= cfg.ckpt_every_s) {
            json_t *st = state_json(&s, &cfg);
            if (acmt_ckpt_write(ckpt_path, ce, 5, st, err, sizeof err)) {
                fprintf(stderr, "\n" ME ": checkpoint: %s\n", err);
                status = 1;
            }
            json_decref(st);
            last_ckpt = acmt_now_s();
        }
        if (acmt_stop_signal) {
            acmt_progress_note(&prog, "signal %d: stopped at step %lld; checkpoint %s; continue with --resume",
                               (int)acmt_stop_signal, (long long)s.step, ckpt_path);
            break;
        }
    }
    acmt_progress_end(&prog);
    acmt_signals_restore(&sigs);

    if (status == 0 && !acmt_stop_signal && s.step == total && !no_final) {
        val_result vr;
        if (validate(sp, &val, &cfg, buf, tmp, &vr, err, sizeof err)) {
            fprintf(stderr, ME ": validation: %s\n", err);
            status = 1;
            goto done;
        }
        fprintf(csv, "%lld,%.4f,0,0,,,,,%.1f,0,%.6f,%.6f,%.6f\n", (long long)s.step, (double)cfg.epochs,
                s.train_seconds, vr.loss, vr.cer, vr.wer);
        char extra[1024];
        snprintf(extra, sizeof extra,
                 "{\"train\": {\"command\": \"acm-train speech-base\", \"steps\": %lld, \"epochs\": %d, "
                 "\"seed\": %lld, "
                 "\"train_seconds\": %.1f, \"train_utterances\": %lld, \"val_utterances\": %lld, \"val_loss\": %.6f, "
                 "\"val_cer_greedy\": %.6f, \"val_wer_greedy\": %.6f}}",
                 (long long)s.step, cfg.epochs, (long long)cfg.seed, s.train_seconds, (long long)n, (long long)val.n,
                 vr.loss, vr.cer, vr.wer);
        if (acmt_speech_save_model(sp, out, extra, err, sizeof err)) {
            fprintf(stderr, ME ": %s\n", err);
            status = 1;
        } else if (!quiet) {
            fprintf(stderr, ME ": wrote %s: val loss %.4f, CER %.2f%%, WER %.2f%% (greedy), %.1f s of training\n",
                    out, vr.loss, 100 * vr.cer, 100 * vr.wer, s.train_seconds);
        }
    }
done:
    if (csv) fclose(csv);
    acmt_speech_free(sp);
    acmt_speech_utts_free(&train);
    acmt_speech_utts_free(&val);
    free(order);
    free(perm);
    free(bstart);
    free(idx);
    free(tok);
    free(fr);
    free(lab);
    free(nl);
    free(buf);
    free(tmp);
    return status;
}
