/*
 * oip.c — OIP v2 JSON: request parsing with precise 400 messages, response building, error bodies (see oip.h).
 */
#include "oip.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int oip__fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static const char *const oip__dtype_names[] = {
#define X(n) #n,
    ACM_OIP_DTYPES(X)
#undef X
};

const char *acm_oip_dtype_name(acm_oip_dtype t) {
    return t >= 0 && t < ACM_OIP_DTYPE_COUNT ? oip__dtype_names[t] : "?";
}

int acm_oip_dtype_parse(const char *s) {
    for (int i = 0; i < ACM_OIP_DTYPE_COUNT; i++)
        if (strcmp(s, oip__dtype_names[i]) == 0) return i;
    return -1;
}

/* Range of an integer datatype. */
static void oip__int_range(acm_oip_dtype t, double *lo, double *hi) {
    switch (t) {
    case ACM_OIP_UINT8: *lo = 0, *hi = 255; break;
    case ACM_OIP_UINT16: *lo = 0, *hi = 65535; break;
    case ACM_OIP_UINT32: *lo = 0, *hi = 4294967295.0; break;
    case ACM_OIP_UINT64: *lo = 0, *hi = 18446744073709551615.0; break;
    case ACM_OIP_INT8: *lo = -128, *hi = 127; break;
    case ACM_OIP_INT16: *lo = -32768, *hi = 32767; break;
    case ACM_OIP_INT32: *lo = -2147483648.0, *hi = 2147483647.0; break;
    default: *lo = -9223372036854775808.0, *hi = 9223372036854775807.0; break;
    }
}

typedef struct {
    const acm_oip_tensor *t;
    size_t n; /* values written so far */
    char *err;
    size_t errlen;
} oip__flat;

static int oip__value(oip__flat *f, const json_t *v) {
    const acm_oip_tensor *t = f->t;
    if (f->n >= t->count)
        return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL,
                         "input '%s': data has more than the %zu values its shape needs", t->name, t->count);
    double x;
    switch (t->dtype) {
    case ACM_OIP_BOOL:
        if (!json_is_boolean(v))
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL, "input '%s': data[%zu] is not a boolean (BOOL)",
                             t->name, f->n);
        x = json_is_true(v);
        break;
    case ACM_OIP_FP16:
    case ACM_OIP_FP32:
    case ACM_OIP_FP64: {
        if (!json_is_number(v))
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL,
                             "input '%s': data[%zu] is not a number (%s; NaN and Inf are not accepted)", t->name, f->n,
                             acm_oip_dtype_name(t->dtype));
        x = json_number_value(v);
        const double lim = t->dtype == ACM_OIP_FP16 ? 65504.0 : t->dtype == ACM_OIP_FP32 ? FLT_MAX : DBL_MAX;
        if (!isfinite(x) || fabs(x) > lim)
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL, "input '%s': data[%zu] = %g is not finite as %s",
                             t->name, f->n, x, acm_oip_dtype_name(t->dtype));
        break;
    }
    default: {
        if (!json_is_integer(v))
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL, "input '%s': data[%zu] is not an integer (%s)",
                             t->name, f->n, acm_oip_dtype_name(t->dtype));
        x = (double)json_integer_value(v);
        double lo, hi;
        oip__int_range(t->dtype, &lo, &hi);
        if (x < lo || x > hi)
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL, "input '%s': data[%zu] = %.0f is out of range for %s",
                             t->name, f->n, x, acm_oip_dtype_name(t->dtype));
    }
    }
    t->data[f->n++] = x;
    return 0;
}

static int oip__flatten(oip__flat *f, const json_t *v, int depth) {
    if (json_is_array(v)) {
        if (depth > ACM_OIP_MAX_DIMS)
            return oip__fail(f->err, f->errlen, ACM_OIP_EINVAL, "input '%s': data is nested deeper than %d levels",
                             f->t->name, ACM_OIP_MAX_DIMS);
        size_t i;
        const json_t *e;
        json_array_foreach(v, i, e) {
            int r = oip__flatten(f, e, depth + 1);
            if (r) return r;
        }
        return 0;
    }
    return oip__value(f, v);
}

