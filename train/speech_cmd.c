/*
 * speech_cmd.c — `acm-train speech-corpus` (build the synthetic speech corpus, speech_corpus.h) and
 * `acm-train speech-text` (print sentences of the grammar, speech_grammar.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/commands.h"
#include "train/speech_corpus.h"

static void corpus_usage(FILE *f) {
    acms_build_params d = acms_build_default_params();
    fprintf(f,
            "usage: acm-train speech-corpus [options]\n"
            "Synthesises the speech corpus (espeak-ng, flite, festival + sox augmentation) and stores 80-bin log-mel\n"
            "features as fp16 shards with tab-separated manifests. Resumes: complete shards are kept.\n"
            "  --out DIR           corpus directory (default %s)\n"
            "  --seed N            seed of sentences, voices and augmentation (default %llu)\n"
            "  --jobs N            worker processes (default %d)\n"
            "  --train N           training utterances (default %zu)\n"
            "  --val N             validation utterances (default %zu)\n"
            "  --test-seen N       seen-speaker test utterances, unseen sentences (default %zu)\n"
            "  --test-unseen N     unseen-speaker test utterances (default %zu)\n"
            "  --scale F           multiply the four counts by F (e.g. 0.001 for a smoke test)\n"
            "  --shard N           utterances per shard (default %zu)\n"
            "  --no-real           skip the real-speech check set\n"
            "  --real-dir DIR      pocketsphinx-testdata directory (default %s)\n"
            "  --min-free-gb G     disk margin beyond the estimate (default %.1f)\n"
            "  --verify            only check an existing corpus (splits, sentences, frame counts)\n"
            "  --wav DIR           only re-make the audio of the corpus at --out as WAV files in DIR (16 kHz, float):\n"
            "                      DIR/ID.wav and DIR/SPLIT.tsv (file, speaker, samples stored and re-made, max\n"
            "                      feature difference, text); the re-made features are checked against the stored\n"
            "  --split S[,S...]    with --wav: the splits (default test-seen,test-unseen)\n"
            "  --limit N           with --wav: the first N utterances of each split (default 0: all)\n"
            "  --quiet             no progress lines\n",
            d.out, (unsigned long long)d.seed, d.jobs, d.count[0], d.count[1], d.count[2], d.count[3], d.shard,
            d.real_dir, d.min_free_gb);
}

static int parse_size(const char *s, size_t *out) {
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end || s[0] == '-') return -1;
    *out = (size_t)v;
    return 0;
}

/* --wav: each split of the comma-separated list re-made as WAV files (acms_write_wavs), with the check's summary. */
static int write_wavs(const char *corpus, const char *splits, const char *out, size_t limit) {
    if (strlen(out) > 900) {
        fprintf(stderr, "acm-train speech-corpus: paths longer than 900 bytes are not supported\n");
        return 2;
    }
    char list[256], err[1024] = "";
    snprintf(list, sizeof list, "%s", splits);
    for (char *save = NULL, *sp = strtok_r(list, ",", &save); sp; sp = strtok_r(NULL, ",", &save)) {
        acms_wav_report r;
        if (acms_write_wavs(corpus, sp, out, limit, &r, err, sizeof err)) {
            fprintf(stderr, "acm-train speech-corpus: --wav: %s\n", err);
            return 1;
        }
        printf("%s: %zu WAV files in %s (list: %s/%s.tsv); features of the re-made audio: %zu identical to the "
               "stored ones, %zu of the stored length, max |difference| %.3g over those\n",
               sp, r.written, out, out, sp, r.same, r.same_length, r.max_abs_diff);
    }
    return 0;
}

