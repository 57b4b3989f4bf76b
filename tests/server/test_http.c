/*
 * test_http.c — acmd against real HTTP on loopback: every endpoint, headers, and error path of docs/DESIGN.md §6
 * (tests/server/harness.h starts the server; the golden random models serve as "a" (grey 28x28) and "b" (RGB 32x32)).
 * Answers are checked against the engine run in-process on the same input and policy.
 */
#include <criterion/criterion.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spng.h>
#include <turbojpeg.h>

#include "acm.h"
#include "image.h"
#include "server/harness.h"
#include "train/rng.h"
#include "train/vit_train.h"

static th_acmd srv;

static void start(void) {
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--model", "b=tests/golden/vit_b.safetensors",
                          "--workers", "1", "--max-image-pixels", "1000000", NULL};
    cr_assert_eq(th_acmd_start(&srv, args), 0, "acmd did not start");
    cr_assert_eq(th_acmd_wait_ready(&srv, 20), 0, "acmd not ready");
}
static void stop(void) { cr_expect_eq(th_acmd_stop(&srv, SIGTERM, 10), 0, "acmd did not exit 0 on SIGTERM"); }

TestSuite(http, .init = start, .fini = stop, .timeout = 60);

/* A deterministic grey test picture. */
static void picture(uint8_t *px, int w, int h, int c, int seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) px[(y * w + x) * c + k] = (uint8_t)((x * 7 + y * 13 + seed * 31 + k * 50) % 256);
}

/* Expected label index of model file `path` for a decoded input under policy. */
static int engine_label(const char *path, const float *x, acm_policy pol, double *flops) {
    char err[256];
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    acm_worker_params p = acm_worker_default_params();
    p.max_batch = 1;
    acm_worker *w = acm_worker_new(m, p, err, sizeof err);
    cr_assert(w, "%s", err);
    float logits[64];
    acm_item it = {.pixels = x, .policy = pol};
    acm_result res = {.logits = logits};
    cr_assert_eq(acm_worker_run(w, &it, &res, 1, err, sizeof err), 0, "%s", err);
    int K = acm_model_config(m)->num_classes, best = 0;
    for (int k = 1; k < K; k++)
        if (logits[k] > logits[best]) best = k;
    if (flops) *flops = res.flops;
    acm_worker_free(w);
    acm_model_free(m);
    return best;
}

Test(http, health_and_server_metadata) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect(strstr(r.body, "\"live\":true"), "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/ready", NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "name")), "acmd");
    json_decref(j);
    th_resp_free(&r);
}

Test(http, model_metadata_versions_and_readiness) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/v2/models/a", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    const char *ver = json_string_value(json_object_get(j, "model_version"));
    cr_assert(ver && strlen(ver) == 12, "model_version: %s", r.body);
    char path[128], v[16];
    snprintf(v, sizeof v, "%s", ver);
    cr_expect_eq(json_integer_value(json_object_get(j, "image_size")), 28);
    cr_expect_eq(json_array_size(json_object_get(j, "labels")), 10);
    cr_expect_str_eq(json_string_value(json_object_get(j, "cap_order")), "gain", "vit_a has no budget.cap_order");
    cr_expect_str_eq(json_string_value(json_object_get(j, "backend")), "cpu", "the engine backend its workers run on");
    json_decref(j);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v2/models/a/versions/%s", v);
    cr_assert_eq(th_http(srv.port, "GET", path, NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    snprintf(path, sizeof path, "/v2/models/a/versions/%s/ready", v);
    cr_assert_eq(th_http(srv.port, "GET", path, NULL, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/models/a/versions/000000000000", NULL, NULL, 0, &r), 0);
    th_expect_error(&r, 404, "no version");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/models/nope", NULL, NULL, 0, &r), 0);
    th_expect_error(&r, 404, "unknown model");
    th_resp_free(&r);
}

Test(http, not_found_and_method_not_allowed) {
    th_resp r;
    char allow[64];
    cr_assert_eq(th_http(srv.port, "GET", "/nowhere", NULL, NULL, 0, &r), 0);
    th_expect_error(&r, 404, "no route");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "DELETE", "/v2/health/live", NULL, NULL, 0, &r), 0);
    th_expect_error(&r, 405, "not allowed");
    cr_expect(th_header(&r, "Allow", allow, sizeof allow) && strstr(allow, "GET"), "Allow: %s", r.head);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v1/models/a/classify", NULL, NULL, 0, &r), 0);
    th_expect_error(&r, 405, NULL);
    cr_expect(th_header(&r, "Allow", allow, sizeof allow) && strcmp(allow, "POST") == 0, "Allow: %s", r.head);
    th_resp_free(&r);
}

Test(http, request_id_echoed_or_generated) {
    th_resp r;
    char id[160];
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", "X-Request-Id: my-id-42\r\n", NULL, 0, &r), 0);
    cr_expect_str_eq(th_header(&r, "X-Request-Id", id, sizeof id), "my-id-42");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", NULL, NULL, 0, &r), 0);
    cr_expect(th_header(&r, "X-Request-Id", id, sizeof id) && strlen(id) >= 16, "generated id: %s", r.head);
    th_resp_free(&r);
}

Test(http, classify_png_matches_engine) {
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 3);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify",
                         "Content-Type: image/png\r\nX-Compute-Budget: 0.5\r\nX-Request-Id: png-1\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    float x[28 * 28];
    acm_image_params ip = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};
    char err[128];
    cr_assert_eq(acm_image_to_tensor(x, png, n, &ip, err, sizeof err), 0, "%s", err);
    acm_policy pol = acm_policy_default();
    pol.kind = ACM_POLICY_CAP, pol.beta = 0.5f;
    double flops;
    int want = engine_label("tests/golden/vit_a.safetensors", x, pol, &flops);
    cr_expect_eq(json_integer_value(json_object_get(j, "index")), want, "%s", r.body);
    cr_expect_eq(json_number_value(json_object_get(j, "flops")), flops);
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "header");
    cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), "cap");
    cr_expect_eq(json_number_value(json_object_get(j, "budget_applied")), 0.5);
    cr_expect_leq(json_number_value(json_object_get(j, "budget_realised")), 0.5 + 1e-9);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), "png-1");
    cr_expect_eq(json_array_size(json_object_get(j, "top_k")), 5);
    json_t *t = json_object_get(j, "timing");
    cr_expect(json_is_number(json_object_get(t, "queue_ms")) && json_is_number(json_object_get(t, "compute_ms")) &&
              json_is_number(json_object_get(t, "total_ms")), "timing: %s", r.body);
    cr_expect(json_is_string(json_object_get(j, "model_version")));
    cr_expect_eq(json_integer_value(json_object_get(j, "batch_size")), 1);
    cr_expect(!json_object_get(j, "compute_map"));
    char h[256];
    cr_expect(th_header(&r, "X-Flops", h, sizeof h) && atof(h) == flops, "X-Flops: %s", r.head);
    cr_expect(th_header(&r, "X-Flops-Dense", h, sizeof h), "%s", r.head);
    cr_expect(th_header(&r, "X-Compute-Budget-Applied", h, sizeof h) && atof(h) == 0.5, "%s", r.head);
    cr_expect(th_header(&r, "Server-Timing", h, sizeof h) && strstr(h, "queue;dur=") && strstr(h, "compute;dur=") &&
                  strstr(h, "total;dur="), "%s", r.head);
    json_decref(j);
    th_resp_free(&r);
    free(png);
}

Test(http, classify_explain_returns_compute_map) {
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 5);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify?explain=1", "Content-Type: image/png\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    json_t *cm = json_object_get(j, "compute_map");
    cr_assert(cm, "%s", r.body);
    cr_expect_eq(json_integer_value(json_object_get(cm, "tokens")), 50);
    json_t *mods = json_object_get(cm, "modules");
    cr_assert_eq(json_array_size(mods), 4);
    cr_expect_eq(json_array_size(json_object_get(json_array_get(mods, 0), "k")), 50);
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "default");
    cr_expect(json_is_null(json_object_get(j, "budget_requested")));
    json_decref(j);
    th_resp_free(&r);
    free(png);
}

