/*
 * asr_pace.c — uploads paced at real time (bench/asr.sh, target (a) of "Transcription serving, part 1"): N uploads of
 * one WAV file to POST /v1/models/{m}/transcribe, started --stagger seconds apart in all (evenly), each sending its
 * bytes on the audio's own clock (a piece of --piece-ms of audio at its due time, the first piece with the WAV header)
 * with Content-Length, so that the server gets the file as a live recording would arrive. Measured per upload: the
 * milliseconds from its last byte written to its whole answer read ("after last byte"), and how late its last piece
 * went out against its schedule (the client's own lag: the figure is only meaningful while that stays small).
 * Prints p50/p90/p99/max of both and the statuses. Also --make-wav PATH --seconds S: writes a 16 kHz mono 16-bit WAV
 * of a synthetic signal (a chirp under a moving envelope, with noise) and exits.
 *
 * usage: asr_pace --port P --wav FILE [--uploads 50] [--stagger 10] [--piece-ms 20] [--model s]
 *        asr_pace --make-wav PATH [--seconds 30] [--seed 1]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BENCH_NAME "asr_pace"
#include "bench/bench_util.h"

static int port = 0, piece_ms = 20;
static const char *model = "s";
static uint8_t *wav;
static size_t wav_len, bytes_per_s;
static double t0;

typedef struct {
    int index;
    double start;       /* seconds after t0 */
    double after_ms;    /* last byte -> answer */
    double late_ms;     /* the last piece's lateness against its schedule */
    int status;
} upload;

static void sleep_until(double t) {
    for (;;) {
        const double d = t - bu_now_s();
        if (d <= 0) return;
        struct timespec ts = {(time_t)d, (long)((d - floor(d)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int send_all(int fd, const void *p, size_t n) {
    const uint8_t *b = p;
    while (n) {
        ssize_t k = send(fd, b, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        b += k, n -= (size_t)k;
    }
    return 0;
}

static void *run(void *arg) {
    upload *u = arg;
    u->status = -1;
    sleep_until(t0 + u->start);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return NULL;
    }
    char hd[256];
    snprintf(hd, sizeof hd, "POST /v1/models/%s/transcribe HTTP/1.1\r\nHost: x\r\nContent-Type: audio/wav\r\n"
                            "Content-Length: %zu\r\nConnection: close\r\n\r\n", model, wav_len);
    const double begin = bu_now_s();
    if (send_all(fd, hd, strlen(hd))) goto out;
    const size_t piece = bytes_per_s * (size_t)piece_ms / 1000;
    double due = begin;
    for (size_t off = 0; off < wav_len;) {
        size_t n = off == 0 ? 44 + piece : piece; /* the header with the first piece */
        if (n > wav_len - off) n = wav_len - off;
        sleep_until(due);
        if (send_all(fd, wav + off, n)) goto out;
        off += n;
        due += piece_ms * 1e-3;
    }
    const double last = bu_now_s();
    u->late_ms = (last - (due - piece_ms * 1e-3)) * 1e3;
    char buf[65536];
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) break;
        got += (size_t)k;
        if (got == sizeof buf - 1) got = 0; /* only the status line matters, and it came first */
    }
    u->after_ms = (bu_now_s() - last) * 1e3;
    buf[got] = 0;
    if (!strncmp(buf, "HTTP/1.1 ", 9)) u->status = atoi(buf + 9);
out:
    close(fd);
    return NULL;
}

static void make_wav(const char *path, double seconds, unsigned seed) {
    const size_t n = (size_t)(seconds * 16000);
    uint8_t *b = calloc(1, 44 + 2 * n);
    if (!b) bu_die("--make-wav", "out of memory");
#define P16(p, v) ((p)[0] = (uint8_t)((v) & 255), (p)[1] = (uint8_t)(((v) >> 8) & 255))
#define P32(p, v) (P16(p, (v) & 0xffff), P16((p) + 2, (v) >> 16))
    memcpy(b, "RIFF", 4), P32(b + 4, (uint32_t)(36 + 2 * n)), memcpy(b + 8, "WAVEfmt ", 8);
    P32(b + 16, 16u), P16(b + 20, 1u), P16(b + 22, 1u), P32(b + 24, 16000u), P32(b + 28, 32000u);
    P16(b + 32, 2u), P16(b + 34, 16u), memcpy(b + 36, "data", 4), P32(b + 40, (uint32_t)(2 * n));
    uint64_t r = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        const double t = i / 16000.0, f = 180 + 60 * seed + 200 * fmod(t, 3.0);
        const double v = 0.4 * sin(2 * M_PI * f * t) * (0.55 + 0.45 * sin(2 * M_PI * 0.7 * t)) +
                         0.03 * ((double)(r >> 40) / (1 << 24) - 0.5);
        const int s = (int)lrint(v * 32767);
        P16(b + 44 + 2 * i, (unsigned)(uint16_t)(int16_t)s);
    }
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(b, 1, 44 + 2 * n, f) != 44 + 2 * n || fclose(f)) bu_die(path, "cannot write");
    free(b);
}

static int cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double q) { /* nearest rank */
    if (n < 1) return NAN;
    int k = (int)ceil(q * n) - 1;
    return v[k < 0 ? 0 : k >= n ? n - 1 : k];
}

