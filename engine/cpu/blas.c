/*
 * blas.c — choosing and reporting OpenBLAS's kernels (docs/DESIGN.md §4).
 *
 * Debian 12's OpenBLAS 0.3.21 misdetects some recent Xeons as "Prescott" and then runs SSE3 kernels, 4-5x slower than
 * its AVX-512 ones. OPENBLAS_CORETYPE is read only when the library loads, so the fix is to set it and re-execute the
 * program. We do that only when the variable is unset and the detected core is Prescott, and never override a value
 * the user set.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"

char *openblas_get_corename(void);
void openblas_set_num_threads(int);
int openblas_get_num_threads(void);

const char *acm_blas_core(void) { return openblas_get_corename(); }

const char *acm_blas_expected_core(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return "Prescott";
}

int acm_blas_init(int argc, char **argv) {
    (void)argc;
    if (getenv("OPENBLAS_CORETYPE")) return 0;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "Prescott")) return 0;
    const char *want = acm_blas_expected_core();
    if (!strcmp(want, "Prescott")) return 0;
    setenv("OPENBLAS_CORETYPE", want, 0);
    execv("/proc/self/exe", argv);
    return -1; /* exec failed: carry on with the slow kernels */
}

void acm_blas_set_threads(int n) { openblas_set_num_threads(n); }
int acm_blas_threads(void) { return openblas_get_num_threads(); }
