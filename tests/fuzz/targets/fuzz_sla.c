/*
 * fuzz_sla.c — the SLA headers: the input is split at newlines into X-Compute-Budget, X-Compute-Budget-Min,
 * X-Deadline-Ms and Priority values (a missing line: header absent). Invariants: accepted values are in range; the
 * resolved budget range is beta_min <= min <= max <= 1; urgency in [min_urgency, 7].
 */
#include <string.h>

#include "fuzz.h"
#include "sla.h"

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    char buf[1024], *field[4] = {NULL, NULL, NULL, NULL};
    if (size >= sizeof buf) size = sizeof buf - 1;
    memcpy(buf, data, size);
    buf[size] = 0;
    if (strlen(buf) != size) return 0; /* header values have no NUL */
    char *p = buf;
    for (int i = 0; i < 4 && p; i++) {
        field[i] = p;
        p = strchr(p, '\n');
        if (p) *p++ = 0;
    }
    char err[256];
    double v;
    int u, inc;
    if (field[0] && acm_sla_parse_budget(field[0], &v, "X-Compute-Budget", err, sizeof err) == 0) FUZZ_CHECK(v > 0 && v <= 1);
    if (field[2] && acm_sla_parse_deadline(field[2], &v, "X-Deadline-Ms", err, sizeof err) == 0)
        FUZZ_CHECK(v > 0 && v <= ACM_DEADLINE_MAX_MS);
    if (field[3] && acm_sla_parse_priority(field[3], &u, &inc, err, sizeof err) == 0)
        FUZZ_CHECK(u >= 0 && u <= ACM_URGENCY_MAX && (inc == 0 || inc == 1));
    acm_sla_budget b;
    if (acm_sla_resolve(&b, field[0], field[1], NULL, NULL, 0.25, err, sizeof err) == 0)
        FUZZ_CHECK(b.min >= 0.25 && b.min <= b.max && b.max <= 1);
    acm_sla_sched s;
    const double pd = size, pp = data[0];
    if (acm_sla_resolve_sched(&s, field[2], field[3], &pd, &pp, 2, err, sizeof err) == 0)
        FUZZ_CHECK(s.urgency >= 2 && s.urgency <= ACM_URGENCY_MAX && s.deadline_ms > 0);
    FUZZ_CHECK(strlen(err) < sizeof err);
    return 0;
}
