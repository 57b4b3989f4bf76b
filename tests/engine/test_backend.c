/*
 * test_backend.c — every backend (engine/backend.h) op by op and on the whole model, against the CPU.
 *
 * Ops: each op of the interface on random inputs with odd sizes and row strides (the shapes the engine uses:
 * accumulate or not, bias or not, in place), its inputs uploaded and its output downloaded through the backend's own
 * buffers, against a double-precision reference computed here: max|Δ| / max(1, max|ref|) <= 1e-5. (im2col of the
 * items' images runs in every forward of the model tests: the CUDA backend stages images for the model it was opened
 * for.) Model: random ViTs (every position an ACM, stacked q|k|v gates; budget-conditioned FiLM gates) and two golden
 * models (vit_a; vit_d, with a convolutional stem), batch 1 and 8, every policy, a mixed batch and forced k, run by a
 * worker on the backend and by a CPU worker in REFERENCE mode (every token alone, in double: engine/acm_exec.c):
 *   logits: max|Δ| / max(1, max|ref|) <= 1e-4 per item (TF32 off);
 *   k maps: identical, ties aside: a token may differ only where the reference's gate margin (top-two gap of the
 *   policy's biased logits) is below 1e-4 of its logit scale, and only in the first module where the item differs
 *   (after a legitimate flip its activations differ and later modules are only counted); CAP ranks tokens against
 *   each other (a near-tie between two tokens' odds may fall either way), so a flip there is only counted; >= 99.9%
 *   identical overall; FIXED and forced k never differ;
 *   FLOPs: equal (they depend on k alone) for every item without a flip.
 * The "cuda" tests run only where the build has the CUDA backend (make CUDA=1) and a GPU is visible; elsewhere they
 * are skipped with the reason (acm_backend_check's message), never passed.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "backend.h"
#include "bench/vit_random.h"
#include "model.h"
#include "vit.h"

#define MAXB 8

static acm__backend *open_or_skip(const char *name, const acm_model *m, int max_batch) {
    char err[512];
    if (acm_backend_check(name, err, sizeof err)) cr_skip_test("backend '%s' cannot run here: %s", name, err);
    acm__backend *be = acm__backend_open(name, m, max_batch, err, sizeof err);
    cr_assert_not_null(be, "open backend '%s': %s", name, err);
    return be;
}

/* ---- ops ---------------------------------------------------------------------------------------------------------- */

static uint64_t rng = 7;
static void fill(float *x, size_t n, double lo, double hi) {
    for (size_t i = 0; i < n; i++) x[i] = (float)(lo + (hi - lo) * vr_uniform(&rng));
}
static float *up(acm__backend *be, const float *h, size_t n) {
    float *d = be->alloc(be, n * sizeof(float));
    cr_assert_not_null(d);
    be->upload(be, d, h, n * sizeof(float));
    return d;
}
static float *down(acm__backend *be, const float *d, size_t n) {
    float *h = malloc(n * sizeof(float));
    cr_assert_not_null(h);
    be->download(be, h, d, n * sizeof(float));
    return h;
}
/* max|got - ref| / max(1, max|ref|) over n values */
static double rel(const float *got, const double *ref, size_t n) {
    double mr = 1, md = 0;
    for (size_t i = 0; i < n; i++) {
        mr = fmax(mr, fabs(ref[i]));
        md = fmax(md, fabs(ref[i] - got[i]));
    }
    return md / mr;
}
static void expect_close(const char *be, const char *op, const float *got, const double *ref, size_t n) {
    const double r = rel(got, ref, n);
    cr_expect_leq(r, 1e-5, "backend %s, %s: max|Δ|/max(1,|ref|) = %.3g", be, op, r);
}

