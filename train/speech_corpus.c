/*
 * speech_corpus.c — building and reading the synthetic speech corpus (layout and splits in speech_corpus.h).
 *
 * One utterance: plan (pure function of seed, split, index) -> text file -> synthesiser (espeak-ng and flite one
 * process per utterance; festival one process per shard, since loading a voice costs ~0.3 s) -> optional sox effects
 * (tempo, pitch, reverb, telephone band; sox never dithers here: -D and float output) -> proto/audio decodes and
 * resamples to 16 kHz -> peak gain and seeded noise here -> engine/logmel -> fp16 rows appended to the shard.
 * External programs run through fork/execvp with fixed argument vectors (no shell, no quoting); the text reaches them
 * through files. Workers are forked processes, shard k going to worker k mod jobs.
 */
#include "train/speech_corpus.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "audio.h"
#include "logmel.h"

#define EST_SECONDS_PER_UTT 4.0 /* for the disk estimate only */

static int fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* snprintf for paths and names: truncation is checked by the callers that care (path lengths are bounded by
 * --out, which the command line checks). */
static void sfmt(char *out, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void sfmt(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- fp16 ------------------------------------------------------------------------------------------------------- */

uint16_t acms_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u, mant = x & 0x7fffffu;
    int exp = (int)((x >> 23) & 0xff);
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00u | (mant ? 0x200u : 0)); /* inf / nan */
    int e = exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u); /* overflow -> inf */
    if (e <= 0) {                                    /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        mant |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = (uint32_t)e << 10 | mant >> 13, rem = mant & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* may carry into the exponent: still correct */
    return (uint16_t)(sign | h);
}

float acms_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, x;
    if (exp == 0) {
        if (!mant) x = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400u));
            x = sign | (uint32_t)(127 - 15 - e) << 23 | (mant & 0x3ffu) << 13;
        }
    } else if (exp == 31) x = sign | 0x7f800000u | mant << 13;
    else x = sign | (exp + 127 - 15) << 23 | mant << 13;
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* ---- voices and splits ------------------------------------------------------------------------------------------ */

static const char *const ESPEAK_SEEN[] = {"en-us", "en-gb", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
                                          "en-us-nyc"};
static const char *const ESPEAK_UNSEEN[] = {"en-029", "en-gb-scotland"};
static const char *const ESPEAK_VARIANTS[] = {"m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5"};
#define NV (sizeof ESPEAK_VARIANTS / sizeof ESPEAK_VARIANTS[0])

const char *acms_engine_name(acms_engine e) {
    return e == ACMS_ESPEAK ? "espeak-ng" : e == ACMS_FLITE ? "flite" : e == ACMS_FESTIVAL ? "festival" : "real";
}

const char *acms_split_name(acms_split s) {
    static const char *const n[] = {"train", "val", "test-seen", "test-unseen"};
    return (unsigned)s < ACMS_SPLIT_COUNT ? n[s] : "?";
}

static size_t add_voice(acms_voice *v, size_t n, size_t max, const char *speaker, acms_engine e, const char *voice,
                        int unseen, double w) {
    if (n < max) {
        sfmt(v[n].speaker, sizeof v[n].speaker, "%s", speaker);
        sfmt(v[n].voice, sizeof v[n].voice, "%s", voice);
        v[n].engine = e;
        v[n].unseen = unseen;
        v[n].weight = w;
    }
    return n + 1;
}

size_t acms_voices(acms_voice *v, size_t max) {
    size_t n = 0;
    char sp[48], vo[48];
    /* seen: espeak-ng carries half of the draws, spread over its 72 speakers; the recorded voices the rest. The
     * clustergen (flite slt, rms) and HTS voices cost 4-8x the CPU of espeak-ng, kal and the diphone voices per
     * second of audio, so they are drawn less often than the cheap ones */
    for (size_t a = 0; a < sizeof ESPEAK_SEEN / sizeof ESPEAK_SEEN[0]; a++)
        for (size_t k = 0; k < NV; k++) {
            sfmt(vo, sizeof vo, "%s+%s", ESPEAK_SEEN[a], ESPEAK_VARIANTS[k]);
            sfmt(sp, sizeof sp, "espeak-%s", vo);
            n = add_voice(v, n, max, sp, ACMS_ESPEAK, vo, 0, 50.0 / (6 * NV));
        }
    n = add_voice(v, n, max, "kal", ACMS_FLITE, "kal16", 0, 10);
    n = add_voice(v, n, max, "kal", ACMS_FLITE, "kal", 0, 4);
    n = add_voice(v, n, max, "kal", ACMS_FESTIVAL, "kal_diphone", 0, 10);
    n = add_voice(v, n, max, "slt", ACMS_FLITE, "slt", 0, 8);
    n = add_voice(v, n, max, "slt", ACMS_FESTIVAL, "cmu_us_slt_arctic_hts", 0, 3);
    n = add_voice(v, n, max, "rms", ACMS_FLITE, "rms", 0, 8);
    /* unseen: two espeak-ng accents with all their variants, flite awb, festival ked */
    for (size_t a = 0; a < sizeof ESPEAK_UNSEEN / sizeof ESPEAK_UNSEEN[0]; a++)
        for (size_t k = 0; k < NV; k++) {
            sfmt(vo, sizeof vo, "%s+%s", ESPEAK_UNSEEN[a], ESPEAK_VARIANTS[k]);
            sfmt(sp, sizeof sp, "espeak-%s", vo);
            n = add_voice(v, n, max, sp, ACMS_ESPEAK, vo, 1, 40.0 / (2 * NV));
        }
    n = add_voice(v, n, max, "awb", ACMS_FLITE, "awb", 1, 30);
    n = add_voice(v, n, max, "ked", ACMS_FESTIVAL, "ked_diphone", 1, 30);
    return n;
}

/* Streams of the grammar and of the plans, per split (fixed: changing them changes every corpus). */
static const uint64_t SPLIT_STREAM[ACMS_SPLIT_COUNT] = {11, 12, 13, 14};
static const acms_pool SPLIT_POOL[ACMS_SPLIT_COUNT] = {ACMS_POOL_TRAIN, ACMS_POOL_VAL, ACMS_POOL_TEST,
                                                      ACMS_POOL_TEST};

