/*
 * run_common.h — what every long `acm-train` run (base, speech-base, acmize on either kind of model) shares: a
 * monotonic clock, and SIGINT/SIGTERM caught into a flag that the step loop polls (it then writes a checkpoint and
 * stops) instead of killing the process mid-write.
 *
 * One run at a time per process: the flag is global, as a signal handler needs.
 */
#ifndef ACM_TRAIN_RUN_COMMON_H
#define ACM_TRAIN_RUN_COMMON_H

#include <signal.h>

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

#endif
