/*
 * acmize.c — `acm-train acmize`: turns a trained static ViT into an ACM model with the paper's three phases
 * (docs/METHOD.md §3-5). A speech base model (arch "speech") goes to cmd_speech_acmize.c instead.
 *
 *   phase 1  module-wise distillation: the frozen teacher runs on augmented training batches; every ACM's learners
 *            learn its module's output o from its input z (both from the teacher's activation record, on the fly),
 *            loss = mean over k of MSE(h(z, k), o) with "detach" gradients. All ACMs in one pass over the data, each
 *            with its own gradient clip. Adam, cosine schedule.
 *   phase 2  gate pre-training, learners frozen: labels from the 1.2 improvement-factor rule on the learners' errors,
 *            cross-entropy on the gate's logits. Adam, cosine.
 *   phase 3  end-to-end fine-tuning of every parameter: hard Gumbel-softmax gates (tau 0.8, straight-through, the task
 *            loss reaching the gates), loss = CE (label smoothing) + w_b L_b + w_e L_e + w_d L_d [+ with
 *            --distill W,T: W T² KL(teacher ‖ student) on the logits, train/distill.h]. Adam, cosine (--gate-lr-mult:
 *            the gates' rate times M), global clip.
 * A checkpoint (train/ckpt.h) holds the phase, its step, every parameter and Adam moment, the epoch permutation and
 * the RNG streams; it is written every --ckpt-every seconds, at phase ends and on SIGINT/SIGTERM; --resume continues.
 * The CSV log has one row per log interval: phase, step, loss terms, learner errors (phase 1), gate accuracy against
 * its labels (phase 2), realised budget and accuracy (phase 3), the distillation term (last column; 0 without
 * --distill); OUT.khist.csv holds phase-3 k histograms per module.
 * Not done (stated in the model card): mixup/cutmix of the authors' phase 3 (we keep the base training's crop, flip
 * and erasing).
 *
 * --film (budget-conditioned gates, docs/METHOD.md §6): every gate gets a FiLM scale and shift on its second hidden
 * layer (train/acm_module.h), 0 at the start of phase 3, trained in phase 3 only, with the batch's budget target
 * (--beta, or the per-batch draw of --beta-sample) fed to every gate; they join the global clip and Adam. They live in
 * the checkpoint as film_params/film_m/film_v, optional on read, so phase 3 with --film can resume from a phase-1/2
 * checkpoint written without it. The model file gets NAME.gate.film.scale/.shift and budget.gate_beta (the beta the
 * gates see under the ARGMAX policy: --beta, or the midpoint of the --beta-sample range).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "kernels.h"
#include "train/acm_student.h"
#include "train/ckpt.h"
#include "train/commands.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/optim.h"
#include "train/progress.h"
#include "train/rng.h"
#include "train/run_common.h"
#include "train/vit_train.h"

typedef struct {
    char base[1024], out[1024], ckpt[1100], csv[1100], data_dir[1024], modules[64];
    int learners, gate_hidden, batch, threads, init_teacher, uniform_k, keep_phase_ckpts, film;
    double beta_lo, beta_hi; /* phase 3: beta drawn per batch from [beta_lo, beta_hi] when beta_hi > 0 */
    double epochs[3], lr[3], lr_min[3], clip;
    double beta, w_b, w_e, w_d, tau, smoothing;
    double distill_w, distill_t; /* phase 3: + distill_w T² KL(teacher ‖ student) at temperature T (0: off) */
    double gate_lr_mult;         /* phase 3: the gates' (and FiLM's) learning rate = lr · gate_lr_mult */
    int val_size, train_limit, log_every;
    int64_t seed, split_seed, max_steps, phase3_seed; /* phase3_seed < 0: keep the checkpoint's streams */
    double ckpt_every_s;
} acmz_cfg;

static acmz_cfg cfg_default(void) {
    acmz_cfg c;
    memset(&c, 0, sizeof c);
    snprintf(c.data_dir, sizeof c.data_dir, "/usr/share/datasets/fashion-mnist");
    snprintf(c.modules, sizeof c.modules, "q,k,v,o,mlp");
    c.learners = 4, c.gate_hidden = 16, c.batch = 64, c.threads = 2, c.init_teacher = 1;
    c.epochs[0] = 2, c.epochs[1] = 1, c.epochs[2] = 3;
    c.lr[0] = 1e-3, c.lr[1] = 1e-2, c.lr[2] = 1e-4;
    c.lr_min[0] = 1e-6, c.lr_min[1] = 1e-6, c.lr_min[2] = 1e-6;
    c.distill_t = 1.0, c.gate_lr_mult = 1.0;
    c.clip = 1.0, c.beta = 0.5, c.w_b = 0.1, c.w_e = 0.05, c.w_d = 0.05, c.tau = 0.8, c.smoothing = 0.1;
    c.val_size = 5000, c.split_seed = 0, c.seed = 1, c.phase3_seed = -1, c.log_every = 25, c.ckpt_every_s = 300;
    return c;
}

static json_t *cfg_json(const acmz_cfg *c) {
    json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:s, s:[f,f,f], s:[f,f,f], s:[f,f,f], s:f, s:f, s:f, s:f, "
                     "s:f, s:f, s:f, s:i, s:i, s:I, s:I}",
                     "base", c->base, "modules", c->modules, "learners", c->learners, "gate_hidden", c->gate_hidden,
                     "batch", c->batch, "threads", c->threads, "init", c->init_teacher ? "teacher" : "random",
                     "epochs", c->epochs[0], c->epochs[1], c->epochs[2], "lr", c->lr[0], c->lr[1], c->lr[2], "lr_min",
                     c->lr_min[0], c->lr_min[1], c->lr_min[2], "clip", c->clip, "beta_target", c->beta, "w_budget",
                     c->w_b, "w_entropy", c->w_e, "w_diversity", c->w_d, "tau", c->tau, "label_smoothing",
                     c->smoothing, "val_size", c->val_size, "train_limit", c->train_limit, "seed",
                     (json_int_t)c->seed, "split_seed", (json_int_t)c->split_seed);
    if (c->beta_hi > 0) json_object_set_new(o, "beta_sample", json_pack("[f,f]", c->beta_lo, c->beta_hi));
    if (c->uniform_k > 0) json_object_set_new(o, "uniform_k", json_integer(c->uniform_k));
    if (c->phase3_seed >= 0) json_object_set_new(o, "phase3_seed", json_integer(c->phase3_seed));
    if (c->film) json_object_set_new(o, "film", json_true());
    if (c->distill_w > 0) json_object_set_new(o, "distill", json_pack("[f,f]", c->distill_w, c->distill_t));
    if (c->gate_lr_mult != 1) json_object_set_new(o, "gate_lr_mult", json_real(c->gate_lr_mult));
    return o;
}

