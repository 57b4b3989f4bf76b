/*
 * bench.c — `acm bench`: a load generator for acmd. Per thread (one by default) libcurl's multi interface driven by a
 * libuv loop (curl_multi_socket_action: libuv watches the sockets libcurl names and runs libcurl's timer), keep-alive
 * connections, one reusable easy handle per slot.
 *
 * Two modes:
 *   closed loop   C slots; each sends its next request the moment its previous answer arrives. Latency is from send.
 *   open loop     Poisson arrivals at rate R (exponential gaps from a seeded RNG), independent of the answers. Each
 *                 request's latency is measured from its *scheduled* send time, so a server (or this client) that
 *                 falls behind cannot hide the backlog: a request that waits for a free slot (at most --max-inflight
 *                 are in flight) or behind a late timer carries that wait in its latency, and the wait itself is
 *                 reported as the schedule lag. libuv timers have millisecond resolution: arrivals due within the
 *                 same millisecond leave together and the lag shows it.
 * The run ends when the duration is over or the count is reached (whichever comes first); answers still outstanding
 * are waited for (each request has --timeout), so every request sent ends either with an HTTP status or a transport
 * error: sent = Σ by status + Σ errors, and the report says so.
 *
 * Threads (--threads T): T independent copies of the above, each with 1/T of the connections, rate and count, merged
 * at the end; shared are only the read-only data set and relaxed atomic counters for the progress line.
 *
 * Targets: POST /v1/models/{m}/transcribe with the WAV files of a directory (--audio DIR: NAME.wav beside its
 * transcript NAME.txt), whose transcripts give the word error rate under load (acmc_wer_counts, stats.c) beside the
 * seconds of audio transcribed per second; or POST /v1/models/{m}/classify with Fashion-MNIST test images (IDX files read by proto/idx.h, PNG-encoded
 * once each by libspng, on first use), whose labels give the accuracy under load; or any GET path
 * (--get /v2/health/live) to measure the HTTP path alone. Per request, drawn from the distributions given (args.c):
 * X-Compute-Budget, X-Compute-Budget-Min, X-Deadline-Ms, Priority: u=N; and X-Compute-Policy when --policy is given. From each 200 the server's budget_applied, budget_realised,
 * flops, flops_dense and the predicted index are read (the /classify JSON body, docs/API.md); from each error status
 * its {"error"} message (first one per status kept for the report).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <spng.h>
#include <uv.h>

#include "acmc.h"
#include "idx.h"

#define BENCH_MAX_STATUS 1000

typedef struct {
    char server[1024], model[128], get_path[512], policy[16], data_dir[1024], audio_dir[1024];
    int concurrency, max_inflight, json, progress, request_start;
    double rate, duration_s, timeout_s;
    long requests, max_idle_s; /* max_idle_s 0: libcurl's default */
    uint64_t seed;
    acmc_dist budget, budget_min, deadline_ms, priority;
} bench_params;

typedef struct {
    double t_sched;
    int image;
    double budget, budget_min, deadline_ms; /* NAN: header not sent */
    int priority;                            /* -1: not sent */
} bench_job;

struct bench_run;

typedef struct bench_req {
    struct bench_run *b;
    CURL *easy;
    struct curl_slist *hdrs;
    acmc_buf resp;
    bench_job job;
    double t_sent;
    struct bench_req *next_free;
} bench_req;

typedef struct {
    uv_poll_t poll; /* first: a uv_handle_t* of the poll is this struct */
    curl_socket_t fd;
    struct bench_run *b;
} bench_sock;

/* What the threads share: read-only during the run, except the atomic progress counters. */
typedef struct {
    bench_params p;
    char url[1600];
    int classify, audio, threads;
    int n_items;  /* images or clips: thread t sends items t, t + T, ... */
    int n_clips;  /* --audio: the WAV files, their bytes and their transcripts (NUL-terminated) */
    uint8_t **clip;
    size_t *clip_len;
    char **clip_ref;
    acm_idx images, labels;
    int n_images, rows, cols;
    uint8_t **png; /* [n_images] PNG of each test image, encoded on first use (bench__png) */
    size_t *png_len;
    _Atomic long sent, done, errors, ok; /* progress line only */
} bench_shared;

/* One thread's run: its own loop, multi handle, slots, RNG and counters; merged into the first at the end. */
typedef struct bench_run {
    bench_shared *sh;
    bench_params p; /* this thread's share: concurrency, rate, requests, max_inflight divided */
    int index;
    pthread_t thread;
    uv_loop_t loop;
    uv_timer_t curl_timer, arrival_timer, progress_timer;
    uv_signal_t sigint;
    CURLM *multi;
    int loop_ok;
    int next_image;
    acmc_rng rng;
    /* slots */
    bench_req *slots;
    int n_slots, inflight;
    bench_req *free_list;
    /* open loop: jobs waiting for a free slot (FIFO ring) */
    bench_job *pend;
    size_t pend_head, pend_n, pend_cap;
    double next_arrival;
    /* state */
    double t_start, t_end, t_last_sched;
    int generating, interrupted, failed;
    char fail_msg[256];
    /* counters */
    long scheduled, sent, done, errors;
    long by_status[BENCH_MAX_STATUS];
    char *status_msg[BENCH_MAX_STATUS];
    long by_curl[CURL_LAST];
    char *curl_msg[CURL_LAST];
    acmc_samples lat_ok, lat_all, lag;
    double sum_budget, sum_realised, sum_flops, sum_flops_dense;
    long n_budget, correct, labelled, dl_total, dl_met;
    double sum_audio_s;        /* --audio: seconds transcribed (the 200s' audio_seconds) */
    long word_errors, ref_words;
    long prog_done;
    double prog_t;
} bench_run;

/* ---- requests ------------------------------------------------------------------------------------------------------- */

static size_t bench__write(char *p, size_t size, size_t nmemb, void *ud) {
    bench_req *q = ud;
    return acmc_buf_append(&q->resp, p, size * nmemb) ? 0 : size * nmemb;
}

static void bench__fail(bench_run *b, const char *msg) {
    if (!b->failed) snprintf(b->fail_msg, sizeof b->fail_msg, "%s", msg);
    b->failed = 1;
    b->generating = 0;
}

static bench_job bench__draw(bench_run *b, double t_sched) {
    const bench_params *p = &b->p;
    bench_job j = {.t_sched = t_sched, .image = -1, .budget = NAN, .budget_min = NAN, .deadline_ms = NAN, .priority = -1};
    if (b->sh->classify || b->sh->audio) {
        j.image = b->next_image; /* thread t sends items t, t + T, t + 2T, ... and starts again at t */
        b->next_image += b->sh->threads;
        if (b->next_image >= b->sh->n_items) b->next_image = b->index;
    }
    if (p->budget.kind) j.budget = acmc_dist_draw(&p->budget, &b->rng);
    if (p->budget_min.kind) j.budget_min = acmc_dist_draw(&p->budget_min, &b->rng);
    if (p->deadline_ms.kind) j.deadline_ms = acmc_dist_draw(&p->deadline_ms, &b->rng);
    if (p->priority.kind) j.priority = (int)acmc_dist_draw(&p->priority, &b->rng);
    b->scheduled++;
    b->t_last_sched = t_sched;
    return j;
}

/* The PNG of test image i, encoded on first use. Thread t only ever sends images t, t + T, t + 2T, ..., so each
 * entry of the shared table is written and read by one thread only. */
