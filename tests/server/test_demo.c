/*
 * test_demo.c — GET /demo/ (server/demo.c): the page embedded in acmd is server/demo/index.html byte for byte, as
 * text/html, at /demo and /demo/, open without a key under --auth-file (the page itself holds nothing; the routes it
 * calls want the key), and it calls the routes it should (classify with explain, the stream route, configure).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/harness.h"

Test(demo, the_page_is_the_file, .timeout = 60) {
    th_acmd s;
    char dir[] = "/tmp/acm_demo_XXXXXX", keys[64];
    cr_assert(mkdtemp(dir));
    snprintf(keys, sizeof keys, "%s/keys", dir);
    FILE *f = fopen(keys, "w");
    fputs("alice sha256:0000000000000000000000000000000000000000000000000000000000000000\n", f);
    fclose(f);
    cr_assert_eq(th_acmd_start(&s, (const char *const[]){"--model", "s=tests/golden/speech_a.safetensors", "--workers",
                                                          "1", "--auth-file", keys, NULL}), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    size_t n;
    char *want = th_slurp("server/demo/index.html", &n);
    cr_assert(want);
    const char *paths[] = {"/demo/", "/demo"};
    for (int i = 0; i < 2; i++) {
        th_resp r;
        cr_assert_eq(th_http(s.port, "GET", paths[i], NULL, NULL, 0, &r), 0);
        cr_expect_eq(r.status, 200, "%s: %s", paths[i], r.head);
        char ct[128];
        cr_expect_str_eq(th_header(&r, "Content-Type", ct, sizeof ct), "text/html; charset=utf-8");
        cr_expect_eq(r.len, n, "%s: %zu bytes, the file has %zu", paths[i], r.len, n);
        cr_expect(r.len == n && memcmp(r.body, want, n) == 0, "%s: not the file's bytes", paths[i]);
        th_resp_free(&r);
    }
    cr_expect(strstr(want, "/classify?explain=1") && strstr(want, "/stream?") && strstr(want, "\"configure\""));
    cr_expect(!strstr(want, "http://") && !strstr(want, "https://"), "no CDN, no other origin");
    th_resp r;
    cr_assert_eq(th_http(s.port, "POST", "/demo/", NULL, "x", 1, &r), 0);
    cr_expect_eq(r.status, 405);
    th_resp_free(&r);
    free(want);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
    unlink(keys), rmdir(dir);
}

/* Levenshtein distance between two short strings (characters). */
static int edit_distance(const char *a, const char *b) {
    const size_t n = strlen(a), m = strlen(b);
    int *row = malloc((m + 1) * sizeof *row);
    for (size_t k = 0; k <= m; k++) row[k] = (int)k;
    for (size_t i = 1; i <= n; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t k = 1; k <= m; k++) {
            const int up = row[k], best = diag + (a[i - 1] != b[k - 1]);
            row[k] = best < up + 1 ? (best < row[k - 1] + 1 ? best : row[k - 1] + 1) : (up + 1 < row[k - 1] + 1 ? up + 1 : row[k - 1] + 1);
            diag = up;
        }
    }
    const int d = row[m];
    free(row);
    return d;
}

/* A 16-bit mono WAV of n samples at 16 kHz: a chirp (seed: its start), silence where quiet is set. */
static void write_wav(const char *path, size_t n, int seed) {
    FILE *f = fopen(path, "wb");
    cr_assert(f, "%s", path);
    const uint32_t data = (uint32_t)(2 * n), v32[] = {36 + data, 16, 16000, 32000, data};
    const uint16_t fmt[] = {1, 1}, blk[] = {2, 16};
    fwrite("RIFF", 1, 4, f), fwrite(&v32[0], 4, 1, f), fwrite("WAVEfmt ", 1, 8, f), fwrite(&v32[1], 4, 1, f);
    fwrite(fmt, 2, 2, f), fwrite(&v32[2], 4, 2, f), fwrite(blk, 2, 2, f), fwrite("data", 1, 4, f), fwrite(&v32[4], 4, 1, f);
    for (size_t i = 0; i < n; i++) {
        const double t = (double)i / 16000;
        const int16_t v = (int16_t)(12000 * sin(2 * M_PI * (200 + 150 * seed + 300 * t) * t));
        fwrite(&v, 2, 1, f);
    }
    fclose(f);
}

