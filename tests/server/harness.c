/*
 * harness.c — see harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <spng.h>

#include "train/acm_student.h"
#include "train/rng.h"
#include "train/vit_train.h"

double th_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void th__sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

int th_acmd_start_with(th_acmd *s, const char *const *base, const char *const *extra, int held) {
    memset(s, 0, sizeof *s);
    s->hold_fd = -1;
    snprintf(s->dir, sizeof s->dir, "/tmp/acmd-test-XXXXXX");
    if (!mkdtemp(s->dir)) return -1;
    if (held) { /* our end is opened first, read-write, so that neither side waits in open(); close-on-exec, so
                 * that the server does not inherit a writer and the end-of-file of th_hold_end reaches it */
        snprintf(s->hold, sizeof s->hold, "%s/hold", s->dir);
        if (mkfifo(s->hold, 0600) || (s->hold_fd = open(s->hold, O_RDWR | O_CLOEXEC)) < 0) return -1;
    }
    snprintf(s->log, sizeof s->log, "%s/stderr", s->dir);
    snprintf(s->portfile, sizeof s->portfile, "%s/port", s->dir);
    const char *b = getenv("ACM_BUILD"), *a = getenv("ACM_ACMD");
    char prog[512];
    if (a && *a) snprintf(prog, sizeof prog, "%s", a);
    else snprintf(prog, sizeof prog, "%s/acmd", b && *b ? b : "build");
    const char *argv[64];
    int n = 0;
    argv[n++] = prog;
    argv[n++] = "--listen";
    argv[n++] = "127.0.0.1:0";
    argv[n++] = "--port-file";
    argv[n++] = s->portfile;
    if (held) argv[n++] = "--test-hold", argv[n++] = s->hold;
    for (int i = 0; base && base[i] && n < 62; i++) argv[n++] = base[i];
    for (int i = 0; extra && extra[i] && n < 62; i++) argv[n++] = extra[i];
    argv[n] = NULL;
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test that fails half-way leaves no server behind */
        FILE *f = freopen(s->log, "w", stderr);
        (void)f;
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    for (double t0 = th_now(); th_now() - t0 < 20;) {
        FILE *f = fopen(s->portfile, "r");
        if (f) {
            int ok = fscanf(f, "%d", &s->port) == 1;
            fclose(f);
            if (ok && s->port > 0) return 0;
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        th__sleep(0.005);
    }
    return -1;
}

int th_acmd_start(th_acmd *s, const char *const *args) { return th_acmd_start_with(s, args, NULL, 0); }
int th_acmd_start_held(th_acmd *s, const char *const *args) { return th_acmd_start_with(s, args, NULL, 1); }

void th_hold_release(th_acmd *s, int n) {
    static const char tokens[64] = {0};
    while (n > 0 && s->hold_fd >= 0) {
        ssize_t k = write(s->hold_fd, tokens, (size_t)(n < 64 ? n : 64));
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n -= (int)k;
    }
}

void th_hold_end(th_acmd *s) {
    if (s->hold_fd < 0) return;
    close(s->hold_fd);
    s->hold_fd = -1;
}

int th_wait_stats(const th_acmd *s, const char *model, int running, int queued, double timeout_s) {
    char path[256];
    snprintf(path, sizeof path, "/v2/models/%s/stats", model);
    for (double t0 = th_now(); th_now() - t0 < timeout_s;) {
        th_resp r;
        if (th_http(s->port, "GET", path, NULL, NULL, 0, &r) == 0 && r.status == 200) {
            const char *pr = strstr(r.body, "\"running\":"), *pq = strstr(r.body, "\"queue_depth\":");
            int ok = pr && pq && atoi(pr + 10) == running && (queued < 0 || atoi(pq + 14) == queued);
            th_resp_free(&r);
            if (ok) return 0;
        } else {
            th_resp_free(&r);
        }
        th__sleep(0.005);
    }
    return -1;
}

int th_wait_refused(int port, double timeout_s) {
    for (double t0 = th_now(); th_now() - t0 < timeout_s;) {
        int fd = th_connect(port);
        if (fd < 0) return 0;
        close(fd);
        th__sleep(0.01);
    }
    return -1;
}