static int oip__tensor(acm_oip_tensor *t, const json_t *in, int idx, const acm_oip_limits *lim, char *err,
                       size_t errlen) {
    if (!json_is_object(in)) return oip__fail(err, errlen, ACM_OIP_EINVAL, "inputs[%d] is not an object", idx);
    const json_t *name = json_object_get(in, "name"), *dt = json_object_get(in, "datatype"),
                 *shape = json_object_get(in, "shape"), *data = json_object_get(in, "data");
    if (!json_is_string(name)) return oip__fail(err, errlen, ACM_OIP_EINVAL, "inputs[%d].name is missing or not a string", idx);
    snprintf(t->name, sizeof t->name, "%s", json_string_value(name));
    if (!json_is_string(dt))
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': datatype is missing or not a string", t->name);
    int d = acm_oip_dtype_parse(json_string_value(dt));
    if (d < 0)
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': unknown datatype \"%.32s\"", t->name,
                         json_string_value(dt));
    if (d == ACM_OIP_BYTES)
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': datatype BYTES is not accepted as an input", t->name);
    t->dtype = (acm_oip_dtype)d;
    if (!json_is_array(shape) || json_array_size(shape) < 1 || json_array_size(shape) > ACM_OIP_MAX_DIMS)
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': shape must be an array of 1..%d integers", t->name,
                         ACM_OIP_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    size_t count = 1;
    int overflow = 0;
    for (int i = 0; i < t->ndim; i++) {
        const json_t *s = json_array_get(shape, (size_t)i);
        if (!json_is_integer(s) || json_integer_value(s) < 0)
            return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': shape[%d] is not a non-negative integer",
                             t->name, i);
        t->shape[i] = (int64_t)json_integer_value(s);
        if (t->shape[i] && count > SIZE_MAX / (uint64_t)t->shape[i]) overflow = 1;
        else count *= (size_t)t->shape[i];
    }
    if (overflow || count > lim->max_elements)
        return oip__fail(err, errlen, ACM_OIP_ETOOBIG, "input '%s': shape has %s elements (limit %zu)", t->name,
                         overflow ? "more than 2^64" : "too many", lim->max_elements);
    t->count = count;
    if (!json_is_array(data)) return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': data is missing or not an array", t->name);
    t->data = malloc((count ? count : 1) * sizeof *t->data);
    if (!t->data) return oip__fail(err, errlen, ACM_OIP_ENOMEM, "out of memory");
    oip__flat f = {t, 0, err, errlen};
    int r = oip__flatten(&f, data, 1);
    if (r) return r;
    if (f.n != count)
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': shape needs %zu values, data has %zu", t->name,
                         count, f.n);
    return 0;
}

