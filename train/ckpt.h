/*
 * ckpt.h — training checkpoints: a safetensors file (engine/safetensors.h) written atomically (PATH.tmp, fsync,
 * rename, fsync of the folder) holding the float/int tensors of the training state and one metadata key,
 * "acm_train", a JSON document with everything else (step, RNG states as hex, the training configuration, timers).
 * Tensors are stored raw, so a resumed run continues bit for bit.
 *
 * Base training stores: params, adam_m, adam_v (F32 [P], the flat layout of vit_train.h's table) and order
 * (I32 [n_train], the current epoch's permutation of the training split).
 */
#ifndef ACM_TRAIN_CKPT_H
#define ACM_TRAIN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct {
    const char *name;
    int is_int;   /* 0: F32, 1: I32 */
    int64_t n;    /* elements */
    void *data;   /* [n] floats or int32 */
} acmt_ckpt_entry;

/* Writes entries and the state document (a JSON object, not consumed) to path atomically. */
int acmt_ckpt_write(const char *path, const acmt_ckpt_entry *e, int n, const json_t *state, char *err, size_t errlen);

/* Reads path: each entry's tensor must exist with exactly n elements of its type; copies into data. *state gets a new
 * reference to the state document (caller json_decref). */
int acmt_ckpt_read(const char *path, const acmt_ckpt_entry *e, int n, json_t **state, char *err, size_t errlen);

/* Entries added to a checkpoint after its format (e.g. acmize --film's film_params): each tensor present must have
 * exactly n elements of its type and is copied into data; an absent one leaves data zeroed. *found (may be NULL)
 * counts the entries present. */
int acmt_ckpt_read_optional(const char *path, const acmt_ckpt_entry *e, int n, int *found, char *err, size_t errlen);

#endif
