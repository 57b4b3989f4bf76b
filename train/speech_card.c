/*
 * speech_card.c — reading and re-evaluating a speech model card's subset_wer keys (see speech_card.h). Keys of the
 * same split and budget share one evaluation (greedy and the beam come from the same logits).
 */
#include "train/speech_card.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acm.h"
#include "train/speech_eval.h"

void acmt_card_key_name(const char *split, int beam, double beta, char *out, size_t cap) {
    char dec[16], bud[32] = "";
    if (beam) snprintf(dec, sizeof dec, "beam%d", beam);
    else snprintf(dec, sizeof dec, "greedy");
    if (beta > 0) snprintf(bud, sizeof bud, "_cap_%g", beta);
    snprintf(out, cap, "subset_wer_%s_%s%s", split, dec, bud);
}

/* A number that is the whole of s. */
static int whole_number(const char *s, double *v) {
    char *e;
    *v = strtod(s, &e);
    return e != s && !*e && isfinite(*v) ? 0 : -1;
}

/* Parses "subset_wer_SPLIT_DECODER[_cap_BETA]: X" (line without its newline) into k. Returns 0 or -1 with why. */
static int parse_key(char *line, acmt_card_key *k, char *why, size_t wlen) {
    char *colon = strchr(line, ':');
    if (!colon) return snprintf(why, wlen, "'%.200s' has no ':'", line), -1;
    *colon = 0;
    if (strlen(line) >= sizeof k->key) return snprintf(why, wlen, "key '%.40s...' is too long", line), -1;
    snprintf(k->key, sizeof k->key, "%.95s", line);
    char *val = colon + 1;
    while (*val == ' ') val++;
    size_t vl = strlen(val);
    while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\r')) val[--vl] = 0;
    if (whole_number(val, &k->want) || k->want < 0)
        return snprintf(why, wlen, "%s: '%.40s' is not a WER in percent", k->key, val), -1;
    char name[96], *part[8], *sv = NULL;
    int np = 0;
    snprintf(name, sizeof name, "%.95s", line);
    for (char *t = strtok_r(name, "_", &sv); t && np < 8; t = strtok_r(NULL, "_", &sv)) part[np++] = t;
    const char *form = "subset_wer_SPLIT_DECODER or subset_wer_SPLIT_DECODER_cap_BETA (SPLIT test-seen or "
                       "test-unseen, DECODER greedy or beamN)";
    if ((np != 4 && np != 6) || strcmp(part[0], "subset") || strcmp(part[1], "wer") ||
        (strcmp(part[2], "test-seen") && strcmp(part[2], "test-unseen")))
        return snprintf(why, wlen, "key %s is not %s", k->key, form), -1;
    snprintf(k->split, sizeof k->split, "%s", part[2]);
    int used = 0;
    if (!strcmp(part[3], "greedy")) k->beam = 0;
    else if (sscanf(part[3], "beam%d%n", &k->beam, &used) != 1 || part[3][used] || k->beam < 1 || k->beam > 64)
        return snprintf(why, wlen, "key %s: decoder '%s' is not greedy or beamN (N 1..64)", k->key, part[3]), -1;
    k->beta = 0;
    if (np == 6 && (strcmp(part[4], "cap") || whole_number(part[5], &k->beta) || !(k->beta > 0 && k->beta <= 1)))
        return snprintf(why, wlen, "key %s: the budget must read _cap_BETA with BETA in (0, 1]", k->key), -1;
    return 0;
}

int acmt_card_read(const char *card, acmt_card_key *keys, int max, char *err, size_t errlen) {
    FILE *f = fopen(card, "r");
    if (!f) return snprintf(err, errlen, "%s: cannot read", card), -1;
    char line[512], why[384];
    int in_front = 0, n = 0, ln = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        ln++;
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "---", 3)) {
            if (in_front) break;
            in_front = 1;
            continue;
        }
        if (!in_front) break;
        if (strncmp(line, "subset_wer", 10)) continue;
        if (n == max) {
            snprintf(err, errlen, "%s: line %d: more than %d subset_wer keys", card, ln, max);
            rc = -1;
            break;
        }
        if (parse_key(line, &keys[n], why, sizeof why)) {
            snprintf(err, errlen, "%s: line %d: %s", card, ln, why);
            rc = -1;
            break;
        }
        for (int i = 0; i < n && !rc; i++)
            if (!strcmp(keys[i].key, keys[n].key)) {
                snprintf(err, errlen, "%s: line %d: key %s given twice", card, ln, keys[n].key);
                rc = -1;
            }
        if (rc) break;
        n++;
    }
    fclose(f);
    return rc ? -1 : n;
}

