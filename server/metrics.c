/*
 * metrics.c — Prometheus text exposition (version 0.0.4) for the families of ACMD_METRICS (acmd.h).
 * Every series is created at start-up from fixed label sets (routes x methods x codes, models x outcomes, ...), so a
 * scrape before the first request already shows all of them at 0. Values in base units (seconds, FLOPs).
 * Only the I/O thread touches this: no locks. A series looked up with labels outside the fixed sets is created on the
 * fly (it cannot happen by construction; the fallback keeps a mistake visible instead of dropping the sample).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acmd.h"
#include "cpu/cpu.h"
#include "jsonw.h"

typedef struct {
    char labels[256];
    double v;       /* counter, gauge */
    double *counts; /* histogram: [nb] cumulative at render time; stored per bucket (non-cumulative) */
    double sum;
    uint64_t count;
} met__series;

typedef struct {
    const char *name, *type, *help;
    const double *buckets;
    int nb;
    met__series *s;
    int n, cap;
} met__family;

struct acmd_metrics {
    met__family f[ACMD_M_COUNT];
};

static const double met__secs[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
static const double met__batch[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double met__ratio[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1};
/* the phases of a request: from tens of microseconds (a hand-over, a send) to the queue's seconds */
static const double met__phase[] = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5};

/* Fixed label sets. */
static const int met__codes[] = {200, 400, 401, 404, 405, 408, 413, 415, 429, 499, 500, 503, 504};
static const char *const met__outcomes[] = {"success", "failure", "rejected", "timeout", "cancelled"};
static const char *const met__sources[] = {"default", "header", "parameter", "deadline"};
static const char *const met__phases[] = {"admission", "queue", "compute"}; /* ACMD_MISS_* */

void acmd_label(char *buf, size_t n, const char *key, const char *value) {
    size_t o = strlen(buf);
    if (o + 1 >= n) return;
    if (o) buf[o++] = ',';
    o += acmd_copy(buf + o, n - o, key);
    if (o + 1 < n) buf[o++] = '=';
    if (o + 1 < n) buf[o++] = '"';
    for (const char *p = value; *p && o + 3 < n; p++) {
        if (*p == '\\' || *p == '"') buf[o++] = '\\', buf[o++] = *p;
        else if (*p == '\n') buf[o++] = '\\', buf[o++] = 'n';
        else buf[o++] = *p;
    }
    if (o + 1 < n) buf[o++] = '"';
    buf[o < n ? o : n - 1] = 0;
}

static met__series *met__get(acmd_metrics *m, acmd_metric_id id, const char *labels) {
    met__family *f = &m->f[id];
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->s[i].labels, labels) == 0) return &f->s[i];
    if (f->n == f->cap) {
        int cap = f->cap ? 2 * f->cap : 16;
        met__series *s = realloc(f->s, sizeof *s * (size_t)cap);
        if (!s) return NULL;
        f->s = s, f->cap = cap;
    }
    met__series *s = &f->s[f->n];
    memset(s, 0, sizeof *s);
    acmd_copy(s->labels, sizeof s->labels, labels);
    if (f->nb && !(s->counts = calloc((size_t)f->nb, sizeof *s->counts))) return NULL;
    f->n++;
    return s;
}

void acmd_metric_add(acmd_metrics *m, acmd_metric_id id, const char *labels, double v) {
    met__series *s = met__get(m, id, labels);
    if (s) s->v += v;
}
void acmd_metric_set(acmd_metrics *m, acmd_metric_id id, const char *labels, double v) {
    met__series *s = met__get(m, id, labels);
    if (s) s->v = v;
}
void acmd_metric_observe(acmd_metrics *m, acmd_metric_id id, const char *labels, double v) {
    met__series *s = met__get(m, id, labels);
    if (!s) return;
    const met__family *f = &m->f[id];
    for (int b = 0; b < f->nb; b++)
        if (v <= f->buckets[b]) {
            s->counts[b] += 1;
            break;
        }
    s->sum += v;
    s->count++;
}

