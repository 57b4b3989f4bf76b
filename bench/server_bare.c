/*
 * server_bare.c — the reference for acmd's /v2/health/live rate (bench/server_bench.sh): a bare libmicrohttpd server
 * with acmd's flags (MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO, external polling, same backlog and
 * limits) whose handler answers every GET with the same 14-byte JSON, polled by a plain epoll_wait loop on MHD's epoll
 * fd instead of acmd's libuv loop. Like acmd it answers in the handler's second call (libmicrohttpd closes the
 * connection when a GET is answered in the first). Usage: server_bare PORT_FILE  (listens on 127.0.0.1, an
 * ephemeral port; SIGTERM stops it).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include <microhttpd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig, stop = 1; }

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *size, void **con_cls) {
    static const char body[] = "{\"live\":true}";
    static int first_call; /* its address marks a request whose first call has been seen */
    if (!*con_cls) { /* answered in the second call, as acmd does, so that the connection stays alive */
        *con_cls = &first_call;
        return MHD_YES;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: server_bare PORT_FILE\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO, 0, NULL, NULL,
                                            handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                                            MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                                            MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u, MHD_OPTION_END);
    if (!d) return 1;
    FILE *f = fopen(argv[1], "w");
    if (!f) return 1;
    fprintf(f, "%u\n", MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    fclose(f);
    int mfd = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, mfd, &ev);
    while (!stop) {
        MHD_UNSIGNED_LONG_LONG to;
        int ms = MHD_get_timeout(d, &to) == MHD_YES ? (int)(to > 1000 ? 1000 : to) : 1000;
        epoll_wait(ep, &ev, 1, ms);
        MHD_run(d);
    }
    MHD_stop_daemon(d);
    return 0;
}
