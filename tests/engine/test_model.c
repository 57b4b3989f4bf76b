/*
 * test_model.c — model-level validation: starting from a valid golden model, each mutation (missing tensor, wrong
 * shape, extra tensor, wrong dtype, bad or unsupported metadata) must fail to load with a message naming the tensor or
 * field. Also: the model's own accounting (version, parameters, FLOPs per learner, gate collapse).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "model.h"
#include "model_mut.h"
#include "safetensors.h"
#include "train/acm_module.h"

#define SRC "tests/golden/vit_a.safetensors"


Test(model, unmodified_copy_loads) {
    model_mut m;
    model_mut_open(&m, SRC);
    model_mut_expect_load(&m, NULL);
    model_mut_close(&m);
}

Test(model, missing_tensor) {
    model_mut m;
    model_mut_open(&m, SRC);
    int i = model_mut_find(&m, "blocks.1.attn.proj.weight");
    m.t[i] = m.t[--m.n];
    model_mut_expect_load(&m, "'blocks.1.attn.proj.weight' is missing");
    model_mut_close(&m);
}

Test(model, missing_gate) {
    model_mut m;
    model_mut_open(&m, SRC);
    int i = model_mut_find(&m, "blocks.0.mlp.gate.0.weight");
    m.t[i] = m.t[--m.n];
    model_mut_expect_load(&m, "blocks.0.mlp.gate.0.weight");
    model_mut_close(&m);
}

Test(model, wrong_shape) {
    model_mut m;
    model_mut_open(&m, SRC);
    int i = model_mut_find(&m, "head.weight");
    m.t[i].shape[0] = 5; /* [10, 36] -> [5, 72]: same bytes, wrong shape */
    m.t[i].shape[1] = 72;
    model_mut_expect_load(&m, "'head.weight' has shape [5, 72], expected [10, 36]");
    model_mut_close(&m);
}

Test(model, learners_do_not_divide) {
    model_mut m;
    model_mut_open(&m, SRC);
    json_object_set_new(json_array_get(json_object_get(json_object_get(m.acm, "acm"), "modules"), 0), "learners",
                        json_integer(5));
    model_mut_expect_load(&m, "blocks.0.mlp.w1");
    model_mut_close(&m);
}

Test(model, extra_tensor) {
    model_mut m;
    model_mut_open(&m, SRC);
    static const float x[2] = {1, 2};
    m.t[m.n++] = (acm_st_out){"blocks.9.surprise", ACM_ST_F32, 1, {2}, x};
    model_mut_expect_load(&m, "'blocks.9.surprise' is not used");
    model_mut_close(&m);
}

Test(model, integer_tensor) {
    model_mut m;
    model_mut_open(&m, SRC);
    static const int32_t x[2] = {1, 2};
    m.t[m.n++] = (acm_st_out){"ints", ACM_ST_I32, 1, {2}, x};
    model_mut_expect_load(&m, "'ints' has dtype I32");
    model_mut_close(&m);
}

