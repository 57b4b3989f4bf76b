/*
 * server.c — start-up (models, workers, MHD), the libuv loop that drives MHD, request timeouts, SIGTERM drain, logs
 * (stderr, or --log-file with warnings and errors copied to stderr).
 *
 * MHD runs in "external select" mode with epoll: its epoll fd is watched by a uv_poll, and a uv_timer fires at
 * MHD_get_timeout(); after every MHD_run the timer is re-armed. Everything MHD calls back runs on the loop thread.
 *
 * Drain (SIGTERM or SIGINT), made for load balancers and Kubernetes: readiness turns 503 at once while the listener
 * stays open for --drain-grace-s (requests keep being accepted, queued and answered as usual, each response with
 * "Connection: close", so that the balancer has time to notice and move away without a refused connection); then
 * the listener closes and new requests on open connections get 503. Queued requests run as usual (a deadline request
 * whose deadline passes gets its 504). The process exits 0 when nothing is queued, running, suspended or
 * half-answered, or at --exit-timeout after the signal: then what is still queued gets 503, in-flight connections are
 * closed, and the exit is 0 too. A second signal does the same at once. A server that was never ready skips the
 * grace period.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "acmd.h"
#include "audio.h"
#include "tls.h"

uint64_t acmd_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The log's destination: --log-file (flushed after every write, so that `tail -f` follows it) or stderr. */
static void srv__log_write(acmd_server *s, const char *p, size_t n) {
    FILE *f = s->log_file ? s->log_file : stderr;
    fwrite(p, 1, n, f);
    if (s->log_file) fflush(f);
}

void acmd_log_flush(acmd_server *s) {
    if (!s->log_len) return;
    srv__log_write(s, s->log_buf, s->log_len);
    s->log_len = 0;
}

void acmd_log_access(acmd_server *s, const char *line, size_t n) {
    if (s->log_len + n > s->log_cap) {
        acmd_log_flush(s);
        if (n > s->log_cap) {
            size_t cap = s->log_cap ? s->log_cap : 1 << 16;
            while (cap < n) cap *= 2;
            char *b = realloc(s->log_buf, cap);
            if (!b) { /* out of memory: the line goes straight out */
                srv__log_write(s, line, n);
                return;
            }
            s->log_buf = b, s->log_cap = cap;
        }
    }
    memcpy(s->log_buf + s->log_len, line, n);
    s->log_len += n;
}

static void srv__log_prepare(uv_prepare_t *h) { acmd_log_flush(h->data); }

/* One line of acmd_log: to the log; with --log-file, warnings and errors also to stderr (the terminal of `make serve`). */
static void srv__log_line(acmd_server *s, int level, const char *line) {
    if (s->log_file) {
        fprintf(s->log_file, "%s\n", line);
        fflush(s->log_file);
    }
    if (!s->log_file || level <= 1) fprintf(stderr, "%s\n", line);
}

void acmd_log(acmd_server *s, int level, const char *fmt, ...) {
    if (level > s->log_level) return;
    if (s->loop && pthread_equal(pthread_self(), s->io_thread)) acmd_log_flush(s); /* keep the lines in order */
    static const char *const names[] = {"error", "warn", "info", "debug"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (s->log_json) {
        char when[40];
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        size_t k = strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(when + k, sizeof when - k, ".%06ldZ", ts.tv_nsec / 1000);
        json_t *o = json_pack("{s:s, s:s, s:s}", "ts", when, "level", names[level], "msg", msg);
        char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16));
        if (line) srv__log_line(s, level, line);
        free(line);
        json_decref(o);
    } else {
        char line[1100];
        snprintf(line, sizeof line, "acmd %s: %s", names[level], msg);
        srv__log_line(s, level, line);
    }
}

/* ---- MHD <-> libuv ------------------------------------------------------------------------------------------------ */

static void srv__mhd_timer(uv_timer_t *t) { acmd_http_kick(t->data); }
static void srv__mhd_poll(uv_poll_t *p, int status, int events) { acmd_http_kick(p->data); }

void acmd_http_kick(acmd_server *s) {
    if (!s->mhd) return;
    MHD_run(s->mhd);
    MHD_UNSIGNED_LONG_LONG to;
    if (MHD_get_timeout(s->mhd, &to) == MHD_YES) uv_timer_start(&s->mhd_timer, srv__mhd_timer, to, 0);
    else uv_timer_stop(&s->mhd_timer);
}