static void usage(FILE *f) {
    acmz_cfg d = cfg_default();
    fprintf(f,
            "usage: acm-train acmize --base STATIC.safetensors --out ACM.safetensors [options]\n"
            "  --ckpt PATH            checkpoint (default OUT.ckpt)      --csv PATH   log (default OUT.csv)\n"
            "  --resume               continue from --ckpt\n"
            "  --modules LIST         positions to replace, subset of q,k,v,o,mlp or 'all' (default %s)\n"
            "  --learners N           learners per ACM (default %d)\n"
            "  --gate-hidden H        gate hidden width (default %d)\n"
            "  --init teacher|random  MLP learners from the teacher's MLP, or random (default teacher)\n"
            "  --epochs P1,P2,P3      epochs of each phase (default %g,%g,%g; fractions allowed)\n"
            "  --lr P1,P2,P3          peak learning rates (default %g,%g,%g), cosine to 1e-6\n"
            "  --beta B               phase-3 budget target (default %g)\n"
            "  --beta-sample LO:HI    phase 3 draws the budget target per batch, uniformly in [LO, HI]\n"
            "  --uniform K            phase 3 without gates: every token runs K learners (the uniform baseline)\n"
            "  --film                 budget-conditioned gates: phase 3 trains a FiLM scale and shift per gate, fed\n"
            "                         the batch's budget target (off; a phase-2 checkpoint without them resumes)\n"
            "  --keep-phase-ckpts     keep a copy of the checkpoint at the end of each phase (CKPT.phaseN), to\n"
            "                         start several phase-3 variants from the same phases 1-2 (--resume --ckpt COPY)\n"
            "  --weights WB,WE,WD     budget, entropy, diversity loss weights (default %g,%g,%g)\n"
            "  --distill W[,T]        phase 3 adds W T^2 KL(teacher || student) on the logits at temperature T\n"
            "                         (the base model is the teacher; default off, T 1)\n"
            "  --gate-lr-mult M       phase 3: the gates' learning rate is M times the learners' (default 1)\n"
            "  --batch N              (default %d)   --threads N   OpenBLAS threads (default %d)\n"
            "  --seed N               (default %lld)  --train-limit N   use N training images (smoke tests)\n"
            "  --phase3-seed N        when a run resumes at the start of phase 3, reseed its order, augmentation\n"
            "                         and Gumbel streams from N (phase-3 variants of one checkpoint with their own seed)\n"
            "  --val-size N           validation images held out as in base training (default %d)\n"
            "  --max-steps N          stop with a checkpoint after N steps in total (0: run to the end)\n"
            "  --ckpt-every S         seconds between checkpoints (default %g)\n"
            "  --log-every N          steps between CSV rows (default %d)\n"
            "  --data DIR             Fashion-MNIST folder (default %s)\n"
            "  --quiet\n",
            d.modules, d.learners, d.gate_hidden, d.epochs[0], d.epochs[1], d.epochs[2], d.lr[0], d.lr[1], d.lr[2],
            d.beta, d.w_b, d.w_e, d.w_d, d.batch, d.threads, (long long)d.seed, d.val_size, d.ckpt_every_s,
            d.log_every, d.data_dir);
}

static int parse3(const char *s, double out[3]) {
    char *e;
    for (int i = 0; i < 3; i++) {
        out[i] = strtod(s, &e);
        if (e == s || !(out[i] >= 0) || !isfinite(out[i])) return -1;
        if (i < 2) {
            if (*e != ',') return -1;
            s = e + 1;
        }
    }
    return *e ? -1 : 0;
}

/* ---- state ------------------------------------------------------------------------------------------------------ */

typedef struct {
    int phase;           /* 1, 2, 3; 4 = done */
    int64_t step;        /* within the phase */
    int64_t total_steps; /* over all phases, this run and earlier ones */
    int64_t epoch, pos;
    acmt_rng order, aug, gumbel;
    double seconds[3];
} acmz_state;

static json_t *state_json(const acmz_state *s, const acmz_cfg *c) {
    char h1[65], h2[65], h3[65];
    acmt_rng_to_hex(&s->order, h1);
    acmt_rng_to_hex(&s->aug, h2);
    acmt_rng_to_hex(&s->gumbel, h3);
    json_t *o = json_pack("{s:s, s:i, s:I, s:I, s:I, s:I, s:s, s:s, s:s, s:[f,f,f], s:s}", "kind", "acmize", "phase",
                          s->phase, "step", (json_int_t)s->step, "total_steps", (json_int_t)s->total_steps, "epoch",
                          (json_int_t)s->epoch, "pos", (json_int_t)s->pos, "rng_order", h1, "rng_aug", h2,
                          "rng_gumbel", h3, "seconds", s->seconds[0], s->seconds[1], s->seconds[2], "blas_core",
                          acm_blas_core());
    json_object_set_new(o, "config", cfg_json(c));
    return o;
}

