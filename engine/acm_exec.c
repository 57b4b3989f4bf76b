/*
 * acm_exec.c — running ACM modules so that saved FLOPs become saved time (docs/DESIGN.md §4, issue 6), on any backend
 * (engine/backend.h): the GEMMs and row moves are backend ops on backend memory; the gate logits come to the host
 * once per module (host_view: no copy on the CPU), where the policies decide k and the counting sort builds the plan
 * (acm__acm_plan), whose permutation goes back once (to_backend: no copy on the CPU).
 *
 * One module over the B*T tokens of a batch (shapes: D_in = din, D_out = dout, N learners of width h, Nh = N*h):
 *   1. gate: one GEMM [B*T, din] x [din, C] with the collapsed gate; the q, k, v gates of a block, which read the same
 *      input, are stacked into one [din, Cq+Ck+Cv] GEMM (acm__acm_qkv_forward). A budget-conditioned (FiLM) gate has
 *      2C columns, A|B (model.h), combined per item as logits = (A z + c) + beta_b (B z + c') with the item's gate
 *      beta (acm__gate_beta) before the decisions; under ARGMAX, whose beta is the model's fixed gate_beta, it runs
 *      the C rows folded at load instead. Only the items whose k depends on the gate run it (gate_class: not FIXED,
 *      forced k or a budget of 1), one GEMM per run of consecutive items of one class;
 *   2. k per token under each item's policy (policy.c); FLOPs counted per item as k * p, plus 2 din C (FiLM under
 *      MEAN or CAP: 2 din 2C) per token where the gate ran; non-finite logits fail the item (decide);
 *   3. counting sort of the tokens by k, descending, and a gather of the rows with k >= 1 into xg, in sorted order;
 *   4. learner GEMMs over contiguous rows, in one of two schedules (the same FLOPs, different GEMM shapes):
 *        GROUPS  per non-empty k-group g: hid = xg_g · W1[0:gh]ᵀ + b1, act, y_g = hid · W2[:, 0:gh]ᵀ — wide GEMMs
 *                (g·h columns, then g·h deep), as many pairs as there are distinct k;
 *        PREFIX  per learner n: hid_n = xg[0:P_n] · W1_nᵀ + b1_n, act, y[0:P_n] += hid_n · W2_nᵀ, where P_n counts the
 *                tokens with k >= n — long, narrow GEMMs (h columns, then h deep), always N pairs; learners 1..kmin,
 *                which every token runs (projections: kmin = 1), run unpermuted on x straight into out, so only the
 *                tokens with k > kmin are gathered and scattered;
 *      ("learners 1..g form one block": W1 rows and W2 columns 0..g·h, the nn.Linear layout of model.h);
 *   5. scatter: out[token] = y (q, k, v) or out[token] += y (o projection and MLP: the residual add is fused into the
 *      scatter). GROUPS scatters each group right after its GEMMs, while its rows are still in cache.
 *   When every token of the batch has the same k (FIXED policy, budget 1) nothing is permuted: the GEMMs read x and
 *   write out directly, and the residual add is the second GEMM's beta = 1.
 *
 * AUTO runs the schedule the measurements in bench/RESULTS.md favour (choose_schedule: PREFIX). The REFERENCE mode
 * computes every token alone in double precision with unfused gates: the tests' oracle, not for speed.
 *
 * Invariants: nothing here allocates (all scratch comes from the worker, sized for its largest batch with every
 * learner on); the FLOPs counted are the same whatever the schedule; tokens with k = 0 (MLP ACMs only) contribute
 * nothing, and are zeroed when the module overwrites its output.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "util.h"
#include "vit.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Phase timing, only when the scratch asks for it (benchmarks): tick(s) returns the time and adds the time since the
 * last tick to *acc. */
static double tick(const acm__acm_scratch *s, double since, double *acc) {
    if (!s->times) return 0;
    double t = now_s();
    if (acc) *acc += t - since;
    return t;
}

/* The B items of a call have T rows each, or, when s->unit_off is set (the speech encoder: one unit per chunk),
 * their own lengths, packed: item b's rows are [item_start(b), item_start(b + 1)). */