Test(http, classify_jpeg_pnm_and_colour) {
    /* PGM with maxval 1023 (16-bit samples) to the grey model */
    const int W = 40, H = 30;
    size_t n = 0;
    uint8_t *pgm = malloc(64 + (size_t)W * H * 2);
    n = (size_t)sprintf((char *)pgm, "P5\n# comment\n%d %d\n1023\n", W, H);
    for (int i = 0; i < W * H; i++) pgm[n++] = (uint8_t)((i * 5 % 1024) >> 8), pgm[n++] = (uint8_t)(i * 5 % 1024);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/x-portable-graymap\r\n", pgm, n, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    free(pgm);
    /* colour PPM to the RGB model b, and a grey PNG to b (channels replicated) */
    char ppm[64 + 3 * 32 * 32];
    n = (size_t)sprintf(ppm, "P6 32 32 255\n");
    picture((uint8_t *)ppm + n, 32, 32, 3, 1);
    n += 3 * 32 * 32;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/b/classify", "Content-Type: image/x-portable-pixmap\r\n", ppm, n, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    /* a 256x256 colour JPEG to the grey model (scaled decoding, luma) */
    uint8_t *rgb = malloc(256 * 256 * 3);
    picture(rgb, 256, 256, 3, 6);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jn = 0;
    cr_assert_eq(tjCompress2(tj, rgb, 256, 0, 256, TJPF_RGB, &jpg, &jn, TJSAMP_420, 90, 0), 0);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/jpeg\r\n", jpg, jn, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    tjFree(jpg);
    tjDestroy(tj);
    free(rgb);
    uint8_t px[64 * 64];
    picture(px, 64, 64, 1, 2);
    uint8_t *png = th_png(px, 64, 64, 1, &n);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/b/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    free(png);
}

/* Images people have: grey + alpha PNG (8 and 16 bit), PBM; a PNG with a bad CRC is refused, not answered. */
Test(http, classify_grey_alpha_png_pbm_and_a_corrupted_png) {
    char err[256];
    uint8_t ga8[28 * 28 * 2]; /* grey, alpha, grey, alpha, ... */
    uint16_t ga16[28 * 28 * 2];
    for (int i = 0; i < 28 * 28 * 2; i++) ga8[i] = (uint8_t)(i % 2 ? i * 7 : i * 13), ga16[i] = (uint16_t)(ga8[i] * 257);
    for (int depth = 8; depth <= 16; depth += 8) {
        const void *ga = depth == 8 ? (const void *)ga8 : (const void *)ga16;
        spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
        spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
        struct spng_ihdr ih = {.width = 28, .height = 28, .bit_depth = (uint8_t)depth, .color_type = SPNG_COLOR_TYPE_GRAYSCALE_ALPHA};
        spng_set_ihdr(ctx, &ih);
        int e = spng_encode_image(ctx, ga, (size_t)28 * 28 * 2 * depth / 8, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
        size_t n = 0;
        uint8_t *png = e ? NULL : spng_get_png_buffer(ctx, &n, &e);
        spng_ctx_free(ctx);
        cr_assert(png, "%s", spng_strerror(e));
        /* the server's answer is the engine's on the composited input */
        acm_image_params ip = {.size = 28, .channels = 1, .mean = {0.286f}, .std = {0.353f}};
        float x[28 * 28];
        cr_assert_eq(acm_image_to_tensor(x, png, n, &ip, err, sizeof err), 0, "%s", err);
        const int want = engine_label("tests/golden/vit_a.safetensors", x, (acm_policy){.kind = ACM_POLICY_ARGMAX}, NULL);
        th_resp r;
        cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
        cr_expect_eq(r.status, 200, "grey + alpha %d-bit: %s", depth, r.body);
        if (r.status == 200) {
            json_t *j = th_json(&r);
            cr_expect_eq(json_integer_value(json_object_get(j, "index")), want);
            json_decref(j);
        }
        th_resp_free(&r);
        if (depth == 8) { /* the last IDAT's CRC broken: 400 naming it */
            png[n - 13] ^= 1;
            cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
            th_expect_error(&r, 400, "CRC");
            th_resp_free(&r);
        }
        free(png);
    }
    /* a binary PBM under its own media type */
    uint8_t pbm[64 + 4 * 28];
    size_t n = (size_t)sprintf((char *)pbm, "P4\n28 28\n");
    for (int i = 0; i < 4 * 28; i++) pbm[n++] = (uint8_t)(i * 37);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/x-portable-bitmap\r\n", pbm, n, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
}

/* --max-decode-bytes: an image whose decode would need more memory (bounded from its header) gets 400 before any
 * pixel is decoded; a value too small for any PNG is refused at start. */
Test(config, max_decode_bytes_refuses_before_decoding, .timeout = 60) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--max-decode-bytes", "8388608", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    /* progressive 4:4:4, 2000 x 1500: libjpeg keeps 6 bytes a pixel of coefficients, 18 MB */
    const int W = 2000, H = 1500;
    uint8_t *rgb = calloc((size_t)W * H, 3);
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long jn = 0;
    cr_assert_eq(tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpg, &jn, TJSAMP_444, 90, TJFLAG_PROGRESSIVE), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/a/classify", "Content-Type: image/jpeg\r\n", jpg, jn, &r), 0);
    th_expect_error(&r, 400, "memory");
    th_resp_free(&r);
    tjFree(jpg);
    /* the same picture baseline: a DCT-scaled decode, well inside the limit */
    jpg = NULL;
    cr_assert_eq(tjCompress2(tj, rgb, W, 0, H, TJPF_RGB, &jpg, &jn, TJSAMP_444, 90, 0), 0);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/a/classify", "Content-Type: image/jpeg\r\n", jpg, jn, &r), 0);
    cr_expect_eq(r.status, 200, "%s", r.body);
    th_resp_free(&r);
    tjFree(jpg);
    tjDestroy(tj);
    free(rgb);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    char cmd[512];
    const char *b = getenv("ACM_BUILD");
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --max-decode-bytes 1000000 2>/dev/null",
             b && *b ? b : "build");
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2, "--max-decode-bytes below 8 MiB is refused");
}

Test(http, budget_headers) {
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 4);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    th_resp r;
    /* below beta_min (0.25 for vit_a): raised and reported */
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Compute-Budget: 0.1\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    cr_expect_eq(json_number_value(json_object_get(j, "budget_requested")), 0.1);
    cr_expect_float_eq(json_number_value(json_object_get(j, "budget_applied")), 0.25, 1e-6);
    cr_expect(json_is_true(json_object_get(j, "budget_raised")));
    json_decref(j);
    th_resp_free(&r);
    const char *bad[] = {"X-Compute-Budget: 0\r\n", "X-Compute-Budget: 1.5\r\n", "X-Compute-Budget: nan\r\n",
                         "X-Compute-Budget: abc\r\n", "X-Compute-Budget-Min: -1\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char h[128];
        snprintf(h, sizeof h, "Content-Type: image/png\r\n%s", bad[i]);
        cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", h, png, n, &r), 0);
        th_expect_error(&r, 400, "X-Compute-Budget");
        th_resp_free(&r);
    }
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify",
                         "Content-Type: image/png\r\nX-Compute-Budget: 0.4\r\nX-Compute-Budget-Min: 0.6\r\n", png, n, &r), 0);
    th_expect_error(&r, 400, "floor");
    th_resp_free(&r);
    /* a policy without a budget: the default budget (--default-budget 1) under that policy */
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Compute-Policy: mean\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), "mean");
    cr_expect_eq(json_number_value(json_object_get(j, "budget_applied")), 1.0);
    json_decref(j);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Compute-Policy: most\r\n", png, n, &r), 0);
    th_expect_error(&r, 400, "policy");
    th_resp_free(&r);
    /* a floor alone under the default argmax: the request policy (cap) at the default budget raised to the floor;
     * X-Compute-Budget-Min: 1 pins full compute (every learner of every token, no gate: FLOPs = dense for vit_a) */
    double dense = 0;
    const char *floors[][2] = {{"X-Compute-Budget-Min: 1\r\n", "1"}, {"X-Compute-Budget-Min: 0.5\r\n", "1"},
                               {"X-Compute-Budget-Min: 0.5\r\nX-Compute-Policy: mean\r\n", "1"}};
    for (size_t i = 0; i < sizeof floors / sizeof *floors; i++) {
        char h[160];
        snprintf(h, sizeof h, "Content-Type: image/png\r\n%s", floors[i][0]);
        cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", h, png, n, &r), 0);
        cr_assert_eq(r.status, 200, "%s: %s", floors[i][0], r.body);
        j = th_json(&r);
        cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), i == 2 ? "mean" : "cap", "%s", floors[i][0]);
        cr_expect_eq(json_number_value(json_object_get(j, "budget_applied")), atof(floors[i][1]), "%s", floors[i][0]);
        cr_expect_float_eq(json_number_value(json_object_get(j, "budget_realised")), 1.0, 1e-6, "%s", floors[i][0]);
        dense = json_number_value(json_object_get(j, "flops_dense"));
        cr_expect_geq(json_number_value(json_object_get(j, "flops")), dense, "%s", floors[i][0]);
        json_decref(j);
        th_resp_free(&r);
    }
    cr_expect_gt(dense, 0);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify",
                         "Content-Type: image/png\r\nX-Compute-Budget-Min: 0.5\r\nX-Compute-Policy: argmax\r\n", png, n, &r), 0);
    th_expect_error(&r, 400, "argmax");
    th_resp_free(&r);
    free(png);
}

