/*
 * acmd.h — the server's private header: configuration, route table, model registry, requests, scheduler, metrics.
 *
 * Threads (docs/DESIGN.md §2): one I/O thread runs a libuv loop that drives libmicrohttpd (MHD_USE_EPOLL without an
 * internal thread; a uv_poll on MHD's epoll fd and a uv_timer from MHD_get_timeout), owns every request, the queues,
 * the metrics and the access log. Engine workers (acmd_worker, one thread each, each owning one acm_worker per model)
 * decode the inputs of a batch (stage 1), run the engine (stage 2) and write the response bodies (stage 3); they
 * never touch MHD. Batches go to a worker through its own mutex + condition variable; results come back through one
 * locked queue and uv_async_send, whose callback drains the whole queue.
 *
 * A request is a state machine with one owner per state:
 *   RECEIVING (I/O thread: headers, body) -> QUEUED (I/O thread: in its model's queue; connection suspended)
 *   -> RUNNING (a worker) -> DONE (I/O thread: connection resumed, response queued)
 *   QUEUED -> CANCELLED (the client closed its connection: seen at its socket just before dispatch, a FIN alone
 *   being probed first since a half-closed client still wants its answer: peer.c; never run).
 */
#ifndef ACM_SERVER_ACMD_H
#define ACM_SERVER_ACMD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <microhttpd.h>
#include <uv.h>

#include "acm.h"
#include "audio.h"
#include "oip.h"
#include "sla.h"

#define ACMD_VERSION "0.1.0"
#define ACMD_MAX_MODELS 16

/* ---- configuration (server/config.c) ------------------------------------------------------------------------------
 * One table: every option is a command-line flag (--name, '_' spelled '-'), a key of the --config JSON file, and a
 * line of --help and --print-config. Per-model settings live in the file's "models" array (see config.c).
 * X(type, name, metavar: the value's placeholder in --help, default ("" for none), help). */
#define ACMD_OPTIONS(X)                                                                                               \
    X(STR, listen, "ADDR:PORT", "127.0.0.1:8080", "address:port to listen on (port 0: any free port)")                \
    X(STR, port_file, "FILE", "", "write the bound port to this file once listening (tests)")                         \
    X(INT, workers, "N", "0", "engine worker threads (0: the cores less one, kept for the I/O thread; at least 1)")   \
    X(INT, blas_threads, "N", "1", "OpenBLAS threads per worker (workers x BLAS threads <= cores)")                   \
    X(STR, backend, "NAME", "cpu", "engine backend: cpu, or cuda (a build made with make CUDA=1, on a GPU)")         \
    X(INT, worker_nice, "N", "0",                                                                                     \
      "the worker threads' nice value above the I/O thread's (0..19, capped at 19): the I/O thread, and a client on " \
      "the same cores, then run first when they wake, at the workers' expense")                                      \
    X(INT, max_batch, "N", "8", "largest batch of items per engine call (per model unless set there)")                \
    X(INT, stream_batch, "N", "64",                                                                                    \
      "speech models: largest number of chunks per engine call, one per stream or transcription, side by side (a "    \
      "model's own max_batch overrides it): the ready chunks of many streams run as one packed batch")               \
    X(DBL, stream_gather_ms, "MS", "0",                                                                                \
      "a stream's chunk may wait up to this long in the queue for other streams' chunks to join its engine call "      \
      "(until --stream-batch are queued; a finalize or end never waits): fewer, fuller calls at the cost of as much " \
      "latency (0: a free worker takes it at once)")                                                                  \
    X(INT, batch_delay_us, "US", "0", "while another worker is busy, an idle one waits up to this for a fuller batch")\
    X(INT, max_queue, "N", "256", "queued items per model before 429 + Retry-After")                                  \
    X(INT, max_body_bytes, "BYTES", "8388608", "largest request body (413 from Content-Length, before reading)")      \
    X(INT, max_buffered_bytes, "BYTES", "268435456",                                                                  \
      "request bodies and decoded inputs held at once, all requests together: past it 503 + Retry-After, before "    \
      "the body is read when Content-Length says so (0: no limit; else >= --max-body-bytes)")                         \
    X(INT, max_image_pixels, "PIXELS", "16777216",                                                                    \
      "largest image, width x height from its header (400 before decoding)")                                          \
    X(DBL, max_audio_seconds, "SECONDS", "600", "longest audio a transcription takes (413 past it, while decoding)")  \
    X(INT, max_decode_bytes, "BYTES", "67108864",                                                                     \
      "memory one image decode may take, its bound computed from the header (400 before decoding)")                   \
    X(INT, max_connections, "N", "1024", "simultaneous connections")                                                  \
    X(INT, max_per_ip, "N", "-1",                                                                                     \
      "simultaneous connections per client address (0: no limit; -1: none on a loopback --listen, whose clients are " \
      "local, such as a reverse proxy or a load generator, else a quarter of --max-connections)")                     \
    X(DBL, request_timeout, "SECONDS", "30", "seconds a request may take to send its headers and body")               \
    X(DBL, drain_grace_s, "SECONDS", "5",                                                                             \
      "after SIGTERM, seconds readiness is 503 while new requests are still accepted (load balancers move away)")     \
    X(DBL, exit_timeout, "SECONDS", "25",                                                                             \
      "seconds from SIGTERM until the process exits even if work is left (what is still queued then gets 503)")       \
    X(STR, default_policy, "POLICY", "argmax", "policy without a requested budget: argmax, mean or cap")              \
    X(DBL, default_budget, "BETA", "1", "beta for the default policy when it is mean or cap")                         \
    X(STR, request_policy, "POLICY", "cap", "policy when a request sets a budget: cap or mean")                       \
    X(DBL, default_deadline_ms, "MS", "1000",                                                                         \
      "queue-order deadline of a request that sets none (earliest deadline first; it never shrinks the budget)")      \
    X(INT, min_client_urgency, "U", "0",                                                                              \
      "most urgent Priority u= a client may claim (0..7); smaller values are raised")                                 \
    X(DBL, aging_ms, "MS", "100", "a queued request gains one urgency level per this many ms of waiting (0: none)")   \
    X(DBL, cost_forgetting, "F", "0.97", "forgetting factor per batch of the cost model's least squares (0.5..1)")    \
    X(STR, log_level, "LEVEL", "info", "error, warn, info (access log) or debug")                                     \
    X(STR, log_format, "FORMAT", "json", "log lines: json or text")                                                   \
    X(STR, log_file, "FILE", "", "append the log (access log included) to FILE; warnings and errors also go to stderr")\
    X(STR, auth_file, "FILE", "",                                                                                     \
      "API keys (docs/DEPLOY.md): every inference route then wants Authorization: Bearer KEY; reloaded on SIGHUP")   \
    X(STR, tls_cert, "FILE", "", "PEM certificate (chain first: the server's, then intermediates): HTTPS only (with --tls-key)") \
    X(STR, tls_key, "FILE", "", "PEM private key of --tls-cert")                                                     \
    X(INT, metrics_auth, "BOOL", "0", "1: /metrics wants a key too (with --auth-file)")                                \
    X(INT, max_streams, "N", "256", "WebSocket transcription streams open at once (past it: 503 at the handshake)")   \
    X(DBL, stream_idle_timeout, "SECONDS", "30", "a stream without any message for this long is closed (1001)")      \
    X(DBL, stream_max_behind, "SECONDS", "10",                                                                         \
      "a stream's audio waiting for the workers: past a quarter of it its budget shrinks (to the floor at half), at "  \
      "three quarters a warning, at all of it the stream is closed (1013; 0: never)")                                  \
    X(INT, max_frame_bytes, "BYTES", "1048576", "largest WebSocket message a stream takes (1009 past it)")           \
    X(STR, test_hold, "FIFO", "", "tests only: warm-up, then each batch of requests, waits for one byte from FIFO (EOF: no more)")
