/*
 * equal_latency — issue "one ACM model for every budget", experiment 4: the adaptive model against the uniform baseline
 * (every token runs K learners, no gates) at equal measured latency and at equal FLOPs (bench/equal_latency.sh runs it;
 * the results go into models/fmnist-vit-acm.md, "One model for every budget").
 *
 * One run, side by side (the machine is shared: ratios measured in one run, not single figures):
 *   1. Latency: per batch size, rounds that time the uniform model (FIXED K) and the adaptive model at every beta of the
 *      grid under --policy, on the same Fashion-MNIST test images (the first 256, cycled), interleaved round by round;
 *      medians of ms per image.
 *   2. The beta at which the adaptive model's latency equals the uniform model's (linear interpolation on the grid),
 *      per batch size, and the beta at equal FLOPs (gates included; from the executed FLOPs of the 10k-image runs).
 *   3. Accuracy on the 10k test images: the uniform model, the adaptive model at every grid beta, at the equal-FLOPs
 *      beta and at each equal-latency beta (each evaluated, not interpolated).
 * FLOPs: 2 per multiply-add, matrix products, gates and attention included (the engine's count).
 *
 * usage: equal_latency --adaptive ACM.safetensors --uniform UNIFORM.safetensors --k K [--policy cap|mean]
 *                      [--betas 0.15,0.2,0.25,0.3,0.35] [--batches 1,8,64] [--rounds 7] [--threads 1]
 *                      [--data /usr/share/datasets/fashion-mnist] [--images N (accuracy on the first N; 0: all)]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#define BENCH_NAME "equal_latency"
#include "bench/bench_util.h"
#include "idx.h"
#include "train/eval.h"

#define MAXB 64
#define MAXBETA 12
#define MAXR 64
#define TIMED_IMAGES 256 /* images per latency measurement (batches of B, cycled over the first 256 test images) */

/* Seconds per image of TIMED_IMAGES images through w in batches of B under policy p. */
static double time_images(acm_worker *w, const float *pix, size_t px, int B, acm_policy p) {
    acm_item items[MAXB];
    acm_result res[MAXB];
    static float logits[MAXB][16];
    char err[256];
    double t0 = bu_now_s();
    for (int done = 0; done < TIMED_IMAGES; done += B) {
        for (int b = 0; b < B; b++) {
            items[b] = (acm_item){.pixels = pix + (size_t)((done + b) % TIMED_IMAGES) * px, .policy = p};
            res[b] = (acm_result){.logits = logits[b]};
        }
        if (acm_worker_run(w, items, res, B, err, sizeof err)) bu_die("acm_worker_run", err);
    }
    return (bu_now_s() - t0) / TIMED_IMAGES;
}

static int64_t eval_images; /* 0: all 10k (--images N: the first N, for a quick look) */

static void eval_or_die(const char *model, const char *data, acm_policy p, acmt_eval_result *r) {
    char err[2048];
    if (acmt_eval_model_ex(model, data, 64, p, eval_images, NULL, NULL, r, err, sizeof err)) bu_die(model, err);
}