static int bench__png(bench_run *b, int i) {
    bench_shared *sh = b->sh;
    if (sh->png[i]) return 0;
    size_t n = (size_t)sh->rows * sh->cols;
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    int e = ctx ? spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1) : SPNG_EMEM;
    struct spng_ihdr ih = {.width = (uint32_t)sh->cols, .height = (uint32_t)sh->rows, .bit_depth = 8,
                           .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
    if (!e) e = spng_set_ihdr(ctx, &ih);
    if (!e) e = spng_encode_image(ctx, sh->images.data + (size_t)i * n, n, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    if (!e) sh->png[i] = spng_get_png_buffer(ctx, &sh->png_len[i], &e);
    spng_ctx_free(ctx);
    return e || !sh->png[i] ? -1 : 0;
}

static bench_req *bench__slot(bench_run *b) {
    bench_req *q = b->free_list;
    if (q) {
        b->free_list = q->next_free;
        return q;
    }
    if (b->n_slots == b->p.max_inflight) return NULL;
    q = &b->slots[b->n_slots];
    q->b = b;
    if (!(q->easy = curl_easy_init())) return NULL;
    b->n_slots++;
    curl_easy_setopt(q->easy, CURLOPT_URL, b->sh->url);
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, bench__write);
    curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->easy, CURLOPT_PROXY, ""); /* no proxy: also spares libcurl reading *_proxy per request */
    curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "acm-bench/" ACMC_VERSION);
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)(b->p.timeout_s * 1000));
    if (b->p.max_idle_s) curl_easy_setopt(q->easy, CURLOPT_MAXAGE_CONN, b->p.max_idle_s);
    if (b->sh->classify || b->sh->audio) curl_easy_setopt(q->easy, CURLOPT_POST, 1L);
    return q;
}

/* Sends job on a free slot; returns -1 when none is free (the caller queues it). */
static int bench__launch(bench_run *b, const bench_job *job) {
    bench_req *q = bench__slot(b);
    if (!q) return -1;
    q->job = *job;
    q->resp.len = 0;
    curl_slist_free_all(q->hdrs);
    q->hdrs = NULL;
    char h[10][600]; /* the Authorization field and X-Request-Start included */
    int n = 0;
    if (b->sh->classify) {
        if (bench__png(b, job->image)) {
            bench__fail(b, "PNG encoding failed");
            q->next_free = b->free_list, b->free_list = q;
            return 0;
        }
        snprintf(h[n++], sizeof h[0], "Content-Type: image/png");
        snprintf(h[n++], sizeof h[0], "Expect:");
        curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, b->sh->png[job->image]);
        curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long)b->sh->png_len[job->image]);
    } else if (b->sh->audio) {
        snprintf(h[n++], sizeof h[0], "Content-Type: audio/wav");
        snprintf(h[n++], sizeof h[0], "Expect:");
        curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, b->sh->clip[job->image]);
        curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long)b->sh->clip_len[job->image]);
    }
    int m = n;
    if (!isnan(job->budget)) snprintf(h[m++], sizeof h[0], "X-Compute-Budget: %.6g", job->budget);
    if (!isnan(job->budget_min)) snprintf(h[m++], sizeof h[0], "X-Compute-Budget-Min: %.6g", job->budget_min);
    if (!isnan(job->deadline_ms)) snprintf(h[m++], sizeof h[0], "X-Deadline-Ms: %.6g", job->deadline_ms);
    if (job->priority >= 0) snprintf(h[m++], sizeof h[0], "Priority: u=%d", job->priority);
    if (b->p.policy[0]) snprintf(h[m++], sizeof h[0], "X-Compute-Policy: %s", b->p.policy);
    if (b->p.request_start) { /* the scheduled send on the wall clock: the server counts the deadline from there too */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        const double wall = (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9 - (acmc_now() - job->t_sched);
        snprintf(h[m++], sizeof h[0], "X-Request-Start: t=%.6f", wall);
    }
    if (acmc_auth_header()) snprintf(h[m++], sizeof h[0], "%s", acmc_auth_header());
    for (int i = 0; i < m; i++) {
        struct curl_slist *t = curl_slist_append(q->hdrs, h[i]);
        if (!t) {
            bench__fail(b, "out of memory");
            q->next_free = b->free_list, b->free_list = q;
            return 0;
        }
        q->hdrs = t;
    }
    curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->hdrs);
    q->t_sent = acmc_now();
    if (b->p.rate > 0 && acmc_samples_add(&b->lag, (q->t_sent - job->t_sched) * 1e3)) bench__fail(b, "out of memory");
    if (curl_multi_add_handle(b->multi, q->easy) != CURLM_OK) {
        bench__fail(b, "curl_multi_add_handle failed");
        q->next_free = b->free_list, b->free_list = q;
        return 0;
    }
    b->inflight++;
    b->sent++;
    atomic_fetch_add_explicit(&b->sh->sent, 1, memory_order_relaxed);
    return 0;
}

static int bench__pend_push(bench_run *b, const bench_job *j) {
    if (b->pend_n == b->pend_cap) {
        size_t cap = b->pend_cap ? b->pend_cap * 2 : 1024;
        bench_job *nj = malloc(cap * sizeof *nj);
        if (!nj) return -1;
        for (size_t i = 0; i < b->pend_n; i++) nj[i] = b->pend[(b->pend_head + i) % b->pend_cap];
        free(b->pend);
        b->pend = nj, b->pend_cap = cap, b->pend_head = 0;
    }
    b->pend[(b->pend_head + b->pend_n++) % b->pend_cap] = *j;
    return 0;
}

/* May another request be scheduled at time t? */
static int bench__more(const bench_run *b, double t) {
    const bench_params *p = &b->p;
    if (!b->generating) return 0;
    if (p->requests && b->scheduled >= p->requests) return 0;
    if (p->duration_s > 0 && t >= b->t_start + p->duration_s) return 0;
    return 1;
}

static void bench__stop_generating(bench_run *b) {
    b->generating = 0;
    uv_timer_stop(&b->arrival_timer);
}

static void bench__maybe_finish(bench_run *b) {
    if (!b->generating && b->inflight == 0 && b->pend_n == 0) {
        b->t_end = acmc_now();
        uv_stop(&b->loop);
    }
}

static void bench__record(bench_run *b, bench_req *q, CURLcode cc) {
    double now = acmc_now(), ms = (now - q->job.t_sched) * 1e3;
    long status = 0;
    b->done++;
    atomic_fetch_add_explicit(&b->sh->done, 1, memory_order_relaxed);
    if (cc != CURLE_OK) {
        b->errors++;
        atomic_fetch_add_explicit(&b->sh->errors, 1, memory_order_relaxed);
        if ((int)cc >= 0 && cc < CURL_LAST) {
            b->by_curl[cc]++;
            if (!b->curl_msg[cc]) b->curl_msg[cc] = strdup(curl_easy_strerror(cc));
        }
    } else {
        curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status < 0 || status >= BENCH_MAX_STATUS) status = 0;
        b->by_status[status]++;
        if (acmc_samples_add(&b->lat_all, ms)) bench__fail(b, "out of memory");
        if (status == 200) {
            atomic_fetch_add_explicit(&b->sh->ok, 1, memory_order_relaxed);
            if (acmc_samples_add(&b->lat_ok, ms)) bench__fail(b, "out of memory");
            json_t *j = (b->sh->classify || b->sh->audio) && q->resp.len ? json_loadb(q->resp.data, q->resp.len, 0, NULL)
                                                                        : NULL;
            if (j) {
                json_t *ba = json_object_get(j, "budget_applied"), *ix = json_object_get(j, "index");
                if (json_is_number(ba)) {
                    b->n_budget++;
                    b->sum_budget += json_number_value(ba);
                    b->sum_realised += json_number_value(json_object_get(j, "budget_realised"));
                    b->sum_flops += json_number_value(json_object_get(j, "flops"));
                    b->sum_flops_dense += json_number_value(json_object_get(j, "flops_dense"));
                }
                json_t *tx = json_object_get(j, "text");
                if (b->sh->audio && json_is_string(tx)) {
                    long e = 0, w = 0;
                    if (acmc_wer_counts(json_string_value(tx), b->sh->clip_ref[q->job.image], &e, &w))
                        bench__fail(b, "out of memory");
                    b->word_errors += e, b->ref_words += w;
                    b->sum_audio_s += json_number_value(json_object_get(j, "audio_seconds"));
                }
                if (b->sh->classify && json_is_integer(ix)) {
                    b->labelled++;
                    b->correct += json_integer_value(ix) == b->sh->labels.data[q->job.image];
                }
                json_decref(j);
            }
        } else if (!b->status_msg[status]) {
            acmc_resp r = {.status = status, .body = q->resp};
            char m[512];
            acmc_server_error(&r, m, sizeof m);
            b->status_msg[status] = strdup(m);
        }
    }
    if (!isnan(q->job.deadline_ms)) {
        b->dl_total++;
        b->dl_met += status == 200 && ms <= q->job.deadline_ms;
    }
}

