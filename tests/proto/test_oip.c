/*
 * test_oip.c — proto/oip: OIP v2 request parsing (nested and flat data, datatypes and their ranges, shape/data
 * mismatch, shape overflow, non-finite numbers), the response document and error bodies.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oip.h"

static const acm_oip_limits lim = {.max_elements = 1 << 20};

static int parse(acm_oip_request *r, const char *s, char *err, size_t n) {
    return acm_oip_parse_request(r, s, strlen(s), &lim, err, n);
}

Test(oip, flat_and_nested_give_the_same_values) {
    acm_oip_request a, b;
    char err[256];
    cr_assert_eq(parse(&a, "{\"id\":\"x1\",\"parameters\":{\"compute_budget\":0.5,\"compute_policy\":\"mean\",\"explain\":true},"
                           "\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,2,2,1],\"data\":[1,2,3,4]}]}",
                       err, sizeof err), 0, "%s", err);
    cr_assert_eq(parse(&b, "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,2,2,1],"
                           "\"data\":[[[[1],[2]],[[3],[4]]]]}]}", err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(a.id, "x1");
    cr_expect(a.par.has_budget && a.par.budget == 0.5 && !a.par.has_budget_min && a.par.explain);
    cr_expect_str_eq(a.par.policy, "mean");
    const acm_oip_tensor *ta = acm_oip_find_input(&a, "image"), *tb = acm_oip_find_input(&b, "image");
    cr_assert(ta && tb);
    cr_expect(ta->ndim == 4 && ta->count == 4 && ta->dtype == ACM_OIP_UINT8);
    for (int i = 0; i < 4; i++) cr_expect_eq(ta->data[i], tb->data[i]);
    cr_expect_eq(acm_oip_find_input(&a, "nope"), NULL);
    acm_oip_request_free(&a);
    acm_oip_request_free(&b);
}

Test(oip, errors_are_precise) {
    static const struct {
        const char *json, *needle;
        int code;
    } cases[] = {
        {"{\"inputs\": [", "malformed JSON", ACM_OIP_EJSON},
        {"[1]", "JSON object", ACM_OIP_EINVAL},
        {"{}", "inputs", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[3],\"data\":[1,2]}]}", "needs 3 values, data has 2", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1,2]}]}", "more than the 1 values", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1.5]}]}", "not an integer", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"INT8\",\"shape\":[1],\"data\":[-129]}]}", "out of range for INT8", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[\"1\"]}]}", "not a number", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1e39]}]}", "not finite as FP32", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP64\",\"shape\":[1],\"data\":[1e999]}]}", "NaN and Inf", ACM_OIP_EJSON},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[NaN]}]}", "malformed JSON", ACM_OIP_EJSON},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[1],\"data\":[1]}]}", "not a boolean", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BYTES\",\"shape\":[1],\"data\":[\"a\"]}]}", "BYTES", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"fp32\",\"shape\":[1],\"data\":[1]}]}", "unknown datatype", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[-1],\"data\":[]}]}", "non-negative", ACM_OIP_EINVAL},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[4294967296,4294967296,4294967296],\"data\":[]}]}", "2^64", ACM_OIP_ETOOBIG},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2000000],\"data\":[]}]}", "too many", ACM_OIP_ETOOBIG},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1]}]}", "data is missing", ACM_OIP_EINVAL},
        {"{\"parameters\":{\"compute_budget\":\"high\"},\"inputs\":[]}", "compute_budget", ACM_OIP_EINVAL},
        {"{\"id\":5,\"inputs\":[]}", "id must be a string", ACM_OIP_EINVAL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        acm_oip_request r;
        char err[256] = "";
        int rc = parse(&r, cases[i].json, err, sizeof err);
        cr_expect_eq(rc, cases[i].code, "case %zu: rc %d (%s)", i, rc, err);
        cr_expect(strstr(err, cases[i].needle), "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].needle);
    }
}

Test(oip, response_document) {
    float logits[4] = {0.5f, -1, 2, 0.25f};
    const char *labels[2] = {"cat", "dog\"s"};
    json_t *par = json_pack("{s:f}", "flops", 123.0);
    char *s = acm_oip_response("m", "abcdef012345", "id-1", par, logits, 2, 2, labels);
    cr_assert(s);
    json_t *j = json_loads(s, 0, NULL);
    cr_assert(j, "%s", s);
    cr_expect_str_eq(json_string_value(json_object_get(j, "model_version")), "abcdef012345");
    json_t *out = json_object_get(j, "outputs");
    json_t *lg = json_array_get(out, 0), *lb = json_array_get(out, 1);
    cr_expect_str_eq(json_string_value(json_object_get(lg, "datatype")), "FP32");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(lg, "shape"), 1)), 2);
    cr_expect_eq(json_number_value(json_array_get(json_object_get(lg, "data"), 2)), 2.0);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(lb, "data"), 1)), "dog\"s");
    cr_expect_eq(json_number_value(json_object_get(json_object_get(j, "parameters"), "flops")), 123.0);
    json_decref(j);
    free(s);
}

Test(oip, error_body_escapes_and_truncates) {
    char buf[64];
    size_t n = acm_error_body(buf, sizeof buf, "bad \"x\"\n\\ \x01");
    cr_expect_str_eq(buf, "{\"error\":\"bad \\\"x\\\"\\n\\\\ \\u0001\"}");
    cr_expect_eq(n, strlen(buf));
    char small[24];
    acm_error_body(small, sizeof small, "a very long message that does not fit");
    json_t *j = json_loads(small, 0, NULL);
    cr_expect(j, "truncated body is not JSON: %s", small);
    json_decref(j);
    cr_expect_eq(acm_oip_dtype_parse("FP16"), ACM_OIP_FP16);
    cr_expect_str_eq(acm_oip_dtype_name(ACM_OIP_UINT64), "UINT64");
}

Test(oip, peek_reads_parameters_and_items_like_the_full_parse) {
    const char *s = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[3,1,1,1],\"data\":[1,2,3],"
                    "\"x\":{\"shape\":[9]}}],\"id\":\"a\\\"}\",\n \"param\\u0065ters\":{\"deadline_ms\":25,\"priority\":2,"
                    "\"compute_budget\":0.5,\"compute_policy\":\"cap\",\"x\":[{\"y\":\"]}\"}]}, \"z\": [1, {\"w\": null}]}";
    acm_oip_peek p;
    acm_oip_request r;
    char err[256];
    cr_assert_eq(acm_oip_peek_request(&p, s, strlen(s), err, sizeof err), 0, "%s", err);
    cr_assert_eq(parse(&r, s, err, sizeof err), 0, "%s", err);
    cr_expect_eq(acm_oip_peek_items(&p, "image"), 3);
    cr_expect(p.par.has_deadline && p.par.deadline_ms == 25 && p.par.has_priority && p.par.priority == 2);
    cr_expect_eq(memcmp(&p.par, &r.par, sizeof p.par), 0, "the peek and the full parse disagree on parameters");
    acm_oip_request_free(&r);
    /* no parameters, no inputs: defaults */
    cr_assert_eq(acm_oip_peek_request(&p, "{}", 2, err, sizeof err), 0);
    cr_expect(p.n_inputs == 0 && acm_oip_peek_items(&p, "image") == 0 && !p.par.has_deadline && !p.par.has_budget);
    const char *bad[] = {"", "[]", "{\"parameters\":{\"deadline_ms\":\"soon\"}}", "{\"parameters\":{\"priority\":true}}",
                         "{\"a\":1", "{\"a\":\"x}", "{\"parameters\":{\"deadline_ms\":1},}", "{\"a\" 1}", "{} x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_expect_neq(acm_oip_peek_request(&p, bad[i], strlen(bad[i]), err, sizeof err), 0, "accepted %s", bad[i]);
    cr_expect_eq(acm_oip_peek_request(&p, bad[2], strlen(bad[2]), err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "deadline_ms"), "%s", err);
    /* a NUL byte after a number: jansson alone would skip it (found by fuzz_oip_json); both parsers refuse it */
    static const char nul[] = "{\"parameters\":{\"deadline_ms\":5\0},\"inputs\":[]}";
    cr_expect_eq(acm_oip_peek_request(&p, nul, sizeof nul - 1, err, sizeof err), ACM_OIP_EJSON);
    cr_expect(strstr(err, "NUL"), "%s", err);
    cr_expect_eq(acm_oip_parse_request(&r, nul, sizeof nul - 1, &lim, err, sizeof err), ACM_OIP_EJSON);
    cr_expect(strstr(err, "NUL"), "%s", err);
    /* duplicate keys: the last wins in both (the peek must not refuse what the full parse accepts) */
    const char *dup = "{\"parameters\":5,\"parameters\":{\"priority\":2},\"inputs\":[{\"shape\":\"x\",\"shape\":[4],"
                      "\"name\":\"i\",\"datatype\":\"UINT8\",\"data\":[1,2,3,4]}]}";
    cr_assert_eq(acm_oip_peek_request(&p, dup, strlen(dup), err, sizeof err), 0, "%s", err);
    cr_expect(acm_oip_peek_items(&p, "i") == 4 && p.par.has_priority && p.par.priority == 2);
    cr_assert_eq(acm_oip_parse_request(&r, dup, strlen(dup), &lim, err, sizeof err), 0, "%s", err);
    acm_oip_request_free(&r);
}

