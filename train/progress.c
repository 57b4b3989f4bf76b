/*
 * progress.c — see progress.h.
 */
#include "train/progress.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void acmt_progress_start(acmt_progress *p, int quiet) {
    p->quiet = quiet;
    p->tty = isatty(2);
    p->rate_unit = "img/s";
    p->acc_label = "acc";
    p->start = now_s();
    p->last = 0;
    p->drawn = 0;
}

static void fmt_time(char *b, size_t n, double s) {
    if (!(s >= 0) || s > 1e8) s = 0;
    long t = (long)(s + 0.5);
    snprintf(b, n, "%ldh%02ldm%02lds", t / 3600, (t / 60) % 60, t % 60);
}

void acmt_progress_update(acmt_progress *p, int64_t step, int64_t total, double loss, double acc, double img_s,
                          double eta_s) {
    if (p->quiet) return;
    double t = now_s();
    if (t - p->last < (p->tty ? 0.25 : 30.0) && step != total) return;
    p->last = t;
    char eta[32];
    fmt_time(eta, sizeof eta, eta_s);
    double frac = total ? (double)step / (double)total : 1;
    if (p->tty) {
        char bar[21];
        int fill = (int)(frac * 20);
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "\r[%s] ", bar);
        p->drawn = 1;
    }
    fprintf(stderr, "%5.1f%% step %lld/%lld loss %.4f ", 100 * frac, (long long)step, (long long)total, loss);
    if (p->acc_label) fprintf(stderr, "%s %5.1f%% ", p->acc_label, 100 * acc);
    fprintf(stderr, "%6.1f %s ETA %s%s", img_s, p->rate_unit, eta, p->tty ? "  " : "\n");
    fflush(stderr);
}

void acmt_progress_note(acmt_progress *p, const char *fmt, ...) {
    if (p->quiet) return;
    if (p->drawn) fputc('\n', stderr);
    p->drawn = 0;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

void acmt_progress_end(acmt_progress *p) {
    if (!p->quiet && p->drawn) fputc('\n', stderr);
    p->drawn = 0;
}
