/*
 * speech.c — the speech encoder's streaming speed (issue "Engine, part 2", bench/RESULTS.md "Speech encoder"):
 *   (1) real-time factor of one stream at batch 1 on one core (one BLAS thread): a synthetic signal fed in 20 ms
 *       pieces, every chunk run as it becomes ready; time of feeding (log-mel) and running / seconds of audio, as wall
 *       time and as the thread's CPU time (the figure that holds on a machine shared with other jobs); the static
 *       twin, and the ACM model under `cap` at each beta;
 *   (2) chunks per second with S streams batched on W threads (one worker and one BLAS thread each, S/W streams per
 *       worker, each call running the ready chunk of all of them), static and ACM at each beta, with the realisation
 *       ratio (static time / ACM time) / (static FLOPs / ACM FLOPs), times being the threads' CPU time per thread
 *       (wall time shown too);
 *   (3) one long stream (--long-seconds, 10 minutes by default) at batch 1 on one core, ACM at beta 1: CPU time per
 *       chunk over its first and its last minute (constant cost per chunk however long the stream runs).
 * Models: random weights (bench/speech_random.h), every MLP and q/k/v/o an ACM of N learners. Medians of --rounds.
 *
 * usage: speech [--dim 256] [--depth 6] [--heads 4] [--mlp 1024] [--learners 4] [--chunk 8] [--left 50]
 *               [--betas 1,0.5,0.25] [--seconds 30] [--streams 64] [--stream-seconds 4] [--threads 2] [--rounds 3]
 *               [--long-seconds 600] [--acm-mask 31] [--tables 123]
 * --acm-mask: bit 0..4 = q, k, v, o, MLP as ACMs (31: all, 16: the MLPs only); --tables: which tables to run.
 * --write-model PATH: write the ACM model (the dimensions given) as a safetensors file and exit (bench/asr.sh).
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#define BENCH_NAME "speech"
#include "bench/bench_util.h"
#include "bench/speech_random.h"

#define RATE 16000
#define PIECE 320 /* 20 ms */

static float *signal_make(int64_t n) {
    float *x = malloc(sizeof(float) * (size_t)n);
    if (!x) bu_die("signal", "out of memory");
    uint64_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        double env = 0.05 + 0.25 * (1.0 + sin((double)(i / 8000) * 1.3)); /* loud and quiet half-seconds */
        x[i] = (float)(env * (2.0 * vr_uniform(&s) - 1.0));
    }
    return x;
}

/* CPU seconds of the calling thread (the machine may be shared: wall time then overstates the work). */
static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double seconds;  /* wall */
    double cpu;      /* CPU seconds of the thread(s) */
    double flops;    /* executed */
    double dense;
    double learner;  /* sum of budget x tokens */
    int64_t tokens, chunks;
} run_stats;

/* Feeds pcm[0..n) to the streams in 20 ms pieces (stream i from offset off[i] of a signal of length n, wrapping),
 * each up to `samples`, running the ready chunks of all together; returns the totals. */
static run_stats run_streams(acm_worker *w, acm_stream **st, int ns, const float *pcm, int64_t n, int64_t samples,
                             acm_policy pol, float *logits, int C, int K) {
    run_stats r = {0};
    int64_t fed[256] = {0};
    acm_policy pols[256];
    acm_result res[256];
    acm_stream *ready[256];
    for (int i = 0; i < ns; i++) {
        acm_stream_reset(st[i]);
        pols[i] = pol;
    }
    char err[256];
    double t0 = bu_now_s(), c0 = thread_cpu_s();
    for (int done = 0; !done;) {
        int nr = 0;
        done = 1;
        for (int i = 0; i < ns; i++) {
            while (!acm_stream_ready(st[i]) && fed[i] < samples) {
                int64_t at = ((int64_t)i * 5923 * PIECE + fed[i]) % (n - PIECE);
                int64_t k = samples - fed[i] < PIECE ? samples - fed[i] : PIECE;
                int64_t took = acm_stream_feed(st[i], pcm + at, (size_t)k, err, sizeof err);
                if (took < 0) bu_die("feed", err);
                fed[i] += took;
            }
            if (fed[i] == samples && !acm_stream_ready(st[i])) acm_stream_finish(st[i]);
            if (acm_stream_ready(st[i])) {
                res[nr] = (acm_result){.logits = logits + (size_t)nr * C * K};
                ready[nr++] = st[i];
                done = 0;
            }
        }
        if (!nr) break;
        if (acm_worker_run_streams(w, ready, pols, res, nr, err, sizeof err)) bu_die("run", err);
        for (int i = 0; i < nr; i++) {
            r.flops += res[i].flops;
            r.dense += res[i].flops_dense;
            r.learner += res[i].budget * res[i].tokens;
            r.tokens += res[i].tokens;
            r.chunks++;
        }
    }
    r.seconds = bu_now_s() - t0;
    r.cpu = thread_cpu_s() - c0;
    return r;
}

