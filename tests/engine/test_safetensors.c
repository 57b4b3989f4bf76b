/*
 * test_safetensors.c — the strict reader against a corpus of broken files (built here, byte by byte), the writer's
 * round trip, dtype conversion and realignment. Every broken file must fail with a message naming the problem, and
 * nothing may crash or leak (the suite also runs under ASan).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "safetensors.h"

/* A file from a header string and a data section of data_len bytes (filled with 0x3f). */
static unsigned char *make_file(const char *header, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    unsigned char *buf = malloc(*len);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    memset(buf + 8 + hl, 0x3f, data_len);
    return buf;
}

static void expect_error(const char *header, size_t data_len, const char *needle) {
    size_t len;
    unsigned char *buf = make_file(header, data_len, &len);
    acm_st_file f;
    char err[512] = "";
    int rc = acm__st_parse(&f, buf, len, err, sizeof err);
    cr_expect_eq(rc, ACM_EFORMAT, "header %s: expected failure, got %d", header, rc);
    cr_expect(strstr(err, needle), "header %s: message '%s' lacks '%s'", header, err, needle);
    free(buf);
}

#define T1 "\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}"

Test(safetensors, valid_minimal) {
    size_t len;
    unsigned char *buf = make_file("{" T1 ",\"__metadata__\":{\"acm\":\"x\"}}    ", 16, &len);
    acm_st_file f;
    char err[256];
    cr_assert_eq(acm__st_parse(&f, buf, len, err, sizeof err), 0, "%s", err);
    cr_expect_eq(f.n, 1);
    const acm_st_tensor *t = acm__st_find(&f, "a");
    cr_assert(t);
    cr_expect_eq(t->numel, 4);
    cr_expect_str_eq(acm__st_meta(&f, "acm"), "x");
    cr_expect_null(acm__st_find(&f, "b"));
    acm__st_close(&f);
    free(buf);
}

