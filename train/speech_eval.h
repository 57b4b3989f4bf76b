/*
 * speech_eval.h — word and character error rates of a static speech model on a split of the speech corpus
 * (speech_corpus.h), greedy and prefix-beam CTC decoding through the engine's decoder (engine/ctc.h, the server's),
 * overall and per speaker, with FLOPs and the real-time factor.
 *
 * The corpus stores log-mel frames, not audio, and the engine's batch forward (acm_worker_run) starts from PCM: the
 * logits come from the training forward (speech_train.h) over the model file's weights, which
 * tests/train/test_speech_train.c holds equal to the engine's forward. A model with ACM modules (acm-train acmize's
 * speech conversion) runs through its training forward too (speech_student.h) with the engine's own decisions per
 * chunk under the given policy (acm__decide_k: CAP, FIXED, ARGMAX, MEAN), which tests/train/test_speech_student.c
 * holds equal to acm_worker_run; it reports the realised budget per utterance and FLOPs as the engine counts them.
 * The recorded split ("real") keeps the name of each recording (pocketsphinx-testdata): with audio_dir set, its
 * utterances are decoded from the files (proto/audio.h, as acmd decodes a request) and run through acm_worker_run, the
 * server's own path; the largest difference between those logits and the frames path's is reported.
 */
#ifndef ACM_TRAIN_SPEECH_EVAL_H
#define ACM_TRAIN_SPEECH_EVAL_H

#include <stddef.h>
#include <stdint.h>

#include "acm.h"
#include "ctc.h"
#include "train/speech_corpus.h"
#include "train/wer.h"

#define ACMT_EVAL_MAX_ACMS 64

typedef struct {
    char speaker[48];
    acmt_wer greedy, beam;
} acmt_speaker_wer;

typedef struct {
    int64_t utterances, tokens;
    double audio_seconds;
    acmt_wer greedy, beam;  /* beam: counted only when beam > 0 */
    acmt_speaker_wer *speakers; /* [n_speakers], malloc'd, in order of first appearance */
    int n_speakers;
    double flops;           /* executed, 2 per multiply-add, attention included */
    double seconds;         /* forward + decoding wall time */
    double engine_max_diff; /* audio_dir: largest |logit| difference, engine from audio vs the frames path */
    double budget_mean, budget_min, budget_max; /* realised budget over the utterances (1 for a static model) */
    double acm_frac[ACMT_EVAL_MAX_ACMS]; /* per ACM: its learners' mean fraction used, over the utterances */
} acmt_speech_eval_result;

/* One utterance as evaluated (acmt_speech_eval_params.on_utt): valid during the call only. */
typedef struct {
    const acms_utt *utt;
    const float *frames;  /* [tokens * stack, 80]: the log-mel frames as stored */
    int64_t tokens;
    int stack;
    const char *greedy;   /* the greedy hypothesis */
    int n_acm;            /* 0 for a static model */
    const uint8_t *k[ACMT_EVAL_MAX_ACMS]; /* [tokens]: the learners each token ran in ACM a (block a's MLP) */
    int learners[ACMT_EVAL_MAX_ACMS];     /* N of ACM a */
} acmt_speech_utt_view;

typedef struct {
    const char *corpus, *split;
    int64_t limit;  /* first utterances of the split (0: all) */
    int beam;       /* prefix beam width (0: greedy only) */
    const char *words; /* NULL, or a word list (one word per line, as the corpus's vocab.txt): the beam spells only
                        * its words (greedy is unchanged) */
    int batch_tokens;
    const char *audio_dir; /* recorded utterances only: decode audio_dir/<recording> and run acm_worker_run on it */
    const acm_policy *policy; /* models with ACMs: the policy every utterance runs under (NULL: ARGMAX) */
    void (*on_utt)(void *ctx, const acmt_speech_utt_view *v); /* NULL, or called for every utterance in order */
    void *ctx;
} acmt_speech_eval_params;

/* Parses a comma-separated list of budgets in (0, 1] ("0.25,0.5,1") into out [max]. Returns how many, or -1 with the
 * bad item named in err. (The --beta and --betas options of eval, speech-card and speech-report.) */
int acmt_parse_budgets(const char *list, double *out, int max, char *err, size_t errlen);

/* The decoder's text without a trailing space (greedy may end with one), into out [cap]. */
const char *acmt_ctc_text(const acm_ctc_result *res, char *out, size_t cap);

/* Evaluates model_path on the split. Returns 0, or -1 with a message (unreadable model or corpus, ACM modules other
 * than the speech conversion's, a policy the model refuses, a transcript outside the model's alphabet). Free
 * r->speakers. */
int acmt_speech_eval(const char *model_path, const acmt_speech_eval_params *p, acmt_speech_eval_result *r, char *err,
                     size_t errlen);

#endif
