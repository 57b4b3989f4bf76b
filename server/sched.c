/*
 * sched.c — admission and the scheduler (I/O thread: per-model queues, SLA terms, the cost model's use, dispatch of
 * batches to idle workers, cancellation of requests whose client closed its connection, told from a half-close by a
 * probe) and the engine workers (decode -> engine -> response bodies; non-finite logits are a 500).
 *
 * Admission (acmd_sched_admit) resolves a request's budget range and scheduling terms (sla.h) from its headers and,
 * for OIP, the parameters peeked from the body (oip.h), and answers 504 at once when even the budget floor, started
 * after the work queued ahead of it, is predicted to finish after its deadline.
 * Order: a queue is an unordered list; dispatch takes the first request by (urgency less one level per --aging-ms
 * waited, deadline — the request's own or arrival + --default-deadline-ms —, arrival). Scans are O(queue), bounded
 * by --max-queue. An idle worker takes the model whose first request comes first, then adds requests in that order
 * while the batch, with every deadline request at its floor, is predicted to meet the batch's earliest deadline.
 * A deadline request that cannot make it even alone at its floor is answered 504 there (a miss "queue").
 * Budget at dispatch: the largest common beta (each request clamped to its own [min, max]) whose predicted batch
 * time plus the model's recent mean prediction error fits before the earliest deadline; run under cap.
 * Batching is work-conserving: only while another worker is busy may an idle one wait (--batch-delay-us at most) for
 * a fuller batch. Every batch's measured time goes back into its model's cost model (server/cost.c) on the I/O
 * thread, which alone owns the queues and the cost models: no locks besides the hand-over and result queues.
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/sockios.h>

#include <jansson.h>

#include "acmd.h"
#include "image.h"
#include "jsonw.h"
#include "oip.h"

#define SCHED__MAX_ITEMS_PER_REQUEST 256

/* ---- I/O thread: admission -------------------------------------------------------------------------------------- */

static void sched__depth(acmd_server *s, acmd_model *m) {
    char l[128] = "";
    acmd_label(l, sizeof l, "model", m->name);
    acmd_metric_set(s->metrics, ACMD_M_QUEUE_DEPTH, l, m->q_items);
}

static const char *const sched__phase_names[] = {"admission", "queue", "compute"};

static void sched__miss(acmd_server *s, acmd_req *r, int phase) {
    char l[64] = "";
    acmd_label(l, sizeof l, "phase", sched__phase_names[phase]);
    acmd_metric_add(s->metrics, ACMD_M_DEADLINE_MISSES, l, 1);
    r->model->dl_misses[phase]++;
}

/* FLOPs of a request's items at budget beta (the cost model's unit of work). */
static double sched__flops(const acmd_model *m, const acmd_req *r, double beta) {
    return (double)r->items_est * (m->flops_fixed + beta * m->flops_learner);
}

/* The least a request can cost: a deadline request at its floor; any other at its own policy (argmax counted as 1). */
static double sched__min_flops(const acmd_model *m, const acmd_req *r) {
    if (r->has_deadline) return sched__flops(m, r, r->sla.min);
    return sched__flops(m, r, r->policy.kind == ACM_POLICY_ARGMAX || r->policy.kind == ACM_POLICY_FIXED ? 1.0 : r->policy.beta);
}

static double sched__predict(const acmd_model *m, double items, double flops) {
    return acmd_cost_predict(&m->cost, items * m->T, flops);
}

/* Queue order: urgency (improved by one level per --aging-ms waited), then the earlier deadline, then arrival. */
static double sched__urgency(const acmd_server *s, const acmd_req *r, uint64_t now) {
    double u = r->sched.urgency;
    if (s->cfg.aging_ms > 0 && r->state == ACMD_REQ_QUEUED && now > r->t_queued)
        u -= floor((double)(now - r->t_queued) * 1e-6 / s->cfg.aging_ms);
    return u;
}

static int sched__before(const acmd_server *s, const acmd_req *a, const acmd_req *b, uint64_t now) {
    const double ua = sched__urgency(s, a, now), ub = sched__urgency(s, b, now);
    if (ua != ub) return ua < ub;
    if (a->t_deadline != b->t_deadline) return a->t_deadline < b->t_deadline;
    return a->seq < b->seq;
}

static int sched__policy(acmd_req *r, const acmd_server *s, const char *param_policy) {
    const acmd_model *m = r->model;
    const char *name = r->hdr_policy[0] ? r->hdr_policy : param_policy && param_policy[0] ? param_policy : NULL;
    if (name) {
        int k = acm_policy_parse(name);
        if (k < 0 || k == ACM_POLICY_FIXED) {
            acmd_req_error(r, 400, "compute policy \"%s\": argmax, mean or cap", name);
            return -1;
        }
        if (r->has_deadline && k != ACM_POLICY_CAP) {
            acmd_req_error(r, 400, "compute policy \"%s\": a request with a deadline runs under cap (the budget the "
                                   "deadline allows is exact only there)", name);
            return -1;
        }
    }
    if (r->has_deadline) { /* beta decided at dispatch, in [min, max] */
        r->policy = acm_policy_default();
        r->policy.kind = ACM_POLICY_CAP;
        r->policy.beta = (float)r->sla.max;
        if (r->sla.source == ACM_BUDGET_DEFAULT) r->sla.source = ACM_BUDGET_DEADLINE;
        return 0;
    }
    if (r->sla.source == ACM_BUDGET_DEFAULT) {
        r->policy = m->default_policy;
        if (name) r->policy.kind = (acm_policy_kind)acm_policy_parse(name); /* beta stays the default budget */
        if (r->sla.floor_set) {
            /* A floor without a ceiling raises the default budget to it. argmax has no budget to raise (the gates
             * alone decide), so under a default argmax the request runs under the request policy at the default
             * budget, raised: `X-Compute-Budget-Min: 1` pins full compute. */
            if (r->policy.kind == ACM_POLICY_ARGMAX) {
                if (name) {
                    acmd_req_error(r, 400, "compute policy \"argmax\" cannot honour a budget floor (the gates alone "
                                           "decide): use mean or cap");
                    return -1;
                }
                r->policy.kind = (acm_policy_kind)acm_policy_parse(s->cfg.request_policy);
            }
            if (r->policy.beta < r->sla.min) r->policy.beta = (float)r->sla.min;
        }
        return 0;
    }
    r->policy = acm_policy_default();
    r->policy.kind = (acm_policy_kind)acm_policy_parse(name ? name : s->cfg.request_policy);
    r->policy.beta = (float)r->sla.max;
    return 0;
}

