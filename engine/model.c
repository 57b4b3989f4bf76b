/*
 * model.c — loads an ACM ViT (format in model.h): parses the metadata, binds every tensor by name with its exact
 * shape, collapses each ACM's linear gate into one [C, Din] matrix (a FiLM gate into two, stacked [2C, Din]),
 * computes the dense FLOPs and the budget units.
 * The model is immutable afterwards.
 */
#include "model.h"

#include <fcntl.h>
#include <math.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "logmel.h"
#include "util.h"

typedef struct {
    acm__tensor_lookup lookup;
    void *ctx;
    const float **bound; /* data pointers bound so far */
    size_t *bytes;       /* and their sizes */
    int nbound, cap;
    char *err;
    size_t errlen;
    int rc;
} binder;

/* Binds tensor `name`, which must have exactly the shape want[0..wn-1]. Records the first error; every bound data
 * pointer is remembered so that the file loader can name tensors the configuration does not use. */
static const float *bind_dims(binder *b, const char *name, const int64_t *want, int wn) {
    if (b->rc) return NULL;
    int nd;
    const int64_t *shape;
    const float *p = b->lookup(b->ctx, name, &nd, &shape);
    if (!p) {
        b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT, "tensor '%s' is missing", name);
        return NULL;
    }
    int ok = nd == wn;
    for (int i = 0; ok && i < wn; i++) ok = shape[i] == want[i];
    if (!ok) {
        char got[160] = "", exp[160] = "";
        size_t o = 0;
        for (int i = 0; i < nd && i < 8; i++)
            o += (size_t)snprintf(got + o, sizeof got - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
        o = 0;
        for (int i = 0; i < wn; i++)
            o += (size_t)snprintf(exp + o, sizeof exp - o, "%s%lld", i ? ", " : "", (long long)want[i]);
        b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT, "tensor '%s' has shape [%s], expected [%s]", name, got, exp);
        return NULL;
    }
    if (b->nbound == b->cap) {
        int cap = b->cap ? 2 * b->cap : 256;
        const float **nb = realloc(b->bound, (size_t)cap * sizeof *nb);
        if (nb) b->bound = nb;
        size_t *ny = nb ? realloc(b->bytes, (size_t)cap * sizeof *ny) : NULL;
        if (!ny) {
            b->rc = acm__fail(b->err, b->errlen, ACM_ENOMEM, "out of memory");
            return NULL;
        }
        b->bytes = ny;
        b->cap = cap;
    }
    size_t n = sizeof(float);
    for (int i = 0; i < wn; i++) n *= (size_t)want[i];
    b->bytes[b->nbound] = n;
    b->bound[b->nbound++] = p;
    return p;
}
#define bind(b, name, ...) \
    bind_dims((b), (name), (const int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

static int get_int(json_t *o, const char *k, int *out, int lo, int hi, char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v))
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: '%s' is missing or not an integer", k);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: '%s' = %lld outside [%d, %d]", k, (long long)x, lo, hi);
    *out = (int)x;
    return 0;
}

static double linear_flops(int din, int dout) { return 2.0 * din * dout; }

