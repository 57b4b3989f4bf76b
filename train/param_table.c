/*
 * param_table.c — the named-tensor table of the trainable models (see param_table.h).
 */
#include "train/param_table.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "safetensors.h"

void acmt_param_add(acmt_param *tab, int *n, int64_t *off, const char *name, int decay, int ndim, int64_t d0,
                    int64_t d1, int64_t d2, int64_t d3) {
    const int64_t d[4] = {d0, d1, d2, d3};
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) numel *= d[i];
    if (tab) {
        acmt_param *p = &tab[*n];
        snprintf(p->name, sizeof p->name, "%s", name);
        p->ndim = ndim;
        for (int i = 0; i < ndim; i++) p->shape[i] = d[i];
        p->numel = numel;
        p->offset = *off;
        p->decay = decay;
    }
    (*n)++;
    *off += numel;
}

const acmt_param *acmt_param_find(const acmt_param *tab, int ntab, const char *name) {
    for (int i = 0; i < ntab; i++)
        if (!strcmp(tab[i].name, name)) return &tab[i];
    return NULL;
}

const float *acmt_param_lookup(const acmt_param *tab, int ntab, const float *params, const char *name, int *ndim,
                               const int64_t **shape) {
    const acmt_param *p = acmt_param_find(tab, ntab, name);
    if (!p) return NULL;
    *ndim = p->ndim;
    *shape = p->shape;
    return params + p->offset;
}

float *acmt_param_data(const acmt_param *tab, int ntab, float *base, const char *name) {
    const acmt_param *p = acmt_param_find(tab, ntab, name);
    if (!p) {
        fprintf(stderr, "acm-train: internal error: no parameter %s\n", name);
        abort();
    }
    return base + p->offset;
}

float acmt_trunc_normal(acmt_rng *r, float std) {
    for (;;) {
        float x = acmt_rng_normal(r);
        if (x >= -2.0f && x <= 2.0f) return x * std;
    }
}

int acmt_params_save(const acmt_param *tab, int ntab, const float *params, const char *meta, const char *path,
                     char *err, size_t errlen) {
    acm_st_out *out = calloc((size_t)ntab, sizeof *out);
    if (!out) {
        snprintf(err, errlen, "out of memory");
        return ACM_ENOMEM;
    }
    for (int i = 0; i < ntab; i++) {
        out[i].name = tab[i].name;
        out[i].dtype = ACM_ST_F32;
        out[i].ndim = tab[i].ndim;
        for (int d = 0; d < tab[i].ndim; d++) out[i].shape[d] = tab[i].shape[d];
        out[i].data = params + tab[i].offset;
    }
    json_t *md = json_object();
    json_object_set_new(md, "acm", json_string(meta ? meta : "{}"));
    int rc = acm__st_write(path, out, ntab, md, err, errlen);
    json_decref(md);
    free(out);
    return rc;
}
