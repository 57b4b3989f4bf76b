/*
 * test_auth.c — API keys (server/auth.c, --auth-file): the file's format and its errors, the key comparison's work
 * independent of how much of a key or of its hash matches (counted, not timed), `acmd --hash-key`, and a real acmd:
 * missing, malformed, wrong and valid keys on every route class (inference: classify and OIP infer; open: health,
 * readiness, metadata, metrics; metrics closed with --metrics-auth), a key revoked by a SIGHUP reload while a
 * connection stays open, a reload that fails keeping the keys, the access log naming the key, and the start-up
 * warning on a non-loopback listener without keys. Every wait is a poll with a bounded timeout.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/acmd.h"
#include "server/harness.h"

static const char *const KEY_ALICE = "alice-0123456789abcdef";
static const char *const KEY_BOB = "bob-fedcba9876543210";

/* The --auth-file line of a key, as acmd --hash-key writes it. */
static void key_line(char *buf, size_t n, const char *name, const char *key, const char *limits) {
    uint8_t h[ACMD_KEY_HASH];
    acmd_key_hash(h, key, strlen(key));
    size_t o = (size_t)snprintf(buf, n, "%s sha256:", name);
    for (int i = 0; i < ACMD_KEY_HASH; i++) o += (size_t)snprintf(buf + o, n - o, "%02x", h[i]);
    snprintf(buf + o, n - o, "%s%s\n", limits ? " " : "", limits ? limits : "");
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    cr_assert(f, "%s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* An auth file of the named keys (NULL-terminated name, key pairs) written to path. */
static void write_keys(const char *path, const char *const *nk) {
    char text[4096] = "# test keys\n\n", line[512];
    for (; nk[0]; nk += 2) {
        key_line(line, sizeof line, nk[0], nk[1], NULL);
        strcat(text, line);
    }
    write_file(path, text);
}

/* ---- the file and the comparison (in process) --------------------------------------------------------------------- */

Test(auth, file_parses_names_hashes_and_limits) {
    char path[] = "/tmp/acm-auth-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char text[2048], l1[512], l2[512];
    key_line(l1, sizeof l1, "alice", KEY_ALICE, "urgency=2 budget_min=0.25 budget_max=0.75 rate=5 queue_share=0.5");
    key_line(l2, sizeof l2, "bob.2", KEY_BOB, NULL);
    snprintf(text, sizeof text, "# comment\n%s\n   \n%s", l1, l2);
    write_file(path, text);
    acmd_keys k;
    char err[512];
    cr_assert_eq(acmd_keys_load(&k, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(k.n, 2);
    cr_expect_str_eq(k.k[0].name, "alice");
    cr_expect_eq(k.k[0].urgency_min, 2);
    cr_expect_eq(k.k[0].budget_min, 0.25);
    cr_expect_eq(k.k[0].budget_max, 0.75);
    cr_expect_eq(k.k[0].rate, 5);
    cr_expect_eq(k.k[0].queue_share, 0.5);
    cr_expect_eq(k.k[1].budget_max, 1, "a key without limits has none binding");
    cr_expect_eq(k.k[1].queue_share, 1);
    cr_expect_eq(acmd_keys_find(&k, KEY_ALICE, strlen(KEY_ALICE), NULL), 0);
    cr_expect_eq(acmd_keys_find(&k, KEY_BOB, strlen(KEY_BOB), NULL), 1);
    cr_expect_eq(acmd_keys_find(&k, "alice", 5, NULL), -1);
    cr_expect_eq(acmd_keys_find(&k, KEY_ALICE, strlen(KEY_ALICE) - 1, NULL), -1, "a prefix of a key is not the key");
    acmd_keys_free(&k);
    unlink(path);
}

Test(auth, bad_files_name_the_line_and_the_problem) {
    char path[] = "/tmp/acm-auth-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char good[512];
    key_line(good, sizeof good, "alice", KEY_ALICE, NULL);
    const struct {
        const char *text, *needle;
    } cases[] = {
        {"alice\n", ":1: key alice: the second field must be sha256:"},
        {"alice sha256:00\n", ":1: key alice: the second field"},
        {"al/ice sha256:00\n", ":1: key name \"al/ice\""},
        {NULL, ":2: key name \"alice\" appears twice"},     /* good twice */
        {NULL, ":2: key bob has the same hash as key alice"}, /* same hash, two names */
        {NULL, ":1: unknown limit \"speed\""},
        {NULL, ":1: urgency must be in [0, 7], got 9"},
        {NULL, ":1: key alice: budget_min 0.8 is above budget_max 0.5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048];
        if (cases[i].text) snprintf(text, sizeof text, "%s", cases[i].text);
        else if (i == 3) snprintf(text, sizeof text, "%s%s", good, good);
        else if (i == 4) {
            snprintf(text, sizeof text, "%s", good);
            snprintf(text + strlen(text), sizeof text - strlen(text), "bob%s", strchr(good, ' '));
        } else {
            const char *lim = i == 5 ? "speed=3" : i == 6 ? "urgency=9" : "budget_min=0.8 budget_max=0.5";
            key_line(text, sizeof text, "alice", KEY_ALICE, lim);
        }
        write_file(path, text);
        acmd_keys k;
        char err[512] = "";
        cr_expect_eq(acmd_keys_load(&k, path, err, sizeof err), -1, "case %zu loaded", i);
        cr_expect(strstr(err, path) && strstr(err, cases[i].needle), "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
        cr_expect_eq(k.n, 0);
    }
    acmd_keys k;
    char err[512];
    unlink(path);
    cr_expect_eq(acmd_keys_load(&k, path, err, sizeof err), -1);
    cr_expect(strstr(err, "No such file"), "%s", err);
}

/* The comparison does the same work whatever matches: for keys sharing 0..all bytes with a valid key, and for hashes
 * sharing 0..32 leading bytes with an entry's, the bytes compared are the same count (every entry, every byte), and
 * so is the decision path: the found index is selected by a mask, with no branch on a comparison. */
Test(auth, comparison_work_does_not_depend_on_how_much_matches) {
    acmd_keys k = {0};
    k.n = 5;
    k.k = calloc((size_t)k.n, sizeof *k.k);
    for (int i = 0; i < k.n; i++) {
        acmd_key_defaults(&k.k[i]);
        snprintf(k.k[i].name, sizeof k.k[i].name, "k%d", i);
        char key[64];
        snprintf(key, sizeof key, "%s-%d", KEY_ALICE, i);
        acmd_key_hash(k.k[i].hash, key, strlen(key));
    }
    /* hashes that share j leading bytes with entry 2's, j = 0..32 */
    size_t steps_first = 0;
    for (int j = 0; j <= ACMD_KEY_HASH; j++) {
        uint8_t h[ACMD_KEY_HASH];
        memcpy(h, k.k[2].hash, sizeof h);
        if (j < ACMD_KEY_HASH) h[j] ^= 0x5a;
        size_t steps = 0;
        const int eq = acmd_key_hash_eq(h, k.k[2].hash, &steps);
        cr_expect_eq(eq, j == ACMD_KEY_HASH, "prefix %d", j);
        cr_expect_eq(steps, (size_t)ACMD_KEY_HASH, "prefix %d: %zu bytes compared", j, steps);
        if (!j) steps_first = steps;
        cr_expect_eq(steps, steps_first);
    }
    /* keys sharing 0..n bytes with a valid key (the hash scatters them), many random others: the same work */
    char valid[64];
    snprintf(valid, sizeof valid, "%s-%d", KEY_ALICE, 3);
    const size_t n = strlen(valid), want = (size_t)k.n * ACMD_KEY_HASH;
    for (size_t j = 0; j <= n; j++) {
        char key[64];
        memcpy(key, valid, n + 1);
        if (j < n) key[j] = key[j] == 'x' ? 'y' : 'x';
        size_t steps = 0;
        const int i = acmd_keys_find(&k, key, n, &steps);
        cr_expect_eq(i, j == n ? 3 : -1, "key sharing %zu bytes", j);
        cr_expect_eq(steps, want, "key sharing %zu bytes: %zu bytes compared, want %zu", j, steps, want);
    }
    unsigned x = 12345;
    for (int t = 0; t < 1000; t++) {
        char key[32];
        for (int c = 0; c < 31; c++) key[c] = (char)('a' + (x = x * 1103515245u + 12345u) % 26);
        key[31] = 0;
        size_t steps = 0;
        cr_expect_eq(acmd_keys_find(&k, key, 31, &steps), -1);
        cr_expect_eq(steps, want);
    }
    acmd_keys_free(&k);
}

Test(auth, bearer_field_parsing) {
    size_t n = 0;
    const char *t = acmd_auth_bearer("Bearer abc", &n);
    cr_assert(t && n == 3 && strncmp(t, "abc", 3) == 0);
    t = acmd_auth_bearer("bearer   abc  ", &n);
    cr_assert(t && n == 3 && strncmp(t, "abc", 3) == 0, "the scheme is case-insensitive, spaces around are not the key");
    cr_expect_null(acmd_auth_bearer("Basic YWxpY2U6eA==", &n));
    cr_expect_null(acmd_auth_bearer("Bearer", &n));
    cr_expect_null(acmd_auth_bearer("Bearer   ", &n));
    cr_expect_null(acmd_auth_bearer("Bearerabc", &n));
    cr_expect_null(acmd_auth_bearer(NULL, &n));
}

static const char *acmd_path(void) {
    static char p[512];
    const char *a = getenv("ACM_ACMD"), *b = getenv("ACM_BUILD");
    if (a) return a;
    snprintf(p, sizeof p, "%s/acmd", b ? b : "build");
    return p;
}

/* acmd --hash-key NAME: the line of a key read from stdin; an empty stdin makes a new key (stderr) whose line is its
 * hash; a bad name or a key with a space is refused. */
Test(auth, hash_key_prints_the_file_line) {
    char cmd[1024], out[512] = "", want[512];
    snprintf(cmd, sizeof cmd, "printf '%%s\\n' '%s' | %s --hash-key alice", KEY_ALICE, acmd_path());
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    cr_assert(fgets(out, sizeof out, p));
    cr_expect_eq(pclose(p), 0);
    key_line(want, sizeof want, "alice", KEY_ALICE, NULL);
    cr_expect_str_eq(out, want);
    /* a new key: stderr has it, stdout its line */
    snprintf(cmd, sizeof cmd, "%s --hash-key fresh </dev/null 2>&1 >/dev/null | tail -n 1", acmd_path());
    char key[256] = "";
    p = popen(cmd, "r");
    cr_assert(fgets(key, sizeof key, p));
    pclose(p);
    key[strcspn(key, "\n")] = 0;
    cr_expect_eq(strlen(key), 64u, "new key \"%s\"", key);
    snprintf(cmd, sizeof cmd, "printf '%%s\\n' '%s' | %s --hash-key fresh", key, acmd_path());
    p = popen(cmd, "r");
    cr_assert(fgets(out, sizeof out, p));
    pclose(p);
    key_line(want, sizeof want, "fresh", key, NULL);
    cr_expect_str_eq(out, want);
    snprintf(cmd, sizeof cmd, "echo 'a b' | %s --hash-key x >/dev/null 2>&1", acmd_path());
    cr_expect_neq(system(cmd), 0, "a key with a space");
    snprintf(cmd, sizeof cmd, "echo ab | %s --hash-key 'x/y' >/dev/null 2>&1", acmd_path());
    cr_expect_neq(system(cmd), 0, "a name with a slash");
}

/* ---- a real server ---------------------------------------------------------------------------------------------- */

static th_acmd srv;
static char auth_path[512];

/* acmd with keys alice (limits alice_limits, NULL: none) and bob (none); held: th_acmd_start_held. */
static void start_limited(const char *const *extra, const char *alice_limits, int held) {
    char dir[] = "/tmp/acm-authd-XXXXXX";
    cr_assert(mkdtemp(dir));
    snprintf(auth_path, sizeof auth_path, "%s/keys", dir);
    char text[2048], line[512];
    key_line(text, sizeof text, "alice", KEY_ALICE, alice_limits);
    key_line(line, sizeof line, "bob", KEY_BOB, NULL);
    strcat(text, line);
    write_file(auth_path, text);
    const char *base[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-format", "json",
                          "--auth-file", auth_path, NULL};
    cr_assert_eq(th_acmd_start_with(&srv, base, extra, held), 0, "acmd did not start");
    if (held) th_hold_release(&srv, 1); /* the warm-up */
    cr_assert_eq(th_acmd_wait_ready(&srv, 30), 0, "acmd not ready");
}
static void start_auth(const char *const *extra) { start_limited(extra, NULL, 0); }

static void stop_auth(void) {
    cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0, "acmd did not exit 0 on SIGTERM");
    unlink(auth_path);
    *strrchr(auth_path, '/') = 0;
    rmdir(auth_path);
}

static uint8_t *grey_png(size_t *n) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 37 % 251);
    return th_png(px, 28, 28, 1, n);
}

static const char *const OIP = "{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,28,28],"
                               "\"data\":[0.5]}]}";

/* An inference request of kind 0 (classify) or 1 (OIP infer) with the Authorization field auth (NULL: none). */
static th_resp infer(int kind, const char *auth) {
    static uint8_t *png;
    static size_t png_n;
    static char oip[28 * 28 * 4 + 256];
    if (!png) {
        png = grey_png(&png_n);
        size_t o = (size_t)snprintf(oip, sizeof oip, "%.*s", (int)(strstr(OIP, "0.5") - OIP), OIP);
        for (int i = 0; i < 28 * 28; i++) o += (size_t)snprintf(oip + o, sizeof oip - o, "%s0.5", i ? "," : "");
        snprintf(oip + o, sizeof oip - o, "]}]}");
    }
    char h[512];
    snprintf(h, sizeof h, "Content-Type: %s\r\n%s%s%s", kind ? "application/json" : "image/png", auth ? "Authorization: " : "",
             auth ? auth : "", auth ? "\r\n" : "");
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", kind ? "/v2/models/a/infer" : "/v1/models/a/classify", h,
                         kind ? (const void *)oip : png, kind ? strlen(oip) : png_n, &r), 0);
    return r;
}

static void expect_401(th_resp *r, const char *needle, const char *what) {
    char v[128];
    cr_expect_eq(r->status, 401, "%s: %d %s", what, r->status, r->body);
    cr_expect(th_header(r, "WWW-Authenticate", v, sizeof v) && strncmp(v, "Bearer", 6) == 0, "%s: %s", what, r->head);
    cr_expect(r->body && strstr(r->body, needle), "%s: %s", what, r->body);
}

Test(auth_server, every_route_class_missing_wrong_and_valid_keys, .timeout = 90) {
    start_auth(NULL);
    char bearer_a[128], bearer_b[128];
    snprintf(bearer_a, sizeof bearer_a, "Bearer %s", KEY_ALICE);
    snprintf(bearer_b, sizeof bearer_b, "bearer %s", KEY_BOB);
    for (int kind = 0; kind < 2; kind++) {
        th_resp r = infer(kind, NULL);
        expect_401(&r, "Authorization: Bearer KEY", kind ? "infer, no key" : "classify, no key");
        th_resp_free(&r);
        r = infer(kind, "Basic YWxpY2U6eA==");
        expect_401(&r, "must be \\\"Bearer KEY\\\"", "another scheme");
        th_resp_free(&r);
        r = infer(kind, "Bearer alice-0123456789abcdeX"); /* all but the last byte of alice's */
        expect_401(&r, "unknown API key", "wrong key");
        th_resp_free(&r);
        r = infer(kind, bearer_a);
        cr_expect_eq(r.status, 200, "alice: %d %s", r.status, r.body);
        th_resp_free(&r);
        r = infer(kind, bearer_b);
        cr_expect_eq(r.status, 200, "bob (scheme in lower case): %d %s", r.status, r.body);
        th_resp_free(&r);
    }
    /* an unknown model without a key: 401, not 404 (no key, no knowledge of the model names) */
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/nope/classify", "Content-Type: image/png\r\n", "x", 1, &r), 0);
    cr_expect_eq(r.status, 401, "%d %s", r.status, r.body);
    th_resp_free(&r);
    /* open routes: no key needed */
    const char *open_paths[] = {"/v2/health/live", "/v2/health/ready", "/v2", "/v2/models/a", "/v2/models/a/ready",
                                "/v2/models/a/stats", "/metrics"};
    for (size_t i = 0; i < sizeof open_paths / sizeof *open_paths; i++) {
        cr_assert_eq(th_http(srv.port, "GET", open_paths[i], NULL, NULL, 0, &r), 0);
        cr_expect_eq(r.status, 200, "%s: %d", open_paths[i], r.status);
        th_resp_free(&r);
    }
    cr_expect_eq(th_metric(srv.port, "acm_http_requests_total{route=\"classify\",method=\"POST\",code=\"401\"}"), 4);
    /* the access log names the key (and only a key that was accepted) */
    char *log = th_acmd_log_wait(&srv, "\"key\":\"bob\"", 10);
    cr_expect(strstr(log, "\"key\":\"alice\""), "%s", log);
    cr_expect(strstr(log, "\"key\":\"bob\""), "%s", log);
    cr_expect_null(strstr(log, "without --auth-file"), "no warning with keys");
    free(log);
    stop_auth();
}

/* --metrics-auth 1: /metrics wants a key like an inference route: missing, wrong and revoked keys get 401. */
Test(auth_server, metrics_closed_with_metrics_auth, .timeout = 60) {
    const char *extra[] = {"--metrics-auth", "1", NULL};
    start_auth(extra);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    expect_401(&r, "Authorization", "metrics without a key");
    th_resp_free(&r);
    char h[128];
    snprintf(h, sizeof h, "Authorization: Bearer %s\r\n", KEY_BOB);
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", h, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/ready", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "readiness stays open");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", "Authorization: Bearer bob-0123456789abcdeX\r\n", NULL, 0, &r), 0);
    expect_401(&r, "unknown API key", "metrics with a wrong key");
    th_resp_free(&r);
    /* bob revoked: /metrics refuses him too, alice still reads it */
    const char *keys[] = {"alice", KEY_ALICE, NULL};
    write_keys(auth_path, keys);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    free(th_acmd_log_wait(&srv, "reloaded: 1 key(s)", 10));
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", h, NULL, 0, &r), 0);
    expect_401(&r, "unknown API key", "metrics with a revoked key");
    th_resp_free(&r);
    snprintf(h, sizeof h, "Authorization: Bearer %s\r\n", KEY_ALICE);
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", h, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "alice after the reload: %d", r.status);
    th_resp_free(&r);
    stop_auth();
}

