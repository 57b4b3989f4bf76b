/*
 * peer.c — whether the client of a queued request is still there (I/O thread, just before dispatch takes it).
 *
 * A client that closed its socket and one that only half-closed it (shutdown(SHUT_WR) once its request is sent, which
 * HTTP allows) look alike from here: both sent a FIN, and a FIN is not a disconnect. They differ when something is
 * written to them: a closed socket answers with a reset. So on the first FIN seen, an interim "100 Continue" is written
 * as a probe (RFC 9110 §15.2: an HTTP/1.1 client must accept a 1xx it did not ask for; bytes of an earlier response
 * still unacknowledged serve as the probe instead) and the request is held for about two round trips (TCP_INFO's
 * estimate): a reset by then and it is gone; none and it runs, its answer going out after the client's FIN. HTTP/1.0
 * forbids 1xx: a FIN there is a half-close. A reset or a socket error seen at any time: gone.
 */
#include <errno.h>
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>

#include "acmd.h"

#define PEER__PROBE_MIN_NS 1000000ull   /* hold a probed request at least 1 ms (loopback RTTs are microseconds) */
#define PEER__PROBE_MAX_NS 500000000ull /* and at most 0.5 s (a half-closed client waits that much at worst) */

/* 1 reset or error, 0 FIN only, -1 open. */
static int peer__reset(int fd) {
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) < 0) return -1;
    return (p.revents & (POLLERR | POLLHUP | POLLNVAL)) ? 1 : (p.revents & POLLRDHUP) ? 0 : -1;
}

acmd_peer acmd_peer_state(acmd_server *s, acmd_req *r, uint64_t now) {
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return ACMD_PEER_HERE;
    const int fd = ci->connect_fd, st = peer__reset(fd);
    if (st != 0) return st > 0 ? ACMD_PEER_GONE : ACMD_PEER_HERE;
    /* over TLS a plaintext probe would break the stream: a client that sent its FIN is taken as half-closed */
    if (s->tls) return ACMD_PEER_HERE;
    if (!r->http.http11 || (r->http.probe_until && now >= r->http.probe_until)) return ACMD_PEER_HERE; /* half-closed */
    if (r->http.probe_until) return ACMD_PEER_PROBING;
    int unacked = 0;
    if (ioctl(fd, SIOCOUTQ, &unacked) || unacked == 0) {
        static const char probe[] = "HTTP/1.1 100 Continue\r\n\r\n";
        const ssize_t k = send(fd, probe, sizeof probe - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return ACMD_PEER_GONE;
        if (peer__reset(fd) > 0) return ACMD_PEER_GONE; /* on loopback the reset is often back already */
    }
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    uint64_t wait = 10 * PEER__PROBE_MIN_NS;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && tl >= offsetof(struct tcp_info, tcpi_rttvar) + 4)
        wait = (2ull * ti.tcpi_rtt + 4ull * ti.tcpi_rttvar) * 1000; /* microseconds */
    wait = wait < PEER__PROBE_MIN_NS ? PEER__PROBE_MIN_NS : wait > PEER__PROBE_MAX_NS ? PEER__PROBE_MAX_NS : wait;
    r->http.probe_until = now + wait;
    acmd_queue_wake(s, r->http.probe_until);
    return ACMD_PEER_PROBING;
}
