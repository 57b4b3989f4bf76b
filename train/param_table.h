/*
 * param_table.h — the table of named tensors behind a trainable model's flat parameter buffers (vit_train.c,
 * speech_train.c): building it, finding a tensor by name, timm's truncated-normal initialiser, and writing the
 * parameters as a model file. Each model keeps its own list of tensors and its own metadata; this file only walks
 * the table.
 */
#ifndef ACM_TRAIN_PARAM_TABLE_H
#define ACM_TRAIN_PARAM_TABLE_H

#include <stddef.h>
#include <stdint.h>

#include "train/rng.h"

typedef struct {
    char name[64];
    int ndim;
    int64_t shape[4];
    int64_t offset, numel; /* into the flat buffers, in floats */
    int decay;             /* 1: weight decay applies (matrices) */
} acmt_param;

/* Appends tensor `name` of shape d0..d{ndim-1} at *off: tab[*n] is filled (unless tab is NULL: counting only), then
 * *n and *off advance past it. */
void acmt_param_add(acmt_param *tab, int *n, int64_t *off, const char *name, int decay, int ndim, int64_t d0,
                    int64_t d1, int64_t d2, int64_t d3);
/* The tensor `name` of tab[ntab], or NULL. */
const acmt_param *acmt_param_find(const acmt_param *tab, int ntab, const char *name);
/* The engine's model-build lookup over a table (acm__model_build): the tensor `name` inside params with its ndim and
 * shape, or NULL when the table has none. */
const float *acmt_param_lookup(const acmt_param *tab, int ntab, const float *params, const char *name, int *ndim,
                               const int64_t **shape);
/* The tensor `name` inside base (the parameter buffer, the gradients...); a name not in the table is a bug in the
 * caller: it says so and aborts. */
float *acmt_param_data(const acmt_param *tab, int ntab, float *base, const char *name);
/* A normal sample cut at ±2σ (redrawn outside), times std: timm's trunc_normal_. */
float acmt_trunc_normal(acmt_rng *r, float std);
/* Writes the tensors of tab[ntab] from params (f32, the table's names and shapes) and the metadata document meta
 * (NULL: "{}") as a model file, atomically. Returns 0 or an error with a message. */
int acmt_params_save(const acmt_param *tab, int ntab, const float *params, const char *meta, const char *path,
                     char *err, size_t errlen);

#endif
