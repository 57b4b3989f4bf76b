/*
 * test_cli.c — the `acm` program ($ACM_BUILD/acm, default build/) run as a user runs it, against a real acmd on
 * loopback (tests/server/harness.h) serving the golden random-weight model tests/golden/vit_a.safetensors (28x28,
 * 10 classes, 4 ACM modules: its labels are meaningless, the mechanism is what is tested).
 *
 *   - command-line errors: exit status 2 and a message naming the option and the problem;
 *   - an unreachable server: 4, naming the URL; a non-image or missing file: 3, naming the file, before any request;
 *   - server errors passed through: 5 with the server's own {"error"} message (read here from the server directly);
 *   - classify (text, --json, --heatmap), health, models against the server;
 *   - bench closed loop, open loop, count-limited and multi-threaded: every request accounted for (sent = Σ by
 *     status + errors), the run's figures consistent (percentiles ordered, budgets within what was asked, accuracy
 *     counted over the 200s), and a server killed in the middle of a run: the lost requests are errors, not gaps;
 *   - the Python example client (clients/python/acm_client.py) under /usr/bin/python3.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spng.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clients/acmc.h"
#include "server/harness.h"

#define MODEL "fmnist=tests/golden/vit_a.safetensors"

typedef struct {
    int rc;
    char *out, *err;
} run_res;

static char *slurp_fd(int fd) {
    off_t n = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    ssize_t k = read(fd, b, (size_t)n);
    b[k > 0 ? k : 0] = 0;
    return b;
}

static const char *acm_path(void) {
    static char p[512];
    const char *b = getenv("ACM_BUILD");
    snprintf(p, sizeof p, "%s/acm", b && *b ? b : "build");
    return p;
}

/* Starts acm with the NULL-terminated args, stdout and stderr into temporary files; returns the pid. */
static pid_t spawn_acm(const char *const *args, int *fo, int *fe) {
    char so[] = "/tmp/acm-cli-out-XXXXXX", se[] = "/tmp/acm-cli-err-XXXXXX";
    *fo = mkstemp(so), *fe = mkstemp(se);
    cr_assert(*fo >= 0 && *fe >= 0);
    unlink(so), unlink(se);
    const char *argv[64] = {acm_path()};
    int n = 1;
    for (int i = 0; args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(*fo, 1), dup2(*fe, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static run_res wait_acm(pid_t pid, int fo, int fe) {
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    run_res r = {.rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), .out = slurp_fd(fo), .err = slurp_fd(fe)};
    close(fo), close(fe);
    cr_assert_neq(r.rc, 127, "cannot run %s", acm_path());
    /* a sanitizer's report fails the test (tests/run.sh looks for it in the test's output) */
    if (strstr(r.err, "Sanitizer") || strstr(r.err, "runtime error:")) fprintf(stderr, "acm stderr:\n%s\n", r.err);
    cr_assert(!strstr(r.err, "Sanitizer") && !strstr(r.err, "runtime error:"), "acm: sanitizer report");
    return r;
}

static run_res run_acm(const char *const *args) {
    int fo, fe;
    pid_t pid = spawn_acm(args, &fo, &fe);
    return wait_acm(pid, fo, fe);
}

static void run_free(run_res *r) { free(r->out), free(r->err); }

/* A loopback port with nothing listening on it. */
static int dead_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    getsockname(fd, (struct sockaddr *)&sa, &l);
    close(fd);
    return ntohs(sa.sin_port);
}

static void write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* A 28x28 grey PNG with a pattern; path under dir. */
static void make_png(const char *path, int seed) {
    uint8_t px[28 * 28];
    for (int i = 0; i < 28 * 28; i++) px[i] = (uint8_t)((i * 7 + seed * 31) % 256);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    write_file(path, png, n);
    free(png);
}

static th_acmd srv;
static char url[64], tmpdir[64];

static void start_server(void) {
    const char *args[] = {"--model", MODEL, "--workers", "1", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&srv, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&srv, 30), 0, "acmd not ready");
    snprintf(url, sizeof url, "http://127.0.0.1:%d", srv.port);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/acm-cli-XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}

static void stop_server(void) {
    if (srv.pid > 0) cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (tmpdir[0]) cr_expect_eq(system(cmd), 0);
}

/* ---- no server needed ------------------------------------------------------------------------------------------ */