acmd_metrics *acmd_metrics_new(const acmd_server *srv) {
    acmd_metrics *m = calloc(1, sizeof *m);
    if (!m) return NULL;
    static const struct {
        const char *name, *type, *help;
    } defs[] = {
#define X(id, name, type, help) {name, #type, help},
        ACMD_METRICS(X)
#undef X
    };
    for (int i = 0; i < ACMD_M_COUNT; i++) {
        m->f[i].name = defs[i].name, m->f[i].type = defs[i].type, m->f[i].help = defs[i].help;
        if (strcmp(defs[i].type, "histogram") == 0) {
            m->f[i].buckets = i == ACMD_M_BATCH_SIZE ? met__batch : i == ACMD_M_BUDGET_RATIO || i == ACMD_M_KEY_BUDGET || i == ACMD_M_ASR_BUDGET ? met__ratio
                              : i == ACMD_M_PHASE_DURATION ? met__phase : met__secs;
            m->f[i].nb = i == ACMD_M_BATCH_SIZE ? (int)(sizeof met__batch / sizeof met__batch[0])
                         : i == ACMD_M_BUDGET_RATIO || i == ACMD_M_KEY_BUDGET || i == ACMD_M_ASR_BUDGET ? (int)(sizeof met__ratio / sizeof met__ratio[0])
                         : i == ACMD_M_PHASE_DURATION ? (int)(sizeof met__phase / sizeof met__phase[0])
                                                      : (int)(sizeof met__secs / sizeof met__secs[0]);
        }
    }
    char l[256];
    for (int r = 0; r < ACMD_ROUTE_COUNT; r++)
        for (size_t c = 0; c < sizeof met__codes / sizeof met__codes[0]; c++) {
            char code[8];
            snprintf(code, sizeof code, "%d", met__codes[c]);
            l[0] = 0;
            acmd_label(l, sizeof l, "route", acmd_route_name((acmd_route)r));
            acmd_label(l, sizeof l, "method", acmd_route_method((acmd_route)r));
            acmd_label(l, sizeof l, "code", code);
            acmd_metric_add(m, ACMD_M_HTTP_REQUESTS, l, 0);
        }
    for (int c = 0; c < 2; c++) { /* unknown paths and methods */
        l[0] = 0;
        acmd_label(l, sizeof l, "route", "unknown");
        acmd_label(l, sizeof l, "method", "other");
        acmd_label(l, sizeof l, "code", c ? "405" : "404");
        acmd_metric_add(m, ACMD_M_HTTP_REQUESTS, l, 0);
    }
    for (int i = 0; i < srv->n_models; i++) {
        const acmd_model *md = &srv->models[i];
        for (size_t o = 0; o < sizeof met__outcomes / sizeof *met__outcomes; o++) {
            l[0] = 0;
            acmd_label(l, sizeof l, "model", md->name);
            acmd_label(l, sizeof l, "version", md->version);
            acmd_label(l, sizeof l, "outcome", met__outcomes[o]);
            acmd_metric_add(m, ACMD_M_INFER_REQUESTS, l, 0);
        }
        for (int e = 0; e < ACMD_E_COUNT; e++) { /* the reasons of the error table (acmd.h ACMD_ERRORS) */
            const char *reason = acmd_err_reason((acmd_err)e);
            int seen = !reason;
            for (int k = 0; k < e && !seen; k++) seen = acmd_err_reason((acmd_err)k) && !strcmp(acmd_err_reason((acmd_err)k), reason);
            if (seen) continue;
            l[0] = 0;
            acmd_label(l, sizeof l, "model", md->name);
            acmd_label(l, sizeof l, "reason", reason);
            acmd_metric_add(m, ACMD_M_REJECTIONS, l, 0);
        }
        l[0] = 0;
        acmd_label(l, sizeof l, "model", md->name);
        met__get(m, ACMD_M_REQ_DURATION, l);
        met__get(m, ACMD_M_QUEUE_DURATION, l);
        met__get(m, ACMD_M_COMPUTE_DURATION, l);
        met__get(m, ACMD_M_BATCH_SIZE, l);
        for (int p = 0; p < ACMD_PATH_PHASES; p++) {
            char lp[256];
            memcpy(lp, l, sizeof lp);
            acmd_label(lp, sizeof lp, "phase", acmd_path_phases[p]);
            met__get(m, ACMD_M_PHASE_DURATION, lp);
        }
        acmd_metric_set(m, ACMD_M_QUEUE_DEPTH, l, 0);
        acmd_metric_add(m, ACMD_M_FLOPS, l, 0);
        acmd_metric_add(m, ACMD_M_FLOPS_DENSE, l, 0);
        if (md->speech) { /* transcription series of a speech model */
            acmd_metric_add(m, ACMD_M_ASR_AUDIO_SECONDS, l, 0);
            acmd_metric_add(m, ACMD_M_ASR_COMPUTE_SECONDS, l, 0);
            met__get(m, ACMD_M_ASR_BUDGET, l);
            acmd_metric_set(m, ACMD_M_ASR_ACTIVE_STREAMS, l, 0);
            acmd_metric_add(m, ACMD_M_ASR_SEGMENTS, l, 0);
            acmd_metric_add(m, ACMD_M_ASR_STREAMS_WARNED, l, 0);
            {
                char lr[256];
                memcpy(lr, l, sizeof lr);
                acmd_label(lr, sizeof lr, "reason", "behind_real_time");
                acmd_metric_add(m, ACMD_M_ASR_STREAMS_DROPPED, lr, 0);
            }
            met__get(m, ACMD_M_ASR_CHUNK_LATENCY, l);
        }
    }
    for (size_t i = 0; i < sizeof met__sources / sizeof *met__sources; i++) {
        l[0] = 0;
        acmd_label(l, sizeof l, "source", met__sources[i]);
        met__get(m, ACMD_M_BUDGET_RATIO, l);
    }
    for (size_t i = 0; i < sizeof met__phases / sizeof *met__phases; i++) {
        l[0] = 0;
        acmd_label(l, sizeof l, "phase", met__phases[i]);
        acmd_metric_add(m, ACMD_M_DEADLINE_MISSES, l, 0);
    }
    acmd_metric_set(m, ACMD_M_CONNECTIONS, "", 0);
    acmd_metric_set(m, ACMD_M_BUFFERED, "", 0);
    l[0] = 0;
    acmd_label(l, sizeof l, "version", ACMD_VERSION);
    acmd_label(l, sizeof l, "blas_core", acm_blas_core());
    acmd_label(l, sizeof l, "backend", srv->cfg.backend);
    acmd_metric_set(m, ACMD_M_BUILD_INFO, l, 1);
    return m;
}

