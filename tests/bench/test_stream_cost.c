/*
 * test_stream_cost.c — bench/stream_cost.py, the attribution behind bench/silence_cost.sh: each partial's FLOPs go to
 * the span holding all of its audio (from the previous partial's audio_s to its own), a chunk across two spans to
 * "boundary"; the sums, GFLOPs per second and seconds-weighted budgets are checked against hand-computed values, over
 * one stream and over two (the sums of both), and malformed spans or messages are refused naming the file and line.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[] = "/tmp/acm-stream-cost-XXXXXX";

static void put(const char *name, const char *text) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    cr_assert(f, "%s", p);
    fputs(text, f);
    fclose(f);
}

/* Runs stream_cost.py with the arguments (files in dir); its exit status and its stdout+stderr (malloc'd). */
static int run(const char *args, char **out) {
    char cmd[2048], o[128], root[1024];
    cr_assert(getcwd(root, sizeof root)); /* the repository's root: tests run there */
    snprintf(o, sizeof o, "%s/out", dir);
    snprintf(cmd, sizeof cmd, "cd %s && /usr/bin/python3 %s/bench/stream_cost.py %s >%s 2>&1", dir, root, args, o);
    const int st = system(cmd);
    FILE *f = fopen(o, "r");
    cr_assert(f);
    *out = calloc(1, 1 << 16);
    cr_assert_geq(fread(*out, 1, (1 << 16) - 1, f), 0);
    fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static json_t *label(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    cr_assert(json_is_object(v), "no '%s' in %s", k, json_dumps(o, 0));
    return v;
}

static double num(json_t *o, const char *k) { return json_number_value(json_object_get(o, k)); }

/* speech 0..2, silence 2..4 s; partials end at 1, 2 (speech), 3 (silence), 5 (2..3 was silence, 3..5 straddles the
 * end of the spans: boundary), with a `ready`, a `final` and an `end` that carry no compute in between. */
#define SPANS "0 2 speech\n2 4 silence\n"
#define MSGS                                                                                                         \
    "{\"type\":\"ready\",\"chunk_s\":1}\n"                                                                           \
    "{\"type\":\"partial\",\"audio_s\":1,\"chunk\":{\"flops\":4e9,\"budget\":1}}\n"                                 \
    "{\"type\":\"partial\",\"audio_s\":2,\"chunk\":{\"flops\":2e9,\"budget\":0.5}}\n"                               \
    "{\"type\":\"final\",\"text\":\"x\",\"audio_s\":2}\n"                                                            \
    "{\"type\":\"partial\",\"audio_s\":3,\"chunk\":{\"flops\":1e9,\"budget\":0.25}}\n"                              \
    "\n"                                                                                                             \
    "{\"type\":\"partial\",\"audio_s\":5,\"chunk\":{\"flops\":6e9,\"budget\":0.75}}\n"                              \
    "{\"type\":\"end\"}\n"

Test(stream_cost, chunks_go_to_the_span_that_holds_them) {
    cr_assert(mkdtemp(dir));
    put("spans", SPANS);
    put("msgs", MSGS);
    char *out;
    cr_assert_eq(run("spans msgs --chunks chunks", &out), 0, "%s", out);
    json_t *o = json_loads(out, 0, NULL);
    cr_assert(o, "not JSON: %s", out);
    json_t *sp = label(o, "speech"), *si = label(o, "silence"), *bo = label(o, "boundary");
    cr_expect_eq(json_integer_value(json_object_get(sp, "chunks")), 2);
    cr_expect_float_eq(num(sp, "seconds"), 2.0, 1e-12);
    cr_expect_float_eq(num(sp, "flops"), 6e9, 1);
    cr_expect_float_eq(num(sp, "gflops_per_s"), 3.0, 1e-12);
    cr_expect_float_eq(num(sp, "budget"), 0.75, 1e-12, "(1 x 1 s + 0.5 x 1 s) / 2 s");
    cr_expect_eq(json_integer_value(json_object_get(si, "chunks")), 1);
    cr_expect_float_eq(num(si, "gflops_per_s"), 1.0, 1e-12);
    cr_expect_float_eq(num(si, "budget"), 0.25, 1e-12);
    cr_expect_eq(json_integer_value(json_object_get(bo, "chunks")), 1);
    cr_expect_float_eq(num(bo, "seconds"), 2.0, 1e-12);
    cr_expect_float_eq(num(bo, "gflops_per_s"), 3.0, 1e-12);
    json_decref(o);
    free(out);
    /* the chunk lines: stream index, start, end, label, GFLOPs, budget */
    char p[128], line[256];
    snprintf(p, sizeof p, "%s/chunks", dir);
    FILE *f = fopen(p, "r");
    cr_assert(f);
    const char *want[] = {"0 0.0000 1.0000 speech 4.000000 1.0000\n", "0 1.0000 2.0000 speech 2.000000 0.5000\n",
                          "0 2.0000 3.0000 silence 1.000000 0.2500\n", "0 3.0000 5.0000 boundary 6.000000 0.7500\n"};
    for (int i = 0; i < 4; i++) {
        cr_assert(fgets(line, sizeof line, f), "line %d missing", i);
        cr_expect_str_eq(line, want[i]);
    }
    cr_expect(!fgets(line, sizeof line, f), "one line too many: %s", line);
    fclose(f);
    /* two streams: the sums of both (the second with silence first: its first chunk is silence) */
    put("spans2", "0 1 silence\n1 3 speech\n");
    put("msgs2", "{\"type\":\"partial\",\"audio_s\":1,\"chunk\":{\"flops\":1e9,\"budget\":0.25}}\n"
                 "{\"type\":\"partial\",\"audio_s\":3,\"chunk\":{\"flops\":10e9,\"budget\":0.5}}\n");
    cr_assert_eq(run("spans msgs spans2 msgs2", &out), 0, "%s", out);
    o = json_loads(out, 0, NULL);
    cr_assert(o, "not JSON: %s", out);
    cr_expect_float_eq(num(label(o, "speech"), "gflops_per_s"), 16.0 / 4, 1e-12);
    cr_expect_float_eq(num(label(o, "speech"), "budget"), (0.75 * 2 + 0.5 * 2) / 4, 1e-12);
    cr_expect_float_eq(num(label(o, "silence"), "gflops_per_s"), 2.0 / 2, 1e-12);
    json_decref(o);
    free(out);
    /* refused: a span that ends before it starts, a line that is not JSON, a stream without partials */
    put("bad-spans", "0 2 speech\n3 1 silence\n");
    cr_expect_neq(run("bad-spans msgs", &out), 0);
    cr_expect(strstr(out, "bad-spans:2") && strstr(out, "ends before it starts"), "%s", out);
    free(out);
    put("bad-msgs", "{\"type\":\"partial\"\n");
    cr_expect_neq(run("spans bad-msgs", &out), 0);
    cr_expect(strstr(out, "bad-msgs:1") && strstr(out, "not a JSON message"), "%s", out);
    free(out);
    put("no-partial", "{\"type\":\"end\"}\n");
    cr_expect_neq(run("spans no-partial", &out), 0);
    cr_expect(strstr(out, "no-partial: no partial message"), "%s", out);
    free(out);
    cr_expect_neq(run("spans", &out), 0);
    cr_expect(strstr(out, "usage"), "%s", out);
    free(out);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_expect_eq(system(cmd), 0);
}
