/*
 * run_common.c — clock, stop signals and CSV log of the training runs (see run_common.h).
 */
#include "train/run_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

volatile sig_atomic_t acmt_stop_signal = 0;

static void on_signal(int sig) { acmt_stop_signal = sig; }

double acmt_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void acmt_signals_catch(acmt_signals *saved) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    acmt_stop_signal = 0;
    sigaction(SIGINT, &sa, &saved->old_int);
    sigaction(SIGTERM, &sa, &saved->old_term);
}

void acmt_signals_restore(const acmt_signals *saved) {
    sigaction(SIGINT, &saved->old_int, NULL);
    sigaction(SIGTERM, &saved->old_term, NULL);
}

int acmt_csv_create(const char *path, const char *header) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "%s\n", header);
    fclose(f);
    return 0;
}

int acmt_csv_truncate(const char *path, int64_t step) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) {
        fclose(f);
        return -1;
    }
    char line[4096];
    int first = 1;
    while (fgets(line, sizeof line, f)) {
        if (first || strtoll(line, NULL, 10) <= step) fputs(line, o);
        first = 0;
    }
    fclose(f);
    int bad = fclose(o);
    return bad ? -1 : rename(tmp, path);
}
