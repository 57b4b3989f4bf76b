/*
 * speech_utts.c — the usable utterances of a corpus split and their batches' frames (see speech_utts.h).
 */
#include "train/speech_utts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "train/ctc_loss.h"

int acmt_speech_utts_load(acmt_speech_utts *s, const char *corpus, const char *split, const acmt_speech_config *mc,
                          int max_tokens, int64_t limit, char *err, size_t errlen) {
    memset(s, 0, sizeof *s);
    s->split = split;
    size_t n = 0;
    if (acms_load_split(corpus, split, &s->utts, &n, err, errlen)) return -1;
    int64_t total_chars = 0;
    for (size_t i = 0; i < n; i++) total_chars += (int64_t)strlen(s->utts[i].text);
    s->tokens = malloc(sizeof(int64_t) * (n + 1));
    s->lab_off = malloc(sizeof(int64_t) * (n + 1));
    s->lab = malloc(sizeof(int32_t) * (size_t)(total_chars + 1));
    if (!s->tokens || !s->lab_off || !s->lab) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int64_t k = 0, at = 0;
    s->lab_off[0] = 0;
    for (size_t i = 0; i < n && (limit <= 0 || k < limit); i++) {
        const acms_utt *u = &s->utts[i];
        const int64_t T = u->frames / mc->stack;
        int bad;
        int nl = acmt_speech_encode_text(mc, u->text, s->lab + at, &bad);
        if (nl < 0 || T < 1 || T > max_tokens || T < acmt_ctc_min_frames(s->lab + at, nl)) {
            s->dropped++;
            continue;
        }
        s->utts[k] = *u;
        s->tokens[k] = T;
        at += nl;
        s->lab_off[++k] = at;
        if (nl > s->max_labels) s->max_labels = nl;
    }
    s->n = k;
    return 0;
}

void acmt_speech_utts_free(acmt_speech_utts *s) {
    free(s->utts);
    free(s->tokens);
    free(s->lab_off);
    free(s->lab);
}

int acmt_speech_utts_read(const acmt_speech_utts *s, const char *corpus, const int32_t *idx, int n, int stack,
                          float *buf, float *tmp, const float **fr, int64_t *tok, const int32_t **lab, int *nl,
                          char *err, size_t errlen) {
    int64_t at = 0;
    for (int b = 0; b < n; b++) {
        const int64_t u = idx[b], T = s->tokens[u];
        if (acms_read_frames(corpus, s->split, &s->utts[u], tmp, err, errlen)) return -1;
        memcpy(buf + at, tmp, sizeof(float) * (size_t)(T * stack * ACMS_MELS));
        fr[b] = buf + at;
        at += T * stack * ACMS_MELS;
        tok[b] = T;
        lab[b] = s->lab + s->lab_off[u];
        nl[b] = (int)(s->lab_off[u + 1] - s->lab_off[u]);
    }
    return 0;
}