/* Revocation: bob's line removed, SIGHUP; bob gets 401, alice 200, a connection open across the reload (an upload
 * in progress, its key checked at its headers) is answered; a reload of a broken file keeps the keys and says why;
 * the process exits 0 on SIGTERM at the end (SIGHUP used to kill it). */
Test(auth_server, sighup_reload_revokes_without_dropping_connections, .timeout = 90) {
    start_auth(NULL);
    char bearer_a[128], bearer_b[128];
    snprintf(bearer_a, sizeof bearer_a, "Bearer %s", KEY_ALICE);
    snprintf(bearer_b, sizeof bearer_b, "Bearer %s", KEY_BOB);
    th_resp r = infer(0, bearer_b);
    cr_expect_eq(r.status, 200, "%d %s", r.status, r.body);
    th_resp_free(&r);
    /* an upload under way across the reload */
    size_t png_n;
    uint8_t *png = grey_png(&png_n);
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    char head[512];
    int hn = snprintf(head, sizeof head, "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      "Authorization: Bearer %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", KEY_BOB, png_n);
    cr_assert_eq(th_send_all(fd, head, (size_t)hn), 0);
    cr_assert_eq(th_send_all(fd, png, 10), 0);
    /* revoke bob */
    const char *keys[] = {"alice", KEY_ALICE, NULL};
    write_keys(auth_path, keys);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    char *log = th_acmd_log_wait(&srv, "reloaded: 1 key(s)", 10);
    cr_assert(strstr(log, "reloaded: 1 key(s)"), "%s", log);
    free(log);
    r = infer(0, bearer_b);
    expect_401(&r, "unknown API key", "bob after revocation");
    th_resp_free(&r);
    r = infer(1, bearer_b);
    expect_401(&r, "unknown API key", "bob after revocation (infer)");
    th_resp_free(&r);
    r = infer(1, bearer_a);
    cr_expect_eq(r.status, 200, "alice after the reload: %d %s", r.status, r.body);
    th_resp_free(&r);
    /* the open connection finishes its upload and is answered (admitted under bob's key at its headers) */
    cr_assert_eq(th_send_all(fd, png + 10, png_n - 10), 0);
    cr_assert_eq(th_read_response(fd, &r), 0);
    close(fd);
    cr_expect_eq(r.status, 200, "the upload across the reload: %d %s", r.status, r.body);
    th_resp_free(&r);
    free(png);
    /* a broken file: the keys stay */
    write_file(auth_path, "alice sha256:nothex\n");
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    log = th_acmd_log_wait(&srv, "stay in force", 10);
    cr_expect(strstr(log, "the second field must be sha256:") && strstr(log, "the 1 key(s) loaded before stay in force"), "%s", log);
    free(log);
    r = infer(0, bearer_a);
    cr_expect_eq(r.status, 200, "alice after a failed reload: %d %s", r.status, r.body);
    th_resp_free(&r);
    stop_auth();
}

/* Without keys, a non-loopback listener is announced at start-up; a loopback one is not. */
Test(auth_server, warns_on_open_listener_without_keys, .timeout = 60) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--listen", "0.0.0.0:0", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    char *log = th_acmd_log_wait(&s, "without --auth-file", 10);
    cr_expect(strstr(log, "not a loopback address, without --auth-file"), "%s", log);
    free(log);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    const char *args2[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", NULL};
    cr_assert_eq(th_acmd_start(&s, args2), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    cr_assert_eq(kill(s.pid, SIGHUP), 0); /* no keys: nothing to reload, and no death */
    log = th_acmd_log_wait(&s, "nothing to reload", 10);
    cr_expect(strstr(log, "nothing to reload"), "%s", log);
    cr_expect_null(strstr(log, "without --auth-file:"), "%s", log);
    free(log);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* ---- per-key limits (admit.c) ------------------------------------------------------------------------------------ */

/* An inference request of kind (0 classify, 1 infer) under key (alice or bob) with extra header lines. */
static th_resp infer_as(int kind, const char *key, const char *extra) {
    /* infer() writes "Authorization: " + a + CRLF: the extra lines (each ending in CRLF) go inside, less the last CRLF */
    char a[512];
    snprintf(a, sizeof a, "Bearer %s%s%s", key, extra ? "\r\n" : "", extra ? extra : "");
    const size_t n = strlen(a);
    if (extra && n >= 2) a[n - 2] = 0;
    return infer(kind, a);
}

static void expect_429(th_resp *r, const char *needle, const char *what) {
    char v[32];
    cr_expect_eq(r->status, 429, "%s: %d %s", what, r->status, r->body);
    cr_expect(th_header(r, "Retry-After", v, sizeof v) && atoi(v) >= 1, "%s: %s", what, r->head);
    cr_expect(r->body && strstr(r->body, needle), "%s: %s", what, r->body);
}

/* The request bucket: alice (rate 0.01/s, burst 1) gets one request, then 429 naming her rate with Retry-After the
 * seconds to the next token (~100); bob, without limits, is unaffected; the rejection is counted by reason. */
Test(auth_server, request_rate_limit_answers_429_for_that_key_only, .timeout = 90) {
    start_limited(NULL, "rate=0.01 burst=1", 0);
    th_resp r = infer_as(0, KEY_ALICE, NULL);
    cr_expect_eq(r.status, 200, "%d %s", r.status, r.body);
    th_resp_free(&r);
    r = infer_as(1, KEY_ALICE, NULL);
    expect_429(&r, "key alice: its request rate is used up (rate 0.01/s, burst 1)", "alice's second request");
    char v[32];
    cr_expect(th_header(&r, "Retry-After", v, sizeof v) && atoi(v) > 50, "Retry-After %s for 0.01/s", v);
    th_resp_free(&r);
    for (int i = 0; i < 3; i++) {
        r = infer_as(i % 2, KEY_BOB, NULL);
        cr_expect_eq(r.status, 200, "bob %d: %d %s", i, r.status, r.body);
        th_resp_free(&r);
    }
    cr_expect_eq(th_metric(srv.port, "acm_inference_rejections_total{model=\"a\",reason=\"key_rate\"}"), 1);
    stop_auth();
}

/* The FLOP bucket: alice's flops_rate of 1 FLOP/s lets one request through (a bucket holding min(cost, burst)),
 * then 429 naming the FLOP rate; bob is unaffected. */
Test(auth_server, flop_rate_limit_answers_429_for_that_key_only, .timeout = 90) {
    start_limited(NULL, "flops_rate=1 flops_burst=1000", 0);
    th_resp r = infer_as(1, KEY_ALICE, NULL);
    cr_expect_eq(r.status, 200, "%d %s", r.status, r.body);
    th_resp_free(&r);
    r = infer_as(0, KEY_ALICE, NULL);
    expect_429(&r, "key alice: its FLOP rate is used up (flops_rate 1/s, flops_burst 1000;", "alice's second request");
    th_resp_free(&r);
    r = infer_as(0, KEY_BOB, NULL);
    cr_expect_eq(r.status, 200, "bob: %d %s", r.status, r.body);
    th_resp_free(&r);
    cr_expect_eq(th_metric(srv.port, "acm_inference_rejections_total{model=\"a\",reason=\"key_flops\"}"), 1);
    stop_auth();
}

/* Sends a whole classify request under key on a new connection without reading the answer; the socket. */
static int send_classify(const char *key) {
    size_t n;
    uint8_t *png = grey_png(&n);
    int fd = th_connect(srv.port);
    cr_assert_geq(fd, 0);
    char head[512];
    int hn = snprintf(head, sizeof head, "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      "Authorization: Bearer %s\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n", key, n);
    cr_assert_eq(th_send_all(fd, head, (size_t)hn), 0);
    cr_assert_eq(th_send_all(fd, png, n), 0);
    free(png);
    return fd;
}

/* The queue share: with the worker held (one request on it), alice (queue_share 0.5 of --max-queue 4: 2 items) queues
 * two, the third is 429 naming her share; bob still queues; once the worker runs, every queued request is answered. */
Test(auth_server, queue_share_keeps_one_key_from_filling_the_queue, .timeout = 120) {
    const char *extra[] = {"--max-queue", "4", NULL};
    start_limited(extra, "queue_share=0.5", 1);
    int fds[4], nf = 0;
    fds[nf++] = send_classify(KEY_ALICE);
    cr_assert_eq(th_wait_stats(&srv, "a", 1, 0, 20), 0, "the first request did not reach the (held) worker");
    fds[nf++] = send_classify(KEY_ALICE);
    fds[nf++] = send_classify(KEY_ALICE);
    cr_assert_eq(th_wait_stats(&srv, "a", 1, 2, 20), 0, "alice's two requests are not queued");
    th_resp r = infer_as(0, KEY_ALICE, NULL);
    expect_429(&r, "key alice: its share of the queue of model a is full (2 of 2 items; queue_share 0.5 of --max-queue 4)",
               "alice's third queued request");
    th_resp_free(&r);
    fds[nf++] = send_classify(KEY_BOB);
    cr_assert_eq(th_wait_stats(&srv, "a", 1, 3, 20), 0, "bob's request is not queued");
    th_hold_end(&srv);
    for (int i = 0; i < nf; i++) {
        cr_assert_eq(th_read_response(fds[i], &r), 0);
        close(fds[i]);
        cr_expect_eq(r.status, 200, "queued request %d: %d %s", i, r.status, r.body);
        th_resp_free(&r);
    }
    cr_expect_eq(th_metric(srv.port, "acm_inference_rejections_total{model=\"a\",reason=\"key_queue\"}"), 1);
    stop_auth();
}

/* Urgency and budget range: alice's most urgent priority is 5 (a u=0 request is logged at 5), her budget at most 0.5
 * (a request for 1 gets 0.5; one without a budget under the default argmax gets cap at 0.5), at least 0.4 (a request
 * for 0.1 gets 0.4); bob's requests keep their terms. */
Test(auth_server, urgency_and_budget_range_of_a_key, .timeout = 90) {
    start_limited(NULL, "urgency=5 budget_min=0.4 budget_max=0.5", 0);
    const struct {
        const char *key, *hdr;
        double applied;
    } cases[] = {
        {KEY_ALICE, "X-Compute-Budget: 1\r\nPriority: u=0\r\n", 0.5},
        {KEY_ALICE, NULL, 0.5},
        {KEY_ALICE, "X-Compute-Budget: 0.1\r\n", 0.4},
        {KEY_BOB, "X-Compute-Budget: 1\r\n", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        th_resp r = infer_as(0, cases[i].key, cases[i].hdr);
        cr_expect_eq(r.status, 200, "case %zu: %d %s", i, r.status, r.body);
        char v[32] = "";
        cr_expect(th_header(&r, "X-Compute-Budget-Applied", v, sizeof v) && fabs(atof(v) - cases[i].applied) < 1e-6,
                  "case %zu: applied %s, want %g", i, v, cases[i].applied);
        th_resp_free(&r);
    }
    char *log = th_acmd_log_wait(&srv, "\"key\":\"bob\"", 10);
    const char *first = strstr(log, "\"key\":\"alice\"");
    cr_assert(first, "%s", log);
    const char *u = strstr(first, "\"urgency\":");
    cr_expect(u && atoi(u + 10) == 5, "alice's u=0 request ran at urgency %s", u ? u + 10 : "?");
    free(log);
    stop_auth();
}

/* ---- accounting (metrics.c, workers.c, http.c) ----------------------------------------------------------------------- */

/* Every key's series exist at 0 before any request (and a name added by a reload gets its own); after a mix of
 * requests under both keys (classify and OIP, several budgets, a 400 and a 429 under a key, 401s without one), the
 * per-key FLOPs, dense FLOPs and answered requests add up to the model's totals, the request counts by status are
 * each key's own, and the realised-budget histogram counts each key's answered requests. */
Test(auth_server, metrics_per_key_add_up_to_the_totals, .timeout = 120) {
    start_limited(NULL, "rate=0.001 burst=5", 0);
    cr_expect_eq(th_metric(srv.port, "acm_key_flops_executed_total{key=\"alice\"}"), 0);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"bob\",code=\"200\"}"), 0);
    cr_expect_eq(th_metric(srv.port, "acm_key_budget_realised_ratio_count{key=\"bob\"}"), 0);
    const char *budgets[] = {NULL, "X-Compute-Budget: 0.3\r\n", "X-Compute-Budget: 0.7\r\n"};
    int ok[2] = {0, 0};
    for (int i = 0; i < 9; i++) {
        const int alice = i % 3 != 2; /* alice 6 (one over her burst of 5: a 429), bob 3 */
        th_resp r = infer_as(i % 2, alice ? KEY_ALICE : KEY_BOB, budgets[i % 3]);
        if (r.status == 200) ok[!alice]++;
        else cr_expect(alice && r.status == 429, "%d: %d %s", i, r.status, r.body);
        th_resp_free(&r);
    }
    cr_expect_eq(ok[0], 5, "alice: 5 answered of 6 (burst 5)");
    cr_expect_eq(ok[1], 3);
    th_resp r = infer_as(0, KEY_BOB, "X-Compute-Budget: 7\r\n"); /* a 400 under bob */
    cr_expect_eq(r.status, 400);
    th_resp_free(&r);
    r = infer(0, NULL); /* a 401: no key, no key's series */
    cr_expect_eq(r.status, 401);
    th_resp_free(&r);
    /* the answered requests' metrics are counted when the batch comes back, the status when the last byte is sent:
     * poll until the 400's status is in */
    for (double t0 = th_now(); th_now() - t0 < 10; usleep(10000))
        if (th_metric(srv.port, "acm_key_requests_total{key=\"bob\",code=\"400\"}") == 1) break;
    const double fa = th_metric(srv.port, "acm_key_flops_executed_total{key=\"alice\"}"),
                 fb = th_metric(srv.port, "acm_key_flops_executed_total{key=\"bob\"}"),
                 ft = th_metric(srv.port, "acm_flops_executed_total{model=\"a\"}");
    cr_expect(fa > 0 && fb > 0 && fa + fb == ft, "FLOPs: alice %.0f + bob %.0f != total %.0f", fa, fb, ft);
    const double da = th_metric(srv.port, "acm_key_flops_dense_equivalent_total{key=\"alice\"}"),
                 db = th_metric(srv.port, "acm_key_flops_dense_equivalent_total{key=\"bob\"}"),
                 dt = th_metric(srv.port, "acm_flops_dense_equivalent_total{model=\"a\"}");
    cr_expect(da + db == dt && dt > ft, "dense FLOPs: alice %.0f + bob %.0f != total %.0f", da, db, dt);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"alice\",code=\"200\"}"), 5);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"alice\",code=\"429\"}"), 1);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"bob\",code=\"200\"}"), 3);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"bob\",code=\"400\"}"), 1);
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"alice\",code=\"401\"}"), 0);
    cr_expect_eq(th_metric(srv.port, "acm_key_budget_realised_ratio_count{key=\"alice\"}") +
                     th_metric(srv.port, "acm_key_budget_realised_ratio_count{key=\"bob\"}"),
                 ok[0] + ok[1]);
    const double sa = th_metric(srv.port, "acm_key_budget_realised_ratio_sum{key=\"alice\"}");
    cr_expect(sa > 0 && sa <= 5, "alice's realised budgets sum to %g over 5 requests", sa);
    /* a reload adding carol: her series at 0 */
    char text[2048], line[512];
    key_line(text, sizeof text, "alice", KEY_ALICE, NULL);
    key_line(line, sizeof line, "carol", "carol-key-000111", NULL);
    strcat(text, line);
    write_file(auth_path, text);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    free(th_acmd_log_wait(&srv, "reloaded: 2 key(s)", 10));
    cr_expect_eq(th_metric(srv.port, "acm_key_requests_total{key=\"carol\",code=\"200\"}"), 0);
    cr_expect_eq(th_metric(srv.port, "acm_key_flops_executed_total{key=\"bob\"}"), fb, "bob's figures stay after his revocation");
    stop_auth();
}