/* ---- request timeout: connections are tracked from NOTIFY_CONNECTION; the sweep closes those whose current request
 * has taken longer than --request-timeout to arrive (headers + body). MHD's own timeout is per idle gap only, so a
 * client that drips a byte a second would otherwise hold its connection forever. ---------------------------------- */

typedef struct srv__conn {
    struct srv__conn *prev, *next;
    struct MHD_Connection *conn;
    uint64_t t_start; /* start of the current request (or of the idle wait for it) */
    int busy;         /* a request is queued, running or being answered: not timed out here */
    acmd_req *req;    /* the request being received, if any (http.c: acmd_conn_req) */
    void *tls_held;   /* with TLS: the certificate in force when it started, kept while it is open (tls.c) */
} srv__conn;

static srv__conn srv__conns = {&srv__conns, &srv__conns, NULL, 0, 0, NULL, NULL}; /* list head; loop thread only */

void acmd_http_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe) {
    acmd_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        srv__conn *c = calloc(1, sizeof *c);
        if (!c) return;
        c->conn = conn;
        c->t_start = acmd_now_ns();
        if (s->tls) c->tls_held = acmd_tls_conn_open();
        c->next = srv__conns.next, c->prev = &srv__conns;
        srv__conns.next->prev = c, srv__conns.next = c;
        *socket_context = c;
        s->connections++;
    } else if (*socket_context) {
        srv__conn *c = *socket_context;
        c->prev->next = c->next, c->next->prev = c->prev;
        if (c->tls_held) acmd_tls_conn_close(c->tls_held);
        free(c);
        *socket_context = NULL;
        s->connections--;
    }
    acmd_metric_set(s->metrics, ACMD_M_CONNECTIONS, "", s->connections);
}

/* Called by http.c: a request on this connection started to wait (busy 1) or was answered (busy 0). */
void acmd_conn_busy(struct MHD_Connection *conn, int busy);
void acmd_conn_busy(struct MHD_Connection *conn, int busy) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (!ci || !ci->socket_context) return;
    srv__conn *c = ci->socket_context;
    c->busy = busy;
    c->t_start = acmd_now_ns();
}

/* Called by http.c: the request now on this connection (NULL once completed), for the sweep to mark. */
void acmd_conn_req(struct MHD_Connection *conn, acmd_req *r);
void acmd_conn_req(struct MHD_Connection *conn, acmd_req *r) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    if (ci && ci->socket_context) ((srv__conn *)ci->socket_context)->req = r;
}

static void srv__sweep(uv_timer_t *t) {
    acmd_server *s = t->data;
    const uint64_t now = acmd_now_ns(), limit = (uint64_t)(s->cfg.request_timeout * 1e9);
    for (srv__conn *c = srv__conns.next; c != &srv__conns; c = c->next) {
        /* a transcription decoded as it arrives may take as long as its audio lasts, and the limit on top */
        const uint64_t audio = c->req && c->req->au.on ? (uint64_t)((double)c->req->au.samples / ACM_AUDIO_RATE * 1e9) : 0;
        if (c->busy || now - c->t_start <= limit + audio) continue;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (c->req) c->req->http.timed_out = 1;           /* logged and counted as 408, not as a client that left */
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR); /* MHD sees the end of the stream and closes it */
        c->t_start = now;                            /* once */
    }
    acmd_http_kick(s);
}

/* ---- drain ---------------------------------------------------------------------------------------------------- */

static void srv__close_cb(uv_handle_t *h) { (void)h; }

/* Answers 503 to every request still queued (the exit timeout, or a second signal). */
static void srv__refuse_queued(acmd_server *s) {
    for (int i = 0; i < s->n_models; i++) {
        acmd_model *m = &s->models[i];
        while (m->q_head) {
            acmd_req *r = m->q_head;
            m->q_head = r->next;
            r->next = NULL;
            acmd_req_fail(r, ACMD_E_DRAINING, "the server is shutting down");
            r->resp.reason = acmd_err_reason(ACMD_E_DRAINING); /* queued, yet counted as refused: it never ran */
            r->state = ACMD_REQ_DONE;
            acmd_http_finish(s, r);
        }
        m->q_tail = NULL;
        m->q_items = 0;
    }
}

static void srv__stop_accepting(acmd_server *s) {
    if (!s->accepting) return;
    s->accepting = 0;
    MHD_socket lfd = MHD_quiesce_daemon(s->mhd);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    acmd_log(s, 2, "drain: listener closed (%d queued or running)", s->in_flight + s->suspended);
}