static void op_matmul(acm__backend *be, int accumulate, int with_bias) {
    const int N = 37, C = 70, OC = 45, ldi = C + 3, ldw = C + 5, ldo = OC + 2;
    float *x = malloc(sizeof(float) * N * ldi), *w = malloc(sizeof(float) * OC * ldw), *b = malloc(sizeof(float) * OC),
          *o = malloc(sizeof(float) * N * ldo);
    double *ref = malloc(sizeof(double) * N * ldo);
    fill(x, (size_t)N * ldi, -1, 1);
    fill(w, (size_t)OC * ldw, -1, 1);
    fill(b, OC, -1, 1);
    fill(o, (size_t)N * ldo, -1, 1);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < ldo; j++) {
            double a = o[i * ldo + j]; /* columns beyond OC stay as they are */
            if (j < OC) {
                double s = (accumulate ? a : 0) + (with_bias ? b[j] : 0);
                for (int c = 0; c < C; c++) s += (double)x[i * ldi + c] * w[j * ldw + c];
                a = s;
            }
            ref[i * ldo + j] = a;
        }
    float *dx = up(be, x, (size_t)N * ldi), *dw = up(be, w, (size_t)OC * ldw), *db = up(be, b, OC),
          *dout = up(be, o, (size_t)N * ldo);
    be->matmul_forward(be, dout, ldo, dx, ldi, dw, ldw, with_bias ? db : NULL, N, C, OC, accumulate);
    float *got = down(be, dout, (size_t)N * ldo);
    char what[64];
    snprintf(what, sizeof what, "matmul (accumulate %d, bias %d)", accumulate, with_bias);
    expect_close(be->name, what, got, ref, (size_t)N * ldo);
    be->free(be, dx), be->free(be, dw), be->free(be, db), be->free(be, dout);
    free(x), free(w), free(b), free(o), free(ref), free(got);
}

static void op_layernorm(acm__backend *be) {
    const int N = 13, C = 200;
    const float eps = 1e-6f;
    float x[13 * 200], w[200], b[200];
    double ref[13 * 200], rm[13], rr[13];
    fill(x, sizeof x / sizeof *x, -3, 5);
    fill(w, C, 0.5, 1.5);
    fill(b, C, -0.5, 0.5);
    for (int i = 0; i < N; i++) {
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += x[i * C + c];
        m /= C;
        for (int c = 0; c < C; c++) v += (x[i * C + c] - m) * (x[i * C + c] - m);
        v /= C;
        rm[i] = m;
        rr[i] = 1 / sqrt(v + eps);
        for (int c = 0; c < C; c++) ref[i * C + c] = (x[i * C + c] - m) * rr[i] * w[c] + b[c];
    }
    float *dx = up(be, x, (size_t)N * C), *dw = up(be, w, C), *db = up(be, b, C);
    float *dout = be->alloc(be, sizeof x), *dm = be->alloc(be, sizeof(float) * N), *dr = be->alloc(be, sizeof(float) * N);
    be->layernorm_forward(be, dout, dm, dr, dx, dw, db, N, C, eps);
    float *got = down(be, dout, (size_t)N * C), *gm = down(be, dm, N), *gr = down(be, dr, N);
    expect_close(be->name, "layernorm", got, ref, (size_t)N * C);
    expect_close(be->name, "layernorm mean", gm, rm, N);
    expect_close(be->name, "layernorm rstd", gr, rr, N);
    be->free(be, dx), be->free(be, dw), be->free(be, db), be->free(be, dout), be->free(be, dm), be->free(be, dr);
    free(got), free(gm), free(gr);
}

static void op_gelu(acm__backend *be) {
    const int rows = 9, cols = 30, ld = 33;
    float x[9 * 33];
    double ref[9 * 33];
    fill(x, sizeof x / sizeof *x, -4, 4);
    for (int i = 0; i < rows * ld; i++) ref[i] = i % ld < cols ? 0.5 * x[i] * erfc(-x[i] / sqrt(2.0)) : x[i];
    float *d = up(be, x, sizeof x / sizeof *x);
    be->gelu_forward(be, d, ld, d, ld, rows, cols); /* in place, strided: the ACM learners' hidden rows */
    float *got = down(be, d, sizeof x / sizeof *x);
    expect_close(be->name, "gelu (strided, in place)", got, ref, sizeof x / sizeof *x);
    be->free(be, d);
    free(got);
}

/* im2col of a convolution against its definition: from a channel-last map in backend memory (the stem's layers after
 * the first, and the cut into patches), and, on the CPU, from items' channel-first images (the first layer; the CUDA
 * backend stages images only for the model it was opened for: the golden stem model below runs that path). */