/* Seconds until the work queued ahead of r (better key, every model) could be done, on the workers as they are:
 * a fluid bound max(earliest free worker, (sum of busy remainders + work ahead) / workers). Work at its least cost. */
static double sched__wait_ahead(const acmd_server *s, const acmd_req *r, uint64_t now) {
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
            if (sched__before(s, q, r, now)) items += (double)q->items_est, flops += sched__min_flops(m, q);
        if (items > 0) {
            const double batches = ceil(items / m->max_batch);
            total += sched__predict(m, items, flops) + (batches - 1) * (m->cost.theta[0] > 0 ? m->cost.theta[0] : 0);
        }
    }
    if (n == 0) return 0;
    const double fluid = total / n;
    return fluid > first_free ? fluid : first_free;
}

/* The OIP inputs a worker runs, in order of preference (sched__decode_infer takes the first present). */
static const char *const sched__oip_inputs[] = {"image", "pixel_values"};

/* Items of an OIP request for the cost model: the batch dimension of the input the worker will run (not of the
 * first input), within what decoding accepts; 1 when there is none (decoding refuses it). */
static int64_t sched__oip_items(const acm_oip_peek *oip) {
    for (size_t i = 0; i < sizeof sched__oip_inputs / sizeof *sched__oip_inputs; i++) {
        const int64_t n = acm_oip_peek_items(oip, sched__oip_inputs[i]);
        if (n > 0) return n < SCHED__MAX_ITEMS_PER_REQUEST ? n : SCHED__MAX_ITEMS_PER_REQUEST;
    }
    return 1;
}

int acmd_sched_admit(acmd_server *s, acmd_req *r, const acm_oip_peek *oip) {
    acmd_model *m = r->model;
    char e[256];
    const acm_oip_params *p = oip ? &oip->par : NULL;
    r->items_est = oip ? sched__oip_items(oip) : 1;
    if (acm_sla_resolve_sched(&r->sched, r->has_hdr_deadline ? r->hdr_deadline : NULL,
                              r->has_hdr_priority ? r->hdr_priority : NULL, p && p->has_deadline ? &p->deadline_ms : NULL,
                              p && p->has_priority ? &p->priority : NULL, (int)s->cfg.min_client_urgency, e, sizeof e)) {
        acmd_req_error(r, 400, "%s", e);
        return -1;
    }
    if (acm_sla_resolve(&r->sla, r->has_hdr_budget ? r->hdr_budget : NULL,
                        r->has_hdr_budget_min ? r->hdr_budget_min : NULL, p && p->has_budget ? &p->budget : NULL,
                        p && p->has_budget_min ? &p->budget_min : NULL, m->cfg->beta_min, e, sizeof e)) {
        acmd_req_error(r, 400, "%s", e);
        return -1;
    }
    r->has_deadline = r->sched.deadline_source != ACM_BUDGET_DEFAULT;
    const double dl_ms = r->has_deadline ? r->sched.deadline_ms : s->cfg.default_deadline_ms;
    r->t_deadline = r->t_arrive + (uint64_t)(dl_ms * 1e6);
    if (sched__policy(r, s, p ? p->policy : NULL)) return -1;
    r->predicted_ms = -1;
    if (!r->has_deadline) return 0;
    m->dl_requests++;
    r->seq = UINT64_MAX; /* not queued yet: everything already queued with the same key counts as ahead of it */
    /* 504 now when even the floor, started after the work ahead, would finish late (optimistic on purpose: a
     * request is refused only when no decision could make it) */
    const uint64_t now = acmd_now_ns();
    const double finish = (double)(now - r->t_arrive) * 1e-9 + sched__wait_ahead(s, r, now) +
                          sched__predict(m, (double)r->items_est, sched__flops(m, r, r->sla.min));
    if (finish * 1e3 > r->sched.deadline_ms) {
        r->reject_reason = "deadline";
        sched__miss(s, r, ACMD_MISS_ADMISSION);
        acmd_req_error(r, 504, "deadline of %g ms cannot be met: even at the budget floor %g the predicted finish is "
                               "%.3f ms after arrival (the queue ahead included)", r->sched.deadline_ms, r->sla.min,
                       finish * 1e3);
        return -1;
    }
    return 0;
}

void acmd_sched_enqueue(acmd_server *s, acmd_req *r) {
    acmd_model *m = r->model;
    r->state = ACMD_REQ_QUEUED;
    r->t_queued = acmd_now_ns();
    r->seq = ++s->seq;
    r->next = NULL;
    if (m->q_tail) m->q_tail->next = r;
    else m->q_head = r;
    m->q_tail = r;
    m->q_items += 1;
    sched__depth(s, m);
    acmd_sched_dispatch(s);
}

/* ---- I/O thread: dispatch ------------------------------------------------------------------------------------------- */

/* Whether the client of a queued request is still there. A client that closed its socket and one that only
 * half-closed it (shutdown(SHUT_WR) once its request is sent, which HTTP allows) look alike from here: both sent a
 * FIN, and a FIN is not a disconnect. They differ when something is written to them: a closed socket answers with a
 * reset. So on the first FIN seen, an interim "100 Continue" is written as a probe (RFC 9110 §15.2: an HTTP/1.1
 * client must accept a 1xx it did not ask for; bytes of an earlier response still unacknowledged serve as the probe
 * instead) and the request is held for about two round trips (TCP_INFO's estimate): a reset by then and it is gone;
 * none and it runs, its answer going out after the client's FIN. HTTP/1.0 forbids 1xx: a FIN there is a half-close.
 * A reset or a socket error seen at any time: gone. */
static void sched__wake(acmd_server *s, uint64_t at);

typedef enum { SCHED_PEER_HERE, SCHED_PEER_GONE, SCHED_PEER_PROBING } sched__peer;

#define SCHED__PROBE_MIN_NS 1000000ull   /* hold a probed request at least 1 ms (loopback RTTs are microseconds) */
#define SCHED__PROBE_MAX_NS 500000000ull /* and at most 0.5 s (a half-closed client waits that much at worst) */

static int sched__reset(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) < 0) return -1;
    return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) ? 1 : (p.revents & POLLRDHUP) ? 0 : -1;
}