/* Takes the finished transfers out, records them and sends what follows. New transfers are started at once (a
 * socket_action on the timeout, for which a just-added handle is due) instead of on libcurl's 0 ms timer, which
 * would cost one more loop iteration per request. */
static void bench__check_done(bench_run *b) {
    for (;;) {
        CURLMsg *m;
        int left, launched = 0, running;
        while ((m = curl_multi_info_read(b->multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            bench_req *q;
            CURL *e = m->easy_handle;
            CURLcode cc = m->data.result;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&q);
            bench__record(b, q, cc);
            curl_multi_remove_handle(b->multi, e);
            b->inflight--;
            q->next_free = b->free_list, b->free_list = q;
            if (b->p.rate > 0) {
                if (b->pend_n) {
                    bench_job j = b->pend[b->pend_head];
                    b->pend_head = (b->pend_head + 1) % b->pend_cap, b->pend_n--;
                    bench__launch(b, &j);
                    launched++;
                }
            } else if (bench__more(b, acmc_now())) {
                bench_job j = bench__draw(b, acmc_now());
                bench__launch(b, &j);
                launched++;
            } else if (b->generating) bench__stop_generating(b);
        }
        if (!launched) break;
        curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    bench__maybe_finish(b);
}

/* ---- libuv <-> libcurl ---------------------------------------------------------------------------------------------- */

static void bench__on_poll(uv_poll_t *h, int status, int events) {
    bench_sock *s = (bench_sock *)h;
    int flags = 0, running;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    bench_run *b = s->b;
    curl_multi_socket_action(b->multi, s->fd, flags, &running);
    bench__check_done(b);
}

static void bench__free_handle(uv_handle_t *h) {
    if (h->type == UV_POLL) free(h); /* a bench_sock: the poll is its first member */
}

static void bench__close_walk(uv_handle_t *h, void *arg) {
    if (!uv_is_closing(h)) uv_close(h, bench__free_handle);
}

static int bench__on_socket(CURL *e, curl_socket_t fd, int action, void *userp, void *socketp) {
    bench_run *b = userp;
    bench_sock *s = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (s) {
            uv_poll_stop(&s->poll);
            curl_multi_assign(b->multi, fd, NULL);
            uv_close((uv_handle_t *)&s->poll, bench__free_handle);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s || uv_poll_init_socket(&b->loop, &s->poll, fd)) {
            free(s);
            bench__fail(b, "cannot watch a socket");
            return -1;
        }
        s->fd = fd, s->b = b;
        curl_multi_assign(b->multi, fd, s);
    }
    int ev = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT) ev |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT) ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, bench__on_poll);
    return 0;
}

static void bench__on_curl_timer(uv_timer_t *t) {
    bench_run *b = t->data;
    int running;
    curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    bench__check_done(b);
}