int cmd_speech_corpus(int argc, char **argv) {
    acms_build_params p = acms_build_default_params();
    double scale = 1.0;
    int verify_only = 0;
    const char *wav = NULL, *splits = "test-seen,test-unseen";
    size_t limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        size_t v = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            corpus_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--out") && more) p.out = argv[++i];
        else if (!strcmp(a, "--seed") && more && !parse_size(argv[i + 1], &v)) p.seed = v, i++;
        else if (!strcmp(a, "--jobs") && more && !parse_size(argv[i + 1], &v) && v >= 1 && v <= 256) p.jobs = (int)v, i++;
        else if (!strcmp(a, "--train") && more && !parse_size(argv[i + 1], &v)) p.count[ACMS_SPLIT_TRAIN] = v, i++;
        else if (!strcmp(a, "--val") && more && !parse_size(argv[i + 1], &v)) p.count[ACMS_SPLIT_VAL] = v, i++;
        else if (!strcmp(a, "--test-seen") && more && !parse_size(argv[i + 1], &v)) p.count[ACMS_SPLIT_TEST_SEEN] = v, i++;
        else if (!strcmp(a, "--test-unseen") && more && !parse_size(argv[i + 1], &v))
            p.count[ACMS_SPLIT_TEST_UNSEEN] = v, i++;
        else if (!strcmp(a, "--shard") && more && !parse_size(argv[i + 1], &v) && v >= 1) p.shard = v, i++;
        else if (!strcmp(a, "--scale") && more && (scale = atof(argv[i + 1])) > 0) i++;
        else if (!strcmp(a, "--no-real")) p.real = 0;
        else if (!strcmp(a, "--real-dir") && more) p.real_dir = argv[++i];
        else if (!strcmp(a, "--min-free-gb") && more) p.min_free_gb = atof(argv[++i]);
        else if (!strcmp(a, "--verify")) verify_only = 1;
        else if (!strcmp(a, "--wav") && more) wav = argv[++i];
        else if (!strcmp(a, "--split") && more) splits = argv[++i];
        else if (!strcmp(a, "--limit") && more && !parse_size(argv[i + 1], &v)) limit = v, i++;
        else if (!strcmp(a, "--quiet")) p.quiet = 1;
        else {
            fprintf(stderr, "acm-train speech-corpus: bad option '%s'\n", a);
            corpus_usage(stderr);
            return 2;
        }
    }
    if (strlen(p.out) > 900 || strlen(p.real_dir) > 900) {
        fprintf(stderr, "acm-train speech-corpus: paths longer than 900 bytes are not supported\n");
        return 2;
    }
    if (scale != 1.0)
        for (int s = 0; s < ACMS_SPLIT_COUNT; s++) {
            p.count[s] = (size_t)((double)p.count[s] * scale + 0.5);
            if (p.count[s] < 1) p.count[s] = 1;
        }
    char err[1024] = "";
    if (wav) return write_wavs(p.out, splits, wav, limit);
    if (verify_only) {
        if (acms_verify(p.out, err, sizeof err)) {
            fprintf(stderr, "acm-train speech-corpus: verify: %s\n", err);
            return 1;
        }
        printf("%s: ok (speakers split, no test sentence in train/val, frame counts match)\n", p.out);
        return 0;
    }
    if (acms_build(&p, err, sizeof err)) {
        fprintf(stderr, "acm-train speech-corpus: %s\n", err);
        return 1;
    }
    printf("%s: built and verified; summary in %s/corpus.json\n", p.out, p.out);
    return 0;
}

int cmd_speech_text(int argc, char **argv) {
    uint64_t seed = 1;
    size_t n = 20;
    const char *split = "train";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        size_t v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: acm-train speech-text [--split train|val|test-seen|test-unseen (default train)] [--n N "
                   "(default 20)] [--seed N (default 1)]\nPrints each utterance's id, speaker, voice, augmentation, "
                   "kind and text as the corpus builder plans them.\n");
            return 0;
        } else if (!strcmp(a, "--split") && more) split = argv[++i];
        else if (!strcmp(a, "--n") && more && !parse_size(argv[i + 1], &v)) n = v, i++;
        else if (!strcmp(a, "--seed") && more && !parse_size(argv[i + 1], &v)) seed = v, i++;
        else {
            fprintf(stderr, "acm-train speech-text: bad option '%s' (see --help)\n", a);
            return 2;
        }
    }
    int s = 0;
    while (s < ACMS_SPLIT_COUNT && strcmp(acms_split_name((acms_split)s), split)) s++;
    if (s == ACMS_SPLIT_COUNT) {
        fprintf(stderr, "acm-train speech-text: unknown split '%s'\n", split);
        return 2;
    }
    for (size_t i = 0; i < n; i++) {
        acms_plan p;
        char aug[64];
        acms_plan_make(&p, seed, (acms_split)s, i);
        acms_plan_augment_name(&p, aug, sizeof aug);
        printf("%s\t%s\t%s:%s\t%s\t%s\t%s\n", p.id, p.voice.speaker, acms_engine_name(p.voice.engine), p.voice.voice,
               aug, acms_kind_name(p.kind), p.text);
    }
    return 0;
}