int th_acmd_wait_ready(th_acmd *s, double timeout_s) {
    for (double t0 = th_now(); th_now() - t0 < timeout_s;) {
        th_resp r;
        if (th_http(s->port, "GET", "/v2/health/ready", NULL, NULL, 0, &r) == 0) {
            int st = r.status;
            th_resp_free(&r);
            if (st == 200) return 0;
        }
        th__sleep(0.01);
    }
    return -1;
}

/* A sanitizer's report in the server's stderr fails the test: copied to the test's stderr (tests/run.sh looks for
 * it there) and the stop returns -2. */
static int th__sanitizer_report(const th_acmd *s) {
    char *log = th_acmd_log(s);
    int bad = strstr(log, "Sanitizer") || strstr(log, "runtime error:");
    if (bad) fprintf(stderr, "acmd stderr (%s):\n%s\n", s->log, log);
    free(log);
    return bad;
}

int th_acmd_stop(th_acmd *s, int sig, double timeout_s) {
    if (s->pid <= 0) return -1;
    if (sig) kill(s->pid, sig);
    th_hold_end(s); /* held batches run: the server can finish them and exit */
    int st = 0;
    for (double t0 = th_now(); th_now() - t0 < timeout_s;) {
        pid_t p = waitpid(s->pid, &st, WNOHANG);
        if (p == s->pid) {
            s->pid = 0;
            if (th__sanitizer_report(s)) return -2; /* the directory stays for a look */
            if (!s->keep) th_acmd_cleanup(s);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        th__sleep(0.01);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &st, 0);
    s->pid = 0;
    return -1;
}

void th_acmd_cleanup(th_acmd *s) {
    if (!s->dir[0]) return;
    unlink(s->log);
    unlink(s->portfile);
    if (s->hold[0]) unlink(s->hold);
    rmdir(s->dir);
    s->dir[0] = 0;
}

char *th_slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    size_t got = b ? fread(b, 1, (size_t)n, f) : 0;
    fclose(f);
    if (!b) return NULL;
    b[got] = 0;
    if (len) *len = got;
    return b;
}

char *th_acmd_log(const th_acmd *s) {
    char *b = th_slurp(s->log, NULL);
    return b ? b : calloc(1, 1);
}


char *th_acmd_log_wait(const th_acmd *s, const char *needle, double timeout_s) {
    char *log = th_acmd_log(s);
    for (double t0 = th_now(); !strstr(log, needle) && th_now() - t0 < timeout_s;) {
        th__sleep(0.005);
        free(log);
        log = th_acmd_log(s);
    }
    return log;
}

int th_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa)) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return fd;
}

int th_send_all(int fd, const void *p, size_t n) {
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c += k, n -= (size_t)k;
    }
    return 0;
}

int th_read_response(int fd, th_resp *out) {
    memset(out, 0, sizeof *out);
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (n + 4096 > cap) buf = realloc(buf, cap *= 2);
        ssize_t k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = 0;
    char *eoh = strstr(buf, "\r\n\r\n");
    if (!eoh || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        free(buf);
        return -1;
    }
    size_t hl = (size_t)(eoh - buf);
    if (hl >= sizeof out->head) hl = sizeof out->head - 1;
    memcpy(out->head, buf, hl);
    out->head[hl] = 0;
    out->len = n - (size_t)(eoh + 4 - buf);
    out->body = malloc(out->len + 1);
    memcpy(out->body, eoh + 4, out->len);
    out->body[out->len] = 0;
    free(buf);
    return 0;
}

int th_http(int port, const char *method, const char *path, const char *extra_headers, const void *body, size_t len,
            th_resp *out) {
    memset(out, 0, sizeof *out);
    int fd = th_connect(port);
    if (fd < 0) return -1;
    char head[4096];
    int hn = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s", method, path,
                      extra_headers ? extra_headers : "");
    if (body || strcmp(method, "POST") == 0) hn += snprintf(head + hn, sizeof head - (size_t)hn, "Content-Length: %zu\r\n", len);
    hn += snprintf(head + hn, sizeof head - (size_t)hn, "\r\n");
    int rc = th_send_all(fd, head, (size_t)hn);
    if (!rc && len) rc = th_send_all(fd, body, len);
    if (!rc) rc = th_read_response(fd, out);
    close(fd);
    return rc;
}