static void srv__finish(acmd_server *s) {
    if (s->stopping) return;
    s->stopping = 1;
    /* no suspended connection may be left: close whatever is still open (in flight past the exit timeout) */
    for (srv__conn *c = srv__conns.next; c != &srv__conns; c = c->next) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
    }
    acmd_log(s, 2, "drained: %d in flight, %d suspended, %d open; stopping", s->in_flight, s->suspended,
             s->open_requests);
    uv_timer_stop(&s->drain_timer);
    uv_stop(s->loop);
}

/* Ends the drain now: what is queued gets 503, and the loop stops at the next tick, once MHD has had a turn to send
 * those answers. */
static void srv__cut(acmd_server *s, const char *why) {
    if (s->cut) return;
    s->cut = 1;
    acmd_log(s, 1, "%s: %d request(s) in flight, %d queued get 503", why, s->in_flight, s->suspended - s->in_flight);
    srv__stop_accepting(s);
    srv__refuse_queued(s);
    acmd_http_kick(s);
}

/* Every 20 ms while draining: close the listener once the grace period is over, stop when nothing is left (or at
 * the exit timeout, after the queued requests have had their 503). */
static void srv__drain_timer(uv_timer_t *t) {
    acmd_server *s = t->data;
    acmd_http_kick(s);
    if (s->cut) {
        srv__finish(s);
        return;
    }
    const double since = (double)(acmd_now_ns() - s->drain_start) * 1e-9;
    if (s->accepting && since >= s->drain_grace) srv__stop_accepting(s);
    if (!s->accepting && s->in_flight == 0 && s->suspended == 0 && s->open_requests == 0) {
        srv__finish(s);
        return;
    }
    if (since > s->cfg.exit_timeout) srv__cut(s, "exit timeout");
}

/* SIGTERM/SIGINT: the drain (file comment). A second signal ends it now. */
static void srv__signal(uv_signal_t *h, int sig) {
    acmd_server *s = h->data;
    if (s->draining) {
        srv__cut(s, "second signal");
        return;
    }
    s->draining = 1;
    /* a server that never was ready had no traffic to move away: no grace */
    s->drain_grace = s->ready ? s->cfg.drain_grace_s : 0;
    if (s->drain_grace > s->cfg.exit_timeout) s->drain_grace = s->cfg.exit_timeout;
    s->ready = 0;
    s->drain_start = acmd_now_ns();
    acmd_log(s, 2, "signal %d: draining (%d in flight); readiness 503, accepting for %.3g s more", sig, s->in_flight,
             s->drain_grace);
    if (s->drain_grace <= 0) srv__stop_accepting(s);
    acmd_ws_shutdown(s, 0); /* streams end with 1001 (going away) */
    uv_timer_start(&s->drain_timer, srv__drain_timer, 0, 20);
}

/* SIGHUP: the TLS certificate (new handshakes get the new one; open connections keep the session they have) */
static void srv__reload_tls(acmd_server *s) {
    char err[512];
    acmd_tls *t = acmd_tls_load(s->cfg.tls_cert, s->cfg.tls_key, err, sizeof err);
    if (!t) {
        acmd_log(s, 0, "SIGHUP: %s; the certificate in force stays (%s)", err, acmd_tls_describe(acmd_tls_in_force()));
        return;
    }
    acmd_tls_install(t);
    acmd_log(s, 2, "SIGHUP: --tls-cert %s reloaded: %s; new connections get it, open ones keep theirs", s->cfg.tls_cert,
             acmd_tls_describe(t));
}

/* SIGHUP: reload what can change without a restart — the TLS certificate and the --auth-file (a file that cannot be
 * read or parsed keeps what is in force, and says why). Connections and queued requests are untouched: the keys are
 * looked at when a request's headers arrive, so a request admitted under a key that was revoked since still runs. */
