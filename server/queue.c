/*
 * queue.c — the per-model queues and dispatch (I/O thread, which alone owns the queues and the cost models: no locks
 * besides the workers' hand-over and result queues).
 *
 * Order: a queue is an unordered list; dispatch takes the first request by (urgency less one level per --aging-ms
 * waited, deadline — the request's own or arrival + --default-deadline-ms —, arrival). Scans are O(queue), bounded
 * by --max-queue. An idle worker takes the model whose first request comes first, then adds requests in that order
 * while the batch, with every deadline request at its floor, is predicted to meet the batch's earliest deadline.
 * A deadline request that cannot make it even alone at its floor is answered 504 there (a miss "queue").
 * Budget at dispatch: the largest common beta (each request clamped to its own [min, max]; budget.c) whose predicted
 * batch time plus the model's margin fits before the earliest deadline, run under cap. The margin is a running 95th
 * percentile of the whole path after the decision (cost.c: the batch-time error and what the batch model does not
 * see: hand-over, decoding, bodies, the way back, sending), and the decision has a dead band (budget.c) so that noise
 * cannot make identical requests alternate between budgets.
 * Batching is work-conserving: only while another worker is busy may an idle one wait (--batch-delay-us at most) for
 * a fuller batch; a WebSocket stream's chunk at the head of the queue is the exception: it may wait up to
 * --stream-gather-ms from its queueing for others to fill the batch (a flush, finalize or end, never waits). Before a request is taken, its client is looked for (peer.c): one that left is answered 499.
 */
#include <math.h>
#include <stdint.h>

#include "acmd.h"

void acmd_queue_depth(acmd_server *s, acmd_model *m) {
    char l[128] = "";
    acmd_label(l, sizeof l, "model", m->name);
    acmd_metric_set(s->metrics, ACMD_M_QUEUE_DEPTH, l, m->q_items);
}

static const char *const queue__phase_names[] = {"admission", "queue", "compute"};

void acmd_queue_miss(acmd_server *s, acmd_req *r, int phase) {
    char l[64] = "";
    acmd_label(l, sizeof l, "phase", queue__phase_names[phase]);
    acmd_metric_add(s->metrics, ACMD_M_DEADLINE_MISSES, l, 1);
    r->model->dl_misses[phase]++;
}

const char *const acmd_path_phases[ACMD_PATH_PHASES] = {"admission", "queue", "handover", "compute", "return", "send"};

void acmd_queue_observe_path(acmd_server *s, acmd_req *r) {
    if (r->resp.status != 200 || r->sla.predicted_ms < 0 || !r->t.sent) return;
    const uint64_t at[7] = {r->t.arrive, r->t.queued, r->t.handed, r->t.dispatch, r->t.computed, r->t.done, r->t.sent};
    for (int i = 0; i < ACMD_PATH_PHASES; i++) {
        char l[160] = "";
        acmd_label(l, sizeof l, "model", r->model->name);
        acmd_label(l, sizeof l, "phase", acmd_path_phases[i]);
        acmd_metric_observe(s->metrics, ACMD_M_PHASE_DURATION, l, at[i + 1] >= at[i] ? (double)(at[i + 1] - at[i]) * 1e-9 : 0);
    }
    acmd_cost_path_add(&r->model->cost, (double)(r->t.sent - r->t.arrive) * 1e-9 - r->sla.predicted_ms * 1e-3);
}

/* Urgency, improved by one level per aging_ms waited in the queue. */
static double queue__urgency(double aging_ms, const acmd_req *r, uint64_t now) {
    double u = r->sla.sched.urgency;
    if (aging_ms > 0 && r->state == ACMD_REQ_QUEUED && now > r->t.queued)
        u -= floor((double)(now - r->t.queued) * 1e-6 / aging_ms);
    return u;
}

int acmd_queue_before(double aging_ms, const acmd_req *a, const acmd_req *b, uint64_t now) {
    const double ua = queue__urgency(aging_ms, a, now), ub = queue__urgency(aging_ms, b, now);
    if (ua != ub) return ua < ub;
    if (a->sla.t_deadline != b->sla.t_deadline) return a->sla.t_deadline < b->sla.t_deadline;
    return a->sla.seq < b->sla.seq;
}

static void queue__link(acmd_server *s, acmd_req *r) {
    acmd_model *m = r->model;
    r->state = ACMD_REQ_QUEUED;
    r->t.queued = acmd_now_ns();
    r->sla.seq = ++s->seq;
    r->next = NULL;
    if (m->q_tail) m->q_tail->next = r;
    else m->q_head = r;
    m->q_tail = r;
    m->q_items += 1;
    acmd_queue_depth(s, m);
}

