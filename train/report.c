/*
 * report.c — `acm-train report ACM_MODEL`: the figures of a model card (issue "acm-train acmize"), all measured on the
 * Fashion-MNIST test set through the engine:
 *   table.md / results.json   accuracy, realised budget (mean, std, min, max) and GFLOPs per image for every policy
 *                             and beta of the grid, the gates' argmax, and the static base (--base)
 *   accuracy_vs_gflops.png    accuracy against GFLOPs per image (gnuplot)
 *   heatmaps.png              per-token compute maps (docs/METHOD.md §7: per patch, sum_l k_l p_l / sum_l N_l p_l)
 *                             over the images: the 8 cheapest, the 8 costliest and the first 8 test images (libspng)
 *   cost_hist.png             histogram of the realised budget per image
 *   k_hist.png                share of tokens at each k, per ACM module
 * The last three use --map-policy at --map-beta. FLOPs: 2 per multiply-add.
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/eval.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train report ACM_MODEL.safetensors [options]\n"
               "  --out DIR           where the figures go (default: MODEL without .safetensors, plus -report)\n"
               "  --base MODEL        the static model, for the reference point\n"
               "  --images N          test images per measurement (default 10000: all)\n"
               "  --betas LO:HI:STEP  the beta grid (default 0.1:1:0.1)\n"
               "  --policies LIST     of mean, cap (default mean,cap)\n"
               "  --map-policy P      policy of the heatmaps and histograms (default mean)\n"
               "  --map-beta B        beta of the heatmaps and histograms (default 0.5)\n"
               "  --data DIR          Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  --threads N         OpenBLAS threads (default 2)\n");
}

/* ---- per-image collection for the maps -------------------------------------------------------------------------- */

typedef struct {
    int64_t n;
    int T, A, grid;
    double *cost;      /* [n] realised budget */
    float *map;        /* [n, grid*grid] per-patch compute share */
    uint8_t *pixels;   /* [n, 28*28] */
    int64_t *kcount;   /* [A, 17] tokens at each k */
    double lf_total;   /* sum_l N_l p_l */
} maps;

static void collect(void *ctx, const acm_model *m, int64_t i, int label, int pred, const acm_result *res,
                    const uint8_t *px) {
    maps *M = ctx;
    (void)label, (void)pred;
    if (i >= M->n) return;
    M->cost[i] = res->budget;
    memcpy(M->pixels + i * 784, px, 784);
    for (int t = 1; t < M->T; t++) {
        double lf = 0;
        for (int a = 0; a < M->A; a++) lf += res->kmap[(int64_t)a * M->T + t] * acm_model_learner_flops(m, a);
        M->map[i * M->grid * M->grid + t - 1] = (float)(lf / M->lf_total);
    }
    for (int a = 0; a < M->A; a++)
        for (int t = 0; t < M->T; t++) M->kcount[a * 17 + res->kmap[(int64_t)a * M->T + t]]++;
}

/* A colour map from blue (little compute) through yellow to red (all of it). */
static void heat(double v, uint8_t rgb[3]) {
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    double r = v < 0.5 ? 2 * v : 1, g = v < 0.5 ? 2 * v : 2 - 2 * v, b = v < 0.5 ? 1 - 2 * v : 0;
    rgb[0] = (uint8_t)(255 * r), rgb[1] = (uint8_t)(255 * g), rgb[2] = (uint8_t)(255 * b);
}

