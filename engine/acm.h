/*
 * acm.h — the public interface of libacm, the Adaptive Computation Module inference engine.
 *
 * What it is: a loader for ACM vision transformers and ACM speech encoders stored as safetensors (see
 * engine/model.h for the file format, field by field), and a forward pass that runs a batch of items (images, or spans of 16 kHz audio
 * of any length), each under its own budget policy, and reports for every item its logits, the FLOPs it executed, the
 * FLOPs the dense model would have executed on the same input, the budget it realised and (on request) the number of
 * learners every token ran in every ACM module. Speech models also run streams: per-stream state fed PCM of any
 * size, whose ready chunks many streams run together (docs/DESIGN.md §4b).
 *
 * What it is not: no HTTP, no image decoding (proto/ does that), no training (train/ composes the same kernels).
 *
 * Threading: an acm_model is immutable after acm_model_load() and may be shared by any number of threads.
 * An acm_worker belongs to one thread at a time; it owns all scratch memory, sized at creation for its largest batch
 * (speech: its largest number of tokens per call), so acm_worker_run() and acm_worker_run_streams() allocate nothing.
 *
 * Dimension letters used in shape comments throughout the engine:
 *   B items in a batch, T tokens per item (patches + class token; audio: one per 40 ms), D width, H heads, N learners
 *   of an ACM, C gate choices, K classes (audio: CTC classes, blank first).
 *
 * Errors: functions return 0 or a negative ACM_E* code and write a message into the caller's buffer; constructors
 * return NULL and do the same. Nothing here exits or prints.
 */
#ifndef ACM_H
#define ACM_H

#include <stddef.h>
#include <stdint.h>

#include "ctc.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ACM_FORMAT_VERSION 1

/* Error codes (negative returns). */
#define ACM_ERROR_LIST(X)                                   \
    X(ACM_EIO, -1, "i/o error")                             \
    X(ACM_EFORMAT, -2, "malformed model file")              \
    X(ACM_ECONFIG, -3, "unsupported model configuration")   \
    X(ACM_ENOMEM, -4, "out of memory")                      \
    X(ACM_EINVAL, -5, "invalid argument")                   \
    X(ACM_ENUMERIC, -6, "non-finite values in the model's computation")
enum {
#define X(name, val, str) name = val,
    ACM_ERROR_LIST(X)
#undef X
};
const char *acm_strerror(int code);

/* ---- model ------------------------------------------------------------------------------------------------------ */

typedef struct acm_model acm_model;

/* Kinds of module the engine can run at each position of a block. */
typedef enum {
    ACM_MOD_LINEAR = 0, /* static nn.Linear (q, k, v or o) */
    ACM_MOD_MLP = 1,    /* static fc1 -> GELU -> fc2 */
    ACM_MOD_ACM = 2,    /* N ordered learners + gate */
} acm_module_kind;

/* Positions of the modules of one block, in execution order. QKV is the fused static qkv projection. */
typedef enum { ACM_POS_Q = 0, ACM_POS_K, ACM_POS_V, ACM_POS_O, ACM_POS_MLP, ACM_POS_COUNT } acm_position;

typedef struct {
    acm_module_kind kind;
    int din, dout; /* input and output widths */
    int hidden;    /* MLP: hidden width; ACM: N*h; LINEAR: 0 */
    int n, h;      /* ACM: learners and the width of one learner */
    int kmin;      /* ACM: smallest allowed k (0 for MLP ACMs, 1 for projections) */
    int gelu;      /* ACM: 1 if learners use GELU (MLP ACMs), 0 for identity (projection ACMs) */
    int acm_index; /* ACM: index among the model's ACMs (row of the k map), else -1 */
    int film;      /* ACM: 1 if the gate is budget-conditioned (FiLM, model.h): its logits depend on beta */
    char name[64]; /* e.g. "blocks.3.mlp", "blocks.0.attn.q" */
} acm_module_info;

/* Most layers of a ViT's convolutional stem. */
#define ACM_MAX_STEM 4

/* Architectures (metadata "arch"). */
typedef enum { ACM_ARCH_VIT = 0, ACM_ARCH_SPEECH = 1 } acm_arch;

