/*
 * worker.c — acm_worker: per-thread state for inference. All scratch is sized once, at creation, for max_batch items
 * with every learner on (llm.c's "size once, allocate once": a table of sizes, one allocation per memory, pointers into
 * it), so acm_worker_run allocates nothing; adaptive compute changes the work, never the buffers.
 *
 * Two memories (engine/backend.h): the backend's (activations, gathered rows, stacked gates: one be->alloc) and the
 * host's (per-item values, k per token, the permutation, CAP's ranks, the host copy of gate logits and of the
 * logits: one aligned_alloc). The CPU backend's memory is host memory, and its worker has no host copies (their size
 * is 0 there), so the CPU worker is what it was before the seam.
 */
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu/cpu.h"
#include "speech.h"
#include "util.h"
#include "vit.h"

struct acm_worker {
    const acm_model *m;
    acm__backend *be;
    int max_batch;
    acm__vit_acts acts;
    acm__block_acts blk; /* one record shared by every block */
    acm__acm_scratch acm;
    acm__speech_scratch *speech; /* speech models: their own scratch (speech.c), which also backs `acm` */
    float *logits_host;          /* [max_batch, K] the logits brought to the host (NULL on the CPU: acts.logits) */
    void *mem;                   /* backend memory */
    void *host;                  /* host memory */
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

void acm_threads_default(int cores, int latency, int *workers, int *cpu_threads) {
    if (cores < 1) cores = 1;
    *workers = latency ? 1 : cores;
    *cpu_threads = latency ? cores : 1;
}

/* Points ptrs[i] at consecutive 64-byte aligned pieces of mem, sizes[i] bytes each. */
static void point(char *mem, const size_t *sizes, void **const *ptrs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        *ptrs[i] = mem;
        mem += ALIGN64(sizes[i]);
    }
}
static size_t total_of(const size_t *sizes, size_t n) {
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += ALIGN64(sizes[i]);
    return total;
}