static int state_from_json(acmz_state *s, const json_t *o) {
    json_t *sec = json_object_get(o, "seconds");
    if (!json_is_integer(json_object_get(o, "phase")) || !json_is_integer(json_object_get(o, "step")) ||
        acmt_rng_from_hex(&s->order, json_string_value(json_object_get(o, "rng_order"))) ||
        acmt_rng_from_hex(&s->aug, json_string_value(json_object_get(o, "rng_aug"))) ||
        acmt_rng_from_hex(&s->gumbel, json_string_value(json_object_get(o, "rng_gumbel"))))
        return -1;
    s->phase = (int)json_integer_value(json_object_get(o, "phase"));
    s->step = json_integer_value(json_object_get(o, "step"));
    s->total_steps = json_integer_value(json_object_get(o, "total_steps"));
    s->epoch = json_integer_value(json_object_get(o, "epoch"));
    s->pos = json_integer_value(json_object_get(o, "pos"));
    for (int i = 0; i < 3; i++) s->seconds[i] = json_number_value(json_array_get(sec, i));
    return 0;
}

/* ---- the run ---------------------------------------------------------------------------------------------------- */

typedef struct {
    acmz_cfg cfg;
    acmz_state st;
    acmt_vit *teacher;
    acmt_student *s;
    acmt_images train, val;
    int32_t *order;
    float *x, *tmp, *loss_rows;
    float *kd_grad; /* [batch, K] the distillation term's gradient at the student's logits (--distill) */
    int32_t *y, *labels;
    acmt_progress prog;
    FILE *csv, *khist;
    int quiet;
} acmz_run;

static int64_t phase_steps(const acmz_run *r, int phase) {
    int64_t spe = r->train.n / r->cfg.batch;
    int64_t n = (int64_t)llround(r->cfg.epochs[phase - 1] * (double)spe);
    return n;
}

/* The next training batch (augmented), advancing the epoch permutation. */
static void next_batch(acmz_run *r) {
    const int B = r->cfg.batch;
    if (r->st.pos + B > r->train.n) {
        r->st.epoch++;
        r->st.pos = 0;
        for (int64_t i = 0; i < r->train.n; i++) r->order[i] = (int32_t)i;
        acmt_rng_shuffle(&r->st.order, r->order, r->train.n);
    }
    acmt_augment aug = acmt_augment_default();
    acmt_make_batch(r->x, r->y, &r->train, r->order + r->st.pos, B, &aug, &r->st.aug);
    r->st.pos += B;
}

/* Teacher input z and output o of ACM a from the teacher's activation record (o may be computed into r->tmp). */
static void teacher_io(acmz_run *r, int a, int B, const float **z, int *ldz, const float **o, int *ldo) {
    const acmt_student *s = r->s;
    acmt_vit *t = r->teacher;
    const int D = t->cfg.dim, l = (int)s->blk_of[a], p = s->pos_of[a];
    const int64_t BT = (int64_t)B * t->T;
    const acm__block_acts *ba = &t->blk[l];
    char nm[64];
    switch (p) {
    case ACM_POS_Q:
    case ACM_POS_K:
    case ACM_POS_V:
        *z = ba->ln1, *ldz = D, *o = ba->qkv + p * D, *ldo = 3 * D;
        return;
    case ACM_POS_O: {
        snprintf(nm, sizeof nm, "blocks.%d.attn.proj.weight", l);
        const float *w = acmt_vit_param(t, t->params, nm);
        snprintf(nm, sizeof nm, "blocks.%d.attn.proj.bias", l);
        acm__matmul_forward(r->tmp, D, ba->attn_y, D, w, D, acmt_vit_param(t, t->params, nm), BT, D, D, 0);
        *z = ba->attn_y, *ldz = D, *o = r->tmp, *ldo = D;
        return;
    }
    default: {
        snprintf(nm, sizeof nm, "blocks.%d.mlp.fc2.weight", l);
        const float *w = acmt_vit_param(t, t->params, nm);
        snprintf(nm, sizeof nm, "blocks.%d.mlp.fc2.bias", l);
        const int Hd = t->cfg.mlp_hidden;
        acm__matmul_forward(r->tmp, D, ba->gelu, Hd, w, Hd, acmt_vit_param(t, t->params, nm), BT, Hd, D, 0);
        *z = ba->ln2, *ldz = D, *o = r->tmp, *ldo = D;
        return;
    }
    }
}

/* Adam over [lo, hi) of every ACM's block (phase 1: learners, phase 2: gate), with a per-ACM clip. */
static void update_acms(acmz_run *r, int gate_part, float lr, int64_t t) {
    acmt_student *s = r->s;
    acmt_adamw o = acmt_adamw_default();
    o.lr = lr;
    o.weight_decay = 0;
    for (int a = 0; a < s->n_acm; a++) {
        int64_t lo = s->off[a] + (gate_part ? s->L[a].gate : 0);
        int64_t hi = s->off[a] + (gate_part ? s->L[a].numel : s->L[a].gate);
        acmt_clip_grad_norm(s->ag + lo, hi - lo, r->cfg.clip);
        acmt_adamw_update(&o, s->ap + lo, s->ag + lo, s->am + lo, s->av + lo, hi - lo, t, 0);
    }
}

static int phase1_step(acmz_run *r, float lr, double *loss, double errs_out[17]) {
    char err[256];
    const int B = r->cfg.batch;
    next_batch(r);
    if (acmt_vit_forward(r->teacher, r->x, B, err, sizeof err)) return -1;
    acmt_student *s = r->s;
    memset(s->ag, 0, sizeof(float) * (size_t)s->nparams);
    const int64_t M = (int64_t)B * r->teacher->T;
    double L = 0;
    memset(errs_out, 0, sizeof(double) * 17);
    for (int a = 0; a < s->n_acm; a++) {
        const float *z, *o;
        int ldz, ldo;
        teacher_io(r, a, B, &z, &ldz, &o, &ldo);
        double e[17];
        acmt_acm_learners_forward(&s->acts[a], s->ap + s->off[a], &s->L[a], z, ldz, M);
        L += acmt_acm_distill_backward(s->ag + s->off[a], &s->acts[a], s->ap + s->off[a], &s->L[a], z, ldz, o, ldo,
                                       M, e);
        /* relative error per k, averaged over modules: MSE(k) / MSE(0) */
        for (int k = 0; k <= s->L[a].n && k < 17; k++) errs_out[k] += e[k] / (e[0] > 0 ? e[0] : 1) / s->n_acm;
    }
    update_acms(r, 0, lr, r->st.step + 1);
    *loss = L / s->n_acm;
    return 0;
}