static void srv__reload(uv_signal_t *h, int sig) {
    acmd_server *s = h->data;
    (void)sig;
    if (s->tls) srv__reload_tls(s);
    if (!s->auth) {
        if (!s->tls) acmd_log(s, 2, "SIGHUP: nothing to reload (no --auth-file, no --tls-cert)");
        return;
    }
    acmd_keys k;
    char err[512];
    if (acmd_keys_load(&k, s->cfg.auth_file, err, sizeof err)) {
        acmd_log(s, 0, "SIGHUP: %s; the %d key(s) loaded before stay in force", err, s->keys.n);
        return;
    }
    acmd_keys_carry(&k, &s->keys);
    for (int i = 0; i < k.n; i++) acmd_metrics_key(s->metrics, k.k[i].name); /* a new name: its series at 0 */
    acmd_keys_free(&s->keys);
    s->keys = k;
    acmd_log(s, 2, "SIGHUP: --auth-file %s reloaded: %d key(s)", s->cfg.auth_file, k.n);
}

/* 1 for an address whose clients are this machine's own processes (127.0.0.0/8). */
static int srv__loopback(const struct sockaddr_in *sa) { return (ntohl(sa->sin_addr.s_addr) >> 24) == 127; }

/* ---- start-up ------------------------------------------------------------------------------------------------- */

int acmd_server_init(acmd_server *s, const acmd_config *cfg, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->cfg = *cfg;
    s->log_json = strcmp(cfg->log_format, "json") == 0;
    s->log_level = !strcmp(cfg->log_level, "error") ? 0 : !strcmp(cfg->log_level, "warn") ? 1
                   : !strcmp(cfg->log_level, "info") ? 2 : 3;
    if (cfg->log_file[0] && !(s->log_file = fopen(cfg->log_file, "a")))
        return snprintf(err, errlen, "--log-file %s: %s", cfg->log_file, strerror(errno)), -1;
    pthread_mutex_init(&s->res_mu, NULL);
    s->hold_fd = -1;
    if (cfg->auth_file[0]) {
        if (acmd_keys_load(&s->keys, cfg->auth_file, err, errlen)) return -1;
        s->auth = 1;
        acmd_log(s, 2, "--auth-file %s: %d key(s)", cfg->auth_file, s->keys.n);
    }
    if (cfg->test_hold[0]) { /* a FIFO: opened without waiting for its writer (the test opened it first) */
        s->hold_fd = open(cfg->test_hold, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (s->hold_fd < 0 || fcntl(s->hold_fd, F_SETFL, 0))
            return snprintf(err, errlen, "--test-hold %s: %s", cfg->test_hold, strerror(errno)), -1;
    }
    for (int i = 0; i < cfg->n_models; i++) {
        const acmd_model_conf *mc = &cfg->models[i];
        acmd_model *m = &s->models[i];
        snprintf(m->name, sizeof m->name, "%s", mc->name);
        snprintf(m->path, sizeof m->path, "%s", mc->path);
        char e[512];
        m->m = acm_model_load(mc->path, e, sizeof e);
        if (!m->m) return snprintf(err, errlen, "model %s: %s", mc->name, e), -1;
        s->n_models = i + 1;
        m->idx = i;
        m->cfg = acm_model_config(m->m);
        m->version = acm_model_version(m->m);
        m->S = m->cfg->image_size, m->C = m->cfg->in_chans, m->T = m->cfg->tokens, m->K = m->cfg->num_classes;
        m->num_acms = m->cfg->num_acms;
        m->speech = m->cfg->arch == ACM_ARCH_SPEECH;
        if (m->speech) {
            if (m->cfg->sample_rate != ACM_AUDIO_RATE)
                return snprintf(err, errlen, "model %s (%s): sample rate %d (acmd decodes audio to %d Hz)", m->name,
                                mc->path, m->cfg->sample_rate, ACM_AUDIO_RATE), -1;
            m->S = m->C = 0;
            m->chunk_samples = (int64_t)m->cfg->chunk * m->cfg->stack * m->cfg->hop_length;
        }
        if (!m->speech && m->C != 1 && m->C != 3) return snprintf(err, errlen, "model %s: %d input channels (1 or 3 served)", m->name, m->C), -1;
        /* a speech model's batch is one chunk per stream: a few tokens each, so many more of them fill the GEMMs */
        m->max_batch = mc->max_batch ? mc->max_batch : (int)(m->speech ? cfg->stream_batch : cfg->max_batch);
        m->default_policy = acm_policy_default();
        m->default_policy.kind = (acm_policy_kind)acm_policy_parse(mc->default_policy[0] ? mc->default_policy : cfg->default_policy);
        m->default_policy.beta = (float)(mc->default_budget >= 0 ? mc->default_budget : cfg->default_budget);
        m->flops_learner = 0; /* every learner of every ACM for every token of one item */
        for (int a = 0; a < m->num_acms; a++) m->flops_learner += acm_model_acm(m->m, a)->n * acm_model_learner_flops(m->m, a);
        m->flops_learner *= m->T;
        acmd_cost_init(&m->cost, m->T, acm_model_flops_dense(m->m), cfg->cost_forgetting);
        m->beta_prev = -1;
        m->beta_floor = mc->beta_floor >= 0 ? mc->beta_floor : m->cfg->beta_min;
        acmd_log(s, 2, "model %s: %s version %s, %dx%dx%d, %d classes, %d ACMs, beta_min %.3g, budget floor %.3g",
                 m->name, m->path, m->version, m->C, m->S, m->S, m->K, m->num_acms, m->cfg->beta_min, m->beta_floor);
    }
    int cores = acm_cpu_count();
    /* default: the cores less one, kept for the I/O thread (and, on a small machine, the network stack), one worker
     * per BLAS-thread group of what is left, at least one. Measured (bench/RESULTS.md, "acmd, part 4"): on 2 cores one
     * worker keeps deadlines under overload far better than two, which fight the I/O thread for the cores. */
    const int spare = cores > 1 ? cores - 1 : 1;
    s->n_workers = cfg->workers ? (int)cfg->workers : (int)(spare / cfg->blas_threads > 0 ? spare / cfg->blas_threads : 1);
    s->metrics = acmd_metrics_new(s);
    if (!s->metrics) return snprintf(err, errlen, "out of memory"), -1;
    for (int i = 0; i < s->keys.n; i++) acmd_metrics_key(s->metrics, s->keys.k[i].name);
    return 0;
}

static int srv__write_port(const char *path, int port) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fprintf(f, "%d\n", port);
    if (fclose(f)) return -1;
    return rename(tmp, path);
}