/* Sets up one module at `name` of the given kind. For ACMs n learners; for LINEAR/MLP n is ignored. */
static void setup_module(binder *b, acm__module *md, const char *name, acm_module_kind kind, int din, int dout,
                         int hidden, int n, int is_mlp) {
    char nm[128];
    md->info.kind = kind;
    md->info.din = din;
    md->info.dout = dout;
    md->info.acm_index = -1;
    snprintf(md->info.name, sizeof md->info.name, "%s", name);
    if (kind == ACM_MOD_LINEAR) {
        snprintf(nm, sizeof nm, "%s.weight", name);
        md->w = bind(b, nm, dout, din);
        snprintf(nm, sizeof nm, "%s.bias", name);
        md->b = bind(b, nm, dout);
        return;
    }
    if (kind == ACM_MOD_MLP) {
        md->info.hidden = hidden;
        snprintf(nm, sizeof nm, "%s.fc1.weight", name);
        md->fc1_w = bind(b, nm, hidden, din);
        snprintf(nm, sizeof nm, "%s.fc1.bias", name);
        md->fc1_b = bind(b, nm, hidden);
        snprintf(nm, sizeof nm, "%s.fc2.weight", name);
        md->fc2_w = bind(b, nm, dout, hidden);
        snprintf(nm, sizeof nm, "%s.fc2.bias", name);
        md->fc2_b = bind(b, nm, dout);
        return;
    }
    /* ACM: the learner width comes from w1's rows. */
    int nd;
    const int64_t *shape;
    snprintf(nm, sizeof nm, "%s.w1", name);
    if (!b->rc && b->lookup(b->ctx, nm, &nd, &shape) && nd == 2 && shape[0] > 0 && shape[0] % n == 0 &&
        shape[0] / n <= (1 << 20))
        md->info.h = (int)(shape[0] / n);
    else if (!b->rc) {
        b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT,
                          "tensor '%s' must exist with shape [N*h, %d] for N = %d learners", nm, din, n);
        return;
    }
    md->info.n = n;
    md->info.hidden = n * md->info.h;
    md->info.kmin = is_mlp ? 0 : 1;
    md->info.gelu = is_mlp;
    md->choices = is_mlp ? n + 1 : n;
    int nh = md->info.hidden;
    md->w1 = bind(b, nm, nh, din);
    snprintf(nm, sizeof nm, "%s.b1", name);
    md->b1 = bind(b, nm, nh);
    snprintf(nm, sizeof nm, "%s.w2", name);
    md->w2 = bind(b, nm, dout, nh);
    md->learner_flops = 2.0 * ((double)din * md->info.h + (double)md->info.h * dout);
    /* Gate: layers gate.0 .. gate.{L-1}, collapsed: G = W_{L-1} ... W_0, g = W_{L-1}(...(W_1 b_0 + b_1)...) + b_{L-1}.
     * Computed in double, stored in float. Gp, gp: the chain before the last layer (its input u = Gp z + gp), which
     * a FiLM gate needs. */
    double *G = NULL, *g = NULL, *Gp = NULL, *gp = NULL;
    const float *Wl = NULL; /* the last layer's weight [rows, in_l] */
    int rows = din, in_l = din, layers = 0; /* current output width of the chain; G is [rows, din] */
    for (int j = 0;; j++) {
        snprintf(nm, sizeof nm, "%s.gate.%d.weight", name, j);
        if (b->rc || !b->lookup(b->ctx, nm, &nd, &shape)) {
            if (j == 0 && !b->rc)
                b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT, "tensor '%s' (the gate of ACM '%s') is missing", nm, name);
            break;
        }
        if (nd != 2 || shape[1] != rows || shape[0] <= 0 || shape[0] > 4096) {
            b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT, "tensor '%s' must have shape [out, %d]", nm, rows);
            break;
        }
        int out = (int)shape[0];
        const float *W = bind(b, nm, out, rows);
        snprintf(nm, sizeof nm, "%s.gate.%d.bias", name, j);
        const float *bb = bind(b, nm, out);
        if (b->rc) break;
        double *G2 = calloc((size_t)out * din, sizeof(double)), *g2 = calloc((size_t)out, sizeof(double));
        if (!G2 || !g2) {
            free(G2);
            free(g2);
            b->rc = acm__fail(b->err, b->errlen, ACM_ENOMEM, "out of memory");
            break;
        }
        for (int o = 0; o < out; o++) {
            g2[o] = bb[o];
            for (int r = 0; r < rows; r++) {
                double w = W[(size_t)o * rows + r];
                if (j == 0) {
                    G2[(size_t)o * din + r] = w;
                } else {
                    g2[o] += w * g[r];
                    for (int c = 0; c < din; c++) G2[(size_t)o * din + c] += w * G[(size_t)r * din + c];
                }
            }
        }
        free(Gp);
        free(gp);
        Gp = G;
        gp = g;
        G = G2;
        g = g2;
        Wl = W;
        in_l = rows;
        rows = out;
        layers++;
    }
    if (!b->rc && rows != md->choices)
        b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT, "gate of ACM '%s' has %d outputs, expected %d", name, rows,
                          md->choices);
    /* FiLM (model.h): both tensors or neither, on a gate with a hidden layer */
    const float *fs = NULL, *fh = NULL;
    if (!b->rc) {
        char ns[160], nf[160];
        snprintf(ns, sizeof ns, "%s.gate.film.scale", name);
        snprintf(nf, sizeof nf, "%s.gate.film.shift", name);
        int has_s = b->lookup(b->ctx, ns, &nd, &shape) != NULL, has_h = b->lookup(b->ctx, nf, &nd, &shape) != NULL;
        if (has_s != has_h)
            b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT,
                              "ACM '%s': '%s' without '%s' (a FiLM gate needs both scale and shift)", name,
                              has_s ? ns : nf, has_s ? nf : ns);
        else if (has_s && layers < 2)
            b->rc = acm__fail(b->err, b->errlen, ACM_EFORMAT,
                              "ACM '%s': FiLM on a gate of a single layer (it modulates the input of the last layer, "
                              "which must be a hidden layer)", name);
        else if (has_s) {
            fs = bind(b, ns, in_l);
            fh = bind(b, nf, in_l);
        }
    }
    md->info.film = fs != NULL && fh != NULL && !b->rc;
    md->gate_rows = md->info.film ? 2 * rows : rows;
    if (!b->rc) {
        const int R = md->info.film ? 3 * rows : rows; /* FiLM: A, B, then the ARGMAX fold (acm__model_build) */
        md->gate_w = malloc(sizeof(float) * (size_t)R * din);
        md->gate_b = malloc(sizeof(float) * (size_t)R);
        md->fold_w = md->gate_w;
        md->fold_b = md->gate_b;
        if (!md->gate_w || !md->gate_b) b->rc = acm__fail(b->err, b->errlen, ACM_ENOMEM, "out of memory");
        for (size_t i = 0; !b->rc && i < (size_t)rows * din; i++) md->gate_w[i] = (float)G[i];
        for (int i = 0; !b->rc && i < rows; i++) md->gate_b[i] = (float)g[i];
        /* B = W_{L-1} diag(gamma) Gp, c' = W_{L-1} (gamma ⊙ gp + delta), in double */
        for (int o = 0; !b->rc && md->info.film && o < rows; o++) {
            double cb = 0;
            double *acc = G; /* row o of A is stored; reuse G's row o as the accumulator of B's row o */
            memset(acc + (size_t)o * din, 0, sizeof(double) * (size_t)din);
            for (int r = 0; r < in_l; r++) {
                double w = Wl[(size_t)o * in_l + r], ws = w * fs[r];
                cb += w * (fs[r] * gp[r] + fh[r]);
                for (int c = 0; c < din; c++) acc[(size_t)o * din + c] += ws * Gp[(size_t)r * din + c];
            }
            for (int c = 0; c < din; c++) md->gate_w[(size_t)(rows + o) * din + c] = (float)acc[(size_t)o * din + c];
            md->gate_b[rows + o] = (float)cb;
        }
    }
    free(G);
    free(g);
    free(Gp);
    free(gp);
}

/* Learners of the module `name` if the "acm" metadata lists it (removing it from `pending`), else 0. */
static int acm_learners(json_t *pending, const char *name) {
    json_t *v = json_object_get(pending, name);
    if (!v) return 0;
    int n = (int)json_integer_value(v);
    json_object_del(pending, name);
    return n;
}

static double module_flops_dense(const acm__module *md) {
    switch (md->info.kind) {
    case ACM_MOD_LINEAR: return linear_flops(md->info.din, md->info.dout);
    case ACM_MOD_MLP:
    case ACM_MOD_ACM:
        if (md->info.kind == ACM_MOD_ACM && !md->info.gelu) return linear_flops(md->info.din, md->info.dout);
        return linear_flops(md->info.din, md->info.hidden) + linear_flops(md->info.hidden, md->info.dout);
    }
    return 0;
}

