/*
 * image_fit.c — does letterboxing beat stretching for photos of another shape? Each Fashion-MNIST test image is turned
 * into a non-square picture, that picture goes through proto/image (as a request image would) with fit=stretch and
 * fit=letterbox, and the model classifies the result (policy argmax: the gates' own choice). Prints accuracy per case.
 *
 * Cases (each a 28x28 test image made non-square, then enlarged 2x with bilinear interpolation):
 *   original      the 28x28 image as it is (the model's own accuracy)
 *   square        the image enlarged to 56x56: both fits are the same
 *   wide frame    black margins of 6 px left and right (40x28: the garment keeps its shape in a wider photo), 80x56
 *   tall frame    black margins of 6 px above and below (28x40), 56x80
 *   squashed      the image itself resized to 40 wide x 56 high (the garment distorted, as a wrongly scaled file)
 *   widened       resized to 56 wide x 40 high
 * Fashion-MNIST itself was made by scaling each product photo's longest side to 28 and centring it on black, so a
 * photo framed wider or taller than the garment is the "frame" cases; "squashed"/"widened" are the opposite control.
 *
 * Usage: build/bench/image_fit [MODEL] [DATA_DIR] [N]
 *   defaults models/fmnist-vit-acm.safetensors, /usr/share/datasets/fashion-mnist, all 10000 test images.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "image.h"
#include "train/data.h"

/* Bilinear resampling (pixel centres aligned) of a grey image, for making the test pictures: independent of
 * proto/image's filter on purpose. */
static void bilinear(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh) {
    for (int y = 0; y < dh; y++)
        for (int x = 0; x < dw; x++) {
            double fx = (x + 0.5) * sw / dw - 0.5, fy = (y + 0.5) * sh / dh - 0.5;
            if (fx < 0) fx = 0;
            if (fy < 0) fy = 0;
            int x0 = (int)fx, y0 = (int)fy, x1 = x0 + 1 < sw ? x0 + 1 : x0, y1 = y0 + 1 < sh ? y0 + 1 : y0;
            double ax = fx - x0, ay = fy - y0;
            double v = (1 - ay) * ((1 - ax) * src[y0 * sw + x0] + ax * src[y0 * sw + x1]) +
                       ay * ((1 - ax) * src[y1 * sw + x0] + ax * src[y1 * sw + x1]);
            dst[y * dw + x] = (uint8_t)(v + 0.5);
        }
}

/* Case k of the image px [28, 28] -> out [*h, *w]. */
static void make_case(int k, const uint8_t *px, uint8_t *out, int *w, int *h) {
    uint8_t canvas[40 * 40];
    memset(canvas, 0, sizeof canvas);
    switch (k) {
    case 5: *w = 28, *h = 28, memcpy(out, px, 28 * 28); break;
    case 0: *w = 56, *h = 56, bilinear(out, 56, 56, px, 28, 28); break;
    case 1:
        for (int y = 0; y < 28; y++) memcpy(canvas + y * 40 + 6, px + y * 28, 28);
        *w = 80, *h = 56, bilinear(out, 80, 56, canvas, 40, 28);
        break;
    case 2:
        memcpy(canvas + 6 * 28, px, 28 * 28);
        *w = 56, *h = 80, bilinear(out, 56, 80, canvas, 28, 40);
        break;
    case 3: *w = 40, *h = 56, bilinear(out, 40, 56, px, 28, 28); break;
    default: *w = 56, *h = 40, bilinear(out, 56, 40, px, 28, 28); break;
    }
}

int main(int argc, char **argv) {
    const char *model = argc > 1 ? argv[1] : "models/fmnist-vit-acm.safetensors";
    const char *data = argc > 2 ? argv[2] : "/usr/share/datasets/fashion-mnist";
    char err[512];
    acm_model *m = acm_model_load(model, err, sizeof err);
    if (!m) return fprintf(stderr, "%s\n", err), 1;
    const acm_config *c = acm_model_config(m);
    acmt_images test;
    if (acmt_images_load(&test, data, "t10k", err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
    if (argc > 3 && atoi(argv[3]) > 0 && atoi(argv[3]) < test.n) test.n = atoi(argv[3]);
    acm_worker_params wp = acm_worker_default_params();
    wp.max_batch = 1;
    acm_worker *wk = acm_worker_new(m, wp, err, sizeof err);
    if (!wk) return fprintf(stderr, "%s\n", err), 1;
    const int S = c->image_size, K = c->num_classes;
    float *x = malloc(sizeof(float) * S * S), *logits = malloc(sizeof(float) * K);
    static const char *names[] = {"square 56x56", "wide frame 80x56", "tall frame 56x80", "squashed 40x56",
                                  "widened 56x40", "original 28x28"};
    printf("%s, %lld test images, policy argmax\n| case | stretch | letterbox |\n|---|---|---|\n", model,
           (long long)test.n);
    static const int order[6] = {5, 0, 1, 2, 3, 4}; /* the original first */
    for (int o = 0; o < 6; o++) {
        const int k = order[o];
        long correct[2] = {0, 0};
        for (int f = 0; f < 2; f++) {
            acm_image_params p = {.size = S, .channels = 1, .mean = {c->mean[0]}, .std = {c->std[0]},
                                  .fit = f ? ACM_IMAGE_FIT_LETTERBOX : ACM_IMAGE_FIT_STRETCH};
            for (int64_t i = 0; i < test.n; i++) {
                uint8_t img[80 * 80];
                int w, h;
                make_case(k, test.pixels + i * 28 * 28, img, &w, &h);
                if (acm_image_u8_to_tensor(x, img, h, w, 1, &p, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
                acm_item it = {.pixels = x, .policy = {.kind = ACM_POLICY_ARGMAX}};
                acm_result r = {.logits = logits};
                if (acm_worker_run(wk, &it, &r, 1, err, sizeof err)) return fprintf(stderr, "%s\n", err), 1;
                int best = 0;
                for (int j = 1; j < K; j++)
                    if (logits[j] > logits[best]) best = j;
                correct[f] += best == test.labels[i];
            }
        }
        printf("| %s | %.2f%% | %.2f%% |\n", names[k], 100.0 * correct[0] / test.n, 100.0 * correct[1] / test.n);
        fflush(stdout);
    }
    free(x), free(logits);
    acm_worker_free(wk);
    acmt_images_free(&test);
    acm_model_free(m);
    return 0;
}
