/*
 * backend_vit.c — ViT-B/16 on one backend (engine/backend.h), for issue 22's tables (bench/cuda_check.sh):
 *   (a) static ViT-B/16 at batch B: images/s and GFLOP/s, against the same backend's SGEMM (its matmul op: cuBLAS on
 *       the CUDA backend, OpenBLAS on the CPU) on ViT-B's four GEMM shapes at B*197 rows, measured in the same run,
 *       alternating rounds: the ratio of the two (target on a GPU: >= 60%);
 *   (b) the ACM ViT-B (every position an ACM, N = 4) at each budget, k per token drawn at that budget and forced
 *       (acm_item.force_k, as bench/acm_exec.c does), against the static model in the same rounds: speed-up, FLOP
 *       ratio and realisation = speed-up / FLOP ratio (targets: >= 0.8 at beta 0.5, >= 0.6 at 0.25).
 * Weights are random (bench/vit_random.h): speed does not depend on them. Medians over rounds; one warm-up call each.
 * usage: backend_vit [--backend cpu|cuda (cpu)] [--batch B (64)] [--rounds R (5)] [--betas 0.5,0.25] [--depth L (12)]
 *                    [--threads N (CPU backend: OpenBLAS threads; default all cores)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "backend.h"
#define BENCH_NAME "backend_vit"
#include "bench/bench_util.h"
#include "bench/vit_random.h"
#include "cpu/cpu.h"

#define MAXBETA 8

/* Seconds of one acm_worker_run of n items (median of rounds). */
static double time_run(acm_worker *w, const acm_item *items, acm_result *res, int n, int rounds) {
    char err[512];
    double t[64];
    for (int r = 0; r < rounds; r++) {
        const double t0 = bu_now_s();
        if (acm_worker_run(w, items, res, n, err, sizeof err)) bu_die("run", err);
        t[r] = bu_now_s() - t0;
    }
    return bu_median(t, rounds);
}

