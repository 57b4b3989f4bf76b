/*
 * test_fmnist.c — the whole Fashion-MNIST test set (10 000 images) sent to acmd as PNG at a fixed budget (cap, beta
 * 0.5) returns the predictions of `acm-train eval` under the same policy (acmt_eval_model_ex, the same code path as
 * the command) for >= 99.95% of the images; differences can only come from batch composition (the server batches
 * requests as they arrive, eval in fixed batches of 64) turning near-ties of the logits.
 * The model is the shipped ACM model when present (models/fmnist-vit-acm.safetensors); until it ships, the golden
 * random-weight model of the same shape (tests/golden/vit_a.safetensors) — the mechanism under test (decoding,
 * normalisation, batching, budgets over HTTP) is the same; only the accuracy figures would differ.
 * Under a sanitizer (3-10x slower) the first 2 000 images are sent instead of all 10 000: the same paths, CI's time.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "sanitized.h"
#include "server/harness.h"
#include "train/eval.h"

#define NTEST 10000
#define NCLIENT 4

#define NRUN (TH_SANITIZED ? 2000 : NTEST)

typedef struct {
    uint8_t px[NTEST][28 * 28];
    int pred[NTEST];
    int got[NTEST];
    int n;
} fm_data;

static void on_image(void *ctx, const acm_model *m, int64_t index, int label, int predicted, const acm_result *res,
                     const uint8_t *pixels) {
    fm_data *d = ctx;
    if (index >= NTEST) return;
    memcpy(d->px[index], pixels, 28 * 28);
    d->pred[index] = predicted;
    if (index + 1 > d->n) d->n = (int)index + 1;
}

typedef struct {
    fm_data *d;
    int port, first, step, failures;
} fm_client;

static void *client_main(void *p) {
    fm_client *c = p;
    for (int i = c->first; i < c->d->n; i += c->step) {
        size_t n;
        uint8_t *png = th_png(c->d->px[i], 28, 28, 1, &n);
        th_resp r;
        c->d->got[i] = -1;
        if (th_http(c->port, "POST", "/v1/models/fmnist/classify",
                    "Content-Type: image/png\r\nX-Compute-Budget: 0.5\r\nX-Compute-Policy: cap\r\n", png, n, &r) == 0 &&
            r.status == 200) {
            json_t *j = json_loads(r.body, 0, NULL);
            c->d->got[i] = (int)json_integer_value(json_object_get(j, "index"));
            json_decref(j);
        } else {
            c->failures++;
        }
        th_resp_free(&r);
        free(png);
    }
    return NULL;
}

Test(fmnist, whole_test_set_as_png_matches_eval, .timeout = 240) {
    const char *model = "models/fmnist-vit-acm.safetensors";
    if (access(model, R_OK) != 0) {
        cr_log_info("%s not shipped yet: using the golden random model of the same shape", model);
        model = "tests/golden/vit_a.safetensors";
    }
    static fm_data d;
    acm_policy pol = acm_policy_default();
    pol.kind = ACM_POLICY_CAP, pol.beta = 0.5f;
    acmt_eval_result er;
    char err[512];
    cr_assert_eq(acmt_eval_model_ex(model, "/usr/share/datasets/fashion-mnist", 64, pol, NRUN, on_image, &d, &er, err,
                                    sizeof err), 0, "%s", err);
    cr_assert_eq(d.n, NRUN);
    th_acmd s;
    char marg[600];
    snprintf(marg, sizeof marg, "fmnist=%s", model);
    const char *args[] = {"--model", marg, "--workers", "2", "--max-batch", "16", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 30), 0);
    pthread_t t[NCLIENT];
    fm_client c[NCLIENT];
    double t0 = th_now();
    for (int i = 0; i < NCLIENT; i++) {
        c[i] = (fm_client){.d = &d, .port = s.port, .first = i, .step = NCLIENT};
        pthread_create(&t[i], NULL, client_main, &c[i]);
    }
    int failures = 0;
    for (int i = 0; i < NCLIENT; i++) pthread_join(t[i], NULL), failures += c[i].failures;
    double secs = th_now() - t0;
    int same = 0;
    for (int i = 0; i < NRUN; i++) same += d.got[i] == d.pred[i];
    cr_log_info("%s: %d of %d predictions as acm-train eval (%.2f%%), %.1f s, %.0f images/s", model, same, NRUN,
                100.0 * same / NRUN, secs, NRUN / secs);
    cr_expect_eq(failures, 0, "%d requests failed", failures);
    cr_expect_geq(same, NRUN - (NRUN * 5 + 9999) / 10000, "only %d of %d predictions agree with eval", same, NRUN);
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}
