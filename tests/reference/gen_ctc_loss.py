#!/usr/bin/python3
"""gen_ctc_loss.py — golden data for train/ctc_loss.c (the CTC loss and its gradient), computed in float64 with numpy.

Run with Debian's interpreter (the python3 first on PATH has no numpy):
    /usr/bin/python3 tests/reference/gen_ctc_loss.py
Writes tests/golden/ctc_loss_cases.json: {"cases": [case, ...]}, each case: name, T, K, labels (list of ints in
1..K-1; class 0 is the blank), logits (flat [T*K] float32 values written as the shortest decimal that reads back as
the same float32), status ("ok" or "skip": the labels need more frames than T), and for "ok" cases loss
(-log p(labels | logits)) and grad (flat [T*K], d loss / d logits).

Independent of the C code: the loss is the log of a sum over alignments, computed here by brute force over every
path of K^T (tiny cases) and by the alpha recursion of Graves et al. (2006) in log space, vectorised over states;
the gradient by the alpha-beta occupancies in Graves's form (beta including the frame's emission, gamma = alpha beta
/ y), which the script checks against central differences of the brute-force loss on the tiny cases before writing.
"""
import itertools
import json
import math
import os

import numpy as np


def f32(x):
    return np.asarray(x, dtype=np.float32)


def log_softmax(z):
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def collapse(path):
    out, prev = [], None
    for p in path:
        if p != prev and p != 0:
            out.append(p)
        prev = p
    return out


def brute_loss(z, labels):
    lp = log_softmax(z)
    T, K = lp.shape
    tot = -math.inf
    for path in itertools.product(range(K), repeat=T):
        if collapse(path) == list(labels):
            tot = np.logaddexp(tot, sum(lp[t, path[t]] for t in range(T)))
    return -tot


def needed(labels):
    return len(labels) + sum(1 for a, b in zip(labels, labels[1:]) if a == b)


def ctc(z, labels):
    """(loss, grad) by alpha-beta in log space; grad = softmax - occupancy."""
    lp = log_softmax(z)
    T, K = lp.shape
    ext = [0]
    for c in labels:
        ext += [c, 0]
    ext = np.array(ext)
    S = len(ext)
    skip = np.zeros(S, dtype=bool)  # s may be reached from s-2
    for s in range(2, S):
        skip[s] = ext[s] != 0 and ext[s] != ext[s - 2]
    em = lp[:, ext]  # [T, S]
    NEG = -np.inf
    a = np.full((T, S), NEG)
    a[0, 0] = em[0, 0]
    if S > 1:
        a[0, 1] = em[0, 1]
    for t in range(1, T):
        prev = a[t - 1]
        x = prev.copy()
        x[1:] = np.logaddexp(x[1:], prev[:-1])
        x[2:] = np.where(skip[2:], np.logaddexp(x[2:], prev[:-2]), x[2:])
        a[t] = x + em[t]
    b = np.full((T, S), NEG)  # Graves: includes the emission at t
    b[T - 1, S - 1] = em[T - 1, S - 1]
    if S > 1:
        b[T - 1, S - 2] = em[T - 1, S - 2]
    for t in range(T - 2, -1, -1):
        nxt = b[t + 1]
        x = nxt.copy()
        x[:-1] = np.logaddexp(x[:-1], nxt[1:])
        x[:-2] = np.where(skip[2:], np.logaddexp(x[:-2], nxt[2:]), x[:-2])
        b[t] = x + em[t]
    logp = np.logaddexp(a[T - 1, S - 1], a[T - 1, S - 2]) if S > 1 else a[T - 1, S - 1]
    gamma = np.exp(a + b - em - logp)  # [T, S]
    occ = np.zeros((T, K))
    for s in range(S):
        occ[:, ext[s]] += gamma[:, s]
    grad = np.exp(lp) - occ
    return -logp, grad


def shortest(x):
    """The shortest decimal that reads back as the same float32."""
    for p in range(1, 12):
        s = "%.*g" % (p, x)
        if np.float32(float(s)) == np.float32(x):
            return float(s)
    return float(x)


def main():
    rng = np.random.default_rng(20261203)
    cases = []

    def add(name, T, K, labels, scale=1.0, z=None):
        if z is None:
            z = f32(rng.normal(0, scale, (T, K)))
        c = dict(name=name, T=T, K=K, labels=[int(v) for v in labels],
                 logits=[shortest(v) for v in z.reshape(-1)])
        zz = np.array(c["logits"], dtype=np.float32).reshape(T, K)
        if T < needed(labels):
            c["status"] = "skip"
        else:
            loss, grad = ctc(zz, labels)
            c["status"] = "ok"
            c["loss"] = float(loss)
            c["grad"] = [float("%.10g" % g) for g in grad.reshape(-1)]
            if T ** 1 * K <= 5 ** 4 and K ** T <= 4096:
                bl = brute_loss(zz, labels)
                assert abs(bl - loss) < 1e-10 * max(1, abs(bl)), (name, bl, loss)
                h = 1e-6
                zd = zz.astype(np.float64)
                for i in range(T):
                    for k in range(K):
                        zp, zm = zd.copy(), zd.copy()
                        zp[i, k] += h
                        zm[i, k] -= h
                        fd = (brute_loss(zp, labels) - brute_loss(zm, labels)) / (2 * h)
                        assert abs(fd - grad[i, k]) < 1e-6, (name, i, k, fd, grad[i, k])
        cases.append(c)

    # tiny cases, checked by brute force
    add("tiny_distinct", 4, 3, [1, 2])
    add("tiny_repeat", 4, 3, [1, 1])          # needs a blank between the two 1s: 3 frames at least
    add("tiny_repeat_exact", 3, 3, [1, 1])    # exactly 1 _ 1
    add("tiny_empty_target", 4, 3, [])        # blank-only: every frame blank
    add("tiny_single", 5, 3, [2])
    add("tiny_full_length", 3, 4, [1, 2, 3])  # T == U: one alignment
    add("tiny_T1_empty", 1, 3, [])
    add("tiny_T1_one", 1, 3, [2])
    # inputs shorter than the labels need: a clear skip
    add("skip_short", 2, 4, [1, 2, 3])
    add("skip_repeats", 3, 3, [1, 1, 1])      # needs 5 frames
    add("skip_T0", 0, 3, [1])
    # medium and long
    add("medium", 40, 8, rng.integers(1, 8, 12), scale=2.0)
    add("medium_repeats", 30, 5, [1, 1, 2, 2, 2, 3, 3, 1, 1, 4], scale=1.5)
    lab = rng.integers(1, 12, 200)
    z = f32(rng.normal(0, 1, (1200, 12)) * 4.0)
    add("long_T1200_U200", 1200, 12, lab, z=z)      # p is about e^-2000: the direct product underflows float64
    z = f32(np.where(rng.random((600, 6)) < 0.5, 30.0, -30.0) + rng.normal(0, 1, (600, 6)))
    add("long_peaky", 600, 6, rng.integers(1, 6, 150), z=z)

    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "ctc_loss_cases.json")
    with open(out, "w") as f:
        json.dump({"cases": cases}, f, separators=(",", ":"))
    print("wrote %s: %d cases" % (os.path.normpath(out), len(cases)))


if __name__ == "__main__":
    main()