/* The same tensor as JSON and as binary data gives the same values. */
Test(oip, binary_inputs_match_json) {
    const char *js = "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[1.5,-2]},"
                     "{\"name\":\"b\",\"datatype\":\"INT16\",\"shape\":[2],\"data\":[-3,300]},"
                     "{\"name\":\"c\",\"datatype\":\"FP16\",\"shape\":[1],\"data\":[0.5]}]}";
    const char *hd = "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[2],\"parameters\":{\"binary_data_size\":8}},"
                     "{\"name\":\"b\",\"datatype\":\"INT16\",\"shape\":[2],\"parameters\":{\"binary_data_size\":4}},"
                     "{\"name\":\"c\",\"datatype\":\"FP16\",\"shape\":[1],\"parameters\":{\"binary_data_size\":2}}]}";
    char body[1024];
    size_t hl = strlen(hd);
    memcpy(body, hd, hl);
    const float f[2] = {1.5f, -2.0f};
    const int16_t i16[2] = {-3, 300};
    const uint16_t half = 0x3800; /* 0.5 */
    memcpy(body + hl, f, 8);
    memcpy(body + hl + 8, i16, 4);
    memcpy(body + hl + 12, &half, 2);
    acm_oip_request a, b;
    char err[256];
    cr_assert_eq(parse(&a, js, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acm_oip_parse_request_bin(&b, body, hl + 14, hl, &lim, err, sizeof err), 0, "%s", err);
    for (int t = 0; t < 3; t++)
        for (size_t i = 0; i < a.inputs[t].count; i++)
            cr_expect_eq(a.inputs[t].data[i], b.inputs[t].data[i], "input %d [%zu]: %g vs %g", t, i, a.inputs[t].data[i],
                         b.inputs[t].data[i]);
    acm_oip_request_free(&a);
    acm_oip_request_free(&b);
    /* errors: size not matching the shape, past the end, trailing bytes, data and binary, NaN, BOOL 2 */
    cr_expect_eq(acm_oip_parse_request_bin(&b, body, hl + 13, hl, &lim, err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "'c'") && strstr(err, "past the end"), "%s", err);
    cr_expect_eq(acm_oip_parse_request_bin(&b, body, hl + 15, hl, &lim, err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "binary section"), "%s", err);
    cr_expect_eq(acm_oip_parse_request_bin(&b, body, hl + 14, hl + 20, &lim, err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "Inference-Header-Content-Length"), "%s", err);
    static const struct {
        const char *hdr;
        uint8_t bytes[8];
        size_t n;
        const char *needle;
    } bad[] = {
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[2],\"parameters\":{\"binary_data_size\":4}}]}",
         {0}, 4, "not 2 elements"},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FP32\",\"shape\":[1],\"parameters\":{\"binary_data_size\":4}}]}",
         {0, 0, 0xc0, 0x7f}, 4, "not a valid FP32"},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"BOOL\",\"shape\":[1],\"parameters\":{\"binary_data_size\":1}}]}",
         {2}, 1, "0 or 1"},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1],\"parameters\":{\"binary_data_size\":1}}]}",
         {2}, 1, "both"},
        {"{\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"parameters\":{\"binary_data_size\":-1}}]}",
         {2}, 1, "binary_data_size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        size_t l = strlen(bad[i].hdr);
        memcpy(body, bad[i].hdr, l);
        memcpy(body + l, bad[i].bytes, bad[i].n);
        cr_expect_eq(acm_oip_parse_request_bin(&b, body, l + bad[i].n, l, &lim, err, sizeof err), ACM_OIP_EINVAL, "case %zu", i);
        cr_expect(strstr(err, bad[i].needle), "case %zu: \"%s\" lacks \"%s\"", i, err, bad[i].needle);
    }
}