Test(http, classify_errors) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: text/plain\r\n", "hello", 5, &r), 0);
    th_expect_error(&r, 415, "Content-Type");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", "hello", 5, &r), 0);
    th_expect_error(&r, 400, "image");
    th_resp_free(&r);
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 1);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n / 2, &r), 0);
    th_expect_error(&r, 400, "PNG");
    th_resp_free(&r);
    free(png);
    /* over --max-image-pixels (1e6) from the header alone: a PGM header that promises 2000x2000 and has no data */
    const char *big = "P5 2000 2000 255\n";
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/x-portable-graymap\r\n", big, strlen(big), &r), 0);
    th_expect_error(&r, 400, "over the limit");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/zzz/classify", "Content-Type: image/png\r\n", "x", 1, &r), 0);
    th_expect_error(&r, 404, "unknown model");
    th_resp_free(&r);
}

Test(http, too_large_from_content_length_before_body) {
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    const char *req = "POST /v1/models/a/classify HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\n"
                      "Content-Length: 1000000000\r\n\r\n";
    cr_assert_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    th_resp r;
    double t0 = th_now();
    cr_assert_eq(th_read_response(fd, &r), 0); /* answered with no body sent */
    cr_expect_lt(th_now() - t0, 5.0);
    th_expect_error(&r, 413, "over the limit");
    th_resp_free(&r);
    close(fd);
}

static const char *infer_path = "/v2/models/a/infer";

static th_resp infer(const char *json) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", infer_path, "Content-Type: application/json\r\n", json, strlen(json), &r), 0);
    return r;
}

static char *image_json(const char *id, int B, int nested, const char *dtype) {
    size_t cap = 64 + (size_t)B * 784 * 8 + 1024;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap,
                                "{%s%s%s\"parameters\":{\"compute_budget\":0.5},\"inputs\":[{\"name\":\"image\","
                                "\"datatype\":\"%s\",\"shape\":[%d,28,28,1],\"data\":[",
                                id ? "\"id\":\"" : "", id ? id : "", id ? "\"," : "", dtype, B);
    for (int b = 0; b < B; b++) {
        if (nested) o += (size_t)snprintf(s + o, cap - o, "%s[", b ? "," : "");
        for (int y = 0; y < 28; y++) {
            if (nested) o += (size_t)snprintf(s + o, cap - o, "%s[", y ? "," : "");
            for (int x = 0; x < 28; x++)
                o += (size_t)snprintf(s + o, cap - o, "%s%s%d%s", (x || (!nested && (y || b))) ? "," : "",
                                      nested ? "[" : "", (x * 7 + y * 13 + b * 31) % 256, nested ? "]" : "");
            if (nested) o += (size_t)snprintf(s + o, cap - o, "]");
        }
        if (nested) o += (size_t)snprintf(s + o, cap - o, "]");
    }
    snprintf(s + o, cap - o, "]}]}");
    return s;
}

Test(http, infer_flat_and_nested_agree) {
    char *flat = image_json("req-7", 2, 0, "UINT8"), *nested = image_json(NULL, 2, 1, "UINT8");
    th_resp r1 = infer(flat), r2 = infer(nested);
    cr_assert_eq(r1.status, 200, "%s", r1.body);
    cr_assert_eq(r2.status, 200, "%s", r2.body);
    json_t *j1 = th_json(&r1), *j2 = th_json(&r2);
    cr_expect_str_eq(json_string_value(json_object_get(j1, "id")), "req-7");
    cr_expect_str_eq(json_string_value(json_object_get(j1, "model_name")), "a");
    json_t *o1 = json_object_get(j1, "outputs"), *o2 = json_object_get(j2, "outputs");
    json_t *lg1 = json_object_get(json_array_get(o1, 0), "data"), *lg2 = json_object_get(json_array_get(o2, 0), "data");
    cr_assert_eq(json_array_size(lg1), 20);
    for (size_t i = 0; i < 20; i++)
        cr_expect_eq(json_number_value(json_array_get(lg1, i)), json_number_value(json_array_get(lg2, i)));
    cr_expect_eq(json_array_size(json_object_get(json_array_get(o1, 1), "data")), 2);
    json_t *par = json_object_get(j1, "parameters");
    cr_expect_str_eq(json_string_value(json_object_get(par, "budget_source")), "parameter");
    cr_expect(json_number_value(json_object_get(par, "flops")) > 0);
    json_decref(j1), json_decref(j2);
    th_resp_free(&r1), th_resp_free(&r2);
    free(flat), free(nested);
}

Test(http, infer_errors) {
    th_resp r = infer("{\"inputs\": [");
    th_expect_error(&r, 400, "malformed JSON");
    th_resp_free(&r);
    char *s = image_json(NULL, 1, 0, "FP32");
    r = infer(s);
    th_expect_error(&r, 400, "must be UINT8");
    th_resp_free(&r);
    free(s);
    r = infer("{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,2,2,1],\"data\":[1,2,3]}]}");
    th_expect_error(&r, 400, "needs 4 values, data has 3");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[4294967296,4294967296,4294967296,1],"
              "\"data\":[1]}]}");
    th_expect_error(&r, 400, "elements");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,1,2],\"data\":[1e999,0]}]}");
    th_expect_error(&r, 400, "NaN");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,1,2],\"data\":[NaN,0]}]}");
    th_expect_error(&r, 400, "malformed JSON");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,1,2],\"data\":[1e39,0]}]}");
    th_expect_error(&r, 400, "not finite as FP32");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,28,27],\"data\":[]}]}");
    th_expect_error(&r, 400, NULL);
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\",\"shape\":[1,1,1,1],\"data\":[256]}]}");
    th_expect_error(&r, 400, "out of range for UINT8");
    th_resp_free(&r);
    r = infer("{\"inputs\":[{\"name\":\"x\",\"datatype\":\"FOO\",\"shape\":[1],\"data\":[1]}]}");
    th_expect_error(&r, 400, "unknown datatype");
    th_resp_free(&r);
    r = infer("{\"parameters\":{\"compute_budget\":2},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
              "\"shape\":[1,1,1,1],\"data\":[1]}]}");
    th_expect_error(&r, 400, "compute_budget");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "POST", infer_path, "Content-Type: text/xml\r\n", "<a/>", 4, &r), 0);
    th_expect_error(&r, 415, NULL);
    th_resp_free(&r);
}

Test(http, infer_pixel_values_fp32) {
    char *s = malloc(64 * 1024);
    size_t o = (size_t)sprintf(s, "{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,28,28],\"data\":[");
    float x[784];
    for (int i = 0; i < 784; i++) {
        x[i] = (float)((i % 17) - 8) / 8.0f;
        o += (size_t)sprintf(s + o, "%s%.9g", i ? "," : "", x[i]);
    }
    sprintf(s + o, "]}]}");
    th_resp r = infer(s);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    json_t *lab = json_object_get(json_array_get(json_object_get(j, "outputs"), 1), "data");
    int want = engine_label("tests/golden/vit_a.safetensors", x, acm_policy_default(), NULL);
    static const char *labels[] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
    cr_expect_str_eq(json_string_value(json_array_get(lab, 0)), labels[want]);
    json_decref(j);
    th_resp_free(&r);
    free(s);
}

/* Parses the whole exposition: HELP/TYPE before samples, names, label syntax and escaping, cumulative buckets ending
 * in +Inf equal to _count. */
