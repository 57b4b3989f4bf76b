/*
 * speech_corpus.h — the synthetic speech corpus: voices, splits, synthesis (espeak-ng, flite, festival), augmentation
 * (sox effects + seeded noise and gain here), 80-bin log-mel features stored as fp16, and a reader.
 *
 * Speakers, not engines, define the splits: flite's kal/kal16 and festival's kal_diphone are one recorded speaker
 * ("kal"), flite's slt and festival's cmu_us_slt_arctic_hts another ("slt"). An espeak-ng speaker is accent+variant.
 *   seen speakers   kal, slt, rms, espeak-ng {en-us, en-gb, en-gb-x-rp, en-gb-x-gbclan, en-gb-x-gbcwmd, en-us-nyc}
 *                   x {m1..m7, f1..f5}: train, val, test-seen
 *   unseen speakers awb (flite), ked (festival), espeak-ng {en-029, en-gb-scotland} x {m1..m7, f1..f5}: test-unseen
 * Sentences: train from the TRAIN pool of the grammar, val from VAL, both test sets from TEST (speech_grammar.h), so
 * no test sentence can be in training. Real speech (pocketsphinx-testdata) is the split "real", evaluation only.
 *
 * Layout of a corpus directory (everything little-endian):
 *   corpus.json                    what was built: seed, counts, hours and speakers per split, versions, wall time
 *   vocab.txt                      the grammar's words, one a line
 *   SPLIT.tsv                      every utterance of the split, in order (the shards' .tsv concatenated)
 *   SPLIT/shard-NNNNN.f16          features: the utterances' frames one after another, each frame 80 IEEE fp16
 *   SPLIT/shard-NNNNN.tsv          one line per utterance, tab-separated:
 *       id  shard  offset  frames  samples  speaker  engine  voice  kind  augment  text
 *     offset and frames in frames of the .f16 file; samples = 16 kHz samples of the audio the frames came from.
 * A shard is written to temporary names and renamed, .tsv last: a shard whose .tsv exists is complete, and a rerun
 * skips it. Shard k of a split depends only on (seed, split, k): any number of workers gives the same bytes.
 */
#ifndef ACM_TRAIN_SPEECH_CORPUS_H
#define ACM_TRAIN_SPEECH_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "train/speech_grammar.h"

#define ACMS_MELS 80

typedef enum { ACMS_ESPEAK, ACMS_FLITE, ACMS_FESTIVAL, ACMS_REAL } acms_engine;

typedef struct {
    char speaker[48]; /* identity used for the splits */
    acms_engine engine;
    char voice[48]; /* engine's voice name: "en-gb-x-rp+f3", "kal16", "cmu_us_slt_arctic_hts" */
    int unseen;     /* 1: only in test-unseen */
    double weight;  /* relative probability of being drawn within its group */
} acms_voice;

/* All voices (seen and unseen); returns the count (<= max). */
size_t acms_voices(acms_voice *v, size_t max);
const char *acms_engine_name(acms_engine e);

typedef enum { ACMS_SPLIT_TRAIN, ACMS_SPLIT_VAL, ACMS_SPLIT_TEST_SEEN, ACMS_SPLIT_TEST_UNSEEN, ACMS_SPLIT_COUNT } acms_split;
const char *acms_split_name(acms_split s); /* "train", "val", "test-seen", "test-unseen" */

/* What one utterance will be: decided from (seed, split, index) alone. */
typedef struct {
    char id[32];
    char text[ACMS_MAX_TEXT];
    acms_kind kind;
    acms_voice voice;
    double rate;      /* espeak words per minute, or flite/festival duration stretch (1 = the voice's default) */
    int pitch;        /* espeak pitch 0..99 (others: 0) */
    /* augmentation */
    double tempo;     /* sox tempo factor, 1 = none */
    int pitch_cents;  /* sox pitch shift, 0 = none */
    int reverb;       /* sox reverberance 0..100, 0 = none */
    int telephone;    /* band-limit to 300-3400 Hz through 8 kHz */
    double snr_db;    /* added noise, or 0 = none */
    int pink;         /* noise colour: 0 white, 1 pink */
    double peak;      /* the clean signal's peak is scaled to this */
    uint64_t noise_seed;
} acms_plan;

