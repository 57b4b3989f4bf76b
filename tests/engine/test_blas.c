/*
 * test_blas.c — OpenBLAS kernel selection (docs/DESIGN.md §4). The rule, not a core name: a program never runs an
 * SSE-only kernel set on a CPU with AVX2+FMA or AVX-512; it re-executes itself with OPENBLAS_CORETYPE only when
 * OpenBLAS picked such a set there (so a fast core OpenBLAS chose by itself, SkylakeX or Cooperlake or Zen, is kept);
 * and a value the user set is never overridden. The decision is checked as a pure function on the flags of several
 * CPUs (Intel and AMD), and end to end on this machine against /proc/cpuinfo, read here independently of the engine.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"

/* ---- the decision on other CPUs' flags ------------------------------------------------------------------------- */

/* /proc/cpuinfo flags, cut to what matters plus neighbours that must not be mistaken for them (avx512_bf16 is not
 * avx512bw, fma4 is not fma). */
#define FLAGS_ZEN4 "fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512ifma avx512cd " \
                   "avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vnni"
#define FLAGS_ZEN3 "fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 sha_ni vaes"
#define FLAGS_BULLDOZER "fpu sse sse2 ssse3 fma4 sse4_1 sse4_2 avx xop"
#define FLAGS_XEON_SPR "fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 avx512f avx512dq avx512cd avx512bw avx512vl " \
                       "avx512_bf16 avx512_fp16 amx_tile"
#define FLAGS_OLD "fpu sse sse2 ssse3 sse4_1 sse4_2"

Test(blas_rule, features_are_whole_words) {
    acm_cpu_features z4 = acm_cpu_features_parse("flags\t\t: " FLAGS_ZEN4);
    cr_expect(z4.avx2 && z4.fma && z4.avx512f && z4.avx512bw && z4.avx512dq && z4.avx512vl);
    acm_cpu_features bd = acm_cpu_features_parse(FLAGS_BULLDOZER);
    cr_expect(!bd.fma && !bd.avx2, "fma4 is not fma");
    acm_cpu_features only_bf16 = acm_cpu_features_parse("avx2 fma avx512f avx512_bf16 avx512dq avx512vl");
    cr_expect(!only_bf16.avx512bw, "avx512_bf16 is not avx512bw");
}

Test(blas_rule, amd_zen4_keeps_the_core_openblas_picked) {
    acm_cpu_features f = acm_cpu_features_parse(FLAGS_ZEN4);
    cr_expect_null(acm_blas_reexec_core(NULL, "Cooperlake", f), "Cooperlake is fast: no re-exec");
    cr_expect_null(acm_blas_reexec_core(NULL, "Zen", f));
    cr_expect_null(acm_blas_reexec_core(NULL, "SkylakeX", f));
    cr_expect_str_eq(acm_blas_reexec_core(NULL, "Prescott", f), "SkylakeX");
    cr_expect_str_eq(acm_blas_reexec_core(NULL, "NEHALEM", f), "SkylakeX", "any SSE-only set, any case");
    cr_expect_null(acm_blas_reexec_core("Zen", "Prescott", f), "a user's value is never overridden");
    cr_expect_null(acm_blas_reexec_core("", "Prescott", f), "set but empty is still the user's");
}

Test(blas_rule, amd_zen3_and_older_amd) {
    acm_cpu_features z3 = acm_cpu_features_parse(FLAGS_ZEN3);
    cr_expect_null(acm_blas_reexec_core(NULL, "Zen", z3));
    cr_expect_null(acm_blas_reexec_core(NULL, "Haswell", z3));
    cr_expect_str_eq(acm_blas_reexec_core(NULL, "Prescott", z3), "Haswell");
    cr_expect_str_eq(acm_blas_reexec_core(NULL, "Barcelona", z3), "Haswell");
    acm_cpu_features bd = acm_cpu_features_parse(FLAGS_BULLDOZER);
    cr_expect_null(acm_blas_reexec_core(NULL, "Prescott", bd), "no AVX2+FMA: nothing faster to force");
    cr_expect_null(acm_blas_reexec_core(NULL, "Bulldozer", bd));
}