static void model_free_owned(acm_model *m) {
    if (m->blocks)
        for (int i = 0; i < m->cfg.depth; i++)
            for (int p = 0; p < ACM_POS_COUNT; p++) {
                free(m->blocks[i].mod[p].gate_w);
                free(m->blocks[i].mod[p].gate_b);
            }
    if (m->labels)
        for (int i = 0; i < m->cfg.num_classes; i++) free(m->labels[i]);
    free(m->labels);
    free(m->blocks);
    free(m->acms);
    free(m->bound);
    free(m->bound_bytes);
    free(m->mean_beta);
    free(m->mean_lambda);
    free(m->cap_beta);
    free(m->cap_share);
    free(m->meta_json);
    json_decref(m->meta);
}

/* The image fields of a ViT (model.h). */
static int vit_config(acm_model *m, json_t *J, char *err, size_t errlen) {
    acm_config *c = &m->cfg;
    if (get_int(J, "image_size", &c->image_size, 1, 4096, err, errlen) ||
        get_int(J, "patch_size", &c->patch_size, 1, 512, err, errlen) ||
        get_int(J, "in_chans", &c->in_chans, 1, 3, err, errlen) ||
        get_int(J, "num_classes", &c->num_classes, 1, 100000, err, errlen))
        return ACM_ECONFIG;
    if (c->in_chans == 2) return acm__fail(err, errlen, ACM_ECONFIG, "metadata: in_chans must be 1 or 3");
    /* the convolutional stem: each 3x3 layer with padding 1 maps side S to (S - 1) / stride + 1 */
    c->feat_chans = c->in_chans;
    c->feat_size = c->image_size;
    c->stem_depth = 0;
    json_t *js_stem = json_object_get(J, "stem");
    if (js_stem) {
        json_t *jc = json_object_get(js_stem, "channels"), *jst = json_object_get(js_stem, "strides");
        int n = json_is_array(jc) ? (int)json_array_size(jc) : -1;
        if (!json_is_object(js_stem) || n < 1 || n > ACM_MAX_STEM || !json_is_array(jst) ||
            (int)json_array_size(jst) != n)
            return acm__fail(err, errlen, ACM_ECONFIG, "metadata: stem must be {\"channels\": [1..%d integers], "
                             "\"strides\": [as many integers]}", ACM_MAX_STEM);
        for (int i = 0; i < n; i++) {
            json_t *a = json_array_get(jc, i), *s = json_array_get(jst, i);
            json_int_t ch = json_integer_value(a), st = json_integer_value(s);
            if (!json_is_integer(a) || ch < 1 || ch > 1024 || !json_is_integer(s) || st < 1 || st > 4)
                return acm__fail(err, errlen, ACM_ECONFIG, "metadata: stem layer %d needs channels in [1, 1024] and "
                                 "stride in [1, 4]", i);
            c->stem_chans[i] = (int)ch;
            c->stem_stride[i] = (int)st;
            c->feat_chans = (int)ch;
            c->feat_size = (c->feat_size - 1) / (int)st + 1;
        }
        c->stem_depth = n;
    }
    if (c->feat_size % c->patch_size)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: %s %d is not a multiple of patch_size %d",
                         c->stem_depth ? "the stem's output side" : "image_size", c->feat_size, c->patch_size);
    c->grid = c->feat_size / c->patch_size;
    c->num_patches = c->grid * c->grid;
    c->tokens = c->num_patches + 1;
    if (c->tokens > 1 << 16)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: %d tokens is too many", c->tokens);
    /* preprocessing */
    json_t *pp = json_object_get(J, "preprocess");
    json_t *jm = json_object_get(pp, "mean"), *js = json_object_get(pp, "std");
    if (!json_is_array(jm) || !json_is_array(js) || (int)json_array_size(jm) != c->in_chans ||
        (int)json_array_size(js) != c->in_chans)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: preprocess.mean and preprocess.std need %d numbers each",
                         c->in_chans);
    for (int i = 0; i < c->in_chans; i++) {
        c->mean[i] = (float)json_number_value(json_array_get(jm, i));
        c->std[i] = (float)json_number_value(json_array_get(js, i));
        if (!json_is_number(json_array_get(jm, i)) || !(c->std[i] > 0))
            return acm__fail(err, errlen, ACM_ECONFIG, "metadata: preprocess mean/std[%d] invalid (std must be > 0)",
                             i);
    }
    /* labels */
    m->labels = calloc((size_t)c->num_classes, sizeof(char *));
    if (!m->labels) return acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
    json_t *jl = json_object_get(J, "labels");
    if (jl && (!json_is_array(jl) || (int)json_array_size(jl) != c->num_classes))
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: labels must be an array of %d strings", c->num_classes);
    for (int i = 0; i < c->num_classes; i++) {
        char buf[16];
        const char *s = jl ? json_string_value(json_array_get(jl, i)) : NULL;
        if (jl && !s) return acm__fail(err, errlen, ACM_ECONFIG, "metadata: labels[%d] is not a string", i);
        if (!s) {
            snprintf(buf, sizeof buf, "%d", i);
            s = buf;
        }
        m->labels[i] = strdup(s);
        if (!m->labels[i]) return acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
    }
    c->labels = (const char *const *)m->labels;
    return 0;
}

/* A number field of an object: absent -> def; present and not a number in [lo, hi] -> error naming it. */
static int get_num(json_t *o, const char *what, const char *k, double def, double lo, double hi, double *out,
                   char *err, size_t errlen) {
    json_t *v = json_object_get(o, k);
    *out = def;
    if (!v) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !(x >= lo && x <= hi))
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: %s%s must be a number in [%g, %g]", what, k, lo, hi);
    *out = x;
    return 0;
}