int acmd_server_run(acmd_server *s) {
    char err[512];
    struct sockaddr_in sa = {.sin_family = AF_INET};
    char host[128];
    const char *colon = strrchr(s->cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - s->cfg.listen), s->cfg.listen);
    long port = strtol(colon + 1, NULL, 10);
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa.sin_addr) != 1) {
        acmd_log(s, 0, "--listen %s: not an IPv4 address:port", s->cfg.listen);
        return 2;
    }
    sa.sin_port = htons((uint16_t)port);
    if (s->cfg.tls_cert[0]) {
        /* GnuTLS reads the files here; libmicrohttpd asks for the certificate in force at every handshake (tls.c) */
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            acmd_log(s, 0, "--tls-cert: this libmicrohttpd has no TLS support (GnuTLS)");
            return 1;
        }
        acmd_tls *t = acmd_tls_load(s->cfg.tls_cert, s->cfg.tls_key, err, sizeof err);
        if (!t) {
            acmd_log(s, 0, "cannot serve with TLS: %s", err);
            return 1;
        }
        acmd_tls_install(t);
        acmd_log(s, 2, "--tls-cert %s: %s", s->cfg.tls_cert, acmd_tls_describe(t));
        s->tls = 1;
    }
    s->loop = malloc(sizeof *s->loop);
    if (!s->loop || uv_loop_init(s->loop)) {
        acmd_log(s, 0, "cannot create the event loop");
        return 1;
    }
    s->mhd = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_ALLOW_UPGRADE | MHD_USE_TURBO | (s->tls ? MHD_USE_TLS : 0), 0, NULL, NULL,
                              acmd_http_handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                              MHD_OPTION_NOTIFY_COMPLETED, acmd_http_completed, s, MHD_OPTION_NOTIFY_CONNECTION,
                              acmd_http_notify_conn, s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg.max_connections,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)acmd_config_max_per_ip(&s->cfg),
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ceil(s->cfg.request_timeout),
                              MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
                              /* without TLS this ends the list: MHD_OPTION_END comes first */
                              s->tls ? MHD_OPTION_HTTPS_CERT_CALLBACK : MHD_OPTION_END, acmd_tls_retrieve,
                              MHD_OPTION_END);
    if (!s->mhd) {
        acmd_log(s, 0, "cannot listen on %s%s: %s", s->cfg.listen, s->tls ? " with TLS" : "", strerror(errno));
        return 1;
    }
    s->accepting = 1;
    s->port = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT)->port;
    int efd = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
    uv_poll_init(s->loop, &s->mhd_poll, efd);
    uv_timer_init(s->loop, &s->mhd_timer);
    uv_timer_init(s->loop, &s->sweep_timer);
    uv_timer_init(s->loop, &s->batch_timer);
    uv_timer_init(s->loop, &s->drain_timer);
    uv_async_init(s->loop, &s->async, acmd_workers_on_async);
    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_hup);
    uv_prepare_init(s->loop, &s->log_flush_handle);
    s->log_flush_handle.data = s;
    s->io_thread = pthread_self();
    uv_prepare_start(&s->log_flush_handle, srv__log_prepare); /* before the loop blocks */
    s->mhd_poll.data = s->mhd_timer.data = s->sweep_timer.data = s->batch_timer.data = s->drain_timer.data = s;
    s->async.data = s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_poll_start(&s->mhd_poll, UV_READABLE, srv__mhd_poll);
    uv_signal_start(&s->sig_term, srv__signal, SIGTERM);
    uv_signal_start(&s->sig_int, srv__signal, SIGINT);
    uv_signal_start(&s->sig_hup, srv__reload, SIGHUP);
    const uint64_t sweep_ms = s->cfg.request_timeout < 2 ? (uint64_t)(s->cfg.request_timeout * 250) + 1 : 500;
    uv_timer_start(&s->sweep_timer, srv__sweep, sweep_ms, sweep_ms);
    if (acmd_workers_start(s, err, sizeof err)) {
        acmd_log(s, 0, "%s", err);
        s->exit_code = 1;
        acmd_workers_stop(s);
        acmd_workers_free(s);
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
        return 1;
    }
    acmd_log(s, 2, "listening on %s:%d%s (warming up)", host, s->port, s->tls ? " (HTTPS)" : "");
    if (!s->auth && !srv__loopback(&sa))
        acmd_log(s, 1, "listening on %s:%d, not a loopback address, without --auth-file: anyone who reaches the port "
                 "may run inference at any priority and budget", host[0] ? host : "0.0.0.0", s->port);
    if (s->cfg.port_file[0] && srv__write_port(s->cfg.port_file, s->port))
        acmd_log(s, 1, "cannot write --port-file %s: %s", s->cfg.port_file, strerror(errno));
    acmd_http_kick(s);
    uv_run(s->loop, UV_RUN_DEFAULT);
    /* stopping: join the workers (a batch still running finishes), take their last results (answered, or freed when
     * their connection is gone) while the workers' state still exists, then stop MHD (it closes every connection),
     * and only then free the workers */
    acmd_workers_stop(s);
    acmd_workers_on_async(&s->async);
    acmd_ws_shutdown(s, 1); /* streams still open: their sockets go back to MHD before it stops */
    uv_run(s->loop, UV_RUN_NOWAIT);
    MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    acmd_workers_free(s);
    uv_close((uv_handle_t *)&s->mhd_poll, srv__close_cb);
    uv_close((uv_handle_t *)&s->mhd_timer, srv__close_cb);
    uv_close((uv_handle_t *)&s->sweep_timer, srv__close_cb);
    uv_close((uv_handle_t *)&s->batch_timer, srv__close_cb);
    uv_close((uv_handle_t *)&s->drain_timer, srv__close_cb);
    uv_close((uv_handle_t *)&s->async, srv__close_cb);
    uv_close((uv_handle_t *)&s->sig_term, srv__close_cb);
    uv_close((uv_handle_t *)&s->sig_int, srv__close_cb);
    uv_close((uv_handle_t *)&s->sig_hup, srv__close_cb);
    uv_close((uv_handle_t *)&s->log_flush_handle, srv__close_cb);
    uv_run(s->loop, UV_RUN_DEFAULT);
    acmd_log_flush(s);
    uv_loop_close(s->loop);
    free(s->loop);
    s->loop = NULL;
    acmd_log(s, 2, "exit %d", s->exit_code);
    return s->exit_code;
}

void acmd_server_free(acmd_server *s) {
    for (int i = 0; i < s->n_models; i++) acm_model_free(s->models[i].m);
    acmd_metrics_free(s->metrics);
    acmd_keys_free(&s->keys);
    if (s->tls) acmd_tls_free_all(); /* after the daemon stopped: no connection holds a certificate */
    free(s->log_buf);
    if (s->hold_fd >= 0) close(s->hold_fd);
    if (s->log_file) fclose(s->log_file);
    s->log_file = NULL;
    pthread_mutex_destroy(&s->res_mu);
}