/* acm (--api-key, ACM_API_KEY) and the Python client (--api-key, ACM_API_KEY) send the key; without it, 401. */
Test(auth_server, clients_send_the_key, .timeout = 120) {
    start_auth(NULL);
    char png_path[600], cmd[2048];
    snprintf(png_path, sizeof png_path, "%s/x.png", srv.dir);
    size_t n;
    uint8_t *png = grey_png(&n);
    FILE *f = fopen(png_path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(png, 1, n, f), n);
    fclose(f);
    free(png);
    const char *b = getenv("ACM_BUILD");
    const struct {
        const char *env, *opt;
        int ok;
    } cases[] = {{NULL, NULL, 0}, {NULL, KEY_ALICE, 1}, {KEY_BOB, NULL, 1}, {KEY_BOB, "wrong-key", 0}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(cmd, sizeof cmd, "%s%s %s/acm classify --server http://127.0.0.1:%d --model a %s%s %s >/dev/null 2>&1",
                 cases[i].env ? "ACM_API_KEY=" : "env -u ACM_API_KEY", cases[i].env ? cases[i].env : "", b && *b ? b : "build",
                 srv.port, cases[i].opt ? "--api-key " : "", cases[i].opt ? cases[i].opt : "", png_path);
        const int st = system(cmd);
        cr_expect_eq(st == 0, cases[i].ok, "acm case %zu: status %d (%s)", i, st, cmd);
    }
    if (access("/usr/bin/python3", X_OK) == 0) {
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            snprintf(cmd, sizeof cmd, "%s%s /usr/bin/python3 clients/python/acm_client.py --server http://127.0.0.1:%d %s%s "
                     "classify --model a %s >/dev/null 2>&1", cases[i].env ? "ACM_API_KEY=" : "env -u ACM_API_KEY",
                     cases[i].env ? cases[i].env : "", srv.port, cases[i].opt ? "--api-key " : "",
                     cases[i].opt ? cases[i].opt : "", png_path);
            const int st = system(cmd);
            cr_expect_eq(st == 0, cases[i].ok, "python case %zu: status %d (%s)", i, st, cmd);
        }
    }
    unlink(png_path);
    stop_auth();
}

