/*
 * routes.c — the router and docs/API.md, both from the ACMD_ROUTES table (acmd.h).
 * A pattern is a path whose segments are literals, {m} (a model name) or {v} (a version); one bracketed part
 * "[/versions/{v}]" may be present or absent. GET routes also answer HEAD. A path may end in one slash more than its
 * pattern: the OIP's OpenAPI file names the server metadata route "/v2/" while its text says "v2", and clients that
 * join a base URL and a path often leave one; "/v2/" is "/v2", "/v2/models/a/" is "/v2/models/a". Two slashes are not.
 */
#include <ctype.h>
#include <string.h>

#include "acmd.h"

static const struct {
    const char *name, *method, *pattern, *doc;
} route__tab[] = {
#define X(id, method, pattern, doc) {#id, method, pattern, doc},
    ACMD_ROUTES(X)
#undef X
};

const char *acmd_route_name(acmd_route r) {
    static char names[ACMD_ROUTE_COUNT][32];
    if (r >= ACMD_ROUTE_COUNT) return "unknown";
    if (!names[r][0]) { /* written once, before any thread exists (acmd_metrics_new calls this first) */
        size_t i = 0;
        for (; route__tab[r].name[i] && i < sizeof names[r] - 1; i++)
            names[r][i] = (char)tolower((unsigned char)route__tab[r].name[i]);
        names[r][i] = 0;
    }
    return names[r];
}
const char *acmd_route_method(acmd_route r) { return r < ACMD_ROUTE_COUNT ? route__tab[r].method : "?"; }
const char *acmd_route_pattern(acmd_route r) { return r < ACMD_ROUTE_COUNT ? route__tab[r].pattern : "?"; }

/* Matches path against pattern p (no brackets) capturing {m} and {v}; one trailing slash after the whole pattern is
 * ignored. */
static int route__match1(const char *p, const char *path, acmd_route_args *a) {
    while (*p) {
        if (*p == '{') {
            char var = p[1];
            p = strchr(p, '}') + 1;
            size_t n = strcspn(path, "/");
            if (n == 0) return 0;
            char *dst = var == 'm' ? a->model : a->version;
            size_t cap = var == 'm' ? sizeof a->model : sizeof a->version;
            if (n >= cap) return 0;
            memcpy(dst, path, n);
            dst[n] = 0;
            path += n;
            continue;
        }
        if (*p != *path) return 0;
        p++, path++;
    }
    return *path == 0 || (path[0] == '/' && path[1] == 0);
}

static int route__match(const char *pattern, const char *path, acmd_route_args *a) {
    const char *lb = strchr(pattern, '[');
    char buf[256];
    if (!lb) return route__match1(pattern, path, a);
    const char *rb = strchr(lb, ']');
    size_t pre = (size_t)(lb - pattern), opt = (size_t)(rb - lb - 1);
    /* with the optional part */
    snprintf(buf, sizeof buf, "%.*s%.*s%s", (int)pre, pattern, (int)opt, lb + 1, rb + 1);
    if (route__match1(buf, path, a)) return 1;
    a->version[0] = 0;
    snprintf(buf, sizeof buf, "%.*s%s", (int)pre, pattern, rb + 1);
    return route__match1(buf, path, a);
}

acmd_route acmd_route_match(const char *method, const char *path, acmd_route_args *a, int *path_matched, char *allow,
                            size_t allow_len) {
    *path_matched = 0;
    if (allow_len) allow[0] = 0;
    size_t used = 0;
    for (int r = 0; r < ACMD_ROUTE_COUNT; r++) {
        memset(a, 0, sizeof *a);
        if (!route__match(route__tab[r].pattern, path, a)) continue;
        const char *m = route__tab[r].method;
        int get = strcmp(m, "GET") == 0;
        if (strcmp(method, m) == 0 || (get && strcmp(method, "HEAD") == 0)) return (acmd_route)r;
        *path_matched = 1;
        if (allow_len > used) used += (size_t)snprintf(allow + used, allow_len - used, "%s%s%s", used ? ", " : "", m, get ? ", HEAD" : "");
    }
    memset(a, 0, sizeof *a);
    return ACMD_ROUTE_NONE;
}