static int bench__on_timer_change(CURLM *m, long timeout_ms, void *userp) {
    bench_run *b = userp;
    if (timeout_ms < 0) uv_timer_stop(&b->curl_timer);
    else uv_timer_start(&b->curl_timer, bench__on_curl_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- open loop arrivals, progress, ^C ------------------------------------------------------------------------------- */

static double bench__gap(bench_run *b) { return -log1p(-acmc_rng_uniform(&b->rng)) / b->p.rate; }

static void bench__on_arrival(uv_timer_t *t) {
    bench_run *b = t->data;
    double now = acmc_now();
    while (b->next_arrival <= now && bench__more(b, b->next_arrival)) {
        bench_job j = bench__draw(b, b->next_arrival);
        if (bench__launch(b, &j) && bench__pend_push(b, &j)) bench__fail(b, "out of memory");
        b->next_arrival += bench__gap(b);
    }
    if (!bench__more(b, b->next_arrival)) {
        bench__stop_generating(b);
        bench__maybe_finish(b);
        return;
    }
    double wait_ms = ceil((b->next_arrival - acmc_now()) * 1e3);
    uv_timer_start(&b->arrival_timer, bench__on_arrival, wait_ms > 0 ? (uint64_t)wait_ms : 0, 0);
}

/* Thread 0's timer prints the totals of all threads. */
static void bench__on_progress(uv_timer_t *t) {
    bench_run *b = t->data;
    bench_shared *sh = b->sh;
    double now = acmc_now();
    long sent = atomic_load_explicit(&sh->sent, memory_order_relaxed), done = atomic_load_explicit(&sh->done, memory_order_relaxed),
         errors = atomic_load_explicit(&sh->errors, memory_order_relaxed), ok = atomic_load_explicit(&sh->ok, memory_order_relaxed);
    double rps = (double)(done - b->prog_done) / (now - b->prog_t);
    b->prog_done = done, b->prog_t = now;
    int tty = isatty(STDERR_FILENO);
    fprintf(stderr, "%sacm bench: %5.1f s  sent %ld  answered %ld (200: %ld)  errors %ld  in flight %ld  %.0f req/s%s",
            tty ? "\r" : "", now - b->t_start, sent, done - errors, ok, errors, sent - done, rps, tty ? "\033[K" : "\n");
    fflush(stderr);
}

static void bench__on_sigint(uv_signal_t *s, int sig) {
    bench_run *b = s->data;
    b->interrupted = 1;
    bench__stop_generating(b);
    uv_signal_stop(s);
    bench__maybe_finish(b);
}

/* ---- setup ------------------------------------------------------------------------------------------------------------ */

static int bench__load_data(bench_shared *sh, int num_classes, char *err, size_t errlen) {
    char path[1200];
    uint8_t *buf;
    size_t len;
    const char *names[2] = {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
    acm_idx *dst[2] = {&sh->images, &sh->labels};
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof path, "%s/%s", sh->p.data_dir, names[k]);
        int rc = acmc_read_file(path, &buf, &len, (size_t)1 << 30, err, errlen);
        if (rc) return rc;
        rc = acm_idx_parse(dst[k], buf, len, k == 0 ? 3 : 1, path, err, errlen);
        free(buf);
        if (rc) return rc == ACM_IDX_ENOMEM ? ACMC_EXIT_FAIL : ACMC_EXIT_INPUT;
    }
    if (acm_idx_check_pair(&sh->images, &sh->labels, 0, 0, num_classes, sh->p.data_dir, err, errlen))
        return ACMC_EXIT_INPUT;
    sh->n_images = (int)sh->images.dims[0], sh->rows = (int)sh->images.dims[1], sh->cols = (int)sh->images.dims[2];
    if (sh->n_images < 1) {
        snprintf(err, errlen, "%.900s: no test images", sh->p.data_dir);
        return ACMC_EXIT_INPUT;
    }
    sh->png = calloc((size_t)sh->n_images, sizeof *sh->png);
    sh->png_len = calloc((size_t)sh->n_images, sizeof *sh->png_len);
    if (!sh->png || !sh->png_len) {
        snprintf(err, errlen, "out of memory");
        return ACMC_EXIT_FAIL;
    }
    return 0;
}

static int bench__wav_name(const struct dirent *d) {
    const size_t n = strlen(d->d_name);
    return n > 4 && strcmp(d->d_name + n - 4, ".wav") == 0;
}

/* --audio DIR: every NAME.wav (in name order) with its transcript NAME.txt, which must be there. */
static int bench__load_audio(bench_shared *sh, char *err, size_t errlen) {
    struct dirent **names = NULL;
    const int n = scandir(sh->p.audio_dir, &names, bench__wav_name, alphasort);
    if (n < 0) {
        snprintf(err, errlen, "--audio %.900s: %s", sh->p.audio_dir, strerror(errno));
        return ACMC_EXIT_INPUT;
    }
    int rc = 0;
    sh->clip = calloc((size_t)n + 1, sizeof *sh->clip);
    sh->clip_len = calloc((size_t)n + 1, sizeof *sh->clip_len);
    sh->clip_ref = calloc((size_t)n + 1, sizeof *sh->clip_ref);
    if (!sh->clip || !sh->clip_len || !sh->clip_ref) snprintf(err, errlen, "out of memory"), rc = ACMC_EXIT_FAIL;
    if (!rc && n == 0) snprintf(err, errlen, "--audio %.900s: no .wav files", sh->p.audio_dir), rc = ACMC_EXIT_INPUT;
    for (int i = 0; i < n && !rc; i++) {
        char path[2200];
        snprintf(path, sizeof path, "%s/%s", sh->p.audio_dir, names[i]->d_name);
        rc = acmc_read_file(path, &sh->clip[i], &sh->clip_len[i], (size_t)1 << 30, err, errlen);
        if (rc) break;
        sh->n_clips = i + 1;
        snprintf(path + strlen(path) - 4, 5, ".txt");
        uint8_t *t;
        size_t tl;
        if ((rc = acmc_read_file(path, &t, &tl, (size_t)1 << 20, err, errlen))) {
            snprintf(err, errlen, "%.2100s: cannot read the transcript of %s (each NAME.wav needs its NAME.txt)", path,
                     names[i]->d_name);
            break;
        }
        char *ref = malloc(tl + 1);
        if (!ref) {
            free(t);
            snprintf(err, errlen, "out of memory"), rc = ACMC_EXIT_FAIL;
            break;
        }
        memcpy(ref, t, tl), ref[tl] = 0;
        free(t);
        sh->clip_ref[i] = ref;
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

/* Checks that the server answers (and, for classify, that the model exists: its label count checks the data set). */
static int bench__preflight(bench_shared *sh, int *num_classes, char *err, size_t errlen) {
    char url[1700];
    const bench_params *p = &sh->p;
    if (sh->classify || sh->audio) snprintf(url, sizeof url, "%s/v2/models/%s", p->server, p->model);
    else snprintf(url, sizeof url, "%s%s", p->server, p->get_path);
    acmc_resp r;
    int rc = acmc_http(url, NULL, NULL, 0, NULL, p->timeout_s, &r, err, errlen);
    if (rc) return rc;
    if (sh->audio && r.status != 200) {
        char se[600];
        acmc_server_error(&r, se, sizeof se);
        snprintf(err, errlen, "model %s: the server answered %s", p->model, se);
        rc = ACMC_EXIT_SERVER;
    } else if (sh->classify) {
        json_t *j = r.status == 200 ? json_loadb(r.body.data, r.body.len, 0, NULL) : NULL;
        json_t *labels = json_object_get(j, "labels");
        if (r.status != 200) {
            char se[600];
            acmc_server_error(&r, se, sizeof se);
            snprintf(err, errlen, "model %s: the server answered %s", p->model, se);
            rc = ACMC_EXIT_SERVER;
        } else if (!json_is_array(labels) || json_array_size(labels) < 1) {
            snprintf(err, errlen, "model %s: the metadata has no labels", p->model);
            rc = ACMC_EXIT_SERVER;
        } else *num_classes = (int)json_array_size(labels);
        json_decref(j);
    }
    acmc_resp_free(&r);
    return rc;
}

/* ---- report ----------------------------------------------------------------------------------------------------------- */

static json_t *bench__pcts(acmc_samples *s) {
    if (!s->n) return json_null();
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "mean", acmc_samples_mean(s), "p50",
                     acmc_samples_quantile(s, 0.5), "p90", acmc_samples_quantile(s, 0.9), "p99",
                     acmc_samples_quantile(s, 0.99), "p99.9", acmc_samples_quantile(s, 0.999), "max",
                     acmc_samples_max(s), "n", (json_int_t)s->n);
}

static const char *bench__curl_key(int cc) {
    switch (cc) {
    case CURLE_COULDNT_CONNECT: return "couldnt_connect";
    case CURLE_COULDNT_RESOLVE_HOST: return "couldnt_resolve_host";
    case CURLE_OPERATION_TIMEDOUT: return "timeout";
    case CURLE_GOT_NOTHING: return "empty_reply";
    case CURLE_SEND_ERROR: return "send_error";
    case CURLE_RECV_ERROR: return "recv_error";
    case CURLE_PARTIAL_FILE: return "partial_body";
    default: return NULL;
    }
}

/* b: the threads' runs merged (bench__merge); ru0, ru1: the process's CPU times around the run. */
static json_t *bench__report(const bench_shared *sh, bench_run *b, const struct rusage *ru0, const struct rusage *ru1) {
    const bench_params *p = &sh->p;
    double el = b->t_end - b->t_start;
    double cpu = (double)(ru1->ru_utime.tv_sec - ru0->ru_utime.tv_sec) +
                 (double)(ru1->ru_utime.tv_usec - ru0->ru_utime.tv_usec) * 1e-6;
    double sys = (double)(ru1->ru_stime.tv_sec - ru0->ru_stime.tv_sec) +
                 (double)(ru1->ru_stime.tv_usec - ru0->ru_stime.tv_usec) * 1e-6;
    json_t *st = json_object(), *er = json_object(), *msgs = json_object();
    long answered = 0;
    char k[64];
    for (int s = 0; s < BENCH_MAX_STATUS; s++)
        if (b->by_status[s]) {
            snprintf(k, sizeof k, "%d", s);
            json_object_set_new(st, k, json_integer(b->by_status[s]));
            if (b->status_msg[s]) json_object_set_new(msgs, k, json_string(b->status_msg[s]));
            answered += b->by_status[s];
        }
    for (int c = 0; c < CURL_LAST; c++)
        if (b->by_curl[c]) {
            const char *key = bench__curl_key(c);
            if (!key) snprintf(k, sizeof k, "curl_%d", c), key = k;
            json_object_set_new(er, key, json_integer(b->by_curl[c]));
            json_object_set_new(msgs, key, json_string(b->curl_msg[c] ? b->curl_msg[c] : ""));
        }
    char d[4][256];
    acmc_dist_format(&p->budget, d[0], sizeof d[0]);
    acmc_dist_format(&p->budget_min, d[1], sizeof d[1]);
    acmc_dist_format(&p->deadline_ms, d[2], sizeof d[2]);
    acmc_dist_format(&p->priority, d[3], sizeof d[3]);
    json_t *o = json_object();
    json_object_set_new(o, "url", json_string(b->sh->url));
    json_object_set_new(o, "method", json_string(b->sh->classify || b->sh->audio ? "POST" : "GET"));
    json_object_set_new(o, "mode", json_string(p->rate > 0 ? "open" : "closed"));
    json_object_set_new(o, "threads", json_integer(sh->threads));
    if (p->rate > 0) json_object_set_new(o, "rate", json_real(p->rate));
    else json_object_set_new(o, "concurrency", json_integer(p->concurrency));
    json_object_set_new(o, "duration_limit_s", p->duration_s > 0 ? json_real(p->duration_s) : json_null());
    json_object_set_new(o, "request_limit", p->requests ? json_integer(p->requests) : json_null());
    json_object_set_new(o, "request_headers", json_pack("{s:s, s:s, s:s, s:s, s:s, s:b}", "budget", d[0], "budget_min",
                                                        d[1], "deadline_ms", d[2], "priority", d[3], "policy",
                                                        p->policy[0] ? p->policy : "none", "request_start",
                                                        p->request_start));
    json_object_set_new(o, "interrupted", json_boolean(b->interrupted));
    json_object_set_new(o, "elapsed_s", json_real(el));
    json_object_set_new(o, "send_window_s", json_real(b->t_last_sched - b->t_start));
    json_object_set_new(o, "sent", json_integer(b->sent));
    json_object_set_new(o, "answered", json_integer(answered));
    json_object_set_new(o, "errors", json_integer(b->errors));
    json_object_set_new(o, "accounted", json_boolean(b->sent == answered + b->errors));
    json_object_set_new(o, "by_status", st);
    json_object_set_new(o, "errors_by_kind", er);
    json_object_set_new(o, "messages", msgs);
    json_object_set_new(o, "sent_per_s", json_real(el > 0 ? b->sent / el : 0));
    json_object_set_new(o, "throughput_rps", json_real(el > 0 ? answered / el : 0));
    json_object_set_new(o, "ok_rps", json_real(el > 0 ? b->by_status[200] / el : 0));
    json_object_set_new(o, "latency_ms", bench__pcts(&b->lat_ok));
    json_object_set_new(o, "latency_all_ms", bench__pcts(&b->lat_all));
    json_object_set_new(o, "schedule_lag_ms", p->rate > 0 ? bench__pcts(&b->lag) : json_null());
    json_object_set_new(o, "deadline",
                        b->dl_total ? json_pack("{s:I, s:I, s:f}", "requests", (json_int_t)b->dl_total, "met",
                                                (json_int_t)b->dl_met, "attainment", (double)b->dl_met / b->dl_total)
                                    : json_null());
    if (b->sh->audio)
        json_object_set_new(o, "audio", json_pack("{s:i, s:f, s:f, s:I, s:I, s:o}", "files", b->sh->n_clips, "seconds",
                                                  b->sum_audio_s, "seconds_per_s", el > 0 ? b->sum_audio_s / el : 0,
                                                  "word_errors", (json_int_t)b->word_errors, "ref_words",
                                                  (json_int_t)b->ref_words, "wer", b->ref_words ?
                                                  json_real((double)b->word_errors / b->ref_words) : json_null()));
    if (b->sh->classify || b->sh->audio) {
        json_object_set_new(o, "budget_applied_mean", b->n_budget ? json_real(b->sum_budget / b->n_budget) : json_null());
        json_object_set_new(o, "budget_realised_mean", b->n_budget ? json_real(b->sum_realised / b->n_budget) : json_null());
        json_object_set_new(o, "flops_per_s", json_real(el > 0 ? b->sum_flops / el : 0));
        json_object_set_new(o, "flops_dense_per_s", json_real(el > 0 ? b->sum_flops_dense / el : 0));
        json_object_set_new(o, "flops_fraction", b->sum_flops_dense > 0 ? json_real(b->sum_flops / b->sum_flops_dense) : json_null());
        if (b->sh->classify)
            json_object_set_new(o, "accuracy",
                            json_pack("{s:I, s:I, s:o}", "correct", (json_int_t)b->correct, "total", (json_int_t)b->labelled,
                                      "accuracy", b->labelled ? json_real((double)b->correct / b->labelled) : json_null()));
    }
    json_object_set_new(o, "client_cpu", json_pack("{s:f, s:f, s:f}", "user_s", cpu, "sys_s", sys, "share",
                                                   el > 0 ? (cpu + sys) / el : 0));
    return o;
}

static void bench__print(json_t *o) {
    json_t *x;
    const char *key;
    printf("acm bench: %s %s, %s loop", json_string_value(json_object_get(o, "method")),
           json_string_value(json_object_get(o, "url")), json_string_value(json_object_get(o, "mode")));
    if ((x = json_object_get(o, "rate"))) printf(" at %.1f req/s (Poisson)", json_number_value(x));
    else printf(", concurrency %lld", (long long)json_integer_value(json_object_get(o, "concurrency")));
    printf("%s\n", json_is_true(json_object_get(o, "interrupted")) ? " (interrupted)" : "");
    long long sent = json_integer_value(json_object_get(o, "sent")),
              ans = json_integer_value(json_object_get(o, "answered")),
              err = json_integer_value(json_object_get(o, "errors"));
    printf("  requests   sent %lld = answered %lld + errors %lld%s in %.2f s\n", sent, ans, err,
           json_is_true(json_object_get(o, "accounted")) ? "" : " (NOT ACCOUNTED)",
           json_number_value(json_object_get(o, "elapsed_s")));
    printf("  statuses  ");
    json_object_foreach(json_object_get(o, "by_status"), key, x) printf(" %s: %lld", key, (long long)json_integer_value(x));
    json_object_foreach(json_object_get(o, "errors_by_kind"), key, x) printf(" %s: %lld", key, (long long)json_integer_value(x));
    printf("\n");
    json_object_foreach(json_object_get(o, "messages"), key, x) printf("    %s: %s\n", key, json_string_value(x));
    printf("  throughput %.1f answers/s, %.1f ok/s (sent %.1f/s)\n", json_number_value(json_object_get(o, "throughput_rps")),
           json_number_value(json_object_get(o, "ok_rps")), json_number_value(json_object_get(o, "sent_per_s")));
    const char *lat[3] = {"latency_ms", "latency_all_ms", "schedule_lag_ms"};
    const char *lab[3] = {"latency of 200s", "latency, all  ", "schedule lag  "};
    for (int i = 0; i < 3; i++) {
        json_t *l = json_object_get(o, lat[i]);
        if (!json_is_object(l)) continue;
        printf("  %s mean %.3f  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f ms\n", lab[i],
               json_number_value(json_object_get(l, "mean")), json_number_value(json_object_get(l, "p50")),
               json_number_value(json_object_get(l, "p90")), json_number_value(json_object_get(l, "p99")),
               json_number_value(json_object_get(l, "p99.9")), json_number_value(json_object_get(l, "max")));
    }
    if (json_is_object(x = json_object_get(o, "deadline")))
        printf("  deadlines  %lld of %lld met (200 within the deadline, from the scheduled send): %.2f%%\n",
               (long long)json_integer_value(json_object_get(x, "met")),
               (long long)json_integer_value(json_object_get(x, "requests")),
               100 * json_number_value(json_object_get(x, "attainment")));
    if ((x = json_object_get(o, "audio")))
        printf("  audio      %.1f s transcribed from %lld files: %.2f s of audio per second; WER %.2f%% (%lld errors in "
               "%lld reference words)\n", json_number_value(json_object_get(x, "seconds")),
               (long long)json_integer_value(json_object_get(x, "files")), json_number_value(json_object_get(x, "seconds_per_s")),
               100 * json_number_value(json_object_get(x, "wer")), (long long)json_integer_value(json_object_get(x, "word_errors")),
               (long long)json_integer_value(json_object_get(x, "ref_words")));
    if ((x = json_object_get(o, "budget_applied_mean"))) {
        json_t *bm = x;
        x = json_object_get(o, "accuracy");
        if (json_is_number(bm))
            printf("  budget     applied %.3f, realised %.3f (means over 200s); FLOPs %.4g/s executed, %.4g/s dense (%.1f%%)\n",
                   json_number_value(bm), json_number_value(json_object_get(o, "budget_realised_mean")),
                   json_number_value(json_object_get(o, "flops_per_s")),
                   json_number_value(json_object_get(o, "flops_dense_per_s")),
                   100 * json_number_value(json_object_get(o, "flops_fraction")));
        if (x && json_is_number(json_object_get(x, "accuracy")))
            printf("  accuracy   %.2f%% (%lld of %lld answered correctly)\n", 100 * json_number_value(json_object_get(x, "accuracy")),
                   (long long)json_integer_value(json_object_get(x, "correct")),
                   (long long)json_integer_value(json_object_get(x, "total")));
    }
    x = json_object_get(o, "client_cpu");
    printf("  client CPU %.2f s user + %.2f s system = %.0f%% of one core\n", json_number_value(json_object_get(x, "user_s")),
           json_number_value(json_object_get(x, "sys_s")), 100 * json_number_value(json_object_get(x, "share")));
}

/* ---- run ---------------------------------------------------------------------------------------------------------- */

/* One thread: its own loop and multi handle, run until its share is done; torn down here, counters kept. */
static void *bench__thread(void *arg) {
    bench_run *b = arg;
    const bench_params *p = &b->p;
    if (!(b->slots = calloc((size_t)p->max_inflight, sizeof *b->slots)) || uv_loop_init(&b->loop)) {
        bench__fail(b, "out of memory");
        return NULL;
    }
    b->loop_ok = 1;
    if (!(b->multi = curl_multi_init())) {
        bench__fail(b, "cannot start libcurl's multi interface");
        goto out;
    }
    uv_timer_init(&b->loop, &b->curl_timer);
    uv_timer_init(&b->loop, &b->arrival_timer);
    uv_timer_init(&b->loop, &b->progress_timer);
    uv_signal_init(&b->loop, &b->sigint);
    b->curl_timer.data = b->arrival_timer.data = b->progress_timer.data = b->sigint.data = b;
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETFUNCTION, bench__on_socket);
    curl_multi_setopt(b->multi, CURLMOPT_SOCKETDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERFUNCTION, bench__on_timer_change);
    curl_multi_setopt(b->multi, CURLMOPT_TIMERDATA, b);
    curl_multi_setopt(b->multi, CURLMOPT_MAXCONNECTS, (long)p->max_inflight); /* keep every connection alive */
    uv_signal_start(&b->sigint, bench__on_sigint, SIGINT);
    if (p->progress && b->index == 0) uv_timer_start(&b->progress_timer, bench__on_progress, 1000, 1000);
    b->generating = 1;
    b->t_start = b->prog_t = b->t_last_sched = acmc_now();
    if (p->rate > 0) {
        b->next_arrival = b->t_start + bench__gap(b);
        bench__on_arrival(&b->arrival_timer);
    } else {
        for (int i = 0; i < p->concurrency && bench__more(b, acmc_now()); i++) {
            bench_job j = bench__draw(b, acmc_now());
            bench__launch(b, &j);
        }
        if (!bench__more(b, acmc_now())) bench__stop_generating(b);
        int running;
        curl_multi_socket_action(b->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        bench__check_done(b);
    }
    bench__maybe_finish(b);
    if (b->generating || b->inflight || b->pend_n) uv_run(&b->loop, UV_RUN_DEFAULT);
    if (!b->t_end) b->t_end = acmc_now();
out:
    /* teardown: easy handles out of the multi, the multi (its sockets' REMOVE callbacks close their polls), then
     * every handle still open closed and the loop run until the close callbacks are done */
    for (int i = 0; i < b->n_slots; i++) {
        if (b->multi) curl_multi_remove_handle(b->multi, b->slots[i].easy);
        curl_easy_cleanup(b->slots[i].easy);
        curl_slist_free_all(b->slots[i].hdrs);
        acmc_buf_free(&b->slots[i].resp);
    }
    if (b->multi) curl_multi_cleanup(b->multi);
    b->multi = NULL;
    uv_walk(&b->loop, bench__close_walk, NULL);
    uv_run(&b->loop, UV_RUN_DEFAULT);
    uv_loop_close(&b->loop);
    return NULL;
}

/* Thread t's share of n: n / T, plus one for the first n % T threads. */
static long bench__share(long n, int t, int T) { return n / T + (t < n % T); }

/* Adds run x into b (counters, samples, messages, times) and frees what x owned. */
static void bench__merge(bench_run *b, bench_run *x) {
    b->scheduled += x->scheduled, b->sent += x->sent, b->done += x->done, b->errors += x->errors;
    for (int s = 0; s < BENCH_MAX_STATUS; s++) {
        b->by_status[s] += x->by_status[s];
        if (!b->status_msg[s]) b->status_msg[s] = x->status_msg[s], x->status_msg[s] = NULL;
    }
    for (int c = 0; c < CURL_LAST; c++) {
        b->by_curl[c] += x->by_curl[c];
        if (!b->curl_msg[c]) b->curl_msg[c] = x->curl_msg[c], x->curl_msg[c] = NULL;
    }
    acmc_samples *from[3] = {&x->lat_ok, &x->lat_all, &x->lag}, *to[3] = {&b->lat_ok, &b->lat_all, &b->lag};
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < from[k]->n; i++)
            if (acmc_samples_add(to[k], from[k]->v[i])) bench__fail(b, "out of memory");
    b->sum_budget += x->sum_budget, b->sum_realised += x->sum_realised;
    b->sum_flops += x->sum_flops, b->sum_flops_dense += x->sum_flops_dense;
    b->n_budget += x->n_budget, b->correct += x->correct, b->labelled += x->labelled;
    b->dl_total += x->dl_total, b->dl_met += x->dl_met;
    b->sum_audio_s += x->sum_audio_s, b->word_errors += x->word_errors, b->ref_words += x->ref_words;
    if (x->t_start < b->t_start) b->t_start = x->t_start;
    if (x->t_end > b->t_end) b->t_end = x->t_end;
    if (x->t_last_sched > b->t_last_sched) b->t_last_sched = x->t_last_sched;
    b->interrupted |= x->interrupted;
    if (x->failed && !b->failed) bench__fail(b, x->fail_msg);
}

static void bench__run_free(bench_run *b) {
    free(b->slots), free(b->pend);
    for (int s = 0; s < BENCH_MAX_STATUS; s++) free(b->status_msg[s]);
    for (int c = 0; c < CURL_LAST; c++) free(b->curl_msg[c]);
    acmc_samples_free(&b->lat_ok), acmc_samples_free(&b->lat_all), acmc_samples_free(&b->lag);
}

static int bench__run(const bench_params *p, int threads, char *err, size_t errlen) {
    bench_shared *sh = calloc(1, sizeof *sh);
    bench_run *runs = NULL;
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return ACMC_EXIT_FAIL;
    }
    sh->p = *p;
    sh->audio = p->audio_dir[0] != 0;
    sh->classify = !p->get_path[0] && !sh->audio;
    if (sh->audio) snprintf(sh->url, sizeof sh->url, "%s/v1/models/%s/transcribe", p->server, p->model);
    else if (sh->classify) snprintf(sh->url, sizeof sh->url, "%s/v1/models/%s/classify", p->server, p->model);
    else snprintf(sh->url, sizeof sh->url, "%s%s", p->server, p->get_path);
    /* no thread without work: at most one per connection (closed loop), per in-flight slot, per request */
    long cap = p->rate > 0 ? p->max_inflight : p->concurrency;
    if (p->requests && p->requests < cap) cap = p->requests;
    sh->threads = threads < cap ? threads : (int)cap;
    int num_classes = 0, rc = bench__preflight(sh, &num_classes, err, errlen);
    if (!rc && sh->classify) rc = bench__load_data(sh, num_classes, err, errlen);
    if (!rc && sh->audio) rc = bench__load_audio(sh, err, errlen);
    sh->n_items = sh->audio ? sh->n_clips : sh->n_images;
    if (!rc && !(runs = calloc((size_t)sh->threads, sizeof *runs))) {
        snprintf(err, errlen, "out of memory");
        rc = ACMC_EXIT_FAIL;
    }
    if (!rc) {
        struct rusage ru0, ru1;
        const int T = sh->threads;
        for (int t = 0; t < T; t++) {
            bench_run *b = &runs[t];
            b->sh = sh, b->index = t, b->p = *p;
            b->p.concurrency = (int)bench__share(p->concurrency, t, T);
            b->p.max_inflight = (int)(p->rate > 0 ? bench__share(p->max_inflight, t, T) : b->p.concurrency);
            b->p.requests = p->requests ? bench__share(p->requests, t, T) : 0;
            b->p.rate = p->rate / T; /* T Poisson streams at R/T add up to one at R */
            b->next_image = t;
            acmc_rng_seed(&b->rng, p->seed * 0x9e3779b97f4a7c15ull + (uint64_t)t);
        }
        getrusage(RUSAGE_SELF, &ru0);
        int started = 0;
        for (; started < T; started++)
            if (pthread_create(&runs[started].thread, NULL, bench__thread, &runs[started])) break;
        for (int t = 0; t < started; t++) pthread_join(runs[t].thread, NULL);
        getrusage(RUSAGE_SELF, &ru1);
        if (p->progress && isatty(STDERR_FILENO)) fprintf(stderr, "\r\033[K");
        for (int t = 1; t < started; t++) bench__merge(&runs[0], &runs[t]);
        if (started < T) bench__fail(&runs[0], "cannot start a thread");
        if (runs[0].failed) {
            snprintf(err, errlen, "%s", runs[0].fail_msg);
            rc = ACMC_EXIT_FAIL;
        } else {
            json_t *o = bench__report(sh, &runs[0], &ru0, &ru1);
            if (p->json) {
                json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(9));
                putchar('\n');
            } else bench__print(o);
            fflush(stdout);
            json_decref(o);
        }
    }
    for (int t = 0; runs && t < sh->threads; t++) bench__run_free(&runs[t]);
    free(runs);
    for (int i = 0; i < sh->n_images && sh->png; i++) free(sh->png[i]);
    free(sh->png), free(sh->png_len);
    for (int i = 0; i < sh->n_clips; i++) free(sh->clip[i]), free(sh->clip_ref[i]);
    free(sh->clip), free(sh->clip_len), free(sh->clip_ref);
    acm_idx_free(&sh->images), acm_idx_free(&sh->labels);
    free(sh);
    return rc;
}