Test(http, metrics_exposition_is_complete_and_valid) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    char ct[128];
    cr_expect(th_header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "text/plain"), "%s", r.head);
    const char *must[] = {"acm_http_requests_total{route=\"classify\",method=\"POST\",code=\"200\"} 0",
                          "acm_inference_requests_total{model=\"a\",version=",
                          "outcome=\"cancelled\"} 0",
                          "acm_inference_rejections_total{model=\"b\",reason=\"queue_full\"} 0",
                          "acm_request_duration_seconds_bucket{model=\"a\",le=\"+Inf\"} 0",
                          "acm_queue_duration_seconds_count{model=\"b\"} 0",
                          "acm_compute_duration_seconds_sum{model=\"a\"} 0",
                          "acm_batch_size_bucket{model=\"a\",le=\"1\"} 0",
                          "acm_request_phase_seconds_bucket{model=\"a\",phase=\"handover\",le=\"+Inf\"} 0",
                          "acm_request_phase_seconds_count{model=\"b\",phase=\"send\"} 0",
                          "acm_queue_depth{model=\"a\"} 0",
                          "acm_flops_executed_total{model=\"a\"} 0",
                          "acm_flops_dense_equivalent_total{model=\"b\"} 0",
                          "acm_request_budget_ratio_bucket{source=\"header\",le=\"0.1\"} 0",
                          "acm_deadline_misses_total{phase=\"queue\"} 0",
                          "acm_build_info{version=",
                          ",backend=\"cpu\"} 1"};
    for (size_t i = 0; i < sizeof must / sizeof *must; i++) cr_expect(strstr(r.body, must[i]), "missing: %s", must[i]);
    char typed[64][64];
    int ntyped = 0;
    char *save, *body = strdup(r.body);
    char last_hist[256] = "";
    double last_cum = -1;
    for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "# HELP ", 7) == 0) continue;
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char name[64], type[32];
            cr_assert_eq(sscanf(line + 7, "%63s %31s", name, type), 2, "%s", line);
            cr_expect(!strcmp(type, "counter") || !strcmp(type, "gauge") || !strcmp(type, "histogram"), "%s", line);
            snprintf(typed[ntyped++], 64, "%s", name);
            continue;
        }
        cr_assert(line[0] != '#', "%s", line);
        /* name */
        size_t k = 0;
        while (line[k] == '_' || (line[k] >= 'a' && line[k] <= 'z') || (line[k] >= 'A' && line[k] <= 'Z') ||
               (k && line[k] >= '0' && line[k] <= '9'))
            k++;
        cr_assert(k > 0, "bad name: %s", line);
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)k, line);
        int known = 0;
        for (int t = 0; t < ntyped; t++) {
            size_t tl = strlen(typed[t]);
            if (!strncmp(name, typed[t], tl) &&
                (!name[tl] || !strcmp(name + tl, "_bucket") || !strcmp(name + tl, "_sum") || !strcmp(name + tl, "_count")))
                known = 1;
        }
        cr_expect(known, "sample without TYPE: %s", line);
        const char *p = line + k;
        char labels[256] = "";
        if (*p == '{') {
            const char *q = p + 1;
            while (*q != '}') { /* key="value" with \\ \" \n escapes */
                while ((*q >= 'a' && *q <= 'z') || *q == '_') q++;
                cr_assert(q[0] == '=' && q[1] == '"', "label syntax: %s", line);
                q += 2;
                while (*q != '"') {
                    cr_assert(*q, "unterminated label: %s", line);
                    if (*q == '\\') {
                        cr_assert(q[1] == '\\' || q[1] == '"' || q[1] == 'n', "bad escape: %s", line);
                        q++;
                    }
                    q++;
                }
                q++;
                if (*q == ',') q++;
            }
            snprintf(labels, sizeof labels, "%.*s", (int)(q - p - 1), p + 1);
            p = q + 1;
        }
        cr_assert(*p == ' ', "no value: %s", line);
        char *end;
        double v = strtod(p + 1, &end);
        cr_assert(end != p + 1 && *end == 0, "value: %s", line);
        cr_expect(v >= 0, "%s", line);
        size_t nl = strlen(name);
        if (nl > 7 && !strcmp(name + nl - 7, "_bucket")) {
            char *le = strstr(labels, "le=\"");
            cr_assert(le, "%s", line);
            char series[256];
            snprintf(series, sizeof series, "%s|%.*s", name, (int)(le - labels), labels);
            if (strcmp(series, last_hist)) snprintf(last_hist, sizeof last_hist, "%s", series), last_cum = -1;
            cr_expect_geq(v, last_cum, "buckets not cumulative: %s", line);
            last_cum = v;
            if (strstr(le, "+Inf")) last_hist[0] = 0;
        } else if (last_hist[0]) {
            cr_expect(0, "histogram series did not end in +Inf before %s", line);
            last_hist[0] = 0;
        }
    }
    free(body);
    th_resp_free(&r);
}

Test(http, metrics_count_requests_and_outcomes) {
    th_resp r;
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 9);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
        cr_expect_eq(r.status, 200);
        th_resp_free(&r);
    }
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", "zz", 2, &r), 0);
    th_resp_free(&r);
    free(png);
    cr_assert_eq(th_http(srv.port, "GET", "/metrics", NULL, NULL, 0, &r), 0);
    cr_expect(strstr(r.body, "acm_http_requests_total{route=\"classify\",method=\"POST\",code=\"200\"} 3"), "%s", r.body);
    cr_expect(strstr(r.body, "acm_http_requests_total{route=\"classify\",method=\"POST\",code=\"400\"} 1"));
    cr_expect(strstr(r.body, "outcome=\"success\"} 3"));
    cr_expect(strstr(r.body, "acm_request_duration_seconds_count{model=\"a\"} 3"));
    cr_expect(strstr(r.body, "acm_inference_rejections_total{model=\"a\",reason=\"bad_request\"} 1"));
    th_resp_free(&r);
}

Test(http, access_log_is_json_lines) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", "X-Request-Id: log-\"me\\\r\ntraceparent: 00-abc-def-01\r\n", NULL, 0, &r), 0);
    th_resp_free(&r);
    char *log = th_acmd_log_wait(&srv, "log-", 10);
    int found = 0;
    char *save;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        cr_expect(j, "log line is not JSON: %s", line);
        if (j && json_object_get(j, "id") && !strcmp(json_string_value(json_object_get(j, "id")), "log-\"me\\")) {
            found = 1;
            cr_expect_eq(json_integer_value(json_object_get(j, "status")), 200);
            cr_expect_str_eq(json_string_value(json_object_get(j, "route")), "health_live");
            cr_expect_str_eq(json_string_value(json_object_get(j, "traceparent")), "00-abc-def-01");
            cr_expect(json_is_string(json_object_get(j, "ts")) && json_is_number(json_object_get(j, "total_ms")) &&
                      json_is_string(json_object_get(j, "peer")));
        }
        json_decref(j);
    }
    cr_expect(found, "no access log line for the request");
    free(log);
}

/* docs/API.md is generated from the route table: it must be what `acmd --print-api` prints. */
Test(api, docs_match_route_table) {
    char cmd[512];
    const char *b = getenv("ACM_BUILD");
    snprintf(cmd, sizeof cmd, "%s/acmd --print-api | cmp -s - docs/API.md", b && *b ? b : "build");
    cr_expect_eq(system(cmd), 0, "docs/API.md is stale: regenerate with `acmd --print-api > docs/API.md`");
}

Test(config, help_print_config_and_bad_flags) {
    char cmd[1024];
    const char *b = getenv("ACM_BUILD");
    b = b && *b ? b : "build";
    snprintf(cmd, sizeof cmd, "%s/acmd --help | grep -q -- '--max-batch .*(default: 8)'", b);
    cr_expect_eq(system(cmd), 0, "--help lacks defaults");
    /* --print-config output is a valid --config that round-trips */
    snprintf(cmd, sizeof cmd,
             "d=$(mktemp -d) && %s/acmd --model a=tests/golden/vit_a.safetensors --workers 3 --print-config > $d/c.json && "
             "%s/acmd --config $d/c.json --print-config | cmp -s - $d/c.json && grep -q '\"workers\": 3' $d/c.json; "
             "rc=$?; rm -rf $d; exit $rc", b, b);
    cr_expect_eq(system(cmd), 0, "--print-config does not round-trip through --config");
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --nope 2>/dev/null", b);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=/nonexistent.safetensors --listen 127.0.0.1:0 2>/dev/null", b);
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
}

/* Without --workers acmd keeps a core for its I/O thread: the cores less one, at least one worker
 * (/v2/models/{m}/stats says how many it started). */
Test(config, default_workers_leave_a_core_to_the_io_thread, .timeout = 60) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/a/stats", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    const int cores = acm_cpu_count();
    cr_expect_eq(json_integer_value(json_object_get(j, "workers")), cores > 2 ? cores - 1 : 1, "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* --worker-nice: each worker thread (named acmd-worker-N) runs that many nice levels above the process (this test's
 * own, which acmd inherits: the suite may run under nice) and the I/O thread keeps the process's; out of range is a
 * usage error. Read from /proc, not timed. */
