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
#include <stdint.h>

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

#endif
