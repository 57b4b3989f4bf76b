/*
 * transcribe.c — `acm transcribe FILE...`: each audio file to POST /v1/models/MODEL/transcribe, several at once (one
 * thread per request in flight, libcurl easy handles: one per thread), the text and statistics printed in the order
 * the files were given, or one JSON object per line with --json.
 *
 * The content type comes from the file's first bytes (RIFF/WAVE, fLaC, OggS); anything else is refused here with the
 * file's name unless --type names it (e.g. raw PCM: --type 'audio/L16;rate=8000'). The server decodes; the client
 * does not (acmc.h).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acmc.h"
#include "audio.h"

#define TR_MAX_FILE ((size_t)256 << 20) /* above any server's --max-body-bytes we know of; the server says 413 */

static const char *const transcribe_help =
    "usage: acm transcribe [options] FILE...\n"
    "Sends each audio file (WAV, FLAC or Ogg, recognised by its first bytes) to POST /v1/models/MODEL/transcribe,\n"
    "several at once, and prints for each, in the order given: the text, the audio's length, the real-time factor,\n"
    "the budget applied and realised, FLOPs against the dense model's, and the server's timings.\n\n"
    "options:\n"
    "  --model NAME        the speech model (default speech)\n"
    "  --budget B          X-Compute-Budget: the ceiling on learner compute, in (0, 1] (default: the model's)\n"
    "  --deadline-ms D     X-Deadline-Ms: the answer within D ms of the request's arrival (default: none)\n"
    "  --parallel N        requests in flight at once, 1..64 (default 4)\n"
    "  --type TYPE         Content-Type for every file instead of sniffing (raw PCM: 'audio/L16;rate=R',\n"
    "                      'audio/x-raw;format=S16LE;rate=R')\n"
    "  --words             also print every word with its start and end times\n"
    "  --server URL        the server (default " ACMC_DEFAULT_SERVER ")\n"
    "  --timeout S         seconds for each request, connection included (default 30)\n"
    "  --api-key KEY       sent as Authorization: Bearer KEY (default: $ACM_API_KEY; none without it)\n"
    "  --json              print each server answer as one JSON line (with file and client_ms) instead of text\n"
    "  --stream            one FILE over the WebSocket route GET /v1/models/MODEL/stream instead: decoded here to\n"
    "                      16 kHz, sent in 100 ms frames paced in real time; partials are printed in place (on a\n"
    "                      terminal), each segment's final on a line of its own (--json: every server message)\n"
    "  --speed X           with --stream: send X times faster than real time (0: as fast as possible; default 1)\n"
    "  --compare-stream    each FILE both ways: the whole file as above, then the same audio as a stream, decoded\n"
    "                      here and sent in the same 100 ms frames as --stream at --speed (default 0 here: as fast\n"
    "                      as possible; a server with --stream-max-behind 0 then keeps the budget); prints per file\n"
    "                      'same' or 'differs' (the stream's segment texts joined against the whole file's text,\n"
    "                      word for word; 'words cut elsewhere only' when the letters are the same) and how many\n"
    "                      were the same (--json: a line per file, then the summary)\n";

typedef struct {
    const char *file, *url, *type;
    const char *const *headers;
    double timeout_s;
    int rc;
    char err[1024];
    json_t *answer;
    double client_ms;
    /* --compare-stream: the stream's side */
    const acmc_common *common;
    const char *model, *budget;
    double speed;
    int compare, segments;
    acmc_buf finals; /* the segments' texts, joined with spaces */
} tr__job;

static int tr__stream_collect(tr__job *j, const uint8_t *data, size_t len, const char *type);

/* The file's media type from its first bytes, or NULL. */
static const char *tr__sniff(const uint8_t *b, size_t n) {
    if (n >= 12 && !memcmp(b, "RIFF", 4) && !memcmp(b + 8, "WAVE", 4)) return "audio/wav";
    if (n >= 4 && !memcmp(b, "fLaC", 4)) return "audio/flac";
    if (n >= 4 && !memcmp(b, "OggS", 4)) return "audio/ogg";
    return NULL;
}