static sched__peer sched__peer_state(acmd_server *s, acmd_req *r, uint64_t now) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return SCHED_PEER_HERE;
    const int fd = ci->connect_fd, st = sched__reset(fd); /* 1 reset/error, 0 FIN only, -1 open */
    if (st != 0) return st > 0 ? SCHED_PEER_GONE : SCHED_PEER_HERE;
    if (!r->http11 || (r->probe_until && now >= r->probe_until)) return SCHED_PEER_HERE; /* half-closed */
    if (r->probe_until) return SCHED_PEER_PROBING;
    int unacked = 0;
    if (ioctl(fd, SIOCOUTQ, &unacked) || unacked == 0) {
        static const char probe[] = "HTTP/1.1 100 Continue\r\n\r\n";
        const ssize_t k = send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return SCHED_PEER_GONE;
        if (sched__reset(fd) > 0) return SCHED_PEER_GONE; /* on loopback the reset is often back already */
    }
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    uint64_t wait = 10 * SCHED__PROBE_MIN_NS;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && tl >= offsetof(struct tcp_info, tcpi_rttvar) + 4)
        wait = (2ull * ti.tcpi_rtt + 4ull * ti.tcpi_rttvar) * 1000; /* microseconds */
    wait = wait < SCHED__PROBE_MIN_NS ? SCHED__PROBE_MIN_NS : wait > SCHED__PROBE_MAX_NS ? SCHED__PROBE_MAX_NS : wait;
    r->probe_until = now + wait;
    sched__wake(s, r->probe_until);
    return SCHED_PEER_PROBING;
}

static void sched__batch_timer(uv_timer_t *t) {
    acmd_server *s = t->data;
    /* a request still held by its probe (the timer may fire a little early) gets its wake-up again: dispatch passes
     * over it, and nothing else would look at it */
    const uint64_t now = acmd_now_ns();
    for (int i = 0; i < s->n_models; i++)
        for (const acmd_req *q = s->models[i].q_head; q; q = q->next)
            if (q->probe_until > now) sched__wake(s, q->probe_until);
    acmd_sched_dispatch(t->data);
    acmd_http_kick(t->data); /* send what dispatch answered at once (a cancellation, a 504) */
}

/* Runs dispatch again at `at` (ns, CLOCK_MONOTONIC) at the latest: the batch timer, kept at the earliest wake-up. */
static void sched__wake(acmd_server *s, uint64_t at) {
    uv_update_time(s->loop); /* timers count from the loop's cached time: refresh it, or the timer fires early */
    const uint64_t now = acmd_now_ns(), ms = at > now ? (at - now + 999999) / 1000000 : 0;
    if (uv_is_active((uv_handle_t *)&s->batch_timer) && uv_timer_get_due_in(&s->batch_timer) <= ms) return;
    uv_timer_start(&s->batch_timer, sched__batch_timer, ms, 0);
}

/* The first request of m's queue in queue order (prev: its predecessor in the list). */
static acmd_req *sched__best(const acmd_server *s, const acmd_model *m, uint64_t now, acmd_req **prev) {
    acmd_req *best = NULL, *bp = NULL, *pp = NULL;
    for (acmd_req *q = m->q_head; q; pp = q, q = q->next)
        if ((!q->probe_until || now >= q->probe_until) && (!best || sched__before(s, q, best, now))) best = q, bp = pp;
    *prev = bp;
    return best;
}

static void sched__unlink(acmd_model *m, acmd_req *r, acmd_req *prev) {
    if (prev) prev->next = r->next;
    else m->q_head = r->next;
    if (m->q_tail == r) m->q_tail = prev;
    m->q_items -= 1;
    r->next = NULL;
}

/* Predicted seconds of a batch with the deadline requests at a common beta c, each clamped to its own [min, max]. */
static double sched__batch_time(const acmd_model *m, const acmd_req *batch, double c, double *items_out) {
    double items = 0, flops = 0;
    for (const acmd_req *q = batch; q; q = q->next) {
        items += (double)q->items_est;
        if (q->has_deadline) flops += sched__flops(m, q, c < q->sla.min ? q->sla.min : c > q->sla.max ? q->sla.max : c);
        else flops += sched__min_flops(m, q);
    }
    if (items_out) *items_out = items;
    return sched__predict(m, items, flops);
}

/* The margin a batch's predicted finish keeps from its deadline: the 90th percentile of the cost model's last 64
 * absolute errors. The mean error (used before) let half the batches of a loaded server finish a few ms late: under
 * load the errors are skewed, and a 200 past its deadline is a miss. A quantile, not the maximum, so that one
 * scheduling hiccup does not shrink every budget for the next 64 batches. */
#define SCHED_MARGIN_QUANTILE 0.9

/* Beta at dispatch: the largest common c in [0, 1] (each request clamped to its [min, max]) whose predicted finish,
 * with the margin above (seconds), meets the batch's earliest deadline. At worst the floors. */
static double sched__decide(const acmd_model *m, const acmd_req *batch, uint64_t now, uint64_t tight, double margin) {
    const double slack = (double)((int64_t)(tight - now)) * 1e-9 - margin;
    if (sched__batch_time(m, batch, 1.0, NULL) <= slack) return 1.0;
    double lo = 0, hi = 1;
    for (int i = 0; i < 40; i++) {
        const double mid = 0.5 * (lo + hi);
        if (sched__batch_time(m, batch, mid, NULL) <= slack) lo = mid;
        else hi = mid;
    }
    return lo;
}

