/*
 * calibrate.c — `acm-train calibrate MODEL`: one model, any budget (docs/METHOD.md §6). On held-out images (the
 * validation split that base training and acmize kept out) it finds, for every beta of a grid,
 *   - lambda(beta): the gate-logit bias of the MEAN policy under which the mean realised budget equals beta
 *     (the realised budget falls monotonically with lambda; bracketed search with the Illinois variant of regula
 *     falsi over every point evaluated so far), and
 *   - the CAP policy's share of each ACM's learners at that beta: the fraction each module received under
 *     lambda(beta), scaled so that the shares spend exactly beta (each within [kmin/N, 1]),
 * and writes both tables into the model file's metadata ("budget": {"beta_min", "mean", "cap"}, other keys of
 * "budget" such as gate_beta kept), atomically. Then, with those shares, it measures CAP's two allocation orders
 * (acm.h: GAIN, LEVEL) on the same images at beta 0.125, 0.25 and 0.5 (raised to the calibrated beta_min where below
 * it, each budget once) and records the more accurate as "budget": {"cap_order"} (GAIN on a tie). Betas of the grid
 * below the model's floor (every ACM at kmin learners, acm_config.beta_floor) are skipped: no item can spend less.
 * A budget-conditioned model (FiLM gates, engine/model.h) sees the budget in its gates too: every evaluation for beta
 * runs MEAN with policy.beta = beta, so lambda(beta) is found for the gates conditioned on that beta, and points
 * evaluated at one beta are not reused for another (they are for unconditioned gates, whose logits ignore beta).
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "safetensors.h"
#include "train/commands.h"
#include "train/data.h"
#include "train/speech_eval.h"

typedef struct {
    double beta; /* the budget the gates saw (matters for FiLM gates only) */
    double lambda, realised;
    double *frac; /* [A] mean fraction of each ACM's learners */
} point;

typedef struct {
    acm_model *m;
    acm_worker *w;
    const acmt_images *set;
    int64_t n;
    int batch;
    float *x, *logits;
    uint8_t *kmap;
    /* a speech model: held-out utterances of the corpus's val split instead of images (speech_eval.h) */
    const char *speech_path, *corpus;
    int64_t den; /* what count_correct's count is out of: images, or characters for speech */
    point **pts; /* every evaluation (separately allocated: solve holds pointers while more are added) */
    int npts, cap;
    int evals;
} calib;

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train calibrate MODEL.safetensors [options]\n"
               "  --out PATH          write the calibrated model here (default: MODEL, replaced atomically)\n"
               "  --images N          held-out images used (default 1000)\n"
               "  --betas LO:HI:STEP  the beta grid (default 0.1:0.95:0.05)\n"
               "  --tolerance T       stop when |realised - beta| <= T (default 0.002)\n"
               "  --val-size N        the held-out split, as in training (default 5000)\n"
               "  --split-seed N      (default 0)\n"
               "  --threads N         OpenBLAS threads (default 2)\n"
               "  --data DIR          Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  a speech model (arch speech) is calibrated on the val split of a speech corpus instead:\n"
               "  --corpus DIR        speech corpus (default data/speech)\n"
               "  --utterances N      first N val utterances (default 200); the CAP order is chosen on the\n"
               "                      characters the greedy decoding gets right\n");
}

/* Runs held-out images [i, i + nb) through worker w of model m under policy p: results in res (logits into c->logits,
 * k maps into c->kmap), true labels into y. Exits on an engine error (the batch is always valid here). */
static void run_heldout(calib *c, const acm_model *m, acm_worker *w, acm_policy p, int64_t i, int nb,
                        acm_result *res, int32_t *y) {
    const acm_config *cfg = acm_model_config(m);
    const int64_t img = (int64_t)cfg->image_size * cfg->image_size;
    acm_item items[256];
    int32_t idx[256];
    for (int b = 0; b < nb; b++) idx[b] = (int32_t)(i + b);
    acmt_make_batch(c->x, y, c->set, idx, nb, NULL, NULL);
    for (int b = 0; b < nb; b++) {
        items[b] = (acm_item){.pixels = c->x + b * img, .policy = p};
        res[b] = (acm_result){.logits = c->logits + b * cfg->num_classes,
                              .kmap = c->kmap + (int64_t)b * cfg->num_acms * cfg->tokens};
    }
    char err[256];
    if (acm_worker_run(w, items, res, nb, err, sizeof err)) {
        fprintf(stderr, "acm-train calibrate: %s\n", err);
        exit(1);
    }
}

