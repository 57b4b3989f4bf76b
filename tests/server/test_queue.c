/*
 * test_queue.c — server/queue.c's order (acmd_queue_before): urgency first (improved by one level per --aging-ms
 * waited), then the earlier deadline, then arrival. Dispatch itself is tested end to end in test_sla.c.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "server/acmd.h"

static acmd_req req(int urgency, uint64_t deadline, uint64_t seq, uint64_t queued) {
    acmd_req r;
    memset(&r, 0, sizeof r);
    r.state = ACMD_REQ_QUEUED;
    r.sla.sched.urgency = urgency, r.sla.t_deadline = deadline, r.sla.seq = seq;
    r.t.queued = queued;
    return r;
}

#define MS 1000000ull

Test(queue, urgency_then_deadline_then_arrival) {
    const uint64_t now = 1000 * MS;
    acmd_req u1 = req(1, 900 * MS, 5, now), u3 = req(3, 100 * MS, 1, now);
    cr_expect(acmd_queue_before(0, &u1, &u3, now), "more urgent first, whatever the deadline");
    cr_expect(!acmd_queue_before(0, &u3, &u1, now));
    acmd_req early = req(3, 100 * MS, 9, now), late = req(3, 200 * MS, 2, now);
    cr_expect(acmd_queue_before(0, &early, &late, now), "same urgency: the earlier deadline");
    acmd_req first = req(3, 100 * MS, 2, now), second = req(3, 100 * MS, 3, now);
    cr_expect(acmd_queue_before(0, &first, &second, now), "all equal: arrival");
    cr_expect(!acmd_queue_before(0, &first, &first, now), "a strict order");
}

Test(queue, aging_raises_a_waiting_request_one_level_per_period) {
    const uint64_t now = 1000 * MS;
    acmd_req old = req(5, 900 * MS, 1, now - 250 * MS), fresh = req(3, 100 * MS, 2, now);
    /* 250 ms at 100 ms per level: 5 - 2 = 3, the same level; the fresh one's earlier deadline wins */
    cr_expect(acmd_queue_before(100, &fresh, &old, now));
    /* 50 ms later: 5 - 3 = 2 < 3 */
    cr_expect(acmd_queue_before(100, &old, &fresh, now + 50 * MS));
    cr_expect(!acmd_queue_before(0, &old, &fresh, now + 50 * MS), "no aging: urgency 5 stays behind 3");
    old.state = ACMD_REQ_RECEIVING; /* not queued yet (admission's view): no aging */
    cr_expect(acmd_queue_before(100, &fresh, &old, now + 50 * MS));
}
