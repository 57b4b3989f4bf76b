/*
 * acmc.h — the `acm` client's private header (prefix acmc_, acmc__ for internals). clients/main.c holds main() and
 * the command dispatch; every other file here goes into build/libacmclient.a so that tests can link it.
 *
 *   http.c      libcurl easy requests (one at a time: classify, health, models), server URL checks, error bodies
 *   args.c      option parsing helpers, numbers with ranges, per-request value distributions, the RNG
 *   stats.c     latency samples and percentiles (nearest rank)
 *   heatmap.c   the per-token compute map drawn over the input image (PNG via libspng)
 *   commands.c  `acm classify`, `acm health`, `acm models`
 *   transcribe.c `acm transcribe`: audio files to /transcribe, several in flight at once (a thread each)
 *   bench.c     `acm bench`: closed and open loop load generator (libcurl multi + libuv, one thread)
 *
 * What this client deliberately does not do: decode images itself for the request (the server does; the client only
 * sniffs and probes the header so that a non-image fails here with the file's name), retry, or follow redirects.
 * Errors: functions return an ACMC_EXIT_* code (0 success) with a message in the caller's buffer; only main.c and
 * the command functions print.
 */
#ifndef ACM_CLIENTS_ACMC_H
#define ACM_CLIENTS_ACMC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define ACMC_VERSION "0.1.0"
#define ACMC_DEFAULT_SERVER "http://127.0.0.1:8080"
#define ACMC_DEFAULT_MODEL "fmnist"
#define ACMC_DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

/* Exit codes: one table for the enum, `acm --help` and docs/CLI.md. */
#define ACMC_EXIT_CODES(X)                                                                                            \
    X(OK, 0, "success (bench: the run completed; request errors are part of its report)")                            \
    X(FAIL, 1, "internal failure: out of memory, an output file cannot be written")                                 \
    X(USAGE, 2, "bad command line: unknown command or option, missing or malformed value, value out of range")       \
    X(INPUT, 3, "an input file cannot be read or is not a PNG, JPEG or PNM image; the data set cannot be read")      \
    X(UNREACHABLE, 4, "the server cannot be reached: connection refused, name not resolved, timeout")              \
    X(SERVER, 5, "the server answered with an error status (its message is printed), is not ready, or sent an "     \
                 "unexpected body")

typedef enum {
#define X(name, code, doc) ACMC_EXIT_##name = code,
    ACMC_EXIT_CODES(X)
#undef X
} acmc_exit;

/* ---- args.c -------------------------------------------------------------------------------------------------------- */

/* Matches argv[*i] against --name (value in the next argument) or --name=value. Returns 1 and sets *val (advancing
 * *i past a separate value), 0 when argv[*i] is another option, -1 when the value is missing (message in err). */
int acmc_opt(int argc, char **argv, int *i, const char *name, const char **val, char *err, size_t errlen);
/* A finite number in [lo, hi] ((lo, hi] when lo_open). Returns 0 or ACMC_EXIT_USAGE with "NAME: ..." in err. */
int acmc_parse_double(const char *name, const char *s, double lo, double hi, int lo_open, double *out, char *err,
                      size_t errlen);
/* A whole number in [lo, hi]. */
int acmc_parse_long(const char *name, const char *s, long lo, long hi, long *out, char *err, size_t errlen);

typedef struct {
    uint64_t s[2];
} acmc_rng;
void acmc_rng_seed(acmc_rng *r, uint64_t seed);
uint64_t acmc_rng_next(acmc_rng *r);
double acmc_rng_uniform(acmc_rng *r); /* [0, 1) */

/* A per-request value: fixed ("0.5"), uniform over an interval ("uniform:0.25:1"), or drawn uniformly from a list
 * ("choice:0.25,0.5,1"). Every value and bound is checked against [lo, hi] ((lo, hi] when lo_open); integer
 * distributions (priority) accept whole numbers only and draw whole numbers. */
