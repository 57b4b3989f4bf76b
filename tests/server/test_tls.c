/*
 * test_tls.c — acmd over HTTPS (--tls-cert / --tls-key, libmicrohttpd's GnuTLS): certificates are made at test time
 * with openssl (a self-signed one for 127.0.0.1, and one that expired yesterday); curl --cacert is the client. The
 * routes and their bad-input answers over TLS, API keys over TLS, a plain HTTP client against the TLS port (no HTTP
 * answer, and the server keeps serving), an expired certificate (refused by a verifying client), option errors, the
 * certificate reloaded on SIGHUP (new handshakes get the new one, an open connection keeps its session, a broken file
 * keeps the one in force), and tls.c's own rules: what a pair must be, and when a replaced certificate is freed.
 * Waits are bounded polls.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/acmd.h"
#include "server/harness.h"
#include "server/tls.h"

static char dir[64];
static char cert[128], key[128], ecert[128], ekey[128];

/* Runs a shell command; its exit status (-1: not run). */
static int sh(const char *cmd) {
    const int st = system(cmd);
    return st == -1 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The certificates, once per test process. */
static void make_certs(void) {
    if (dir[0]) return;
    snprintf(dir, sizeof dir, "/tmp/acm-tls-XXXXXX");
    cr_assert(mkdtemp(dir));
    snprintf(cert, sizeof cert, "%s/cert.pem", dir), snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(ecert, sizeof ecert, "%s/expired.pem", dir), snprintf(ekey, sizeof ekey, "%s/expired-key.pem", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=localhost "
             "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1 && "
             "openssl req -new -newkey rsa:2048 -nodes -keyout expired-key.pem -out e.csr -subj /CN=localhost >/dev/null 2>&1 && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > e.ext && "
             "openssl x509 -req -in e.csr -signkey expired-key.pem -out expired.pem -days -1 -extfile e.ext >/dev/null 2>&1",
             dir);
    cr_assert_eq(sh(cmd), 0, "openssl could not make the test certificates (%s)", cmd);
}

static void rm_certs(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    sh(cmd);
    dir[0] = 0;
}

static th_acmd srv;

/* curl against the server: `args` then the URL path; the HTTP status (0: no HTTP answer), curl's exit status in
 * *rc, its stderr in err (when not NULL). */
static int curl(const char *args, const char *path, int *rc, char *err, size_t errlen) {
    char cmd[2048], out[300], errf[300];
    snprintf(out, sizeof out, "%s/curl.out", dir), snprintf(errf, sizeof errf, "%s/curl.err", dir);
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 20 -o /dev/null -w '%%{http_code}' %s 'https://127.0.0.1:%d%s' >%s 2>%s",
             args, srv.port, path, out, errf);
    const int r = sh(cmd);
    if (rc) *rc = r;
    char *o = th_slurp(out, NULL), *e = th_slurp(errf, NULL);
    const int code = o ? atoi(o) : 0;
    if (err) snprintf(err, errlen, "%s", e ? e : "");
    free(o), free(e);
    return code;
}

static void start_tls(const char *c, const char *k, const char *const *extra) {
    make_certs();
    const char *base[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-format", "text",
                          "--tls-cert", c, "--tls-key", k, NULL};
    cr_assert_eq(th_acmd_start_with(&srv, base, extra, 0), 0, "acmd did not start");
    char args[300];
    snprintf(args, sizeof args, "-k");
    int code = 0;
    for (double t0 = th_now(); th_now() - t0 < 30 && code != 200; usleep(20000)) code = curl(args, "/v2/health/ready", NULL, NULL, 0);
    cr_assert_eq(code, 200, "acmd not ready over HTTPS");
}

static void stop_tls(void) { cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0, "acmd did not exit 0 on SIGTERM"); }

static void write_png(const char *path) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)(i * 37 % 251);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(png, 1, n, f), n);
    fclose(f);
    free(png);
}

