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

typedef struct {
    const uint8_t *p; /* the binary section */
    size_t len, used;
} oip__bin;

size_t acm_oip_dtype_size(acm_oip_dtype t) {
    switch (t) {
    case ACM_OIP_BOOL: case ACM_OIP_UINT8: case ACM_OIP_INT8: return 1;
    case ACM_OIP_UINT16: case ACM_OIP_INT16: case ACM_OIP_FP16: return 2;
    case ACM_OIP_UINT32: case ACM_OIP_INT32: case ACM_OIP_FP32: return 4;
    case ACM_OIP_UINT64: case ACM_OIP_INT64: case ACM_OIP_FP64: return 8;
    default: return 0;
    }
}

static double oip__half(uint16_t h) {
    const int e = (h >> 10) & 31, m = h & 1023;
    const double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return h & 0x8000 ? -v : v;
}

/* One little-endian element of the binary section as a double; -1 for a value the datatype does not allow. */
static int oip__bin_value(acm_oip_dtype t, const uint8_t *b, double *x) {
    uint64_t u = 0;
    const size_t n = acm_oip_dtype_size(t);
    for (size_t i = 0; i < n; i++) u |= (uint64_t)b[i] << (8 * i);
    switch (t) {
    case ACM_OIP_BOOL: *x = (double)u; return u > 1 ? -1 : 0;
    case ACM_OIP_UINT8: case ACM_OIP_UINT16: case ACM_OIP_UINT32: case ACM_OIP_UINT64: *x = (double)u; return 0;
    case ACM_OIP_INT8: *x = (int8_t)u; return 0;
    case ACM_OIP_INT16: *x = (int16_t)u; return 0;
    case ACM_OIP_INT32: *x = (int32_t)u; return 0;
    case ACM_OIP_INT64: {
        int64_t v;
        memcpy(&v, &u, sizeof v);
        *x = (double)v;
        return 0;
    }
    case ACM_OIP_FP16: *x = oip__half((uint16_t)u); break;
    case ACM_OIP_FP32: {
        uint32_t w = (uint32_t)u;
        float f;
        memcpy(&f, &w, sizeof f);
        *x = f;
        break;
    }
    case ACM_OIP_FP64: memcpy(x, &u, sizeof *x); break;
    default: return -1;
    }
    return isfinite(*x) ? 0 : -1;
}

static int oip__tensor(acm_oip_tensor *t, const json_t *in, int idx, const acm_oip_limits *lim, oip__bin *bin,
                       char *err, size_t errlen) {
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
    const json_t *tp = json_object_get(in, "parameters");
    if (tp && !json_is_object(tp))
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': parameters must be an object", t->name);
    const json_t *bds = tp ? json_object_get(tp, "binary_data_size") : NULL;
    if (bds) {
        if (!json_is_integer(bds) || json_integer_value(bds) < 0)
            return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': binary_data_size must be an integer >= 0",
                             t->name);
        if (data)
            return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': both data and binary_data_size are given",
                             t->name);
        const size_t es = acm_oip_dtype_size(t->dtype), n = (size_t)json_integer_value(bds);
        if (n / es != count || n % es)
            return oip__fail(err, errlen, ACM_OIP_EINVAL,
                             "input '%s': binary_data_size %zu is not %zu elements of %zu bytes (%s)", t->name, n, count,
                             es, acm_oip_dtype_name(t->dtype));
        if (!bin || n > bin->len - bin->used)
            return oip__fail(err, errlen, ACM_OIP_EINVAL,
                             "input '%s': binary_data_size %zu is past the end of the binary section (%zu bytes left; "
                             "Inference-Header-Content-Length sets where it starts)", t->name, n,
                             bin ? bin->len - bin->used : 0);
        t->data = malloc((count ? count : 1) * sizeof *t->data);
        if (!t->data) return oip__fail(err, errlen, ACM_OIP_ENOMEM, "out of memory");
        const uint8_t *b = bin->p + bin->used;
        for (size_t i = 0; i < count; i++)
            if (oip__bin_value(t->dtype, b + i * es, &t->data[i]))
                return oip__fail(err, errlen, ACM_OIP_EINVAL, "input '%s': binary element %zu is not a valid %s%s",
                                 t->name, i, acm_oip_dtype_name(t->dtype),
                                 t->dtype == ACM_OIP_BOOL ? " (0 or 1)" : " (NaN and Inf are not accepted)");
        bin->used += n;
        return 0;
    }
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

