/*
 * admit.c — admission (I/O thread), once a request's body is here: its budget range and scheduling terms from the
 * headers (parsed once, at their arrival: http.c) and, for OIP, the parameters peeked from the body (oip.h); the
 * policy it runs under; and the refusal of what cannot be met: 504 at once when even the budget floor, started after
 * the work queued ahead of it, is predicted to finish after its deadline (optimistic on purpose: a request is refused
 * only when no decision could make it). The floor is the model's (its beta_min, or --beta-floor): below it accuracy
 * collapses, so a request that cannot be answered in time at it is refused, cheaply, rather than served garbage; a
 * request with X-Deadline-Ms is looked at once already at its headers (acmd_admit_early), before its body is read.
 * What happens after (queue order, dispatch) is queue.c's.
 *
 * Per-key limits (--auth-file, ACMD_KEY_LIMITS): a key's urgency floor and budget range narrow the request's terms
 * (its most urgent Priority is lowered to the key's; its budget range is clamped into the key's, never below the
 * model's floor; under a default argmax a key with budget_max < 1 runs under --request-policy at budget_max); then
 * its share of the model's queue and its two token buckets (requests, and FLOPs at the budget's ceiling) refuse with
 * 429 naming the limit, Retry-After the seconds until the bucket holds enough. A request refused changes no bucket.
 * A bucket lets a request through when it holds min(cost, burst), then takes the whole cost (it may go below 0): a
 * request larger than the burst is not refused for ever, and the long-run rate is the key's.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "acmd.h"

int acmd_admit_policy(acm_policy *out, acm_sla_budget *budget, int has_deadline, const char *name,
                      acm_policy model_default, const char *request_policy, char *err, size_t errlen) {
    if (name && !name[0]) name = NULL;
    if (name) {
        int k = acm_policy_parse(name);
        if (k < 0 || k == ACM_POLICY_FIXED)
            return snprintf(err, errlen, "compute policy \"%s\": argmax, mean or cap", name), -1;
        if (has_deadline && k != ACM_POLICY_CAP)
            return snprintf(err, errlen, "compute policy \"%s\": a request with a deadline runs under cap (the budget "
                                         "the deadline allows is exact only there)", name), -1;
    }
    if (has_deadline) { /* beta decided at dispatch, in [min, max] */
        *out = acm_policy_default();
        out->kind = ACM_POLICY_CAP;
        out->beta = (float)budget->max;
        if (budget->source == ACM_BUDGET_DEFAULT) budget->source = ACM_BUDGET_DEADLINE;
        return 0;
    }
    if (budget->source == ACM_BUDGET_DEFAULT) {
        *out = model_default;
        if (name) out->kind = (acm_policy_kind)acm_policy_parse(name); /* beta stays the default budget */
        if (budget->floor_set) {
            /* A floor without a ceiling raises the default budget to it. argmax has no budget to raise (the gates
             * alone decide), so under a default argmax the request runs under the request policy at the default
             * budget, raised: `X-Compute-Budget-Min: 1` pins full compute. */
            if (out->kind == ACM_POLICY_ARGMAX) {
                if (name)
                    return snprintf(err, errlen, "compute policy \"argmax\" cannot honour a budget floor (the gates "
                                                 "alone decide): use mean or cap"), -1;
                out->kind = (acm_policy_kind)acm_policy_parse(request_policy);
            }
            if (out->beta < budget->min) out->beta = (float)budget->min;
        }
        return 0;
    }
    *out = acm_policy_default();
    out->kind = (acm_policy_kind)acm_policy_parse(name ? name : request_policy);
    out->beta = (float)budget->max;
    return 0;
}

/* Seconds until the work queued ahead of r (better key, every model) could be done, on the workers as they are:
 * a fluid bound max(earliest free worker, (sum of busy remainders + work ahead) / workers). Work at its least cost. */
static double admit__wait_ahead(const acmd_server *s, const acmd_req *r, uint64_t now) {
    double first_free = INFINITY, total = 0;
    int n = 0;
    for (int i = 0; i < s->n_workers; i++) {
        const acmd_worker *w = &s->workers[i];
        double left = 0;
        if (w->busy) {
            const double ran = (double)(now - w->t_start) * 1e-9;
            left = w->pred_s > ran ? w->pred_s - ran : 0;
        }
        if (left < first_free) first_free = left;
        total += left;
        n++;
    }
    for (int i = 0; i < s->n_models; i++) {
        const acmd_model *m = &s->models[i];
        double items = 0, flops = 0;
        for (const acmd_req *q = m->q_head; q; q = q->next)
            if (acmd_queue_before(s->cfg.aging_ms, q, r, now))
                items += (double)q->sla.items, flops += acmd_budget_min_flops(m, q);
        if (items > 0) {
            const double batches = ceil(items / m->max_batch);
            total += acmd_budget_predict(m, items, flops) + (batches - 1) * (m->cost.theta[0] > 0 ? m->cost.theta[0] : 0);
        }
    }
    if (n == 0) return 0;
    const double fluid = total / n;
    return fluid > first_free ? fluid : first_free;
}

