/*
 * sla.h — the compute-budget part of a request's service-level terms (docs/DESIGN.md §5), from HTTP headers and OIP
 * parameters to one budget range. Pure functions; errors are ACM_SLA_EINVAL with a message naming the field.
 *
 *   X-Compute-Budget: 0.4       ceiling on beta, the fraction of learner compute; a decimal in (0, 1]
 *   X-Compute-Budget-Min: 0.2   floor (default: the model's beta_min)
 *   OIP parameters "compute_budget", "compute_budget_min": the same, as JSON numbers. A header wins over a parameter.
 * Values outside (0, 1], or not plain decimal numbers, are refused. A value below the model's beta_min is raised to
 * beta_min and the raise is reported (`raised`). A floor above the ceiling is refused.
 * Deadlines and priorities (X-Deadline-Ms, Priority) are parsed by part 2 of the server work.
 */
#ifndef ACM_PROTO_SLA_H
#define ACM_PROTO_SLA_H

#include <stddef.h>

enum { ACM_SLA_EINVAL = -1 };

typedef enum { ACM_BUDGET_DEFAULT = 0, ACM_BUDGET_HEADER, ACM_BUDGET_PARAMETER } acm_budget_source;

typedef struct {
    acm_budget_source source; /* where the ceiling came from; DEFAULT: the request set none */
    double requested;         /* the ceiling as asked (before raising); 0 when source is DEFAULT */
    double max, min;          /* the range applied: beta_min <= min <= max <= 1 (max unset when DEFAULT) */
    int raised;               /* 1 if the ceiling or floor was raised to beta_min */
} acm_sla_budget;

const char *acm_budget_source_name(acm_budget_source s); /* "default", "header", "parameter" */

/* Parses a budget value: optional spaces, a decimal number (digits, '.', exponent), optional spaces; must lie in (0, 1].
 * `what` names the field in the message. */
int acm_sla_parse_budget(const char *s, double *out, const char *what, char *err, size_t errlen);

/* Resolves the range from the headers (NULL when absent) and OIP parameters (NULL when absent). */
int acm_sla_resolve(acm_sla_budget *out, const char *hdr_max, const char *hdr_min, const double *param_max,
                    const double *param_min, double beta_min, char *err, size_t errlen);

#endif
