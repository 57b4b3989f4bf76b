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

int acmt_run_args_take(acmt_run_args *r, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    const int more = *i + 1 < argc;
    if (!strcmp(a, "--config") && more) r->config = argv[++*i];
    else if (!strcmp(a, "--out") && more) r->out = argv[++*i];
    else if (!strcmp(a, "--ckpt") && more) r->ckpt = argv[++*i];
    else if (!strcmp(a, "--csv") && more) r->csv = argv[++*i];
    else if (!strcmp(a, "--resume")) r->resume = 1;
    else if (!strcmp(a, "--quiet")) r->quiet = 1;
    else if (!strcmp(a, "--no-final")) r->no_final = 1;
    else if (!strcmp(a, "--max-steps") && more) r->max_steps = strtoll(argv[++*i], NULL, 10);
    else if (!strcmp(a, "--test-sigterm-at") && more) r->sigterm_at = strtoll(argv[++*i], NULL, 10);
    else if (!strcmp(a, "--epochs") && more) {
        char *end;
        r->new_epochs = strtol(argv[++*i], &end, 10);
        if (*end || r->new_epochs < 1 || r->new_epochs > r->max_epochs) {
            fprintf(stderr, "%s: --epochs: '%s' is not a whole number of epochs %s\n", r->me, argv[*i], r->epochs_rule);
            return 2;
        }
    } else
        return 0;
    return 1;
}

int acmt_run_args_check(acmt_run_args *r, void (*usage)(FILE *)) {
    if (r->new_epochs && !r->resume) {
        fprintf(stderr, "%s: --epochs only changes a resumed run; set \"epochs\" in --config\n", r->me);
        return 2;
    }
    if (!r->out) {
        fprintf(stderr, "%s: --out is required\n", r->me);
        usage(stderr);
        return 2;
    }
    snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s%s", r->ckpt ? r->ckpt : r->out, r->ckpt ? "" : ".ckpt");
    snprintf(r->csv_path, sizeof r->csv_path, "%s%s", r->csv ? r->csv : r->out, r->csv ? "" : ".csv");
    return 0;
}