static void im2col_ref(double *ref, const float *src, int chan_last, int B, int C, int Hi, int Wi, int k, int s, int pad,
                       int Ho, int Wo) {
    for (int b = 0; b < B; b++)
        for (int oy = 0; oy < Ho; oy++)
            for (int ox = 0; ox < Wo; ox++)
                for (int c = 0; c < C; c++)
                    for (int ky = 0; ky < k; ky++)
                        for (int kx = 0; kx < k; kx++) {
                            const int y = oy * s + ky - pad, x = ox * s + kx - pad;
                            const size_t at = (((size_t)(b * Ho + oy) * Wo + ox) * C + c) * k * k + (size_t)ky * k + kx;
                            const size_t px = (size_t)b * C * Hi * Wi +
                                              (chan_last ? ((size_t)y * Wi + x) * C + c : ((size_t)c * Hi + y) * Wi + x);
                            ref[at] = y < 0 || y >= Hi || x < 0 || x >= Wi ? 0.0 : src[px];
                        }
}
static void op_im2col_conv(acm__backend *be) {
    enum { B = 2, C = 3, Hi = 7, Wi = 5 };
    const struct { int k, s, pad; } cs[] = {{3, 2, 1}, {3, 1, 1}, {2, 2, 0}};
    float src[B * C * Hi * Wi];
    fill(src, sizeof src / sizeof *src, -1, 1);
    float *d = up(be, src, sizeof src / sizeof *src);
    for (size_t t = 0; t < sizeof cs / sizeof *cs; t++) {
        const int k = cs[t].k, s = cs[t].s, pad = cs[t].pad;
        const int Ho = (Hi + 2 * pad - k) / s + 1, Wo = (Wi + 2 * pad - k) / s + 1;
        const size_t n = (size_t)B * Ho * Wo * C * k * k;
        double *ref = malloc(n * sizeof *ref);
        float *col = be->alloc(be, n * sizeof(float));
        cr_assert(ref && col);
        char what[64];
        im2col_ref(ref, src, 1, B, C, Hi, Wi, k, s, pad, Ho, Wo);
        be->im2col_conv(be, col, d, NULL, B, C, Hi, Wi, k, s, pad, Ho, Wo);
        float *got = down(be, col, n);
        snprintf(what, sizeof what, "im2col_conv k %d stride %d pad %d, channel-last", k, s, pad);
        expect_close(be->name, what, got, ref, n);
        free(got);
        if (acm__backend_is_cpu(be)) {
            acm_item items[B] = {{.pixels = src}, {.pixels = src + C * Hi * Wi}};
            im2col_ref(ref, src, 0, B, C, Hi, Wi, k, s, pad, Ho, Wo);
            be->im2col_conv(be, col, NULL, items, B, C, Hi, Wi, k, s, pad, Ho, Wo);
            got = down(be, col, n);
            snprintf(what, sizeof what, "im2col_conv k %d stride %d pad %d, items", k, s, pad);
            expect_close(be->name, what, got, ref, n);
            free(got);
        }
        be->free(be, col);
        free(ref);
    }
    be->free(be, d);
}

/* Softmax attention of one head in double: out[Tq, hd] from q, k, v (row strides), scale 1/sqrt(hd). */
static void attention_ref(double *out, int ldo, double *p, const float *q, int ldq, const float *k, int ldk,
                          const float *v, int ldv, int Tq, int Tk, int hd) {
    for (int i = 0; i < Tq; i++) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < Tk; j++) {
            double a = 0;
            for (int d = 0; d < hd; d++) a += (double)q[i * ldq + d] * k[j * ldk + d];
            p[j] = a / sqrt((double)hd);
            mx = fmax(mx, p[j]);
        }
        for (int j = 0; j < Tk; j++) s += p[j] = exp(p[j] - mx);
        for (int j = 0; j < Tk; j++) p[j] /= s;
        for (int d = 0; d < hd; d++) {
            double a = 0;
            for (int j = 0; j < Tk; j++) a += p[j] * v[j * ldv + d];
            out[i * ldo + d] = a;
        }
    }
}