typedef struct {
    acm_arch arch;
    /* architecture (ViT: image_size .. in_chans; speech: 0) */
    int image_size, patch_size, in_chans;
    int dim, depth, heads, mlp_hidden, num_classes;
    float ln_eps;
    int fused_qkv_static; /* per block: handled internally; 1 if every block has a fused static qkv */
    /* ViT convolutional stem (metadata "stem"; 0 layers: none): layer i is a 3x3 convolution, padding 1, stride
     * stem_stride[i], to stem_chans[i] channels, plus bias, then GELU. The patch convolution reads its output. */
    int stem_depth;
    int stem_chans[ACM_MAX_STEM], stem_stride[ACM_MAX_STEM];
    int feat_chans, feat_size; /* the patch convolution's input: channels and side (in_chans, image_size w/o stem) */
    /* derived */
    int grid, num_patches, tokens; /* ViT: tokens = num_patches + 1 (class token); speech: tokens = chunk */
    int num_acms;                  /* ACM modules in the model */
    int film_gates;                /* ACMs whose gate is budget-conditioned (FiLM); 0 for an unconditioned model */
    float gate_beta;               /* the beta FiLM gates see under ARGMAX (budget.gate_beta; 0 without FiLM) */
    /* preprocessing: x_normalised = (x/255 - mean[c]) / std[c] */
    float mean[3], std[3];
    /* labels (num_classes strings, owned by the model) */
    const char *const *labels;
    /* budgets */
    float beta_min; /* smallest budget the model supports: budget.beta_min, never below beta_floor (its default);
                       acm_worker_run refuses MEAN and CAP budgets below it */
    float beta_floor; /* the budget an item spends when every ACM runs only its kmin learners (projections run one):
                         sum_l kmin_l p_l / sum_l N_l p_l, rounded up; 0 when every ACM is an MLP, 1 without ACMs */
    int mean_table_len; /* entries of the lambda(beta) table for ACM_POLICY_MEAN; 0 if absent */
    int cap_table_len;  /* rows of the per-module share table for ACM_POLICY_CAP; 0 if absent */
    int cap_order;      /* ACM_CAP_ORDER_GAIN or ACM_CAP_ORDER_LEVEL: the CAP allocation order (budget.cap_order) */
    /* speech (arch ACM_ARCH_SPEECH; 0 otherwise; engine/model.h): num_classes = 1 + strlen(alphabet), labels[0] = ""
     * (the CTC blank), labels[i] the i-th character */
    int sample_rate, n_mels, n_fft, win_length, hop_length; /* the log-mel front end (engine/logmel.h) */
    float fmin, fmax, log_floor;
    int stack;        /* frames per token (4: 40 ms) */
    int chunk;        /* C: tokens per chunk */
    int left_context; /* L: tokens before its chunk that a token sees */
    float rope_base;  /* rotary base (10000) */
} acm_config;

/* Loads and validates a model file. Returns NULL and a message naming the file, tensor or field on failure. */
acm_model *acm_model_load(const char *path, char *err, size_t errlen);
void acm_model_free(acm_model *m);

const acm_config *acm_model_config(const acm_model *m);
/* Module at (block, position); NULL when the position is not present (cannot happen for a valid ViT). */
const acm_module_info *acm_model_module(const acm_model *m, int block, acm_position pos);
/* The i-th ACM module (0 <= i < num_acms), in execution order. */
const acm_module_info *acm_model_acm(const acm_model *m, int i);
/* First 12 hex digits of the file's SHA-256 (NUL-terminated). */
const char *acm_model_version(const acm_model *m);
/* The model metadata JSON ("__metadata__"."acm"), verbatim. */
const char *acm_model_metadata(const acm_model *m);
int64_t acm_model_param_count(const acm_model *m);
/* FLOPs of one item through the dense (static) twin of the model; 2 FLOPs per multiply-add. */
double acm_model_flops_dense(const acm_model *m);
/* FLOPs of one learner for one token of ACM i; the denominator of budgets is sum_i N_i * p_i per token. */
double acm_model_learner_flops(const acm_model *m, int i);
/* Lambda(beta) table entry j (for acm-train info). */
void acm_model_mean_table(const acm_model *m, int j, float *beta, float *lambda);

