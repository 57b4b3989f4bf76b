/*
 * fuzz_model.c — the model header (engine/model.h): a safetensors file whose "acm" metadata and tensors go through
 * acm__model_build, ViT and speech alike (arch, dimensions, the speech fields alphabet / chunk / left_context /
 * rope_base / frontend, ACM modules, budget tables, tensor names and shapes, mel normalisation values). Invariants:
 * a model that loads has a consistent configuration; a refusal leaves a message.
 */
#include <string.h>

#include "acm.h"
#include "fuzz.h"
#include "model.h"
#include "safetensors.h"

static const float *lookup(void *ctx, const char *name, int *ndim, const int64_t **shape) {
    const acm_st_tensor *t = acm__st_find(ctx, name);
    if (!t || (t->dtype != ACM_ST_F32 && t->dtype != ACM_ST_F16 && t->dtype != ACM_ST_BF16)) return NULL;
    *ndim = t->ndim;
    *shape = t->shape;
    return t->data;
}

int FUZZ_ENTRY(const uint8_t *data, size_t size) {
    void *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    acm_st_file f;
    char err[512];
    if (acm__st_parse(&f, buf, size, err, sizeof err) == 0) {
        err[0] = 0;
        acm_model *m = acm__model_build(acm__st_meta(&f, "acm"), lookup, &f, err, sizeof err);
        if (m) {
            const acm_config *c = acm_model_config(m);
            FUZZ_CHECK(c->dim > 0 && c->depth > 0 && c->heads > 0 && c->dim % c->heads == 0 && c->num_classes >= 1);
            FUZZ_CHECK(c->num_acms >= 0 && c->num_acms <= c->depth * ACM_POS_COUNT);
            for (int i = 0; i < c->num_classes; i++) FUZZ_CHECK(c->labels[i] != NULL);
            if (c->arch == ACM_ARCH_SPEECH) {
                FUZZ_CHECK(c->chunk >= 1 && c->left_context >= 0 && c->stack >= 1 && c->tokens == c->chunk);
                FUZZ_CHECK((c->dim / c->heads) % 2 == 0 && c->rope_base > 1);
                FUZZ_CHECK(acm_speech_tokens(m, 0) == 0 && acm_speech_tokens(m, 1 << 20) >= 0);
                FUZZ_CHECK(acm_stream_state_bytes(m) > 0);
            } else {
                FUZZ_CHECK(c->tokens == c->num_patches + 1 && acm_speech_tokens(m, 1 << 20) == 0);
            }
            acm_model_free(m);
        } else {
            FUZZ_CHECK(err[0] != 0);
        }
        acm__st_close(&f);
    }
    free(buf);
    return 0;
}
