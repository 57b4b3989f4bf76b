/*
 * sla.h — the compute-budget part of a request's service-level terms (docs/DESIGN.md §5), from HTTP headers and OIP
 * parameters to one budget range. Pure functions; errors are ACM_SLA_EINVAL with a message naming the field.
 *
 *   X-Compute-Budget: 0.4       ceiling on beta, the fraction of learner compute; a decimal in (0, 1]
 *   X-Compute-Budget-Min: 0.2   floor (default: the model's beta_min)
 *   OIP parameters "compute_budget", "compute_budget_min": the same, as JSON numbers. A header wins over a parameter.
 * Values outside (0, 1], or not plain decimal numbers, are refused. A value below the model's beta_min is raised to
 * beta_min and the raise is reported (`raised`). A floor above the ceiling is refused.
 *
 * Scheduling terms (acm_sla_sched):
 *   X-Deadline-Ms: 30           answer within 30 ms of the request's arrival; a decimal number in (0, 3600000]
 *   Priority: u=1, i            RFC 9218: a Structured Fields dictionary (RFC 8941); `u` the urgency 0..7 (0 most
 *                               urgent, default 3), `i` incremental (read and ignored: responses are not streamed);
 *                               other keys are ignored as the RFC asks, but must be well-formed. Stricter than the
 *                               RFC: a malformed field or `u` outside 0..7 is refused (400) rather than silently
 *                               ignored, so that a client learns of its mistake.
 *   OIP parameters "deadline_ms" (a number as above) and "priority" (Triton's meaning: an integer >= 0, 0 the default,
 *   1 the highest; p >= 1 maps to urgency min(p - 1, 7), 0 to the default urgency 3). A header wins.
 * The urgency a client may claim is clamped to min_urgency (acmd's --min-client-urgency); the clamp is reported.
 */
#ifndef ACM_PROTO_SLA_H
#define ACM_PROTO_SLA_H

#include <stddef.h>

enum { ACM_SLA_EINVAL = -1 };

/* DEADLINE: no ceiling was asked for, a deadline chose the budget (set by the server at dispatch). */
typedef enum { ACM_BUDGET_DEFAULT = 0, ACM_BUDGET_HEADER, ACM_BUDGET_PARAMETER, ACM_BUDGET_DEADLINE } acm_budget_source;

typedef struct {
    acm_budget_source source; /* where the ceiling came from; DEFAULT: the request set none */
    double requested;         /* the ceiling as asked (before raising); 0 when source is DEFAULT */
    double max, min;          /* the range applied: beta_min <= min <= max <= 1 (max unset when DEFAULT) */
    int raised;               /* 1 if the ceiling or floor was raised to beta_min */
    int floor_set;            /* 1 if the request set a floor (header or parameter) */
} acm_sla_budget;

const char *acm_budget_source_name(acm_budget_source s); /* "default", "header", "parameter", "deadline" */

/* Parses a budget value: optional spaces, a decimal number (digits, '.', exponent), optional spaces; must lie in (0, 1].
 * `what` names the field in the message. */
int acm_sla_parse_budget(const char *s, double *out, const char *what, char *err, size_t errlen);

/* Resolves the range from the headers (NULL when absent) and OIP parameters (NULL when absent). */
int acm_sla_resolve(acm_sla_budget *out, const char *hdr_max, const char *hdr_min, const double *param_max,
                    const double *param_min, double beta_min, char *err, size_t errlen);

#define ACM_URGENCY_DEFAULT 3
#define ACM_URGENCY_MAX 7
#define ACM_DEADLINE_MAX_MS 3600000.0

typedef struct {
    acm_budget_source deadline_source; /* HEADER, PARAMETER, or DEFAULT: the request set no deadline */
    double deadline_ms;                /* from arrival; 0 when the request set none */
    acm_budget_source urgency_source;  /* HEADER, PARAMETER or DEFAULT */
    int urgency;                       /* 0..7 after the clamp */
    int urgency_requested;             /* as asked (before the clamp) */
    int clamped;                       /* 1 if the urgency was raised to min_urgency */
    int incremental;                   /* RFC 9218 `i` (not used by the server) */
} acm_sla_sched;

/* X-Deadline-Ms: a plain decimal in (0, ACM_DEADLINE_MAX_MS]. */
int acm_sla_parse_deadline(const char *s, double *ms, const char *what, char *err, size_t errlen);
/* X-Request-Start, the proxies' convention for when a request started upstream (nginx `t=${msec}`, Heroku's
 * milliseconds): an optional "t=", then a plain decimal time since the Unix epoch whose unit follows from its size, as
 * the monitoring agents read it — below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
 * nanoseconds. Returns 0 and seconds since the epoch, or ACM_SLA_EINVAL. */
int acm_sla_parse_request_start(const char *s, double *epoch_s, char *err, size_t errlen);
/* Priority (RFC 9218): urgency (3 when the field has no `u`) and incremental (0 when no `i`). */
int acm_sla_parse_priority(const char *s, int *urgency, int *incremental, char *err, size_t errlen);
/* Triton's priority (0 default, 1 highest, any integer >= 0) to an urgency 0..7. */
int acm_sla_urgency_from_triton(double priority, int *urgency, char *err, size_t errlen);
/* Resolves the scheduling terms from the headers (NULL when absent) and OIP parameters (NULL when absent). */
int acm_sla_resolve_sched(acm_sla_sched *out, const char *hdr_deadline, const char *hdr_priority,
                          const double *param_deadline_ms, const double *param_priority, int min_urgency, char *err,
                          size_t errlen);

/* The SLA headers of a request, each parsed once, where they arrive (before the body is read), and kept as values:
 * admission resolves these with the OIP parameters without parsing the strings again. */
typedef struct {
    int has_budget, has_budget_min, has_deadline, has_priority;
    double budget, budget_min; /* X-Compute-Budget, X-Compute-Budget-Min: in (0, 1] */
    double deadline_ms;        /* X-Deadline-Ms */
    int urgency, incremental;  /* Priority (RFC 9218) */
} acm_sla_headers;

/* Parses the four headers (NULL when absent); the first bad one fails with its message. */
int acm_sla_parse_headers(acm_sla_headers *out, const char *budget, const char *budget_min, const char *deadline,
                          const char *priority, char *err, size_t errlen);
/* acm_sla_resolve and acm_sla_resolve_sched from parsed headers (h NULL: none). */
int acm_sla_resolve_budget(acm_sla_budget *out, const acm_sla_headers *h, const double *param_max,
                           const double *param_min, double beta_min, char *err, size_t errlen);
int acm_sla_resolve_terms(acm_sla_sched *out, const acm_sla_headers *h, const double *param_deadline_ms,
                          const double *param_priority, int min_urgency, char *err, size_t errlen);

#endif