static int phase2_step(acmz_run *r, float lr, double *loss, double *acc) {
    char err[256];
    const int B = r->cfg.batch;
    next_batch(r);
    if (acmt_vit_forward(r->teacher, r->x, B, err, sizeof err)) return -1;
    acmt_student *s = r->s;
    memset(s->ag, 0, sizeof(float) * (size_t)s->nparams);
    const int64_t M = (int64_t)B * r->teacher->T;
    double L = 0, hit = 0;
    for (int a = 0; a < s->n_acm; a++) {
        const float *z, *o;
        int ldz, ldo;
        teacher_io(r, a, B, &z, &ldz, &o, &ldo);
        acmt_acm_acts *ac = &s->acts[a];
        const acmt_acm_layout *L_ = &s->L[a];
        const float *p = s->ap + s->off[a];
        acmt_acm_learners_forward(ac, p, L_, z, ldz, M);
        L += acmt_acm_gate_pretrain(s->ag + s->off[a], r->labels, r->loss_rows, &hit, ac, p, L_, z, ldz, o, ldo, M);
    }
    update_acms(r, 1, lr, r->st.step + 1);
    *loss = L / s->n_acm;
    *acc = hit / ((double)M * s->n_acm);
    return 0;
}

static int phase3_step(acmz_run *r, float lr, double *ce, acmt_aux *aux, double *acc, double *kd) {
    char err[256];
    const int B = r->cfg.batch;
    next_batch(r);
    acmt_student *s = r->s;
    s->train_gates = 1;
    s->tau = (float)r->cfg.tau;
    s->rng = &r->st.gumbel;
    s->uniform_k = r->cfg.uniform_k;
    double beta = r->cfg.beta;
    if (r->cfg.beta_hi > 0) beta = r->cfg.beta_lo + (r->cfg.beta_hi - r->cfg.beta_lo) * acmt_rng_float(&r->st.gumbel);
    s->beta = (float)beta; /* what FiLM gates see */
    if (acmt_student_forward(s, r->x, B, err, sizeof err)) return -1;
    *aux = acmt_student_aux(s, B, beta, r->cfg.w_b, r->cfg.w_e, r->cfg.w_d);
    *kd = 0;
    if (r->cfg.distill_w > 0) { /* the frozen base model's logits on the same batch (train/distill.h) */
        if (acmt_vit_forward(r->teacher, r->x, B, err, sizeof err)) return -1;
        const int K = s->v->cfg.num_classes;
        memset(r->kd_grad, 0, sizeof(float) * (size_t)B * K);
        *kd = acmt_distill_loss(r->kd_grad, s->v->acts.logits, r->teacher->acts.logits, B, K,
                                (float)r->cfg.distill_t, (float)r->cfg.distill_w);
        s->v->extra_dlogits = r->kd_grad;
    }
    int correct = 0;
    *ce = acmt_student_backward(s, r->y, B, (float)r->cfg.smoothing, &correct);
    s->v->extra_dlogits = NULL;
    *acc = (double)correct / B;
    /* one global clip over every trained parameter */
    acmt_vit *v = s->v;
    double n2 = 0;
    for (int64_t i = 0; i < v->nparams; i++) n2 += (double)v->grads[i] * v->grads[i];
    for (int64_t i = 0; i < s->nparams; i++) n2 += (double)s->ag[i] * s->ag[i];
    for (int64_t i = 0; s->film && i < s->nfilm; i++) n2 += (double)s->fg[i] * s->fg[i];
    double norm = sqrt(n2), sc = norm > r->cfg.clip && r->cfg.clip > 0 ? r->cfg.clip / norm : 1.0;
    if (sc < 1.0) {
        for (int64_t i = 0; i < v->nparams; i++) v->grads[i] *= (float)sc;
        for (int64_t i = 0; i < s->nparams; i++) s->ag[i] *= (float)sc;
        for (int64_t i = 0; s->film && i < s->nfilm; i++) s->fg[i] *= (float)sc;
    }
    acmt_adamw o = acmt_adamw_default();
    o.lr = lr;
    o.weight_decay = 0;
    acmt_adamw_update(&o, v->params, v->grads, v->m, v->v, v->nparams, r->st.step + 1, 0);
    if (r->cfg.gate_lr_mult == 1) { /* one call: the same arithmetic as before the option existed */
        acmt_adamw_update(&o, s->ap, s->ag, s->am, s->av, s->nparams, r->st.step + 1, 0);
    } else {
        acmt_adamw og = o;
        og.lr = lr * (float)r->cfg.gate_lr_mult;
        for (int a = 0; a < s->n_acm; a++) { /* ACM a's block: learners [0, gate), gate [gate, numel) */
            int64_t lo = s->off[a], mid = lo + s->L[a].gate, hi = lo + s->L[a].numel;
            acmt_adamw_update(&o, s->ap + lo, s->ag + lo, s->am + lo, s->av + lo, mid - lo, r->st.step + 1, 0);
            acmt_adamw_update(&og, s->ap + mid, s->ag + mid, s->am + mid, s->av + mid, hi - mid, r->st.step + 1, 0);
        }
        o = og; /* FiLM is part of the gates */
    }
    if (s->film) acmt_adamw_update(&o, s->fp, s->fg, s->fm, s->fv, s->nfilm, r->st.step + 1, 0);
    return 0;
}

