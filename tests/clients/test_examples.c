/*
 * test_examples.c — the example images of clients/examples/ as the README uses them: every image the README, the docs
 * and the clients name exists and is one of the listed examples (no bare `shirt.png` that a fresh clone lacks), and
 * each example sent to acmd on the shipped models (as `make serve` starts it) comes back with its true label: every
 * example at the README's settings (default policy, X-Compute-Budget 0.5; the static model), the README's own examples
 * also at the model's floor β_min (what a tight X-Deadline-Ms may choose) and through the `acm` client.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "server/harness.h"

#define DIR_EX "clients/examples/"

typedef struct {
    char file[64], label[64];
} example;

static int examples(example *ex, int max) {
    char *t = th_slurp(DIR_EX "README.md", NULL);
    cr_assert(t, DIR_EX "README.md is missing");
    int n = 0;
    for (const char *l = t; l && *l && n < max; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        int cls;
        long idx;
        if (sscanf(l, "| `%63[^`]` | %63[^|]| %d | %ld |", ex[n].file, ex[n].label, &cls, &idx) != 4) continue;
        size_t k = strlen(ex[n].label);
        while (k && ex[n].label[k - 1] == ' ') ex[n].label[--k] = 0;
        n++;
    }
    free(t);
    cr_assert_geq(n, 1, "no examples listed");
    return n;
}

static const example *find(const example *ex, int n, const char *file) {
    for (int i = 0; i < n; i++)
        if (!strcmp(ex[i].file, file)) return &ex[i];
    return NULL;
}

/* Where the user-facing text names images: the README's examples are checked through the server below. */
static const char *const docs[] = {"README.md", "docs/CLI.md", "docs/API.md", "docs/DESIGN.md",
                                   "clients/python/acm_client.py", "deploy/serve.sh", "Makefile"};

/* Every token ending in ".png" whose file name is an example's must be spelled clients/examples/NAME and exist. */
Test(examples, docs_name_only_shipped_example_images) {
    example ex[16];
    const int n = examples(ex, 16);
    int checked = 0, in_readme = 0;
    for (size_t d = 0; d < sizeof docs / sizeof docs[0]; d++) {
        char *t = th_slurp(docs[d], NULL);
        if (!t) continue;
        for (char *p = strstr(t, ".png"); p; p = strstr(p + 4, ".png")) {
            char *s = p;
            while (s > t && !strchr(" \t\n@'\"`(=|", s[-1])) s--;
            char tok[256];
            snprintf(tok, sizeof tok, "%.*s", (int)(p + 4 - s), s);
            const char *base = strrchr(tok, '/') ? strrchr(tok, '/') + 1 : tok;
            if (!find(ex, n, base)) continue;
            checked++;
            in_readme += d == 0;
            cr_expect(!strncmp(tok, DIR_EX, strlen(DIR_EX)), "%s names \"%s\", which a fresh clone lacks: write %s%s",
                      docs[d], tok, DIR_EX, base);
            cr_expect_eq(access(tok, R_OK), 0, "%s names %s, which is missing", docs[d], tok);
        }
        free(t);
    }
    cr_expect_geq(in_readme, 1, "README.md names no example image");
    cr_log_info("%d mentions of example images checked", checked);
}

static int readme_uses(const char *file) {
    char *t = th_slurp("README.md", NULL);
    char want[600];
    snprintf(want, sizeof want, DIR_EX "%.63s", file);
    int yes = t && strstr(t, want);
    free(t);
    return yes;
}

static char *classify(int port, const char *model, const char *file, const char *hdr) {
    char path[600], url[600], h[600];
    snprintf(path, sizeof path, DIR_EX "%.63s", file);
    size_t n;
    char *png = th_slurp(path, &n);
    cr_assert(png, "%s", path);
    snprintf(url, sizeof url, "/v1/models/%s/classify", model);
    snprintf(h, sizeof h, "Content-Type: image/png\r\n%s", hdr);
    th_resp r;
    cr_assert_eq(th_http(port, "POST", url, h, png, n, &r), 0);
    free(png);
    cr_assert_eq(r.status, 200, "%s %s: %s", model, file, r.body);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert(j, "%s", r.body);
    char *label = strdup(json_string_value(json_object_get(j, "label")));
    json_decref(j);
    th_resp_free(&r);
    return label;
}

Test(examples, classified_as_their_true_label_by_the_shipped_models, .timeout = 120) {
    example ex[16];
    const int n = examples(ex, 16);
    th_acmd s;
    const char *args[] = {"--model", "fmnist=models/fmnist-vit-acm.safetensors", "--model",
                          "fmnist-static=models/fmnist-vit.safetensors", "--log-level", "warn", NULL};
    cr_assert_eq(th_acmd_start(&s, args), 0);
    cr_assert_eq(th_acmd_wait_ready(&s, 60), 0);
    th_resp r;
    cr_assert_eq(th_http(s.port, "GET", "/v2/models/fmnist", NULL, NULL, 0, &r), 0);
    json_t *meta = json_loads(r.body, 0, NULL);
    cr_assert(meta);
    const double beta_min = json_number_value(json_object_get(meta, "beta_min"));
    json_decref(meta);
    th_resp_free(&r);
    char floor_hdr[64];
    snprintf(floor_hdr, sizeof floor_hdr, "X-Compute-Budget: %.17g\r\n", beta_min);
    int readme = 0;
    for (int i = 0; i < n; i++) {
        const struct {
            const char *model, *hdr;
            int readme_only;
        } runs[] = {{"fmnist", "", 0}, {"fmnist", "X-Compute-Budget: 0.5\r\n", 0}, {"fmnist-static", "", 0},
                    {"fmnist", floor_hdr, 1}};
        const int in_readme = readme_uses(ex[i].file);
        readme += in_readme;
        for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
            if (runs[k].readme_only && !in_readme) continue;
            char *got = classify(s.port, runs[k].model, ex[i].file, runs[k].hdr);
            cr_expect_str_eq(got, ex[i].label, "%s on %s [%s]: %s, true label %s", ex[i].file, runs[k].model,
                             runs[k].hdr, got, ex[i].label);
            free(got);
        }
        if (!in_readme) continue;
        /* the README's command: build/acm classify --budget 0.5 clients/examples/NAME (with --json to read it) */
        char cmd[1200], out[8192];
        const char *b = getenv("ACM_BUILD");
        snprintf(cmd, sizeof cmd, "%s/acm classify --server http://127.0.0.1:%d --budget 0.5 --json " DIR_EX "%.63s",
                 b && *b ? b : "build", s.port, ex[i].file);
        FILE *p = popen(cmd, "r");
        cr_assert(p);
        size_t k = fread(out, 1, sizeof out - 1, p);
        out[k] = 0;
        cr_expect_eq(pclose(p), 0, "%s", cmd);
        json_t *j = json_loads(out, 0, NULL);
        cr_assert(j, "acm classify --json: %s", out);
        cr_expect_str_eq(json_string_value(json_object_get(j, "label")), ex[i].label, "%s via acm classify", ex[i].file);
        json_decref(j);
    }
    cr_expect_geq(readme, 1, "README.md sends no example image");
    cr_expect_eq(th_acmd_stop(&s, SIGTERM, 10), 0);
}