/* The absolute deadline (ns) of a deadline of ms milliseconds, counted from the request's start: its arrival, less
 * the time it had already spent before (X-Request-Start). */
static uint64_t admit__deadline_at(const acmd_req *r, double ms) {
    const int64_t d = (int64_t)(ms * 1e6) - (int64_t)(r->sla.age_s * 1e9);
    if (d >= 0) return r->t.arrive + (uint64_t)d;
    return (uint64_t)(-d) < r->t.arrive ? r->t.arrive - (uint64_t)(-d) : 0; /* already past: expired */
}

/* 504 (a miss "admission") when even the floor, started after the work queued ahead of r, is predicted to finish after
 * its deadline; 0 otherwise. */
static int admit__deadline(acmd_server *s, acmd_req *r, const char *when) {
    acmd_model *m = r->model;
    acmd_sla *t = &r->sla;
    t->seq = UINT64_MAX; /* not queued yet: everything already queued with the same key counts as ahead of it */
    const uint64_t now = acmd_now_ns();
    const double finish = t->age_s + (double)(now - r->t.arrive) * 1e-9 + admit__wait_ahead(s, r, now) +
                          acmd_budget_predict(m, (double)t->items, acmd_budget_flops(m, r, t->budget.min));
    if (finish * 1e3 <= t->sched.deadline_ms) return 0;
    acmd_queue_miss(s, r, ACMD_MISS_ADMISSION);
    acmd_req_fail(r, ACMD_E_DEADLINE, "deadline of %g ms cannot be met: even at the budget floor %g the predicted finish "
                                      "is %.3f ms after %s (the queue ahead included)%s",
                  t->sched.deadline_ms, t->budget.min, finish * 1e3,
                  t->age_s > 0 ? "the request's start (X-Request-Start)" : "arrival", when);
    return -1;
}

/* The request's key entry (--auth-file), or NULL (no keys, or the key was revoked since its headers came). */
static acmd_key *admit__key(acmd_server *s, const acmd_req *r) {
    if (!s->auth || !r->http.key[0]) return NULL;
    const int i = acmd_keys_index(&s->keys, r->http.key);
    return i < 0 ? NULL : &s->keys.k[i];
}

/* The key's budget range applied to the request's (before the policy is chosen). */
static void admit__key_budget(const acmd_key *k, const acmd_model *m, acm_sla_budget *b) {
    if (b->max > k->budget_max) b->max = k->budget_max;
    if (b->max < k->budget_min) b->max = k->budget_min; /* "the smallest budget it may ask for": raised */
    if (b->max < m->beta_floor) b->max = m->beta_floor; /* the floor is the model's accuracy: never below it */
    if (b->min < k->budget_min) b->min = k->budget_min;
    if (b->min > b->max) b->min = b->max;
}

static double admit__fill(double tok, double rate, double burst, double dt) {
    tok += rate * dt;
    return tok > burst ? burst : tok;
}

static int admit__retry_s(double need, double have, double rate) {
    const double s = ceil((need - have) / rate);
    return s < 1 ? 1 : s > 86400 ? 86400 : (int)s;
}

/* The key's queue share and buckets: 0 (the buckets charged), or -1 with the 429 filled. */
static int admit__key_limits(acmd_server *s, acmd_req *r, acmd_key *k) {
    acmd_model *m = r->model;
    if (k->queue_share < 1) {
        const double share = floor(k->queue_share * (double)s->cfg.max_queue);
        const int64_t limit = share < 1 ? 1 : (int64_t)share;
        int64_t held = 0;
        for (const acmd_req *q = m->q_head; q; q = q->next)
            if (strcmp(q->http.key, k->name) == 0) held += q->sla.items;
        if (held + r->sla.items > limit) {
            acmd_req_fail(r, ACMD_E_KEY_QUEUE, "key %s: its share of the queue of model %s is full (%lld of %lld items; "
                          "queue_share %g of --max-queue %ld)", k->name, m->name, (long long)held, (long long)limit,
                          k->queue_share, s->cfg.max_queue);
            return -1;
        }
    }
    const uint64_t now = acmd_now_ns();
    const double burst = k->burst > 0 ? k->burst : k->rate > 1 ? k->rate : 1;
    const double fburst = k->flops_burst > 0 ? k->flops_burst : k->flops_rate;
    if (!k->t_fill) k->tok = burst, k->ftok = fburst, k->t_fill = now; /* a key starts with full buckets */
    const double dt = (double)(now - k->t_fill) * 1e-9;
    const double tok = admit__fill(k->tok, k->rate, burst, dt), ftok = admit__fill(k->ftok, k->flops_rate, fburst, dt);
    const acm_policy *p = &r->sla.policy;
    const double cost = acmd_budget_flops(m, r, p->kind == ACM_POLICY_ARGMAX ? 1 : p->beta); /* its ceiling */
    const double need = 1 < burst ? 1 : burst, fneed = cost < fburst ? cost : fburst;
    if (k->rate > 0 && tok < need) {
        r->resp.retry_after = admit__retry_s(need, tok, k->rate);
        acmd_req_fail(r, ACMD_E_KEY_RATE, "key %s: its request rate is used up (rate %g/s, burst %g); retry in %d s",
                      k->name, k->rate, burst, r->resp.retry_after);
        return -1;
    }
    if (k->flops_rate > 0 && ftok < fneed) {
        r->resp.retry_after = admit__retry_s(fneed, ftok, k->flops_rate);
        acmd_req_fail(r, ACMD_E_KEY_FLOPS, "key %s: its FLOP rate is used up (flops_rate %g/s, flops_burst %g; this "
                      "request: %.4g FLOPs at its budget); retry in %d s", k->name, k->flops_rate, fburst, cost,
                      r->resp.retry_after);
        return -1;
    }
    k->tok = tok - (k->rate > 0 ? 1 : 0), k->ftok = ftok - (k->flops_rate > 0 ? cost : 0), k->t_fill = now;
    return 0;
}