typedef struct {
    char name[64];
    char path[1024];
    int max_batch;          /* 0: the global max_batch */
    char default_policy[16]; /* "": the global one */
    double default_budget;  /* < 0: the global one */
    double beta_floor;      /* < 0: the model file's beta_min (--beta-floor NAME=BETA) */
} acmd_model_conf;

#define ACMD__T_STR char
#define ACMD__T_INT long
#define ACMD__T_DBL double
#define ACMD__S_STR [512]
#define ACMD__S_INT
#define ACMD__S_DBL
typedef struct {
#define X(type, name, metavar, def, help) ACMD__T_##type name ACMD__S_##type;
    ACMD_OPTIONS(X)
#undef X
    int n_models;
    acmd_model_conf models[ACMD_MAX_MODELS];
    int print_config, help, print_api;
    char hash_key[64]; /* --hash-key NAME: print an --auth-file line for the key read from stdin, and exit */
} acmd_config;

void acmd_config_defaults(acmd_config *c);
/* Parses argv (a --config file is read where it appears; later flags override it). Returns 0, or -1 with a message. */
int acmd_config_parse(acmd_config *c, int argc, char **argv, char *err, size_t errlen);
int acmd_config_load_file(acmd_config *c, const char *path, char *err, size_t errlen);
/* Checks values and ranges. */
int acmd_config_validate(const acmd_config *c, char *err, size_t errlen);
void acmd_config_print(const acmd_config *c, FILE *f); /* JSON, accepted by --config */
void acmd_config_help(FILE *f);
/* --max-per-ip as applied (its -1 resolved against --listen and --max-connections); 0: no limit. */
long acmd_config_max_per_ip(const acmd_config *c);

/* ---- routes (server/routes.c) --------------------------------------------------------------------------------------
 * One X-macro list: the router, 405's Allow, metrics labels and docs/API.md (acmd --print-api) all come from it.
 * Patterns: {m} a model name, {v} its version; [ ... ] an optional part. */
#define ACMD_ROUTES(X)                                                                                                \
    X(HEALTH_LIVE, "GET", "/v2/health/live", "200 `{\"live\":true}` while the process runs.")                        \
    X(HEALTH_READY, "GET", "/v2/health/ready",                                                                        \
      "200 `{\"ready\":true}` once every model is loaded and warmed up; 503 `{\"ready\":false}` before and while "  \
      "draining.")                                                                                                    \
    X(SERVER_META, "GET", "/v2", "OIP server metadata: `name`, `version`, `extensions` (also `/v2/`, the OpenAPI "     \
      "file's spelling).")                                                                                            \
    X(MODEL_META, "GET", "/v2/models/{m}[/versions/{v}]",                                                            \
      "OIP model metadata: `name`, `versions`, `platform`, `inputs`, `outputs`, plus `model_version`, `labels`, "    \
      "`beta_min`, `cap_order` (the order `cap` hands out learners in: `gain` or `level`, DESIGN.md §4), "           \
      "`flops_dense`. 404 for an unknown model or version.")                                                         \
    X(MODEL_READY, "GET", "/v2/models/{m}[/versions/{v}]/ready", "200 `{\"ready\":true}` or 503.")                   \
    X(INFER, "POST", "/v2/models/{m}[/versions/{v}]/infer",                                                          \
      "OIP inference, JSON tensors (nested or flat): `image` UINT8 `[B,H,W,C]` or `pixel_values` FP32 `[B,C,S,S]`. " \
      "Outputs `logits` FP32 `[B,K]` and `label` BYTES `[B]`, those the request's `outputs` names (each once; none " \
      "named: both); `parameters` carry the /classify keys. The binary tensor extension is accepted (below).")     \
    X(CLASSIFY, "POST", "/v1/models/{m}/classify",                                                                   \
      "Body = one image (`image/png`, `image/jpeg`, `image/x-portable-anymap` or -bitmap, -graymap, -pixmap), made " \
      "the model's input as *Images* below says. `?explain=1` adds `compute_map`.")                                  \
    X(TRANSCRIBE, "POST", "/v1/models/{m}/transcribe",                                                              \
      "Body = one audio file of a speech model (`audio/wav`, `audio/flac`, `audio/ogg`, `audio/L16;rate=R`, "        \
      "`audio/x-raw;format=S16LE;rate=R`; `application/octet-stream` or none: the container is sniffed), made "      \
      "16 kHz mono and transcribed as *Transcription* below says.")                                                   \
    X(STREAM, "GET", "/v1/models/{m}/stream",                                                                        \
      "A WebSocket (RFC 6455) streaming transcription of a speech model: binary frames of PCM in, JSON messages out " \
      "(`partial` per chunk, `final` per segment), as *Streaming* below says.")                                        \
    X(MODEL_STATS, "GET", "/v2/models/{m}[/versions/{v}]/stats",                                                     \
      "Scheduling statistics of a model: the cost model t = a + b·tokens + c·FLOPs (`cost_model`: coefficients, "    \
      "samples, forgetting, `recent_error` of its one-step predictions, `predict_ms` for one item at β = 1 and at "   \
      "β_min and a full batch, `path`: the error model of dispatch — the residual of each request's path after "     \
      "dispatch, `p50_ms`, `p95_ms`, the `margin_ms` and `band_ms` dispatch uses, `last_beta`), `last_batch` (the last batch it learnt: `items`, `flops`, `seconds` of its engine "  \
      "calls), `queue_depth`, `running` (requests on a worker now) and `deadlines` (requests with a deadline, misses by phase).")                          \
    X(DEMO, "GET", "/demo", "The demo page (HTML, embedded in acmd): classify an image with a budget slider and its "  \
      "per-token compute map; stream an audio file or the microphone to `/stream` with live partials and a budget "  \
      "slider acting mid-stream. With `--auth-file`, open it as `/demo/?access_token=KEY`.")                         \
    X(METRICS, "GET", "/metrics", "Prometheus text exposition (docs/DESIGN.md §7).")

typedef enum {
#define X(id, method, pattern, doc) ACMD_ROUTE_##id,
    ACMD_ROUTES(X)
#undef X
        ACMD_ROUTE_COUNT,
    ACMD_ROUTE_NONE = ACMD_ROUTE_COUNT
} acmd_route;

typedef struct {
    char model[128];
    char version[64]; /* "" when the path has none */
} acmd_route_args;

/* The routes that run a model (admission, queue, a worker). */
static inline int acmd_route_infers(acmd_route r) {
    return r == ACMD_ROUTE_CLASSIFY || r == ACMD_ROUTE_INFER || r == ACMD_ROUTE_TRANSCRIBE;
}
/* The media types /transcribe takes (the 415's list). */
#define ACMD_AUDIO_TYPES                                                                                              \
    "audio/wav, audio/x-wav, audio/flac, audio/ogg, audio/L16;rate=R[;channels=C], "                                  \
    "audio/x-raw;format=S16LE|F32LE;rate=R[;channels=C], or application/octet-stream for a sniffed WAV, FLAC or Ogg"