/* ---- budget policies ---------------------------------------------------------------------------------------------
 * beta is the fraction of learner compute, in (0, 1]. See docs/DESIGN.md §4 and docs/METHOD.md §6.
 * Budget-conditioned gates (acm_config.film_gates > 0, engine/model.h): a FiLM gate's logits are (A + b B) z + c + b c'
 * for the budget b it is given. MEAN and CAP give every gate the item's policy beta (so calibration, which runs MEAN
 * with lambda_set, must set beta to the budget it calibrates); ARGMAX gives it the model's budget.gate_beta (the
 * phase-3 target it was trained at; folded into one C-row gate at load, so ARGMAX costs a plain gate); FIXED and
 * forced k use no gate decision. Unconditioned gates ignore beta.
 * The gate runs (and its FLOPs count) only for items whose k depends on it: not under FIXED, forced k, or MEAN
 * (without lambda_set) and CAP at beta >= 1. Gate logits that are not all finite (on input checked finite: the
 * computation overflowed) make acm_worker_run return ACM_ENUMERIC naming the module and item (see there).
 * beta_min (acm_config): acm_worker_run refuses (ACM_EINVAL, naming beta_min and the floor) a MEAN or CAP budget below
 * it instead of raising it, so that the caller knows what ran (acmd raises and reports it: proto/sla.h); MEAN with
 * lambda_set (calibration) is exempt, its beta only feeding FiLM gates.
 *   ARGMAX: k = kmin + argmax of the gate logits (the paper). beta ignored (FiLM gates see gate_beta).
 *   FIXED:  every token runs k = clamp(fixed_k, kmin, N) learners in every ACM.
 *   MEAN:   gate logits biased by -lambda(beta) * k * p_l / p_mean before the argmax; lambda from the model's table,
 *           linearly interpolated in beta, and outside the table the end segment's line continued (so the realised
 *           budget keeps rising above the last beta; not continued where lambda would rise). Controls the data-set
 *           mean, not each item.
 *   CAP:    exact per item: in every ACM l, learner units floor(s_l'(beta) * T * N) are handed out greedily, one
 *           learner at a time, to the token whose gate gives the highest probability of needing it (P(K > k_t),
 *           ranked as odds in double so that near-certain tokens do not tie); ties by lower token index. s_l(beta) is
 *           the model's calibrated share of module l (budget.cap table), or beta when the model has none; s_l' raises
 *           it to the module's floor kmin/N and takes the excess from the modules above their floors, in proportion
 *           to their room (docs/METHOD.md §6). Realised budget <= beta for every item whenever beta >= beta_floor.
 *           The order the units go out in is the model's (budget.cap_order, chosen by acm-train calibrate on
 *           held-out images; cap_order in acm_policy overrides it):
 *             GAIN   by P(K >= j) alone, so a token the gate is sure about gets all N learners while others get none
 *                    (the paper's reading of the gate: compute where it is needed);
 *             LEVEL  breadth first: every token's learner j before any token's learner j+1, the gate's P(K >= j)
 *                    ranking the tokens within a level. At beta = k/N every token runs k learners (the uniform
 *                    allocation); in between, the gate picks which tokens get the next learner. On the first
 *                    Fashion-MNIST model it beat GAIN by 4.8 points at beta 0.25 and 13.6 at 0.125
 *                    (docs/history/fmnist-vit-patch4-acm.md, "One model for every budget").
 *             RANDOM LEVEL with the tokens of a level ranked by a hash of their gate logits instead of by P(K >= j):
 *                    the same budget, gate-blind. Never a model's order: the control that measures what the gate's
 *                    ranking is worth (acm-train eval --cap-order random).
 */
typedef enum {
    ACM_CAP_ORDER_MODEL = 0,
    ACM_CAP_ORDER_GAIN = 1,
    ACM_CAP_ORDER_LEVEL = 2,
    ACM_CAP_ORDER_RANDOM = 3,
} acm_cap_order;
typedef enum { ACM_POLICY_ARGMAX = 0, ACM_POLICY_FIXED, ACM_POLICY_MEAN, ACM_POLICY_CAP } acm_policy_kind;

typedef struct {
    acm_policy_kind kind;
    float beta;  /* MEAN, CAP */
    int fixed_k; /* FIXED */
    int lambda_set; /* MEAN: 1 uses `lambda` as given instead of the model's lambda(beta) (calibration) */
    float lambda;
    acm_cap_order cap_order; /* CAP: ACM_CAP_ORDER_MODEL (0) follows the model; GAIN, LEVEL or RANDOM override it */
} acm_policy;

