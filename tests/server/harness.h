/*
 * harness.h — helpers for the server tests (linked into every test binary; prefix th_): start a real acmd on an
 * ephemeral loopback port, a minimal blocking HTTP/1.1 client over raw sockets (the tests need byte-level control:
 * drip-feeding, disconnecting, headers without a body), PNG encoding, and a heavy random model file.
 */
#ifndef ACM_TESTS_SERVER_HARNESS_H
#define ACM_TESTS_SERVER_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

typedef struct {
    pid_t pid;
    int port;
    char dir[256];     /* scratch directory of this server */
    char log[300];     /* its stderr */
    char portfile[300];
    int keep; /* 1: th_acmd_stop leaves the directory (the test reads the log after the exit, then cleans up) */
    char hold[300]; /* th_acmd_start_held: the FIFO of --test-hold, and our end of it (-1: none) */
    int hold_fd;
} th_acmd;

/* Starts $ACM_ACMD, else $ACM_BUILD/acmd (default build/), with --listen 127.0.0.1:0 --port-file ... and the NULL-terminated extra
 * arguments; waits for the port (not for readiness). Returns 0 or -1. */
int th_acmd_start(th_acmd *s, const char *const *args);
/* th_acmd_start with `base` then `extra` (either may be NULL; each NULL-terminated); held: th_acmd_start_held. */
int th_acmd_start_with(th_acmd *s, const char *const *base, const char *const *extra, int held);
/* As th_acmd_start, with the worker hold (--test-hold): every batch of requests waits until the test lets it run, so
 * that "a worker is busy" is true by construction on any CPU, for exactly as long as the test needs. */
int th_acmd_start_held(th_acmd *s, const char *const *args);
/* Lets n more batches run. */
void th_hold_release(th_acmd *s, int n);
/* Lets every batch run from now on (th_acmd_stop does this after its signal). */
void th_hold_end(th_acmd *s);
/* Polls /v2/models/{model}/stats until `running` (requests on a worker) is `running` and `queue_depth` (items) is
 * `queued` (-1: any); 0, or -1 at the timeout. */
int th_wait_stats(const th_acmd *s, const char *model, int running, int queued, double timeout_s);
/* Polls until connecting to the port is refused (the listener is closed): 0, or -1 at the timeout. */
int th_wait_refused(int port, double timeout_s);
/* Polls /v2/health/ready until 200 (returns 0) or the timeout (-1). */
int th_acmd_wait_ready(th_acmd *s, double timeout_s);
/* Sends sig (0: none) and waits up to timeout_s for the exit; returns the exit status, 128+signal, or -1 (killed). */
int th_acmd_stop(th_acmd *s, int sig, double timeout_s);
/* Removes the server's scratch directory (th_acmd_stop does, after a clean exit). */
void th_acmd_cleanup(th_acmd *s);
/* The server's stderr so far (malloc'd). */
char *th_acmd_log(const th_acmd *s);
/* The server's stderr once it contains needle (the access log is written at the end of a loop turn), or as it is at
 * the timeout (malloc'd). */
char *th_acmd_log_wait(const th_acmd *s, const char *needle, double timeout_s);

typedef struct {
    int status;
    char head[8192]; /* status line and headers */
    char *body;      /* NUL-terminated, malloc'd */
    size_t len;
} th_resp;

/* A whole file, NUL-terminated (malloc'd; *len its size when len is not NULL), or NULL when it cannot be read. */
char *th_slurp(const char *path, size_t *len);
/* The response body as JSON (asserts that it is). */
json_t *th_json(const th_resp *r);
/* Expects an error answer: the status and {"error": "..."} containing needle (NULL: any message). */
void th_expect_error(const th_resp *r, int status, const char *needle);
/* Sends all n bytes (MSG_NOSIGNAL, retried on EINTR); 0 or -1. */
int th_send_all(int fd, const void *p, size_t n);

int th_connect(int port);
/* One request on a fresh connection (Connection: close). extra_headers: "Name: value\r\n..." or NULL. Returns 0 or -1. */
int th_http(int port, const char *method, const char *path, const char *extra_headers, const void *body, size_t len,
            th_resp *out);
/* Reads a whole response from fd (until the peer closes). */
int th_read_response(int fd, th_resp *out);
/* Header value (case-insensitive name) copied into buf, or NULL. */
const char *th_header(const th_resp *r, const char *name, char *buf, size_t n);
void th_resp_free(th_resp *r);

/* 8-bit PNG of c channels (1 grey, 3 RGB); malloc'd. */
uint8_t *th_png(const uint8_t *px, int w, int h, int c, size_t *len);
/* Static random ViT (image_size S, patch P, width D, depth L, 1 channel, 10 classes) written to path. */
int th_heavy_model(const char *path, int S, int P, int D, int L);
/* Random ACM ViT: as th_heavy_model with MLP width `hidden`, every MLP an ACM of 4 learners (gates random), budget
 * floor beta_min; most of its FLOPs are learners, so the budget moves its latency a lot. */
int th_heavy_acm_model(const char *path, int S, int P, int D, int L, int hidden, double beta_min);
/* The value that follows the first occurrence of `series` (a metric name with labels, up to the space) in /metrics;
 * -1 if the request fails or the series is absent. */
double th_metric(int port, const char *series);
double th_now(void);

#endif