/* JSON text has no NUL byte. jansson skips one outside strings (its reader's end-of-buffer sentinel is a NUL), so
 * "0.2<NUL>}" would parse as "0.2}": refused before jansson sees it (found by fuzz_oip_json). */
static int oip__nul(char *err, size_t errlen, size_t at) {
    return oip__fail(err, errlen, ACM_OIP_EJSON, "malformed JSON: a NUL byte at offset %zu", at);
}

/* The "parameters" object: types here, ranges in sla.c (the server resolves them). */
static int oip__params(acm_oip_params *p, const json_t *par, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    if (!json_is_object(par)) return oip__fail(err, errlen, ACM_OIP_EINVAL, "parameters must be an object");
    static const struct {
        const char *key;
        int type; /* 0 number, 1 string, 2 boolean */
    } keys[] = {{"compute_budget", 0}, {"compute_budget_min", 0}, {"deadline_ms", 0}, {"priority", 0},
                {"compute_policy", 1}, {"explain", 2},           {"binary_data_output", 2},
                {"sample_rate", 0}};
    const json_t *v[sizeof keys / sizeof *keys];
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        v[i] = json_object_get(par, keys[i].key);
        if (!v[i]) continue;
        const int ok = keys[i].type == 0 ? json_is_number(v[i]) : keys[i].type == 1 ? json_is_string(v[i]) : json_is_boolean(v[i]);
        if (!ok)
            return oip__fail(err, errlen, ACM_OIP_EINVAL, "parameter %s must be a %s", keys[i].key,
                             keys[i].type == 0 ? "number" : keys[i].type == 1 ? "string" : "boolean");
    }
    if (v[0]) p->has_budget = 1, p->budget = json_number_value(v[0]);
    if (v[1]) p->has_budget_min = 1, p->budget_min = json_number_value(v[1]);
    if (v[2]) p->has_deadline = 1, p->deadline_ms = json_number_value(v[2]);
    if (v[3]) p->has_priority = 1, p->priority = json_number_value(v[3]);
    if (v[4]) snprintf(p->policy, sizeof p->policy, "%s", json_string_value(v[4]));
    p->explain = v[5] && json_is_true(v[5]);
    p->binary_output = v[6] && json_is_true(v[6]);
    if (v[7]) p->has_sample_rate = 1, p->sample_rate = json_number_value(v[7]);
    return 0;
}

static int oip__input_at(const char *buf, size_t len, size_t at, char *name, size_t n);

int acm_oip_parse_request(acm_oip_request *r, const char *buf, size_t len, const acm_oip_limits *lim, char *err,
                          size_t errlen) {
    return acm_oip_parse_request_bin(r, buf, len, len, lim, err, errlen);
}

