/*
 * cmd_eval.c — `acm-train eval MODEL`: Fashion-MNIST test accuracy (or validation accuracy, --split val), per-class
 * accuracy and the confusion matrix of a model file, run through the engine's public API (eval.c); text or --json.
 * Reports the BLAS core and threads.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "train/commands.h"
#include "train/eval.h"

static void usage(FILE *f) {
    fprintf(f, "usage: acm-train eval MODEL.safetensors [options]\n"
               "  --data DIR      Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)\n"
               "  --batch N       images per engine call (default 64)\n"
               "  --threads N     OpenBLAS threads (default 2; the CPU backend)\n"
               "  --backend NAME  cpu | cuda: the engine backend (default cpu; cuda: a build made with make CUDA=1)\n"
               "  --policy P      argmax | fixed | mean | cap (default argmax; with --budget: mean)\n"
               "  --budget B      beta in (0, 1] for mean and cap\n"
               "  --k K           k for the fixed policy\n"
               "  --cap-order O   gain | level | random: the order CAP hands out learners in (default: the model's;\n"
               "                  random: level order with the tokens ranked at random, the gate-blind control)\n"
               "  --split S       test | val: the 10k test images (default), or the validation split that base\n"
               "                  training and acmize keep out of the training images (to choose between models\n"
               "                  without the test set)\n"
               "  --val-size N    the validation split's size, as in training (default 5000)\n"
               "  --split-seed N  (default 0)\n"
               "  --json          one JSON object on stdout instead of the text report\n"
               "A speech model takes other options: acm-train eval SPEECH_MODEL --help.\n");
}

/* 1 if the first argument that is not an option (or an option's value) names a speech model. */
static int is_speech_model(int argc, char **argv) {
    static const char *with_value[] = {"--data", "--batch", "--threads", "--policy", "--budget", "--k", "--cap-order",
                                       "--corpus", "--split", "--limit", "--beam", "--audio",
                                       "--val-size", "--split-seed"};
    for (int i = 1; i < argc; i++) {
        int skip = 0;
        for (size_t j = 0; j < sizeof with_value / sizeof *with_value; j++) skip |= !strcmp(argv[i], with_value[j]);
        if (skip) {
            i++;
            continue;
        }
        if (argv[i][0] == '-') continue;
        char err[256];
        acm_model *m = acm_model_load(argv[i], err, sizeof err);
        int speech = m && acm_model_config(m)->arch == ACM_ARCH_SPEECH;
        acm_model_free(m);
        return speech;
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    if (is_speech_model(argc, argv)) return cmd_speech_eval(argc, argv);
    const char *model = NULL, *data = "/usr/share/datasets/fashion-mnist";
    const char *backend = "cpu";
    int batch = 64, threads = 2, json = 0, policy_given = 0, val = 0;
    long long val_n = 5000, split_seed = 0;
    acm_policy pol = acm_policy_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--data") && more) data = argv[++i];
        else if (!strcmp(a, "--batch") && more) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--backend") && more) backend = argv[++i];
        else if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--split") && more) {
            const char *v = argv[++i];
            if (strcmp(v, "test") && strcmp(v, "val")) {
                fprintf(stderr, "acm-train eval: --split must be test or val for an image model\n");
                return 2;
            }
            val = !strcmp(v, "val");
        } else if ((!strcmp(a, "--val-size") || !strcmp(a, "--split-seed")) && more) {
            long long *dst = !strcmp(a, "--val-size") ? &val_n : &split_seed;
            const int lo = dst == &val_n; /* a split of at least one image; any seed */
            char *e;
            const long long v = strtoll(argv[++i], &e, 10);
            if (*e || e == argv[i] || v < lo) {
                fprintf(stderr, "acm-train eval: %s %s: expected an integer >= %d\n", a, argv[i], lo);
                return 2;
            }
            *dst = v;
        }
        else if (!strcmp(a, "--policy") && more) {
            int k = acm_policy_parse(argv[++i]);
            if (k < 0) {
                fprintf(stderr, "acm-train eval: unknown policy '%s' (argmax, fixed, mean, cap)\n", argv[i]);
                return 2;
            }
            pol.kind = (acm_policy_kind)k;
            policy_given = 1;
        } else if (!strcmp(a, "--budget") && more) {
            char *e;
            pol.beta = strtof(argv[++i], &e);
            if (*e || !(pol.beta > 0 && pol.beta <= 1)) {
                fprintf(stderr, "acm-train eval: --budget must be in (0, 1]\n");
                return 2;
            }
            if (!policy_given) pol.kind = ACM_POLICY_MEAN;
        } else if (!strcmp(a, "--k") && more) {
            pol.fixed_k = atoi(argv[++i]);
        } else if (!strcmp(a, "--cap-order") && more) {
            int o = acm_cap_order_parse(argv[++i]);
            if (o < 0) {
                fprintf(stderr, "acm-train eval: --cap-order must be gain, level or random\n");
                return 2;
            }
            pol.cap_order = (acm_cap_order)o;
        }
        else if (a[0] != '-' && !model) model = a;
        else {
            fprintf(stderr, "acm-train eval: unknown or incomplete option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!model || batch < 1 || threads < 1) {
        usage(stderr);
        return 2;
    }
    acm_blas_set_threads(threads);
    acmt_eval_result r;
    char err[1024];
    if (acm_backend_check(backend, err, sizeof err)) {
        fprintf(stderr, "acm-train eval: --backend: %s\n", err);
        return 2;
    }
    acmt_eval_set_backend(backend);
    if (val) acmt_eval_set_split(val_n, (uint64_t)split_seed);
    if (acmt_eval_model(model, data, batch, pol, &r, err, sizeof err)) {
        fprintf(stderr, "acm-train eval: %s\n", err);
        return 1;
    }
    const int K = r.classes;
    if (json) {
        json_t *o = json_object(), *pc = json_array(), *cm = json_array();
        json_object_set_new(o, "model", json_string(model));
        json_object_set_new(o, "split", json_string(val ? "val" : "test"));
        json_object_set_new(o, "n", json_integer(r.n));
        json_object_set_new(o, "correct", json_integer(r.correct));
        json_object_set_new(o, "accuracy", json_real(r.accuracy));
        json_object_set_new(o, "policy", json_string(acm_policy_name(pol.kind)));
        if (pol.kind == ACM_POLICY_MEAN || pol.kind == ACM_POLICY_CAP) json_object_set_new(o, "beta", json_real(pol.beta));
        if (pol.kind == ACM_POLICY_FIXED) json_object_set_new(o, "k", json_integer(pol.fixed_k));
        if (pol.kind == ACM_POLICY_CAP)
            json_object_set_new(o, "cap_order",
                                json_string(pol.cap_order ? acm_cap_order_name(pol.cap_order) : "model's"));
        json_object_set_new(o, "budget_realised", json_pack("{s:f, s:f, s:f, s:f}", "mean", r.budget_mean, "std",
                                                            r.budget_std, "min", r.budget_min, "max", r.budget_max));
        json_object_set_new(o, "gflops_per_image", json_real(r.flops_mean / 1e9));
        json_object_set_new(o, "gflops_dense_per_image", json_real(r.flops_dense / 1e9));
        for (int t = 0; t < K; t++) {
            int64_t row = 0;
            json_t *cr = json_array();
            for (int p = 0; p < K; p++) {
                row += r.confusion[t][p];
                json_array_append_new(cr, json_integer(r.confusion[t][p]));
            }
            json_array_append_new(pc, json_real(row ? (double)r.confusion[t][t] / row : 0));
            json_array_append_new(cm, cr);
        }
        json_object_set_new(o, "per_class_accuracy", pc);
        json_object_set_new(o, "confusion", cm);
        json_object_set_new(o, "seconds", json_real(r.seconds));
        json_object_set_new(o, "images_per_s", json_real(r.n / r.seconds));
        json_object_set_new(o, "blas_core", json_string(acm_blas_core()));
        json_object_set_new(o, "threads", json_integer(threads));
        json_object_set_new(o, "backend", json_string(r.backend));
        char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        printf("%s\n", s);
        free(s);
        json_decref(o);
        return 0;
    }
    acm_model *m = acm_model_load(model, err, sizeof err);
    const acm_config *c = m ? acm_model_config(m) : NULL;
    printf("model %s (version %s)\n", model, m ? acm_model_version(m) : "?");
    printf("%s accuracy %.2f%% (%lld / %lld), %.1f images/s, backend %s, BLAS %s x%d\n",
           val ? "validation" : "test", 100 * r.accuracy,
           (long long)r.correct, (long long)r.n, r.n / r.seconds, r.backend, acm_blas_core(), threads);
    printf("policy %s", acm_policy_name(pol.kind));
    if (pol.kind == ACM_POLICY_MEAN || pol.kind == ACM_POLICY_CAP) printf(" beta %.3g", (double)pol.beta);
    if (pol.kind == ACM_POLICY_FIXED) printf(" k %d", pol.fixed_k);
    printf(": realised budget mean %.4f (std %.4f, min %.4f, max %.4f); %.4f GFLOPs per image of %.4f dense "
           "(2 FLOPs per multiply-add)\n\n",
           r.budget_mean, r.budget_std, r.budget_min, r.budget_max, r.flops_mean / 1e9, r.flops_dense / 1e9);
    printf("%-14s %8s   confusion (rows: true, columns: predicted)\n", "class", "accuracy");
    for (int t = 0; t < K; t++) {
        int64_t row = 0;
        for (int p = 0; p < K; p++) row += r.confusion[t][p];
        printf("%-14s %7.2f%%  ", c && c->labels ? c->labels[t] : "?", row ? 100.0 * r.confusion[t][t] / row : 0.0);
        for (int p = 0; p < K; p++) printf(" %5lld", (long long)r.confusion[t][p]);
        printf("\n");
    }
    acm_model_free(m);
    return 0;
}
