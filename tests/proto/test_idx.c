/*
 * test_idx.c — proto/idx.c: the real Fashion-MNIST files (Debian's dataset-fashion-mnist, installed by `make deps`),
 * hand-made raw and gzip buffers, and corrupt inputs (each must fail with a message naming the file and the problem).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "idx.h"

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static uint8_t *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s (run make deps: dataset-fashion-mnist)", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc((size_t)n);
    cr_assert(fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* gzip-compresses buf (deflate with a gzip wrapper: windowBits 15 + 16). */
static uint8_t *gzip(const uint8_t *buf, size_t len, size_t *outlen) {
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    cr_assert(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    uint8_t *out = malloc(cap);
    zs.next_in = (Bytef *)(uintptr_t)buf;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    cr_assert(deflate(&zs, Z_FINISH) == Z_STREAM_END);
    *outlen = cap - zs.avail_out;
    deflateEnd(&zs);
    return out;
}

/* A raw IDX file of unsigned bytes with the given dims; data[i] = i % 7. */
static uint8_t *make_idx(const uint32_t *dims, int nd, size_t *len) {
    size_t count = 1;
    for (int i = 0; i < nd; i++) count *= dims[i];
    *len = 4 + 4 * (size_t)nd + count;
    uint8_t *b = calloc(1, *len);
    b[2] = 0x08;
    b[3] = (uint8_t)nd;
    for (int i = 0; i < nd; i++) {
        b[4 + 4 * i] = (uint8_t)(dims[i] >> 24);
        b[5 + 4 * i] = (uint8_t)(dims[i] >> 16);
        b[6 + 4 * i] = (uint8_t)(dims[i] >> 8);
        b[7 + 4 * i] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < count; i++) b[4 + 4 * nd + i] = (uint8_t)(i % 7);
    return b;
}

static void expect_fail(const uint8_t *b, size_t len, int nd, const char *needle) {
    acm_idx x;
    char err[256] = "";
    int rc = acm_idx_parse(&x, b, len, nd, "bad.idx", err, sizeof err);
    cr_assert(rc < 0, "expected failure containing '%s'", needle);
    cr_assert(strstr(err, "bad.idx: ") == err, "message does not name the file: %s", err);
    cr_assert(strstr(err, needle), "message '%s' does not contain '%s'", err, needle);
    cr_assert(x.data == NULL && x.count == 0);
}

Test(idx, fashion_mnist_files) {
    const char *names[4] = {FMNIST "train-images-idx3-ubyte.gz", FMNIST "train-labels-idx1-ubyte.gz",
                            FMNIST "t10k-images-idx3-ubyte.gz", FMNIST "t10k-labels-idx1-ubyte.gz"};
    const uint32_t counts[2] = {60000, 10000};
    for (int s = 0; s < 2; s++) {
        acm_idx img, lab;
        char err[256];
        size_t n;
        uint8_t *b = slurp(names[2 * s], &n);
        cr_assert_eq(acm_idx_parse(&img, b, n, 3, names[2 * s], err, sizeof err), 0, "%s", err);
        free(b);
        b = slurp(names[2 * s + 1], &n);
        cr_assert_eq(acm_idx_parse(&lab, b, n, 1, names[2 * s + 1], err, sizeof err), 0, "%s", err);
        free(b);
        cr_assert_eq(img.dims[0], counts[s]);
        cr_assert_eq(img.dims[1], 28);
        cr_assert_eq(img.dims[2], 28);
        cr_assert_eq(lab.count, counts[s]);
        cr_assert_eq(acm_idx_check_pair(&img, &lab, 28, 28, 10, "fmnist", err, sizeof err), 0, "%s", err);
        /* every class present, and balanced (Fashion-MNIST has exactly count/10 of each) */
        size_t hist[10] = {0};
        for (size_t i = 0; i < lab.count; i++) hist[lab.data[i]]++;
        for (int c = 0; c < 10; c++) cr_assert_eq(hist[c], counts[s] / 10, "class %d: %zu", c, hist[c]);
        acm_idx_free(&img);
        acm_idx_free(&lab);
    }
}

Test(idx, raw_and_gzip_agree) {
    uint32_t dims[3] = {5, 3, 4};
    size_t len, glen;
    uint8_t *raw = make_idx(dims, 3, &len);
    uint8_t *gz = gzip(raw, len, &glen);
    acm_idx a, b;
    char err[256];
    cr_assert_eq(acm_idx_parse(&a, raw, len, 3, "raw", err, sizeof err), 0, "%s", err);
    cr_assert_eq(acm_idx_parse(&b, gz, glen, 0, "gz", err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.count, 60);
    cr_assert_eq(b.count, 60);
    cr_assert_eq(a.ndim, 3);
    cr_assert(memcmp(a.data, b.data, 60) == 0);
    cr_assert_eq(a.data[59], 59 % 7);
    acm_idx_free(&a);
    acm_idx_free(&b);
    free(raw);
    free(gz);
}

Test(idx, corrupt_inputs) {
    uint32_t dims[3] = {4, 2, 2};
    size_t len;
    uint8_t *b = make_idx(dims, 3, &len);
    expect_fail(b, 3, 0, "too short");
    expect_fail(b, len - 1, 0, "truncated");
    expect_fail(b, 10, 0, "header of 3 dimensions truncated");
    expect_fail(b, len, 1, "expected 1");
    uint8_t *c = malloc(len + 1);
    memcpy(c, b, len);
    c[len] = 9;
    expect_fail(c, len + 1, 0, "trailing bytes");
    memcpy(c, b, len);
    c[0] = 1;
    expect_fail(c, len, 0, "bad magic");
    memcpy(c, b, len);
    c[2] = 0x0D;
    expect_fail(c, len, 0, "element type 0x0d");
    memcpy(c, b, len);
    c[3] = 0;
    expect_fail(c, len, 0, "0 dimensions");
    memcpy(c, b, len);
    c[3] = 9;
    expect_fail(c, len, 0, "9 dimensions");
    memcpy(c, b, len);
    c[5] = 0x01; /* first dim 0x00010004: count far beyond the data */
    expect_fail(c, len, 0, "truncated");
    free(c);
    /* dims whose product overflows */
    uint8_t big[4 + 16] = {0, 0, 8, 4, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                           0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    expect_fail(big, sizeof big, 0, "too large");
    /* gzip: truncated stream and corrupted body */
    size_t glen;
    uint8_t *gz = gzip(b, len, &glen);
    expect_fail(gz, glen / 2, 0, "gzip");
    gz[12] ^= 0xff;
    gz[13] ^= 0x55;
    expect_fail(gz, glen, 0, "");
    free(gz);
    free(b);
}

Test(idx, check_pair) {
    uint32_t di[3] = {3, 2, 2}, dl[1] = {3}, dl2[1] = {4};
    size_t li, ll, ll2;
    uint8_t *bi = make_idx(di, 3, &li), *bl = make_idx(dl, 1, &ll), *bl2 = make_idx(dl2, 1, &ll2);
    acm_idx img, lab, lab2;
    char err[256];
    cr_assert_eq(acm_idx_parse(&img, bi, li, 3, "i", err, sizeof err), 0);
    cr_assert_eq(acm_idx_parse(&lab, bl, ll, 1, "l", err, sizeof err), 0);
    cr_assert_eq(acm_idx_parse(&lab2, bl2, ll2, 1, "l2", err, sizeof err), 0);
    cr_assert_eq(acm_idx_check_pair(&img, &lab, 2, 2, 10, "set", err, sizeof err), 0, "%s", err);
    cr_assert(acm_idx_check_pair(&img, &lab2, 2, 2, 10, "set", err, sizeof err) < 0);
    cr_assert(strstr(err, "3 images but 4 labels"), "%s", err);
    cr_assert(acm_idx_check_pair(&img, &lab, 28, 28, 10, "set", err, sizeof err) < 0);
    cr_assert(strstr(err, "expected 28x28"), "%s", err);
    cr_assert(acm_idx_check_pair(&img, &lab, 2, 2, 2, "set", err, sizeof err) < 0); /* labels 0,1,2 */
    cr_assert(strstr(err, "not below 2 classes"), "%s", err);
    acm_idx_free(&img);
    acm_idx_free(&lab);
    acm_idx_free(&lab2);
    free(bi);
    free(bl);
    free(bl2);
}
