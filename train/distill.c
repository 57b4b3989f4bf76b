/*
 * distill.c — the logit-distillation term (see distill.h). Softmaxes in double, max-subtracted.
 */
#include "train/distill.h"

#include <math.h>
#include <stdint.h>

/* q = softmax(z / T) of one row, and log q, in double (K <= 1024 classes). */
static void soft(double *q, double *logq, const float *z, int K, double T) {
    double mx = z[0] / T, s = 0;
    for (int k = 1; k < K; k++) mx = z[k] / T > mx ? z[k] / T : mx;
    for (int k = 0; k < K; k++) s += exp(z[k] / T - mx);
    const double ls = log(s);
    for (int k = 0; k < K; k++) {
        logq[k] = z[k] / T - mx - ls;
        q[k] = exp(logq[k]);
    }
}

double acmt_distill_loss(float *dlogits, const float *student, const float *teacher, int B, int K, float T, float w) {
    double qs[1024], ls[1024], qt[1024], lt[1024], L = 0;
    if (K > 1024) return NAN;
    for (int b = 0; b < B; b++) {
        soft(qs, ls, student + (int64_t)b * K, K, T);
        soft(qt, lt, teacher + (int64_t)b * K, K, T);
        for (int k = 0; k < K; k++) {
            L += qt[k] * (lt[k] - ls[k]);
            if (dlogits) dlogits[(int64_t)b * K + k] += (float)(w * T * (qs[k] - qt[k]) / B);
        }
    }
    return w * (double)T * T * L / B;
}
