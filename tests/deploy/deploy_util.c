/*
 * deploy_util.c — see deploy_util.h.
 */
#include "deploy_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

int dt_sh(char **out, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *cmd = NULL;
    int n = vasprintf(&cmd, fmt, ap);
    va_end(ap);
    if (n < 0) return -1;
    /* the command travels in the environment: its text needs no quoting */
    setenv("DT_CMD", cmd, 1);
    free(cmd);
    FILE *p = popen("bash -c 'eval \"$DT_CMD\"' 2>&1", "r");
    unsetenv("DT_CMD");
    if (!p) return -1;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    if (!buf) {
        pclose(p);
        return -1;
    }
    size_t got;
    while ((got = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb, cap *= 2;
        }
    }
    buf[len] = 0;
    int st = pclose(p);
    if (out) *out = buf;
    else free(buf);
    if (st < 0) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int dt_have(const char *cmd) { return dt_sh(NULL, "command -v %s >/dev/null", cmd) == 0; }

int dt_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

const char *dt_build(void) {
    const char *b = getenv("ACM_BUILD");
    return b && *b ? b : "build";
}