Test(model, bad_metadata) {
    static const struct {
        const char *key, *json, *needle;
    } cases[] = {
        {"format_version", "2", "format_version 2 is not supported"},
        {"format_version", "\"1\"", "'format_version' is missing or not an integer"},
        {"arch", "\"resnet\"", "arch 'resnet'"},
        {"dim", "0", "'dim' = 0 outside"},
        {"heads", "5", "not a multiple of heads"},
        {"patch_size", "5", "not a multiple of patch_size"},
        {"in_chans", "2", "in_chans must be 1 or 3"},
        {"ln_eps", "-1", "ln_eps"},
        {"labels", "[\"a\"]", "labels must be an array of 10"},
        {"preprocess", "{\"mean\":[0.5],\"std\":[0]}", "std must be > 0"},
        {"preprocess", "{\"mean\":[0.5,0.5],\"std\":[1,1]}", "preprocess.mean"},
        {"acm", "{\"modules\":[{\"name\":\"blocks.7.mlp\",\"learners\":4}]}", "unknown module 'blocks.7.mlp'"},
        {"acm", "{\"modules\":[{\"name\":\"blocks.0.attn.q\",\"learners\":2}]}", "fused 'attn.qkv' present"},
        {"acm", "{\"modules\":7}", "acm.modules must be an array"},
        {"budget", "{\"beta_min\":0}", "beta_min"},
        {"budget", "{\"mean\":[[0.5,1],[0.4,2]]}", "beta ascending"},
        {"budget", "{\"mean\":[]}", "non-empty"},
        {"budget", "{\"cap\":{\"betas\":[0.5],\"shares\":[[0.5,0.5,0.5]]}}", "4 shares"},
        {"budget", "{\"cap\":{\"betas\":[0.5],\"shares\":[[0.9,0.9,0.9,0.9]]}}", "above its beta"},
        {"budget", "{\"cap\":{\"betas\":[0.5],\"shares\":[[1.5,0,0,0]]}}", "outside [0, 1]"},
        {"budget", "{\"cap\":{\"betas\":[0.6,0.5],\"shares\":[[0.1,0.5,0.5,0.5],[0.1,0.5,0.5,0.5]]}}", "ascending"},
        /* vit_a's projections (blocks.1.attn.q/k/v, N 2) run at least one learner: floors 1/2, model floor 0.2143 */
        {"budget", "{\"cap\":{\"betas\":[0.5],\"shares\":[[0.9,0.4,0.5,0.5]]}}",
         "budget.cap row 0 share 1 (ACM 'blocks.1.attn.q') = 0.4 is below that module's floor kmin/N = 1/2"},
        {"budget", "{\"beta_min\":0.2}", "budget.beta_min 0.2 is below the model's floor 0.2143"},
        {"budget", "{\"cap_order\":\"depth\"}", "budget.cap_order must be \"gain\" or \"level\""},
        {"budget", "{\"cap_order\":1}", "budget.cap_order must be"},
        {"budget", "{\"cap_order\":\"random\"}", "budget.cap_order must be"}, /* a policy control, not a model order */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        model_mut m;
        model_mut_open(&m, SRC);
        json_t *v = json_loads(cases[c].json, JSON_DECODE_ANY, NULL);
        cr_assert(v, "case %zu", c);
        json_object_set_new(m.acm, cases[c].key, v);
        model_mut_expect_load(&m, cases[c].needle);
        model_mut_close(&m);
    }
}

Test(model, no_acm_metadata) {
    model_mut m;
    model_mut_open(&m, SRC);
    char path[] = "/tmp/acm-model-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[512] = "";
    cr_assert_eq(acm__st_write(path, m.t, m.n, NULL, err, sizeof err), 0, "%s", err);
    acm_model *model = acm_model_load(path, err, sizeof err);
    cr_expect_null(model);
    cr_expect(strstr(err, "not an acm model file"), "%s", err);
    unlink(path);
    model_mut_close(&m);
}