Test(cli, usage_errors_exit_2_naming_the_problem) {
    struct {
        const char *args[10];
        const char *msg;
    } cases[] = {
        {{NULL}, "usage: acm COMMAND"},
        {{"frobnicate", NULL}, "unknown command 'frobnicate'"},
        {{"classify", NULL}, "no image file given"},
        {{"classify", "--budget", "abc", "x.png", NULL}, "--budget: 'abc' is not a number"},
        {{"classify", "--budget", "1.5", "x.png", NULL}, "--budget: 1.5 is outside (0, 1]"},
        {{"classify", "x.png", "--budget", NULL}, "--budget needs a value"},
        {{"classify", "--server", "ftp://h", "x.png", NULL}, "only http:// and https://"},
        {{"classify", "--priority", "9", "x.png", NULL}, "--priority: 9 is outside [0, 7]"},
        {{"classify", "--policy", "greedy", "x.png", NULL}, "--policy: 'greedy' is not cap, mean or argmax"},
        {{"classify", "--model", "a/b", "x.png", NULL}, "--model: 'a/b' is not a model name"},
        {{"classify", "--frob", "x.png", NULL}, "unknown option '--frob'"},
        {{"health", "--bogus", NULL}, "unknown option '--bogus'"},
        {{"health", "--timeout", "0", NULL}, "--timeout: 0 is outside (0, 3600]"},
        {{"models", "a/b", NULL}, "not a model name: 'a/b'"},
        {{"bench", "-c", "0", NULL}, "--concurrency: 0 is outside [1, 10000]"},
        {{"bench", "--rate", "10", "-c", "4", NULL}, "exclude each other"},
        {{"bench", "--rate", "-1", NULL}, "--rate: -1 is outside (0, 1e+07]"},
        {{"bench", "--budget", "uniform:0.9:0.2", NULL}, "--budget: 'uniform:0.9:0.2': LOW is above HIGH"},
        {{"bench", "--priority", "choice:1,x", NULL}, "--priority: 'x' is not a whole number"},
        {{"bench", "--deadline-ms", "0", NULL}, "--deadline-ms: 0 is outside"},
        {{"bench", "--get", "v2/health", NULL}, "--get: 'v2/health' is not a path"},
        {{"bench", "-n", "0", NULL}, "--requests: 0 is outside"},
        {{"bench", "--threads", "100", NULL}, "--threads: 100 is outside [1, 64]"},
        {{"bench", "--max-idle", "0", NULL}, "--max-idle: 0 is outside [1, 86400]"},
        {{"bench", "extra", NULL}, "unknown argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_res r = run_acm(cases[i].args);
        cr_expect_eq(r.rc, 2, "case %zu (%s): exit %d, stderr: %s", i, cases[i].msg, r.rc, r.err);
        cr_expect(strstr(r.err, cases[i].msg), "case %zu: expected '%s' in stderr: %s", i, cases[i].msg, r.err);
        cr_expect_str_empty(r.out, "case %zu: stdout not empty: %s", i, r.out);
        run_free(&r);
    }
}

Test(cli, help_lists_commands_and_exit_codes) {
    const char *a[] = {"--help", NULL};
    run_res r = run_acm(a);
    cr_assert_eq(r.rc, 0);
    for (const char *w = "classify\0health\0models\0bench\0exit status\0  0  \0  2  \0  3  \0  4  \0  5  \0"; *w;
         w += strlen(w) + 1)
        cr_expect(strstr(r.out, w), "'%s' missing from acm --help:\n%s", w, r.out);
    /* every exit code of the table, in --help and in docs/CLI.md */
    FILE *f = fopen("docs/CLI.md", "r");
    cr_assert(f, "docs/CLI.md");
    char doc[32768];
    size_t dn = fread(doc, 1, sizeof doc - 1, f);
    doc[dn] = 0;
    fclose(f);
    char line[512];
#define X(name, code, text)                                                                                           \
    snprintf(line, sizeof line, "  %d  %s\n", code, text);                                                          \
    cr_expect(strstr(r.out, line), "acm --help lacks: %s", line);                                                  \
    snprintf(line, sizeof line, "| %d | %s |", code, text);                                                         \
    cr_expect(strstr(doc, line), "docs/CLI.md lacks: %s", line);
    ACMC_EXIT_CODES(X)
#undef X
    run_free(&r);
    const char *cmds[] = {"classify", "health", "models", "bench"};
    for (int i = 0; i < 4; i++) {
        const char *b[] = {cmds[i], "--help", NULL}, *c[] = {"help", cmds[i], NULL};
        run_res x = run_acm(b), y = run_acm(c);
        cr_expect_eq(x.rc, 0);
        cr_expect(strstr(x.out, "usage: acm ") && strstr(x.out, "--server URL"), "%s --help:\n%s", cmds[i], x.out);
        cr_expect_str_eq(x.out, y.out, "acm help %s differs from acm %s --help", cmds[i], cmds[i]);
        run_free(&x), run_free(&y);
    }
}

Test(cli, unreachable_server_exits_4_naming_the_url) {
    char server[64], dir[] = "/tmp/acm-cli-XXXXXX", png[128];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", dead_port());
    cr_assert(mkdtemp(dir));
    snprintf(png, sizeof png, "%s/x.png", dir);
    make_png(png, 1);
    const char *cases[][8] = {{"health", "--server", server, NULL},
                              {"models", "--server", server, NULL},
                              {"classify", "--server", server, png, NULL},
                              {"bench", "--server", server, "--get", "/v2/health/live", "-d", "1", NULL},
                              {"bench", "--server", server, "-d", "1", NULL}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_res r = run_acm(cases[i]);
        cr_expect_eq(r.rc, 4, "%s: exit %d: %s", cases[i][0], r.rc, r.err);
        cr_expect(strstr(r.err, "cannot reach ") && strstr(r.err, server), "%s: %s", cases[i][0], r.err);
        run_free(&r);
    }
    unlink(png);
    rmdir(dir);
}

Test(cli, bad_input_files_exit_3_before_any_request) {
    /* the server is unreachable: an exit 3 (not 4) shows that the file was refused before anything was sent */
    char server[64], dir[] = "/tmp/acm-cli-XXXXXX", txt[128], trunc[128], missing[128];
    snprintf(server, sizeof server, "http://127.0.0.1:%d", dead_port());
    cr_assert(mkdtemp(dir));
    snprintf(txt, sizeof txt, "%s/notes.png", dir);
    snprintf(trunc, sizeof trunc, "%s/cut.png", dir);
    snprintf(missing, sizeof missing, "%s/missing.png", dir);
    write_file(txt, "just some text\n", 15);
    size_t n;
    uint8_t px[28 * 28] = {0}, *png = th_png(px, 28, 28, 1, &n);
    write_file(trunc, png, 20); /* signature and part of IHDR */
    free(png);
    struct {
        const char *file, *msg;
    } cases[] = {{txt, "not a PNG, JPEG or PNM image"}, {trunc, ""}, {missing, "No such file or directory"},
                 {dir, "Is a directory"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *a[] = {"classify", "--server", server, cases[i].file, NULL};
        run_res r = run_acm(a);
        cr_expect_eq(r.rc, 3, "%s: exit %d: %s", cases[i].file, r.rc, r.err);
        cr_expect(strstr(r.err, cases[i].file) && strstr(r.err, cases[i].msg), "%s: %s", cases[i].file, r.err);
        run_free(&r);
    }
    unlink(txt), unlink(trunc), rmdir(dir);
}

/* ---- against acmd ------------------------------------------------------------------------------------------------- */

TestSuite(cli_server, .init = start_server, .fini = stop_server, .timeout = 120);

Test(cli_server, classify_text_json_and_heatmap) {
    char a[128], b[128], hm[128], hm1[128], hm2[128];
    snprintf(a, sizeof a, "%s/a.png", tmpdir);
    snprintf(b, sizeof b, "%s/b.png", tmpdir);
    snprintf(hm, sizeof hm, "%s/map.png", tmpdir);
    snprintf(hm1, sizeof hm1, "%s/map-1.png", tmpdir);
    snprintf(hm2, sizeof hm2, "%s/map-2.png", tmpdir);
    make_png(a, 1), make_png(b, 2);
    const char *t[] = {"classify", "--server", url, "--budget", "0.5", a, NULL};
    run_res r = run_acm(t);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, a) && strstr(r.out, "top-5:") && strstr(r.out, "budget: applied 0.500") &&
                  strstr(r.out, "source header, policy cap") && strstr(r.out, "FLOPs:") && strstr(r.out, "round trip"),
              "%s", r.out);
    run_free(&r);

    const char *j[] = {"classify", "--server", url, "--json", "--budget", "0.5", "--deadline-ms", "500",
                       "--priority", "1", "--heatmap", hm, a, b, NULL};
    r = run_acm(j);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *save, *line = strtok_r(r.out, "\n", &save);
    for (int k = 0; k < 2; k++, line = strtok_r(NULL, "\n", &save)) {
        cr_assert(line, "line %d missing", k);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert(o, "not JSON: %s", line);
        cr_expect_str_eq(json_string_value(json_object_get(o, "file")), k ? b : a);
        cr_expect_float_eq(json_number_value(json_object_get(o, "budget_applied")), 0.5, 1e-9);
        double fl = json_number_value(json_object_get(o, "flops")), fd = json_number_value(json_object_get(o, "flops_dense"));
        cr_expect(fl > 0 && fl < fd, "flops %g of %g", fl, fd);
        cr_expect(json_is_string(json_object_get(o, "label")) && json_array_size(json_object_get(o, "top_k")) == 5);
        cr_expect(json_is_object(json_object_get(o, "compute_map")));
        cr_expect(json_number_value(json_object_get(o, "client_ms")) > 0);
        json_decref(o);
    }
    run_free(&r);
    const char *maps[2] = {hm1, hm2};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(maps[k], "rb");
        cr_assert(f, "%s not written", maps[k]);
        spng_ctx *ctx = spng_ctx_new(0);
        spng_set_png_file(ctx, f);
        struct spng_ihdr ih;
        cr_expect_eq(spng_get_ihdr(ctx, &ih), 0);
        cr_expect_eq(ih.width, 224);
        cr_expect_eq(ih.height, 240);
        spng_ctx_free(ctx);
        fclose(f);
    }
}

