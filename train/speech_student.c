/*
 * speech_student.c — a speech encoder in ACM conversion (speech_student.h).
 */
#include "train/speech_student.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "model.h"
#include "safetensors.h"
#include "vit.h"

static float *param_of(const acmt_speech *sp, int l, const char *suffix) {
    char nm[64];
    snprintf(nm, sizeof nm, "blocks.%d.%s", l, suffix);
    for (int i = 0; i < sp->ntab; i++)
        if (!strcmp(sp->tab[i].name, nm)) return sp->params + sp->tab[i].offset;
    return NULL;
}

/* The MLP hook's forward: ACM l on the block's ln2 rows, added into x2. */
static void mlp_fwd(void *ctx, int l, float *x2, const float *ln2, int64_t R) {
    acmt_speech_student *s = ctx;
    const acmt_acm_layout *L = &s->L[l];
    const float *p = s->ap + s->off[l];
    acmt_acm_acts *a = &s->acts[l];
    const int D = s->sp->cfg.dim;
    if (s->pm) { /* the engine's decisions: per chunk, under its policy, FiLM at the budget it gives the gates */
        const float gb = acm__gate_beta(s->pm, s->pol);
        for (int64_t i = 0; i < R; i++) s->row_beta[i] = gb;
        acmt_film f = {s->fp + (int64_t)l * 2 * L->gh, NULL, s->row_beta};
        acmt_acm_gate_forward_film(a, p, &f, L, ln2, D, R);
        const acm_policy pol = s->pol;
        const float lambda = pol.kind != ACM_POLICY_MEAN ? 0.0f
                             : pol.lambda_set         ? pol.lambda
                                                      : acm__mean_lambda(s->pm, pol.beta);
        const acmt_speech *sp = s->sp;
        for (int u = 0; u < sp->U; u++) {
            const int64_t r0 = sp->unit_off[u], Tu = sp->unit_off[u + 1] - r0;
            acm__decide_k(a->k + r0, a->logits + r0 * L->choices, (int)Tu, s->pm, s->pm->acms[l], pol, lambda,
                          s->pscratch);
        }
    } else if (s->uniform_k > 0) {
        acmt_acm_fixed_select(a, L, R, s->uniform_k);
    } else {
        for (int64_t i = 0; i < R; i++) s->row_beta[i] = s->beta;
        acmt_film f = {s->fp + (int64_t)l * 2 * L->gh, s->fg + (int64_t)l * 2 * L->gh, s->row_beta};
        acmt_acm_gate_forward_film(a, p, &f, L, ln2, D, R);
        acmt_acm_gumbel_select(a, L, R, s->tau, s->train_gates ? s->rng : NULL);
    }
    acmt_acm_sparse_forward(x2, D, 1, a, p, L, ln2, D, R);
}

static void mlp_bwd(void *ctx, int l, float *dln, const float *dx2, int64_t R) {
    acmt_speech_student *s = ctx;
    const int D = s->sp->cfg.dim;
    acmt_acm_sparse_backward(s->ag + s->off[l], dln, D, &s->acts[l], s->ap + s->off[l], &s->L[l], s->sp->blk[l].ln2, D,
                             dx2, D, s->uniform_k > 0 ? NULL : s->dy_aux[l], s->tau, s->uniform_k <= 0, R);
}

