/*
 * kernels.h — the engine's layer kernels, shared by inference (engine/vit.c) and training (train/).
 * Internal header: not part of the public API (engine/acm.h).
 *
 * Conventions (llm.c): arguments are outputs, saved statistics, inputs, weights, sizes. Row-major everywhere; a
 * weight is stored like nn.Linear, W[OC, C], so a linear layer is out[N, OC] = inp[N, C] · Wᵀ + b. Sizes that can
 * grow with the batch are int64_t. Backward kernels ACCUMULATE (+=) into their gradient outputs, so that gradients
 * of shared tensors (residual streams, weights used in several places) add up; callers zero them first.
 *
 * Dimension letters: N rows (tokens of the whole batch), C input width, OC output width, B items, T tokens per item,
 * D width, H heads, hd = D/H head width.
 */
#ifndef ACM_KERNELS_H
#define ACM_KERNELS_H

#include <stdint.h>

/* out[N, C] = (inp - mean) * rstd * weight + bias, per row. mean, rstd [N] saved for backward (may be NULL). */
void acm__layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight,
                            const float *bias, int64_t N, int C, float eps);

/* out[N, OC] (row stride ldo) = inp[N, C] (row stride ldi) · W[OC, C]ᵀ (row stride ldw) + bias[OC] (bias may be NULL).
 * accumulate: 0 overwrites out, 1 adds to it. */
void acm__matmul_forward(float *out, int ldo, const float *inp, int ldi, const float *weight, int ldw,
                         const float *bias, int64_t N, int C, int OC, int accumulate);

/* Exact GELU: 0.5 x (1 + erf(x / √2)), in place allowed. */
void acm__gelu_forward(float *out, const float *inp, int64_t n);
/* pre[0..n) += bias, then out[0..n) = GELU(pre) (out may be pre): a GEMM's bias fused with its GELU, one pass. */
void acm__bias_gelu_forward(float *pre, float *out, const float *bias, int64_t n);

/* Multi-head self-attention for B items of T tokens.
 * q, k, v: [B*T, ld] rows, head h of token t at columns h*hd .. h*hd+hd-1 of each (pass the same buffer at offsets
 * 0, D, 2D for a fused qkv). out [B*T, D]. att [B, H, T, T] softmax probabilities (saved for backward).
 * scale = 1/√hd. */
void acm__attention_forward(float *out, float *att, const float *q, const float *k, const float *v, int ld,
                            int B, int T, int D, int H);

/* Convolution rows of one image or feature map (engine/cpu/conv.c): element (c, y, x) of the input is
 * img[c*cs + (y*W + x)*ps] (channel-first: cs = H*W, ps = 1; channel-last: cs = 1, ps = C). Writes col[Ho*Wo, C*k*k],
 * each row in (c, ky, kx) order (a Conv2d weight's), zero where the k x k window at (oy*stride - pad, ox*stride - pad)
 * leaves the input. */
void acm__im2col_conv(float *col, const float *img, int C, int H, int W, int64_t cs, int64_t ps, int k, int stride,
                      int pad, int Ho, int Wo);
/* Its adjoint: dimg += the rows dcol scattered back (overlapping windows add). */
void acm__col2im_conv(float *dimg, const float *dcol, int C, int H, int W, int64_t cs, int64_t ps, int k, int stride,
                      int pad, int Ho, int Wo);

/* Patches of one image img[C, Hi, Wi] into rows out[(Hi/P)*(Wi/P), C*P*P], each row in (c, py, px) order (timm's
 * Conv2d weight order), so that patch embedding is a matmul with W[D, C*P*P]. */
void acm__im2col_patches(float *out, const float *img, int C, int Hi, int Wi, int P);

/* out[i] = a[i] + b[i] (out may alias a). */
/* One (item b, head h) of acm__attention_forward: its [T, T] block of att and its hd columns of out. The heads are
 * independent, so they may run in any order or at once (the CPU backend's pool). */
void acm__attention_head(float *out, float *att, const float *q, const float *k, const float *v, int ld, int T, int D,
                         int H, int b, int h);
void acm__add(float *out, const float *a, const float *b, int64_t n);

/* Numerically stable softmax of one row of n values. */
void acm__softmax_row(float *out, const float *in, int n);

/* ---- speech encoder (engine/speech.c; CPU: engine/cpu/kernels_speech.c) ------------------------------------------ */

/* Rotary positions in place on n rows of x (row stride ld), H heads of width hd at columns h*hd..: row i has position
 * pos0 + i; within a head, dimension j < hd/2 and j + hd/2 rotate together by the angle pos * base^(-2j/hd), whose
 * cosine and sine are cos_t, sin_t [P, hd/2] (position-major, P > pos0 + n - 1). */
void acm__rope_forward(float *x, int ld, int64_t n, int pos0, int H, int hd, const float *cos_t, const float *sin_t);