static void op_attention(acm__backend *be) {
    enum { B = 2, T = 17, D = 24, H = 3, hd = D / H };
    static float qkv[B * T * 3 * D];
    static double ref[B * T * D], att[B * H * T * T];
    fill(qkv, sizeof qkv / sizeof *qkv, -2, 2);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++) {
            const float *base = qkv + (size_t)b * T * 3 * D + h * hd;
            for (int i = 0; i < T; i++) {
                double p[T];
                attention_ref(ref + ((size_t)b * T + i) * D + h * hd, D, p, base + (size_t)i * 3 * D, 3 * D, base + D,
                              3 * D, base + 2 * D, 3 * D, 1, T, hd);
                memcpy(att + (((size_t)b * H + h) * T + i) * T, p, sizeof p);
            }
        }
    float *d = up(be, qkv, sizeof qkv / sizeof *qkv), *dout = be->alloc(be, sizeof(float) * B * T * D),
          *datt = be->alloc(be, sizeof(float) * B * H * T * T);
    be->attention_forward(be, dout, datt, d, d + D, d + 2 * D, 3 * D, B, T, D, H);
    float *got = down(be, dout, (size_t)B * T * D), *gatt = down(be, datt, (size_t)B * H * T * T);
    expect_close(be->name, "attention", got, ref, (size_t)B * T * D);
    expect_close(be->name, "attention probabilities", gatt, att, (size_t)B * H * T * T);
    be->free(be, d), be->free(be, dout), be->free(be, datt);
    free(got), free(gatt);
}

static void op_attention_window(acm__backend *be) {
    enum { Tq = 5, Tk = 12, D = 16, H = 2, hd = D / H, ldq = 20, ldk = 2 * D, ldo = 18 };
    float q[Tq * ldq], kv[Tk * ldk], o[Tq * ldo];
    double ref[Tq * ldo], p[Tk];
    fill(q, sizeof q / sizeof *q, -2, 2);
    fill(kv, sizeof kv / sizeof *kv, -2, 2);
    fill(o, sizeof o / sizeof *o, -1, 1);
    for (int i = 0; i < Tq * ldo; i++) ref[i] = o[i];
    for (int h = 0; h < H; h++)
        attention_ref(ref + h * hd, ldo, p, q + h * hd, ldq, kv + h * hd, ldk, kv + D + h * hd, ldk, Tq, Tk, hd);
    float *dq = up(be, q, sizeof q / sizeof *q), *dkv = up(be, kv, sizeof kv / sizeof *kv),
          *dout = up(be, o, sizeof o / sizeof *o), *ds = be->alloc(be, sizeof(float) * Tq * Tk);
    be->attention_window_forward(be, dout, ldo, ds, dq, ldq, dkv, ldk, dkv + D, ldk, Tq, Tk, D, H);
    float *got = down(be, dout, sizeof o / sizeof *o);
    expect_close(be->name, "attention_window", got, ref, sizeof o / sizeof *o);
    be->free(be, dq), be->free(be, dkv), be->free(be, dout), be->free(be, ds);
    free(got);
}

