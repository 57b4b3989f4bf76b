/*
 * test_models.c — every shipped model reproduces its card (issue 3): for each models/NAME.md whose front matter
 * (the block between the first two "---" lines) has "test_accuracy: X" (percent, Fashion-MNIST test set, the
 * engine's default policy), models/NAME.safetensors is evaluated through the engine's public API (train/eval.c) and
 * must give X within ±0.05 points. A card without the key is not checked here; no models at all is not a failure.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "train/eval.h"

/* Reads "test_accuracy:" from the front matter; returns 1 and *acc if present. */
static int card_accuracy(const char *path, double *acc) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int in_front = 0, found = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "---", 3)) {
            if (in_front) break;
            in_front = 1;
            continue;
        }
        if (!in_front) break;
        if (sscanf(line, "test_accuracy: %lf", acc) == 1) found = 1;
    }
    fclose(f);
    return found;
}

Test(models, cards_reproduce, .timeout = 300) {
    DIR *d = opendir("models");
    if (!d) {
        cr_log_info("no models/ folder: nothing to check");
        return;
    }
    acm_blas_set_threads(2);
    struct dirent *e;
    int checked = 0;
    while ((e = readdir(d))) {
        size_t L = strlen(e->d_name);
        if (L < 4 || strcmp(e->d_name + L - 3, ".md")) continue;
        char card[512], model[512];
        snprintf(card, sizeof card, "models/%s", e->d_name);
        snprintf(model, sizeof model, "models/%.*s.safetensors", (int)(L - 3), e->d_name);
        double want;
        if (!card_accuracy(card, &want)) continue;
        acmt_eval_result r;
        char err[512];
        cr_assert_eq(acmt_eval_model(model, "/usr/share/datasets/fashion-mnist", 100, acm_policy_default(), &r, err, sizeof err), 0,
                     "%s: %s", model, err);
        double got = 100.0 * r.accuracy;
        cr_assert(got >= want - 0.05 && got <= want + 0.05, "%s: test accuracy %.2f%%, card says %.2f%%", model,
                  got, want);
        checked++;
    }
    closedir(d);
    cr_log_info("%d shipped model(s) checked", checked);
}
