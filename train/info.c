/*
 * info.c — `acm-train info MODEL [--json]`: what a model file holds. Architecture, parameter count, dense FLOPs per
 * item, the ACM layout (every module: kind, learners, learner width, gate choices, FLOPs per learner), the budget
 * table, the model version and the BLAS core this machine runs on.
 */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"

static const char *kind_name(acm_module_kind k) {
    return k == ACM_MOD_ACM ? "acm" : k == ACM_MOD_MLP ? "mlp" : "linear";
}

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train info MODEL.safetensors [--json]\n"
               "  --json   machine-readable output (default: text)\n");
}

int cmd_info(int argc, char **argv) {
    const char *path = NULL;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "acm-train info: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    char err[512];
    acm_model *m = acm_model_load(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "acm-train info: %s\n", err);
        return 1;
    }
    const acm_config *c = acm_model_config(m);
    json_t *mods = json_array();
    for (int b = 0; b < c->depth; b++)
        for (int p = 0; p < ACM_POS_COUNT; p++) {
            const acm_module_info *mi = acm_model_module(m, b, (acm_position)p);
            if (p > ACM_POS_Q && p <= ACM_POS_V && mi == acm_model_module(m, b, ACM_POS_Q)) continue; /* fused qkv */
            json_t *o = json_pack("{s:s, s:s, s:i, s:i}", "name", mi->name, "kind", kind_name(mi->kind), "in", mi->din,
                                  "out", mi->dout);
            if (mi->kind == ACM_MOD_MLP) json_object_set_new(o, "hidden", json_integer(mi->hidden));
            if (mi->kind == ACM_MOD_ACM) {
                json_object_set_new(o, "learners", json_integer(mi->n));
                json_object_set_new(o, "learner_width", json_integer(mi->h));
                json_object_set_new(o, "k_min", json_integer(mi->kmin));
                json_object_set_new(o, "activation", json_string(mi->gelu ? "gelu" : "identity"));
                json_object_set_new(o, "learner_flops", json_real(acm_model_learner_flops(m, mi->acm_index)));
                if (mi->film) json_object_set_new(o, "gate", json_string("film"));
            }
            json_array_append_new(mods, o);
        }
    json_t *table = json_array();
    for (int j = 0; j < c->mean_table_len; j++) {
        float be, la;
        acm_model_mean_table(m, j, &be, &la);
        json_array_append_new(table, json_pack("[f,f]", (double)be, (double)la));
    }
    json_t *labels = json_array();
    for (int k = 0; k < c->num_classes; k++) json_array_append_new(labels, json_string(c->labels[k]));
    json_t *o = json_pack(
        "{s:s, s:s, s:{s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i}, s:I, s:f, s:i, s:o, s:{s:f, s:o, s:s}, s:o, "
        "s:s, s:i}",
        "file", path, "model_version", acm_model_version(m), "architecture", "image_size", c->image_size,
        "patch_size", c->patch_size, "in_chans", c->in_chans, "dim", c->dim, "depth", c->depth, "heads", c->heads,
        "mlp_hidden", c->mlp_hidden, "num_classes", c->num_classes, "tokens", c->tokens, "parameters",
        (json_int_t)acm_model_param_count(m), "flops_dense_per_item", acm_model_flops_dense(m), "acm_modules",
        c->num_acms, "modules", mods, "budget", "beta_min", (double)c->beta_min, "mean_table", table, "cap_order",
        acm_cap_order_name((acm_cap_order)c->cap_order), "labels", labels, "blas_core", acm_blas_core(),
        "blas_threads", acm_blas_threads());
    if (c->arch == ACM_ARCH_SPEECH) {
        /* the speech fields (engine/model.h); the image ones are 0 */
        json_t *arch = json_object_get(o, "architecture");
        json_object_set_new(arch, "arch", json_string("speech"));
        json_object_set_new(arch, "chunk", json_integer(c->chunk));
        json_object_set_new(arch, "left_context", json_integer(c->left_context));
        json_object_set_new(arch, "rope_base", json_real(c->rope_base));
        json_object_set_new(arch, "frontend",
                            json_pack("{s:i, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:i}", "sample_rate", c->sample_rate,
                                      "n_mels", c->n_mels, "n_fft", c->n_fft, "win_length", c->win_length,
                                      "hop_length", c->hop_length, "fmin", (double)c->fmin, "fmax", (double)c->fmax,
                                      "log_floor", (double)c->log_floor, "stack", c->stack));
        json_object_set_new(o, "flops_dense_per_token", json_real(acm_model_flops_dense(m)));
        json_object_del(o, "flops_dense_per_item");
    }
    if (c->film_gates) {
        json_t *jb = json_object_get(o, "budget");
        json_object_set_new(jb, "film_gates", json_integer(c->film_gates));
        json_object_set_new(jb, "gate_beta", json_real(c->gate_beta));
    }
    if (as_json) {
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
        puts(s);
        free(s);
    } else {
        printf("model          %s\n", path);
        printf("version        %s\n", acm_model_version(m));
        if (c->arch == ACM_ARCH_SPEECH) {
            const double ms = 1000.0 * c->stack * c->hop_length / c->sample_rate;
            printf("architecture   speech encoder: width %d, depth %d, heads %d, MLP %d, %d CTC classes, rotary base "
                   "%g\n",
                   c->dim, c->depth, c->heads, c->mlp_hidden, c->num_classes, (double)c->rope_base);
            printf("front end      %d Hz, %d-bin log-mel (FFT %d, window %d, hop %d, %g-%g Hz, floor %g), %d frames "
                   "per token (%.0f ms)\n",
                   c->sample_rate, c->n_mels, c->n_fft, c->win_length, c->hop_length, (double)c->fmin,
                   (double)c->fmax, (double)c->log_floor, c->stack, ms);
            printf("chunks         %d tokens (%.0f ms), left context %d tokens (%.0f ms)\n", c->chunk, c->chunk * ms,
                   c->left_context, c->left_context * ms);
        } else {
            printf("architecture   ViT: image %d, patch %d, %d channel(s), width %d, depth %d, heads %d, MLP %d, "
                   "%d classes, %d tokens\n",
                   c->image_size, c->patch_size, c->in_chans, c->dim, c->depth, c->heads, c->mlp_hidden,
                   c->num_classes, c->tokens);
            if (c->stem_depth) {
                printf("stem          ");
                for (int i = 0; i < c->stem_depth; i++)
                    printf(" 3x3 conv to %d channels, stride %d, GELU;", c->stem_chans[i], c->stem_stride[i]);
                printf(" then %dx%d patches of its %d x %d x %d output\n", c->patch_size, c->patch_size,
                       c->feat_chans, c->feat_size, c->feat_size);
            }
        }
        printf("parameters     %lld\n", (long long)acm_model_param_count(m));
        printf("dense FLOPs    %.4g per %s (%.3f GFLOPs; 2 FLOPs per multiply-add%s)\n", acm_model_flops_dense(m),
               c->arch == ACM_ARCH_SPEECH ? "token" : "item", acm_model_flops_dense(m) / 1e9,
               c->arch == ACM_ARCH_SPEECH ? "; attention apart, it grows with the chunk's keys" : "");
        if (c->arch == ACM_ARCH_SPEECH) {
            printf("alphabet       blank");
            for (int k = 1; k < c->num_classes; k++) printf(", '%s'", c->labels[k]);
        } else {
            printf("labels         ");
            for (int k = 0; k < c->num_classes; k++) printf("%s%s", k ? ", " : "", c->labels[k]);
        }
        printf("\nACM modules    %d\n", c->num_acms);
        printf("  %-22s %-7s %5s %5s %8s %6s %5s %9s %12s\n", "module", "kind", "in", "out", "learners", "width",
               "k_min", "act", "FLOPs/learner");
        size_t i;
        json_t *e;
        json_array_foreach(mods, i, e) {
            const char *kind = json_string_value(json_object_get(e, "kind"));
            printf("  %-22s %-7s %5lld %5lld", json_string_value(json_object_get(e, "name")), kind,
                   json_integer_value(json_object_get(e, "in")), json_integer_value(json_object_get(e, "out")));
            if (!strcmp(kind, "acm"))
                printf(" %8lld %6lld %5lld %9s %12.0f", json_integer_value(json_object_get(e, "learners")),
                       json_integer_value(json_object_get(e, "learner_width")),
                       json_integer_value(json_object_get(e, "k_min")),
                       json_string_value(json_object_get(e, "activation")),
                       json_real_value(json_object_get(e, "learner_flops")));
            else if (!strcmp(kind, "mlp"))
                printf("   hidden %lld", json_integer_value(json_object_get(e, "hidden")));
            printf("\n");
        }
        printf("budget         beta_min %.3g", (double)c->beta_min);
        if (c->mean_table_len) {
            printf("; mean-policy lambda(beta):");
            for (int j = 0; j < c->mean_table_len; j++) {
                float be, la;
                acm_model_mean_table(m, j, &be, &la);
                printf(" %.3g:%.4g", (double)be, (double)la);
            }
        } else {
            printf("; no lambda table (policy 'mean' unavailable)");
        }
        if (c->film_gates)
            printf("\ngates          budget-conditioned (FiLM) in %d of %d ACMs; argmax gates see beta %.3g",
                   c->film_gates, c->num_acms, (double)c->gate_beta);
        printf("\ncap policy     %s; learners go out in %s order\n",
               c->cap_table_len ? "calibrated per-module shares" : "no share table (every module gets beta)",
               c->cap_order == ACM_CAP_ORDER_LEVEL ? "level (breadth-first)" : "gain (the gate's P(K >= j) alone)");
        printf("BLAS core      %s (%d thread(s))\n", acm_blas_core(), acm_blas_threads());
    }
    json_decref(o);
    acm_model_free(m);
    return 0;
}
