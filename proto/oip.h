/*
 * oip.h — the Open Inference Protocol (KServe v2) JSON wire format, request parsing and response writing, and the
 * server's error bodies. Pure functions over buffers (jansson inside); errors are ACM_OIP_E* codes with a message that
 * names the input and the problem precisely (it becomes the body of a 400).
 *
 * Request (POST /v2/models/{m}[/versions/{v}]/infer), fields read here:
 *   {"id": "abc",                                    optional string, echoed in the response
 *    "parameters": {"compute_budget": 0.4,          optional, (0, 1] (see sla.h)
 *                   "compute_budget_min": 0.2,
 *                   "compute_policy": "cap",        optional: argmax | mean | cap
 *                   "explain": true},               optional: return the per-token compute map
 *    "inputs": [{"name": "image", "datatype": "UINT8", "shape": [B, H, W, C],
 *                "data": [...]}]}                   data flat (row-major) or nested as the shape; exactly Π shape
 *                                                   values; booleans only for BOOL; integers within the datatype's
 *                                                   range; FP32 values finite as float. BYTES inputs are refused.
 * Any other field is ignored ("outputs" included: every output is returned).
 *
 * Response: {"model_name", "model_version", "id", "parameters": {...}, "outputs": [
 *              {"name": "logits", "datatype": "FP32", "shape": [B, K], "data": [...]},
 *              {"name": "label", "datatype": "BYTES", "shape": [B], "data": ["...", ...]}]}
 * Error body (every 4xx/5xx of the server): {"error": "message"}.
 */
#ifndef ACM_PROTO_OIP_H
#define ACM_PROTO_OIP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum { ACM_OIP_EJSON = -1, ACM_OIP_EINVAL = -2, ACM_OIP_ETOOBIG = -3, ACM_OIP_ENOMEM = -4 };

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

typedef struct {
    char id[128]; /* "" when absent */
    int has_budget, has_budget_min, explain;
    double budget, budget_min;
    char policy[16]; /* "" when absent */
    int n_inputs;
    acm_oip_tensor inputs[ACM_OIP_MAX_INPUTS];
} acm_oip_request;

typedef struct {
    size_t max_elements; /* per input; Π shape above this -> ACM_OIP_ETOOBIG */
} acm_oip_limits;

int acm_oip_parse_request(acm_oip_request *r, const char *buf, size_t len, const acm_oip_limits *lim, char *err,
                          size_t errlen);
void acm_oip_request_free(acm_oip_request *r);
/* The input with this name, or NULL. */
const acm_oip_tensor *acm_oip_find_input(const acm_oip_request *r, const char *name);

/* Builds the response; takes ownership of `parameters` (may be NULL). logits [B, K]; labels [B]. Returns a malloc'd
 * NUL-terminated string, or NULL when out of memory. */
char *acm_oip_response(const char *model_name, const char *model_version, const char *id, json_t *parameters,
                       const float *logits, int B, int K, const char *const *labels);

/* {"error": msg} with msg JSON-escaped, truncated to fit; returns the length written (< n). */
size_t acm_error_body(char *buf, size_t n, const char *msg);

#endif