void acms_plan_make(acms_plan *p, uint64_t seed, acms_split split, uint64_t index) {
    memset(p, 0, sizeof *p);
    sfmt(p->id, sizeof p->id, "%s-%07llu", acms_split_name(split), (unsigned long long)index);
    int k = acms_sentence_for_pool(seed, SPLIT_STREAM[split], index, SPLIT_POOL[split], p->text);
    p->kind = k < 0 ? ACMS_KIND_COMMAND : (acms_kind)k;
    if (k < 0) sfmt(p->text, sizeof p->text, "hello"); /* cannot happen with the shipped grammar (tests) */
    acms_rng r;
    acms_rng_seed(&r, seed, SPLIT_STREAM[split] + 1000, index);
    acms_voice v[256];
    size_t nv = acms_voices(v, 256);
    int want_unseen = split == ACMS_SPLIT_TEST_UNSEEN;
    double total = 0;
    for (size_t i = 0; i < nv; i++)
        if (v[i].unseen == want_unseen) total += v[i].weight;
    double x = acms_rng_uniform(&r) * total;
    size_t pick = 0;
    for (size_t i = 0; i < nv; i++) {
        if (v[i].unseen != want_unseen) continue;
        pick = i;
        if (x < v[i].weight) break;
        x -= v[i].weight;
    }
    p->voice = v[pick];
    if (p->voice.engine == ACMS_ESPEAK) {
        p->rate = 140 + acms_rng_below(&r, 61); /* words per minute; espeak's default is 175 */
        p->pitch = 25 + (int)acms_rng_below(&r, 51);
    } else {
        p->rate = acms_rng_range(&r, 0.85, 1.2); /* duration stretch */
    }
    /* augmentation: each effect independently */
    p->tempo = acms_rng_uniform(&r) < 0.25 ? acms_rng_range(&r, 0.85, 1.15) : 1.0;
    p->pitch_cents = acms_rng_uniform(&r) < 0.25 ? (int)acms_rng_below(&r, 501) - 250 : 0;
    p->reverb = acms_rng_uniform(&r) < 0.2 ? 20 + (int)acms_rng_below(&r, 41) : 0;
    p->telephone = acms_rng_uniform(&r) < 0.15;
    p->snr_db = acms_rng_uniform(&r) < 0.4 ? acms_rng_range(&r, 5, 30) : 0;
    p->pink = acms_rng_below(&r, 2);
    p->peak = acms_rng_range(&r, 0.15, 0.95);
    p->noise_seed = acms_rng_u64(&r);
    /* round the continuous parameters so that the manifest states them exactly */
    p->tempo = round(p->tempo * 100) / 100;
    p->snr_db = round(p->snr_db);
    p->rate = p->voice.engine == ACMS_ESPEAK ? p->rate : round(p->rate * 100) / 100;
    if (p->tempo == 1.0 && p->pitch_cents == 0 && p->reverb == 0 && !p->telephone) p->tempo = 1.0;
}

void acms_plan_augment_name(const acms_plan *p, char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
#define ADDF(...)                                                                                                    \
    do {                                                                                                             \
        if (n < cap) n += (size_t)snprintf(out + n, cap - n, "%s", n ? "+" : "");                                    \
        if (n < cap) n += (size_t)snprintf(out + n, cap - n, __VA_ARGS__);                                           \
    } while (0)
    if (p->tempo != 1.0) ADDF("tempo%.2f", p->tempo);
    if (p->pitch_cents) ADDF("pitch%+d", p->pitch_cents);
    if (p->reverb) ADDF("reverb%d", p->reverb);
    if (p->telephone) ADDF("tel");
    if (p->snr_db > 0) ADDF("snr%.0f%s", p->snr_db, p->pink ? "p" : "w");
#undef ADDF
    if (!n) sfmt(out, cap, "clean");
}

static int needs_sox(const acms_plan *p) { return p->tempo != 1.0 || p->pitch_cents || p->reverb || p->telephone; }

/* ---- processes and files ---------------------------------------------------------------------------------------- */

