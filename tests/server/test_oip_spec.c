/*
 * test_oip_spec.c — every route of the Open Inference Protocol's OpenAPI file answered by acmd and its JSON checked
 * against the file's schemas.
 *
 * The file is tests/server/oip/open_inference_rest.yaml, a verbatim copy of
 * kserve/open-inference-protocol specification/protocol/open_inference_rest.yaml (info.version "2.0"; last changed
 * in commit ff934734c2675b80102abdeb9c2ea2d712026a41, 2023-11-05; copied at d49cc23f89d709d87b210ef9449e273ae243984e),
 * Apache-2.0, its notice at its top (tests/server/oip/README.md). It is read with libyaml; every scalar becomes a JSON
 * string (the schemas use nothing else) and a small checker applies the part of OpenAPI 3.0 that the file uses:
 * $ref, type, properties, required, items, anyOf, additionalProperties.
 *
 * For each path and method of the file (${MODEL_NAME} -> a served model, ${MODEL_VERSION} -> its version, and the
 * same path without "/versions/${MODEL_VERSION}", which the protocol's text makes optional): the route exists, a
 * valid request (itself checked against the request schema) gets 200 and a body of the 200 schema, and a bad one
 * gets the error schema. The file gives the health routes no body; their bodies come from the protocol's text,
 * inference_rest.md of the same commit (a table below). Two departures, both documented in docs/API.md:
 *   - inference_rest.md's $ready_server_response reads {"live": $bool}, a copy of the live object; acmd answers
 *     {"ready": bool} as KServe's own servers do.
 *   - inference_rest.md's $parameters allows only string, number and boolean values; acmd's response parameters hold
 *     an object (`timing`) and nulls. The OpenAPI file's `parameters` schema (any object) is what is checked here.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "server/acmd.h"
#include "server/harness.h"

#define SPEC "tests/server/oip/open_inference_rest.yaml"

/* ---- YAML -> jansson (scalars as strings) ----------------------------------------------------------------------- */

static json_t *yaml__value(yaml_parser_t *p, yaml_event_t *ev);

static int yaml__next(yaml_parser_t *p, yaml_event_t *ev) {
    if (!yaml_parser_parse(p, ev)) {
        cr_log_error("%s: YAML error at line %zu: %s", SPEC, p->problem_mark.line + 1, p->problem ? p->problem : "?");
        return -1;
    }
    return 0;
}

/* The node that starts with *ev (consumed), and every event up to its end. */
static json_t *yaml__value(yaml_parser_t *p, yaml_event_t *ev) {
    json_t *v = NULL;
    yaml_event_t e;
    if (ev->type == YAML_SCALAR_EVENT) {
        v = json_stringn((const char *)ev->data.scalar.value, ev->data.scalar.length);
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        v = json_array();
        while (!yaml__next(p, &e) && e.type != YAML_SEQUENCE_END_EVENT) {
            json_t *item = yaml__value(p, &e);
            if (!item) return json_decref(v), yaml_event_delete(ev), NULL;
            json_array_append_new(v, item);
        }
        yaml_event_delete(&e);
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        v = json_object();
        while (!yaml__next(p, &e) && e.type != YAML_MAPPING_END_EVENT) {
            if (e.type != YAML_SCALAR_EVENT) return yaml_event_delete(&e), json_decref(v), yaml_event_delete(ev), NULL;
            char *key = strndup((const char *)e.data.scalar.value, e.data.scalar.length);
            yaml_event_delete(&e);
            json_t *item = yaml__next(p, &e) ? NULL : yaml__value(p, &e);
            if (!item) return free(key), json_decref(v), yaml_event_delete(ev), NULL;
            json_object_set_new(v, key, item);
            free(key);
        }
        yaml_event_delete(&e);
    }
    yaml_event_delete(ev);
    return v;
}

static json_t *yaml_load(const char *path) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    yaml_parser_t p;
    yaml_parser_initialize(&p);
    yaml_parser_set_input_file(&p, f);
    yaml_event_t ev;
    json_t *doc = NULL;
    while (!doc && !yaml__next(&p, &ev)) {
        const yaml_event_type_t t = ev.type;
        if (t == YAML_MAPPING_START_EVENT || t == YAML_SEQUENCE_START_EVENT || t == YAML_SCALAR_EVENT) {
            doc = yaml__value(&p, &ev);
            break;
        }
        yaml_event_delete(&ev);
        if (t == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&p);
    fclose(f);
    cr_assert(doc, "%s: no document", path);
    return doc;
}

