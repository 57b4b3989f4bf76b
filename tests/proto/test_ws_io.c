/*
 * test_ws_io.c — proto/ws_io.c: the accept key of RFC 6455's own example (§1.3), and the callbacks over a socketpair:
 * the handshake's extra bytes come first, then the socket's; an empty non-blocking socket is WSLAY_ERR_WOULDBLOCK,
 * the peer's end of file WSLAY_ERR_CALLBACK_FAILURE; a frame sent by one libwslay context is read by another.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/ws_io.h"

Test(ws_io, accept_key_of_the_rfc) {
    char a[ACM_WS_ACCEPT_LEN];
    acm_ws_accept(a, "dGhlIHNhbXBsZSBub25jZQ==");
    cr_expect_str_eq(a, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

typedef struct {
    acm_ws_io io; /* first, as ws_io.h asks */
    char got[64];
    int n_msgs;
} peer;

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a, void *user) {
    peer *p = user;
    (void)ctx;
    if (a->opcode == WSLAY_TEXT_FRAME && a->msg_length < sizeof p->got) memcpy(p->got, a->msg, a->msg_length);
    p->n_msgs++;
}

static int genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user) {
    (void)ctx, (void)user;
    memset(buf, 0x5a, len);
    return 0;
}

Test(ws_io, extra_bytes_first_then_the_socket) {
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK);
    /* a client context writes two text frames on sv[0]; the first frame's bytes are taken as the handshake's extra */
    peer c = {.io = {.fd = sv[0]}}, s = {.io = {.fd = sv[1]}};
    wslay_event_context_ptr cc, sc;
    struct wslay_event_callbacks ccb = {acm_ws_io_recv, acm_ws_io_send, genmask, NULL, NULL, NULL, on_msg};
    struct wslay_event_callbacks scb = {acm_ws_io_recv, acm_ws_io_send, NULL, NULL, NULL, NULL, on_msg};
    cr_assert_eq(wslay_event_context_client_init(&cc, &ccb, &c), 0);
    cr_assert_eq(wslay_event_context_server_init(&sc, &scb, &s), 0);
    struct wslay_event_msg m1 = {WSLAY_TEXT_FRAME, (const uint8_t *)"hello", 5};
    cr_assert_eq(wslay_event_queue_msg(cc, &m1), 0);
    cr_assert_eq(wslay_event_send(cc), 0);
    uint8_t first[64];
    const ssize_t n1 = recv(sv[1], first, sizeof first, 0); /* as MHD would have read it with the handshake */
    cr_assert_eq(n1, 2 + 4 + 5, "a masked 5-byte text frame");
    s.io.extra = first, s.io.n_extra = (size_t)n1;
    struct wslay_event_msg m2 = {WSLAY_TEXT_FRAME, (const uint8_t *)"world", 5};
    cr_assert_eq(wslay_event_queue_msg(cc, &m2), 0);
    cr_assert_eq(wslay_event_send(cc), 0);
    cr_assert_eq(wslay_event_recv(sc), 0);
    cr_expect_eq(s.n_msgs, 2, "the extra bytes' frame, then the socket's");
    cr_expect_str_eq(s.got, "world");
    cr_expect_eq(s.io.n_extra, 0);
    /* nothing to read: would block (recv returns -1, the context's error says so, and wslay_event_recv succeeds) */
    uint8_t b[8];
    cr_expect_eq(acm_ws_io_recv(sc, b, sizeof b, 0, &s), -1);
    cr_expect_eq(wslay_event_recv(sc), 0);
    /* the peer gone: a failure */
    close(sv[0]);
    cr_expect_neq(wslay_event_recv(sc), 0);
    wslay_event_context_free(cc), wslay_event_context_free(sc);
    close(sv[1]);
}