/* The speech fields (model.h): alphabet, chunk, left_context, rope_base, frontend. */
static int speech_config(acm_model *m, json_t *J, char *err, size_t errlen) {
    acm_config *c = &m->cfg;
    if ((c->dim / c->heads) % 2)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: head width dim/heads = %d must be even (rotary)",
                         c->dim / c->heads);
    const char *al = json_string_value(json_object_get(J, "alphabet"));
    if (!al || !*al || strlen(al) > 255)
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: alphabet must be a string of 1 to 255 characters");
    for (size_t i = 0; al[i]; i++) {
        if ((unsigned char)al[i] < 0x20 || (unsigned char)al[i] > 0x7e)
            return acm__fail(err, errlen, ACM_ECONFIG, "metadata: alphabet character %zu is not printable ASCII", i);
        if (strchr(al + i + 1, al[i]))
            return acm__fail(err, errlen, ACM_ECONFIG, "metadata: alphabet has '%c' twice", al[i]);
    }
    c->num_classes = 1 + (int)strlen(al);
    if (get_int(J, "chunk", &c->chunk, 1, 1024, err, errlen) ||
        get_int(J, "left_context", &c->left_context, 0, 65536, err, errlen))
        return ACM_ECONFIG;
    double v;
    if (get_num(J, "", "rope_base", 10000, 1.0000001, 1e9, &v, err, errlen)) return ACM_ECONFIG;
    c->rope_base = (float)v;
    json_t *fe = json_object_get(J, "frontend");
    if (!json_is_object(fe))
        return acm__fail(err, errlen, ACM_ECONFIG, "metadata: frontend must be an object with n_mels and stack");
    if (get_int(fe, "n_mels", &c->n_mels, 1, 1024, err, errlen) || get_int(fe, "stack", &c->stack, 1, 64, err, errlen))
        return ACM_ECONFIG;
    acm_logmel_params lp = acm_logmel_default_params();
    double sr, nf, wl, hl, f0, f1, lf;
    if (get_num(fe, "frontend.", "sample_rate", lp.sample_rate, 1, 1e6, &sr, err, errlen) ||
        get_num(fe, "frontend.", "n_fft", lp.n_fft, 16, 65536, &nf, err, errlen) ||
        get_num(fe, "frontend.", "win_length", lp.win_length, 1, 65536, &wl, err, errlen) ||
        get_num(fe, "frontend.", "hop_length", lp.hop_length, 1, 65536, &hl, err, errlen) ||
        get_num(fe, "frontend.", "fmin", lp.fmin, 0, 1e6, &f0, err, errlen) ||
        get_num(fe, "frontend.", "fmax", lp.fmax, 0, 1e6, &f1, err, errlen) ||
        get_num(fe, "frontend.", "log_floor", lp.log_floor, 1e-30, 1, &lf, err, errlen))
        return ACM_ECONFIG;
    if (sr != (int)sr || nf != (int)nf || wl != (int)wl || hl != (int)hl)
        return acm__fail(err, errlen, ACM_ECONFIG,
                         "metadata: frontend sample_rate, n_fft, win_length and hop_length must be integers");
    c->sample_rate = (int)sr;
    c->n_fft = (int)nf;
    c->win_length = (int)wl;
    c->hop_length = (int)hl;
    c->fmin = (float)f0;
    c->fmax = (float)f1;
    c->log_floor = (float)lf;
    lp = acm__speech_logmel_params(c);
    char msg[200];
    acm_logmel *probe = acm_logmel_create(lp, msg, sizeof msg);
    if (!probe) return acm__fail(err, errlen, ACM_ECONFIG, "metadata: frontend: %s", msg);
    acm_logmel_free(probe);
    c->tokens = c->chunk;
    /* labels: "" for the blank, then one character each */
    m->labels = calloc((size_t)c->num_classes, sizeof(char *));
    if (!m->labels) return acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
    for (int i = 0; i < c->num_classes; i++) {
        m->labels[i] = calloc(1, 2);
        if (!m->labels[i]) return acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        if (i) m->labels[i][0] = al[i - 1];
    }
    c->labels = (const char *const *)m->labels;
    return 0;
}

acm_logmel_params acm__speech_logmel_params(const acm_config *c) {
    acm_logmel_params p = {.sample_rate = c->sample_rate,
                           .n_fft = c->n_fft,
                           .win_length = c->win_length,
                           .hop_length = c->hop_length,
                           .n_mels = c->n_mels,
                           .fmin = c->fmin,
                           .fmax = c->fmax,
                           .log_floor = c->log_floor};
    return p;
}

