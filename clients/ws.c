/*
 * ws.c — a WebSocket client (RFC 6455) for `acm transcribe --stream`: the handshake by hand over a plain TCP socket
 * (Debian's libcurl has no WebSocket), framing by libwslay (masking with random keys, fragments, ping/pong, the close
 * handshake). Plain ws:// only (http:// server URLs): acmd serves its streams without TLS. One thread; the socket is
 * non-blocking and acmc_ws_pump waits on it with poll(2).
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nettle/base64.h>
#include <wslay/wslay.h>

#include "acmc.h"
#include "ws_io.h"

struct acmc_ws {
    acm_ws_io io; /* first: libwslay's callbacks (proto/ws_io.h) read the socket through it */
    wslay_event_context_ptr ctx;
    uint8_t extra[4096]; /* frame bytes that came with the handshake's answer (io.extra) */
    acmc_ws_msg_fn on_msg;
    void *ud;
    int close_code; /* the server's close (0: none yet) */
};

static int ws__genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx, (void)user;
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void ws__on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user) {
    acmc_ws *w = user;
    (void)ctx;
    if (a->opcode == WSLAY_TEXT_FRAME && w->on_msg) w->on_msg(w->ud, (const char *)a->msg, a->msg_length);
    if (a->opcode == WSLAY_CONNECTION_CLOSE) w->close_code = a->status_code ? a->status_code : 1005;
}

/* host and port of an http:// server URL */
static int ws__split(const char *server, char *host, size_t hn, char *port, size_t pn, char *err, size_t errlen) {
    if (strncasecmp(server, "http://", 7) != 0)
        return snprintf(err, errlen, "streams need an http:// server (acmd serves WebSockets without TLS)"), -1;
    const char *h = server + 7, *e = h + strcspn(h, "/");
    const char *c = memchr(h, ':', (size_t)(e - h));
    const size_t hl = (size_t)((c ? c : e) - h);
    if (!hl || hl >= hn) return snprintf(err, errlen, "%s: no host", server), -1;
    memcpy(host, h, hl), host[hl] = 0;
    snprintf(port, pn, "%.*s", c ? (int)(e - c - 1) : 2, c ? c + 1 : "80");
    return 0;
}

acmc_ws *acmc_ws_open(const char *server, const char *path, const char *auth_header, double timeout_s, char *err,
                      size_t errlen) {
    char host[256], port[16];
    if (ws__split(server, host, sizeof host, port, sizeof port, err, errlen)) return NULL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(host, port, &hints, &ai) != 0 || !ai)
        return snprintf(err, errlen, "cannot reach %s: unknown host", server), NULL;
    int fd = -1;
    for (struct addrinfo *p = ai; p && fd < 0; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, 0);
        if (fd >= 0 && connect(fd, p->ai_addr, p->ai_addrlen) != 0) close(fd), fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) return snprintf(err, errlen, "cannot reach %s: %s", server, strerror(errno)), NULL;
    uint8_t nonce[16];
    char key[BASE64_ENCODE_RAW_LENGTH(16) + 1], req[4096];
    if (getrandom(nonce, sizeof nonce, 0) != (ssize_t)sizeof nonce) memset(nonce, 0x5a, sizeof nonce);
    base64_encode_raw(key, sizeof nonce, nonce);
    key[sizeof key - 1] = 0;
    const int n = snprintf(req, sizeof req,
                           "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s%s\r\n",
                           path, host, port, key, auth_header ? auth_header : "", auth_header ? "\r\n" : "");
    struct timeval tv = {(time_t)timeout_s, (suseconds_t)((timeout_s - (double)(time_t)timeout_s) * 1e6)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (n <= 0 || (size_t)n >= sizeof req || send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return snprintf(err, errlen, "cannot send the handshake to %s", server), NULL;
    }
    char head[8192];
    size_t got = 0;
    char *end = NULL;
    while (!end && got < sizeof head - 1) {
        ssize_t k = recv(fd, head + got, sizeof head - 1 - got, 0);
        if (k <= 0) break;
        got += (size_t)k, head[got] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    if (!end) {
        close(fd);
        return snprintf(err, errlen, "%s closed the connection during the handshake", server), NULL;
    }
    const long status = strtol(head + 9, NULL, 10);
    if (status != 101) { /* the server's {"error": ...} follows its headers */
        const char *body = strstr(end + 4, "{\"error\"");
        snprintf(err, errlen, "the server answered %ld %s%s%.400s", status, acmc_status_reason(status), body ? ": " : "",
                 body ? body : "");
        close(fd);
        return NULL;
    }
    /* Sec-WebSocket-Accept must be base64(SHA-1(key + GUID)) */
    char want[ACM_WS_ACCEPT_LEN];
    acm_ws_accept(want, key);
    const char *acc = strcasestr(head, "\r\nSec-WebSocket-Accept:");
    if (acc) acc += 23;
    while (acc && *acc == ' ') acc++;
    if (!acc || strncmp(acc, want, strlen(want)) != 0) {
        close(fd);
        return snprintf(err, errlen, "%s: the handshake's Sec-WebSocket-Accept is wrong", server), NULL;
    }
    acmc_ws *w = calloc(1, sizeof *w);
    if (!w) return close(fd), snprintf(err, errlen, "out of memory"), NULL;
    w->io.fd = fd;
    const size_t hl = (size_t)(end + 4 - head);
    w->io.n_extra = got - hl < sizeof w->extra ? got - hl : sizeof w->extra;
    memcpy(w->extra, head + hl, w->io.n_extra);
    w->io.extra = w->extra;
    struct wslay_event_callbacks cb = {acm_ws_io_recv, acm_ws_io_send, ws__genmask, NULL, NULL, NULL, ws__on_msg};
    if (wslay_event_context_client_init(&w->ctx, &cb, w) != 0) {
        close(fd), free(w);
        return snprintf(err, errlen, "out of memory"), NULL;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return w;
}

int acmc_ws_send(acmc_ws *w, int text, const void *p, size_t n) {
    struct wslay_event_msg m = {text ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, p, n};
    return wslay_event_queue_msg(w->ctx, &m) == 0 && wslay_event_send(w->ctx) == 0 ? 0 : -1;
}

int acmc_ws_pump(acmc_ws *w, int timeout_ms, acmc_ws_msg_fn on_msg, void *ud, int *close_code) {
    w->on_msg = on_msg, w->ud = ud;
    if (w->io.n_extra && wslay_event_recv(w->ctx) != 0) return -1;
    const int want = (wslay_event_want_read(w->ctx) ? POLLIN : 0) | (wslay_event_want_write(w->ctx) ? POLLOUT : 0);
    if (!want) return *close_code = w->close_code ? w->close_code : 1006, 1;
    struct pollfd p = {w->io.fd, (short)want, 0};
    const int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR) return -1;
    if (r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) && wslay_event_recv(w->ctx) != 0)
        return *close_code = w->close_code ? w->close_code : 1006, 1;
    if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) != 0) return -1;
    if (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx))
        return *close_code = w->close_code ? w->close_code : 1006, 1;
    return 0;
}

void acmc_ws_free(acmc_ws *w) {
    if (!w) return;
    wslay_event_context_free(w->ctx);
    close(w->io.fd);
    free(w);
}