static int64_t item_start(const acm__acm_scratch *s, int b, int T) {
    return s->unit_off ? s->unit_off[b] : (int64_t)b * T;
}

/* What an item asks of a module's gate: nothing when k does not depend on the logits (forced k, FIXED, MEAN without
 * lambda_set or CAP at beta >= 1), the C rows of the folded gate (ARGMAX: a FiLM gate with the model's gate_beta
 * folded in at load; any policy on an unconditioned gate), or a FiLM gate's 2C rows A|B, combined with the item's own
 * beta (MEAN, CAP). film: whether the gate (or one of the stacked q|k|v gates) is budget-conditioned. */
enum { GATE_NONE = 0, GATE_FOLD = 1, GATE_FILM = 2 };
static int gate_class(const acm_item *it, int film) {
    const acm_policy p = it->policy;
    if (it->force_k || p.kind == ACM_POLICY_FIXED) return GATE_NONE;
    if ((p.kind == ACM_POLICY_CAP || (p.kind == ACM_POLICY_MEAN && !p.lambda_set)) && p.beta >= 1.0f) return GATE_NONE;
    return p.kind == ACM_POLICY_ARGMAX || !film ? GATE_FOLD : GATE_FILM;
}

/* k per token of every item (forced or by policy) from the logits [B*T, C] (rows of items whose gate_class is NONE
 * are not read); FLOPs of the module added per item, the gate's only when it ran. An item whose logits are not all
 * finite gets kmin everywhere, learner_flops[b] = NaN, and the first such module and item are recorded in s->bad_gate
 * (acm__vit_forward turns it into an error; the other items of the batch are unaffected). The summation
 * order is the one the golden references count in (k * p token by token, then the gate). */
static void decide(uint8_t *k, const float *logits, const acm_model *m, const acm__module *md, const acm_item *items,
                   const float *lambda, int B, int T, acm__acm_scratch *s, double *flops, double *learner_flops) {
    const int C = md->choices, N = md->info.n, ai = md->info.acm_index, Cmax = m->max_choices;
    const int64_t BT = item_start(s, B, T);
    for (int b = 0; b < B; b++) {
        const int64_t r0 = item_start(s, b, T);
        const int Tb = (int)(item_start(s, b + 1, T) - r0); /* this item's tokens */
        uint8_t *kb = k + r0;
        const float *lb = logits + r0 * C;
        const int cls = gate_class(&items[b], md->info.film);
        if (s->gate_log && cls != GATE_NONE)
            for (int64_t i = r0; i < r0 + Tb; i++)
                memcpy(s->gate_log + ((int64_t)ai * BT + i) * Cmax, logits + i * C, sizeof(float) * (size_t)C);
        int finite = 1;
        for (int64_t i = 0; cls != GATE_NONE && i < (int64_t)Tb * C; i++) finite &= isfinite(lb[i]) != 0;
        if (items[b].force_k) {
            const uint8_t *f = items[b].force_k + (int64_t)ai * Tb;
            for (int t = 0; t < Tb; t++)
                kb[t] = f[t] < md->info.kmin ? (uint8_t)md->info.kmin : f[t] > N ? (uint8_t)N : f[t];
        } else if (!finite) {
            memset(kb, md->info.kmin, (size_t)Tb);
            learner_flops[b] = NAN; /* marks the item failed (acm__vit_forward); stays NaN through later modules */
            if (!s->bad_gate) {
                s->bad_gate = md;
                s->bad_item = b;
            }
        } else {
            acm__decide_k(kb, lb, Tb, m, md, items[b].policy, lambda[b], s);
        }
        double lf = 0;
        for (int t = 0; t < Tb; t++) lf += kb[t] * md->learner_flops;
        const int rows = cls == GATE_NONE ? 0 : cls == GATE_FILM ? md->gate_rows : C;
        flops[b] += lf + 2.0 * md->info.din * rows * Tb;
        learner_flops[b] += lf;
    }
}