/* ---- the schema checker ------------------------------------------------------------------------------------------ */

static json_t *spec;

static const json_t *resolve(const json_t *s) {
    const char *ref = json_string_value(json_object_get(s, "$ref"));
    if (!ref) return s;
    cr_assert(strncmp(ref, "#/components/schemas/", 21) == 0, "unsupported $ref %s", ref);
    const json_t *t = json_object_get(json_object_get(json_object_get(spec, "components"), "schemas"), ref + 21);
    cr_assert(t, "dangling $ref %s", ref);
    return resolve(t);
}

/* Appends "at: problem" lines to err (when not NULL); returns the number of problems. */
static int check(const json_t *schema, const json_t *v, const char *at, char *err, size_t n) {
    const json_t *s = resolve(schema);
    int bad = 0;
#define FAIL(...)                                                                                                      \
    do {                                                                                                               \
        bad++;                                                                                                         \
        if (err) snprintf(err + strlen(err), n - strlen(err), __VA_ARGS__);                                            \
    } while (0)
    const json_t *any = json_object_get(s, "anyOf");
    if (any) {
        size_t i;
        const json_t *alt;
        int ok = 0;
        json_array_foreach(any, i, alt) ok |= check(alt, v, at, NULL, 0) == 0;
        if (!ok) FAIL("%s: matches none of anyOf\n", at);
    }
    const char *type = json_string_value(json_object_get(s, "type"));
    if (type) {
        int ok = 0;
        if (!strcmp(type, "object")) ok = json_is_object(v);
        else if (!strcmp(type, "array")) ok = json_is_array(v);
        else if (!strcmp(type, "string")) ok = json_is_string(v);
        else if (!strcmp(type, "integer")) ok = json_is_integer(v);
        else if (!strcmp(type, "number")) ok = json_is_number(v);
        else if (!strcmp(type, "boolean")) ok = json_is_boolean(v);
        else cr_assert_fail("unsupported type %s", type);
        if (!ok) {
            FAIL("%s: not of type %s\n", at, type);
            return bad;
        }
    }
    char sub[256];
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(s, "required"), i, e) {
        const char *k = json_string_value(e);
        if (!json_object_get(v, k)) FAIL("%s: required key \"%s\" is missing\n", at, k);
    }
    const json_t *props = json_object_get(s, "properties"), *extra = json_object_get(s, "additionalProperties");
    if (json_is_object(v)) {
        const char *k;
        json_object_foreach((json_t *)v, k, e) {
            const json_t *ps = json_object_get(props, k);
            snprintf(sub, sizeof sub, "%s.%s", at, k);
            if (ps) bad += check(ps, e, sub, err, n);
            else if (json_is_object(extra)) bad += check(extra, e, sub, err, n);
        }
    }
    const json_t *items = json_object_get(s, "items");
    if (items && json_is_array(v)) {
        json_array_foreach(v, i, e) {
            snprintf(sub, sizeof sub, "%s[%zu]", at, i);
            bad += check(items, e, sub, err, n);
        }
    }
#undef FAIL
    return bad;
}

static void expect_schema(const json_t *schema, const char *what, const th_resp *r) {
    json_error_t je;
    json_t *v = json_loads(r->body, 0, &je);
    cr_assert(v, "%s: the body is not JSON (%s): %s", what, je.text, r->body);
    char err[4096] = "";
    cr_expect_eq(check(schema, v, "$", err, sizeof err), 0, "%s: %s\n%s", what, r->body, err);
    json_decref(v);
}

/* The schema of a path's response with this status, or NULL when the file gives it no JSON body. */
static const json_t *response_schema(const json_t *op, const char *status) {
    return json_object_get(json_object_get(json_object_get(json_object_get(json_object_get(op, "responses"), status),
                                                           "content"), "application/json"), "schema");
}

/* ---- the server ------------------------------------------------------------------------------------------------- */

static th_acmd srv;
static char version[64];

static void start(void) {
    spec = yaml_load(SPEC);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(spec, "info"), "version")), "2.0");
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", NULL};
    cr_assert_eq(th_acmd_start(&srv, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&srv, 20), 0, "acmd not ready");
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/v2/models/a", NULL, NULL, 0, &r), 0);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert(j, "%s", r.body);
    snprintf(version, sizeof version, "%s", json_string_value(json_array_get(json_object_get(j, "versions"), 0)));
    json_decref(j);
    th_resp_free(&r);
    cr_assert(version[0]);
}
static void stop(void) {
    cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0, "acmd did not exit 0 on SIGTERM");
    json_decref(spec);
}