Test(oip, binary_outputs) {
    acm_oip_request r;
    char err[256];
    const char *s = "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}],"
                    "\"outputs\":[{\"name\":\"logits\",\"parameters\":{\"binary_data\":true}},{\"name\":\"label\"}]}";
    cr_assert_eq(parse(&r, s, err, sizeof err), 0, "%s", err);
    cr_expect(acm_oip_output_binary(&r, "logits") && !acm_oip_output_binary(&r, "label"));
    float logits[4] = {0.5f, -1, 2, 0.25f};
    const char *labels[2] = {"cat", "dog"};
    size_t jl, total;
    char *out = acm_oip_response_bin("m", "v", "i", NULL, logits, 2, 2, labels, 1, 1, &jl, &total);
    cr_assert(out);
    cr_expect_eq(total, jl + 16 + 4 + 3 + 4 + 3);
    json_t *j = json_loadb(out, jl, 0, NULL);
    cr_assert(j, "%.*s", (int)jl, out);
    json_t *lg = json_array_get(json_object_get(j, "outputs"), 0), *lb = json_array_get(json_object_get(j, "outputs"), 1);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(lg, "parameters"), "binary_data_size")), 16);
    cr_expect_eq(json_object_get(lg, "data"), NULL);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(lb, "parameters"), "binary_data_size")), 14);
    cr_expect_eq(memcmp(out + jl, logits, 16), 0);
    cr_expect_eq(memcmp(out + jl + 16, "\3\0\0\0cat\3\0\0\0dog", 14), 0);
    json_decref(j);
    free(out);
    acm_oip_request_free(&r);
    cr_expect_eq(parse(&r, "{\"inputs\":[],\"outputs\":[{\"name\":1}]}", err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "outputs[0]"), "%s", err);
}