Test(cli_server, server_errors_pass_through_with_their_message) {
    char png[128], pnm[128];
    snprintf(png, sizeof png, "%s/a.png", tmpdir);
    snprintf(pnm, sizeof pnm, "%s/cut.pgm", tmpdir);
    make_png(png, 3);
    /* a PGM whose header is fine (the client probes only the header) and whose pixels are missing: the server's 400 */
    write_file(pnm, "P5\n28 28\n255\nabc", 16);
    struct {
        const char *args[8];
        const char *path, *type, *file;
        int status;
    } cases[] = {
        {{"classify", "--server", url, "--model", "nosuch", png, NULL}, "/v1/models/nosuch/classify", "image/png", png, 404},
        {{"classify", "--server", url, pnm, NULL}, "/v1/models/fmnist/classify", "image/x-portable-anymap", pnm, 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        /* what the server says to the same request */
        FILE *f = fopen(cases[i].file, "rb");
        uint8_t body[4096];
        size_t n = fread(body, 1, sizeof body, f);
        fclose(f);
        char hdr[128];
        snprintf(hdr, sizeof hdr, "Content-Type: %s\r\n", cases[i].type);
        th_resp direct;
        cr_assert_eq(th_http(srv.port, "POST", cases[i].path, hdr, body, n, &direct), 0);
        cr_assert_eq(direct.status, cases[i].status, "%s", direct.body);
        json_t *e = json_loads(direct.body, 0, NULL);
        const char *msg = json_string_value(json_object_get(e, "error"));
        cr_assert(msg, "%s", direct.body);
        run_res r = run_acm(cases[i].args);
        cr_expect_eq(r.rc, 5, "exit %d: %s", r.rc, r.err);
        char status[16];
        snprintf(status, sizeof status, "%d", cases[i].status);
        cr_expect(strstr(r.err, msg) && strstr(r.err, status) && strstr(r.err, cases[i].file),
                  "the server's message '%s' (%d) not passed through: %s", msg, cases[i].status, r.err);
        run_free(&r);
        json_decref(e);
        th_resp_free(&direct);
    }
    /* a data set that is not there: 3, naming the file */
    const char *d[] = {"bench", "--server", url, "--data", tmpdir, "-d", "1", NULL};
    run_res r = run_acm(d);
    cr_expect_eq(r.rc, 3, "exit %d: %s", r.rc, r.err);
    cr_expect(strstr(r.err, tmpdir) && strstr(r.err, "t10k-images-idx3-ubyte.gz: No such file"), "%s", r.err);
    run_free(&r);
    const char *m[] = {"models", "--server", url, "fmnist", "nosuch", NULL};
    r = run_acm(m);
    cr_expect_eq(r.rc, 5);
    cr_expect(strstr(r.err, "model nosuch: the server answered 404 Not Found: unknown model"), "%s", r.err);
    cr_expect(strstr(r.out, "fmnist (platform acm)"), "the known model is still shown: %s", r.out);
    run_free(&r);
}

Test(cli_server, health_and_models) {
    const char *h[] = {"health", "--server", url, NULL};
    run_res r = run_acm(h);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "live yes") && strstr(r.out, "ready yes"), "%s", r.out);
    run_free(&r);
    const char *hj[] = {"health", "--server", url, "--json", NULL};
    r = run_acm(hj);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    json_t *h0 = json_loads(r.out, 0, NULL);
    cr_expect(json_is_true(json_object_get(h0, "live")) && json_is_true(json_object_get(h0, "ready")), "%s", r.out);
    cr_expect_str_eq(json_string_value(json_object_get(h0, "server")), url);
    json_decref(h0);
    run_free(&r);
    const char *m[] = {"models", "--server", url, "--json", NULL};
    r = run_acm(m);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    cr_assert(o, "%s", r.out);
    cr_expect_str_eq(json_string_value(json_object_get(json_object_get(o, "server"), "name")), "acmd");
    json_t *m0 = json_array_get(json_object_get(o, "models"), 0);
    cr_expect_str_eq(json_string_value(json_object_get(m0, "name")), "fmnist");
    cr_expect_eq(json_array_size(json_object_get(m0, "labels")), 10);
    cr_expect_eq(json_integer_value(json_object_get(m0, "acm_modules")), 4);
    json_decref(o);
    run_free(&r);
}