/* The schedule for one module and batch. Measured on ViT-B shapes (bench/RESULTS.md, table 1b, one BLAS thread):
 * PREFIX is as fast as GROUPS or faster for MLP ACMs (h = 768) and projection ACMs (h = 96) at batch 1 and 8 and
 * every budget (up to 1.6x at batch 1, beta 0.25), so AUTO runs PREFIX everywhere. A choice that did not depend on the
 * batch also keeps a token's result independent of what it is batched with: under PREFIX its output is the sum of
 * its learners' products in learner order, whatever the other tokens. GROUPS stays as a forced mode. */
static int choose_schedule(const acm__module *md, const int64_t *count, int64_t BT) {
    (void)md;
    (void)count;
    (void)BT;
    return ACM__EXEC_PREFIX;
}

/* Reference: token by token in double, the gate unfused and in double (a FiLM gate's A z + c + beta (B z + c') too).
 * Writes the gate logits into s->gate. */
static void gate_reference(float *logits, const float *x, int ldx, const acm__module *md, const float *gbeta, int B,
                           int T, const acm__acm_scratch *s) {
    const int din = md->info.din, C = md->choices;
    for (int b = 0; b < B; b++)
        for (int64_t i = item_start(s, b, T); i < item_start(s, b + 1, T); i++)
            for (int c = 0; c < C; c++) {
                double a = md->gate_b[c], f = 0;
                for (int d = 0; d < din; d++) a += (double)md->gate_w[(int64_t)c * din + d] * x[i * ldx + d];
                if (md->info.film) {
                    f = md->gate_b[C + c];
                    for (int d = 0; d < din; d++) f += (double)md->gate_w[(int64_t)(C + c) * din + d] * x[i * ldx + d];
                }
                logits[i * C + c] = (float)(a + (md->info.film ? (double)gbeta[b] * f : 0.0));
            }
}

/* A FiLM gate's logits [rows, C] of items b0..b1-1 from their raw A|B logits (row stride ldr, A at column 0, B at
 * column C): logits = A + beta_b B per item b. logits and raw point at the first item's first row. May run in place
 * (logits == raw, ldr = 2C): row i writes [iC, iC + C), below the raw row [2iC, 2iC + 2C) it reads for i >= 1, and
 * behind the entries it has read for i = 0. */
static void film_combine(float *logits, const float *raw, int ldr, int C, const float *gbeta, int b0, int b1, int T,
                         const acm__acm_scratch *s) {
    const int64_t base = item_start(s, b0, T);
    for (int b = b0; b < b1; b++) {
        const float beta = gbeta[b];
        for (int64_t i = item_start(s, b, T) - base; i < item_start(s, b + 1, T) - base; i++)
            for (int c = 0; c < C; c++) logits[i * C + c] = raw[i * ldr + c] + beta * raw[i * ldr + C + c];
    }
}

static void execute_reference(float *out, int ldo, int accumulate, const float *x, int ldx, const acm__module *md,
                              const uint8_t *k, int64_t BT, double *ref) {
    const int din = md->info.din, dout = md->info.dout, h = md->info.h, Nh = md->info.hidden;
    double *hd = ref; /* [Nh] */
    for (int64_t i = 0; i < BT; i++) {
        const float *xi = x + i * ldx;
        float *o = out + i * ldo;
        const int kh = k[i] * h;
        for (int j = 0; j < kh; j++) {
            double a = md->b1[j];
            for (int d = 0; d < din; d++) a += (double)md->w1[(int64_t)j * din + d] * xi[d];
            hd[j] = md->info.gelu ? 0.5 * a * erfc(-a / sqrt(2.0)) : a;
        }
        for (int c = 0; c < dout; c++) {
            double a = 0;
            for (int j = 0; j < kh; j++) a += (double)md->w2[(int64_t)c * Nh + j] * hd[j];
            o[c] = accumulate ? (float)(o[c] + a) : (float)a;
        }
    }
}

/* The backend of a scratch: the CPU unless a worker set another (train/ and tests build scratch of their own). */
static acm__backend *backend_of(const acm__acm_scratch *s) { return s->be ? s->be : acm__backend_cpu(); }
/* The host copy of the gate logits: gate itself where the scratch has no separate one (the CPU). */
static float *host_gate(const acm__acm_scratch *s) { return s->gate_host ? s->gate_host : s->gate; }