const char *acmd_route_name(acmd_route r);   /* "HEALTH_LIVE" -> "health_live" (metrics label) */
const char *acmd_route_method(acmd_route r);
const char *acmd_route_pattern(acmd_route r);
/* Matches a path. Returns the route whose pattern and method match; ACMD_ROUTE_NONE with *path_matched = 1 when a
 * pattern matches but not the method (405: allow gets e.g. "GET, HEAD"), 0 when nothing matches (404). */
acmd_route acmd_route_match(const char *method, const char *path, acmd_route_args *a, int *path_matched, char *allow,
                            size_t allow_len);
void acmd_api_markdown(FILE *f);

/* ---- metrics (server/metrics.c) ------------------------------------------------------------------------------------
 * Prometheus families from one X-macro list; every series is created at start-up from fixed label sets, so the
 * exposition is complete before the first request. Touched only by the I/O thread (no locks). */
#define ACMD_METRICS(X)                                                                                               \
    X(HTTP_REQUESTS, "acm_http_requests_total", counter, "HTTP requests answered, by route, method and status.")      \
    X(INFER_REQUESTS, "acm_inference_requests_total", counter, "Inference requests by model, version and outcome.")   \
    X(REJECTIONS, "acm_inference_rejections_total", counter, "Inference requests refused before queueing, by reason.") \
    X(REQ_DURATION, "acm_request_duration_seconds", histogram, "Inference request time from headers to response.")    \
    X(QUEUE_DURATION, "acm_queue_duration_seconds", histogram, "Time inference requests waited in the queue.")        \
    X(COMPUTE_DURATION, "acm_compute_duration_seconds", histogram, "Time of the batch that computed a request.")      \
    X(BATCH_SIZE, "acm_batch_size", histogram, "Items per engine batch.")                                             \
    X(QUEUE_DEPTH, "acm_queue_depth", gauge, "Items waiting in the queue.")                                           \
    X(FLOPS, "acm_flops_executed_total", counter, "FLOPs executed (2 per multiply-add).")                             \
    X(FLOPS_DENSE, "acm_flops_dense_equivalent_total", counter, "FLOPs the dense model would have executed.")        \
    X(BUDGET_RATIO, "acm_request_budget_ratio", histogram, "Budget applied to requests (beta), by its source.")       \
    X(DEADLINE_MISSES, "acm_deadline_misses_total", counter, "Requests that missed their deadline, by phase.")        \
    X(PHASE_DURATION, "acm_request_phase_seconds", histogram,                                                         \
      "Time of answered inference requests in each phase: admission, queue, handover, compute, return, send.")     \
    X(CONNECTIONS, "acm_http_connections", gauge, "Open HTTP connections.")                                           \
    X(BUFFERED, "acm_buffered_bytes", gauge,                                                                          \
      "Bytes of request bodies and decoded inputs held, counted against --max-buffered-bytes.")                      \
    X(KEY_REQUESTS, "acm_key_requests_total", counter,                                                                \
      "Requests that presented a valid API key, by key (its --auth-file name) and status.")                          \
    X(KEY_FLOPS, "acm_key_flops_executed_total", counter, "FLOPs executed for a key's requests.")                    \
    X(KEY_FLOPS_DENSE, "acm_key_flops_dense_equivalent_total", counter,                                               \
      "FLOPs the dense model would have executed for a key's requests.")                                             \
    X(KEY_BUDGET, "acm_key_budget_realised_ratio", histogram,                                                         \
      "Budget realised by a key's answered requests (learner FLOPs run / all learners').")                           \
    X(ASR_AUDIO_SECONDS, "acm_asr_audio_seconds_total", counter, "Seconds of audio transcribed (answered 200).")   \
    X(ASR_COMPUTE_SECONDS, "acm_asr_compute_seconds_total", counter,                                                 \
      "Seconds of worker time spent on transcriptions answered 200 (decode, engine, bodies).")                       \
    X(ASR_BUDGET, "acm_asr_budget_realised_ratio", histogram, "Budget realised by transcriptions (beta), per model.")\
    X(ASR_ACTIVE_STREAMS, "acm_asr_active_streams", gauge, "WebSocket transcription streams open, per model.")    \
    X(ASR_CHUNK_LATENCY, "acm_asr_chunk_latency_seconds", histogram,                                                 \
      "Streams: from a chunk's last sample received to its partial queued for sending.")                           \
    X(ASR_SEGMENTS, "acm_asr_segments_total", counter, "Streams: segments ended (a final sent), per model.")        \
    X(ASR_STREAMS_DROPPED, "acm_asr_streams_dropped_total", counter,                                                \
      "Streams closed by the server before their end, per model and reason (behind_real_time).")                      \
    X(ASR_STREAMS_WARNED, "acm_asr_streams_behind_total", counter,                                                  \
      "Streams warned that they fall behind real time (at the budget floor), per model.")                            \
    X(BUILD_INFO, "acm_build_info", gauge, "Build information (value 1).")

typedef enum {
#define X(id, name, type, help) ACMD_M_##id,
    ACMD_METRICS(X)
#undef X
        ACMD_M_COUNT
} acmd_metric_id;

typedef struct acmd_metrics acmd_metrics;
struct acmd_server;
acmd_metrics *acmd_metrics_new(const struct acmd_server *s);
void acmd_metrics_free(acmd_metrics *m);
/* labels: a rendered label set, e.g. `model="fmnist",outcome="success"` (see acmd_label). */
void acmd_metric_add(acmd_metrics *m, acmd_metric_id id, const char *labels, double v);
void acmd_metric_set(acmd_metrics *m, acmd_metric_id id, const char *labels, double v);
void acmd_metric_observe(acmd_metrics *m, acmd_metric_id id, const char *labels, double v);
/* Creates the series of an API key's name (at start-up and for a name a reload adds; never from a request). */
void acmd_metrics_key(acmd_metrics *m, const char *name);
/* Appends key="escaped value" (with a comma when buf is not empty). */
void acmd_label(char *buf, size_t n, const char *key, const char *value);
/* The exposition; malloc'd. */
char *acmd_metrics_render(const acmd_metrics *m, size_t *len);

/* ---- cost model (server/cost.c) ------------------------------------------------------------------------------------
 * Batch time t = a + b·tokens + c·FLOPs, fitted by exponentially forgetting least squares (factor f per batch: a
 * batch k batches old weighs f^k) to every measured batch of a model, plus the warm-up batches as a prior that is
 * never forgotten (so that a run of identical batches cannot make the fit singular). Features are scaled to units of
 * one item (T tokens, the dense FLOPs of one item) so that the 3x3 normal equations are well conditioned; a, b and c
 * are kept >= 0 (non-negative least squares, exact over the 3 coefficients). The one-step-ahead error of each batch (measured
 * minus predicted before the batch was added) is kept for the last ACMD_COST_RING batches. I/O thread only. */
#define ACMD_COST_RING 64

/* A distribution that forgets: a fixed-size histogram of a stream of durations on geometric buckets (ratio
 * ACMD_HIST_RATIO from ACMD_HIST_MIN seconds; everything at or below the first bucket's edge, negative values
 * included, counts there), every weight multiplied by `decay` per value added, so that it holds about 1 / (1 - decay)
 * recent values and changes smoothly: a value leaving the window fades out instead of dropping out at once. Its
 * quantiles are read by linear interpolation within a bucket. O(1) memory; adding is ACMD_HIST_N multiplications. */