Test(config, worker_nice_applies_to_the_workers_only, .timeout = 60) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "2", "--worker-nice", "7", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)s.pid);
    DIR *d = opendir(dir);
    cr_assert(d);
    int workers = 0, main_nice = -100;
    errno = 0;
    const int base = getpriority(PRIO_PROCESS, 0);
    cr_assert_eq(errno, 0);
    const long want = base + 7 > 19 ? 19 : base + 7;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[400];
        snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
        FILE *f = fopen(path, "r"); /* not th_slurp: a /proc file has no size to read up to */
        if (!f) continue;           /* a thread that ended meanwhile */
        char st[1024] = "";
        const int got = fgets(st, sizeof st, f) != NULL;
        fclose(f);
        if (!got) continue;
        /* pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime
         * cstime priority nice: nice is field 19 */
        const char *rp = strrchr(st, ')');
        long nice = -100;
        cr_assert(rp && sscanf(rp + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %ld", &nice) == 1,
                  "%s", st);
        if (strstr(st, "(acmd-worker-")) {
            workers++;
            cr_expect_eq(nice, want, "%s", st);
        }
        if (atoi(e->d_name) == (int)s.pid) main_nice = (int)nice;
    }
    closedir(d);
    cr_expect_eq(workers, 2, "two threads named acmd-worker-N");
    cr_expect_eq(main_nice, base, "the I/O thread keeps the process's nice value");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    char cmd[512];
    const char *b = getenv("ACM_BUILD");
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --worker-nice 20 2>&1 | "
                              "grep -q -- '--worker-nice must be in 0..19'", b && *b ? b : "build");
    cr_expect_eq(system(cmd), 0);
}

/* Per-model settings from a --config file (max_batch, default policy and budget), a flag after it overriding the file,
 * and the text access log. */
Test(config, file_with_per_model_settings_and_text_log, .timeout = 60) {
    char dir[] = "/tmp/acmd-config-XXXXXX", path[64];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/acmd.json", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fprintf(f, "{\"workers\": 1, \"log-format\": \"text\", \"max_batch\": 4,\n"
               " \"models\": [{\"name\": \"a\", \"path\": \"tests/golden/vit_a.safetensors\", \"max_batch\": 3,\n"
               "             \"default_policy\": \"cap\", \"default_budget\": 0.5},\n"
               "            {\"name\": \"b\", \"path\": \"tests/golden/vit_b.safetensors\"}]}\n");
    fclose(f);
    th_acmd s;
    const char *args[] = {"--config", path, "--max-batch", "5", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/a", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    cr_expect_eq(json_integer_value(json_object_get(j, "max_batch")), 3);
    cr_expect_str_eq(json_string_value(json_object_get(j, "default_policy")), "cap");
    json_decref(j);
    th_resp_free(&r);
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/b", NULL, NULL, 0, &r), 0);
    j = th_json(&r);
    cr_expect_eq(json_integer_value(json_object_get(j, "max_batch")), 5, "the flag after --config wins");
    cr_expect_str_eq(json_string_value(json_object_get(j, "default_policy")), "argmax");
    json_decref(j);
    th_resp_free(&r);
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 8);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Request-Id: txt-1\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "default");
    cr_expect_str_eq(json_string_value(json_object_get(j, "policy")), "cap");
    cr_expect_eq(json_number_value(json_object_get(j, "budget_applied")), 0.5);
    cr_expect_leq(json_number_value(json_object_get(j, "budget_realised")), 0.5 + 1e-9);
    json_decref(j);
    th_resp_free(&r);
    free(png);
    char *log = th_acmd_log_wait(&s, "id=txt-1", 10);
    cr_expect(strstr(log, "POST /v1/models/a/classify 200 classify") && strstr(log, "id=txt-1"), "%s", log);
    free(log);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    unlink(path);
    rmdir(dir);
}

/* Requests without a body keep their connection: three pipelined GETs (one of them a 404) on one connection get three
 * answers in order, and only the last, which asks for it, closes (libmicrohttpd closes when a response is queued in
 * the handler's first call; acmd answers bodiless requests in the second). */
Test(http, bodiless_requests_keep_the_connection) {
    int fd = th_connect(srv.port);
    cr_assert(fd >= 0);
    const char req[] = "GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /no/such/route HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /v2/health/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send(fd, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)(sizeof req - 1));
    char buf[16384];
    size_t n = 0;
    for (;;) {
        ssize_t k = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    buf[n] = 0;
    int status[4] = {0}, count = 0;
    for (const char *p = buf; (p = strstr(p, "HTTP/1.1 ")) && count < 4; p += 9) status[count++] = atoi(p + 9);
    cr_assert_eq(count, 3, "%d answers on one connection, want 3:\n%s", count, buf);
    cr_expect_eq(status[0], 200);
    cr_expect_eq(status[1], 404);
    cr_expect_eq(status[2], 200);
}

/* ---- issue 16 §2: ids, UTF-8, non-finite numbers, half-closed clients, timeouts, the text log --------------------- */

/* A small random ViT (28x28 grey, 10 classes) with UTF-8 labels; every weight times weight_scale (1e30: the logits
 * overflow to NaN whatever the input). */
static void labelled_model(const char *path, const char *const *labels, float weight_scale) {
    acmt_vit_config c = {.image_size = 28, .patch_size = 7, .in_chans = 1, .dim = 32, .depth = 1, .heads = 4,
                         .mlp_hidden = 64, .num_classes = 10, .ln_eps = 1e-6f};
    char err[256], extra[1024];
    acmt_vit *v = acmt_vit_new(&c, 1, err, sizeof err);
    cr_assert(v, "%s", err);
    acmt_rng rng;
    acmt_rng_seed(&rng, 5, 0);
    acmt_vit_init(v, &rng);
    for (int64_t i = 0; i < v->nparams; i++) v->params[i] *= weight_scale;
    json_t *lab = json_array();
    for (int k = 0; k < 10; k++) json_array_append_new(lab, json_string(labels[k]));
    json_t *x = json_pack("{s:o}", "labels", lab);
    char *xs = json_dumps(x, JSON_COMPACT);
    snprintf(extra, sizeof extra, "%s", xs);
    free(xs);
    json_decref(x);
    cr_assert_eq(acmt_vit_save_model(v, path, extra, err, sizeof err), 0, "%s", err);
    acmt_vit_free(v);
}

static const char *const utf8_labels[10] = {"T-shirt/\xc3\xa9t\xc3\xa9", "Hose \xc3\xbc", "\xe6\x97\xa5\xe6\x9c\xac",
                                            "\xf0\x9f\x91\x97 dress", "Co\xc3\xa2t", "\xd0\xa1\xd0\xb0\xd0\xbd",
                                            "\"q\" \\ x", "Sneaker\xe2\x84\xa2", "\xce\xb2\xce\xb1g", "boot"};

/* Starts acmd on a model "u" with UTF-8 labels and "huge" whose logits are NaN (workers 1, the given extra args). */
static void start_labelled(th_acmd *s, char *dir, const char *const *extra) {
    char pu[128], ph[128];
    snprintf(pu, sizeof pu, "%s/u.safetensors", dir);
    snprintf(ph, sizeof ph, "%s/huge.safetensors", dir);
    labelled_model(pu, utf8_labels, 1.0f);
    labelled_model(ph, utf8_labels, 1e30f);
    char mu[160], mh[160];
    snprintf(mu, sizeof mu, "u=%s", pu);
    snprintf(mh, sizeof mh, "huge=%s", ph);
    const char *args[16] = {"--model", mu, "--model", mh, "--workers", "1"};
    int n = 6;
    for (; extra && *extra && n < 15; extra++) args[n++] = *extra;
    args[n] = NULL;
    cr_assert_eq(th_acmd_start(s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(s, 30), 0);
}

static void rm_labelled(char *dir) {
    char p[160];
    snprintf(p, sizeof p, "%s/u.safetensors", dir);
    unlink(p);
    snprintf(p, sizeof p, "%s/huge.safetensors", dir);
    unlink(p);
    rmdir(dir);
}

/* Labels come back as the same UTF-8 from every route (the flat writer escaped them byte by byte: "é" became
 * "\u00c3\u00a9", i.e. "Ã©"). */
Test(http, non_ascii_labels_come_back_as_the_same_utf8, .timeout = 90) {
    char dir[] = "/tmp/acmd-utf8-XXXXXX";
    cr_assert(mkdtemp(dir));
    th_acmd s;
    start_labelled(&s, dir, NULL);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/u", NULL, NULL, 0, &r), 0);
    json_t *j = th_json(&r);
    for (int k = 0; k < 10; k++)
        cr_expect_str_eq(json_string_value(json_array_get(json_object_get(j, "labels"), (size_t)k)), utf8_labels[k]);
    json_decref(j);
    th_resp_free(&r);
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 2);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/u/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    const int index = (int)json_integer_value(json_object_get(j, "index"));
    cr_assert(index >= 0 && index < 10);
    cr_expect_str_eq(json_string_value(json_object_get(j, "label")), utf8_labels[index], "%s", r.body);
    json_t *top = json_object_get(j, "top_k");
    cr_assert_eq(json_array_size(top), 5);
    for (size_t i = 0; i < 5; i++) {
        const json_t *t = json_array_get(top, i);
        cr_expect_str_eq(json_string_value(json_object_get(t, "label")),
                         utf8_labels[json_integer_value(json_object_get(t, "index"))]);
    }
    json_decref(j);
    th_resp_free(&r);
    free(png);
    /* OIP: every label through jansson, each item's the argmax of its logits */
    char *body = image_json(NULL, 3, 0, "UINT8");
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/u/infer", "Content-Type: application/json\r\n", body, strlen(body), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    json_t *outs = json_object_get(j, "outputs");
    json_t *lg = json_object_get(json_array_get(outs, 0), "data"), *lb = json_object_get(json_array_get(outs, 1), "data");
    cr_assert_eq(json_array_size(lg), 30);
    for (size_t b = 0; b < 3; b++) {
        size_t best = 0;
        for (size_t k = 1; k < 10; k++)
            if (json_number_value(json_array_get(lg, b * 10 + k)) > json_number_value(json_array_get(lg, b * 10 + best))) best = k;
        cr_expect_str_eq(json_string_value(json_array_get(lb, b)), utf8_labels[best]);
    }
    json_decref(j);
    th_resp_free(&r);
    free(body);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    rm_labelled(dir);
}

/* Logits that overflow to NaN are a 500 naming the cause on both routes: OIP used to answer 200 with "data": [] for
 * shape [1,10] (jansson refuses NaN reals), /classify 200 with "confidence":nan (not JSON). */
Test(http, non_finite_logits_are_a_500, .timeout = 90) {
    char dir[] = "/tmp/acmd-nan-XXXXXX";
    cr_assert(mkdtemp(dir));
    th_acmd s;
    start_labelled(&s, dir, NULL);
    th_resp r;
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 2);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    cr_assert_eq(th_http(s.port, "POST", "/v1/models/huge/classify", "Content-Type: image/png\r\n", png, n, &r), 0);
    th_expect_error(&r, 500, "non-finite logits");
    th_resp_free(&r);
    free(png);
    char *body = image_json(NULL, 2, 0, "UINT8");
    cr_assert_eq(th_http(s.port, "POST", "/v2/models/huge/infer", "Content-Type: application/json\r\n", body, strlen(body), &r), 0);
    th_expect_error(&r, 500, "non-finite logits");
    th_resp_free(&r);
    free(body);
    /* a finite input at the edge of float: the golden model overflows too (see below, on the shared server) */
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    rm_labelled(dir);
}