/* ---- command line --------------------------------------------------------------------------------------------------- */

static const char *const bench_help =
    "usage: acm bench [options]\n"
    "Load generator. By default POSTs Fashion-MNIST test images (with their labels: accuracy under load) to\n"
    "/v1/models/MODEL/classify; --get PATH measures a GET route instead (e.g. /v2/health/live); --audio DIR\n"
    "POSTs the WAV files of DIR to /v1/models/MODEL/transcribe (word error rate against their transcripts).\n\n"
    "  --server URL          the server (default " ACMC_DEFAULT_SERVER ")\n"
    "  --api-key KEY         sent as Authorization: Bearer KEY (default: $ACM_API_KEY; none without it)\n"
    "  --model M             served model name (default " ACMC_DEFAULT_MODEL "; with --audio: speech)\n"
    "  --get PATH            GET this path instead of classifying images (default: none)\n"
    "  -c, --concurrency C   closed loop: C requests in flight, each sent when the previous answer came (default 8)\n"
    "  -r, --rate R          open loop instead: Poisson arrivals at R requests/s; latency counts from each request's\n"
    "                        scheduled send time (default: none, closed loop)\n"
    "  -t, --threads T       T threads, each with its own event loop and 1/T of the connections, rate and count\n"
    "                        (default 1; at most the number of connections)\n"
    "  --max-inflight N      open loop: at most N requests in flight (connections); later arrivals wait, and their\n"
    "                        wait is schedule lag and latency (default 1000)\n"
    "  -d, --duration S      stop scheduling after S seconds (default 10, unless --requests is given)\n"
    "  -n, --requests N      stop after N requests (with --duration: whichever comes first) (default: none)\n"
    "  --budget DIST         X-Compute-Budget per request, in (0, 1] (default: none)\n"
    "  --budget-min DIST     X-Compute-Budget-Min per request, in (0, 1] (default: none)\n"
    "  --deadline-ms DIST    X-Deadline-Ms per request, in (0, 3600000]; also counted here: deadline attainment =\n"
    "                        200s answered within it, from the scheduled send (default: none)\n"
    "  --priority DIST       Priority: u=N per request, whole numbers 0..7 (default: none)\n"
    "  --policy P            X-Compute-Policy: cap, mean or argmax on every request (default: none, the server's)\n"
    "  --request-start       X-Request-Start: t=<scheduled send time> on every request, so that the server counts\n"
    "                        deadlines from where this client counts them (its schedule lag included)\n"
    "  --timeout S           seconds each request may take (default 30); a request over it is an error 'timeout'\n"
    "  --max-idle S          a kept-alive connection idle for more than S seconds is closed, not reused; keep it under\n"
    "                        the server's idle timeout (acmd: --request-timeout) so that no request races the server's\n"
    "                        close of an idle connection (default: libcurl's, 118)\n"
    "  --data DIR            Fashion-MNIST directory with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz\n"
    "                        (default " ACMC_DEFAULT_DATA ")\n"
    "  --audio DIR           transcribe DIR's NAME.wav files (in name order, round robin), each with its transcript\n"
    "                        NAME.txt; reports seconds of audio per second and the word error rate (default: none)\n"
    "  --seed N              seed of the arrival and distribution draws (default 1)\n"
    "  --progress, --no-progress   a live progress line on stderr each second (default: when stderr is a terminal)\n"
    "  --json                print the report as JSON\n\n"
    "DIST is a value (0.5), uniform:LOW:HIGH, or choice:V1,V2,... (each request draws one).\n"
    "The report: requests sent = answered by status + transport errors; throughput; latency p50/p90/p99/p99.9 of\n"
    "the 200s and of all answers; open loop: schedule lag; deadline attainment; mean budget applied and realised;\n"
    "FLOPs/s executed and dense; accuracy; the server's message for each error status; this client's CPU share.\n"
    "^C stops scheduling; answers outstanding are waited for and reported.\n";