static void tr__run(tr__job *j) {
    uint8_t *data = NULL;
    size_t len = 0;
    j->rc = acmc_read_file(j->file, &data, &len, TR_MAX_FILE, j->err, sizeof j->err);
    if (j->rc) return;
    const char *type = j->type ? j->type : tr__sniff(data, len);
    if (!type) {
        snprintf(j->err, sizeof j->err, "%s: not a WAV, FLAC or Ogg file (raw PCM: give --type)", j->file);
        j->rc = ACMC_EXIT_INPUT;
        free(data);
        return;
    }
    acmc_resp r = {0};
    char e[512];
    j->rc = acmc_http(j->url, j->headers, data, len, type, j->timeout_s, &r, e, sizeof e);
    if (j->rc) {
        snprintf(j->err, sizeof j->err, "%s: %s", j->file, e);
    } else if (r.status != 200) {
        char se[900];
        acmc_server_error(&r, se, sizeof se);
        snprintf(j->err, sizeof j->err, "%s: the server answered %s", j->file, se);
        j->rc = ACMC_EXIT_SERVER;
    } else if (!(j->answer = json_loadb(r.body.data, r.body.len, 0, NULL)) || !json_is_string(json_object_get(j->answer, "text"))) {
        snprintf(j->err, sizeof j->err, "%s: the server's answer is not a transcription", j->file);
        j->rc = ACMC_EXIT_SERVER;
    }
    j->client_ms = r.seconds * 1e3;
    acmc_resp_free(&r);
    if (!j->rc && j->compare) j->rc = tr__stream_collect(j, data, len, type);
    free(data);
}

typedef struct {
    tr__job *jobs;
    int n, next;
    pthread_mutex_t mu;
} tr__pool;

static void *tr__worker(void *arg) {
    tr__pool *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        const int i = p->next < p->n ? p->next++ : -1;
        pthread_mutex_unlock(&p->mu);
        if (i < 0) return NULL;
        tr__run(&p->jobs[i]);
    }
}

static double tr__num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

static void tr__print(const tr__job *j, int words) {
    json_t *a = j->answer;
    printf("%s: %s\n", j->file, json_string_value(json_object_get(a, "text")));
    const double fl = tr__num(a, "flops"), fd = tr__num(a, "flops_dense");
    printf("  %.2f s of audio, real-time factor %.4f, budget applied %.3g realised %.3f, FLOPs %.3g (%.1f%% of dense)\n",
           tr__num(a, "audio_seconds"), tr__num(a, "real_time_factor"), tr__num(a, "budget_applied"),
           tr__num(a, "budget_realised"), fl, fd > 0 ? 100 * fl / fd : 0);
    json_t *t = json_object_get(a, "timing");
    printf("  queue %.2f ms, compute %.2f ms, server %.2f ms, client %.2f ms\n", tr__num(t, "queue_ms"),
           tr__num(t, "compute_ms"), tr__num(t, "total_ms"), j->client_ms);
    if (words) {
        json_t *w = json_object_get(a, "words");
        for (size_t i = 0; i < json_array_size(w); i++) {
            json_t *x = json_array_get(w, i);
            printf("  %8.2f %8.2f  %s\n", tr__num(x, "start"), tr__num(x, "end"),
                   json_string_value(json_object_get(x, "word")));
        }
    }
}

/* ---- --stream: one file over the WebSocket route ------------------------------------------------------------------ */

typedef struct {
    int json, tty, words, failed, finals;
    const char *file;
    acmc_buf *collect; /* --compare-stream: finals' texts appended here, nothing printed */
    char err[512];
} tr__st;

static void tr__on_msg(void *ud, const char *t, size_t n) {
    tr__st *st = ud;
    json_t *j = json_loadb(t, n, 0, NULL);
    const char *type = json_string_value(json_object_get(j, "type")), *text = json_string_value(json_object_get(j, "text"));
    if (st->collect) {
        if (type && !strcmp(type, "final")) {
            if ((st->collect->len && acmc_buf_append(st->collect, " ", 1)) ||
                acmc_buf_append(st->collect, text ? text : "", text ? strlen(text) : 0))
                st->failed = 1, snprintf(st->err, sizeof st->err, "out of memory");
            st->finals++;
        } else if (type && !strcmp(type, "error")) {
            snprintf(st->err, sizeof st->err, "the server says: %s", json_string_value(json_object_get(j, "error")));
            st->failed = 1;
        }
        json_decref(j);
        return;
    }
    if (st->json) {
        printf("%.*s\n", (int)n, t);
    } else if (type && !strcmp(type, "partial") && st->tty) {
        printf("\r\033[K%s", text ? text : "");
    } else if (type && !strcmp(type, "final")) {
        printf("%s%s\n", st->tty ? "\r\033[K" : "", text ? text : "");
        json_t *ws = json_object_get(j, "words");
        for (size_t i = 0; st->words && i < json_array_size(ws); i++) {
            json_t *w = json_array_get(ws, i);
            printf("  %8.2f %8.2f  %s\n", json_number_value(json_object_get(w, "start")),
                   json_number_value(json_object_get(w, "end")), json_string_value(json_object_get(w, "word")));
        }
        st->finals++;
    }
    if (type && !strcmp(type, "error")) {
        fprintf(stderr, "acm transcribe: %s: the server says: %s\n", st->file, json_string_value(json_object_get(j, "error")));
        st->failed = 1;
    }
    fflush(stdout);
    json_decref(j);
}

