/*
 * small_m_lab.c — kernel lab (kept apart from engine/; only a winner moves in): the linear layers of one streaming
 * chunk, out[M, OC] = x[M, C] · W[OC, C]ᵀ with M = 8 rows (one chunk of the speech encoder at batch 1), where
 * bench/speech measured 10 GFLOP/s against ~45 at 256 rows and perf put half the time in OpenBLAS's sgemm_incopy (the
 * weight matrix packed again on every call).
 *
 *   v1  the engine today: cblas_sgemm(RowMajor, NoTrans, Trans) on W as stored ([OC, C], nn.Linear).
 *   v2  v1 split into column blocks of OC small enough for OpenBLAS's small-matrix kernel (M·N·K ≤ 1e6).
 *   v3  cblas_sgemm(RowMajor, NoTrans, NoTrans, alpha 1, beta 0) on a transposed copy Wᵀ [C, OC]: the shape OpenBLAS's
 *       "direct" SkylakeX kernel takes without packing (needs the copy, i.e. twice the weights, and beta = 0).
 *   v4  our own AVX-512 kernel on W as stored: rows of x in blocks of 8, two rows of W at a time, 16 accumulators
 *       (one per (x row, W row) pair) fed by fused multiply-adds along C, one horizontal sum per output. Each weight
 *       is read once per 8 rows and nothing is packed.
 * Shapes: the speech encoder's fc1 (256 -> 1024), fc2 (1024 -> 256) and a projection (256 -> 256); GFLOP/s, best of
 * --reps, one BLAS thread. Results agree to 1e-4 relative (checked).
 *
 * build and run (not part of make):
 *   cc -O2 -march=x86-64-v2 -I/usr/include/openblas -o build/small_m_lab bench/lab/small_m/small_m_lab.c \
 *      -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -lm && build/small_m_lab [REPS [M]]
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

void openblas_set_num_threads(int);
char *openblas_get_corename(void);

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void v1(float *o, const float *x, const float *w, int M, int C, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, OC, C, 1.0f, x, C, w, C, 0.0f, o, OC);
}

static void v2(float *o, const float *x, const float *w, int M, int C, int OC) {
    int ob = 1000000 / (M * C) / 16 * 16;
    if (ob < 16) ob = 16;
    for (int j = 0; j < OC; j += ob) {
        int n = OC - j < ob ? OC - j : ob;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, n, C, 1.0f, x, C, w + (size_t)j * C, C, 0.0f, o + j, OC);
    }
}

static void v3(float *o, const float *x, const float *wt, int M, int C, int OC) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, OC, C, 1.0f, x, C, wt, OC, 0.0f, o, OC);
}

#include <immintrin.h>

__attribute__((target("avx512f"))) static void v4_block(float *o, int ldo, const float *x, int ldx, int m,
                                                         const float *w, int ldw, int C, int OC) {
    const float *xr[8];
    for (int i = 0; i < 8; i++) xr[i] = x + (size_t)(i < m ? i : 0) * ldx;
    const __mmask16 tail = (__mmask16)((1u << (C % 16)) - 1);
    int j = 0;
    for (; j + 2 <= OC; j += 2) {
        const float *w0 = w + (size_t)j * ldw, *w1 = w0 + ldw;
        __m512 a[8], b[8];
        for (int i = 0; i < 8; i++) a[i] = b[i] = _mm512_setzero_ps();
        int c = 0;
        for (; c + 16 <= C; c += 16) {
            const __m512 wa = _mm512_loadu_ps(w0 + c), wb = _mm512_loadu_ps(w1 + c);
            for (int i = 0; i < 8; i++) {
                const __m512 xv = _mm512_loadu_ps(xr[i] + c);
                a[i] = _mm512_fmadd_ps(xv, wa, a[i]);
                b[i] = _mm512_fmadd_ps(xv, wb, b[i]);
            }
        }
        if (c < C) {
            const __m512 wa = _mm512_maskz_loadu_ps(tail, w0 + c), wb = _mm512_maskz_loadu_ps(tail, w1 + c);
            for (int i = 0; i < 8; i++) {
                const __m512 xv = _mm512_maskz_loadu_ps(tail, xr[i] + c);
                a[i] = _mm512_fmadd_ps(xv, wa, a[i]);
                b[i] = _mm512_fmadd_ps(xv, wb, b[i]);
            }
        }
        for (int i = 0; i < m; i++) {
            o[(size_t)i * ldo + j] = _mm512_reduce_add_ps(a[i]);
            o[(size_t)i * ldo + j + 1] = _mm512_reduce_add_ps(b[i]);
        }
    }
    for (; j < OC; j++) {
        const float *w0 = w + (size_t)j * ldw;
        for (int i = 0; i < m; i++) {
            __m512 a = _mm512_setzero_ps();
            int c = 0;
            for (; c + 16 <= C; c += 16) a = _mm512_fmadd_ps(_mm512_loadu_ps(xr[i] + c), _mm512_loadu_ps(w0 + c), a);
            if (c < C) a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xr[i] + c), _mm512_maskz_loadu_ps(tail, w0 + c), a);
            o[(size_t)i * ldo + j] = _mm512_reduce_add_ps(a);
        }
    }
}

static void v4(float *o, const float *x, const float *w, int M, int C, int OC) {
    for (int i = 0; i < M; i += 8) v4_block(o + (size_t)i * OC, OC, x + (size_t)i * C, C, M - i < 8 ? M - i : 8, w, C, C, OC);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 200, M = argc > 2 ? atoi(argv[2]) : 8;
    openblas_set_num_threads(1);
    static const int shapes[3][2] = {{256, 1024}, {1024, 256}, {256, 256}};
    printf("small_m_lab: OpenBLAS core %s, M = %d rows, best of %d\n", openblas_get_corename(), M, reps);
    printf("| C -> OC | v1 GFLOP/s | v2 GFLOP/s | v3 GFLOP/s | v4 GFLOP/s | max rel diff v2..v4 |\n|---|---|---|---|---|---|\n");
    for (int s = 0; s < 3; s++) {
        const int C = shapes[s][0], OC = shapes[s][1];
        /* several weight matrices in turn, as the layers of a model are: none stays in L1/L2 between calls */
        enum { NW = 24 };
        float *w = malloc(sizeof(float) * (size_t)NW * OC * C), *wt = malloc(sizeof(float) * (size_t)NW * OC * C);
        float *x = malloc(sizeof(float) * (size_t)M * C), *o[4];
        for (int k = 0; k < 4; k++) o[k] = malloc(sizeof(float) * (size_t)M * OC);
        unsigned r = 1;
        for (size_t i = 0; i < (size_t)NW * OC * C; i++) w[i] = (float)(rand_r(&r) % 2001 - 1000) / 1000.0f;
        for (int l = 0; l < NW; l++)
            for (int a = 0; a < OC; a++)
                for (int b = 0; b < C; b++) wt[(size_t)l * OC * C + (size_t)b * OC + a] = w[(size_t)l * OC * C + (size_t)a * C + b];
        for (int i = 0; i < M * C; i++) x[i] = (float)(rand_r(&r) % 2001 - 1000) / 1000.0f;
        double best[4] = {1e9, 1e9, 1e9, 1e9};
        for (int rep = 0; rep < reps; rep++)
            for (int k = 0; k < 4; k++) {
                double t0 = now();
                for (int l = 0; l < NW; l++) {
                    const float *wl = w + (size_t)l * OC * C, *wtl = wt + (size_t)l * OC * C;
                    if (k == 0) v1(o[0], x, wl, M, C, OC);
                    else if (k == 1) v2(o[1], x, wl, M, C, OC);
                    else if (k == 2) v3(o[2], x, wtl, M, C, OC);
                    else v4(o[3], x, wl, M, C, OC);
                }
                double t = (now() - t0) / NW;
                if (t < best[k]) best[k] = t;
            }
        double md = 0, mx = 1;
        for (int i = 0; i < M * OC; i++) {
            mx = fmax(mx, fabs(o[0][i]));
            md = fmax(md, fmax(fabs(o[1][i] - o[0][i]), fmax(fabs(o[2][i] - o[0][i]), fabs(o[3][i] - o[0][i]))));
        }
        const double fl = 2.0 * M * C * OC;
        printf("| %d -> %d | %.1f | %.1f | %.1f | %.1f | %.1e |\n", C, OC, fl / best[0] / 1e9, fl / best[1] / 1e9,
               fl / best[2] / 1e9, fl / best[3] / 1e9, md / mx);
        free(w), free(wt), free(x);
        for (int k = 0; k < 4; k++) free(o[k]);
    }
    return 0;
}