int main(int argc, char **argv) {
    const char *wav_path = NULL, *make = NULL;
    int uploads = 50;
    unsigned seed = 1;
    double stagger = 10, seconds = 30;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) bu_die(a, "needs a value");
        if (!strcmp(a, "--port")) port = atoi(v);
        else if (!strcmp(a, "--wav")) wav_path = v;
        else if (!strcmp(a, "--uploads")) uploads = atoi(v);
        else if (!strcmp(a, "--stagger")) stagger = atof(v);
        else if (!strcmp(a, "--piece-ms")) piece_ms = atoi(v);
        else if (!strcmp(a, "--model")) model = v;
        else if (!strcmp(a, "--make-wav")) make = v;
        else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--seed")) seed = (unsigned)atoi(v);
        else bu_die(a, "unknown option (see the comment at the top of bench/asr_pace.c)");
        i++;
    }
    if (make) {
        if (!(seconds > 0 && seconds <= 3600)) bu_die("--seconds", "in (0, 3600]");
        make_wav(make, seconds, seed);
        return 0;
    }
    if (port <= 0 || !wav_path || uploads < 1 || uploads > 1000 || piece_ms < 1 || !(stagger >= 0))
        bu_die("options", "--port P --wav FILE, uploads 1..1000, piece-ms >= 1, stagger >= 0");
    FILE *f = fopen(wav_path, "rb");
    if (!f) bu_die(wav_path, "cannot open");
    fseek(f, 0, SEEK_END);
    wav_len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    wav = malloc(wav_len);
    if (!wav || wav_len < 44 || fread(wav, 1, wav_len, f) != wav_len) bu_die(wav_path, "cannot read");
    fclose(f);
    bytes_per_s = (size_t)wav[28] | (size_t)wav[29] << 8 | (size_t)wav[30] << 16 | (size_t)wav[31] << 24;
    if (memcmp(wav, "RIFF", 4) || bytes_per_s == 0) bu_die(wav_path, "not a canonical WAV file");
    upload *u = calloc((size_t)uploads, sizeof *u);
    pthread_t *th = calloc((size_t)uploads, sizeof *th);
    t0 = bu_now_s() + 0.2;
    for (int i = 0; i < uploads; i++) {
        u[i].index = i, u[i].start = uploads > 1 ? stagger * i / (uploads - 1) : 0;
        if (pthread_create(&th[i], NULL, run, &u[i])) bu_die("thread", "cannot start");
    }
    for (int i = 0; i < uploads; i++) pthread_join(th[i], NULL);
    double *after = calloc((size_t)uploads, sizeof *after), *late = calloc((size_t)uploads, sizeof *late);
    int ok = 0;
    for (int i = 0; i < uploads; i++)
        if (u[i].status == 200) after[ok] = u[i].after_ms, late[ok] = u[i].late_ms, ok++;
    qsort(after, (size_t)ok, sizeof *after, cmp), qsort(late, (size_t)ok, sizeof *late, cmp);
    printf("asr_pace: %d uploads of %.1f s of audio (%zu bytes) at real-time pace in %d ms pieces, started over %.1f s: "
           "%d answered 200 in %.1f s\n", uploads, (double)(wav_len - 44) / (double)bytes_per_s, wav_len, piece_ms,
           stagger, ok, bu_now_s() - t0);
    printf("| | p50 | p90 | p99 | max |\n|---|---|---|---|---|\n");
    printf("| answer after the last byte, ms | %.1f | %.1f | %.1f | %.1f |\n", pct(after, ok, 0.5), pct(after, ok, 0.9),
           pct(after, ok, 0.99), ok ? after[ok - 1] : NAN);
    printf("| last piece late against its schedule, ms (client lag) | %.1f | %.1f | %.1f | %.1f |\n", pct(late, ok, 0.5),
           pct(late, ok, 0.9), pct(late, ok, 0.99), ok ? late[ok - 1] : NAN);
    free(u), free(th), free(after), free(late), free(wav);
    return ok == uploads ? 0 : 1;
}