/* The routes over TLS with a verifying client (curl --cacert), and the bad-input answers: the same as over HTTP. */
Test(tls, routes_and_bad_input_over_https, .timeout = 120, .fini = rm_certs) {
    const char *extra[] = {"--max-body-bytes", "100000", NULL};
    start_tls(cert, key, extra);
    char png[300], big[300];
    snprintf(png, sizeof png, "%s/x.png", dir);
    write_png(png);
    snprintf(big, sizeof big, "%s/big", dir);
    FILE *f = fopen(big, "wb");
    cr_assert(f);
    for (int i = 0; i < 200000; i++) fputc('x', f);
    fclose(f);
    char ca[400], a[1600];
    snprintf(ca, sizeof ca, "--cacert %s", cert);
    const struct {
        const char *args, *path;
        int status;
    } cases[] = {
        {"", "/v2/health/live", 200},
        {"", "/v2/health/ready", 200},
        {"", "/v2/models/a", 200},
        {"", "/metrics", 200},
        {"-H 'Content-Type: image/png' --data-binary @PNG", "/v1/models/a/classify", 200},
        {"-H 'Content-Type: application/json' --data-binary '{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\","
         "\"shape\":[1,1,28,28],\"data\":[" "0.5" "]}]}'", "/v2/models/a/infer", 400}, /* 1 value for 784 */
        {"-H 'Content-Type: application/json' --data-binary '{'", "/v2/models/a/infer", 400},
        {"-H 'Content-Type: text/plain' --data-binary x", "/v1/models/a/classify", 415},
        {"-H 'Content-Type: image/png' --data-binary @PNG", "/v1/models/nope/classify", 404},
        {"-H 'Content-Type: image/png' --data-binary @BIG", "/v1/models/a/classify", 413},
        {"-X DELETE", "/v2/health/live", 405},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char args[1000];
        snprintf(args, sizeof args, "%s", cases[i].args);
        char *p = strstr(args, "@PNG"), *q = strstr(args, "@BIG");
        if (p) snprintf(p, sizeof args - (size_t)(p - args), "@%s", png);
        if (q) snprintf(q, sizeof args - (size_t)(q - args), "@%s", big);
        snprintf(a, sizeof a, "%s %s", ca, args);
        int rc;
        char err[512];
        const int code = curl(a, cases[i].path, &rc, err, sizeof err);
        cr_expect_eq(code, cases[i].status, "case %zu %s: %d (curl %d: %s)", i, cases[i].path, code, rc, err);
    }
    stop_tls();
}

/* API keys over TLS: 401 without or with a wrong one, 200 with. */
Test(tls, api_keys_over_https, .timeout = 120, .fini = rm_certs) {
    make_certs();
    char keys[300], line[256], cmd[600];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    snprintf(cmd, sizeof cmd, "echo secret-tls-key | %s/acmd --hash-key t > %s", getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build",
             keys);
    cr_assert_eq(sh(cmd), 0);
    (void)line;
    const char *extra[] = {"--auth-file", keys, NULL};
    start_tls(cert, key, extra);
    char png[300], a[1000];
    snprintf(png, sizeof png, "%s/x.png", dir);
    write_png(png);
    snprintf(a, sizeof a, "--cacert %s -H 'Content-Type: image/png' --data-binary @%s", cert, png);
    cr_expect_eq(curl(a, "/v1/models/a/classify", NULL, NULL, 0), 401);
    snprintf(a, sizeof a, "--cacert %s -H 'Authorization: Bearer secret-tls-kez' -H 'Content-Type: image/png' --data-binary @%s",
             cert, png);
    cr_expect_eq(curl(a, "/v1/models/a/classify", NULL, NULL, 0), 401, "a wrong key over TLS");
    snprintf(a, sizeof a, "--cacert %s -H 'Authorization: Bearer secret-tls-key' -H 'Content-Type: image/png' --data-binary @%s",
             cert, png);
    cr_expect_eq(curl(a, "/v1/models/a/classify", NULL, NULL, 0), 200);
    stop_tls();
}

/* A plain HTTP client against the TLS port gets no HTTP answer (libmicrohttpd drops what is not a TLS handshake), and
 * the server keeps serving HTTPS. */
Test(tls, plain_http_to_the_tls_port, .timeout = 120, .fini = rm_certs) {
    start_tls(cert, key, NULL);
    th_resp r;
    const int rc = th_http(srv.port, "GET", "/v2/health/live", NULL, NULL, 0, &r);
    if (rc == 0) {
        cr_expect(strncmp(r.head, "HTTP/", 5) != 0, "a plain request got an HTTP answer: %s", r.head);
        th_resp_free(&r);
    }
    char a[300];
    snprintf(a, sizeof a, "--cacert %s", cert);
    cr_expect_eq(curl(a, "/v2/health/live", NULL, NULL, 0), 200, "HTTPS after a plain client");
    stop_tls();
}

/* Makes certificate+key `name`.pem / `name`-key.pem in dir with subject CN=`name` (and a serial of openssl's). */
static void make_named_cert(const char *name) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout %s-key.pem -out %s.pem -days 2 "
             "-subj /CN=%s -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1", dir, name, name, name);
    cr_assert_eq(sh(cmd), 0, "openssl: %s", cmd);
}