static void op_small(acm__backend *be) {
    enum { B = 3, T = 5, D = 8, R = 11, ld = 13, cols = 9, H = 2, hd = 4, P = 16 };
    /* vit_embed: row 0 of each item = cls, then += pos */
    float x[B * T * D], cls[D], pos[T * D];
    double ref[B * T * D];
    fill(x, sizeof x / sizeof *x, -1, 1), fill(cls, D, -1, 1), fill(pos, T * D, -1, 1);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++)
                ref[(b * T + t) * D + d] = (double)(t == 0 ? cls[d] : x[(b * T + t) * D + d]) + pos[t * D + d];
    float *dx = up(be, x, B * T * D), *dc = up(be, cls, D), *dp = up(be, pos, T * D);
    be->vit_embed(be, dx, dc, dp, B, T, D);
    float *got = down(be, dx, B * T * D);
    expect_close(be->name, "vit_embed", got, ref, B * T * D);
    free(got);
    /* add */
    for (int i = 0; i < T * D; i++) ref[i] = (double)pos[i] + pos[(i * 7) % (T * D)];
    float pos2[T * D];
    for (int i = 0; i < T * D; i++) pos2[i] = pos[(i * 7) % (T * D)];
    float *dp2 = up(be, pos2, T * D), *dsum = be->alloc(be, sizeof pos);
    be->add(be, dsum, dp, dp2, T * D);
    got = down(be, dsum, T * D);
    expect_close(be->name, "add", got, ref, T * D);
    free(got);
    be->free(be, dx), be->free(be, dc), be->free(be, dp), be->free(be, dp2), be->free(be, dsum);

    /* gather, scatter (overwrite and accumulate), zero rows by a permutation in backend memory */
    float src[R * ld], dst[R * ld];
    double r2[R * ld];
    int32_t perm[R];
    fill(src, R * ld, -1, 1), fill(dst, R * ld, -1, 1);
    for (int i = 0; i < R; i++) perm[i] = (i * 4 + 3) % R; /* 4 is prime to 11: a permutation */
    int32_t *dperm = be->alloc(be, sizeof perm);
    const int32_t *pb = be->to_backend(be, dperm, perm, sizeof perm);
    float *ds = up(be, src, R * ld), *dd = up(be, dst, R * ld);
    be->gather_rows(be, dd, ld, ds, ld, pb, 7, cols);
    for (int i = 0; i < R * ld; i++) r2[i] = dst[i];
    for (int i = 0; i < 7; i++)
        for (int c = 0; c < cols; c++) r2[i * ld + c] = src[perm[i] * ld + c];
    got = down(be, dd, R * ld);
    expect_close(be->name, "gather_rows", got, r2, R * ld);
    for (int i = 0; i < R * ld; i++) dst[i] = got[i];
    free(got);
    be->scatter_rows(be, dd, ld, 1, ds, ld, pb + 2, 6, cols);
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < cols; c++) r2[perm[i + 2] * ld + c] += src[i * ld + c];
    be->scatter_rows(be, dd, ld, 0, ds + ld, ld, pb + 8, 3, cols);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < cols; c++) r2[perm[i + 8] * ld + c] = src[(i + 1) * ld + c];
    be->zero_rows(be, dd, ld, pb, 2, cols);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < cols; c++) r2[perm[i] * ld + c] = 0;
    got = down(be, dd, R * ld);
    expect_close(be->name, "scatter_rows and zero_rows", got, r2, R * ld);
    free(got);
    /* copy_rows (strided), normalise_cols, rope */
    be->copy_rows(be, dd, ld, ds + 1, ld, R - 1, cols);
    for (int i = 0; i < R - 1; i++)
        for (int c = 0; c < cols; c++) r2[i * ld + c] = src[i * ld + 1 + c];
    got = down(be, dd, R * ld);
    expect_close(be->name, "copy_rows", got, r2, R * ld);
    free(got);
    float sub[ld], dv[ld];
    fill(sub, ld, -1, 1), fill(dv, ld, 0.5, 2);
    float *dsub = up(be, sub, ld), *ddv = up(be, dv, ld);
    be->normalise_cols(be, ds, R, ld, dsub, ddv);
    for (int i = 0; i < R * ld; i++) r2[i] = ((double)src[i] - sub[i % ld]) / dv[i % ld];
    got = down(be, ds, R * ld);
    expect_close(be->name, "normalise_cols", got, r2, R * ld);
    free(got);
    float cs[P * hd / 2], sn[P * hd / 2];
    for (int p = 0; p < P; p++)
        for (int j = 0; j < hd / 2; j++) {
            double a = p * pow(10000.0, -2.0 * j / hd);
            cs[p * hd / 2 + j] = (float)cos(a), sn[p * hd / 2 + j] = (float)sin(a);
        }
    float *dcs = up(be, cs, P * hd / 2), *dsn = up(be, sn, P * hd / 2);
    be->upload(be, dd, src, sizeof src);
    be->rope_forward(be, dd, ld, 6, 3, H, hd, dcs, dsn); /* 6 rows from position 3, heads at columns 0..7 */
    for (int i = 0; i < R * ld; i++) r2[i] = src[i];
    for (int i = 0; i < 6; i++)
        for (int h = 0; h < H; h++)
            for (int j = 0; j < hd / 2; j++) {
                const int a = i * ld + h * hd + j, b2 = a + hd / 2, t = (3 + i) * hd / 2 + j;
                r2[a] = (double)src[a] * cs[t] - (double)src[b2] * sn[t];
                r2[b2] = (double)src[b2] * cs[t] + (double)src[a] * sn[t];
            }
    got = down(be, dd, R * ld);
    expect_close(be->name, "rope", got, r2, R * ld);
    free(got);
    be->free(be, dperm), be->free(be, ds), be->free(be, dd), be->free(be, dsub), be->free(be, ddv);
    be->free(be, dcs), be->free(be, dsn);
}