void acm__acm_plan_build(acm__acm_plan *p, const uint8_t *k, int64_t rows, int n, int32_t *perm) {
    memset(p, 0, sizeof *p);
    p->k = k;
    p->rows = rows;
    p->n = n;
    p->perm = perm;
    for (int64_t i = 0; i < rows; i++) p->count[k[i]]++;
    for (int g = 1; g <= n; g++)
        if (p->count[g] == rows) p->uniform = g;
    if (p->uniform) return;
    /* counting sort, descending: group g occupies sorted rows [start[g], start[g] + count[g]) */
    int64_t fill[ACM_MAX_LEARNERS + 1], pos = 0;
    for (int g = n; g >= 0; g--) {
        p->start[g] = fill[g] = pos;
        pos += p->count[g];
    }
    for (int64_t i = 0; i < rows; i++) perm[fill[k[i]]++] = (int32_t)i;
}

/* hid[rows, cols] (row stride ldh) = x · w1ᵀ + b1, then GELU when the learners have it: with the backend's fused
 * bias + GELU where it has one (the GEMM then runs without its bias), else the GEMM with its bias and gelu_forward. */
static void learner_fc1(acm__backend *be, float *hid, int ldh, const float *x, int ldx, const float *w1, int ldw,
                        const float *b1, int64_t rows, int din, int cols, int gelu) {
    if (gelu && be->bias_gelu) {
        be->matmul_forward(be, hid, ldh, x, ldx, w1, ldw, NULL, rows, din, cols, 0);
        be->bias_gelu(be, hid, ldh, hid, ldh, b1, rows, cols);
        return;
    }
    be->matmul_forward(be, hid, ldh, x, ldx, w1, ldw, b1, rows, din, cols, 0);
    if (gelu) be->gelu_forward(be, hid, ldh, hid, ldh, rows, cols);
}

/* PREFIX's learners g0+1..N (g0 = kmin) on the gathered rows [r0, r1) of s->xg: learner n on the rows below its prefix
 * P_n, into s->yg (the first learner overwrites, the others add). */
static void prefix_learners(const acm__module *md, const acm__acm_plan *p, const acm__acm_scratch *s,
                            acm__backend *be, int64_t r0, int64_t r1) {
    const int din = md->info.din, dout = md->info.dout, h = md->info.h, N = md->info.n, Nh = md->info.hidden;
    const int g0 = md->info.kmin;
    for (int n = g0 + 1; n <= N; n++) {
        const int64_t Pn = p->start[n - 1] < r1 ? p->start[n - 1] : r1;
        if (Pn <= r0) break;
        const int c0 = (n - 1) * h;
        float *hid = s->hid + r0 * Nh + c0;
        learner_fc1(be, hid, Nh, s->xg + r0 * din, din, md->w1 + (int64_t)c0 * din, din, md->b1 + c0, Pn - r0, din, h,
                    md->info.gelu);
        be->matmul_forward(be, s->yg + r0 * dout, dout, hid, Nh, md->w2 + c0, Nh, NULL, Pn - r0, h, dout, n > g0 + 1);
    }
}

/* PREFIX on the backend's parts (acm__backend.run_parts): part t runs learners 1..kmin on the unpermuted token rows
 * [tok[t], tok[t + 1]) into out, and gathers and runs the further learners on the sorted rows [row[t], row[t + 1]),
 * whose bounds split the learner work (k - kmin per row) evenly. The parts write disjoint rows of out (unpermuted),
 * of hid (kmin columns by token, the others by sorted row: disjoint columns) and of xg and yg; the scatter into out
 * runs after all of them. */
enum { ACM__MAX_PARTS = 64 };
typedef struct {
    float *out;
    int ldo, accumulate;
    const float *x;
    int ldx;
    const acm__module *md;
    const acm__acm_plan *p;
    const acm__acm_scratch *s;
    acm__backend *be;
    int parts;
    int64_t bound[2 * ACM__MAX_PARTS + 2]; /* row[0..parts], then tok[0..parts] */
} prefix_ctx;

