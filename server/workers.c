/*
 * workers.c — the engine worker threads: start-up (an acm_worker per model, scratch sized for the model's largest
 * batch), warm-up (whose timed batches are the cost model's prior), the hand-over of a batch (I/O thread -> worker:
 * the worker's mutex + condition variable), and the way back (worker -> I/O thread: one locked result queue and
 * uv_async_send, whose callback drains the whole queue: it learns each batch's time, counts, and answers). What a
 * worker does with a batch is batch.c's.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "acmd.h"
#include "cpu/cpu.h"

/* ---- the way back (worker -> I/O thread) -------------------------------------------------------------------------- */

static void workers__post(acmd_server *s, acmd_req *head, int warm) {
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

static void workers__metrics_done(acmd_server *s, acmd_req *r) {
    char l[128] = "";
    acmd_label(l, sizeof l, "model", r->model->name);
    if (r->out.batch_first) acmd_metric_observe(s->metrics, ACMD_M_BATCH_SIZE, l, r->out.batch_size);
    acmd_metric_observe(s->metrics, ACMD_M_QUEUE_DURATION, l, (double)(r->t.dispatch - r->t.queued) * 1e-9);
    if (r->resp.status == 200) {
        acmd_metric_observe(s->metrics, ACMD_M_COMPUTE_DURATION, l, r->out.compute_s);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS, l, r->out.flops);
        acmd_metric_add(s->metrics, ACMD_M_FLOPS_DENSE, l, r->out.flops_dense);
        char b[64] = "";
        acmd_label(b, sizeof b, "source", acm_budget_source_name(r->sla.budget.source));
        acmd_metric_observe(s->metrics, ACMD_M_BUDGET_RATIO, b, acmd_budget_applied(r));
        if (r->route == ACMD_ROUTE_TRANSCRIBE) {
            acmd_metric_add(s->metrics, ACMD_M_ASR_AUDIO_SECONDS, l, r->out.audio_s);
            acmd_metric_add(s->metrics, ACMD_M_ASR_COMPUTE_SECONDS, l, r->out.compute_s);
            acmd_metric_observe(s->metrics, ACMD_M_ASR_BUDGET, l, r->out.realised);
        }
        if (r->http.key[0]) { /* the same sums per key: over the keys they add up to the model's */
            char k[128] = "";
            acmd_label(k, sizeof k, "key", r->http.key);
            acmd_metric_add(s->metrics, ACMD_M_KEY_FLOPS, k, r->out.flops);
            acmd_metric_add(s->metrics, ACMD_M_KEY_FLOPS_DENSE, k, r->out.flops_dense);
            acmd_metric_observe(s->metrics, ACMD_M_KEY_BUDGET, k, r->out.realised);
        }
    }
}

