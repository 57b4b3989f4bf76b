/*
 * speech_random.h — speech encoders with random weights, built in memory (engine/model.h's speech format): the speech
 * benchmark's model and its static twin. Uses vit_random.h's tensor store and initialisation (uniform, sd 1/√fan_in;
 * LayerNorm 1 ± 0.1; gates D -> 16 -> 16 -> C). Header-only.
 *
 * What it is not: a trained model (its logits and gate decisions mean nothing).
 */
#ifndef ACM_BENCH_SPEECH_RANDOM_H
#define ACM_BENCH_SPEECH_RANDOM_H

#include <jansson.h>

#include "bench/vit_random.h"
#include "safetensors.h"

typedef struct {
    int dim, depth, heads, mlp_hidden;
    int chunk, left_context; /* C, L in tokens */
    int learners;            /* N for every ACM; 0: a static model */
    unsigned acm_mask;       /* bit ACM_POS_Q .. ACM_POS_MLP: which positions of every block are ACMs */
    int film;                /* 1: budget-conditioned gates (random FiLM scale and shift, budget.gate_beta 0.5) */
    uint64_t seed;
} sr_config;

/* The model's tensors into st and its "acm" metadata JSON into meta; 0, or -1 with a message (st then freed). */
static inline int sr_make(const sr_config *c, vr_store *st, char *meta, size_t meta_n, char *err, size_t errlen) {
    memset(st, 0, sizeof *st);
    st->rng = c->seed * 0x2545F4914F6CDD1Dull + 1;
    const int D = c->dim, N = c->learners, M = 80, S = 4, K = 29, hp = N ? vr_proj_h(D, N) : 0;
    static const char *pos[ACM_POS_COUNT] = {"attn.q", "attn.k", "attn.v", "attn.proj", "mlp"};
    char nm[96];
    int off = snprintf(meta, meta_n,
                       "{\"format_version\":1,\"arch\":\"speech\",\"dim\":%d,\"depth\":%d,\"heads\":%d,"
                       "\"mlp_hidden\":%d,\"ln_eps\":1e-6,\"alphabet\":\"abcdefghijklmnopqrstuvwxyz' \",\"chunk\":%d,"
                       "\"left_context\":%d,\"frontend\":{\"n_mels\":%d,\"stack\":%d}",
                       D, c->depth, c->heads, c->mlp_hidden, c->chunk, c->left_context, M, S);
    int rc = 0;
    rc |= VR_ADD(st, "frontend.mel_mean", -6.0, 1.0, M);
    rc |= VR_ADD(st, "frontend.mel_std", 2.5, 0.3, M);
    rc |= vr_linear(st, "frontend.proj", D, S * M);
    if (N) off += snprintf(meta + off, meta_n - off, ",\"acm\":{\"modules\":[");
    int first = 1;
    for (int l = 0; l < c->depth; l++) {
        vr_name(nm, sizeof nm, "blocks.%d.norm1.weight", l);
        rc |= VR_ADD(st, nm, 1.0, 0.1, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm1.bias", l);
        rc |= VR_ADD(st, nm, 0.0, 0.02, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm2.weight", l);
        rc |= VR_ADD(st, nm, 1.0, 0.1, D);
        vr_name(nm, sizeof nm, "blocks.%d.norm2.bias", l);
        rc |= VR_ADD(st, nm, 0.0, 0.02, D);
        unsigned mask = N ? c->acm_mask : 0;
        if (!(mask & 7u)) {
            vr_name(nm, sizeof nm, "blocks.%d.attn.qkv", l);
            rc |= vr_linear(st, nm, 3 * D, D);
        }
        for (int p = 0; p < ACM_POS_COUNT; p++) {
            if (p < 3 && !(mask & 7u)) continue;
            vr_name(nm, sizeof nm, "blocks.%d.%s", l, pos[p]);
            if (mask & (1u << p)) {
                off += snprintf(meta + off, meta_n - off, "%s{\"name\":\"%s\",\"learners\":%d}", first ? "" : ",",
                                nm, N);
                first = 0;
                rc |= p == ACM_POS_MLP ? vr_acm(st, nm, D, D, N, c->mlp_hidden / N, N + 1, c->film)
                                       : vr_acm(st, nm, D, D, N, hp, N, c->film);
            } else if (p == ACM_POS_MLP) {
                char n2[96];
                vr_name(n2, sizeof n2, "%s.fc1", nm);
                rc |= vr_linear(st, n2, c->mlp_hidden, D);
                vr_name(n2, sizeof n2, "%s.fc2", nm);
                rc |= vr_linear(st, n2, D, c->mlp_hidden);
            } else {
                rc |= vr_linear(st, nm, D, D);
            }
        }
    }
    if (N)
        off += snprintf(meta + off, meta_n - off,
                        "]},\"budget\":{\"beta_min\":0.25,\"mean\":[[0.25,3.0],[0.5,1.5],[0.75,0.6],[1.0,0.0]]%s}",
                        c->film ? ",\"gate_beta\":0.5" : "");
    off += snprintf(meta + off, meta_n - off, "}");
    rc |= VR_ADD(st, "norm.weight", 1.0, 0.1, D);
    rc |= VR_ADD(st, "norm.bias", 0.0, 0.02, D);
    rc |= vr_linear(st, "head", K, D);
    if (rc || off >= (int)meta_n) {
        snprintf(err, errlen, "speech_random: out of memory or metadata too long");
        vr_store_free(st);
        return -1;
    }
    return 0;
}

static inline acm_model *sr_build(const sr_config *c, vr_store *st, char *err, size_t errlen) {
    char meta[65536];
    if (sr_make(c, st, meta, sizeof meta, err, errlen)) return NULL;
    acm_model *m = acm__model_build(meta, vr_lookup, st, err, errlen);
    if (!m) vr_store_free(st);
    return m;
}

/* Writes the model to a safetensors file (engine/model.h's format: F32 tensors, the metadata under "acm"), for a
 * server to load; 0, or -1 with a message. */
static inline int sr_write(const sr_config *c, const char *path, char *err, size_t errlen) {
    static char meta[65536];
    vr_store st;
    if (sr_make(c, &st, meta, sizeof meta, err, errlen)) return -1;
    acm_st_out *t = calloc((size_t)st.n, sizeof *t);
    json_t *md = json_pack("{s:s}", "acm", meta);
    int rc = -1;
    if (!t || !md) snprintf(err, errlen, "speech_random: out of memory");
    else {
        for (int i = 0; i < st.n; i++) {
            t[i].name = st.t[i].name, t[i].dtype = ACM_ST_F32, t[i].ndim = st.t[i].ndim, t[i].data = st.t[i].data;
            for (int d = 0; d < st.t[i].ndim; d++) t[i].shape[d] = st.t[i].shape[d];
        }
        rc = acm__st_write(path, t, st.n, md, err, errlen);
    }
    json_decref(md);
    free(t);
    vr_store_free(&st);
    return rc;
}

#endif