/* GFLOP/s of the backend's matmul op on ViT-B's GEMMs (qkv, proj, fc1, fc2) at `rows` rows, one pass of the four. */
static double sgemm_gflops(acm__backend *be, int64_t rows, int rounds) {
    static const int shapes[4][2] = {{768, 2304}, {768, 768}, {768, 3072}, {3072, 768}}; /* C, OC */
    float *x = be->alloc(be, sizeof(float) * (size_t)rows * 3072), *y = be->alloc(be, sizeof(float) * (size_t)rows * 3072),
          *w = be->alloc(be, sizeof(float) * 3072 * 768);
    if (!x || !y || !w) bu_die("sgemm", "out of backend memory");
    double flops = 0, t[64];
    for (int s = 0; s < 4; s++) flops += 2.0 * (double)rows * shapes[s][0] * shapes[s][1];
    char err[512];
    for (int r = -1; r < rounds; r++) { /* r = -1: warm-up (cuBLAS picks its kernels on the first call) */
        const double t0 = bu_now_s();
        for (int s = 0; s < 4; s++)
            be->matmul_forward(be, y, shapes[s][1], x, shapes[s][0], w, shapes[s][0], NULL, rows, shapes[s][0],
                               shapes[s][1], 0);
        if (be->sync(be, err, sizeof err)) bu_die("sgemm", err);
        if (r >= 0) t[r] = bu_now_s() - t0;
    }
    be->free(be, x), be->free(be, y), be->free(be, w);
    return flops / bu_median(t, rounds) / 1e9;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    const char *backend = "cpu";
    int batch = 64, rounds = 5, depth = 12, threads = acm_cpu_count(), nbeta = 2;
    double betas[MAXBETA] = {0.5, 0.25};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--backend") && i + 1 < argc) backend = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc) batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc) depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--betas") && i + 1 < argc) nbeta = bu_parse_list(argv[++i], betas, MAXBETA);
        else {
            printf("usage: backend_vit [--backend cpu|cuda (cpu)] [--batch B (64)] [--rounds R (5)] [--betas 0.5,0.25]\n"
                   "                   [--depth L (12)] [--threads N (CPU backend; default %d)]\n",
                   acm_cpu_count());
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    if (batch < 1 || rounds < 1 || rounds > 64 || depth < 1 || nbeta < 1 || threads < 1) bu_die("options", "out of range");
    char err[512];
    if (acm_backend_check(backend, err, sizeof err)) bu_die("--backend", err);
    acm_blas_set_threads(threads);
    printf("backend_vit: backend %s (built: %s), BLAS core %s x%d (CPU side), batch %d, depth %d, %d rounds "
           "(medians)\n",
           backend, acm_backends_built(), acm_blas_core(), threads, batch, depth, rounds);
    vr_config vc = {.image_size = 224, .patch_size = 16, .in_chans = 3, .dim = 768, .depth = depth, .heads = 12,
                    .mlp_hidden = 3072, .num_classes = 1000, .learners = 0, .seed = 1};
    vr_store sst, sacm;
    acm_model *ms = vr_build(&vc, &sst, err, sizeof err);
    if (!ms) bu_die("static ViT-B", err);
    vc.learners = 4;
    vc.acm_mask = 0x1f;
    acm_model *ma = vr_build(&vc, &sacm, err, sizeof err);
    if (!ma) bu_die("ACM ViT-B", err);
    const acm_config *c = acm_model_config(ma);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes;
    acm_worker_params wp = {.max_batch = batch, .backend = backend};
    acm_worker *ws = acm_worker_new(ms, wp, err, sizeof err), *wa = ws ? acm_worker_new(ma, wp, err, sizeof err) : NULL;
    if (!wa) bu_die("worker", err);
    acm__backend *be = acm__backend_open(backend, NULL, 1, err, sizeof err);
    if (!be) bu_die("backend", err);
    const size_t img = (size_t)3 * 224 * 224;
    float *pix = malloc(sizeof(float) * img * batch), *logits = malloc(sizeof(float) * (size_t)K * batch);
    uint8_t *force = malloc((size_t)nbeta * batch * A * T);
    acm_item *items = calloc((size_t)batch, sizeof *items), *ai = calloc((size_t)batch, sizeof *ai);
    acm_result *res = calloc((size_t)batch, sizeof *res);
    if (!pix || !logits || !force || !items || !ai || !res) bu_die("memory", "out of memory");
    uint64_t rng = 17;
    for (size_t i = 0; i < img * batch; i++) pix[i] = (float)(2.0 * vr_uniform(&rng) - 1.0);
    for (int j = 0; j < nbeta; j++)
        for (int b = 0; b < batch; b++) vr_draw_k(force + ((size_t)j * batch + b) * A * T, ma, betas[j], &rng);
    for (int b = 0; b < batch; b++) {
        items[b] = (acm_item){.pixels = pix + b * img, .policy = acm_policy_default()};
        res[b] = (acm_result){.logits = logits + (size_t)b * K};
    }
    /* warm-up: the first calls of a worker page its memory in (and on a GPU load the kernels) */
    time_run(ws, items, res, batch, 1);
    for (int b = 0; b < batch; b++) ai[b] = (acm_item){.pixels = pix + b * img, .force_k = force + (size_t)b * A * T};
    time_run(wa, ai, res, batch, 1);
    /* (a) static vs SGEMM, alternating */
    double ts[64], gs[64];
    for (int r = 0; r < rounds; r++) {
        ts[r] = time_run(ws, items, res, batch, 1);
        gs[r] = sgemm_gflops(be, (int64_t)batch * T, 1);
    }
    const double t_static = bu_median(ts, rounds), g_sgemm = bu_median(gs, rounds);
    const double g_static = acm_model_flops_dense(ms) * batch / t_static / 1e9;
    printf("\n(a) static ViT-B/16, batch %d, backend %s\n\n", batch, backend);
    printf("| images/s | ms per batch | GFLOP/s | SGEMM GFLOP/s (ViT-B shapes, same run) | share of SGEMM |\n");
    printf("|---|---|---|---|---|\n");
    printf("| %.1f | %.2f | %.1f | %.1f | **%.0f%%** |\n", batch / t_static, 1e3 * t_static, g_static, g_sgemm,
           100 * g_static / g_sgemm);
    /* (b) ACM at each budget vs static, same rounds */
    printf("\n(b) ACM ViT-B/16 (N = 4, every position), batch %d, k forced at the budget, backend %s\n\n", batch,
           backend);
    printf("| beta | ms per batch | static ms | GFLOP executed per image | speed-up | FLOP ratio | realisation |\n");
    printf("|---|---|---|---|---|---|---|\n");
    for (int j = 0; j < nbeta; j++) {
        for (int b = 0; b < batch; b++)
            ai[b] = (acm_item){.pixels = pix + b * img, .policy = acm_policy_default(),
                               .force_k = force + ((size_t)j * batch + b) * A * T};
        double ta[64], tst[64], fl = 0;
        for (int r = 0; r < rounds; r++) {
            ta[r] = time_run(wa, ai, res, batch, 1);
            tst[r] = time_run(ws, items, res, batch, 1);
        }
        if (acm_worker_run(wa, ai, res, batch, err, sizeof err)) bu_die("run", err);
        for (int b = 0; b < batch; b++) fl += res[b].flops / batch;
        const double t_a = bu_median(ta, rounds), t_s = bu_median(tst, rounds);
        const double speed = t_s / t_a, ratio = acm_model_flops_dense(ms) / fl;
        printf("| %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | **%.2f** |\n", betas[j], 1e3 * t_a, 1e3 * t_s, fl / 1e9,
               speed, ratio, speed / ratio);
    }
    acm__backend_close(be);
    acm_worker_free(ws);
    acm_worker_free(wa);
    acm_model_free(ms);
    acm_model_free(ma);
    vr_store_free(&sst);
    vr_store_free(&sacm);
    free(pix), free(logits), free(force), free(items), free(ai), free(res);
    return 0;
}