/* The subject line curl -v prints for the certificate the server sent; "" when the handshake failed. */
static void served_subject(const char *ca, char *subj, size_t n) {
    char a[400], err[4096];
    snprintf(a, sizeof a, "-v --cacert %s", ca);
    const int code = curl(a, "/v2/health/live", NULL, err, sizeof err);
    const char *p = strstr(err, "subject: ");
    snprintf(subj, n, "%.*s", p && code == 200 ? (int)strcspn(p + 9, "\r\n") : 0, p ? p + 9 : "");
}

/* SIGHUP reloads the certificate: acmd starts with A; the files are replaced with B (another subject and serial);
 * after SIGHUP a new handshake gets B, while a connection that shook hands with A before keeps its session and is
 * answered on it. Then the file is broken: SIGHUP says why and B keeps being served. A key that is not the
 * certificate's is refused the same way. */
Test(tls, sighup_reloads_the_certificate, .timeout = 120, .fini = rm_certs) {
    make_certs();
    make_named_cert("acm-test-A");
    make_named_cert("acm-test-B");
    char live_c[300], live_k[300], cmd[1600], subj[512];
    snprintf(live_c, sizeof live_c, "%s/live.pem", dir), snprintf(live_k, sizeof live_k, "%s/live-key.pem", dir);
    snprintf(cmd, sizeof cmd, "cp %s/acm-test-A.pem %s && cp %s/acm-test-A-key.pem %s", dir, live_c, dir, live_k);
    cr_assert_eq(sh(cmd), 0);
    start_tls(live_c, live_k, NULL);
    char ca_a[300], ca_b[300];
    snprintf(ca_a, sizeof ca_a, "%s/acm-test-A.pem", dir), snprintf(ca_b, sizeof ca_b, "%s/acm-test-B.pem", dir);
    served_subject(ca_a, subj, sizeof subj);
    cr_expect(strstr(subj, "CN=acm-test-A"), "before the reload: '%s'", subj);

    /* a connection that shakes hands with A now and sends its request only after the reload */
    char out[300], err[300], cmdline[1200];
    snprintf(out, sizeof out, "%s/sc.out", dir), snprintf(err, sizeof err, "%s/sc.err", dir);
    snprintf(cmdline, sizeof cmdline, "openssl s_client -connect 127.0.0.1:%d -CAfile %s -verify_return_error -ign_eof "
             "-quiet >%s 2>%s", srv.port, ca_a, out, err);
    FILE *sc = popen(cmdline, "w");
    cr_assert(sc);
    char *e = NULL;
    for (double t0 = th_now(); th_now() - t0 < 20; usleep(20000)) { /* -quiet prints the chain's depth lines on stderr */
        free(e);
        e = th_slurp(err, NULL);
        if (e && strstr(e, "depth=0")) break;
    }
    cr_assert(e && strstr(e, "depth=0") && strstr(e, "acm-test-A"), "s_client did not shake hands: %s", e ? e : "");
    free(e);

    snprintf(cmd, sizeof cmd, "cp %s/acm-test-B.pem %s && cp %s/acm-test-B-key.pem %s", dir, live_c, dir, live_k);
    cr_assert_eq(sh(cmd), 0);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    char *log = th_acmd_log_wait(&srv, "reloaded: subject", 10);
    cr_expect(strstr(log, "reloaded: subject CN=acm-test-B, serial "), "%s", log);
    free(log);
    served_subject(ca_b, subj, sizeof subj);
    cr_expect(strstr(subj, "CN=acm-test-B"), "after the reload: '%s'", subj);
    served_subject(ca_a, subj, sizeof subj);
    cr_expect_str_empty(subj, "a client that trusts only A still got an answer: '%s'", subj);

    /* the old connection is answered on its session with A */
    fputs("GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", sc);
    fflush(sc);
    cr_expect_neq(pclose(sc), -1); /* its status is 1: libmicrohttpd closes "Connection: close" without close_notify */
    char *o = th_slurp(out, NULL);
    cr_expect(o && strncmp(o, "HTTP/1.1 200", 12) == 0, "the connection opened before the reload: %s", o ? o : "");
    free(o);

    /* a broken certificate file: the reload fails, says why, and B stays */
    FILE *f = fopen(live_c, "w");
    cr_assert(f);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    log = th_acmd_log_wait(&srv, "the certificate in force stays", 10);
    cr_expect(strstr(log, "SIGHUP: --tls-cert ") && strstr(log, "live.pem: not a PEM certificate"), "%s", log);
    free(log);
    served_subject(ca_b, subj, sizeof subj);
    cr_expect(strstr(subj, "CN=acm-test-B"), "after a broken reload: '%s'", subj);

    /* A's certificate with B's key: refused as a pair, B stays */
    snprintf(cmd, sizeof cmd, "cp %s/acm-test-A.pem %s", dir, live_c);
    cr_assert_eq(sh(cmd), 0);
    cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    log = th_acmd_log_wait(&srv, "is not the private key of", 10);
    cr_expect(strstr(log, "live-key.pem is not the private key of --tls-cert"), "%s", log);
    free(log);
    served_subject(ca_b, subj, sizeof subj);
    cr_expect(strstr(subj, "CN=acm-test-B"), "after a mismatched pair: '%s'", subj);
    stop_tls();
}