/* x[rows, cols] = (x - sub[cols]) / div[cols], per column (the per-bin log-mel normalisation), in place. */
void acm__normalise_cols(float *x, int64_t rows, int cols, const float *sub, const float *div);

/* dst[rows, cols] (row stride ldd) = src[rows, cols] (row stride lds): gathering a chunk's keys, values and queries. */
void acm__copy_rows(float *dst, int ldd, const float *src, int lds, int64_t rows, int cols);

/* Attention of Tq queries over Tk keys, every query seeing every key (the window is the caller's choice: a chunk and
 * its left context). q [Tq, ldq], k [Tk, ldk], v [Tk, ldv], head h at columns h*hd.. of each; out [Tq, ldo] (columns
 * 0..D). scores: scratch [Tq, Tk]. scale = 1/sqrt(hd). */
void acm__attention_window_forward(float *out, int ldo, float *scores, const float *q, int ldq, const float *k, int ldk,
                                   const float *v, int ldv, int Tq, int Tk, int D, int H);

/* ---- backward -------------------------------------------------------------------------------------------------------
 * Each kernel is the exact derivative of the forward above it, in the same argument order (gradient outputs, scratch,
 * saved statistics and inputs, weights, sizes). Every gradient output is ACCUMULATED (+=); a NULL gradient output is
 * skipped (e.g. no dinp for the first layer). Checked against finite differences in tests/engine/test_kernels_backward.c.
 */

/* LayerNorm: dinp[N, C], dweight[C], dbias[C] from dout[N, C], the forward's inp, weight and saved mean, rstd [N].
 * dx = rstd · (g − mean(g) − x̂ · mean(g · x̂)) with g = dout · weight, x̂ = (x − mean) · rstd. */
void acm__layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                             const float *weight, const float *mean, const float *rstd, int64_t N, int C);

/* Linear layer out = inp · Wᵀ + b (acm__matmul_forward), with the forward's leading dimensions:
 *   dinp[N, C]   (row stride lddi) += dout[N, OC] (row stride lddo) · W[OC, C] (row stride ldw)
 *   dweight[OC, C] (row stride ldw, the weight's own layout) += doutᵀ · inp[N, C] (row stride ldi)
 *   dbias[OC]   += Σ_rows dout */
void acm__matmul_backward(float *dinp, int lddi, float *dweight, float *dbias, const float *dout, int lddo,
                          const float *inp, int ldi, const float *weight, int ldw, int64_t N, int C, int OC);

/* Exact GELU: dinp[i] += dout[i] · (Φ(x) + x φ(x)), x = inp[i] (the forward's input). */
void acm__gelu_backward(float *dinp, const float *inp, const float *dout, int64_t n);
/* The same from the forward's input AND output (out = GELU(inp), e.g. the activation record's gelu): Φ(x) = out / x,
 * so no erf is evaluated (erff is most of GELU's cost); |x| < 1e-6 uses Φ = 0.5 + x φ(0). */
void acm__gelu_backward_out(float *dinp, const float *inp, const float *out, const float *dout, int64_t n);

/* Multi-head attention (acm__attention_forward): dq, dk, dv [B*T, ld] (same column layout as q, k, v; may point into one
 * fused dqkv buffer at offsets 0, D, 2D) from dout [B*T, D], the saved probabilities att [B, H, T, T] and q, k, v.
 * scratch: T*T floats. With S = scale·QKᵀ, A = softmax(S), O = A·V:
 *   dA = dO·Vᵀ, dV += Aᵀ·dO, dS = A ⊙ (dA − rowsum(dA ⊙ A)), dQ += scale·dS·K, dK += scale·dSᵀ·Q. */
void acm__attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *att,
                             const float *q, const float *k, const float *v, int ld, int B, int T, int D, int H);

/* Patch rows back onto the image: dimg[C, Hi, Wi] += the inverse of acm__im2col_patches (needed only when the
 * gradient with respect to the pixels is wanted; the patch-embedding weights take acm__matmul_backward over the rows). */
void acm__im2col_patches_backward(float *dimg, const float *drows, int C, int Hi, int Wi, int P);

/* Cross-entropy with label smoothing ε over K classes for B rows of logits [B, K] and targets [B] in 0..K-1.
 * The target distribution is q = (1 − ε)·onehot + ε/K; loss[b] = −Σ_k q_k log p_k with p = softmax(logits[b]).
 * Forward writes loss [B] and probs [B, K] (saved for backward); returns the mean loss over B (double).
 * Backward: dlogits[b, k] += dloss · (p_k − q_k) (dloss = 1/B for a mean over the batch). */
double acm__crossentropy_forward(float *loss, float *probs, const float *logits, const int32_t *targets, int B, int K,
                                 float smoothing);
void acm__crossentropy_backward(float *dlogits, const float *probs, const int32_t *targets, int B, int K,
                                float smoothing, float dloss);

/* dst[i] += src[i]: the backward of a residual add (and of any tensor used twice). */
void acm__accumulate(float *dst, const float *src, int64_t n);

#endif