int acm_oip_parse_request_bin(acm_oip_request *r, const char *buf, size_t len, size_t json_len,
                              const acm_oip_limits *lim, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (json_len > len)
        return oip__fail(err, errlen, ACM_OIP_EINVAL, "Inference-Header-Content-Length %zu is past the body's %zu bytes",
                         json_len, len);
    oip__bin binsec = {(const uint8_t *)buf + json_len, len - json_len, 0}, *bin = json_len < len ? &binsec : NULL;
    len = json_len;
    const char *nul = memchr(buf, 0, len);
    if (nul) return oip__nul(err, errlen, (size_t)(nul - buf));
    json_error_t je;
    json_t *root = json_loadb(buf, len, 0, &je);
    if (!root) {
        const int range = strstr(je.text, "overflow") || strstr(je.text, "too big");
        char in[96] = "", name[64];
        const int named = oip__input_at(buf, len, (size_t)je.position, name, sizeof name);
        if (named) snprintf(in, sizeof in, " in the data of input '%s'", name);
        return oip__fail(err, errlen, ACM_OIP_EJSON, "malformed JSON at line %d, column %d%s: %s%s", je.line,
                         je.column, in, je.text,
                         range || named ? " (numbers must be finite and in range; NaN and Inf are not JSON)" : "");
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
    if (id && json_string_length(id) > ACM_OIP_MAX_ID) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "id is %zu bytes, over the limit of %d bytes",
                       json_string_length(id), ACM_OIP_MAX_ID);
        goto out;
    }
    if (id) memcpy(r->id, json_string_value(id), json_string_length(id) + 1);
    const json_t *par = json_object_get(root, "parameters");
    if (par && (rc = oip__params(&r->par, par, err, errlen))) goto out;
    const json_t *outs = json_object_get(root, "outputs");
    if (outs && (!json_is_array(outs) || json_array_size(outs) > ACM_OIP_MAX_OUTPUTS)) {
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "outputs must be an array of at most %d objects", ACM_OIP_MAX_OUTPUTS);
        goto out;
    }
    for (size_t i = 0; outs && i < json_array_size(outs); i++) {
        const json_t *o = json_array_get(outs, i), *nm = json_object_get(o, "name"), *op = json_object_get(o, "parameters");
        const json_t *bd = op ? json_object_get(op, "binary_data") : NULL;
        if (!json_is_object(o) || !json_is_string(nm) || (op && !json_is_object(op)) || (bd && !json_is_boolean(bd))) {
            rc = oip__fail(err, errlen, ACM_OIP_EINVAL,
                           "outputs[%zu] must be {\"name\": string, \"parameters\": {\"binary_data\": boolean}}", i);
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(r->outputs[j].name, json_string_value(nm)) == 0) {
                rc = oip__fail(err, errlen, ACM_OIP_EINVAL, "outputs[%zu]: output \"%.64s\" is named twice", i,
                               r->outputs[j].name);
                goto out;
            }
        snprintf(r->outputs[i].name, sizeof r->outputs[i].name, "%s", json_string_value(nm));
        r->outputs[i].binary = bd && json_is_true(bd);
        r->n_outputs = (int)i + 1;
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
        if ((rc = oip__tensor(&r->inputs[i], json_array_get(inputs, i), (int)i, lim, bin, err, errlen))) goto out;
    }
    if (bin && bin->used != bin->len)
        rc = oip__fail(err, errlen, ACM_OIP_EINVAL,
                       "the binary section has %zu bytes, the inputs' binary_data_size account for %zu", bin->len,
                       bin->used);
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

int acm_oip_output_binary(const acm_oip_request *r, const char *name) {
    if (r->par.binary_output) return 1;
    for (int i = 0; i < r->n_outputs; i++)
        if (strcmp(r->outputs[i].name, name) == 0) return r->outputs[i].binary;
    return 0;
}

int acm_oip_output_requested(const acm_oip_request *r, const char *name) {
    if (r->n_outputs == 0) return 1;
    for (int i = 0; i < r->n_outputs; i++)
        if (strcmp(r->outputs[i].name, name) == 0) return 1;
    return 0;
}

char *acm_oip_response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                       const float *logits, int B, int K, const char *const *labels) {
    size_t jl, total;
    return acm_oip_response_bin(model_name, model_version, id, parameters, logits, B, K, labels, 0, 0, &jl, &total);
}

/* The response of both kinds of model: logits [B, K] named "logits", and NL strings named label_name ([NL]). */
static char *oip__response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int B, int K, const char *label_name, const char *const *labels,
                           int NL, int bin_logits, int bin_label, size_t *json_len, size_t *total);

char *acm_oip_response_bin(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int B, int K, const char *const *labels, int bin_logits, int bin_label,
                           size_t *json_len, size_t *total) {
    return oip__response(model_name, model_version, id, parameters, logits, B, K, "label", labels, B, bin_logits,
                         bin_label, json_len, total);
}

char *acm_oip_response_asr(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int T, int K, const char *text, int bin_logits, int bin_text,
                           size_t *json_len, size_t *total) {
    const char *const texts[1] = {text};
    return oip__response(model_name, model_version, id, parameters, logits, T, K, "text", text ? texts : NULL, 1,
                         bin_logits, bin_text, json_len, total);
}

