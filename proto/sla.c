/*
 * sla.c — X-Compute-Budget / X-Compute-Budget-Min and the OIP budget parameters (see sla.h).
 */
#include "sla.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sla__fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return ACM_SLA_EINVAL;
}

const char *acm_budget_source_name(acm_budget_source s) {
    return s == ACM_BUDGET_HEADER      ? "header"
           : s == ACM_BUDGET_PARAMETER ? "parameter"
           : s == ACM_BUDGET_DEADLINE  ? "deadline"
                                       : "default";
}

static int sla__range(double v, const char *what, char *err, size_t errlen) {
    if (!isfinite(v) || v <= 0 || v > 1) return sla__fail(err, errlen, "%s must be in (0, 1], got %g", what, v);
    return 0;
}

/* A plain decimal (digits, '.', exponent) between optional spaces; strtod would also take "inf", "nan" and hex floats.
 * Returns 0 and the value, or -1. */
static int sla__decimal(const char *s, double *out) {
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    /* a plain decimal only: strtod would also take "inf", "nan" and hex floats */
    const char *q = p;
    int digits = 0;
    while (isdigit((unsigned char)*q)) q++, digits++;
    if (*q == '.') {
        q++;
        while (isdigit((unsigned char)*q)) q++, digits++;
    }
    if (digits && (*q == 'e' || *q == 'E')) {
        q++;
        if (*q == '+' || *q == '-') q++;
        if (!isdigit((unsigned char)*q)) digits = 0;
        while (isdigit((unsigned char)*q)) q++;
    }
    const char *end = q;
    while (*q == ' ' || *q == '\t') q++;
    char tmp[64];
    size_t n = (size_t)(end - p);
    if (!digits || *q || n >= sizeof tmp) return -1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    *out = strtod(tmp, NULL);
    return 0;
}

int acm_sla_parse_budget(const char *s, double *out, const char *what, char *err, size_t errlen) {
    double v;
    if (sla__decimal(s, &v)) return sla__fail(err, errlen, "%s must be a decimal number in (0, 1], got \"%.40s\"", what, s);
    if (sla__range(v, what, err, errlen)) return ACM_SLA_EINVAL;
    *out = v;
    return 0;
}

int acm_sla_parse_request_start(const char *s, double *epoch_s, char *err, size_t errlen) {
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    if (p[0] == 't' && p[1] == '=') p += 2;
    double v;
    if (sla__decimal(p, &v) || !isfinite(v) || v <= 0)
        return sla__fail(err, errlen, "X-Request-Start must be a time since the Unix epoch (\"t=\" optional) in seconds, "
                                      "milliseconds, microseconds or nanoseconds, got \"%.40s\"", s);
    *epoch_s = v < 1e11 ? v : v < 1e14 ? v * 1e-3 : v < 1e17 ? v * 1e-6 : v * 1e-9;
    return 0;
}

int acm_sla_parse_headers(acm_sla_headers *out, const char *budget, const char *budget_min, const char *deadline,
                          const char *priority, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->urgency = ACM_URGENCY_DEFAULT;
    if (budget) {
        if (acm_sla_parse_budget(budget, &out->budget, "X-Compute-Budget", err, errlen)) return ACM_SLA_EINVAL;
        out->has_budget = 1;
    }
    if (budget_min) {
        if (acm_sla_parse_budget(budget_min, &out->budget_min, "X-Compute-Budget-Min", err, errlen)) return ACM_SLA_EINVAL;
        out->has_budget_min = 1;
    }
    if (deadline) {
        if (acm_sla_parse_deadline(deadline, &out->deadline_ms, "X-Deadline-Ms", err, errlen)) return ACM_SLA_EINVAL;
        out->has_deadline = 1;
    }
    if (priority) {
        if (acm_sla_parse_priority(priority, &out->urgency, &out->incremental, err, errlen)) return ACM_SLA_EINVAL;
        out->has_priority = 1;
    }
    return 0;
}

int acm_sla_resolve_budget(acm_sla_budget *out, const acm_sla_headers *h, const double *param_max,
                           const double *param_min, double beta_min, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    double mx = 1, mn = beta_min;
    int has_max = 0, has_min = 0;
    if (h && h->has_budget) {
        mx = h->budget, has_max = 1, out->source = ACM_BUDGET_HEADER;
    } else if (param_max) {
        if (sla__range(*param_max, "parameter compute_budget", err, errlen)) return ACM_SLA_EINVAL;
        mx = *param_max, has_max = 1, out->source = ACM_BUDGET_PARAMETER;
    }
    if (h && h->has_budget_min) {
        mn = h->budget_min, has_min = 1;
    } else if (param_min) {
        if (sla__range(*param_min, "parameter compute_budget_min", err, errlen)) return ACM_SLA_EINVAL;
        mn = *param_min, has_min = 1;
    }
    if (has_max && has_min && mn > mx)
        return sla__fail(err, errlen, "the budget floor %g is above the ceiling %g", mn, mx);
    out->requested = has_max ? mx : 0;
    if (has_max && mx < beta_min) mx = beta_min, out->raised = 1;
    if (mn < beta_min) {
        if (has_min) out->raised = 1;
        mn = beta_min;
    }
    if (mn > mx) mn = mx;
    out->max = mx, out->min = mn, out->floor_set = has_min;
    return 0;
}