/* The transcription route (a speech model beside the image one) wants a key like the others: missing and wrong keys
 * 401, a valid one 200, and a key revoked by a reload 401. */
Test(auth_server, transcribe_route_wants_a_key, .timeout = 120) {
    const char *extra[] = {"--model", "s=tests/golden/speech_a.safetensors", NULL};
    start_limited(extra, NULL, 0);
    static uint8_t pcm[16000]; /* 0.5 s of silence, audio/L16 (big-endian 16-bit) at 16 kHz */
    const struct {
        const char *auth;
        int status;
    } cases[] = {{NULL, 401}, {"Authorization: Bearer nope\r\n", 401}, {"Authorization: Bearer " "bob-fedcba9876543210" "\r\n", 200}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char h[256];
        snprintf(h, sizeof h, "Content-Type: audio/L16;rate=16000\r\n%s", cases[i].auth ? cases[i].auth : "");
        th_resp r;
        cr_assert_eq(th_http(srv.port, "POST", "/v1/models/s/transcribe", h, pcm, sizeof pcm, &r), 0);
        cr_expect_eq(r.status, cases[i].status, "case %zu: %d %s", i, r.status, r.body);
        th_resp_free(&r);
    }
    const char *keys[] = {"alice", KEY_ALICE, NULL};
    write_keys(auth_path, keys);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    free(th_acmd_log_wait(&srv, "reloaded: 1 key(s)", 10));
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/s/transcribe",
                         "Content-Type: audio/L16;rate=16000\r\nAuthorization: Bearer bob-fedcba9876543210\r\n", pcm, sizeof pcm, &r), 0);
    cr_expect_eq(r.status, 401, "bob revoked: %d %s", r.status, r.body);
    th_resp_free(&r);
    stop_auth();
}