static char *oip__response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int B, int K, const char *label_name, const char *const *labels,
                           int NL, int bin_logits, int bin_label, size_t *json_len, size_t *total) {
    if (!logits) bin_logits = 0;
    if (!labels) bin_label = 0;
    const size_t n_logits = (size_t)B * (size_t)K * 4;
    size_t n_label = 0;
    for (int i = 0; labels && i < NL; i++) n_label += 4 + strlen(labels[i]);
    json_t *outs = json_array();
    if (logits) {
        json_t *lg_out = json_pack("{s:s, s:s, s:[i,i]}", "name", "logits", "datatype", "FP32", "shape", B, K);
        if (bin_logits) {
            json_object_set_new(lg_out, "parameters", json_pack("{s:I}", "binary_data_size", (json_int_t)n_logits));
        } else {
            json_t *lg = json_array();
            int ok = lg != NULL;
            for (int i = 0; ok && i < B * K; i++) ok = json_array_append_new(lg, json_real(logits[i])) == 0;
            if (!ok) { /* json_real refuses NaN and Inf: fail, never a "data" shorter than its shape */
                json_decref(lg), json_decref(lg_out), json_decref(outs), json_decref(parameters);
                return NULL;
            }
            json_object_set_new(lg_out, "data", lg);
        }
        json_array_append_new(outs, lg_out);
    }
    if (labels) {
        json_t *lb_out = json_pack("{s:s, s:s, s:[i]}", "name", label_name, "datatype", "BYTES", "shape", NL);
        if (bin_label) {
            json_object_set_new(lb_out, "parameters", json_pack("{s:I}", "binary_data_size", (json_int_t)n_label));
        } else {
            json_t *lb = json_array();
            int ok = lb != NULL;
            for (int i = 0; ok && i < NL; i++) ok = json_array_append_new(lb, json_string(labels[i])) == 0;
            if (!ok) {
                json_decref(lb), json_decref(lb_out), json_decref(outs), json_decref(parameters);
                return NULL;
            }
            json_object_set_new(lb_out, "data", lb);
        }
        json_array_append_new(outs, lb_out);
    }
    json_t *root = json_pack("{s:s, s:s, s:s, s:o, s:o}", "model_name", model_name, "model_version", model_version,
                             "id", id, "parameters", parameters ? parameters : json_object(), "outputs", outs);
    if (!root) return NULL;
    char *s = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_decref(root);
    if (!s) return NULL;
    const size_t jl = strlen(s), extra = (bin_logits ? n_logits : 0) + (bin_label ? n_label : 0);
    *json_len = jl, *total = jl + extra;
    if (!extra) return s;
    char *out = realloc(s, jl + extra + 1);
    if (!out) {
        free(s);
        return NULL;
    }
    uint8_t *b = (uint8_t *)out + jl;
    if (bin_logits)
        for (size_t i = 0; i < (size_t)B * (size_t)K; i++) { /* little-endian FP32 */
            uint32_t w;
            memcpy(&w, &logits[i], 4);
            for (int k = 0; k < 4; k++) *b++ = (uint8_t)(w >> (8 * k));
        }
    if (bin_label)
        for (int i = 0; i < NL; i++) {
            const uint32_t n = (uint32_t)strlen(labels[i]);
            for (int k = 0; k < 4; k++) *b++ = (uint8_t)(n >> (8 * k));
            memcpy(b, labels[i], n);
            b += n;
        }
    out[jl + extra] = 0;
    return out;
}

/* ---- the peek: a byte scanner over the JSON header ---------------------------------------------------------------- */

typedef struct {
    const char *b;
    size_t n, i;
} oip__scan;

static void oip__ws(oip__scan *s) {
    while (s->i < s->n && (s->b[s->i] == ' ' || s->b[s->i] == '\t' || s->b[s->i] == '\n' || s->b[s->i] == '\r')) s->i++;
}

/* At '"': moves past the closing quote. */
static int oip__skip_string(oip__scan *s) {
    for (s->i++; s->i < s->n; s->i++) {
        if (s->b[s->i] == '\\') s->i++;
        else if (s->b[s->i] == '"') {
            s->i++;
            return 0;
        }
    }
    return -1;
}

/* Skips one value (brackets matched by depth only: their kinds are checked by the full parse). */
static int oip__skip_value(oip__scan *s) {
    oip__ws(s);
    if (s->i >= s->n) return -1;
    const char c = s->b[s->i];
    if (c == '"') return oip__skip_string(s);
    if (c == '{' || c == '[') {
        size_t depth = 0;
        while (s->i < s->n) {
            const char d = s->b[s->i];
            if (d == '"') {
                if (oip__skip_string(s)) return -1;
                continue;
            }
            if (d == '{' || d == '[') depth++;
            else if (d == '}' || d == ']') {
                if (--depth == 0) {
                    s->i++;
                    return 0;
                }
            }
            s->i++;
        }
        return -1;
    }
    const size_t start = s->i;
    while (s->i < s->n && !strchr(",}] \t\r\n", s->b[s->i])) s->i++;
    return s->i > start ? 0 : -1;
}

