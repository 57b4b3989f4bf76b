/*
 * examples.c — `acm-train examples`: the example images that the README and docs/CLI.md send to the server
 * (clients/examples/). For each class, the first image of that class in the Fashion-MNIST test set, written as an
 * 8-bit grey 28×28 PNG named after its true label (`shirt.png`), and a listing (README.md) with the label, the class
 * index and the test-set index of every file.
 *
 * Reproducible: the files depend only on the data set (Debian's dataset-fashion-mnist), libspng and zlib; the
 * choice rule has no randomness. tests/train/test_examples.c regenerates them and compares with the shipped ones.
 * Not a sample of the model's accuracy: the first image of a class is as easy or hard as it happens to be.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <spng.h>

#include "train/commands.h"
#include "train/data.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train examples [options]\n"
               "Writes the first Fashion-MNIST test image of each class as a 28x28 grey PNG named after its label\n"
               "(t-shirt-top.png, trouser.png, ..., ankle-boot.png) and a listing README.md (label, class, test-set\n"
               "index) into DIR.\n\n"
               "  --data DIR   Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  --out DIR    where to write (default clients/examples; created if missing)\n");
}

/* "T-shirt/top" -> "t-shirt-top", "Ankle boot" -> "ankle-boot": lower case, any other character a single '-'. */
static void slug(char *out, size_t n, const char *label) {
    size_t o = 0;
    for (const char *c = label; *c && o + 1 < n; c++) {
        if ((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9')) out[o++] = *c;
        else if (*c >= 'A' && *c <= 'Z') out[o++] = (char)(*c - 'A' + 'a');
        else if (o && out[o - 1] != '-') out[o++] = '-';
    }
    out[o] = 0;
}

static int write_grey_png(const char *path, const uint8_t *px, int w, int h, char *err, size_t errlen) {
    spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
    FILE *f = fopen(path, "wb");
    int rc = -1;
    if (ctx && f) {
        struct spng_ihdr ih = {.width = (uint32_t)w, .height = (uint32_t)h, .bit_depth = 8,
                               .color_type = SPNG_COLOR_TYPE_GRAYSCALE};
        spng_set_png_file(ctx, f);
        spng_set_ihdr(ctx, &ih);
        int e = spng_encode_image(ctx, px, (size_t)w * h, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
        if (e) snprintf(err, errlen, "%.3000s: %s", path, spng_strerror(e));
        else rc = 0;
    } else {
        snprintf(err, errlen, "%.3000s: %s", path, strerror(errno));
    }
    if (f && fclose(f) && !rc) rc = -1, snprintf(err, errlen, "%.3000s: %s", path, strerror(errno));
    spng_ctx_free(ctx);
    return rc;
}

int cmd_examples(int argc, char **argv) {
    const char *dir = "/usr/share/datasets/fashion-mnist", *out = "clients/examples";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data") && v) {
            dir = v, i++;
        } else if (!strcmp(a, "--out") && v) {
            out = v, i++;
        } else {
            fprintf(stderr, "acm-train examples: unexpected argument '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    char err[4200];
    acmt_images test;
    if (acmt_images_load(&test, dir, "t10k", err, sizeof err)) {
        fprintf(stderr, "acm-train examples: %s\n", err);
        return 1;
    }
    if (test.rows != 28 || test.cols != 28) {
        fprintf(stderr, "acm-train examples: %s: images of %dx%d, not 28x28\n", dir, test.rows, test.cols);
        acmt_images_free(&test);
        return 1;
    }
    if (mkdir(out, 0755) && errno != EEXIST) {
        fprintf(stderr, "acm-train examples: %s: %s\n", out, strerror(errno));
        acmt_images_free(&test);
        return 1;
    }
    int64_t first[10];
    for (int k = 0; k < 10; k++) first[k] = -1;
    for (int64_t i = 0; i < test.n; i++)
        if (test.labels[i] >= 0 && test.labels[i] < 10 && first[test.labels[i]] < 0) first[test.labels[i]] = i;
    char path[4200];
    snprintf(path, sizeof path, "%s/README.md", out);
    FILE *list = fopen(path, "w");
    if (!list) {
        fprintf(stderr, "acm-train examples: %s: %s\n", path, strerror(errno));
        acmt_images_free(&test);
        return 1;
    }
    fprintf(list,
            "# Example images\n\n"
            "The first image of each class in the Fashion-MNIST test set (`t10k-images-idx3-ubyte.gz` of Debian's\n"
            "`dataset-fashion-mnist`; Fashion-MNIST is by Zalando Research, MIT licence), as 28×28 8-bit grey PNGs named\n"
            "after their true label. The README's and docs/CLI.md's examples send them to the server:\n\n"
            "    curl -s -H 'Content-Type: image/png' --data-binary @clients/examples/shirt.png \\\n"
            "         localhost:8080/v1/models/fmnist/classify\n\n"
            "Made by `build/acm-train examples` (train/examples.c), which writes these files and this listing; the same\n"
            "data set gives the same files (tests/train/test_examples.c regenerates and compares them). They are the\n"
            "first of their class, not chosen for the model: each is as easy or as hard as it happens to be.\n\n"
            "| file | true label | class index | test-set index |\n|---|---|---|---|\n");
    int rc = 0;
    for (int k = 0; k < 10 && !rc; k++) {
        if (first[k] < 0) {
            fprintf(stderr, "acm-train examples: %s: no test image of class %d\n", dir, k);
            rc = 1;
            break;
        }
        char name[64];
        slug(name, sizeof name, acmt_fmnist_labels[k]);
        snprintf(path, sizeof path, "%s/%s.png", out, name);
        if (write_grey_png(path, test.pixels + (size_t)first[k] * 784, 28, 28, err, sizeof err)) {
            fprintf(stderr, "acm-train examples: %s\n", err);
            rc = 1;
            break;
        }
        fprintf(list, "| `%s.png` | %s | %d | %lld |\n", name, acmt_fmnist_labels[k], k, (long long)first[k]);
        printf("%s  %s (test image %lld)\n", path, acmt_fmnist_labels[k], (long long)first[k]);
    }
    if (fclose(list) && !rc) {
        fprintf(stderr, "acm-train examples: %s/README.md: %s\n", out, strerror(errno));
        rc = 1;
    }
    acmt_images_free(&test);
    return rc;
}