acmt_speech_student *acmt_speech_student_new(acmt_speech *sp, int n_learners, int gh, char *err, size_t errlen) {
    const acmt_speech_config *c = &sp->cfg;
    if (n_learners < 1 || n_learners > 16 || c->mlp_hidden % n_learners || gh < 1) {
        snprintf(err, errlen, "learners must be in 1..16 and divide the MLP width %d (got %d), gate width >= 1",
                 c->mlp_hidden, n_learners);
        return NULL;
    }
    acmt_speech_student *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->n_acm = c->depth;
    s->L = calloc((size_t)s->n_acm, sizeof *s->L);
    s->off = calloc((size_t)s->n_acm, sizeof *s->off);
    s->acts = calloc((size_t)s->n_acm, sizeof *s->acts);
    s->dy_aux = calloc((size_t)s->n_acm, sizeof *s->dy_aux);
    if (!s->L || !s->off || !s->acts || !s->dy_aux) goto oom;
    int64_t off = 0;
    for (int l = 0; l < s->n_acm; l++) {
        char nm[64];
        snprintf(nm, sizeof nm, "blocks.%d.mlp", l);
        acmt_acm_layout_init(&s->L[l], nm, c->dim, c->dim, n_learners, c->mlp_hidden / n_learners, 1, gh);
        s->off[l] = off;
        off += s->L[l].numel;
    }
    s->nparams = off;
    s->nfilm = (int64_t)s->n_acm * 2 * gh;
    s->p_learner = 2.0 * (2.0 * c->dim * s->L[0].h);
    s->ap = calloc((size_t)off, sizeof(float));
    s->ag = calloc((size_t)off, sizeof(float));
    s->am = calloc((size_t)off, sizeof(float));
    s->av = calloc((size_t)off, sizeof(float));
    s->fp = calloc((size_t)s->nfilm, sizeof(float));
    s->fg = calloc((size_t)s->nfilm, sizeof(float));
    s->fm = calloc((size_t)s->nfilm, sizeof(float));
    s->fv = calloc((size_t)s->nfilm, sizeof(float));
    s->row_beta = calloc((size_t)sp->max_rows, sizeof(float));
    if (!s->ap || !s->ag || !s->am || !s->av || !s->fp || !s->fg || !s->fm || !s->fv || !s->row_beta) goto oom;
    for (int l = 0; l < s->n_acm; l++) {
        if (acmt_acm_acts_alloc(&s->acts[l], &s->L[l], sp->max_rows)) goto oom;
        if (!(s->dy_aux[l] = calloc((size_t)sp->max_rows * s->L[l].choices, sizeof(float)))) goto oom;
    }
    s->tau = 0.8f;
    s->beta = 1.0f;
    s->sp = sp;
    return s;
oom:
    snprintf(err, errlen, "out of memory for %d ACMs", c->depth);
    acmt_speech_student_free(s); /* s->sp is still NULL: the caller keeps sp */
    return NULL;
}

void acmt_speech_student_free(acmt_speech_student *s) {
    if (!s) return;
    for (int l = 0; s->acts && l < s->n_acm; l++) acmt_acm_acts_free(&s->acts[l]);
    for (int l = 0; s->dy_aux && l < s->n_acm; l++) free(s->dy_aux[l]);
    free(s->L), free(s->off), free(s->acts), free(s->dy_aux);
    free(s->ap), free(s->ag), free(s->am), free(s->av);
    free(s->fp), free(s->fg), free(s->fm), free(s->fv), free(s->row_beta);
    acmt_speech_free(s->sp);
    free(s);
}

void acmt_speech_student_set_policy(acmt_speech_student *s, const acm_model *m, void *scratch, acm_policy p) {
    s->pm = m;
    s->pscratch = scratch;
    s->pol = p;
}

double acmt_speech_student_item_flops(const acmt_speech_student *s, int b) {
    const acmt_speech *sp = s->sp;
    const int64_t i0 = sp->item_off[b], T = sp->item_off[b + 1] - i0;
    const int D = sp->cfg.dim, C = s->L[0].choices;
    double f = 0;
    if (s->pm) f += s->pm->flops_fixed * (double)T;
    for (int u = 0; u < sp->U; u++) {
        if (sp->unit_off[u] < i0 || sp->unit_off[u] >= i0 + T) continue;
        const double Tq = (double)(sp->unit_off[u + 1] - sp->unit_off[u]),
                     nk = (double)(sp->unit_off[u + 1] - sp->unit_key0[u]);
        f += 4.0 * Tq * nk * D * sp->cfg.depth;
    }
    const acm_policy p = s->pol;
    const int no_gate = p.kind == ACM_POLICY_FIXED || (p.kind == ACM_POLICY_CAP && p.beta >= 1.0f) ||
                        (p.kind == ACM_POLICY_MEAN && !p.lambda_set && p.beta >= 1.0f);
    const int rows = no_gate ? 0 : p.kind == ACM_POLICY_ARGMAX ? C : 2 * C;
    for (int l = 0; l < s->n_acm; l++) {
        for (int64_t t = 0; t < T; t++) f += s->acts[l].k[i0 + t] * s->p_learner;
        f += 2.0 * D * rows * (double)T;
    }
    return f;
}