void acmd_queue_push(acmd_server *s, acmd_req *r) {
    queue__link(s, r);
    acmd_queue_dispatch(s);
}

void acmd_queue_stream(acmd_server *s, acmd_req *r) {
    const acmd_model *m = r->model;
    const int64_t chunks = (int64_t)(r->au.n_pend / (size_t)m->chunk_samples) + r->au.last;
    r->sla.items = chunks < 1 ? 1 : chunks;
    const double dl_ms = r->sla.has_deadline ? r->sla.sched.deadline_ms : s->cfg.default_deadline_ms;
    r->sla.t_deadline = acmd_now_ns() + (uint64_t)(dl_ms * (r->au.last ? 1 : 2) * 1e6);
    /* dispatched on the next loop iteration, not now: the rest of what MHD read in this one (often the body's end)
     * joins the job first, so that a body that came at once runs as one job */
    queue__link(s, r);
    acmd_queue_wake(s, 0);
}

static void queue__timer(uv_timer_t *t) {
    acmd_server *s = t->data;
    /* a request still held by its probe (the timer may fire a little early) gets its wake-up again: dispatch passes
     * over it, and nothing else would look at it */
    const uint64_t now = acmd_now_ns();
    for (int i = 0; i < s->n_models; i++)
        for (const acmd_req *q = s->models[i].q_head; q; q = q->next)
            if (q->http.probe_until > now) acmd_queue_wake(s, q->http.probe_until);
    acmd_queue_dispatch(s);
    acmd_http_kick(s); /* send what dispatch answered at once (a cancellation, a 504) */
}

void acmd_queue_wake(acmd_server *s, uint64_t at) {
    uv_update_time(s->loop); /* timers count from the loop's cached time: refresh it, or the timer fires early */
    const uint64_t now = acmd_now_ns(), ms = at > now ? (at - now + 999999) / 1000000 : 0;
    if (uv_is_active((uv_handle_t *)&s->batch_timer) && uv_timer_get_due_in(&s->batch_timer) <= ms) return;
    uv_timer_start(&s->batch_timer, queue__timer, ms, 0);
}

/* The first request of m's queue in queue order (prev: its predecessor in the list). */
static acmd_req *queue__best(const acmd_server *s, const acmd_model *m, uint64_t now, acmd_req **prev) {
    acmd_req *best = NULL, *bp = NULL, *pp = NULL;
    for (acmd_req *q = m->q_head; q; pp = q, q = q->next)
        if ((!q->http.probe_until || now >= q->http.probe_until) &&
            (!best || acmd_queue_before(s->cfg.aging_ms, q, best, now)))
            best = q, bp = pp;
    *prev = bp;
    return best;
}

static void queue__unlink(acmd_model *m, acmd_req *r, acmd_req *prev) {
    if (prev) prev->next = r->next;
    else m->q_head = r->next;
    if (m->q_tail == r) m->q_tail = prev;
    m->q_items -= 1;
    r->next = NULL;
}

int acmd_queue_remove(acmd_server *s, acmd_req *r) {
    acmd_model *m = r->model;
    acmd_req *prev = NULL, *q = m->q_head;
    while (q && q != r) prev = q, q = q->next;
    if (!q) return 0;
    queue__unlink(m, r, prev);
    acmd_queue_depth(s, m);
    return 1;
}

/* Answers a request taken off the queue at once (cancelled, or its deadline lost) and has MHD run soon. */
static void queue__answer_now(acmd_server *s, acmd_req *r) {
    acmd_http_finish(s, r);
    acmd_queue_wake(s, 0); /* MHD runs the resumed connection only when run again: soon */
}