static int write_ckpt(acmz_run *r, char *err, size_t errlen) {
    acmt_student *s = r->s;
    acmt_vit *v = s->v;
    acmt_ckpt_entry e[] = {
        {"acm_params", 0, s->nparams, s->ap}, {"acm_m", 0, s->nparams, s->am}, {"acm_v", 0, s->nparams, s->av},
        {"params", 0, v->nparams, v->params}, {"adam_m", 0, v->nparams, v->m}, {"adam_v", 0, v->nparams, v->v},
        {"order", 1, r->train.n, r->order},
        {"film_params", 0, s->nfilm, s->fp}, {"film_m", 0, s->nfilm, s->fm}, {"film_v", 0, s->nfilm, s->fv},
    };
    json_t *st = state_json(&r->st, &r->cfg);
    /* without --film the checkpoint is what it was before FiLM existed */
    int n = (int)(sizeof e / sizeof *e) - (s->film ? 0 : 3);
    int rc = acmt_ckpt_write(r->cfg.ckpt, e, n, st, err, errlen);
    json_decref(st);
    return rc;
}

static int read_ckpt(acmz_run *r, char *err, size_t errlen) {
    acmt_student *s = r->s;
    acmt_vit *v = s->v;
    acmt_ckpt_entry e[] = {
        {"acm_params", 0, s->nparams, s->ap}, {"acm_m", 0, s->nparams, s->am}, {"acm_v", 0, s->nparams, s->av},
        {"params", 0, v->nparams, v->params}, {"adam_m", 0, v->nparams, v->m}, {"adam_v", 0, v->nparams, v->v},
        {"order", 1, r->train.n, r->order},
    };
    /* absent from checkpoints written without --film (phases 1-2 of any run): the FiLM then starts at 0 */
    acmt_ckpt_entry f[] = {
        {"film_params", 0, s->nfilm, s->fp}, {"film_m", 0, s->nfilm, s->fm}, {"film_v", 0, s->nfilm, s->fv},
    };
    json_t *st = NULL;
    if (acmt_ckpt_read(r->cfg.ckpt, e, (int)(sizeof e / sizeof *e), &st, err, errlen)) return -1;
    if (s->film && acmt_ckpt_read_optional(r->cfg.ckpt, f, (int)(sizeof f / sizeof *f), NULL, err, errlen)) {
        json_decref(st);
        return -1;
    }
    int rc = state_from_json(&r->st, st);
    int ck_film = json_is_true(json_object_get(json_object_get(st, "config"), "film"));
    json_decref(st);
    if (rc) snprintf(err, errlen, "%.1024s: checkpoint state incomplete", r->cfg.ckpt);
    else if (ck_film && !s->film) {
        snprintf(err, errlen, "%.1024s: the checkpoint was trained with --film; resume it with --film", r->cfg.ckpt);
        rc = -1;
    }
    return rc;
}

static int parse_args(acmz_cfg *c, int *resume, int *quiet, int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
#define NEED_V                                                                \
    if (!v) {                                                                 \
        fprintf(stderr, "acm-train acmize: %s needs a value\n", a);           \
        return 2;                                                             \
    }                                                                         \
    i++;
#define BAD(msg)                                                              \
    do {                                                                      \
        fprintf(stderr, "acm-train acmize: %s: %s\n", a, msg);                \
        return 2;                                                             \
    } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        } else if (!strcmp(a, "--resume")) {
            *resume = 1;
        } else if (!strcmp(a, "--quiet")) {
            *quiet = 1;
        } else if (!strcmp(a, "--base")) {
            NEED_V snprintf(c->base, sizeof c->base, "%s", v);
        } else if (!strcmp(a, "--out")) {
            NEED_V snprintf(c->out, sizeof c->out, "%s", v);
        } else if (!strcmp(a, "--ckpt")) {
            NEED_V snprintf(c->ckpt, sizeof c->ckpt, "%s", v);
        } else if (!strcmp(a, "--csv")) {
            NEED_V snprintf(c->csv, sizeof c->csv, "%s", v);
        } else if (!strcmp(a, "--data")) {
            NEED_V snprintf(c->data_dir, sizeof c->data_dir, "%s", v);
        } else if (!strcmp(a, "--modules")) {
            NEED_V if (acmt_parse_modules(v) < 0) BAD("expected a subset of q,k,v,o,mlp or 'all'");
            snprintf(c->modules, sizeof c->modules, "%s", v);
        } else if (!strcmp(a, "--init")) {
            NEED_V if (strcmp(v, "teacher") && strcmp(v, "random")) BAD("expected teacher or random");
            c->init_teacher = !strcmp(v, "teacher");
        } else if (!strcmp(a, "--epochs")) {
            NEED_V if (parse3(v, c->epochs)) BAD("expected three non-negative numbers P1,P2,P3");
        } else if (!strcmp(a, "--lr")) {
            NEED_V if (parse3(v, c->lr)) BAD("expected three non-negative numbers P1,P2,P3");
        } else if (!strcmp(a, "--weights")) {
            double w[3];
            NEED_V if (parse3(v, w)) BAD("expected three non-negative numbers WB,WE,WD");
            c->w_b = w[0], c->w_e = w[1], c->w_d = w[2];
        } else if (!strcmp(a, "--distill")) {
            NEED_V int n = sscanf(v, "%lf,%lf", &c->distill_w, &c->distill_t);
            if (n == 1) c->distill_t = 1.0;
            if (n < 1 || !(c->distill_w >= 0 && c->distill_w <= 100) || !(c->distill_t > 0 && c->distill_t <= 100))
                BAD("expected W[,T] with W in [0, 100] and T in (0, 100]");
        } else if (!strcmp(a, "--gate-lr-mult")) {
            NEED_V c->gate_lr_mult = strtod(v, &end);
            if (*end || !(c->gate_lr_mult > 0 && c->gate_lr_mult <= 1000)) BAD("expected a number in (0, 1000]");
        } else if (!strcmp(a, "--keep-phase-ckpts")) {
            c->keep_phase_ckpts = 1;
        } else if (!strcmp(a, "--film")) {
            c->film = 1;
        } else if (!strcmp(a, "--beta-sample")) {
            NEED_V if (sscanf(v, "%lf:%lf", &c->beta_lo, &c->beta_hi) != 2 ||
                       !(c->beta_lo > 0 && c->beta_lo < c->beta_hi && c->beta_hi <= 1))
                BAD("expected LO:HI with 0 < LO < HI <= 1");
        } else if (!strcmp(a, "--uniform")) {
            NEED_V c->uniform_k = (int)strtol(v, &end, 10);
            if (*end || c->uniform_k < 1 || c->uniform_k > 16) BAD("expected a number of learners in 1..16");
        } else if (!strcmp(a, "--beta")) {
            NEED_V c->beta = strtod(v, &end);
            if (*end || !(c->beta > 0 && c->beta <= 1)) BAD("expected a number in (0, 1]");
            c->beta_lo = c->beta_hi = 0; /* a fixed target after --beta-sample replaces it (the last one wins) */
        } else {
            int64_t *i64 = NULL;
            int *i32 = NULL;
            double *dbl = NULL;
            long long lo = 1, hi = 1 << 30;
            if (!strcmp(a, "--learners")) i32 = &c->learners, hi = 16;
            else if (!strcmp(a, "--gate-hidden")) i32 = &c->gate_hidden, hi = 1024;
            else if (!strcmp(a, "--batch")) i32 = &c->batch, hi = 4096;
            else if (!strcmp(a, "--threads")) i32 = &c->threads, hi = 256;
            else if (!strcmp(a, "--val-size")) i32 = &c->val_size, lo = 0;
            else if (!strcmp(a, "--train-limit")) i32 = &c->train_limit, lo = 0;
            else if (!strcmp(a, "--seed")) i64 = &c->seed, lo = 0;
            else if (!strcmp(a, "--phase3-seed")) i64 = &c->phase3_seed, lo = 0;
            else if (!strcmp(a, "--max-steps")) i64 = &c->max_steps, lo = 0;
            else if (!strcmp(a, "--log-every")) i32 = &c->log_every;
            else if (!strcmp(a, "--ckpt-every")) dbl = &c->ckpt_every_s;
            else {
                fprintf(stderr, "acm-train acmize: unknown option '%s'\n", a);
                usage(stderr);
                return 2;
            }
            NEED_V if (dbl) {
                *dbl = strtod(v, &end);
                if (*end || !(*dbl > 0)) BAD("expected a positive number");
            } else {
                long long x = strtoll(v, &end, 10);
                if (*end || x < lo || x > hi) BAD("integer out of range");
                if (i32) *i32 = (int)x;
                else *i64 = x;
            }
        }
