/*
 * test_speech_model.c — loading speech models (engine/model.c, format in engine/model.h): starting from the valid
 * golden speech_a, each mutation of a speech field or tensor must fail to load with a message naming the file and the
 * tensor or field; the unmodified copy loads.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acm.h"
#include "model_mut.h"
#include "safetensors.h"

#define SRC "tests/golden/speech_a.safetensors"


/* Sets metadata key k (in frontend when fe) to v (NULL: deletes it) and expects the load to fail naming needle. */
static void meta_case(const char *k, json_t *v, int fe, const char *needle) {
    model_mut m;
    model_mut_open(&m, SRC);
    json_t *o = fe ? json_object_get(m.acm, "frontend") : m.acm;
    if (v)
        json_object_set_new(o, k, v);
    else
        json_object_del(o, k);
    model_mut_expect_load(&m, needle);
    model_mut_close(&m);
}

Test(speech_model, unmodified_copy_loads) {
    model_mut m;
    model_mut_open(&m, SRC);
    model_mut_expect_load(&m, NULL);
    model_mut_close(&m);
}

Test(speech_model, tensors) {
    model_mut m;
    model_mut_open(&m, SRC);
    int i = model_mut_find(&m, "frontend.proj.weight");
    acm_st_out keep = m.t[i];
    m.t[i] = m.t[--m.n];
    model_mut_expect_load(&m, "'frontend.proj.weight' is missing");
    m.t[m.n++] = keep;
    i = model_mut_find(&m, "frontend.proj.weight");
    m.t[i].shape[0] = 64; /* [32, 320] -> [64, 160] */
    m.t[i].shape[1] = 160;
    model_mut_expect_load(&m, "'frontend.proj.weight' has shape [64, 160], expected [32, 320]");
    m.t[i] = keep;
    /* a ViT tensor in a speech model is not used */
    static const float x[32];
    m.t[m.n++] = (acm_st_out){"cls_token", ACM_ST_F32, 3, {1, 1, 32}, x};
    model_mut_expect_load(&m, "'cls_token' is not used");
    m.n--;
    model_mut_close(&m);
}

Test(speech_model, mel_normalisation) {
    static float bad[80];
    model_mut m;
    model_mut_open(&m, SRC);
    int i = model_mut_find(&m, "frontend.mel_std");
    const float *std = m.t[i].data;
    memcpy(bad, std, sizeof bad);
    bad[7] = 0.0f;
    m.t[i].data = bad;
    model_mut_expect_load(&m, "'frontend.mel_std' entry 7");
    bad[7] = NAN;
    model_mut_expect_load(&m, "'frontend.mel_std' entry 7");
    m.t[i].data = std;
    i = model_mut_find(&m, "frontend.mel_mean");
    memcpy(bad, m.t[i].data, sizeof bad);
    bad[79] = INFINITY;
    m.t[i].data = bad;
    model_mut_expect_load(&m, "'frontend.mel_mean' entry 79");
    model_mut_close(&m);
}

Test(speech_model, metadata) {
    meta_case("alphabet", NULL, 0, "alphabet");
    meta_case("alphabet", json_string("abca"), 0, "alphabet has 'a' twice");
    meta_case("alphabet", json_string("ab\xc3\xa9"), 0, "alphabet character 2");
    meta_case("alphabet", json_integer(5), 0, "alphabet");
    /* a shorter alphabet: the head no longer fits */
    meta_case("alphabet", json_string("abc"), 0, "'head.weight' has shape [29, 32], expected [4, 32]");
    meta_case("chunk", json_integer(0), 0, "'chunk'");
    meta_case("chunk", NULL, 0, "'chunk'");
    meta_case("left_context", json_integer(-1), 0, "'left_context'");
    meta_case("rope_base", json_real(1.0), 0, "rope_base");
    meta_case("rope_base", json_string("x"), 0, "rope_base");
    meta_case("frontend", NULL, 0, "frontend");
    meta_case("heads", json_integer(32), 0, "head width"); /* 32 / 32 = 1: odd, rotary needs pairs */
    meta_case("arch", json_string("speak"), 0, "arch 'speak'");
    meta_case("n_mels", json_integer(0), 1, "'n_mels'");
    meta_case("n_mels", json_integer(40), 1, "'frontend.mel_mean' has shape [80], expected [40]");
    meta_case("stack", json_integer(65), 1, "'stack'");
    meta_case("hop_length", json_real(1.5), 1, "hop_length");
    meta_case("win_length", json_integer(600), 1, "frontend"); /* longer than n_fft 512 */
    meta_case("fmax", json_integer(9000), 1, "frontend");     /* above the Nyquist frequency */
    meta_case("log_floor", json_integer(0), 1, "frontend.log_floor");
}

Test(speech_model, frontend_defaults) {
    char err[256];
    acm_model *m = acm_model_load(SRC, err, sizeof err);
    cr_assert(m, "%s", err);
    const acm_config *c = acm_model_config(m);
    cr_expect_eq(c->sample_rate, 16000);
    cr_expect_eq(c->n_fft, 512);
    cr_expect_eq(c->win_length, 400);
    cr_expect_eq(c->hop_length, 160);
    cr_expect_float_eq(c->fmax, 8000.0f, 1e-6);
    cr_expect_float_eq(c->rope_base, 10000.0f, 1e-3);
    cr_expect_eq(c->image_size, 0);
    cr_expect_eq(c->tokens, c->chunk);
    acm_model_free(m);
}