/* The "Images" section: how a picture becomes the model's input (proto/image.h has the details). */
static void route__api_images(FILE *f) {
    fprintf(f,
            "\n## Images\n\n"
            "How a `/classify` body (and, from step 2 on, an OIP `image` UINT8 `[B,H,W,C]` tensor) becomes the "
            "model's input `[C, S, S]`, S being the model's `image_size` (28 and grey for the shipped Fashion-MNIST "
            "models):\n\n"
            "1. **Decoding.** The format is read from the bytes (`Content-Type` must still name an image type, else "
            "415): PNG of every colour type and bit depth (grey, grey + alpha, RGB, RGBA, palette, tRNS, 16-bit, "
            "interlaced), JPEG (baseline or progressive; grey or YCbCr, not CMYK), PNM (PBM P1/P4, PGM P2/P5, PPM "
            "P3/P6, ASCII or binary, maxval up to 65535). A damaged file is refused (400), never half-read: a PNG "
            "whose chunk CRC or zlib checksum fails or that ends before its IEND chunk, a JPEG that ends before its "
            "end marker, a PNM shorter than its header says.\n"
            "2. **Colour.** To grey by ITU-R BT.601 luma, 0.299 R + 0.587 G + 0.114 B (a grey pixel keeps its value "
            "exactly); grey to RGB by copying.\n"
            "3. **Transparency** (grey + alpha, RGBA, tRNS; an OIP image with C = 2 or 4, the last channel alpha): "
            "composited over black, v a + 0 (1 - a). Black because it is the background the models learnt: "
            "Fashion-MNIST shows each garment light on black (its product photos were negated), so the transparent "
            "part of a cut-out is \"no garment\", which to the model is black. The model expects that polarity "
            "throughout: a photo of a dark garment on a white ground is for the client to invert; the server does "
            "not guess.\n"
            "4. **Size.** Stretched to S x S whatever its aspect ratio: area averaging along an axis that shrinks "
            "(each output pixel is the mean of the input area it covers), bilinear along one that grows; an image "
            "already S x S passes unchanged. A JPEG is first decoded at the smallest DCT scale (1/8 to 1) still at "
            "least S on both sides.\n"
            "5. **Normalisation.** x = (v / 255 - mean) / std with the model's `preprocess` values, the expression "
            "training used: a 28 x 28 grey PNG of a test image gives exactly the tensor `acm-train eval` classifies.\n"
            "\n"
            "Why stretch, with no letterbox option: `bench/image_fit.c` (`make bench-build && build/bench/image_fit "
            "models/fmnist-vit-acm.safetensors /usr/share/datasets/fashion-mnist 2000`) turned 2,000 Fashion-MNIST test images into the non-square pictures below (each "
            "enlarged 2x with bilinear interpolation) and classified them with `fmnist-vit-acm` at the gates' own "
            "choice (`argmax`), through this preprocessing, stretched or letterboxed (aspect ratio kept, black "
            "margins):\n\n"
            "| picture | stretch | letterbox |\n|---|---|---|\n"
            "| the 28 x 28 image itself | 91.40%% | 91.40%% |\n"
            "| enlarged to 56 x 56 | 90.60%% | 90.60%% |\n"
            "| black margins left and right (a wider frame), 80 x 56 | 68.95%% | 74.40%% |\n"
            "| black margins above and below (a taller frame), 56 x 80 | 80.00%% | 76.30%% |\n"
            "| resized to 40 x 56 (the garment distorted) | 90.70%% | 70.30%% |\n"
            "| resized to 56 x 40 | 90.55%% | 80.15%% |\n\n"
            "Letterboxing loses 10 to 20 points on a distorted garment and 4 on a taller frame, and gains 5 only on "
            "a wider frame: it is no better choice, so it is not offered. Neither fit recovers a loosely framed photo "
            "(cropping to the garment would: Fashion-MNIST's own images are cropped to the product, then centred). "
            "Area averaging measured better than the antialiased bilinear filter it replaced on every picture above "
            "(+0.7 to +2.1 points, on the first Fashion-MNIST model).\n\n"
            "**Limits**, from the header, before any pixel is decoded (400 past them): `--max-image-pixels` on "
            "width x height, which bounds the decode's time (the worst case, an all-zero 16-bit RGBA PNG, takes "
            "about 0.3 s at 4096 x 4096 on one core: `build/bench/image_decode`); `--max-decode-bytes` on its memory. "
            "PNG and PNM are decoded a row at a time straight into the resampler, so their memory grows with the "
            "width only (that 4096 x 4096 PNG of 130 KB: a bound of 4.3 MiB, 2.2 MiB of resident memory, 330 MB "
            "before); a baseline JPEG holds its DCT-scaled image; a "
            "progressive JPEG's decoder keeps 2 bytes per coded sample of the whole image (about 3 bytes a pixel at "
            "4:2:0, 6 at 4:4:4), so the default 64 MiB admits progressive photos up to about 21 MP at 4:2:0, 11 MP "
            "at 4:4:4.\n");
}

