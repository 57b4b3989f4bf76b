/*
 * ws_io.h — what acmd's streams (server/ws.c) and the client (clients/ws.c) share of a WebSocket (RFC 6455) over a
 * socket: libwslay's recv and send callbacks, and the handshake's accept key.
 *
 * The callbacks read and write a non-blocking socket: recv(2)/send(2) retried on EINTR; EAGAIN becomes
 * WSLAY_ERR_WOULDBLOCK (libwslay tries again when the socket is ready), any other error and the peer's end of file
 * WSLAY_ERR_CALLBACK_FAILURE. Bytes that were read with the handshake, past its end (`extra`, not owned), are handed
 * to libwslay before the socket is read. The user data of the libwslay context must begin with an acm_ws_io (its
 * first member), whatever else it holds: the callbacks see only that part. No locks: one thread per context.
 */
#ifndef ACM_PROTO_WS_IO_H
#define ACM_PROTO_WS_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <wslay/wslay.h>

typedef struct {
    int fd;               /* the socket, non-blocking */
    const uint8_t *extra; /* bytes read with the handshake, still to be framed (not owned) */
    size_t n_extra;
} acm_ws_io;

ssize_t acm_ws_io_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user);
ssize_t acm_ws_io_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user);

/* Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key + the protocol's GUID)), 28 characters and a NUL. */
enum { ACM_WS_ACCEPT_LEN = 29 };
void acm_ws_accept(char out[ACM_WS_ACCEPT_LEN], const char *key);

#endif
