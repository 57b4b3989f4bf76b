/*
 * ctc_loss.c — the CTC loss and its gradient (see ctc_loss.h).
 *
 * States s = 0..S-1 of the extended label sequence l' = (blank, l1, blank, l2, ..., lU, blank). With y_t(k) the log
 * softmax of frame t (computed once, in double):
 *   alpha_t(s) = log Σ over prefixes of t+1 frames ending in state s, emissions of frames 0..t included:
 *     alpha_0(0) = y_0(blank), alpha_0(1) = y_0(l1);
 *     alpha_t(s) = y_t(l'_s) + lse(alpha_{t-1}(s), alpha_{t-1}(s-1), alpha_{t-1}(s-2) if l'_s ≠ blank and
 *                  l'_s ≠ l'_{s-2}).
 *   beta_t(s) = log Σ over suffixes from state s at frame t, emissions of frames t+1..T-1 only (frame t excluded):
 *     beta_{T-1}(S-1) = beta_{T-1}(S-2) = 0;
 *     beta_t(s) = lse over s' in {s, s+1, s+2 (same rule seen from s+2)} of y_{t+1}(l'_{s'}) + beta_{t+1}(s').
 *   log p = lse(alpha_{T-1}(S-1), alpha_{T-1}(S-2)); occupancy_t(s) = exp(alpha_t(s) + beta_t(s) − log p).
 *   d(−log p)/d z_t(k) = softmax_t(k) − Σ_{s: l'_s = k} occupancy_t(s).
 * A state that cannot be reached (or cannot finish) holds −inf; lse of −inf terms is −inf, never NaN.
 */
#include "train/ctc_loss.h"

#include <math.h>

static double lse2(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    return a > b ? a + log1p(exp(b - a)) : b + log1p(exp(a - b));
}

int64_t acmt_ctc_min_frames(const int32_t *labels, int U) {
    int64_t n = U;
    for (int i = 1; i < U; i++) n += labels[i] == labels[i - 1];
    return n;
}

size_t acmt_ctc_workspace(int64_t T, int K, int U) {
    return (size_t)T * (size_t)K + 2 * (size_t)T * (size_t)(2 * U + 1) + (size_t)K;
}

const char *acmt_ctc_strerror(int status) {
    switch (status) {
    case ACMT_CTC_OK: return "ok";
    case ACMT_CTC_SKIP: return "fewer frames than the labels need (no alignment)";
    case ACMT_CTC_EBADLABEL: return "a label outside 1..K-1 (class 0 is the blank)";
    case ACMT_CTC_ENONFINITE: return "non-finite logits";
    }
    return "unknown CTC status";
}

/* class of state s: blank for even s, labels[(s-1)/2] for odd s */
static int state_class(const int32_t *labels, int s) { return s & 1 ? labels[s >> 1] : 0; }

/* state s may be entered from s-2 (skipping the blank between two different labels) */
static int can_skip(const int32_t *labels, int s) {
    return (s & 1) && s >= 3 && labels[s >> 1] != labels[(s >> 1) - 1];
}

int acmt_ctc_loss(double *loss, float *dlogits, int lddl, const float *logits, int ld, int64_t T, int K,
                  const int32_t *labels, int U, float scale, double *work) {
    for (int i = 0; i < U; i++)
        if (labels[i] < 1 || labels[i] >= K) return ACMT_CTC_EBADLABEL;
    if (T < acmt_ctc_min_frames(labels, U)) return ACMT_CTC_SKIP;
    if (T == 0) { /* no frames, no labels: the empty alignment, p = 1 */
        *loss = 0;
        return ACMT_CTC_OK;
    }
    const int S = 2 * U + 1;
    double *y = work, *alpha = y + T * K, *beta = alpha + T * S, *occ = beta + T * S; /* [T,K], [T,S], [T,S], [K] */
    for (int64_t t = 0; t < T; t++) {
        const float *z = logits + t * ld;
        double mx = z[0];
        for (int k = 1; k < K; k++) mx = z[k] > mx ? z[k] : mx;
        double sum = 0;
        for (int k = 0; k < K; k++) sum += exp((double)z[k] - mx);
        const double lz = mx + log(sum);
        for (int k = 0; k < K; k++) y[t * K + k] = (double)z[k] - lz;
    }
    for (int s = 0; s < S; s++) alpha[s] = -INFINITY;
    alpha[0] = y[0];
    if (S > 1) alpha[1] = y[state_class(labels, 1)];
    for (int64_t t = 1; t < T; t++) {
        const double *ap = alpha + (t - 1) * S, *yt = y + t * K;
        double *a = alpha + t * S;
        for (int s = 0; s < S; s++) {
            double v = ap[s];
            if (s >= 1) v = lse2(v, ap[s - 1]);
            if (can_skip(labels, s)) v = lse2(v, ap[s - 2]);
            a[s] = v == -INFINITY ? v : v + yt[state_class(labels, s)];
        }
    }
    double *bl = beta + (T - 1) * S;
    for (int s = 0; s < S; s++) bl[s] = -INFINITY;
    bl[S - 1] = 0;
    if (S > 1) bl[S - 2] = 0;
    for (int64_t t = T - 2; t >= 0; t--) {
        const double *bn = beta + (t + 1) * S, *yn = y + (t + 1) * K;
        double *b = beta + t * S;
        for (int s = 0; s < S; s++) {
            double v = bn[s] == -INFINITY ? bn[s] : bn[s] + yn[state_class(labels, s)];
            if (s + 1 < S && bn[s + 1] != -INFINITY) v = lse2(v, bn[s + 1] + yn[state_class(labels, s + 1)]);
            if (s + 2 < S && can_skip(labels, s + 2) && bn[s + 2] != -INFINITY)
                v = lse2(v, bn[s + 2] + yn[state_class(labels, s + 2)]);
            b[s] = v;
        }
    }
    const double *al = alpha + (T - 1) * S;
    const double logp = S > 1 ? lse2(al[S - 1], al[S - 2]) : al[S - 1];
    if (!isfinite(logp)) return ACMT_CTC_ENONFINITE;
    *loss = -logp;
    if (!dlogits) return ACMT_CTC_OK;
    for (int64_t t = 0; t < T; t++) {
        const double *a = alpha + t * S, *b = beta + t * S, *yt = y + t * K;
        float *g = dlogits + t * lddl;
        for (int k = 0; k < K; k++) occ[k] = 0;
        for (int s = 0; s < S; s++)
            if (a[s] != -INFINITY && b[s] != -INFINITY) occ[state_class(labels, s)] += exp(a[s] + b[s] - logp);
        for (int k = 0; k < K; k++) g[k] += scale * (float)(exp(yt[k]) - occ[k]);
    }
    return ACMT_CTC_OK;
}
