/*
 * speech_eval.c — error rates of a speech model on a corpus split (see speech_eval.h). Utterances go through the
 * forward in packed batches in manifest order; each one's logits are decoded by a greedy decoder and, with a beam,
 * by a prefix-beam decoder (engine/ctc.h); the hypotheses are scored against the transcripts by wer.c.
 */
#include "train/speech_eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "audio.h"
#include "ctc.h"
#include "safetensors.h"
#include "train/speech_student.h"
#include "vit.h"
#include "train/speech_corpus.h"
#include "train/speech_train.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The trainer's configuration of a speech model file, and its weights. */
static acmt_speech *load_model(const char *path, int max_items, int64_t max_rows, char *err, size_t errlen) {
    acm_model *m = acm_model_load(path, err, errlen);
    if (!m) return NULL;
    const acm_config *c = acm_model_config(m);
    if (c->arch != ACM_ARCH_SPEECH || c->num_acms) {
        snprintf(err, errlen, "%s: %s", path,
                 c->arch != ACM_ARCH_SPEECH ? "not a speech model" : "a model with ACM modules (static models only)");
        acm_model_free(m);
        return NULL;
    }
    acmt_speech_config sc = {.n_mels = c->n_mels, .stack = c->stack, .dim = c->dim, .depth = c->depth,
                             .heads = c->heads, .mlp_hidden = c->mlp_hidden, .chunk = c->chunk,
                             .left_context = c->left_context, .rope_base = c->rope_base, .ln_eps = c->ln_eps};
    for (int k = 1; k < c->num_classes && k < (int)sizeof sc.alphabet; k++) sc.alphabet[k - 1] = c->labels[k][0];
    acm_model_free(m);
    acmt_speech *s = acmt_speech_new(&sc, max_items, max_rows, max_rows, 0, err, errlen);
    if (!s) return NULL;
    acm_st_file f;
    if (acm__st_open(&f, path, err, errlen)) {
        acmt_speech_free(s);
        return NULL;
    }
    for (int i = 0; i < s->ntab; i++) {
        const acm_st_tensor *t = acm__st_find(&f, s->tab[i].name);
        if (!t || t->numel != s->tab[i].numel) { /* the loader checked them: a static speech model has these */
            snprintf(err, errlen, "%s: tensor '%s' missing or of the wrong size", path, s->tab[i].name);
            acm__st_close(&f);
            acmt_speech_free(s);
            return NULL;
        }
        memcpy(s->params + s->tab[i].offset, t->data, sizeof(float) * (size_t)t->numel);
    }
    acm__st_close(&f);
    return s;
}

int acmt_parse_budgets(const char *list, double *out, int max, char *err, size_t errlen) {
    char bl[256];
    snprintf(bl, sizeof bl, "%s", list);
    int n = 0;
    for (char *sv = NULL, *t = strtok_r(bl, ",", &sv); t; t = strtok_r(NULL, ",", &sv)) {
        char *e;
        const double b = strtod(t, &e);
        if (*e || !(b > 0 && b <= 1) || n == max) {
            snprintf(err, errlen, "'%s' is not a budget in (0, 1] (at most %d)", t, max);
            return -1;
        }
        out[n++] = b;
    }
    if (!n) snprintf(err, errlen, "no budget in '%s'", list);
    return n ? n : -1;
}

const char *acmt_ctc_text(const acm_ctc_result *res, char *out, size_t cap) {
    size_t n = (size_t)res->len < cap - 1 ? (size_t)res->len : cap - 1;
    memcpy(out, res->text, n);
    while (n && out[n - 1] == ' ') n--;
    out[n] = 0;
    return out;
}