/* Every worker has warmed up: the warm-up batches become each model's cost prior, and the server is ready. */
static void workers__warm(acmd_server *s) {
    int failed = 0;
    for (int i = 0; i < s->n_workers; i++) s->workers[i].warm = 1, failed |= s->workers[i].failed;
    for (int i = 0; i < s->n_models && !failed; i++) {
        acmd_model *m = &s->models[i];
        m->flops_fixed = s->workers[0].eng[i].flops_fixed;
        for (int wi = 0; wi < s->n_workers; wi++)
            for (int k = 0; k < s->workers[wi].eng[i].n_warm; k++)
                acmd_cost_add(&m->cost, s->workers[wi].eng[i].warm_items[k] * m->T, s->workers[wi].eng[i].warm_flops[k],
                              s->workers[wi].eng[i].warm_secs[k], 1);
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

void acmd_workers_on_async(uv_async_t *a) {
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
        s->workers[r->out.worker].busy = 0;
        acmd_model *m = r->model;
        if (r->out.batch_lead && r->out.b_items > 0) /* the batch ran, whoever is still waiting for it */
            acmd_cost_add(&m->cost, r->out.b_items * m->T, r->out.b_flops, r->out.b_secs, 0);
        if (r->route == ACMD_ROUTE_STREAM) { /* a WebSocket stream's job: its partial, and the next job (ws.c) */
            acmd_ws_back(s, r);
            continue;
        }
        if (r->http.orphan) { /* its connection went away (shutdown past the exit timeout; a streamed upload's client) */
            if (r->au.on) acmd_http_orphan_back(s, r);
            else acmd_req_free(s, r);
            continue;
        }
        if (r->au.on && r->au.failed && !r->resp.status) /* its body was refused while the worker held it */
            acmd_req_fail(r, r->au.fail_err, "%s", r->au.fail_msg);
        if (r->au.on && !r->au.job_last && !r->resp.status) { /* a streamed transcription's job: its body goes on */
            r->state = ACMD_REQ_RECEIVING;
            if (r->au.last || r->au.n_pend >= (size_t)m->chunk_samples) acmd_queue_stream(s, r);
            continue;
        }
        if (r->sla.has_deadline && r->resp.status == 200 && acmd_now_ns() > r->sla.t_deadline)
            acmd_queue_miss(s, r, ACMD_MISS_COMPUTE);
        workers__metrics_done(s, r);
        acmd_http_finish(s, r);
    }
    if (!s->ready && !s->draining && warm == s->n_workers) workers__warm(s);
    acmd_queue_dispatch(s);
    acmd_http_kick(s);
}

/* ---- the hand-over (I/O thread -> worker) ------------------------------------------------------------------------- */

void acmd_workers_hand(acmd_worker *w, acmd_model *m, acmd_req *batch, double pred_s, uint64_t now) {
    w->t_start = now;
    w->pred_s = pred_s;
    pthread_mutex_lock(&w->mu);
    w->job = batch;
    w->job_model = m;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    w->busy = 1;
}

/* --test-hold: a worker's warm-up, and then each batch of requests, waits for one byte from the FIFO before it runs,
 * so that tests can hold a worker busy (or the server not ready) for exactly as long as they need: slowness by
 * construction, on any CPU. End-of-file releases everything after it. */
static void workers__test_hold(acmd_server *s) {
    if (s->hold_fd < 0) return;
    char c;
    ssize_t n;
    do n = read(s->hold_fd, &c, 1);
    while (n < 0 && errno == EINTR);
}

/* Warm-up per model: one full batch under the default policy (cold caches, page faults; untimed), then four small
 * timed batches under cap — 1 and 2 items (1 if max_batch is 1), at beta = 1 and at the budget floor — the cost model's
 * prior (tokens and FLOPs both vary) at a few items' cost; the FLOPs outside the learners are a beta = 1 item's FLOPs
 * less every learner's. */
#define ACMD_WARM_MAX 64 /* speech warm-up: streams per batch at most (the full batch's, capped) */
static void workers__warm_up(acmd_worker *w) {
    acmd_server *s = w->srv;
    for (int i = 0; i < s->n_models && !w->failed; i++) {
        acmd_model *m = &s->models[i];
        const float floor_beta = m->beta_floor > 0 ? (float)m->beta_floor : 0.25f;
        for (int run = 0; run < 5 && !w->failed; run++) {
            int n = run == 0 ? m->max_batch : run <= 2 ? 1 : m->max_batch < 2 ? 1 : 2;
            if (m->speech && n > ACMD_WARM_MAX) n = ACMD_WARM_MAX;
            acm_policy pol = m->default_policy;
            if (run) pol = acm_policy_default(), pol.kind = ACM_POLICY_CAP, pol.beta = run % 2 ? 1.0f : floor_beta;
            acm_policy pols[ACMD_WARM_MAX];
            for (int b = 0; b < n; b++) {
                w->eng[i].items[b] = (acm_item){.pixels = w->eng[i].zeros, .policy = pol};
                w->eng[i].res[b] = (acm_result){.logits = w->eng[i].logits + (size_t)b * m->K * (m->speech ? m->T : 1)};
                if (m->speech) { /* one full chunk of silence per stream */
                    acm_stream *st = w->eng[i].streams[b];
                    acm_stream_reset(st);
                    acm_stream_feed(st, w->eng[i].zeros, (size_t)(2 * m->chunk_samples), w->err, sizeof w->err);
                    if (!acm_stream_ready(st)) acm_stream_finish(st);
                    pols[b] = pol;
                }
            }
            const uint64_t t0 = acmd_now_ns();
            const int rc = m->speech ? acm_worker_run_streams(w->eng[i].w, w->eng[i].streams, pols, w->eng[i].res,
                                                              n, w->err, sizeof w->err)
                                     : acm_worker_run(w->eng[i].w, w->eng[i].items, w->eng[i].res, n, w->err, sizeof w->err);
            if (rc) {
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
}

static void *workers__main(void *arg) {
    acmd_worker *w = arg;
    acmd_server *s = w->srv;
    /* --worker-nice: on Linux a thread's nice value is its own (the process's other threads keep theirs); raising it
     * needs no privilege. A failure leaves the worker at the process's priority, which is only slower to yield. */
    if (s->cfg.worker_nice > 0) {
        errno = 0;
        const int base = getpriority(PRIO_PROCESS, (id_t)gettid()); /* the process's, inherited at the thread's start */
        const int want = base + (int)s->cfg.worker_nice > 19 ? 19 : base + (int)s->cfg.worker_nice;
        if (errno || setpriority(PRIO_PROCESS, (id_t)gettid(), want) != 0)
            acmd_log(s, 1, "worker %d: --worker-nice %ld not applied: %s", w->index, s->cfg.worker_nice, strerror(errno));
    }
    workers__test_hold(s);
    workers__warm_up(w);
    workers__post(s, NULL, 1);
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->job && !w->stop) pthread_cond_wait(&w->cv, &w->mu);
        acmd_req *job = w->job;
        acmd_model *m = w->job_model;
        w->job = NULL;
        int stop = w->stop;
        pthread_mutex_unlock(&w->mu);
        if (job) {
            workers__test_hold(s);
            acmd_batch_run(w, m, job);
            workers__post(s, job, 0);
        } else if (stop) {
            break;
        }
    }
    return NULL;
}

/* ---- start and stop ------------------------------------------------------------------------------------------------ */

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
            /* speech: acmd runs chunks only (batch.c), at most one a stream per call */
            if (m->speech) p.max_tokens = m->max_batch * m->cfg->chunk;
            p.workers = s->n_workers;
            p.cpu_threads = (int)s->cfg.blas_threads;
            p.backend = s->cfg.backend;
            char e[256];
            w->eng[i].w = acm_worker_new(m->m, p, e, sizeof e);
            if (!w->eng[i].w) return snprintf(err, errlen, "model %s: %s", m->name, e), -1;
            w->eng[i].items = calloc((size_t)m->max_batch, sizeof(acm_item));
            w->eng[i].res = calloc((size_t)m->max_batch, sizeof(acm_result));
            /* speech: every stream's chunk of T tokens side by side */
            w->eng[i].logits = calloc((size_t)m->max_batch * m->K * (m->speech ? m->T : 1), sizeof(float));
            w->eng[i].kmap = calloc((size_t)m->max_batch * (m->num_acms ? m->num_acms : 1) * m->T, 1);
            w->eng[i].zeros = calloc(m->speech ? (size_t)(2 * m->chunk_samples) : (size_t)m->C * m->S * m->S, sizeof(float));
            if (!w->eng[i].items || !w->eng[i].res || !w->eng[i].logits || !w->eng[i].kmap || !w->eng[i].zeros)
                return snprintf(err, errlen, "out of memory"), -1;
            if (m->speech) {
                w->eng[i].streams = calloc((size_t)m->max_batch, sizeof(acm_stream *));
                if (!w->eng[i].streams) return snprintf(err, errlen, "out of memory"), -1;
                for (int b = 0; b < m->max_batch; b++)
                    if (!(w->eng[i].streams[b] = acmd_transcribe_stream_new(m->m, e, sizeof e)))
                        return snprintf(err, errlen, "model %s: %s", m->name, e), -1;
            }
        }
    }
    for (int wi = 0; wi < s->n_workers; wi++) {
        if (pthread_create(&s->workers[wi].thread, NULL, workers__main, &s->workers[wi]))
            return snprintf(err, errlen, "cannot start worker thread %d", wi), -1;
        char name[16]; /* as top -H, perf and gdb show it; the I/O thread keeps the process's name */
        snprintf(name, sizeof name, "acmd-worker-%d", wi % 100);
        pthread_setname_np(s->workers[wi].thread, name);
    }
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
            if (w->eng[i].streams)
                for (int b = 0; b < s->models[i].max_batch; b++) acm_stream_free(w->eng[i].streams[b]);
            free(w->eng[i].streams);
        }
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    free(s->workers);
    s->workers = NULL;
}