#define ACMD_HIST_N 128
#define ACMD_HIST_MIN 1e-5
#define ACMD_HIST_RATIO 1.1
typedef struct {
    double w[ACMD_HIST_N];
    double total, decay;
    long n;
} acmd_hist;
void acmd_hist_init(acmd_hist *h, double decay);
void acmd_hist_add(acmd_hist *h, double x);
/* The q-quantile (0..1) of what the histogram holds (0 when empty). */
double acmd_hist_quantile(const acmd_hist *h, double q);

typedef struct {
    double forget;
    double u_tok, u_flop;   /* units: tokens of one item, dense FLOPs of one item */
    double S[3][3], r[3];   /* forgotten sums of x x^T and x t */
    double P[3][3], q[3];   /* prior (warm-up) sums */
    double theta[3];        /* a [s], b [s per item-worth of tokens], c [s per dense item of FLOPs] */
    long samples, prior_samples;
    double last[3];         /* the last measured batch learnt: tokens, FLOPs, seconds */
    double err_abs[ACMD_COST_RING], err_rel[ACMD_COST_RING];
    int ring_n, ring_i;
    /* the whole path after a dispatch decision, per request: (bytes sent - dispatch decision) - the predicted batch
     * time, i.e. the batch-time error plus the time the batch model does not see (hand-over to the worker, decoding,
     * response bodies, the way back, sending) */
    acmd_hist path;
} acmd_cost;

void acmd_cost_init(acmd_cost *c, double tokens_per_item, double flops_per_item, double forget);
/* Adds one measured batch (prior: a warm-up batch). */
void acmd_cost_add(acmd_cost *c, double tokens, double flops, double seconds, int prior);
/* Predicted seconds of a batch (>= 0). */
double acmd_cost_predict(const acmd_cost *c, double tokens, double flops);
/* Coefficients in base units: seconds, seconds per token, seconds per FLOP. */
void acmd_cost_coef(const acmd_cost *c, double *a, double *b_tok, double *c_flop);
/* Recent one-step errors: mean |error| in seconds, mean |error| / measured, max |error|; n batches (0: none yet). */
int acmd_cost_error(const acmd_cost *c, double *mean_abs, double *mean_rel, double *max_abs);
/* The q-quantile (0..1) of the last ACMD_COST_RING batches' absolute errors, in seconds (0 before any). */
double acmd_cost_error_quantile(const acmd_cost *c, double q);
/* Adds one request's path residual (seconds; see `path`). */
void acmd_cost_path_add(acmd_cost *c, double residual_s);
/* The margin dispatch keeps between a batch's predicted finish and its earliest deadline (seconds, >= 0): a high
 * quantile of the path residuals (the last ~1 / (1 - ACMD_COST_PATH_DECAY) requests: the 99th percentile of their
 * body, from its quartiles, and at least their 95th; cost.c says why) once ACMD_COST_PATH_MIN requests have been
 * measured; before, the largest residual yet, and before any, the 90th
 * percentile of the batch-time errors. */
double acmd_cost_margin(const acmd_cost *c);
/* The dead band of the budget decision (seconds): a move to a larger beta needs this much room beyond the margin,
 * so that noise smaller than it cannot make identical requests alternate (see acmd_budget_decide_held). */
double acmd_cost_band(const acmd_cost *c);
#define ACMD_COST_PATH_DECAY 0.998
#define ACMD_COST_PATH_MIN 16

/* ---- API keys (server/auth.c) -------------------------------------------------------------------------------------
 * The --auth-file format is specified at the top of auth.c. Per-key limits, one table: the file's LIMIT names, their
 * ranges and their defaults (acmd_key_defaults: none binding). X(field, name, lowest, highest, help) */
#define ACMD_KEY_HASH 32
#define ACMD_KEY_LIMITS(X)                                                                                            \
    X(urgency_min, "urgency", 0, 7, "most urgent Priority u= the key may claim; more urgent requests are lowered")    \
    X(budget_min, "budget_min", 0, 1, "smallest compute budget (beta) the key may ask for")                          \
    X(budget_max, "budget_max", 0, 1, "largest compute budget (beta) the key may ask for")                           \
    X(rate, "rate", 0, 1e9, "requests per second (token bucket; 0: no limit)")                                      \
    X(burst, "burst", 0, 1e9, "requests the bucket holds (default: max(1, rate))")                                  \
    X(flops_rate, "flops_rate", 0, 1e18, "FLOPs per second at the request's budget (token bucket; 0: no limit)")    \
    X(flops_burst, "flops_burst", 0, 1e18, "FLOPs the bucket holds (default: flops_rate, one second's worth)")        \
    X(queue_share, "queue_share", 0, 1, "largest fraction of a model's --max-queue the key may hold (at least one item)")

typedef struct {
    char name[64];
    uint8_t hash[ACMD_KEY_HASH]; /* SHA-256 of the key */
    double urgency_min, budget_min, budget_max, rate, burst, flops_rate, flops_burst, queue_share;
    /* token buckets (I/O thread; kept across a reload for a name still in the file): what is left, at t_fill (ns) */
    double tok, ftok;
    uint64_t t_fill;
} acmd_key;

typedef struct {
    acmd_key *k;
    int n;
} acmd_keys;

void acmd_key_defaults(acmd_key *k);
void acmd_key_hash(uint8_t out[ACMD_KEY_HASH], const char *key, size_t n);
/* 1 when two hashes are equal; all ACMD_KEY_HASH bytes are compared whatever they hold (*steps += bytes compared). */
int acmd_key_hash_eq(const uint8_t *a, const uint8_t *b, size_t *steps);
/* Reads an --auth-file; 0, or -1 with a message naming the file, the line and the problem (out then empty). */
int acmd_keys_load(acmd_keys *out, const char *path, char *err, size_t errlen);
void acmd_keys_free(acmd_keys *k);
/* The index of the entry whose hash is the key's, or -1; every entry is compared in full (*steps: see above). */
int acmd_keys_find(const acmd_keys *k, const char *key, size_t n, size_t *steps);
int acmd_keys_index(const acmd_keys *k, const char *name); /* by name; -1 */
/* A reload: the bucket state of every key of `next` whose name is in `prev` is carried over (a tenant cannot refill
 * its buckets by having the file reloaded). */
void acmd_keys_carry(acmd_keys *next, const acmd_keys *prev);
/* acmd --hash-key NAME: reads a key (one line) from in and writes its --auth-file line to out; an empty line makes
 * a new random key, written to msg. Returns the exit status (0, or 1 with a message on msg). */
int acmd_hash_key_main(const char *name, FILE *in, FILE *out, FILE *msg);
/* The credentials of an Authorization field with the Bearer scheme (*n bytes), or NULL. */
const char *acmd_auth_bearer(const char *field, size_t *n);

/* ---- models, requests, server ------------------------------------------------------------------------------------ */

struct acmd_req;

typedef struct {
    char name[64], path[1024];
    acm_model *m;
    const acm_config *cfg;
    const char *version;
    int max_batch;
    acm_policy default_policy;
    int S, C, T, K, num_acms; /* speech: S = C = 0, T = tokens per chunk (an "item" of the cost model is one chunk) */
    int idx;
    int speech;             /* a speech model: served by /transcribe (and OIP `audio`), run chunk by chunk as streams */
    int64_t chunk_samples;  /* speech: 16 kHz samples per chunk (T tokens), for estimating a file's chunks */
    /* the budget floor: below it the model's accuracy collapses (its beta_min unless --beta-floor), so no budget goes
     * under it and a deadline that cannot be met at it is answered 504 at admission instead of served garbage */
    double beta_floor;
    /* queue (I/O thread): unordered list; dispatch picks by urgency (aged), then deadline, then arrival */
    struct acmd_req *q_head, *q_tail;
    int q_items;
    /* cost (I/O thread): per item, FLOPs outside the learners and of all learners (FLOPs(β) = fixed + β learner) */
    acmd_cost cost;
    double flops_fixed, flops_learner;
    long dl_requests, dl_misses[3]; /* requests with a deadline; misses by phase (admission, queue, compute) */
    double beta_prev;               /* the last common beta decided at dispatch (< 0: none yet; the dead band's memory) */
    int running;                    /* requests of this model on a worker (I/O thread's view) */
} acmd_model;

