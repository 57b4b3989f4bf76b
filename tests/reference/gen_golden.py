#!/usr/bin/python3
"""Independent reference for the engine's forward pass: writes random ACM ViT models and the expected outputs.

Run with Debian's numpy:  /usr/bin/python3 tests/reference/gen_golden.py tests/golden [NAME...]
(NAMEs: only those configurations; the others' files are left as they are)
Writes, for each configuration NAME:
  tests/golden/NAME.safetensors           the model (timm tensor names + ACM learners and uncollapsed 3-layer gates)
  tests/golden/NAME.expected.safetensors  per run r: run{r}.pixels F32 [3, C, S, S], run{r}.logits F32 [3, K],
                                          run{r}.kmap U8 [3, A, T], run{r}.force_k U8 [3, A, T] (forced runs only);
                                          __metadata__["golden"] = JSON {"runs": [{"policies": [...], "forced": bool,
                                          "flops": [3], "flops_dense": [3], "budget": [3]}]}
Everything here is computed in float64 from the definitions (docs/METHOD.md §1-2, docs/DESIGN.md §4): learners are
summed one by one, gates run as three separate layers, attention per head; nothing mirrors the engine's grouping,
sorting or collapsed gates. Inputs are redrawn until every gate decision has a top-1 margin of at least 1e-3
(relative to the token's largest logit magnitude, at least 1e-3 absolute) and every CAP cut has a gain gap of at least
1e-4, so the float32 engine must reproduce every decision exactly.
"""
import json
import math
import os
import struct
import sys

import numpy as np

MARGIN = 1e-3
CAP_MARGIN = 1e-4


