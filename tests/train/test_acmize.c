/*
 * test_acmize.c — a tiny end-to-end conversion: `acm-train base` makes a small static ViT from 512 images, then
 * `acm-train acmize` runs all three phases on it. Checks: the budget loss falls during phase 3 (the target is far
 * below where the gates start), the output is a valid ACM model for the engine, and a run stopped in the middle and
 * resumed writes a byte-identical model. Then phase 3 again from the kept phase-2 checkpoint (written without FiLM)
 * with --film: the model has budget-conditioned gates whose logits move with beta, and after calibration MEAN
 * realises each budget it is asked for.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "safetensors.h"
#include "train_fixture.h"
#include "vit.h"

static char dir[64];
static const char *bin(void) {
    static char b[256];
    snprintf(b, sizeof b, "%s/acm-train", getenv("ACM_BUILD") ? getenv("ACM_BUILD") : "build");
    return b;
}

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

static void setup(void) {
    snprintf(dir, sizeof dir, "/tmp/acm-acmize-XXXXXX");
    cr_assert(mkdtemp(dir));
    FILE *f = fopen("/tmp/acm-acmize-tiny.json", "w");
    fprintf(f, "{\"dim\": 24, \"depth\": 1, \"heads\": 2, \"epochs\": 2, \"batch_size\": 32, \"train_limit\": 512, "
               "\"val_size\": 100, \"warmup_steps\": 2, \"ckpt_every_s\": 1000}\n");
    fclose(f);
    sh("%s base --config /tmp/acm-acmize-tiny.json --out %s/base.safetensors --no-final --quiet > %s/base.log 2>&1 "
       "|| (cat %s/base.log; false)",
       bin(), dir, dir, dir);
}

static void teardown(void) {
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s /tmp/acm-acmize-tiny.json", dir);
    if (system(cmd)) cr_log_warn("cleanup of %s failed", dir);
}

#define ACMIZE_ARGS                                                                                               \
    "--train-limit 512 --val-size 100 --batch 16 --epochs 0.5,0.25,1.5 --lr 2e-3,1e-2,3e-3 --beta 0.25 "         \
    "--weights 1,0.05,0.05 --log-every 4 --quiet"

Test(acmize, tiny_conversion_budget_falls_and_resume_is_exact, .init = setup, .fini = teardown, .timeout = 240) {
    char base_model[128];
    snprintf(base_model, sizeof base_model, "%s/base.safetensors", dir);
    if (access(base_model, F_OK)) {
        /* --no-final skips the model file: write it from the checkpoint by finishing without --no-final */
        sh("%s base --config /tmp/acm-acmize-tiny.json --out %s --resume --quiet > /dev/null 2>&1", bin(), base_model);
    }
    cr_assert_eq(access(base_model, F_OK), 0, "no base model");
    sh("%s acmize --base %s --out %s/a.safetensors --keep-phase-ckpts " ACMIZE_ARGS, bin(), base_model, dir);
    /* the same run, stopped after 30 steps (inside phase 2) and resumed */
    sh("%s acmize --base %s --out %s/b.safetensors --max-steps 30 " ACMIZE_ARGS, bin(), base_model, dir);
    sh("%s acmize --base %s --out %s/b.safetensors --resume " ACMIZE_ARGS, bin(), base_model, dir);
    /* every tensor identical (the metadata differs: it records wall times) */
    {
        char pa[128], pb[128], err[512];
        snprintf(pa, sizeof pa, "%s/a.safetensors", dir);
        snprintf(pb, sizeof pb, "%s/b.safetensors", dir);
        acm_st_file fa, fb;
        cr_assert_eq(acm__st_open(&fa, pa, err, sizeof err), 0, "%s", err);
        cr_assert_eq(acm__st_open(&fb, pb, err, sizeof err), 0, "%s", err);
        cr_assert_eq(fa.n, fb.n);
        for (int i = 0; i < fa.n; i++) {
            const acm_st_tensor *tb = acm__st_find(&fb, fa.tensors[i].name);
            cr_assert(tb, "%s missing after resume", fa.tensors[i].name);
            cr_expect_eq(memcmp(fa.tensors[i].data, tb->data, (size_t)fa.tensors[i].numel * 4), 0,
                         "tensor %s differs between the straight and the resumed run", fa.tensors[i].name);
        }
        acm__st_close(&fa);
        acm__st_close(&fb);
    }

    /* phase-3 budget loss: mean of the first two logged rows vs the last two */
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/a.safetensors.csv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    double lb[256];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < 256) {
        int ph;
        long step;
        double lr, loss, aux1;
        if (sscanf(line, "%d,%ld,%lf,%lf,%lf", &ph, &step, &lr, &loss, &aux1) == 5 && ph == 3) lb[n++] = aux1;
    }
    fclose(f);
    cr_assert_geq(n, 4, "phase 3 logged %d rows", n);
    double first = (lb[0] + lb[1]) / 2, last = (lb[n - 1] + lb[n - 2]) / 2;
    cr_expect_lt(last, first, "budget loss did not fall: %.4f -> %.4f", first, last);
    cr_log_info("phase-3 budget loss %.4f -> %.4f over %d rows", first, last, n);

    /* calibration writes a lambda table and CAP shares the engine accepts, and MEAN then realises each beta on the
     * calibration images */
    sh("%s calibrate %s/a.safetensors --out %s/c.safetensors --val-size 100 --images 100 --betas 0.3:0.9:0.3 "
       "> %s/cal.log 2>&1 || (cat %s/cal.log; false)",
       bin(), dir, dir, dir, dir);
    {
        char cp[128], err[512];
        snprintf(cp, sizeof cp, "%s/c.safetensors", dir);
        acm_model *cm = acm_model_load(cp, err, sizeof err);
        cr_assert(cm, "%s", err);
        const acm_config *cc = acm_model_config(cm);
        cr_expect_geq(cc->mean_table_len, 2, "lambda table rows: %d", cc->mean_table_len);
        cr_expect_eq(cc->cap_table_len, cc->mean_table_len);
        float b0, l0, b1, l1;
        acm_model_mean_table(cm, 0, &b0, &l0);
        acm_model_mean_table(cm, cc->mean_table_len - 1, &b1, &l1);
        cr_expect_gt(l0, l1, "lambda must fall as beta rises (%.3f at %.2f, %.3f at %.2f)", l0, b0, l1, b1);
        /* the CAP order recorded is the one that was right more often at the probe budgets (gain on a tie) */
        json_t *meta = json_loads(acm_model_metadata(cm), 0, NULL), *probe;
        cr_assert(meta);
        probe = json_object_get(json_object_get(meta, "calibration"), "cap_order_probe");
        /* probes at 0.125, 0.25, 0.5 and 1, raised to beta_min where below (the engine refuses less), each budget once */
        const size_t np = json_array_size(probe);
        cr_assert(np >= 1 && np <= 4, "cap_order_probe rows: %zu", np);
        double gain = 0, level = 0;
        for (size_t i = 0; i < np; i++) {
            cr_expect_geq(json_number_value(json_object_get(json_array_get(probe, i), "beta")), cc->beta_min - 1e-6);
            gain += json_number_value(json_object_get(json_array_get(probe, i), "gain"));
            level += json_number_value(json_object_get(json_array_get(probe, i), "level"));
        }
        const char *ord = json_string_value(json_object_get(json_object_get(meta, "budget"), "cap_order"));
        cr_assert(ord, "budget.cap_order missing");
        cr_expect_str_eq(ord, level > gain + 1e-9 ? "level" : "gain", "gain %.3f level %.3f", gain, level);
        cr_expect_eq(cc->cap_order, strcmp(ord, "level") ? ACM_CAP_ORDER_GAIN : ACM_CAP_ORDER_LEVEL);
        json_decref(meta);
        acm_model_free(cm);
    }

    /* acm-train heatmaps: one row per model over the same images, a PNG of tiles 6 x 28 = 168 pixels plus 4 gaps */
    sh("%s heatmaps --out %s/h.png --images 3 --policy cap --budget 0.5 %s/c.safetensors %s/a.safetensors > %s/h.log "
       "2>&1 || (cat %s/h.log; false)",
       bin(), dir, dir, dir, dir, dir);
    {
        char hp[128];
        unsigned char hdr[24];
        snprintf(hp, sizeof hp, "%s/h.png", dir);
        FILE *hf = fopen(hp, "rb");
        cr_assert(hf && fread(hdr, 1, 24, hf) == 24, "no PNG at %s", hp);
        fclose(hf);
        unsigned w = (unsigned)hdr[16] << 24 | hdr[17] << 16 | hdr[18] << 8 | hdr[19];
        unsigned h = (unsigned)hdr[20] << 24 | hdr[21] << 16 | hdr[22] << 8 | hdr[23];
        cr_expect(!memcmp(hdr + 1, "PNG", 3) && w == 3 * (168 + 4) + 4 && h == 2 * (168 + 4) + 4, "PNG %ux%u", w, h);
        char cmd[512];
        snprintf(cmd, sizeof cmd, "%s heatmaps --out %s/h2.png %s/base.safetensors 2>/dev/null", bin(), dir, dir);
        cr_expect_eq(WEXITSTATUS(system(cmd)), 1, "a static model has no compute map");
        snprintf(cmd, sizeof cmd, "%s heatmaps --out %s/h2.png 2>/dev/null", bin(), dir);
        cr_expect_eq(WEXITSTATUS(system(cmd)), 2, "no model given");
    }

    /* the engine loads the result: every q, k, v, o and MLP is an ACM with 4 learners */
    char err[512];
    snprintf(path, sizeof path, "%s/a.safetensors", dir);
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->num_acms, 5);
    cr_expect_eq(acm_model_acm(m, 4)->n, 4);
    cr_expect_str_eq(acm_model_acm(m, 4)->name, "blocks.0.mlp");
    cr_expect_gt(c->beta_min, 0.0f);
    cr_expect_eq(c->film_gates, 0);
    acm_model_free(m);

    /* budget-conditioned gates: phase 3 only, from the phase-2 checkpoint written without FiLM */
    sh("%s acmize --base %s --out %s/f.safetensors --resume --ckpt %s/a.safetensors.ckpt.phase2 --film " ACMIZE_ARGS
       " --beta-sample 0.25:1", /* after ACMIZE_ARGS' --beta: the last one wins */
       bin(), base_model, dir, dir);
    {
        /* its checkpoint holds FiLM parameters: resuming it without --film is refused */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s acmize --base %s --out %s/f.safetensors --resume --ckpt %s/a.safetensors.ckpt.phase2 "
                 ACMIZE_ARGS " 2>&1", bin(), base_model, dir, dir);
        int st;
        char *out = fixture_capture(cmd, &st);
        cr_expect_neq(st, 0, "resuming a --film checkpoint without --film must fail");
        cr_expect(strstr(out, "resume it with --film"), "message: %s", out);
        free(out);
    }
    snprintf(path, sizeof path, "%s/f.safetensors", dir);
    {
        acm_st_file ff;
        cr_assert_eq(acm__st_open(&ff, path, err, sizeof err), 0, "%s", err);
        const acm_st_tensor *sc = acm__st_find(&ff, "blocks.0.mlp.gate.film.scale"),
                            *sf = acm__st_find(&ff, "blocks.0.mlp.gate.film.shift");
        cr_assert(sc && sf, "no FiLM tensors in the --film model");
        double n2 = 0;
        for (int64_t i = 0; i < sc->numel; i++) n2 += fabs(((const float *)sc->data)[i]);
        for (int64_t i = 0; i < sf->numel; i++) n2 += fabs(((const float *)sf->data)[i]);
        cr_expect_gt(n2, 0.0, "phase 3 did not train the FiLM parameters");
        acm__st_close(&ff);
    }
    m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    c = acm_model_config(m);
    cr_expect_eq(c->film_gates, 5);
    cr_expect_float_eq(c->gate_beta, 0.625f, 1e-6, "gate_beta %g: the middle of 0.25:1", (double)c->gate_beta);
    {
        /* the same input at one lambda and two budgets: the gates' logits differ */
        char e2[256];
        acm_worker *w = acm_worker_new(m, (acm_worker_params){.max_batch = 2}, e2, sizeof e2);
        cr_assert(w, "%s", e2);
        const int T = c->tokens, A = c->num_acms, Cmax = m->max_choices;
        float pix[2 * 28 * 28], lg[2 * 10], *glog = calloc((size_t)A * 2 * T * Cmax, sizeof(float));
        for (int i = 0; i < 28 * 28; i++) pix[i] = pix[28 * 28 + i] = (float)sin(0.05 * i);
        acm_item it[2] = {{.pixels = pix, .policy = {.kind = ACM_POLICY_MEAN, .beta = 0.25f, .lambda_set = 1}},
                          {.pixels = pix + 28 * 28, .policy = {.kind = ACM_POLICY_MEAN, .beta = 1.0f, .lambda_set = 1}}};
        acm_result rr[2] = {{.logits = lg}, {.logits = lg + 10}};
        acm__worker_scratch(w)->gate_log = glog;
        cr_assert_eq(acm_worker_run(w, it, rr, 2, e2, sizeof e2), 0, "%s", e2);
        double maxd = 0; /* first ACM (the input is identical there): item 0 vs item 1 */
        for (int t = 0; t < T; t++)
            for (int k = 0; k < acm_model_acm(m, 0)->n; k++)
                maxd = fmax(maxd, fabs(glog[(size_t)t * Cmax + k] - glog[((size_t)T + t) * Cmax + k]));
        cr_expect_gt(maxd, 1e-6, "FiLM gate logits do not depend on beta (max |Δ| %.3g)", maxd);
        free(glog);
        acm_worker_free(w);
    }
    acm_model_free(m);
    /* calibration keeps gate_beta and conditions the gates on each beta: MEAN then realises it on the test set */
    sh("%s calibrate %s/f.safetensors --val-size 100 --images 100 --betas 0.3:0.9:0.3 > %s/calf.log 2>&1 || "
       "(cat %s/calf.log; false)",
       bin(), dir, dir, dir);
    m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_expect_float_eq(acm_model_config(m)->gate_beta, 0.625f, 1e-6, "calibration lost budget.gate_beta");
    acm_model_free(m);
    const double betas[2] = {0.3, 0.9};
    double real[2];
    for (int i = 0; i < 2; i++) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "%s eval %s --policy mean --budget %.2f --json", bin(), path, betas[i]);
        int st;
        char *out = fixture_capture(cmd, &st);
        cr_assert_eq(st, 0, "%s", cmd);
        const char *r = strstr(out, "\"budget_realised\"");
        cr_assert(r, "no budget_realised in %s", out);
        r = strstr(r, "\"mean\"");
        cr_assert(r && sscanf(r, "\"mean\": %lf", &real[i]) == 1, "cannot parse %s", out);
        cr_expect(fabs(real[i] - betas[i]) < 0.05, "MEAN at %.2f realised %.4f", betas[i], real[i]);
        free(out);
    }
    cr_log_info("FiLM model after calibration: mean realises %.4f at 0.3, %.4f at 0.9", real[0], real[1]);
}