enum { ACMD_MISS_ADMISSION = 0, ACMD_MISS_QUEUE, ACMD_MISS_COMPUTE };

typedef enum { ACMD_REQ_RECEIVING = 0, ACMD_REQ_QUEUED, ACMD_REQ_RUNNING, ACMD_REQ_DONE, ACMD_REQ_CANCELLED } acmd_req_state;

/* ---- errors (server/respond.c) -------------------------------------------------------------------------------------
 * One list of the answers a request can fail with: the HTTP status of each and, for a refusal before queueing, the
 * reason label of acm_inference_rejections_total (NULL: not counted there). Codes of proto/ (image, OIP, audio) and
 * engine/ map into it through acmd_err_of, so that a decoder's ENOMEM is a 500 and its bad input a 400 in one place.
 * X(id, HTTP status, rejection reason) */
#define ACMD_ERRORS(X)                                                                                                \
    X(BAD_REQUEST, 400, "bad_request")   /* malformed or unacceptable input: headers, body, parameters */            \
    X(IMAGE_TOO_LARGE, 400, "too_large") /* an image over --max-image-pixels, from its header */                     \
    X(UNAUTHORIZED, 401, NULL)           /* --auth-file: no key, or one not in the file (WWW-Authenticate) */      \
    X(NOT_FOUND, 404, NULL)                                                                                           \
    X(METHOD, 405, NULL)                                                                                              \
    X(ARRIVAL_TIMEOUT, 408, NULL)        /* headers and body not in within --request-timeout */                      \
    X(TOO_LARGE, 413, "too_large")       /* a body over --max-body-bytes */                                          \
    X(MEDIA_TYPE, 415, "bad_request")                                                                                 \
    X(KEY_RATE, 429, "key_rate")         /* --auth-file: the key's request rate is used up */                       \
    X(KEY_FLOPS, 429, "key_flops")       /* --auth-file: the key's FLOP rate is used up */                          \
    X(KEY_QUEUE, 429, "key_queue")       /* --auth-file: the key holds its share of the model's queue */            \
    X(QUEUE_FULL, 429, "queue_full")                                                                                  \
    X(CANCELLED, 499, NULL)              /* the client closed its connection while queued */                          \
    X(INTERNAL, 500, NULL)               /* engine failure, non-finite logits, out of memory */                       \
    X(NOT_IMPLEMENTED, 501, NULL)                                                                                     \
    X(MEMORY, 503, "memory")             /* past --max-buffered-bytes */                                              \
    X(NOT_READY, 503, "not_ready")                                                                                    \
    X(DRAINING, 503, "draining")                                                                                      \
    X(DEADLINE, 504, "deadline")         /* refused at admission: not even the floor can make the deadline */        \
    X(DEADLINE_QUEUE, 504, NULL)         /* the deadline was lost in the queue */

typedef enum {
#define X(id, status, reason) ACMD_E_##id,
    ACMD_ERRORS(X)
#undef X
        ACMD_E_COUNT
} acmd_err;

int acmd_err_status(acmd_err e);
const char *acmd_err_reason(acmd_err e); /* NULL: not a refusal before queueing */
/* Where a negative return code of a library comes from, for acmd_err_of. */
typedef enum { ACMD_FROM_IMAGE, ACMD_FROM_OIP, ACMD_FROM_AUDIO, ACMD_FROM_ENGINE } acmd_err_domain;
/* The server's error for a library's code: its out-of-memory is INTERNAL, anything else about the input BAD_REQUEST
 * (the engine's: INTERNAL, the input having been checked before it runs). */
acmd_err acmd_err_of(acmd_err_domain d, int rc);

/* ---- per-request arena (server/arena.c) ----------------------------------------------------------------------------
 * Every block a request owns (body, decoded input, results, response body, error text) is allocated from, or handed
 * to, its arena; acmd_req_free frees them all at once: one free path per request. Small blocks come out of chunks,
 * large ones (a body, pixels) are blocks of their own so that they can grow (realloc) or die early (release: decoded
 * inputs once the engine has run them). Only the request's owner of the moment touches it (see the states above), so
 * it has no lock. */
typedef struct {
    void **blk;        /* blocks owned: chunks and large blocks, malloc'd */
    size_t n, cap;
    char *chunk;       /* the current chunk: small blocks are cut from it */
    size_t used, size;
} acmd_arena;

void *acmd_arena_alloc(acmd_arena *a, size_t n);           /* NULL: out of memory */
void *acmd_arena_calloc(acmd_arena *a, size_t n);
/* Resizes a block of this arena holding `old` bytes (p NULL: a new large block); NULL (p kept) when out of memory. */
void *acmd_arena_realloc(acmd_arena *a, void *p, size_t old, size_t n);
/* Takes ownership of a malloc'd block (from a library); NULL when p is NULL or out of memory (p then freed). */
void *acmd_arena_adopt(acmd_arena *a, void *p);
/* Frees one large block now (p NULL: nothing). */
void acmd_arena_release(acmd_arena *a, void *p);
void acmd_arena_free(acmd_arena *a);

/* ---- requests -----------------------------------------------------------------------------------------------------
 * A request is grouped by who fills what, in the order it happens: http (the connection's side), body, sla (the
 * service terms), in (the decoded input), out (what the engine made), t (times) and resp (the answer). */

/* The input a worker decodes a body into and the engine runs, n items of one kind. An image request holds pixels;
 * an audio request (a whole file, or one chunk of a stream) will hold PCM samples the same way: the scheduler and the
 * cost model see items, tokens and FLOPs, never the kind. */
typedef enum { ACMD_INPUT_IMAGE = 0, ACMD_INPUT_AUDIO } acmd_input_kind;
typedef struct {
    acmd_input_kind kind;
    int n_items;
    float *data;      /* IMAGE: [n_items, C, S, S] pixels; AUDIO: [n_samples] PCM at the model's rate (arena) */
    size_t n_samples; /* AUDIO */
    size_t mem;       /* bytes of data counted against --max-buffered-bytes while held */
} acmd_input;

/* The service terms: headers parsed once where they arrive (http.c), resolved with the OIP parameters at admission
 * (admit.c); the budget of a deadline request is decided at dispatch (queue.c). */
typedef struct {
    acm_sla_headers hdr;
    char policy_name[16];    /* X-Compute-Policy ("": none) */
    acm_sla_budget budget;   /* the budget range */
    acm_sla_sched sched;     /* deadline, urgency */
    acm_policy policy;       /* as applied: kind, and beta (decided at dispatch for a deadline request) */
    int has_deadline;        /* the request set a deadline */
    uint64_t t_deadline;     /* absolute (ns): the request's deadline, else arrival + --default-deadline-ms, both
                              * counted from the request's start: arrival less age_s */
    double age_s;            /* X-Request-Start: seconds the request spent before its headers reached acmd (0: none) */
    uint64_t seq;            /* arrival order (queue order among equals) */
    int64_t items;           /* items, for the cost model (OIP: the peeked batch dimension) */
    double predicted_ms;     /* predicted finish from arrival, decided at dispatch; < 0 before */
} acmd_sla;