/* jansson's allocations, counted (the peek's cost by construction, not by a clock): live bytes, their peak, calls. */
static size_t jl_live, jl_peak, jl_calls;
static void *jl_malloc(size_t n) {
    size_t *p = malloc(n + sizeof(size_t) * 2);
    if (!p) return NULL;
    p[0] = n;
    jl_live += n, jl_calls++;
    if (jl_live > jl_peak) jl_peak = jl_live;
    return p + 2;
}
static void jl_free(void *q) {
    if (!q) return;
    size_t *p = (size_t *)q - 2;
    jl_live -= p[0];
    free(p);
}
static void jl_reset(void) { jl_live = jl_peak = jl_calls = 0; }

/* A body of `n` bytes: head, then `fill` repeated, then tail. */
static char *big_body(const char *head, const char *fill, const char *tail, size_t n) {
    char *b = malloc(n + 1);
    cr_assert(b);
    size_t hl = strlen(head), fl = strlen(fill), tl = strlen(tail), o = hl;
    memcpy(b, head, hl);
    while (o + fl + tl <= n) memcpy(b + o, fill, fl), o += fl;
    memcpy(b + o, tail, tl);
    b[o + tl] = 0;
    return b;
}

/* The peek runs on the server's I/O thread: an 8 MB body must cost it a scan, never a decode of the body. Before, the
 * parameters value was decoded whole (json_loadb: ~165 MB and ~0.5 s for an array of 4 M zeros). */
