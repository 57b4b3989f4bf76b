/*
 * model_mut.h — a model file opened for mutation, for the loader's refusal tests (test_model, test_speech_model):
 * read a committed model, change its tensors or its "acm" metadata, write the copy to a temporary file and load it.
 */
#ifndef ACM_TESTS_MODEL_MUT_H
#define ACM_TESTS_MODEL_MUT_H
#include <jansson.h>

#include "acm.h"
#include "safetensors.h"

#define MODEL_MUT_MAX 256

typedef struct {
    acm_st_file src;
    acm_st_out t[MODEL_MUT_MAX]; /* the tensors as they will be written: point into src, or at the test's own data */
    int n;
    json_t *acm; /* the parsed "acm" metadata, mutable */
} model_mut;

/* Opens src (asserting that it reads and has at most MODEL_MUT_MAX tensors); close with model_mut_close. */
void model_mut_open(model_mut *m, const char *src);
void model_mut_close(model_mut *m);
/* Index of the tensor called name (the test fails when there is none). */
int model_mut_find(model_mut *m, const char *name);
/* Writes the mutated copy to a temporary file (removed again) and loads it: the model, or NULL and the loader's message. */
acm_model *model_mut_write_load(model_mut *m, char *err, size_t errlen);
/* Writes the mutated copy and loads it. needle NULL: it must load. Otherwise it must be refused with a message that
 * contains needle and the file's path. The temporary file is removed. */
void model_mut_expect_load(model_mut *m, const char *needle);
#endif
