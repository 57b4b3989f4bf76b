/*
 * run_common.h — what every long `acm-train` run (base, speech-base, acmize on either kind of model) shares: a
 * monotonic clock, and SIGINT/SIGTERM caught into a flag that the step loop polls (it then writes a checkpoint and
 * stops) instead of killing the process mid-write; the CSV log's creation and its trimming on resume.
 *
 * One run at a time per process: the flag is global, as a signal handler needs.
 */
#ifndef ACM_TRAIN_RUN_COMMON_H
#define ACM_TRAIN_RUN_COMMON_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The last SIGINT/SIGTERM caught since acmt_signals_catch (0: none). */
extern volatile sig_atomic_t acmt_stop_signal;

/* Seconds on the monotonic clock. */
double acmt_now_s(void);

typedef struct {
    struct sigaction old_int, old_term;
} acmt_signals;

/* Clears acmt_stop_signal and routes SIGINT and SIGTERM to it; the previous handlers go into saved. */
void acmt_signals_catch(acmt_signals *saved);
/* Puts back the handlers acmt_signals_catch replaced. */
void acmt_signals_restore(const acmt_signals *saved);

/* The CSV training log: creates (or empties) it with its header line (a newline is added). Returns 0, or -1 with errno
 * set by fopen. */
int acmt_csv_create(const char *path, const char *header);
/* On resume: keeps the CSV's header and the rows whose first field (step) is <= step (those past the checkpoint are
 * redone). A missing file is fine. Returns 0 or -1. */
int acmt_csv_truncate(const char *path, int64_t step);

/* The options every checkpointed training command takes (base, speech-base): --config, --out, --ckpt, --csv, --resume,
 * --quiet, --no-final, --max-steps, --test-sigterm-at, --epochs. */
typedef struct {
    const char *me; /* "acm-train base": the prefix of every message */
    const char *config, *out, *ckpt, *csv;
    int resume, quiet, no_final;
    int64_t max_steps, sigterm_at; /* 0: to the end; -1: off */
    long new_epochs;               /* 0: not given */
    long max_epochs;               /* --epochs above this is refused ... */
    const char *epochs_rule;       /* ... with "is not a whole number of epochs <epochs_rule>" */
    char ckpt_path[4096], csv_path[4096]; /* after acmt_run_args_check: --ckpt or OUT.ckpt, --csv or OUT.csv */
} acmt_run_args;

/* Takes argv[*i] (and its value) when it is one of the shared options: returns 1 (with *i on the last word taken), 0
 * when it is not one of them (the caller's own option, or an unknown one), or 2 after printing why its value is bad. */
int acmt_run_args_take(acmt_run_args *r, int argc, char **argv, int *i);
/* After the options: --epochs needs --resume, --out is required; fills ckpt_path and csv_path. Returns 0, or 2 after
 * printing why (usage: printed to stderr when --out is missing). */
int acmt_run_args_check(acmt_run_args *r, void (*usage)(FILE *));

#endif