/* x at which the piecewise-linear curve (xs[i], ys[i]) (ys monotone in i) reaches y; -1 outside the grid. */
static double crossing(const double *xs, const double *ys, int n, double y) {
    for (int i = 0; i + 1 < n; i++) {
        double a = ys[i], b = ys[i + 1];
        if ((a <= y && y <= b) || (b <= y && y <= a)) return a == b ? xs[i] : xs[i] + (xs[i + 1] - xs[i]) * (y - a) / (b - a);
    }
    return -1;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    const char *adaptive = NULL, *uniform = NULL, *data = "/usr/share/datasets/fashion-mnist", *polname = "cap";
    int K = 0, rounds = 7, threads = 1, nbeta = 5, nbatch = 3;
    double betas[MAXBETA] = {0.15, 0.2, 0.25, 0.3, 0.35}, batches_d[4] = {1, 8, 64};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--adaptive") && v) adaptive = argv[++i];
        else if (!strcmp(a, "--uniform") && v) uniform = argv[++i];
        else if (!strcmp(a, "--k") && v) K = atoi(argv[++i]);
        else if (!strcmp(a, "--policy") && v) polname = argv[++i];
        else if (!strcmp(a, "--betas") && v) nbeta = bu_parse_list(argv[++i], betas, MAXBETA);
        else if (!strcmp(a, "--batches") && v) nbatch = bu_parse_list(argv[++i], batches_d, 4);
        else if (!strcmp(a, "--rounds") && v) rounds = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else if (!strcmp(a, "--images") && v) eval_images = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: equal_latency --adaptive ACM.safetensors --uniform UNIFORM.safetensors --k K\n"
                            "       [--policy cap|mean] [--betas 0.15,0.2,0.25,0.3,0.35] [--batches 1,8,64]\n"
                            "       [--rounds 7] [--threads 1] [--data DIR] [--images N]\n");
            return 2;
        }
    }
    int kind = acm_policy_parse(polname);
    if (!adaptive || !uniform || K < 1 || nbeta < 2 || nbatch < 1 || rounds < 1 || rounds > MAXR || threads < 1 || eval_images < 0 ||
        (kind != ACM_POLICY_CAP && kind != ACM_POLICY_MEAN)) {
        fprintf(stderr, "equal_latency: need --adaptive, --uniform, --k >= 1, a policy of cap or mean, >= 2 betas, "
                        "1..%d rounds\n",
                MAXR);
        return 2;
    }
    for (int i = 0; i < nbatch; i++)
        if (batches_d[i] < 1 || batches_d[i] > MAXB) bu_die("--batches", "each batch must be in 1..64");
    acm_blas_set_threads(threads);
    char err[2048];
    acm_model *ma = acm_model_load(adaptive, err, sizeof err), *mu = acm_model_load(uniform, err, sizeof err);
    if (!ma || !mu) bu_die("load", err);
    char path[1200];
    snprintf(path, sizeof path, "%s/t10k-images-idx3-ubyte.gz", data);
    uint8_t *buf;
    size_t len;
    bu_read_file(path, &buf, &len);
    acm_idx im;
    if (acm_idx_parse(&im, buf, len, 3, path, err, sizeof err)) bu_die("images", err);
    free(buf);
    const acm_config *c = acm_model_config(ma);
    const size_t px = (size_t)c->image_size * c->image_size;
    float *pix = malloc(sizeof(float) * px * TIMED_IMAGES);
    for (size_t i = 0; i < px * TIMED_IMAGES; i++) pix[i] = (im.data[i] / 255.0f - c->mean[0]) / c->std[0];
    acm_idx_free(&im);
    acm_worker *wa = acm_worker_new(ma, (acm_worker_params){.max_batch = MAXB}, err, sizeof err);
    acm_worker *wu = wa ? acm_worker_new(mu, (acm_worker_params){.max_batch = MAXB}, err, sizeof err) : NULL;
    if (!wa || !wu) bu_die("worker", err);
    const acm_policy pu = {.kind = ACM_POLICY_FIXED, .fixed_k = K};
    printf("equal_latency: BLAS core %s, %d thread(s); adaptive %s (%s) vs uniform %s (k = %d); %d rounds of %d "
           "images\n",
           acm_blas_core(), threads, adaptive, polname, uniform, K, rounds, TIMED_IMAGES);

    /* 1. latency, interleaved */
    double ms_u[4], ms_a[4][MAXBETA], beta_lat[4];
    for (int bi = 0; bi < nbatch; bi++) {
        const int B = (int)batches_d[bi];
        double tu[MAXR], ta[MAXBETA][MAXR];
        time_images(wu, pix, px, B, pu); /* warm-up */
        for (int j = 0; j < nbeta; j++) time_images(wa, pix, px, B, (acm_policy){.kind = kind, .beta = (float)betas[j]});
        for (int r = 0; r < rounds; r++) {
            tu[r] = time_images(wu, pix, px, B, pu);
            for (int j = 0; j < nbeta; j++)
                ta[j][r] = time_images(wa, pix, px, B, (acm_policy){.kind = kind, .beta = (float)betas[j]});
        }
        ms_u[bi] = bu_median(tu, rounds) * 1e3;
        for (int j = 0; j < nbeta; j++) ms_a[bi][j] = bu_median(ta[j], rounds) * 1e3;
        beta_lat[bi] = crossing(betas, ms_a[bi], nbeta, ms_u[bi]);
    }
    printf("\n(1) ms per image (median of %d rounds)\n| batch | uniform k=%d |", rounds, K);
    for (int j = 0; j < nbeta; j++) printf(" %s β %.3g |", polname, betas[j]);
    printf(" β at equal latency |\n|---|---|");
    for (int j = 0; j < nbeta; j++) printf("---|");
    printf("---|\n");
    for (int bi = 0; bi < nbatch; bi++) {
        printf("| %d | %.4f |", (int)batches_d[bi], ms_u[bi]);
        for (int j = 0; j < nbeta; j++) printf(" %.4f |", ms_a[bi][j]);
        if (beta_lat[bi] < 0) printf(" outside the grid |\n");
        else printf(" **%.3f** |\n", beta_lat[bi]);
    }
    fflush(stdout);

    /* 2-3. accuracy and FLOPs on the 10k test images */
    acmt_eval_result ru, ra[MAXBETA], rx;
    eval_or_die(uniform, data, pu, &ru);
    double gf[MAXBETA], acc[MAXBETA];
    for (int j = 0; j < nbeta; j++) {
        eval_or_die(adaptive, data, (acm_policy){.kind = kind, .beta = (float)betas[j]}, &ra[j]);
        gf[j] = ra[j].flops_mean / 1e9, acc[j] = 100 * ra[j].accuracy;
    }
    const double gf_u = ru.flops_mean / 1e9, beta_fl = crossing(betas, gf, nbeta, gf_u);
    printf("\n(2) accuracy on %s test images (GFLOPs per image: executed, gates included)\n",
           eval_images ? "the first" : "the 10,000");
    printf("| model | policy | β | accuracy | realised budget | GFLOPs / image |\n|---|---|---|---|---|---|\n");
    printf("| uniform | fixed k=%d | - | %.2f%% | %.4f | %.5f |\n", K, 100 * ru.accuracy, ru.budget_mean, gf_u);
    for (int j = 0; j < nbeta; j++)
        printf("| adaptive | %s | %.3g | %.2f%% | %.4f | %.5f |\n", polname, betas[j], acc[j], ra[j].budget_mean, gf[j]);
    printf("\n(3) adaptive minus uniform\n| comparison | β | adaptive | uniform | gap (points) |\n|---|---|---|---|---|\n");
    if (beta_fl < 0) {
        printf("| equal FLOPs | outside the grid | | | |\n");
    } else {
        eval_or_die(adaptive, data, (acm_policy){.kind = kind, .beta = (float)beta_fl}, &rx);
        printf("| equal FLOPs (%.5f GFLOPs) | %.4f | %.2f%% (%.5f GFLOPs) | %.2f%% | **%+.2f** |\n", gf_u, beta_fl,
               100 * rx.accuracy, rx.flops_mean / 1e9, 100 * ru.accuracy, 100 * (rx.accuracy - ru.accuracy));
    }
    for (int bi = 0; bi < nbatch; bi++) {
        if (beta_lat[bi] < 0) {
            printf("| equal latency, batch %d | outside the grid | | | |\n", (int)batches_d[bi]);
            continue;
        }
        eval_or_die(adaptive, data, (acm_policy){.kind = kind, .beta = (float)beta_lat[bi]}, &rx);
        printf("| equal latency, batch %d (%.4f ms/image) | %.4f | %.2f%% | %.2f%% | **%+.2f** |\n", (int)batches_d[bi],
               ms_u[bi], beta_lat[bi], 100 * rx.accuracy, 100 * ru.accuracy, 100 * (rx.accuracy - ru.accuracy));
    }
    acm_worker_free(wa);
    acm_worker_free(wu);
    acm_model_free(ma);
    acm_model_free(mu);
    free(pix);
    return 0;
}