/* What the engine made, and the output the request asked for (worker). */
typedef struct {
    float *logits;           /* [n_items, K] (arena) */
    uint8_t *kmap;           /* [n_items, num_acms, T] when explain (arena) */
    double flops, flops_dense, realised;
    double compute_s;        /* the whole batch: decode, engine, bodies */
    double engine_s;         /* of compute_s, the engine calls (what the cost model predicts and learns from) */
    int batch_size, batch_first, worker;
    int explain;             /* ?explain=1 or the OIP parameter: the per-token compute map */
    int want_logits, want_label; /* OIP outputs returned: those the request names */
    int bin_logits, bin_label;   /* OIP binary outputs */
    char id[ACM_OIP_MAX_ID + 1]; /* OIP: the body's id, else X-Request-Id */
    /* transcription (speech models): [tokens, K] logits in `logits`, the text and words of the greedy CTC decoder */
    int64_t tokens;
    char *text;              /* (arena), NUL-terminated */
    acm_ctc_word *words;     /* [n_words] (arena); offsets into text */
    int n_words;
    double audio_s;          /* seconds of 16 kHz audio decoded */
    /* the batch's totals, on its first request (worker -> I/O thread: the cost model's sample; secs the engine calls'
     * time only, as the warm-up prior measures it: decoding and response bodies vary with the input, not with what
     * the model predicts) */
    int batch_lead;
    double b_items, b_flops, b_secs;
} acmd_output;

typedef struct acmd_req {
    struct acmd_req *next; /* model queue, then batch, then result queue */
    struct acmd_ws *ws;    /* a WebSocket stream's request: its socket's side (ws.c); NULL once that has closed */
    struct acmd_server *srv;
    struct MHD_Connection *conn;
    acmd_req_state state;
    acmd_route route;
    acmd_model *model;
    acmd_arena arena;
    struct {                  /* the connection's side (I/O thread) */
        char method[8];
        char path[256];
        char id[ACM_OIP_MAX_ID + 1]; /* X-Request-Id (visible ASCII, at most ACM_OIP_MAX_ID bytes), else generated */
        char traceparent[128], peer[64];
        char key[64];         /* --auth-file: the name of the request's key ("": none) */
        const char *id_error; /* why X-Request-Id was refused (400), or NULL */
        int http11;           /* HTTP/1.1 (not 1.0): an interim 1xx may be sent */
        int started;          /* the request line and headers have been acted on (routing, admission) */
        int bodiless;         /* no Content-Length above 0 and no Transfer-Encoding: acted on in the second call */
        int body_done;        /* the handler's last call came: the body (if any) has been read to its end */
        int suspended;        /* queued or running: the connection is suspended */
        int timed_out;        /* closed by the --request-timeout sweep (server.c) while arriving: a 408 */
        int orphan;           /* its connection went away while a worker held it: freed when the batch comes back */
        int toe;              /* an orphan's MHD_RequestTerminationCode (counted when it comes back) */
        uint64_t probe_until; /* queued, half-closed: held until then while a probe looks for a reset (0: not probed) */
        size_t bytes_in, bytes_out;
    } http;
    struct {                  /* the request body (RECEIVING, I/O thread) */
        uint8_t *data;        /* (arena) */
        size_t len, cap;
        int error;            /* while receiving: 413 (over --max-body-bytes) or 503 (over --max-buffered-bytes) */
        size_t mem;           /* bytes counted against --max-buffered-bytes (Content-Length reserved, else as it grows) */
        size_t json_len;      /* OIP: bytes of the JSON header (Inference-Header-Content-Length, else the body) */
        char type[128];       /* Content-Type */
    } body;
    acmd_sla sla;
    acmd_input in;
    acmd_output out;
    /* A transcription decoded as its body arrives (WAV and raw PCM: decode.c). The I/O thread decodes the bytes into
     * `pend` and queues the request whenever a chunk's worth waits (or the body has ended); dispatch hands `pend` over
     * as `job`, and a worker feeds it to the request's own engine stream and runs its ready chunks (batch.c), so the
     * request is QUEUED or RUNNING while its body still arrives, and back to RECEIVING between jobs. Whoever holds
     * the request's state (see above) holds `st`, `job` and `out`; the I/O thread keeps `dec` and `pend`. */
    struct {
        int on;
        int raw;                  /* raw PCM (no header of its own) */
        acm_audio_stream *dec;    /* the body's decoder (I/O thread) */
        acm_stream *st;           /* the request's engine stream (its holder's) */
        float *pend;              /* [n_pend] 16 kHz samples decoded, not yet handed (I/O thread; malloc'd) */
        size_t n_pend, cap_pend;
        float *job;               /* [n_job] the samples of the job in hand (malloc'd; the worker frees them) */
        size_t n_job;
        size_t samples;           /* decoded so far */
        size_t logits_cap;        /* floats out.logits holds (worker) */
        double compute_s, engine_s; /* of the jobs run before the one in hand (worker) */
        size_t mem;               /* bytes counted against --max-buffered-bytes: the stream's state */
        uint8_t head[12];         /* raw PCM: the first bytes, to refuse a container declared as raw */
        size_t n_head;
        int last;                 /* the body has ended: every sample is decoded (I/O thread) */
        int job_last;             /* the job in hand ends the stream (set at hand-over) */
        int job_chunks;           /* chunks a job takes at most (0: ACMD_JOB_CHUNKS); a WebSocket stream with
                                   * endpointing takes 1, so that its endpoint is looked for after every chunk,
                                   * whatever the pacing of its audio (I/O thread: ws.c sets it, dispatch reads it) */
        int jobs;                 /* jobs run so far */
        int failed;               /* the I/O thread refused the body while a worker held the request: answered with */
        acmd_err fail_err;        /* this once the job is back */
        char fail_msg[256];
    } au;
    struct {                  /* ns, CLOCK_MONOTONIC; the phases of acm_request_phase_seconds between them */
        uint64_t arrive;      /* headers in                                   } admission (body, checks, admission) */
        uint64_t queued;      /* admitted, in its model's queue               } queue */
        uint64_t handed;      /* dispatch decided, handed to a worker (I/O)   } handover (the worker's wake-up) */
        uint64_t dispatch;    /* the worker took the batch up                 } compute (decode, engine, bodies) */
        uint64_t computed;    /* the batch done (worker)                      } return (result queue, I/O thread) */
        uint64_t done;        /* the response queued to MHD                   } send */
        uint64_t sent;        /* the last byte written (completion callback) */
    } t;
    struct {                  /* the answer */
        int status;
        char *body;           /* (arena) */
        size_t len;
        const char *type;
        size_t json_len;      /* OIP binary: Inference-Header-Content-Length of the answer (0: none) */
        char allow[64];       /* 405 */
        char err[512];
        const char *reason;   /* metrics label when refused before queueing (acmd_err_reason) */
        int retry_after;      /* 429/503: seconds for Retry-After (0: 1) */
        int responded;
        int ws_version;       /* a WebSocket handshake of another version: Sec-WebSocket-Version: 13 in the answer */
    } resp;
} acmd_req;