/* pixel_values finite but near FLT_MAX overflow the golden model: 500, not a 200 with fewer logits than its shape;
 * NaN / Infinity (not JSON) and non-finite binary elements are 400s naming the input. */
Test(http, non_finite_inputs_and_outputs) {
    size_t cap = 784 * 16 + 256;
    char *s = malloc(cap);
    size_t o = (size_t)snprintf(s, cap, "{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":[1,1,28,28],\"data\":[");
    for (int i = 0; i < 784; i++) o += (size_t)snprintf(s + o, cap - o, "%s%s", i ? "," : "", i % 2 ? "-3e38" : "3e38");
    snprintf(s + o, cap - o, "]}]}");
    th_resp r = infer(s);
    th_expect_error(&r, 500, "non-finite logits");
    th_resp_free(&r);
    char *nan = strstr(s, "-3e38");
    memcpy(nan, "NaN  ", 5);
    r = infer(s);
    th_expect_error(&r, 400, "input 'pixel_values'");
    th_resp_free(&r);
    free(s);
    /* binary: one +Inf element */
    char head[256];
    const int hl = snprintf(head, sizeof head, "{\"inputs\":[{\"name\":\"pixel_values\",\"datatype\":\"FP32\",\"shape\":"
                                               "[1,1,28,28],\"parameters\":{\"binary_data_size\":%d}}]}", 784 * 4);
    uint8_t *b = calloc(1, (size_t)hl + 784 * 4);
    memcpy(b, head, (size_t)hl);
    const float inf = INFINITY;
    memcpy(b + hl + 100 * 4, &inf, 4);
    char hdr[160];
    snprintf(hdr, sizeof hdr, "Content-Type: application/octet-stream\r\nInference-Header-Content-Length: %d\r\n", hl);
    cr_assert_eq(th_http(srv.port, "POST", infer_path, hdr, b, (size_t)hl + 784 * 4, &r), 0);
    th_expect_error(&r, 400, "input 'pixel_values'");
    th_resp_free(&r);
    free(b);
}

/* The OIP id is echoed exactly, whatever its length up to 1024 bytes: it was cut at 127 bytes, inside a UTF-8
 * character here, and the client got 500 "out of memory". X-Request-Id alike (it was replaced by a generated id
 * past 127 bytes); past the limit, or with bytes a header cannot carry, 400. */
Test(http, ids_are_echoed_exactly_up_to_1024_bytes) {
    char id[1100];
    size_t n = 0;
    while (n + 2 <= 1000) memcpy(id + n, "\xc3\xa9", 2), n += 2;
    id[n] = 0;
    char *body = image_json(id, 1, 0, "UINT8");
    th_resp r = infer(body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    th_resp_free(&r);
    free(body);
    memset(id, 'x', 1025);
    id[1025] = 0;
    body = image_json(id, 1, 0, "UINT8");
    r = infer(body);
    th_expect_error(&r, 400, "1024 bytes");
    th_resp_free(&r);
    free(body);
    /* X-Request-Id: 1024 visible ASCII bytes (spaces inside) echoed as sent; 1025 bytes or non-ASCII: 400 */
    char hdr[1200], got[1100];
    for (int i = 0; i < 1024; i++) id[i] = (char)(i % 50 == 7 ? ' ' : 'a' + i % 26);
    id[1024] = 0;
    snprintf(hdr, sizeof hdr, "X-Request-Id: %s\r\n", id);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", hdr, NULL, 0, &r), 0);
    cr_expect_eq(r.status, 200);
    cr_expect_str_eq(th_header(&r, "X-Request-Id", got, sizeof got), id);
    th_resp_free(&r);
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 1);
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    snprintf(hdr, sizeof hdr, "Content-Type: image/png\r\nX-Request-Id: %s\r\n", id);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", hdr, png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    th_resp_free(&r);
    free(png);
    snprintf(hdr, sizeof hdr, "X-Request-Id: %sz\r\n", id);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", hdr, NULL, 0, &r), 0);
    th_expect_error(&r, 400, "1024 bytes");
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "GET", "/v2/health/live", "X-Request-Id: caf\xc3\xa9\r\n", NULL, 0, &r), 0);
    th_expect_error(&r, 400, "visible ASCII");
    th_resp_free(&r);
}

/* Paths are client bytes: one that is not UTF-8 gives a valid JSON 404 body (the bytes went through raw) and a
 * valid log line, U+FFFD in place of each ill-formed sequence; a UTF-8 path is logged as it is (it was "Ã©"). */
