/*
 * oip.h — the Open Inference Protocol (KServe v2) JSON wire format, request parsing and response writing, and the
 * server's error bodies. Pure functions over buffers (jansson inside); errors are ACM_OIP_E* codes with a message that
 * names the input and the problem precisely (it becomes the body of a 400).
 *
 * Request (POST /v2/models/{m}[/versions/{v}]/infer), fields read here:
 *   {"id": "abc",                                    optional string of at most ACM_OIP_MAX_ID bytes (UTF-8, as
 *                                                    JSON requires), echoed exactly in the response
 *    "parameters": {"compute_budget": 0.4,          optional, (0, 1] (see sla.h)
 *                   "compute_budget_min": 0.2,
 *                   "compute_policy": "cap",        optional: argmax | mean | cap
 *                   "deadline_ms": 30,              optional number (see sla.h; range checked there)
 *                   "priority": 1,                  optional integer >= 0, Triton's meaning (see sla.h)
 *                   "binary_data_output": true,     optional: every output in the binary section
 *                   "explain": true,                optional: return the per-token compute map
 *                   "sample_rate": 16000},          optional number: the samples per second of an `audio` input
 *    "inputs": [{"name": "image", "datatype": "UINT8", "shape": [B, H, W, C],
 *                "data": [...]}],                   data flat (row-major) or nested as the shape; exactly Π shape
 *                                                   values; booleans only for BOOL; integers within the datatype's
 *                                                   range; FP32 values finite as float (NaN and Infinity are not
 *                                                   JSON: the parse error then names the input whose data holds
 *                                                   them). BYTES inputs are refused.
 *    "outputs": [{"name": "logits", "parameters": {"binary_data": true}}]}   optional: the outputs returned (each
 *                                                   named once; absent or empty: every output), and which of them
 *                                                   as binary data
 * Any other field is ignored.
 *
 * Binary tensor extension (KServe/Triton "binary_data"): the body is a JSON header of Inference-Header-Content-Length
 * bytes followed by a binary section. An input with "parameters": {"binary_data_size": n} and no "data" takes the
 * next n bytes of the binary section (inputs in the order listed), raw little-endian elements, row-major; n must be
 * exactly Π shape × the element size (BOOL, UINT8, INT8 1; UINT16, INT16, FP16 2; UINT32, INT32, FP32 4; UINT64,
 * INT64, FP64 8 bytes) and the binary section must hold exactly the inputs' bytes. Values are checked as JSON values
 * are (BOOL bytes 0 or 1, floats finite). A binary output is written the same way, its JSON entry carrying
 * "parameters": {"binary_data_size": n} instead of "data"; BYTES elements are each a 4-byte little-endian length and
 * the bytes. The response then has Inference-Header-Content-Length = the JSON header's length.
 *
 * Response: {"model_name", "model_version", "id", "parameters": {...}, "outputs": [
 *              {"name": "logits", "datatype": "FP32", "shape": [B, K], "data": [...]},
 *              {"name": "label", "datatype": "BYTES", "shape": [B], "data": ["...", ...]}]}   in this order, each
 *              when requested
 * Error body (every 4xx/5xx of the server): {"error": "message"}.
 */
#ifndef ACM_PROTO_OIP_H
#define ACM_PROTO_OIP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum { ACM_OIP_EJSON = -1, ACM_OIP_EINVAL = -2, ACM_OIP_ETOOBIG = -3, ACM_OIP_ENOMEM = -4 };

/* The longest request "id" echoed, in bytes (a longer one is refused: ACM_OIP_EINVAL naming the limit). Request ids
 * are UUIDs or trace ids in practice; the limit bounds what is copied into every response and log line. */
#define ACM_OIP_MAX_ID 1024

#define ACM_OIP_MAX_DIMS 8
#define ACM_OIP_MAX_INPUTS 4

#define ACM_OIP_DTYPES(X)                                                                                             \
    X(BOOL) X(UINT8) X(UINT16) X(UINT32) X(UINT64) X(INT8) X(INT16) X(INT32) X(INT64) X(FP16) X(FP32) X(FP64) X(BYTES)
typedef enum {
#define X(n) ACM_OIP_##n,
    ACM_OIP_DTYPES(X)
#undef X
        ACM_OIP_DTYPE_COUNT
} acm_oip_dtype;

const char *acm_oip_dtype_name(acm_oip_dtype t);
/* -1 if not one of the names above (exact, upper case as the protocol spells them). */
int acm_oip_dtype_parse(const char *s);

typedef struct {
    char name[64];
    acm_oip_dtype dtype;
    int ndim;
    int64_t shape[ACM_OIP_MAX_DIMS];
    size_t count;  /* Π shape */
    double *data;  /* [count], malloc'd, values checked against dtype */
} acm_oip_tensor;

#define ACM_OIP_MAX_OUTPUTS 8

/* The request's "parameters" (types checked; ranges are sla.h's business). */
typedef struct {
    int has_budget, has_budget_min, has_deadline, has_priority;
    double budget, budget_min, deadline_ms, priority;
    char policy[16]; /* "" when absent */
    int explain, binary_output;
    int has_sample_rate;  /* "sample_rate": the rate of an `audio` input (speech models) */
    double sample_rate;
} acm_oip_params;

typedef struct {
    char id[ACM_OIP_MAX_ID + 1]; /* "" when absent; exactly as sent (valid UTF-8, jansson checks it) */
    acm_oip_params par;
    int n_inputs;
    acm_oip_tensor inputs[ACM_OIP_MAX_INPUTS];
    int n_outputs; /* "outputs" as requested */
    struct {
        char name[64];
        int binary;
    } outputs[ACM_OIP_MAX_OUTPUTS];
} acm_oip_request;

