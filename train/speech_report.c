/*
 * speech_report.c — `acm-train speech-report ACM_MODEL`: the figures of a speech model card, measured by acm-train
 * eval's path (speech_eval.h) on corpus splits:
 *   table.md                  WER (greedy, and beam with --beam), realised budget and GFLOPs per second of audio per
 *                             split: the static model (--base) and the ACM model under cap at every budget
 *   wer_vs_gflops.png         WER against GFLOPs per second of audio: the ACM model's curve over the budgets, the
 *                             static model as one point, one colour per split (gnuplot)
 *   compute_along_speech.png  the paper's Fig. 7: for the first --utterances utterances of the first split at
 *                             --map-beta, the log-mel spectrogram on top and below it, time-aligned, each token's
 *                             learners used / N per block and over all blocks (the row "all"), the transcript and
 *                             the greedy hypothesis as title
 * The .dat files gnuplot reads stay in the folder.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/speech_eval.h"

#define MAX_UTTS 8

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train speech-report ACM_MODEL.safetensors --out DIR [options]\n"
               "  --base MODEL      the static model, one point per split\n"
               "  --corpus DIR      speech corpus (default data/speech; the card's subset: build/speech-subset)\n"
               "  --split LIST      comma-separated splits (default test-seen,test-unseen)\n"
               "  --betas LIST      cap budgets of the curve (default 0.25,0.375,0.5,0.625,0.75,0.875,1)\n"
               "  --beam N          also the WER of a prefix beam of width N (default 0: greedy only)\n"
               "  --limit N         first N utterances of each split (default 0: all)\n"
               "  --map-beta B      cap budget of the compute picture (default 0.5)\n"
               "  --utterances N    utterances in the compute picture (default 3, at most %d)\n"
               "  --threads N       OpenBLAS threads (default 2)\n",
            MAX_UTTS);
}

/* What the compute picture needs of the first utterances: their frames and tokens' compute go to .dat files. */
typedef struct {
    const char *dir;
    int want, got, fail;
    char title[MAX_UTTS][900];
    int64_t frames[MAX_UTTS], tokens[MAX_UTTS];
    int n_acm;
} picture;

static void keep_utt(void *ctx, const acmt_speech_utt_view *v) {
    picture *P = ctx;
    if (P->got >= P->want) return;
    const int i = P->got++;
    char path[1200];
    snprintf(path, sizeof path, "%s/spectrogram_%d.dat", P->dir, i);
    FILE *f = fopen(path, "w");
    const int64_t F = v->tokens * v->stack;
    for (int m = 0; f && m < ACMS_MELS; m++) /* matrix: a row per mel bin, a column per frame */
        for (int64_t t = 0; t < F; t++) fprintf(f, "%.3f%c", v->frames[t * ACMS_MELS + m], t + 1 < F ? ' ' : '\n');
    P->fail |= !f || fclose(f);
    snprintf(path, sizeof path, "%s/compute_%d.dat", P->dir, i);
    f = fopen(path, "w");
    double used = 0, all = 0;
    for (int l = 0; f && l <= v->n_acm; l++) /* a row per block, then the row of all blocks */
        for (int64_t t = 0; t < v->tokens; t++) {
            double k = 0, n = 0;
            for (int a = l < v->n_acm ? l : 0; a < (l < v->n_acm ? l + 1 : v->n_acm); a++)
                k += v->k[a][t], n += v->learners[a];
            if (l == v->n_acm) used += k, all += n;
            fprintf(f, "%.4f%c", n ? k / n : 0, t + 1 < v->tokens ? ' ' : '\n');
        }
    P->fail |= !f || fclose(f);
    snprintf(P->title[i], sizeof P->title[i], "%s (%s), realised budget %.3f; said: %.380s\\nheard: %.380s",
             v->utt->id, v->utt->speaker, all ? used / all : 0, v->utt->text, v->greedy);
    P->frames[i] = F;
    P->tokens[i] = v->tokens;
    P->n_acm = v->n_acm;
}

static void wer_vs_gflops(FILE *g, const char *out, const char *const *splits, int nsplit, int has_base) {
    fprintf(g, "set terminal pngcairo size 1000,650 noenhanced\nset output '%s/wer_vs_gflops.png'\n", out);
    fprintf(g, "set grid\nset key top right\nset title 'WER against compute (cap policy, budgets labelled)'\n");
    fprintf(g, "set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05\n");
    fprintf(g, "set xlabel 'GFLOPs per second of audio (2 per multiply-add)'\nset ylabel 'WER, greedy (%%)'\nplot ");
    for (int s = 0; s < nsplit; s++) {
        const int acm = has_base ? 2 * s + 1 : s;
        fprintf(g, "%s'%s/points.dat' index %d using 1:2 with linespoints lc %d pt 5 title 'ACM, %s', "
                   "'' index %d using 1:2:(sprintf('%%g', $3)) with labels offset 1.2,0.6 tc lt %d notitle",
                s ? ", " : "", out, acm, s + 1, splits[s], acm, s + 1);
        if (has_base)
            fprintf(g, ", '' index %d using 1:2 with points lc %d pt 7 ps 2 title 'static, %s'", 2 * s, s + 1,
                    splits[s]);
    }
    fprintf(g, "\n");
}