static void prefix_split(prefix_ctx *c, int64_t P0, int64_t BT) {
    const acm__acm_plan *p = c->p;
    const int g0 = c->md->info.kmin, parts = c->parts;
    int64_t *row = c->bound, *tok = c->bound + parts + 1;
    double work = 0; /* learner work of the sorted rows: a row of k runs k - g0 learners */
    for (int g = g0 + 1; g <= p->n; g++) work += (double)p->count[g] * (g - g0);
    int64_t r = 0;
    double done = 0;
    row[0] = 0;
    for (int t = 1; t < parts; t++) {
        const double goal = work * t / parts;
        while (r < P0 && done + (p->k[p->perm[r]] - g0) <= goal) done += p->k[p->perm[r++]] - g0;
        row[t] = r;
    }
    row[parts] = P0;
    for (int t = 0; t <= parts; t++) tok[t] = BT * t / parts;
}

static void prefix_part(void *ctx, int t) {
    const prefix_ctx *c = ctx;
    const acm__module *md = c->md;
    const acm__acm_scratch *s = c->s;
    acm__backend *be = c->be;
    const int din = md->info.din, h = md->info.h, Nh = md->info.hidden, g0 = md->info.kmin;
    const int64_t *row = c->bound, *tok = c->bound + c->parts + 1;
    const int64_t t0 = tok[t], nt = tok[t + 1] - tok[t];
    if (g0 > 0 && nt > 0) {
        float *hid = s->hid + t0 * Nh;
        learner_fc1(be, hid, Nh, c->x + t0 * c->ldx, c->ldx, md->w1, din, md->b1, nt, din, g0 * h, md->info.gelu);
        be->matmul_forward(be, c->out + t0 * c->ldo, c->ldo, hid, Nh, md->w2, Nh, NULL, nt, g0 * h, md->info.dout,
                           c->accumulate);
    }
    if (row[t + 1] > row[t]) {
        be->gather_rows(be, s->xg + row[t] * din, din, c->x, c->ldx, c->p->perm_be + row[t], row[t + 1] - row[t], din);
        prefix_learners(md, c->p, s, be, row[t], row[t + 1]);
    }
}

