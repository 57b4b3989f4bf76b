/*
 * test_blas.c — OpenBLAS kernel selection (docs/DESIGN.md §4). A program started without OPENBLAS_CORETYPE must end
 * up on the core that /proc/cpuinfo implies (never Prescott on a machine with AVX2 or AVX-512), and a value the user
 * set is never overridden.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"

/* The core the CPU's flags imply, read from /proc/cpuinfo independently of the engine. */
static const char *cpuinfo_core(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    cr_assert(f);
    char line[8192];
    static char flags[8192];
    flags[0] = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            snprintf(flags, sizeof flags, " %s ", strchr(line, ':') + 1);
            break;
        }
    fclose(f);
    char *nl = strchr(flags, '\n');
    if (nl) *nl = ' ';
#define HAS(x) (strstr(flags, " " x " ") != NULL)
    if (HAS("avx512f") && HAS("avx512bw") && HAS("avx512dq") && HAS("avx512vl")) return "SkylakeX";
    if (HAS("avx2") && HAS("fma")) return "Haswell";
    return "Prescott";
#undef HAS
}

/* Runs acm-train info with the given environment prefix and returns the blas_core it reports. */
static void reported_core(const char *env, char *out, size_t n) {
    const char *b = getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s/acm-train info tests/golden/vit_a.safetensors --json", env, b);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    char line[512];
    out[0] = 0;
    while (fgets(line, sizeof line, p)) {
        char *s = strstr(line, "\"blas_core\": \"");
        if (s) {
            s += strlen("\"blas_core\": \"");
            snprintf(out, n, "%.*s", (int)strcspn(s, "\""), s);
        }
    }
    cr_assert_eq(pclose(p), 0, "%s failed", cmd);
}

Test(blas, unset_variable_gives_the_cpus_core) {
    char core[64];
    reported_core("env -u OPENBLAS_CORETYPE", core, sizeof core);
    const char *want = cpuinfo_core();
    cr_expect_str_eq(core, want, "with OPENBLAS_CORETYPE unset the program runs on %s; /proc/cpuinfo implies %s", core,
                     want);
    cr_expect_str_eq(acm_blas_expected_core(), want);
    cr_expect_str_neq(core, "Prescott", "the slow SSE3 kernels must not be used on this machine");
}

Test(blas, user_value_is_never_overridden) {
    char core[64];
    reported_core("env OPENBLAS_CORETYPE=Haswell", core, sizeof core);
    cr_expect_str_eq(core, "Haswell");
}