/* Runs the held-out images under MEAN with an explicit lambda, the gates seeing budget beta; records a point. */
static point *eval_lambda(calib *c, double lambda, double beta) {
    const acm_config *cfg = acm_model_config(c->m);
    const int A = cfg->num_acms, T = cfg->tokens;
    double *frac = calloc((size_t)A, sizeof(double)), realised = 0;
    const acm_policy pol = {.kind = ACM_POLICY_MEAN, .beta = (float)beta, .lambda_set = 1, .lambda = (float)lambda};
    acm_result res[256];
    if (c->speech_path) { /* realised budget and fractions per utterance, averaged over them */
        acmt_speech_eval_params ep = {.corpus = c->corpus, .split = "val", .limit = c->n, .policy = &pol};
        acmt_speech_eval_result r;
        char err[1024];
        if (acmt_speech_eval(c->speech_path, &ep, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train calibrate: %s\n", err);
            exit(1);
        }
        free(r.speakers);
        realised = r.budget_mean * (double)c->n;
        for (int a = 0; a < A && a < ACMT_EVAL_MAX_ACMS; a++) frac[a] = r.acm_frac[a] * (double)c->n;
        (void)T;
    }
    for (int64_t i = 0; !c->speech_path && i < c->n; i += c->batch) {
        int nb = (int)(c->n - i < c->batch ? c->n - i : c->batch);
        int32_t y[256];
        run_heldout(c, c->m, c->w, pol, i, nb, res, y);
        for (int b = 0; b < nb; b++) {
            realised += res[b].budget;
            for (int a = 0; a < A; a++) {
                const uint8_t *km = c->kmap + ((int64_t)b * A + a) * T;
                int s = 0;
                for (int t = 0; t < T; t++) s += km[t];
                frac[a] += (double)s / ((double)T * acm_model_acm(c->m, a)->n);
            }
        }
    }
    for (int a = 0; a < A; a++) frac[a] /= (double)c->n;
    if (c->npts == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 64;
        c->pts = realloc(c->pts, sizeof(point *) * (size_t)c->cap);
    }
    point *p = malloc(sizeof *p);
    if (!c->pts || !p) {
        fprintf(stderr, "acm-train calibrate: out of memory\n");
        exit(1);
    }
    c->pts[c->npts++] = p;
    *p = (point){beta, lambda, realised / (double)c->n, frac};
    c->evals++;
    return p;
}

/* The lambda whose realised budget is beta, within tol (or the closest found). */
static point *solve(calib *c, double beta, double tol) {
    /* bracket from the points so far: lo has realised >= beta (smaller lambda), hi has realised <= beta */
    point *lo = NULL, *hi = NULL;
    const int film = acm_model_config(c->m)->film_gates > 0;
    for (int i = 0; i < c->npts; i++) {
        point *p = c->pts[i];
        if (film && p->beta != beta) continue;
        if (fabs(p->realised - beta) <= tol) return p;
        if (p->realised > beta && (!lo || p->lambda > lo->lambda)) lo = p;
        if (p->realised < beta && (!hi || p->lambda < hi->lambda)) hi = p;
    }
    for (double step = 4; !lo && step < 1e4; step *= 2) {
        point *p = eval_lambda(c, (hi ? hi->lambda : 0) - step, beta);
        if (p->realised >= beta) lo = p;
    }
    for (double step = 4; !hi && step < 1e4; step *= 2) {
        point *p = eval_lambda(c, (lo ? lo->lambda : 0) + step, beta);
        if (p->realised <= beta) hi = p;
    }
    if (!lo || !hi) return lo ? lo : hi;
    double flo = lo->realised - beta, fhi = hi->realised - beta;
    int side = 0;
    point *best = fabs(flo) < fabs(fhi) ? lo : hi;
    for (int it = 0; it < 30 && fabs(best->realised - beta) > tol && hi->lambda - lo->lambda > 1e-5; it++) {
        double l = (lo->lambda * fhi - hi->lambda * flo) / (fhi - flo);
        if (!(l > lo->lambda && l < hi->lambda)) l = 0.5 * (lo->lambda + hi->lambda);
        point *p = eval_lambda(c, l, beta);
        double f = p->realised - beta;
        if (fabs(f) < fabs(best->realised - beta)) best = p;
        if (f > 0) {
            lo = p, flo = f;
            if (side == -1) fhi /= 2; /* Illinois: halve the stale end */
            side = -1;
        } else {
            hi = p, fhi = f;
            if (side == 1) flo /= 2;
            side = 1;
        }
    }
    return best;
}

/* Shares that spend exactly beta: frac scaled, each clamped into [kmin/N, 1], the rest redistributed. */
static void shares_for(const acm_model *m, const double *frac, double beta, double *out) {
    const int A = acm_model_config(m)->num_acms;
    double tot = 0;
    for (int a = 0; a < A; a++) tot += acm_model_acm(m, a)->n * acm_model_learner_flops(m, a);
    for (int a = 0; a < A; a++) out[a] = frac[a];
    for (int it = 0; it < 50; it++) {
        double spent = 0, free_w = 0;
        for (int a = 0; a < A; a++) {
            const acm_module_info *mi = acm_model_acm(m, a);
            double lo = (double)mi->kmin / mi->n, w = mi->n * acm_model_learner_flops(m, a) / tot;
            out[a] = out[a] < lo ? lo : out[a] > 1 ? 1 : out[a];
            spent += out[a] * w;
            if (out[a] > lo && out[a] < 1) free_w += out[a] * w;
        }
        double target = beta * (1 - 1e-6);
        if (fabs(spent - target) < 1e-9 || free_w <= 0) break;
        double scale = 1 + (target - spent) / free_w;
        for (int a = 0; a < A; a++) {
            const acm_module_info *mi = acm_model_acm(m, a);
            double lo = (double)mi->kmin / mi->n;
            if (out[a] > lo && out[a] < 1) out[a] *= scale;
        }
    }
    /* never above beta: the engine checks every row */
    double spent = 0;
    for (int a = 0; a < A; a++) spent += out[a] * acm_model_acm(m, a)->n * acm_model_learner_flops(m, a) / tot;
    if (spent > beta)
        for (int a = 0; a < A; a++) out[a] *= beta / spent * (1 - 1e-6);
}

/* Replaces the metadata's "budget" and "calibration" of the model at `in` and writes it to `out` (atomically; in may
 * equal out); checks that the result loads. */
static int rewrite(const char *in, const char *out, json_t *budget, json_t *calibration) {
    char err[2048];
    acm_st_file f;
    if (acm__st_open(&f, in, err, sizeof err)) {
        fprintf(stderr, "acm-train calibrate: %s\n", err);
        return 1;
    }
    int rc = 0;
    json_t *meta = json_loads(acm__st_meta(&f, "acm"), 0, NULL);
    if (!meta) meta = json_object();
    /* the tables are replaced; the other keys of "budget" (gate_beta of a FiLM model) stay */
    json_t *old = json_object_get(meta, "budget");
    if (json_is_object(old)) json_object_update_missing(budget, old);
    json_object_set(meta, "budget", budget);
    json_object_set(meta, "calibration", calibration);
    char *ms = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(meta);
    acm_st_out *t = calloc((size_t)f.n, sizeof *t);
    for (int i = 0; i < f.n; i++) {
        t[i].name = f.tensors[i].name;
        t[i].dtype = ACM_ST_F32;
        t[i].ndim = f.tensors[i].ndim;
        memcpy(t[i].shape, f.tensors[i].shape, sizeof f.tensors[i].shape);
        t[i].data = f.tensors[i].data;
        if (f.tensors[i].dtype != ACM_ST_F32 && f.tensors[i].dtype != ACM_ST_F16 &&
            f.tensors[i].dtype != ACM_ST_BF16) {
            fprintf(stderr, "acm-train calibrate: %s: tensor %s is not a float tensor\n", in, t[i].name);
            rc = 1;
        }
    }
    json_t *md = json_pack("{s:s}", "acm", ms);
    free(ms);
    if (!rc && acm__st_write(out, t, f.n, md, err, sizeof err)) {
        fprintf(stderr, "acm-train calibrate: %s\n", err);
        rc = 1;
    }
    json_decref(md);
    free(t);
    acm__st_close(&f);
    if (!rc) {
        acm_model *chk = acm_model_load(out, err, sizeof err);
        if (!chk) {
            fprintf(stderr, "acm-train calibrate: the calibrated file does not load: %s\n", err);
            rc = 1;
        }
        acm_model_free(chk);
    }
    return rc;
}

/* Held-out images that model m classifies right under policy p. */
static int64_t count_correct(calib *c, const acm_model *m, acm_worker *w, acm_policy p, const char *path) {
    const int K = acm_model_config(m)->num_classes;
    if (c->speech_path) { /* characters right: the number of characters less the greedy decoding's errors */
        acmt_speech_eval_params ep = {.corpus = c->corpus, .split = "val", .limit = c->n, .policy = &p};
        acmt_speech_eval_result r;
        char err[1024];
        if (acmt_speech_eval(path, &ep, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train calibrate: %s\n", err);
            exit(1);
        }
        free(r.speakers);
        c->den = r.greedy.chars;
        return r.greedy.chars - r.greedy.char_errors;
    }
    acm_result res[256];
    int64_t right = 0;
    c->den = c->n;
    for (int64_t i = 0; i < c->n; i += c->batch) {
        int nb = (int)(c->n - i < c->batch ? c->n - i : c->batch);
        int32_t y[256];
        run_heldout(c, m, w, p, i, nb, res, y);
        for (int b = 0; b < nb; b++) {
            int best = 0;
            for (int k = 1; k < K; k++)
                if (res[b].logits[k] > res[b].logits[best]) best = k;
            right += best == y[b];
        }
    }
    return right;
}

int cmd_calibrate(int argc, char **argv) {
    const char *path = NULL, *out = NULL, *dir = "/usr/share/datasets/fashion-mnist", *corpus = "data/speech";
    int64_t n_img = 1000, val_size = 5000, split_seed = 0, n_utt = 200;
    int threads = 2;
    double blo = 0.1, bhi = 0.95, bstep = 0.05, tol = 0.002;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && v) {
            out = v, i++;
        } else if (!strcmp(a, "--data") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--corpus") && v) {
            corpus = v, i++;
        } else if (!strcmp(a, "--utterances") && v) {
            n_utt = strtoll(v, &e, 10), i++;
            if (*e || n_utt < 1) goto bad;
        } else if (!strcmp(a, "--images") && v) {
            n_img = strtoll(v, &e, 10), i++;
            if (*e || n_img < 10) goto bad;
        } else if (!strcmp(a, "--val-size") && v) {
            val_size = strtoll(v, &e, 10), i++;
            if (*e || val_size < 10) goto bad;
        } else if (!strcmp(a, "--split-seed") && v) {
            split_seed = strtoll(v, &e, 10), i++;
            if (*e || split_seed < 0) goto bad;
        } else if (!strcmp(a, "--threads") && v) {
            threads = (int)strtol(v, &e, 10), i++;
            if (*e || threads < 1 || threads > 256) goto bad;
        } else if (!strcmp(a, "--tolerance") && v) {
            tol = strtod(v, &e), i++;
            if (*e || !(tol > 0 && tol < 0.1)) goto bad;
        } else if (!strcmp(a, "--betas") && v) {
            i++;
            if (sscanf(v, "%lf:%lf:%lf", &blo, &bhi, &bstep) != 3 || !(blo > 0 && bhi <= 1 && blo <= bhi && bstep > 0))
                goto bad;
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
        bad:
            fprintf(stderr, "acm-train calibrate: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    if (!out) out = path;
    acm_blas_set_threads(threads);
    char err[2048];
    calib c = {0};
    c.m = acm_model_load(path, err, sizeof err);
    if (!c.m) {
        fprintf(stderr, "acm-train calibrate: %s\n", err);
        return 1;
    }
    const acm_config *cfg = acm_model_config(c.m);
    if (cfg->num_acms == 0) {
        fprintf(stderr, "acm-train calibrate: %s has no ACM modules: nothing to calibrate\n", path);
        acm_model_free(c.m);
        return 1;
    }
    const int speech = cfg->arch == ACM_ARCH_SPEECH;
    if (!speech && (cfg->in_chans != 1 || cfg->image_size != 28)) {
        fprintf(stderr, "acm-train calibrate: %s is not a 28x28 grey model (Fashion-MNIST)\n", path);
        acm_model_free(c.m);
        return 1;
    }
    acmt_images all, train, val;
    memset(&val, 0, sizeof val);
    if (speech) {
        c.speech_path = path;
        c.corpus = corpus;
        c.n = n_utt;
        /* the first evaluation checks the corpus and the model (a refusal exits there): count what is there */
        acmt_speech_eval_params ep = {.corpus = corpus, .split = "val", .limit = n_utt,
                                      .policy = &(acm_policy){.kind = ACM_POLICY_FIXED, .fixed_k = 1}};
        acmt_speech_eval_result r;
        if (acmt_speech_eval(path, &ep, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train calibrate: %s\n", err);
            acm_model_free(c.m);
            return 1;
        }
        free(r.speakers);
        c.n = r.utterances;
    } else if (acmt_images_load(&all, dir, "train", err, sizeof err) ||
        acmt_images_split(&train, &val, &all, val_size, (uint64_t)split_seed, 0, err, sizeof err)) {
        fprintf(stderr, "acm-train calibrate: %s\n", err);
        acm_model_free(c.m);
        return 1;
    }
    if (!speech) {
        acmt_images_free(&all);
        acmt_images_free(&train);
        c.set = &val;
        c.n = n_img < val.n ? n_img : val.n;
    }
    c.batch = 64;
    c.w = acm_worker_new(c.m, (acm_worker_params){.max_batch = c.batch}, err, sizeof err);
    c.x = malloc(sizeof(float) * (size_t)c.batch * 28 * 28);
    c.logits = malloc(sizeof(float) * (size_t)c.batch * cfg->num_classes);
    c.kmap = malloc((size_t)c.batch * cfg->num_acms * cfg->tokens);
    const int A = cfg->num_acms;
    printf("acm-train calibrate: %s, %lld held-out %s, betas %.3g..%.3g step %.3g, BLAS %s x%d\n", path,
           (long long)c.n, speech ? "utterances (val split)" : "images", blo, bhi, bstep, acm_blas_core(), threads);
    json_t *mean = json_array(), *cbetas = json_array(), *cshares = json_array();
    double beta_min = 0;
    double *sh = malloc(sizeof(double) * (size_t)A);
    for (double beta = blo; beta <= bhi + 1e-9; beta += bstep) {
        beta = round(beta * 1e6) / 1e6;
        if (beta < cfg->beta_floor) { /* below what kmin learners everywhere spend: the engine refuses such rows */
            printf("  beta %.3f: below the model's floor %.4f; skipped\n", beta, (double)cfg->beta_floor);
            continue;
        }
        point *p = solve(&c, beta, tol);
        if (!p || fabs(p->realised - beta) > 0.01) {
            printf("  beta %.3f: not reachable (closest realised %.4f); skipped\n", beta, p ? p->realised : NAN);
            continue;
        }
        if (!beta_min) beta_min = beta;
        json_array_append_new(mean, json_pack("[f,f]", beta, p->lambda));
        shares_for(c.m, p->frac, beta, sh);
        json_t *row = json_array();
        for (int a = 0; a < A; a++) json_array_append_new(row, json_real(round(sh[a] * 1e6) / 1e6));
        json_array_append_new(cbetas, json_real(beta));
        json_array_append_new(cshares, row);
        printf("  beta %.3f: lambda %+8.4f realised %.4f (%d evaluations so far)\n", beta, p->lambda, p->realised,
               c.evals);
    }
    int rc = 0;
    if (json_array_size(mean) == 0) {
        fprintf(stderr, "acm-train calibrate: no beta of the grid was reachable\n");
        rc = 1;
    }
    json_t *budget = NULL, *calibration = NULL;
    if (!rc) {
        budget = json_pack("{s:f, s:o, s:{s:o, s:o}}", "beta_min", beta_min, "mean", mean, "cap", "betas", cbetas,
                           "shares", cshares);
        mean = cbetas = cshares = NULL;
        calibration = json_pack("{s:s, s:I, s:I, s:I, s:f, s:i}", "set", "validation split of the training set",
                                "images", (json_int_t)c.n, "val_size", (json_int_t)val_size, "split_seed",
                                (json_int_t)split_seed, "tolerance", tol, "evaluations", c.evals);
        if (speech) {
            json_object_set_new(calibration, "set", json_string("val split of the speech corpus"));
            json_object_set_new(calibration, "corpus", json_string(corpus));
            json_object_del(calibration, "images");
            json_object_del(calibration, "val_size");
            json_object_del(calibration, "split_seed");
            json_object_set_new(calibration, "utterances", json_integer(c.n));
        }
        rc = rewrite(path, out, budget, calibration);
    }
    /* CAP's allocation order: both on the held-out images at the probe budgets, with the shares just written;
     * LEVEL only when it is right strictly more often (GAIN, the paper's reading of the gate, otherwise) */
    acm_model *chk = NULL;
    acm_worker *cw = NULL;
    if (!rc && (!(chk = acm_model_load(out, err, sizeof err)) ||
                !(cw = acm_worker_new(chk, (acm_worker_params){.max_batch = c.batch}, err, sizeof err)))) {
        fprintf(stderr, "acm-train calibrate: the calibrated file does not load: %s\n", err);
        rc = 1;
    }
    if (!rc) {
        /* at 1 both orders run every learner: no vote, but the held-out figure at full compute is printed */
        static const float probe[] = {0.125f, 0.25f, 0.5f, 1.0f};
        int64_t right[2] = {0, 0};
        json_t *jp = json_array();
        float prev = 0;
        for (size_t i = 0; i < sizeof probe / sizeof *probe; i++) {
            /* the engine refuses budgets below beta_min (and acmd never runs them): raised to it, each budget once */
            const float beta = probe[i] > acm_model_config(chk)->beta_min ? probe[i] : acm_model_config(chk)->beta_min;
            if (beta == prev) continue;
            prev = beta;
            int64_t g = count_correct(&c, chk, cw, (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta,
                                                                  .cap_order = ACM_CAP_ORDER_GAIN}, out);
            int64_t l = count_correct(&c, chk, cw, (acm_policy){.kind = ACM_POLICY_CAP, .beta = beta,
                                                                  .cap_order = ACM_CAP_ORDER_LEVEL}, out);
            right[0] += g, right[1] += l;
            printf("  cap beta %.3f: %s %.2f%% in gain order, %.2f%% in level order\n", beta,
                   c.speech_path ? "characters right" : "accuracy", 100.0 * g / c.den, 100.0 * l / c.den);
            json_array_append_new(jp, json_pack("{s:f, s:f, s:f}", "beta", beta, "gain", (double)g / c.den, "level",
                                                (double)l / c.den));
        }
        const char *order = acm_cap_order_name(right[1] > right[0] ? ACM_CAP_ORDER_LEVEL : ACM_CAP_ORDER_GAIN);
        json_object_set_new(budget, "cap_order", json_string(order));
        json_object_set_new(calibration, "cap_order_probe", jp);
        rc = rewrite(out, out, budget, calibration);
        if (!rc)
            printf("acm-train calibrate: wrote %s (beta_min %.3f, cap order %s, %d evaluations)\n", out, beta_min,
                   order, c.evals);
    }
    acm_worker_free(cw);
    acm_model_free(chk);
    json_decref(budget);
    json_decref(calibration);
    json_decref(mean);
    json_decref(cbetas);
    json_decref(cshares);
    for (int i = 0; i < c.npts; i++) {
        free(c.pts[i]->frac);
        free(c.pts[i]);
    }
    free(c.pts), free(sh), free(c.x), free(c.logits), free(c.kmap);
    acm_worker_free(c.w);
    acm_model_free(c.m);
    acmt_images_free(&val);
    return rc;
}