acm_model *acm__model_build(const char *meta_json, acm__tensor_lookup lookup, void *ctx, char *err, size_t errlen) {
    acm_model *m = calloc(1, sizeof *m);
    json_t *pending = NULL;
    binder b = {.lookup = lookup, .ctx = ctx, .err = err, .errlen = errlen};
    if (!m) {
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        return NULL;
    }
    if (!meta_json) {
        acm__fail(err, errlen, ACM_EFORMAT, "no __metadata__ \"acm\" entry: not an acm model file");
        goto fail;
    }
    json_error_t je;
    m->meta = json_loads(meta_json, JSON_REJECT_DUPLICATES, &je);
    if (!m->meta || !json_is_object(m->meta)) {
        acm__fail(err, errlen, ACM_EFORMAT, "metadata: \"acm\" is not a JSON object%s%s", m->meta ? "" : ": ",
                  m->meta ? "" : je.text);
        goto fail;
    }
    m->meta_json = strdup(meta_json);
    json_t *J = m->meta;
    acm_config *c = &m->cfg;
    int fv;
    if (get_int(J, "format_version", &fv, 0, 1 << 30, err, errlen)) goto fail;
    if (fv != ACM_FORMAT_VERSION) {
        acm__fail(err, errlen, ACM_ECONFIG, "metadata: format_version %d is not supported (this engine reads %d)", fv,
                  ACM_FORMAT_VERSION);
        goto fail;
    }
    const char *arch = json_string_value(json_object_get(J, "arch"));
    if (!arch || (strcmp(arch, "vit") && strcmp(arch, "speech"))) {
        acm__fail(err, errlen, ACM_ECONFIG, "metadata: arch '%s' is not supported (\"vit\" or \"speech\")",
                  arch ? arch : "(missing)");
        goto fail;
    }
    c->arch = strcmp(arch, "speech") ? ACM_ARCH_VIT : ACM_ARCH_SPEECH;
    if (get_int(J, "dim", &c->dim, 1, 16384, err, errlen) || get_int(J, "depth", &c->depth, 1, 256, err, errlen) ||
        get_int(J, "heads", &c->heads, 1, 256, err, errlen) ||
        get_int(J, "mlp_hidden", &c->mlp_hidden, 1, 65536, err, errlen))
        goto fail;
    if (c->dim % c->heads) {
        acm__fail(err, errlen, ACM_ECONFIG, "metadata: dim %d is not a multiple of heads %d", c->dim, c->heads);
        goto fail;
    }
    json_t *eps = json_object_get(J, "ln_eps");
    c->ln_eps = eps ? (float)json_number_value(eps) : 1e-6f;
    if (eps && (!json_is_number(eps) || !(c->ln_eps > 0) || c->ln_eps > 1)) {
        acm__fail(err, errlen, ACM_ECONFIG, "metadata: ln_eps must be a number in (0, 1]");
        goto fail;
    }
    if (c->arch == ACM_ARCH_SPEECH) {
        if (speech_config(m, J, err, errlen)) goto fail;
    } else if (vit_config(m, J, err, errlen)) {
        goto fail;
    }
    /* ACM layout: name -> learners, consumed as modules are set up; leftovers are unknown names. */
    pending = json_object();
    json_t *ja = json_object_get(J, "acm");
    if (ja) {
        json_t *mods = json_object_get(ja, "modules");
        if (!json_is_array(mods)) {
            acm__fail(err, errlen, ACM_ECONFIG, "metadata: acm.modules must be an array");
            goto fail;
        }
        size_t i;
        json_t *e;
        json_array_foreach(mods, i, e) {
            const char *nm = json_string_value(json_object_get(e, "name"));
            json_t *ln = json_object_get(e, "learners");
            if (!nm || !json_is_integer(ln) || json_integer_value(ln) < 1 ||
                json_integer_value(ln) > ACM_MAX_LEARNERS) {
                acm__fail(err, errlen, ACM_ECONFIG,
                          "metadata: acm.modules[%zu] needs a name and learners in [1, %d]", i, ACM_MAX_LEARNERS);
                goto fail;
            }
            int blk = -1, consumed = 0;
            char pos[16] = "";
            if (sscanf(nm, "blocks.%d.%15[a-z.]%n", &blk, pos, &consumed) != 2 || nm[consumed] || blk < 0 ||
                blk >= c->depth ||
                (strcmp(pos, "attn.q") && strcmp(pos, "attn.k") && strcmp(pos, "attn.v") &&
                 strcmp(pos, "attn.proj") && strcmp(pos, "mlp"))) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: acm.modules names unknown module '%s'", nm);
                goto fail;
            }
            if (json_object_get(pending, nm)) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: acm.modules lists '%s' twice", nm);
                goto fail;
            }
            json_object_set_new(pending, nm, json_integer(json_integer_value(ln)));
        }
    }
    /* tensors */
    int D = c->dim, T = c->arch == ACM_ARCH_SPEECH ? 1 : c->tokens,
        PP = c->feat_chans * c->patch_size * c->patch_size;
    if (c->arch == ACM_ARCH_SPEECH) {
        m->mel_mean = bind(&b, "frontend.mel_mean", c->n_mels);
        m->mel_std = bind(&b, "frontend.mel_std", c->n_mels);
        m->front_w = bind(&b, "frontend.proj.weight", D, (int64_t)c->stack * c->n_mels);
        m->front_b = bind(&b, "frontend.proj.bias", D);
        for (int i = 0; !b.rc && i < c->n_mels; i++) {
            if (!isfinite(m->mel_mean[i]))
                b.rc = acm__fail(err, errlen, ACM_EFORMAT, "tensor 'frontend.mel_mean' entry %d is not finite", i);
            else if (!(m->mel_std[i] > 0) || !isfinite(m->mel_std[i]))
                b.rc = acm__fail(err, errlen, ACM_EFORMAT,
                                 "tensor 'frontend.mel_std' entry %d is not a finite positive number", i);
        }
    } else {
        for (int i = 0; i < c->stem_depth; i++) {
            char nm[32];
            int ci = i ? c->stem_chans[i - 1] : c->in_chans;
            snprintf(nm, sizeof nm, "stem.%d.weight", i);
            m->stem_w[i] = bind(&b, nm, c->stem_chans[i], ci, 3, 3);
            snprintf(nm, sizeof nm, "stem.%d.bias", i);
            m->stem_b[i] = bind(&b, nm, c->stem_chans[i]);
        }
        /* timm stores the patch conv as [D, C, P, P]; a flattened [D, C*P*P] is accepted too. */
        int nd = 0;
        const int64_t *shape;
        if (lookup(ctx, "patch_embed.proj.weight", &nd, &shape) && nd == 4)
            m->patch_w = bind(&b, "patch_embed.proj.weight", D, c->feat_chans, c->patch_size, c->patch_size);
        else
            m->patch_w = bind(&b, "patch_embed.proj.weight", D, PP);
        m->patch_b = bind(&b, "patch_embed.proj.bias", D);
        m->cls = bind(&b, "cls_token", 1, 1, D);
        m->pos = bind(&b, "pos_embed", 1, T, D);
    }
    m->norm_w = bind(&b, "norm.weight", D);
    m->norm_b = bind(&b, "norm.bias", D);
    m->head_w = bind(&b, "head.weight", c->num_classes, D);
    m->head_b = bind(&b, "head.bias", c->num_classes);
    m->blocks = calloc((size_t)c->depth, sizeof *m->blocks);
    m->acms = calloc((size_t)c->depth * ACM_POS_COUNT, sizeof *m->acms);
    if (!m->blocks || !m->acms) {
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        goto fail;
    }
    static const char *pos_names[ACM_POS_COUNT] = {"attn.q", "attn.k", "attn.v", "attn.proj", "mlp"};
    for (int i = 0; i < c->depth && !b.rc; i++) {
        acm__block *bl = &m->blocks[i];
        char nm[64];
#define BIND_LN(field, what)                                   \
    snprintf(nm, sizeof nm, "blocks.%d." what, i);             \
    bl->field = bind(&b, nm, D);
        BIND_LN(ln1_w, "norm1.weight")
        BIND_LN(ln1_b, "norm1.bias")
        BIND_LN(ln2_w, "norm2.weight")
        BIND_LN(ln2_b, "norm2.bias")
#undef BIND_LN
        int nq[3];
        for (int p = 0; p < 3; p++) {
            snprintf(nm, sizeof nm, "blocks.%d.%s", i, pos_names[p]);
            nq[p] = acm_learners(pending, nm);
        }
        snprintf(nm, sizeof nm, "blocks.%d.attn.qkv.weight", i);
        int nd;
        const int64_t *shape;
        bl->fused_qkv = lookup(ctx, nm, &nd, &shape) != NULL;
        if (bl->fused_qkv && (nq[0] || nq[1] || nq[2])) {
            acm__fail(err, errlen, ACM_EFORMAT, "block %d: fused 'attn.qkv' present but q, k or v is listed as an ACM", i);
            goto fail;
        }
        if (bl->fused_qkv) {
            snprintf(nm, sizeof nm, "blocks.%d.attn.qkv", i);
            setup_module(&b, &bl->mod[ACM_POS_Q], nm, ACM_MOD_LINEAR, D, 3 * D, 0, 0, 0);
        }
        for (int p = 0; p < ACM_POS_COUNT && !b.rc; p++) {
            if (bl->fused_qkv && p < 3) continue;
            snprintf(nm, sizeof nm, "blocks.%d.%s", i, pos_names[p]);
            int n = p < 3 ? nq[p] : acm_learners(pending, nm);
            int is_mlp = p == ACM_POS_MLP;
            acm_module_kind kind = n ? ACM_MOD_ACM : is_mlp ? ACM_MOD_MLP : ACM_MOD_LINEAR;
            setup_module(&b, &bl->mod[p], nm, kind, D, D, is_mlp ? c->mlp_hidden : 0, n, is_mlp);
            if (!b.rc && kind == ACM_MOD_ACM) {
                acm__module *md = &bl->mod[p];
                md->info.acm_index = c->num_acms;
                m->acms[c->num_acms++] = md;
                if (is_mlp && md->info.hidden != c->mlp_hidden) {
                    b.rc = acm__fail(err, errlen, ACM_EFORMAT, "ACM '%s': N*h = %d differs from mlp_hidden %d", nm,
                                     md->info.hidden, c->mlp_hidden);
                }
            }
        }
    }
    if (b.rc) goto fail;
    if (json_object_size(pending)) {
        const char *k = json_object_iter_key(json_object_iter(pending));
        acm__fail(err, errlen, ACM_ECONFIG, "metadata: acm.modules names unknown module '%s'", k);
        goto fail;
    }
    m->bound = b.bound;
    m->bound_bytes = b.bytes;
    b.bytes = NULL;
    m->nbound = b.nbound;
    b.bound = NULL;
    /* sizes and FLOPs */
    /* speech: per token (T = 1), attention counted per chunk as it runs */
    double dense = c->arch == ACM_ARCH_SPEECH ? 2.0 * c->stack * c->n_mels * D + 2.0 * D * c->num_classes
                                              : 2.0 * c->num_patches * PP * D + 2.0 * D * c->num_classes;
    if (c->arch != ACM_ARCH_SPEECH) /* the stem: 2 FLOPs per multiply-add of each 3x3 convolution */
        for (int i = 0, side = c->image_size, ci = c->in_chans; i < c->stem_depth; ci = c->stem_chans[i++]) {
            side = (side - 1) / c->stem_stride[i] + 1;
            dense += 2.0 * side * side * c->stem_chans[i] * ci * 9;
        }
    double total_learners = 0, fixed = dense;
    m->max_width = 3 * D > c->mlp_hidden ? 3 * D : c->mlp_hidden;
    for (int i = 0; i < c->depth; i++) {
        if (c->arch != ACM_ARCH_SPEECH) {
            dense += 2.0 * 2.0 * T * T * D; /* QKᵀ and A·V */
            fixed += 2.0 * 2.0 * T * T * D;
        }
        for (int p = 0; p < ACM_POS_COUNT; p++) {
            acm__module *md = &m->blocks[i].mod[p];
            if (m->blocks[i].fused_qkv && (p == ACM_POS_K || p == ACM_POS_V)) continue;
            dense += T * module_flops_dense(md);
            if (md->info.kind != ACM_MOD_ACM) fixed += T * module_flops_dense(md);
            if (md->info.kind == ACM_MOD_ACM) {
                m->learner_flops_total += md->info.n * md->learner_flops;
                total_learners += md->info.n;
                if (md->choices > m->max_choices) m->max_choices = md->choices;
                if (md->info.hidden > m->max_hidden) m->max_hidden = md->info.hidden;
                c->film_gates += md->info.film;
            }
        }
    }
    m->flops_dense = dense;
    m->gate_mult = c->film_gates ? 2 : 1;
    m->flops_fixed = fixed;
    m->learner_flops_mean = total_learners > 0 ? m->learner_flops_total / total_learners : 0;
    c->fused_qkv_static = 1;
    for (int i = 0; i < c->depth; i++) c->fused_qkv_static &= m->blocks[i].fused_qkv;
    /* budget table */
    /* the floor: what an item spends when every ACM runs only its kmin learners (projections: one) */
    double floor_flops = 0;
    for (int a = 0; a < c->num_acms; a++) floor_flops += m->acms[a]->info.kmin * m->acms[a]->learner_flops;
    const double floor_beta = c->num_acms ? floor_flops / m->learner_flops_total : 1.0;
    c->beta_floor = (float)floor_beta;
    if ((double)c->beta_floor < floor_beta) c->beta_floor = nextafterf(c->beta_floor, 2.0f); /* never below the floor */
    c->beta_min = c->num_acms ? c->beta_floor : 1.0f;
    c->cap_order = ACM_CAP_ORDER_GAIN;
    json_t *jb = json_object_get(J, "budget");
    if (jb) {
        json_t *bm = json_object_get(jb, "beta_min");
        if (bm) {
            double v = json_number_value(bm);
            if (!json_is_number(bm) || !(v > 0 && v <= 1)) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.beta_min must be in (0, 1]");
                goto fail;
            }
            if (v < floor_beta * (1 - 1e-6)) {
                acm__fail(err, errlen, ACM_ECONFIG,
                          "metadata: budget.beta_min %.4g is below the model's floor %.4g, the budget an item spends "
                          "when every ACM runs only its kmin learners (projection ACMs run at least one)", v,
                          floor_beta);
                goto fail;
            }
            c->beta_min = (float)v > c->beta_floor ? (float)v : c->beta_floor;
        }
        json_t *gbj = json_object_get(jb, "gate_beta");
        if (gbj) {
            double v = json_number_value(gbj);
            if (!json_is_number(gbj) || !(v > 0 && v <= 1)) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.gate_beta must be in (0, 1]");
                goto fail;
            }
            if (c->film_gates) c->gate_beta = (float)v; /* only FiLM gates read it */
        }
        json_t *tab = json_object_get(jb, "mean");
        if (tab) {
            size_t n = json_array_size(tab);
            if (!json_is_array(tab) || n == 0 || n > 1024) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.mean must be a non-empty array of [beta, lambda]");
                goto fail;
            }
            m->mean_beta = malloc(n * sizeof(float));
            m->mean_lambda = malloc(n * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                json_t *e = json_array_get(tab, i);
                json_t *e0 = json_array_get(e, 0), *e1 = json_array_get(e, 1);
                if (json_array_size(e) != 2 || !json_is_number(e0) || !json_is_number(e1) ||
                    !(json_number_value(e0) > 0 && json_number_value(e0) <= 1) || !isfinite(json_number_value(e1)) ||
                    (i && json_number_value(e0) <= m->mean_beta[i - 1])) {
                    acm__fail(err, errlen, ACM_ECONFIG,
                              "metadata: budget.mean[%zu] must be [beta in (0,1], finite lambda], beta ascending", i);
                    goto fail;
                }
                m->mean_beta[i] = (float)json_number_value(e0);
                m->mean_lambda[i] = (float)json_number_value(e1);
            }
            c->mean_table_len = (int)n;
        }
        json_t *cap = json_object_get(jb, "cap");
        if (cap) {
            json_t *bs = json_object_get(cap, "betas"), *sh = json_object_get(cap, "shares");
            size_t n = json_array_size(bs);
            if (!json_is_array(bs) || !json_is_array(sh) || n == 0 || n > 1024 || json_array_size(sh) != n) {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.cap needs arrays betas and shares of equal length");
                goto fail;
            }
            m->cap_beta = malloc(n * sizeof(float));
            m->cap_share = malloc(n * (size_t)(c->num_acms ? c->num_acms : 1) * sizeof(float));
            for (size_t i = 0; i < n; i++) {
                json_t *jbeta = json_array_get(bs, i), *row = json_array_get(sh, i);
                double bv = json_number_value(jbeta), lhs = 0, rhs = 0;
                if (!json_is_number(jbeta) || !(bv > 0 && bv <= 1) || (i && bv <= m->cap_beta[i - 1]) ||
                    (int)json_array_size(row) != c->num_acms) {
                    acm__fail(err, errlen, ACM_ECONFIG,
                              "metadata: budget.cap row %zu: beta in (0, 1] ascending and %d shares", i, c->num_acms);
                    goto fail;
                }
                m->cap_beta[i] = (float)bv;
                for (int a = 0; a < c->num_acms; a++) {
                    json_t *v = json_array_get(row, (size_t)a);
                    double sv = json_number_value(v);
                    if (!json_is_number(v) || !(sv >= 0 && sv <= 1)) {
                        acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.cap row %zu share %d outside [0, 1]", i, a);
                        goto fail;
                    }
                    /* shares are written with 6 decimals (acm-train calibrate): 1e-6 of slack for the floor */
                    const acm__module *ma = m->acms[a];
                    if (sv < (double)ma->info.kmin / ma->info.n - 1e-6) {
                        acm__fail(err, errlen, ACM_ECONFIG,
                                  "metadata: budget.cap row %zu share %d (ACM '%s') = %.4g is below that module's "
                                  "floor kmin/N = %d/%d", i, a, ma->info.name, sv, ma->info.kmin, ma->info.n);
                        goto fail;
                    }
                    m->cap_share[i * (size_t)c->num_acms + (size_t)a] = (float)sv;
                    lhs += sv * m->acms[a]->info.n * m->acms[a]->learner_flops;
                    rhs += m->acms[a]->info.n * m->acms[a]->learner_flops;
                }
                if (lhs > bv * rhs * (1 + 1e-6)) {
                    acm__fail(err, errlen, ACM_ECONFIG,
                              "metadata: budget.cap row %zu spends %.4f of the learner compute, above its beta %.4f", i,
                              lhs / rhs, bv);
                    goto fail;
                }
            }
            c->cap_table_len = (int)n;
        }
        json_t *ord = json_object_get(jb, "cap_order");
        if (ord) {
            const char *o = json_string_value(ord);
            int v = o ? acm_cap_order_parse(o) : -1; /* "random" is a policy's control, never a model's order */
            if (v == ACM_CAP_ORDER_GAIN || v == ACM_CAP_ORDER_LEVEL) {
                c->cap_order = v;
            } else {
                acm__fail(err, errlen, ACM_ECONFIG, "metadata: budget.cap_order must be \"gain\" or \"level\"");
                goto fail;
            }
        }
    }
    if (c->film_gates && !(c->gate_beta > 0)) {
        acm__fail(err, errlen, ACM_ECONFIG,
                  "metadata: %d gates are budget-conditioned (gate.film tensors) but budget.gate_beta, the budget they "
                  "see under the argmax policy, is missing", c->film_gates);
        goto fail;
    }
    /* ARGMAX gives FiLM gates the fixed gate_beta: fold their logits (A + gate_beta B) z + (c + gate_beta c') into one
     * C-row gate at load, in double, so that ARGMAX runs C gate rows instead of 2C */
    for (int a = 0; a < c->num_acms; a++) {
        acm__module *md = m->acms[a];
        if (!md->info.film) continue;
        const int C = md->choices, din = md->info.din;
        const double gb = c->gate_beta;
        float *fw = md->gate_w + (size_t)2 * C * din, *fb = md->gate_b + 2 * C;
        for (size_t i = 0; i < (size_t)C * din; i++)
            fw[i] = (float)((double)md->gate_w[i] + gb * (double)md->gate_w[(size_t)C * din + i]);
        for (int i = 0; i < C; i++) fb[i] = (float)((double)md->gate_b[i] + gb * (double)md->gate_b[C + i]);
        md->fold_w = fw;
        md->fold_b = fb;
    }
    m->params = 0; /* filled by the caller that knows all tensors (file loader) */
    json_decref(pending);
    strcpy(m->version, "000000000000");
    return m;
