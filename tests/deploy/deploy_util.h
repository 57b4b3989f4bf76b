/*
 * deploy_util.h — helpers for the tests of deploy/ (prefix dt_): run a shell command and keep what it printed, read
 * a whole file, pick free loopback ports. The deploy tests drive real tools (systemd-analyze, promtool, kubectl,
 * node, podman, haproxy, prometheus) the way a user would, and assert on their exit status and output.
 */
#ifndef ACM_TESTS_DEPLOY_UTIL_H
#define ACM_TESTS_DEPLOY_UTIL_H

/* Runs `bash -c CMD` (printf-style), stdout and stderr together into *out (malloc'd, NUL-terminated; may be NULL to
 * drop it). Returns the exit status, 128+signal, or -1 when it could not run. */
int dt_sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* 1 when the command is on PATH. */
int dt_have(const char *cmd);
/* A loopback TCP port that was free a moment ago (bound to port 0, then closed). */
int dt_free_port(void);
/* The build folder the tests run against: $ACM_BUILD, default build. */
const char *dt_build(void);

#endif