/* Steps 3-5 for one module whose k per token is known. */
static void execute(float *out, int ldo, int accumulate, const float *x, int ldx, const acm__module *md,
                    const uint8_t *k, int64_t BT, acm__acm_scratch *s) {
    const int din = md->info.din, dout = md->info.dout, h = md->info.h, N = md->info.n, Nh = md->info.hidden;
    acm__backend *be = backend_of(s);
    acm__exec_times *tm = s->times;
    double t0 = tick(s, 0, NULL);
    acm__acm_plan p;
    acm__acm_plan_build(&p, k, BT, N, s->perm);
    /* one k for the whole batch: no permutation, the residual add is the GEMM's beta */
    if (p.uniform) {
        const int g = p.uniform;
        t0 = tick(s, t0, tm ? &tm->sort : NULL);
        learner_fc1(be, s->hid, Nh, x, ldx, md->w1, din, md->b1, BT, din, g * h, md->info.gelu);
        be->matmul_forward(be, out, ldo, s->hid, Nh, md->w2, Nh, NULL, BT, g * h, dout, accumulate);
        tick(s, t0, tm ? &tm->gemm : NULL);
        return;
    }
    p.perm_be = be->to_backend(be, s->perm_be, s->perm, sizeof(int32_t) * (size_t)BT);
    const int64_t P = p.start[0]; /* tokens with k >= 1 */
    int mode = s->mode == ACM__EXEC_AUTO ? choose_schedule(md, p.count, BT) : s->mode;
    if (mode == ACM__EXEC_PREFIX) {
        /* learners 1..kmin run on every token (projections: kmin = 1): unpermuted, straight into out, the residual
         * add being the GEMM's beta; only the tokens with k > kmin are gathered, and their further learners added */
        const int g0 = md->info.kmin;
        const int64_t P0 = p.start[g0]; /* tokens with k > g0 */
        const int parts = be->run_parts && !s->no_parts ? be->parts(be) : 1;
        if (parts > 1 && parts <= ACM__MAX_PARTS && P0 >= 8 * parts) {
            /* the backend's threads each take a share of the rows, every op of it on one thread: fewer, larger
             * tasks than splitting each narrow GEMM (prefix_part) */
            t0 = tick(s, t0, tm ? &tm->sort : NULL);
            prefix_ctx c = {out, ldo, accumulate, x, ldx, md, &p, s, be, parts, {0}};
            prefix_split(&c, P0, BT);
            be->run_parts(be, prefix_part, &c);
            t0 = tick(s, t0, tm ? &tm->gemm : NULL);
            be->scatter_rows(be, out, ldo, g0 > 0 || accumulate, s->yg, dout, p.perm_be, P0, dout);
        } else {
            if (g0 > 0) {
                t0 = tick(s, t0, tm ? &tm->sort : NULL);
                learner_fc1(be, s->hid, Nh, x, ldx, md->w1, din, md->b1, BT, din, g0 * h, md->info.gelu);
                be->matmul_forward(be, out, ldo, s->hid, Nh, md->w2, Nh, NULL, BT, g0 * h, dout, accumulate);
                t0 = tick(s, t0, tm ? &tm->gemm : NULL);
            }
            be->gather_rows(be, s->xg, din, x, ldx, p.perm_be, P0, din);
            t0 = tick(s, t0, tm ? &tm->sort : NULL);
            prefix_learners(md, &p, s, be, 0, P0);
            t0 = tick(s, t0, tm ? &tm->gemm : NULL);
            be->scatter_rows(be, out, ldo, g0 > 0 || accumulate, s->yg, dout, p.perm_be, P0, dout);
        }
    } else {
        for (int g = N; g >= 1; g--) {
            const int64_t n = p.count[g], o = p.start[g];
            if (n == 0) continue;
            be->gather_rows(be, s->xg + o * din, din, x, ldx, p.perm_be + o, n, din);
            t0 = tick(s, t0, tm ? &tm->sort : NULL);
            be->matmul_forward(be, s->hid + o * Nh, Nh, s->xg + o * din, din, md->w1, din, md->b1, n, din, g * h, 0);
            if (md->info.gelu) be->gelu_forward(be, s->hid + o * Nh, Nh, s->hid + o * Nh, Nh, n, g * h);
            be->matmul_forward(be, s->yg + o * dout, dout, s->hid + o * Nh, Nh, md->w2, Nh, NULL, n, g * h, dout, 0);
            t0 = tick(s, t0, tm ? &tm->gemm : NULL);
            be->scatter_rows(be, out, ldo, accumulate, s->yg + o * dout, dout, p.perm_be + o, n, dout);
            t0 = tick(s, t0, tm ? &tm->scatter : NULL);
        }
    }
    if (!accumulate) be->zero_rows(be, out, ldo, p.perm_be + P, BT - P, dout);
    tick(s, t0, tm ? &tm->scatter : NULL);
}

/* The gate logits [B*T, C] of one module, for the items that need them (gate_class), on the host at host_gate(s):
 * the backend's GEMM writes s->gate, one host_view per run brings it over (the CPU: gate_host is gate, no copy). The
 * C folded rows for FOLD, the 2C rows A|B combined with each item's beta for FILM (raw row i at 2iC: combined in
 * place, film_combine), nothing for NONE. One GEMM per run of consecutive items of the same class: one for a batch of
 * one policy. */
static void gate_forward(const float *x, int ldx, const acm__module *md, const acm_item *items, const float *gbeta,
                         int B, int T, const acm__acm_scratch *s) {
    const int din = md->info.din, C = md->choices, R = md->gate_rows;
    acm__backend *be = backend_of(s);
    float *logits = host_gate(s);
    for (int b0 = 0, b1; b0 < B; b0 = b1) {
        const int cls = gate_class(&items[b0], md->info.film);
        for (b1 = b0 + 1; b1 < B && gate_class(&items[b1], md->info.film) == cls; b1++) {}
        const int64_t r0 = item_start(s, b0, T), rows = item_start(s, b1, T) - r0;
        if (cls == GATE_FOLD) {
            be->matmul_forward(be, s->gate + r0 * C, C, x + r0 * ldx, ldx, md->fold_w, din, md->fold_b, rows, din, C,
                               0);
            be->host_view(be, logits + r0 * C, s->gate + r0 * C, sizeof(float) * (size_t)(rows * C));
        } else if (cls == GATE_FILM) {
            be->matmul_forward(be, s->gate + r0 * R, R, x + r0 * ldx, ldx, md->gate_w, din, md->gate_b, rows, din, R,
                               0);
            be->host_view(be, logits + r0 * R, s->gate + r0 * R, sizeof(float) * (size_t)(rows * R));
            film_combine(logits + r0 * C, logits + r0 * R, R, C, gbeta, b0, b1, T, s);
        }
    }
}