/* Checks the invariants of a bench report and returns it (caller frees). */
static json_t *bench_report(run_res *r) {
    cr_assert_eq(r->rc, 0, "acm bench exit %d: %s", r->rc, r->err);
    json_error_t je;
    json_t *o = json_loads(r->out, 0, &je);
    cr_assert(o, "bench output is not JSON (%s): %s", je.text, r->out);
    long long sent = json_integer_value(json_object_get(o, "sent")), by = 0,
              errors = json_integer_value(json_object_get(o, "errors")), errs = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(o, "by_status"), k, v) by += json_integer_value(v);
    json_object_foreach(json_object_get(o, "errors_by_kind"), k, v) errs += json_integer_value(v);
    cr_assert_gt(sent, 0);
    cr_assert_eq(sent, by + errors, "sent %lld != answered %lld + errors %lld", sent, by, errors);
    cr_assert_eq(errors, errs, "errors %lld, by kind %lld", errors, errs);
    cr_assert(json_is_true(json_object_get(o, "accounted")));
    json_t *l = json_object_get(o, "latency_ms");
    if (json_is_object(l)) {
        double p[5];
        const char *names[5] = {"p50", "p90", "p99", "p99.9", "max"};
        for (int i = 0; i < 5; i++) p[i] = json_number_value(json_object_get(l, names[i]));
        for (int i = 1; i < 5; i++) cr_expect(p[i - 1] <= p[i], "%s %g > %s %g", names[i - 1], p[i - 1], names[i], p[i]);
        cr_expect(p[0] > 0);
    }
    return o;
}