Test(http, invalid_utf8_in_paths_gives_valid_json) {
    th_resp r;
    cr_assert_eq(th_http(srv.port, "GET", "/bad%FF%C3(/caf%C3%A9", "X-Request-Id: utf8-path\r\n", NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404);
    json_error_t e;
    json_t *j = json_loads(r.body, 0, &e);
    cr_assert(j, "404 body is not JSON (%s): %s", e.text, r.body);
    cr_expect(strstr(json_string_value(json_object_get(j, "error")), "/bad\xef\xbf\xbd\xef\xbf\xbd(/caf\xc3\xa9"),
              "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    int found = 0;
    for (double t0 = th_now(); !found && th_now() - t0 < 5; usleep(20000)) {
        char *log = th_acmd_log(&srv), *save;
        for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (!strstr(line, "utf8-path")) continue;
            j = json_loads(line, 0, &e);
            cr_assert(j, "log line is not JSON (%s): %s", e.text, line);
            cr_expect_str_eq(json_string_value(json_object_get(j, "path")), "/bad\xef\xbf\xbd\xef\xbf\xbd(/caf\xc3\xa9");
            cr_expect_eq(json_integer_value(json_object_get(j, "status")), 404);
            json_decref(j);
            found = 1;
        }
        free(log);
    }
    cr_expect(found, "no access log line");
}

/* Sends a whole request and then either half-closes (shutdown(SHUT_WR)) or closes; TCP_CORK puts the request and
 * the FIN in one segment, so that the server sees the FIN before it dispatches the request (no race). Returns the
 * socket (half-close) or -1. */
static int send_then_fin(int port, const char *version, const char *json, int half) {
    int fd = th_connect(port);
    cr_assert(fd >= 0);
    int one = 1;
    cr_assert_eq(setsockopt(fd, IPPROTO_TCP, TCP_CORK, &one, sizeof one), 0);
    char head[256];
    const int hn = snprintf(head, sizeof head, "POST /v2/models/a/infer %s\r\nHost: x\r\nContent-Type: application/json\r\n"
                                               "Content-Length: %zu\r\n\r\n", version, strlen(json));
    cr_assert_eq(send(fd, head, (size_t)hn, MSG_NOSIGNAL), hn);
    cr_assert_eq(send(fd, json, strlen(json), MSG_NOSIGNAL), (ssize_t)strlen(json));
    if (!half) {
        close(fd);
        return -1;
    }
    cr_assert_eq(shutdown(fd, SHUT_WR), 0);
    return fd;
}

/* A client that half-closes after its request still gets the answer (it was cancelled as gone, 499), after at most
 * an interim 100 Continue; HTTP/1.0 too (no 1xx there). One that closed is cancelled and never run. */
Test(http, half_closed_client_gets_its_answer_closed_one_is_cancelled) {
    char *body = image_json("half", 1, 0, "UINT8");
    const char *versions[] = {"HTTP/1.1", "HTTP/1.0"};
    for (int v = 0; v < 2; v++) {
        int fd = send_then_fin(srv.port, versions[v], body, 1);
        th_resp r;
        cr_assert_eq(th_read_response(fd, &r), 0);
        close(fd);
        if (r.status == 100) { /* the probe: the final answer follows it in the body read */
            cr_expect_eq(v, 0, "a 1xx to an HTTP/1.0 client");
            cr_assert(strncmp(r.body, "HTTP/1.1 ", 9) == 0, "after 100: %s", r.body);
            r.status = atoi(r.body + 9);
        }
        cr_expect_eq(r.status, 200, "%s: %s%s", versions[v], r.head, r.body);
        th_resp_free(&r);
    }
    send_then_fin(srv.port, "HTTP/1.1", body, 0);
    double cancelled = 0;
    for (double t0 = th_now(); cancelled < 1 && th_now() - t0 < 5; usleep(10000))
        cancelled = th_metric(srv.port, "outcome=\"cancelled\"} ");
    cr_expect_eq(cancelled, 1, "the closed client's request was not cancelled");
    cr_expect_eq(th_metric(srv.port, "outcome=\"success\"} "), 2);
    cr_expect_eq(th_metric(srv.port, "acm_batch_size_count{model=\"a\"} "), 2, "the closed client's request ran");
    free(body);
}

/* A request that drips its body past --request-timeout is closed by the sweep and recorded as 408 (it was 499, as
 * if the client had left), in the access log and in the metrics. */
Test(http, request_timeout_sweep_is_a_408, .timeout = 60) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--request-timeout", "1", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    int fd = th_connect(s.port);
    cr_assert(fd >= 0);
    const char head[] = "POST /v2/models/a/infer HTTP/1.1\r\nHost: x\r\nX-Request-Id: drip\r\nContent-Type: application/json\r\n"
                        "Content-Length: 1000\r\n\r\n{";
    cr_assert_eq(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
    /* one byte every 0.2 s: never idle for MHD's 1 s, over the 1 s total after a few; the server closes */
    int closed = 0;
    for (double t0 = th_now(); !closed && th_now() - t0 < 10;) {
        usleep(200000);
        char c;
        if (send(fd, " ", 1, MSG_NOSIGNAL) != 1 || recv(fd, &c, 1, MSG_DONTWAIT) == 0) closed = 1;
    }
    close(fd);
    cr_assert(closed, "the dripping request was not closed");
    double n408 = 0;
    for (double t0 = th_now(); n408 < 1 && th_now() - t0 < 5; usleep(20000))
        n408 = th_metric(s.port, "acm_http_requests_total{route=\"infer\",method=\"POST\",code=\"408\"} ");
    cr_expect_eq(n408, 1);
    cr_expect_eq(th_metric(s.port, "acm_http_requests_total{route=\"infer\",method=\"POST\",code=\"499\"} "), 0);
    char *log = th_acmd_log(&s), *save;
    int found = 0;
    for (char *line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (!strstr(line, "\"drip\"")) continue;
        json_t *j = json_loads(line, 0, NULL);
        cr_expect_eq(json_integer_value(json_object_get(j, "status")), 408, "%s", line);
        json_decref(j);
        found = 1;
    }
    cr_expect(found, "no access log line:\n%s", log);
    free(log);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* --log-format text: a decoded %0A (and other control bytes, spaces, ill-formed UTF-8) in a path is written \xHH,
 * never a line of its own. */
Test(http, text_log_escapes_control_characters) {
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-format", "text", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/x%0Afake%20200%0D%09%FF/caf%C3%A9", "X-Request-Id: text-1\r\n", NULL, 0, &r), 0);
    cr_expect_eq(r.status, 404);
    th_resp_free(&r);
    char *log = NULL;
    for (double t0 = th_now(); th_now() - t0 < 5; usleep(20000)) {
        free(log);
        log = th_acmd_log(&s);
        if (strstr(log, "id=text-1")) break;
    }
    const char *line = strstr(log, "GET /x");
    cr_assert(line, "%s", log);
    const char *eol = strchr(line, '\n');
    cr_assert(eol, "%s", log);
    cr_expect_eq(strncmp(line, "GET /x\\x0Afake\\x20200\\x0D\\x09\\xFF/caf\xc3\xa9 404 ", 41), 0, "%.*s",
                 (int)(eol - line), line);
    cr_expect(memmem(line, (size_t)(eol - line), "id=text-1", 9), "%.*s", (int)(eol - line), line);
    free(log);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}

/* Every JSON body ends with one newline (`curl -s` output ends its line), errors included; the binary extension's
 * body is its JSON header (of exactly Inference-Header-Content-Length bytes) and the raw outputs, nothing added. */
