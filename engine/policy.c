/*
 * policy.c — budget policies: how many learners (k) each token runs in one ACM module (docs/DESIGN.md §4).
 *
 *   ARGMAX  k = kmin + argmax_c logit_c (first maximum on ties): the paper's inference rule.
 *   FIXED   k = clamp(fixed_k, kmin, N) for every token.
 *   MEAN    k = kmin + argmax_c (logit_c - lambda * (kmin + c) * p / p_mean), lambda = lambda(beta) from the model's
 *           table (linear, the end segments continued outside it). p is this module's learner cost, p_mean the mean
 *           learner cost over the model, so lambda is "logits per average learner" and the bias is the Lagrangian of
 *           the FLOPs budget. beta >= 1 runs every learner.
 *   CAP     exact per item and module: U = floor(s * T * N) learner units, s = the module's share (below). Every
 *           token starts at kmin; then units go one at a time to the (token t, learner j) pair with the largest
 *           P(K_t >= j) = sum of the gate's softmax over choices with k >= j, j = k_t + 1 (ties: lower t, then lower
 *           j), ranked as odds in double (cap_odds). That is the greedy maximiser of the expected number of needed
 *           learners covered; since P(K >= j) falls with j, each token receives a prefix of its learners. beta >= 1
 *           runs every learner.
 *           The share (acm__cap_share): beta, or with a calibrated model s_l(beta) from its table (the shares follow
 *           where the gates put compute on held-out data, and spend at most beta overall); then raised to the
 *           module's floor kmin/N with the excess taken from the modules above theirs, so that realised <= beta for
 *           every item whenever beta >= the model's floor (acm_config.beta_floor).
 *           LEVEL order (the model's budget.cap_order or the policy's override) sorts by j first: every token's
 *           learner j goes out before any token's learner j+1, P(K >= j) ranking the tokens within a level; each
 *           token still receives a prefix of its learners. RANDOM order (policy only, a control) is LEVEL with the
 *           tokens of a level ranked by a hash of their logits: the gate's ranking removed, the budget kept.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "vit.h"

float acm__gate_beta(const acm_model *m, acm_policy p) {
    return p.kind == ACM_POLICY_ARGMAX ? m->cfg.gate_beta : p.beta;
}

float acm__mean_lambda(const acm_model *m, float beta) {
    int n = m->cfg.mean_table_len;
    if (n == 0) return 0.0f;
    if (n == 1) return m->mean_lambda[0];
    /* inside the table: linear; outside: the end segment's line continued, so that the realised budget keeps moving
     * with beta instead of going flat (a segment rising in lambda, which a calibrated table does not have, is not
     * continued: flat) */
    int i = 1;
    while (i < n - 1 && m->mean_beta[i] < beta) i++;
    float b0 = m->mean_beta[i - 1], b1 = m->mean_beta[i], l0 = m->mean_lambda[i - 1], l1 = m->mean_lambda[i];
    if ((beta < b0 || beta > b1) && l1 > l0) return beta < b0 ? l0 : l1;
    float w = (beta - b0) / (b1 - b0);
    return l0 + w * (l1 - l0);
}

/* Module a's share before the floors: the model's table (interpolated), or beta without one. */
static double cap_share_raw(const acm_model *m, int a, float beta) {
    int n = m->cfg.cap_table_len;
    if (n == 0) return beta;
    const int A = m->cfg.num_acms;
    const float *b = m->cap_beta, *s = m->cap_share;
    /* below the table: scale the first row down with beta; above: towards every learner at beta = 1 */
    if (beta <= b[0]) return (double)s[a] * beta / b[0];
    if (beta >= b[n - 1]) {
        if (b[n - 1] >= 1.0f) return s[(size_t)(n - 1) * A + a];
        double w = (beta - b[n - 1]) / (1.0 - b[n - 1]);
        return s[(size_t)(n - 1) * A + a] + w * (1.0 - s[(size_t)(n - 1) * A + a]);
    }
    int i = 1;
    while (b[i] < beta) i++;
    double w = (beta - b[i - 1]) / (b[i] - b[i - 1]);
    return s[(size_t)(i - 1) * A + a] + w * (s[(size_t)i * A + a] - s[(size_t)(i - 1) * A + a]);
}

/* The floors: a module cannot get less than kmin/N (its tokens run kmin learners whatever the share says). A module
 * whose share is below its floor is raised to it, and the excess E (in learner FLOPs, weights w_l = N_l p_l) is taken
 * from the modules above their floors in proportion to their room r_l = (s_l - f_l) w_l: s_l' = f_l + (s_l - f_l)
 * (1 - E / R), R = sum of the rooms. The total sum s_l' w_l stays sum s_l w_l <= beta sum w_l, no module drops below
 * its floor, and when E > R (beta below the model's floor, which acm_worker_run refuses) every module sits at its
 * floor. O(A) per call. */