Test(oip, peek_work_stays_bounded_whatever_the_body) {
    json_set_alloc_funcs(jl_malloc, jl_free);
    const size_t N = 8u << 20;
    acm_oip_peek p;
    char err[256];
    /* a huge parameters value: refused, nothing decoded */
    char *b = big_body("{\"parameters\":[0", ",0", "]}", N);
    jl_reset();
    cr_expect_eq(acm_oip_peek_request(&p, b, strlen(b), err, sizeof err), ACM_OIP_ETOOBIG);
    cr_expect(strstr(err, "parameters") && strstr(err, "65536"), "%s", err);
    cr_expect_leq(jl_peak, 1024, "the peek allocated %zu bytes (%zu calls) for an 8 MB parameters array", jl_peak, jl_calls);
    free(b);
    b = big_body("{\"parameters\":{\"priority\":1,\"x\":\"", "aaaaaaaa", "\"}}", N);
    jl_reset();
    cr_expect_eq(acm_oip_peek_request(&p, b, strlen(b), err, sizeof err), ACM_OIP_ETOOBIG);
    cr_expect_leq(jl_peak, 1024, "%zu bytes for an 8 MB parameters string", jl_peak);
    free(b);
    /* an 8 MB shape: only its leading integer is read */
    b = big_body("{\"inputs\":[{\"name\":\"image\",\"shape\":[7", ", 1", "]}]}", N);
    jl_reset();
    cr_expect_eq(acm_oip_peek_request(&p, b, strlen(b), err, sizeof err), 0, "%s", err);
    cr_expect_eq(acm_oip_peek_items(&p, "image"), 7);
    cr_expect_leq(jl_peak, 1024, "%zu bytes for an 8 MB shape", jl_peak);
    free(b);
    /* an 8 MB key spelt with escapes: not decoded (it cannot be a name the peek looks for) */
    b = big_body("{\"", "\\u0070", "\":1,\"parameters\":{\"priority\":3}}", N);
    jl_reset();
    cr_expect_eq(acm_oip_peek_request(&p, b, strlen(b), err, sizeof err), 0, "%s", err);
    cr_expect(p.par.has_priority && p.par.priority == 3);
    cr_expect_leq(jl_peak, 1024, "%zu bytes for an 8 MB escaped key", jl_peak);
    free(b);
    /* a million "parameters" members: only the last is decoded (duplicate keys: the last wins, as in jansson) */
    b = big_body("{", "\"parameters\":{\"priority\":1},", "\"parameters\":{\"priority\":2}}", N);
    jl_reset();
    cr_expect_eq(acm_oip_peek_request(&p, b, strlen(b), err, sizeof err), 0, "%s", err);
    cr_expect(p.par.has_priority && p.par.priority == 2);
    cr_expect_leq(jl_calls, 16, "%zu jansson allocations for repeated parameters (one decode expected)", jl_calls);
    free(b);
    json_set_alloc_funcs(malloc, free);
}

/* The limit on parameters is on the bytes of the value as written: at the limit accepted, one byte more refused; the
 * full parse agrees on what the peek accepts. */
Test(oip, peek_parameters_limit_is_exact) {
    char *at = big_body("{\"parameters\":{\"priority\":2,\"pad\":\"", "a", "\"}}", 15 + ACM_OIP_MAX_PARAMS_BYTES);
    cr_assert_eq(strlen(at), 15 + ACM_OIP_MAX_PARAMS_BYTES); /* {"parameters": + the value + } */
    acm_oip_peek p;
    acm_oip_request r;
    char err[256];
    cr_expect_eq(acm_oip_peek_request(&p, at, strlen(at), err, sizeof err), 0, "%s", err);
    cr_expect(p.par.has_priority && p.par.priority == 2);
    cr_assert_eq(acm_oip_parse_request(&r, at, strlen(at), &lim, err, sizeof err), ACM_OIP_EINVAL, "no inputs");
    char *over = big_body("{\"parameters\":{\"priority\":2,\"pad\":\"", "a", "\"}}", 15 + ACM_OIP_MAX_PARAMS_BYTES + 1);
    cr_expect_eq(acm_oip_peek_request(&p, over, strlen(over), err, sizeof err), ACM_OIP_ETOOBIG);
    cr_expect(!p.par.has_priority);
    free(at), free(over);
    /* leading dimensions the peek reads by hand: what jansson calls a positive integer, else 1 */
    static const struct {
        const char *shape;
        int64_t items;
    } dims[] = {{"[5]", 5}, {"[ 12 ,1]", 12}, {"[0,1]", 1}, {"[-3]", 1}, {"[2.0]", 1}, {"[2e1]", 1},
                {"[9223372036854775807]", INT64_MAX}, {"[9223372036854775808]", 1}, {"[\"4\"]", 1}, {"[]", 1}};
    for (size_t i = 0; i < sizeof dims / sizeof *dims; i++) {
        char s[128];
        snprintf(s, sizeof s, "{\"inputs\":[{\"shape\":%s}]}", dims[i].shape);
        cr_expect_eq(acm_oip_peek_request(&p, s, strlen(s), err, sizeof err), 0, "%s: %s", s, err);
        cr_expect_eq(p.inputs[0].items, dims[i].items, "%s: items %lld", dims[i].shape, (long long)p.inputs[0].items);
    }
}
/* The peek reports every input's batch dimension by name, so that admission counts the input the worker runs (an
 * "image" after another input), not the first one. */
