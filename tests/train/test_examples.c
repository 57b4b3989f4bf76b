/*
 * test_examples.c — train/examples.c and what it shipped (clients/examples/): `acm-train examples` run again gives the
 * same listing and the same images, each image is the Fashion-MNIST test image its listing names (pixel for pixel),
 * its file name is its true label, and the folder holds nothing the listing does not name.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <spng.h>

#include "train/data.h"

#include "server/harness.h"

#define SHIPPED "clients/examples"

typedef struct {
    char file[64], label[64];
    int cls;
    long index;
} example;

/* The rows "| `file` | label | class | index |" of a listing. */
static int parse_listing(const char *text, example *ex, int max) {
    int n = 0;
    for (const char *l = text; l && *l && n < max; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        example e;
        if (sscanf(l, "| `%63[^`]` | %63[^|]| %d | %ld |", e.file, e.label, &e.cls, &e.index) != 4) continue;
        size_t k = strlen(e.label);
        while (k && e.label[k - 1] == ' ') e.label[--k] = 0;
        ex[n++] = e;
    }
    return n;
}

static void decode_grey(const char *path, uint8_t out[784]) {
    size_t n;
    char *png = th_slurp(path, &n);
    cr_assert(png, "cannot read %s", path);
    spng_ctx *ctx = spng_ctx_new(0);
    cr_assert(ctx);
    spng_set_png_buffer(ctx, png, n);
    struct spng_ihdr ih;
    cr_assert_eq(spng_get_ihdr(ctx, &ih), 0, "%s: not a PNG", path);
    cr_assert(ih.width == 28 && ih.height == 28 && ih.color_type == SPNG_COLOR_TYPE_GRAYSCALE && ih.bit_depth == 8,
              "%s: %ux%u colour type %d depth %d, want 28x28 8-bit grey", path, ih.width, ih.height, ih.color_type,
              ih.bit_depth);
    size_t sz;
    cr_assert_eq(spng_decoded_image_size(ctx, SPNG_FMT_G8, &sz), 0);
    cr_assert_eq(sz, 784);
    cr_assert_eq(spng_decode_image(ctx, out, 784, SPNG_FMT_G8, 0), 0, "%s: does not decode", path);
    spng_ctx_free(ctx);
    free(png);
}

Test(examples, shipped_images_are_the_listed_test_images_and_regenerate) {
    char *listing = th_slurp(SHIPPED "/README.md", NULL);
    cr_assert(listing, SHIPPED "/README.md is missing");
    example ex[32];
    const int n = parse_listing(listing, ex, 32);
    cr_assert_eq(n, 10, "the listing names %d images, want one per class", n);
    acmt_images test;
    char err[512];
    cr_assert_eq(acmt_images_load(&test, "/usr/share/datasets/fashion-mnist", "t10k", err, sizeof err), 0, "%s", err);
    for (int i = 0; i < n; i++) {
        cr_assert(ex[i].cls >= 0 && ex[i].cls < 10 && ex[i].index >= 0 && ex[i].index < test.n, "row %d", i);
        cr_expect_str_eq(ex[i].label, acmt_fmnist_labels[ex[i].cls], "%s: label vs class", ex[i].file);
        cr_expect_eq(test.labels[ex[i].index], ex[i].cls, "%s: test image %ld is class %d, not %d", ex[i].file,
                     ex[i].index, test.labels[ex[i].index], ex[i].cls);
        for (long j = 0; j < ex[i].index; j++) /* the first of its class */
            cr_expect_neq(test.labels[j], ex[i].cls, "%s: test image %ld comes earlier in class %d", ex[i].file, j,
                          ex[i].cls);
        char path[600];
        snprintf(path, sizeof path, SHIPPED "/%.63s", ex[i].file);
        uint8_t px[784];
        decode_grey(path, px);
        cr_expect(memcmp(px, test.pixels + (size_t)ex[i].index * 784, 784) == 0, "%s differs from test image %ld",
                  path, ex[i].index);
    }
    /* nothing else in the folder */
    DIR *d = opendir(SHIPPED);
    cr_assert(d);
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "README.md")) continue;
        int listed = 0;
        for (int i = 0; i < n; i++) listed |= !strcmp(e->d_name, ex[i].file);
        cr_expect(listed, SHIPPED "/%s is not in the listing", e->d_name);
    }
    closedir(d);
    /* the command makes the same listing and images again */
    char dir[] = "/tmp/acm-examples-XXXXXX", cmd[600];
    cr_assert(mkdtemp(dir));
    const char *b = getenv("ACM_BUILD");
    snprintf(cmd, sizeof cmd, "%s/acm-train examples --out %s >/dev/null", b && *b ? b : "build", dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
    char path[600];
    snprintf(path, sizeof path, "%s/README.md", dir);
    char *again = th_slurp(path, NULL);
    cr_assert(again);
    cr_expect_str_eq(again, listing, "the listing differs from the shipped one");
    for (int i = 0; i < n; i++) {
        uint8_t px[784], want[784];
        snprintf(path, sizeof path, "%s/%.63s", dir, ex[i].file);
        decode_grey(path, px);
        snprintf(path, sizeof path, SHIPPED "/%.63s", ex[i].file);
        decode_grey(path, want);
        cr_expect(memcmp(px, want, 784) == 0, "%s: regenerated image differs", ex[i].file);
        snprintf(path, sizeof path, "%s/%.63s", dir, ex[i].file);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/README.md", dir);
    unlink(path);
    rmdir(dir);
    free(again);
    free(listing);
    acmt_images_free(&test);
}

Test(examples, bad_arguments_and_data_folder) {
    const char *b = getenv("ACM_BUILD");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s/acm-train examples --nope 2>/dev/null", b && *b ? b : "build");
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s/acm-train examples --data /nonexistent --out /tmp 2>/dev/null", b && *b ? b : "build");
    cr_expect_eq(WEXITSTATUS(system(cmd)), 1);
}
