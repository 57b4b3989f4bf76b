/*
 * backend.c — choosing a backend by name (engine/backend.h). The CPU backend is always there; the CUDA backend is
 * compiled in by `make CUDA=1` (ACM_WITH_CUDA: engine/cuda/, linked with the CUDA runtime and cuBLAS). A build without
 * it says so by name, so that `--backend cuda` on it is an error that tells what to do.
 */
#include <string.h>

#include "backend.h"
#include "util.h"
#ifdef ACM_WITH_CUDA
#include "cuda/cuda.h"
#endif

const char *acm_backends_built(void) {
#ifdef ACM_WITH_CUDA
    return "cpu cuda";
#else
    return "cpu";
#endif
}

int acm_backend_check(const char *name, char *err, size_t errlen) {
    if (!name || !strcmp(name, "cpu")) return 0;
    if (strcmp(name, "cuda"))
        return acm__fail(err, errlen, ACM_EINVAL, "unknown backend '%s' (this build has: %s)", name,
                         acm_backends_built());
#ifdef ACM_WITH_CUDA
    return acm__cuda_check(err, errlen);
#else
    return acm__fail(err, errlen, ACM_EINVAL, "backend 'cuda': this build has no CUDA backend (build with `make "
                     "CUDA=1` where nvcc is installed)");
#endif
}

acm__backend *acm__backend_open(const char *name, const acm_model *m, int max_batch, char *err, size_t errlen) {
    if (acm_backend_check(name, err, errlen)) return NULL;
    if (!name || !strcmp(name, "cpu")) return acm__backend_cpu();
#ifdef ACM_WITH_CUDA
    return acm__cuda_open(m, max_batch, err, errlen);
#else
    (void)m;
    (void)max_batch;
    return NULL; /* not reached: acm_backend_check refused */
#endif
}

void acm__backend_close(acm__backend *be) {
    if (be) be->close(be);
}