acm_worker *acm_worker_new(const acm_model *m, acm_worker_params p, char *err, size_t errlen) {
    if (p.max_batch < 1 || p.max_batch > 65536) {
        acm__fail(err, errlen, ACM_EINVAL, "max_batch %d outside [1, 65536]", p.max_batch);
        return NULL;
    }
    const int cores = acm_cpu_count();
    if (p.workers < 0 || p.workers > 4096 || p.cpu_threads < 0 || p.cpu_threads > 4096) {
        acm__fail(err, errlen, ACM_EINVAL, "workers %d / BLAS threads %d: negative or absurd", p.workers,
                  p.cpu_threads);
        return NULL;
    }
    const int cpu = !p.backend || !strcmp(p.backend, "cpu");
    const int nt = p.cpu_threads ? p.cpu_threads : acm_blas_threads(); /* CPU: this worker's threads */
    if (cpu) { /* the CPU backend's threads are OpenBLAS's for the GEMMs, the worker's pool's for the rest */
        const int nw = p.workers ? p.workers : 1;
        if ((int64_t)nw * nt > cores) {
            acm__fail(err, errlen, ACM_EINVAL, "%d workers x %d BLAS threads = %d exceeds the %d cores available", nw,
                      nt, nw * nt, cores);
            return NULL;
        }
        if (p.cpu_threads) acm_blas_set_threads(p.cpu_threads);
    }
    const acm_config *c = &m->cfg;
    if (c->arch == ACM_ARCH_SPEECH) {
        if (!cpu) {
            acm__fail(err, errlen, ACM_ECONFIG, "backend '%s': speech models run on the CPU backend only (their "
                      "streams keep their left context in host memory)", p.backend);
            return NULL;
        }
        const int64_t mt = p.max_tokens ? p.max_tokens : (int64_t)p.max_batch * (c->chunk > 250 ? c->chunk : 250);
        acm_worker *w = calloc(1, sizeof *w);
        if (!w) {
            acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
            return NULL;
        }
        w->m = m;
        w->be = acm__backend_cpu();
        w->max_batch = p.max_batch;
        w->acm.be = w->be;
        w->speech = acm__speech_scratch_new(m, p.max_batch, mt > (1 << 24) ? -1 : (int)mt, &w->acm, err, errlen);
        if (!w->speech) {
            free(w);
            return NULL;
        }
        return w;
    }
    acm__backend *be = cpu ? acm__backend_cpu_new(nt) : acm__backend_open(p.backend, m, p.max_batch, err, errlen);
    if (!be) {
        if (cpu) acm__fail(err, errlen, ACM_ENOMEM, "CPU backend: out of memory or no thread for its pool");
        return NULL;
    }
    const size_t B = (size_t)p.max_batch, T = (size_t)c->tokens, D = (size_t)c->dim;
    const size_t BT = B * T, PP = (size_t)c->feat_chans * c->patch_size * c->patch_size, K = (size_t)c->num_classes;
    size_t stem_col = 0, stem_map = 0; /* the largest layer's rows and output, per item */
    for (int i = 0, side = c->image_size, ci = c->in_chans; i < c->stem_depth; ci = c->stem_chans[i++]) {
        side = (side - 1) / c->stem_stride[i] + 1;
        size_t hw = (size_t)side * side;
        if (hw * ci * 9 > stem_col) stem_col = hw * ci * 9;
        if (hw * c->stem_chans[i] > stem_map) stem_map = hw * c->stem_chans[i];
    }
    size_t hid = (size_t)(c->mlp_hidden > m->max_hidden ? c->mlp_hidden : m->max_hidden);
    size_t nmax = 1;
    for (int i = 0; i < c->num_acms; i++)
        if ((size_t)m->acms[i]->info.n > nmax) nmax = (size_t)m->acms[i]->info.n;
    size_t cmax = (size_t)(m->max_choices > 1 ? m->max_choices : 1), gm = (size_t)(m->gate_mult > 1 ? 2 : 1);
    const size_t gate_bytes = BT * (3 * gm + 1) * cmax * 4, own = !cpu; /* own: host copies of backend buffers */
    acm_worker *w = calloc(1, sizeof *w);
    if (!w) {
        acm__backend_close(be);
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory");
        return NULL;
    }
    /* the size tables: byte sizes of every buffer, in the order of the pointers below */
    const size_t be_sizes[] = {
        B * (size_t)c->num_patches * PP * 4, /* patches [B*Np, PP] */
        BT * D * 4,      /* x (x0 = x1 = x2) */
        BT * D * 4,      /* ln (ln1 = ln2) */
        BT * 3 * D * 4,  /* qkv */
        B * (size_t)c->heads * T * T * 4, /* att */
        BT * D * 4,      /* attn_y */
        BT * hid * 4,    /* fc1 = gelu */
        B * D * 4,       /* lnf */
        B * K * 4,       /* logits */
        gate_bytes,      /* gate: stacked q|k|v raw logits (FiLM: A|B each), then one module's */
        own * BT * 4,    /* perm_be */
        BT * D * 4,      /* xg */
        BT * hid * 4,    /* hid */
        BT * D * 4,      /* yg */
        (size_t)c->depth * 3 * gm * cmax * D * 4,          /* qkv_gate_w */
        (size_t)c->depth * 3 * gm * cmax * 4,              /* qkv_gate_b */
        (gm > 1) * (size_t)c->depth * 3 * cmax * D * 4,    /* qkv_fold_w (FiLM only; else qkv_gate_w) */
        (gm > 1) * (size_t)c->depth * 3 * cmax * 4,        /* qkv_fold_b */
        B * stem_col * 4, /* stem_col (every layer) */
        B * stem_map * 4, /* stem_pre = stem_act (every layer) */
    };
    void **const be_ptrs[] = {
        (void **)&w->acts.patches, (void **)&w->acts.x0, (void **)&w->blk.ln1, (void **)&w->blk.qkv,
        (void **)&w->blk.att, (void **)&w->blk.attn_y, (void **)&w->blk.fc1, (void **)&w->acts.lnf,
        (void **)&w->acts.logits, (void **)&w->acm.gate, (void **)&w->acm.perm_be, (void **)&w->acm.xg,
        (void **)&w->acm.hid, (void **)&w->acm.yg, (void **)&w->acm.qkv_gate_w, (void **)&w->acm.qkv_gate_b,
        (void **)&w->acm.qkv_fold_w, (void **)&w->acm.qkv_fold_b, (void **)&w->acts.stem_col[0],
        (void **)&w->acts.stem_pre[0],
    };
    const size_t host_sizes[] = {
        3 * BT,          /* k (q, k, v) */
        BT * 4,          /* perm */
        T * nmax * 8,    /* cap_gain */
        T * nmax * 4,    /* cap_idx */
        (hid + (size_t)m->max_width) * 8, /* ref (REFERENCE mode, double) */
        B * 4,           /* lambda */
        B * 4,           /* gbeta */
        B * 8,           /* flops_acm */
        B * 8,           /* flops_learn */
        own * gate_bytes, /* gate_host */
        own * B * K * 4, /* logits_host */
    };
    void **const host_ptrs[] = {
        (void **)&w->acm.k, (void **)&w->acm.perm, (void **)&w->acm.cap_gain, (void **)&w->acm.cap_idx,
        (void **)&w->acm.ref, (void **)&w->acts.lambda, (void **)&w->acts.gbeta, (void **)&w->acts.flops_acm,
        (void **)&w->acts.flops_learn, (void **)&w->acm.gate_host, (void **)&w->logits_host,
    };
    const size_t nb = sizeof be_sizes / sizeof *be_sizes, nh = sizeof host_sizes / sizeof *host_sizes;
    ACM_ASSERT(sizeof be_ptrs / sizeof *be_ptrs == nb && sizeof host_ptrs / sizeof *host_ptrs == nh);
    const size_t be_total = total_of(be_sizes, nb), host_total = total_of(host_sizes, nh);
    char *mem = be->alloc(be, be_total), *host = aligned_alloc(64, host_total);
    if (!mem || !host) {
        if (mem) be->free(be, mem);
        free(host);
        acm__backend_close(be);
        free(w);
        acm__fail(err, errlen, ACM_ENOMEM, "out of memory (%zu bytes of %s scratch for %d items)",
                  mem ? host_total : be_total, mem ? "host" : be->name, p.max_batch);
        return NULL;
    }
    memset(host, 0, host_total);
    w->m = m;
    w->be = be;
    w->max_batch = p.max_batch;
    w->mem = mem;
    w->host = host;
    point(mem, be_sizes, be_ptrs, nb);
    point(host, host_sizes, host_ptrs, nh);
    if (!own) { /* the CPU reads its own buffers: no copies */
        w->acm.perm_be = NULL;
        w->acm.gate_host = NULL;
        w->logits_host = NULL;
    }
    w->acm.be = be;
    if (gm == 1) { /* without FiLM the folded gates are the gates */
        w->acm.qkv_fold_w = w->acm.qkv_gate_w;
        w->acm.qkv_fold_b = w->acm.qkv_gate_b;
    }
    acm__acm_scratch_fill(&w->acm, m);
    /* inference runs the residual stream, LayerNorm output and GELU in place */
    w->blk.x1 = w->blk.x2 = w->acts.x0;
    w->blk.ln2 = w->blk.ln1;
    w->blk.gelu = w->blk.fc1;
    for (int i = 0; i < c->stem_depth; i++) {
        w->acts.stem_col[i] = w->acts.stem_col[0];
        w->acts.stem_pre[i] = w->acts.stem_act[i] = w->acts.stem_pre[0];
    }
    w->acts.blk = &w->blk;
    w->acts.blk_shared = 1;
    if (be->sync(be, err, errlen)) {
        acm_worker_free(w);
        return NULL;
    }
    return w;
}

const char *acm_worker_backend(const acm_worker *w) { return w->be->name; }

acm__acm_scratch *acm__worker_scratch(acm_worker *w) { return &w->acm; }
acm__speech_scratch *acm__worker_speech(acm_worker *w) { return w->speech; }

void acm_worker_free(acm_worker *w) {
    if (!w) return;
    acm__speech_scratch_free(w->speech);
    if (w->mem) w->be->free(w->be, w->mem);
    free(w->host);
    acm__backend_close(w->be);
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
    const float *logits = w->be->host_view(w->be, w->logits_host, w->acts.logits, sizeof(float) * (size_t)n * K);
    int src = w->be->sync(w->be, rc ? NULL : err, errlen);
    if (src) return src;
    for (int b = 0; b < n; b++) {
        memcpy(results[b].logits, logits + (int64_t)b * K, sizeof(float) * (size_t)K);
        if (isnan(results[b].budget)) /* its gate failed (vit.c): no answer */
            for (int k = 0; k < K; k++) results[b].logits[k] = NAN;
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
