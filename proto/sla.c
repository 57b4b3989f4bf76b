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
    return s == ACM_BUDGET_HEADER ? "header" : s == ACM_BUDGET_PARAMETER ? "parameter" : "default";
}

static int sla__range(double v, const char *what, char *err, size_t errlen) {
    if (!isfinite(v) || v <= 0 || v > 1) return sla__fail(err, errlen, "%s must be in (0, 1], got %g", what, v);
    return 0;
}

int acm_sla_parse_budget(const char *s, double *out, const char *what, char *err, size_t errlen) {
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
    if (!digits || *q) return sla__fail(err, errlen, "%s must be a decimal number in (0, 1], got \"%.40s\"", what, s);
    char tmp[64];
    size_t n = (size_t)(end - p);
    if (n >= sizeof tmp) return sla__fail(err, errlen, "%s is too long", what);
    memcpy(tmp, p, n);
    tmp[n] = 0;
    double v = strtod(tmp, NULL);
    if (sla__range(v, what, err, errlen)) return ACM_SLA_EINVAL;
    *out = v;
    return 0;
}

int acm_sla_resolve(acm_sla_budget *out, const char *hdr_max, const char *hdr_min, const double *param_max,
                    const double *param_min, double beta_min, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    double mx = 1, mn = beta_min;
    int has_max = 0, has_min = 0;
    if (hdr_max) {
        if (acm_sla_parse_budget(hdr_max, &mx, "X-Compute-Budget", err, errlen)) return ACM_SLA_EINVAL;
        has_max = 1, out->source = ACM_BUDGET_HEADER;
    } else if (param_max) {
        if (sla__range(*param_max, "parameter compute_budget", err, errlen)) return ACM_SLA_EINVAL;
        mx = *param_max, has_max = 1, out->source = ACM_BUDGET_PARAMETER;
    }
    if (hdr_min) {
        if (acm_sla_parse_budget(hdr_min, &mn, "X-Compute-Budget-Min", err, errlen)) return ACM_SLA_EINVAL;
        has_min = 1;
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
    out->max = mx, out->min = mn;
    return 0;
}
