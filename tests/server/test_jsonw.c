/*
 * test_jsonw.c — server/jsonw.c: numbers in their shortest exact form, strings escaped.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/acmd.h"
#include "server/jsonw.h"

static const char *fmt_d(double v) {
    static char b[64];
    acmd_fmt_double(b, sizeof b, v);
    return b;
}

static const char *fmt_f(float v) {
    static char b[64];
    acmd_fmt_float(b, sizeof b, v);
    return b;
}

Test(jsonw, doubles_shortest_that_read_back) {
    cr_expect_str_eq(fmt_d(0.3), "0.3");
    cr_expect_str_eq(fmt_d(0.1 + 0.2), "0.30000000000000004");
    cr_expect_str_eq(fmt_d(1), "1");
    cr_expect_str_eq(fmt_d(0.5), "0.5");
    cr_expect_str_eq(fmt_d(2851200), "2851200");
    cr_expect_str_eq(fmt_d(123456789012345678.0), "1.2345678901234568e+17");
    cr_expect_str_eq(fmt_d(-2.5e-7), "-2.5e-07");
    cr_expect_str_eq(fmt_d(NAN), "null");
    cr_expect_str_eq(fmt_d(INFINITY), "null");
    /* every value reads back exactly, in at most 17 significant digits */
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < 100000; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        double v;
        memcpy(&v, &s, sizeof v);
        if (!isfinite(v)) continue;
        const char *t = fmt_d(v);
        cr_assert_eq(strtod(t, NULL), v, "%s does not read back as %.17g", t, v);
    }
}

Test(jsonw, floats_shortest_that_read_back) {
    cr_expect_str_eq(fmt_f(0.3f), "0.3");
    cr_expect_str_eq(fmt_f(0.125f), "0.125");
    cr_expect_str_eq(fmt_f(1.0f), "1");
    cr_expect_str_eq(fmt_f(0.1234567f), "0.1234567");
    for (uint32_t u = 0x3a000000u; u < 0x3f800000u; u += 977) { /* (0.0005, 1): the budgets' range */
        float v;
        memcpy(&v, &u, sizeof v);
        cr_assert_eq(strtof(fmt_f(v), NULL), v, "%s does not read back as %.9g", fmt_f(v), (double)v);
    }
}

Test(jsonw, writer_numbers_and_strings) {
    acmd_jw w = {0};
    acmd_jw_raw(&w, "{\"a\":");
    acmd_jw_num(&w, 0.3);
    acmd_jw_raw(&w, ",\"b\":");
    acmd_jw_numf(&w, 0.3f);
    acmd_jw_kstr(&w, "c", "q\"\\");
    acmd_jw_raw(&w, "}");
    size_t n;
    char *s = acmd_jw_finish(&w, &n);
    cr_assert(s);
    cr_expect_str_eq(s, "{\"a\":0.3,\"b\":0.3,\"c\":\"q\\\"\\\\\"}");
    cr_expect_eq(n, strlen(s));
    free(s);
}

/* The printf-free formatters of the per-request path agree with snprintf, truncate like it, and always terminate. */
Test(jsonw, formatters_without_printf_match_snprintf) {
    char a[32], b[32];
    const unsigned long long vals[] = {0, 7, 10, 65535, 4294967295ull, 18446744073709551615ull};
    for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
        snprintf(b, sizeof b, "%llu", vals[i]);
        cr_expect_eq(acmd_fmt_u64(a, sizeof a, vals[i]), strlen(b));
        cr_expect_str_eq(a, b);
        snprintf(b, sizeof b, "%016llx", vals[i]);
        cr_expect_eq(acmd_fmt_hex(a, sizeof a, vals[i], 16), strlen(b));
        cr_expect_str_eq(a, b);
        snprintf(b, sizeof b, "%08llx", vals[i]);
        acmd_fmt_hex(a, sizeof a, vals[i], 8);
        cr_expect_str_eq(a, b);
    }
    cr_expect_eq(acmd_fmt_u64(a, 4, 123456), 3);
    cr_expect_str_eq(a, "123", "truncated to fit, like snprintf");
    cr_expect_eq(acmd_copy(a, 4, "abcdef"), 3);
    cr_expect_str_eq(a, "abc");
    cr_expect_eq(acmd_copy(a, sizeof a, ""), 0);
    cr_expect_str_eq(a, "");
    char lab[64] = "";
    acmd_label(lab, sizeof lab, "route", "x\"y");
    acmd_label(lab, sizeof lab, "code", "200");
    cr_expect_str_eq(lab, "route=\"x\\\"y\",code=\"200\"");
}