double acm__cap_share(const acm_model *m, const acm__module *md, float beta) {
    const double f = (double)md->info.kmin / md->info.n;
    if (!m) return beta > f ? beta : f;
    double excess = 0, room = 0;
    for (int a = 0; a < m->cfg.num_acms; a++) {
        const acm__module *ma = m->acms[a];
        const double fa = (double)ma->info.kmin / ma->info.n, sa = cap_share_raw(m, a, beta);
        const double w = ma->info.n * ma->learner_flops;
        if (sa < fa) excess += (fa - sa) * w;
        else room += (sa - fa) * w;
    }
    const double s = cap_share_raw(m, md->info.acm_index, beta);
    if (s <= f) return f;
    if (excess == 0) return s;
    return excess >= room ? f : f + (s - f) * (1.0 - excess / room);
}

static int argmax_biased(const float *l, int C, float lambda, int kmin, double unit) {
    int best = 0;
    float bv = l[0] - (float)(lambda * kmin * unit);
    for (int c = 1; c < C; c++) {
        float v = l[c] - (float)(lambda * (kmin + c) * unit);
        if (v > bv) {
            bv = v;
            best = c;
        }
    }
    return best;
}

/* Sort key for CAP in GAIN order (cap_idx = t * N + (j - 1), or a token t alone): gain descending, then index
 * ascending (lower token, then lower learner). A total order, so any correct sort gives the same allocation. */
static int cap_before(int32_t a, int32_t b, const double *gains) {
    if (gains[a] != gains[b]) return gains[a] > gains[b];
    return a < b;
}

/* In-place heapsort by cap_before: glibc's qsort_r mallocs a merge buffer above 1 KiB of elements (T * N int32 for
 * ViT-B is 3 KiB), and the inference path must not allocate (tests/engine/test_noalloc.c). */
static void cap_sort(int32_t *v, int n, const double *gains) {
    for (int root0 = n / 2 - 1, end = n;; ) { /* heapify (root0 >= 0), then pop the maximum to the end */
        int root;
        if (root0 >= 0) {
            root = root0--;
        } else {
            if (--end <= 0) return;
            int32_t t = v[0];
            v[0] = v[end];
            v[end] = t;
            root = 0;
        }
        for (;;) { /* sift down in a max-heap of "comes last" */
            int child = 2 * root + 1;
            if (child >= end) break;
            if (child + 1 < end && cap_before(v[child], v[child + 1], gains)) child++;
            if (!cap_before(v[root], v[child], gains)) break;
            int32_t t = v[root];
            v[root] = v[child];
            v[child] = t;
            root = child;
        }
    }
}

/* CAP's rank of learner j = kmin + c for one token, c = 1 .. C-1 (odds[c]; or only c = c1 when c1 > 0): the odds
 * P(K >= j) / P(K < j) = sum_{c' >= c} e_c' / sum_{c' < c} e_c', e_c = exp(l_c - max l), in double. The odds order the
 * tokens exactly as P(K >= j) does, but keep apart tokens the gate is all but sure about: P = 1 - 1e-9 and
 * 1 - 2e-9 are both 1.0f as floats (and P itself loses such tokens in double from 1 - 1e-16), so raster order would
 * decide among them, while their odds (1e9, 5e8) differ. Both sums add positive terms, so nothing cancels; the odds
 * only tie again where one side underflows (logits more than ~700 apart). */
static void cap_odds(double *odds, const float *row, int C, int c1) {
    double e[ACM_MAX_CHOICES], mx = row[0];
    for (int c = 1; c < C; c++) mx = row[c] > mx ? row[c] : mx;
    for (int c = 0; c < C; c++) e[c] = exp((double)row[c] - mx);
    double above = 0, below = 0;
    for (int c = C - 1; c >= 1; c--) {
        above += e[c];
        if (!c1 || c == c1) odds[c] = above;
    }
    for (int c = 0; c + 1 < C; c++) {
        below += e[c];
        if (!c1 || c + 1 == c1) odds[c + 1] /= below;
    }
}

/* RANDOM order's rank of a token at level choice c0: a number in [0, 1) hashed (splitmix64) from the bits of its gate
 * logits and the level, so deterministic and independent of the batch, but unrelated to what the gate prefers. */
static float gate_blind_rank(const float *row, int C, int c0) {
    uint64_t h = 0x9e3779b97f4a7c15ull * (uint64_t)(c0 + 1);
    for (int c = 0; c < C; c++) {
        uint32_t bits;
        memcpy(&bits, row + c, sizeof bits);
        h ^= bits;
        h += 0x9e3779b97f4a7c15ull;
        h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
        h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
        h ^= h >> 31;
    }
    return (float)(h >> 40) * (1.0f / 16777216.0f);
}

/* CAP in LEVEL order: the allocation of sorting every (token t, learner j) pair by j, then by P(K_t >= j) descending,
 * then by t, without that sort. Every token has the same k after each full level, so `units` gives floor(units / T)
 * levels to every token and the remainder to the tokens with the largest P(K >= j) at the next level j (ties: lower
 * t): one sort of T tokens instead of T * (N - kmin) pairs (that sort, keyed by `a % N` in every comparison, was most
 * of the decision's time: bench/RESULTS.md, "Adaptive vs the uniform baseline at equal latency"). */