acm_policy acm_policy_default(void); /* ARGMAX */
const char *acm_policy_name(acm_policy_kind k);
/* Parses "argmax", "fixed", "mean", "cap"; returns -1 if unknown. */
int acm_policy_parse(const char *s);
/* "model", "gain", "level", "random" ("?" outside the enum); parse accepts the last three (-1 otherwise). */
const char *acm_cap_order_name(acm_cap_order o);
int acm_cap_order_parse(const char *s);

/* ---- running a batch -------------------------------------------------------------------------------------------- */

typedef struct acm_worker acm_worker;

/* An item is an image (ViT models) or a span of audio (speech models). */
typedef enum { ACM_ITEM_IMAGE = 0, ACM_ITEM_AUDIO = 1 } acm_item_kind;

typedef struct {
    const float *pixels;  /* IMAGE: [C, H, W] normalised input */
    acm_policy policy;
    const uint8_t *force_k; /* optional [num_acms, T]: run exactly these k (tests; bypasses gates' decisions) */
    acm_item_kind kind;   /* IMAGE (0) or AUDIO */
    const float *pcm;     /* AUDIO: [samples] 16 kHz mono float PCM */
    int64_t samples;
} acm_item;

typedef struct {
    float *logits;    /* [K] (image) or [T, K] (audio: T = acm_speech_tokens), caller-owned, required */
    uint8_t *kmap;    /* [num_acms, T], caller-owned, optional (NULL: not written) */
    double flops;     /* executed, 2 per multiply-add, gates and attention included */
    double flops_dense; /* the dense twin on the same input */
    double budget;    /* realised: sum over tokens and ACMs of k*p / sum of N*p; 1 for a model without ACMs */
    int tokens;       /* audio: T, the rows of logits and kmap (written by the engine); image: the model's tokens */
} acm_result;

typedef struct {
    int max_batch;    /* largest number of items per acm_worker_run call */
    int workers;      /* workers the process runs side by side, for validation (0: 1) */
    int cpu_threads;  /* CPU backend: math-library threads, set process-wide by acm_worker_new (0: leave as they are;
                         other backends ignore it) */
    int max_tokens;   /* speech models: largest number of tokens (summed over items) per call (0: max_batch x 250, 10 s
                         per item, or x chunk if longer, so that max_batch streams always fit) */
    const char *backend; /* where the worker runs: "cpu" (NULL: "cpu") or "cuda" (acm_backends_built) */
} acm_worker_params;
/* max_batch 8, workers and cpu_threads 0 (whatever the process set), the CPU backend. On the CPU backend
 * acm_worker_new checks workers x threads <= acm_cpu_count() and refuses more: oversubscribed cores make every batch
 * slower. */
acm_worker_params acm_worker_default_params(void);
/* CPUs this process may run on (its affinity mask). */
int acm_cpu_count(void);
/* The defaults chosen by measurement (bench/RESULTS.md, "workers x BLAS threads"), for `cores` CPUs: for throughput
 * one worker per core with one BLAS thread each (latency = 1; otherwise throughput); for the lowest latency of one
 * batch at a time, one worker with a BLAS thread per core. */
void acm_threads_default(int cores, int latency, int *workers, int *cpu_threads);

/* ---- backends (docs/DESIGN.md §4, "Backends") ----------------------------------------------------------------------
 * The backends this build has, space-separated: "cpu", or "cpu cuda" for a build made with `make CUDA=1`. */
const char *acm_backends_built(void);
/* Whether backend `name` can run here: 0, or ACM_EINVAL with a message (unknown name, not in this build, no GPU or
 * driver visible). Programs call it at start, so that asking for a backend that cannot run fails before any work. */
int acm_backend_check(const char *name, char *err, size_t errlen);

/* A worker for model m on p.backend. Fails with ACM_EINVAL for a backend that cannot run here (acm_backend_check),
 * ACM_ECONFIG for one that cannot run the model (speech models: the CPU backend only, for now). */
acm_worker *acm_worker_new(const acm_model *m, acm_worker_params p, char *err, size_t errlen);
/* The backend the worker runs on ("cpu", "cuda"). */
const char *acm_worker_backend(const acm_worker *w);
void acm_worker_free(acm_worker *w);
/* Runs n items (1 <= n <= max_batch). Returns 0, or ACM_EINVAL with a message (bad policy, a budget below beta_min,
 * non-finite input, n out of range, an item of the wrong kind for the model, audio over max_tokens: nothing ran), or
 * ACM_ENUMERIC with a message naming the first item and ACM whose gate gave non-finite logits (the computation
 * overflowed float): those items' logits and budget are NaN (their FLOPs are what ran), every other item's results
 * are valid (one item far outside the model's range does not sink its batch). */