/* A recording of the corpus's real split as 16 kHz PCM (*pcm malloc'd); ".raw" files are 16 kHz s16le. */
static int read_recording(const char *dir, const acms_utt *u, float **pcm, size_t *n, char *err, size_t errlen) {
    if (strcmp(u->engine, "real")) {
        snprintf(err, errlen, "utterance %s is synthetic: the corpus keeps no audio of it", u->id);
        return -1;
    }
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, u->voice);
    size_t len;
    uint8_t *b = acms_read_file(path, &len);
    if (!b) {
        snprintf(err, errlen, "cannot read %s", path);
        return -1;
    }
    const char *dot = strrchr(path, '.');
    const acm_audio_format raw = {.kind = ACM_AUDIO_S16LE, .rate = 16000, .channels = 1};
    char msg[256];
    int rc = acm_audio_decode(dot && !strcmp(dot, ".raw") ? &raw : NULL, b, len, acm_audio_default_params(),
                              pcm, n, msg, sizeof msg);
    free(b);
    if (rc) snprintf(err, errlen, "%s: %s", path, msg);
    return rc ? -1 : 0;
}

static acmt_speaker_wer *speaker_of(acmt_speech_eval_result *r, const char *name, int cap) {
    for (int i = 0; i < r->n_speakers; i++)
        if (!strcmp(r->speakers[i].speaker, name)) return &r->speakers[i];
    if (r->n_speakers == cap) return NULL;
    acmt_speaker_wer *w = &r->speakers[r->n_speakers++];
    memset(w, 0, sizeof *w);
    snprintf(w->speaker, sizeof w->speaker, "%s", name);
    return w;
}