Test(safetensors, broken_corpus) {
    /* truncated: shorter than the length prefix */
    {
        acm_st_file f;
        char err[256] = "";
        cr_expect_eq(acm__st_parse(&f, "\x10\0\0", 3, err, sizeof err), ACM_EFORMAT);
        cr_expect(strstr(err, "too short"), "%s", err);
    }
    /* header length lies past the end of the file */
    {
        size_t len;
        unsigned char *buf = make_file("{}", 0, &len);
        buf[0] = 200;
        acm_st_file f;
        char err[256] = "";
        cr_expect_eq(acm__st_parse(&f, buf, len, err, sizeof err), ACM_EFORMAT);
        cr_expect(strstr(err, "past the end"), "%s", err);
        /* huge header length (above the 100 MiB limit) */
        memset(buf, 0xff, 8);
        cr_expect_eq(acm__st_parse(&f, buf, len, err, sizeof err), ACM_EFORMAT);
        cr_expect(strstr(err, "exceeds the limit"), "%s", err);
        free(buf);
    }
    expect_error("{\"a\":", 0, "not valid JSON");
    expect_error("[1,2]", 0, "not a JSON object");
    expect_error("{" T1 "," T1 "}", 16, "not valid JSON"); /* duplicate key: jansson reports it */
    expect_error("{\"a\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, "unsupported dtype 'F64'");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 0, "exactly dtype, shape and data_offsets");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "exactly dtype");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "shape[0]");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "dimensions");
    /* shape whose product overflows int64 */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
                 "overflows");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2305843009213693952],\"data_offsets\":[0,4]}}", 4, "overflows");
    /* offsets that disagree with the shape; lying offsets past the data */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, "need 12");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, "past the data section");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8, "data_offsets");
    /* overlapping tensors, gaps, trailing bytes */
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                 12, "overlaps");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "gap");
    expect_error("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "after the last tensor");
    /* misaligned tensor offset */
    expect_error("{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[2,6]}}",
                 6, "misaligned");
    /* bad metadata */
    expect_error("{\"__metadata__\":{\"k\":1}}", 0, "not a string");
    expect_error("{\"__metadata__\":[1]}", 0, "__metadata__ is not an object");
    expect_error("{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "string dtype");
}

Test(safetensors, open_reports_the_path) {
    char err[512] = "";
    acm_st_file f;
    cr_expect_eq(acm__st_open(&f, "tests/nonexistent.safetensors", err, sizeof err), ACM_EIO);
    cr_expect(strstr(err, "tests/nonexistent.safetensors"), "%s", err);
    /* an empty file */
    char path[] = "/tmp/acm-st-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_expect_eq(acm__st_open(&f, path, err, sizeof err), ACM_EFORMAT);
    cr_expect(strstr(err, path) && strstr(err, "too short"), "%s", err);
    unlink(path);
}

Test(safetensors, write_then_read_round_trip) {
    float a[6] = {1, -2, 3.5f, 4, 5, 6};
    int32_t b[3] = {7, -8, 9};
    uint8_t c[5] = {1, 2, 3, 4, 5};
    acm_st_out t[3] = {
        {"bytes", ACM_ST_U8, 1, {5}, c},
        {"floats", ACM_ST_F32, 2, {2, 3}, a},
        {"ints", ACM_ST_I32, 1, {3}, b},
    };
    json_t *meta = json_pack("{s:s}", "acm", "{\"x\":1}");
    char path[] = "/tmp/acm-st-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256];
    cr_assert_eq(acm__st_write(path, t, 3, meta, err, sizeof err), 0, "%s", err);
    json_decref(meta);
    acm_st_file f;
    cr_assert_eq(acm__st_open(&f, path, err, sizeof err), 0, "%s", err);
    const acm_st_tensor *ft = acm__st_find(&f, "floats"), *it = acm__st_find(&f, "ints"), *bt = acm__st_find(&f, "bytes");
    cr_assert(ft && it && bt);
    cr_expect_eq(memcmp(ft->data, a, sizeof a), 0);
    cr_expect_eq(memcmp(it->data, b, sizeof b), 0);
    cr_expect_eq(memcmp(bt->data, c, sizeof c), 0);
    cr_expect_eq(ft->shape[0], 2);
    cr_expect_eq(ft->shape[1], 3);
    cr_expect_eq((uintptr_t)ft->data % 4, 0);
    cr_expect_str_eq(acm__st_meta(&f, "acm"), "{\"x\":1}");
    acm__st_close(&f);
    unlink(path);
}

Test(safetensors, f16_bf16_converted_and_unaligned_f32_copied) {
    /* F16 1.0 = 0x3c00, -2.0 = 0xc000, 65504 = 0x7bff, smallest subnormal 0x0001 = 2^-24;
     * BF16 1.5 = 0x3fc0; F32 2.5 placed at an odd address (header of odd length). */
    const char *hdr = "{\"h\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                      "\"g\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[8,10]},"
                      "\"pad\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[10,12]},"
                      "\"f\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}";
    size_t len;
    unsigned char *buf = make_file(hdr, 16, &len);
    unsigned char *d = buf + 8 + strlen(hdr);
    const uint16_t h[4] = {0x3c00, 0xc000, 0x7bff, 0x0001};
    for (int i = 0; i < 4; i++) {
        d[2 * i] = (unsigned char)(h[i] & 0xff);
        d[2 * i + 1] = (unsigned char)(h[i] >> 8);
    }
    d[8] = 0xc0;
    d[9] = 0x3f;
    float two5 = 2.5f;
    memcpy(d + 12, &two5, 4);
    acm_st_file f;
    char err[256];
    cr_assert_eq(acm__st_parse(&f, buf, len, err, sizeof err), 0, "%s", err);
    const float *hv = acm__st_find(&f, "h")->data;
    cr_expect_eq(hv[0], 1.0f);
    cr_expect_eq(hv[1], -2.0f);
    cr_expect_eq(hv[2], 65504.0f);
    cr_expect_eq(hv[3], ldexpf(1.0f, -24));
    cr_expect_eq(((const float *)acm__st_find(&f, "g")->data)[0], 1.5f);
    const acm_st_tensor *ft = acm__st_find(&f, "f");
    cr_expect_eq((uintptr_t)ft->data % 4, 0, "F32 data must be realigned");
    cr_expect_eq(((const float *)ft->data)[0], 2.5f);
    acm__st_close(&f);
    free(buf);
}