Test(http, every_json_body_ends_with_a_newline) {
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 3);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    char *oip = image_json("nl-1", 1, 0, "UINT8");
    const struct {
        const char *method, *path, *headers;
        const void *body;
        size_t len;
        int status;
    } cases[] = {
        {"GET", "/v2/health/live", NULL, NULL, 0, 200},
        {"GET", "/v2/health/ready", NULL, NULL, 0, 200},
        {"GET", "/v2", NULL, NULL, 0, 200},
        {"GET", "/v2/models/a", NULL, NULL, 0, 200},
        {"GET", "/v2/models/a/ready", NULL, NULL, 0, 200},
        {"GET", "/v2/models/a/stats", NULL, NULL, 0, 200},
        {"GET", "/no/such/route", NULL, NULL, 0, 404},
        {"DELETE", "/v2/health/live", NULL, NULL, 0, 405},
        {"POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", png, n, 200},
        {"POST", "/v1/models/a/classify", "Content-Type: image/png\r\n", "", 0, 400},
        {"POST", "/v1/models/a/classify", "Content-Type: text/plain\r\n", "x", 1, 415},
        {"POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", oip, strlen(oip), 200},
        {"POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", "{", 1, 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        th_resp r;
        cr_assert_eq(th_http(srv.port, cases[i].method, cases[i].path, cases[i].headers, cases[i].body, cases[i].len, &r), 0);
        cr_expect_eq(r.status, cases[i].status, "%s %s: %d %s", cases[i].method, cases[i].path, r.status, r.body);
        cr_expect(r.len >= 2 && r.body[r.len - 1] == '\n' && r.body[r.len - 2] != '\n',
                  "%s %s (%d): the body does not end with one newline: [%s]", cases[i].method, cases[i].path, r.status,
                  r.body);
        char cl[32];
        cr_expect(th_header(&r, "Content-Length", cl, sizeof cl) && (size_t)atol(cl) == r.len, "%s %s: Content-Length %s, body %zu",
                  cases[i].method, cases[i].path, cl, r.len);
        json_decref(th_json(&r));
        th_resp_free(&r);
    }
    /* binary outputs: header length as announced, the raw sections right after it, no newline appended */
    const char *bin = "{\"parameters\":{\"binary_data_output\":true},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
                      "\"shape\":[1,2,2,1],\"data\":[0,1,2,3]}]}";
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v2/models/a/infer", "Content-Type: application/json\r\n", bin, strlen(bin), &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char ihcl[32], ct[64];
    cr_assert(th_header(&r, "Inference-Header-Content-Length", ihcl, sizeof ihcl), "%s", r.head);
    cr_expect(th_header(&r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/octet-stream") == 0, "%s", r.head);
    const size_t jl = (size_t)atol(ihcl);
    cr_assert_lt(jl, r.len);
    cr_expect_eq(r.body[jl - 1], '}', "the JSON header ends at the announced length");
    json_t *j = json_loadb(r.body, jl, 0, NULL);
    cr_assert(j, "JSON header of %zu bytes does not parse", jl);
    size_t sections = 0;
    json_t *o;
    size_t k;
    json_array_foreach(json_object_get(j, "outputs"), k, o)
        sections += (size_t)json_integer_value(json_object_get(json_object_get(o, "parameters"), "binary_data_size"));
    cr_expect_eq(jl + sections, r.len, "JSON %zu + binary %zu != body %zu", jl, sections, r.len);
    json_decref(j);
    th_resp_free(&r);
    free(oip);
    free(png);
}

/* budget_requested: the ceiling as asked, in its shortest exact form (0.3, not 0.29999999999999999), and null when
 * only a deadline was given (the deadline chose the budget); budget_applied likewise (0.3, not 0.300000012). */
Test(http, budget_numbers_shortest_and_null_without_a_ceiling) {
    uint8_t px[28 * 28];
    picture(px, 28, 28, 1, 4);
    size_t n;
    uint8_t *png = th_png(px, 28, 28, 1, &n);
    th_resp r;
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Compute-Budget: 0.3\r\n",
                         png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_expect(strstr(r.body, "\"budget_requested\":0.3,"), "%s", r.body);
    cr_expect(strstr(r.body, "\"budget_applied\":0.3,"), "%s", r.body);
    char v[32];
    cr_expect(th_header(&r, "X-Compute-Budget-Applied", v, sizeof v) && strcmp(v, "0.3") == 0, "%s", r.head);
    th_resp_free(&r);
    cr_assert_eq(th_http(srv.port, "POST", "/v1/models/a/classify", "Content-Type: image/png\r\nX-Deadline-Ms: 5000.5\r\n",
                         png, n, &r), 0);
    cr_assert_eq(r.status, 200, "%s", r.body);
    json_t *j = th_json(&r);
    cr_expect_str_eq(json_string_value(json_object_get(j, "budget_source")), "deadline");
    cr_expect(json_is_null(json_object_get(j, "budget_requested")), "deadline only: %s", r.body);
    cr_expect(strstr(r.body, "\"deadline_ms\":5000.5,"), "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    /* OIP: the same keys in parameters */
    const char *req = "{\"parameters\":{\"deadline_ms\":5000},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
                      "\"shape\":[1,2,2,1],\"data\":[0,1,2,3]}]}";
    r = infer(req);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    json_t *par = json_object_get(j, "parameters");
    cr_expect_str_eq(json_string_value(json_object_get(par, "budget_source")), "deadline");
    cr_expect(json_is_null(json_object_get(par, "budget_requested")), "deadline only: %s", r.body);
    json_decref(j);
    th_resp_free(&r);
    req = "{\"parameters\":{\"compute_budget\":0.3},\"inputs\":[{\"name\":\"image\",\"datatype\":\"UINT8\","
          "\"shape\":[1,2,2,1],\"data\":[0,1,2,3]}]}";
    r = infer(req);
    cr_assert_eq(r.status, 200, "%s", r.body);
    j = th_json(&r);
    par = json_object_get(j, "parameters");
    cr_expect_eq(json_number_value(json_object_get(par, "budget_requested")), 0.3, "%s", r.body);
    cr_expect_eq(json_number_value(json_object_get(par, "budget_applied")), 0.3, "%s", r.body);
    json_decref(j);
    th_resp_free(&r);
    free(png);
}

/* acmd --help: every option shows a placeholder for its value (--listen ADDR:PORT), every --config key has its line. */
Test(config, help_names_a_placeholder_for_every_value) {
    const char *b = getenv("ACM_BUILD");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/acmd --help", b && *b ? b : "build");
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    static char help[65536];
    size_t n = fread(help, 1, sizeof help - 1, p);
    help[n] = 0;
    cr_assert_eq(pclose(p), 0);
    cr_expect(strstr(help, "  --listen ADDR:PORT "), "%s", help);
    int lines = 0;
    for (char *l = strstr(help, "\n  --"); l; l = strstr(l + 1, "\n  --")) {
        char flag[64] = "", meta[64] = "";
        sscanf(l + 3, "%63s %63s", flag, meta);
        if (!strcmp(flag, "--print-config") || !strcmp(flag, "--print-api") || !strcmp(flag, "--help") ||
            !strcmp(flag, "--hash-key")) continue; /* modes that print and exit: no configuration key */
        lines++;
        int upper = meta[0] != 0;
        for (const char *c = meta; *c; c++)
            if (!(isupper((unsigned char)*c) || *c == ':' || *c == '=' || *c == '_')) upper = 0;
        cr_expect(upper, "%s: no placeholder for its value (\"%s\")", flag, meta);
    }
    /* every key of the configuration (--print-config) is an option line of --help */
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=x --print-config", b && *b ? b : "build");
    p = popen(cmd, "r");
    cr_assert(p);
    json_t *cfg = json_loadf(p, 0, NULL);
    pclose(p);
    cr_assert(cfg);
    const char *key;
    json_t *v;
    int keys = 0;
    json_object_foreach(cfg, key, v) {
        if (!strcmp(key, "models")) continue;
        char flag[80];
        int k = snprintf(flag, sizeof flag, "\n  --%s ", key);
        for (int i = 5; i < k; i++)
            if (flag[i] == '_') flag[i] = '-';
        cr_expect(strstr(help, flag), "--help has no line for option %s", key);
        keys++;
    }
    cr_expect_eq(lines, keys + 3, "%d option lines in --help, %d options (+ --model, --beta-floor, --config)", lines, keys);
    json_decref(cfg);
}

/* --log-file: the log (access lines, info) goes to the file; warnings and errors go to the file and to stderr. */
Test(config, log_file_takes_the_log_and_stderr_keeps_errors, .timeout = 60) {
    char dir[] = "/tmp/acmd-logfile-XXXXXX", path[80], errp[80];
    cr_assert(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/acmd.log", dir);
    snprintf(errp, sizeof errp, "%s/stderr", dir);
    th_acmd s;
    const char *args[] = {"--model", "a=tests/golden/vit_a.safetensors", "--workers", "1", "--log-file", path, NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    s.keep = 1;
    cr_assert_eq(th_acmd_wait_ready(&s, 20), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/health/live", "X-Request-Id: logfile-1\r\n", NULL, 0, &r), 0);
    th_resp_free(&r);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
    char *err = th_acmd_log(&s);
    th_acmd_cleanup(&s);
    FILE *f = fopen(path, "r");
    cr_assert(f, "no %s", path);
    static char log[1 << 16];
    size_t n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    cr_expect(strstr(log, "\"id\":\"logfile-1\"") && strstr(log, "listening on") && strstr(log, "exit 0"), "log file:\n%s", log);
    cr_expect(!strstr(err, "logfile-1") && !strstr(err, "listening on"), "stderr has info lines:\n%s", err);
    free(err);
    /* an error at start-up: on stderr and in the file */
    char cmd[1024];
    const char *b = getenv("ACM_BUILD");
    snprintf(cmd, sizeof cmd, "%s/acmd --model a=tests/golden/vit_a.safetensors --listen 999.1.1.1:0 --log-file %s 2>%s",
             b && *b ? b : "build", path, errp);
    cr_expect_neq(WEXITSTATUS(system(cmd)), 0);
    f = fopen(errp, "r");
    cr_assert(f);
    n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    cr_expect(strstr(log, "not an IPv4 address"), "stderr:\n%s", log);
    f = fopen(path, "r");
    n = fread(log, 1, sizeof log - 1, f);
    log[n] = 0;
    fclose(f);
    cr_expect(strstr(log, "not an IPv4 address"), "log file:\n%s", log);
    unlink(path), unlink(errp), rmdir(dir);
}