void acmd_sched_dispatch(acmd_server *s) {
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
                acmd_req *b = sched__best(s, &s->models[i], now, &prev);
                if (b && (!mbest || sched__before(s, b, mbest, now))) m = &s->models[i], mbest = b;
            }
            if (!m) return;
            if (s->cfg.batch_delay_us > 0 && busy > 0 && m->q_items < m->max_batch) {
                uint64_t waited = now - mbest->t_queued, delay = (uint64_t)s->cfg.batch_delay_us * 1000;
                if (waited < delay) {
                    sched__wake(s, now + (delay - waited) + 1000000);
                    return;
                }
            }
            acmd_req *head = NULL, *tail = NULL;
            int n = 0;
            double items = 0, flops = 0;
            uint64_t tight = UINT64_MAX; /* the earliest deadline among the batch's deadline requests */
            const double margin = acmd_cost_error_quantile(&m->cost, SCHED_MARGIN_QUANTILE);
            const uint64_t margin_ns = (uint64_t)(margin * 1e9);
            while (n < m->max_batch) {
                acmd_req *r = sched__best(s, m, now, &prev);
                if (!r) break;
                const sched__peer peer = sched__peer_state(s, r, now);
                if (peer == SCHED_PEER_PROBING) continue; /* held: sched__best passes it over until probe_until */
                if (peer == SCHED_PEER_GONE) {
                    sched__unlink(m, r, prev);
                    r->state = ACMD_REQ_CANCELLED;
                    acmd_req_error(r, 499, "the client closed the connection while the request was queued");
                    acmd_http_finish(s, r);
                    sched__wake(s, 0); /* MHD runs the resumed connection only when run again: soon */
                    continue;
                }
                const double it = items + (double)r->items_est, fl = flops + sched__min_flops(m, r);
                const uint64_t tg = r->has_deadline && r->t_deadline < tight ? r->t_deadline : tight;
                const uint64_t finish = now + (uint64_t)(sched__predict(m, it, fl) * 1e9);
                if (r->has_deadline && n == 0 && finish > r->t_deadline) { /* expired, or overtaken too long */
                    sched__unlink(m, r, prev);
                    sched__miss(s, r, ACMD_MISS_QUEUE);
                    acmd_req_error(r, 504, "deadline of %g ms missed in the queue: even at the budget floor %g the "
                                           "predicted finish was %.3f ms after arrival", r->sched.deadline_ms, r->sla.min,
                                   (double)(finish - r->t_arrive) * 1e-6);
                    r->state = ACMD_REQ_DONE;
                    acmd_http_finish(s, r);
                    sched__wake(s, 0); /* MHD runs the resumed connection only when run again: soon */
                    continue;
                }
                if (n > 0 && tg != UINT64_MAX && finish + margin_ns > tg) break; /* it would make the batch late */
                sched__unlink(m, r, prev);
                r->state = ACMD_REQ_RUNNING;
                m->running++;
                r->t_dispatch = now;
                r->worker = wi;
                if (tail) tail->next = r;
                else head = r;
                tail = r;
                n++;
                items = it, flops = fl, tight = tg;
                s->in_flight++;
            }
            sched__depth(s, m);
            if (!head) continue; /* every request taken had been cancelled or refused: look again */
            const double c = tight == UINT64_MAX ? 1.0 : sched__decide(m, head, now, tight, margin);
            for (acmd_req *q = head; q; q = q->next)
                if (q->has_deadline)
                    q->policy.beta = (float)(c < q->sla.min ? q->sla.min : c > q->sla.max ? q->sla.max : c);
            const double pred = sched__batch_time(m, head, c, NULL);
            for (acmd_req *q = head; q; q = q->next) q->predicted_ms = ((double)(now - q->t_arrive) * 1e-9 + pred) * 1e3;
            w->t_start = now;
            w->pred_s = pred;
            pthread_mutex_lock(&w->mu);
            w->job = head;
            w->job_model = m;
            pthread_cond_signal(&w->cv);
            pthread_mutex_unlock(&w->mu);
            w->busy = 1;
            busy++;
            break;
        }
    }
}

static void sched__metrics_done(acmd_server *s, acmd_req *r) {
    char l[128] = "";
    acmd_label(l, sizeof l, "model", r->model->name);
    if (r->batch_first) acmd_metric_observe(s->metrics, ACMD_M_BATCH_SIZE, l, r->batch_size);
    acmd_metric_observe(s->metrics, ACMD_M_QUEUE_DURATION, l, (double)(r->t_dispatch - r->t_queued) * 1e-9);
    if (r->status == 200) {
        acmd_metric_observe(s->metrics, ACMD_M_COMPUTE_DURATION, l, r->compute_s);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS, l, r->flops);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS_DENSE, l, r->flops_dense);
        char b[64] = "";
        acmd_label(b, sizeof b, "source", acm_budget_source_name(r->sla.source)); /* header, parameter, deadline, default */
        double applied = r->policy.kind == ACM_POLICY_ARGMAX ? 1.0 : r->policy.beta;
        acmd_metric_observe(s->metrics, ACMD_M_BUDGET_RATIO, b, applied);
    }
}

void acmd_sched_on_async(uv_async_t *a) {
    acmd_server *s = a->data;
    pthread_mutex_lock(&s->res_mu);
    acmd_req *list = s->res_head;
    s->res_head = s->res_tail = NULL;
    int warm = s->warm_msgs;
    pthread_mutex_unlock(&s->res_mu);
    while (list) {
        acmd_req *r = list;
        list = r->next;
        r->next = NULL;
        s->in_flight--;
        r->model->running--;
        s->workers[r->worker].busy = 0;
        if (r->orphan) { /* its connection went away (shutdown past the exit timeout) */
            acmd_req_free(s, r);
            continue;
        }
        acmd_model *m = r->model;
        if (r->batch_lead && r->b_items > 0) acmd_cost_add(&m->cost, r->b_items * m->T, r->b_flops, r->b_secs, 0);
        if (r->has_deadline && r->status == 200 && acmd_now_ns() > r->t_deadline) sched__miss(s, r, ACMD_MISS_COMPUTE);
        sched__metrics_done(s, r);
        acmd_http_finish(s, r);
    }
    if (!s->ready && !s->draining && warm == s->n_workers) {
        int failed = 0;
        for (int i = 0; i < s->n_workers; i++) s->workers[i].warm = 1, failed |= s->workers[i].failed;
        for (int i = 0; i < s->n_models && !failed; i++) { /* the warm-up batches: the cost model's prior */
            acmd_model *m = &s->models[i];
            m->flops_fixed = s->workers[0].eng[i].flops_fixed;
            for (int wi = 0; wi < s->n_workers; wi++)
                for (int k = 0; k < s->workers[wi].eng[i].n_warm; k++)
                    acmd_cost_add(&m->cost, s->workers[wi].eng[i].warm_items[k] * m->T,
                                  s->workers[wi].eng[i].warm_flops[k], s->workers[wi].eng[i].warm_secs[k], 1);
        }
        if (failed) {
            acmd_log(s, 0, "warm-up failed: %s", s->workers[0].err);
            s->exit_code = 1;
            uv_kill(getpid(), SIGTERM);
        } else {
            s->ready = 1;
            acmd_log(s, 2, "ready: %d model(s), %d worker(s) x %ld BLAS thread(s), BLAS core %s", s->n_models,
                     s->n_workers, s->cfg.blas_threads, acm_blas_core());
        }
    }
    acmd_sched_dispatch(s);
    acmd_http_kick(s);
}

/* ---- workers ----------------------------------------------------------------------------------------------------- */

