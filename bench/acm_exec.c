/*
 * acm_exec — issue 6's benchmark: do saved FLOPs become saved time? (bench/acm_exec.sh runs it; bench/RESULTS.md)
 *
 * Tables, each from this one run, alternating what they compare round by round and reporting medians (the machine is
 * shared: single figures drift, ratios measured side by side do not):
 *   (1) ViT-B/16 224x224 with random weights, the paper's ACM layout (N = 4, all 60 modules ACMs, projection learners
 *       of width 96): k per token drawn from the maximum-entropy distribution with mean beta*N (seeded), fed through
 *       acm_item.force_k (since issue 18 no gate runs for forced k, so these figures leave out the gates' ~1% of the
 *       FLOPs; before, the gates ran and were overridden), for each beta and batch, against the static ViT-B:
 *       latency, executed FLOPs, realisation ratio = (static time / ACM time) / (static FLOPs / ACM FLOPs), and the
 *       ACM bookkeeping (sort/gather + scatter; gates no longer) per block against the static block time.
 *   (1b) one MLP ACM and one projection ACM alone: the GROUPS and PREFIX schedules against the static module.
 *   (2) the shipped Fashion-MNIST models (--fmnist ACM STATIC IMAGES.gz): static vs ACM (MEAN policy, the gates' own
 *       k maps) at beta 0.25, 0.5, 0.75, batches 1, 8, 64.
 *   (3) static ViT-B GFLOP/s against the sgemm ceiling measured in the same rounds (best of the forward's three GEMM
 *       shapes, rows = batch x tokens, same threads).
 *   (5) workers x BLAS threads: images/s at batch 8 of 1 worker x C threads against C workers x 1 thread.
 *   (6) --pool-ab: the worker's thread pool (engine/cpu/pool.h) on and off in the same process, rounds interleaved:
 *       static and ACM latency with the worker's own pooled backend, with it but ACM modules not split into parts
 *       (their GEMMs on OpenBLAS's threads), and with the shared one-thread instance (no pool), and the medians of the
 *       per-round ratios against no pool.
 *   (7) --ab NAME: one engine change on and off in the same process, rounds interleaved (static and ACM latency,
 *       median of the per-round ratios off / on: above 1, the change is faster). NAME: simd (engine/cpu/simd.h's
 *       AVX-512 kernels against the SSE ones), gemm-split (a pooled worker's GEMMs split by rows across its pool,
 *       engine/cpu/backend.c, against OpenBLAS's own threads).
 * FLOPs: 2 per multiply-add (the paper's fvcore counts 1), matrix products only, gates and attention included.
 *
 * usage: acm_exec [--threads N] [--rounds R] [--batches 1,8] [--betas 0.25,0.5,0.75,1] [--seed S] [--depth L]
 *                 [--no-forward] [--no-modules] [--throughput BATCHES] [--pool-ab] [--ab NAME]
 *                 [--fmnist ACM STATIC IMAGES.gz]
 */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "cpu/pool.h"
#include "cpu/simd.h"
#define BENCH_NAME "acm_exec"
#include "bench/bench_util.h"
#include "bench/vit_random.h"
#include "idx.h"
#include "kernels.h"
#include "model.h"
#include "vit.h"

#define MAXB 64
#define MAXBETA 8
#define MAXR 64

/* ---- sgemm ceiling: the static forward's three GEMM shapes at rows = B*T ------------------------------------------ */
typedef struct {
    float *a, *b, *c;
} gemm_bufs;

static double ceiling(gemm_bufs *g, int rows, int D, int Hd) {
    const int shp[3][2] = {{D, 3 * D}, {D, Hd}, {Hd, D}}; /* K, N: qkv, fc1, fc2 */
    double best = 0;
    for (int s = 0; s < 3; s++)
        for (int rep = 0; rep < 2; rep++) {
            double t0 = bu_now_s();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, shp[s][1], shp[s][0], 1.0f, g->a, shp[s][0],
                        g->b, shp[s][0], 0.0f, g->c, shp[s][1]);
            double gf = 2.0 * rows * shp[s][0] * shp[s][1] / (bu_now_s() - t0) / 1e9;
            if (gf > best) best = gf;
        }
    return best;
}