fail:
    json_decref(pending);
    free(b.bound);
    free(b.bytes);
    model_free_owned(m);
    free(m);
    return NULL;
}

static const float *st_lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    const acm_st_tensor *t = acm__st_find(ctx, name);
    if (!t || (t->dtype != ACM_ST_F32 && t->dtype != ACM_ST_F16 && t->dtype != ACM_ST_BF16)) return NULL;
    *ndim = t->ndim;
    *shape = t->shape;
    return t->data;
}

static void sha256_prefix(const void *data, size_t len, char out[13]) {
    struct sha256_ctx s;
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_init(&s);
    sha256_update(&s, len, data);
    sha256_digest(&s, sizeof d, d);
    for (int i = 0; i < 6; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

acm_model *acm_model_load(const char *path, char *err, size_t errlen) {
    acm_st_file f;
    if (acm__st_open(&f, path, err, errlen)) return NULL;
    char msg[512];
    acm_model *m = acm__model_build(acm__st_meta(&f, "acm"), st_lookup, &f, msg, sizeof msg);
    if (!m) {
        acm__fail(err, errlen, ACM_EFORMAT, "%s: %s", path, msg);
        acm__st_close(&f);
        return NULL;
    }
    for (int i = 0; i < f.n; i++) {
        const acm_st_tensor *t = &f.tensors[i];
        if (t->dtype != ACM_ST_F32 && t->dtype != ACM_ST_F16 && t->dtype != ACM_ST_BF16) {
            acm__fail(err, errlen, ACM_EFORMAT, "%s: tensor '%s' has dtype %s, the model needs F32, F16 or BF16", path,
                      t->name, acm__st_dtype_name(t->dtype));
            goto fail;
        }
        m->params += t->numel;
    }
    for (int i = 0; i < f.n; i++) {
        int bound = 0;
        for (int j = 0; j < m->nbound && !bound; j++) bound = m->bound[j] == f.tensors[i].data;
        if (!bound) {
            acm__fail(err, errlen, ACM_EFORMAT, "%s: tensor '%s' is not used by the model's configuration", path,
                      f.tensors[i].name);
            goto fail;
        }
    }
    m->file = f;
    sha256_prefix(f.map, f.map_len, m->version);
    return m;
fail:
    model_free_owned(m);
    free(m);
    acm__st_close(&f);
    return NULL;
}

void acm_model_free(acm_model *m) {
    if (!m) return;
    model_free_owned(m);
    acm__st_close(&m->file);
    free(m);
}

const acm_config *acm_model_config(const acm_model *m) { return &m->cfg; }
const char *acm_model_version(const acm_model *m) { return m->version; }
const char *acm_model_metadata(const acm_model *m) { return m->meta_json; }
int64_t acm_model_param_count(const acm_model *m) { return m->params; }
double acm_model_flops_dense(const acm_model *m) { return m->flops_dense; }

const acm_module_info *acm_model_module(const acm_model *m, int block, acm_position pos) {
    if (block < 0 || block >= m->cfg.depth || pos < 0 || pos >= ACM_POS_COUNT) return NULL;
    const acm__block *b = &m->blocks[block];
    if (b->fused_qkv && pos <= ACM_POS_V) return &b->mod[ACM_POS_Q].info;
    return &b->mod[pos].info;
}

const acm_module_info *acm_model_acm(const acm_model *m, int i) {
    return i >= 0 && i < m->cfg.num_acms ? &m->acms[i]->info : NULL;
}

double acm_model_learner_flops(const acm_model *m, int i) {
    return i >= 0 && i < m->cfg.num_acms ? m->acms[i]->learner_flops : 0;
}

void acm_model_mean_table(const acm_model *m, int j, float *beta, float *lambda) {
    *beta = j >= 0 && j < m->cfg.mean_table_len ? m->mean_beta[j] : 0;
    *lambda = j >= 0 && j < m->cfg.mean_table_len ? m->mean_lambda[j] : 0;
}