/* What admission needs before the body is parsed in full (on the I/O thread, cheaply): the parameters, parsed and
 * checked exactly as acm_oip_parse_request does, and the name and leading dimension of each input's shape (the
 * number of items, for the cost model: the caller counts the input it will run; 1 when absent or not a positive
 * integer). The JSON header is scanned once, byte by byte, without building anything (strings and brackets skipped,
 * nothing allocated that grows with the body); only the last top-level "parameters" value is decoded, and only when
 * it is at most ACM_OIP_MAX_PARAMS_BYTES long (else ACM_OIP_ETOOBIG: the server answers 400), and of each input's
 * "shape" only the leading integer is read. Malformed JSON around what it reads is found here; elsewhere, by the
 * full parse. */
#define ACM_OIP_MAX_PARAMS_BYTES 65536
typedef struct {
    acm_oip_params par;
    int n_inputs; /* inputs recorded: the first ACM_OIP_MAX_INPUTS (the full parse refuses more) */
    struct {
        char name[64];  /* as acm_oip_tensor.name: truncated alike */
        int64_t items;  /* shape[0] when a positive integer, else 1 */
    } inputs[ACM_OIP_MAX_INPUTS];
} acm_oip_peek;
int acm_oip_peek_request(acm_oip_peek *p, const char *buf, size_t len, char *err, size_t errlen);
/* The items of the first peeked input named `name` (as acm_oip_find_input picks it), or 0 when there is none. */
int64_t acm_oip_peek_items(const acm_oip_peek *p, const char *name);

typedef struct {
    size_t max_elements; /* per input; Π shape above this -> ACM_OIP_ETOOBIG */
} acm_oip_limits;

int acm_oip_parse_request(acm_oip_request *r, const char *buf, size_t len, const acm_oip_limits *lim, char *err,
                          size_t errlen);
/* The same with the binary extension: buf[0..json_len) is the JSON header, buf[json_len..len) the binary section. */
int acm_oip_parse_request_bin(acm_oip_request *r, const char *buf, size_t len, size_t json_len,
                              const acm_oip_limits *lim, char *err, size_t errlen);
/* 1 if output `name` is to be returned: "outputs" names it, or is absent or empty (every output). */
int acm_oip_output_requested(const acm_oip_request *r, const char *name);
/* 1 if the request asked for output `name` as binary data (per output, or binary_data_output). */
int acm_oip_output_binary(const acm_oip_request *r, const char *name);
/* Element size in bytes of a datatype in the binary section (0 for BYTES). */
size_t acm_oip_dtype_size(acm_oip_dtype t);
void acm_oip_request_free(acm_oip_request *r);
/* The input with this name, or NULL. */
const acm_oip_tensor *acm_oip_find_input(const acm_oip_request *r, const char *name);

/* Builds the response; takes ownership of `parameters` (may be NULL). logits [B, K], finite (JSON has no NaN or Inf:
 * a non-finite logit makes the call fail rather than drop the value); labels [B], every string valid UTF-8; either
 * NULL leaves that output out (it was not requested). Returns a malloc'd NUL-terminated string, or NULL when out of
 * memory or on a value JSON cannot carry. */
char *acm_oip_response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                       const float *logits, int B, int K, const char *const *labels);
/* The same with the binary extension: bin_logits / bin_label put that output into the binary section. Returns a
 * malloc'd buffer of *total bytes whose first *json_len bytes are the JSON header (NUL-terminated after *total when
 * no output is binary), or NULL when out of memory. */
char *acm_oip_response_bin(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int B, int K, const char *const *labels, int bin_logits, int bin_label,
                           size_t *json_len, size_t *total);

/* The response of a speech model: "logits" FP32 [T, K] (the CTC logits; NULL: not requested) and "text" BYTES [1]
 * (NULL: not requested), in that order; otherwise as acm_oip_response_bin. */
char *acm_oip_response_asr(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                           const float *logits, int T, int K, const char *text, int bin_logits, int bin_text,
                           size_t *json_len, size_t *total);

/* ---- JSON text from bytes a client sent --------------------------------------------------------------------------
 * Paths, headers and ids may hold any bytes. Every writer of JSON in the server escapes them one character at a time
 * with acm_json_escape_next: '"', '\\' and control characters escaped, well-formed UTF-8 (RFC 3629: no overlongs, no
 * surrogates, nothing above U+10FFFF) copied unchanged, and each maximal ill-formed subsequence (Unicode §3.9's
 * "substitution of maximal subparts") replaced by U+FFFD. The output is always valid JSON and valid UTF-8. */
#define ACM_JSON_ESCAPE_MAX 6 /* bytes acm_json_escape_next writes at most */
/* The JSON string content of the next character of s[0..n) (n >= 1) into out; returns the bytes written, and the
 * bytes of s consumed (>= 1) in *used. */
size_t acm_json_escape_next(char *out, const char *s, size_t n, size_t *used);
/* Length of the well-formed UTF-8 sequence at the start of s[0..n) (1..4), or 0 when there is none. */
size_t acm_utf8_seq(const char *s, size_t n);

/* {"error": msg} with msg JSON-escaped as above, truncated to fit (never inside a character); returns the length
 * written (< n). */
size_t acm_error_body(char *buf, size_t n, const char *msg);

#endif