#undef NEED_V
#undef BAD
    }
    if (!c->base[0] || !c->out[0]) {
        fprintf(stderr, "acm-train acmize: --base and --out are required\n");
        usage(stderr);
        return 2;
    }
    if (!c->ckpt[0]) snprintf(c->ckpt, sizeof c->ckpt, "%s.ckpt", c->out);
    if (!c->csv[0]) snprintf(c->csv, sizeof c->csv, "%s.csv", c->out);
    return 0;
}

/* Reads the base model's configuration from its metadata. */
static int base_config(const char *path, acmt_vit_config *vc, char *err, size_t errlen) {
    acm_model *m = acm_model_load(path, err, errlen);
    if (!m) return -1;
    const acm_config *c = acm_model_config(m);
    int ok = c->num_acms == 0 && c->fused_qkv_static;
    if (ok) {
        *vc = (acmt_vit_config){c->image_size, c->patch_size, c->in_chans, c->dim, c->depth, c->heads,
                                c->mlp_hidden, c->num_classes, c->ln_eps, c->stem_depth, {0}, {0}};
        memcpy(vc->stem_chans, c->stem_chans, sizeof vc->stem_chans);
        memcpy(vc->stem_stride, c->stem_stride, sizeof vc->stem_stride);
    } else {
        snprintf(err, errlen, "%.1024s: not a static ViT with fused qkv (it has %d ACM modules)", path, c->num_acms);
    }
    acm_model_free(m);
    return ok ? 0 : -1;
}

static int copy_file(const char *from, const char *to) {
    FILE *in = fopen(from, "rb"), *out = in ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int bad = !in || !out;
    while (!bad && (n = fread(buf, 1, sizeof buf, in)) > 0) bad = fwrite(buf, 1, n, out) != n;
    if (in) fclose(in);
    if (out && fclose(out)) bad = 1;
    return bad ? -1 : 0;
}

static void log_row(acmz_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void log_row(acmz_run *r, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->csv, fmt, ap);
    va_end(ap);
    fflush(r->csv);
}

/* 1 when the model named by --base is a speech model: cmd_speech_acmize converts it. */
static int base_is_speech(int argc, char **argv) {
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--base")) {
            char err[512];
            acm_model *m = acm_model_load(argv[i + 1], err, sizeof err);
            int sp = m && acm_model_config(m)->arch == ACM_ARCH_SPEECH;
            acm_model_free(m);
            return sp;
        }
    return 0;
}

