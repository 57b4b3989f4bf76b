/*
 * test_oip.c — proto/oip: OIP v2 request parsing (nested and flat data, datatypes and their ranges, shape/data
 * mismatch, shape overflow, non-finite numbers), the response document and error bodies.
 */
#include <criterion/criterion.h>
#include <jansson.h>
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
    cr_expect(a.has_budget && a.budget == 0.5 && !a.has_budget_min && a.explain);
    cr_expect_str_eq(a.policy, "mean");
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
