/*
 * cpu.h — what is particular to the CPU backend (engine/cpu/): choosing and reporting OpenBLAS's kernels and its
 * threads. Programs that run on the CPU (acmd, acm-train, the benchmarks) include it; the engine's public interface
 * (engine/acm.h) does not depend on it. Include as "cpu/cpu.h" (the engine folder is on the include path).
 */
#ifndef ACM_CPU_H
#define ACM_CPU_H

#include "acm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- OpenBLAS kernels (docs/DESIGN.md §4) -------------------------------------------------------------------------
 * The rule: a program never runs OpenBLAS's SSE-only kernels ("Prescott", "Nehalem", "Core2", ...) on a CPU that has
 * AVX2+FMA or AVX-512; it re-executes itself with OPENBLAS_CORETYPE set only in that case (SkylakeX for AVX-512
 * F/BW/DQ/VL, else Haswell), and never overrides a value the user set. Whatever fast core OpenBLAS picks by itself
 * (SkylakeX, Cooperlake, Zen, Haswell, ...) is kept.
 *
 * acm_blas_init: call first thing in main(). Returns 0, or -1 if the re-exec failed (the program then runs on what it
 * has). */
int acm_blas_init(int argc, char **argv);
/* The core OpenBLAS runs on ("SkylakeX", "Cooperlake", "Haswell", ...). */
const char *acm_blas_core(void);

/* The x86 features the rule looks at. */
typedef struct {
    int avx2, fma, avx512f, avx512bw, avx512dq, avx512vl;
} acm_cpu_features;
/* This CPU's features (cpuid). */
acm_cpu_features acm_cpu_features_detect(void);
/* Features from a /proc/cpuinfo "flags" line (the part after ':', or the whole line). */
acm_cpu_features acm_cpu_features_parse(const char *flags);
/* Whether an OpenBLAS core name is one of its SSE-only kernel sets (case-insensitive; NULL or "" counts as one). */
int acm_blas_core_is_sse_only(const char *core);
/* The decision of acm_blas_init, as a pure function: the OPENBLAS_CORETYPE to re-execute with, or NULL to carry on.
 * user_value: the variable as set (NULL when unset); detected: the core OpenBLAS chose. */
const char *acm_blas_reexec_core(const char *user_value, const char *detected, acm_cpu_features f);
/* The core the features imply for a forced choice: "SkylakeX", "Haswell" or NULL (no AVX2+FMA: nothing to force). */
const char *acm_blas_forced_core(acm_cpu_features f);
void acm_blas_set_threads(int n);
int acm_blas_threads(void);

#ifdef __cplusplus
}
#endif
#endif