int acm_worker_run(acm_worker *w, const acm_item *items, acm_result *results, int n, char *err, size_t errlen);

/* ---- speech: tokens and streams (docs/DESIGN.md §4b) -------------------------------------------------------------
 * Tokens a speech model makes of `samples` samples of audio (frames F = (S - win)/hop + 1, T = F / stack). */
int64_t acm_speech_tokens(const acm_model *m, int64_t samples);

/* One audio stream's state: log-mel carry-over, the frames of the chunk being filled, per layer a ring of the last L
 * tokens' keys and values. Fixed size (acm_stream_state_bytes), allocated once by acm_stream_new; nothing after.
 * A stream belongs to one thread at a time; the model may be shared. acm_stream_new and acm_worker_new (speech) call
 * FFTW's planner through engine/logmel.c, which serialises it: any thread may create and free them. */
typedef struct acm_stream acm_stream;
/* A stream with a greedy CTC decoder over the model's alphabet (acm_ctc_default_params, frames of stack x hop seconds):
 * every chunk run pushes its logits into it, so acm_stream_decoder(s) always holds the text so far. */
acm_stream *acm_stream_new(const acm_model *m, char *err, size_t errlen);
/* The same with the caller's decoder parameters (beam, word list, max_text; frame_seconds is set from the model), or
 * without a decoder when ctc is NULL. */
acm_stream *acm_stream_new_ctc(const acm_model *m, const acm_ctc_params *ctc, char *err, size_t errlen);
void acm_stream_free(acm_stream *s);
/* The stream's CTC decoder (NULL without one): read the partial or final text with acm_ctc_result_get, end a segment
 * with acm_ctc_reset(d, acm_ctc_next_frame(d)) (engine/ctc.h). Owned by the stream; one thread at a time, with it. */
acm_ctc_decoder *acm_stream_decoder(acm_stream *s);
/* Bytes one stream holds, for a model: its state and log-mel buffers (an upper bound to the byte; FFTW's plan object,
 * which FFTW allocates, is not counted), without its CTC decoder (acm_ctc_decoder_bytes: it depends on the decoder's
 * parameters). The bulk is the K/V ring, 2 x depth x left_context x dim floats. */
size_t acm_stream_state_bytes(const acm_model *m);
/* Starts a new signal: forgets every carry, the left context and the decoder's text (its frames count from 0). */
void acm_stream_reset(acm_stream *s);
/* Takes samples from pcm[0..n) until a chunk is ready (or all are taken) and returns how many it took (>= 0). While a
 * chunk is ready it takes nothing: run it (acm_worker_run_streams) first. A sample that is not finite among those it
 * would take is an error: ACM_EINVAL with a message naming it, nothing taken, the stream unchanged. */
int64_t acm_stream_feed(acm_stream *s, const float *pcm, size_t n, char *err, size_t errlen);
/* The end of the signal: the tokens of the last, short chunk become ready (if there are any). The stream then takes no
 * more samples until acm_stream_reset. */
void acm_stream_finish(acm_stream *s);
/* 1 when a chunk is ready to run, else 0. */
int acm_stream_ready(const acm_stream *s);
/* Tokens the stream has run so far (the position of its next token). */
int64_t acm_stream_tokens_done(const acm_stream *s);
/* Runs the ready chunk of each of n streams (1 <= n <= max_batch) as one batch, stream i under policies[i].
 * results[i].logits must hold [chunk, K]; results[i].tokens says how many rows were written (C, or fewer for the last
 * chunk); kmap (optional) [num_acms, tokens]. FLOPs, dense FLOPs and the budget realised are the chunk's; the
 * chunk's logits also go into the stream's CTC decoder (acm_stream_decoder), whose partial text then includes them.
 * A stream without a ready chunk is an error (ACM_EINVAL); nothing runs then. ACM_ENUMERIC as for acm_worker_run: the failed
 * streams' chunk logits and budget are NaN and their left context may hold non-finite values (reset them); the
 * others' results are valid. Allocates nothing. */
int acm_worker_run_streams(acm_worker *w, acm_stream *const *streams, const acm_policy *policies,
                           acm_result *results, int n, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
