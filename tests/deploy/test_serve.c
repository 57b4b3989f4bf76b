/*
 * test_serve.c — deploy/serve.sh, what `make serve` and `make stop` run, as a user meets it: it starts acmd on the
 * shipped models and says when it is ready and how to stop it; requests are logged to BUILD/acmd.log, not to the
 * terminal; a second start while it runs is refused; `--stop` drains it and the script exits 0, leaving no pid file.
 * BUILD is a scratch folder holding links to $ACM_BUILD's acmd and acm, so that a server the user started from
 * build/ is never touched; the port is any free one (ACMD_ARGS-style options: --listen 127.0.0.1:0).
 */
#include <criterion/criterion.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/harness.h"

static char *slurp_or_empty(const char *path) {
    char *b = th_slurp(path, NULL);
    return b ? b : strdup("");
}

/* Runs `bash deploy/serve.sh dir args...` with stdout and stderr into out; returns the pid. */
static pid_t spawn_serve(const char *dir, const char *out, const char *a1, const char *a2, const char *a3) {
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        if (!freopen(out, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(126);
        setpgid(0, 0); /* its own group: a signal to the test runner does not reach it */
        execlp("bash", "bash", "deploy/serve.sh", dir, a1, a2, a3, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* serve.sh's process group (acmd included), killed after the test whatever its outcome */
static pid_t group;
static void kill_group(void) {
    if (group > 0) kill(-group, SIGKILL);
}

static int wait_exit(pid_t pid, double timeout_s) {
    for (double t0 = th_now(); th_now() - t0 < timeout_s; usleep(20000)) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return -1;
}

Test(serve, logs_to_a_file_says_how_to_stop_and_stop_drains, .timeout = 180, .fini = kill_group) {
    char dir[] = "/tmp/acm-serve-XXXXXX", p[512], q[PATH_MAX], term[600], term2[600], logp[600];
    cr_assert(mkdtemp(dir));
    const char *b = getenv("ACM_BUILD");
    for (int i = 0; i < 2; i++) { /* BUILD/acmd and BUILD/acm: links to the programs under test */
        const char *prog = i ? "acm" : "acmd";
        snprintf(p, sizeof p, "%s/%s", b && *b ? b : "build", prog);
        cr_assert(realpath(p, q), "%s is not built", p);
        snprintf(p, sizeof p, "%s/%s", dir, prog);
        cr_assert_eq(symlink(q, p), 0);
    }
    snprintf(term, sizeof term, "%s/terminal", dir);
    snprintf(term2, sizeof term2, "%s/terminal2", dir);
    snprintf(logp, sizeof logp, "%s/acmd.log", dir);
    pid_t pid = spawn_serve(dir, term, "--listen", "127.0.0.1:0", "--workers=1");
    group = pid;
    int ready = 0;
    for (double t0 = th_now(); th_now() - t0 < 120 && !ready; usleep(50000)) {
        char *t = slurp_or_empty(term);
        ready = strstr(t, "serve: acmd ready") != NULL;
        free(t);
        int st;
        cr_assert_neq(waitpid(pid, &st, WNOHANG), pid, "serve.sh exited before acmd was ready");
    }
    char *t = slurp_or_empty(term);
    cr_assert(ready, "not ready:\n%s", t);
    cr_expect(strstr(t, "make stop") && strstr(t, "acmd.log") && strstr(t, "fmnist (models/fmnist-vit-acm.safetensors)"),
              "the start message lacks how to stop, the log or the model:\n%s", t);
    free(t);
    snprintf(p, sizeof p, "%s/acmd.port", dir);
    char *port_s = slurp_or_empty(p);
    const int port = atoi(port_s);
    free(port_s);
    cr_assert_gt(port, 0);
    snprintf(p, sizeof p, "%s/acmd.pid", dir);
    cr_expect_eq(access(p, R_OK), 0, "no pid file while it runs");
    /* requests: answered, logged to the file only */
    th_resp r;
    cr_assert_eq(th_http(port, "GET", "/v2/models/fmnist-static/ready", "X-Request-Id: serve-test-1\r\n", NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    /* every shipped model is served: the speech encoder and its ACM conversion too */
    cr_assert_eq(th_http(port, "GET", "/v2/models/speech-static/ready", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "speech-static (models/speech.safetensors) not served: %s", r.body);
    th_resp_free(&r);
    cr_assert_eq(th_http(port, "GET", "/v2/models/speech/ready", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "speech (models/speech-acm.safetensors) not served: %s", r.body);
    th_resp_free(&r);
    /* a second start while it runs: refused, the first one untouched */
    pid_t again = spawn_serve(dir, term2, "--listen", "127.0.0.1:0", NULL);
    cr_expect_eq(wait_exit(again, 30), 1);
    t = slurp_or_empty(term2);
    cr_expect(strstr(t, "already runs"), "%s", t);
    free(t);
    /* --stop: SIGTERM, the drain, exit 0 of acmd and of the script */
    snprintf(p, sizeof p, "bash deploy/serve.sh %s --stop >/dev/null", dir);
    cr_expect_eq(system(p), 0);
    cr_expect_eq(wait_exit(pid, 30), 0, "serve.sh did not exit 0 after --stop");
    t = slurp_or_empty(term);
    cr_expect(!strstr(t, "serve-test-1") && !strstr(t, "\"route\""), "access log lines on the terminal:\n%s", t);
    cr_expect(strstr(t, "acmd exited with status 0"), "%s", t);
    free(t);
    t = slurp_or_empty(logp);
    cr_expect(strstr(t, "\"id\":\"serve-test-1\"") && strstr(t, "draining") && strstr(t, "exit 0"), "log file:\n%s", t);
    free(t);
    snprintf(p, sizeof p, "%s/acmd.pid", dir);
    cr_expect_neq(access(p, F_OK), 0, "the pid file outlives acmd");
    /* --stop with nothing running: says so, exit 0 */
    snprintf(p, sizeof p, "bash deploy/serve.sh %s --stop | grep -q 'no acmd'", dir);
    cr_expect_eq(system(p), 0);
    snprintf(p, sizeof p, "rm -rf %s", dir);
    cr_expect_eq(system(p), 0);
}