static void check_ops(const char *name) {
    acm__backend *be = open_or_skip(name, NULL, 1);
    for (int acc = 0; acc < 2; acc++)
        for (int bias = 0; bias < 2; bias++) op_matmul(be, acc, bias);
    op_layernorm(be);
    op_gelu(be);
    op_im2col_conv(be);
    op_attention(be);
    op_attention_window(be);
    op_small(be);
    char err[512];
    cr_expect_eq(be->sync(be, err, sizeof err), 0, "backend %s: %s", name, err);
    acm__backend_close(be);
}

Test(backend, ops_cpu) { check_ops("cpu"); }
Test(backend, ops_cuda) { check_ops("cuda"); }

/* ---- the whole model ----------------------------------------------------------------------------------------------- */

/* Top-two gap of the biased logits of one token, and its scale (as tests/engine/test_acm_exec.c). */
static void margin(const float *l, int C, const acm_model *m, const acm__module *md, acm_policy p, double *gap,
                   double *scale) {
    double lambda = 0, unit = 0;
    if (p.kind == ACM_POLICY_MEAN) {
        lambda = p.lambda_set ? p.lambda : acm__mean_lambda(m, p.beta);
        unit = md->learner_flops / m->learner_flops_mean;
    }
    double v1 = -INFINITY, v2 = -INFINITY, sc = 1;
    for (int c = 0; c < C; c++) {
        double v = l[c] - (float)(lambda * (md->info.kmin + c) * unit);
        sc = fmax(sc, fabs(l[c]));
        if (v > v1) v2 = v1, v1 = v;
        else if (v > v2) v2 = v;
    }
    *gap = v1 - v2;
    *scale = sc;
}

typedef struct {
    long tokens, same;
} kstats;