int acm_oip_parse_request(acm_oip_request *r, const char *buf, size_t len, const acm_oip_limits *lim, char *err,
                          size_t errlen) {
    memset(r, 0, sizeof *r);
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    if (!root) {
        const int range = strstr(je.text, "overflow") || strstr(je.text, "too big");
        return oip__fail(err, errlen, ACM_OIP_EJSON, "malformed JSON at line %d, column %d: %s%s", je.line, je.column,
                         je.text, range ? " (numbers must be finite and in range; NaN and Inf are not JSON)" : "");
    }
    int rc = 0;
    if (!json_is_object(root)) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "the request body must be a JSON object");
        goto out;
    }
    const json_t *id = json_object_get(root, "id");
    if (id && !json_is_string(id)) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "id must be a string");
        goto out;
    }
    if (id) snprintf(r->id, sizeof r->id, "%s", json_string_value(id));
    const json_t *par = json_object_get(root, "parameters");
    if (par && !json_is_object(par)) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "parameters must be an object");
        goto out;
    }
    if (par) {
        const json_t *b = json_object_get(par, "compute_budget"), *bm = json_object_get(par, "compute_budget_min"),
                     *pol = json_object_get(par, "compute_policy"), *ex = json_object_get(par, "explain");
        if (b && !json_is_number(b)) {
            rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "parameter compute_budget must be a number");
            goto out;
        }
        if (bm && !json_is_number(bm)) {
            rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "parameter compute_budget_min must be a number");
            goto out;
        }
        if (pol && !json_is_string(pol)) {
            rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "parameter compute_policy must be a string");
            goto out;
        }
        if (ex && !json_is_boolean(ex)) {
            rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "parameter explain must be a boolean");
            goto out;
        }
        if (b) r->has_budget = 1, r->budget = json_number_value(b);
        if (bm) r->has_budget_min = 1, r->budget_min = json_number_value(bm);
        if (pol) snprintf(r->policy, sizeof r->policy, "%s", json_string_value(pol));
        r->explain = ex && json_is_true(ex);
    }
    const json_t *inputs = json_object_get(root, "inputs");
    if (!json_is_array(inputs) || json_array_size(inputs) == 0) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "inputs must be a non-empty array");
        goto out;
    }
    if (json_array_size(inputs) > ACM_OIP_MAX_INPUTS) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "at most %d inputs are accepted", ACM_OIP_MAX_INPUTS);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(inputs); i++) {
        r->n_inputs = (int)i + 1;
        if ((rc = oip__tensor(&r->inputs[i], json_array_get(inputs, i), (int)i, lim, err, errlen))) goto out;
    }
out:
    json_decref(root);
    if (rc) acm_oip_request_free(r);
    return rc;
}

void acm_oip_request_free(acm_oip_request *r) {
    for (int i = 0; i < r->n_inputs && i < ACM_OIP_MAX_INPUTS; i++) free(r->inputs[i].data);
    memset(r, 0, sizeof *r);
}

const acm_oip_tensor *acm_oip_find_input(const acm_oip_request *r, const char *name) {
    for (int i = 0; i < r->n_inputs; i++)
        if (strcmp(r->inputs[i].name, name) == 0) return &r->inputs[i];
    return NULL;
}

char *acm_oip_response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                       const float *logits, int B, int K, const char *const *labels) {
    json_t *lg = json_array(), *lb = json_array();
    for (int i = 0; i < B * K; i++) json_array_append_new(lg, json_real(logits[i]));
    for (int i = 0; i < B; i++) json_array_append_new(lb, json_string(labels[i]));
    json_t *root = json_pack("{s:s, s:s, s:s, s:o, s:[{s:s, s:s, s:[i,i], s:o}, {s:s, s:s, s:[i], s:o}]}",
                             "model_name", model_name, "model_version", model_version, "id", id, "parameters",
                             parameters ? parameters : json_object(), "outputs", "name", "logits", "datatype", "FP32",
                             "shape", B, K, "data", lg, "name", "label", "datatype", "BYTES", "shape", B, "data", lb);
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    return s;
}

size_t acm_error_body(char *buf, size_t n, const char *msg) {
    static const char head[] = "{\"error\":\"", tail[] = "\"}";
    if (n < sizeof head + sizeof tail) {
        if (n) buf[0] = 0;
        return 0;
    }
    size_t o = 0;
    memcpy(buf, head, sizeof head - 1);
    o = sizeof head - 1;
    const size_t room = n - sizeof tail; /* leave the tail and the NUL */
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        char esc[8];
        size_t k;
        if (*p == '"' || *p == '\\') esc[0] = '\\', esc[1] = (char)*p, k = 2;
        else if (*p == '\n') memcpy(esc, "\\n", 2), k = 2;
        else if (*p < 0x20) k = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
        else esc[0] = (char)*p, k = 1;
        if (o + k > room) break;
        memcpy(buf + o, esc, k);
        o += k;
    }
    memcpy(buf + o, tail, sizeof tail);
    return o + sizeof tail - 1;
}
