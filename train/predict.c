/*
 * predict.c — `acm-train predict MODEL`: classifies the first images of the Fashion-MNIST test set under a budget
 * policy and shows, per image, the prediction, the FLOPs executed against the dense model's, the realised budget and
 * the compute map: per patch, the fraction of learner compute its token received over all ACM modules
 * (docs/METHOD.md §7), drawn as a grid of digits 0-9 (0: no learners, 9: all learners).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/data.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train predict MODEL.safetensors [options]\n"
               "  --data DIR        Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  --first N         classify test images 0..N-1 (default 10)\n"
               "  --policy P        argmax | fixed | mean | cap (default argmax)\n"
               "  --budget B        beta for mean/cap, in (0, 1] (default 0.5)\n"
               "  --k K             k for the fixed policy (default 4)\n"
               "  --no-map          do not draw the compute maps\n");
}

int cmd_predict(int argc, char **argv) {
    const char *path = NULL, *dir = "/usr/share/datasets/fashion-mnist";
    int first = 10, draw = 1;
    acm_policy pol = acm_policy_default();
    pol.beta = 0.5f;
    pol.fixed_k = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--no-map")) {
            draw = 0;
        } else if (!strcmp(a, "--data") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--first") && v) {
            first = (int)strtol(v, &end, 10), i++;
            if (*end || first < 1 || first > 10000) {
                fprintf(stderr, "acm-train predict: --first must be in [1, 10000]\n");
                return 2;
            }
        } else if (!strcmp(a, "--policy") && v) {
            int k = acm_policy_parse(v);
            i++;
            if (k < 0) {
                fprintf(stderr, "acm-train predict: unknown policy '%s' (argmax, fixed, mean, cap)\n", v);
                return 2;
            }
            pol.kind = (acm_policy_kind)k;
        } else if (!strcmp(a, "--budget") && v) {
            pol.beta = strtof(v, &end), i++;
            if (*end || !(pol.beta > 0 && pol.beta <= 1)) {
                fprintf(stderr, "acm-train predict: --budget must be in (0, 1]\n");
                return 2;
            }
        } else if (!strcmp(a, "--k") && v) {
            pol.fixed_k = (int)strtol(v, &end, 10), i++;
            if (*end || pol.fixed_k < 0 || pol.fixed_k > 16) {
                fprintf(stderr, "acm-train predict: --k must be in [0, 16]\n");
                return 2;
            }
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            fprintf(stderr, "acm-train predict: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    acm_model *m = acm_model_load(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "acm-train predict: %s\n", err);
        return 1;
    }
    const acm_config *c = acm_model_config(m);
    if (c->in_chans != 1 || c->image_size != 28) {
        fprintf(stderr, "acm-train predict: %s takes %dx%d images with %d channel(s); Fashion-MNIST is 28x28 grey\n",
                path, c->image_size, c->image_size, c->in_chans);
        acm_model_free(m);
        return 1;
    }
    acmt_images test;
    if (acmt_images_load(&test, dir, "t10k", err, sizeof err)) {
        fprintf(stderr, "acm-train predict: %s\n", err);
        acm_model_free(m);
        return 1;
    }
    if (first > test.n) first = (int)test.n;
    acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 1}, err, sizeof err);
    const int T = c->tokens, A = c->num_acms, K = c->num_classes, g = c->grid;
    float *px = malloc(sizeof(float) * 28 * 28), *logits = malloc(sizeof(float) * (size_t)K);
    uint8_t *kmap = malloc((size_t)(A ? A : 1) * T);
    double *share = malloc(sizeof(double) * (size_t)T);
    double lf_total = 0;
    for (int i = 0; i < A; i++) lf_total += acm_model_acm(m, i)->n * acm_model_learner_flops(m, i);
    printf("model %s (version %s), policy %s", path, acm_model_version(m), acm_policy_name(pol.kind));
    if (pol.kind == ACM_POLICY_MEAN || pol.kind == ACM_POLICY_CAP) printf(" beta %.3g", (double)pol.beta);
    if (pol.kind == ACM_POLICY_FIXED) printf(" k %d", pol.fixed_k);
    printf(", BLAS core %s\n", acm_blas_core());
    int correct = 0, rc = 0;
    for (int n = 0; n < first && w; n++) {
        for (int j = 0; j < 28 * 28; j++)
            px[j] = (test.pixels[(size_t)n * 784 + j] / 255.0f - c->mean[0]) / c->std[0];
        acm_item it = {.pixels = px, .policy = pol};
        acm_result r = {.logits = logits, .kmap = kmap};
        if (acm_worker_run(w, &it, &r, 1, err, sizeof err)) {
            fprintf(stderr, "acm-train predict: %s\n", err);
            rc = 1;
            break;
        }
        int best = 0;
        for (int k = 1; k < K; k++)
            if (logits[k] > logits[best]) best = k;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp(logits[k] - logits[best]);
        correct += best == test.labels[n];
        printf("#%-4d true %-12s predicted %-12s p=%.3f  budget %.3f  FLOPs %.3fM of %.3fM dense\n", n,
               c->labels[test.labels[n]], c->labels[best], 1.0 / s, r.budget, r.flops / 1e6, r.flops_dense / 1e6);
        if (draw && A) {
            for (int t = 0; t < T; t++) {
                double lf = 0;
                for (int i = 0; i < A; i++) lf += kmap[(size_t)i * T + t] * acm_model_learner_flops(m, i);
                share[t] = lf / lf_total;
            }
            printf("      compute map (class token %.2f):\n", share[0]);
            for (int y = 0; y < g; y++) {
                printf("      ");
                for (int x = 0; x < g; x++) printf("%d", (int)fmin(9, floor(share[1 + y * g + x] * 10)));
                printf("\n");
            }
        }
    }
    if (!rc) printf("%d of %d correct\n", correct, first);
    if (!w) {
        fprintf(stderr, "acm-train predict: %s\n", err);
        rc = 1;
    }
    free(px), free(logits), free(kmap), free(share);
    acm_worker_free(w);
    acmt_images_free(&test);
    acm_model_free(m);
    return rc;
}