static void cap_level(uint8_t *k, const float *logits, int T, int C, int kmin, int N, int64_t units, int blind,
                      acm__acm_scratch *s) {
    int64_t full = units / T, rem = units % T;
    if (full >= N - kmin) {
        full = N - kmin;
        rem = 0;
    }
    memset(k, kmin + (int)full, (size_t)T);
    if (rem == 0) return;
    const int c0 = (int)full + 1; /* choice index of k = j = kmin + full + 1: P(K >= j) = sum of choices c >= c0 */
    for (int t = 0; t < T; t++) {
        s->cap_idx[t] = t;
        if (blind) {
            s->cap_gain[t] = gate_blind_rank(logits + (int64_t)t * C, C, c0);
            continue;
        }
        double odds[ACM_MAX_CHOICES];
        cap_odds(odds, logits + (int64_t)t * C, C, c0);
        s->cap_gain[t] = odds[c0];
    }
    cap_sort(s->cap_idx, T, s->cap_gain);
    for (int64_t u = 0; u < rem; u++) k[s->cap_idx[u]]++;
}

void acm__decide_k(uint8_t *k, const float *logits, int T, const acm_model *m, const acm__module *md,
                   acm_policy pol, float lambda, acm__acm_scratch *s) {
    int C = md->choices, N = md->info.n, kmin = md->info.kmin;
    switch (pol.kind) {
    case ACM_POLICY_ARGMAX:
        for (int t = 0; t < T; t++) k[t] = (uint8_t)(kmin + argmax_biased(logits + (int64_t)t * C, C, 0.0f, kmin, 0));
        return;
    case ACM_POLICY_FIXED: {
        int kk = pol.fixed_k < kmin ? kmin : pol.fixed_k > N ? N : pol.fixed_k;
        memset(k, kk, (size_t)T);
        return;
    }
    case ACM_POLICY_MEAN: {
        if (!pol.lambda_set && pol.beta >= 1.0f) {
            memset(k, N, (size_t)T);
            return;
        }
        double unit = md->learner_flops / m->learner_flops_mean;
        for (int t = 0; t < T; t++)
            k[t] = (uint8_t)(kmin + argmax_biased(logits + (int64_t)t * C, C, lambda, kmin, unit));
        return;
    }
    case ACM_POLICY_CAP: {
        if (pol.beta >= 1.0f) {
            memset(k, N, (size_t)T);
            return;
        }
        memset(k, kmin, (size_t)T);
        double share = acm__cap_share(m, md, pol.beta);
        int64_t units = (int64_t)floor(share * T * N + 1e-9) - (int64_t)T * kmin;
        if (units <= 0) return;
        acm_cap_order order = pol.cap_order ? pol.cap_order : m ? (acm_cap_order)m->cfg.cap_order : ACM_CAP_ORDER_GAIN;
        if (order == ACM_CAP_ORDER_LEVEL || order == ACM_CAP_ORDER_RANDOM) {
            cap_level(k, logits, T, C, kmin, N, units, order == ACM_CAP_ORDER_RANDOM, s);
            return;
        }
        /* gains[t * N + j - 1] = the odds of K_t >= j for j = kmin+1 .. N (choice c means k = kmin + c) */
        int npairs = 0;
        for (int t = 0; t < T; t++) {
            double odds[ACM_MAX_CHOICES];
            cap_odds(odds, logits + (int64_t)t * C, C, 0);
            for (int c = C - 1; c >= 1; c--) {
                const int j = kmin + c;
                s->cap_gain[t * N + (j - 1)] = odds[c];
                s->cap_idx[npairs++] = t * N + (j - 1);
            }
        }
        cap_sort(s->cap_idx, npairs, s->cap_gain);
        if (units > npairs) units = npairs;
        for (int64_t u = 0; u < units; u++) k[s->cap_idx[u] / N]++;
        return;
    }
    }
    ACM_ASSERT(0 && "unknown policy");
}

acm_policy acm_policy_default(void) {
    acm_policy p = {ACM_POLICY_ARGMAX, 1.0f, 0, 0, 0.0f, ACM_CAP_ORDER_MODEL};
    return p;
}

static const char *policy_names[] = {"argmax", "fixed", "mean", "cap"};

const char *acm_policy_name(acm_policy_kind k) {
    return (unsigned)k < sizeof policy_names / sizeof *policy_names ? policy_names[k] : "?";
}

int acm_policy_parse(const char *s) {
    for (int i = 0; i < (int)(sizeof policy_names / sizeof *policy_names); i++)
        if (!strcmp(s, policy_names[i])) return i;
    return -1;
}

static const char *cap_order_names[] = {"model", "gain", "level", "random"};

const char *acm_cap_order_name(acm_cap_order o) {
    return (unsigned)o < sizeof cap_order_names / sizeof *cap_order_names ? cap_order_names[o] : "?";
}

int acm_cap_order_parse(const char *s) {
    for (int i = ACM_CAP_ORDER_GAIN; i < (int)(sizeof cap_order_names / sizeof *cap_order_names); i++)
        if (!strcmp(s, cap_order_names[i])) return i;
    return -1;
}