/* The page in Debian's chromium (headless, playwright-core: tests/server/browser/demo.mjs): an image picked is
 * classified and its compute map drawn, the budget slider re-asks at 0.5; an audio file streamed in real time ends
 * with the /transcribe text of the same file; the fake microphone streams, and the slider moved mid-stream brings the
 * chunks' budget down to 0.25 (configure). Screenshots: see ACM_DEMO_SHOTS below (docs/ holds the README's). Skipped
 * without chromium or `make browser-node`. */
Test(demo, in_chromium, .timeout = 180) {
    const char *chrome = "/usr/bin/chromium", *pw = "build/browser-node/node_modules/playwright-core/package.json";
    if (access(chrome, X_OK) || access(pw, R_OK)) cr_skip_test("no %s or no playwright-core (make browser-node)", chrome);
    th_acmd s;
    cr_assert_eq(th_acmd_start(&s, (const char *const[]){"--model", "s=tests/golden/speech_a.safetensors", "--model",
                                                          "v=tests/golden/vit_a.safetensors", "--workers", "2", NULL}), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    char dir[] = "/tmp/acm_demo_XXXXXX", wav[64], mic[64], outp[64], cmd[1024];
    cr_assert(mkdtemp(dir));
    snprintf(wav, sizeof wav, "%s/file.wav", dir), snprintf(mic, sizeof mic, "%s/mic.wav", dir);
    snprintf(outp, sizeof outp, "%s/out.json", dir);
    write_wav(wav, 16000 * 3, 1);
    write_wav(mic, 16000 * 10, 2);
    size_t n;
    char *body = th_slurp(wav, &n);
    th_resp r;
    /* the page's stream asks for its slider's budget (1 at first): the cap policy at 1, not the model's default */
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/s/transcribe", "Content-Type: audio/wav\r\nX-Compute-Budget: 1\r\n",
                         body, n, &r), 0);
    json_t *ref = th_json(&r);
    th_resp_free(&r);
    free(body);
    /* screenshots: into $ACM_DEMO_SHOTS when set (ACM_DEMO_SHOTS=docs remakes the README's), else the scratch dir */
    const char *shots = getenv("ACM_DEMO_SHOTS") && *getenv("ACM_DEMO_SHOTS") ? getenv("ACM_DEMO_SHOTS") : dir;
    /* beside its node_modules: an ES module finds packages from where the script lies */
    snprintf(cmd, sizeof cmd, "cp tests/server/browser/demo.mjs build/browser-node/ && node build/browser-node/demo.mjs "
             "http://127.0.0.1:%d %s v clients/examples/bag.png s %s %s %s > %s", s.port, chrome, wav, mic, shots, outp);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *o = th_slurp(outp, NULL);
    json_t *j = json_loads(o, 0, NULL);
    cr_assert(j, "demo.mjs printed %s", o);
    cr_assert(!json_object_get(j, "error"), "%s", o);
    cr_expect(!json_object_get(j, "page_errors"), "%s", o);
    cr_expect(strlen(json_string_value(json_object_get(j, "label"))) > 0, "%s", o);
    cr_expect_eq(json_integer_value(json_object_get(j, "top")), 5, "%s", o);
    cr_expect(json_is_true(json_object_get(j, "heat_drawn")), "%s", o);
    cr_expect(strstr(json_string_value(json_object_get(j, "stats_half")), "β applied 0.50"), "%s", o);
    /* the browser decodes the WAV to float itself (Web Audio), /transcribe from its 16-bit samples: the random model's
     * greedy text may flip a character or two under that rounding, no more */
    const char *ft = json_string_value(json_object_get(j, "file_text")), *rt = json_string_value(json_object_get(ref, "text"));
    cr_assert(ft && rt);
    const int d = edit_distance(ft, rt);
    cr_expect(strlen(rt) > 5 && d <= 2, "the streamed file's final \"%s\" is %d edits from /transcribe's \"%s\"", ft, d, rt);
    cr_expect(strlen(json_string_value(json_object_get(j, "mic_text"))) > 0, "%s", o);
    free(o);
    json_decref(j), json_decref(ref);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_expect_eq(system(rm), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}
