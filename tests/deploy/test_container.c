/*
 * test_container.c — deploy/container: the recipe (always), and the built image (when `make image` has built one).
 *
 * The recipe: two stages, the runtime one from the runtime base (no -dev package, no compiler), a numeric non-root
 * USER whose uid the image creates, a HEALTHCHECK, STOPSIGNAL SIGTERM, and a drain in the image's configuration that
 * ends within the 10 s that `docker stop` and `podman stop` wait before SIGKILL.
 *
 * The image: `podman run` cannot start containers on these machines (crun: cgroups in hybrid mode, setrlimit), so
 * the test runs the image's root file system itself: `podman image mount` (read-only), then in new mount and PID
 * namespaces /dev, /proc and a scratch /tmp are mounted on it and `chroot --userspec=10001:10001` starts the image's
 * ENTRYPOINT (acmd with /etc/acm/acmd.json, listening on loopback instead of 0.0.0.0). acmd starts with only the
 * image's libraries, answers health and a classify of a shipped example image, the image's HEALTHCHECK command
 * passes, and SIGTERM drains it to exit 0 within the stop timeout. Without a built image (BUILD/image/id, written by
 * deploy/container/build-image.sh) that test is skipped, saying so.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deploy/deploy_util.h"
#include "server/harness.h"

#define CF "deploy/container/Containerfile"

Test(container, recipe_is_multi_stage_non_root_with_health_and_drain) {
    char *cf = th_slurp(CF, NULL);
    cr_assert(cf);
    int froms = 0;
    for (const char *p = cf; (p = strstr(p, "\nFROM ")); p++) froms++;
    cr_expect_eq(froms, 2, "%d stages", froms);
    cr_expect(strstr(cf, "\nFROM ${BUILD_BASE} AS build\n") && strstr(cf, "\nFROM ${RUNTIME_BASE}\n"));
    cr_expect(strstr(cf, "\nCOPY --from=build /src/build/acmd /src/build/acm /usr/local/bin/\n"));
    cr_expect(strstr(cf, "\nUSER 10001:10001\n") && strstr(cf, "--uid 10001 --gid 10001"), "no numeric non-root user");
    cr_expect(strstr(cf, "\nHEALTHCHECK ") && strstr(cf, "\nSTOPSIGNAL SIGTERM\n"));
    cr_expect(strstr(cf, "\nENTRYPOINT [\"/usr/local/bin/acmd\", \"--config\", \"/etc/acm/acmd.json\"]\n"));
    free(cf);
    /* the runtime stage has libraries only */
    char *out;
    cr_expect_neq(dt_sh(&out, "grep -v '^#' deploy/container/packages-runtime.txt | grep -E -- '-dev$|^build-essential$|^gcc'"), 0,
                  "build packages in the runtime stage: %s", out);
    free(out);
    /* drain inside the default stop timeout (10 s) */
    json_error_t e;
    json_t *c = json_load_file("deploy/container/acmd.json", 0, &e);
    cr_assert(c, "%s", e.text);
    const double exit_timeout = json_number_value(json_object_get(c, "exit_timeout"));
    cr_expect(exit_timeout > 0 && exit_timeout < 10, "exit_timeout %g is not under docker's 10 s stop timeout", exit_timeout);
    json_decref(c);
}

/* the image built by make image, or NULL (skip) */
static char *built_image(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/image/id", dt_build());
    char *id = th_slurp(p, NULL);
    if (!id) return NULL;
    id[strcspn(id, "\n")] = 0;
    if (!*id || !dt_have("podman") || dt_sh(NULL, "podman image exists %s", id) != 0) {
        free(id);
        return NULL;
    }
    return id;
}

static char root[1024], scratch[] = "/tmp/acm-image-XXXXXX", *image_id;
static pid_t ns_pid = -1;
static void cleanup(void) {
    if (ns_pid > 0) kill(ns_pid, SIGKILL); /* --kill-child takes acmd with it */
    if (image_id) dt_sh(NULL, "podman image unmount %s >/dev/null", image_id);
    dt_sh(NULL, "rm -rf %s", scratch);
}