Test(model, accounting) {
    char err[256];
    acm_model *m = acm_model_load(SRC, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->tokens, 50);
    cr_expect_eq(c->num_acms, 4);
    cr_expect_eq(strlen(acm_model_version(m)), 12);
    cr_expect_str_eq(c->labels[9], "Ankle boot");
    /* MLP ACM: N = 4, h = 18, D = 36: p = 2 (36*18 + 18*36) */
    const acm_module_info *mlp = acm_model_acm(m, 0);
    cr_expect_str_eq(mlp->name, "blocks.0.mlp");
    cr_expect_eq(mlp->n, 4);
    cr_expect_eq(mlp->h, 18);
    cr_expect_eq(mlp->kmin, 0);
    cr_expect_eq(acm_model_learner_flops(m, 0), 2.0 * (36 * 18 + 18 * 36));
    const acm_module_info *q = acm_model_module(m, 1, ACM_POS_Q);
    cr_expect_eq(q->kind, ACM_MOD_ACM);
    cr_expect_eq(q->kmin, 1);
    cr_expect_eq(q->gelu, 0);
    /* parameters = sum of the file's tensor sizes */
    acm_st_file f;
    cr_assert_eq(acm__st_open(&f, SRC, err, sizeof err), 0);
    int64_t n = 0;
    for (int i = 0; i < f.n; i++) n += f.tensors[i].numel;
    cr_expect_eq(acm_model_param_count(m), n);
    /* the collapsed gate equals the three layers applied in sequence, on a probe vector */
    const acm__module *md = m->acms[0];
    const float *W0 = acm__st_find(&f, "blocks.0.mlp.gate.0.weight")->data, *b0 = acm__st_find(&f, "blocks.0.mlp.gate.0.bias")->data;
    const float *W1 = acm__st_find(&f, "blocks.0.mlp.gate.1.weight")->data, *b1 = acm__st_find(&f, "blocks.0.mlp.gate.1.bias")->data;
    const float *W2 = acm__st_find(&f, "blocks.0.mlp.gate.2.weight")->data, *b2 = acm__st_find(&f, "blocks.0.mlp.gate.2.bias")->data;
    double z[36], h1[16], h2[16];
    for (int i = 0; i < 36; i++) z[i] = (i % 7) * 0.3 - 1.0;
    for (int o = 0; o < 16; o++) {
        h1[o] = b0[o];
        for (int i = 0; i < 36; i++) h1[o] += W0[o * 36 + i] * z[i];
    }
    for (int o = 0; o < 16; o++) {
        h2[o] = b1[o];
        for (int i = 0; i < 16; i++) h2[o] += W1[o * 16 + i] * h1[i];
    }
    for (int o = 0; o < 5; o++) {
        double ref = b2[o], got = md->gate_b[o];
        for (int i = 0; i < 16; i++) ref += W2[o * 16 + i] * h2[i];
        for (int i = 0; i < 36; i++) got += md->gate_w[o * 36 + i] * z[i];
        cr_expect(fabs(ref - got) <= 1e-5 * (1 + fabs(ref)), "gate output %d: collapsed %.8f vs layered %.8f", o, got, ref);
    }
    acm__st_close(&f);
    acm_model_free(m);
}

/* The floor: vit_a's three projection ACMs (N 2, p 1296) run one learner each whatever the budget, of 4 * 2592 +
 * 6 * 1296 learner FLOPs per token: 3888 / 18144. budget.beta_min may not go below it; without one, it is the floor. */
Test(model, budget_floor_and_default_beta_min) {
    char err[512];
    acm_model *model = acm_model_load(SRC, err, sizeof err);
    cr_assert(model, "%s", err);
    const acm_config *c = acm_model_config(model);
    const double floor_beta = 3.0 * 1296 / (4 * 2592 + 6 * 1296);
    cr_expect(c->beta_floor >= floor_beta && c->beta_floor - floor_beta < 1e-7, "floor %.9f", (double)c->beta_floor);
    cr_expect_float_eq(c->beta_min, 0.25f, 1e-7, "the file's beta_min");
    acm_model_free(model);
    model_mut m;
    model_mut_open(&m, SRC);
    json_object_del(json_object_get(m.acm, "budget"), "beta_min");
    model = model_mut_write_load(&m, err, sizeof err);
    cr_assert(model, "%s", err);
    cr_expect_eq(acm_model_config(model)->beta_min, acm_model_config(model)->beta_floor);
    acm_model_free(model);
    /* at the floor itself: accepted */
    json_object_set_new(json_object_get(m.acm, "budget"), "beta_min", json_real(floor_beta));
    model = model_mut_write_load(&m, err, sizeof err);
    cr_assert(model, "%s", err);
    cr_expect_eq(acm_model_config(model)->beta_min, acm_model_config(model)->beta_floor);
    acm_model_free(model);
    model_mut_close(&m);
}

/* A calibrated CAP table with uneven shares: every item still realises at most beta, and each module's share is
 * honoured (the MLP ACM gets half of its learners, the three projections what is left). */