int acm_sla_resolve(acm_sla_budget *out, const char *hdr_max, const char *hdr_min, const double *param_max,
                    const double *param_min, double beta_min, char *err, size_t errlen) {
    acm_sla_headers h;
    if (acm_sla_parse_headers(&h, hdr_max, hdr_min, NULL, NULL, err, errlen)) return ACM_SLA_EINVAL;
    return acm_sla_resolve_budget(out, &h, param_max, param_min, beta_min, err, errlen);
}

/* ---- scheduling terms ------------------------------------------------------------------------------------------- */

int acm_sla_parse_deadline(const char *s, double *ms, const char *what, char *err, size_t errlen) {
    double v;
    if (sla__decimal(s, &v) || !isfinite(v) || v <= 0 || v > ACM_DEADLINE_MAX_MS)
        return sla__fail(err, errlen, "%s must be a decimal number of milliseconds in (0, %.0f], got \"%.40s\"", what,
                         ACM_DEADLINE_MAX_MS, s);
    *ms = v;
    return 0;
}

/* RFC 8941 pieces. Each takes *p at the start of the item and leaves it after it; -1 when malformed. */
typedef enum { SF__INT, SF__DEC, SF__STR, SF__TOK, SF__BIN, SF__BOOL } sf__type;

static int sf__key(const char **p, char *key, size_t n) {
    const char *q = *p;
    if (!(islower((unsigned char)*q) || *q == '*')) return -1;
    size_t k = 0;
    while (islower((unsigned char)*q) || isdigit((unsigned char)*q) || *q == '_' || *q == '-' || *q == '.' || *q == '*') {
        if (k + 1 < n) key[k++] = *q;
        q++;
    }
    key[k] = 0;
    *p = q;
    return 0;
}

static int sf__bare_item(const char **p, sf__type *type, long long *ival) {
    const char *q = *p;
    if (*q == '-' || isdigit((unsigned char)*q)) {
        int neg = *q == '-', n = 0, frac = -1;
        long long v = 0;
        if (neg) q++;
        while (isdigit((unsigned char)*q) || (*q == '.' && frac < 0)) {
            if (*q == '.') {
                if (n > 12) return -1;
                frac = 0;
            } else if (frac >= 0) {
                if (++frac > 3) return -1;
            } else {
                if (++n > 15) return -1;
                v = v * 10 + (*q - '0');
            }
            q++;
        }
        if (n == 0 || frac == 0) return -1;
        *type = frac < 0 ? SF__INT : SF__DEC;
        *ival = neg ? -v : v;
    } else if (*q == '"') {
        for (q++; *q != '"'; q++) {
            if (*q == '\\') {
                q++;
                if (*q != '"' && *q != '\\') return -1;
            } else if ((unsigned char)*q < 0x20 || (unsigned char)*q > 0x7e) {
                return -1;
            }
        }
        q++;
        *type = SF__STR;
    } else if (isalpha((unsigned char)*q) || *q == '*') {
        q++;
        while (*q && (isalnum((unsigned char)*q) || strchr("!#$%&'*+-.^_`|~:/", *q))) q++;
        *type = SF__TOK;
    } else if (*q == ':') {
        for (q++; *q != ':'; q++)
            if (!*q || !(isalnum((unsigned char)*q) || *q == '+' || *q == '/' || *q == '=')) return -1;
        q++;
        *type = SF__BIN;
    } else if (*q == '?') {
        if (q[1] != '0' && q[1] != '1') return -1;
        *ival = q[1] == '1';
        q += 2;
        *type = SF__BOOL;
    } else {
        return -1;
    }
    *p = q;
    return 0;
}

static int sf__params(const char **p) {
    const char *q = *p;
    while (*q == ';') {
        q++;
        while (*q == ' ') q++;
        char key[64];
        if (sf__key(&q, key, sizeof key)) return -1;
        if (*q == '=') {
            q++;
            sf__type t;
            long long v;
            if (sf__bare_item(&q, &t, &v)) return -1;
        }
    }
    *p = q;
    return 0;
}