Test(oip, peek_items_by_input_name) {
    const char *s = "{\"inputs\":[{\"shape\":[64,3],\"name\":\"extra\",\"datatype\":\"FP32\",\"data\":[]},"
                    "{\"name\":\"im\\u0061ge\",\"datatype\":\"UINT8\",\"shape\":[2,1,1,1],\"data\":[1,2]},"
                    "{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[0,1],\"data\":[]}]}";
    acm_oip_peek p;
    char err[256];
    cr_assert_eq(acm_oip_peek_request(&p, s, strlen(s), err, sizeof err), 0, "%s", err);
    cr_expect_eq(p.n_inputs, 3);
    cr_expect_eq(acm_oip_peek_items(&p, "extra"), 64);
    cr_expect_eq(acm_oip_peek_items(&p, "image"), 2, "the name is decoded (\\u0061)");
    cr_expect_eq(acm_oip_peek_items(&p, "pixel_values"), 1, "shape[0] = 0 counts as 1");
    cr_expect_eq(acm_oip_peek_items(&p, "nope"), 0);
}

/* The id is echoed exactly: multi-byte UTF-8 whole at any length up to ACM_OIP_MAX_ID bytes (it used to be cut at
 * 127 bytes, inside a character, which jansson then refused); past the limit, a 400 naming it. */
Test(oip, id_is_kept_exactly_up_to_the_limit) {
    char id[ACM_OIP_MAX_ID + 8], *json = malloc(2 * ACM_OIP_MAX_ID + 256);
    size_t n = 0;
    while (n + 2 <= ACM_OIP_MAX_ID - 2) memcpy(id + n, "\xc3\xa9", 2), n += 2; /* "é" x 511, then 2 ASCII bytes */
    id[n++] = 'z', id[n++] = 'z';
    id[n] = 0;
    cr_assert_eq(n, ACM_OIP_MAX_ID);
    acm_oip_request r;
    char err[256];
    sprintf(json, "{\"id\":\"%s\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}]}", id);
    cr_assert_eq(parse(&r, json, err, sizeof err), 0, "%s", err);
    cr_expect_str_eq(r.id, id);
    char *resp = acm_oip_response("m", "v", r.id, NULL, (const float[]){1.0f}, 1, 1, (const char *const[]){"l"});
    cr_assert(resp, "the response with a %zu-byte id was refused", n);
    json_t *j = json_loads(resp, 0, NULL);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    free(resp);
    acm_oip_request_free(&r);
    sprintf(json, "{\"id\":\"%sy\",\"inputs\":[{\"name\":\"x\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}]}", id);
    cr_expect_eq(parse(&r, json, err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "id") && strstr(err, "1024"), "%s", err);
    free(json);
}

/* NaN or Infinity in a tensor's data is not JSON: the error says so and names the input. */
Test(oip, non_finite_json_numbers_name_the_input) {
    const char *cases[] = {"NaN", "Infinity", "-Infinity", "1e999"};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char json[256], err[256];
        snprintf(json, sizeof json, "{\"inputs\":[{\"name\":\"a\",\"datatype\":\"FP32\",\"shape\":[1],\"data\":[1]},"
                                    "{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[2],\"data\":[0.5,%s]}]}",
                 cases[i]);
        acm_oip_request r;
        cr_expect_eq(parse(&r, json, err, sizeof err), ACM_OIP_EJSON, "%s", cases[i]);
        cr_expect(strstr(err, "input 'pixel_values'") && strstr(err, "NaN and Inf"), "%s: %s", cases[i], err);
    }
}