Test(model, cap_table_shares_are_honoured) {
    model_mut m;
    model_mut_open(&m, SRC);
    char err[512];
    acm_model *model = acm_model_load(SRC, err, sizeof err);
    cr_assert(model, "%s", err);
    /* vit_a: ACM 0 = blocks.0.mlp (N 4, p 2592), ACMs 1-3 = blocks.1.attn.q/k/v (N 2, p 1296) */
    double pm = acm_model_learner_flops(model, 0), pq = acm_model_learner_flops(model, 1);
    double total = 4 * pm + 3 * 2 * pq, beta = 0.7, s_mlp = 0.5;
    double s_q = (beta * total - s_mlp * 4 * pm) / (3 * 2 * pq);
    acm_model_free(model);
    cr_assert(s_q >= 0.5 && s_q <= 1, "share %.3f", s_q);
    json_t *cap = json_pack("{s:[f], s:[[f,f,f,f]]}", "betas", beta, "shares", s_mlp, s_q, s_q, s_q);
    json_object_set_new(m.acm, "budget", json_pack("{s:o}", "cap", cap));
    char path[] = "/tmp/acm-model-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char *js = json_dumps(m.acm, JSON_COMPACT);
    json_t *meta = json_pack("{s:s}", "acm", js);
    free(js);
    cr_assert_eq(acm__st_write(path, m.t, m.n, meta, err, sizeof err), 0, "%s", err);
    json_decref(meta);
    model = acm_model_load(path, err, sizeof err);
    cr_assert(model, "%s", err);
    cr_expect_eq(acm_model_config(model)->cap_table_len, 1);
    cr_expect_eq(acm_model_config(model)->cap_order, ACM_CAP_ORDER_GAIN, "no budget.cap_order: gain");
    acm_worker *w = acm_worker_new(model, (acm_worker_params){.max_batch = 4}, err, sizeof err);
    float px[4][28 * 28], lg[4][10];
    uint8_t km[4][4 * 50];
    acm_item it[4];
    acm_result r[4];
    for (int b = 0; b < 4; b++) {
        for (int i = 0; i < 28 * 28; i++) px[b][i] = (float)sin(0.01 * i * (b + 1));
        it[b] = (acm_item){.pixels = px[b], .policy = {.kind = ACM_POLICY_CAP, .beta = (float)beta}};
        r[b] = (acm_result){.logits = lg[b], .kmap = km[b]};
    }
    cr_assert_eq(acm_worker_run(w, it, r, 4, err, sizeof err), 0, "%s", err);
    for (int b = 0; b < 4; b++) {
        cr_expect_leq(r[b].budget, beta + 1e-9, "item %d realised %.4f", b, r[b].budget);
        int used_mlp = 0;
        for (int t = 0; t < 50; t++) used_mlp += km[b][t];
        cr_expect_eq(used_mlp, (int)floor(s_mlp * 50 * 4 + 1e-9), "MLP units %d", used_mlp);
    }
    acm_worker_free(w);
    acm_model_free(model);
    unlink(path);
    model_mut_close(&m);
}

Test(model, cap_order_level_is_read_and_followed) {
    model_mut m;
    model_mut_open(&m, SRC);
    json_object_set_new(m.acm, "budget", json_pack("{s:s}", "cap_order", "level"));
    char path[] = "/tmp/acm-model-XXXXXX", err[512];
    int fd = mkstemp(path);
    close(fd);
    char *js = json_dumps(m.acm, JSON_COMPACT);
    json_t *meta = json_pack("{s:s}", "acm", js);
    free(js);
    cr_assert_eq(acm__st_write(path, m.t, m.n, meta, err, sizeof err), 0, "%s", err);
    json_decref(meta);
    acm_model *model = acm_model_load(path, err, sizeof err);
    cr_assert(model, "%s", err);
    cr_expect_eq(acm_model_config(model)->cap_order, ACM_CAP_ORDER_LEVEL);
    acm_worker *w = acm_worker_new(model, (acm_worker_params){.max_batch = 1}, err, sizeof err);
    cr_assert(w, "%s", err);
    float px[28 * 28], lg[10];
    uint8_t km[3][4 * 50];
    for (int i = 0; i < 28 * 28; i++) px[i] = (float)sin(0.03 * i);
    const acm_cap_order orders[3] = {ACM_CAP_ORDER_MODEL, ACM_CAP_ORDER_LEVEL, ACM_CAP_ORDER_GAIN};
    for (int o = 0; o < 3; o++) {
        acm_item it = {.pixels = px, .policy = {.kind = ACM_POLICY_CAP, .beta = 0.5f, .cap_order = orders[o]}};
        acm_result r = {.logits = lg, .kmap = km[o]};
        cr_assert_eq(acm_worker_run(w, &it, &r, 1, err, sizeof err), 0, "%s", err);
    }
    /* the model's order is level: the same maps as the explicit override; the MLP (ACM 0, N = 4, no share table, so
     * floor(0.5 * 50 * 4) = 100 units) gives every token exactly 2 learners */
    cr_expect_eq(memcmp(km[0], km[1], sizeof km[0]), 0, "model order differs from explicit level");
    for (int t = 0; t < 50; t++) cr_expect_eq(km[0][t], 2, "token %d: k %d", t, km[0][t]);
    int spread = 0;
    for (int t = 0; t < 50; t++) spread |= km[2][t] != 2;
    cr_expect(spread, "gain order gave every token 2 learners too: the override had no effect");
    acm_worker_free(w);
    acm_model_free(model);
    unlink(path);
    model_mut_close(&m);
}