static void compute_picture(FILE *g, const char *out, const picture *P, double beta) {
    const int U = P->got, H = 380;
    fprintf(g, "set terminal pngcairo size 1400,%d noenhanced font ',10'\nset output '%s/compute_along_speech.png'\n",
            U * H, out);
    fprintf(g, "reset\nset multiplot\nset lmargin at screen 0.07\nset rmargin at screen 0.88\nunset key\n");
    for (int i = 0; i < U; i++) { /* per utterance, from its top: title, spectrogram, compute strip, time axis */
        const double top = 1 - (double)i / U, u = 1.0 / U;
        fprintf(g, "set xrange [0:%.3f]\nset tmargin at screen %.4f\nset bmargin at screen %.4f\n",
                P->tokens[i] * 0.04, top - 0.12 * u, top - 0.52 * u);
        fprintf(g, "unset label\nset label 1 \"%s\" at screen 0.07, screen %.4f left\n", P->title[i],
                top - 0.035 * u);
        fprintf(g, "set format x ''\nset xlabel ''\nset yrange [0:79]\nset ylabel 'mel bin'\nset ytics 20\n");
        fprintf(g, "set palette grey\nset cbrange [*:*]\nset cblabel 'log-mel'\n");
        fprintf(g, "plot '%s/spectrogram_%d.dat' matrix using ($1*0.01+0.005):2:3 with image\n", out, i);
        fprintf(g, "unset label\nset tmargin at screen %.4f\nset bmargin at screen %.4f\n", top - 0.53 * u,
                top - 0.82 * u);
        fprintf(g, "set format x '%%g'\nset xlabel 'seconds' offset 0,0.5\nset yrange [-0.5:%.1f]\n", P->n_acm + 0.5);
        fprintf(g, "set ylabel 'block'\nset ytics (");
        for (int l = 0; l < P->n_acm; l++) fprintf(g, "'%d' %d, ", l + 1, l);
        fprintf(g, "'all' %d)\n", P->n_acm);
        /* blue (no learner) to red (every learner) through pale yellow: k / N takes few values, each distinct */
        fprintf(g, "set palette defined (0 '#2c7bb6', 0.25 '#abd9e9', 0.5 '#ffffbf', 0.75 '#fdae61', 1 '#d7191c')\n");
        fprintf(g, "set cbrange [0:1]\nset cblabel 'k / N (cap %g)'\n", beta);
        fprintf(g, "plot '%s/compute_%d.dat' matrix using ($1*0.04+0.02):2:3 with image\n", out, i);
    }
    fprintf(g, "unset multiplot\n");
}

