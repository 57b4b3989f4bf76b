/*
 * blas.c — choosing and reporting OpenBLAS's kernels (docs/DESIGN.md §4).
 *
 * Debian 12's OpenBLAS 0.3.21 misdetects some recent Xeons as "Prescott" and then runs SSE3 kernels, 4-5x slower than
 * its AVX-512 ones; on other CPUs (AMD EPYC Zen 4: "Cooperlake") it picks a fast core by itself. OPENBLAS_CORETYPE is
 * read only when the library loads, so the fix is to set it and re-execute the program. We do that only when the
 * variable is unset, the detected core is one of the SSE-only kernel sets and the CPU has AVX2+FMA or AVX-512; never
 * otherwise. The decision is a pure function (acm_blas_reexec_core) so that tests can check it on any CPU's flags.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cpu.h"

char *openblas_get_corename(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

const char *acm_blas_core(void) { return openblas_get_corename(); }

acm_cpu_features acm_cpu_features_detect(void) {
    __builtin_cpu_init();
    return (acm_cpu_features){
        .avx2 = __builtin_cpu_supports("avx2") != 0,
        .fma = __builtin_cpu_supports("fma") != 0,
        .avx512f = __builtin_cpu_supports("avx512f") != 0,
        .avx512bw = __builtin_cpu_supports("avx512bw") != 0,
        .avx512dq = __builtin_cpu_supports("avx512dq") != 0,
        .avx512vl = __builtin_cpu_supports("avx512vl") != 0,
    };
}

/* Whether the whitespace-separated word w occurs in s. */
static int blas__has_word(const char *s, const char *w) {
    const size_t n = strlen(w);
    for (const char *p = s; (p = strstr(p, w)) != NULL; p += n)
        if ((p == s || isspace((unsigned char)p[-1])) && (p[n] == 0 || isspace((unsigned char)p[n]))) return 1;
    return 0;
}

acm_cpu_features acm_cpu_features_parse(const char *flags) {
    const char *colon = strchr(flags, ':');
    const char *s = colon ? colon + 1 : flags;
    return (acm_cpu_features){
        .avx2 = blas__has_word(s, "avx2"),
        .fma = blas__has_word(s, "fma"),
        .avx512f = blas__has_word(s, "avx512f"),
        .avx512bw = blas__has_word(s, "avx512bw"),
        .avx512dq = blas__has_word(s, "avx512dq"),
        .avx512vl = blas__has_word(s, "avx512vl"),
    };
}

int acm_blas_core_is_sse_only(const char *core) {
    /* OpenBLAS 0.3.21's x86-64 core names (driver/others/dynamic.c) whose kernels use no AVX at all */
    static const char *const sse_only[] = {"Unknown", "Katmai", "Coppermine", "Northwood", "Prescott", "Banias",
                                           "Atom", "Core2", "Penryn", "Dunnington", "Nehalem", "Athlon", "Opteron",
                                           "Opteron_SSE3", "Barcelona", "Nano"};
    if (!core || !*core) return 1;
    for (size_t i = 0; i < sizeof sse_only / sizeof *sse_only; i++)
        if (!strcasecmp(core, sse_only[i])) return 1;
    return 0;
}

const char *acm_blas_forced_core(acm_cpu_features f) {
    if (f.avx512f && f.avx512bw && f.avx512dq && f.avx512vl) return "SkylakeX";
    if (f.avx2 && f.fma) return "Haswell";
    return NULL;
}

const char *acm_blas_reexec_core(const char *user_value, const char *detected, acm_cpu_features f) {
    if (user_value) return NULL; /* never override the user */
    if (!acm_blas_core_is_sse_only(detected)) return NULL;
    return acm_blas_forced_core(f);
}

int acm_blas_init(int argc, char **argv) {
    (void)argc;
    const char *want = acm_blas_reexec_core(getenv("OPENBLAS_CORETYPE"), openblas_get_corename(), acm_cpu_features_detect());
    if (!want) return 0;
    setenv("OPENBLAS_CORETYPE", want, 0);
    execv("/proc/self/exe", argv);
    return -1; /* exec failed: carry on with the slow kernels */
}

void acm_blas_set_threads(int n) { openblas_set_num_threads(n); }
int acm_blas_threads(void) { return openblas_get_num_threads(); }