/* acm__acm_forward with k per token written to kout. */
static void forward_one(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                        const acm__module *md, const acm_item *items, const float *lambda, const float *gbeta, int B,
                        int T, acm__acm_scratch *s, double *flops, double *learner_flops, uint8_t *kout) {
    const int64_t BT = item_start(s, B, T);
    acm__exec_times *tm = s->times;
    double t0 = tick(s, 0, NULL);
    if (s->mode == ACM__EXEC_REFERENCE) {
        ACM_ASSERT(acm__backend_is_cpu(backend_of(s))); /* the oracle reads x and the weights on the host */
        gate_reference(host_gate(s), x, ldx, md, gbeta, B, T, s);
    } else {
        gate_forward(x, ldx, md, items, gbeta, B, T, s);
    }
    decide(kout, host_gate(s), m, md, items, lambda, B, T, s, flops, learner_flops);
    tick(s, t0, tm ? &tm->gate : NULL);
    if (s->mode == ACM__EXEC_REFERENCE)
        execute_reference(out, ldo, accumulate, x, ldx, md, kout, BT, s->ref);
    else
        execute(out, ldo, accumulate, x, ldx, md, kout, BT, s);
}

void acm__acm_forward(float *out, int ldo, int accumulate, const float *x, int ldx, const acm_model *m,
                      const acm__module *md, const acm_item *items, const float *lambda, const float *gbeta, int B,
                      int T, acm__acm_scratch *s, double *flops, double *learner_flops) {
    forward_one(out, ldo, accumulate, x, ldx, m, md, items, lambda, gbeta, B, T, s, flops, learner_flops, s->k);
}