/* Runs argv with stdin and stdout from/to /dev/null and stderr to errfile; 0 when it exits 0. */
static int run(char *const argv[], const char *errfile, char *err, size_t errlen) {
    pid_t pid = fork();
    if (pid < 0) return fail(err, errlen, "fork: %s", strerror(errno));
    if (pid == 0) {
        int dn = open("/dev/null", O_RDWR);
        int ef = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (dn >= 0) dup2(dn, 0), dup2(dn, 1);
        if (ef >= 0) dup2(ef, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return fail(err, errlen, "waitpid: %s", strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 0;
    char msg[200] = "";
    FILE *f = fopen(errfile, "r");
    if (f) {
        if (!fgets(msg, sizeof msg, f)) msg[0] = 0;
        fclose(f);
        msg[strcspn(msg, "\n")] = 0;
    }
    return fail(err, errlen, "%s %s (%s)", argv[0],
                WIFEXITED(st) ? (WEXITSTATUS(st) == 127 ? "could not be run (installed? make deps)" : "failed")
                              : "was killed",
                msg[0] ? msg : "no message");
}

static int write_file(const char *path, const void *b, size_t n, char *err, size_t errlen) {
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    int ok = fwrite(b, 1, n, f) == n;
    ok &= fclose(f) == 0;
    return ok ? 0 : fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
}

uint8_t *acms_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, len = 0;
    uint8_t *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    *n = len;
    return b;
}

static int mkdirs(const char *path) {
    char tmp[1024];
    sfmt(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
            *p = '/';
        }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

/* ---- one worker's state ----------------------------------------------------------------------------------------- */

typedef struct {
    const acms_build_params *bp;
    char tmp[1024]; /* this worker's scratch directory */
    acm_logmel *lm;
    float *mel; /* [mel_cap, 80] */
    size_t mel_cap;
    uint16_t *feat; /* the shard's fp16 rows */
    size_t feat_n, feat_cap;
    char *tsv;
    size_t tsv_n, tsv_cap;
} worker;

static int append(void **p, size_t *n, size_t *cap, const void *src, size_t k, size_t elem) {
    if (*n + k > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *n + k) c *= 2;
        void *q = realloc(*p, c * elem);
        if (!q) return -1;
        *p = q;
        *cap = c;
    }
    memcpy((char *)*p + *n * elem, src, k * elem);
    *n += k;
    return 0;
}

/* Synthesises plan p (not festival: that is batched) into wav. */
static int synth_one(worker *w, const acms_plan *p, const char *wav, char *err, size_t errlen) {
    char txt[1100], ef[1100], a1[64], a2[64];
    sfmt(txt, sizeof txt, "%s/text.txt", w->tmp);
    sfmt(ef, sizeof ef, "%s/stderr.txt", w->tmp);
    if (write_file(txt, p->text, strlen(p->text), err, errlen)) return -1;
    if (p->voice.engine == ACMS_ESPEAK) {
        sfmt(a1, sizeof a1, "%d", (int)p->rate);
        sfmt(a2, sizeof a2, "%d", p->pitch);
        char *argv[] = {"espeak-ng", "-v", (char *)p->voice.voice, "-s", a1, "-p", a2, "-f", txt, "-w", (char *)wav,
                        NULL};
        return run(argv, ef, err, errlen);
    }
    snprintf(a1, sizeof a1, "duration_stretch=%.2f", p->rate);
    char *argv[] = {"flite", "-voice", (char *)p->voice.voice, "--setf", a1, "-f", txt, "-o", (char *)wav, NULL};
    return run(argv, ef, err, errlen);
}

/* sox effects: in -> out (32-bit float WAV at 16 kHz, mono). */
static int sox_effects(worker *w, const acms_plan *p, const char *in, const char *out, char *err, size_t errlen) {
    char ef[1100], tempo[32], pitch[32], rev[32];
    sfmt(ef, sizeof ef, "%s/stderr.txt", w->tmp);
    char *argv[40];
    int a = 0;
    argv[a++] = "sox";
    argv[a++] = "-D"; /* no dither: output is float anyway, and dither is random */
    argv[a++] = "-V1";
    argv[a++] = (char *)in;
    argv[a++] = "-t";
    argv[a++] = "wav";
    argv[a++] = "-e";
    argv[a++] = "floating-point";
    argv[a++] = "-b";
    argv[a++] = "32";
    argv[a++] = (char *)out;
    argv[a++] = "rate";
    argv[a++] = "16000";
    if (p->tempo != 1.0) {
        sfmt(tempo, sizeof tempo, "%.2f", p->tempo);
        argv[a++] = "tempo";
        argv[a++] = "-s";
        argv[a++] = tempo;
    }
    if (p->pitch_cents) {
        sfmt(pitch, sizeof pitch, "%d", p->pitch_cents);
        argv[a++] = "pitch";
        argv[a++] = pitch;
    }
    if (p->reverb) {
        sfmt(rev, sizeof rev, "%d", p->reverb);
        argv[a++] = "reverb";
        argv[a++] = rev;
    }
    if (p->telephone) {
        argv[a++] = "sinc";
        argv[a++] = "300-3400";
        argv[a++] = "rate";
        argv[a++] = "8000";
        argv[a++] = "rate";
        argv[a++] = "16000";
    }
    argv[a++] = "channels";
    argv[a++] = "1";
    argv[a++] = "gain"; /* effects can push peaks past 1: the peak is set again afterwards */
    argv[a++] = "-n";
    argv[a++] = "-1";
    argv[a] = NULL;
    return run(argv, ef, err, errlen);
}

/* The synthesised (and sox-processed) file -> 16 kHz samples *x [*nx] (malloc'd) at the planned peak, with the planned
 * seeded noise: the audio the features are computed from. */
static int audio_of(const acms_plan *p, const char *wav, float **out, size_t *nout, char *err, size_t errlen) {
    size_t n = 0;
    uint8_t *b = acms_read_file(wav, &n);
    if (!b) return fail(err, errlen, "%s: cannot read %s", p->id, wav);
    float *x = NULL;
    size_t nx = 0;
    char e2[256];
    int rc = acm_audio_decode(NULL, b, n, acm_audio_default_params(), &x, &nx, e2, sizeof e2);
    free(b);
    if (rc) return fail(err, errlen, "%s: %s", p->id, e2);
    /* peak to p->peak, then noise at the planned SNR (relative to the signal's mean power) */
    double peak = 0, pw = 0;
    for (size_t i = 0; i < nx; i++) peak = fmax(peak, fabs(x[i])), pw += (double)x[i] * x[i];
    double g = p->peak > 0 && peak > 0 ? p->peak / peak : 1.0; /* peak 0 in the plan: keep the level (real speech) */
    pw = pw * g * g / (double)(nx ? nx : 1);
    double sigma = p->snr_db > 0 ? sqrt(pw / pow(10.0, p->snr_db / 10.0)) : 0;
    acms_rng r;
    acms_rng_seed(&r, p->noise_seed, 0, 0);
    double b0 = 0, b1 = 0, b2 = 0; /* Paul Kellet's economy pink filter */
    for (size_t i = 0; i < nx; i++) {
        double v = x[i] * g;
        if (sigma > 0) {
            double wn = acms_rng_normal(&r);
            if (p->pink) {
                b0 = 0.99765 * b0 + wn * 0.0990460;
                b1 = 0.96300 * b1 + wn * 0.2965164;
                b2 = 0.57000 * b2 + wn * 1.0526913;
                wn = (b0 + b1 + b2 + wn * 0.1848) * 0.33; /* ~unit variance */
            }
            v += sigma * wn;
        }
        x[i] = (float)(v > 1 ? 1 : v < -1 ? -1 : v);
    }
    *out = x;
    *nout = nx;
    return 0;
}

/* The log-mel frames of x [nx] into w->mel; their count in *frames. */
static int mel_of(worker *w, const acms_plan *p, const float *x, size_t nx, size_t *frames, char *err, size_t errlen) {
    char e2[256];
    acm_logmel_params lp = acm_logmel_get_params(w->lm);
    size_t T = acm_logmel_frames_whole(&lp, nx);
    if (T == 0) return fail(err, errlen, "%s: %zu samples, too short for one frame", p->id, nx);
    if (T > w->mel_cap) {
        float *nm = realloc(w->mel, T * ACMS_MELS * sizeof *nm);
        if (!nm) return fail(err, errlen, "out of memory");
        w->mel = nm;
        w->mel_cap = T;
    }
    acm_logmel_reset(w->lm);
    int64_t got = acm_logmel_push(w->lm, x, nx, w->mel, T, e2, sizeof e2);
    if (got != (int64_t)T) return fail(err, errlen, "%s: %s", p->id, e2);
    *frames = T;
    return 0;
}

/* The synthesised (and sox-processed) file -> audio_of -> fp16 log-mel appended to the shard. */
static int features(worker *w, const acms_plan *p, const char *wav, int64_t *frames, int64_t *samples, char *err,
                    size_t errlen) {
    float *x = NULL;
    size_t nx = 0, T = 0;
    if (audio_of(p, wav, &x, &nx, err, errlen)) return -1;
    int rc = mel_of(w, p, x, nx, &T, err, errlen);
    free(x);
    if (rc) return -1;
    for (size_t i = 0; i < T * ACMS_MELS; i++) {
        uint16_t h = acms_f32_to_f16(w->mel[i]);
        if (append((void **)&w->feat, &w->feat_n, &w->feat_cap, &h, 1, sizeof h))
            return fail(err, errlen, "out of memory");
    }
    *frames = (int64_t)T;
    *samples = (int64_t)nx;
    return 0;
}

static int tsv_line(worker *w, const char *id, int shard, int64_t offset, int64_t frames, int64_t samples,
                    const char *speaker, const char *engine, const char *voice, const char *kind, const char *augment,
                    const char *text) {
    char line[ACMS_MAX_TEXT + 512];
    int k = snprintf(line, sizeof line, "%s\t%d\t%lld\t%lld\t%lld\t%s\t%s\t%s\t%s\t%s\t%s\n", id, shard,
                     (long long)offset, (long long)frames, (long long)samples, speaker, engine, voice, kind, augment,
                     text);
    if (k < 0) return -1;
    if ((size_t)k >= sizeof line) k = (int)sizeof line - 1; /* cannot happen: fields are bounded */
    return append((void **)&w->tsv, &w->tsv_n, &w->tsv_cap, line, (size_t)k, 1);
}

/* Writes the collected shard: .f16 then .tsv, each through a temporary name. */
static int shard_commit(worker *w, const char *dir, int shard, char *err, size_t errlen) {
    char f16[1100], tsv[1100], t1[1100], t2[1100];
    sfmt(f16, sizeof f16, "%s/shard-%05d.f16", dir, shard);
    sfmt(tsv, sizeof tsv, "%s/shard-%05d.tsv", dir, shard);
    sfmt(t1, sizeof t1, "%s.tmp", f16);
    sfmt(t2, sizeof t2, "%s.tmp", tsv);
    if (write_file(t1, w->feat, w->feat_n * sizeof *w->feat, err, errlen)) return -1;
    if (write_file(t2, w->tsv, w->tsv_n, err, errlen)) return -1;
    if (rename(t1, f16) || rename(t2, tsv)) return fail(err, errlen, "rename in %s: %s", dir, strerror(errno));
    w->feat_n = w->tsv_n = 0;
    return 0;
}

static int build_shard(worker *w, acms_split split, int shard, char *err, size_t errlen) {
    const acms_build_params *bp = w->bp;
    char dir[1100], done[1100];
    sfmt(dir, sizeof dir, "%s/%s", bp->out, acms_split_name(split));
    sfmt(done, sizeof done, "%s/shard-%05d.tsv", dir, shard);
    if (access(done, F_OK) == 0) return 0; /* complete from an earlier run */
    size_t first = (size_t)shard * bp->shard, last = first + bp->shard;
    if (last > bp->count[split]) last = bp->count[split];
    size_t n = last - first;
    acms_plan *plans = calloc(n, sizeof *plans);
    if (!plans) return fail(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) acms_plan_make(&plans[i], bp->seed, split, first + i);
    /* festival: one process for all of the shard's festival utterances */
    char scm[1100], ef[1100];
    sfmt(scm, sizeof scm, "%s/batch.scm", w->tmp);
    sfmt(ef, sizeof ef, "%s/stderr.txt", w->tmp);
    int rc = 0, nfest = 0;
    FILE *f = fopen(scm, "w");
    if (!f) rc = fail(err, errlen, "cannot write %s", scm);
    /* grouped by voice: selecting a voice reloads it (the HTS voice takes ~0.5 s) */
    for (size_t g = 0; !rc && g < n; g++) {
        if (plans[g].voice.engine != ACMS_FESTIVAL) continue;
        size_t seen = 0;
        while (seen < g && !(plans[seen].voice.engine == ACMS_FESTIVAL && !strcmp(plans[seen].voice.voice, plans[g].voice.voice)))
            seen++;
        if (seen < g) continue; /* this voice's group was written already */
        fprintf(f, "(voice_%s)\n", plans[g].voice.voice);
        for (size_t i = g; i < n; i++) {
            if (plans[i].voice.engine != ACMS_FESTIVAL || strcmp(plans[i].voice.voice, plans[g].voice.voice)) continue;
            /* text is [a-z' ] only (speech_grammar.h): safe inside a Scheme string */
            fprintf(f, "(Parameter.set 'Duration_Stretch %.2f)\n", plans[i].rate);
            fprintf(f, "(utt.save.wave (utt.synth (Utterance Text \"%s\")) \"%s/f%zu.wav\" 'riff)\n", plans[i].text,
                    w->tmp, i);
            nfest++;
        }
    }
    if (f) fclose(f);
    if (!rc && nfest) {
        char *argv[] = {"festival", "-b", scm, NULL};
        rc = run(argv, ef, err, errlen);
    }
    int64_t offset = 0;
    for (size_t i = 0; !rc && i < n; i++) {
        const acms_plan *p = &plans[i];
        char raw[1100], aug[1100], augname[64];
        if (p->voice.engine == ACMS_FESTIVAL) sfmt(raw, sizeof raw, "%s/f%zu.wav", w->tmp, i);
        else {
            sfmt(raw, sizeof raw, "%s/synth.wav", w->tmp);
            rc = synth_one(w, p, raw, err, errlen);
            if (rc) break;
        }
        const char *src = raw;
        if (needs_sox(p)) {
            sfmt(aug, sizeof aug, "%s/aug.wav", w->tmp);
            rc = sox_effects(w, p, raw, aug, err, errlen);
            if (rc) break;
            src = aug;
        }
        int64_t frames = 0, samples = 0;
        rc = features(w, p, src, &frames, &samples, err, errlen);
        if (rc) break;
        acms_plan_augment_name(p, augname, sizeof augname);
        if (tsv_line(w, p->id, shard, offset, frames, samples, p->voice.speaker, acms_engine_name(p->voice.engine),
                     p->voice.voice, acms_kind_name(p->kind), augname, p->text))
            rc = fail(err, errlen, "out of memory");
        offset += frames;
        if (p->voice.engine == ACMS_FESTIVAL) unlink(raw);
    }
    free(plans);
    if (rc) {
        char msg[512];
        sfmt(msg, sizeof msg, "%s", err);
        return fail(err, errlen, "%s shard %d: %s", acms_split_name(split), shard, msg);
    }
    return shard_commit(w, dir, shard, err, errlen);
}

/* ---- real speech ------------------------------------------------------------------------------------------------ */

static const struct {
    const char *path, *speaker, *text;
} REAL[] = {
    {"cards/001.wav", "real-cards", "ten of clubs"},
    {"cards/002.wav", "real-cards", "four queen of clubs"},
    {"cards/003.wav", "real-cards", "seven of clubs"},
    {"cards/004.wav", "real-cards", "five five"},
    {"cards/005.wav", "real-cards", "eight of spades four of clubs seven of hearts"},
    {"librivox/sense_and_sensibility_01_austen_64kb-0870.wav", "real-librivox",
     "and mister john dashwood had then leisure to consider how much there might be prudently in his power to do for "
     "them"},
    {"librivox/sense_and_sensibility_01_austen_64kb-0880.wav", "real-librivox", "he was not an ill disposed young man"},
    {"librivox/sense_and_sensibility_01_austen_64kb-0890.wav", "real-librivox",
     "unless to be rather cold hearted and rather selfish is to be ill disposed"},
    {"librivox/sense_and_sensibility_01_austen_64kb-0920.wav", "real-librivox",
     "had he married a more a amiable woman he might have been made still more respectable than he was"},
    {"librivox/sense_and_sensibility_01_austen_64kb-0930.wav", "real-librivox",
     "he might even have been made amiable himself"},
    {"tidigits/dhd.2934z.raw", "real-tidigits", "two nine three four zero"},
    {"goforward.raw", "real-goforward", "go forward ten meters"},
};

static int build_real(worker *w, char *err, size_t errlen) {
    const acms_build_params *bp = w->bp;
    char dir[1100], done[1100];
    sfmt(dir, sizeof dir, "%s/real", bp->out);
    sfmt(done, sizeof done, "%s/shard-00000.tsv", dir);
    if (access(done, F_OK) == 0) return 0;
    if (mkdirs(dir)) return fail(err, errlen, "cannot create %s: %s", dir, strerror(errno));
    int64_t offset = 0;
    for (size_t i = 0; i < sizeof REAL / sizeof REAL[0]; i++) {
        char path[1100], id[32];
        sfmt(path, sizeof path, "%s/%s", bp->real_dir, REAL[i].path);
        sfmt(id, sizeof id, "real-%07zu", i);
        const char *dot = strrchr(path, '.');
        acms_plan p;
        memset(&p, 0, sizeof p);
        sfmt(p.id, sizeof p.id, "%s", id);
        p.peak = 0; /* keep the recording's level: peak 0 means no gain (see below) */
        int64_t frames = 0, samples = 0;
        int rc;
        if (dot && !strcmp(dot, ".raw")) { /* headerless 16 kHz s16le: wrap it in a WAV header for the decoder */
            size_t n = 0;
            uint8_t *b = acms_read_file(path, &n);
            if (!b) return fail(err, errlen, "cannot read %s (make deps: pocketsphinx-testdata)", path);
            char wav[1100];
            sfmt(wav, sizeof wav, "%s/real.wav", w->tmp);
            uint8_t h[44];
            uint32_t v[] = {(uint32_t)(36 + n), 16, 0x00010001u, 16000, 32000, 0x00100002u, (uint32_t)n};
            memcpy(h, "RIFF", 4), memcpy(h + 4, &v[0], 4), memcpy(h + 8, "WAVEfmt ", 8), memcpy(h + 16, &v[1], 4);
            memcpy(h + 20, &v[2], 4), memcpy(h + 24, &v[3], 4), memcpy(h + 28, &v[4], 4), memcpy(h + 32, &v[5], 4);
            memcpy(h + 36, "data", 4), memcpy(h + 40, &v[6], 4);
            FILE *f = fopen(wav, "wb");
            int ok = f && fwrite(h, 1, 44, f) == 44 && fwrite(b, 1, n, f) == n;
            if (f) ok &= fclose(f) == 0;
            free(b);
            if (!ok) return fail(err, errlen, "cannot write %s", wav);
            rc = features(w, &p, wav, &frames, &samples, err, errlen);
        } else {
            if (access(path, R_OK)) return fail(err, errlen, "cannot read %s (make deps: pocketsphinx-testdata)", path);
            rc = features(w, &p, path, &frames, &samples, err, errlen);
        }
        if (rc) return rc;
        if (tsv_line(w, id, 0, offset, frames, samples, REAL[i].speaker, "real", REAL[i].path, "real", "clean",
                     REAL[i].text))
            return fail(err, errlen, "out of memory");
        offset += frames;
    }
    return shard_commit(w, dir, 0, err, errlen);
}

/* ---- the build -------------------------------------------------------------------------------------------------- */

acms_build_params acms_build_default_params(void) {
    acms_build_params p = {.out = "data/speech",
                           .seed = 1,
                           .jobs = 2,
                           .count = {20500, 1100, 1000, 1000},
                           .shard = 100,
                           .real = 1,
                           .real_dir = "/usr/share/pocketsphinx/test/data",
                           .quiet = 0,
                           .min_free_gb = 1.0};
    return p;
}

static size_t n_shards(const acms_build_params *p, acms_split s) { return (p->count[s] + p->shard - 1) / p->shard; }

static int worker_main(const acms_build_params *bp, int id, double t0) {
    worker w;
    memset(&w, 0, sizeof w);
    w.bp = bp;
    char err[1024] = "";
    sfmt(w.tmp, sizeof w.tmp, "%s/tmp/w%d", bp->out, id);
    if (mkdirs(w.tmp)) {
        fprintf(stderr, "speech-corpus: cannot create %s: %s\n", w.tmp, strerror(errno));
        return 1;
    }
    w.lm = acm_logmel_create(acm_logmel_default_params(), err, sizeof err);
    if (!w.lm) {
        fprintf(stderr, "speech-corpus: %s\n", err);
        return 1;
    }
    int rc = 0;
    size_t k = 0; /* global shard counter across splits: shard k goes to worker k mod jobs */
    for (int s = 0; !rc && s < ACMS_SPLIT_COUNT; s++) {
        size_t ns = n_shards(bp, (acms_split)s);
        for (size_t i = 0; !rc && i < ns; i++, k++) {
            if ((int)(k % (size_t)bp->jobs) != id) continue;
            rc = build_shard(&w, (acms_split)s, (int)i, err, sizeof err);
            if (!rc && !bp->quiet)
                fprintf(stderr, "speech-corpus: %-11s shard %4zu/%zu done (worker %d, %.0f s)\n",
                        acms_split_name((acms_split)s), i + 1, ns, id, now_s() - t0);
        }
    }
    if (!rc && bp->real && id == 0) rc = build_real(&w, err, sizeof err);
    if (rc) fprintf(stderr, "speech-corpus: %s\n", err);
    acm_logmel_free(w.lm);
    free(w.mel);
    free(w.feat);
    free(w.tsv);
    return rc ? 1 : 0;
}

/* Concatenates SPLIT/shard-*.tsv into SPLIT.tsv and sums the split's statistics into json. */
static int finish_split(const acms_build_params *bp, const char *split, size_t shards, FILE *json, int first,
                        char *err, size_t errlen) {
    char path[1100], tmp[1100];
    sfmt(path, sizeof path, "%s/%s.tsv", bp->out, split);
    sfmt(tmp, sizeof tmp, "%s.tmp", path);
    FILE *o = fopen(tmp, "w");
    if (!o) return fail(err, errlen, "cannot write %s", tmp);
    size_t utts = 0;
    int64_t samples = 0, frames = 0;
    /* speakers: a small linear table is enough (< 200 speakers) */
    char speakers[256][48];
    size_t spk_utts[256];
    int ns = 0;
    for (size_t k = 0; k < shards; k++) {
        char sp[1100];
        sfmt(sp, sizeof sp, "%s/%s/shard-%05zu.tsv", bp->out, split, k);
        size_t n = 0;
        uint8_t *b = acms_read_file(sp, &n);
        if (!b) {
            fclose(o);
            return fail(err, errlen, "missing %s", sp);
        }
        fwrite(b, 1, n, o);
        /* parse the lines for statistics */
        char *line = (char *)b, *end = (char *)b + n;
        while (line < end) {
            char *nl = memchr(line, '\n', (size_t)(end - line));
            if (!nl) break;
            *nl = 0;
            char *f[11];
            int nf = 0;
            for (char *q = line; nf < 11;) {
                f[nf++] = q;
                char *t = strchr(q, '\t');
                if (!t) break;
                *t = 0;
                q = t + 1;
            }
            if (nf == 11) {
                utts++;
                frames += atoll(f[3]);
                samples += atoll(f[4]);
                int j = 0;
                while (j < ns && strcmp(speakers[j], f[5])) j++;
                if (j == ns && ns < 256) {
                    sfmt(speakers[ns], sizeof speakers[ns], "%s", f[5]);
                    spk_utts[ns++] = 0;
                }
                if (j < 256) spk_utts[j]++;
            }
            line = nl + 1;
        }
        free(b);
    }
    fclose(o);
    if (rename(tmp, path)) return fail(err, errlen, "rename %s: %s", tmp, strerror(errno));
    fprintf(json, "%s    \"%s\": {\"utterances\": %zu, \"hours\": %.3f, \"frames\": %lld, \"speakers\": %d, \"by_speaker\": {",
            first ? "" : ",\n", split, utts, (double)samples / 16000.0 / 3600.0, (long long)frames, ns);
    for (int j = 0; j < ns; j++) fprintf(json, "%s\"%s\": %zu", j ? ", " : "", speakers[j], spk_utts[j]);
    fprintf(json, "}}");
    return 0;
}

int acms_build(const acms_build_params *bp, char *err, size_t errlen) {
    double t0 = now_s();
    if (bp->jobs < 1 || bp->jobs > 256 || bp->shard < 1) return fail(err, errlen, "jobs must be 1..256, shard >= 1");
    if (mkdirs(bp->out)) return fail(err, errlen, "cannot create %s: %s", bp->out, strerror(errno));
    /* disk: the estimate of the features plus a margin */
    size_t total = 0;
    for (int s = 0; s < ACMS_SPLIT_COUNT; s++) total += bp->count[s];
    double need = (double)total * EST_SECONDS_PER_UTT * 100 * ACMS_MELS * 2 + bp->min_free_gb * 1e9;
    struct statvfs sv;
    if (statvfs(bp->out, &sv) == 0) {
        double avail = (double)sv.f_bavail * (double)sv.f_frsize;
        if (avail < need)
            return fail(err, errlen, "%s: %.2f GB free, the corpus needs about %.2f GB (with a %.1f GB margin)",
                        bp->out, avail / 1e9, need / 1e9, bp->min_free_gb);
        if (!bp->quiet)
            fprintf(stderr, "speech-corpus: %zu utterances into %s (%.2f GB free, ~%.2f GB needed), %d jobs, seed %llu\n",
                    total, bp->out, avail / 1e9, need / 1e9, bp->jobs, (unsigned long long)bp->seed);
    }
    for (int s = 0; s < ACMS_SPLIT_COUNT; s++) {
        char d[1100];
        sfmt(d, sizeof d, "%s/%s", bp->out, acms_split_name((acms_split)s));
        if (mkdirs(d)) return fail(err, errlen, "cannot create %s: %s", d, strerror(errno));
    }
    fflush(stderr);
    pid_t pids[256];
    for (int j = 0; j < bp->jobs; j++) {
        pids[j] = fork();
        if (pids[j] < 0) return fail(err, errlen, "fork: %s", strerror(errno));
        if (pids[j] == 0) _exit(worker_main(bp, j, t0));
    }
    int bad = 0;
    for (int j = 0; j < bp->jobs; j++) {
        int st = 0;
        while (waitpid(pids[j], &st, 0) < 0 && errno == EINTR) {}
        if (!WIFEXITED(st) || WEXITSTATUS(st)) bad++;
    }
    if (bad) return fail(err, errlen, "%d of %d workers failed (messages above); rerun to resume", bad, bp->jobs);
    /* manifests and the summary */
    char jp[1100], jt[1100];
    sfmt(jp, sizeof jp, "%s/corpus.json", bp->out);
    sfmt(jt, sizeof jt, "%s.tmp", jp);
    FILE *json = fopen(jt, "w");
    if (!json) return fail(err, errlen, "cannot write %s", jt);
    fprintf(json, "{\n  \"format\": \"acm-speech-corpus 1\",\n  \"seed\": %llu,\n  \"mels\": %d,\n"
                  "  \"frontend\": \"engine/logmel.h defaults: 16 kHz, win 400, hop 160, n_fft 512, HTK mel 0-8000 Hz, ln\",\n"
                  "  \"splits\": {\n",
            (unsigned long long)bp->seed, ACMS_MELS);
    int rc = 0;
    for (int s = 0; !rc && s < ACMS_SPLIT_COUNT; s++)
        rc = finish_split(bp, acms_split_name((acms_split)s), n_shards(bp, (acms_split)s), json, s == 0, err, errlen);
    if (!rc && bp->real) rc = finish_split(bp, "real", 1, json, 0, err, errlen);
    double wall = now_s() - t0;
    /* CPU of the workers and of every program they ran (all waited for, so all counted) */
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec * 1e-6;
    fprintf(json, "\n  },\n  \"wall_seconds_last_run\": %.1f,\n  \"cpu_seconds_last_run\": %.1f,\n  \"jobs\": %d\n}\n",
            wall, cpu, bp->jobs);
    fclose(json);
    if (rc) return rc;
    if (rename(jt, jp)) return fail(err, errlen, "rename %s: %s", jt, strerror(errno));
    /* vocabulary */
    const char *words[2048];
    size_t nw = acms_vocabulary(words, 2048);
    char vp[1100];
    sfmt(vp, sizeof vp, "%s/vocab.txt", bp->out);
    FILE *v = fopen(vp, "w");
    if (!v) return fail(err, errlen, "cannot write %s", vp);
    for (size_t i = 0; i < nw && i < 2048; i++) fprintf(v, "%s\n", words[i]);
    fclose(v);
    /* scratch files go; the shards stay */
    for (int j = 0; j < bp->jobs; j++) {
        char d[1100];
        sfmt(d, sizeof d, "%s/tmp/w%d", bp->out, j);
        DIR *dd = opendir(d);
        if (dd) {
            struct dirent *e;
            while ((e = readdir(dd)))
                if (e->d_name[0] != '.') {
                    char fp[1400];
                    sfmt(fp, sizeof fp, "%s/%s", d, e->d_name);
                    unlink(fp);
                }
            closedir(dd);
            rmdir(d);
        }
    }
    char td[1100];
    sfmt(td, sizeof td, "%s/tmp", bp->out);
    rmdir(td);
    return acms_verify(bp->out, err, errlen);
}

/* ---- reading and checking --------------------------------------------------------------------------------------- */

int acms_load_split(const char *dir, const char *split, acms_utt **utts, size_t *n, char *err, size_t errlen) {
    *utts = NULL;
    *n = 0;
    char path[1100];
    sfmt(path, sizeof path, "%s/%s.tsv", dir, split);
    size_t len = 0;
    uint8_t *b = acms_read_file(path, &len);
    if (!b) return fail(err, errlen, "cannot read %s", path);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += b[i] == '\n';
    acms_utt *u = calloc(lines ? lines : 1, sizeof *u);
    if (!u) {
        free(b);
        return fail(err, errlen, "out of memory");
    }
    size_t k = 0, lineno = 0;
    char *line = (char *)b, *end = (char *)b + len;
    while (line < end) {
        char *nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl) break;
        *nl = 0;
        lineno++;
        char *f[11];
        int nf = 0;
        for (char *q = line; nf < 11;) {
            f[nf++] = q;
            char *t = strchr(q, '\t');
            if (!t) break;
            *t = 0;
            q = t + 1;
        }
        if (nf != 11) {
            free(b);
            free(u);
            return fail(err, errlen, "%s:%zu: %d fields, 11 expected", path, lineno, nf);
        }
        acms_utt *x = &u[k++];
        sfmt(x->id, sizeof x->id, "%s", f[0]);
        x->shard = atoi(f[1]);
        x->offset = atoll(f[2]);
        x->frames = atoll(f[3]);
        x->samples = atoll(f[4]);
        sfmt(x->speaker, sizeof x->speaker, "%s", f[5]);
        sfmt(x->engine, sizeof x->engine, "%s", f[6]);
        sfmt(x->voice, sizeof x->voice, "%s", f[7]);
        sfmt(x->kind, sizeof x->kind, "%s", f[8]);
        sfmt(x->augment, sizeof x->augment, "%s", f[9]);
        sfmt(x->text, sizeof x->text, "%s", f[10]);
        line = nl + 1;
    }
    free(b);
    *utts = u;
    *n = k;
    return 0;
}

int acms_read_frames(const char *dir, const char *split, const acms_utt *u, float *out, char *err, size_t errlen) {
    char path[1100];
    sfmt(path, sizeof path, "%s/%s/shard-%05d.f16", dir, split, u->shard);
    FILE *f = fopen(path, "rb");
    if (!f) return fail(err, errlen, "cannot open %s", path);
    size_t n = (size_t)u->frames * ACMS_MELS;
    uint16_t *h = malloc(n * sizeof *h);
    int ok = h && fseeko(f, (off_t)u->offset * ACMS_MELS * 2, SEEK_SET) == 0 && fread(h, 2, n, f) == n;
    fclose(f);
    if (ok)
        for (size_t i = 0; i < n; i++) out[i] = acms_f16_to_f32(h[i]);
    free(h);
    return ok ? 0 : fail(err, errlen, "%s: cannot read %lld frames at %lld", path, (long long)u->frames,
                         (long long)u->offset);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

int acms_verify(const char *dir, char *err, size_t errlen) {
    acms_utt *sp[ACMS_SPLIT_COUNT] = {0};
    size_t n[ACMS_SPLIT_COUNT] = {0};
    int rc = 0;
    for (int s = 0; !rc && s < ACMS_SPLIT_COUNT; s++)
        rc = acms_load_split(dir, acms_split_name((acms_split)s), &sp[s], &n[s], err, errlen);
    acms_voice v[256];
    size_t nv = acms_voices(v, 256);
    /* speakers: unseen ones only in test-unseen, and test-unseen only unseen ones */
    for (int s = 0; !rc && s < ACMS_SPLIT_COUNT; s++)
        for (size_t i = 0; !rc && i < n[s]; i++) {
            int unseen = -1;
            for (size_t j = 0; j < nv; j++)
                if (!strcmp(v[j].speaker, sp[s][i].speaker)) unseen = v[j].unseen;
            if (unseen < 0) rc = fail(err, errlen, "%s: unknown speaker %s", sp[s][i].id, sp[s][i].speaker);
            else if (unseen != (s == ACMS_SPLIT_TEST_UNSEEN))
                rc = fail(err, errlen, "%s: speaker %s must not be in %s", sp[s][i].id, sp[s][i].speaker,
                          acms_split_name((acms_split)s));
        }
    /* sentences: no test sentence in train or val (sorted train+val texts, binary search per test text) */
    size_t ntv = n[ACMS_SPLIT_TRAIN] + n[ACMS_SPLIT_VAL];
    const char **tv = rc ? NULL : malloc((ntv ? ntv : 1) * sizeof *tv);
    if (!rc && !tv) rc = fail(err, errlen, "out of memory");
    if (!rc) {
        size_t k = 0;
        for (int s = ACMS_SPLIT_TRAIN; s <= ACMS_SPLIT_VAL; s++)
            for (size_t i = 0; i < n[s]; i++) tv[k++] = sp[s][i].text;
        qsort(tv, ntv, sizeof *tv, cmp_str);
        for (int s = ACMS_SPLIT_TEST_SEEN; !rc && s <= ACMS_SPLIT_TEST_UNSEEN; s++)
            for (size_t i = 0; !rc && i < n[s]; i++) {
                const char *key = sp[s][i].text;
                if (bsearch(&key, tv, ntv, sizeof *tv, cmp_str))
                    rc = fail(err, errlen, "%s: test sentence \"%s\" is also in train/val", sp[s][i].id, key);
            }
    }
    free(tv);
    /* frames: each shard's .f16 holds exactly the frames its lines name */
    for (int s = 0; !rc && s < ACMS_SPLIT_COUNT; s++) {
        int64_t want = 0;
        for (size_t i = 0; !rc && i < n[s]; i++) {
            want += sp[s][i].frames;
            if (i + 1 == n[s] || sp[s][i + 1].shard != sp[s][i].shard) {
                char path[1100];
                struct stat st;
                sfmt(path, sizeof path, "%s/%s/shard-%05d.f16", dir, acms_split_name((acms_split)s), sp[s][i].shard);
                if (stat(path, &st) || st.st_size != want * ACMS_MELS * 2)
                    rc = fail(err, errlen, "%s: %lld bytes, the manifest says %lld frames", path,
                              (long long)(rc ? 0 : st.st_size), (long long)want);
                want = 0;
            }
        }
    }
    for (int s = 0; s < ACMS_SPLIT_COUNT; s++) free(sp[s]);
    return rc;
}

/* ---- re-making the audio ---------------------------------------------------------------------------------------- */

/* Festival for one utterance (the build batches a shard's; each utterance is synthesised from its own text and
 * Duration_Stretch either way). */
static int synth_festival_one(worker *w, const acms_plan *p, const char *wav, char *err, size_t errlen) {
    char scm[1100], ef[1100];
    sfmt(scm, sizeof scm, "%s/one.scm", w->tmp);
    sfmt(ef, sizeof ef, "%s/stderr.txt", w->tmp);
    FILE *f = fopen(scm, "w");
    if (!f) return fail(err, errlen, "cannot write %s", scm);
    fprintf(f, "(voice_%s)\n(Parameter.set 'Duration_Stretch %.2f)\n", p->voice.voice, p->rate);
    fprintf(f, "(utt.save.wave (utt.synth (Utterance Text \"%s\")) \"%s\" 'riff)\n", p->text, wav);
    if (fclose(f)) return fail(err, errlen, "cannot write %s", scm);
    char *argv[] = {"festival", "-b", scm, NULL};
    return run(argv, ef, err, errlen);
}

/* x [n] as a 16 kHz mono WAV of IEEE float samples (format tag 3): the decoder passes them through bit for bit. The
 * header is the one the WAVE spec asks of a non-PCM format (as sox writes it): a "fmt " chunk of 18 bytes (cbSize 0)
 * and a "fact" chunk with the sample count, then "data". */
static int write_wav_f32(const char *path, const float *x, size_t n, char *err, size_t errlen) {
    enum { HDR = 58 };
    if (n > (UINT32_MAX - HDR) / 4) return fail(err, errlen, "%s: too long for a WAV file", path);
    const uint32_t data = (uint32_t)(n * 4);
    uint8_t h[HDR] = {0};
    memcpy(h, "RIFF", 4), memcpy(h + 8, "WAVEfmt ", 8), memcpy(h + 38, "fact", 4), memcpy(h + 50, "data", 4);
    const uint32_t u32[][2] = {{4, HDR - 8 + data}, {16, 18},      {24, ACM_AUDIO_RATE}, {28, ACM_AUDIO_RATE * 4},
                               {42, 4},             {46, (uint32_t)n}, {54, data}};
    for (size_t i = 0; i < sizeof u32 / sizeof u32[0]; i++)
        for (int k = 0; k < 4; k++) h[u32[i][0] + (uint32_t)k] = (uint8_t)(u32[i][1] >> (8 * k));
    const uint16_t u16[][2] = {{20, 3}, {22, 1}, {32, 4}, {34, 32}, {36, 0}}; /* IEEE float, mono, block 4, 32 bits */
    for (size_t i = 0; i < sizeof u16 / sizeof u16[0]; i++)
        h[u16[i][0]] = (uint8_t)u16[i][1], h[u16[i][0] + 1] = (uint8_t)(u16[i][1] >> 8);
    FILE *f = fopen(path, "wb");
    if (!f) return fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    int ok = fwrite(h, 1, sizeof h, f) == sizeof h;
    for (size_t i = 0; ok && i < n; i++) { /* little-endian whatever the host */
        uint32_t v;
        memcpy(&v, &x[i], 4);
        const uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
        ok = fwrite(b, 1, 4, f) == 4;
    }
    ok &= fclose(f) == 0;
    return ok ? 0 : fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
}

/* The seed the corpus at dir was built with (corpus.json's "seed"). */
static int corpus_seed(const char *dir, uint64_t *seed, char *err, size_t errlen) {
    char path[1100];
    sfmt(path, sizeof path, "%s/corpus.json", dir);
    size_t n = 0;
    uint8_t *b = acms_read_file(path, &n);
    if (!b) return fail(err, errlen, "cannot read %s", path);
    char *nb = realloc(b, n + 1);
    if (!nb) {
        free(b);
        return fail(err, errlen, "out of memory");
    }
    nb[n] = 0;
    const char *k = strstr(nb, "\"seed\":");
    char *end = NULL;
    unsigned long long v = k ? strtoull(k + 7, &end, 10) : 0;
    int ok = k && end != k + 7;
    free(nb);
    if (!ok) return fail(err, errlen, "%s: no \"seed\" field", path);
    *seed = v;
    return 0;
}

int acms_write_wavs(const char *dir, const char *split, const char *out, size_t limit, acms_wav_report *rep,
                    char *err, size_t errlen) {
    memset(rep, 0, sizeof *rep);
    int s = 0;
    while (s < ACMS_SPLIT_COUNT && strcmp(acms_split_name((acms_split)s), split)) s++;
    if (s == ACMS_SPLIT_COUNT)
        return fail(err, errlen, "split '%s': only the synthesised splits (train, val, test-seen, test-unseen) can be "
                                 "re-made (the real split's recordings are its audio)", split);
    uint64_t seed = 0;
    if (corpus_seed(dir, &seed, err, errlen)) return -1;
    acms_utt *u = NULL;
    size_t n = 0;
    if (acms_load_split(dir, split, &u, &n, err, errlen)) return -1;
    if (limit && limit < n) n = limit;
    worker w;
    memset(&w, 0, sizeof w);
    FILE *list = NULL;
    float *stored = NULL, *x = NULL;
    size_t stored_cap = 0;
    int rc = 0;
    char path[1100];
    sfmt(w.tmp, sizeof w.tmp, "%s/.tmp-%s", out, split);
    if (mkdirs(w.tmp)) rc = fail(err, errlen, "cannot create %s: %s", w.tmp, strerror(errno));
    if (!rc && !(w.lm = acm_logmel_create(acm_logmel_default_params(), err, errlen))) rc = -1;
    sfmt(path, sizeof path, "%s/%s.tsv", out, split);
    if (!rc && !(list = fopen(path, "w"))) rc = fail(err, errlen, "cannot write %s: %s", path, strerror(errno));
    for (size_t i = 0; !rc && i < n; i++) {
        /* the plan from the id's index; it must be the manifest's utterance (same seed and builder) */
        const char *dash = strrchr(u[i].id, '-');
        acms_plan p;
        acms_plan_make(&p, seed, (acms_split)s, dash ? strtoull(dash + 1, NULL, 10) : 0);
        if (strcmp(p.id, u[i].id) || strcmp(p.text, u[i].text) || strcmp(p.voice.voice, u[i].voice)) {
            rc = fail(err, errlen, "%s: the plan for seed %llu (\"%s\", %s) is not the manifest's (\"%s\", %s): "
                      "another builder made this corpus", u[i].id, (unsigned long long)seed, p.text, p.voice.voice,
                      u[i].text, u[i].voice);
            break;
        }
        char raw[1100], aug[1100];
        sfmt(raw, sizeof raw, "%s/synth.wav", w.tmp);
        rc = p.voice.engine == ACMS_FESTIVAL ? synth_festival_one(&w, &p, raw, err, errlen)
                                             : synth_one(&w, &p, raw, err, errlen);
        const char *src = raw;
        if (!rc && needs_sox(&p)) {
            sfmt(aug, sizeof aug, "%s/aug.wav", w.tmp);
            rc = sox_effects(&w, &p, raw, aug, err, errlen);
            src = aug;
        }
        size_t nx = 0, T = 0;
        if (!rc) rc = audio_of(&p, src, &x, &nx, err, errlen);
        if (!rc) rc = mel_of(&w, &p, x, nx, &T, err, errlen);
        if (rc) break;
        /* the features of the re-made audio against the stored ones (fp16 both) */
        if ((int64_t)T > (int64_t)stored_cap) {
            float *ns = realloc(stored, T * ACMS_MELS * sizeof *ns);
            if (!ns) {
                rc = fail(err, errlen, "out of memory");
                break;
            }
            stored = ns;
            stored_cap = T;
        }
        double diff = INFINITY;
        if ((int64_t)T == u[i].frames && (int64_t)nx == u[i].samples) {
            if ((rc = acms_read_frames(dir, split, &u[i], stored, err, errlen))) break;
            diff = 0;
            for (size_t k = 0; k < T * ACMS_MELS; k++)
                diff = fmax(diff, fabs(acms_f16_to_f32(acms_f32_to_f16(w.mel[k])) - stored[k]));
        }
        sfmt(path, sizeof path, "%s/%s.wav", out, u[i].id);
        if ((rc = write_wav_f32(path, x, nx, err, errlen))) break;
        free(x);
        x = NULL;
        fprintf(list, "%s.wav\t%s\t%lld\t%zu\t%.6g\t%s\n", u[i].id, u[i].speaker, (long long)u[i].samples, nx, diff,
                u[i].text);
        rep->written++;
        rep->same += diff == 0;
        rep->same_length += isfinite(diff);
        if (isfinite(diff)) rep->max_abs_diff = fmax(rep->max_abs_diff, diff);
    }
    if (list && fclose(list) && !rc) rc = fail(err, errlen, "cannot write %s/%s.tsv", out, split);
    const char *tmpfiles[] = {"synth.wav", "aug.wav", "one.scm", "text.txt", "stderr.txt"};
    for (size_t k = 0; k < sizeof tmpfiles / sizeof tmpfiles[0]; k++) {
        sfmt(path, sizeof path, "%s/%s", w.tmp, tmpfiles[k]);
        unlink(path);
    }
    rmdir(w.tmp);
    acm_logmel_free(w.lm);
    free(w.mel);
    free(stored);
    free(x);
    free(u);
    return rc;
}