/* ---- budget-conditioned (FiLM) gates: NAME.gate.film.scale / .shift [gh] and budget.gate_beta (model.h) ---------- */

static float film_s[16], film_h[16], film_bad[17];

/* Adds FiLM to blocks.0.mlp of the golden model (gh = 16, the input width of gate.2) and, if gate_beta > 0, the
 * budget.gate_beta it needs. */
static void add_film(model_mut *m, int scale, int shift, double gate_beta) {
    for (int j = 0; j < 16; j++) film_s[j] = (float)sin(0.7 * j + 0.3), film_h[j] = (float)cos(1.3 * j);
    if (scale) m->t[m->n++] = (acm_st_out){"blocks.0.mlp.gate.film.scale", ACM_ST_F32, 1, {16}, film_s};
    if (shift) m->t[m->n++] = (acm_st_out){"blocks.0.mlp.gate.film.shift", ACM_ST_F32, 1, {16}, film_h};
    if (gate_beta > 0) json_object_set_new(json_object_get(m->acm, "budget"), "gate_beta", json_real(gate_beta));
}

/* The engine's collapsed FiLM gate, A z + c + beta (B z + c'), equals the training forward (three layers, FiLM on the
 * second hidden layer; train/acm_module.c) on random inputs at several beta, one per row. */
Test(model, film_gate_collapse_equals_training_forward) {
    model_mut m;
    model_mut_open(&m, SRC);
    add_film(&m, 1, 1, 0.625);
    char err[512];
    acm_model *model = model_mut_write_load(&m, err, sizeof err);
    cr_assert(model, "%s", err);
    const acm_config *c = acm_model_config(model);
    cr_expect_eq(c->film_gates, 1);
    cr_expect_float_eq(c->gate_beta, 0.625f, 1e-7);
    const acm__module *md = &model->blocks[0].mod[ACM_POS_MLP];
    cr_assert(md->info.film && md->gate_rows == 2 * md->choices);
    cr_expect(!model->blocks[1].mod[ACM_POS_MLP].info.film, "only blocks.0.mlp has FiLM");
    /* the training layout over the file's gate tensors */
    const int D = 36, C = md->choices, M = 6;
    acmt_acm_layout L;
    acmt_acm_layout_init(&L, "blocks.0.mlp", D, D, md->info.n, md->info.h, 1, 16);
    float *p = calloc((size_t)L.numel, sizeof(float));
    static const char *nm[6] = {"gate.0.weight", "gate.0.bias", "gate.1.weight", "gate.1.bias", "gate.2.weight",
                                "gate.2.bias"};
    const int64_t off[6] = {L.g0w, L.g0b, L.g1w, L.g1b, L.g2w, L.g2b};
    for (int j = 0; j < 6; j++) {
        char full[96];
        snprintf(full, sizeof full, "blocks.0.mlp.%s", nm[j]);
        const acm_st_out *t = &m.t[model_mut_find(&m, full)];
        int64_t n = t->shape[0] * (t->ndim > 1 ? t->shape[1] : 1);
        memcpy(p + off[j], t->data, sizeof(float) * (size_t)n);
    }
    float fp[32], z[6 * 36];
    const float beta[6] = {0.1f, 0.25f, 0.5f, 0.625f, 0.75f, 1.0f};
    memcpy(fp, film_s, sizeof film_s);
    memcpy(fp + 16, film_h, sizeof film_h);
    for (int i = 0; i < M * D; i++) z[i] = (float)(1.5 * sin(0.37 * i + 1));
    acmt_acm_acts a;
    cr_assert_eq(acmt_acm_acts_alloc(&a, &L, M), 0);
    acmt_film f = {fp, NULL, beta};
    acmt_acm_gate_forward_film(&a, p, &f, &L, z, D, M);
    double maxd = 0, maxl = 1, spread = 0;
    for (int i = 0; i < M; i++)
        for (int k = 0; k < C; k++) {
            double e = md->gate_b[k], eb = md->gate_b[C + k];
            for (int d = 0; d < D; d++) {
                e += (double)md->gate_w[k * D + d] * z[i * D + d];
                eb += (double)md->gate_w[(C + k) * D + d] * z[i * D + d];
            }
            double got = e + beta[i] * eb, want = a.logits[i * C + k];
            maxd = fmax(maxd, fabs(got - want));
            maxl = fmax(maxl, fabs(want));
            spread = fmax(spread, fabs(beta[i] * eb)); /* the beta term matters */
        }
    cr_expect_leq(maxd / maxl, 1e-5, "collapsed FiLM gate vs training forward: max|Δ| %.3g (scale %.3g)", maxd, maxl);
    cr_expect_gt(spread, 0.1, "the FiLM term is negligible (%.3g): the test would not see it", spread);
    /* the gate ARGMAX runs, folded at load: C rows (A + gate_beta B) z + (c + gate_beta c'), equal to the training
     * forward at beta = gate_beta (row 3); an unconditioned gate's fold is the gate itself */
    double maxf = 0;
    for (int k = 0; k < C; k++) {
        double e = md->fold_b[k];
        for (int d = 0; d < D; d++) e += (double)md->fold_w[k * D + d] * z[3 * D + d];
        maxf = fmax(maxf, fabs(e - a.logits[3 * C + k]));
    }
    cr_expect(md->fold_w != md->gate_w, "a FiLM gate has its own folded rows");
    cr_expect_leq(maxf / maxl, 1e-5, "folded FiLM gate vs training forward at gate_beta: max|Δ| %.3g", maxf);
    const acm__module *plain = &model->blocks[1].mod[ACM_POS_Q];
    cr_expect(plain->fold_w == plain->gate_w && plain->fold_b == plain->gate_b);
    acmt_acm_acts_free(&a);
    free(p);
    acm_model_free(model);
    model_mut_close(&m);
}