/* The "Streaming" section: the WebSocket protocol of GET /v1/models/{m}/stream (server/ws.c). */
static void route__api_streaming(FILE *f) {
    fputs("\n## Streaming (WebSocket)\n\n"
          "`GET /v1/models/{m}/stream` on a speech model, upgraded to a WebSocket (RFC 6455: `Upgrade: websocket`, "
          "`Connection: Upgrade`, `Sec-WebSocket-Version: 13`, a `Sec-WebSocket-Key` of 16 bytes in base64; anything "
          "else is 400 — a wrong version with `Sec-WebSocket-Version: 13` in the answer —, an unknown model 404, an "
          "image model 400, `--max-streams` streams already open 503, over TLS 501: put TLS in a reverse proxy). With "
          "`--auth-file` the key is `Authorization: Bearer KEY`, or `?access_token=KEY` in the query, since a browser "
          "cannot set headers on a WebSocket (a query string may end up in proxies' logs: prefer the header where "
          "the client can set it).\n\n"
          "Query parameters (all optional): `rate` (8000..192000, default 16000) and `format` (`s16le`, default, or "
          "`f32le`) of the audio, mono; `budget` (0..1: the stream's compute ceiling, `cap` policy, raised to the "
          "model's floor); `endpoint_ms` (trailing silence that ends a segment, default 800; 0: none); `priority` "
          "(0..7, as `Priority: u=`).\n\n",
          f);
    fputs("Client to server: **binary** messages are audio, any length up to `--max-frame-bytes` (fragments are "
          "joined; a longer message closes with 1009); **text** messages are JSON objects with a `type`:\n\n"
          "| type | fields | effect |\n|---|---|---|\n"
          "| `configure` | `budget` (0..1, or null: the model's default policy), `deadline_ms` (per chunk; null: none), "
          "`priority` (0..7), `endpoint_ms`, and before the first audio `rate`, `format` | applies from the next "
          "chunk; answered `{\"type\":\"configured\",...}` with the terms in force, or an `error` message (the stream "
          "goes on unchanged) |\n"
          "| `finalize` | | flushes the audio received (the last short chunk runs) and answers the segment's `final` "
          "at once; the next audio starts a new stream (its left context empty), times still counted from the "
          "stream's start |\n"
          "| `keepalive` | | nothing but resetting the idle timer (`--stream-idle-timeout`) |\n"
          "| `end` | | as `finalize`, then `{\"type\":\"end\", audio_s, segments, flops, flops_dense}` and a close "
          "with 1000 |\n\n",
          f);
    fputs("Server to client (text, JSON): `ready` once (`id`, `model`, `rate`, `format`, `chunk_s`, `endpoint_ms`, "
          "`max_frame_bytes`); `partial` after each job of the stream ran (one chunk of the model while endpointing is on, "
          "so that a segment ends at the same chunk whether the audio came paced or all at once; up to 8 chunks when "
          "`endpoint_ms` is 0): "
          "`segment` (its number, from 0), `text` (the segment so far), `words` (the words completed since the last "
          "partial: `word`, `start`, `end` in seconds from the stream's start, `confidence`), `audio_s` (audio run "
          "so far), `chunk` (`tokens`, `flops`, `flops_dense`, `budget` realised, `budget_cap` the ceiling the job ran "
          "under, `latency_ms` from the chunk's last "
          "sample received to this message, `batch`: streams in its engine call); `final` at a segment's end: "
          "`segment`, `reason` (`endpoint`: `endpoint_ms` of frames whose most probable symbol is the blank after a "
          "word; `finalize`; `end`; `max_text`), `text`, `words` (all of the segment's), `audio_s`; `warning` "
          "(`reason`: `behind_real_time`, `behind_s`, `max_behind_s`, `budget`: see *Overload* below); `error` "
          "(`error`, and `close_code` when the stream closes after it).\n\n"
          "Close codes: 1000 after `end` (or the client's close, echoed); 1001 idle past `--stream-idle-timeout` or "
          "the server shutting down; 1002 a protocol error (an unmasked client frame, a bad opcode); 1003 audio "
          "that cannot be decoded; 1007 a text message that is not UTF-8; 1008 a text message that is not a JSON "
          "object with a `type`; 1009 a message over `--max-frame-bytes`, or audio past `--max-audio-seconds`; "
          "1011 an engine failure; 1013 (try again later) a stream that fell `--stream-max-behind` behind real time. Pings are answered with pongs. A client that leaves without a close frees its "
          "stream at once (or when its running job comes back).\n\n",
          f);
    fputs("Each stream is one `acm_stream` on the server; its chunks are queued and batched with every other "
          "stream's and request's on the workers (the ready chunks of up to `--stream-batch` streams, 64 by default, "
          "as one engine call; with `--stream-gather-ms` a chunk waits that long at most for others to join it), as a streamed `/transcribe` upload's are, so that "
          "budgets, deadlines and priorities act on them as on requests. Metrics: `acm_asr_active_streams`, "
          "`acm_asr_chunk_latency_seconds`, `acm_asr_segments_total`, `acm_asr_streams_behind_total`, "
          "`acm_asr_streams_dropped_total{reason}`, and the FLOPs counters.\n\n"
          "*Overload*: when the workers cannot keep up, a stream's audio waits (decoded, not yet run). Its budget "
          "shrinks before anything is dropped: past a quarter of `--stream-max-behind` seconds waiting (default 10) "
          "the ceiling of its next jobs goes down linearly with the backlog, to the model's budget floor at half of "
          "it (`budget_cap` in its partials; the stream's own terms come back as the backlog shrinks). At three "
          "quarters, already at the floor, it gets `{\"type\":\"warning\",\"reason\":\"behind_real_time\",...}` (once, "
          "again after the backlog fell under a quarter); at all of it an `error` and a close with 1013 (try again "
          "later). The decisions follow the backlog alone, so a client that sends faster than real time is treated as "
          "behind: pace audio in real time. `--stream-max-behind 0` turns this off.\n\n",
          f);
    fputs("The same ideas under other names:\n\n"
          "| acmd | Deepgram | AssemblyAI (v3) | Vosk server | sherpa-onnx server |\n|---|---|---|---|---|\n"
          "| binary PCM, `?rate=&format=` | binary, `?encoding=linear16&sample_rate=` | binary, `?sample_rate=&encoding=` "
          "| binary after `{\"config\":{\"sample_rate\"}}` | binary float32 at the server's rate |\n"
          "| `partial` | `Results` with `is_final: false` | `Turn` with `end_of_turn: false` | `{\"partial\"}` | "
          "`{\"text\", \"is_final\": false}` |\n"
          "| `final` | `Results` with `is_final`/`speech_final` | `Turn` with `end_of_turn: true` | `{\"result\", \"text\"}` "
          "| `{\"is_final\": true}` |\n"
          "| `endpoint_ms` per stream | `endpointing` (ms) | `min_end_of_turn_silence_when_confident` | server-wide | "
          "server-wide `--rule*-min-trailing-silence` |\n"
          "| `finalize` | `{\"type\":\"Finalize\"}` | `ForceEndpoint` | — | — |\n"
          "| `keepalive` | `{\"type\":\"KeepAlive\"}` | — | — | — |\n"
          "| `end` | `{\"type\":\"CloseStream\"}` | `Terminate` | `{\"eof\":1}` | `Done` |\n"
          "| `configure` (budget, deadline, priority) mid-stream | — | `UpdateConfiguration` (turn settings) | — | — |\n",
          f);
}