Test(acmize, bad_arguments_are_refused) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s acmize --base nowhere.safetensors --out /tmp/x.safetensors 2>/dev/null", bin());
    cr_expect_neq(system(cmd), 0, "a missing base model must fail");
    snprintf(cmd, sizeof cmd, "%s acmize --base tests/golden/vit_a.safetensors --out /tmp/x.safetensors 2>&1", bin());
    int st;
    char *out = fixture_capture(cmd, &st);
    cr_expect_neq(st, 0);
    cr_expect(strstr(out, "not a static ViT"), "message: %s", out);
    free(out);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --modules q,z 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --epochs 1,2 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --beta 1.5 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --distill -1 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --distill 1,0 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
    snprintf(cmd, sizeof cmd, "%s acmize --base x --out y --gate-lr-mult 0 2>/dev/null", bin());
    cr_expect_eq(WEXITSTATUS(system(cmd)), 2);
}

/* A base with a convolutional stem converts (the stem stays static), and phase 3 with the distillation term and a
 * separate gate learning rate logs the term: 0 in phases 1-2, positive in phase 3. The model loads with its stem. */
Test(acmize, stem_base_with_distillation_and_gate_lr, .init = setup, .fini = teardown, .timeout = 240) {
    FILE *f = fopen("/tmp/acm-acmize-tiny.json", "w");
    fprintf(f, "{\"dim\": 16, \"depth\": 1, \"heads\": 2, \"epochs\": 1, \"batch_size\": 32, \"train_limit\": 256, "
               "\"val_size\": 100, \"warmup_steps\": 2, \"patch_size\": 2, \"stem\": \"4/1,6/2\"}\n");
    fclose(f);
    sh("%s base --config /tmp/acm-acmize-tiny.json --out %s/stem.safetensors --quiet > %s/sbase.log 2>&1 "
       "|| (cat %s/sbase.log; false)",
       bin(), dir, dir, dir);
    sh("%s acmize --base %s/stem.safetensors --out %s/s.safetensors --train-limit 256 --val-size 100 --batch 16 "
       "--epochs 0.25,0.25,0.5 --log-every 2 --distill 1,2 --gate-lr-mult 5 --quiet",
       bin(), dir, dir);
    char path[128], line[512], err[512];
    snprintf(path, sizeof path, "%s/s.safetensors.csv", dir);
    f = fopen(path, "r");
    cr_assert(f);
    cr_assert(fgets(line, sizeof line, f));
    cr_assert(strstr(line, ",seconds,distill"), "header: %s", line);
    int rows3 = 0, rows12 = 0;
    while (fgets(line, sizeof line, f)) {
        int ph = atoi(line);
        const char *last = strrchr(line, ',');
        double kd = atof(last + 1);
        if (ph == 3) {
            rows3++;
            cr_expect_gt(kd, 0, "phase 3 row without a distillation term: %s", line);
        } else {
            rows12++;
            cr_expect_eq(kd, 0, "phase %d row with a distillation term: %s", ph, line);
        }
    }
    fclose(f);
    cr_assert(rows3 >= 2 && rows12 >= 2, "rows: %d in phases 1-2, %d in phase 3", rows12, rows3);
    snprintf(path, sizeof path, "%s/s.safetensors", dir);
    acm_model *m = acm_model_load(path, err, sizeof err);
    cr_assert(m, "%s", err);
    cr_expect_eq(acm_model_config(m)->stem_depth, 2);
    cr_expect_gt(acm_model_config(m)->num_acms, 0);
    acm_model_free(m);
    /* the gate multiplier reaches the optimizer: with 1 instead of 5, the phase-3 gates end elsewhere */
    sh("%s acmize --base %s/stem.safetensors --out %s/s1.safetensors --train-limit 256 --val-size 100 --batch 16 "
       "--epochs 0.25,0.25,0.5 --log-every 2 --distill 1,2 --quiet",
       bin(), dir, dir);
    char p1[128];
    snprintf(p1, sizeof p1, "%s/s1.safetensors", dir);
    acm_st_file fa, fb;
    cr_assert_eq(acm__st_open(&fa, path, err, sizeof err), 0, "%s", err);
    cr_assert_eq(acm__st_open(&fb, p1, err, sizeof err), 0, "%s", err);
    const acm_st_tensor *ga = acm__st_find(&fa, "blocks.0.mlp.gate.2.weight"), *gb = acm__st_find(&fb,
                                                                                          "blocks.0.mlp.gate.2.weight");
    cr_assert(ga && gb && ga->numel == gb->numel);
    cr_expect_neq(memcmp(ga->data, gb->data, (size_t)ga->numel * 4), 0, "--gate-lr-mult 5 changed nothing");
    acm__st_close(&fa);
    acm__st_close(&fb);
}