acmt_speech_student *acmt_speech_student_load(const char *path, int max_items, int64_t max_rows, char *err,
                                              size_t errlen) {
    acm_model *m = acm_model_load(path, err, errlen);
    if (!m) return NULL;
    const acm_config *c = acm_model_config(m);
    const int depth = c->depth;
    int ok = c->arch == ACM_ARCH_SPEECH && c->num_acms == depth, n = 0, gh = 0;
    for (int l = 0; ok && l < depth; l++) {
        const acm__module *md = m->acms[l];
        char nm[64];
        snprintf(nm, sizeof nm, "blocks.%d.mlp", l);
        ok = !strcmp(md->info.name, nm) && md->info.film && (l == 0 || md->info.n == n);
        n = md->info.n;
    }
    acmt_speech_config sc = {.n_mels = c->n_mels, .stack = c->stack, .dim = c->dim, .depth = depth,
                             .heads = c->heads, .mlp_hidden = c->mlp_hidden, .chunk = c->chunk,
                             .left_context = c->left_context, .rope_base = c->rope_base, .ln_eps = c->ln_eps};
    for (int k = 1; k < c->num_classes && k < (int)sizeof sc.alphabet; k++) sc.alphabet[k - 1] = c->labels[k][0];
    acm_model_free(m);
    if (!ok) {
        snprintf(err, errlen, "%.900s: not a speech model with one FiLM-gated MLP ACM per block (acm-train acmize's "
                 "speech conversion)", path);
        return NULL;
    }
    acm_st_file f;
    if (acm__st_open(&f, path, err, errlen)) return NULL;
    const acm_st_tensor *g0 = acm__st_find(&f, "blocks.0.mlp.gate.0.weight");
    gh = g0 && g0->ndim == 2 ? (int)g0->shape[0] : 0;
    acmt_speech *sp = acmt_speech_new(&sc, max_items, max_rows, max_rows, 0, err, errlen);
    acmt_speech_student *s = sp ? acmt_speech_student_new(sp, n, gh, err, errlen) : NULL;
    if (!s) {
        acmt_speech_free(sp);
        acm__st_close(&f);
        return NULL;
    }
    int bad = 0;
    char what[128] = "";
    for (int i = 0; i < sp->ntab && !bad; i++) {
        if (strstr(sp->tab[i].name, ".mlp.")) continue;
        const acm_st_tensor *t = acm__st_find(&f, sp->tab[i].name);
        if ((bad = !t || t->numel != sp->tab[i].numel)) snprintf(what, sizeof what, "%s", sp->tab[i].name);
        else memcpy(sp->params + sp->tab[i].offset, t->data, sizeof(float) * (size_t)t->numel);
    }
    for (int l = 0; l < s->n_acm && !bad; l++) {
        const acmt_acm_layout *L = &s->L[l];
        float *p = s->ap + s->off[l], *fl = s->fp + (int64_t)l * 2 * L->gh;
        struct {
            const char *suffix;
            float *dst;
            int64_t n;
        } e[] = {{"w1", p + L->w1, (int64_t)L->nh * L->din}, {"b1", p + L->b1, L->nh},
                 {"w2", p + L->w2, (int64_t)L->dout * L->nh}, {"gate.0.weight", p + L->g0w, (int64_t)L->gh * L->din},
                 {"gate.0.bias", p + L->g0b, L->gh}, {"gate.1.weight", p + L->g1w, (int64_t)L->gh * L->gh},
                 {"gate.1.bias", p + L->g1b, L->gh}, {"gate.2.weight", p + L->g2w, (int64_t)L->choices * L->gh},
                 {"gate.2.bias", p + L->g2b, L->choices}, {"gate.film.scale", fl, L->gh},
                 {"gate.film.shift", fl + L->gh, L->gh}};
        for (int j = 0; j < 11 && !bad; j++) {
            char nm[96];
            snprintf(nm, sizeof nm, "%s.%s", L->name, e[j].suffix);
            const acm_st_tensor *t = acm__st_find(&f, nm);
            if ((bad = !t || t->numel != e[j].n)) snprintf(what, sizeof what, "%s", nm);
            else memcpy(e[j].dst, t->data, sizeof(float) * (size_t)t->numel);
        }
    }
    acm__st_close(&f);
    if (bad) {
        snprintf(err, errlen, "%.900s: tensor '%s' missing or of the wrong size", path, what);
        acmt_speech_student_free(s);
        return NULL;
    }
    return s;
}

