/*
 * gate_lab.c — kernel lab (an experiment kept apart from engine/, with its own benchmark; only a winner moves into the
 * engine): the collapsed gate, logits[BT, C] = x[BT, D] · G[C, D]ᵀ + g, for the skinny C of ACM gates (5 for an MLP
 * ACM, 4 for a projection, 12 for stacked q|k|v).
 *
 *   v1  cblas_sgemm(NoTrans, Trans): M = BT, N = C, K = D (the engine before issue 6)
 *   v2  cblas_sgemm computing the transpose: logitsᵀ[C, BT] = G · xᵀ (M = C, N = BT), then a transpose
 *   v3  SSE: per token, C dot products over D with 4-lane accumulators (x row read once, G stays in L1/L2)
 *
 * build and run (not part of make; OpenBLAS threads as set by OPENBLAS_NUM_THREADS):
 *   cc -O2 -march=x86-64-v2 -fno-fast-math -I/usr/include/openblas -o build/gate_lab bench/lab/gate/gate_lab.c \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -lm && build/gate_lab [REPS]
 */
#include <cblas.h>
#include <emmintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void v1(float *out, const float *x, const float *G, const float *g, int BT, int D, int C) {
    for (int i = 0; i < BT; i++) memcpy(out + (size_t)i * C, g, sizeof(float) * C);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BT, C, D, 1.0f, x, D, G, D, 1.0f, out, C);
}

static void v2(float *out, float *tmp, const float *x, const float *G, const float *g, int BT, int D, int C) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, C, BT, D, 1.0f, G, D, x, D, 0.0f, tmp, BT);
    for (int i = 0; i < BT; i++)
        for (int c = 0; c < C; c++) out[(size_t)i * C + c] = tmp[(size_t)c * BT + i] + g[c];
}

static void v3(float *out, const float *x, const float *G, const float *g, int BT, int D, int C) {
    for (int i = 0; i < BT; i++) {
        const float *xi = x + (size_t)i * D;
        for (int c0 = 0; c0 < C; c0 += 4) {
            int nc = C - c0 < 4 ? C - c0 : 4;
            __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
            int d = 0;
            for (; d + 4 <= D; d += 4) {
                __m128 xv = _mm_loadu_ps(xi + d);
                for (int j = 0; j < nc; j++)
                    acc[j] = _mm_add_ps(acc[j], _mm_mul_ps(xv, _mm_loadu_ps(G + (size_t)(c0 + j) * D + d)));
            }
            for (int j = 0; j < nc; j++) {
                float t[4];
                _mm_storeu_ps(t, acc[j]);
                float s = (t[0] + t[1]) + (t[2] + t[3]);
                for (int e = d; e < D; e++) s += xi[e] * G[(size_t)(c0 + j) * D + e];
                out[(size_t)i * C + c0 + j] = s + g[c0 + j];
            }
        }
    }
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 20;
    const int D = 768, Cs[3] = {4, 5, 12}, BTs[2] = {197, 1576};
    float *x = malloc(sizeof(float) * 1576 * D), *G = malloc(sizeof(float) * 12 * D), g[12];
    float *o1 = malloc(sizeof(float) * 1576 * 12), *o2 = malloc(sizeof(float) * 1576 * 12), *tmp = malloc(sizeof(float) * 1576 * 12);
    for (int i = 0; i < 1576 * D; i++) x[i] = (float)(((unsigned)i * 7919u) % 1000u) * 1e-3f - 0.5f;
    for (int i = 0; i < 12 * D; i++) G[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    for (int i = 0; i < 12; i++) g[i] = 0.01f * i;
    for (int bi = 0; bi < 2; bi++)
        for (int ci = 0; ci < 3; ci++) {
            int BT = BTs[bi], C = Cs[ci];
            double best[3] = {1e9, 1e9, 1e9};
            for (int r = 0; r < reps; r++) {
                double t0 = now_s();
                v1(o1, x, G, g, BT, D, C);
                double t1 = now_s();
                v2(o2, tmp, x, G, g, BT, D, C);
                double t2 = now_s();
                v3(o2, x, G, g, BT, D, C);
                double t3 = now_s();
                if (t1 - t0 < best[0]) best[0] = t1 - t0;
                if (t2 - t1 < best[1]) best[1] = t2 - t1;
                if (t3 - t2 < best[2]) best[2] = t3 - t2;
            }
            double md = 0;
            for (int i = 0; i < BT * C; i++) {
                double d = o1[i] - o2[i];
                if (d < 0) d = -d;
                if (d > md) md = d;
            }
            printf("BT %4d C %2d: v1 sgemm %.3f ms  v2 sgemm-transposed %.3f ms  v3 SSE %.3f ms  (max |v1-v3| %.2g)\n", BT, C,
                   best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, md);
        }
    return 0;
}