/* A logit JSON cannot carry fails the response instead of leaving "data" shorter than its shape. */
Test(oip, response_refuses_non_finite_logits) {
    const float lg[2] = {1.0f, NAN};
    const char *const labels[] = {"a"};
    cr_expect_null(acm_oip_response("m", "v", "id", NULL, lg, 1, 2, labels));
    size_t jl, total;
    char *bin = acm_oip_response_bin("m", "v", "id", NULL, lg, 1, 2, labels, 1, 0, &jl, &total);
    cr_expect(bin, "binary logits carry NaN as it is");
    free(bin);
}

/* JSON escaping of client bytes: UTF-8 copied, ill-formed sequences replaced by U+FFFD (one per maximal subpart),
 * control characters escaped; truncation never splits a character. */
Test(oip, json_escape_keeps_utf8_and_replaces_invalid_bytes) {
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x91\x95", "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x91\x95"},
        {"a\xff" "b", "a\xef\xbf\xbd" "b"},                 /* a byte that never starts a sequence */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},           /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* a surrogate */
        {"\xe2\x82" "x", "\xef\xbf\xbd" "x"},               /* a truncated 3-byte sequence: one U+FFFD */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* above U+10FFFF */
        {"\xe2\x82", "\xef\xbf\xbd"},                        /* cut at the end */
        {"l1\nl2\t\x01\x7f\"\\", "l1\\nl2\\t\\u0001\x7f\\\"\\\\"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char buf[128], want[128];
        acm_error_body(buf, sizeof buf, cases[i].in);
        snprintf(want, sizeof want, "{\"error\":\"%s\"}", cases[i].out);
        cr_expect_str_eq(buf, want, "case %zu", i);
        json_t *j = json_loads(buf, 0, NULL);
        cr_expect(j, "case %zu is not JSON: %s", i, buf);
        json_decref(j);
    }
    cr_expect_eq(acm_utf8_seq("\xf0\x9f\x91\x95", 4), 4);
    cr_expect_eq(acm_utf8_seq("\xf0\x9f\x91", 3), 0);
    /* 3-byte characters and a 16-byte body: whole characters only */
    char small[19];
    acm_error_body(small, sizeof small, "\xe6\x97\xa5\xe6\x9c\xac\xe6\x97\xa5");
    cr_expect_str_eq(small, "{\"error\":\"\xe6\x97\xa5\xe6\x9c\xac\"}");
}

/* The outputs a request names are the outputs returned: a helper says which, the writer leaves out the others (a NULL
 * logits or labels), and a name given twice is refused. */
Test(oip, requested_outputs_only) {
    acm_oip_request r;
    char err[256];
    const char *in = "\"inputs\":[{\"name\":\"a\",\"datatype\":\"UINT8\",\"shape\":[1],\"data\":[1]}]";
    char s[512];
    snprintf(s, sizeof s, "{%s}", in);
    cr_assert_eq(parse(&r, s, err, sizeof err), 0, "%s", err);
    cr_expect(acm_oip_output_requested(&r, "logits") && acm_oip_output_requested(&r, "label"), "none named: all");
    acm_oip_request_free(&r);
    snprintf(s, sizeof s, "{%s,\"outputs\":[{\"name\":\"label\"}]}", in);
    cr_assert_eq(parse(&r, s, err, sizeof err), 0, "%s", err);
    cr_expect(!acm_oip_output_requested(&r, "logits") && acm_oip_output_requested(&r, "label"));
    acm_oip_request_free(&r);
    snprintf(s, sizeof s, "{%s,\"outputs\":[{\"name\":\"label\"},{\"name\":\"label\"}]}", in);
    cr_expect_eq(parse(&r, s, err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "outputs[1]") && strstr(err, "named twice"), "%s", err);

    float logits[4] = {0.5f, -1, 2, 0.25f};
    const char *labels[2] = {"cat", "dog"};
    size_t jl, total;
    char *out = acm_oip_response_bin("m", "v", "i", NULL, NULL, 2, 2, labels, 1, 1, &jl, &total);
    cr_assert(out);
    json_t *j = json_loadb(out, jl, 0, NULL);
    cr_assert(j, "%.*s", (int)jl, out);
    json_t *outs = json_object_get(j, "outputs");
    cr_expect_eq(json_array_size(outs), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(outs, 0), "name")), "label");
    cr_expect_eq(total, jl + 14, "the binary section holds the labels alone");
    json_decref(j);
    free(out);
    out = acm_oip_response_bin("m", "v", "i", NULL, logits, 2, 2, NULL, 0, 0, &jl, &total);
    cr_assert(out);
    j = json_loads(out, 0, NULL);
    cr_assert(j, "%s", out);
    outs = json_object_get(j, "outputs");
    cr_expect_eq(json_array_size(outs), 1);
    cr_expect_str_eq(json_string_value(json_object_get(json_array_get(outs, 0), "name")), "logits");
    cr_expect_eq(json_array_size(json_object_get(json_array_get(outs, 0), "data")), 4);
    json_decref(j);
    free(out);
}

