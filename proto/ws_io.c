/*
 * ws_io.c — libwslay's socket callbacks and the handshake's accept key, for both ends (ws_io.h).
 */
#include "ws_io.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <nettle/base64.h>
#include <nettle/sha1.h>

ssize_t acm_ws_io_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user) {
    acm_ws_io *io = user;
    (void)flags;
    if (io->n_extra) {
        const size_t k = len < io->n_extra ? len : io->n_extra;
        memcpy(buf, io->extra, k);
        io->extra += k, io->n_extra -= k;
        return (ssize_t)k;
    }
    ssize_t r;
    do r = recv(io->fd, buf, len, 0);
    while (r < 0 && errno == EINTR);
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
    else if (r <= 0) wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
    return r > 0 ? r : -1;
}

ssize_t acm_ws_io_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user) {
    acm_ws_io *io = user;
    (void)flags;
    ssize_t r;
    do r = send(io->fd, data, len, MSG_NOSIGNAL);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        wslay_event_set_error(ctx, errno == EAGAIN || errno == EWOULDBLOCK ? WSLAY_ERR_WOULDBLOCK : WSLAY_ERR_CALLBACK_FAILURE);
    return r;
}

void acm_ws_accept(char out[ACM_WS_ACCEPT_LEN], const char *key) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    struct sha1_ctx h;
    uint8_t dig[SHA1_DIGEST_SIZE];
    sha1_init(&h);
    sha1_update(&h, strlen(key), (const uint8_t *)key);
    sha1_update(&h, sizeof guid - 1, (const uint8_t *)guid);
    sha1_digest(&h, sizeof dig, dig);
    base64_encode_raw(out, sizeof dig, dig); /* 28 characters for 20 bytes */
    out[ACM_WS_ACCEPT_LEN - 1] = 0;
}
