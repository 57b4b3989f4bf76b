/*
 * run_common.c — clock and stop signals of the training runs (see run_common.h).
 */
#include "train/run_common.h"

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
