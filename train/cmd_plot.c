/*
 * cmd_plot.c — `acm-train plot LOG.csv --out CURVES.png`: training loss, training and validation accuracy against
 * epochs from the CSV that `acm-train base` writes, drawn by gnuplot (pngcairo, or png when cairo is absent); for the
 * CSV of `acm-train speech-base` (its header names val_cer): CTC loss and validation CER / WER.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "train/commands.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train plot LOG.csv --out CURVES.png [--title TEXT] [--gnuplot PROGRAM (default gnuplot)]\n");
}

/* gnuplot string literal: single quotes, with ' doubled. */
static void quoted(FILE *f, const char *s) {
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'') fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

int cmd_plot(int argc, char **argv) {
    const char *csv = NULL, *out = NULL, *title = "acm-train base", *gp = "gnuplot";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && more) out = argv[++i];
        else if (!strcmp(a, "--title") && more) title = argv[++i];
        else if (!strcmp(a, "--gnuplot") && more) gp = argv[++i];
        else if (a[0] != '-' && !csv) csv = a;
        else {
            usage(stderr);
            return 2;
        }
    }
    if (!csv || !out) {
        usage(stderr);
        return 2;
    }
    FILE *chk = fopen(csv, "r");
    if (!chk) {
        fprintf(stderr, "acm-train plot: cannot open %s\n", csv);
        return 1;
    }
    char header[512] = "";
    if (!fgets(header, sizeof header, chk)) header[0] = 0;
    fclose(chk);
    const int speech = strstr(header, "val_cer") != NULL; /* an acm-train speech-base log */
    if (speech && !strcmp(title, "acm-train base")) title = "acm-train speech-base";
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s", gp);
    FILE *g = popen(cmd, "w");
    if (!g) {
        fprintf(stderr, "acm-train plot: cannot run %s\n", gp);
        return 1;
    }
    fprintf(g, "set terminal pngcairo size 1200,450 noenhanced\n");
    fprintf(g, "set output ");
    quoted(g, out);
    fprintf(g, "\nset datafile separator ','\nset key autotitle columnhead\nset grid\nset multiplot layout 1,2 title ");
    quoted(g, title);
    if (speech) {
        /* columns: 1 step 2 epoch 3 utterances 4 tokens 5 lr 6 loss 7 grad_norm 8 tok_per_s 9 train_s 10 skipped
         * 11 val_loss 12 val_cer 13 val_wer */
        fprintf(g, "\nset xlabel 'epoch'\nset ylabel 'CTC loss per character'\nset logscale y\nplot ");
        quoted(g, csv);
        fprintf(g, " using 2:6 with lines title 'train loss (SpecAugment)', '' using 2:11 with linespoints "
                   "title 'val loss'\n");
        fprintf(g, "unset logscale y\nset ylabel 'error rate (%%), greedy'\nset key top right\nplot ");
        quoted(g, csv);
        fprintf(g, " using 2:($12*100) with linespoints title 'val CER', '' using 2:($13*100) with linespoints "
                   "title 'val WER'\nunset multiplot\n");
    } else {
        /* columns: 1 step 2 epoch 3 images 4 lr 5 loss 6 acc 7 grad_norm 8 img_per_s 9 train_s 10 val_loss
         * 11 val_acc */
        fprintf(g, "\nset xlabel 'epoch'\nset ylabel 'loss'\nset logscale y\nplot ");
        quoted(g, csv);
        fprintf(g, " using 2:5 with lines title 'train loss (smoothed labels)', '' using 2:10 with linespoints "
                   "title 'val loss'\n");
        fprintf(g, "unset logscale y\nset ylabel 'accuracy (%%)'\nset key bottom right\nplot ");
        quoted(g, csv);
        fprintf(g, " using 2:($6*100) with lines title 'train acc (augmented)', '' using 2:($11*100) with linespoints "
                   "title 'val acc'\nunset multiplot\n");
    }
    int rc = pclose(g);
    if (rc != 0) {
        fprintf(stderr, "acm-train plot: %s failed (status %d)\n", gp, WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
        return 1;
    }
    return 0;
}