int acmc_cmd_bench(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* WebSocket streams: a load of its own (bench_streams.c) */
        if (!strcmp(argv[i], "--streams")) return acmc_bench_streams(argc, argv);
    static bench_params p; /* large; one per process */
    memset(&p, 0, sizeof p);
    snprintf(p.server, sizeof p.server, "%s", ACMC_DEFAULT_SERVER);
    snprintf(p.model, sizeof p.model, "%s", ACMC_DEFAULT_MODEL);
    snprintf(p.data_dir, sizeof p.data_dir, "%s", ACMC_DEFAULT_DATA);
    p.concurrency = 8, p.max_inflight = 1000, p.timeout_s = 30, p.seed = 1, p.progress = isatty(STDERR_FILENO);
    int have_duration = 0, have_conc = 0, have_model = 0, threads = 1;
    char err[4096];
    if (acmc_set_api_key(getenv("ACM_API_KEY"), err, sizeof err)) fprintf(stderr, "acm bench: ACM_API_KEY ignored: %s\n", err + 11);
    for (int i = 1; i < argc; i++) {
        const char *v;
        const char *a = argv[i];
        int m, bad = 0;
        long l;

        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(bench_help, stdout);
            return 0;
        } else if (!strcmp(a, "--json")) p.json = 1;
        else if (!strcmp(a, "--progress")) p.progress = 1;
        else if (!strcmp(a, "--no-progress")) p.progress = 0;
        else if (!strcmp(a, "--request-start")) p.request_start = 1;
        else if ((m = acmc_opt(argc, argv, &i, "--server", &v, err, sizeof err)))
            bad = m < 0 || acmc_server_url(p.server, sizeof p.server, v, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--api-key", &v, err, sizeof err)))
            bad = m < 0 || acmc_set_api_key(v, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--model", &v, err, sizeof err))) {
            if (m > 0 && (!*v || strlen(v) >= sizeof p.model || strpbrk(v, "/?#% ")))
                snprintf(err, sizeof err, "--model: '%s' is not a model name", v), m = -1;
            if ((bad = m < 0) == 0) snprintf(p.model, sizeof p.model, "%s", v), have_model = 1;
        } else if ((m = acmc_opt(argc, argv, &i, "--get", &v, err, sizeof err))) {
            if (m > 0 && (v[0] != '/' || strlen(v) >= sizeof p.get_path || strpbrk(v, " \r\n")))
                snprintf(err, sizeof err, "--get: '%s' is not a path (it starts with /)", v), m = -1;
            if ((bad = m < 0) == 0) snprintf(p.get_path, sizeof p.get_path, "%s", v);
        } else if ((m = acmc_opt(argc, argv, &i, "--concurrency", &v, err, sizeof err)) ||
                   (m = acmc_opt(argc, argv, &i, "-c", &v, err, sizeof err))) {
            bad = m < 0 || acmc_parse_long("--concurrency", v, 1, 10000, &l, err, sizeof err);
            p.concurrency = (int)l, have_conc = 1;
        } else if ((m = acmc_opt(argc, argv, &i, "--rate", &v, err, sizeof err)) ||
                   (m = acmc_opt(argc, argv, &i, "-r", &v, err, sizeof err)))
            bad = m < 0 || acmc_parse_double("--rate", v, 0, 1e7, 1, &p.rate, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--threads", &v, err, sizeof err)) ||
                 (m = acmc_opt(argc, argv, &i, "-t", &v, err, sizeof err))) {
            bad = m < 0 || acmc_parse_long("--threads", v, 1, 64, &l, err, sizeof err);
            threads = (int)l;
        } else if ((m = acmc_opt(argc, argv, &i, "--max-inflight", &v, err, sizeof err))) {
            bad = m < 0 || acmc_parse_long("--max-inflight", v, 1, 100000, &l, err, sizeof err);
            p.max_inflight = (int)l;
        } else if ((m = acmc_opt(argc, argv, &i, "--duration", &v, err, sizeof err)) ||
                   (m = acmc_opt(argc, argv, &i, "-d", &v, err, sizeof err))) {
            bad = m < 0 || acmc_parse_double("--duration", v, 0, 86400, 1, &p.duration_s, err, sizeof err);
            have_duration = 1;
        } else if ((m = acmc_opt(argc, argv, &i, "--requests", &v, err, sizeof err)) ||
                   (m = acmc_opt(argc, argv, &i, "-n", &v, err, sizeof err)))
            bad = m < 0 || acmc_parse_long("--requests", v, 1, 1000000000L, &p.requests, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--budget", &v, err, sizeof err)))
            bad = m < 0 || acmc_dist_parse(&p.budget, "--budget", v, 0, 1, 1, 0, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--budget-min", &v, err, sizeof err)))
            bad = m < 0 || acmc_dist_parse(&p.budget_min, "--budget-min", v, 0, 1, 1, 0, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--deadline-ms", &v, err, sizeof err)))
            bad = m < 0 || acmc_dist_parse(&p.deadline_ms, "--deadline-ms", v, 0, 3600e3, 1, 0, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--priority", &v, err, sizeof err)))
            bad = m < 0 || acmc_dist_parse(&p.priority, "--priority", v, 0, 7, 0, 1, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--policy", &v, err, sizeof err))) {
            if (m > 0 && strcmp(v, "cap") && strcmp(v, "mean") && strcmp(v, "argmax"))
                snprintf(err, sizeof err, "--policy: '%s' is not cap, mean or argmax", v), m = -1;
            if ((bad = m < 0) == 0) snprintf(p.policy, sizeof p.policy, "%s", v);
        } else if ((m = acmc_opt(argc, argv, &i, "--timeout", &v, err, sizeof err)))
            bad = m < 0 || acmc_parse_double("--timeout", v, 0, 3600, 1, &p.timeout_s, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--max-idle", &v, err, sizeof err)))
            bad = m < 0 || acmc_parse_long("--max-idle", v, 1, 86400, &p.max_idle_s, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--data", &v, err, sizeof err))) {
            if (m > 0 && (!*v || strlen(v) >= sizeof p.data_dir)) snprintf(err, sizeof err, "--data: bad directory"), m = -1;
            if ((bad = m < 0) == 0) snprintf(p.data_dir, sizeof p.data_dir, "%s", v);
        } else if ((m = acmc_opt(argc, argv, &i, "--audio", &v, err, sizeof err))) {
            if (m > 0 && (!*v || strlen(v) >= sizeof p.audio_dir)) snprintf(err, sizeof err, "--audio: bad directory"), m = -1;
            if ((bad = m < 0) == 0) snprintf(p.audio_dir, sizeof p.audio_dir, "%s", v);
        } else if ((m = acmc_opt(argc, argv, &i, "--seed", &v, err, sizeof err))) {
            bad = m < 0 || acmc_parse_long("--seed", v, 0, 0x7fffffffffffffffL, &l, err, sizeof err);
            p.seed = (uint64_t)l;
        } else {
            snprintf(err, sizeof err, "unknown %s '%s'", a[0] == '-' ? "option" : "argument", a);
            bad = 1;
        }
        if (bad) {
            fprintf(stderr, "acm bench: %s (acm bench --help)\n", err);
            return ACMC_EXIT_USAGE;
        }
    }
    if (p.rate > 0 && have_conc) {
        fprintf(stderr, "acm bench: --rate (open loop) and --concurrency (closed loop) exclude each other; the open loop's "
                        "bound is --max-inflight (acm bench --help)\n");
        return ACMC_EXIT_USAGE;
    }
    if (p.audio_dir[0] && p.get_path[0]) {
        fprintf(stderr, "acm bench: --audio and --get exclude each other (acm bench --help)\n");
        return ACMC_EXIT_USAGE;
    }
    if (p.audio_dir[0] && !have_model) snprintf(p.model, sizeof p.model, "speech");
    if (!have_duration && !p.requests) p.duration_s = 10;
    int rc = bench__run(&p, threads, err, sizeof err);
    if (rc) fprintf(stderr, "acm bench: %s\n", err);
    return rc;
}