/* Key of the member at s->i ('"'): its decoded text into key (truncated), or -1. A key longer than any name the
 * peek looks for could be, even spelt with \uXXXX escapes, is not decoded (key = "", which matches nothing): the
 * work per key stays bounded whatever its length. */
#define OIP__KEY_RAW_MAX (6 * 64 + 2)
static int oip__key(oip__scan *s, char *key, size_t n) {
    const size_t start = s->i;
    if (s->i >= s->n || s->b[s->i] != '"' || oip__skip_string(s)) return -1;
    const char *k = s->b + start + 1;
    const size_t kl = s->i - start - 2;
    if (!memchr(k, '\\', kl)) {
        snprintf(key, n, "%.*s", (int)(kl < n ? kl : n - 1), k);
        return 0;
    }
    if (kl + 2 > OIP__KEY_RAW_MAX) {
        key[0] = 0;
        return 0;
    }
    json_t *j = json_loadb(s->b + start, s->i - start, JSON_DECODE_ANY, NULL);
    if (!json_is_string(j)) {
        json_decref(j);
        return -1;
    }
    snprintf(key, n, "%s", json_string_value(j));
    json_decref(j);
    return 0;
}

/* Iterates the members of the object at s->i; for each calls cb with the key, the scanner at its value; cb must move
 * past the value (or leave it to be skipped: return 1). */
typedef int (*oip__member_cb)(oip__scan *s, const char *key, void *ctx);
static int oip__object(oip__scan *s, oip__member_cb cb, void *ctx) {
    oip__ws(s);
    if (s->i >= s->n || s->b[s->i] != '{') return -1;
    s->i++;
    oip__ws(s);
    if (s->i < s->n && s->b[s->i] == '}') {
        s->i++;
        return 0;
    }
    for (;;) {
        char key[64];
        oip__ws(s);
        if (oip__key(s, key, sizeof key)) return -1;
        oip__ws(s);
        if (s->i >= s->n || s->b[s->i] != ':') return -1;
        s->i++;
        oip__ws(s);
        const int r = cb(s, key, ctx);
        if (r < 0 || (r == 1 && oip__skip_value(s))) return -1;
        oip__ws(s);
        if (s->i >= s->n) return -1;
        if (s->b[s->i] == '}') {
            s->i++;
            return 0;
        }
        if (s->b[s->i] != ',') return -1;
        s->i++;
    }
}

typedef struct {
    acm_oip_peek *p;
    size_t par_at, par_len; /* the last "parameters" value: where it starts and its length (0: none) */
    int cur;                /* the input being walked: its index in p->inputs, -1 past ACM_OIP_MAX_INPUTS */
    int64_t n_seen;         /* inputs walked so far in this "inputs" array */
    size_t data[ACM_OIP_MAX_INPUTS][2]; /* each recorded input's "data" value: [start, end) in the buffer */
} oip__peek_ctx;

/* Members of an input object: its "name", the leading dimension of its "shape" (duplicate keys: the last wins, as in
 * jansson), and where its "data" lies (for naming the input in a parse error). Of the shape only the leading
 * dimension is read, by hand: a JSON integer > 0, else 1 (a shape the full parse refuses may give anything here); the
 * rest of the array is skipped. */
static int oip__peek_input(oip__scan *s, const char *key, void *vctx) {
    oip__peek_ctx *c = vctx;
    if (c->cur < 0 || s->i >= s->n) return 1;
    if (strcmp(key, "name") == 0) {
        if (s->b[s->i] != '"') return 1;
        return oip__key(s, c->p->inputs[c->cur].name, sizeof c->p->inputs[c->cur].name);
    }
    if (strcmp(key, "data") == 0) {
        c->data[c->cur][0] = s->i, c->data[c->cur][1] = s->n; /* to the end if it does not close */
        if (oip__skip_value(s)) return -1;
        c->data[c->cur][1] = s->i;
        return 0;
    }
    if (strcmp(key, "shape") || s->b[s->i] != '[') return 1;
    const size_t open = s->i;
    s->i++;
    oip__ws(s);
    const size_t d0 = s->i;
    while (s->i < s->n && s->i - d0 < 20 && s->b[s->i] >= '0' && s->b[s->i] <= '9') s->i++;
    const size_t nd = s->i - d0;
    int64_t v = 0;
    int integer = nd > 0 && (nd == 1 || s->b[d0] != '0') && s->i < s->n && strchr(",] \t\r\n", s->b[s->i]);
    for (size_t k = 0; k < nd && integer; k++) {
        const int d = s->b[d0 + k] - '0';
        if (v > (INT64_MAX - d) / 10) integer = 0; /* past jansson's json_int_t: the full parse refuses it */
        else v = v * 10 + d;
    }
    c->p->inputs[c->cur].items = integer && v > 0 ? v : 1;
    s->i = open;
    return 1; /* skipped by the caller */
}

