/*
 * test_systemd.c — deploy/systemd: the unit passes `systemd-analyze verify` with nothing to say (verify exits 0 on
 * unknown keys and bad values and only prints them, so any output fails), its hardening scores as systemd's own
 * `security` audit rates "OK" or better, its stop timeout leaves acmd's exit timeout room, its configuration is one
 * acmd accepts, and its ExecReload sends SIGHUP, which acmd takes as a reload (of --auth-file) and survives.
 * No systemd runs as PID 1 here, so the unit itself is not started (docs/DEPLOY.md says so).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deploy/deploy_util.h"
#include "server/harness.h"

#define UNIT "deploy/systemd/acmd.service"
#define CONF "deploy/systemd/acmd.json"

/* The unit with ExecStart on the acmd under test (verify checks that the binary exists) into dir/acmd.service. */
static void unit_copy(char *dir, size_t n, const char *sed_extra) {
    snprintf(dir, n, "/tmp/acm-systemd-XXXXXX");
    cr_assert(mkdtemp(dir));
    char acmd[PATH_MAX], p[PATH_MAX + 64];
    snprintf(p, sizeof p, "%s/acmd", dt_build());
    cr_assert(realpath(p, acmd), "%s is not built", p);
    cr_assert_eq(dt_sh(NULL, "sed -e 's#/usr/local/bin/acmd#%s#' %s %s > %s/acmd.service", acmd, sed_extra ? sed_extra : "",
                       UNIT, dir), 0);
}

static void rm_dir(const char *dir) { dt_sh(NULL, "rm -rf %s", dir); }

Test(systemd, unit_verifies_without_a_word) {
    cr_assert(dt_have("systemd-analyze"), "systemd-analyze is missing: make deps installs systemd");
    char dir[64], *out;
    unit_copy(dir, sizeof dir, NULL);
    int rc = dt_sh(&out, "cd %s && systemd-analyze verify acmd.service", dir);
    cr_expect_eq(rc, 0, "systemd-analyze verify: exit %d\n%s", rc, out);
    cr_expect_str_empty(out, "systemd-analyze verify has something to say:\n%s", out);
    free(out);
    rm_dir(dir);
    /* the check bites: a misspelt hardening key is reported (and verify still exits 0) */
    unit_copy(dir, sizeof dir, "-e 's/^NoNewPrivileges=/NoNewPrivilegs=/'");
    rc = dt_sh(&out, "cd %s && systemd-analyze verify acmd.service", dir);
    cr_expect(strstr(out, "NoNewPrivilegs"), "a misspelt key went unnoticed (exit %d):\n%s", rc, out);
    free(out);
    rm_dir(dir);
}

Test(systemd, hardening_rated_ok_by_systemd_security) {
    char dir[64], *out;
    unit_copy(dir, sizeof dir, NULL);
    int rc = dt_sh(&out, "cd %s && systemd-analyze security --offline=yes --no-pager acmd.service", dir);
    cr_assert_eq(rc, 0, "%s", out);
    const char *o = strstr(out, "Overall exposure level for acmd.service:");
    cr_assert(o, "no overall exposure level in:\n%s", out);
    double level = atof(o + strlen("Overall exposure level for acmd.service:"));
    /* systemd's scale: 0 (fully confined) .. 10 (unprotected); below 2 is "OK", above 9 "UNSAFE" */
    cr_expect(level > 0 && level <= 2.0, "exposure %.1f (> 2.0):\n%s", level, out);
    free(out);
    rm_dir(dir);
}

/* a systemd time span of the unit ("30s", "1min 30s" are not used: seconds only) */
static double unit_seconds(const char *unit, const char *key) {
    char *u = th_slurp(unit, NULL);
    cr_assert(u);
    char needle[64];
    snprintf(needle, sizeof needle, "\n%s=", key);
    const char *p = strstr(u, needle);
    cr_assert(p, "%s has no %s", unit, key);
    double v = atof(p + strlen(needle));
    free(u);
    return v;
}

Test(systemd, stop_timeout_outlasts_the_drain) {
    json_error_t e;
    json_t *c = json_load_file(CONF, 0, &e);
    cr_assert(c, "%s: %s", CONF, e.text);
    const double exit_timeout = json_number_value(json_object_get(c, "exit_timeout"));
    const double grace = json_number_value(json_object_get(c, "drain_grace_s"));
    json_decref(c);
    cr_assert_gt(exit_timeout, 0);
    const double stop = unit_seconds(UNIT, "TimeoutStopSec");
    /* acmd exits at the latest exit_timeout after SIGTERM; systemd's SIGKILL must come later */
    cr_expect_gt(stop, exit_timeout, "TimeoutStopSec %g <= exit_timeout %g: SIGKILL would cut a drain", stop, exit_timeout);
    cr_expect_leq(grace, exit_timeout);
    char *u = th_slurp(UNIT, NULL);
    cr_expect(strstr(u, "\nExecStart=/usr/local/bin/acmd --config /etc/acm/acmd.json\n"), "ExecStart does not read the config");
    cr_expect(strstr(u, "\nUser=acmd\n") && strstr(u, "\nProtectSystem=strict\n") && strstr(u, "\nNoNewPrivileges=yes\n"));
    free(u);
}

Test(systemd, acmd_accepts_the_config) {
    /* acmd parses and validates it (the models' paths are where the install puts them: not read by --print-config) */
    char *out;
    int rc = dt_sh(&out, "%s/acmd --config %s --print-config", dt_build(), CONF);
    cr_expect_eq(rc, 0, "%s", out);
    cr_expect(strstr(out, "\"exit_timeout\": 25") && strstr(out, "fmnist-vit-acm.safetensors"), "%s", out);
    free(out);
    /* the image's configuration (deploy/container) too */
    rc = dt_sh(&out, "%s/acmd --config deploy/container/acmd.json --print-config", dt_build());
    cr_expect_eq(rc, 0, "%s", out);
    free(out);
}

Test(systemd, exec_reload_sends_sighup_which_acmd_survives, .timeout = 60) {
    char *u = th_slurp(UNIT, NULL);
    cr_assert(u);
    cr_expect(strstr(u, "\nExecReload=/bin/kill -HUP $MAINPID\n"), "the unit's ExecReload is not a SIGHUP to acmd");
    free(u);
    th_acmd s;
    const char *args[] = {"--model", "fmnist=models/fmnist-vit-acm.safetensors", "--workers", "1", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 60), 0);
    cr_assert_eq(kill(s.pid, SIGHUP), 0); /* what systemctl reload does */
    char *log = th_acmd_log_wait(&s, "SIGHUP:", 10);
    cr_expect(strstr(log, "SIGHUP: nothing to reload"), "%s", log);
    free(log);
    cr_expect_eq(th_acmd_wait_ready(&s, 10), 0, "acmd not serving after SIGHUP");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 20), 0, "acmd did not drain and exit 0 after a reload");
}