/* A speech model's answer: logits [T, K] and text [1], JSON or binary; the sample_rate parameter is read (a number). */
Test(oip, speech_response_and_sample_rate) {
    acm_oip_request r;
    char err[256];
    const char *s = "{\"parameters\":{\"sample_rate\":8000},\"inputs\":[{\"name\":\"audio\",\"datatype\":\"FP32\","
                    "\"shape\":[1,2],\"data\":[0.5,-0.25]}]}";
    cr_assert_eq(parse(&r, s, err, sizeof err), 0, "%s", err);
    cr_expect(r.par.has_sample_rate && r.par.sample_rate == 8000);
    acm_oip_request_free(&r);
    cr_expect_eq(parse(&r, "{\"parameters\":{\"sample_rate\":\"8k\"},\"inputs\":[]}", err, sizeof err), ACM_OIP_EINVAL);
    cr_expect(strstr(err, "sample_rate must be a number"), "%s", err);
    acm_oip_peek pk;
    cr_assert_eq(acm_oip_peek_request(&pk, s, strlen(s), err, sizeof err), 0, "%s", err);
    cr_expect(pk.par.has_sample_rate && pk.par.sample_rate == 8000, "the peek reads it as the parse does");
    const float lg[6] = {1, 2, 3, 4, 5, 6}; /* T = 3, K = 2 */
    size_t jl, total;
    char *out = acm_oip_response_asr("m", "v", "i", NULL, lg, 3, 2, "hi there", 0, 0, &jl, &total);
    cr_assert(out);
    cr_expect_eq(total, jl);
    json_t *j = json_loadb(out, jl, 0, NULL);
    cr_assert(j, "%s", out);
    json_t *o0 = json_array_get(json_object_get(j, "outputs"), 0), *o1 = json_array_get(json_object_get(j, "outputs"), 1);
    cr_expect_str_eq(json_string_value(json_object_get(o0, "name")), "logits");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(o0, "shape"), 0)), 3);
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(o0, "shape"), 1)), 2);
    cr_expect_eq(json_array_size(json_object_get(o0, "data")), 6);
    cr_expect_str_eq(json_string_value(json_object_get(o1, "name")), "text");
    cr_expect_str_eq(json_string_value(json_object_get(o1, "datatype")), "BYTES");
    cr_expect_eq(json_integer_value(json_array_get(json_object_get(o1, "shape"), 0)), 1);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(o1, "data"), 0)), "hi there");
    json_decref(j);
    free(out);
    /* the text alone, binary: 4-byte length and the bytes */
    out = acm_oip_response_asr("m", "v", "i", NULL, NULL, 0, 2, "ab", 0, 1, &jl, &total);
    cr_assert(out);
    cr_expect_eq(total, jl + 4 + 2);
    cr_expect_eq(memcmp(out + jl, "\2\0\0\0ab", 6), 0);
    j = json_loadb(out, jl, 0, NULL);
    cr_expect_eq(json_array_size(json_object_get(j, "outputs")), 1);
    json_decref(j);
    free(out);
}
