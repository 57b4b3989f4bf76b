/*
 * worker.c — acm_worker: per-thread state for inference. All scratch is sized once, at creation, for max_batch items
 * with every learner on (llm.c's "size once, allocate once": a table of sizes, one allocation, pointers into it), so
 * acm_worker_run allocates nothing; adaptive compute changes the work, never the buffers.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "speech.h"
#include "util.h"
#include "vit.h"

struct acm_worker {
    const acm_model *m;
    int max_batch;
    acm__vit_acts acts;
    acm__block_acts blk; /* one record shared by every block */
    acm__acm_scratch acm;
    acm__speech_scratch *speech; /* speech models: their own scratch (speech.c), which also backs `acm` */
    void *mem;
};

acm_worker_params acm_worker_default_params(void) {
    acm_worker_params p = {.max_batch = 8};
    return p;
}

#define ALIGN64(n) (((n) + 63) & ~(size_t)63)

int acm_cpu_count(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void acm_threads_default(int cores, int latency, int *workers, int *blas_threads) {
    if (cores < 1) cores = 1;
    *workers = latency ? 1 : cores;
    *blas_threads = latency ? cores : 1;
}

acm_worker *acm_worker_new(const acm_model *m, acm_worker_params p, char *err, size_t errlen) {
    if (p.max_batch < 1 || p.max_batch > 65536) {
        acm__fail(err, errlen, ACM_EINVAL, "max_batch %d outside [1, 65536]", p.max_batch);
        return NULL;
    }
    const int cores = acm_cpu_count();
    if (p.workers < 0 || p.workers > 4096 || p.blas_threads < 0 || p.blas_threads > 4096) {
        acm__fail(err, errlen, ACM_EINVAL, "workers %d / BLAS threads %d: negative or absurd", p.workers,
                  p.blas_threads);
        return NULL;
    }
    const int nw = p.workers ? p.workers : 1, nt = p.blas_threads ? p.blas_threads : acm_blas_threads();
    if ((int64_t)nw * nt > cores) {
        acm__fail(err, errlen, ACM_EINVAL, "%d workers x %d BLAS threads = %d exceeds the %d cores available", nw, nt,
                  nw * nt, cores);
        return NULL;
    }
    if (p.blas_threads) acm_blas_set_threads(p.blas_threads);
    const acm_config *c = &m->cfg;
    if (c->arch == ACM_ARCH_SPEECH) {
        const int64_t mt = p.max_tokens ? p.max_tokens : (int64_t)p.max_batch * (c->chunk > 250 ? c->chunk : 250);
        acm_worker *w = calloc(1, sizeof *w);
        if (!w) {
            acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
            return NULL;
        }
        w->m = m;
        w->max_batch = p.max_batch;
        w->speech = acm__speech_scratch_new(m, p.max_batch, mt > (1 << 24) ? -1 : (int)mt, &w->acm, err, errlen);
        if (!w->speech) {
            free(w);
            return NULL;
        }
        return w;
    }
    const size_t B = (size_t)p.max_batch, T = (size_t)c->tokens, D = (size_t)c->dim;
    const size_t BT = B * T, PP = (size_t)c->in_chans * c->patch_size * c->patch_size;
    size_t hid = (size_t)(c->mlp_hidden > m->max_hidden ? c->mlp_hidden : m->max_hidden);
    size_t nmax = 1;
    for (int i = 0; i < c->num_acms; i++)
        if ((size_t)m->acms[i]->info.n > nmax) nmax = (size_t)m->acms[i]->info.n;
    size_t cmax = (size_t)(m->max_choices > 1 ? m->max_choices : 1), gm = (size_t)(m->gate_mult > 1 ? 2 : 1);
    /* the size table: byte sizes of every buffer, in the order of the pointers below */
    size_t sizes[] = {
        B * (size_t)c->num_patches * PP * 4, /* patches [B*Np, PP] */
        BT * D * 4,      /* x (x0 = x1 = x2) */
        BT * D * 4,      /* ln (ln1 = ln2) */
        BT * 3 * D * 4,  /* qkv */
        B * (size_t)c->heads * T * T * 4, /* att */
        BT * D * 4,      /* attn_y */
        BT * hid * 4,    /* fc1 = gelu */
        B * D * 4,       /* lnf */
        B * (size_t)c->num_classes * 4, /* logits */
        BT * (3 * gm + 1) * cmax * 4, /* gate: stacked q|k|v raw logits (FiLM: A|B each), then one module's */
        3 * BT,          /* k (q, k, v) */
        BT * 4,          /* perm */
        BT * D * 4,      /* xg */
        BT * hid * 4,    /* hid */
        BT * D * 4,      /* yg */
        T * nmax * 8,    /* cap_gain */
        T * nmax * 4,    /* cap_idx */
        (hid + (size_t)m->max_width) * 8,                  /* ref (REFERENCE mode, double) */
        (size_t)c->depth * 3 * gm * cmax * D * 4,          /* qkv_gate_w */
        (size_t)c->depth * 3 * gm * cmax * 4,              /* qkv_gate_b */
        (gm > 1) * (size_t)c->depth * 3 * cmax * D * 4,    /* qkv_fold_w (FiLM only; else qkv_gate_w) */
        (gm > 1) * (size_t)c->depth * 3 * cmax * 4,        /* qkv_fold_b */
        B * 4,           /* lambda */
        B * 4,           /* gbeta */
        B * 8,           /* flops_acm */
        B * 8,           /* flops_learn */
    };
    size_t total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) total += ALIGN64(sizes[i]);
    acm_worker *w = calloc(1, sizeof *w);
    char *mem = w ? aligned_alloc(64, total) : NULL;
    if (!mem) {
        free(w);
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory (%zu bytes of scratch for %d items)", total, p.max_batch);
        return NULL;
    }
    memset(mem, 0, total);
    w->m = m;
    w->max_batch = p.max_batch;
    w->mem = mem;
    void **ptrs[] = {
        (void **)&w->acts.patches, (void **)&w->acts.x0, (void **)&w->blk.ln1, (void **)&w->blk.qkv,
        (void **)&w->blk.att, (void **)&w->blk.attn_y, (void **)&w->blk.fc1, (void **)&w->acts.lnf,
        (void **)&w->acts.logits, (void **)&w->acm.gate, (void **)&w->acm.k, (void **)&w->acm.perm,
        (void **)&w->acm.xg, (void **)&w->acm.hid, (void **)&w->acm.yg, (void **)&w->acm.cap_gain,
        (void **)&w->acm.cap_idx, (void **)&w->acm.ref, (void **)&w->acm.qkv_gate_w, (void **)&w->acm.qkv_gate_b,
        (void **)&w->acm.qkv_fold_w, (void **)&w->acm.qkv_fold_b, (void **)&w->acts.lambda, (void **)&w->acts.gbeta,
        (void **)&w->acts.flops_acm, (void **)&w->acts.flops_learn,
    };
    ACM_ASSERT(sizeof ptrs / sizeof *ptrs == sizeof sizes / sizeof *sizes);
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        *ptrs[i] = mem;
        mem += ALIGN64(sizes[i]);
    }
    if (gm == 1) { /* without FiLM the folded gates are the gates */
        w->acm.qkv_fold_w = w->acm.qkv_gate_w;
        w->acm.qkv_fold_b = w->acm.qkv_gate_b;
    }
    acm__acm_scratch_fill(&w->acm, m);
    /* inference runs the residual stream, LayerNorm output and GELU in place */
    w->blk.x1 = w->blk.x2 = w->acts.x0;
    w->blk.ln2 = w->blk.ln1;
    w->blk.gelu = w->blk.fc1;
    w->acts.blk = &w->blk;
    w->acts.blk_shared = 1;
    return w;
}

