/*
 * bench_streams.c — `acm bench --streams N`: N WebSocket transcription streams at once (GET /v1/models/MODEL/stream,
 * clients/ws.c), each sending one audio file (decoded here to 16 kHz, sent as f32le frames of 100 ms) in real time,
 * looped for --seconds, then `end`; all at once, or their starts spread over --ramp seconds. Reports each partial's chunk latency as the server measured it (`latency_ms`:
 * from a chunk's last sample received to its partial queued) and as this client sees it (from the frame that
 * completed the chunk's audio being sent to its partial read; the chunk's length from the `ready` message), the
 * realised budget and FLOPs per second of audio, the mean number of chunks in the engine call of a partial (`batch`),
 * and the streams that failed. One thread per stream.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "acmc.h"
#include "audio.h"

static const char *const streams_help =
    "usage: acm bench --streams N [options] FILE\n"
    "N WebSocket streams at once, each sending FILE (WAV, FLAC or Ogg) in real time to GET /v1/models/MODEL/stream\n"
    "for --seconds (the file looped), then end; reports the chunk latency (server and client side), the budget\n"
    "realised, FLOPs per second of audio, chunks per engine call and the streams that failed.\n\n"
    "options:\n"
    "  --model NAME        the speech model (default speech)\n"
    "  --budget B          the streams' budget, in (0, 1] (default: the model's policy)\n"
    "  --seconds S         audio seconds per stream (default 10)\n"
    "  --ramp S            stream k of N starts k*S/N seconds after the first (default 0: all at once, so that\n"
    "                      every chunk boundary is a burst of N chunks; live streams start at random times)\n"
    "  --server URL        the server (default " ACMC_DEFAULT_SERVER ", http:// only)\n"
    "  --timeout S         seconds to wait for a stream's end after its audio (default 30)\n"
    "  --json              one JSON object instead of text\n";

typedef struct {
    const char *server, *path;
    const float *pcm;
    size_t n_pcm, total;
    double timeout_s, start_s; /* start_s: its start after the first stream's (--ramp) */
    /* results */
    acmc_samples srv, cli;
    double flops, flops_dense, budget_sum, batch_sum;
    long partials;
    int ok;
    char err[256];
    /* the stream's clock: when the audio up to each sample was sent */
    double t0, chunk_s;
    double *sent_at;      /* [frames] when each 100 ms frame was sent */
    size_t n_frames;
    double audio_run;
} bs__stream;