int acm_sla_parse_priority(const char *s, int *urgency, int *incremental, char *err, size_t errlen) {
    int u = ACM_URGENCY_DEFAULT, inc = 0;
    const char *p = s;
    while (*p == ' ' || *p == '\t') p++;
    while (*p) {
        char key[64];
        if (sf__key(&p, key, sizeof key))
            return sla__fail(err, errlen, "Priority: a dictionary key (lower case) expected at \"%.20s\" (RFC 9218: "
                                          "e.g. \"u=1\" or \"u=5, i\")", p);
        sf__type t = SF__BOOL;
        long long v = 1;
        if (*p == '=') {
            p++;
            if (*p == '(') { /* inner list: items separated by spaces */
                p++;
                for (;;) {
                    while (*p == ' ') p++;
                    if (*p == ')') break;
                    if (sf__bare_item(&p, &t, &v) || sf__params(&p) || (*p != ' ' && *p != ')'))
                        return sla__fail(err, errlen, "Priority: malformed inner list of \"%s\"", key);
                }
                p++;
                t = SF__TOK; /* not a value for u or i */
            } else if (sf__bare_item(&p, &t, &v)) {
                return sla__fail(err, errlen, "Priority: malformed value of \"%s\" at \"%.20s\"", key, p);
            }
        }
        if (sf__params(&p)) return sla__fail(err, errlen, "Priority: malformed parameters of \"%s\"", key);
        if (strcmp(key, "u") == 0) {
            if (t != SF__INT || v < 0 || v > ACM_URGENCY_MAX)
                return sla__fail(err, errlen, "Priority: urgency u must be an integer in 0..%d, got \"%.40s\"",
                                 ACM_URGENCY_MAX, s);
            u = (int)v;
        } else if (strcmp(key, "i") == 0) {
            if (t != SF__BOOL) return sla__fail(err, errlen, "Priority: incremental i must be a boolean (i, i=?0, i=?1)");
            inc = (int)v;
        }
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        if (*p != ',') return sla__fail(err, errlen, "Priority: ',' expected between members at \"%.20s\"", p);
        p++;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) return sla__fail(err, errlen, "Priority: a trailing ',' is not allowed");
    }
    *urgency = u;
    *incremental = inc;
    return 0;
}

int acm_sla_urgency_from_triton(double priority, int *urgency, char *err, size_t errlen) {
    if (!isfinite(priority) || priority < 0 || priority != floor(priority) || priority > 1e18)
        return sla__fail(err, errlen, "parameter priority must be an integer >= 0 (Triton: 1 highest, 0 default), got %g",
                         priority);
    *urgency = priority == 0 ? ACM_URGENCY_DEFAULT : priority - 1 > ACM_URGENCY_MAX ? ACM_URGENCY_MAX : (int)priority - 1;
    return 0;
}

int acm_sla_resolve_terms(acm_sla_sched *out, const acm_sla_headers *h, const double *param_deadline_ms,
                          const double *param_priority, int min_urgency, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    out->urgency = out->urgency_requested = ACM_URGENCY_DEFAULT;
    if (h && h->has_deadline) {
        out->deadline_ms = h->deadline_ms;
        out->deadline_source = ACM_BUDGET_HEADER;
    } else if (param_deadline_ms) {
        double v = *param_deadline_ms;
        if (!isfinite(v) || v <= 0 || v > ACM_DEADLINE_MAX_MS)
            return sla__fail(err, errlen, "parameter deadline_ms must be a number of milliseconds in (0, %.0f], got %g",
                             ACM_DEADLINE_MAX_MS, v);
        out->deadline_ms = v;
        out->deadline_source = ACM_BUDGET_PARAMETER;
    }
    int u = ACM_URGENCY_DEFAULT;
    if (h && h->has_priority) {
        u = h->urgency, out->incremental = h->incremental;
        out->urgency_source = ACM_BUDGET_HEADER;
    } else if (param_priority) {
        if (acm_sla_urgency_from_triton(*param_priority, &u, err, errlen)) return ACM_SLA_EINVAL;
        out->urgency_source = ACM_BUDGET_PARAMETER;
    }
    out->urgency_requested = u;
    if (min_urgency > ACM_URGENCY_MAX) min_urgency = ACM_URGENCY_MAX;
    if (u < min_urgency) u = min_urgency, out->clamped = 1;
    out->urgency = u;
    return 0;
}

int acm_sla_resolve_sched(acm_sla_sched *out, const char *hdr_deadline, const char *hdr_priority,
                          const double *param_deadline_ms, const double *param_priority, int min_urgency, char *err,
                          size_t errlen) {
    acm_sla_headers h;
    if (acm_sla_parse_headers(&h, NULL, NULL, hdr_deadline, hdr_priority, err, errlen)) return ACM_SLA_EINVAL;
    return acm_sla_resolve_terms(out, &h, param_deadline_ms, param_priority, min_urgency, err, errlen);
}