TestSuite(oip_spec, .init = start, .fini = stop, .timeout = 60);

/* The file's path with its parameters filled in; without_version drops "/versions/${MODEL_VERSION}". */
static void fill(char *out, size_t n, const char *path, const char *model, int without_version) {
    size_t o = 0;
    for (const char *p = path; *p && o + 1 < n;) {
        if (without_version && !strncmp(p, "/versions/${MODEL_VERSION}", 26)) p += 26;
        else if (!strncmp(p, "${MODEL_NAME}", 13)) o += (size_t)snprintf(out + o, n - o, "%s", model), p += 13;
        else if (!strncmp(p, "${MODEL_VERSION}", 16)) o += (size_t)snprintf(out + o, n - o, "%s", version), p += 16;
        else out[o++] = *p++;
    }
    out[o < n ? o : n - 1] = 0;
}

/* A valid inference request for model a (grey 28x28), itself checked against the file's request schema. */
static char *infer_request(const json_t *op) {
    json_t *data = json_array();
    for (int i = 0; i < 28 * 28; i++) json_array_append_new(data, json_integer(i % 256));
    json_t *req = json_pack("{s:s, s:{s:f}, s:[{s:s, s:s, s:[i,i,i,i], s:o}], s:[{s:s}, {s:s}]}", "id", "spec-1",
                            "parameters", "compute_budget", 0.5, "inputs", "name", "image", "datatype", "UINT8",
                            "shape", 1, 28, 28, 1, "data", data, "outputs", "name", "logits", "name", "label");
    const json_t *schema = json_object_get(json_object_get(json_object_get(json_object_get(op, "requestBody"),
                                                                           "content"), "application/json"), "schema");
    cr_assert(schema, "the infer route has no request schema");
    char err[2048] = "";
    cr_assert_eq(check(schema, req, "request", err, sizeof err), 0, "the test's own request: %s", err);
    char *s = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return s;
}

/* Every path and method of the OpenAPI file is a route of acmd, and answers as the file says. */
Test(oip_spec, every_route_of_the_openapi_file) {
    const char *path;
    json_t *item;
    int routes = 0;
    json_object_foreach(json_object_get(spec, "paths"), path, item) {
        const char *method;
        json_t *op;
        json_object_foreach(item, method, op) {
            if (strcmp(method, "get") && strcmp(method, "post")) continue; /* "parameters" of the path */
            const char *M = strcmp(method, "get") ? "POST" : "GET";
            for (int nv = 0; nv < 2; nv++) {
                char url[256];
                fill(url, sizeof url, path, "a", nv);
                if (nv && !strstr(path, "${MODEL_VERSION}")) continue;
                acmd_route_args args;
                int matched;
                char allow[64];
                cr_expect_neq(acmd_route_match(M, url, &args, &matched, allow, sizeof allow), ACMD_ROUTE_NONE,
                              "%s %s (the file's %s) is not a route", M, url, path);
                th_resp r;
                if (!strcmp(M, "GET")) {
                    cr_assert_eq(th_http(srv.port, "GET", url, NULL, NULL, 0, &r), 0);
                } else {
                    char *body = infer_request(op);
                    cr_assert_eq(th_http(srv.port, "POST", url, "Content-Type: application/json\r\n", body,
                                         strlen(body), &r), 0);
                    free(body);
                }
                cr_expect_eq(r.status, 200, "%s %s: %d %s", M, url, r.status, r.body);
                const json_t *schema = response_schema(op, "200");
                if (schema) expect_schema(schema, url, &r);
                th_resp_free(&r);
                /* the error the file names, where a request can cause it */
                const json_t *err_schema = response_schema(op, "400");
                if (err_schema && !strcmp(M, "POST")) {
                    const char *bad = "{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1],"
                                      "\"data\":[1,2]}]}";
                    cr_assert_eq(th_http(srv.port, "POST", url, "Content-Type: application/json\r\n", bad, strlen(bad),
                                         &r), 0);
                    cr_expect_eq(r.status, 400, "%s: %s", url, r.body);
                    expect_schema(err_schema, url, &r);
                    th_resp_free(&r);
                }
                routes++;
            }
        }
    }
    cr_expect_geq(routes, 9, "only %d routes checked: is the file whole?", routes);
}