void acmt_speech_student_init(acmt_speech_student *s, acmt_rng *rng) {
    for (int l = 0; l < s->n_acm; l++)
        acmt_acm_init_from_mlp(s->ap + s->off[l], &s->L[l], param_of(s->sp, l, "mlp.fc1.weight"),
                               param_of(s->sp, l, "mlp.fc1.bias"), param_of(s->sp, l, "mlp.fc2.weight"), rng);
    memset(s->fp, 0, sizeof(float) * (size_t)s->nfilm);
}

int acmt_speech_student_forward(acmt_speech_student *s, const float *const *frames, const int64_t *tokens, int B,
                                char *err, size_t errlen) {
    s->sp->mlp_fwd = mlp_fwd;
    s->sp->mlp_bwd = mlp_bwd;
    s->sp->mlp_ctx = s;
    int rc = acmt_speech_forward(s->sp, frames, tokens, B, err, errlen);
    s->sp->mlp_fwd = NULL;
    s->sp->mlp_bwd = NULL;
    return rc;
}

double acmt_speech_student_item_budget(const acmt_speech_student *s, int b) {
    const int64_t i0 = s->sp->item_off[b], T = s->sp->item_off[b + 1] - i0;
    if (T <= 0) return 0;
    double k = 0;
    for (int l = 0; l < s->n_acm; l++)
        for (int64_t t = 0; t < T; t++) k += s->acts[l].k[i0 + t];
    return k / ((double)T * s->n_acm * s->L[0].n);
}

acmt_aux acmt_speech_student_aux(acmt_speech_student *s, double beta, double w_b, double w_e, double w_d) {
    acmt_aux r = {0};
    const int A = s->n_acm, B = s->sp->B, N = s->L[0].n, C = s->L[0].choices;
    const int64_t R = s->sp->R, *io = s->sp->item_off;
    if (A <= 0 || B <= 0 || R <= 0) return r;
    /* every ACM has the same learners here, so FLOP fractions are k fractions */
    double ksum = 0;
    for (int a = 0; a < A; a++)
        for (int64_t i = 0; i < R; i++) ksum += s->acts[a].k[i];
    r.realised = ksum / ((double)R * A * N);
    r.budget = fabs(r.realised - beta);
    const double sgn = r.realised > beta ? 1 : r.realised < beta ? -1 : 0;
    double *bmean = calloc((size_t)B, sizeof(double)), *dbi = calloc((size_t)B, sizeof(double));
    if (!bmean || !dbi) {
        free(bmean), free(dbi);
        r.budget = NAN;
        return r;
    }
    for (int b = 0; b < B; b++) bmean[b] = acmt_speech_student_item_budget(s, b);
    if (B > 1) {
        double pairs = B * (B - 1) / 2.0, sum = 0;
        for (int i = 0; i < B; i++)
            for (int m = i + 1; m < B; m++) {
                double d = bmean[i] - bmean[m], sg = d > 0 ? 1 : d < 0 ? -1 : 0;
                sum += fabs(d);
                dbi[i] += -2.0 * sg / pairs;
                dbi[m] += 2.0 * sg / pairs;
            }
        r.diversity = -2.0 * sum / pairs;
    }
    const double logn = log((double)N + 1);
    for (int a = 0; a < A; a++)
        for (int b = 0; b < B; b++) {
            const int64_t T = io[b + 1] - io[b];
            if (T <= 0) continue;
            const uint8_t *kb = s->acts[a].k + io[b];
            double hist[ACMT_MAX_CHOICES] = {0}, dh[ACMT_MAX_CHOICES];
            for (int64_t t = 0; t < T; t++) hist[kb[t]] += 1.0 / (double)T;
            for (int c = 0; c < C; c++) {
                if (hist[c] > 0) r.entropy += hist[c] * log(hist[c]) / logn / ((double)B * A);
                const double hc = hist[c] > 1e-6 ? hist[c] : 1e-6;
                dh[c] = (log(hc) + 1) / logn / ((double)B * A) / (double)T;
            }
            float *d = s->dy_aux[a] + io[b] * C;
            for (int64_t t = 0; t < T; t++)
                for (int c = 0; c < C; c++) /* MLP ACMs: k = c */
                    d[t * C + c] = (float)(w_b * sgn * c / ((double)R * A * N) + w_e * dh[c] +
                                           w_d * dbi[b] * c / N / ((double)T * A));
        }
    free(bmean), free(dbi);
    return r;
}