typedef struct acmd_worker {
    struct acmd_server *srv;
    int index;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    acmd_req *job;        /* batch handed over (I/O thread -> worker) */
    acmd_model *job_model;
    int busy;             /* I/O thread's view */
    uint64_t t_start;     /* I/O thread: when the current batch was handed over, and its predicted seconds */
    double pred_s;
    int stop;
    int warm;             /* I/O thread's view: warm-up done */
    /* engine state, one per model: scratch sized at start-up for the model's largest batch */
    struct {
        acm_worker *w;
        acm_item *items;   /* [max_batch] */
        acm_result *res;   /* [max_batch] */
        float *logits;     /* [max_batch, K] */
        uint8_t *kmap;     /* [max_batch, num_acms, T] */
        float *zeros;      /* [C, S, S] warm-up input (speech: [2 x chunk_samples] of silence) */
        acm_stream **streams; /* speech: [max_batch] streams, one per request of a batch, reset per request */
        /* warm-up measurements (written before the warm-up message; read by the I/O thread after it) */
        double warm_items[4], warm_flops[4], warm_secs[4];
        int n_warm;
        double flops_fixed;
    } eng[ACMD_MAX_MODELS];
    char err[256];
    int failed;
} acmd_worker;

typedef struct acmd_server {
    acmd_config cfg;
    acmd_model models[ACMD_MAX_MODELS];
    int n_models;
    int n_workers;
    acmd_worker *workers;
    acmd_metrics *metrics;
    uv_loop_t *loop;
    uv_poll_t mhd_poll;
    uv_timer_t mhd_timer, sweep_timer, batch_timer, drain_timer;
    uv_async_t async;
    uv_signal_t sig_term, sig_int, sig_hup;
    acmd_keys keys;        /* --auth-file (I/O thread; replaced on SIGHUP) */
    int auth;              /* --auth-file is set: routes that want a key refuse requests without one */
    int tls;               /* --tls-cert: the listener speaks HTTPS only (the certificate in force: tls.c) */
    /* the access log, I/O thread only: lines gather here and go to stderr in one write per loop iteration (a uv_prepare
     * handle: just before the loop waits) or at 64 KiB, instead of one unbuffered write(2) per request */
    uv_prepare_t log_flush_handle;
    pthread_t io_thread;
    char *log_buf;
    size_t log_len, log_cap;
    FILE *log_file;        /* --log-file, or NULL: the log goes to stderr */
    struct MHD_Daemon *mhd;
    int port;
    /* results (workers -> I/O thread) */
    pthread_mutex_t res_mu;
    acmd_req *res_head, *res_tail;
    int warm_msgs;         /* workers that finished warming up (under res_mu) */
    int ready, draining, stopping;
    int accepting;         /* the listening socket is open (until --drain-grace-s after the signal) */
    int cut;               /* the drain was cut short (exit timeout, second signal): queued requests got 503 */
    uint64_t drain_start;
    double drain_grace;    /* seconds of this drain's grace period */
    int hold_fd;           /* --test-hold FIFO, -1 without */
    int streams;           /* WebSocket streams open (ws.c) */
    int in_flight;         /* RUNNING requests */
    int suspended;         /* suspended connections */
    int open_requests;     /* requests not yet completed by MHD */
    int connections;
    /* bytes counted against --max-buffered-bytes: bodies (reserved by the I/O thread, which alone refuses on it) and
     * decoded inputs (added and released by the workers while they hold them) */
    atomic_llong buffered;
    int log_level;         /* 0 error .. 3 debug */
    int log_json;
    int exit_code;
    uint64_t seq;          /* requests admitted so far (queue order among equals) */
} acmd_server;

uint64_t acmd_now_ns(void);