static void sched__post(acmd_server *s, acmd_req *head, int warm) {
    pthread_mutex_lock(&s->res_mu);
    if (head) {
        acmd_req *t = head;
        while (t->next) t = t->next;
        if (s->res_tail) s->res_tail->next = head;
        else s->res_head = head;
        s->res_tail = t;
    }
    s->warm_msgs += warm;
    pthread_mutex_unlock(&s->res_mu);
    uv_async_send(&s->async);
}

/* --test-hold: a worker's warm-up, and then each batch of requests, waits for one byte from the FIFO before it runs,
 * so that tests can hold a worker busy (or the server not ready) for exactly as long as they need: slowness by
 * construction, on any CPU. End-of-file releases everything after it. */
static void sched__test_hold(acmd_server *s) {
    if (s->hold_fd < 0) return;
    char c;
    ssize_t n;
    do n = read(s->hold_fd, &c, 1);
    while (n < 0 && errno == EINTR);
}

static void *sched__worker_main(void *arg) {
    acmd_worker *w = arg;
    acmd_server *s = w->srv;
    sched__test_hold(s);
    /* warm-up per model: one full batch under the default policy (cold caches, page faults; untimed), then four small
     * timed batches under cap — 1 and 2 items (1 if max_batch is 1), at beta = 1 and at beta_min — the cost model's
     * prior (tokens and FLOPs both vary) at a few items' cost; the FLOPs outside the learners are a beta = 1 item's
     * FLOPs less every learner's */
    for (int i = 0; i < s->n_models && !w->failed; i++) {
        acmd_model *m = &s->models[i];
        const float floor_beta = m->cfg->beta_min > 0 ? m->cfg->beta_min : 0.25f;
        for (int run = 0; run < 5 && !w->failed; run++) {
            const int n = run == 0 ? m->max_batch : run <= 2 ? 1 : m->max_batch < 2 ? 1 : 2;
            acm_policy pol = m->default_policy;
            if (run) pol = acm_policy_default(), pol.kind = ACM_POLICY_CAP, pol.beta = run % 2 ? 1.0f : floor_beta;
            for (int b = 0; b < n; b++) {
                w->eng[i].items[b] = (acm_item){.pixels = w->eng[i].zeros, .policy = pol};
                w->eng[i].res[b] = (acm_result){.logits = w->eng[i].logits + (size_t)b * m->K};
            }
            const uint64_t t0 = acmd_now_ns();
            if (acm_worker_run(w->eng[i].w, w->eng[i].items, w->eng[i].res, n, w->err, sizeof w->err)) {
                w->failed = 1;
                break;
            }
            if (run == 0) continue;
            double fl = 0;
            for (int b = 0; b < n; b++) fl += w->eng[i].res[b].flops;
            const int k = w->eng[i].n_warm++;
            w->eng[i].warm_items[k] = n, w->eng[i].warm_flops[k] = fl;
            w->eng[i].warm_secs[k] = (double)(acmd_now_ns() - t0) * 1e-9;
            if (run == 1) w->eng[i].flops_fixed = w->eng[i].res[0].flops - m->flops_learner;
        }
    }
    sched__post(s, NULL, 1);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->job && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        acmd_req *job = w->job;
        acmd_model *m = w->job_model;
        w->job = NULL;
        int stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (job) {
            sched__test_hold(s);
            acmd_worker_run_batch(w, m, job);
            sched__post(s, job, 0);
        } else if (stop) {
            break;
        }
    }
    return NULL;
}

int acmd_workers_start(acmd_server *s, char *err, size_t errlen) {
    s->workers = calloc((size_t)s->n_workers, sizeof *s->workers);
    if (!s->workers) return snprintf(err, errlen, "out of memory"), -1;
    for (int wi = 0; wi < s->n_workers; wi++) {
        acmd_worker *w = &s->workers[wi];
        w->srv = s, w->index = wi;
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        for (int i = 0; i < s->n_models; i++) {
            acmd_model *m = &s->models[i];
            acm_worker_params p = acm_worker_default_params();
            p.max_batch = m->max_batch;
            p.workers = s->n_workers;
            p.blas_threads = (int)s->cfg.blas_threads;
            char e[256];
            w->eng[i].w = acm_worker_new(m->m, p, e, sizeof e);
            if (!w->eng[i].w) return snprintf(err, errlen, "model %s: %s", m->name, e), -1;
            w->eng[i].items = calloc((size_t)m->max_batch, sizeof(acm_item));
            w->eng[i].res = calloc((size_t)m->max_batch, sizeof(acm_result));
            w->eng[i].logits = calloc((size_t)m->max_batch * m->K, sizeof(float));
            w->eng[i].kmap = calloc((size_t)m->max_batch * (m->num_acms ? m->num_acms : 1) * m->T, 1);
            w->eng[i].zeros = calloc((size_t)m->C * m->S * m->S, sizeof(float));
            if (!w->eng[i].items || !w->eng[i].res || !w->eng[i].logits || !w->eng[i].kmap || !w->eng[i].zeros)
                return snprintf(err, errlen, "out of memory"), -1;
        }
    }
    for (int wi = 0; wi < s->n_workers; wi++)
        if (pthread_create(&s->workers[wi].thread, NULL, sched__worker_main, &s->workers[wi]))
            return snprintf(err, errlen, "cannot start worker thread %d", wi), -1;
    return 0;
}

