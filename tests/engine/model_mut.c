/* model_mut.c — see model_mut.h. */
#include "model_mut.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void model_mut_open(model_mut *m, const char *src) {
    char err[256];
    cr_assert_eq(acm__st_open(&m->src, src, err, sizeof err), 0, "%s", err);
    m->n = m->src.n;
    cr_assert_leq(m->n, MODEL_MUT_MAX);
    for (int i = 0; i < m->n; i++) {
        const acm_st_tensor *s = &m->src.tensors[i];
        m->t[i] = (acm_st_out){s->name, ACM_ST_F32, s->ndim, {0}, s->data};
        memcpy(m->t[i].shape, s->shape, sizeof s->shape);
    }
    m->acm = json_loads(acm__st_meta(&m->src, "acm"), 0, NULL);
    cr_assert(m->acm, "%s: no parsable \"acm\" metadata", src);
}

void model_mut_close(model_mut *m) {
    json_decref(m->acm);
    acm__st_close(&m->src);
}

int model_mut_find(model_mut *m, const char *name) {
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->t[i].name, name)) return i;
    cr_assert_fail("no tensor %s", name);
    return -1;
}

acm_model *model_mut_write_load(model_mut *m, char *err, size_t errlen) {
    char path[] = "/tmp/acm-model-mut-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    char *js = json_dumps(m->acm, JSON_COMPACT);
    json_t *meta = json_pack("{s:s}", "acm", js);
    free(js);
    cr_assert_eq(acm__st_write(path, m->t, m->n, meta, err, errlen), 0, "%s", err);
    json_decref(meta);
    acm_model *model = acm_model_load(path, err, errlen);
    unlink(path);
    return model;
}

void model_mut_expect_load(model_mut *m, const char *needle) {
    char err[512] = "";
    acm_model *model = model_mut_write_load(m, err, sizeof err);
    if (!needle) {
        cr_expect(model, "%s", err);
    } else {
        cr_expect_null(model, "mutation expected to fail (%s)", needle);
        cr_expect(strstr(err, needle), "message '%s' lacks '%s'", err, needle);
        cr_expect(strstr(err, "/tmp/acm-model-mut-"), "message '%s' lacks the path", err);
    }
    acm_model_free(model);
}
