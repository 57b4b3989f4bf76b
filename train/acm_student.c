/*
 * acm_student.c — an ACM model in training (acm_student.h).
 */
#include "train/acm_student.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "model.h"
#include "safetensors.h"

static const char *pos_suffix[ACM_POS_COUNT] = {"attn.q", "attn.k", "attn.v", "attn.proj", "mlp"};

int acmt_parse_modules(const char *s) {
    if (!strcmp(s, "all")) return (int)ACMT_POS_ALL;
    unsigned mask = 0;
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        static const char *names[ACM_POS_COUNT] = {"q", "k", "v", "o", "mlp"};
        int found = -1;
        for (int p = 0; p < ACM_POS_COUNT; p++)
            if (!strcmp(t, names[p])) found = p;
        if (found < 0) return -1;
        mask |= ACMT_POS_BIT(found);
    }
    return mask ? (int)mask : -1;
}

static const float *student_lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    const acmt_student *s = ctx;
    for (int i = 0; i < s->n_tens; i++)
        if (!strcmp(s->tens[i].name, name)) {
            *ndim = s->tens[i].ndim;
            *shape = s->tens[i].shape;
            return s->tens[i].p;
        }
    return NULL;
}

static void add_ref(acmt_student *s, const char *name, float *p, float *g, int ndim, int64_t d0, int64_t d1, int64_t d2,
                    int64_t d3) {
    acmt_tensor_ref *t = &s->tens[s->n_tens++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->p = p, t->g = g, t->ndim = ndim;
    t->shape[0] = d0, t->shape[1] = d1, t->shape[2] = d2, t->shape[3] = d3;
}

/* The forward hook: runs ACM md of the student on x (the engine's forward calls it for every ACM module). */
static void fwd_hook(void *ctx, float *out, int ldo, int accumulate, const float *x, int ldx, const acm__module *md,
                     int B, int T) {
    acmt_student *s = ctx;
    int a = md->info.acm_index;
    const acmt_acm_layout *L = &s->L[a];
    const float *p = s->ap + s->off[a];
    int64_t M = (int64_t)B * T;
    s->z[a] = x;
    s->ldz[a] = ldx;
    if (s->uniform_k > 0) {
        acmt_acm_fixed_select(&s->acts[a], L, M, s->uniform_k);
    } else {
        if (s->film) {
            acmt_film f = {s->fp + s->foff[a], s->fg + s->foff[a], s->row_beta};
            acmt_acm_gate_forward_film(&s->acts[a], p, &f, L, x, ldx, M);
        } else {
            acmt_acm_gate_forward(&s->acts[a], p, L, x, ldx, M);
        }
        acmt_acm_gumbel_select(&s->acts[a], L, M, s->tau, s->train_gates ? s->rng : NULL);
    }
    /* only the selected learners run, as at inference */
    acmt_acm_sparse_forward(out, ldo, accumulate, &s->acts[a], p, L, x, ldx, M);
}

/* The backward hook (vit_train.h): one ACM's backward inside the static backward pass. */
static void bwd_hook(void *ctx, float *dz, int lddz, const float *dout, int lddo, const acm__module *md, int B, int T) {
    acmt_student *s = ctx;
    int a = md->info.acm_index;
    acmt_acm_sparse_backward(s->ag + s->off[a], dz, lddz, &s->acts[a], s->ap + s->off[a], &s->L[a], s->z[a], s->ldz[a],
                             dout, lddo, s->uniform_k > 0 ? NULL : s->dy_aux[a], s->tau, s->uniform_k <= 0,
                             (int64_t)B * T);
}

acmt_student *acmt_student_new(acmt_vit *v, unsigned mask, int n_learners, int gh, char *err, size_t errlen) {
    const acmt_vit_config *c = &v->cfg;
    const int D = c->dim, depth = c->depth;
    if (n_learners < 1 || n_learners > 16 || (c->mlp_hidden % n_learners)) {
        snprintf(err, errlen, "learners must be in 1..16 and divide the MLP width %d (got %d)", c->mlp_hidden,
                 n_learners);
        return NULL;
    }
    acmt_student *s = calloc(1, sizeof *s);
    s->v = v;
    s->mask = mask;
    s->tau = 0.8f;
    int maxa = depth * ACM_POS_COUNT;
    s->L = calloc((size_t)maxa, sizeof *s->L);
    s->off = calloc((size_t)maxa, sizeof *s->off);
    s->blk_of = calloc((size_t)maxa, sizeof *s->blk_of);
    s->pos_of = calloc((size_t)maxa, sizeof *s->pos_of);
    s->acts = calloc((size_t)maxa, sizeof *s->acts);
    s->z = calloc((size_t)maxa, sizeof *s->z);
    s->ldz = calloc((size_t)maxa, sizeof *s->ldz);
    s->dy_aux = calloc((size_t)maxa, sizeof *s->dy_aux);
    s->p_learner = calloc((size_t)maxa, sizeof *s->p_learner);
    s->tens = calloc((size_t)v->ntab + (size_t)maxa * 9 + (size_t)depth * 6, sizeof *s->tens);
    /* projection learner width: the N learners together cost what the D x D projection cost */
    int hp = (int)lround((double)(D * D + D) / (2.0 * D + 1) / n_learners);
    if (hp < 1) hp = 1;
    int64_t off = 0;
    for (int l = 0; l < depth; l++)
        for (int p = 0; p < ACM_POS_COUNT; p++) {
            if (!(mask & ACMT_POS_BIT(p))) continue;
            char nm[64];
            snprintf(nm, sizeof nm, "blocks.%d.%s", l, pos_suffix[p]);
            int is_mlp = p == ACM_POS_MLP;
            acmt_acm_layout *L = &s->L[s->n_acm];
            acmt_acm_layout_init(L, nm, D, D, n_learners, is_mlp ? c->mlp_hidden / n_learners : hp, is_mlp, gh);
            s->off[s->n_acm] = off;
            s->blk_of[s->n_acm] = l;
            s->pos_of[s->n_acm] = p;
            s->p_learner[s->n_acm] = 2.0 * ((double)L->din * L->h + (double)L->h * L->dout);
            s->p_total += L->n * s->p_learner[s->n_acm];
            off += L->numel;
            s->n_acm++;
        }
    s->nparams = off;
    size_t np = (size_t)(off ? off : 1);
    s->ap = calloc(np, sizeof(float));
    s->ag = calloc(np, sizeof(float));
    s->am = calloc(np, sizeof(float));
    s->av = calloc(np, sizeof(float));
    int64_t M = (int64_t)v->max_batch * v->T;
    int bad = !s->ap || !s->ag || !s->am || !s->av;
    for (int a = 0; a < s->n_acm && !bad; a++) {
        bad = acmt_acm_acts_alloc(&s->acts[a], &s->L[a], M) != 0;
        s->dy_aux[a] = calloc((size_t)M * s->L[a].choices, sizeof(float));
        bad = bad || !s->dy_aux[a];
    }
    if (bad) {
        snprintf(err, errlen, "out of memory for %d ACMs", s->n_acm);
        s->v = NULL; /* the caller keeps v on failure */
        acmt_student_free(s);
        return NULL;
    }
    /* the model file's tensors: static ones (fused qkv split where needed), then the ACMs */
    for (int i = 0; i < v->ntab; i++) {
        const acmt_param *t = &v->tab[i];
        int l = -1;
        char rest[64] = "";
        if (sscanf(t->name, "blocks.%d.%63s", &l, rest) == 2) {
            int qkv_acm = mask & (ACMT_POS_BIT(ACM_POS_Q) | ACMT_POS_BIT(ACM_POS_K) | ACMT_POS_BIT(ACM_POS_V));
            if (!strncmp(rest, "attn.qkv.", 9) && qkv_acm) {
                int is_w = !strcmp(rest, "attn.qkv.weight");
                for (int p = ACM_POS_Q; p <= ACM_POS_V; p++) {
                    if (mask & ACMT_POS_BIT(p)) continue;
                    char nm[96];
                    snprintf(nm, sizeof nm, "blocks.%d.%s.%s", l, pos_suffix[p], is_w ? "weight" : "bias");
                    float *base = v->params + t->offset + (int64_t)p * D * (is_w ? D : 1);
                    if (is_w)
                        add_ref(s, nm, base, NULL, 2, D, D, 0, 0);
                    else
                        add_ref(s, nm, base, NULL, 1, D, 0, 0, 0);
                }
                continue;
            }
            if (!strncmp(rest, "attn.proj.", 10) && (mask & ACMT_POS_BIT(ACM_POS_O))) continue;
            if (!strncmp(rest, "mlp.", 4) && (mask & ACMT_POS_BIT(ACM_POS_MLP))) continue;
        }
        add_ref(s, t->name, v->params + t->offset, v->grads + t->offset, t->ndim, t->shape[0], t->shape[1],
                t->shape[2], t->shape[3]);
    }
    for (int a = 0; a < s->n_acm; a++) {
        const acmt_acm_layout *L = &s->L[a];
        float *p = s->ap + s->off[a], *g = s->ag + s->off[a];
        char nm[96];
#define REF(suffix, o, nd, d0, d1)                              \
    snprintf(nm, sizeof nm, "%s.%s", L->name, suffix);          \
    add_ref(s, nm, p + L->o, g + L->o, nd, d0, d1, 0, 0);
        REF("w1", w1, 2, L->nh, L->din)
        REF("b1", b1, 1, L->nh, 0)
        REF("w2", w2, 2, L->dout, L->nh)
        REF("gate.0.weight", g0w, 2, L->gh, L->din)
        REF("gate.0.bias", g0b, 1, L->gh, 0)
        REF("gate.1.weight", g1w, 2, L->gh, L->gh)
        REF("gate.1.bias", g1b, 1, L->gh, 0)
        REF("gate.2.weight", g2w, 2, L->choices, L->gh)
        REF("gate.2.bias", g2b, 1, L->choices, 0)
#undef REF
    }
    /* metadata: the static model's, plus the ACM layout */
    json_t *mods = json_array();
    for (int a = 0; a < s->n_acm; a++)
        json_array_append_new(mods, json_pack("{s:s, s:i}", "name", s->L[a].name, "learners", s->L[a].n));
    json_t *extra = json_pack("{s:{s:o}}", "acm", "modules", mods);
    char *ex = json_dumps(extra, JSON_COMPACT);
    json_decref(extra);
    s->meta_json = acmt_vit_meta_json(c, ex);
    free(ex);
    char merr[512];
    s->model = acm__model_build(s->meta_json, student_lookup, s, merr, sizeof merr);
    if (!s->model) {
        snprintf(err, errlen, "student model: %s", merr);
        s->v = NULL;
        acmt_student_free(s);
        return NULL;
    }
    return s;
}

void acmt_student_free(acmt_student *s) {
    if (!s) return;
    acm_model_free(s->model);
    for (int a = 0; a < s->n_acm; a++) {
        acmt_acm_acts_free(&s->acts[a]);
        free(s->dy_aux[a]);
    }
    free(s->L), free(s->off), free(s->blk_of), free(s->pos_of), free(s->acts), free(s->z), free(s->ldz);
    free(s->dy_aux), free(s->p_learner), free(s->tens), free(s->meta_json);
    free(s->ap), free(s->ag), free(s->am), free(s->av);
    free(s->foff), free(s->fp), free(s->fg), free(s->fm), free(s->fv), free(s->row_beta);
    acmt_vit_free(s->v);
    free(s);
}

int acmt_student_film(acmt_student *s, char *err, size_t errlen) {
    if (s->film) return 0;
    s->foff = calloc((size_t)(s->n_acm ? s->n_acm : 1), sizeof *s->foff);
    int64_t n = 0;
    for (int a = 0; a < s->n_acm && s->foff; a++) {
        s->foff[a] = n;
        n += 2 * (int64_t)s->L[a].gh;
    }
    s->nfilm = n;
    size_t np = (size_t)(n ? n : 1);
    s->fp = calloc(np, sizeof(float));
    s->fg = calloc(np, sizeof(float));
    s->fm = calloc(np, sizeof(float));
    s->fv = calloc(np, sizeof(float));
    s->row_beta = calloc((size_t)s->v->max_batch * s->v->T, sizeof(float));
    if (!s->foff || !s->fp || !s->fg || !s->fm || !s->fv || !s->row_beta) {
        snprintf(err, errlen, "out of memory for the FiLM parameters of %d ACMs", s->n_acm);
        return -1;
    }
    s->film = 1;
    return 0;
}

void acmt_student_init(acmt_student *s, int init_mlp_from_teacher, acmt_rng *rng) {
    for (int a = 0; a < s->n_acm; a++) {
        const acmt_acm_layout *L = &s->L[a];
        float *p = s->ap + s->off[a];
        if (init_mlp_from_teacher && s->pos_of[a] == ACM_POS_MLP) {
            char n1[64], b1[64], n2[64];
            int l = (int)s->blk_of[a];
            snprintf(n1, sizeof n1, "blocks.%d.mlp.fc1.weight", l);
            snprintf(b1, sizeof b1, "blocks.%d.mlp.fc1.bias", l);
            snprintf(n2, sizeof n2, "blocks.%d.mlp.fc2.weight", l);
            acmt_acm_init_from_mlp(p, L, acmt_vit_param(s->v, s->v->params, n1), acmt_vit_param(s->v, s->v->params, b1),
                                   acmt_vit_param(s->v, s->v->params, n2), rng);
        } else {
            acmt_acm_init_random(p, L, rng);
        }
    }
}

int acmt_student_forward(acmt_student *s, const float *x, int B, char *err, size_t errlen) {
    acmt_vit *v = s->v;
    if (B < 1 || B > v->max_batch) {
        snprintf(err, errlen, "batch %d outside 1..%d", B, v->max_batch);
        return ACM_EINVAL;
    }
    const int64_t per = (int64_t)v->cfg.in_chans * v->cfg.image_size * v->cfg.image_size;
    for (int b = 0; b < B; b++) {
        v->items[b] = (acm_item){.pixels = x + b * per, .policy = acm_policy_default()};
        memset(&v->res[b], 0, sizeof v->res[b]);
    }
    if (s->film)
        for (int64_t i = 0; i < (int64_t)B * v->T; i++) s->row_beta[i] = s->beta;
    v->acts.acm_hook = fwd_hook;
    v->acts.acm_hook_ctx = s;
    int rc = acm__vit_forward(s->model, &v->acts, &v->scratch, v->items, v->res, B, err, errlen);
    v->acts.acm_hook = NULL;
    v->acts.acm_hook_ctx = NULL;
    return rc;
}

acmt_aux acmt_aux_losses(float *const *dy, const uint8_t *const *k, const acmt_acm_layout *L, const double *p,
                         int A, int B, int T, double beta, double w_b, double w_e, double w_d) {
    acmt_aux r = {0};
    if (A <= 0 || B <= 0) return r;
    double p_total = 0;
    for (int a = 0; a < A; a++) p_total += L[a].n * p[a];
    double *ratio = calloc((size_t)B, sizeof(double)), *bmean = calloc((size_t)B, sizeof(double)),
           *dbi = calloc((size_t)B, sizeof(double));
    /* per item: realised fraction (budget) and mean normalised k (diversity) */
    for (int b = 0; b < B; b++) {
        double lf = 0, kn = 0;
        for (int a = 0; a < A; a++)
            for (int t = 0; t < T; t++) {
                int kk = k[a][(int64_t)b * T + t];
                lf += kk * p[a];
                kn += (double)kk / L[a].n;
            }
        ratio[b] = lf / (T * p_total);
        bmean[b] = kn / ((double)T * A);
        r.realised += ratio[b] / B;
    }
    /* L_b = |mean_b ratio_b - beta|: dL/dk = sign * p / (B T P); on the one-hot, k = kmin + c */
    r.budget = fabs(r.realised - beta);
    double sgn = r.realised > beta ? 1 : r.realised < beta ? -1 : 0;
    /* L_d = -2 * mean over unordered pairs |b_i - b_m| */
    if (B > 1) r.diversity = acmt_diversity_loss(bmean, B, dbi);
    /* L_e = mean over items and ACMs of sum_c h_c log h_c / log(N+1), h = histogram of the item's choices */
    for (int a = 0; a < A; a++) {
        const int C = L[a].choices;
        const double logn = log((double)L[a].n + 1);
        for (int b = 0; b < B; b++) {
            const uint8_t *kb = k[a] + (int64_t)b * T;
            double hist[ACMT_MAX_CHOICES] = {0}, dh[ACMT_MAX_CHOICES];
            for (int t = 0; t < T; t++) hist[kb[t] - L[a].kmin] += 1.0 / T;
            for (int c = 0; c < C; c++) {
                if (hist[c] > 0) r.entropy += hist[c] * log(hist[c]) / logn / ((double)B * A);
                /* d/dy_tc: (log h_c + 1) / log(N+1) / (B A) / T; log clamped where a choice is absent */
                double hc = hist[c] > 1e-6 ? hist[c] : 1e-6;
                dh[c] = (log(hc) + 1) / logn / ((double)B * A) / T;
            }
            float *d = dy[a] + (int64_t)b * T * C;
            for (int t = 0; t < T; t++)
                for (int c = 0; c < C; c++) {
                    double kk = L[a].kmin + c;
                    d[(int64_t)t * C + c] = (float)(w_b * sgn * kk * p[a] / ((double)B * T * p_total) + w_e * dh[c] +
                                                    w_d * dbi[b] * kk / L[a].n / ((double)T * A));
                }
        }
    }
    free(ratio), free(bmean), free(dbi);
    return r;
}

acmt_aux acmt_student_aux(acmt_student *s, int B, double beta, double w_b, double w_e, double w_d) {
    const uint8_t *k[ACM_POS_COUNT * 256];
    for (int a = 0; a < s->n_acm; a++) k[a] = s->acts[a].k;
    return acmt_aux_losses(s->dy_aux, k, s->L, s->p_learner, s->n_acm, B, s->v->T, beta, w_b, w_e, w_d);
}

double acmt_student_backward(acmt_student *s, const int32_t *targets, int B, float smoothing, int *correct) {
    memset(s->ag, 0, sizeof(float) * (size_t)s->nparams);
    if (s->film) memset(s->fg, 0, sizeof(float) * (size_t)s->nfilm);
    return acmt_vit_backward_ex(s->v, s->model, bwd_hook, s, targets, B, smoothing, correct);
}

int acmt_student_save(const acmt_student *s, const char *path, const char *extra_json, char *err, size_t errlen) {
    const int nf = s->film ? 2 * s->n_acm : 0;
    acm_st_out *t = calloc((size_t)(s->n_tens + nf), sizeof *t);
    char(*fnames)[96] = nf ? calloc((size_t)nf, sizeof *fnames) : NULL;
    if (!t || (nf && !fnames)) {
        free(t);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < s->n_tens; i++) {
        t[i].name = s->tens[i].name;
        t[i].dtype = ACM_ST_F32;
        t[i].ndim = s->tens[i].ndim;
        for (int d = 0; d < s->tens[i].ndim; d++) t[i].shape[d] = s->tens[i].shape[d];
        t[i].data = s->tens[i].p;
    }
    /* FiLM: NAME.gate.film.scale (gamma) and NAME.gate.film.shift (delta), [gh] each */
    for (int j = 0; j < nf; j++) {
        const int a = j / 2, shift = j % 2;
        acm_st_out *o = &t[s->n_tens + j];
        snprintf(fnames[j], sizeof fnames[j], "%s.gate.film.%s", s->L[a].name, shift ? "shift" : "scale");
        o->name = fnames[j];
        o->dtype = ACM_ST_F32;
        o->ndim = 1;
        o->shape[0] = s->L[a].gh;
        o->data = s->fp + s->foff[a] + (shift ? s->L[a].gh : 0);
    }
    json_t *meta = json_loads(s->meta_json, 0, NULL);
    if (extra_json) {
        json_t *x = json_loads(extra_json, 0, NULL);
        if (json_is_object(x)) json_object_update(meta, x);
        json_decref(x);
    }
    char *ms = json_dumps(meta, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(meta);
    json_t *md = json_pack("{s:s}", "acm", ms);
    free(ms);
    int rc = acm__st_write(path, t, s->n_tens + nf, md, err, errlen);
    json_decref(md);
    free(t);
    free(fnames);
    return rc;
}

double acmt_diversity_loss(const double *q, int B, double *dq) {
    const double pairs = B * (B - 1) / 2.0;
    double sum = 0;
    for (int i = 0; i < B; i++)
        for (int m = i + 1; m < B; m++) {
            const double d = q[i] - q[m], sg = d > 0 ? 1 : d < 0 ? -1 : 0;
            sum += fabs(d);
            dq[i] += -2.0 * sg / pairs;
            dq[m] += 2.0 * sg / pairs;
        }
    return -2.0 * sum / pairs;
}
