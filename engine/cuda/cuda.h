/*
 * cuda.h — the CUDA backend's entry points (engine/cuda/backend.cu), for engine/backend.c. Internal header; compiled
 * in only by `make CUDA=1` (ACM_WITH_CUDA).
 */
#ifndef ACM_CUDA_H
#define ACM_CUDA_H

#include <stddef.h>

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 0 when a CUDA device is visible and usable; else ACM_EINVAL with the runtime's reason (no driver, no device). */
int acm__cuda_check(char *err, size_t errlen);
/* A CUDA backend for one worker of model m, for at most max_batch images per call: its own stream and cuBLAS handle;
 * m's weights uploaded on the first open for m and shared with its other workers until the last one closes. The
 * environment variable ACM_CUDA_TF32=1 lets cuBLAS use TF32 tensor cores for the GEMMs (off by default: float
 * results within 1e-4 of the CPU's); ACM_CUDA_DEVICE picks the device (0). */
acm__backend *acm__cuda_open(const acm_model *m, int max_batch, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
