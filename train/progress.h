/*
 * progress.h — the training progress line: step, percentage, loss, accuracy, images/s, ETA. On a terminal it redraws
 * one line (\r) at most 4 times a second; otherwise (nohup logs) it prints a full line every 30 seconds. Notes (epoch
 * results, signals) always get a line of their own.
 */
#ifndef ACM_TRAIN_PROGRESS_H
#define ACM_TRAIN_PROGRESS_H

#include <stdint.h>

typedef struct {
    int quiet, tty;
    double last, start;
    int drawn; /* a \r line is on screen */
    const char *rate_unit; /* "img/s" unless the caller sets another after acmt_progress_start ("tok/s") */
    const char *acc_label; /* "acc" unless set; NULL: no accuracy column */
} acmt_progress;

void acmt_progress_start(acmt_progress *p, int quiet);
void acmt_progress_update(acmt_progress *p, int64_t step, int64_t total, double loss, double acc, double img_s,
                          double eta_s);
__attribute__((format(printf, 2, 3))) void acmt_progress_note(acmt_progress *p, const char *fmt, ...);
void acmt_progress_end(acmt_progress *p);

#endif