static double tr__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Sends pcm [n] (16 kHz) over a WebSocket to the model's stream route in 100 ms frames of f32le, paced at speed times
 * real time (0: unpaced), then `end`, handing every message to tr__on_msg. Returns 0 when the stream closed with
 * 1000 and no error came, else an exit status with the problem in st->err (or already printed: st->failed). */
static int tr__stream_pcm(const acmc_common *c, const float *pcm, size_t n, const char *model, const char *budget,
                          double speed, tr__st *st) {
    char path[512], err[sizeof st->err];
    snprintf(path, sizeof path, "/v1/models/%s/stream?rate=16000&format=f32le%s%s", model, budget ? "&budget=" : "",
             budget ? budget : "");
    acmc_ws *w = acmc_ws_open(c->server, path, acmc_auth_header(), c->timeout_s, err, sizeof err);
    if (!w) {
        snprintf(st->err, sizeof st->err, "%s", err);
        return strstr(err, "answered") ? ACMC_EXIT_SERVER : ACMC_EXIT_UNREACHABLE;
    }
    const size_t step = 1600; /* 100 ms */
    const double t0 = tr__now();
    int code = 0, r = 0;
    for (size_t o = 0; o < n && !r && !st->failed; o += step) {
        const size_t k = n - o < step ? n - o : step;
        if (acmc_ws_send(w, 0, pcm + o, k * sizeof *pcm)) r = -1;
        const double due = speed > 0 ? t0 + (double)(o + k) / 16000 / speed : 0;
        do r = r ? r : acmc_ws_pump(w, speed > 0 ? (int)fmax(0, (due - tr__now()) * 1e3) : 0, tr__on_msg, st, &code);
        while (!r && speed > 0 && tr__now() < due);
    }
    if (!r && acmc_ws_send(w, 1, "{\"type\":\"end\"}", 14)) r = -1;
    const double until = tr__now() + c->timeout_s;
    while (!r && tr__now() < until) r = acmc_ws_pump(w, 100, tr__on_msg, st, &code);
    acmc_ws_free(w);
    if (r == 1 && code == 1000 && !st->failed) return 0;
    if (!st->failed)
        snprintf(st->err, sizeof st->err, "the stream ended %s%d", r == 1 ? "with close code " : "without its close; state ",
                 r == 1 ? code : r);
    return ACMC_EXIT_SERVER;
}

/* The file's bytes decoded here to 16 kHz (as the server decodes them), or an exit status with the problem in err. */
static int tr__decode(const char *file, const uint8_t *data, size_t len, const char *type, float **pcm, size_t *n,
                      char *err, size_t errlen) {
    acm_audio_format f;
    char e[512];
    const char *t = type ? type : tr__sniff(data, len);
    if (!t || acm_audio_parse_type(&f, t, e, sizeof e) ||
        acm_audio_decode(&f, data, len, acm_audio_default_params(), pcm, n, e, sizeof e)) {
        snprintf(err, errlen, "%s: %s", file, t ? e : "not a WAV, FLAC or Ogg file (raw PCM: give --type)");
        return ACMC_EXIT_INPUT;
    }
    return 0;
}