Test(blas_rule, intel) {
    acm_cpu_features spr = acm_cpu_features_parse(FLAGS_XEON_SPR);
    cr_expect_str_eq(acm_blas_reexec_core(NULL, "Prescott", spr), "SkylakeX", "the misdetected Xeon");
    cr_expect_null(acm_blas_reexec_core(NULL, "sapphirerapids", spr));
    cr_expect_null(acm_blas_reexec_core(NULL, "Cooperlake", spr));
    cr_expect_null(acm_blas_reexec_core("Haswell", "Prescott", spr));
    cr_expect_null(acm_blas_reexec_core(NULL, "Prescott", acm_cpu_features_parse(FLAGS_OLD)));
}

Test(blas_rule, sse_only_names) {
    const char *slow[] = {"Prescott", "prescott", "Core2", "Penryn", "Dunnington", "Nehalem", "Atom", "Opteron_SSE3",
                          "Barcelona", "Unknown", "", NULL};
    for (size_t i = 0; i < sizeof slow / sizeof *slow; i++)
        cr_expect(acm_blas_core_is_sse_only(slow[i]), "%s is SSE-only", slow[i] ? slow[i] : "(null)");
    const char *fast[] = {"Sandybridge", "Haswell", "Zen", "SkylakeX", "Cooperlake", "sapphirerapids", "Bulldozer"};
    for (size_t i = 0; i < sizeof fast / sizeof *fast; i++)
        cr_expect(!acm_blas_core_is_sse_only(fast[i]), "%s uses AVX", fast[i]);
}

/* ---- this machine, end to end ------------------------------------------------------------------------------------ */

static acm_cpu_features cpuinfo_features(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    cr_assert(f);
    char line[8192];
    acm_cpu_features ft = {0};
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            line[strcspn(line, "\n")] = 0;
            ft = acm_cpu_features_parse(line);
            break;
        }
    fclose(f);
    return ft;
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

Test(blas, unset_variable_follows_the_rule_on_this_cpu) {
    const acm_cpu_features f = cpuinfo_features();
    const acm_cpu_features d = acm_cpu_features_detect();
    cr_expect(f.avx2 == d.avx2 && f.fma == d.fma && f.avx512f == d.avx512f && f.avx512bw == d.avx512bw &&
                  f.avx512dq == d.avx512dq && f.avx512vl == d.avx512vl,
              "cpuid and /proc/cpuinfo disagree");
    char core[64];
    reported_core("env -u OPENBLAS_CORETYPE", core, sizeof core);
    cr_assert(core[0], "acm-train info reported no blas_core");
    if (f.avx2 && f.fma)
        cr_expect(!acm_blas_core_is_sse_only(core), "this CPU has AVX2+FMA but the program runs on %s (SSE-only)", core);
    /* this test process loaded OpenBLAS without our re-exec: its core is what OpenBLAS picks by itself */
    if (!getenv("OPENBLAS_CORETYPE")) {
        const char *native = acm_blas_core();
        const char *want = acm_blas_reexec_core(NULL, native, f);
        cr_expect_str_eq(core, want ? want : native,
                         "OpenBLAS picks %s here by itself; the program must run on %s (re-exec only from an SSE-only "
                         "set), got %s", native, want ? want : native, core);
    }
    printf("blas: OpenBLAS picks %s by itself here; programs run on %s\n", acm_blas_core(), core);
}

Test(blas, user_value_is_never_overridden) {
    char core[64];
    reported_core("env OPENBLAS_CORETYPE=Haswell", core, sizeof core);
    cr_expect_str_eq(core, "Haswell");
    reported_core("env OPENBLAS_CORETYPE=Prescott", core, sizeof core);
    cr_expect_str_eq(core, "Prescott", "even a slow core the user asked for");
}
