/*
 * test_respond.c — server/respond.c's error table: each code's HTTP status and rejection reason, the mapping of
 * proto/ and engine/ codes into it, and acmd_req_fail (the reason only while the request is still arriving).
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/acmd.h"
#include "audio.h"
#include "image.h"
#include "oip.h"

Test(respond, every_code_has_an_http_error_status) {
    for (int e = 0; e < ACMD_E_COUNT; e++) {
        const int st = acmd_err_status((acmd_err)e);
        cr_expect(st >= 400 && st < 600, "code %d: status %d", e, st);
    }
    cr_expect_eq(acmd_err_status(ACMD_E_QUEUE_FULL), 429);
    cr_expect_str_eq(acmd_err_reason(ACMD_E_QUEUE_FULL), "queue_full");
    cr_expect_eq(acmd_err_status(ACMD_E_DEADLINE), 504);
    cr_expect_str_eq(acmd_err_reason(ACMD_E_DEADLINE), "deadline");
    cr_expect_eq(acmd_err_status(ACMD_E_DEADLINE_QUEUE), 504);
    cr_expect_null(acmd_err_reason(ACMD_E_DEADLINE_QUEUE), "lost in the queue: not a refusal");
    cr_expect_eq(acmd_err_status(ACMD_E_IMAGE_TOO_LARGE), 400);
    cr_expect_str_eq(acmd_err_reason(ACMD_E_IMAGE_TOO_LARGE), "too_large");
}

Test(respond, library_codes_map_to_one_space) {
    cr_expect_eq(acmd_err_of(ACMD_FROM_IMAGE, ACM_IMAGE_ENOMEM), ACMD_E_INTERNAL);
    cr_expect_eq(acmd_err_of(ACMD_FROM_IMAGE, ACM_IMAGE_EDECODE), ACMD_E_BAD_REQUEST);
    cr_expect_eq(acmd_err_of(ACMD_FROM_OIP, ACM_OIP_ENOMEM), ACMD_E_INTERNAL);
    cr_expect_eq(acmd_err_of(ACMD_FROM_OIP, ACM_OIP_EJSON), ACMD_E_BAD_REQUEST);
    cr_expect_eq(acmd_err_of(ACMD_FROM_AUDIO, ACM_AUDIO_ENOMEM), ACMD_E_INTERNAL);
    cr_expect_eq(acmd_err_of(ACMD_FROM_AUDIO, ACM_AUDIO_ETRUNC), ACMD_E_BAD_REQUEST);
    cr_expect_eq(acmd_err_of(ACMD_FROM_ENGINE, ACM_EINVAL), ACMD_E_INTERNAL);
}

Test(respond, fail_fills_the_answer_and_the_reason_only_before_queueing) {
    acmd_req *r = acmd_req_new();
    cr_assert_not_null(r);
    r->state = ACMD_REQ_RECEIVING;
    acmd_req_fail(r, ACMD_E_QUEUE_FULL, "the queue of model %s is full", "m");
    cr_expect_eq(r->resp.status, 429);
    cr_expect_str_eq(r->resp.reason, "queue_full");
    cr_expect_str_eq(r->resp.type, "application/json");
    cr_expect(r->resp.len > 0 && strstr(r->resp.body, "\"error\"") && strstr(r->resp.body, "is full"), "%.*s",
              (int)r->resp.len, r->resp.body);
    acmd_req *q = acmd_req_new();
    q->state = ACMD_REQ_RUNNING;
    acmd_req_fail(q, ACMD_E_BAD_REQUEST, "input 'image' must be UINT8");
    cr_expect_eq(q->resp.status, 400);
    cr_expect_null(q->resp.reason, "decoded on a worker: not a refusal before queueing");
    acmd_arena_free(&r->arena), free(r);
    acmd_arena_free(&q->arena), free(q);
}