/* Reloads while clients shake hands: two clients each make 60 new connections (curl, verifying against A and B) while
 * the files flip between A and B and SIGHUP follows each flip. Every request is answered 200 with a certificate the
 * client trusts, and acmd exits 0 (under the sanitizers: no use of a freed certificate, none leaked). A reload that
 * catches the files half-written is refused and keeps the certificate in force; that is allowed here. */
Test(tls, reloads_while_clients_shake_hands, .timeout = 180, .fini = rm_certs) {
    make_certs();
    make_named_cert("acm-test-A");
    make_named_cert("acm-test-B");
    char live_c[300], live_k[300], cmd[2048];
    snprintf(live_c, sizeof live_c, "%s/live.pem", dir), snprintf(live_k, sizeof live_k, "%s/live-key.pem", dir);
    snprintf(cmd, sizeof cmd, "cd %s && cp acm-test-A.pem live.pem && cp acm-test-A-key.pem live-key.pem && "
             "cat acm-test-A.pem acm-test-B.pem > both.pem", dir);
    cr_assert_eq(sh(cmd), 0);
    start_tls(live_c, live_k, NULL);
    for (int c = 0; c < 2; c++) {
        snprintf(cmd, sizeof cmd, "(for i in $(seq 60); do curl -sS --max-time 20 --cacert %s/both.pem -o /dev/null "
                 "-w '%%{http_code}\\n' https://127.0.0.1:%d/v2/health/live; done > %s/codes%d.tmp 2>&1; "
                 "mv %s/codes%d.tmp %s/codes%d) &", dir, srv.port, dir, c, dir, c, dir, c);
        cr_assert_eq(sh(cmd), 0);
    }
    char done0[300], done1[300];
    snprintf(done0, sizeof done0, "%s/codes0", dir), snprintf(done1, sizeof done1, "%s/codes1", dir);
    int flips = 0;
    for (double t0 = th_now(); th_now() - t0 < 90 && (access(done0, F_OK) || access(done1, F_OK)); usleep(20000)) {
        const char *n = flips++ % 2 ? "A" : "B";
        snprintf(cmd, sizeof cmd, "cd %s && cp acm-test-%s.pem c.new && cp acm-test-%s-key.pem k.new && "
                 "mv k.new live-key.pem && mv c.new live.pem", dir, n, n);
        cr_assert_eq(sh(cmd), 0);
        cr_assert_eq(kill(srv.pid, SIGHUP), 0);
    }
    cr_expect_gt(flips, 4, "the clients finished before the certificate flipped a few times");
    for (int c = 0; c < 2; c++) {
        char *codes = th_slurp(c ? done1 : done0, NULL);
        cr_assert(codes, "client %d did not finish", c);
        int ok = 0, lines = 0;
        for (char *l = strtok(codes, "\n"); l; l = strtok(NULL, "\n")) lines++, ok += strcmp(l, "200") == 0;
        cr_expect_eq(ok, 60, "client %d: %d of %d answered 200 (%d flips)", c, ok, lines, flips);
        free(codes);
    }
    char *log = th_acmd_log_wait(&srv, "reloaded: subject", 10);
    cr_expect(strstr(log, "reloaded: subject CN=acm-test-"), "%s", log);
    free(log);
    stop_tls();
}

/* tls.c alone: a pair loads and is described by its subject; a missing file, a file without a certificate and a key
 * that is not the certificate's are refused naming the file. A replaced certificate is kept while a connection that
 * started before the swap is open, and the oldest goes first: B is not freed before A even when B's own connections
 * closed first, since a connection that started under A may have shaken hands under B. */
