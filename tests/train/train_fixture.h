/*
 * train_fixture.h — what the end-to-end tests of the acm-train commands share (test_base, test_speech_base,
 * test_speech_acmize, test_speech_card, test_speech_report, test_cmd_eval, test_info): a temporary folder, a
 * command run with an argument list or a shell line whose output is captured, the byte-for-byte comparison of two
 * checkpoints (the resume tests), a small speech corpus in the layout of speech_corpus.h, and tiny speech models
 * trained and converted on it.
 */
#ifndef ACM_TESTS_TRAIN_FIXTURE_H
#define ACM_TESTS_TRAIN_FIXTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Makes a fresh folder /tmp/acm-test-NAME-XXXXXX into dir (asserting that it can). */
void fixture_make_dir(char *dir, size_t size, const char *name);
/* Removes the folder and everything in it (asserting that it goes). */
void fixture_remove_dir(const char *dir);
/* Runs cmd with argv {name, args[0..n), NULL}; returns its exit status. */
int fixture_run(int (*cmd)(int, char **), const char *name, int n, const char **args);
/* Runs the shell command line cmd (popen) and returns what it wrote on stdout, up to 64 KiB (malloc'd, the caller
 * frees); its exit status into *status (-1 when it did not exit). Add " 2>&1" to cmd to capture stderr too. */
char *fixture_capture(const char *cmd, int *status);

/* Asserts that the checkpoints p1 and p2 hold the same number of tensors, that the tensors names[0..nnames) are in both
 * with the same 4-byte elements (the first difference is named), and that the state keys keys[0..nkeys) of their
 * "acm_train" metadata are equal. Returns p1's state (the caller checks what else it wants, then json_decref). */
json_t *fixture_same_checkpoints(const char *p1, const char *p2, const char *const *names, int nnames,
                                 const char *const *keys, int nkeys);

/* Writes split SPLIT of n utterances into the corpus folder dir: 10..33 tokens each (4 frames per token, plus 0..3
 * left over), a text of up to T/2 characters over "abc " (no leading, trailing or double space), frames whose bins
 * carry the letters faintly. The same seed gives the same split. */
void fixture_speech_split(const char *dir, const char *split, int n, uint64_t seed);
/* A fresh folder (as fixture_make_dir) holding a corpus of 60 train utterances (seed 1) and 8 val ones (seed 2). */
void fixture_speech_corpus(char *dir, size_t size, const char *name);
/* A tiny static encoder (2 blocks of width 16, chunks of 4 tokens) trained on the corpus in dir by `acm-train
 * speech-base` for the given epochs into out (its configuration in dir/base.json, its checkpoint out.ckpt). */
void fixture_speech_base(const char *dir, const char *out, int epochs);
/* A corpus as fixture_speech_corpus plus test-seen and test-unseen splits of 8 utterances (seeds 3 and 4), a tiny
 * static encoder trained on it by fixture_speech_base (4 epochs) into base, and its ACM
 * conversion by `acm-train acmize` (4 learners per MLP, one epoch per phase) into acm (paths in dir, cap bytes). */
void fixture_speech_models(char *dir, size_t size, const char *name, char *base, char *acm, size_t cap);

#endif