/* One batch on the backend's worker w and on the CPU reference worker wr (REFERENCE mode), compared. */
static void compare(const char *what, acm_model *m, acm_worker *w, acm_worker *wr, const acm_item *items, int B,
                    kstats *ks) {
    const acm_config *c = acm_model_config(m);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes, Cmax = m->max_choices > 0 ? m->max_choices : 1;
    char err[256];
    acm_result rf[MAXB], rr[MAXB];
    float *lf = calloc((size_t)MAXB * K, sizeof(float)), *lr = calloc((size_t)MAXB * K, sizeof(float));
    uint8_t *kf = calloc((size_t)MAXB * (A ? A : 1) * T, 1), *kr = calloc((size_t)MAXB * (A ? A : 1) * T, 1);
    float *glog = calloc((size_t)(A ? A : 1) * B * T * Cmax, sizeof(float));
    cr_assert(lf && lr && kf && kr && glog);
    for (int b = 0; b < B; b++) {
        rf[b] = (acm_result){.logits = lf + b * K, .kmap = kf + (size_t)b * A * T};
        rr[b] = (acm_result){.logits = lr + b * K, .kmap = kr + (size_t)b * A * T};
    }
    cr_assert_eq(acm_worker_run(w, items, rf, B, err, sizeof err), 0, "%s: %s", what, err);
    acm__acm_scratch *s = acm__worker_scratch(wr);
    s->mode = ACM__EXEC_REFERENCE;
    s->gate_log = glog;
    cr_assert_eq(acm_worker_run(wr, items, rr, B, err, sizeof err), 0, "%s: %s", what, err);
    s->gate_log = NULL;
    for (int b = 0; b < B; b++) {
        double maxref = 1, maxd = 0;
        for (int k = 0; k < K; k++) {
            maxref = fmax(maxref, fabs(lr[b * K + k]));
            maxd = fmax(maxd, fabs((double)lr[b * K + k] - lf[b * K + k]));
        }
        cr_expect_leq(maxd / maxref, 1e-4, "%s item %d: logits max|Δ|/max(1,|ref|) = %.3g", what, b, maxd / maxref);
        int flipped = 0;
        for (int a = 0; a < A; a++) {
            const acm__module *md = m->acms[a];
            int module_flips = 0;
            for (int t = 0; t < T; t++) {
                const size_t i = (size_t)b * A * T + (size_t)a * T + t;
                ks->tokens++;
                if (kf[i] == kr[i]) {
                    ks->same++;
                    continue;
                }
                module_flips++;
                const acm_policy p = items[b].policy;
                cr_expect(!items[b].force_k && p.kind != ACM_POLICY_FIXED,
                          "%s item %d: forced/fixed k differs (%s token %d)", what, b, md->info.name, t);
                if (flipped || p.kind == ACM_POLICY_CAP || items[b].force_k) continue;
                double gap, scale;
                margin(glog + ((size_t)a * B * T + (size_t)b * T + t) * Cmax, md->choices, m, md, p, &gap, &scale);
                cr_expect_leq(gap, 1e-4 * scale,
                              "%s item %d: %s token %d: k %d vs reference %d with a clear gate margin %.3g (scale "
                              "%.3g)",
                              what, b, md->info.name, t, kf[i], kr[i], gap, scale);
            }
            if (module_flips) flipped = 1;
        }
        if (!flipped)
            cr_expect_eq(rf[b].flops, rr[b].flops, "%s item %d: flops %.17g vs reference %.17g", what, b, rf[b].flops,
                         rr[b].flops);
        cr_expect_eq(rf[b].flops_dense, rr[b].flops_dense, "%s item %d: dense flops differ", what, b);
    }
    free(lf), free(lr), free(kf), free(kr), free(glog);
}

static void check_model(const char *backend, const char *what, acm_model *m, uint64_t seed) {
    const acm_config *c = acm_model_config(m);
    const int T = c->tokens, A = c->num_acms;
    const size_t img = (size_t)c->in_chans * c->image_size * c->image_size;
    char err[512];
    if (acm_backend_check(backend, err, sizeof err)) cr_skip_test("backend '%s' cannot run here: %s", backend, err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = MAXB, .backend = backend}, err, sizeof err);
    cr_assert(w, "%s on %s: %s", what, backend, err);
    cr_assert_str_eq(acm_worker_backend(w), backend);
    acm_worker *wr = acm_worker_new(m, (acm_worker_params){.max_batch = MAXB}, err, sizeof err);
    cr_assert(wr, "%s", err);
    float *pix = malloc(sizeof(float) * img * MAXB);
    uint8_t *force = malloc((size_t)MAXB * (A ? A : 1) * T);
    cr_assert(pix && force);
    uint64_t r = seed;
    for (size_t i = 0; i < img * MAXB; i++) pix[i] = (float)(4.0 * vr_uniform(&r) - 2.0);
    for (int b = 0; b < MAXB; b++) vr_draw_k(force + (size_t)b * A * T, m, 0.3 + 0.1 * b, &r);
    const int has_mean = c->mean_table_len > 0;
    const acm_policy pols[] = {
        {.kind = ACM_POLICY_ARGMAX},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 2},
        {.kind = ACM_POLICY_FIXED, .fixed_k = 99}, /* every learner: the unpermuted path */
        {.kind = ACM_POLICY_MEAN, .beta = 0.5f, .lambda_set = !has_mean, .lambda = 1.0f},
        {.kind = ACM_POLICY_CAP, .beta = 0.4f},
        {.kind = ACM_POLICY_CAP, .beta = 1.0f},
    };
    const int npol = (int)(sizeof pols / sizeof *pols);
    kstats ks = {0};
    acm_item items[MAXB];
    static const int batches[2] = {1, MAXB};
    for (int bi = 0; bi < 2; bi++) {
        const int B = batches[bi];
        for (int pi = 0; pi <= npol + 1; pi++) {
            for (int b = 0; b < B; b++) {
                items[b] = (acm_item){.pixels = pix + b * img};
                if (pi < npol) items[b].policy = pols[pi];
                else if (pi == npol) items[b].policy = pols[b % npol]; /* every policy mixed in one batch */
                else items[b].force_k = force + (size_t)b * A * T, items[b].policy = pols[0];
            }
            char tag[160];
            snprintf(tag, sizeof tag, "%s on %s, batch %d %s", what, backend, B,
                     pi < npol ? acm_policy_name(pols[pi].kind) : pi == npol ? "mixed" : "forced");
            compare(tag, m, w, wr, items, B, &ks);
        }
    }
    if (A) {
        const double frac = (double)ks.same / (double)ks.tokens;
        cr_expect_geq(frac, 0.999, "%s on %s: only %.4f%% of k decisions identical (%ld of %ld)", what, backend,
                      100 * frac, ks.same, ks.tokens);
    }
    acm_worker_free(w);
    acm_worker_free(wr);
    free(pix);
    free(force);
}