Test(model, film_needs_both_tensors) {
    model_mut m;
    model_mut_open(&m, SRC);
    add_film(&m, 1, 0, 0.5);
    model_mut_expect_load(&m, "'blocks.0.mlp.gate.film.scale' without 'blocks.0.mlp.gate.film.shift'");
    model_mut_close(&m);
    model_mut_open(&m, SRC);
    add_film(&m, 0, 1, 0.5);
    model_mut_expect_load(&m, "'blocks.0.mlp.gate.film.shift' without 'blocks.0.mlp.gate.film.scale'");
    model_mut_close(&m);
}

Test(model, film_wrong_shape) {
    model_mut m;
    model_mut_open(&m, SRC);
    add_film(&m, 1, 0, 0.5);
    m.t[m.n++] = (acm_st_out){"blocks.0.mlp.gate.film.shift", ACM_ST_F32, 1, {17}, film_bad};
    model_mut_expect_load(&m, "'blocks.0.mlp.gate.film.shift' has shape [17], expected [16]");
    model_mut_close(&m);
}

Test(model, film_needs_gate_beta) {
    model_mut m;
    model_mut_open(&m, SRC);
    add_film(&m, 1, 1, 0);
    model_mut_expect_load(&m, "budget.gate_beta");
    model_mut_close(&m);
    model_mut_open(&m, SRC);
    add_film(&m, 1, 1, 1.5);
    model_mut_expect_load(&m, "budget.gate_beta must be in (0, 1]");
    model_mut_close(&m);
}