void acmd_workers_stop(acmd_server *s) {
    if (!s->workers) return;
    for (int wi = 0; wi < s->n_workers; wi++) {
        acmd_worker *w = &s->workers[wi];
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_signal(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    for (int wi = 0; wi < s->n_workers; wi++) {
        acmd_worker *w = &s->workers[wi];
        if (w->thread) pthread_join(w->thread, NULL);
        w->thread = 0;
    }
}

void acmd_workers_free(acmd_server *s) {
    if (!s->workers) return;
    for (int wi = 0; wi < s->n_workers; wi++) {
        acmd_worker *w = &s->workers[wi];
        for (int i = 0; i < s->n_models; i++) {
            acm_worker_free(w->eng[i].w);
            free(w->eng[i].items), free(w->eng[i].res), free(w->eng[i].logits), free(w->eng[i].kmap);
            free(w->eng[i].zeros);
        }
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    free(s->workers);
    s->workers = NULL;
}

/* ---- stage 1: decode ---------------------------------------------------------------------------------------------- */

static acm_image_params sched__img_params(const acmd_server *s, const acmd_model *m) {
    acm_image_params p = {.size = m->S, .channels = m->C, .max_pixels = s->cfg.max_image_pixels,
                          .max_decode_bytes = (size_t)s->cfg.max_decode_bytes}; /* background: black (image.h) */
    for (int c = 0; c < m->C && c < 3; c++) p.mean[c] = m->cfg->mean[c], p.std[c] = m->cfg->std[c];
    return p;
}

/* The decoded inputs of n items, counted against --max-buffered-bytes until the engine has run them. */
static float *sched__pixels(acmd_server *s, acmd_req *r, size_t n) {
    const acmd_model *m = r->model;
    const size_t bytes = sizeof(float) * (size_t)m->C * m->S * m->S * n;
    float *p = malloc(bytes);
    if (p) r->mem_decoded = bytes, acmd_mem_add(s, (long long)bytes);
    return p;
}

static void sched__decode_classify(acmd_worker *w, acmd_req *r) {
    const acmd_model *m = r->model;
    const acm_image_params p = sched__img_params(w->srv, m);
    snprintf(r->resp_id, sizeof r->resp_id, "%s", r->id);
    r->n_items = 1;
    r->pixels = sched__pixels(w->srv, r, 1);
    if (!r->pixels) {
        acmd_req_error(r, 500, "out of memory");
        return;
    }
    char e[256];
    int rc = acm_image_to_tensor(r->pixels, r->body, r->len, &p, e, sizeof e);
    if (rc) acmd_req_error(r, rc == ACM_IMAGE_ENOMEM ? 500 : 400, "image: %s", e);
}

static void sched__decode_infer(acmd_worker *w, acmd_req *r) {
    const acmd_model *m = r->model;
    const size_t CSS = (size_t)m->C * m->S * m->S;
    acm_oip_request o;
    acm_oip_limits lim = {.max_elements = (size_t)w->srv->cfg.max_body_bytes};
    char e[512];
    int rc = acm_oip_parse_request_bin(&o, (const char *)r->body, r->len, r->json_len, &lim, e, sizeof e);
    if (rc) {
        acmd_req_error(r, rc == ACM_OIP_ENOMEM ? 500 : 400, "%s", e);
        return;
    }
    snprintf(r->resp_id, sizeof r->resp_id, "%s", o.id[0] ? o.id : r->id);
    r->explain |= o.par.explain;
    r->out_logits = acm_oip_output_requested(&o, "logits"), r->out_label = acm_oip_output_requested(&o, "label");
    r->bin_logits = r->out_logits && acm_oip_output_binary(&o, "logits");
    r->bin_label = r->out_label && acm_oip_output_binary(&o, "label");
    for (int i = 0; i < o.n_outputs; i++)
        if (strcmp(o.outputs[i].name, "logits") && strcmp(o.outputs[i].name, "label")) {
            acmd_req_error(r, 400, "outputs[%d]: unknown output \"%.64s\" (logits, label)", i, o.outputs[i].name);
            goto out;
        }
    const acm_oip_tensor *img = acm_oip_find_input(&o, sched__oip_inputs[0]),
                         *pv = acm_oip_find_input(&o, sched__oip_inputs[1]);
    if (!img && !pv) {
        acmd_req_error(r, 400, "expected an input named 'image' (UINT8 [B,H,W,C]) or 'pixel_values' (FP32 [B,%d,%d,%d])",
                       m->C, m->S, m->S);
        goto out;
    }
    const acm_oip_tensor *t = img ? img : pv;
    if (img && t->dtype != ACM_OIP_UINT8) {
        acmd_req_error(r, 400, "input 'image' must be UINT8, got %s", acm_oip_dtype_name(t->dtype));
        goto out;
    }
    if (!img && t->dtype != ACM_OIP_FP32) {
        acmd_req_error(r, 400, "input 'pixel_values' must be FP32, got %s", acm_oip_dtype_name(t->dtype));
        goto out;
    }
    int B = (int)(t->ndim >= 1 && t->shape[0] <= SCHED__MAX_ITEMS_PER_REQUEST ? t->shape[0] : -1);
    if (B < 1) {
        acmd_req_error(r, 400, "input '%s': the batch dimension must be in 1..%d", t->name, SCHED__MAX_ITEMS_PER_REQUEST);
        goto out;
    }
    if (img) {
        if ((t->ndim != 4 && t->ndim != 3) || (t->ndim == 4 && (t->shape[3] < 1 || t->shape[3] > 4)) ||
            t->shape[1] < 1 || t->shape[2] < 1) {
            acmd_req_error(r, 400, "input 'image' must have shape [B,H,W,C] (C in 1..4) or [B,H,W]");
            goto out;
        }
    } else if (t->ndim != 4 || t->shape[1] != m->C || t->shape[2] != m->S || t->shape[3] != m->S) {
        acmd_req_error(r, 400, "input 'pixel_values' must have shape [B,%d,%d,%d]", m->C, m->S, m->S);
        goto out;
    }
    r->n_items = B;
    r->pixels = sched__pixels(w->srv, r, (size_t)B);
    uint8_t *u8 = img ? malloc(t->count / (size_t)B) : NULL;
    if (!r->pixels || (img && !u8)) {
        free(u8);
        acmd_req_error(r, 500, "out of memory");
        goto out;
    }
    const acm_image_params p = sched__img_params(w->srv, m);
    const size_t per = t->count / (size_t)B;
    for (int b = 0; b < B; b++) {
        if (img) {
            for (size_t i = 0; i < per; i++) u8[i] = (uint8_t)t->data[(size_t)b * per + i];
            int H = (int)t->shape[1], W = (int)t->shape[2], C = t->ndim == 4 ? (int)t->shape[3] : 1;
            if ((rc = acm_image_u8_to_tensor(r->pixels + (size_t)b * CSS, u8, H, W, C, &p, e, sizeof e))) {
                acmd_req_error(r, 400, "input 'image'[%d]: %s", b, e);
                break;
            }
        } else {
            for (size_t i = 0; i < per; i++) r->pixels[(size_t)b * CSS + i] = (float)t->data[(size_t)b * per + i];
        }
    }
    free(u8);
out:
    acm_oip_request_free(&o);
}

/* ---- stage 3: response bodies ------------------------------------------------------------------------------------ */

static json_t *sched__common(const acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    json_t *o = json_object();
    json_object_set_new(o, "budget_requested", acmd_budget_asked(r) ? json_real(r->sla.requested) : json_null());
    char beta[32]; /* the float budget as the decimal it was asked as: 0.3, not 0.300000012 */
    acmd_fmt_float(beta, sizeof beta, r->policy.kind == ACM_POLICY_ARGMAX ? 1.0f : r->policy.beta);
    json_object_set_new(o, "budget_applied", json_real(strtod(beta, NULL)));
    json_object_set_new(o, "budget_realised", json_real(r->realised));
    json_object_set_new(o, "budget_source", json_string(acm_budget_source_name(r->sla.source)));
    json_object_set_new(o, "budget_raised", json_boolean(r->sla.raised));
    json_object_set_new(o, "policy", json_string(acm_policy_name(r->policy.kind)));
    json_object_set_new(o, "flops", json_real(r->flops));
    json_object_set_new(o, "flops_dense", json_real(r->flops_dense));
    json_object_set_new(o, "timing", json_pack("{s:f, s:f, s:f, s:f}", "queue_ms", (double)(r->t_dispatch - r->t_queued) * 1e-6,
                                               "compute_ms", r->compute_s * 1e3, "engine_ms", r->engine_s * 1e3,
                                               "total_ms", (double)(now - r->t_arrive) * 1e-6));
    json_object_set_new(o, "batch_size", json_integer(r->batch_size));
    json_object_set_new(o, "deadline_ms", r->has_deadline ? json_real(r->sched.deadline_ms) : json_null());
    json_object_set_new(o, "predicted_ms", r->predicted_ms >= 0 ? json_real(r->predicted_ms) : json_null());
    json_object_set_new(o, "urgency", json_integer(r->sched.urgency));
    json_object_set_new(o, "model", json_string(m->name));
    json_object_set_new(o, "model_version", json_string(m->version));
    return o;
}

static json_t *sched__kmap(const acmd_model *m, const uint8_t *kmap) {
    json_t *mods = json_array();
    for (int a = 0; a < m->num_acms; a++) {
        const acm_module_info *mi = acm_model_acm(m->m, a);
        json_t *k = json_array();
        for (int t = 0; t < m->T; t++) json_array_append_new(k, json_integer(kmap[(size_t)a * m->T + t]));
        json_array_append_new(mods, json_pack("{s:s, s:i, s:o}", "name", mi->name, "learners", mi->n, "k", k));
    }
    return json_pack("{s:i, s:i, s:o}", "tokens", m->T, "grid", m->cfg->grid, "modules", mods);
}

/* The /classify body, written directly (no jansson tree: this is on every request's path). Keys as docs/API.md. */
static void sched__body_classify(acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    const float *lg = r->logits;
    int K = m->K, best = 0;
    double z = 0;
    for (int k = 1; k < K; k++)
        if (lg[k] > lg[best]) best = k;
    const double mx = lg[best];
    for (int k = 0; k < K; k++) z += exp((double)lg[k] - mx);
    acmd_jw w = {0};
    /* numbers a client set or can check exactly (budgets, deadline, FLOPs) in their shortest exact form (jsonw.h) */
    acmd_jw_raw(&w, "{\"budget_requested\":");
    if (acmd_budget_asked(r)) acmd_jw_num(&w, r->sla.requested);
    else acmd_jw_raw(&w, "null");
    acmd_jw_raw(&w, ",\"budget_applied\":");
    acmd_jw_numf(&w, r->policy.kind == ACM_POLICY_ARGMAX ? 1.0f : r->policy.beta);
    acmd_jw_raw(&w, ",\"budget_realised\":%.9g", r->realised);
    acmd_jw_kstr(&w, "budget_source", acm_budget_source_name(r->sla.source));
    acmd_jw_raw(&w, ",\"budget_raised\":%s", r->sla.raised ? "true" : "false");
    acmd_jw_kstr(&w, "policy", acm_policy_name(r->policy.kind));
    acmd_jw_raw(&w, ",\"flops\":");
    acmd_jw_num(&w, r->flops);
    acmd_jw_raw(&w, ",\"flops_dense\":");
    acmd_jw_num(&w, r->flops_dense);
    acmd_jw_raw(&w, ",\"timing\":{\"queue_ms\":%.6f,\"compute_ms\":%.6f,\"engine_ms\":%.6f,\"total_ms\":%.6f}",
                (double)(r->t_dispatch - r->t_queued) * 1e-6, (double)(now - r->t_dispatch) * 1e-6,
                r->engine_s * 1e3, (double)(now - r->t_arrive) * 1e-6);
    acmd_jw_raw(&w, ",\"batch_size\":%d", r->batch_size);
    acmd_jw_raw(&w, ",\"deadline_ms\":");
    if (r->has_deadline) acmd_jw_num(&w, r->sched.deadline_ms);
    else acmd_jw_raw(&w, "null");
    if (r->predicted_ms >= 0) acmd_jw_raw(&w, ",\"predicted_ms\":%.6f", r->predicted_ms);
    else acmd_jw_raw(&w, ",\"predicted_ms\":null");
    acmd_jw_raw(&w, ",\"urgency\":%d", r->sched.urgency);
    acmd_jw_kstr(&w, "model", m->name);
    acmd_jw_kstr(&w, "model_version", m->version);
    acmd_jw_kstr(&w, "label", m->cfg->labels[best]);
    acmd_jw_raw(&w, ",\"index\":%d,\"confidence\":%.9g,\"top_k\":[", best, 1.0 / z);
    int order[1024], n = K < 1024 ? K : 1024;
    for (int k = 0; k < n; k++) order[k] = k;
    for (int i = 0; i < n && i < 5; i++) { /* partial selection sort: the 5 largest */
        int b = i;
        for (int k = i + 1; k < n; k++)
            if (lg[order[k]] > lg[order[b]]) b = k;
        int t = order[i];
        order[i] = order[b], order[b] = t;
        acmd_jw_raw(&w, "%s{", i ? "," : "");
        acmd_jw_kstr(&w, "label", m->cfg->labels[order[i]]);
        acmd_jw_raw(&w, ",\"index\":%d,\"confidence\":%.9g}", order[i], exp((double)lg[order[i]] - mx) / z);
    }
    acmd_jw_raw(&w, "]");
    acmd_jw_kstr(&w, "id", r->resp_id);
    if (r->explain && r->kmap) {
        json_t *cm = sched__kmap(m, r->kmap);
        char *s = json_dumps(cm, JSON_COMPACT);
        json_decref(cm);
        if (s) acmd_jw_raw(&w, ",\"compute_map\":%s", s);
        else w.oom = 1;
        free(s);
    }
    acmd_jw_raw(&w, "}");
    r->resp_body = acmd_jw_finish(&w, NULL);
}

static void sched__body_infer(acmd_req *r, uint64_t now) {
    const acmd_model *m = r->model;
    json_t *par = sched__common(r, now);
    if (r->explain && r->kmap) {
        json_t *maps = json_array();
        for (int b = 0; b < r->n_items; b++)
            json_array_append_new(maps, sched__kmap(m, r->kmap + (size_t)b * (m->num_acms ? m->num_acms : 1) * m->T));
        json_object_set_new(par, "compute_maps", maps);
    }
    const char **labels = malloc(sizeof(char *) * (size_t)r->n_items);
    if (!labels) {
        json_decref(par);
        return;
    }
    for (int b = 0; b < r->n_items; b++) {
        const float *lg = r->logits + (size_t)b * m->K;
        int best = 0;
        for (int k = 1; k < m->K; k++)
            if (lg[k] > lg[best]) best = k;
        labels[b] = m->cfg->labels[best];
    }
    size_t jl, total;
    r->resp_body = acm_oip_response_bin(m->name, m->version, r->resp_id, par, r->out_logits ? r->logits : NULL,
                                        r->n_items, m->K, r->out_label ? labels : NULL, r->bin_logits, r->bin_label, &jl,
                                        &total);
    free(labels);
    if (r->resp_body) r->resp_len = total, r->json_len = jl;
}

/* ---- the batch ----------------------------------------------------------------------------------------------------- */

typedef struct {
    acmd_req *r;
    int item;
} sched__slot;

void acmd_worker_run_batch(acmd_worker *w, acmd_model *m, acmd_req *batch) {
    const uint64_t t0 = acmd_now_ns();
    const int mi = m->idx, MB = m->max_batch, A = m->num_acms ? m->num_acms : 1;
    /* stage 1: decode. The queue time ends here, when a worker takes the batch up (the hand-over's wake-up included). */
    for (acmd_req *r = batch; r; r = r->next) {
        r->t_dispatch = t0;
        r->status = 0;
        if (r->route == ACMD_ROUTE_CLASSIFY) sched__decode_classify(w, r);
        else sched__decode_infer(w, r);
        if (r->status) continue;
        r->logits = malloc(sizeof(float) * (size_t)r->n_items * m->K);
        r->kmap = r->explain && m->num_acms ? malloc((size_t)r->n_items * A * m->T) : NULL;
        if (!r->logits || (r->explain && m->num_acms && !r->kmap)) acmd_req_error(r, 500, "out of memory");
    }
    /* stage 2: engine calls of at most max_batch items, items of several requests side by side */
    sched__slot slots[1024];
    double b_items = 0, b_flops = 0; /* the cost model's sample: what the engine ran, and its time */
    uint64_t engine_ns = 0;
    acmd_req *r = batch;
    int item = 0;
    for (;;) {
        int n = 0;
        while (r && n < MB && n < 1024) {
            if (r->status || item >= r->n_items) {
                r = r->next, item = 0;
                continue;
            }
            acm_item *it = &w->eng[mi].items[n];
            it->pixels = r->pixels + (size_t)item * m->C * m->S * m->S;
            it->policy = r->policy;
            it->force_k = NULL;
            w->eng[mi].res[n] = (acm_result){.logits = w->eng[mi].logits + (size_t)n * m->K,
                                             .kmap = r->kmap ? w->eng[mi].kmap + (size_t)n * A * m->T : NULL};
            slots[n++] = (sched__slot){r, item++};
        }
        if (!n) break;
        char e[256];
        const uint64_t te = acmd_now_ns();
        int rc = acm_worker_run(w->eng[mi].w, w->eng[mi].items, w->eng[mi].res, n, e, sizeof e);
        engine_ns += acmd_now_ns() - te;
        for (int i = 0; i < n; i++) {
            acmd_req *q = slots[i].r;
            if (rc && rc != ACM_ENUMERIC) { /* ACM_ENUMERIC: only the items with NaN logits failed (checked below) */
                if (!q->status) acmd_req_error(q, 500, "engine: %s", e);
                continue;
            }
            const acm_result *res = &w->eng[mi].res[i];
            b_items += 1, b_flops += res->flops;
            if (q->status) continue;
            int finite = 1;
            for (int k = 0; k < m->K; k++) finite &= isfinite(res->logits[k]) != 0;
            if (!finite) { /* JSON cannot carry NaN or Inf, and a label picked among them means nothing */
                acmd_req_error(q, 500, "engine: item %d gave non-finite logits (NaN or Inf: the computation overflowed "
                                       "float; inputs far outside the model's range do that)", slots[i].item);
                continue;
            }
            memcpy(q->logits + (size_t)slots[i].item * m->K, res->logits, sizeof(float) * m->K);
            if (q->kmap) memcpy(q->kmap + (size_t)slots[i].item * A * m->T, res->kmap, (size_t)A * m->T);
            q->flops += res->flops;
            q->flops_dense += res->flops_dense;
            q->realised += res->budget / q->n_items;
            if (q->batch_size < n) q->batch_size = n;
        }
        slots[0].r->batch_first = 1;
    }
    /* the decoded inputs are spent */
    for (acmd_req *q = batch; q; q = q->next) {
        free(q->pixels);
        q->pixels = NULL;
        acmd_mem_add(w->srv, -(long long)q->mem_decoded);
        q->mem_decoded = 0;
    }
    /* stage 3: bodies. compute time = the whole batch: decode, engine, bodies (the body's own timing says "so far") */
    const uint64_t now = acmd_now_ns();
    for (acmd_req *q = batch; q; q = q->next) {
        q->compute_s = (double)(now - t0) * 1e-9;
        q->engine_s = (double)engine_ns * 1e-9;
        if (q->status) continue;
        if (q->route == ACMD_ROUTE_CLASSIFY) sched__body_classify(q, now), q->json_len = 0;
        else sched__body_infer(q, now);
        if (!q->resp_body) acmd_req_error(q, 500, "out of memory");
        else if (q->route == ACMD_ROUTE_CLASSIFY || !(q->bin_logits || q->bin_label))
            q->status = 200, q->resp_len = strlen(q->resp_body), q->resp_type = "application/json", q->json_len = 0;
        else q->status = 200, q->resp_type = "application/octet-stream"; /* resp_len, json_len: the body writer's */
    }
    const uint64_t done = acmd_now_ns();
    for (acmd_req *q = batch; q; q = q->next) q->compute_s = (double)(done - t0) * 1e-9, q->t_computed = done;
    batch->batch_lead = 1, batch->b_items = b_items, batch->b_flops = b_flops, batch->b_secs = (double)engine_ns * 1e-9;
}