# --------------------------------------------------------------------------------------------------------- model ---
def config_list():
    """Four configurations covering image 28/32, patch 2/4/8, 1/3 channels, 1/2/3/4 heads, widths that are not powers
    of two, depth >= 2, mixed static and ACM modules, N = 2 and 4, fused and split static qkv, F32 and F16 storage,
    and a convolutional stem (vit_d)."""
    return [
        dict(name="vit_a", image_size=28, patch_size=4, in_chans=1, dim=36, depth=2, heads=3, mlp_hidden=72,
             num_classes=10, dtype="F32", seed=1,
             # block 0: static fused qkv, static o, ACM MLP (N=4); block 1: ACM q, k, v (N=2), static o, static MLP
             acms={"blocks.0.mlp": (4, None), "blocks.1.attn.q": (2, 9), "blocks.1.attn.k": (2, 9),
                   "blocks.1.attn.v": (2, 9)},
             labels=["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                     "Ankle boot"],
             mean=[0.2860], std=[0.3530]),
        dict(name="vit_b", image_size=32, patch_size=8, in_chans=3, dim=40, depth=3, heads=4, mlp_hidden=80,
             num_classes=7, dtype="F32", seed=2,
             # block 0 static; block 1 every module an ACM (N=4); block 2: q ACM (N=2) with k, v static split,
             # o ACM (N=2), static MLP
             acms={"blocks.1.attn.q": (4, 5), "blocks.1.attn.k": (4, 5), "blocks.1.attn.v": (4, 5),
                   "blocks.1.attn.proj": (4, 5), "blocks.1.mlp": (4, None), "blocks.2.attn.q": (2, 10),
                   "blocks.2.attn.proj": (2, 10)},
             labels=None, mean=[0.5, 0.4, 0.3], std=[0.25, 0.2, 0.3]),
        dict(name="vit_c", image_size=32, patch_size=4, in_chans=1, dim=24, depth=2, heads=1, mlp_hidden=48,
             num_classes=5, dtype="F16", seed=3,
             # the paper's layout: every MLP and projection an ACM, N = 4
             acms={f"blocks.{i}.{p}": (4, (None if p == "mlp" else 3)) for i in range(2)
                   for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp")},
             labels=None, mean=[0.5], std=[0.5]),
        dict(name="vit_d", image_size=28, patch_size=2, in_chans=1, dim=32, depth=2, heads=2, mlp_hidden=64,
             num_classes=10, dtype="F32", seed=4,
             # a convolutional stem (3x3: 1 -> 6 channels stride 1, 6 -> 10 stride 2: 28 -> 14), then 2x2 patches
             # (7x7 tokens); block 0 static, block 1's MLP and o ACMs (N = 4)
             stem=dict(channels=[6, 10], strides=[1, 2]),
             acms={"blocks.1.mlp": (4, None), "blocks.1.attn.proj": (4, 8)},
             labels=None, mean=[0.2860], std=[0.3530]),
    ]


def stem_shape(cfg):
    """(channels, side) of the patch convolution's input: the image, or the stem's output (3x3, padding 1)."""
    C, S = cfg["in_chans"], cfg["image_size"]
    for co, st in zip(*(cfg["stem"][k] for k in ("channels", "strides"))) if cfg.get("stem") else ():
        C, S = co, (S - 1) // st + 1
    return C, S


def make_model(cfg):
    rng = np.random.default_rng(cfg["seed"])
    D, P = cfg["dim"], cfg["patch_size"]
    C, S = stem_shape(cfg)
    T = (S // P) ** 2 + 1
    t = {}
    if cfg.get("stem"):
        ci = cfg["in_chans"]
        for i, co in enumerate(cfg["stem"]["channels"]):
            t[f"stem.{i}.weight"] = rng.normal(0, math.sqrt(2 / (ci * 9)), (co, ci, 3, 3))
            t[f"stem.{i}.bias"] = rng.normal(0, 0.1, (co,))
            ci = co

    def lin(name, out, inp, bias=True, scale=1.0):
        t[name + ".weight"] = rng.normal(0, scale / math.sqrt(inp), (out, inp))
        if bias:
            t[name + ".bias"] = rng.normal(0, 0.1, (out,))

    t["patch_embed.proj.weight"] = rng.normal(0, 1 / math.sqrt(C * P * P), (D, C, P, P))
    t["patch_embed.proj.bias"] = rng.normal(0, 0.1, (D,))
    t["cls_token"] = rng.normal(0, 0.5, (1, 1, D))
    t["pos_embed"] = rng.normal(0, 0.5, (1, T, D))
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
                # later learners are smaller corrections, as phase 1 makes them
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
    lin("head", cfg["num_classes"], D)
    # Round to the storage type so that the reference sees exactly what the engine reads.
    store = np.float16 if cfg["dtype"] == "F16" else np.float32
    for k in t:
        t[k] = t[k].astype(store).astype(np.float64)
    return t


def metadata(cfg):
    meta = {
        "format_version": 1, "arch": "vit",
        "image_size": cfg["image_size"], "patch_size": cfg["patch_size"], "in_chans": cfg["in_chans"],
        "dim": cfg["dim"], "depth": cfg["depth"], "heads": cfg["heads"], "mlp_hidden": cfg["mlp_hidden"],
        "num_classes": cfg["num_classes"], "ln_eps": 1e-6,
        "preprocess": {"mean": cfg["mean"], "std": cfg["std"]},
        "acm": {"modules": [{"name": k, "learners": v[0]} for k, v in cfg["acms"].items()]},
        # a synthetic table: real tables come from `acm-train calibrate`
        "budget": {"beta_min": 0.25, "mean": [[0.1, 3.0], [0.3, 1.5], [0.6, 0.5], [0.9, -0.5]]},
        "eval": {"note": "random weights: a golden test model, not a trained one"},
    }
    if cfg["labels"]:
        meta["labels"] = cfg["labels"]
    if cfg.get("stem"):
        meta["stem"] = cfg["stem"]
    return meta


# ------------------------------------------------------------------------------------------------ safetensors -----
def write_safetensors(path, tensors, meta):
    """tensors: list of (name, numpy array, dtype string)."""
    header, blobs, off = {}, [], 0
    size = {"F32": 4, "F16": 2, "U8": 1}
    # wider types first, so that every tensor's offset is a multiple of its element size
    for name, arr, dt in sorted(tensors, key=lambda e: -size[e[2]]):
        np_dt = {"F32": "<f4", "F16": "<f2", "U8": "u1"}[dt]
        b = np.ascontiguousarray(arr.astype(np_dt)).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = meta
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# ------------------------------------------------------------------------------------------------ forward ---------
class Violation(Exception):
    pass


def layernorm(x, w, b, eps=1e-6):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def check_margin(v):
    """v: one token's (biased) logits. Raises Violation if the top-1 decision is within the margin."""
    s = np.sort(v)[::-1]
    if s[0] - s[1] < MARGIN * max(1.0, np.abs(v).max()):
        raise Violation()


class Ref:
    def __init__(self, cfg, t):
        self.cfg, self.t = cfg, t
        self.D, self.P = cfg["dim"], cfg["patch_size"]
        self.T = (stem_shape(cfg)[1] // self.P) ** 2 + 1
        self.acm_names = []  # execution order
        for i in range(cfg["depth"]):
            for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp"):
                if f"blocks.{i}.{p}" in cfg["acms"]:
                    self.acm_names.append(f"blocks.{i}.{p}")
        self.p = {}  # learner FLOPs per token
        for name in self.acm_names:
            n = cfg["acms"][name][0]
            nh, din = t[name + ".w1"].shape
            dout = t[name + ".w2"].shape[0]
            h = nh // n
            self.p[name] = 2 * (din * h + h * dout)
        total_learners = sum(cfg["acms"][n][0] for n in self.acm_names)
        self.p_total = sum(cfg["acms"][n][0] * self.p[n] for n in self.acm_names)
        self.p_mean = self.p_total / total_learners
        self.table = metadata(cfg)["budget"]["mean"]

    def lam(self, beta):
        """lambda(beta): linear in the table, the end segments continued outside it (unless lambda rises there)."""
        tb = self.table
        if len(tb) == 1:
            return tb[0][1]
        i = 1
        while i < len(tb) - 1 and tb[i][0] < beta:
            i += 1
        (b0, l0), (b1, l1) = tb[i - 1], tb[i]
        if (beta < b0 or beta > b1) and l1 > l0:
            return l0 if beta < b0 else l1
        return l0 + (beta - b0) / (b1 - b0) * (l1 - l0)

    def cap_share(self, name, beta):
        """CAP's share of module `name` (no share table: beta), raised to its floor kmin/N; the excess taken from the
        modules above their floors in proportion to their room (docs/METHOD.md §6)."""
        def floor_of(nm):
            return (0 if nm.endswith("mlp") else 1) / self.cfg["acms"][nm][0]
        excess = room = 0.0
        for nm in self.acm_names:
            f, w = floor_of(nm), self.cfg["acms"][nm][0] * self.p[nm]
            if beta < f:
                excess += (f - beta) * w
            else:
                room += (beta - f) * w
        f = floor_of(name)
        if beta <= f:
            return f
        if excess == 0:
            return beta
        return f if excess >= room else f + (beta - f) * (1.0 - excess / room)

    def gate(self, name, z):
        t = self.t
        for j in range(3):
            z = z @ t[f"{name}.gate.{j}.weight"].T + t[f"{name}.gate.{j}.bias"]
        return z  # [T, C]

    def decide(self, name, logits, pol, check):
        n = self.cfg["acms"][name][0]
        mlp = name.endswith("mlp")
        kmin = 0 if mlp else 1
        T, C = logits.shape
        kind = pol["kind"]
        if kind == "fixed":
            return np.full(T, min(max(pol["k"], kmin), n))
        if kind in ("mean", "cap") and pol["beta"] >= 1.0:
            return np.full(T, n)
        if kind in ("argmax", "mean"):
            lam = self.lam(np.float32(pol["beta"])) if kind == "mean" else 0.0
            ks = np.empty(T, dtype=int)
            for tt in range(T):
                v = np.array([logits[tt, c] - lam * (kmin + c) * self.p[name] / self.p_mean for c in range(C)])
                if check:
                    check_margin(v)
                ks[tt] = kmin + int(np.argmax(v))
            return ks
        assert kind == "cap"
        units = math.floor(self.cap_share(name, float(np.float32(pol["beta"]))) * T * n + 1e-9) - T * kmin
        ks = np.full(T, kmin)
        if units <= 0:
            return ks
        pairs = []
        for tt in range(T):
            e = np.exp(logits[tt] - logits[tt].max())
            pr = e / e.sum()
            for c in range(C):
                j = kmin + c
                if j > kmin:
                    pairs.append((-pr[c:].sum(), tt * n + j - 1))
        pairs.sort()
        if check and units < len(pairs) and (pairs[units][0] - pairs[units - 1][0]) < CAP_MARGIN:
            raise Violation()
        for g, idx in pairs[:units]:
            ks[idx // n] += 1
        return ks

    def module(self, name, z, pols, force, acc, check):
        """z [B, T, din]; returns out [B, T, dout]; acc collects per-item kmaps and FLOPs."""
        t = self.t
        if name in self.cfg["acms"]:
            n = self.cfg["acms"][name][0]
            mlp = name.endswith("mlp")
            w1, b1, w2 = t[name + ".w1"], t[name + ".b1"], t[name + ".w2"]
            h = w1.shape[0] // n
            B, T, din = z.shape
            out = np.zeros((B, T, w2.shape[0]))
            ai = self.acm_names.index(name)
            for b in range(B):
                logits = self.gate(name, z[b])
                if force is not None:
                    ks = np.clip(force[b, ai], 0 if mlp else 1, n)
                else:
                    ks = self.decide(name, logits, pols[b], check)
                acc["kmap"][b, ai] = ks
                # the gate counts only where k depends on it (not forced, fixed, or a budget of 1)
                pol = pols[b]
                gated = force is None and pol["kind"] != "fixed" and not (
                    pol["kind"] in ("mean", "cap") and pol["beta"] >= 1.0)
                acc["flops"][b] += (2 * din * logits.shape[1] * T if gated else 0) + ks.sum() * self.p[name]
                acc["lflops"][b] += ks.sum() * self.p[name]
                for tt in range(T):
                    for j in range(ks[tt]):  # learner j+1, summed one by one
                        a = z[b, tt] @ w1[j * h:(j + 1) * h].T + b1[j * h:(j + 1) * h]
                        if mlp:
                            a = gelu(a)
                        out[b, tt] += a @ w2[:, j * h:(j + 1) * h].T
            return out
        if name.endswith("mlp"):
            a = gelu(z @ t[name + ".fc1.weight"].T + t[name + ".fc1.bias"])
            return a @ t[name + ".fc2.weight"].T + t[name + ".fc2.bias"]
        return z @ t[name + ".weight"].T + t[name + ".bias"]

    def forward(self, pixels, pols, force=None, check=True):
        cfg, t, D, P, T = self.cfg, self.t, self.D, self.P, self.T
        B = pixels.shape[0]
        fixed = 0
        # the convolutional stem, straight from the definition: each output pixel is the 3x3 window of the zero-padded
        # input at (oy*stride, ox*stride) against every filter, plus bias, then GELU
        if cfg.get("stem"):
            for i, st in enumerate(cfg["stem"]["strides"]):
                w, bias = t[f"stem.{i}.weight"], t[f"stem.{i}.bias"]
                co, ci = w.shape[:2]
                S = pixels.shape[2]
                So = (S - 1) // st + 1
                xp = np.pad(pixels, ((0, 0), (0, 0), (1, 1), (1, 1)))
                out = np.zeros((B, co, So, So))
                for oy in range(So):
                    for ox in range(So):
                        win = xp[:, :, oy * st:oy * st + 3, ox * st:ox * st + 3]
                        out[:, :, oy, ox] = np.einsum("oiyx,biyx->bo", w, win) + bias
                fixed += 2 * So * So * co * ci * 9
                pixels = gelu(out)
        _, C, S, _ = pixels.shape
        g = S // P
        H = cfg["heads"]
        hd = D // H
        A = len(self.acm_names)
        acc = {"kmap": np.zeros((B, A, T), dtype=np.uint8), "flops": np.zeros(B), "lflops": np.zeros(B)}
        # fixed FLOPs, counted part by part
        fixed += 2 * (T - 1) * C * P * P * D + 2 * D * cfg["num_classes"] + cfg["depth"] * 4 * T * T * D
        dense = fixed
        for i in range(cfg["depth"]):
            for p in ("attn.q", "attn.k", "attn.v", "attn.proj", "mlp"):
                name = f"blocks.{i}.{p}"
                if p == "mlp":
                    if name in cfg["acms"]:
                        hid = t[name + ".w1"].shape[0]
                    else:
                        hid = cfg["mlp_hidden"]
                    f = 2 * T * (D * hid + hid * D)
                else:
                    f = 2 * T * D * D
                dense += f
                if name not in cfg["acms"]:
                    fixed += f
        acc["flops"] += fixed
        # patch embedding (a convolution with stride P, written as one)
        wp = t["patch_embed.proj.weight"]
        x = np.zeros((B, T, D))
        for b in range(B):
            x[b, 0] = t["cls_token"][0, 0]
            for py in range(g):
                for px in range(g):
                    patch = pixels[b, :, py * P:(py + 1) * P, px * P:(px + 1) * P]
                    x[b, 1 + py * g + px] = np.einsum("dcyx,cyx->d", wp, patch) + t["patch_embed.proj.bias"]
        x = x + t["pos_embed"][0]
        for i in range(cfg["depth"]):
            pre = f"blocks.{i}."
            z = layernorm(x, t[pre + "norm1.weight"], t[pre + "norm1.bias"])
            if pre + "attn.qkv.weight" in t:
                qkv = z @ t[pre + "attn.qkv.weight"].T + t[pre + "attn.qkv.bias"]
                q, k, v = qkv[..., :D], qkv[..., D:2 * D], qkv[..., 2 * D:]
            else:
                q, k, v = (self.module(pre + "attn." + p, z, pols, force, acc, check) for p in "qkv")
            y = np.zeros((B, T, D))
            for b in range(B):
                for hh in range(H):
                    sl = slice(hh * hd, (hh + 1) * hd)
                    s = q[b, :, sl] @ k[b, :, sl].T / math.sqrt(hd)
                    s = np.exp(s - s.max(-1, keepdims=True))
                    s /= s.sum(-1, keepdims=True)
                    y[b, :, sl] = s @ v[b, :, sl]
            x = x + self.module(pre + "attn.proj", y, pols, force, acc, check)
            z = layernorm(x, t[pre + "norm2.weight"], t[pre + "norm2.bias"])
            x = x + self.module(pre + "mlp", z, pols, force, acc, check)
        cls = layernorm(x[:, 0], t["norm.weight"], t["norm.bias"])
        logits = cls @ t["head.weight"].T + t["head.bias"]
        budget = acc["lflops"] / (self.p_total * T) if self.p_total else np.ones(B)
        return logits, acc["kmap"], acc["flops"], np.full(B, dense), budget


# ------------------------------------------------------------------------------------------------ runs ------------
def runs_for(cfg):
    n_max = max(v[0] for v in cfg["acms"].values())
    return [
        [{"kind": "argmax"}, {"kind": "mean", "beta": 0.5}, {"kind": "cap", "beta": 0.4}],
        [{"kind": "cap", "beta": 0.75}, {"kind": "argmax"}, {"kind": "mean", "beta": 0.25}],
        [{"kind": "fixed", "k": 1}, {"kind": "fixed", "k": n_max}, {"kind": "cap", "beta": 1.0}],
        [{"kind": "mean", "beta": 0.8}, {"kind": "cap", "beta": 0.3}, {"kind": "fixed", "k": 0}],
        "forced",
    ]


def main(out_dir, only=None):
    os.makedirs(out_dir, exist_ok=True)
    for cfg in config_list():
        if only and cfg["name"] not in only:
            continue
        t = make_model(cfg)
        meta = metadata(cfg)
        ref = Ref(cfg, t)
        store = cfg["dtype"]
        write_safetensors(os.path.join(out_dir, cfg["name"] + ".safetensors"),
                          [(k, v, store) for k, v in t.items()], {"acm": json.dumps(meta)})
        rng = np.random.default_rng(100 + cfg["seed"])
        C, S, T, A = cfg["in_chans"], cfg["image_size"], ref.T, len(ref.acm_names)
        tensors, runs = [], []
        for r, pols in enumerate(runs_for(cfg)):
            forced = pols == "forced"
            if forced:
                pols = [{"kind": "argmax"}] * 3
            for attempt in range(500):
                pixels = rng.normal(0, 1, (3, C, S, S)).astype(np.float32).astype(np.float64)
                force = None
                if forced:
                    n_of = [cfg["acms"][nm][0] for nm in ref.acm_names]
                    force = np.stack([np.stack([rng.integers(0, n + 1, T) for n in n_of]) for _ in range(3)])
                    force = force.astype(np.uint8)
                try:
                    logits, kmap, flops, dense, budget = ref.forward(pixels, pols, force)
                    break
                except Violation:
                    continue
            else:
                sys.exit(f"{cfg['name']} run {r}: no input without near-tie decisions in 500 attempts")
            print(f"{cfg['name']} run {r}: {attempt + 1} draw(s), budgets {np.round(budget, 3).tolist()}")
            tensors += [(f"run{r}.pixels", pixels, "F32"), (f"run{r}.logits", logits, "F32"),
                        (f"run{r}.kmap", kmap, "U8")]
            if forced:
                tensors.append((f"run{r}.force_k", force, "U8"))
            runs.append({"policies": pols, "forced": forced, "flops": flops.tolist(),
                         "flops_dense": dense.tolist(), "budget": budget.tolist()})
        write_safetensors(os.path.join(out_dir, cfg["name"] + ".expected.safetensors"), tensors,
                          {"golden": json.dumps({"runs": runs})})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/golden", sys.argv[2:])