double acmt_speech_student_backward(acmt_speech_student *s, const int32_t *const *labels, const int *nlabels,
                                    int *skipped) {
    memset(s->ag, 0, sizeof(float) * (size_t)s->nparams);
    memset(s->fg, 0, sizeof(float) * (size_t)s->nfilm);
    s->sp->mlp_fwd = mlp_fwd;
    s->sp->mlp_bwd = mlp_bwd;
    s->sp->mlp_ctx = s;
    double loss = acmt_speech_backward(s->sp, labels, nlabels, skipped);
    s->sp->mlp_fwd = NULL;
    s->sp->mlp_bwd = NULL;
    return loss;
}

int acmt_speech_student_save(const acmt_speech_student *s, const char *path, const char *extra_json, char *err,
                             size_t errlen) {
    const acmt_speech *sp = s->sp;
    const int per = 11; /* tensors per ACM: w1 b1 w2, three gate layers, FiLM scale and shift */
    acm_st_out *t = calloc((size_t)(sp->ntab + per * s->n_acm), sizeof *t);
    char(*names)[96] = calloc((size_t)(per * s->n_acm + 1), sizeof *names);
    if (!t || !names) {
        free(t), free(names);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    int n = 0, nn = 0;
    for (int i = 0; i < sp->ntab; i++) {
        int l;
        char rest[64];
        if (sscanf(sp->tab[i].name, "blocks.%d.%63s", &l, rest) == 2 && !strncmp(rest, "mlp.", 4)) continue;
        t[n].name = sp->tab[i].name;
        t[n].dtype = ACM_ST_F32;
        t[n].ndim = sp->tab[i].ndim;
        for (int d = 0; d < sp->tab[i].ndim; d++) t[n].shape[d] = sp->tab[i].shape[d];
        t[n++].data = sp->params + sp->tab[i].offset;
    }
    for (int a = 0; a < s->n_acm; a++) {
        const acmt_acm_layout *L = &s->L[a];
        const float *p = s->ap + s->off[a], *f = s->fp + (int64_t)a * 2 * L->gh;
        struct {
            const char *suffix;
            const float *data;
            int ndim;
            int64_t d0, d1;
        } e[] = {{"w1", p + L->w1, 2, L->nh, L->din},
                 {"b1", p + L->b1, 1, L->nh, 0},
                 {"w2", p + L->w2, 2, L->dout, L->nh},
                 {"gate.0.weight", p + L->g0w, 2, L->gh, L->din},
                 {"gate.0.bias", p + L->g0b, 1, L->gh, 0},
                 {"gate.1.weight", p + L->g1w, 2, L->gh, L->gh},
                 {"gate.1.bias", p + L->g1b, 1, L->gh, 0},
                 {"gate.2.weight", p + L->g2w, 2, L->choices, L->gh},
                 {"gate.2.bias", p + L->g2b, 1, L->choices, 0},
                 {"gate.film.scale", f, 1, L->gh, 0},
                 {"gate.film.shift", f + L->gh, 1, L->gh, 0}};
        for (int j = 0; j < per; j++) {
            snprintf(names[nn], sizeof names[nn], "%s.%s", L->name, e[j].suffix);
            t[n].name = names[nn++];
            t[n].dtype = ACM_ST_F32;
            t[n].ndim = e[j].ndim;
            t[n].shape[0] = e[j].d0;
            t[n].shape[1] = e[j].d1;
            t[n++].data = e[j].data;
        }
    }
    json_t *mods = json_array();
    for (int a = 0; a < s->n_acm; a++)
        json_array_append_new(mods, json_pack("{s:s, s:i}", "name", s->L[a].name, "learners", s->L[a].n));
    json_t *x = json_pack("{s:{s:o}}", "acm", "modules", mods);
    if (extra_json) {
        json_t *e = json_loads(extra_json, 0, NULL);
        if (json_is_object(e)) json_object_update(x, e);
        json_decref(e);
    }
    char *xs = json_dumps(x, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(x);
    char *meta = acmt_speech_meta_json(&sp->cfg, xs);
    free(xs);
    json_t *md = json_pack("{s:s}", "acm", meta ? meta : "{}");
    free(meta);
    int rc = acm__st_write(path, t, n, md, err, errlen);
    json_decref(md);
    free(t), free(names);
    return rc;
}