static void check_random(const char *backend, int film) {
    vr_config vc = {.image_size = 32, .patch_size = 4, .in_chans = 3, .dim = 96, .depth = 2, .heads = 3,
                    .mlp_hidden = 384, .num_classes = 10, .learners = 4, .acm_mask = 0x1f, .film = film, .seed = 5};
    vr_store st;
    char err[256];
    acm_model *m = vr_build(&vc, &st, err, sizeof err);
    cr_assert(m, "%s", err);
    check_model(backend, film ? "random all-ACM FiLM" : "random all-ACM", m, 21);
    acm_model_free(m);
    vr_store_free(&st);
}

static void check_golden(const char *backend, const char *name) {
    char path[256], err[512];
    snprintf(path, sizeof path, "tests/golden/%s.safetensors", name);
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "load %s: %s", path, err);
    check_model(backend, name, m, 11);
    acm_model_free(m);
}

Test(backend, model_cpu) { check_random("cpu", 0); }
Test(backend, model_film_cpu) { check_random("cpu", 1); }
Test(backend, golden_cpu) { check_golden("cpu", "vit_a"); }
Test(backend, golden_stem_cpu) { check_golden("cpu", "vit_d"); }
Test(backend, model_cuda) { check_random("cuda", 0); }
Test(backend, model_film_cuda) { check_random("cuda", 1); }
Test(backend, golden_cuda) { check_golden("cuda", "vit_a"); }
Test(backend, golden_stem_cuda) { check_golden("cuda", "vit_d"); }

/* ---- choosing a backend ------------------------------------------------------------------------------------------- */

Test(backend, names) {
    char err[256] = "";
    cr_expect_eq(acm_backend_check("cpu", err, sizeof err), 0);
    cr_expect_eq(acm_backend_check(NULL, err, sizeof err), 0, "NULL is the CPU");
    cr_expect_eq(acm_backend_check("tpu", err, sizeof err), ACM_EINVAL);
    cr_expect(strstr(err, "unknown backend 'tpu'") && strstr(err, acm_backends_built()), "%s", err);
    cr_expect(!strncmp(acm_backends_built(), "cpu", 3), "%s", acm_backends_built());
    /* a build without the CUDA backend says how to get one; a build with it, what is missing (or nothing) */
    int rc = acm_backend_check("cuda", err, sizeof err);
    if (!strstr(acm_backends_built(), "cuda")) {
        cr_expect_eq(rc, ACM_EINVAL);
        cr_expect(strstr(err, "make CUDA=1") != NULL, "%s", err);
    } else if (rc) {
        cr_expect(strstr(err, "backend 'cuda'") != NULL, "%s", err);
    }
    acm_model *m = acm_model_load("tests/golden/vit_a.safetensors", err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1, .backend = "tpu"}, err, sizeof err);
    cr_expect_null(w);
    cr_expect(strstr(err, "unknown backend 'tpu'") != NULL, "%s", err);
    w = acm_worker_new(m, (acm_worker_params){.max_batch = 1}, err, sizeof err);
    cr_assert(w, "%s", err);
    cr_expect_str_eq(acm_worker_backend(w), "cpu");
    acm_worker_free(w);
    acm_model_free(m);
}
