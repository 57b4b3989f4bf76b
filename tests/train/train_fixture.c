/*
 * train_fixture.c — shared pieces of the acm-train end-to-end tests (see train_fixture.h).
 */
#include "train_fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "safetensors.h"
#include "train/commands.h"
#include "train/rng.h"
#include "train/speech_corpus.h"

void fixture_make_dir(char *dir, size_t size, const char *name) {
    snprintf(dir, size, "/tmp/acm-test-%s-XXXXXX", name);
    cr_assert(mkdtemp(dir), "mkdtemp");
}

void fixture_remove_dir(const char *dir) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

int fixture_run(int (*cmd)(int, char **), const char *name, int n, const char **args) {
    char *argv[40];
    cr_assert_lt(n, 39);
    argv[0] = (char *)name;
    for (int i = 0; i < n; i++) argv[i + 1] = (char *)args[i];
    argv[n + 1] = NULL;
    return cmd(n + 1, argv);
}

char *fixture_capture(const char *cmd, int *status) {
    FILE *p = popen(cmd, "r");
    cr_assert(p, "popen %s", cmd);
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    cr_assert(out);
    while (n + 1 < cap) {
        size_t got = fread(out + n, 1, cap - 1 - n, p);
        if (!got) break;
        n += got;
    }
    out[n] = 0;
    int rc = pclose(p);
    *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    return out;
}

json_t *fixture_same_checkpoints(const char *p1, const char *p2, const char *const *names, int nnames,
                                 const char *const *keys, int nkeys) {
    acm_st_file a, b;
    char err[256];
    cr_assert_eq(acm__st_open(&a, p1, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acm__st_open(&b, p2, err, sizeof err), 0, "%s", err);
    cr_assert_eq(a.n, b.n);
    for (int i = 0; i < nnames; i++) {
        const acm_st_tensor *ta = acm__st_find(&a, names[i]), *tb = acm__st_find(&b, names[i]);
        cr_assert(ta && tb, "tensor %s missing", names[i]);
        cr_assert_eq(ta->numel, tb->numel);
        int64_t diff = -1;
        for (int64_t j = 0; j < ta->numel && diff < 0; j++)
            if (memcmp((const char *)ta->data + 4 * j, (const char *)tb->data + 4 * j, 4)) diff = j;
        cr_assert(diff < 0, "%s differs first at element %lld of %lld", names[i], (long long)diff,
                  (long long)ta->numel);
    }
    json_t *sa = json_loads(acm__st_meta(&a, "acm_train"), 0, NULL);
    json_t *sb = json_loads(acm__st_meta(&b, "acm_train"), 0, NULL);
    cr_assert(sa && sb);
    for (int i = 0; i < nkeys; i++)
        cr_assert(json_equal(json_object_get(sa, keys[i]), json_object_get(sb, keys[i])), "state '%s' differs",
                  keys[i]);
    json_decref(sb);
    acm__st_close(&a);
    acm__st_close(&b);
    return sa;
}

void fixture_speech_split(const char *dir, const char *split, int n, uint64_t seed) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, split);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/shard-00000.f16", dir, split);
    FILE *f = fopen(path, "wb");
    snprintf(path, sizeof path, "%s/%s.tsv", dir, split);
    FILE *t = fopen(path, "w");
    cr_assert(f && t);
    acmt_rng r;
    acmt_rng_seed(&r, seed, 0);
    int64_t off = 0;
    for (int i = 0; i < n; i++) {
        const int T = 10 + (int)acmt_rng_below(&r, 24), F = 4 * T + (int)acmt_rng_below(&r, 4);
        char text[64];
        int L = 1 + (int)acmt_rng_below(&r, (uint32_t)(T / 2));
        for (int j = 0; j < L; j++) {
            int c = (int)acmt_rng_below(&r, 4);
            text[j] = c == 3 && j > 0 && j < L - 1 && text[j - 1] != ' ' ? ' ' : (char)('a' + c % 3);
        }
        text[L] = 0;
        for (int k = 0; k < F; k++) {
            const char ch = text[(int64_t)k * L / F];
            for (int m = 0; m < ACMS_MELS; m++) {
                float x = acmt_rng_normal(&r) + (ch != ' ' && m / 20 == ch - 'a' ? 2.0f : 0.0f);
                uint16_t h = acms_f32_to_f16(x - 5.0f);
                fwrite(&h, 2, 1, f);
            }
        }
        fprintf(t, "%s-%d\t0\t%lld\t%d\t%d\tspk%d\tespeak-ng\tv\tcommand\tclean\t%s\n", split, i, (long long)off, F,
                F * 160 + 240, i % 3, text);
        off += F;
    }
    fclose(f);
    fclose(t);
}

void fixture_speech_corpus(char *dir, size_t size, const char *name) {
    fixture_make_dir(dir, size, name);
    fixture_speech_split(dir, "train", 60, 1);
    fixture_speech_split(dir, "val", 8, 2);
}

void fixture_speech_base(const char *dir, const char *out, int epochs) {
    char cfg[128];
    snprintf(cfg, sizeof cfg, "%s/base.json", dir);
    FILE *f = fopen(cfg, "w");
    cr_assert(f);
    fprintf(f,
            "{\"corpus\": \"%s\", \"dim\": 16, \"depth\": 2, \"heads\": 2, \"mlp_ratio\": 2, \"chunk\": 4, "
            "\"left_context\": 6, \"epochs\": %d, \"batch_tokens\": 200, \"max_tokens\": 40, \"bucket_batches\": 3, "
            "\"lr\": 3e-3, \"warmup_steps\": 3, \"stats_utts\": 20, \"threads\": 1}\n",
            dir, epochs);
    fclose(f);
    const char *a[] = {"--config", cfg, "--out", out, "--quiet"};
    cr_assert_eq(fixture_run(cmd_speech_base, "speech-base", 5, a), 0);
}

void fixture_speech_models(char *dir, size_t size, const char *name, char *base, char *acm, size_t cap) {
    fixture_speech_corpus(dir, size, name);
    fixture_speech_split(dir, "test-seen", 8, 3);
    fixture_speech_split(dir, "test-unseen", 8, 4);
    snprintf(base, cap, "%s/base.safetensors", dir);
    snprintf(acm, cap, "%s/acm.safetensors", dir);
    fixture_speech_base(dir, base, 4);
    const char *c[] = {"--base", base, "--corpus", dir, "--out", acm, "--learners", "4", "--gate-hidden", "4",
                       "--epochs", "1,1,1", "--batch-tokens", "200", "--max-tokens", "40", "--threads", "1",
                       "--quiet"};
    cr_assert_eq(fixture_run(cmd_acmize, "acmize", 19, c), 0);
}