void acms_plan_make(acms_plan *p, uint64_t seed, acms_split split, uint64_t index);
/* "clean" or the effects joined by '+': "tempo0.93+tel+snr12w". */
void acms_plan_augment_name(const acms_plan *p, char *out, size_t cap);

typedef struct {
    const char *out;        /* corpus directory */
    uint64_t seed;
    int jobs;               /* worker processes */
    size_t count[ACMS_SPLIT_COUNT]; /* utterances per split */
    size_t shard;           /* utterances per shard */
    int real;               /* also build the "real" split from pocketsphinx-testdata */
    const char *real_dir;   /* default /usr/share/pocketsphinx/test/data */
    int quiet;              /* no progress lines */
    double min_free_gb;     /* refuse to start with less free disk than the estimate plus this */
} acms_build_params;

acms_build_params acms_build_default_params(void);

/* Builds (or completes) the corpus. Returns 0, or -1 with a message in err. Prints progress on stderr unless quiet. */
int acms_build(const acms_build_params *p, char *err, size_t errlen);

/* Checks a built corpus: no test sentence in train or val, no unseen speaker outside test-unseen, every test-unseen
 * speaker unseen, frame counts consistent with the shard files. Returns 0 or -1 with the first problem in err. */
int acms_verify(const char *dir, char *err, size_t errlen);

/* ---- re-making the audio ---------------------------------------------------------------------------------------- */

/* The corpus keeps features, not audio; every synthesised utterance is a pure function of (seed, split, index) and
 * the synthesisers, so its audio can be made again. acms_write_wavs re-makes the first `limit` (0: all) utterances
 * of `split` of the corpus at dir (its seed from corpus.json; each plan checked against the manifest's text and voice)
 * as OUT/ID.wav: 16 kHz mono, 32-bit IEEE float samples, exactly the samples the features were computed from
 * (after gain and noise). Their features are computed again and compared with the stored fp16 ones. OUT/SPLIT.tsv
 * lists them: file, speaker, samples stored, samples re-made, max |feature difference| (inf when the lengths differ),
 * text. Needs the synthesisers the corpus was built with (make deps). */
typedef struct {
    size_t written;      /* WAV files written */
    size_t same;         /* of which the features equal the stored ones bit for bit (fp16) */
    size_t same_length;  /* of which the sample count is the stored one */
    double max_abs_diff; /* over the same-length ones */
} acms_wav_report;

int acms_write_wavs(const char *dir, const char *split, const char *out, size_t limit, acms_wav_report *rep,
                    char *err, size_t errlen);

/* ---- reading ---------------------------------------------------------------------------------------------------- */

typedef struct {
    char id[32];
    int shard;
    int64_t offset, frames, samples;
    char speaker[48], engine[16], voice[128], kind[16], augment[64]; /* voice: the recording's path for "real" */
    char text[ACMS_MAX_TEXT];
} acms_utt;

/* Reads DIR/SPLIT.tsv ("train", "val", "test-seen", "test-unseen", "real"). *utts malloc'd. */
int acms_load_split(const char *dir, const char *split, acms_utt **utts, size_t *n, char *err, size_t errlen);
/* Reads one utterance's frames into out [u->frames, 80] as float. */
int acms_read_frames(const char *dir, const char *split, const acms_utt *u, float *out, char *err, size_t errlen);

/* IEEE half precision, round to nearest even (the conversions the feature files use). */
/* The whole file at path (malloc'd; its length in *n), or NULL when it cannot be opened or memory runs out. */
uint8_t *acms_read_file(const char *path, size_t *n);
uint16_t acms_f32_to_f16(float f);
float acms_f16_to_f32(uint16_t h);

#endif