static int tr__stream(const acmc_common *c, const char *file, const char *type, const char *model, const char *budget,
                      double speed, int words) {
    uint8_t *data = NULL;
    size_t len = 0, n = 0;
    char err[1024];
    int rc = acmc_read_file(file, &data, &len, TR_MAX_FILE, err, sizeof err);
    if (rc) return fprintf(stderr, "acm transcribe: %s\n", err), rc;
    float *pcm = NULL;
    rc = tr__decode(file, data, len, type, &pcm, &n, err, sizeof err);
    free(data);
    if (rc) return fprintf(stderr, "acm transcribe: %s\n", err), rc;
    tr__st st = {.json = c->json, .tty = isatty(STDOUT_FILENO), .words = words, .file = file};
    rc = tr__stream_pcm(c, pcm, n, model, budget, speed, &st);
    free(pcm);
    if (rc && st.err[0]) fprintf(stderr, "acm transcribe: %s: %s\n", file, st.err);
    return rc;
}

/* --compare-stream: after the whole file's answer, the same audio as a stream; its finals joined in j->finals. */
static int tr__stream_collect(tr__job *j, const uint8_t *data, size_t len, const char *type) {
    float *pcm = NULL;
    size_t n = 0;
    int rc = tr__decode(j->file, data, len, type, &pcm, &n, j->err, sizeof j->err);
    if (rc) return rc;
    tr__st st = {.file = j->file, .collect = &j->finals};
    if (acmc_buf_append(&j->finals, "", 0)) rc = ACMC_EXIT_FAIL; /* "" rather than NULL for no final at all */
    if (!rc) rc = tr__stream_pcm(j->common, pcm, n, j->model, j->budget, j->speed, &st);
    free(pcm);
    j->segments = st.finals;
    if (rc) snprintf(j->err, sizeof j->err, "%s: the stream: %s", j->file, st.err[0] ? st.err : "failed");
    return rc;
}

