/*
 * budget.c — the budget arithmetic, pure functions of a model's cost figures and requests (no server state, no
 * clock): the budget a request reports as applied (the one place it is computed: answers, headers, access log and
 * metrics all call acmd_budget_applied), the FLOPs of a request at a beta, a batch's predicted time, and the common
 * beta that fits a batch into its slack (dispatch, queue.c).
 */
#include "acmd.h"

double acmd_budget_applied(const acmd_req *r) {
    return r->sla.policy.kind == ACM_POLICY_ARGMAX ? 1.0 : (double)r->sla.policy.beta;
}

double acmd_budget_flops(const acmd_model *m, const acmd_req *r, double beta) {
    return (double)r->sla.items * (m->flops_fixed + beta * m->flops_learner);
}

double acmd_budget_min_flops(const acmd_model *m, const acmd_req *r) {
    if (r->sla.has_deadline) return acmd_budget_flops(m, r, r->sla.budget.min);
    const acm_policy_kind k = r->sla.policy.kind;
    return acmd_budget_flops(m, r, k == ACM_POLICY_ARGMAX || k == ACM_POLICY_FIXED ? 1.0 : r->sla.policy.beta);
}

double acmd_budget_predict(const acmd_model *m, double items, double flops) {
    return acmd_cost_predict(&m->cost, items * m->T, flops);
}

double acmd_budget_clamp(const acmd_req *r, double c) {
    return c < r->sla.budget.min ? r->sla.budget.min : c > r->sla.budget.max ? r->sla.budget.max : c;
}

double acmd_budget_batch_time(const acmd_model *m, const acmd_req *batch, double c) {
    double items = 0, flops = 0;
    for (const acmd_req *q = batch; q; q = q->next) {
        items += (double)q->sla.items;
        flops += q->sla.has_deadline ? acmd_budget_flops(m, q, acmd_budget_clamp(q, c)) : acmd_budget_min_flops(m, q);
    }
    return acmd_budget_predict(m, items, flops);
}

/* Bisection: the batch time is non-decreasing in c (FLOPs grow with beta, the cost model's slopes are >= 0). */
double acmd_budget_decide(const acmd_model *m, const acmd_req *batch, double slack_s) {
    if (acmd_budget_batch_time(m, batch, 1.0) <= slack_s) return 1.0;
    double lo = 0, hi = 1;
    for (int i = 0; i < 40; i++) {
        const double mid = 0.5 * (lo + hi);
        if (acmd_budget_batch_time(m, batch, mid) <= slack_s) lo = mid;
        else hi = mid;
    }
    return lo;
}

double acmd_budget_decide_held(const acmd_model *m, const acmd_req *batch, double slack_s, double band_s, double *prev) {
    const double hi = acmd_budget_decide(m, batch, slack_s); /* the most that fits */
    double c = hi;
    if (*prev >= 0 && band_s > 0) {
        const double lo = acmd_budget_decide(m, batch, slack_s - band_s); /* the least a move up must reach */
        c = *prev > hi ? hi : *prev < lo ? lo : *prev;
    }
    *prev = c;
    return c;
}
