/*
 * speech_train_throughput — training throughput of `acm-train speech-base` against the sgemm ceiling, measured in the
 * same run (issue 19), as train_throughput does for the ViT.
 *
 * 1. The ceiling: cblas_sgemm on the largest GEMM shapes of the step (rows R = the batch's tokens: [R, D] × [3D, D]ᵀ,
 *    × [4D, D]ᵀ, [R, 4D] × [D, 4D]ᵀ and its backward), best of four, with the same number of OpenBLAS threads.
 * 2. The step: forward + CTC backward (train/speech_train.c) + clipping + AdamW on random log-mel frames of
 *    utterances of 90 tokens (the corpus's mean, 3.6 s) packed up to --batch-tokens tokens, random transcripts of 40
 *    characters. Training FLOPs = 3 × forward matrix-product FLOPs (2 per multiply-add; the projections, the MLP, the
 *    head, and attention's QKᵀ and A·V over each chunk's keys).
 * Rounds alternate ceiling and steps; medians are reported, the ratio as the median of the per-round ratios.
 *
 * usage: speech_train_throughput [--threads 2] [--batch-tokens 4000] [--steps 3] [--rounds 5] [--warmup 1]
 *                                [--dim 144] [--depth 6] [--heads 4] [--chunk 16] [--left 32] [--json]
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acm.h"
#include "cpu/cpu.h"
#define BENCH_NAME "speech_train_throughput"
#include "bench/bench_util.h"
#include "train/optim.h"
#include "train/rng.h"
#include "train/speech_train.h"

static double sgemm_gflops(int M, int N, int K, int transb, double seconds) {
    float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)N * K, 4), *c = calloc((size_t)M * N, 4);
    for (size_t i = 0; i < (size_t)M * K; i++) a[i] = (float)(i % 13) * 0.01f;
    for (size_t i = 0; i < (size_t)N * K; i++) b[i] = (float)(i % 7) * 0.01f;
    int reps = 0;
    double t0 = bu_now_s(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, transb ? CblasTrans : CblasNoTrans, M, N, K, 1, a, K, b,
                    transb ? K : N, 0, c, N);
        reps++;
    } while ((t = bu_now_s() - t0) < seconds);
    free(a);
    free(b);
    free(c);
    return 2.0 * M * N * K * reps / t / 1e9;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    int threads = 2, R = 4000, steps = 3, warm = 1, rounds = 5, json = 0;
    acmt_speech_config c = acmt_speech_default_config();
    for (int i = 1; i < argc; i++) {
        int more = i + 1 < argc;
        if (!strcmp(argv[i], "--threads") && more) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch-tokens") && more) R = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--steps") && more) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && more) warm = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && more) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--dim") && more) c.dim = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && more) c.depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--heads") && more) c.heads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--chunk") && more) c.chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--left") && more) c.left_context = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json")) json = 1;
        else {
            printf("usage: speech_train_throughput [--threads 2] [--batch-tokens 4000] [--steps 3] [--rounds 5] "
                   "[--warmup 1] [--dim 144] [--depth 6] [--heads 4] [--chunk 16] [--left 32] [--json]\n");
            return strcmp(argv[i], "--help") ? 2 : 0;
        }
    }
    c.mlp_hidden = 4 * c.dim;
    acm_blas_set_threads(threads);
    enum { TOK = 90, NL = 40 };
    const int B = R / TOK;
    if (B < 1) bu_die("--batch-tokens", "fewer than one utterance of 90 tokens");
    char err[256];
    acmt_speech *s = acmt_speech_new(&c, B, (int64_t)B * TOK, TOK, NL, err, sizeof err);
    if (!s) bu_die("model", err);
    acmt_rng r;
    acmt_rng_seed(&r, 1, 0);
    acmt_speech_init(s, &r);
    const int SM = s->SM;
    float *frames = malloc(sizeof(float) * (size_t)B * TOK * SM);
    int32_t *labels = malloc(sizeof(int32_t) * (size_t)B * NL);
    const float **fr = malloc(sizeof *fr * (size_t)B);
    const int32_t **lab = malloc(sizeof *lab * (size_t)B);
    int64_t *tok = malloc(sizeof(int64_t) * (size_t)B);
    int *nl = malloc(sizeof(int) * (size_t)B);
    for (int64_t i = 0; i < (int64_t)B * TOK * SM; i++) frames[i] = acmt_rng_normal(&r);
    for (int b = 0; b < B; b++) {
        fr[b] = frames + (int64_t)b * TOK * SM;
        lab[b] = labels + b * NL;
        tok[b] = TOK;
        nl[b] = NL;
        for (int j = 0; j < NL; j++) labels[b * NL + j] = 1 + (int32_t)acmt_rng_below(&r, (uint32_t)(s->K - 1));
    }
    /* forward FLOPs of one utterance: per token, and attention per chunk (4 Tq nk D per layer, the engine's count) */
    double fwd = acmt_speech_token_flops(&c) * TOK;
    for (int t = 0; t < TOK; t += c.chunk) {
        const int Tq = TOK - t < c.chunk ? TOK - t : c.chunk, nk = Tq + (t < c.left_context ? t : c.left_context);
        fwd += 4.0 * Tq * nk * c.dim * c.depth;
    }
    const double flops_utt = 3.0 * fwd;
    acmt_adamw opt = acmt_adamw_default();
    enum { MAX_ROUNDS = 32 };
    double ceil_r[MAX_ROUNDS], tps_r[MAX_ROUNDS], ratio_r[MAX_ROUNDS], tf = 0, tb = 0, to = 0;
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    int64_t t_step = 0;
    for (int w = 0; w < warm; w++) {
        if (acmt_speech_forward(s, fr, tok, B, err, sizeof err)) bu_die("forward", err);
        acmt_speech_backward(s, lab, nl, NULL);
    }
    const int M = B * TOK, D = c.dim;
    for (int rd = 0; rd < rounds; rd++) {
        double ceil = 0, g;
        if ((g = sgemm_gflops(M, 3 * D, D, 1, 0.4)) > ceil) ceil = g;
        if ((g = sgemm_gflops(M, 4 * D, D, 1, 0.4)) > ceil) ceil = g;
        if ((g = sgemm_gflops(M, D, 4 * D, 1, 0.4)) > ceil) ceil = g;
        if ((g = sgemm_gflops(M, D, 4 * D, 0, 0.4)) > ceil) ceil = g;
        const double t0 = bu_now_s();
        for (int st = 0; st < steps; st++) {
            const double a = bu_now_s();
            if (acmt_speech_forward(s, fr, tok, B, err, sizeof err)) bu_die("forward", err);
            const double b = bu_now_s();
            acmt_speech_backward(s, lab, nl, NULL);
            const double c2 = bu_now_s();
            acmt_clip_grad_norm(s->grads, s->nparams, 1.0);
            t_step++;
            for (int i = 0; i < s->ntab; i++) {
                const acmt_param *p = &s->tab[i];
                if (acmt_speech_trainable(s, i))
                    acmt_adamw_update(&opt, s->params + p->offset, s->grads + p->offset, s->m + p->offset,
                                      s->v + p->offset, p->numel, t_step, p->decay);
            }
            tf += b - a;
            tb += c2 - b;
            to += bu_now_s() - c2;
        }
        const double dt = bu_now_s() - t0;
        ceil_r[rd] = ceil;
        tps_r[rd] = (double)steps * M / dt;
        ratio_r[rd] = (double)steps * B * flops_utt / dt / 1e9 / ceil;
        if (!json)
            printf("  round %d: ceiling %.1f GFLOP/s, %.0f tokens/s = %.1f GFLOP/s, %.0f%%\n", rd + 1, ceil, tps_r[rd],
                   tps_r[rd] / TOK * flops_utt / 1e9, 100 * ratio_r[rd]);
    }
    const double ceil = bu_median(ceil_r, rounds), tps = bu_median(tps_r, rounds), ratio = bu_median(ratio_r, rounds);
    const double gf = tps / TOK * flops_utt / 1e9;
    const int ns = steps * rounds;
    if (json)
        printf("{\"core\":\"%s\",\"threads\":%d,\"batch_tokens\":%d,\"dim\":%d,\"depth\":%d,\"chunk\":%d,\"left\":%d,"
               "\"rounds\":%d,\"tokens_per_s\":%.1f,\"gflops\":%.2f,\"sgemm_ceiling_gflops\":%.2f,\"fraction\":%.4f,"
               "\"step_s\":%.4f}\n",
               acm_blas_core(), threads, M, c.dim, c.depth, c.chunk, c.left_context, rounds, tps, gf, ceil, ratio,
               (tf + tb + to) / ns);
    else
        printf("BLAS %s x%d, %d utterances x %d tokens = %d tokens/step, D %d, depth %d, chunk %d, left %d, median of "
               "%d rounds: %.0f tokens/s (%.1f s of audio per s), %.1f GFLOP/s; sgemm ceiling %.1f GFLOP/s; %.0f%% of "
               "the ceiling (median per-round ratio)\n"
               "  per step: forward %.3f s, backward %.3f s, clip + AdamW %.3f s\n",
               acm_blas_core(), threads, B, TOK, M, c.dim, c.depth, c.chunk, c.left_context, rounds, tps, tps * 0.04,
               gf, ceil, 100 * ratio, tf / ns, tb / ns, to / ns);
    free(frames);
    free(labels);
    free(fr);
    free(lab);
    free(tok);
    free(nl);
    acmt_speech_free(s);
    return 0;
}