/* Rows of tiles: each tile is the 28x28 image (grey) with its compute map blended in, scaled by S. */
static int write_heatmaps(const char *path, const maps *M, const int64_t *rows[], int nrows, int per_row, char *err,
                          size_t errlen) {
    const int S = 6, tile = 28 * S, gap = 4, g = M->grid, cell = 28 / g;
    const int W = per_row * (tile + gap) + gap, H = nrows * (tile + gap) + gap;
    uint8_t *img = malloc((size_t)W * H * 3);
    memset(img, 255, (size_t)W * H * 3);
    for (int r = 0; r < nrows; r++)
        for (int c = 0; c < per_row; c++) {
            int64_t i = rows[r][c];
            if (i < 0) continue;
            for (int y = 0; y < tile; y++)
                for (int x = 0; x < tile; x++) {
                    int py = y / S, px = x / S;
                    double grey = M->pixels[i * 784 + py * 28 + px] / 255.0;
                    int gy = py / cell < g ? py / cell : g - 1, gx = px / cell < g ? px / cell : g - 1;
                    uint8_t hc[3];
                    heat(M->map[i * g * g + gy * g + gx], hc);
                    uint8_t *o = img + ((size_t)(gap + r * (tile + gap) + y) * W + gap + c * (tile + gap) + x) * 3;
                    for (int k = 0; k < 3; k++) o[k] = (uint8_t)(hc[k] * (0.25 + 0.75 * grey)); /* hue: compute */
                }
        }
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (ctx && f) {
        struct spng_ihdr ih = {.width = (uint32_t)W, .height = (uint32_t)H, .bit_depth = 8,
                               .color_type = SPNG_COLOR_TYPE_TRUECOLOR};
        spng_set_png_file(ctx, f);
        spng_set_ihdr(ctx, &ih);
        int e = spng_encode_image(ctx, img, (size_t)W * H * 3, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
        if (e)
            snprintf(err, errlen, "%s: %s", path, spng_strerror(e));
        else
            rc = 0;
    } else {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    }
    if (f && fclose(f) && !rc) rc = -1;
    spng_ctx_free(ctx);
    free(img);
    return rc;
}

static const maps *sort_maps;
static int by_cost(const void *a, const void *b) {
    double x = sort_maps->cost[*(const int64_t *)a], y = sort_maps->cost[*(const int64_t *)b];
    return x < y ? -1 : x > y;
}

static FILE *gnuplot(void) { return popen("gnuplot", "w"); }

int cmd_report(int argc, char **argv) {
    const char *path = NULL, *base = NULL, *dir = "/usr/share/datasets/fashion-mnist", *out = NULL;
    int64_t n_img = 0;
    int threads = 2;
    double blo = 0.1, bhi = 1.0, bstep = 0.1, map_beta = 0.5;
    char policies[64] = "mean,cap", map_policy[16] = "mean";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && v) {
            out = v, i++;
        } else if (!strcmp(a, "--base") && v) {
            base = v, i++;
        } else if (!strcmp(a, "--data") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--images") && v) {
            n_img = strtoll(v, &e, 10), i++;
            if (*e || n_img < 1) goto bad;
        } else if (!strcmp(a, "--threads") && v) {
            threads = (int)strtol(v, &e, 10), i++;
            if (*e || threads < 1) goto bad;
        } else if (!strcmp(a, "--betas") && v) {
            i++;
            if (sscanf(v, "%lf:%lf:%lf", &blo, &bhi, &bstep) != 3 || !(blo > 0 && bhi <= 1 && blo <= bhi && bstep > 0))
                goto bad;
        } else if (!strcmp(a, "--policies") && v) {
            snprintf(policies, sizeof policies, "%s", v), i++;
        } else if (!strcmp(a, "--map-policy") && v) {
            snprintf(map_policy, sizeof map_policy, "%s", v), i++;
            if (acm_policy_parse(map_policy) < 0) goto bad;
        } else if (!strcmp(a, "--map-beta") && v) {
            map_beta = strtod(v, &e), i++;
            if (*e || !(map_beta > 0 && map_beta <= 1)) goto bad;
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
        bad:
            fprintf(stderr, "acm-train report: bad argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char outdir[1200];
    if (out)
        snprintf(outdir, sizeof outdir, "%s", out);
    else {
        snprintf(outdir, sizeof outdir, "%s", path);
        char *dot = strstr(outdir, ".safetensors");
        if (dot) *dot = 0;
        strncat(outdir, "-report", sizeof outdir - strlen(outdir) - 1);
    }
    if (mkdir(outdir, 0755) && errno != EEXIST) {
        fprintf(stderr, "acm-train report: %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    acm_blas_set_threads(threads);
    char err[2048];
    acm_model *m = acm_model_load(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "acm-train report: %s\n", err);
        return 1;
    }
    const acm_config *cfg = acm_model_config(m);
    if (cfg->num_acms == 0 || cfg->image_size != 28 || cfg->in_chans != 1) {
        fprintf(stderr, "acm-train report: %s must be a 28x28 grey ACM model\n", path);
        acm_model_free(m);
        return 1;
    }
    json_t *rows = json_array();
    char tpath[1300];
    snprintf(tpath, sizeof tpath, "%s/table.md", outdir);
    FILE *tab = fopen(tpath, "w");
    snprintf(tpath, sizeof tpath, "%s/points.dat", outdir);
    FILE *dat = fopen(tpath, "w");
    if (!tab || !dat) {
        fprintf(stderr, "acm-train report: cannot write in %s\n", outdir);
        return 1;
    }
    fprintf(tab, "| model | policy | beta | accuracy | realised budget: mean (std) [min, max] | GFLOPs / image |\n");
    fprintf(tab, "|---|---|---|---|---|---|\n");
    printf("acm-train report: %s -> %s/, BLAS %s x%d\n", path, outdir, acm_blas_core(), threads);
#define ROW(model_name, polname, beta, r)                                                                          \
    do {                                                                                                          \
        fprintf(tab, "| %s | %s | %s | %.2f%% | %.4f (%.4f) [%.3f, %.3f] | %.4f |\n", model_name, polname, beta,   \
                100 * (r).accuracy, (r).budget_mean, (r).budget_std, (r).budget_min, (r).budget_max,               \
                (r).flops_mean / 1e9);                                                                             \
        printf("  %-6s %-6s beta %-5s accuracy %.2f%%  realised %.4f (std %.4f)  %.4f GFLOPs\n", model_name,      \
               polname, beta, 100 * (r).accuracy, (r).budget_mean, (r).budget_std, (r).flops_mean / 1e9);          \
        fflush(stdout);                                                                                           \
        json_array_append_new(rows, json_pack("{s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "model",       \
                                              model_name, "policy", polname, "beta", beta, "accuracy",            \
                                              (r).accuracy, "budget_mean", (r).budget_mean, "budget_std",         \
                                              (r).budget_std, "budget_min", (r).budget_min, "budget_max",         \
                                              (r).budget_max, "gflops", (r).flops_mean / 1e9, "images",           \
                                              (json_int_t)(r).n));                                                 \
    } while (0)
    acmt_eval_result r;
    int rc = 0;
    if (base) {
        if (acmt_eval_model_ex(base, dir, 64, acm_policy_default(), n_img, NULL, NULL, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train report: %s\n", err);
            rc = 1;
        } else {
            ROW("static", "-", "1", r);
            fprintf(dat, "# static\n%.6f %.4f\n\n\n", r.flops_mean / 1e9, 100 * r.accuracy);
        }
    }
    if (!rc && !acmt_eval_model_ex(path, dir, 64, acm_policy_default(), n_img, NULL, NULL, &r, err, sizeof err)) {
        ROW("acm", "argmax", "-", r);
        fprintf(dat, "# argmax\n%.6f %.4f\n\n\n", r.flops_mean / 1e9, 100 * r.accuracy);
    } else if (!rc) {
        fprintf(stderr, "acm-train report: %s\n", err);
        rc = 1;
    }
    char plist[64];
    snprintf(plist, sizeof plist, "%s", policies);
    int nseries = 0;
    char series[4][16];
    for (char *sv = NULL, *p = strtok_r(plist, ",", &sv); p && !rc; p = strtok_r(NULL, ",", &sv)) {
        int kind = acm_policy_parse(p);
        if (kind != ACM_POLICY_MEAN && kind != ACM_POLICY_CAP) {
            fprintf(stderr, "acm-train report: --policies takes mean and cap\n");
            rc = 2;
            break;
        }
        if (kind == ACM_POLICY_MEAN && cfg->mean_table_len == 0) {
            fprintf(stderr, "acm-train report: %s has no lambda table: run acm-train calibrate first\n", path);
            rc = 1;
            break;
        }
        snprintf(series[nseries++], sizeof series[0], "%s", p);
        fprintf(dat, "# %s\n", p);
        for (double b = blo; b <= bhi + 1e-9; b += bstep) {
            b = round(b * 1e6) / 1e6;
            acm_policy pol = {.kind = (acm_policy_kind)kind, .beta = (float)b};
            if (acmt_eval_model_ex(path, dir, 64, pol, n_img, NULL, NULL, &r, err, sizeof err)) {
                fprintf(stderr, "acm-train report: %s\n", err);
                rc = 1;
                break;
            }
            char bs[16];
            snprintf(bs, sizeof bs, "%.2f", b);
            ROW("acm", p, bs, r);
            fprintf(dat, "%.6f %.4f %.4f\n", r.flops_mean / 1e9, 100 * r.accuracy, b);
        }
        fprintf(dat, "\n\n");
    }
    fclose(tab);
    fclose(dat);
    /* maps at one policy and beta */
    maps M = {0};
    if (!rc) {
        M.n = n_img > 0 && n_img < 10000 ? n_img : 10000;
        M.T = cfg->tokens, M.A = cfg->num_acms, M.grid = cfg->grid;
        M.cost = calloc((size_t)M.n, sizeof(double));
        M.map = calloc((size_t)M.n * M.grid * M.grid, sizeof(float));
        M.pixels = calloc((size_t)M.n, 784);
        M.kcount = calloc((size_t)M.A * 17, sizeof(int64_t));
        for (int a = 0; a < M.A; a++) M.lf_total += acm_model_acm(m, a)->n * acm_model_learner_flops(m, a);
        acm_policy pol = {.kind = (acm_policy_kind)acm_policy_parse(map_policy), .beta = (float)map_beta};
        if (acmt_eval_model_ex(path, dir, 64, pol, M.n, collect, &M, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train report: %s\n", err);
            rc = 1;
        }
    }
    if (!rc) {
        int64_t *idx = malloc(sizeof(int64_t) * (size_t)M.n);
        for (int64_t i = 0; i < M.n; i++) idx[i] = i;
        sort_maps = &M;
        qsort(idx, (size_t)M.n, sizeof *idx, by_cost);
        int64_t cheap[8], dear[8], first[8];
        for (int i = 0; i < 8; i++) {
            cheap[i] = i < M.n ? idx[i] : -1;
            dear[i] = i < M.n ? idx[M.n - 1 - i] : -1;
            first[i] = i < M.n ? i : -1;
        }
        const int64_t *grid_rows[3] = {cheap, dear, first};
        snprintf(tpath, sizeof tpath, "%s/heatmaps.png", outdir);
        if (write_heatmaps(tpath, &M, grid_rows, 3, 8, err, sizeof err)) {
            fprintf(stderr, "acm-train report: %s\n", err);
            rc = 1;
        }
        free(idx);
        snprintf(tpath, sizeof tpath, "%s/cost.dat", outdir);
        FILE *cd = fopen(tpath, "w");
        for (int64_t i = 0; cd && i < M.n; i++) fprintf(cd, "%.5f\n", M.cost[i]);
        if (cd) fclose(cd);
        snprintf(tpath, sizeof tpath, "%s/khist.dat", outdir);
        FILE *kd = fopen(tpath, "w");
        int nmax = 0;
        for (int a = 0; a < M.A; a++) nmax = acm_model_acm(m, a)->n > nmax ? acm_model_acm(m, a)->n : nmax;
        for (int a = 0; kd && a < M.A; a++) {
            int64_t tot = 0;
            for (int k = 0; k <= nmax; k++) tot += M.kcount[a * 17 + k];
            fprintf(kd, "%s", acm_model_acm(m, a)->name);
            for (int k = 0; k <= nmax; k++) fprintf(kd, " %.5f", tot ? (double)M.kcount[a * 17 + k] / tot : 0.0);
            fprintf(kd, "\n");
        }
        if (kd) fclose(kd);
        FILE *g = gnuplot();
        if (!g) {
            fprintf(stderr, "acm-train report: cannot run gnuplot\n");
            rc = 1;
        } else {
            fprintf(g, "set terminal pngcairo size 900,600 noenhanced\nset datafile separator whitespace\n");
            fprintf(g, "set output '%s/accuracy_vs_gflops.png'\nset grid\nset key bottom right\n", outdir);
            fprintf(g, "set title 'Fashion-MNIST test accuracy vs compute (%s)'\n", acm_model_version(m));
            fprintf(g, "set xlabel 'GFLOPs per image (2 per multiply-add)'\nset ylabel 'accuracy (%%)'\n");
            fprintf(g, "plot ");
            int idxs = 0, first_plot = 1;
            if (base) {
                fprintf(g, "'%s/points.dat' index %d with points pt 7 ps 2 title 'static base'", outdir, idxs++);
                first_plot = 0;
            }
            fprintf(g, "%s'%s/points.dat' index %d with points pt 9 ps 2 title 'ACM, gates argmax'",
                    first_plot ? "" : ", ", outdir, idxs++);
            for (int s = 0; s < nseries; s++)
                fprintf(g, ", '%s/points.dat' index %d with linespoints pt 5 title 'ACM, policy %s (beta grid)'",
                        outdir, idxs++, series[s]);
            fprintf(g, "\n");
            fprintf(g, "set output '%s/cost_hist.png'\nset title 'Realised budget per test image (%s, beta %.2f)'\n",
                    outdir, map_policy, map_beta);
            fprintf(g, "set xlabel 'realised budget (fraction of learner compute)'\nset ylabel 'images'\n");
            fprintf(g, "set key off\nbin(x) = 0.01 * floor(x / 0.01)\nset boxwidth 0.01\nset style fill solid 0.6\n");
            fprintf(g, "plot '%s/cost.dat' using (bin($1)):(1.0) smooth freq with boxes\n", outdir);
            fprintf(g, "set output '%s/k_hist.png'\nset terminal pngcairo size 1400,600 noenhanced\n", outdir);
            fprintf(g, "set title 'Share of tokens running k learners, per module (%s, beta %.2f)'\n", map_policy,
                    map_beta);
            fprintf(g, "set style data histograms\nset style histogram rowstacked\nset boxwidth 0.8\n");
            fprintf(g, "set key outside right\nset xtics rotate by -60 font ',8'\nset ylabel 'share of tokens'\n");
            fprintf(g, "set yrange [0:1]\nset xlabel ''\nplot ");
            for (int k = 0; k <= nmax; k++)
                fprintf(g, "%s'%s/khist.dat' using %d%s title 'k = %d'", k ? ", " : "", outdir, k + 2,
                        k ? "" : ":xtic(1)", k);
            fprintf(g, "\n");
            if (pclose(g)) {
                fprintf(stderr, "acm-train report: gnuplot failed\n");
                rc = 1;
            }
        }
    }
    if (!rc) {
        snprintf(tpath, sizeof tpath, "%s/results.json", outdir);
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:o, s:{s:s, s:f}}", "model", path, "version",
                              acm_model_version(m), "blas_core", acm_blas_core(), "images",
                              (json_int_t)(n_img ? n_img : 10000), "rows", rows, "maps", "policy", map_policy, "beta",
                              map_beta);
        rows = NULL;
        json_dump_file(o, tpath, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(o);
        printf("acm-train report: wrote %s/{table.md, results.json, accuracy_vs_gflops.png, heatmaps.png, "
               "cost_hist.png, k_hist.png}\n",
               outdir);
    }
    json_decref(rows);
    free(M.cost), free(M.map), free(M.pixels), free(M.kcount);
    acm_model_free(m);
    return rc;
}

/* ---- acm-train heatmaps: the same test images under several models, one row per model (the paper's Fig. 8) ------ */

static void heatmaps_usage(FILE *f) {
    fprintf(f, "usage: acm-train heatmaps --out PNG [options] MODEL.safetensors...\n"
               "  one row per model (in the order given), the same first N Fashion-MNIST test images in every row,\n"
               "  each patch coloured by its compute share (blue: none, red: every learner); prints each row's mean\n"
               "  budget and accuracy on those images\n"
               "  --policy P          argmax | mean | cap (default argmax: the gates' own choice)\n"
               "  --budget B          beta for mean and cap (default 0.5)\n"
               "  --images N          images per row (default 8, at most 16)\n"
               "  --data DIR          Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  --threads N         OpenBLAS threads (default 2)\n");
}

typedef struct {
    maps *M;
    int64_t correct;
} row_ctx;

static void collect_row(void *ctx, const acm_model *m, int64_t i, int label, int pred, const acm_result *res,
                        const uint8_t *px) {
    row_ctx *r = ctx;
    r->correct += label == pred;
    collect(r->M, m, i, label, pred, res, px);
}

int cmd_heatmaps(int argc, char **argv) {
    const char *out = NULL, *dir = "/usr/share/datasets/fashion-mnist";
    const char *models[16];
    int nm = 0, threads = 2;
    int64_t n_img = 8;
    acm_policy pol = acm_policy_default();
    pol.beta = 0.5f;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *e = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            heatmaps_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && v) {
            out = v, i++;
        } else if (!strcmp(a, "--data") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--policy") && v) {
            int k = acm_policy_parse(v);
            i++;
            if (k != ACM_POLICY_ARGMAX && k != ACM_POLICY_MEAN && k != ACM_POLICY_CAP) goto bad;
            pol.kind = (acm_policy_kind)k;
        } else if (!strcmp(a, "--budget") && v) {
            pol.beta = strtof(v, &e), i++;
            if (*e || !(pol.beta > 0 && pol.beta <= 1)) goto bad;
        } else if (!strcmp(a, "--images") && v) {
            n_img = strtoll(v, &e, 10), i++;
            if (*e || n_img < 1 || n_img > 16) goto bad;
        } else if (!strcmp(a, "--threads") && v) {
            threads = (int)strtol(v, &e, 10), i++;
            if (*e || threads < 1) goto bad;
        } else if (a[0] != '-' && nm < 16) {
            models[nm++] = a;
        } else {
        bad:
            fprintf(stderr, "acm-train heatmaps: bad argument '%s'\n", a);
            heatmaps_usage(stderr);
            return 2;
        }
    }
    if (!out || nm == 0) {
        heatmaps_usage(stderr);
        return 2;
    }
    acm_blas_set_threads(threads);
    char err[2048];
    maps all = {0};
    int64_t *rows_idx = calloc((size_t)nm * n_img, sizeof(int64_t));
    const int64_t **rows = calloc((size_t)nm, sizeof *rows);
    int rc = 0;
    for (int r = 0; r < nm && !rc; r++) {
        acm_model *m = acm_model_load(models[r], err, sizeof err);
        if (!m) {
            fprintf(stderr, "acm-train heatmaps: %s\n", err);
            rc = 1;
            break;
        }
        const acm_config *cfg = acm_model_config(m);
        if (cfg->num_acms == 0 || cfg->image_size != 28 || cfg->in_chans != 1 ||
            (r && (cfg->grid != all.grid || cfg->tokens != all.T))) {
            fprintf(stderr, "acm-train heatmaps: %s must be a 28x28 grey ACM model with the grid of the first\n",
                    models[r]);
            acm_model_free(m);
            rc = 1;
            break;
        }
        if (!r) {
            all.n = (int64_t)nm * n_img, all.T = cfg->tokens, all.grid = cfg->grid;
            all.cost = calloc((size_t)all.n, sizeof(double));
            all.map = calloc((size_t)all.n * all.grid * all.grid, sizeof(float));
            all.pixels = calloc((size_t)all.n, 784);
        }
        maps one = {.n = n_img, .T = cfg->tokens, .A = cfg->num_acms, .grid = cfg->grid};
        one.cost = calloc((size_t)n_img, sizeof(double));
        one.map = calloc((size_t)n_img * one.grid * one.grid, sizeof(float));
        one.pixels = calloc((size_t)n_img, 784);
        one.kcount = calloc((size_t)one.A * 17, sizeof(int64_t));
        for (int a = 0; a < one.A; a++) one.lf_total += acm_model_acm(m, a)->n * acm_model_learner_flops(m, a);
        row_ctx rc_ = {&one, 0};
        acmt_eval_result res;
        if (acmt_eval_model_ex(models[r], dir, 64, pol, n_img, collect_row, &rc_, &res, err, sizeof err)) {
            fprintf(stderr, "acm-train heatmaps: %s\n", err);
            rc = 1;
        } else {
            const size_t g2 = (size_t)one.grid * one.grid;
            memcpy(all.cost + r * n_img, one.cost, sizeof(double) * (size_t)n_img);
            memcpy(all.map + r * n_img * g2, one.map, sizeof(float) * (size_t)n_img * g2);
            memcpy(all.pixels + r * n_img * 784, one.pixels, (size_t)n_img * 784);
            for (int64_t i = 0; i < n_img; i++) rows_idx[r * n_img + i] = r * n_img + i;
            rows[r] = rows_idx + r * n_img;
            printf("row %d: %s (%s", r + 1, models[r], acm_policy_name(pol.kind));
            if (pol.kind != ACM_POLICY_ARGMAX) printf(" %.3g", (double)pol.beta);
            printf("): mean budget %.3f, %lld/%lld right\n", res.budget_mean, (long long)rc_.correct,
                   (long long)n_img);
        }
        free(one.cost), free(one.map), free(one.pixels), free(one.kcount);
        acm_model_free(m);
    }
    if (!rc && write_heatmaps(out, &all, rows, nm, (int)n_img, err, sizeof err)) {
        fprintf(stderr, "acm-train heatmaps: %s\n", err);
        rc = 1;
    }
    if (!rc) printf("acm-train heatmaps: wrote %s (%d rows of %lld images)\n", out, nm, (long long)n_img);
    free(all.cost), free(all.map), free(all.pixels);
    free(rows_idx);
    free(rows);
    return rc;
}