/* The "Transcription" section: what /transcribe takes and answers. */
static void route__api_transcription(FILE *f) {
    fprintf(f,
            "\n## Transcription\n\n"
            "`POST /v1/models/{m}/transcribe` on a speech model (an image model answers 400, and a speech model "
            "answers 400 on `/classify`). The body is one audio file; its `Content-Type` names the format:\n\n"
            "- `audio/wav` (also `audio/x-wav`, `audio/wave`, `audio/vnd.wave`): PCM 8/16/24/32-bit or float "
            "32/64-bit, other WAVE encodings through libsndfile;\n"
            "- `audio/flac`, `audio/ogg` (Vorbis, Opus as far as the installed libsndfile reads them);\n"
            "- `audio/L16;rate=R[;channels=C]`: raw signed 16-bit big-endian (RFC 2586);\n"
            "- `audio/x-raw;format=S16LE;rate=R[;channels=C]` (or `format=F32LE`): raw little-endian;\n"
            "- `application/octet-stream` or no `Content-Type`: a WAV, FLAC or Ogg file recognised by its first "
            "bytes.\n\n"
            "Any other type is 415 naming these. Channels (at most 8) are averaged; rates from 4000 to 384000 Hz "
            "are resampled to 16 kHz (libsoxr); 16 kHz passes through unchanged. The audio runs through the model "
            "chunk by chunk as a stream (the model's chunk of tokens, its left context carried over), the chunks of "
            "up to `--stream-batch` (64) streams and transcriptions in one engine call (a model's own `max_batch` "
            "overrides it).\n\n");
    fprintf(f,
            "A body declared WAV or raw PCM (`audio/wav` and its aliases, `audio/L16`, `audio/x-raw`), with "
            "`Content-Length` or chunked, is decoded and resampled as it arrives, and whenever a chunk's worth of "
            "audio waits the request is queued and a worker runs the chunks that are ready (8 at most a turn, so "
            "that other requests take turns with it) while the upload goes on: a file uploaded at real-time pace is answered right after its last byte, its last chunk being all "
            "that is left to run. The answer is the same to the bit (text, words, tokens, FLOPs) however the body "
            "is split and paced, and the same as for the whole file decoded at once; a test also checks it equals "
            "the engine's own streams on the same PCM (`acm_worker_run_streams`; `acm-train` has no speech "
            "evaluation yet). FLAC, Ogg and sniffed bodies (`application/octet-stream`, no type) are received whole, "
            "then decoded on a worker. An upload decoded as it arrives may take `--request-timeout` plus the length "
            "of its audio so far. Audio and images share the workers and the scheduler: each job of a transcription "
            "counts for the cost model as one item per chunk of audio (its length estimated before decoding for a "
            "whole body: exact for raw PCM, at 16-bit mono 16 kHz for containers), with its tokens and FLOPs, so "
            "budgets, deadlines and `Priority` act as for images (`X-Deadline-Ms`: the answer within t ms of the "
            "body's last byte; the jobs before it, awaited by no one yet, are ordered by twice that from their "
            "audio's arrival, so that answers due go first).\n\n");
    fprintf(f,
            "Answer: the keys of the /classify response that do not concern labels (`budget_requested`, "
            "`budget_applied`, `budget_realised` (token-weighted over the file), `budget_source`, `budget_raised`, "
            "`policy`, `flops`, `flops_dense`, `timing`, `batch_size` (most transcriptions run in one call), "
            "`deadline_ms`, `predicted_ms`, `urgency`, `model`, `model_version`), then `text` (the greedy CTC "
            "transcript, no trailing space; 800 ms or more of blank between two letters ends a word, as a stream's "
            "default `endpoint_ms` ends its segment there, so that the text cuts words where a stream's finals do), `words[]` (`word`, `start` and `end` in seconds from the start of "
            "the audio, `confidence` in [0, 1]: engine/ctc.h), `audio_seconds` (of 16 kHz audio decoded), "
            "`tokens` (rows of CTC logits: one per 40 ms), `real_time_factor` (`timing.compute_ms` per second of "
            "audio: below 1 is faster than real time) and `id`.\n\n"
            "Refusals: 413 for a body over `--max-body-bytes` (from `Content-Length`, or while it arrives) and for "
            "audio longer than `--max-audio-seconds` (found while decoding; a body decoded as it arrives stops "
            "being decoded and run there, and is answered once it has been read: libmicrohttpd takes no answer "
            "before); 400 for a zero-length "
            "body, a truncated WAV (fewer data bytes than its header declares, or a partial frame), a malformed "
            "header, a rate outside 4000..384000 Hz or a missing `rate=` on raw PCM, channels outside 1..8, a WAV, "
            "FLAC or Ogg file sent with a raw PCM type, and samples that are not finite.\n\n"
            "OIP `infer` on a speech model: input `audio` FP32 `[1,S]` (JSON or the binary extension), samples in "
            "[-1, 1] at the request parameter `sample_rate` (default 16000; an integer in 4000..384000, resampled "
            "to 16 kHz). Outputs `text` BYTES `[1]` and `logits` FP32 `[T,K]` (the CTC logits, blank first; K and "
            "the classes in the model metadata's `labels`), those the request's `outputs` names; none named: "
            "`text` alone. `parameters` carry the keys of the /transcribe answer but `text` (`words`, "
            "`audio_seconds`, `tokens`, `real_time_factor`, budgets, FLOPs, timing). The model metadata of a speech "
            "model lists these inputs and outputs, with `sample_rate`, `chunk_tokens` and `token_seconds`.\n");
}