/* Top-level members. "parameters" is only located here (the last one counts, as in jansson) and decoded after the
 * scan; "inputs" is walked for each input's name and shape (the last "inputs" counts). */
static int oip__peek_top(oip__scan *s, const char *key, void *vctx) {
    oip__peek_ctx *c = vctx;
    if (strcmp(key, "parameters") == 0) {
        const size_t at = s->i;
        if (oip__skip_value(s)) return -1;
        c->par_at = at, c->par_len = s->i - at;
        return 0;
    }
    if (strcmp(key, "inputs") == 0) {
        c->p->n_inputs = 0, c->n_seen = 0;
        memset(c->p->inputs, 0, sizeof c->p->inputs);
        memset(c->data, 0, sizeof c->data);
        if (s->i >= s->n || s->b[s->i] != '[') return 1;
        s->i++;
        for (int first = 1;; first = 0) {
            oip__ws(s);
            if (s->i < s->n && s->b[s->i] == ']' && first) {
                s->i++;
                return 0;
            }
            c->cur = c->n_seen < ACM_OIP_MAX_INPUTS ? (int)c->n_seen : -1;
            if (c->cur >= 0) c->p->inputs[c->cur].items = 1, c->p->n_inputs = c->cur + 1;
            c->n_seen++;
            if (s->i < s->n && s->b[s->i] == '{') {
                if (oip__object(s, oip__peek_input, c)) return -1;
            } else if (oip__skip_value(s)) {
                return -1;
            }
            oip__ws(s);
            if (s->i >= s->n) return -1;
            if (s->b[s->i] == ']') {
                s->i++;
                return 0;
            }
            if (s->b[s->i] != ',') return -1;
            s->i++;
        }
    }
    return 1;
}

/* The peek runs on the server's I/O thread: its work is one pass over the bytes (each byte looked at a bounded number
 * of times, nothing allocated that grows with the body) plus one jansson decode of at most ACM_OIP_MAX_PARAMS_BYTES
 * (the last "parameters" value) and of keys written with escapes (each at most OIP__KEY_RAW_MAX bytes). */
static int oip__peek(acm_oip_peek *p, oip__peek_ctx *c, const char *buf, size_t len, char *err, size_t errlen) {
    memset(p, 0, sizeof *p);
    memset(c, 0, sizeof *c);
    c->p = p;
    oip__scan s = {buf, len, 0};
    oip__ws(&s);
    if (s.i >= s.n || s.b[s.i] != '{') return oip__fail(err, errlen, ACM_OIP_EINVAL, "the request body must be a JSON object");
    int r = oip__object(&s, oip__peek_top, c);
    oip__ws(&s);
    if (r || s.i != s.n)
        return oip__fail(err, errlen, ACM_OIP_EJSON, "malformed JSON near byte %zu", s.i < s.n ? s.i : s.n);
    if (!c->par_len) return 0;
    if (c->par_len > ACM_OIP_MAX_PARAMS_BYTES)
        return oip__fail(err, errlen, ACM_OIP_ETOOBIG, "parameters must be an object of at most %d bytes (got %zu)",
                         ACM_OIP_MAX_PARAMS_BYTES, c->par_len);
    json_t *par = json_loadb(buf + c->par_at, c->par_len, JSON_DECODE_ANY, NULL);
    const int rc = par ? oip__params(&p->par, par, err, errlen)
                       : oip__fail(err, errlen, ACM_OIP_EINVAL, "parameters must be an object");
    json_decref(par);
    if (rc) memset(&p->par, 0, sizeof p->par);
    return rc;
}