void acmd_queue_dispatch(acmd_server *s) {
    if (s->stopping) return;
    int busy = 0;
    for (int i = 0; i < s->n_workers; i++) busy += s->workers[i].busy;
    for (int wi = 0; wi < s->n_workers; wi++) {
        acmd_worker *w = &s->workers[wi];
        if (w->busy || !w->warm) continue;
        for (;;) {
            const uint64_t now = acmd_now_ns();
            acmd_model *m = NULL;
            acmd_req *mbest = NULL, *prev;
            for (int i = 0; i < s->n_models; i++) {
                acmd_req *b = queue__best(s, &s->models[i], now, &prev);
                if (b && (!mbest || acmd_queue_before(s->cfg.aging_ms, b, mbest, now))) m = &s->models[i], mbest = b;
            }
            if (!m) return;
            /* a stream's chunk waits for others' (--stream-gather-ms) while the batch is not full: one call of many
             * chunks costs far less per chunk than many calls of one (GEMMs of 8 rows pack the weights each time) */
            if (mbest->route == ACMD_ROUTE_STREAM && !mbest->au.last && s->cfg.stream_gather_ms > 0 &&
                m->q_items < m->max_batch) {
                const uint64_t waited = now - mbest->t.queued, gather = (uint64_t)(s->cfg.stream_gather_ms * 1e6);
                if (waited < gather) {
                    acmd_queue_wake(s, mbest->t.queued + gather);
                    return;
                }
            }
            if (s->cfg.batch_delay_us > 0 && busy > 0 && m->q_items < m->max_batch) {
                uint64_t waited = now - mbest->t.queued, delay = (uint64_t)s->cfg.batch_delay_us * 1000;
                if (waited < delay) {
                    acmd_queue_wake(s, now + (delay - waited) + 1000000);
                    return;
                }
            }
            acmd_req *head = NULL, *tail = NULL;
            int n = 0;
            double items = 0, flops = 0;
            uint64_t tight = UINT64_MAX; /* the earliest deadline among the batch's deadline requests */
            const double margin = acmd_cost_margin(&m->cost); /* the whole path's high quantile (cost.c) */
            const uint64_t margin_ns = (uint64_t)(margin * 1e9);
            while (n < m->max_batch) {
                acmd_req *r = queue__best(s, m, now, &prev);
                if (!r) break;
                /* a body still arriving is MHD's to watch: a client that leaves it is seen there (http.c) */
                const acmd_peer peer = r->au.on && !r->http.body_done ? ACMD_PEER_HERE : acmd_peer_state(s, r, now);
                if (peer == ACMD_PEER_PROBING) continue; /* held: queue__best passes it over until probe_until */
                if (peer == ACMD_PEER_GONE) {
                    queue__unlink(m, r, prev);
                    r->state = ACMD_REQ_CANCELLED;
                    acmd_req_fail(r, ACMD_E_CANCELLED, "the client closed the connection while the request was queued");
                    queue__answer_now(s, r);
                    continue;
                }
                const double it = items + (double)r->sla.items, fl = flops + acmd_budget_min_flops(m, r);
                const uint64_t tg = r->sla.has_deadline && r->sla.t_deadline < tight ? r->sla.t_deadline : tight;
                const uint64_t finish = now + (uint64_t)(acmd_budget_predict(m, it, fl) * 1e9);
                /* expired, or overtaken too long (a job of an upload still arriving is not: its deadline only orders
                 * it, the answer's runs from the last byte) */
                if (r->sla.has_deadline && n == 0 && finish > r->sla.t_deadline && !(r->au.on && !r->au.last)) {
                    queue__unlink(m, r, prev);
                    acmd_queue_miss(s, r, ACMD_MISS_QUEUE);
                    acmd_req_fail(r, ACMD_E_DEADLINE_QUEUE, "deadline of %g ms missed in the queue: even at the budget "
                                                            "floor %g the predicted finish was %.3f ms after arrival",
                                  r->sla.sched.deadline_ms, r->sla.budget.min, (double)(finish - r->t.arrive) * 1e-6);
                    r->state = ACMD_REQ_DONE;
                    queue__answer_now(s, r);
                    continue;
                }
                if (n > 0 && tg != UINT64_MAX && finish + margin_ns > tg) break; /* it would make the batch late */
                queue__unlink(m, r, prev);
                r->state = ACMD_REQ_RUNNING;
                m->running++;
                r->t.dispatch = r->t.handed = now;
                r->out.worker = wi;
                if (r->au.on) acmd_decode_stream_hand(r);
                if (tail) tail->next = r;
                else head = r;
                tail = r;
                n++;
                items = it, flops = fl, tight = tg;
                s->in_flight++;
            }
            acmd_queue_depth(s, m);
            if (!head) continue; /* every request taken had been cancelled or refused: look again */
            const double slack = (double)((int64_t)(tight - now)) * 1e-9 - margin;
            const double c = tight == UINT64_MAX ? 1.0
                             : acmd_budget_decide_held(m, head, slack, acmd_cost_band(&m->cost), &m->beta_prev);
            for (acmd_req *q = head; q; q = q->next)
                if (q->sla.has_deadline) q->sla.policy.beta = (float)acmd_budget_clamp(q, c);
            const double pred = acmd_budget_batch_time(m, head, c);
            for (acmd_req *q = head; q; q = q->next)
                q->sla.predicted_ms = ((double)(now - q->t.arrive) * 1e-9 + pred) * 1e3;
            acmd_workers_hand(w, m, head, pred, now);
            busy++;
            break;
        }
    }
}