int acmc_cmd_transcribe(int argc, char **argv) {
    acmc_common c;
    acmc_common_defaults(&c);
    char model[128] = "speech", err[1024], hdr[2][128];
    const char *type = NULL, *headers[3] = {0};
    int words = 0, nh = 0, nfiles = 0, has[2] = {0, 0}, stream = 0, compare = 0, speed_given = 0;
    long parallel = 4;
    double d, speed = 1;
    const char *budget = NULL;
    char **files = calloc((size_t)argc + 1, sizeof *files);
    if (!files) return ACMC_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int m = acmc_common_opt(&c, "transcribe", argc, argv, &i), bad = 0;
        if (m < 0) {
            free(files);
            return -m;
        }
        if (m) continue;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(transcribe_help, stdout);
            free(files);
            return 0;
        }
        if (!strcmp(argv[i], "--words")) words = 1;
        else if (!strcmp(argv[i], "--stream")) stream = 1;
        else if (!strcmp(argv[i], "--compare-stream")) compare = 1;
        else if ((m = acmc_opt(argc, argv, &i, "--speed", &v, err, sizeof err)) != 0)
            bad = m < 0 || acmc_parse_double("--speed", v, 0, 1000, 0, &speed, err, sizeof err), speed_given = 1;
        else if ((m = acmc_opt(argc, argv, &i, "--model", &v, err, sizeof err)) != 0) {
            if (m > 0 && (!*v || strlen(v) >= sizeof model || strpbrk(v, "/?#% ")))
                snprintf(err, sizeof err, "--model: '%s' is not a model name", v), m = -1;
            if (m > 0) snprintf(model, sizeof model, "%s", v);
            bad = m < 0;
        } else if ((m = acmc_opt(argc, argv, &i, "--budget", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--budget", v, 0, 1, 1, &d, err, sizeof err);
            if (!bad) snprintf(hdr[0], sizeof hdr[0], "X-Compute-Budget: %s", v), has[0] = 1, budget = v;
        } else if ((m = acmc_opt(argc, argv, &i, "--deadline-ms", &v, err, sizeof err)) != 0) {
            bad = m < 0 || acmc_parse_double("--deadline-ms", v, 0, 3600e3, 1, &d, err, sizeof err);
            if (!bad) snprintf(hdr[1], sizeof hdr[1], "X-Deadline-Ms: %s", v), has[1] = 1;
        } else if ((m = acmc_opt(argc, argv, &i, "--parallel", &v, err, sizeof err)) != 0)
            bad = m < 0 || acmc_parse_long("--parallel", v, 1, 64, &parallel, err, sizeof err);
        else if ((m = acmc_opt(argc, argv, &i, "--type", &v, err, sizeof err)) != 0) {
            if (m > 0 && strncmp(v, "audio/", 6) && strcmp(v, "application/octet-stream"))
                snprintf(err, sizeof err, "--type: '%s' is not an audio media type", v), m = -1;
            bad = m < 0;
            type = v;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            snprintf(err, sizeof err, "unknown option '%s'", argv[i]);
            bad = 1;
        } else files[nfiles++] = argv[i];
        if (bad) {
            free(files);
            return acmc_usage_error("transcribe", err);
        }
    }
    if (!nfiles) {
        free(files);
        return acmc_usage_error("transcribe", "no audio file given");
    }
    if (stream && compare) {
        free(files);
        return acmc_usage_error("transcribe", "--stream and --compare-stream: one or the other");
    }
    if (compare && !speed_given) speed = 0;
    if (stream) {
        const char *one = files[0];
        free(files);
        if (nfiles != 1) return acmc_usage_error("transcribe", "--stream takes one file");
        return tr__stream(&c, one, type, model, budget, speed, words);
    }
    for (int k = 0; k < 2; k++)
        if (has[k]) headers[nh++] = hdr[k];
    char url[1400];
    snprintf(url, sizeof url, "%s/v1/models/%s/transcribe", c.server, model);
    tr__pool p = {.jobs = calloc((size_t)nfiles, sizeof(tr__job)), .n = nfiles};
    if (!p.jobs) {
        free(files);
        return ACMC_EXIT_FAIL;
    }
    for (int f = 0; f < nfiles; f++)
        p.jobs[f] = (tr__job){.file = files[f], .url = url, .type = type, .headers = headers, .timeout_s = c.timeout_s,
                              .common = &c, .model = model, .budget = budget, .speed = speed, .compare = compare};
    pthread_mutex_init(&p.mu, NULL);
    const int nt = (int)(parallel < nfiles ? parallel : nfiles);
    pthread_t th[64];
    int started = 0;
    for (; started < nt; started++)
        if (pthread_create(&th[started], NULL, tr__worker, &p)) break;
    if (!started) tr__worker(&p); /* no thread could start: one at a time here */
    for (int t = 0; t < started; t++) pthread_join(th[t], NULL);
    pthread_mutex_destroy(&p.mu);
    int worst = 0, same = 0, same_letters = 0, compared = 0;
    for (int f = 0; f < nfiles; f++) {
        tr__job *j = &p.jobs[f];
        if (j->rc) {
            fprintf(stderr, "acm transcribe: %s\n", j->err);
            if (j->rc > worst) worst = j->rc;
        } else if (compare) {
            const char *whole = json_string_value(json_object_get(j->answer, "text"));
            const int eq = acmc_same_words(whole, j->finals.data), eql = acmc_same_letters(whole, j->finals.data);
            same += eq, same_letters += eql, compared++;
            if (c.json) {
                json_t *o = json_pack("{s:s, s:b, s:b, s:s, s:s, s:i}", "file", j->file, "same", eq, "same_letters", eql,
                                      "whole", whole, "stream", j->finals.data, "segments", j->segments);
                json_dumpf(o, stdout, JSON_COMPACT);
                putchar('\n');
                json_decref(o);
            } else if (eq) printf("same     %s: %s\n", j->file, whole);
            else printf("differs  %s%s\n  whole:  %s\n  stream: %s\n", j->file, eql ? " (words cut elsewhere only)" : "",
                        whole, j->finals.data);
        } else if (c.json) {
            json_object_set_new(j->answer, "file", json_string(j->file));
            json_object_set_new(j->answer, "client_ms", json_real(j->client_ms));
            json_dumpf(j->answer, stdout, JSON_COMPACT | JSON_REAL_PRECISION(9));
            putchar('\n');
        } else tr__print(j, words);
        json_decref(j->answer);
        acmc_buf_free(&j->finals);
    }
    if (compare && c.json)
        printf("{\"files\":%d,\"compared\":%d,\"same\":%d,\"share_same\":%.6f,\"same_letters\":%d}\n", nfiles,
               compared, same, compared ? (double)same / compared : 0.0, same_letters);
    else if (compare)
        printf("%d of %d files: the stream's finals are the whole file's text (%.2f%%), %d the same letters with words "
               "cut elsewhere%s\n", same, compared, compared ? 100.0 * same / compared : 0.0, same_letters - same,
               compared < nfiles ? "; the others failed (above)" : "");
    fflush(stdout);
    free(p.jobs);
    free(files);
    return worst;
}