static double bs__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void bs__msg(void *ud, const char *t, size_t n) {
    bs__stream *s = ud;
    json_t *j = json_loadb(t, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type"));
    if (type && !strcmp(type, "ready")) s->chunk_s = json_number_value(json_object_get(j, "chunk_s"));
    if (type && !strcmp(type, "partial")) {
        json_t *c = json_object_get(j, "chunk");
        acmc_samples_add(&s->srv, json_number_value(json_object_get(c, "latency_ms")));
        /* audio_s: the audio run so far, whose last sample went in the frame sent at sent_at[f]; read now */
        const double a = json_number_value(json_object_get(j, "audio_s"));
        size_t f = a > 0 ? (size_t)((a * 16000 - 1) / 1600) : 0;
        if (f >= s->n_frames) f = s->n_frames - 1;
        if (a > s->audio_run && s->sent_at[f] > 0) acmc_samples_add(&s->cli, (bs__now() - s->sent_at[f]) * 1e3);
        if (a > s->audio_run) s->audio_run = a;
        s->flops += json_number_value(json_object_get(c, "flops"));
        s->flops_dense += json_number_value(json_object_get(c, "flops_dense"));
        s->budget_sum += json_number_value(json_object_get(c, "budget"));
        s->batch_sum += json_number_value(json_object_get(c, "batch"));
        s->partials++;
    }
    if (type && !strcmp(type, "error")) snprintf(s->err, sizeof s->err, "%s", json_string_value(json_object_get(j, "error")));
    json_decref(j);
}

static void *bs__run(void *arg) {
    bs__stream *s = arg;
    acmc_ws *w = acmc_ws_open(s->server, s->path, acmc_auth_header(), s->timeout_s, s->err, sizeof s->err);
    if (!w) return NULL;
    const size_t step = 1600;
    int code = 0, r = 0;
    s->n_frames = (s->total + step - 1) / step;
    if (!(s->sent_at = calloc(s->n_frames, sizeof *s->sent_at))) return acmc_ws_free(w), NULL;
    s->t0 = bs__now() + s->start_s; /* the first frame is due 100 ms after t0: the loop below pumps until then */
    for (size_t o = 0, f = 0; o < s->total && !r && !s->err[0]; o += step, f++) {
        const size_t k = s->total - o < step ? s->total - o : step;
        /* as a live source: a frame goes once its audio has been "recorded", at t0 + its end */
        const double due = s->t0 + (double)(o + k) / 16000;
        do r = r ? r : acmc_ws_pump(w, (int)fmax(0, (due - bs__now()) * 1e3), bs__msg, s, &code);
        while (!r && bs__now() < due);
        float buf[1600];
        for (size_t i = 0; i < k; i++) buf[i] = s->pcm[(o + i) % s->n_pcm];
        s->sent_at[f] = bs__now();
        if (!r && acmc_ws_send(w, 0, buf, k * sizeof *buf)) r = -1;
    }
    if (!r && acmc_ws_send(w, 1, "{\"type\":\"end\"}", 14)) r = -1;
    const double until = bs__now() + s->timeout_s;
    while (!r && bs__now() < until) r = acmc_ws_pump(w, 100, bs__msg, s, &code);
    acmc_ws_free(w);
    s->ok = r == 1 && code == 1000 && !s->err[0];
    if (!s->ok && !s->err[0]) snprintf(s->err, sizeof s->err, "the stream ended with %s %d", r == 1 ? "close" : "state", r == 1 ? code : r);
    return NULL;
}

int acmc_bench_streams(int argc, char **argv) {
    acmc_common c;
    acmc_common_defaults(&c);
    char model[128] = "speech", err[1024], budget[32] = "";
    long n_streams = 0;
    double seconds = 10, ramp = 0, d;
    const char *file = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m = acmc_common_opt(&c, "bench", argc, argv, &i), bad = 0;
        if (m < 0) return -m;
        if (m) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return fputs(streams_help, stdout), 0;
        if ((m = acmc_opt(argc, argv, &i, "--streams", &v, err, sizeof err)) != 0)
            bad = m < 0 || acmc_parse_long("--streams", v, 1, 4096, &n_streams, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--model", &v, err, sizeof err)) != 0) {
            bad = m < 0 || !*v || strlen(v) >= sizeof model || strpbrk(v, "/?#%& ");
            if (bad && m > 0) snprintf(err, sizeof err, "--model: '%s' is not a model name", v);
            if (!bad) snprintf(model, sizeof model, "%s", v);
        } else if ((m = acmc_opt(argc, argv, &i, "--budget", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--budget", v, 0, 1, 1, &d, err, sizeof err);
            if (!bad) snprintf(budget, sizeof budget, "%g", d);
        } else if ((m = acmc_opt(argc, argv, &i, "--seconds", &v, err, sizeof err)) != 0)
            bad = m < 0 || acmc_parse_double("--seconds", v, 0.1, 3600, 0, &seconds, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--ramp", &v, err, sizeof err)) != 0)
            bad = m < 0 || acmc_parse_double("--ramp", v, 0, 3600, 0, &ramp, err, sizeof err);
        else if (argv[i][0] == '-' && argv[i][1]) bad = 1, snprintf(err, sizeof err, "unknown option '%s' (with --streams)", argv[i]);
        else if (file) bad = 1, snprintf(err, sizeof err, "one audio file (with --streams)");
        else file = argv[i];
        if (bad) return acmc_usage_error("bench", err);
    }
    if (!file) return acmc_usage_error("bench", "--streams wants an audio file");
    uint8_t *data = NULL;
    size_t len = 0, n = 0;
    int rc = acmc_read_file(file, &data, &len, (size_t)256 << 20, err, sizeof err);
    if (rc) return fprintf(stderr, "acm bench: %s\n", err), rc;
    float *pcm = NULL;
    rc = acm_audio_decode(NULL, data, len, acm_audio_default_params(), &pcm, &n, err, sizeof err);
    free(data);
    if (rc || !n) return fprintf(stderr, "acm bench: %s: %s\n", file, rc ? err : "no audio"), ACMC_EXIT_INPUT;
    char path[512];
    snprintf(path, sizeof path, "/v1/models/%s/stream?rate=16000&format=f32le&endpoint_ms=0%s%s", model,
             budget[0] ? "&budget=" : "", budget);
    bs__stream *st = calloc((size_t)n_streams, sizeof *st);
    pthread_t *th = calloc((size_t)n_streams, sizeof *th);
    if (!st || !th) return free(pcm), free(st), free(th), ACMC_EXIT_FAIL;
    for (long k = 0; k < n_streams; k++)
        st[k] = (bs__stream){.server = c.server, .path = path, .pcm = pcm, .n_pcm = n,
                             .total = (size_t)(seconds * 16000), .timeout_s = c.timeout_s,
                             .start_s = ramp * (double)k / (double)n_streams};
    for (long k = 0; k < n_streams; k++) pthread_create(&th[k], NULL, bs__run, &st[k]);
    for (long k = 0; k < n_streams; k++) pthread_join(th[k], NULL);
    acmc_samples srv = {0}, cli = {0};
    double flops = 0, dense = 0, bsum = 0, batch = 0;
    long partials = 0, failed = 0;
    for (long k = 0; k < n_streams; k++) {
        for (size_t i = 0; i < st[k].srv.n; i++) acmc_samples_add(&srv, st[k].srv.v[i]);
        for (size_t i = 0; i < st[k].cli.n; i++) acmc_samples_add(&cli, st[k].cli.v[i]);
        flops += st[k].flops, dense += st[k].flops_dense, bsum += st[k].budget_sum, partials += st[k].partials;
        batch += st[k].batch_sum;
        if (!st[k].ok) {
            if (!failed) fprintf(stderr, "acm bench: stream %ld: %s\n", k, st[k].err);
            failed++;
        }
        acmc_samples_free(&st[k].srv), acmc_samples_free(&st[k].cli);
        free(st[k].sent_at);
    }
    const double audio = seconds * (double)(n_streams - failed);
    json_t *o = json_pack("{s:i,s:f,s:f,s:i,s:i,s:{s:f,s:f,s:f,s:f},s:{s:f,s:f,s:f,s:f},s:f,s:f,s:f,s:s}", "streams", (int)n_streams,
                          "seconds", seconds, "ramp_s", ramp, "failed", (int)failed, "partials", (int)partials, "server_latency_ms", "p50",
                          acmc_samples_quantile(&srv, 0.5), "p95", acmc_samples_quantile(&srv, 0.95), "p99",
                          acmc_samples_quantile(&srv, 0.99), "max", acmc_samples_max(&srv), "client_latency_ms", "p50",
                          acmc_samples_quantile(&cli, 0.5), "p95", acmc_samples_quantile(&cli, 0.95), "p99",
                          acmc_samples_quantile(&cli, 0.99), "max", acmc_samples_max(&cli), "budget_realised",
                          partials ? bsum / (double)partials : 0, "batch_mean", partials ? batch / (double)partials : 0,
                          "flops_per_audio_second", audio > 0 ? flops / audio : 0,
                          "budget", budget[0] ? budget : "default");
    if (c.json) {
        json_dumpf(o, stdout, JSON_COMPACT);
        putchar('\n');
    } else {
        printf("%ld streams x %.1f s of audio in real time (%ld failed), %ld partials, budget %s (realised %.3f), "
               "%.3g FLOPs per second of audio (%.1f%% of dense), %.1f chunks per engine call on average\n", n_streams,
               seconds, failed, partials, budget[0] ? budget : "default", partials ? bsum / (double)partials : 0,
               audio > 0 ? flops / audio : 0, dense > 0 ? 100 * flops / dense : 0, partials ? batch / (double)partials : 0);
        printf("chunk latency, server (chunk's last sample in -> partial queued): p50 %.1f ms, p95 %.1f, p99 %.1f, max %.1f\n",
               acmc_samples_quantile(&srv, 0.5), acmc_samples_quantile(&srv, 0.95), acmc_samples_quantile(&srv, 0.99),
               acmc_samples_max(&srv));
        printf("chunk latency, client (audio sent -> partial read):          p50 %.1f ms, p95 %.1f, p99 %.1f, max %.1f\n",
               acmc_samples_quantile(&cli, 0.5), acmc_samples_quantile(&cli, 0.95), acmc_samples_quantile(&cli, 0.99),
               acmc_samples_max(&cli));
    }
    json_decref(o);
    acmc_samples_free(&srv), acmc_samples_free(&cli);
    free(st), free(th), free(pcm);
    return failed ? ACMC_EXIT_SERVER : 0;
}