Test(cli_server, bench_closed_loop_accounts_for_every_request) {
    const char *a[] = {"bench", "--server", url, "-c", "4", "-d", "2", "--json", "--budget", "choice:0.5,1",
                       "--deadline-ms", "2000", "--priority", "uniform:0:3", NULL};
    run_res r = run_acm(a);
    json_t *o = bench_report(&r);
    long long sent = json_integer_value(json_object_get(o, "sent"));
    long long ok = json_integer_value(json_object_get(json_object_get(o, "by_status"), "200"));
    cr_log_info("closed loop: %lld requests, %lld 200s in %.2f s", sent, ok,
                json_number_value(json_object_get(o, "elapsed_s")));
    cr_expect_eq(ok, sent, "a healthy server answers everything 200");
    cr_expect_str_eq(json_string_value(json_object_get(o, "mode")), "closed");
    double bm = json_number_value(json_object_get(o, "budget_applied_mean"));
    cr_expect(bm > 0.5 && bm < 1, "budgets drawn from {0.5, 1}: mean applied %g", bm);
    json_t *acc = json_object_get(o, "accuracy");
    cr_expect_eq(json_integer_value(json_object_get(acc, "total")), ok);
    json_t *dl = json_object_get(o, "deadline");
    cr_expect_eq(json_integer_value(json_object_get(dl, "requests")), sent);
    cr_expect(json_number_value(json_object_get(o, "flops_fraction")) < 1);
    cr_expect(json_number_value(json_object_get(json_object_get(o, "client_cpu"), "share")) > 0);
    cr_expect(json_is_null(json_object_get(o, "schedule_lag_ms")));
    json_decref(o);
    run_free(&r);
}

Test(cli_server, bench_open_loop_and_counts) {
    const char *a[] = {"bench", "--server", url, "-r", "100", "-d", "2", "--json", "--budget", "0.5", NULL};
    run_res r = run_acm(a);
    json_t *o = bench_report(&r);
    long long sent = json_integer_value(json_object_get(o, "sent"));
    /* Poisson with mean 200: 120..290 is outside +-5.5 sigma */
    cr_expect(sent >= 120 && sent <= 290, "open loop at 100/s for 2 s sent %lld", sent);
    cr_expect_str_eq(json_string_value(json_object_get(o, "mode")), "open");
    cr_expect(json_is_object(json_object_get(o, "schedule_lag_ms")));
    cr_expect_float_eq(json_number_value(json_object_get(o, "budget_applied_mean")), 0.5, 1e-9);
    json_decref(o);
    run_free(&r);

    /* X-Request-Start stamped with the scheduled send: acmd refuses a stamp in a wrong unit or off its clock (400),
     * so every request answered 200 shows the stamps are read as the times they are */
    const char *st[] = {"bench", "--server", url, "-r", "100", "-n", "50", "--json", "--deadline-ms", "5000",
                        "--request-start", NULL};
    r = run_acm(st);
    o = bench_report(&r);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "by_status"), "200")), 50, "%s", r.out);
    cr_expect(json_is_true(json_object_get(json_object_get(o, "request_headers"), "request_start")));
    json_decref(o);
    run_free(&r);

    /* a count over two threads: exactly that many, on a GET route */
    const char *b[] = {"bench", "--server", url, "--get", "/v2/health/live", "-n", "301", "-c", "8", "-t", "2",
                       "--json", NULL};
    r = run_acm(b);
    o = bench_report(&r);
    cr_expect_eq(json_integer_value(json_object_get(o, "sent")), 301);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(o, "by_status"), "200")), 301);
    cr_expect_eq(json_integer_value(json_object_get(o, "threads")), 2);
    cr_expect_null(json_object_get(o, "accuracy"));
    json_decref(o);
    run_free(&r);

    /* text report */
    const char *c[] = {"bench", "--server", url, "-n", "20", "-c", "2", NULL};
    r = run_acm(c);
    cr_expect_eq(r.rc, 0);
    cr_expect(strstr(r.out, "sent 20 = answered 20 + errors 0") && strstr(r.out, "accuracy") &&
                  strstr(r.out, "p99.9") && strstr(r.out, "client CPU"),
              "%s", r.out);
    run_free(&r);
}

Test(cli_server, bench_against_a_server_that_dies_counts_the_lost_requests) {
    const char *a[] = {"bench", "--server", url, "-r", "200", "-d", "4", "--timeout", "5", "--json", NULL};
    int fo, fe;
    pid_t pid = spawn_acm(a, &fo, &fe);
    /* killed once it has answered 50 requests (counted by the server itself: no assumption on its speed) */
    double answered = 0;
    for (double t0 = th_now(); th_now() - t0 < 20 && (answered = th_metric(srv.port, "outcome=\"success\"} ")) < 50;)
        usleep(2000);
    kill(srv.pid, SIGKILL);
    th_acmd_stop(&srv, 0, 5);
    run_res r = wait_acm(pid, fo, fe);
    json_t *o = bench_report(&r);
    long long sent = json_integer_value(json_object_get(o, "sent")), errors = json_integer_value(json_object_get(o, "errors"));
    long long ok = json_integer_value(json_object_get(json_object_get(o, "by_status"), "200"));
    char *kinds = json_dumps(json_object_get(o, "errors_by_kind"), JSON_COMPACT);
    cr_log_info("server killed after %.0f answers: sent %lld, 200 %lld, errors %lld: %s", answered, sent, ok, errors, kinds);
    free(kinds);
    cr_assert_geq(answered, 50, "the server answered only %.0f requests in 20 s", answered);
    cr_expect_geq(ok, 50, "the client saw %lld of the server's %.0f answers", ok, answered);
    cr_expect_eq(sent, ok + errors, "every request accounted for: sent %lld, 200 %lld, errors %lld", sent, ok, errors);
    cr_expect_gt(errors, 0, "nothing failed after the kill");
    cr_expect_gt(json_integer_value(json_object_get(json_object_get(o, "errors_by_kind"), "couldnt_connect")), 0);
    json_decref(o);
    run_free(&r);
}

