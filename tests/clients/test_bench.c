/*
 * test_bench.c — `acm bench --audio DIR` (clients/bench.c) against a real acmd on loopback serving the golden
 * random-weight speech model (tests/golden/speech_a.safetensors): its transcripts are meaningless, so the references
 * are made from the server's own answers, one kept as is (no word errors) and one with two words more (two deletions
 * a request): the word error rate the bench reports is then known exactly. Also: every request accounted for, the
 * seconds of audio counted, and a WAV without its transcript refused (exit 3, naming the file) before any request.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/acmc.h"
#include "server/harness.h"

static void put16(uint8_t *p, unsigned v) { p[0] = v & 255, p[1] = v >> 8 & 255; }
static void put32(uint8_t *p, uint32_t v) { put16(p, v & 0xffff), put16(p + 2, v >> 16); }

/* A 16 kHz mono 16-bit WAV of n samples of a chirp (different for every seed), written to path. */
static void write_wav(const char *path, size_t n, unsigned seed) {
    uint8_t *b = calloc(1, 44 + 2 * n);
    memcpy(b, "RIFF", 4), put32(b + 4, (uint32_t)(36 + 2 * n)), memcpy(b + 8, "WAVEfmt ", 8);
    put32(b + 16, 16), put16(b + 20, 1), put16(b + 22, 1), put32(b + 24, 16000), put32(b + 28, 32000);
    put16(b + 32, 2), put16(b + 34, 16), memcpy(b + 36, "data", 4), put32(b + 40, (uint32_t)(2 * n));
    for (size_t i = 0; i < n; i++) {
        const double t = i / 16000.0, f = 200 + 120 * seed + 300 * t;
        put16(b + 44 + 2 * i, (uint16_t)(int16_t)lrint(0.5 * sin(2 * M_PI * f * t) * 32767));
    }
    FILE *fp = fopen(path, "wb");
    cr_assert(fp);
    cr_assert_eq(fwrite(b, 1, 44 + 2 * n, fp), 44 + 2 * n);
    fclose(fp);
    free(b);
}

static void write_text(const char *path, const char *s) {
    FILE *fp = fopen(path, "w");
    cr_assert(fp);
    fputs(s, fp);
    fclose(fp);
}

/* The server's transcript of a WAV file (malloc'd). */
static char *server_text(int port, const char *path) {
    size_t len;
    char *wav = th_slurp(path, &len);
    cr_assert(wav);
    th_resp r;
    cr_assert_eq(th_http(port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\n", wav, len, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    char *t = strdup(json_string_value(json_object_get(j, "text")));
    json_decref(j);
    th_resp_free(&r);
    free(wav);
    return t;
}

static long words(const char *s) {
    long n = 0;
    for (const char *p = s; *p; p++) n += *p != ' ' && (p == s || p[-1] == ' ');
    return n;
}

/* Runs acm with the arguments; its exit status, stdout and stderr (malloc'd). */
static int run_acm(const char *args, char **out, char **err) {
    const char *b = getenv("ACM_BUILD");
    char o[] = "/tmp/acm-bench-out-XXXXXX", e[] = "/tmp/acm-bench-err-XXXXXX", cmd[2048];
    close(mkstemp(o)), close(mkstemp(e));
    snprintf(cmd, sizeof cmd, "%s/acm %s >%s 2>%s", b && *b ? b : "build", args, o, e);
    const int st = system(cmd);
    *out = th_slurp(o, NULL), *err = th_slurp(e, NULL);
    unlink(o), unlink(e);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

Test(bench_audio, word_error_rate_and_audio_per_second, .timeout = 120) {
    th_acmd s;
    cr_assert_eq(th_acmd_start(&s, (const char *const[]){"--model", "s=tests/golden/speech_a.safetensors", "--workers",
                                                         "1", NULL}), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    char dir[] = "/tmp/acm-bench-audio-XXXXXX", pa[256], pb[256], ta[256], tb[256];
    cr_assert(mkdtemp(dir));
    snprintf(pa, sizeof pa, "%s/a.wav", dir), snprintf(pb, sizeof pb, "%s/b.wav", dir);
    snprintf(ta, sizeof ta, "%s/a.txt", dir), snprintf(tb, sizeof tb, "%s/b.txt", dir);
    write_wav(pa, 16000, 1), write_wav(pb, 24000, 2);
    char *xa = server_text(s.port, pa), *xb = server_text(s.port, pb);
    char ref_b[8192];
    snprintf(ref_b, sizeof ref_b, "%s zzqx qqzx", xb); /* two reference words the transcript lacks */
    write_text(ta, xa), write_text(tb, ref_b);
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "bench --server http://127.0.0.1:%d --model s --audio %s -n 4 -c 1 --json", s.port, dir);
    int rc = run_acm(args, &out, &err);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, err);
    json_error_t je;
    json_t *o = json_loads(out, 0, &je);
    cr_assert(o, "not JSON: %s", out);
    cr_expect_eq(json_integer_value(json_object_get(o, "sent")), 4);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "by_status"), "200")), 4);
    json_t *a = json_object_get(o, "audio");
    cr_assert(json_is_object(a), "%s", out);
    cr_expect_eq(json_integer_value(json_object_get(a, "files")), 2);
    /* a, b, a, b: 2 x 1 s + 2 x 1.5 s */
    cr_expect_float_eq(json_number_value(json_object_get(a, "seconds")), 5.0, 1e-9);
    cr_expect_gt(json_number_value(json_object_get(a, "seconds_per_s")), 0);
    const long ref_words = 2 * (words(xa) + words(xb) + 2);
    cr_expect_eq(json_integer_value(json_object_get(a, "word_errors")), 4);
    cr_expect_eq(json_integer_value(json_object_get(a, "ref_words")), ref_words);
    cr_expect_float_eq(json_number_value(json_object_get(a, "wer")), 4.0 / ref_words, 1e-12);
    json_decref(o);
    free(out), free(err);
    /* the text report says it too */
    snprintf(args, sizeof args, "bench --server http://127.0.0.1:%d --model s --audio %s -n 2 -c 1", s.port, dir);
    cr_assert_eq(run_acm(args, &out, &err), 0, "%s", err);
    cr_expect(strstr(out, "WER"), "%s", out);
    cr_expect(strstr(out, "s of audio per second"), "%s", out);
    free(out), free(err);
    /* a WAV without its transcript: refused before any request, naming it */
    unlink(tb);
    const double before = th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}");
    snprintf(args, sizeof args, "bench --server http://127.0.0.1:%d --model s --audio %s -n 2", s.port, dir);
    cr_expect_eq(run_acm(args, &out, &err), ACMC_EXIT_INPUT, "%s", err);
    cr_expect(strstr(err, "b.txt"), "%s", err);
    cr_expect_eq(th_metric(s.port, "acm_asr_audio_seconds_total{model=\"s\"}"), before);
    free(out), free(err);
    unlink(pa), unlink(pb), unlink(ta), rmdir(dir);
    free(xa), free(xb);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}