int cmd_acmize(int argc, char **argv) {
    if (base_is_speech(argc, argv)) return cmd_speech_acmize(argc, argv);
    acmz_run R;
    memset(&R, 0, sizeof R);
    R.cfg = cfg_default();
    int resume = 0, rc = parse_args(&R.cfg, &resume, &R.quiet, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    acmz_cfg *c = &R.cfg;
    char err[4096];
    acm_blas_set_threads(c->threads);
    acmt_vit_config vc;
    if (base_config(c->base, &vc, err, sizeof err)) {
        fprintf(stderr, "acm-train acmize: %s\n", err);
        return 1;
    }
    acmt_images all;
    if (acmt_images_load(&all, c->data_dir, "train", err, sizeof err) ||
        acmt_images_split(&R.train, &R.val, &all, c->val_size, (uint64_t)c->split_seed, c->train_limit, err,
                          sizeof err)) {
        fprintf(stderr, "acm-train acmize: %s\n", err);
        return 1;
    }
    acmt_images_free(&all);
    if (R.train.n < c->batch) {
        fprintf(stderr, "acm-train acmize: %lld training images, fewer than a batch of %d\n", (long long)R.train.n,
                c->batch);
        return 1;
    }
    R.teacher = acmt_vit_new(&vc, c->batch, err, sizeof err);
    acmt_vit *sv = R.teacher ? acmt_vit_new(&vc, c->batch, err, sizeof err) : NULL;
    if (!sv || acmt_vit_load_params(R.teacher, c->base, err, sizeof err) ||
        acmt_vit_load_params(sv, c->base, err, sizeof err)) {
        fprintf(stderr, "acm-train acmize: %s\n", err);
        return 1;
    }
    R.s = acmt_student_new(sv, (unsigned)acmt_parse_modules(c->modules), c->learners, c->gate_hidden, err, sizeof err);
    if (R.s && c->film && acmt_student_film(R.s, err, sizeof err)) {
        acmt_student_free(R.s);
        R.s = NULL;
    }
    if (!R.s) {
        fprintf(stderr, "acm-train acmize: %s\n", err);
        return 1;
    }
    const int64_t M = (int64_t)c->batch * R.teacher->T;
    R.x = malloc(sizeof(float) * (size_t)c->batch * vc.in_chans * vc.image_size * vc.image_size);
    R.y = malloc(sizeof(int32_t) * (size_t)c->batch);
    R.tmp = malloc(sizeof(float) * (size_t)M * vc.dim);
    R.labels = malloc(sizeof(int32_t) * (size_t)M);
    R.loss_rows = malloc(sizeof(float) * (size_t)M);
    R.kd_grad = malloc(sizeof(float) * (size_t)c->batch * vc.num_classes);
    R.order = malloc(sizeof(int32_t) * (size_t)R.train.n);
    /* initial state; a resumed run overwrites it */
    acmt_rng init;
    acmt_rng_seed(&init, (uint64_t)c->seed, 0);
    acmt_rng_seed(&R.st.order, (uint64_t)c->seed, 1);
    acmt_rng_seed(&R.st.aug, (uint64_t)c->seed, 2);
    acmt_rng_seed(&R.st.gumbel, (uint64_t)c->seed, 3);
    acmt_student_init(R.s, c->init_teacher, &init);
    R.st.phase = 1;
    R.st.pos = R.train.n; /* forces a fresh permutation on the first batch */
    if (resume && read_ckpt(&R, err, sizeof err)) {
        fprintf(stderr, "acm-train acmize: %s\n", err);
        return 1;
    }
    if (c->phase3_seed >= 0 && R.st.phase == 3 && R.st.step == 0) {
        /* streams 1-3 as --seed would give them; a fresh permutation on the first batch. A run interrupted before
           its first phase-3 checkpoint restarts from the same state, so the result stays reproducible. */
        acmt_rng_seed(&R.st.order, (uint64_t)c->phase3_seed, 1);
        acmt_rng_seed(&R.st.aug, (uint64_t)c->phase3_seed, 2);
        acmt_rng_seed(&R.st.gumbel, (uint64_t)c->phase3_seed, 3);
        R.st.pos = R.train.n;
    }
    R.csv = fopen(c->csv, resume ? "a" : "w");
    char kh[1200];
    snprintf(kh, sizeof kh, "%s.khist.csv", c->out);
    R.khist = fopen(kh, resume ? "a" : "w");
    if (!R.csv || !R.khist) {
        fprintf(stderr, "acm-train acmize: cannot write %s: %s\n", R.csv ? kh : c->csv, strerror(errno));
        return 1;
    }
    if (!resume) {
        log_row(&R, "phase,step,lr,loss,aux1,aux2,aux3,realised,acc,err_k0,err_k1,err_k2,err_k3,err_k4,seconds,"
                    "distill\n");
        fprintf(R.khist, "step,module,k_counts...\n");
    }
    if (!R.quiet)
        printf("acm-train acmize: %s -> %s: %d ACMs (%s, N=%d), %lld ACM parameters, %lld train images, phases "
               "%lld/%lld/%lld steps of %d, BLAS %s x%d\n",
               c->base, c->out, R.s->n_acm, c->modules, c->learners, (long long)R.s->nparams, (long long)R.train.n,
               (long long)phase_steps(&R, 1), (long long)phase_steps(&R, 2), (long long)phase_steps(&R, 3), c->batch,
               acm_blas_core(), c->threads);
    acmt_signals sigs;
    acmt_signals_catch(&sigs);
    acmt_progress_start(&R.prog, R.quiet);
    double last_ckpt = acmt_now_s();
    rc = 0;
    while (R.st.phase <= 3 && !rc) {
        const int ph = R.st.phase;
        const int64_t total = phase_steps(&R, ph);
        double win[8] = {0};
        int nwin = 0;
        double t0 = acmt_now_s();
        int64_t run_steps = 0; /* this phase's steps in this run, over the time since t0: the rate shown */
        if (total == 0) { /* a phase of 0 epochs is skipped */
            R.st.phase++;
            R.st.step = 0;
            continue;
        }
        while (R.st.step < total) {
            float lr = acmt_lr_schedule(R.st.step, total, 0, (float)c->lr[ph - 1], (float)c->lr_min[ph - 1]);
            double ts = acmt_now_s(), loss = 0, acc = 0, e[17] = {0}, ce = 0, kd = 0;
            acmt_aux aux = {0};
            int bad = ph == 1   ? phase1_step(&R, lr, &loss, e)
                      : ph == 2 ? phase2_step(&R, lr, &loss, &acc)
                                : phase3_step(&R, lr, &ce, &aux, &acc, &kd);
            if (bad) {
                fprintf(stderr, "acm-train acmize: step failed\n");
                rc = 1;
                break;
            }
            if (ph == 3) loss = ce + c->w_b * aux.budget + c->w_e * aux.entropy + c->w_d * aux.diversity + kd;
            R.st.step++;
            R.st.total_steps++;
            run_steps++;
            R.st.seconds[ph - 1] += acmt_now_s() - ts;
            win[0] += loss, win[1] += acc, win[2] += aux.budget, win[3] += aux.entropy, win[4] += aux.diversity;
            win[5] += aux.realised, win[6] += ph == 1 ? e[1] : ce, win[7] += kd;
            nwin++;
            double rate = (double)c->batch * run_steps / (acmt_now_s() - t0 + 1e-9);
            acmt_progress_update(&R.prog, R.st.step, total, loss, acc,
                                 rate, (double)(total - R.st.step) * c->batch / (rate > 0 ? rate : 1));
            if (R.st.step % c->log_every == 0 || R.st.step == total) {
                log_row(&R, "%d,%lld,%.3g,%.6f,%.6f,%.6f,%.6f,%.4f,%.4f", ph, (long long)R.st.step, lr,
                        win[0] / nwin, ph == 3 ? win[2] / nwin : win[6] / nwin, win[3] / nwin, win[4] / nwin,
                        win[5] / nwin, win[1] / nwin);
                for (int k = 0; k <= 4; k++) log_row(&R, ",%.5f", ph == 1 ? e[k] : 0.0);
                log_row(&R, ",%.1f,%.6f\n", R.st.seconds[ph - 1], win[7] / nwin);
                if (ph == 3)
                    for (int a = 0; a < R.s->n_acm; a++) {
                        int64_t cnt[17] = {0};
                        for (int64_t i = 0; i < M; i++) cnt[R.s->acts[a].k[i]]++;
                        fprintf(R.khist, "%lld,%s", (long long)R.st.step, R.s->L[a].name);
                        for (int k = 0; k <= R.s->L[a].n; k++) fprintf(R.khist, ",%lld", (long long)cnt[k]);
                        fprintf(R.khist, "\n");
                    }
                fflush(R.khist);
                memset(win, 0, sizeof win);
                nwin = 0;
            }
            int stop_now = acmt_stop_signal || (c->max_steps && R.st.total_steps >= c->max_steps);
            if (stop_now || acmt_now_s() - last_ckpt >= c->ckpt_every_s || R.st.step == total) {
                if (R.st.step == total) {
                    acmt_progress_note(&R.prog, "phase %d done: %lld steps, %.0f s", ph, (long long)total,
                                       R.st.seconds[ph - 1]);
                    R.st.phase++;
                    R.st.step = 0;
                    /* a fresh optimizer for the next phase */
                    memset(R.s->am, 0, sizeof(float) * (size_t)R.s->nparams);
                    memset(R.s->av, 0, sizeof(float) * (size_t)R.s->nparams);
                    if (R.s->film) {
                        memset(R.s->fm, 0, sizeof(float) * (size_t)R.s->nfilm);
                        memset(R.s->fv, 0, sizeof(float) * (size_t)R.s->nfilm);
                    }
                }
                if (write_ckpt(&R, err, sizeof err)) {
                    fprintf(stderr, "acm-train acmize: %s\n", err);
                    rc = 1;
                    break;
                }
                last_ckpt = acmt_now_s();
                if (R.st.phase != ph && c->keep_phase_ckpts) {
                    char cp[1200];
                    snprintf(cp, sizeof cp, "%s.phase%d", c->ckpt, ph);
                    if (copy_file(c->ckpt, cp)) {
                        fprintf(stderr, "acm-train acmize: cannot copy %s to %s: %s\n", c->ckpt, cp, strerror(errno));
                        rc = 1;
                        break;
                    }
                    acmt_progress_note(&R.prog, "kept %s", cp);
                }
            }
            if (stop_now) {
                acmt_progress_note(&R.prog, "stopped at phase %d step %lld; checkpoint %s; continue with --resume",
                                   R.st.phase, (long long)R.st.step, c->ckpt);
                goto out;
            }
            if (R.st.phase != ph) break;
        }
    }
    if (!rc && R.st.phase == 4) {
        char extra[4096], gb[64] = "";
        /* FiLM gates see budget.gate_beta under ARGMAX: the phase-3 target, or the middle of the sampled range */
        if (c->film) snprintf(gb, sizeof gb, ", \"gate_beta\": %.4f", c->beta_hi > 0 ? 0.5 * (c->beta_lo + c->beta_hi) : c->beta);
        snprintf(extra, sizeof extra,
                 "{\"budget\": {\"beta_min\": %.4f%s}, \"train\": {\"acmize_seconds\": [%.1f, %.1f, %.1f], "
                 "\"beta_target\": %.3f, \"base\": \"%s\"%s}}",
                 0.0 + 1.0 / (c->learners), gb, R.st.seconds[0], R.st.seconds[1], R.st.seconds[2], c->beta, c->base,
                 c->film ? ", \"film\": true" : "");
        if (acmt_student_save(R.s, c->out, extra, err, sizeof err)) {
            fprintf(stderr, "acm-train acmize: %s\n", err);
            rc = 1;
        } else if (!R.quiet) {
            printf("acm-train acmize: wrote %s (phases %.0f + %.0f + %.0f s)\n", c->out, R.st.seconds[0],
                   R.st.seconds[1], R.st.seconds[2]);
        }
    }
out:
    acmt_progress_end(&R.prog);
    acmt_signals_restore(&sigs);
    fclose(R.csv);
    fclose(R.khist);
    acmt_student_free(R.s);
    acmt_vit_free(R.teacher);
    acmt_images_free(&R.train);
    acmt_images_free(&R.val);
    free(R.x), free(R.y), free(R.tmp), free(R.labels), free(R.loss_rows), free(R.kd_grad), free(R.order);
    return rc;
}