int acmt_speech_eval(const char *model_path, const acmt_speech_eval_params *p, acmt_speech_eval_result *r, char *err,
                     size_t errlen) {
    memset(r, 0, sizeof *r);
    acms_utt *utts = NULL;
    size_t n = 0;
    if (acms_load_split(p->corpus, p->split, &utts, &n, err, errlen)) return -1;
    if (p->limit > 0 && (size_t)p->limit < n) n = (size_t)p->limit;
    const int max_items = 64;
    int64_t maxf = 0;
    for (size_t i = 0; i < n; i++) maxf = utts[i].frames > maxf ? utts[i].frames : maxf;
    acmt_speech *s = NULL;
    acm_ctc_decoder *greedy = NULL, *beam = NULL;
    acm_ctc_lexicon *lex = NULL;
    float *buf = NULL, *tmp = NULL, *elog = NULL, *pcm = NULL;
    acm_model *em = NULL;
    acm_worker *ew = NULL;
    int rc = -1;
    char *msg = err;
    int64_t rows = p->batch_tokens > 0 ? p->batch_tokens : 4000;
    acmt_speech_student *st = NULL;
    const acm_policy pol = p->policy ? *p->policy : acm_policy_default();
    if (!(em = acm_model_load(model_path, err, errlen))) goto done;
    const acm_config *ec = acm_model_config(em);
    if (ec->arch != ACM_ARCH_SPEECH) {
        snprintf(err, errlen, "%s: not a speech model", model_path);
        goto done;
    }
    if (ec->stack > 0 && maxf / ec->stack > rows) rows = maxf / ec->stack; /* one utterance always fits */
    if (ec->num_acms) {
        if (!(st = acmt_speech_student_load(model_path, max_items, rows, err, errlen))) goto done;
        s = st->sp;
        acm_worker_params wp = acm_worker_default_params();
        wp.max_batch = 1;
        wp.max_tokens = (int)(rows > maxf / ec->stack + 64 ? rows : maxf / ec->stack + 64);
        if (!(ew = acm_worker_new(em, wp, err, errlen))) goto done;
        acmt_speech_student_set_policy(st, em, acm__worker_scratch(ew), pol);
        /* the engine's own check of the policy (a budget below beta_min, MEAN without a table): one empty item */
        acm_item probe = {.kind = ACM_ITEM_AUDIO, .pcm = (const float[1]){0}, .samples = 0, .policy = pol};
        float none[1];
        acm_result pr = {.logits = none}; /* no tokens: nothing is written */
        if (acm_worker_run(ew, &probe, &pr, 1, err, errlen)) goto done;
    } else {
        acm_model_free(em);
        em = NULL;
        if (!(s = load_model(model_path, max_items, rows, err, errlen))) goto done;
    }
    const int S = s->cfg.stack, K = s->K;
    r->budget_min = INFINITY;
    r->budget_max = -INFINITY;
    acm_ctc_alphabet a;
    if (acm_ctc_alphabet_init_blank_first(&a, s->cfg.alphabet, err, errlen)) goto done;
    acm_ctc_params gp = acm_ctc_default_params();
    gp.frame_seconds = 0.01 * S;
    if (!(greedy = acm_ctc_decoder_new(&a, gp, err, errlen))) goto done;
    if (p->beam > 0) {
        acm_ctc_params bp = gp;
        bp.mode = ACM_CTC_BEAM;
        bp.beam = p->beam;
        if (p->words) { /* the beam spells only words of the list (engine/ctc.h) */
            size_t len;
            char *text = (char *)acms_read_file(p->words, &len);
            if (!text) {
                snprintf(err, errlen, "cannot read %s", p->words);
                goto done;
            }
            char why[256];
            lex = acm_ctc_lexicon_parse(&a, text, len, why, sizeof why);
            free(text);
            if (!lex) {
                snprintf(err, errlen, "%s: %s", p->words, why);
                goto done;
            }
            bp.lexicon = lex;
        }
        if (!(beam = acm_ctc_decoder_new(&a, bp, err, errlen))) goto done;
    }
    buf = malloc(sizeof(float) * (size_t)(rows * S * ACMS_MELS));
    tmp = malloc(sizeof(float) * (size_t)((maxf + 1) * ACMS_MELS));
    r->speakers = calloc(n ? n : 1, sizeof *r->speakers);
    if (p->audio_dir && !ew) { /* the server's path: the model file loaded by the engine, one worker */
        if (!(em = acm_model_load(model_path, err, errlen))) goto done;
        acm_worker_params wp = acm_worker_default_params();
        wp.max_batch = 1;
        wp.max_tokens = (int)(maxf / S + 64);
        if (!(ew = acm_worker_new(em, wp, err, errlen))) goto done;
        elog = malloc(sizeof(float) * (size_t)((maxf / S + 64) * K));
    }
    if (!buf || !tmp || !r->speakers || (p->audio_dir && !elog)) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    const float *fr[64];
    int64_t tok[64];
    size_t idx[64];
    const double t0 = now_s();
    const double tok_flops = acmt_speech_token_flops(&s->cfg);
    for (size_t i = 0; i < n;) {
        int nb = 0;
        int64_t at = 0;
        while (i < n && nb < max_items) {
            const int64_t T = utts[i].frames / S;
            if (nb && at + T > rows) break;
            if (acms_read_frames(p->corpus, p->split, &utts[i], tmp, err, errlen)) goto done;
            memcpy(buf + at * S * ACMS_MELS, tmp, sizeof(float) * (size_t)(T * S * ACMS_MELS));
            fr[nb] = buf + at * S * ACMS_MELS;
            tok[nb] = T;
            idx[nb++] = i++;
            at += T;
        }
        if (st ? acmt_speech_student_forward(st, fr, tok, nb, err, errlen) : acmt_speech_forward(s, fr, tok, nb, err,
                                                                                                   errlen))
            goto done;
        /* attention FLOPs of every chunk (QKᵀ and A·V), as the engine counts them (ACM models: per item below) */
        for (int u = 0; !st && u < s->U; u++) {
            const double Tq = (double)(s->unit_off[u + 1] - s->unit_off[u]), nk = (double)(s->unit_off[u + 1] -
                                                                                         s->unit_key0[u]);
            r->flops += 4.0 * Tq * nk * s->cfg.dim * s->cfg.depth;
        }
        for (int b = 0; b < nb; b++) {
            const acms_utt *u = &utts[idx[b]];
            const float *z = s->logits + s->item_off[b] * K;
            acm_ctc_result g, h;
            char text[1100];
            for (const char *q = u->text; *q; q++)
                if (!strchr(s->cfg.alphabet, *q)) {
                    snprintf(err, errlen, "%s/%s: utterance %s: transcript character '%c' not in the model's alphabet",
                             p->corpus, p->split, u->id, *q);
                    goto done;
                }
            if (p->audio_dir) { /* the same utterance from its recording through acm_worker_run; its logits are decoded */
                size_t ns = 0;
                free(pcm);
                pcm = NULL;
                if (read_recording(p->audio_dir, u, &pcm, &ns, err, errlen)) goto done;
                acm_item it = {.kind = ACM_ITEM_AUDIO, .pcm = pcm, .samples = (int64_t)ns, .policy = pol};
                acm_result res = {.logits = elog};
                if (acm_worker_run(ew, &it, &res, 1, err, errlen)) goto done;
                if (res.tokens != tok[b]) {
                    snprintf(err, errlen, "%s: %d tokens from the recording, %lld from the corpus's frames", u->id,
                             res.tokens, (long long)tok[b]);
                    goto done;
                }
                for (int64_t j = 0; j < tok[b] * K; j++) {
                    const double d = fabs((double)elog[j] - z[j]);
                    if (d > r->engine_max_diff) r->engine_max_diff = d;
                }
                z = elog;
            }
            if (acm_ctc_decode(greedy, z, tok[b], K, &g, err, errlen)) goto done;
            acmt_speaker_wer *sw = speaker_of(r, u->speaker, (int)n);
            acmt_ctc_text(&g, text, sizeof text);
            if (acmt_wer_add(&r->greedy, u->text, text) || acmt_wer_add(&sw->greedy, u->text, text)) goto oom;
            if (p->on_utt) {
                acmt_speech_utt_view v = {.utt = u, .frames = fr[b], .tokens = tok[b], .stack = S, .greedy = text,
                                          .n_acm = st ? (st->n_acm < ACMT_EVAL_MAX_ACMS ? st->n_acm
                                                                                      : ACMT_EVAL_MAX_ACMS) : 0};
                for (int l = 0; l < v.n_acm; l++) {
                    v.k[l] = st->acts[l].k + st->sp->item_off[b];
                    v.learners[l] = st->L[l].n;
                }
                p->on_utt(p->ctx, &v);
            }
            if (beam) {
                if (acm_ctc_decode(beam, z, tok[b], K, &h, err, errlen)) goto done;
                acmt_ctc_text(&h, text, sizeof text);
                if (acmt_wer_add(&r->beam, u->text, text) || acmt_wer_add(&sw->beam, u->text, text)) goto oom;
            }
            r->utterances++;
            r->tokens += tok[b];
            r->audio_seconds += (double)u->samples / 16000.0;
            const double budget = st ? acmt_speech_student_item_budget(st, b) : 1.0;
            r->flops += st ? acmt_speech_student_item_flops(st, b) : tok_flops * (double)tok[b];
            r->budget_mean += budget;
            for (int l = 0; st && l < st->n_acm && l < ACMT_EVAL_MAX_ACMS; l++) {
                double ks = 0;
                for (int64_t t = 0; t < tok[b]; t++) ks += st->acts[l].k[st->sp->item_off[b] + t];
                r->acm_frac[l] += tok[b] ? ks / ((double)tok[b] * st->L[l].n) : 0;
            }
            r->budget_min = budget < r->budget_min ? budget : r->budget_min;
            r->budget_max = budget > r->budget_max ? budget : r->budget_max;
        }
    }
    r->seconds = now_s() - t0;
    r->budget_mean = r->utterances ? r->budget_mean / (double)r->utterances : 0;
    for (int l = 0; r->utterances && l < ACMT_EVAL_MAX_ACMS; l++) r->acm_frac[l] /= (double)r->utterances;
    if (!r->utterances) r->budget_min = r->budget_max = 0;
    rc = 0;
    goto done;
oom:
    snprintf(msg, errlen, "out of memory");
done:
    if (rc) {
        free(r->speakers);
        r->speakers = NULL;
    }
    acm_ctc_decoder_free(greedy);
    acm_ctc_decoder_free(beam);
    acm_ctc_lexicon_free(lex);
    acm_worker_free(ew);
    acm_model_free(em);
    free(elog);
    free(pcm);
    if (st) acmt_speech_student_free(st);
    else acmt_speech_free(s);
    free(buf);
    free(tmp);
    free(utts);
    return rc;
}
