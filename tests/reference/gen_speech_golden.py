#!/usr/bin/python3
"""Independent float64 reference for the speech encoder (docs/DESIGN.md §4b, engine/model.h): random-weight models
and the expected outputs of whole items.

Run with Debian's numpy:  /usr/bin/python3 tests/reference/gen_speech_golden.py tests/golden
Writes, for each configuration NAME:
  tests/golden/NAME.safetensors           the model (speech tensor names, ACM learners and uncollapsed 3-layer gates)
  tests/golden/NAME.expected.safetensors  per run r and item b: run{r}.pcm{b} F16 [S_b] (fp16 values), and when the item has T > 0
                                          tokens run{r}.logits{b} F32 [T, K], run{r}.kmap{b} U8 [A, T],
                                          run{r}.force_k{b} U8 [A, T] (forced runs only);
                                          __metadata__["golden"] = JSON {"runs": [{"policies": [...], "forced": bool,
                                          "samples": [3], "tokens": [3], "flops": [3], "flops_dense": [3],
                                          "budget": [3]}]}
Computed from the definitions, not from the engine's code: log-mel by gen_logmel.py's float64 definition, frames
stacked by reshaping, rotary positions counted from the start of the item (the engine counts from each chunk's first
key: the same scores, since a rotary score depends only on the distance), attention per chunk over its keys written
out as a mask, learners summed one by one, gates as three separate layers, CAP decided per chunk. Inputs are redrawn
until every gate decision has the margins of gen_golden.py, so the float32 engine must reproduce every decision.
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_golden import CAP_MARGIN, MARGIN, Ref, Violation, gelu, layernorm, write_safetensors  # noqa: E402,F401
from gen_logmel import logmel  # noqa: E402

ALPHABET = "abcdefghijklmnopqrstuvwxyz' "
NMELS, STACK = 80, 4


def config_list():
    """Three models: mixed static/ACM with a fused static qkv (F32); every module an ACM, one head (F16); a static model
    with no left context and chunks of 3 (F32)."""
    return [
        dict(name="speech_a", dim=32, depth=2, heads=2, mlp_hidden=64, chunk=4, left_context=6, dtype="F32", seed=11,
             # block 0: static fused qkv, static o, ACM MLP (N=4); block 1: ACM q, k, v, o (N=4, h=4), static MLP
             acms={"blocks.0.mlp": (4, None), "blocks.1.attn.q": (4, 4), "blocks.1.attn.k": (4, 4),
                   "blocks.1.attn.v": (4, 4), "blocks.1.attn.proj": (4, 4)}),
        dict(name="speech_b", dim=16, depth=2, heads=1, mlp_hidden=32, chunk=2, left_context=3, dtype="F16", seed=12,
             acms={f"blocks.{i}.{p}": (4, (None if p == "mlp" else 2)) for i in range(2)
                   for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp")}),
        dict(name="speech_c", dim=24, depth=1, heads=3, mlp_hidden=48, chunk=3, left_context=0, dtype="F32", seed=13,
             acms={}),
    ]


def make_model(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D, K = cfg["dim"], len(ALPHABET) + 1
    t = {}

    def lin(name, out, inp):
        t[name + ".weight"] = rng.normal(0, 1 / math.sqrt(inp), (out, inp))
        t[name + ".bias"] = rng.normal(0, 0.1, (out,))

    t["frontend.mel_mean"] = rng.normal(-6, 1, (NMELS,))
    t["frontend.mel_std"] = rng.uniform(1.5, 3.0, (NMELS,))
    lin("frontend.proj", D, STACK * NMELS)
    for i in range(cfg["depth"]):
        for n in ("norm1", "norm2"):
            t[f"blocks.{i}.{n}.weight"] = 1 + rng.normal(0, 0.1, (D,))
            t[f"blocks.{i}.{n}.bias"] = rng.normal(0, 0.1, (D,))
        acm_qkv = [f"blocks.{i}.attn.{p}" in cfg["acms"] for p in "qkv"]
        if not any(acm_qkv):
            lin(f"blocks.{i}.attn.qkv", 3 * D, D)
        for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp"):
            name = f"blocks.{i}.{p}"
            if name in cfg["acms"]:
                n, h = cfg["acms"][name]
                mlp = p == "mlp"
                if mlp:
                    h = cfg["mlp_hidden"] // n
                t[name + ".w1"] = rng.normal(0, 1 / math.sqrt(D), (n * h, D))
                t[name + ".b1"] = rng.normal(0, 0.1, (n * h,))
                w2 = rng.normal(0, 1 / math.sqrt(h), (D, n * h))
                for j in range(n):
                    w2[:, j * h:(j + 1) * h] *= 0.7 ** j
                t[name + ".w2"] = w2
                choices = n + 1 if mlp else n
                for j, (o, ii) in enumerate([(16, D), (16, 16), (choices, 16)]):
                    t[f"{name}.gate.{j}.weight"] = rng.normal(0, (1.5 if j == 2 else 1.0) / math.sqrt(ii), (o, ii))
                    t[f"{name}.gate.{j}.bias"] = rng.normal(0, 0.3, (o,))
            elif p == "mlp":
                lin(f"{name}.fc1", cfg["mlp_hidden"], D)
                lin(f"{name}.fc2", D, cfg["mlp_hidden"])
            elif p == "attn.proj" or any(acm_qkv):
                lin(name, D, D)
    t["norm.weight"] = 1 + rng.normal(0, 0.1, (D,))
    t["norm.bias"] = rng.normal(0, 0.1, (D,))
    lin("head", K, D)
    store = np.float16 if cfg["dtype"] == "F16" else np.float32
    for k in t:
        t[k] = t[k].astype(store).astype(np.float64)
    return t


def metadata(cfg):
    meta = {
        "format_version": 1, "arch": "speech", "dim": cfg["dim"], "depth": cfg["depth"], "heads": cfg["heads"],
        "mlp_hidden": cfg["mlp_hidden"], "ln_eps": 1e-6, "alphabet": ALPHABET, "chunk": cfg["chunk"],
        "left_context": cfg["left_context"], "rope_base": 10000, "frontend": {"n_mels": NMELS, "stack": STACK},
        "acm": {"modules": [{"name": k, "learners": v[0]} for k, v in cfg["acms"].items()]},
        "budget": {"beta_min": 0.25, "mean": [[0.1, 3.0], [0.3, 1.5], [0.6, 0.5], [0.9, -0.5]]},
        "eval": {"note": "random weights: a golden test model, not a trained one"},
    }
    if not cfg["acms"]:  # a static model has no budgets (its floor is 1): the engine refuses a table for it
        del meta["budget"]
    return meta


def rope(x, pos, H, base):
    """x [n, D] rotated per head (NeoX halves) at positions pos [n]."""
    n, D = x.shape
    hd = D // H
    half = hd // 2
    ang = pos[:, None] * base ** (-2.0 * np.arange(half) / hd)[None, :]
    c, s = np.cos(ang), np.sin(ang)
    y = x.copy()
    for h in range(H):
        a = x[:, h * hd:h * hd + half]
        b = x[:, h * hd + half:(h + 1) * hd]
        y[:, h * hd:h * hd + half] = a * c - b * s
        y[:, h * hd + half:(h + 1) * hd] = b * c + a * s
    return y


class SpeechRef(Ref):
    def __init__(self, cfg, t):  # noqa: super().__init__ reads image fields; the budget units are set up here
        self.cfg, self.t = cfg, t
        self.D = cfg["dim"]
        self.acm_names = [f"blocks.{i}.{p}" for i in range(cfg["depth"])
                          for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp")
                          if f"blocks.{i}.{p}" in cfg["acms"]]
        self.p = {}
        for name in self.acm_names:
            n = cfg["acms"][name][0]
            nh, din = t[name + ".w1"].shape
            self.p[name] = 2 * (din * (nh // n) + (nh // n) * t[name + ".w2"].shape[0])
        total = sum(cfg["acms"][n][0] for n in self.acm_names)
        self.p_total = sum(cfg["acms"][n][0] * self.p[n] for n in self.acm_names)
        self.p_mean = self.p_total / total if total else 0
        self.table = metadata(cfg).get("budget", {}).get("mean", [])

    def chunks(self, T):
        C = self.cfg["chunk"]
        return [(s, min(s + C, T)) for s in range(0, T, C)]

    def module(self, name, z, pol, force, acc, check):
        """z [T, din] of one item; decisions per chunk."""
        t = self.t
        if name not in self.cfg["acms"]:
            if name.endswith("mlp"):
                return gelu(z @ t[name + ".fc1.weight"].T + t[name + ".fc1.bias"]) @ t[name + ".fc2.weight"].T \
                    + t[name + ".fc2.bias"]
            return z @ t[name + ".weight"].T + t[name + ".bias"]
        n = self.cfg["acms"][name][0]
        mlp = name.endswith("mlp")
        w1, b1, w2 = t[name + ".w1"], t[name + ".b1"], t[name + ".w2"]
        h = w1.shape[0] // n
        T, din = z.shape
        out = np.zeros((T, w2.shape[0]))
        ai = self.acm_names.index(name)
        logits = self.gate(name, z)
        ks = np.zeros(T, dtype=int)
        for s, e in self.chunks(T):
            if force is not None:
                ks[s:e] = np.clip(force[ai, s:e], 0 if mlp else 1, n)
            else:
                ks[s:e] = self.decide(name, logits[s:e], pol, check)
        acc["kmap"][ai] = ks
        # the gate counts only where k depends on it (not forced, fixed, or a budget of 1), as in gen_golden.py
        gated = force is None and pol["kind"] != "fixed" and not (pol["kind"] in ("mean", "cap") and pol["beta"] >= 1.0)
        acc["flops"] += (2 * din * logits.shape[1] * T if gated else 0) + ks.sum() * self.p[name]
        acc["lflops"] += ks.sum() * self.p[name]
        for tt in range(T):
            for j in range(ks[tt]):
                a = z[tt] @ w1[j * h:(j + 1) * h].T + b1[j * h:(j + 1) * h]
                if mlp:
                    a = gelu(a)
                out[tt] += a @ w2[:, j * h:(j + 1) * h].T
        return out

    def forward(self, pcm, pol, force=None, check=True):
        """One item. Returns logits [T, K], kmap [A, T], flops, dense flops, budget."""
        cfg, t, D = self.cfg, self.t, self.D
        H, C, L = cfg["heads"], cfg["chunk"], cfg["left_context"]
        K = len(ALPHABET) + 1
        hd = D // H
        A = len(self.acm_names)
        frames = logmel(pcm) if len(pcm) >= 400 else np.zeros((0, NMELS))
        T = frames.shape[0] // STACK
        acc = {"kmap": np.zeros((A, T), dtype=np.uint8), "flops": 0.0, "lflops": 0.0}
        if T == 0:
            return np.zeros((0, K)), acc["kmap"], 0.0, 0.0, 0.0
        # fixed FLOPs per token, then attention per chunk
        per_tok = 2 * STACK * NMELS * D + 2 * D * K
        dense_tok = per_tok
        for i in range(cfg["depth"]):
            for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp"):
                name = f"blocks.{i}.{p}"
                if p == "mlp":
                    hid = t[name + ".w1"].shape[0] if name in cfg["acms"] else cfg["mlp_hidden"]
                    f = 2 * (D * hid + hid * D)
                else:
                    f = 2 * D * D
                dense_tok += f
                if name not in cfg["acms"]:
                    per_tok += f
        attn = 0.0
        for s, e in self.chunks(T):
            attn += cfg["depth"] * 4 * (e - s) * (e - max(0, s - L)) * D
        acc["flops"] += per_tok * T + attn
        x = ((frames[:T * STACK] - t["frontend.mel_mean"]) / t["frontend.mel_std"]).reshape(T, STACK * NMELS)
        x = x @ t["frontend.proj.weight"].T + t["frontend.proj.bias"]
        # the chunk mask: token i sees token j iff j is in i's chunk or among the L tokens before that chunk
        ci = np.arange(T) // C
        j_ = np.arange(T)
        mask = (j_[None, :] < (ci[:, None] + 1) * C) & (j_[None, :] >= ci[:, None] * C - L)
        pos = np.arange(T, dtype=np.float64)
        for i in range(cfg["depth"]):
            pre = f"blocks.{i}."
            z = layernorm(x, t[pre + "norm1.weight"], t[pre + "norm1.bias"])
            if pre + "attn.qkv.weight" in t:
                qkv = z @ t[pre + "attn.qkv.weight"].T + t[pre + "attn.qkv.bias"]
                q, k, v = qkv[:, :D], qkv[:, D:2 * D], qkv[:, 2 * D:]
            else:
                q, k, v = (self.module(pre + "attn." + p, z, pol, force, acc, check) for p in "qkv")
            q, k = rope(q, pos, H, cfg.get("rope_base", 10000.0)), rope(k, pos, H, cfg.get("rope_base", 10000.0))
            y = np.zeros((T, D))
            for hh in range(H):
                sl = slice(hh * hd, (hh + 1) * hd)
                s = q[:, sl] @ k[:, sl].T / math.sqrt(hd)
                s = np.where(mask, s, -np.inf)
                s = np.exp(s - s.max(-1, keepdims=True))
                s /= s.sum(-1, keepdims=True)
                y[:, sl] = s @ v[:, sl]
            x = x + self.module(pre + "attn.proj", y, pol, force, acc, check)
            z = layernorm(x, t[pre + "norm2.weight"], t[pre + "norm2.bias"])
            x = x + self.module(pre + "mlp", z, pol, force, acc, check)
        logits = layernorm(x, t["norm.weight"], t["norm.bias"]) @ t["head.weight"].T + t["head.bias"]
        budget = acc["lflops"] / (self.p_total * T) if self.p_total else 1.0
        return logits, acc["kmap"], acc["flops"], dense_tok * T + attn, budget


# lengths in samples: below one chunk (1840: 10 frames, 2 tokens, 2 frames left over), a tail that is not a whole
# token (6200: 37 frames), several chunks (11000: 67 frames, 16 tokens), no token at all (300)
LENGTHS = [[1840, 6200, 11000], [11000, 1840, 7000], [6200, 11000, 300], [7000, 3000, 6200], [6200, 1840, 11000]]


def runs_for(cfg):
    n_max = max([v[0] for v in cfg["acms"].values()] or [1])
    if not cfg["acms"]:  # a static model takes no budget below 1 (engine: beta_min 1)
        return [[{"kind": "argmax"}, {"kind": "fixed", "k": 1}, {"kind": "cap", "beta": 1.0}],
                [{"kind": "cap", "beta": 1.0}, {"kind": "argmax"}, {"kind": "mean", "beta": 1.0}],
                [{"kind": "fixed", "k": 1}, {"kind": "argmax"}, {"kind": "cap", "beta": 1.0}],
                [{"kind": "mean", "beta": 1.0}, {"kind": "argmax"}, {"kind": "fixed", "k": 0}],
                "forced"]
    # budgets >= beta_min (0.25, which the engine enforces); CAP budgets >= kmin / N of every module (1/4 here), so
    # no module's share is raised to its floor; MEAN budgets inside the lambda table
    return [
        [{"kind": "argmax"}, {"kind": "mean", "beta": 0.5}, {"kind": "cap", "beta": 0.6}],
        [{"kind": "cap", "beta": 0.3}, {"kind": "argmax"}, {"kind": "mean", "beta": 0.25}],
        [{"kind": "fixed", "k": 1}, {"kind": "fixed", "k": n_max}, {"kind": "cap", "beta": 1.0}],
        [{"kind": "mean", "beta": 0.8}, {"kind": "cap", "beta": 0.45}, {"kind": "fixed", "k": 0}],
        "forced",
    ]


def draw_pcm(rng, n):
    """Noise under a slow random envelope with a silent stretch: frames of different loudness."""
    env = np.interp(np.arange(n), np.linspace(0, n, 8), rng.uniform(0.02, 0.5, 8))
    x = rng.normal(0, 1, n) * env
    if n > 4000:
        x[1000:2600] *= 1e-3
    return x.astype(np.float16).astype(np.float32)  # stored as F16: half the golden's bytes, exactly representable


def main(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for cfg in config_list():
        t = make_model(cfg)
        meta = metadata(cfg)
        ref = SpeechRef(cfg, t)
        store = cfg["dtype"]
        write_safetensors(os.path.join(out_dir, cfg["name"] + ".safetensors"),
                          [(k, v, store) for k, v in t.items()], {"acm": json.dumps(meta)})
        rng = np.random.default_rng(200 + cfg["seed"])
        A = len(ref.acm_names)
        tensors, runs = [], []
        for r, pols in enumerate(runs_for(cfg)):
            forced = pols == "forced"
            if forced:
                pols = [{"kind": "argmax"}] * 3
            items = []
            for b, n in enumerate(LENGTHS[r]):
                for attempt in range(500):
                    pcm = draw_pcm(rng, n)
                    T = 0 if n < 400 else ((n - 400) // 160 + 1) // STACK
                    force = None
                    if forced:
                        n_of = [cfg["acms"][nm][0] for nm in ref.acm_names]
                        force = np.stack([rng.integers(0, nn + 1, T) for nn in n_of]).astype(np.uint8) if A else \
                            np.zeros((0, T), dtype=np.uint8)
                    try:
                        out = ref.forward(pcm.astype(np.float64), pols[b], force)
                        break
                    except Violation:
                        continue
                else:
                    sys.exit(f"{cfg['name']} run {r} item {b}: no input without near-tie decisions in 500 attempts")
                items.append((pcm, force, out, attempt + 1))
            budgets = [round(float(it[2][4]), 3) for it in items]
            print(f"{cfg['name']} run {r}: draws {[it[3] for it in items]}, tokens "
                  f"{[it[2][0].shape[0] for it in items]}, budgets {budgets}")
            for b, (pcm, force, out, _) in enumerate(items):
                logits, kmap = out[0], out[1]
                tensors.append((f"run{r}.pcm{b}", pcm, "F16"))
                if logits.shape[0]:
                    tensors.append((f"run{r}.logits{b}", logits, "F32"))
                    if A:
                        tensors.append((f"run{r}.kmap{b}", kmap, "U8"))
                    if forced and A:
                        tensors.append((f"run{r}.force_k{b}", force, "U8"))
            runs.append({"policies": pols, "forced": forced, "samples": [len(it[0]) for it in items],
                         "tokens": [int(it[2][0].shape[0]) for it in items],
                         "flops": [float(it[2][2]) for it in items], "flops_dense": [float(it[2][3]) for it in items],
                         "budget": [float(it[2][4]) for it in items]})
        write_safetensors(os.path.join(out_dir, cfg["name"] + ".expected.safetensors"), tensors,
                          {"golden": json.dumps({"runs": runs})})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden")