typedef struct {
    const acm_model *m;
    const float *pcm;
    int64_t n, samples;
    int ns;
    acm_policy pol;
    pthread_barrier_t *bar;
    run_stats out;
} job;

static void *worker_main(void *arg) {
    job *j = arg;
    char err[256];
    const acm_config *c = acm_model_config(j->m);
    acm_worker *w = acm_worker_new(j->m, (acm_worker_params){.max_batch = j->ns, .max_tokens = j->ns * c->chunk,
                                                             .workers = 2, .cpu_threads = 0},
                                   err, sizeof err);
    if (!w) bu_die("worker", err);
    acm_stream *st[256];
    for (int i = 0; i < j->ns; i++)
        if (!(st[i] = acm_stream_new(j->m, err, sizeof err))) bu_die("stream", err);
    float *logits = malloc(sizeof(float) * (size_t)j->ns * c->chunk * c->num_classes);
    if (!logits) bu_die("logits", "out of memory");
    run_streams(w, st, j->ns, j->pcm, j->n, RATE, j->pol, logits, c->chunk, c->num_classes); /* warm-up */
    pthread_barrier_wait(j->bar);
    j->out = run_streams(w, st, j->ns, j->pcm, j->n, j->samples, j->pol, logits, c->chunk, c->num_classes);
    for (int i = 0; i < j->ns; i++) acm_stream_free(st[i]);
    free(logits);
    acm_worker_free(w);
    return NULL;
}