Test(cli_server, python_example_client) {
    if (access("/usr/bin/python3", X_OK)) {
        cr_log_info("/usr/bin/python3 missing: the Python example is not run");
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 clients/python/acm_client.py --server %s infer --count 20 --batch 8 --budget 0.5 > %s/py.out "
             "2>&1 && /usr/bin/python3 clients/python/acm_client.py --server %s metadata nosuch > %s/py.err 2>&1; echo $?",
             url, tmpdir, url, tmpdir);
    FILE *p = popen(cmd, "r");
    int rc = -1;
    cr_assert_eq(fscanf(p, "%d", &rc), 1);
    pclose(p);
    char path[128];
    snprintf(path, sizeof path, "%s/py.out", tmpdir);
    FILE *f = fopen(path, "r");
    char buf[1024] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    json_t *o = json_loads(buf, 0, NULL);
    cr_assert(o, "python infer output: %s", buf);
    cr_expect_eq(json_integer_value(json_object_get(o, "images")), 20);
    cr_expect_float_eq(json_number_value(json_object_get(o, "budget_applied")), 0.5, 1e-9);
    json_decref(o);
    cr_expect_eq(rc, 1, "an unknown model: exit 1 (got %d)", rc);
    snprintf(path, sizeof path, "%s/py.err", tmpdir);
    f = fopen(path, "r");
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    cr_expect(strstr(buf, "404: unknown model"), "%s", buf);
}

/* A 16-bit mono 16 kHz WAV of n samples of a chirp (different for every seed). */
static void make_wav(const char *path, size_t n, int seed) {
    uint8_t *b = calloc(1, 44 + 2 * n);
    const uint32_t data = (uint32_t)(2 * n), v32[] = {36 + data, 16, 16000, 32000, data};
    memcpy(b, "RIFF", 4), memcpy(b + 4, &v32[0], 4), memcpy(b + 8, "WAVEfmt ", 8), memcpy(b + 16, &v32[1], 4);
    const uint16_t fmt[] = {1, 1}, blk[] = {2, 16};
    memcpy(b + 20, fmt, 4), memcpy(b + 24, &v32[2], 4), memcpy(b + 28, &v32[3], 4), memcpy(b + 32, blk, 4);
    memcpy(b + 36, "data", 4), memcpy(b + 40, &v32[4], 4); /* little-endian hosts */
    for (size_t i = 0; i < n; i++) {
        const double t = i / 16000.0;
        const int16_t s = (int16_t)(12000 * sin(2 * 3.141592653589793 * (200 + 150 * seed + 300 * t) * t));
        memcpy(b + 44 + 2 * i, &s, 2);
    }
    write_file(path, b, 44 + 2 * n);
    free(b);
}

/* acm transcribe: several files at once, printed in the order given, each the server's own answer; a budget; a
 * non-audio file exits 3 naming it; a server error exits 5 with the server's message. */