acm__acm_scratch *acm__worker_scratch(acm_worker *w) { return &w->acm; }
acm__speech_scratch *acm__worker_speech(acm_worker *w) { return w->speech; }

void acm_worker_free(acm_worker *w) {
    if (!w) return;
    acm__speech_scratch_free(w->speech);
    free(w->mem);
    free(w);
}

int acm_worker_run(acm_worker *w, const acm_item *items, acm_result *results, int n, char *err, size_t errlen) {
    if (n < 1 || n > w->max_batch)
        return acm__fail(err, errlen, ACM_EINVAL, "batch of %d items outside [1, %d]", n, w->max_batch);
    for (int b = 0; b < n; b++)
        if (!results[b].logits) return acm__fail(err, errlen, ACM_EINVAL, "item %d: no logits buffer", b);
    if (w->speech) return acm__speech_run(w->m, w->speech, &w->acm, items, results, n, err, errlen);
    for (int b = 0; b < n; b++)
        if (items[b].kind != ACM_ITEM_IMAGE)
            return acm__fail(err, errlen, ACM_EINVAL, "item %d: an image model needs an image (kind IMAGE)", b);
    int rc = acm__vit_forward(w->m, &w->acts, &w->acm, items, results, n, err, errlen);
    if (rc && rc != ACM_ENUMERIC) return rc; /* ACM_ENUMERIC: the failed items' logits are NaN, the others valid */
    const int K = w->m->cfg.num_classes;
    for (int b = 0; b < n; b++) {
        memcpy(results[b].logits, w->acts.logits + (int64_t)b * K, sizeof(float) * (size_t)K);
        results[b].tokens = w->m->cfg.tokens;
    }
    return rc;
}

int acm_worker_run_streams(acm_worker *w, acm_stream *const *streams, const acm_policy *policies,
                           acm_result *results, int n, char *err, size_t errlen) {
    if (!w->speech) return acm__fail(err, errlen, ACM_EINVAL, "streams need a speech model");
    if (n < 1 || n > w->max_batch)
        return acm__fail(err, errlen, ACM_EINVAL, "batch of %d streams outside [1, %d]", n, w->max_batch);
    return acm__speech_run_streams(w->m, w->speech, &w->acm, streams, policies, results, n, err, errlen);
}