/* The bodies of the health routes (the OpenAPI file has none): inference_rest.md's objects. */
Test(oip_spec, health_bodies_as_the_protocol_text_says) {
    static const struct {
        const char *path, *schema;
    } cases[] = {
        {"/v2/health/live",
         "{\"type\":\"object\",\"required\":[\"live\"],\"properties\":{\"live\":{\"type\":\"boolean\"}}}"},
        /* the text's $ready_server_response says "live": a copy error (see the top of this file) */
        {"/v2/health/ready",
         "{\"type\":\"object\",\"required\":[\"ready\"],\"properties\":{\"ready\":{\"type\":\"boolean\"}}}"},
        {"/v2/models/a/ready", "{\"type\":\"object\",\"required\":[\"name\",\"ready\"],"
                               "\"properties\":{\"name\":{\"type\":\"string\"},\"ready\":{\"type\":\"boolean\"}}}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        json_t *schema = json_loads(cases[i].schema, 0, NULL);
        cr_assert(schema);
        th_resp r;
        cr_assert_eq(th_http(srv.port, "GET", cases[i].path, NULL, NULL, 0, &r), 0);
        cr_expect_eq(r.status, 200, "%s: %s", cases[i].path, r.body);
        expect_schema(schema, cases[i].path, &r);
        json_t *j = json_loads(r.body, 0, NULL);
        cr_expect(json_is_true(json_object_get(j, i ? "ready" : "live")), "%s: %s", cases[i].path, r.body);
        json_decref(j);
        th_resp_free(&r);
        json_decref(schema);
    }
}

/* Failed metadata and inference requests: an HTTP error status and the file's error object. */
Test(oip_spec, errors_are_the_error_object) {
    const json_t *schemas = json_object_get(json_object_get(spec, "components"), "schemas");
    static const struct {
        const char *method, *path, *schema;
        int status;
    } cases[] = {
        {"GET", "/v2/models/nope", "metadata_model_error_response", 404},
        {"GET", "/v2/models/a/versions/000000000000", "metadata_model_error_response", 404},
        {"POST", "/v2/models/nope/infer", "inference_error_response", 404},
        {"POST", "/v2/models/a/infer", "inference_error_response", 400},
        {"GET", "/v2/nowhere", "metadata_server_error_response", 404},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const json_t *schema = json_object_get(schemas, cases[i].schema);
        cr_assert(schema, "%s is not in the file", cases[i].schema);
        th_resp r;
        const char *body = "{\"inputs\": 5}";
        if (!strcmp(cases[i].method, "GET"))
            cr_assert_eq(th_http(srv.port, "GET", cases[i].path, NULL, NULL, 0, &r), 0);
        else
            cr_assert_eq(th_http(srv.port, "POST", cases[i].path, "Content-Type: application/json\r\n", body,
                                 strlen(body), &r), 0);
        cr_expect_eq(r.status, cases[i].status, "%s %s: %d %s", cases[i].method, cases[i].path, r.status, r.body);
        expect_schema(schema, cases[i].path, &r);
        th_resp_free(&r);
    }
}

/* The checker itself finds what it should (so that a pass above means something). */
Test(oip_spec, checker_finds_violations) {
    const json_t *s = json_object_get(json_object_get(json_object_get(spec, "components"), "schemas"),
                                      "inference_response");
    cr_assert(s);
    static const char *bad[] = {
        "{\"outputs\":[]}",                                                             /* no model_name */
        "{\"model_name\":1,\"outputs\":[]}",                                            /* not a string */
        "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\"}]}", /* no data */
        "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"shape\":[1.5],\"datatype\":\"FP32\",\"data\":[1]}]}",
        "{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"shape\":[1],\"datatype\":\"FP32\",\"data\":[null]}]}",
        "{\"model_name\":\"m\",\"parameters\":[],\"outputs\":[]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *v = json_loads(bad[i], 0, NULL);
        cr_assert(v);
        cr_expect_gt(check(s, v, "$", NULL, 0), 0, "not caught: %s", bad[i]);
        json_decref(v);
    }
    json_t *ok = json_loads("{\"model_name\":\"m\",\"outputs\":[{\"name\":\"x\",\"shape\":[2],\"datatype\":\"BYTES\","
                            "\"data\":[[\"a\"],[true]]}]}", 0, NULL);
    cr_expect_eq(check(s, ok, "$", NULL, 0), 0);
    json_decref(ok);
}
