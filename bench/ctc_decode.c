/*
 * ctc_decode.c — CTC decoding speed (engine/ctc.h): frames per second of greedy, beam 8 and beam 8 constrained to a
 * 1000-word list, each beam also with a threshold (prune), as a streaming caller runs them: 8-frame chunks
 * (320 ms at 40 ms per frame), a partial result after each, a final result and a reset every 256 frames (10.24 s
 * segments). Input: sentences of words from the list spelled as CTC-like logits (a run of 1-2 frames per character at
 * a random peak, blanks between, Gaussian noise), the same frames for every decoder. Word list: the speech corpus's
 * vocabulary (train/speech_grammar.c) filled up to 1000 with seeded random words. The decoders run in turns, ROUNDS
 * times each; the median is printed with the real-time factor (decoding seconds per second of audio), and the mean
 * number of characters of a partial result past its stable prefix ("unstable": what may still change).
 * Single-threaded; no BLAS is used, the core is printed as every bench does.
 *
 * Usage: build/bench/ctc_decode [FRAMES] [ROUNDS] [NOISE] [PEAK] [PRUNE]
 *   defaults 25000 frames = 1000 s of audio, 5 rounds, noise 1.2 (std of the Gaussian added to every logit), peak 2
 *   (a character's logit is PEAK + 4u above the others', u uniform in [0, 1): low peaks make weak frames), prune 5
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "cpu/cpu.h"
#include "ctc.h"
#include "train/speech_grammar.h"
#define BENCH_NAME "ctc_decode"
#include "bench/bench_util.h"

#define NWORDS 1000
#define CHUNK 8
#define SEGMENT 256 /* a multiple of CHUNK */
#define ND 5 /* decoders */

static uint64_t rng_s = 1;
static double unif(void) { return (double)(acms_rng_u64((acms_rng *)&rng_s) >> 11) * (1.0 / 9007199254740992.0); }