void acmd_metrics_key(acmd_metrics *m, const char *name) {
    char l[256] = "", code[8];
    acmd_label(l, sizeof l, "key", name);
    for (size_t c = 0; c < sizeof met__codes / sizeof *met__codes; c++) {
        char lc[256];
        memcpy(lc, l, sizeof lc);
        snprintf(code, sizeof code, "%d", met__codes[c]);
        acmd_label(lc, sizeof lc, "code", code);
        acmd_metric_add(m, ACMD_M_KEY_REQUESTS, lc, 0);
    }
    acmd_metric_add(m, ACMD_M_KEY_FLOPS, l, 0);
    acmd_metric_add(m, ACMD_M_KEY_FLOPS_DENSE, l, 0);
    met__get(m, ACMD_M_KEY_BUDGET, l);
}

void acmd_metrics_free(acmd_metrics *m) {
    if (!m) return;
    for (int i = 0; i < ACMD_M_COUNT; i++) {
        for (int k = 0; k < m->f[i].n; k++) free(m->f[i].s[k].counts);
        free(m->f[i].s);
    }
    free(m);
}

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} met__buf;

static void met__printf(met__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void met__printf(met__buf *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p + b->n, b->cap - b->n, fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->oom = 1;
            return;
        }
        if ((size_t)k < b->cap - b->n) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)k;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p, b->cap = cap;
    }
}

/* A float as Prometheus wants it: shortest round-trip form; integers without exponent. */
static void met__num(char *s, size_t n, double v) {
    if (v == (double)(int64_t)v && v < 9e15 && v > -9e15) snprintf(s, n, "%lld", (long long)v);
    else {
        snprintf(s, n, "%.15g", v);
        if (strtod(s, NULL) != v) snprintf(s, n, "%.17g", v);
    }
}

char *acmd_metrics_render(const acmd_metrics *m, size_t *len) {
    met__buf b = {malloc(16384), 0, 16384, 0};
    if (!b.p) return NULL;
    char num[64], le[32];
    for (int i = 0; i < ACMD_M_COUNT; i++) {
        const met__family *f = &m->f[i];
        met__printf(&b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (int k = 0; k < f->n; k++) {
            const met__series *s = &f->s[k];
            const char *sep = s->labels[0] ? "," : "";
            if (!f->nb) {
                met__num(num, sizeof num, s->v);
                if (s->labels[0]) met__printf(&b, "%s{%s} %s\n", f->name, s->labels, num);
                else met__printf(&b, "%s %s\n", f->name, num);
                continue;
            }
            double cum = 0;
            for (int q = 0; q < f->nb; q++) {
                cum += s->counts[q];
                met__num(le, sizeof le, f->buckets[q]);
                met__num(num, sizeof num, cum);
                met__printf(&b, "%s_bucket{%s%sle=\"%s\"} %s\n", f->name, s->labels, sep, le, num);
            }
            met__printf(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, s->labels, sep, (unsigned long long)s->count);
            met__num(num, sizeof num, s->sum);
            if (s->labels[0]) {
                met__printf(&b, "%s_sum{%s} %s\n", f->name, s->labels, num);
                met__printf(&b, "%s_count{%s} %llu\n", f->name, s->labels, (unsigned long long)s->count);
            } else {
                met__printf(&b, "%s_sum %s\n%s_count %llu\n", f->name, num, f->name, (unsigned long long)s->count);
            }
        }
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.n;
    return b.p;
}
