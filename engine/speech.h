/*
 * speech.h — the speech encoder's forward pass and the scratch of a speech worker. Internal to libacm (the public
 * calls are acm_worker_run, acm_stream_* and acm_worker_run_streams in acm.h; the design in docs/DESIGN.md §4b).
 *
 * Shapes: R packed rows (the tokens of every item or chunk of a call, one after another), U decision units (chunks),
 * D width, M mels, S frames per token, C tokens per chunk, L left-context tokens, K CTC classes, A ACM modules.
 */
#ifndef ACM_SPEECH_H
#define ACM_SPEECH_H

#include "acm.h"
#include "logmel.h"
#include "model.h"
#include "vit.h"

typedef struct acm__speech_scratch acm__speech_scratch;

/* Scratch of a speech worker for at most max_items items (or streams) and max_tokens rows per call, with every
 * learner on. Also allocates and points the ACM scratch *acm (sized for max_tokens rows). NULL + message on failure. */
acm__speech_scratch *acm__speech_scratch_new(const acm_model *m, int max_items, int max_tokens, acm__acm_scratch *acm,
                                             char *err, size_t errlen);
void acm__speech_scratch_free(acm__speech_scratch *sp);

/* acm_worker_run for a speech model: n audio items. */
int acm__speech_run(const acm_model *m, acm__speech_scratch *sp, acm__acm_scratch *s, const acm_item *items,
                    acm_result *res, int n, char *err, size_t errlen);

/* acm_worker_run_streams's body. */
int acm__speech_run_streams(const acm_model *m, acm__speech_scratch *sp, acm__acm_scratch *s,
                            acm_stream *const *streams, const acm_policy *policies, acm_result *res, int n, char *err,
                            size_t errlen);

/* The speech scratch of a worker (NULL for a ViT model's worker). */
acm__speech_scratch *acm__worker_speech(acm_worker *w);

#endif