int main(int argc, char **argv) {
    acm_blas_init(argc, argv);
    const long frames = argc > 1 ? atol(argv[1]) : 25000, rounds = argc > 2 ? atol(argv[2]) : 5;
    const double noise = argc > 3 ? atof(argv[3]) : 1.2, peak0 = argc > 4 ? atof(argv[4]) : 2;
    const double prune = argc > 5 ? atof(argv[5]) : 5;
    if (frames < SEGMENT || rounds < 1 || rounds > 64 || !(noise >= 0) || !(peak0 >= 0) || !(prune > 0))
        return fprintf(stderr, "usage: ctc_decode [FRAMES >= %d] [ROUNDS 1..64] [NOISE >= 0] [PEAK >= 0] [PRUNE > 0]\n",
                       SEGMENT),
               2;
    const acm_ctc_alphabet a = acm_ctc_alphabet_default();
    const int V = a.size;
    /* the word list */
    static char pool[NWORDS * 16];
    const char *words[NWORDS];
    size_t n = acms_vocabulary(words, NWORDS), used = 0;
    char *text = malloc(NWORDS * 16);
    size_t tl = 0;
    for (size_t i = 0; i < n; i++) tl += (size_t)sprintf(text + tl, "%s\n", words[i]);
    for (; n < NWORDS; n++) {
        int len = 3 + (int)(unif() * 7);
        char *w = pool + used;
        for (int k = 0; k < len; k++) w[k] = (char)('a' + (int)(unif() * 26));
        w[len] = 0;
        used += (size_t)len + 1;
        words[n] = w;
        tl += (size_t)sprintf(text + tl, "%s\n", w);
    }
    char err[256];
    acm_ctc_lexicon *lx = acm_ctc_lexicon_parse(&a, text, tl, err, sizeof err);
    if (!lx) bu_die("word list", err);
    /* the frames: words spelled with noise */
    float *x = malloc((size_t)frames * (size_t)V * sizeof *x);
    long t = 0;
    while (t < frames) {
        const char *w = words[(int)(unif() * NWORDS)];
        char say[40];
        snprintf(say, sizeof say, "%s ", w);
        for (const char *c = say; *c && t < frames; c++) {
            int sym = a.index[(unsigned char)*c], reps = 1 + (unif() < 0.3);
            if (c > say && c[-1] == *c) reps = 1; /* a blank goes between repeats below */
            for (int r = 0; r < reps + 1 && t < frames; r++, t++) {
                const int hot = r < reps ? sym : a.blank;
                const double peak = peak0 + 4 * unif();
                for (int s = 0; s < V; s++) {
                    double u1 = unif(), u2 = unif();
                    double g = sqrt(-2 * log(1 - u1)) * cos(2 * M_PI * u2);
                    x[t * V + s] = (float)((s == hot ? peak : 0) + noise * g);
                }
            }
        }
    }
    struct {
        const char *name;
        acm_ctc_params p;
        double s[64];
        double chars, lag, partials;
    } dec[ND];
    for (int i = 0; i < ND; i++) {
        dec[i].p = acm_ctc_default_params();
        dec[i].chars = dec[i].lag = dec[i].partials = 0;
    }
    dec[0].name = "greedy";
    dec[1].name = "beam 8";
    dec[1].p.mode = ACM_CTC_BEAM;
    dec[2].name = "beam 8, 1000 words";
    dec[2].p.mode = ACM_CTC_BEAM;
    dec[2].p.lexicon = lx;
    char n3[64], n4[64];
    snprintf(n3, sizeof n3, "beam 8, prune %g", prune);
    snprintf(n4, sizeof n4, "beam 8, words, prune %g", prune);
    dec[3] = dec[1], dec[3].name = n3;
    dec[3].p.prune = prune;
    dec[4] = dec[2], dec[4].name = n4;
    dec[4].p.prune = prune;
    acm_ctc_decoder *d[ND];
    for (int i = 0; i < ND; i++)
        if (!(d[i] = acm_ctc_decoder_new(&a, dec[i].p, err, sizeof err))) bu_die(dec[i].name, err);
    for (long r = 0; r < rounds; r++)
        for (int i = 0; i < ND; i++) {
            acm_ctc_result res;
            double chars = 0, t0 = bu_now_s();
            acm_ctc_reset(d[i], 0);
            for (long f = 0; f < frames; f += CHUNK) {
                const long k = f + CHUNK <= frames ? CHUNK : frames - f;
                if (acm_ctc_push(d[i], x + f * V, k, V, err, sizeof err)) bu_die("push", err);
                acm_ctc_result_get(d[i], ACM_CTC_PARTIAL, &res);
                if (r == 0) dec[i].lag += res.len - res.stable_len, dec[i].partials++;
                if ((f + k) % SEGMENT == 0 || f + k == frames) {
                    acm_ctc_result_get(d[i], ACM_CTC_FINAL, &res);
                    chars += res.len;
                    acm_ctc_reset(d[i], acm_ctc_next_frame(d[i]));
                }
            }
            dec[i].s[r] = bu_now_s() - t0;
            dec[i].chars = chars;
        }
    printf("ctc_decode: %ld frames (%.0f s of audio at 40 ms), noise %.2f, peak %.1f + U[0,4), chunks of %d, segments "
           "of %d frames, %ld rounds; OpenBLAS core %s (unused)\n",
           frames, frames * 0.04, noise, peak0, CHUNK, SEGMENT, rounds, acm_blas_core());
    printf("%-24s %10s %10s %10s %10s %10s\n", "decoder", "frames/s", "RTF", "state KB", "chars", "unstable");
    for (int i = 0; i < ND; i++) {
        double m = bu_median(dec[i].s, (int)rounds);
        printf("%-24s %10.0f %10.2e %10.1f %10.0f %10.2f\n", dec[i].name, frames / m, m / (frames * 0.04),
               acm_ctc_decoder_bytes(d[i]) / 1024.0, dec[i].chars, dec[i].lag / dec[i].partials);
        acm_ctc_decoder_free(d[i]);
    }
    acm_ctc_lexicon_free(lx);
    free(x);
    free(text);
    return 0;
}