int cmd_speech_report(int argc, char **argv) {
    const char *model = NULL, *base = NULL, *corpus = "data/speech", *out = NULL;
    const char *splits_arg = "test-seen,test-unseen", *betas = "0.25,0.375,0.5,0.625,0.75,0.875,1";
    int beam = 0, threads = 2, nutt = 3;
    long long limit = 0;
    double map_beta = 0.5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && more) out = argv[++i];
        else if (!strcmp(a, "--base") && more) base = argv[++i];
        else if (!strcmp(a, "--corpus") && more) corpus = argv[++i];
        else if (!strcmp(a, "--split") && more) splits_arg = argv[++i];
        else if (!strcmp(a, "--betas") && more) betas = argv[++i];
        else if (!strcmp(a, "--beam") && more) beam = atoi(argv[++i]);
        else if (!strcmp(a, "--limit") && more) limit = atoll(argv[++i]);
        else if (!strcmp(a, "--map-beta") && more) map_beta = atof(argv[++i]);
        else if (!strcmp(a, "--utterances") && more) nutt = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "acm-train speech-report: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || !out || beam < 0 || threads < 1 || limit < 0 || nutt < 1 || nutt > MAX_UTTS ||
        !(map_beta > 0 && map_beta <= 1)) {
        usage(stderr);
        return 2;
    }
    double blist[32];
    char err[1024], sl[256], path[1300];
    const int nb = acmt_parse_budgets(betas, blist, 32, err, sizeof err);
    if (nb < 0) {
        fprintf(stderr, "acm-train speech-report: --betas: %s\n", err);
        return 2;
    }
    const char *splits[8];
    int nsplit = 0;
    snprintf(sl, sizeof sl, "%s", splits_arg);
    for (char *sv = NULL, *t = strtok_r(sl, ",", &sv); t && nsplit < 8; t = strtok_r(NULL, ",", &sv))
        splits[nsplit++] = t;
    acm_model *m = acm_model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "acm-train speech-report: %s\n", err);
        return 1;
    }
    const int ok = acm_model_config(m)->arch == ACM_ARCH_SPEECH && acm_model_config(m)->num_acms > 0;
    acm_model_free(m);
    if (!ok) {
        fprintf(stderr, "acm-train speech-report: %s is not a speech model with ACM modules\n", model);
        return 1;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "acm-train speech-report: %s: %s\n", out, strerror(errno));
        return 1;
    }
    acm_blas_set_threads(threads);
    snprintf(path, sizeof path, "%s/points.dat", out);
    FILE *dat = fopen(path, "w");
    snprintf(path, sizeof path, "%s/table.md", out);
    FILE *tab = fopen(path, "w");
    if (!dat || !tab) {
        fprintf(stderr, "acm-train speech-report: cannot write in %s\n", out);
        if (dat) fclose(dat);
        if (tab) fclose(tab);
        return 1;
    }
    printf("acm-train speech-report: %s on %s -> %s/, BLAS %s x%d\n", model, corpus, out, acm_blas_core(), threads);
    fprintf(tab, "| model | split | cap β | WER greedy | %sCER greedy | realised budget [min, max] | GFLOPs / s of audio |\n"
                 "|---|---|---|---|%s---|---|---|\n",
            beam ? "WER beam | " : "", beam ? "---|" : "");
    picture P = {.dir = out, .want = nutt};
    int rc = 0;
    for (int s = 0; s < nsplit && !rc; s++)
        for (int bi = -1; bi < nb && !rc; bi++) { /* -1: the static model */
            if (bi < 0 && !base) {
                fprintf(dat, "%s# %s acm\n", s ? "\n\n" : "", splits[s]);
                continue;
            }
            acm_policy pol = acm_policy_default();
            pol.kind = ACM_POLICY_CAP;
            pol.beta = bi < 0 ? 1.0f : (float)blist[bi];
            const int map = s == 0 && bi >= 0 && fabs(blist[bi] - map_beta) < 1e-9;
            acmt_speech_eval_params p = {.corpus = corpus, .split = splits[s], .limit = limit, .beam = beam,
                                         .policy = bi < 0 ? NULL : &pol, .on_utt = map ? keep_utt : NULL, .ctx = &P};
            acmt_speech_eval_result r;
            if (acmt_speech_eval(bi < 0 ? base : model, &p, &r, err, sizeof err)) {
                fprintf(stderr, "acm-train speech-report: %s: %s\n", splits[s], err);
                rc = 1;
                break;
            }
            free(r.speakers);
            const double gfs = r.flops / 1e9 / r.audio_seconds, wer = 100 * acmt_wer_word_rate(&r.greedy);
            char bs[16] = "-", wb[32] = "";
            if (bi >= 0) snprintf(bs, sizeof bs, "%g", blist[bi]);
            if (beam) snprintf(wb, sizeof wb, "%.2f%% | ", 100 * acmt_wer_word_rate(&r.beam));
            fprintf(tab, "| %s | %s | %s | %.2f%% | %s%.2f%% | %.4f [%.4f, %.4f] | %.4f |\n", bi < 0 ? "static" : "acm",
                    splits[s], bs, wer, wb, 100 * acmt_wer_char_rate(&r.greedy), r.budget_mean, r.budget_min,
                    r.budget_max, gfs);
            printf("  %-6s %-12s cap %-5s WER %6.2f%%  budget %.4f  %.4f GFLOPs/s of audio\n",
                   bi < 0 ? "static" : "acm", splits[s], bs, wer, r.budget_mean, gfs);
            if (bi < 0)
                fprintf(dat, "%s# %s static\n%.6f %.4f 1\n\n\n# %s acm\n", s ? "\n\n" : "", splits[s], gfs, wer,
                        splits[s]);
            else
                fprintf(dat, "%.6f %.4f %g\n", gfs, wer, blist[bi]);
        }
    fclose(dat);
    fclose(tab);
    if (!rc && P.fail) {
        fprintf(stderr, "acm-train speech-report: cannot write the picture's data in %s\n", out);
        rc = 1;
    }
    if (!rc && !P.got)
        fprintf(stderr, "acm-train speech-report: --map-beta %g is not in --betas: no compute picture\n", map_beta);
    if (!rc) {
        FILE *g = popen("gnuplot", "w");
        if (!g) {
            fprintf(stderr, "acm-train speech-report: cannot run gnuplot\n");
            return 1;
        }
        wer_vs_gflops(g, out, splits, nsplit, base != NULL);
        if (P.got) compute_picture(g, out, &P, map_beta);
        if (pclose(g)) {
            fprintf(stderr, "acm-train speech-report: gnuplot failed\n");
            rc = 1;
        } else {
            printf("acm-train speech-report: wrote %s/{table.md, wer_vs_gflops.png%s}\n", out,
                   P.got ? ", compute_along_speech.png" : "");
        }
    }
    return rc;
}