Test(cli_speech, transcribe_files_in_parallel, .timeout = 120) {
    th_acmd s;
    const char *args[] = {"--model", "speech=tests/golden/speech_a.safetensors", "--workers", "1", "--log-level",
                          "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0, "acmd not ready");
    char u[64], dir[] = "/tmp/acm-tr-XXXXXX", f[3][96], txt[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", s.port);
    cr_assert(mkdtemp(dir));
    for (int k = 0; k < 3; k++) snprintf(f[k], sizeof f[k], "%s/%d.wav", dir, k), make_wav(f[k], 8000 * (size_t)(k + 2), k);
    snprintf(txt, sizeof txt, "%s/notes.txt", dir);
    write_file(txt, "not audio", 9);
    const char *t[] = {"transcribe", "--server", u, "--json", "--parallel", "3", "--budget", "0.5", f[0], f[1], f[2], NULL};
    run_res r = run_acm(t);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *save, *line = strtok_r(r.out, "\n", &save);
    for (int k = 0; k < 3; k++, line = strtok_r(NULL, "\n", &save)) {
        cr_assert(line, "line %d missing", k);
        json_t *o = json_loads(line, 0, NULL);
        cr_assert(o, "not JSON: %s", line);
        cr_expect_str_eq(json_string_value(json_object_get(o, "file")), f[k]);
        cr_expect_float_eq(json_number_value(json_object_get(o, "budget_applied")), 0.5, 1e-9);
        cr_expect_float_eq(json_number_value(json_object_get(o, "audio_seconds")), 0.5 * (k + 2), 1e-9);
        /* the server's answer to the same file */
        size_t n;
        char *body = th_slurp(f[k], &n);
        th_resp d;
        cr_assert_eq(th_http(s.port, "POST", "/v1/models/speech/transcribe", "Content-Type: audio/wav\r\nX-Compute-Budget: 0.5\r\n",
                             body, n, &d), 0);
        json_t *dj = th_json(&d);
        cr_expect_str_eq(json_string_value(json_object_get(o, "text")), json_string_value(json_object_get(dj, "text")));
        json_decref(dj), json_decref(o);
        th_resp_free(&d);
        free(body);
    }
    run_free(&r);
    const char *tt[] = {"transcribe", "--server", u, f[0], NULL};
    r = run_acm(tt);
    cr_expect_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, f[0]) && strstr(r.out, "real-time factor") && strstr(r.out, "of dense"), "%s", r.out);
    run_free(&r);
    const char *bad[] = {"transcribe", "--server", u, f[0], txt, NULL};
    r = run_acm(bad);
    cr_expect_eq(r.rc, 3);
    cr_expect(strstr(r.err, txt) && strstr(r.err, "not a WAV"), "%s", r.err);
    run_free(&r);
    const char *nosuch[] = {"transcribe", "--server", u, "--model", "nosuch", f[0], NULL};
    r = run_acm(nosuch);
    cr_expect_eq(r.rc, 5);
    cr_expect(strstr(r.err, "404") && strstr(r.err, "unknown model"), "%s", r.err);
    run_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* acm transcribe --stream: the file over the WebSocket route, paced (--speed 4: four times real time, so that the
 * pacing is exercised without the test lasting the audio's length) or not; the final is the /transcribe answer on the
 * same file; --json prints every server message; a budget reaches the stream; an unknown model exits 5 with the
 * server's 404. */
Test(cli_speech, transcribe_stream, .timeout = 120) {
    th_acmd s;
    const char *args[] = {"--model", "speech=tests/golden/speech_a.safetensors", "--workers", "1", "--log-level",
                          "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0, "acmd not ready");
    char u[64], dir[] = "/tmp/acm-trs-XXXXXX", f[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", s.port);
    cr_assert(mkdtemp(dir));
    snprintf(f, sizeof f, "%s/a.wav", dir);
    make_wav(f, 16000 * 2, 1);
    size_t n;
    char *body = th_slurp(f, &n);
    th_resp d;
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/speech/transcribe", "Content-Type: audio/wav\r\n", body, n, &d), 0);
    json_t *dj = th_json(&d);
    const char *want = json_string_value(json_object_get(dj, "text"));
    const double t0 = th_now();
    const char *t[] = {"transcribe", "--server", u, "--stream", "--speed", "4", f, NULL};
    run_res r = run_acm(t);
    const double took = th_now() - t0;
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char line[512];
    snprintf(line, sizeof line, "%s\n", want);
    cr_expect_str_eq(r.out, line, "the final line is the /transcribe text");
    cr_expect_geq(took, 0.5, "2 s of audio at 4x real time take at least 0.5 s (%.3f s)", took);
    run_free(&r);
    const char *tj[] = {"transcribe", "--server", u, "--stream", "--speed", "0", "--json", "--budget", "0.5", f, NULL};
    r = run_acm(tj);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    int partials = 0, finals = 0, ends = 0;
    char *save;
    for (char *l = strtok_r(r.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(l, 0, NULL);
        cr_assert(o, "not JSON: %s", l);
        const char *ty = json_string_value(json_object_get(o, "type"));
        if (!strcmp(ty, "partial")) {
            partials++;
            cr_expect_leq(json_number_value(json_object_get(json_object_get(o, "chunk"), "budget")), 0.5 + 1e-6);
        }
        finals += !strcmp(ty, "final"), ends += !strcmp(ty, "end");
        json_decref(o);
    }
    cr_expect_gt(partials, 0);
    cr_expect_eq(finals, 1);
    cr_expect_eq(ends, 1);
    run_free(&r);
    const char *nosuch[] = {"transcribe", "--server", u, "--stream", "--model", "nosuch", f, NULL};
    r = run_acm(nosuch);
    cr_expect_eq(r.rc, 5);
    cr_expect(strstr(r.err, "404") && strstr(r.err, "unknown model"), "%s", r.err);
    run_free(&r);
    json_decref(dj);
    th_resp_free(&d);
    free(body);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* acm transcribe --compare-stream: each file both ways (whole, then streamed unpaced in the same frames as --stream);
 * with the stream's budget kept (--stream-max-behind 0) the finals are the whole file's text, a line per file and the
 * count; --json: the two texts per file and the summary; --stream with it is a usage error. (acmc_same_words, the
 * comparison, is checked on differing pairs in test_client_lib.c.) */
Test(cli_speech, transcribe_compare_stream, .timeout = 120) {
    th_acmd s;
    const char *args[] = {"--model", "speech=tests/golden/speech_a.safetensors", "--workers", "1", "--log-level",
                          "warn", "--stream-max-behind", "0", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0, "acmd not ready");
    char u[64], dir[] = "/tmp/acm-trc-XXXXXX", f[2][96];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", s.port);
    cr_assert(mkdtemp(dir));
    for (int k = 0; k < 2; k++) snprintf(f[k], sizeof f[k], "%s/%d.wav", dir, k), make_wav(f[k], 16000 * (size_t)(k + 2), k);
    const char *t[] = {"transcribe", "--server", u, "--compare-stream", "--budget", "0.5", f[0], f[1], NULL};
    run_res r = run_acm(t);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    cr_expect(strstr(r.out, "same     ") && !strstr(r.out, "differs"), "%s", r.out);
    cr_expect(strstr(r.out, "2 of 2 files: the stream's finals are the whole file's text (100.00%), 0 the same letters"),
              "%s", r.out);
    run_free(&r);
    const char *tj[] = {"transcribe", "--server", u, "--compare-stream", "--json", f[0], f[1], NULL};
    r = run_acm(tj);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    char *save, *line = strtok_r(r.out, "\n", &save);
    for (int k = 0; k < 2; k++, line = strtok_r(NULL, "\n", &save)) {
        json_t *o = line ? json_loads(line, 0, NULL) : NULL;
        cr_assert(o, "line %d: %s", k, line ? line : "(none)");
        cr_expect_str_eq(json_string_value(json_object_get(o, "file")), f[k]);
        cr_expect(json_is_true(json_object_get(o, "same")), "%s", line);
        cr_expect(json_is_true(json_object_get(o, "same_letters")), "%s", line);
        cr_expect_str_eq(json_string_value(json_object_get(o, "whole")), json_string_value(json_object_get(o, "stream")));
        cr_expect_geq(json_integer_value(json_object_get(o, "segments")), 1);
        json_decref(o);
    }
    json_t *sum = line ? json_loads(line, 0, NULL) : NULL;
    cr_assert(sum, "no summary line");
    cr_expect_eq(json_integer_value(json_object_get(sum, "compared")), 2);
    cr_expect_eq(json_integer_value(json_object_get(sum, "same")), 2);
    cr_expect_eq(json_integer_value(json_object_get(sum, "same_letters")), 2);
    json_decref(sum);
    run_free(&r);
    const char *both[] = {"transcribe", "--server", u, "--compare-stream", "--stream", f[0], NULL};
    r = run_acm(both);
    cr_expect_eq(r.rc, 2, "%s", r.err);
    run_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}

/* acm bench --streams N: N paced WebSocket streams at once (their starts spread over --ramp), every one accounted for
 * (JSON: streams, failed, partials, the latency quantiles, the budget asked and realised, chunks per engine call); a refused handshake is a failed stream and exit 5. */
Test(cli_speech, bench_streams, .timeout = 120) {
    th_acmd s;
    const char *args[] = {"--model", "speech=tests/golden/speech_a.safetensors", "--workers", "1", "--log-level",
                          "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0, "acmd not ready");
    char u[64], dir[] = "/tmp/acm-bs-XXXXXX", f[96];
    snprintf(u, sizeof u, "http://127.0.0.1:%d", s.port);
    cr_assert(mkdtemp(dir));
    snprintf(f, sizeof f, "%s/a.wav", dir);
    make_wav(f, 16000, 2);
    const char *t[] = {"bench", "--server", u, "--streams", "3", "--seconds", "1.5", "--budget", "0.5", "--ramp", "0.3",
                       "--json", f, NULL};
    run_res r = run_acm(t);
    cr_assert_eq(r.rc, 0, "%s", r.err);
    json_t *o = json_loads(r.out, 0, NULL);
    cr_assert(o, "not JSON: %s", r.out);
    cr_expect_eq(json_integer_value(json_object_get(o, "streams")), 3);
    cr_expect_eq(json_integer_value(json_object_get(o, "failed")), 0);
    /* 1.5 s in chunks of 0.16 s: at least a partial per stream per 8 chunks (a job), and the flush's */
    cr_expect_geq(json_integer_value(json_object_get(o, "partials")), 3 * 2);
    const double p50 = json_number_value(json_object_get(json_object_get(o, "server_latency_ms"), "p50")),
                 p99 = json_number_value(json_object_get(json_object_get(o, "server_latency_ms"), "p99"));
    cr_expect(p50 >= 0 && p99 >= p50, "p50 %g, p99 %g", p50, p99);
    cr_expect(json_number_value(json_object_get(o, "budget_realised")) <= 0.5 + 1e-9);
    cr_expect_gt(json_number_value(json_object_get(o, "flops_per_audio_second")), 0);
    cr_expect_float_eq(json_number_value(json_object_get(o, "ramp_s")), 0.3, 1e-9);
    const double batch = json_number_value(json_object_get(o, "batch_mean")); /* chunks per engine call: 1..3 streams' */
    cr_expect(batch >= 1 && batch <= 3, "batch_mean %g", batch);
    json_decref(o);
    run_free(&r);
    const char *nosuch[] = {"bench", "--server", u, "--streams", "2", "--seconds", "0.5", "--model", "nosuch", f, NULL};
    r = run_acm(nosuch);
    cr_expect_eq(r.rc, 5);
    cr_expect(strstr(r.err, "404"), "%s", r.err);
    run_free(&r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 30), 0);
}