static void append(char *report, size_t cap, const char *fmt, ...) {
    size_t at = strlen(report);
    if (at + 1 >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(report + at, cap - at, fmt, ap);
    va_end(ap);
}

/* One evaluation: a split at a budget, greedy and (beam > 0) one beam width. */
typedef struct {
    char split[24];
    double beta;
    int beam;
    double greedy, beamed, budget_min, budget_max; /* WER percent; realised budget */
} card_eval;

int acmt_card_check(const char *card, const char *model, const char *corpus, int max_keys, char *report, size_t cap,
                    char *err, size_t errlen) {
    acmt_card_key keys[ACMT_CARD_MAX_KEYS];
    int n = acmt_card_read(card, keys, ACMT_CARD_MAX_KEYS, err, errlen);
    if (n < 0) return -1;
    if (max_keys > 0 && max_keys < n) n = max_keys;
    char msg[512];
    acm_model *m = acm_model_load(model, msg, sizeof msg);
    if (!m) return snprintf(err, errlen, "%s: %s", card, msg), -1;
    const int speech = acm_model_config(m)->arch == ACM_ARCH_SPEECH, has_acm = acm_model_config(m)->num_acms > 0;
    acm_model_free(m);
    if (!speech) return snprintf(err, errlen, "%s: %s is not a speech model", card, model), -1;
    for (int i = 0; i < n; i++)
        if ((keys[i].beta > 0) != has_acm)
            return snprintf(err, errlen, "%s: key %s: %s", card, keys[i].key,
                            has_acm ? "the model has ACM modules: the key needs _cap_BETA"
                                    : "a static model has no budget: no _cap_BETA"),
                   -1;
    card_eval ev[ACMT_CARD_MAX_KEYS];
    int nev = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        const acmt_card_key *k = &keys[i];
        card_eval *e = NULL;
        for (int j = 0; j < nev && !e; j++)
            if (!strcmp(ev[j].split, k->split) && ev[j].beta == k->beta && (!k->beam || ev[j].beam == k->beam))
                e = &ev[j];
        if (!e) { /* evaluate, with the beam of this key or of a later greedy key's sibling */
            int beam = k->beam;
            for (int j = i + 1; j < n && !beam; j++)
                if (!strcmp(keys[j].split, k->split) && keys[j].beta == k->beta) beam = keys[j].beam;
            acm_policy pol = acm_policy_default();
            pol.kind = ACM_POLICY_CAP;
            pol.beta = (float)k->beta;
            acmt_speech_eval_params p = {.corpus = corpus, .split = k->split, .beam = beam,
                                         .policy = has_acm ? &pol : NULL};
            acmt_speech_eval_result r;
            if (acmt_speech_eval(model, &p, &r, msg, sizeof msg))
                return snprintf(err, errlen, "%s: %s: %s", card, k->key, msg), -1;
            free(r.speakers);
            e = &ev[nev++];
            snprintf(e->split, sizeof e->split, "%s", k->split);
            e->beta = k->beta;
            e->beam = beam;
            e->greedy = 100.0 * acmt_wer_word_rate(&r.greedy);
            e->beamed = 100.0 * acmt_wer_word_rate(&r.beam);
            e->budget_min = r.budget_min;
            e->budget_max = r.budget_max;
        }
        const double got = k->beam ? e->beamed : e->greedy;
        const int wer_ok = fabs(got - k->want) <= ACMT_CARD_WER_TOL + 1e-9;
        const int budget_ok = !k->beta || (e->budget_min >= k->beta - ACMT_CARD_BUDGET_TOL - 1e-9 &&
                                           e->budget_max <= k->beta + 1e-9);
        append(report, cap, "%s: %s: WER %.2f%%, card says %.2f%% (±%.1f)%s", card, k->key, got, k->want,
               ACMT_CARD_WER_TOL, wer_ok ? "" : ": MISMATCH");
        if (k->beta)
            append(report, cap, "; realised budgets [%.4f, %.4f]%s", e->budget_min, e->budget_max,
                   budget_ok ? "" : ": OUTSIDE [beta - 0.02, beta]");
        append(report, cap, "\n");
        bad += !(wer_ok && budget_ok);
    }
    return bad;
}