const char *th_header(const th_resp *r, const char *name, char *buf, size_t n) {
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *l = p + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            l += nl + 1;
            while (*l == ' ') l++;
            size_t k = strcspn(l, "\r\n");
            if (k >= n) k = n - 1;
            memcpy(buf, l, k);
            buf[k] = 0;
            return buf;
        }
    }
    return NULL;
}

void th_resp_free(th_resp *r) {
    free(r->body);
    r->body = NULL;
}

uint8_t *th_png(const uint8_t *px, int w, int h, int c, size_t *len) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
    struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
                           .color_type = c == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR};
    spng_set_ihdr(ctx, &ih);
    int e = spng_encode_image(ctx, px, (size_t)w * h * c, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
    uint8_t *out = e ? NULL : spng_get_png_buffer(ctx, len, &e);
    spng_ctx_free(ctx);
    return out;
}

/* A ViT (4 heads, 10 classes) with random weights from `seed`; *rng is left to draw further weights. */
static acmt_vit *th__random_vit(int S, int P, int D, int L, int hidden, uint64_t seed, acmt_rng *rng) {
    acmt_vit_config c = {.image_size = S, .patch_size = P, .in_chans = 1, .dim = D, .depth = L, .heads = 4,
                         .mlp_hidden = hidden, .num_classes = 10, .ln_eps = 1e-6f};
    char err[256];
    acmt_vit *v = acmt_vit_new(&c, 1, err, sizeof err);
    if (!v) return NULL;
    acmt_rng_seed(rng, seed, 0);
    acmt_vit_init(v, rng);
    return v;
}

int th_heavy_model(const char *path, int S, int P, int D, int L) {
    acmt_rng rng;
    acmt_vit *v = th__random_vit(S, P, D, L, 4 * D, 7, &rng);
    if (!v) return -1;
    char err[256];
    int rc = acmt_vit_save_model(v, path, NULL, err, sizeof err);
    acmt_vit_free(v);
    return rc;
}

int th_heavy_acm_model(const char *path, int S, int P, int D, int L, int hidden, double beta_min) {
    acmt_rng rng;
    acmt_vit *v = th__random_vit(S, P, D, L, hidden, 11, &rng);
    if (!v) return -1;
    char err[256];
    acmt_student *st = acmt_student_new(v, ACMT_POS_BIT(ACM_POS_MLP), 4, 16, err, sizeof err);
    if (!st) {
        acmt_vit_free(v);
        return -1;
    }
    acmt_student_init(st, 1, &rng);
    char extra[256];
    snprintf(extra, sizeof extra, "{\"budget\": {\"beta_min\": %g, \"mean\": [[%g, 2.0], [1.0, -1.0]]}}", beta_min, beta_min);
    int rc = acmt_student_save(st, path, extra, err, sizeof err);
    acmt_student_free(st);
    return rc;
}

double th_metric(int port, const char *series) {
    th_resp r;
    if (th_http(port, "GET", "/metrics", NULL, NULL, 0, &r)) return -1;
    const char *p = strstr(r.body, series);
    double v = p ? atof(p + strlen(series)) : -1;
    th_resp_free(&r);
    return v;
}

json_t *th_json(const th_resp *r) {
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    cr_assert(j, "body is not JSON: %s\n%s", e.text, r->body);
    return j;
}

void th_expect_error(const th_resp *r, int status, const char *needle) {
    cr_expect_eq(r->status, status, "status %d, want %d: %s", r->status, status, r->body);
    json_t *j = th_json(r);
    const char *msg = json_string_value(json_object_get(j, "error"));
    cr_expect(msg, "no error field: %s", r->body);
    if (msg && needle) cr_expect(strstr(msg, needle), "error \"%s\" lacks \"%s\"", msg, needle);
    json_decref(j);
}