/* ---- one forward ---------------------------------------------------------------------------------------------------- */
typedef struct {
    const acm_model *m;
    acm_worker *w;
    acm_item items[MAXB];
    acm_result res[MAXB];
    float logits[MAXB][1000];
} runner;

static double forward(runner *r, int B, double *flops) {
    char err[256];
    double t0 = bu_now_s();
    if (acm_worker_run(r->w, r->items, r->res, B, err, sizeof err)) bu_die("acm_worker_run", err);
    double t = bu_now_s() - t0;
    if (flops) {
        *flops = 0;
        for (int b = 0; b < B; b++) *flops += r->res[b].flops;
    }
    return t;
}

/* ---- (6) the worker's pool on and off ------------------------------------------------------------------------------ */
static void pool_ab(runner *rs, runner *ra, const uint8_t *force, const double *betas, int nbeta,
                    const double *batches, int nbatch, int maxB, int AT, int rounds) {
    acm__acm_scratch *ss = acm__worker_scratch(rs->w), *sa = acm__worker_scratch(ra->w);
    acm__backend *pooled_s = ss->be, *pooled_a = sa->be, *plain = acm__backend_cpu();
    printf("\n(6) the worker's pool on and off, same process, rounds interleaved (%d BLAS threads)\n"
           "| model | batch | beta | pool + parts ms | pool, no parts ms | no pool ms | speed-up pool + parts | "
           "speed-up pool, no parts |\n|---|---|---|---|---|---|---|---|\n", acm_blas_threads());
    for (int bi = 0; bi < nbatch; bi++) {
        const int B = (int)batches[bi];
        for (int j = -1; j < nbeta; j++) {
            runner *r = j < 0 ? rs : ra;
            acm__acm_scratch *sc = j < 0 ? ss : sa;
            acm__backend *pooled = j < 0 ? pooled_s : pooled_a;
            for (int b = 0; b < B; b++) r->items[b].force_k = j < 0 ? NULL : force + ((size_t)j * maxB + b) * AT;
            double on[MAXR], np[MAXR], off[MAXR], r1[MAXR], r2[MAXR];
            forward(r, B, NULL);
            for (int k = 0; k < rounds; k++) {
                sc->be = pooled;
                on[k] = forward(r, B, NULL);
                sc->no_parts = 1;
                np[k] = forward(r, B, NULL);
                sc->no_parts = 0;
                sc->be = plain;
                off[k] = forward(r, B, NULL);
                r1[k] = off[k] / on[k];
                r2[k] = off[k] / np[k];
            }
            sc->be = pooled;
            if (j < 0) printf("| static | %d | - ", B);
            else printf("| ACM | %d | %.2f ", B, betas[j]);
            printf("| %.1f | %.1f | %.1f | **%.2f** | %.2f |\n", bu_median(on, rounds) * 1e3, bu_median(np, rounds) * 1e3,
                   bu_median(off, rounds) * 1e3, bu_median(r1, rounds), bu_median(r2, rounds));
            fflush(stdout);
        }
    }
    for (int b = 0; b < maxB; b++) ra->items[b].force_k = NULL;
}

/* ---- (7) one engine change on and off ------------------------------------------------------------------------------- */
typedef struct {
    const char *name, *what;
    void (*set)(int off); /* off = 1: the engine without the change */
} ab_change;
static void simd_set(int off) { acm__simd_disable(off); }
static void split_set(int off) { acm__cpu_gemm_split(!off); }
static const ab_change ab_changes[] = {
    {"simd", "AVX-512 kernels (LayerNorm, GELU, bias + GELU, softmax) against SSE", simd_set},
    {"gemm-split", "GEMM rows split across the worker's pool (1-thread sgemm each) against OpenBLAS's threads",
     split_set},
};