void acmd_api_markdown(FILE *f) {
    fprintf(f, "# acmd HTTP API\n\n"
               "Generated from the route table in `server/acmd.h` by `acmd --print-api`; do not edit by hand.\n"
               "`{m}` is a served model name, `{v}` its version (the first 12 hex digits of the file's SHA-256). "
               "One trailing slash is ignored on every path (`/v2/` is `/v2`); two are not.\n\n"
               "| verb | path | answer |\n|---|---|---|\n");
    for (int r = 0; r < ACMD_ROUTE_COUNT; r++)
        fprintf(f, "| %s | `%s` | %s |\n", route__tab[r].method, route__tab[r].pattern, route__tab[r].doc);
    fprintf(f, "\n## Request headers\n\n"
               "- `X-Compute-Budget: β` — ceiling on the fraction of learner compute, in (0, 1]; raised to the model's "
               "budget floor if below (reported). The floor is the model's `beta_min` (from its file: below it "
               "accuracy collapses) unless `--beta-floor NAME=BETA` sets another; the model metadata shows both "
               "(`beta_min`, `beta_floor`). OIP parameter `compute_budget`; the header wins.\n"
               "- `X-Compute-Budget-Min: β` — floor (default the model's floor); OIP `compute_budget_min`. Without a ceiling and a "
               "deadline it raises the default budget to β; under a default `argmax` (which has no budget) the request "
               "runs under `--request-policy` instead, so `X-Compute-Budget-Min: 1` pins full compute; an explicit "
               "`X-Compute-Policy: argmax` with a floor is refused (400).\n"
               "- `X-Compute-Policy: cap|mean|argmax` — how the budget is applied (default `--request-policy` when a "
               "budget is given, else `--default-policy`); OIP `compute_policy`.\n"
               "- `X-Deadline-Ms: t` — answer within t ms of the request's start: its arrival at acmd, or the time in "
               "`X-Request-Start` when one is sent; a decimal in (0, 3600000]; OIP `deadline_ms`. "
               "The budget is then decided at dispatch: the largest β in [floor, ceiling] whose predicted finish (the "
               "cost model of `/v2/models/{m}/stats`, with a high quantile of the measured path after dispatch as a "
               "margin, and a dead band so that identical requests get the same β) meets the deadline, run "
               "under `cap` (another `X-Compute-Policy` is refused). 504 at once when even the floor cannot make it "
               "after the queue ahead: with `X-Deadline-Ms`, already at the headers, before the body is read (what "
               "the body could change is taken at its most favourable: one item, the most urgent priority allowed); "
               "504 at dispatch when the deadline has been lost in the queue. Without a "
               "deadline, `--default-deadline-ms` orders the queue (earliest deadline first) but never shrinks the "
               "budget.\n"
               "- `X-Request-Start: t=T` — when the request started upstream, the proxies' convention (nginx "
               "`t=${msec}`, Heroku): seconds, milliseconds, microseconds or nanoseconds since the Unix epoch (the "
               "unit follows from the size; `t=` optional). The time the request spent before it reached acmd (a "
               "client's or a proxy's queue, the network) is then taken from its deadline, so the server aims at the "
               "deadline the client counts. A stamp up to 1 s ahead of acmd's clock counts as now (clock skew); "
               "further ahead, over an hour old, or malformed: 400. Without a "
               "deadline it shifts only the queue order.\n"
               "- `Priority: u=N[, i]` — RFC 9218 urgency 0 (most urgent) .. 7, default 3; raised to "
               "`--min-client-urgency`; a malformed field or u outside 0..7 is refused (400). OIP `priority`: "
               "Triton's meaning (0 default, 1 highest; p >= 1 is urgency min(p - 1, 7)). The queue is ordered by "
               "urgency (a waiting request gains a level per `--aging-ms`), then deadline, then arrival.\n"
               "- `Inference-Header-Content-Length: n` (OIP binary tensor extension) — the first n bytes of the body "
               "are the JSON request, the rest the inputs' raw little-endian data: an input with "
               "`\"parameters\": {\"binary_data_size\": bytes}` and no `data` takes the next bytes in order. Outputs "
               "asked with `\"outputs\": [{\"name\": \"logits\", \"parameters\": {\"binary_data\": true}}]` (or "
               "parameter `binary_data_output`) come back the same way (BYTES: 4-byte length + bytes), the response "
               "then carrying `Inference-Header-Content-Length` and `Content-Type: application/octet-stream`.\n"
               "- `X-Request-Id` — echoed exactly: 1..1024 bytes of visible ASCII (0x20..0x7E); a longer one, or one "
               "with control or non-ASCII bytes, is refused (400). Generated when absent or empty. Also the OIP `id` "
               "when the body has none; the body's `id` is any JSON string of at most 1024 bytes (UTF-8), echoed "
               "exactly (longer: 400). `traceparent` is logged.\n");
    fprintf(f, "\n## Response headers\n\n"
               "`X-Request-Id`, `X-Compute-Budget-Applied`, `X-Flops`, `X-Flops-Dense`, "
               "`Server-Timing: queue;dur=…, compute;dur=…, total;dur=…` (milliseconds), "
               "`Inference-Header-Content-Length` (binary outputs).\n");
    fprintf(f, "\n## /classify response\n\n"
               "`label`, `index`, `confidence`, `top_k[]` (`label`, `index`, `confidence`), `budget_requested` (the "
               "ceiling asked for; null when none was, a request with only a deadline included), `budget_applied`, "
               "`budget_realised`, `budget_source` (`header`, `parameter`, `deadline`, `default`), "
               "`budget_raised`, `policy`, `flops`, `flops_dense`, `timing{queue_ms,compute_ms,engine_ms,total_ms}` "
               "(`compute_ms`: the request's batch, decoding and response bodies included; `engine_ms`: the batch's "
               "engine calls alone, what the cost model predicts and learns from; OIP: the same in `parameters`), "
               "`batch_size`, `deadline_ms` (null when none), `predicted_ms` (the predicted finish from arrival, "
               "decided at dispatch), `urgency`, `model`, `model_version`, and with `?explain=1` `compute_map`: "
               "`{\"tokens\": T, \"modules\": [{\"name\", \"learners\", \"k\": [T]}]}`. Budgets, deadlines and FLOPs "
               "are written in the shortest form that reads back as the same number (0.3, not 0.29999999999999999).\n"
               "\nEvery JSON body (answers and errors) ends with a newline; a binary-extension body "
               "(`application/octet-stream`) is the JSON header and the raw outputs, nothing after them.\n");
    fprintf(f, "\n## Errors\n\n"
               "Every error is `{\"error\": \"message\"}`: 400 bad input (malformed JSON, wrong datatype or shape, "
               "shape/data mismatch, shape overflow, non-finite numbers, undecodable image, image over "
               "`--max-image-pixels`, bad budget, OIP `parameters` over 64 KiB), 401 with `WWW-Authenticate` for a missing or unknown API key (below), 404 unknown model, version or path, 405 with `Allow`, 413 body "
               "over `--max-body-bytes` (from `Content-Length`, before reading), 415 unsupported `Content-Type`, 429 "
               "with `Retry-After` when the queue is full, 503 while warming up or draining, 503 with `Retry-After` when "
               "the request's body would pass `--max-buffered-bytes` (below), 504 when a deadline cannot "
               "be met (at admission, or lost in the queue), 500 engine failure. Bad `X-Deadline-Ms`, `Priority`, "
               "`deadline_ms`, `priority`, `Inference-Header-Content-Length` and malformed binary tensors are 400s "
               "naming the field.\n");
    fputs("\n## API keys (`--auth-file`)\n\n"
          "Off by default (acmd then warns at start-up when `--listen` is not a loopback address). With "
          "`--auth-file FILE`, every inference route (classify, OIP infer, transcribe) wants `Authorization: Bearer KEY`, and "
          "`/metrics` too with `--metrics-auth 1`; health, readiness, server and model metadata and stats stay open. "
          "A missing key, another scheme or a key not in the file is answered 401 with `WWW-Authenticate: Bearer "
          "realm=\"acmd\"` before anything else is looked at (an unknown model is then 401, not 404). The file "
          "holds one key a line, `NAME sha256:HEX [LIMIT=VALUE ...]` (`#` comments), the hash of the key and never "
          "the key: `acmd --hash-key NAME` reads a key on stdin and prints its line (an empty stdin makes a new "
          "random key, printed on stderr). The key's NAME is written in the access log (`key`). SIGHUP reloads the "
          "file without closing a connection: a request whose headers arrived before keeps the key it was admitted "
          "with; a file that cannot be read or parsed keeps the keys in force and is logged as an error naming the "
          "line.\n\n"
          "Per-key limits, `LIMIT=VALUE` on the key's line (none binding when absent):\n\n"
          "| limit | range | meaning |\n|---|---|---|\n", f);
#define X(field, name, lo, hi, help) fprintf(f, "| `%s` | %g .. %g | %s |\n", name, (double)(lo), (double)(hi), help);
    ACMD_KEY_LIMITS(X)
#undef X
    fputs("\nThe urgency and budget limits narrow the request's terms (a more urgent `Priority` is lowered, a budget "
          "outside the range is moved into it and reported in `X-Compute-Budget-Applied`, never below the model's "
          "floor; under a default `argmax` a key with `budget_max` < 1 runs under `--request-policy` at "
          "`budget_max`). The others refuse with 429 and `Retry-After` (the seconds until the bucket holds enough), "
          "the message naming the key and the limit: `key NAME: its request rate is used up ...`, `... its FLOP rate "
          "is used up ...` (FLOPs counted at the request's budget ceiling when it is admitted), `... its share of the "
          "queue of model M is full ...`; counted in `acm_inference_rejections_total` as `key_rate`, `key_flops`, "
          "`key_queue`. A bucket starts full, lets a request through when it holds min(cost, burst) and then takes "
          "the whole cost, so a request larger than the burst is not refused for ever and the long-run rate is the "
          "key's. A reload keeps the buckets of the names still in the file.\n", f);
    fputs("\n## TLS (`--tls-cert`, `--tls-key`)\n\n"
          "With a PEM certificate (the server's first, then intermediates) and its private key, the listener speaks "
          "HTTPS only (libmicrohttpd's GnuTLS), HTTP/1.1 with the same routes and answers. A plain HTTP request to it "
          "gets no HTTP answer (the connection is closed). The key must be the certificate's (checked at start). "
          "SIGHUP re-reads both files (with the `--auth-file`): new handshakes get the new certificate, open "
          "connections keep the session they have, and the log names the new subject, serial and expiry; files that "
          "cannot be read, do not parse or do not belong together keep the certificate in force, and the error is "
          "logged. Dates are not checked by the server: a client that verifies refuses an expired certificate.\n", f);
    fputs("\n## Shutdown (SIGTERM or SIGINT)\n\n"
               "A drain that a load balancer or Kubernetes can follow, losing no accepted request: readiness turns 503 "
               "at once (liveness stays 200) while the server keeps accepting and answering for `--drain-grace-s` "
               "(default 5; 0 closes the listener at once), every response then carrying `Connection: close`; then "
               "the listener closes and a new request on an open connection gets 503. Queued requests run as usual (a "
               "deadline that passes in the queue gets its 504). The process exits 0 once nothing is queued or "
               "running, or at `--exit-timeout` seconds after the signal (default 25, under Kubernetes' default grace "
               "period of 30 s; it also caps the grace period): what is still queued then gets 503 and connections "
               "still waiting for a running batch are closed. A second signal does that at once. Exit status 0 in "
          "every case; a server that was never ready skips the grace period.\n",
          f);
    fprintf(f, "\n## Limits\n\n"
               "- `--max-body-bytes` (8 MiB): a larger body is refused 413, from `Content-Length` before it is read.\n"
               "- `--max-buffered-bytes` (256 MiB): request bodies (queued ones included) and decoded inputs held at "
               "once, all requests together (gauge `acm_buffered_bytes`). A body announced by `Content-Length` is "
               "counted whole at its headers, one without (chunked) as it arrives; past the limit the request is "
               "answered 503 with `Retry-After` (before its body is read when `Content-Length` says so), counted "
               "`acm_inference_rejections_total{reason=\"memory\"}`. The default holds 32 bodies at the default "
               "`--max-body-bytes`, or hundreds of thousands of the small images the shipped models take.\n"
               "- `--max-per-ip` (default -1): connections per client address. By default none on a loopback "
               "`--listen` (every client is then local: a reverse proxy forwarding many users, a load generator), "
               "else a quarter of `--max-connections`, so that one address cannot hold every slot. Connections over "
               "it are closed at once. Behind a reverse proxy or load balancer on another host, every request comes "
               "from its few addresses: set `--max-per-ip 0` (the proxy limits its clients) or a value near "
               "`--max-connections`.\n"
               "- OIP `parameters`: at most 64 KiB as written (400 otherwise): admission reads them on the I/O thread, "
               "before the body is parsed (a scan of the JSON header that builds nothing else).\n");
    fprintf(f, "\n## Edge cases\n\n"
               "- Non-finite numbers: NaN and Infinity are not JSON, so a tensor holding them is malformed JSON (400 "
               "naming the input); FP32 values beyond the float range and non-finite binary elements are 400s naming "
               "the input too. Inputs that are finite but make the model overflow (e.g. `pixel_values` near 3e38) "
               "give 500 `engine: item i gave non-finite logits`, never a 200 with fewer logits than its shape.\n"
               "- Bytes the client chose (path, ids, headers) come back in JSON bodies and the JSON access log as "
               "valid UTF-8: well-formed UTF-8 is kept as sent, each ill-formed sequence becomes U+FFFD. The text "
               "access log (`--log-format text`) writes control characters, spaces, `\\` and ill-formed bytes "
               "as `\\xHH`, so one request is one line.\n"
               "- A client may half-close its connection (`shutdown(SHUT_WR)`) once its request is sent: it still "
               "gets its answer, possibly after an interim `100 Continue` (HTTP/1.1 only), which the server writes "
               "to tell a half-closed client from one that closed the connection (a closed one answers it with a "
               "reset). A client that closed its connection while its request was queued is logged 499 (outcome "
               "`cancelled`), its request never run.\n"
               "- A request whose headers and body take longer than `--request-timeout` in all is closed and logged "
               "408 (MHD's own timeout, per idle gap, also logs 408).\n");
    fprintf(f, "\n## HTTP/1.1 framing\n\n"
               "Checked before any byte of a body is read (RFC 9112); each of these is answered at once and the "
               "connection closed after the answer, since the end of the request cannot be trusted:\n\n"
               "- Several `Content-Length` fields with different values, or one that is not a decimal number: 400. "
               "Identical duplicates are taken as one (RFC 9110 §8.6 allows either).\n"
               "- `Transfer-Encoding` other than a single `chunked`: 501. With a `Content-Length` too, or in an "
               "HTTP/1.0 request: 400.\n"
               "- An HTTP/1.1 request without `Host`, or with more than one: 400 (HTTP/1.0 may omit it).\n\n"
               "An answer sent before the body was read (413, 415, 503 and the above) is followed by a lingering "
               "close: the server shuts its side, then reads and discards what the client still sends, up to 5 s, "
               "so that a client that sends its whole body before reading gets the status rather than a connection "
               "reset.\n"
               "\n## Errors libmicrohttpd writes itself\n\n"
               "libmicrohttpd (0.9.75, Debian 12) answers these itself, mostly before acmd sees the request, with "
               "its own HTML body (no `Content-Type`) and `Connection: close`; it has no option to choose the "
               "body. They reach the access log and the metrics only when acmd had seen the request's headers "
               "already (the `Content-Length` and chunked cases):\n\n"
               "- 400: a malformed request line, a header line without a colon, malformed chunked encoding, a first "
               "`Content-Length` that is not a decimal number (0.9.75 writes that answer's status line and headers "
               "twice);\n"
               "- 413: a `Content-Length` or chunk size past 2^64 - 1;\n"
               "- 414 / 431: a request line, or request line and headers, beyond the connection's memory "
               "(libmicrohttpd's default, 32 KiB);\n"
               "- 505: an HTTP version other than 1.x.\n"
               "\n## Open Inference Protocol conformance\n\n"
               "`tests/server/test_oip_spec.c` checks every route of the protocol's OpenAPI file (a copy in "
               "`tests/server/oip/`, version 2.0) against its schemas. Where acmd departs from the protocol's text "
               "(`inference_rest.md`): `/v2/health/ready` answers `{\"ready\": bool}` (the text's object reads "
               "`live`, a copy of the live object); the response `parameters` hold an object (`timing`) and nulls "
               "where the text allows strings, numbers and booleans; binary outputs carry `binary_data_size` instead "
               "of `data` (the binary tensor extension); model metadata has more keys than the protocol's.\n");
    route__api_images(f);
    route__api_transcription(f);
    route__api_streaming(f);
}