#define ACMC_DIST_MAX 32
typedef enum { ACMC_DIST_NONE = 0, ACMC_DIST_FIXED, ACMC_DIST_UNIFORM, ACMC_DIST_CHOICE } acmc_dist_kind;
typedef struct {
    acmc_dist_kind kind;
    int integer;
    double a, b;             /* FIXED: a; UNIFORM: [a, b] */
    int n;                   /* CHOICE */
    double v[ACMC_DIST_MAX];
} acmc_dist;
int acmc_dist_parse(acmc_dist *d, const char *name, const char *s, double lo, double hi, int lo_open, int integer,
                    char *err, size_t errlen);
double acmc_dist_draw(const acmc_dist *d, acmc_rng *r);
/* The mean of the distribution (for reports). */
double acmc_dist_mean(const acmc_dist *d);
/* Writes the distribution back in its input syntax. */
void acmc_dist_format(const acmc_dist *d, char *buf, size_t n);

/* Reads a whole file (malloc'd). Returns 0 or ACMC_EXIT_INPUT with "PATH: reason" in err. */
int acmc_read_file(const char *path, uint8_t **data, size_t *len, size_t max_len, char *err, size_t errlen);
double acmc_now(void); /* CLOCK_MONOTONIC, seconds */

/* ---- stats.c -------------------------------------------------------------------------------------------------------- */

typedef struct {
    double *v;
    size_t n, cap;
    int sorted;
} acmc_samples;
int acmc_samples_add(acmc_samples *s, double x); /* 0, or -1 out of memory */
/* Nearest-rank quantile: the smallest sample x such that at least q of the samples are <= x (q in [0, 1]); NAN when
 * empty. Sorts the samples the first time after an add. */
double acmc_samples_quantile(acmc_samples *s, double q);
double acmc_samples_mean(const acmc_samples *s);
double acmc_samples_max(acmc_samples *s);
void acmc_samples_free(acmc_samples *s);
/* Word errors of a transcript against its reference: the word-level Levenshtein distance (substitutions, deletions,
 * insertions; words split on ASCII whitespace, compared without ASCII case) in *errors, the reference's words in
 * *ref_words (WER = errors / ref_words). 0, or -1 out of memory. */
int acmc_wer_counts(const char *hyp, const char *ref, long *errors, long *ref_words);
/* 1 when a and b are the same words in the same order (byte for byte, case included), however they are spaced: a
 * stream's segment texts joined with spaces against the whole file's text; else 0. */
int acmc_same_words(const char *a, const char *b);
/* 1 when a and b are the same characters once all whitespace is removed: the same text, words perhaps cut elsewhere
 * (a stream's endpoint ends a word that the whole file's decoding runs on into the next); else 0. */
int acmc_same_letters(const char *a, const char *b);

/* ---- http.c --------------------------------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len, cap;
} acmc_buf;
int acmc_buf_append(acmc_buf *b, const void *p, size_t n); /* keeps data NUL-terminated; 0 or -1 */
void acmc_buf_free(acmc_buf *b);

/* The API key every request carries (--api-key, else $ACM_API_KEY; NULL or "": none); 0, or -1 with a message. */
int acmc_set_api_key(const char *key, char *err, size_t errlen);
/* "Authorization: Bearer KEY", or NULL without a key. */
const char *acmc_auth_header(void);
/* Checks a server base URL (http or https, a host, no query) and writes it without a trailing '/'. */
int acmc_server_url(char *out, size_t n, const char *server, char *err, size_t errlen);

typedef struct {
    long status;          /* HTTP status; 0 when no answer */
    acmc_buf body;
    double seconds;       /* round trip, from libcurl */
} acmc_resp;

/* One request: GET when body is NULL, else POST with content_type. headers: NULL-terminated "Name: value" lines.
 * Returns 0 when an HTTP answer came (any status), ACMC_EXIT_UNREACHABLE ("cannot reach URL: reason") or
 * ACMC_EXIT_FAIL. */