Test(container, image_root_serves_health_and_classify_and_drains, .timeout = 120, .fini = cleanup) {
    image_id = built_image();
    if (!image_id) {
        char p[512];
        snprintf(p, sizeof p, "%s/image/id", dt_build());
        cr_skip_test("no image built (%s is missing or names no podman image): `make image` builds it", p);
    }
    char *out;
    cr_assert_eq(dt_sh(&out, "podman image mount %s", image_id), 0, "%s", out);
    snprintf(root, sizeof root, "%s", out);
    root[strcspn(root, "\n")] = 0;
    free(out);
    cr_assert(mkdtemp(scratch));
    cr_assert_eq(chmod(scratch, 01777), 0);
    /* the image's user, and its libraries: every one acmd and acm load is found inside the image */
    cr_expect_eq(dt_sh(&out, "grep -q '^acmd:x:10001:10001:' %s/etc/passwd", root), 0);
    free(out);
    cr_expect_eq(dt_sh(&out, "chroot %s /usr/bin/ldd /usr/local/bin/acmd /usr/local/bin/acm 2>&1 | grep 'not found'", root), 1,
                 "libraries missing from the image:\n%s", out);
    free(out);

    char logp[1100], portp[1100];
    snprintf(logp, sizeof logp, "%s/acmd.log", scratch);
    snprintf(portp, sizeof portp, "%s/port", scratch);
    ns_pid = fork();
    cr_assert(ns_pid >= 0);
    if (ns_pid == 0) {
        if (!freopen(logp, "w", stdout) || dup2(fileno(stdout), 2) < 0) _exit(126);
        setpgid(0, 0);
        /* the ENTRYPOINT, with --listen on loopback and the port written to the scratch /tmp */
        execlp("unshare", "unshare", "--mount", "--pid", "--fork", "--kill-child", "bash", "-c",
               "set -e; R=$1; mount --bind /dev \"$R/dev\"; mount -t proc proc \"$R/proc\"; mount --bind \"$2\" \"$R/tmp\"; "
               "exec chroot --userspec=10001:10001 \"$R\" /usr/local/bin/acmd --config /etc/acm/acmd.json "
               "--listen 127.0.0.1:0 --port-file /tmp/port",
               "run-image", root, scratch, (char *)NULL);
        _exit(127);
    }
    int port = 0;
    for (double t0 = th_now(); th_now() - t0 < 60 && port <= 0; usleep(50000)) {
        char *p = th_slurp(portp, NULL);
        if (p) port = atoi(p);
        free(p);
        int st;
        if (waitpid(ns_pid, &st, WNOHANG) == ns_pid) {
            ns_pid = -1;
            char *l = th_slurp(logp, NULL);
            cr_assert_fail("acmd in the image exited while starting:\n%s", l ? l : "");
        }
    }
    cr_assert_gt(port, 0, "acmd in the image wrote no port");
    int ready = 0;
    for (double t0 = th_now(); th_now() - t0 < 60 && !ready; usleep(50000)) {
        th_resp r;
        if (th_http(port, "GET", "/v2/health/ready", NULL, NULL, 0, &r) == 0) {
            ready = r.status == 200;
            th_resp_free(&r);
        }
    }
    cr_assert(ready, "acmd in the image never turned ready");
    size_t n;
    char *png = th_slurp("clients/examples/shirt.png", &n);
    cr_assert(png);
    th_resp r;
    cr_assert_eq(th_http(port, "POST", "/v1/models/fmnist/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
    free(png);
    cr_expect_eq(r.status, 200, "%s", r.body);
    cr_expect(strstr(r.body, "\"label\":\"Shirt\""), "%s", r.body);
    th_resp_free(&r);
    /* the HEALTHCHECK's command, run from the image as its user */
    cr_expect_eq(dt_sh(&out, "chroot --userspec=10001:10001 %s /usr/local/bin/acm health --server http://127.0.0.1:%d --timeout 2",
                       root, port), 0, "%s", out);
    free(out);
    /* SIGTERM (the image's STOPSIGNAL) to acmd, PID 1 of its namespace: drained and exited 0 within the stop timeout */
    cr_assert_eq(dt_sh(&out, "pgrep -P %d -x acmd", (int)ns_pid), 0, "%s", out);
    const pid_t acmd = atoi(out);
    free(out);
    const double t0 = th_now();
    cr_assert_eq(kill(acmd, SIGTERM), 0);
    int st = -1;
    while (th_now() - t0 < 15 && waitpid(ns_pid, &st, WNOHANG) != ns_pid) usleep(20000);
    const double took = th_now() - t0;
    cr_assert(WIFEXITED(st), "unshare did not end within 15 s of SIGTERM");
    ns_pid = -1;
    cr_expect_eq(WEXITSTATUS(st), 0);
    cr_expect_lt(took, 10.0, "the drain took %.1f s, past the 10 s stop timeout", took);
    char *l = th_slurp(logp, NULL);
    cr_expect(l && strstr(l, "drained") && strstr(l, "\"exit 0\""), "%s", l ? l : "");
    free(l);
}
