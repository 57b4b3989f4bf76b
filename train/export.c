/*
 * export.c — `acm-train export CKPT --out MODEL`: writes the model of a base-training checkpoint (train/ckpt.h) as a
 * model file, so that a run in progress can be evaluated, converted or served before it ends. The checkpoint's own
 * configuration gives the architecture; its "params" tensor the weights. A checkpoint of `acm-train base` gives the
 * ViT, one of `acm-train speech-base` the speech encoder (its log-mel statistics are among the parameters): the same
 * tensors the run writes at its end, had it ended at the checkpoint's step.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "safetensors.h"
#include "train/base_config.h"
#include "train/commands.h"
#include "train/speech_config.h"
#include "train/speech_train.h"
#include "train/vit_train.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train export CHECKPOINT --out MODEL.safetensors\n"
               "  CHECKPOINT of acm-train base (a ViT) or acm-train speech-base (a speech encoder)\n");
}

/* The speech encoder of a speech-base checkpoint (state st, parameters pt) into out. Returns the exit status. */
static int export_speech(const char *ckpt, const json_t *st, const acm_st_tensor *pt, const char *out) {
    char err[2048];
    acmt_speech_train_config cfg = acmt_speech_train_config_default();
    if (acmt_speech_train_config_apply(&cfg, json_object_get(st, "config"), err, sizeof err)) {
        fprintf(stderr, "acm-train export: %s: %s\n", ckpt, err);
        return 1;
    }
    const acmt_speech_config mc = acmt_speech_train_model_config(&cfg);
    acmt_speech *s = acmt_speech_new(&mc, 1, 1, 1, 0, err, sizeof err);
    int rc = 1;
    const long long step = (long long)json_integer_value(json_object_get(st, "step"));
    if (!s) {
        fprintf(stderr, "acm-train export: %s\n", err);
    } else if (pt->numel != s->nparams) {
        fprintf(stderr, "acm-train export: %s: %lld parameters, the configuration needs %lld\n", ckpt,
                (long long)pt->numel, (long long)s->nparams);
    } else {
        memcpy(s->params, pt->data, sizeof(float) * (size_t)s->nparams);
        char extra[256];
        snprintf(extra, sizeof extra,
                 "{\"train\": {\"command\": \"acm-train export\", \"exported_from_step\": %lld, "
                 "\"train_seconds\": %.1f}}",
                 step, json_number_value(json_object_get(st, "train_seconds")));
        if (acmt_speech_save_model(s, out, extra, err, sizeof err)) {
            fprintf(stderr, "acm-train export: %s\n", err);
        } else {
            printf("acm-train export: %s (speech-base, step %lld) -> %s\n", ckpt, step, out);
            rc = 0;
        }
    }
    acmt_speech_free(s);
    return rc;
}

int cmd_export(int argc, char **argv) {
    const char *ckpt = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--out") && i + 1 < argc) {
            out = argv[++i];
        } else if (argv[i][0] != '-' && !ckpt) {
            ckpt = argv[i];
        } else {
            fprintf(stderr, "acm-train export: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!ckpt || !out) {
        usage(stderr);
        return 2;
    }
    char err[2048];
    acm_st_file f;
    if (acm__st_open(&f, ckpt, err, sizeof err)) {
        fprintf(stderr, "acm-train export: %s\n", err);
        return 1;
    }
    json_t *st = json_loads(acm__st_meta(&f, "acm_train") ? acm__st_meta(&f, "acm_train") : "", 0, NULL);
    const char *kind = json_string_value(json_object_get(st, "kind"));
    acmt_base_config cfg = acmt_base_config_default();
    const acm_st_tensor *pt = acm__st_find(&f, "params");
    int rc = 1;
    acmt_vit *v = NULL;
    if (st && kind && !strcmp(kind, "speech-base") && pt && pt->dtype == ACM_ST_F32) {
        rc = export_speech(ckpt, st, pt, out);
    } else if (!st || !kind || strcmp(kind, "base") || !pt || pt->dtype != ACM_ST_F32) {
        fprintf(stderr, "acm-train export: %s: not a base-training checkpoint (needs state kind \"base\" or "
                        "\"speech-base\" and F32 params)\n",
                ckpt);
    } else if (acmt_base_config_apply(&cfg, json_object_get(st, "config"), err, sizeof err)) {
        fprintf(stderr, "acm-train export: %s: %s\n", ckpt, err);
    } else {
        acmt_vit_config vc;
        acmt_base_config_vit(&cfg, &vc, err, sizeof err); /* checked by acmt_base_config_apply */
        v = acmt_vit_new(&vc, 1, err, sizeof err);
        if (!v) {
            fprintf(stderr, "acm-train export: %s\n", err);
        } else if (pt->numel != v->nparams) {
            fprintf(stderr, "acm-train export: %s: %lld parameters, the configuration needs %lld\n", ckpt,
                    (long long)pt->numel, (long long)v->nparams);
        } else {
            memcpy(v->params, pt->data, sizeof(float) * (size_t)v->nparams);
            char extra[256];
            snprintf(extra, sizeof extra, "{\"train\": {\"exported_from_step\": %lld}}",
                     (long long)json_integer_value(json_object_get(st, "step")));
            if (acmt_vit_save_model(v, out, extra, err, sizeof err))
                fprintf(stderr, "acm-train export: %s\n", err);
            else {
                printf("acm-train export: %s (step %lld) -> %s\n", ckpt,
                       (long long)json_integer_value(json_object_get(st, "step")), out);
                rc = 0;
            }
        }
    }
    acmt_vit_free(v);
    json_decref(st);
    acm__st_close(&f);
    return rc;
}