/* Table 2's measurement: W threads, S streams; wall time from the barrier to the last thread's end. */
static run_stats batched(const acm_model *m, const float *pcm, int64_t n, int64_t samples, int S, int W,
                         acm_policy pol) {
    pthread_t th[16];
    job jobs[16];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)W + 1);
    for (int t = 0; t < W; t++) {
        jobs[t] = (job){.m = m, .pcm = pcm, .n = n, .samples = samples, .ns = S / W, .pol = pol, .bar = &bar};
        pthread_create(&th[t], NULL, worker_main, &jobs[t]);
    }
    pthread_barrier_wait(&bar);
    double t0 = bu_now_s();
    run_stats r = {0};
    for (int t = 0; t < W; t++) {
        pthread_join(th[t], NULL);
        r.flops += jobs[t].out.flops;
        r.dense += jobs[t].out.dense;
        r.learner += jobs[t].out.learner;
        r.tokens += jobs[t].out.tokens;
        r.chunks += jobs[t].out.chunks;
        r.cpu += jobs[t].out.cpu;
    }
    r.seconds = bu_now_s() - t0;
    pthread_barrier_destroy(&bar);
    return r;
}

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    sr_config cfg = {.dim = 256, .depth = 6, .heads = 4, .mlp_hidden = 1024, .chunk = 8, .left_context = 50,
                     .learners = 4, .acm_mask = 0x1f, .seed = 1};
    double betas[8] = {1.0, 0.5, 0.25};
    int nb = 3, S = 64, W = 2, rounds = 3;
    const char *tables = "123", *write_model = NULL;
    double seconds = 30, stream_seconds = 4, long_seconds = 600;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) bu_die(a, "needs a value");
        if (!strcmp(a, "--dim")) cfg.dim = atoi(v);
        else if (!strcmp(a, "--depth")) cfg.depth = atoi(v);
        else if (!strcmp(a, "--heads")) cfg.heads = atoi(v);
        else if (!strcmp(a, "--mlp")) cfg.mlp_hidden = atoi(v);
        else if (!strcmp(a, "--learners")) cfg.learners = atoi(v);
        else if (!strcmp(a, "--chunk")) cfg.chunk = atoi(v);
        else if (!strcmp(a, "--left")) cfg.left_context = atoi(v);
        else if (!strcmp(a, "--betas")) {
            if ((nb = bu_parse_list(v, betas, 8)) < 1) bu_die(a, "a comma-separated list of budgets");
        } else if (!strcmp(a, "--seconds")) seconds = atof(v);
        else if (!strcmp(a, "--stream-seconds")) stream_seconds = atof(v);
        else if (!strcmp(a, "--streams")) S = atoi(v);
        else if (!strcmp(a, "--threads")) W = atoi(v);
        else if (!strcmp(a, "--rounds")) rounds = atoi(v);
        else if (!strcmp(a, "--long-seconds")) long_seconds = atof(v);
        else if (!strcmp(a, "--acm-mask")) cfg.acm_mask = (unsigned)atoi(v);
        else if (!strcmp(a, "--tables")) tables = v;
        else if (!strcmp(a, "--write-model")) write_model = v;
        else bu_die(a, "unknown option (see the comment at the top of bench/speech.c)");
        i++;
    }
    if (cfg.acm_mask < 1 || cfg.acm_mask > 31) bu_die("--acm-mask", "1..31");
    if (W < 1 || W > 16 || S < W || S / W > 256 || rounds < 1 || rounds > 64 || !(seconds >= 1) ||
        !(stream_seconds >= 0.5))
        bu_die("options", "threads 1..16, streams >= threads and <= 256 per thread, rounds 1..64, seconds >= 1");
    acm_blas_set_threads(1);
    char err[512];
    if (write_model) { /* the ACM model as a file (for acmd: bench/asr.sh), nothing measured */
        if (sr_write(&cfg, write_model, err, sizeof err)) bu_die("--write-model", err);
        printf("speech: wrote %s\n", write_model);
        return 0;
    }
    vr_store st_acm, st_static;
    acm_model *ma = sr_build(&cfg, &st_acm, err, sizeof err);
    if (!ma) bu_die("model", err);
    sr_config sc = cfg;
    sc.learners = 0;
    acm_model *ms = sr_build(&sc, &st_static, err, sizeof err);
    if (!ms) bu_die("static model", err);
    const acm_config *c = acm_model_config(ma);
    int64_t params = 0; /* built in memory: the file loader's count is not there */
    for (int i = 0; i < st_acm.n; i++) {
        int64_t k = 1;
        for (int d = 0; d < st_acm.t[i].ndim; d++) k *= st_acm.t[i].shape[d];
        params += k;
    }
    const double token_ms = 1000.0 * c->stack * c->hop_length / c->sample_rate;
    printf("speech: BLAS core %s, %d cores; model D %d, depth %d, heads %d, MLP %d, N %d (ACM mask %u: %s), chunk "
           "%d tokens (%.0f ms), left context %d tokens (%.0f ms); %.2f M parameters; stream state %zu bytes\n",
           acm_blas_core(), acm_cpu_count(), cfg.dim, cfg.depth, cfg.heads, cfg.mlp_hidden, cfg.learners, cfg.acm_mask,
           cfg.acm_mask == 31 ? "MLPs and q/k/v/o" : cfg.acm_mask == 16 ? "MLPs only" : "some modules", cfg.chunk,
           cfg.chunk * token_ms, cfg.left_context, cfg.left_context * token_ms,
           (double)params / 1e6, acm_stream_state_bytes(ma));
    const int64_t n = (int64_t)(seconds * RATE);
    float *pcm = signal_make(n);
    const int K = c->num_classes;
    float *logits = malloc(sizeof(float) * (size_t)c->chunk * K);
    /* (1) one stream, one core */
    if (strchr(tables, '1')) {
        printf("\n(1) one stream at batch 1, one core, %.0f s of audio fed in 20 ms pieces (median of %d)\n", seconds,
               rounds);
        printf("| model | beta | RTF (wall) | RTF (CPU time) | CPU ms per chunk | GFLOP per s of audio | "
               "budget realised | RTF (CPU) / static |\n|---|---|---|---|---|---|---|---|\n");
        double rtf_static = 0;
        for (int b = -1; b < nb; b++) {
            const acm_model *m = b < 0 ? ms : ma;
            acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = b < 0 ? 1.0f : (float)betas[b]};
            acm_worker_params wp = {.max_batch = 1, .max_tokens = c->chunk};
            acm_worker *w = acm_worker_new(m, wp, err, sizeof err);
            if (!w) bu_die("worker", err);
            acm_stream *s = acm_stream_new(m, err, sizeof err);
            if (!s) bu_die("stream", err);
            run_streams(w, &s, 1, pcm, n, RATE, pol, logits, c->chunk, K); /* warm-up */
            double t[64], tc[64];
            run_stats r = {0};
            for (int k = 0; k < rounds; k++) {
                r = run_streams(w, &s, 1, pcm, n, n, pol, logits, c->chunk, K);
                t[k] = r.seconds;
                tc[k] = r.cpu;
            }
            const double sec = bu_median(t, rounds), cpu = bu_median(tc, rounds), rtf = cpu / seconds;
            if (b < 0) rtf_static = rtf;
            char beta[16] = "-";
            if (b >= 0) snprintf(beta, sizeof beta, "%.2f", betas[b]);
            printf("| %s | %s | %.4f | %.4f | %.3f | %.3f | %.3f | %.2f |\n", b < 0 ? "static" : "ACM", beta,
                   sec / seconds, rtf, 1000.0 * cpu / (double)r.chunks, r.flops / seconds / 1e9,
                   r.tokens ? r.learner / (double)r.tokens : 1.0, rtf / rtf_static);
            acm_stream_free(s);
            acm_worker_free(w);
        }
    }
    /* (2) S streams on W threads */
    if (strchr(tables, '2')) {
        printf("\n(2) %d streams batched on %d threads (one worker and one BLAS thread each, %d streams per call), "
               "%.1f s of audio per stream (median of %d)\n",
               S, W, S / W, stream_seconds, rounds);
        printf("| model | beta | chunks/s (wall) | chunks per CPU s x threads | x real time | GFLOP/s | "
               "budget realised | speed-up (CPU) | FLOP ratio | realisation |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
        double static_s = 0, static_f = 0;
        const int64_t ss = (int64_t)(stream_seconds * RATE);
        for (int b = -1; b < nb; b++) {
            const acm_model *m = b < 0 ? ms : ma;
            acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = b < 0 ? 1.0f : (float)betas[b]};
            double t[64], tc[64];
            run_stats r = {0};
            for (int k = 0; k < rounds; k++) {
                r = batched(m, pcm, n, ss, S, W, pol);
                t[k] = r.seconds;
                tc[k] = r.cpu;
            }
            const double sec = bu_median(t, rounds), cpu = bu_median(tc, rounds) / W; /* per thread: the wall time of an
                                                                                         unshared machine */
            if (b < 0) {
                static_s = cpu;
                static_f = r.flops;
            }
            const double speed = static_s / cpu, fr = static_f / r.flops;
            char beta[16] = "-";
            if (b >= 0) snprintf(beta, sizeof beta, "%.2f", betas[b]);
            printf("| %s | %s | %.0f | %.0f | %.1f | %.2f | %.3f | %.2f | %.2f | %.2f |\n", b < 0 ? "static" : "ACM",
                   beta, (double)r.chunks / sec, (double)r.chunks / cpu, (double)S * stream_seconds / cpu,
                   r.flops / cpu / 1e9, r.tokens ? r.learner / (double)r.tokens : 1.0, speed, fr, speed / fr);
        }
    }
    /* (3) one long stream: the first and the last minute's chunks */
    if (strchr(tables, '3') && long_seconds >= 120) {
        acm_worker_params wp = {.max_batch = 1, .max_tokens = c->chunk};
        acm_worker *w = acm_worker_new(ma, wp, err, sizeof err);
        acm_stream *s = acm_stream_new(ma, err, sizeof err);
        if (!w || !s) bu_die("long stream", err);
        acm_policy pol = {.kind = ACM_POLICY_CAP, .beta = 1.0f};
        const int64_t total = (int64_t)(long_seconds * RATE), minute = 60 * RATE;
        int64_t fed = 0, chunks[2] = {0, 0};
        double cpu[2] = {0, 0}, dense[2] = {0, 0};
        while (fed < total) {
            int64_t k = total - fed < PIECE ? total - fed : PIECE;
            int64_t took = acm_stream_feed(s, pcm + (fed % (n - PIECE)), (size_t)k, err, sizeof err);
            if (took < 0) bu_die("long stream", err);
            fed += took;
            if (!acm_stream_ready(s)) continue;
            acm_result r = {.logits = logits};
            double t0 = thread_cpu_s();
            if (acm_worker_run_streams(w, &s, &pol, &r, 1, err, sizeof err)) bu_die("long stream", err);
            double dt = thread_cpu_s() - t0;
            int slot = fed <= minute ? 0 : fed > total - minute ? 1 : -1;
            if (slot >= 0 && acm_stream_tokens_done(s) > c->left_context + c->chunk) { /* context full */
                cpu[slot] += dt;
                dense[slot] += r.flops_dense;
                chunks[slot]++;
            }
        }
        printf("\n(3) one stream of %.0f s at batch 1, one core, ACM at beta 1, chunks with a full left context\n",
               long_seconds);
        printf("| minute | chunks | CPU ms per chunk (engine) | dense MFLOP per chunk |\n|---|---|---|---|\n");
        for (int i = 0; i < 2; i++)
            printf("| %s | %lld | %.3f | %.3f |\n", i ? "last" : "first", (long long)chunks[i],
                   chunks[i] ? 1000.0 * cpu[i] / (double)chunks[i] : 0.0,
                   chunks[i] ? dense[i] / (double)chunks[i] / 1e6 : 0.0);
        acm_stream_free(s);
        acm_worker_free(w);
    }
    free(logits);
    free(pcm);
    acm_model_free(ma);
    acm_model_free(ms);
    vr_store_free(&st_acm);
    vr_store_free(&st_static);
    return 0;
}
