/*
 * ckpt.c — checkpoints as safetensors with a JSON state (see ckpt.h).
 */
#include "train/ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int acmt_ckpt_write(const char *path, const acmt_ckpt_entry *e, int n, const json_t *state, char *err, size_t errlen) {
    acm_st_out *out = calloc((size_t)(n ? n : 1), sizeof *out);
    if (!out) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        out[i].name = e[i].name;
        out[i].dtype = e[i].is_int ? ACM_ST_I32 : ACM_ST_F32;
        out[i].ndim = 1;
        out[i].shape[0] = e[i].n;
        out[i].data = e[i].data;
    }
    char *s = json_dumps(state, JSON_COMPACT | JSON_SORT_KEYS);
    json_t *md = json_object();
    json_object_set_new(md, "acm_train", json_string(s ? s : "{}"));
    free(s);
    int rc = acm__st_write(path, out, n, md, err, errlen);
    json_decref(md);
    free(out);
    return rc ? -1 : 0;
}

int acmt_ckpt_read(const char *path, const acmt_ckpt_entry *e, int n, json_t **state, char *err, size_t errlen) {
    acm_st_file f;
    *state = NULL;
    if (acm__st_open(&f, path, err, errlen)) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const acm_st_tensor *t = acm__st_find(&f, e[i].name);
        acm_st_dtype want = e[i].is_int ? ACM_ST_I32 : ACM_ST_F32;
        if (!t || t->dtype != want || t->numel != e[i].n) {
            snprintf(err, errlen, "%s: tensor '%s' missing or not %s[%lld] (different configuration?)", path,
                     e[i].name, e[i].is_int ? "I32" : "F32", (long long)e[i].n);
            rc = -1;
            break;
        }
        memcpy(e[i].data, t->data, (size_t)t->numel * 4);
    }
    if (!rc) {
        const char *s = acm__st_meta(&f, "acm_train");
        json_error_t je;
        *state = s ? json_loads(s, 0, &je) : NULL;
        if (!json_is_object(*state)) {
            snprintf(err, errlen, "%s: no valid 'acm_train' state in the metadata", path);
            json_decref(*state);
            *state = NULL;
            rc = -1;
        }
    }
    acm__st_close(&f);
    return rc;
}

int acmt_ckpt_read_optional(const char *path, const acmt_ckpt_entry *e, int n, int *found, char *err, size_t errlen) {
    acm_st_file f;
    if (found) *found = 0;
    if (acm__st_open(&f, path, err, errlen)) return -1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const acm_st_tensor *t = acm__st_find(&f, e[i].name);
        acm_st_dtype want = e[i].is_int ? ACM_ST_I32 : ACM_ST_F32;
        if (!t) {
            memset(e[i].data, 0, (size_t)e[i].n * 4);
            continue;
        }
        if (t->dtype != want || t->numel != e[i].n) {
            snprintf(err, errlen, "%s: tensor '%s' is not %s[%lld] (different configuration?)", path, e[i].name,
                     e[i].is_int ? "I32" : "F32", (long long)e[i].n);
            rc = -1;
            break;
        }
        memcpy(e[i].data, t->data, (size_t)t->numel * 4);
        if (found) ++*found;
    }
    acm__st_close(&f);
    return rc;
}