int acmc_http(const char *url, const char *const *headers, const void *body, size_t len, const char *content_type,
              double timeout_s, acmc_resp *out, char *err, size_t errlen);
void acmc_resp_free(acmc_resp *r);
/* "404 Not Found: unknown model 'x'": the status, its reason phrase and the server's {"error"} message (or the start
 * of the body when it is not such JSON). */
void acmc_server_error(const acmc_resp *r, char *out, size_t n);
const char *acmc_status_reason(long status);

/* ---- ws.c: a WebSocket client (libwslay over a plain socket) --------------------------------------------------------- */

typedef struct acmc_ws acmc_ws;
typedef void (*acmc_ws_msg_fn)(void *ud, const char *text, size_t n);
/* Connects to an http:// server and upgrades path (with its query) to a WebSocket; auth_header: "Authorization: ..."
 * or NULL. NULL with a message ("the server answered 401 Unauthorized: {...}") when that fails. */
acmc_ws *acmc_ws_open(const char *server, const char *path, const char *auth_header, double timeout_s, char *err,
                      size_t errlen);
/* Queues a message (text or binary) and sends what can go; 0 or -1. */
int acmc_ws_send(acmc_ws *w, int text, const void *p, size_t n);
/* Waits up to timeout_ms for the socket, reads and writes what it can, and hands each text message to on_msg.
 * Returns 0, 1 once the connection has closed (the server's close code in *close_code; 1006 without one), -1 error. */
int acmc_ws_pump(acmc_ws *w, int timeout_ms, acmc_ws_msg_fn on_msg, void *ud, int *close_code);
void acmc_ws_free(acmc_ws *w);

/* ---- heatmap.c ------------------------------------------------------------------------------------------------------ */

/* Draws the per-token compute map over the image: each patch of the grid tinted by the fraction of its learners that
 * ran, summed over all ACM modules (viridis: dark = few, yellow = all), with a colour bar below. img: the image file
 * as sent (PNG, JPEG or PNM); map: the response's compute_map ({"tokens", "grid", "modules": [{"learners", "k"}]}),
 * a JSON text. Writes a malloc'd PNG to *png. Returns 0, ACMC_EXIT_SERVER (malformed or empty map) or ACMC_EXIT_INPUT
 * (image), with a message. mean_frac (may be NULL): the mean fraction over the patches. */
int acmc_heatmap_png(const uint8_t *img, size_t len, const char *map_json, uint8_t **png, size_t *png_len,
                     double *mean_frac, char *err, size_t errlen);

/* ---- commands ------------------------------------------------------------------------------------------------------- */

int acmc_cmd_classify(int argc, char **argv);
int acmc_cmd_health(int argc, char **argv);
int acmc_cmd_models(int argc, char **argv);
int acmc_cmd_bench(int argc, char **argv);
int acmc_bench_streams(int argc, char **argv); /* bench_streams.c: acm bench --streams N */
int acmc_cmd_transcribe(int argc, char **argv); /* transcribe.c */

/* Options every command takes (commands.c): --server, --api-key, --json, --timeout. */
typedef struct {
    char server[1024];
    int json;
    double timeout_s;
} acmc_common;
/* The defaults: ACMC_DEFAULT_SERVER, 30 s, the API key from $ACM_API_KEY (a bad one is ignored with a warning). */
void acmc_common_defaults(acmc_common *c);
/* Returns 1 when argv[*i] was one of the common options (taken into c), 0 when not, or -ACMC_EXIT_USAGE after printing
 * the problem for command cmd. */
int acmc_common_opt(acmc_common *c, const char *cmd, int argc, char **argv, int *i);
/* Prints "acm CMD: MSG (acm CMD --help)" on stderr and returns ACMC_EXIT_USAGE. */
int acmc_usage_error(const char *cmd, const char *msg);
void acmc_usage(FILE *f);

#endif