void acm__acm_qkv_forward(float *qkv, int ldo, const float *x, int ldx, const acm_model *m, int block,
                          const acm_item *items, const float *lambda, const float *gbeta, int B, int T,
                          acm__acm_scratch *s, double *flops, double *learner_flops) {
    const acm__block *bl = &m->blocks[block];
    const int64_t BT = item_start(s, B, T);
    const int D = m->cfg.dim, Cmax = m->max_choices, GM = m->gate_mult;
    if (s->mode == ACM__EXEC_REFERENCE || !s->qkv_gate_w) {
        for (int p = 0; p < 3; p++)
            forward_one(qkv + p * D, ldo, 0, x, ldx, m, &bl->mod[p], items, lambda, gbeta, B, T, s, flops,
                        learner_flops, s->k + p * BT);
        return;
    }
    acm__backend *be = backend_of(s);
    acm__exec_times *tm = s->times;
    double t0 = tick(s, 0, NULL);
    int Ctot = 0, Cfold = 0, film = 0;
    for (int p = 0; p < 3; p++) Ctot += bl->mod[p].gate_rows, Cfold += bl->mod[p].choices, film |= bl->mod[p].info.film;
    /* stacked logits [BT, Ctot] at s->gate, one module's [BT, C] logits behind them for the policies: per run of items
     * of one gate_class (one run for a batch of one policy), the raw q|k|v rows (FILM: A|B of each FiLM gate), the
     * folded ones in the first Cfold columns (FOLD), or none */
    for (int b0 = 0, b1; b0 < B; b0 = b1) {
        const int cls = gate_class(&items[b0], film);
        for (b1 = b0 + 1; b1 < B && gate_class(&items[b1], film) == cls; b1++) {}
        const int64_t r0 = item_start(s, b0, T), rows = item_start(s, b1, T) - r0;
        if (cls == GATE_NONE) continue;
        const int fold = cls == GATE_FOLD;
        be->matmul_forward(be, s->gate + r0 * Ctot, Ctot, x + r0 * ldx, ldx,
                           (fold ? s->qkv_fold_w : s->qkv_gate_w) + (int64_t)block * 3 * (fold ? 1 : GM) * Cmax * D, D,
                           (fold ? s->qkv_fold_b : s->qkv_gate_b) + (int64_t)block * 3 * (fold ? 1 : GM) * Cmax, rows,
                           D, fold ? Cfold : Ctot, 0);
        be->host_view(be, host_gate(s) + r0 * Ctot, s->gate + r0 * Ctot, sizeof(float) * (size_t)(rows * Ctot));
    }
    const float *stacked = host_gate(s); /* [BT, Ctot] on the host */
    float *one = host_gate(s) + BT * 3 * GM * Cmax;
    t0 = tick(s, t0, tm ? &tm->gate : NULL);
    for (int p = 0, c0 = 0, cf = 0; p < 3; c0 += bl->mod[p].gate_rows, cf += bl->mod[p].choices, p++) {
        const acm__module *md = &bl->mod[p];
        const int C = md->choices;
        for (int b = 0; b < B; b++) {
            const int cls = gate_class(&items[b], film);
            const int64_t r0 = item_start(s, b, T), r1 = item_start(s, b + 1, T);
            if (cls == GATE_FILM && md->info.film)
                film_combine(one + r0 * C, stacked + r0 * Ctot + c0, Ctot, C, gbeta, b, b + 1, T, s);
            else if (cls != GATE_NONE)
                for (int64_t i = r0; i < r1; i++)
                    memcpy(one + i * C, stacked + i * Ctot + (cls == GATE_FOLD ? cf : c0), sizeof(float) * (size_t)C);
        }
        decide(s->k + p * BT, one, m, md, items, lambda, B, T, s, flops, learner_flops);
        t0 = tick(s, t0, tm ? &tm->gate : NULL);
        execute(qkv + p * D, ldo, 0, x, ldx, md, s->k + p * BT, BT, s);
        t0 = tick(s, 0, NULL);
    }
}

void acm__acm_scratch_fill(acm__acm_scratch *s, const acm_model *m) {
    if (!s->qkv_gate_w) return;
    acm__backend *be = backend_of(s);
    const int D = m->cfg.dim, Cmax = m->max_choices, GM = m->gate_mult;
    for (int l = 0; l < m->cfg.depth; l++) {
        const acm__block *bl = &m->blocks[l];
        if (bl->fused_qkv) continue;
        if (bl->mod[0].info.kind != ACM_MOD_ACM || bl->mod[1].info.kind != ACM_MOD_ACM ||
            bl->mod[2].info.kind != ACM_MOD_ACM)
            continue;
        float *w = s->qkv_gate_w + (int64_t)l * 3 * GM * Cmax * D, *b = s->qkv_gate_b + (int64_t)l * 3 * GM * Cmax;
        for (int p = 0, c0 = 0; p < 3; c0 += bl->mod[p].gate_rows, p++) {
            const acm__module *md = &bl->mod[p];
            be->upload(be, w + (int64_t)c0 * D, md->gate_w, sizeof(float) * (size_t)md->gate_rows * D);
            be->upload(be, b + c0, md->gate_b, sizeof(float) * (size_t)md->gate_rows);
        }
        if (s->qkv_fold_w == s->qkv_gate_w) continue; /* no FiLM: the folded gates are these */
        float *fw = s->qkv_fold_w + (int64_t)l * 3 * Cmax * D, *fb = s->qkv_fold_b + (int64_t)l * 3 * Cmax;
        for (int p = 0, c0 = 0; p < 3; c0 += bl->mod[p].choices, p++) {
            const acm__module *md = &bl->mod[p];
            be->upload(be, fw + (int64_t)c0 * D, md->fold_w, sizeof(float) * (size_t)md->choices * D);
            be->upload(be, fb + c0, md->fold_b, sizeof(float) * (size_t)md->choices);
        }
    }
}