int acm_oip_peek_request(acm_oip_peek *p, const char *buf, size_t len, char *err, size_t errlen) {
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        memset(p, 0, sizeof *p);
        return oip__nul(err, errlen, (size_t)(nul - buf));
    }
    oip__peek_ctx c;
    return oip__peek(p, &c, buf, len, err, errlen);
}

int64_t acm_oip_peek_items(const acm_oip_peek *p, const char *name) {
    for (int i = 0; i < p->n_inputs && i < ACM_OIP_MAX_INPUTS; i++)
        if (strcmp(p->inputs[i].name, name) == 0) return p->inputs[i].items;
    return 0;
}

/* The name of the input whose "data" holds byte `at` of a body jansson refused (NaN or Infinity in a tensor, most
 * often) into name; 0 when no input's data holds it. The scanner skips what jansson cannot read, so it finds the
 * spans up to the damage. */
static int oip__input_at(const char *buf, size_t len, size_t at, char *name, size_t n) {
    acm_oip_peek p;
    oip__peek_ctx c;
    oip__peek(&p, &c, buf, len, NULL, 0);
    for (int i = 0; i < p.n_inputs; i++)
        if (c.data[i][1] > c.data[i][0] && at >= c.data[i][0] && at <= c.data[i][1] && p.inputs[i].name[0]) {
            snprintf(name, n, "%s", p.inputs[i].name);
            return 1;
        }
    return 0;
}

/* ---- JSON text from client bytes ----------------------------------------------------------------------------- */

/* Bytes of s[0..n) that are a prefix of a well-formed UTF-8 sequence (RFC 3629, Unicode Table 3-7), and in *full the
 * length that sequence needs (0 when s[0] cannot start one). */
static size_t oip__utf8_prefix(const unsigned char *s, size_t n, size_t *full) {
    const unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF; /* the range of the second byte */
    size_t need;
    if (c < 0x80) need = 1;
    else if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) need = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    else if (c >= 0xF0 && c <= 0xF4) need = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    else need = 0;
    *full = need;
    if (need <= 1) return need;
    size_t k = 1;
    for (; k < need && k < n; k++) {
        const unsigned char b = s[k];
        if (k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF)) break;
    }
    return k;
}

size_t acm_utf8_seq(const char *s, size_t n) {
    if (!n) return 0;
    size_t full, k = oip__utf8_prefix((const unsigned char *)s, n, &full);
    return full && k == full ? k : 0;
}

size_t acm_json_escape_next(char *out, const char *s, size_t n, size_t *used) {
    static const char hex[] = "0123456789abcdef";
    static const char short_esc[0x20] = {['\b'] = 'b', ['\f'] = 'f', ['\n'] = 'n', ['\r'] = 'r', ['\t'] = 't'};
    const unsigned char c = (unsigned char)s[0];
    *used = 1;
    if (c == '"' || c == '\\' || (c < 0x20 && short_esc[c])) {
        out[0] = '\\', out[1] = c < 0x20 ? short_esc[c] : (char)c;
        return 2;
    }
    if (c < 0x20) {
        memcpy(out, "\\u00", 4);
        out[4] = hex[c >> 4], out[5] = hex[c & 15];
        return 6;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    size_t full, k = oip__utf8_prefix((const unsigned char *)s, n, &full);
    if (full && k == full) {
        memcpy(out, s, k);
        *used = k;
        return k;
    }
    *used = k ? k : 1; /* a maximal subpart: one U+FFFD for the bytes that began a sequence and broke off */
    memcpy(out, "\xEF\xBF\xBD", 3);
    return 3;
}

size_t acm_error_body(char *buf, size_t n, const char *msg) {
    static const char head[] = "{\"error\":\"", tail[] = "\"}";
    if (n < sizeof head + sizeof tail) {
        if (n) buf[0] = 0;
        return 0;
    }
    size_t o = sizeof head - 1;
    memcpy(buf, head, o);
    const size_t room = n - sizeof tail; /* leave the tail and the NUL */
    for (size_t i = 0, len = strlen(msg); i < len;) {
        char esc[ACM_JSON_ESCAPE_MAX];
        size_t used;
        const size_t k = acm_json_escape_next(esc, msg + i, len - i, &used);
        if (o + k > room) break;
        memcpy(buf + o, esc, k);
        o += k, i += used;
    }
    memcpy(buf + o, tail, sizeof tail);
    return o + sizeof tail - 1;
}
