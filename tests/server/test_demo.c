/*
 * test_demo.c — GET /demo/ (server/demo.c): the page embedded in acmd is server/demo/index.html byte for byte, as
 * text/html, at /demo and /demo/, open without a key under --auth-file (the page itself holds nothing; the routes it
 * calls want the key), and it calls the routes it should (classify with explain, the stream route, configure).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <unistd.h>
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