Test(model, film_on_single_layer_gate) {
    model_mut m;
    model_mut_open(&m, SRC);
    /* blocks.0.mlp's gate becomes one layer [5, 36] */
    static float w[5 * 36], b[5];
    static const char *gone[4] = {"blocks.0.mlp.gate.1.weight", "blocks.0.mlp.gate.1.bias",
                                  "blocks.0.mlp.gate.2.weight", "blocks.0.mlp.gate.2.bias"};
    for (int j = 0; j < 4; j++) {
        int i = model_mut_find(&m, gone[j]);
        m.t[i] = m.t[--m.n];
    }
    m.t[model_mut_find(&m, "blocks.0.mlp.gate.0.weight")] =
        (acm_st_out){"blocks.0.mlp.gate.0.weight", ACM_ST_F32, 2, {5, 36}, w};
    m.t[model_mut_find(&m, "blocks.0.mlp.gate.0.bias")] = (acm_st_out){"blocks.0.mlp.gate.0.bias", ACM_ST_F32, 1, {5}, b};
    {
        char err[512];
        acm_model *ok = model_mut_write_load(&m, err, sizeof err);
        cr_assert(ok, "a one-layer gate without FiLM loads: %s", err);
        acm_model_free(ok);
    }
    add_film(&m, 1, 1, 0.5);
    model_mut_expect_load(&m, "FiLM on a gate of a single layer");
    model_mut_close(&m);
}

Test(model, models_without_film_are_unconditioned) {
    model_mut m;
    model_mut_open(&m, SRC);
    json_object_set_new(json_object_get(m.acm, "budget"), "gate_beta", json_real(0.5)); /* ignored without FiLM */
    char err[512];
    acm_model *model = model_mut_write_load(&m, err, sizeof err);
    cr_assert(model, "%s", err);
    const acm_config *c = acm_model_config(model);
    cr_expect_eq(c->film_gates, 0);
    for (int a = 0; a < c->num_acms; a++) {
        cr_expect(!acm_model_acm(model, a)->film);
        cr_expect_eq(model->acms[a]->gate_rows, model->acms[a]->choices);
    }
    acm_model_free(model);
    model_mut_close(&m);
}

/* The convolutional stem (tests/golden/vit_d: 3x3 1 -> 6 stride 1, 6 -> 10 stride 2, patch 2): a wrong shape names
 * the tensor, a missing layer tensor is missing, and a stem whose output the patch does not divide is refused. */
#define STEM "tests/golden/vit_d.safetensors"

Test(model, stem_wrong_shape) {
    model_mut m;
    model_mut_open(&m, STEM);
    int i = model_mut_find(&m, "stem.1.weight");
    m.t[i].shape[0] = 6; /* [10, 6, 3, 3] -> [6, 10, 3, 3]: same bytes, wrong shape */
    m.t[i].shape[1] = 10;
    model_mut_expect_load(&m, "'stem.1.weight' has shape [6, 10, 3, 3], expected [10, 6, 3, 3]");
    model_mut_close(&m);
}

Test(model, stem_missing_bias) {
    model_mut m;
    model_mut_open(&m, STEM);
    int i = model_mut_find(&m, "stem.0.bias");
    m.t[i] = m.t[--m.n];
    model_mut_expect_load(&m, "'stem.0.bias' is missing");
    model_mut_close(&m);
}

Test(model, stem_bad_metadata) {
    model_mut m;
    model_mut_open(&m, STEM);
    json_t *st = json_object_get(m.acm, "stem");
    json_array_set_new(json_object_get(st, "strides"), 1, json_integer(4)); /* 28 -> 28 -> 7: patch 2 does not divide */
    model_mut_expect_load(&m, "the stem's output side 7 is not a multiple of patch_size 2");
    json_array_set_new(json_object_get(st, "strides"), 1, json_integer(0));
    model_mut_expect_load(&m, "stem layer 1 needs channels in [1, 1024] and stride in [1, 4]");
    json_array_append_new(json_object_get(st, "channels"), json_integer(8)); /* 3 channels, 2 strides */
    model_mut_expect_load(&m, "metadata: stem must be");
    model_mut_close(&m);
}

Test(model, stem_shapes_derived) {
    /* the patch convolution's input is the stem's output, 10 x 14 x 14: 7 x 7 patches + the class token (the FLOPs
     * are checked against the golden's independent count in test_vit) */
    char err[256];
    acm_model *m = acm_model_load(STEM, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_assert_eq(c->stem_depth, 2);
    cr_assert_eq(c->feat_chans, 10);
    cr_assert_eq(c->feat_size, 14);
    cr_assert_eq(c->tokens, 50);
    acm_model_free(m);
}