int acmd_admit(acmd_server *s, acmd_req *r, const acm_oip_peek *oip) {
    acmd_model *m = r->model;
    acmd_sla *t = &r->sla;
    char e[256];
    const acm_oip_params *p = oip ? &oip->par : NULL;
    t->items = m->speech ? acmd_decode_audio_items(r) : oip ? acmd_decode_oip_items(oip) : 1;
    if (acm_sla_resolve_terms(&t->sched, &t->hdr, p && p->has_deadline ? &p->deadline_ms : NULL,
                              p && p->has_priority ? &p->priority : NULL, (int)s->cfg.min_client_urgency, e, sizeof e) ||
        acm_sla_resolve_budget(&t->budget, &t->hdr, p && p->has_budget ? &p->budget : NULL,
                               p && p->has_budget_min ? &p->budget_min : NULL, m->beta_floor, e, sizeof e)) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "%s", e);
        return -1;
    }
    acmd_key *k = admit__key(s, r);
    if (k) {
        if (t->sched.urgency < k->urgency_min) t->sched.urgency = (int)k->urgency_min;
        admit__key_budget(k, m, &t->budget);
    }
    t->has_deadline = t->sched.deadline_source != ACM_BUDGET_DEFAULT;
    const double dl_ms = t->has_deadline ? t->sched.deadline_ms : s->cfg.default_deadline_ms;
    t->t_deadline = admit__deadline_at(r, dl_ms);
    if (acmd_admit_policy(&t->policy, &t->budget, t->has_deadline, t->policy_name[0] ? t->policy_name : p ? p->policy : NULL,
                          m->default_policy, s->cfg.request_policy, e, sizeof e)) {
        acmd_req_fail(r, ACMD_E_BAD_REQUEST, "%s", e);
        return -1;
    }
    if (k && !t->has_deadline) { /* the policy's beta inside the key's range */
        if (t->policy.kind == ACM_POLICY_ARGMAX && k->budget_max < 1)
            t->policy.kind = (acm_policy_kind)acm_policy_parse(s->cfg.request_policy), t->policy.beta = (float)t->budget.max;
        if (t->policy.kind != ACM_POLICY_ARGMAX) {
            if (t->policy.beta > t->budget.max) t->policy.beta = (float)t->budget.max;
            if (t->policy.beta < t->budget.min) t->policy.beta = (float)t->budget.min;
        }
    }
    if (k && admit__key_limits(s, r, k)) return -1;
    t->predicted_ms = -1;
    if (!t->has_deadline) return 0;
    m->dl_requests++;
    return admit__deadline(s, r, "");
}

int acmd_admit_early(acmd_server *s, acmd_req *r) {
    acmd_model *m = r->model;
    acmd_sla *t = &r->sla;
    if (!t->hdr.has_deadline) return 0;
    char e[256];
    /* the headers' terms; where the body may still speak (OIP parameters), its most favourable word */
    if (acm_sla_resolve_terms(&t->sched, &t->hdr, NULL, NULL, (int)s->cfg.min_client_urgency, e, sizeof e)) return 0;
    if (!t->hdr.has_priority && r->route == ACMD_ROUTE_INFER)
        t->sched.urgency = s->cfg.min_client_urgency < ACM_URGENCY_MAX ? (int)s->cfg.min_client_urgency : ACM_URGENCY_MAX;
    const acmd_key *k = admit__key(s, r);
    if (k && t->sched.urgency < k->urgency_min) t->sched.urgency = (int)k->urgency_min;
    t->items = 1;
    t->budget.min = t->hdr.has_budget_min && t->hdr.budget_min > m->beta_floor ? t->hdr.budget_min : m->beta_floor;
    if (t->hdr.has_budget && t->budget.min > t->hdr.budget) return 0; /* a 400 at admission, not a 504 here */
    t->has_deadline = 1;
    t->t_deadline = admit__deadline_at(r, t->sched.deadline_ms);
    if (admit__deadline(s, r, " (refused before the body was read)") == 0) return 0;
    m->dl_requests++;
    return -1;
}