static void change_ab(const ab_change *ch, runner *rs, runner *ra, const uint8_t *force, const double *betas,
                      int nbeta, const double *batches, int nbatch, int maxB, int AT, int rounds) {
    printf("\n(7) A/B '%s': %s; same process, rounds interleaved, %d BLAS threads, core %s\n"
           "| model | batch | beta | on ms | off ms | speed-up (off / on) |\n|---|---|---|---|---|---|\n", ch->name,
           ch->what, acm_blas_threads(), acm_blas_core());
    for (int bi = 0; bi < nbatch; bi++) {
        const int B = (int)batches[bi];
        for (int j = -1; j < nbeta; j++) {
            runner *r = j < 0 ? rs : ra;
            for (int b = 0; b < B; b++) r->items[b].force_k = j < 0 ? NULL : force + ((size_t)j * maxB + b) * AT;
            double on[MAXR], off[MAXR], ratio[MAXR];
            forward(r, B, NULL);
            for (int k = 0; k < rounds; k++) {
                ch->set(k & 1); /* alternate which side goes first */
                double t1 = forward(r, B, NULL);
                ch->set(!(k & 1));
                double t2 = forward(r, B, NULL);
                on[k] = k & 1 ? t2 : t1;
                off[k] = k & 1 ? t1 : t2;
                ratio[k] = off[k] / on[k];
            }
            ch->set(0);
            if (j < 0) printf("| static | %d | - ", B);
            else printf("| ACM | %d | %.2f ", B, betas[j]);
            printf("| %.1f | %.1f | **%.2f** |\n", bu_median(on, rounds) * 1e3, bu_median(off, rounds) * 1e3,
                   bu_median(ratio, rounds));
            fflush(stdout);
        }
    }
    for (int b = 0; b < maxB; b++) ra->items[b].force_k = NULL;
}

/* ---- (5) workers x threads ------------------------------------------------------------------------------------------ */
typedef struct {
    runner *r;
    int batches, B;
} tp_job;