Test(tls, certificate_load_and_lifetime, .timeout = 60, .fini = rm_certs) {
    make_certs();
    make_named_cert("acm-test-A");
    make_named_cert("acm-test-B");
    char ca[300], ka[300], cb[300], kb[300], err[1024];
    snprintf(ca, sizeof ca, "%s/acm-test-A.pem", dir), snprintf(ka, sizeof ka, "%s/acm-test-A-key.pem", dir);
    snprintf(cb, sizeof cb, "%s/acm-test-B.pem", dir), snprintf(kb, sizeof kb, "%s/acm-test-B-key.pem", dir);
    cr_expect_null(acmd_tls_load(ca, kb, err, sizeof err));
    cr_expect(strstr(err, "acm-test-B-key.pem is not the private key of --tls-cert"), "%s", err);
    cr_expect_null(acmd_tls_load(ka, ka, err, sizeof err)); /* a key where the certificate should be */
    cr_expect(strstr(err, "--tls-cert ") && strstr(err, "acm-test-A-key.pem: not a PEM certificate"), "%s", err);
    char nope[300];
    snprintf(nope, sizeof nope, "%s/nope.pem", dir);
    cr_expect_null(acmd_tls_load(ca, nope, err, sizeof err));
    cr_expect(strstr(err, "--tls-key ") && strstr(err, "nope.pem: No such file or directory"), "%s", err);

    acmd_tls *a = acmd_tls_load(ca, ka, err, sizeof err), *b = acmd_tls_load(cb, kb, err, sizeof err),
             *c = acmd_tls_load(ca, ka, err, sizeof err), *d = acmd_tls_load(cb, kb, err, sizeof err);
    cr_assert(a && b && c && d, "%s", err);
    cr_expect(strstr(acmd_tls_describe(a), "subject CN=acm-test-A, serial "), "%s", acmd_tls_describe(a));
    acmd_tls_install(a);
    cr_expect_eq(acmd_tls_in_force(), a);
    void *conn1 = acmd_tls_conn_open(); /* starts under A */
    cr_expect_eq(conn1, a);
    acmd_tls_install(b);
    cr_expect_eq(acmd_tls_retired(), 1, "A is kept: conn1 may hold it");
    void *conn2 = acmd_tls_conn_open(); /* starts under B */
    acmd_tls_install(c);
    cr_expect_eq(acmd_tls_retired(), 2);
    acmd_tls_conn_close(conn2);
    cr_expect_eq(acmd_tls_retired(), 2, "B is kept while conn1 (started under A, maybe shaken hands under B) is open");
    acmd_tls_conn_close(conn1);
    cr_expect_eq(acmd_tls_retired(), 0, "A and B are freed once conn1 closed");
    acmd_tls_install(d); /* no connection: C goes at once */
    cr_expect_eq(acmd_tls_retired(), 0);
    cr_expect_eq(acmd_tls_in_force(), d);
    acmd_tls_free_all();
    cr_expect_null(acmd_tls_in_force());
}

/* An expired certificate: the server serves it (libmicrohttpd does not check dates), a verifying client refuses it as
 * expired, and only the expiry is wrong (curl -k, which skips verification, gets its answer). */
Test(tls, expired_certificate_is_refused_by_a_verifying_client, .timeout = 120, .fini = rm_certs) {
    make_certs();
    start_tls(ecert, ekey, NULL);
    char a[300], err[512];
    int rc;
    snprintf(a, sizeof a, "--cacert %s", ecert);
    const int code = curl(a, "/v2/health/live", &rc, err, sizeof err);
    cr_expect_eq(code, 0, "an expired certificate was accepted");
    cr_expect_eq(rc, 60, "curl %d: %s", rc, err);
    cr_expect(strstr(err, "expired"), "%s", err);
    cr_expect_eq(curl("-k", "/v2/health/live", NULL, NULL, 0), 200);
    stop_tls();
}

/* --tls-cert without --tls-key: exit 2; a key that is not PEM: exit 1 naming both files. */
Test(tls, option_errors, .timeout = 60, .fini = rm_certs) {
    make_certs();
    const char *b = getenv("ACM_BUILD");
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --tls-cert %s 2>%s/e1", b ? b : "build", cert, dir);
    cr_expect_eq(sh(cmd), 2);
    snprintf(cmd, sizeof cmd, "%s/e1", dir);
    char *e = th_slurp(cmd, NULL);
    cr_expect(e && strstr(e, "--tls-cert and --tls-key go together"), "%s", e);
    free(e);
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --workers 1 --listen 127.0.0.1:0 --tls-cert %s "
             "--tls-key %s/e1 --log-format text 2>%s/e2", b ? b : "build", cert, dir, dir);
    cr_expect_eq(sh(cmd), 1);
    snprintf(cmd, sizeof cmd, "%s/e2", dir);
    e = th_slurp(cmd, NULL);
    cr_expect(e && strstr(e, "with TLS") && strstr(e, "not a PEM certificate and its private key"), "%s", e);
    free(e);
}