/* server/server.c */
int acmd_server_init(acmd_server *s, const acmd_config *cfg, char *err, size_t errlen);
int acmd_server_run(acmd_server *s); /* runs the loop until drained; returns the exit status */
void acmd_server_free(acmd_server *s);
void acmd_log(acmd_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Appends one access-log line (I/O thread); written at the end of the loop iteration. */
void acmd_log_access(acmd_server *s, const char *line, size_t n);
void acmd_log_flush(acmd_server *s);

/* server/admit.c: admission (I/O thread) */
/* Admission of a request whose body is here: resolves its budget and scheduling terms (the OIP parameters from
 * peek, NULL for /classify) and refuses what cannot be met. Returns 0 to queue it, or fills the error (400, 504). */
int acmd_admit(acmd_server *s, acmd_req *r, const acm_oip_peek *oip);
/* The same refusal at the headers, before the body is read, for a request with X-Deadline-Ms: what the body could
 * still change is taken at its most favourable (one item, the most urgent priority a client may claim, the floor of
 * the headers and the model). Returns 0 to read the body, or -1 with the 504 filled. */
int acmd_admit_early(acmd_server *s, acmd_req *r);
/* The policy a request runs under from its budget range and terms (pure: no server state besides the arguments).
 * policy_name: X-Compute-Policy or the OIP parameter (NULL/"": none). Returns 0, or -1 with a 400 message. */
int acmd_admit_policy(acm_policy *out, acm_sla_budget *budget, int has_deadline, const char *policy_name,
                      acm_policy model_default, const char *request_policy, char *err, size_t errlen);

/* server/budget.c: the budget arithmetic (pure functions of a model's cost figures and the requests) */
/* The beta a request's answer reports as applied: its policy's beta, 1 under argmax (the gates alone decide). */
double acmd_budget_applied(const acmd_req *r);
/* FLOPs of a request's items at budget beta (the cost model's unit of work). */
double acmd_budget_flops(const acmd_model *m, const acmd_req *r, double beta);
/* The least a request can cost: a deadline request at its floor; any other at its own policy (argmax as 1). */
double acmd_budget_min_flops(const acmd_model *m, const acmd_req *r);
/* Predicted seconds of a batch of `items` items and `flops` FLOPs. */
double acmd_budget_predict(const acmd_model *m, double items, double flops);
/* Predicted seconds of a batch (a list through ->next) with its deadline requests at a common beta c, each clamped
 * to its own [min, max]. */
double acmd_budget_batch_time(const acmd_model *m, const acmd_req *batch, double c);
/* The largest common c in [0, 1] whose predicted batch time fits in slack_s seconds (0 when nothing does). */
double acmd_budget_decide(const acmd_model *m, const acmd_req *batch, double slack_s);
/* c clamped to a deadline request's own range. */
double acmd_budget_clamp(const acmd_req *r, double c);
/* acmd_budget_decide with hysteresis: the previous decision *prev (< 0: none) is kept while it still fits in slack_s
 * and a larger one would not fit in slack_s - band_s; else the nearest of the two bounds. Updates *prev. */
double acmd_budget_decide_held(const acmd_model *m, const acmd_req *batch, double slack_s, double band_s, double *prev);

/* server/queue.c: the queues and dispatch (I/O thread) */
/* Queue order: 1 when a goes before b at `now` (urgency improved by one level per aging_ms waited, then the earlier
 * deadline, then arrival). */
int acmd_queue_before(double aging_ms, const acmd_req *a, const acmd_req *b, uint64_t now);
void acmd_queue_push(acmd_server *s, acmd_req *r);
void acmd_queue_dispatch(acmd_server *s);
/* Queues the next job of a streamed transcription (decode.c): its items are the chunks waiting, and its deadline
 * (for queue order, and the budget of a deadline request) runs from now: for the last job, from the body's last byte,
 * whose answer someone awaits; a job before it is given twice that time, so that answers due go first in the queue
 * order while the stream still keeps up. */
void acmd_queue_stream(acmd_server *s, acmd_req *r);
/* Removes r from its model's queue wherever it is (0 when it was not there). */
int acmd_queue_remove(acmd_server *s, acmd_req *r);
/* Runs dispatch again at `at` (ns) at the latest. */
void acmd_queue_wake(acmd_server *s, uint64_t at);
/* Counts a deadline miss of r in `phase` (ACMD_MISS_*): the model's stats and acm_deadline_misses_total. */
void acmd_queue_miss(acmd_server *s, acmd_req *r, int phase);
/* Sets acm_queue_depth of m. */
void acmd_queue_depth(acmd_server *s, acmd_model *m);
/* A request answered 200 has been sent (completion, t.sent set): its phases go to acm_request_phase_seconds and the
 * residual of its path after dispatch to its model's error model. */
void acmd_queue_observe_path(acmd_server *s, acmd_req *r);
/* The phase labels of acm_request_phase_seconds, in path order (see acmd_req.t). */
#define ACMD_PATH_PHASES 6
extern const char *const acmd_path_phases[ACMD_PATH_PHASES];

/* server/peer.c: whether the client of a queued request is still there (I/O thread) */
typedef enum { ACMD_PEER_HERE, ACMD_PEER_GONE, ACMD_PEER_PROBING } acmd_peer;
acmd_peer acmd_peer_state(acmd_server *s, acmd_req *r, uint64_t now);

/* server/workers.c: the worker threads, the hand-over and the result queue */
int acmd_workers_start(acmd_server *s, char *err, size_t errlen);
/* Asks every worker to stop after its batch and joins them; their results stay in the result queue. */
void acmd_workers_stop(acmd_server *s);
/* Frees the workers' engine state (after acmd_workers_stop and once the result queue has been drained). */
void acmd_workers_free(acmd_server *s);
/* Hands a batch to an idle worker (I/O thread). */
void acmd_workers_hand(acmd_worker *w, acmd_model *m, acmd_req *batch, double pred_s, uint64_t now);
/* The result queue's callback (I/O thread): learns, counts and answers every batch that came back. */
void acmd_workers_on_async(uv_async_t *a);

/* server/batch.c: a batch on a worker thread: decode (decode.c), engine, response bodies (respond.c). */
void acmd_batch_run(acmd_worker *w, acmd_model *m, acmd_req *batch);
/* server/decode.c: a request's body to its input (worker); on failure fills the error. */
void acmd_decode(acmd_worker *w, acmd_req *r);
/* The OIP inputs a worker runs, in order of preference, and the items an OIP request counts for the cost model. */
int64_t acmd_decode_oip_items(const acm_oip_peek *oip);
/* The items (chunks of the model) a /transcribe body counts for the cost model before it is decoded: exact for raw
 * PCM, from the body's length at 16-bit mono 16 kHz for containers (a WAV's header is not read on the I/O thread). */
int64_t acmd_decode_audio_items(const acmd_req *r);
/* Transcriptions decoded as the body arrives (I/O thread; decode.c). Whether a /transcribe request's body streams: its
 * Content-Type names WAV or raw PCM (FLAC, Ogg and sniffed bodies are decoded whole by a worker). */
int acmd_decode_streams(const acmd_req *r);
/* Creates the request's decoder and engine stream; 0, or -1 with the error filled. */
int acmd_decode_stream_begin(acmd_server *s, acmd_req *r);
/* Decodes n more bytes of the body into au.pend, checking the limits (--max-body-bytes, --max-audio-seconds, rate,
 * channels) as they come; 0, or -1 with the error in au.fail_err/fail_msg (the request's answer once it is free). */
int acmd_decode_stream_push(acmd_server *s, acmd_req *r, const void *bytes, size_t n);
/* The body has ended: the decoder's tail into au.pend; 0 or -1 as for push. */
int acmd_decode_stream_end(acmd_server *s, acmd_req *r);
/* Dispatch takes the request: au.pend, ACMD_JOB_CHUNKS chunks of it at most, becomes the job (the last one once the
 * body has ended and nothing is left). */
#define ACMD_JOB_CHUNKS 8
/* A stream's endpoint_ms when it asks for none: 800 ms of blank after a word end its segment. A whole file (POST
 * /transcribe, OIP) is decoded with the same pause as a word break (acm_ctc_params.pause_break_s), so that its text
 * cuts words where a stream's segments end. */
#define ACMD_ENDPOINT_S 0.8
/* A transcription's own engine stream: the model's, greedy, words broken at ACMD_ENDPOINT_S of blank. */
acm_stream *acmd_transcribe_stream_new(const acm_model *m, char *err, size_t errlen);
void acmd_decode_stream_hand(acmd_req *r);
/* Frees what the request's stream holds (I/O thread, the request not RUNNING). */
void acmd_decode_stream_free(acmd_server *s, acmd_req *r);
#define ACMD_MAX_ITEMS_PER_REQUEST 256
/* server/respond.c: a request's 200 body (worker); 0, or -1 out of memory. */
int acmd_respond_body(acmd_req *r, uint64_t now);

/* server/ws.c: WebSocket streams (I/O thread) */
/* A GET on the stream route: 0 when the 101 is queued (the socket becomes a stream once sent), -1 with r's error filled
 * (to be answered), 1 when MHD refused the response. */
int acmd_ws_handshake(acmd_server *s, acmd_req *r, struct MHD_Connection *conn);
/* A stream's job is back from its worker (workers.c): partial, final, next job. */
void acmd_ws_back(acmd_server *s, acmd_req *r);
/* Closes every stream: with 1001 and the close handshake (now = 0: the drain), or at once (now = 1). */
void acmd_ws_shutdown(acmd_server *s, int now);

/* server/demo.c: the page of GET /demo/ (its bytes, *len of them; static) */
const char *acmd_demo_page(size_t *len);

/* server/http.c */
enum MHD_Result acmd_http_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_data_size,
                                  void **con_cls);
void acmd_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe);
void acmd_http_notify_conn(void *cls, struct MHD_Connection *conn, void **socket_context,
                           enum MHD_ConnectionNotificationCode toe);
/* A streamed transcription whose client left while a worker held it is back: counted, logged and freed. */
void acmd_http_orphan_back(acmd_server *s, acmd_req *r);
/* Resumes a request's connection so that its response (resp.status, resp.body) is sent. */
void acmd_http_finish(acmd_server *s, acmd_req *r);
/* Runs MHD once and re-arms its timer. */
void acmd_http_kick(acmd_server *s);
/* A new request (its arena empty), or NULL. */
acmd_req *acmd_req_new(void);
/* Frees a request: its arena, and what it held of --max-buffered-bytes (I/O thread). */
void acmd_req_free(acmd_server *s, acmd_req *r);
/* Adds (> 0) or releases (< 0) bytes of --max-buffered-bytes; any thread. */
void acmd_mem_add(acmd_server *s, long long bytes);
/* server/respond.c: fails a request with e: status, {"error": message} body, and (while it is still arriving) the
 * rejection reason of e. Any thread that owns r. */
void acmd_req_fail(acmd_req *r, acmd_err e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* 1 when the request asked for a budget ceiling (X-Compute-Budget or the compute_budget parameter): its answer's
 * `budget_requested` is that value; otherwise null (none was asked, or a deadline chose the budget). */
static inline int acmd_budget_asked(const acmd_req *r) {
    return r->sla.budget.source == ACM_BUDGET_HEADER || r->sla.budget.source == ACM_BUDGET_PARAMETER;
}

#endif