static void *tp_thread(void *p) {
    tp_job *j = p;
    for (int i = 0; i < j->batches; i++) forward(j->r, j->B, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    int threads = acm_cpu_count(), rounds = 5, depth = 12, do_fwd = 1, do_mod = 1, tp_batches = 0, do_ab = 0;
    const ab_change *change = NULL;
    double batches_d[4] = {1, 8}, betas[MAXBETA] = {0.25, 0.5, 0.75, 1.0};
    int nbatch = 2, nbeta = 4;
    uint64_t seed = 1;
    const char *fm_acm = NULL, *fm_static = NULL, *fm_images = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--batches") && i + 1 < argc) nbatch = bu_parse_list(argv[++i], batches_d, 4);
        else if (!strcmp(argv[i], "--betas") && i + 1 < argc) nbeta = bu_parse_list(argv[++i], betas, MAXBETA);
        else if (!strcmp(argv[i], "--no-forward")) do_fwd = 0;
        else if (!strcmp(argv[i], "--no-modules")) do_mod = 0;
        else if (!strcmp(argv[i], "--pool-ab")) do_ab = 1;
        else if (!strcmp(argv[i], "--ab") && i + 1 < argc) {
            const char *name = argv[++i];
            for (size_t c = 0; c < sizeof ab_changes / sizeof ab_changes[0]; c++)
                if (!strcmp(name, ab_changes[c].name)) change = &ab_changes[c];
            if (!change) bu_die("--ab", "unknown change (simd, gemm-split)");
        }
        else if (!strcmp(argv[i], "--throughput") && i + 1 < argc) tp_batches = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--fmnist") && i + 3 < argc) {
            fm_acm = argv[++i];
            fm_static = argv[++i];
            fm_images = argv[++i];
        } else {
            printf("usage: acm_exec [--threads N (default: cores = %d)] [--rounds R (5)] [--batches 1,8]\n"
                   "                [--betas 0.25,0.5,0.75,1] [--seed S (1)] [--depth L (12)] [--no-forward]\n"
                   "                [--no-modules] [--throughput BATCHES_PER_WORKER (0: skip)] [--pool-ab]\n"
                   "                [--ab simd|gemm-split]\n"
                   "                [--fmnist ACM.safetensors STATIC.safetensors t10k-images-idx3-ubyte.gz]\n",
                   acm_cpu_count());
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (rounds < 1 || rounds > MAXR || threads < 1 || nbatch < 1 || nbeta < 1) bu_die("arguments", "out of range");
    int maxB = 1;
    for (int i = 0; i < nbatch; i++) maxB = (int)batches_d[i] > maxB ? (int)batches_d[i] : maxB;
    if (maxB > MAXB) bu_die("arguments", "batch too large");
    acm_blas_set_threads(threads);
    double load[3] = {0};
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf %lf %lf", &load[0], &load[1], &load[2]) != 3) load[0] = -1;
        fclose(lf);
    }
    printf("acm_exec: BLAS core %s, %d BLAS threads, %d cores, load average %.2f %.2f %.2f, %d rounds (medians)\n",
           acm_blas_core(), acm_blas_threads(), acm_cpu_count(), load[0], load[1], load[2], rounds);
    char err[512];

    if (do_fwd || do_mod || tp_batches || do_ab || change) {
        vr_config vc = {.image_size = 224, .patch_size = 16, .in_chans = 3, .dim = 768, .depth = depth, .heads = 12,
                        .mlp_hidden = 3072, .num_classes = 1000, .learners = 0, .seed = seed};
        vr_store sst, sacm;
        acm_model *ms = vr_build(&vc, &sst, err, sizeof err);
        if (!ms) bu_die("static ViT-B", err);
        vc.learners = 4;
        vc.acm_mask = 0x1f;
        acm_model *ma = vr_build(&vc, &sacm, err, sizeof err);
        if (!ma) bu_die("ACM ViT-B", err);
        const acm_config *c = acm_model_config(ma);
        const int T = c->tokens, A = c->num_acms, D = c->dim, Hd = c->mlp_hidden;
        printf("ViT-B/16: %d tokens, depth %d, %d ACMs (N = 4, projection h = %d, MLP h = %d); dense %.3f GFLOP per "
               "image\n",
               T, c->depth, A, acm_model_acm(ma, 0)->h, acm_model_acm(ma, 4)->h, acm_model_flops_dense(ms) / 1e9);
        runner *rs = calloc(1, sizeof *rs), *ra = calloc(1, sizeof *ra);
        rs->m = ms;
        ra->m = ma;
        rs->w = acm_worker_new(ms, (acm_worker_params){.max_batch = maxB}, err, sizeof err);
        if (!rs->w) bu_die("worker", err);
        ra->w = acm_worker_new(ma, (acm_worker_params){.max_batch = maxB}, err, sizeof err);
        if (!ra->w) bu_die("worker", err);
        const size_t img = (size_t)3 * 224 * 224;
        float *pix = malloc(sizeof(float) * img * maxB);
        uint64_t rng = seed * 7 + 3;
        for (size_t i = 0; i < img * maxB; i++) pix[i] = (float)(2.0 * vr_uniform(&rng) - 1.0);
        uint8_t *force = malloc((size_t)nbeta * maxB * A * T);
        for (int j = 0; j < nbeta; j++)
            for (int b = 0; b < maxB; b++) vr_draw_k(force + ((size_t)j * maxB + b) * A * T, ma, betas[j], &rng);
        for (int b = 0; b < maxB; b++) {
            rs->items[b] = (acm_item){.pixels = pix + b * img, .policy = acm_policy_default()};
            rs->res[b] = (acm_result){.logits = rs->logits[b]};
            ra->items[b] = rs->items[b];
            ra->res[b] = (acm_result){.logits = ra->logits[b]};
        }
        acm__acm_scratch *sc = acm__worker_scratch(ra->w);

        if (do_fwd) {
            gemm_bufs g;
            size_t rows = (size_t)maxB * T;
            g.a = calloc(rows * Hd, sizeof(float));
            g.b = calloc((size_t)Hd * 3 * D > (size_t)D * Hd ? (size_t)Hd * 3 * D : (size_t)D * Hd, sizeof(float));
            g.c = calloc(rows * Hd, sizeof(float));
            for (size_t i = 0; i < rows * Hd; i++) g.a[i] = (float)(vr_uniform(&rng) - 0.5);
            for (size_t i = 0; i < (size_t)D * Hd; i++) g.b[i] = (float)(vr_uniform(&rng) - 0.5);
            for (int bi = 0; bi < nbatch; bi++) {
                const int B = (int)batches_d[bi];
                double t_st[MAXR], f_st = 0, ceil_r[MAXR], t_acm[MAXBETA][MAXR], f_acm[MAXBETA] = {0};
                double ovh[MAXBETA][MAXR], gate_r[MAXBETA][MAXR], sort_r[MAXBETA][MAXR], scat_r[MAXBETA][MAXR];
                double gemm_r[MAXBETA][MAXR];
                /* warm-up: first touch of every buffer and weight */
                forward(rs, B, NULL);
                for (int j = 0; j < nbeta; j++) {
                    for (int b = 0; b < B; b++) ra->items[b].force_k = force + ((size_t)j * maxB + b) * A * T;
                    forward(ra, B, NULL);
                }
                for (int r = 0; r < rounds; r++) {
                    ceil_r[r] = ceiling(&g, B * T, D, Hd);
                    t_st[r] = forward(rs, B, &f_st);
                    for (int j = 0; j < nbeta; j++) {
                        for (int b = 0; b < B; b++) ra->items[b].force_k = force + ((size_t)j * maxB + b) * A * T;
                        acm__exec_times tm = {0};
                        sc->times = &tm;
                        t_acm[j][r] = forward(ra, B, &f_acm[j]);
                        sc->times = NULL;
                        gate_r[j][r] = tm.gate / c->depth;
                        sort_r[j][r] = tm.sort / c->depth;
                        scat_r[j][r] = tm.scatter / c->depth;
                        gemm_r[j][r] = tm.gemm / c->depth;
                        ovh[j][r] = (tm.gate + tm.sort + tm.scatter) / c->depth / (t_st[r] / c->depth);
                    }
                }
                double ts = bu_median(t_st, rounds);
                printf("\n(1) ViT-B/16, batch %d, %d BLAS threads, core %s\n", B, acm_blas_threads(), acm_blas_core());
                printf("| model | beta | latency ms | GFLOP executed | speed-up | FLOP ratio | realisation | gate "
                       "ms/block | sort+gather ms/block | scatter ms/block | learner GEMM ms/block | "
                       "gates+sort+scatter %% of static block |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
                printf("| static | - | %.1f | %.2f | 1.00 | 1.00 | 1.00 | - | - | - | - | - |\n", ts * 1e3, f_st / 1e9);
                for (int j = 0; j < nbeta; j++) {
                    double real[MAXR], sp[MAXR];
                    for (int r = 0; r < rounds; r++) {
                        sp[r] = t_st[r] / t_acm[j][r];
                        real[r] = sp[r] / (f_st / f_acm[j]);
                    }
                    printf("| ACM | %.2f | %.1f | %.2f | %.2f | %.2f | **%.2f** | %.2f | %.2f | %.2f | %.1f | %.1f%% |\n",
                           betas[j], bu_median(t_acm[j], rounds) * 1e3, f_acm[j] / 1e9, bu_median(sp, rounds),
                           f_st / f_acm[j], bu_median(real, rounds), bu_median(gate_r[j], rounds) * 1e3,
                           bu_median(sort_r[j], rounds) * 1e3, bu_median(scat_r[j], rounds) * 1e3,
                           bu_median(gemm_r[j], rounds) * 1e3, bu_median(ovh[j], rounds) * 100);
                }
                double gfs[MAXR], frac[MAXR];
                for (int r = 0; r < rounds; r++) {
                    gfs[r] = f_st / t_st[r] / 1e9;
                    frac[r] = gfs[r] / ceil_r[r];
                }
                printf("\n(3) static ViT-B, batch %d: %.1f GFLOP/s, sgemm ceiling %.1f GFLOP/s (same rounds): **%.0f%%** "
                       "of the ceiling (median of per-round ratios)\n",
                       B, bu_median(gfs, rounds), bu_median(ceil_r, rounds), bu_median(frac, rounds) * 100);
                fflush(stdout);
            }
            for (int b = 0; b < maxB; b++) ra->items[b].force_k = NULL;
            free(g.a);
            free(g.b);
            free(g.c);
        }

        if (do_mod) {
            /* (1b) one module alone, both schedules, against the static module at the same rows */
            const acm_model *mam = ma, *msm = ms;
            const acm__module *mods[2] = {&mam->blocks[0].mod[ACM_POS_MLP], &mam->blocks[0].mod[ACM_POS_O]};
            const acm__module *stat[2] = {&msm->blocks[0].mod[ACM_POS_MLP], &msm->blocks[0].mod[ACM_POS_O]};
            const size_t rows = (size_t)maxB * T;
            float *x = malloc(sizeof(float) * rows * D), *out = calloc(rows * D, sizeof(float));
            float *fc1 = malloc(sizeof(float) * rows * Hd);
            for (size_t i = 0; i < rows * D; i++) x[i] = (float)(2.0 * vr_uniform(&rng) - 1.0);
            float lambda[MAXB] = {0}, gbeta[MAXB] = {0};
            double fl[MAXB], lfl[MAXB];
            printf("\n(1b) one module alone (block 0), ms per call, median of %d; speed-up = static / schedule\n",
                   rounds);
            printf("| module | batch | beta | static ms | GROUPS ms | PREFIX ms | GROUPS speed-up | PREFIX speed-up | "
                   "FLOP ratio |\n|---|---|---|---|---|---|---|---|---|\n");
            for (int mi = 0; mi < 2; mi++)
                for (int bi = 0; bi < nbatch; bi++) {
                    const int B = (int)batches_d[bi];
                    const int64_t BT = (int64_t)B * T;
                    for (int j = 0; j < nbeta; j++) {
                        for (int b = 0; b < B; b++) ra->items[b].force_k = force + ((size_t)j * maxB + b) * A * T;
                        double ts[MAXR], tg[MAXR], tp[MAXR], fa = 0;
                        for (int r = -1; r < rounds; r++) { /* r = -1: warm-up */
                            const acm__module *sm = stat[mi];
                            double t0 = bu_now_s();
                            if (sm->info.kind == ACM_MOD_MLP) {
                                acm__matmul_forward(fc1, Hd, x, D, sm->fc1_w, D, sm->fc1_b, BT, D, Hd, 0);
                                acm__gelu_forward(fc1, fc1, BT * Hd);
                                acm__matmul_forward(out, D, fc1, Hd, sm->fc2_w, Hd, sm->fc2_b, BT, Hd, D, 1);
                            } else {
                                acm__matmul_forward(out, D, x, D, sm->w, D, sm->b, BT, D, D, 1);
                            }
                            double t1 = bu_now_s();
                            for (int mode = ACM__EXEC_GROUPS; mode <= ACM__EXEC_PREFIX; mode++) {
                                sc->mode = mode;
                                for (int b = 0; b < B; b++) fl[b] = lfl[b] = 0;
                                double t2 = bu_now_s();
                                acm__acm_forward(out, D, 1, x, D, mam, mods[mi], ra->items, lambda, gbeta, B, T, sc,
                                                 fl, lfl);
                                double dt = bu_now_s() - t2;
                                if (r >= 0) (mode == ACM__EXEC_GROUPS ? tg : tp)[r] = dt;
                            }
                            sc->mode = ACM__EXEC_AUTO;
                            if (r >= 0) ts[r] = t1 - t0;
                            fa = 0;
                            for (int b = 0; b < B; b++) fa += fl[b];
                        }
                        const acm__module *sm = stat[mi];
                        double fdense = sm->info.kind == ACM_MOD_MLP ? 4.0 * BT * D * Hd : 2.0 * BT * D * D;
                        double mg = bu_median(tg, rounds), mp = bu_median(tp, rounds), mst = bu_median(ts, rounds);
                        printf("| %s | %d | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f |\n",
                               mi ? "projection (o)" : "MLP", B, betas[j], mst * 1e3, mg * 1e3, mp * 1e3, mst / mg,
                               mst / mp, fdense / fa);
                    }
                    fflush(stdout);
                }
            for (int b = 0; b < maxB; b++) ra->items[b].force_k = NULL;
            free(x);
            free(out);
            free(fc1);
        }

        if (tp_batches > 0) {
            /* (5) throughput at batch 8: 1 worker x C threads vs C workers x 1 thread */
            const int B = maxB < 8 ? maxB : 8, cores = acm_cpu_count();
            const int jb = nbeta > 1 ? 1 : 0; /* beta 0.5 in the default list */
            printf("\n(5) workers x BLAS threads, batch %d, %d batches per worker: images/s\n", B, tp_batches);
            printf("| model | 1 worker x %d threads | %d workers x 1 thread |\n|---|---|---|\n", cores, cores);
            for (int mi = 0; mi < 2; mi++) {
                double ips[2];
                for (int cfg = 0; cfg < 2; cfg++) {
                    const int nw = cfg ? cores : 1, nt = cfg ? 1 : cores;
                    acm_blas_set_threads(nt);
                    runner *rr = calloc((size_t)nw, sizeof *rr);
                    tp_job *jobs = calloc((size_t)nw, sizeof *jobs);
                    pthread_t *th = calloc((size_t)nw, sizeof *th);
                    for (int w = 0; w < nw; w++) {
                        rr[w].m = mi ? ma : ms;
                        rr[w].w = acm_worker_new(rr[w].m, (acm_worker_params){.max_batch = B, .workers = nw,
                                                                             .cpu_threads = nt},
                                                 err, sizeof err);
                        if (!rr[w].w) bu_die("worker", err);
                        for (int b = 0; b < B; b++) {
                            rr[w].items[b] = ra->items[b];
                            rr[w].items[b].force_k = mi ? force + ((size_t)jb * maxB + b) * A * T : NULL;
                            rr[w].res[b] = (acm_result){.logits = rr[w].logits[b]};
                        }
                        forward(&rr[w], B, NULL); /* warm-up */
                        jobs[w] = (tp_job){&rr[w], tp_batches, B};
                    }
                    double t0 = bu_now_s();
                    for (int w = 0; w < nw; w++) pthread_create(&th[w], NULL, tp_thread, &jobs[w]);
                    for (int w = 0; w < nw; w++) pthread_join(th[w], NULL);
                    ips[cfg] = (double)nw * tp_batches * B / (bu_now_s() - t0);
                    for (int w = 0; w < nw; w++) acm_worker_free(rr[w].w);
                    free(rr);
                    free(jobs);
                    free(th);
                }
                printf("| %s | %.2f | %.2f |\n", mi ? "ACM (beta 0.5)" : "static", ips[0], ips[1]);
            }
            acm_blas_set_threads(threads);
        }
        if (do_ab) pool_ab(rs, ra, force, betas, nbeta, batches_d, nbatch, maxB, A * T, rounds);
        if (change) change_ab(change, rs, ra, force, betas, nbeta, batches_d, nbatch, maxB, A * T, rounds);
        acm_worker_free(rs->w);
        acm_worker_free(ra->w);
        free(rs);
        free(ra);
        free(pix);
        free(force);
        acm_model_free(ms);
        acm_model_free(ma);
        vr_store_free(&sst);
        vr_store_free(&sacm);
    }

    if (fm_acm) {
        /* (2) the shipped Fashion-MNIST models on real test images, the gates' own k maps (MEAN policy) */
        acm_model *ma = acm_model_load(fm_acm, err, sizeof err), *ms = acm_model_load(fm_static, err, sizeof err);
        if (!ma || !ms) bu_die("--fmnist", err);
        uint8_t *buf;
        size_t len;
        bu_read_file(fm_images, &buf, &len);
        acm_idx im;
        if (acm_idx_parse(&im, buf, len, 3, fm_images, err, sizeof err)) bu_die("--fmnist", err);
        free(buf);
        const acm_config *c = acm_model_config(ma);
        const size_t px = (size_t)c->image_size * c->image_size;
        float *pix = malloc(sizeof(float) * px * MAXB);
        for (int b = 0; b < MAXB; b++)
            for (size_t i = 0; i < px; i++)
                pix[b * px + i] = (im.data[(size_t)b * px + i] / 255.0f - c->mean[0]) / c->std[0];
        const int fb[3] = {1, 8, 64};
        const double fbeta[3] = {0.25, 0.5, 0.75};
        runner *rs = calloc(1, sizeof *rs), *ra = calloc(1, sizeof *ra);
        rs->w = acm_worker_new(ms, (acm_worker_params){.max_batch = 64}, err, sizeof err);
        ra->w = acm_worker_new(ma, (acm_worker_params){.max_batch = 64}, err, sizeof err);
        if (!rs->w || !ra->w) bu_die("--fmnist worker", err);
        printf("\n(2) Fashion-MNIST: %s vs %s, MEAN policy, %d rounds\n", fm_acm, fm_static, rounds);
        printf("| batch | beta | static ms | ACM ms | speed-up | FLOP ratio | realisation | budget realised |\n"
               "|---|---|---|---|---|---|---|---|\n");
        for (int bi = 0; bi < 3; bi++) {
            const int B = fb[bi];
            for (int b = 0; b < B; b++) {
                rs->items[b] = (acm_item){.pixels = pix + b * px, .policy = acm_policy_default()};
                rs->res[b] = (acm_result){.logits = rs->logits[b]};
                ra->res[b] = (acm_result){.logits = ra->logits[b]};
            }
            for (int j = 0; j < 3; j++) {
                for (int b = 0; b < B; b++)
                    ra->items[b] = (acm_item){.pixels = pix + b * px,
                                              .policy = {.kind = ACM_POLICY_MEAN, .beta = (float)fbeta[j]}};
                double ts[MAXR], ta[MAXR], sp[MAXR], re[MAXR], fs = 0, fa = 0, bud = 0;
                forward(rs, B, NULL);
                forward(ra, B, NULL);
                for (int r = 0; r < rounds; r++) {
                    ts[r] = forward(rs, B, &fs);
                    ta[r] = forward(ra, B, &fa);
                }
                for (int b = 0; b < B; b++) bud += ra->res[b].budget / B;
                for (int r = 0; r < rounds; r++) {
                    sp[r] = ts[r] / ta[r];
                    re[r] = sp[r] / (fs / fa);
                }
                printf("| %d | %.2f | %.2f | %.2f | %.2f | %.2f | **%.2f** | %.3f |\n", B, fbeta[j],
                       bu_median(ts, rounds) * 1e3, bu_median(ta, rounds) * 1e3, bu_median(sp, rounds), fs / fa,
                       bu_median(re, rounds), bud);
            }
        }
        acm_worker_free(rs->w);
        acm_worker_free(ra->w);
        free(rs);
        free(ra);
        free(pix);
        acm_idx_free(&im);
        acm_model_free(ma);
        acm_model_free(ms);
    }
    return 0;
}
