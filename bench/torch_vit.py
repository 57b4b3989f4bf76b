#!/usr/bin/python3
"""torch_vit.py — the PyTorch peer of bench/acm_exec.sh (issues 6 and 26): PyTorch eager set up as well as it can be
here, static ViT-B/16 (torchvision's vit_b_16) and the same ViT-B with ACM modules run the sorted-prefix way, random
weights, batch 1 and 8.

By hand only, never in CI: needs Debian's python3-torch and python3-torchvision (apt-get install python3-torch
python3-torchvision), run under /usr/bin/python3. bench/acm_exec.sh calls it when torch imports, with the same thread
count as our engine and OPENBLAS_CORETYPE set to the core our engine ran on, so both use the same OpenBLAS kernels
when torch's matrix products go to OpenBLAS (torch.__config__.show() says which BLAS it was built with; the loaded
OpenBLAS's core is printed from the library itself).

The tuning (printed at the start of the run; --untuned runs without it, for comparison):
  - OMP_WAIT_POLICY=PASSIVE: torch's OpenMP threads sleep between parallel regions instead of spinning against
    OpenBLAS's threads (read by libgomp when it loads, so set before torch is imported);
  - both thread pools set to THREADS: torch.set_num_threads (OpenMP) and OpenBLAS's (OPENBLAS_NUM_THREADS before it
    loads, openblas_set_num_threads after);
  - glibc malloc's mmap_threshold raised to its maximum (32 MiB on 64-bit) and trim_threshold to 1 GiB, so that the
    forward's large temporaries are reused from the heap instead of being mmap'd and page-faulted again every forward.
    glibc reads these when malloc initialises, i.e. at process start (mallopt(3): the MALLOC_MMAP_THRESHOLD_ and
    MALLOC_TRIM_THRESHOLD_ environment variables; glibc.malloc.* tunables in GLIBC_TUNABLES), so the script sets them
    and re-executes itself once;
  - torch.inference_mode around every forward.

The ACM model (the layout of bench/acm_exec.c's ViT-B: all 60 modules ACMs, N = 4 learners each; q, k, v and the
output projection: learners of width 96 without activation, kmin = 1; the MLP: learners of width 768 with GELU,
kmin = 0; a learner is Linear(768, h) + bias, GELU or nothing, Linear(h, 768) without bias). k per token is drawn from
the maximum-entropy distribution on {kmin..N} with mean beta * N per module and item, as bench/vit_random.h's
vr_draw_k does (numpy's generator, so not the same tokens, the same distribution). The sorted-prefix realisation, per
module: the batch's tokens sorted by k (descending; argsort inside the timed forward), then learner n's two GEMMs on
the prefix of the sorted tokens that use it (k >= n), its output added into that prefix, and one index_add_ (or
index_copy_ for q, k, v) of the sorted rows back into the tokens. No gates (our bench forces k the same way).

usage: torch_vit.py THREADS ROUNDS DENSE_GFLOP_PER_IMAGE [BATCHES=1,8] [BETAS=0.25,0.5,0.75] [--untuned]
       torch_vit.py --profile THREADS ROUNDS [BATCHES=1,8]
Prints Markdown tables: static and ACM latency (median of ROUNDS), GFLOP/s counted with our engine's FLOPs of the same
model (2 per multiply-add, matrix products only), and the ACM rows' realisation: speed-up over static / (static FLOPs /
ACM FLOPs), as bench/acm_exec.c computes it.
"""
import ctypes
import os
import statistics
import sys
import time

MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
TRIM_THRESHOLD = 1024 * 1024 * 1024


def tuned_env(threads):
    return {
        "OMP_WAIT_POLICY": "PASSIVE",
        "OMP_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
        "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    }


def blas_libs():
    """(path, ctypes library) of every OpenBLAS mapped into this process."""
    libs, seen = [], set()
    with open("/proc/self/maps") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            path = parts[5]
            if path in seen or ("blas" not in path and "lapack" not in path):
                continue
            seen.add(path)
            try:
                lib = ctypes.CDLL(path)
                lib.openblas_get_corename  # noqa: B018 (raises AttributeError when not OpenBLAS)
                libs.append((path, lib))
            except (OSError, AttributeError):
                pass
    return libs


def blas_core():
    """The core and threads of every OpenBLAS mapped into this process, or '?'."""
    out = []
    for path, lib in blas_libs():
        lib.openblas_get_corename.restype = ctypes.c_char_p
        out.append("%s, %d threads (%s)" % (lib.openblas_get_corename().decode(), lib.openblas_get_num_threads(), path))
    return "; ".join(out) if out else "?"


def maxent(kmin, n, mean):
    """p[k] on {kmin..n} with mean `mean`, p_k ∝ exp(θ k) (θ by bisection), as bench/vit_random.h's vr_maxent."""
    import math
    lo, hi, th = -60.0, 60.0, 0.0
    for _ in range(200):
        th = 0.5 * (lo + hi)
        z = sum(math.exp(th * (k - n)) for k in range(kmin, n + 1))
        m = sum(k * math.exp(th * (k - n)) for k in range(kmin, n + 1))
        if m / z < mean:
            lo = th
        else:
            hi = th
    p = [0.0] * (n + 1)
    for k in range(kmin, n + 1):
        p[k] = math.exp(th * (k - n))
    z = sum(p)
    return [x / z for x in p]


def build_acm(torch, D=768, depth=12, heads=12, N=4, hp=96, hm=768, T=197, classes=1000):
    """ViT-B/16 with every q, k, v, proj and MLP an ACM of N learners; weights random (std 0.02)."""
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, std=0.02):
        return torch.randn(*shape, generator=g) * std

    def acm(h, gelu, kmin):
        # W1 [N*h, D] (learner n: rows n*h..), b1 [N*h], W2 [D, N*h] stored per learner as [h, D] (transposed, so
        # that y += hid @ w2[n] is a plain GEMM)
        return {"w1": [rnd(h, D) for _ in range(N)], "b1": [rnd(h) for _ in range(N)],
                "w2t": [rnd(h, D) for _ in range(N)], "gelu": gelu, "kmin": kmin, "h": h}

    blocks = []
    for _ in range(depth):
        blocks.append({"ln1": (1 + rnd(D, std=0.1), rnd(D)), "ln2": (1 + rnd(D, std=0.1), rnd(D)),
                       "q": acm(hp, False, 1), "k": acm(hp, False, 1), "v": acm(hp, False, 1),
                       "o": acm(hp, False, 1), "mlp": acm(hm, True, 0)})
    return {"patch_w": rnd(D, 3, 16, 16), "patch_b": rnd(D), "cls": rnd(1, 1, D, std=0.5),
            "pos": rnd(1, T, D, std=0.5), "ln": (1 + rnd(D, std=0.1), rnd(D)), "head_w": rnd(classes, D),
            "head_b": rnd(classes), "blocks": blocks, "D": D, "H": heads, "N": N, "T": T}


def draw_k(torch, model, B, beta, rng):
    """k [B*T] per module (5 per block), as vr_draw_k: per item and module, max-entropy with mean beta * N."""
    import numpy as np
    N, T = model["N"], model["T"]
    ks = []
    for bl in model["blocks"]:
        row = []
        for name in ("q", "k", "v", "o", "mlp"):
            kmin = bl[name]["kmin"]
            p = maxent(kmin, N, max(beta * N, kmin))
            row.append(torch.from_numpy(rng.choice(N + 1, size=B * T, p=p).astype(np.int64)))
        ks.append(row)
    return ks


def acm_flops(model, ks, D=768):
    """Learner FLOPs saved against all learners on: sum over modules and tokens of (N - k) * 2 * (D h + h D)."""
    N, saved = model["N"], 0.0
    for bl, row in zip(model["blocks"], ks):
        for name, k in zip(("q", "k", "v", "o", "mlp"), row):
            h = bl[name]["h"]
            saved += float((N - k).sum()) * 2 * (2 * D * h)
    return saved


def plan(torch, k, N):
    """Tokens sorted by k descending, and the prefix length of each learner (tokens with k >= n)."""
    order = torch.argsort(k, descending=True)
    counts = torch.bincount(k, minlength=N + 1).tolist()
    prefix, acc = [0] * (N + 1), 0
    for n in range(N, 0, -1):
        acc += counts[n]
        prefix[n] = acc
    return order, prefix


def acm_module(torch, F, mod, x, order, prefix, out=None):
    """Sorted-prefix ACM: y[sorted] = sum_n learner_n(x[sorted][:P_n]); out[order] += y (or out = y scattered)."""
    xs = x.index_select(0, order)
    y = torch.zeros(x.shape[0], x.shape[1])
    for n in range(1, len(prefix)):
        P = prefix[n]
        if P == 0:
            break
        hid = torch.addmm(mod["b1"][n - 1], xs[:P], mod["w1"][n - 1].t())
        if mod["gelu"]:
            hid = F.gelu(hid)
        y[:P].addmm_(hid, mod["w2t"][n - 1])
    if out is None:
        return torch.zeros_like(x).index_copy_(0, order, y)
    return out.index_add_(0, order, y)


def acm_forward(torch, F, model, img, ks):
    B, D, H, N, T = img.shape[0], model["D"], model["H"], model["N"], model["T"]
    hd = D // H
    x = F.conv2d(img, model["patch_w"], model["patch_b"], stride=16).flatten(2).transpose(1, 2)
    x = torch.cat([model["cls"].expand(B, 1, D), x], 1) + model["pos"]
    x = x.reshape(B * T, D).contiguous()
    for bl, row in zip(model["blocks"], ks):
        plans = [plan(torch, k, N) for k in row]
        h = F.layer_norm(x, (D,), *bl["ln1"], eps=1e-6)
        q, k, v = (acm_module(torch, F, bl[nm], h, *plans[i]) for i, nm in enumerate(("q", "k", "v")))
        q, k, v = (t.view(B, T, H, hd).transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * hd ** -0.5, -1)
        a = torch.matmul(att, v).transpose(1, 2).reshape(B * T, D)
        x = acm_module(torch, F, bl["o"], a, *plans[3], out=x)
        h = F.layer_norm(x, (D,), *bl["ln2"], eps=1e-6)
        x = acm_module(torch, F, bl["mlp"], h, *plans[4], out=x)
    x = F.layer_norm(x.view(B, T, D)[:, 0], (D,), *model["ln"], eps=1e-6)
    return F.linear(x, model["head_w"], model["head_b"])


# torch.profiler's ops of torchvision's vit_b_16 (the fused multi-head attention path of inference) mapped onto the
# op names of bench/profile_vit.c: (op name, test on the input shapes) -> key. The qkv bias, scale and split
# (_transform_bias_rescale_qkv) count as qkv; GELU (its bias is in fc1's addmm) counts as bias_gelu; every add
# (the position embedding's one too) as add.
def prof_key(name, shapes):
    s0 = shapes[0] if shapes else []
    s1 = shapes[1] if len(shapes) > 1 else []
    s2 = shapes[2] if len(shapes) > 2 else []
    if name in ("aten::mkldnn_convolution", "aten::convolution", "aten::_convolution"):
        return "patch"
    if name == "aten::mm" and s1[-1:] == [2304]:
        return "qkv"
    if name == "aten::_transform_bias_rescale_qkv":
        return "qkv"
    if name == "aten::addmm":
        w = s2
        if w == [768, 3072]:
            return "fc1"
        if w == [3072, 768]:
            return "fc2"
        if w == [768, 768]:
            return "proj"
        if w == [768, 2304]:
            return "qkv"
        if w == [768, 1000]:
            return "head"
        return "gemm_other"
    if name == "aten::bmm":
        return "att_qk" if s1[-1:] == [197] else "att_pv"
    if name in ("aten::_softmax", "aten::_masked_softmax"):
        return "att_softmax"
    if name == "aten::native_layer_norm":
        return "layernorm"
    if name == "aten::gelu":
        return "bias_gelu"
    if name in ("aten::add", "aten::add_"):
        return "add"
    if name == "aten::cat":
        return "embed"
    return "other"


def profile(threads, rounds, batches):
    """Op-by-op profile of the static vit_b_16 (torch.profiler, self CPU time per op, per forward): 'TPROF' lines."""
    import torch
    import torchvision
    static = torchvision.models.vit_b_16(weights=None).eval()
    print("BLAS core (loaded OpenBLAS): %s; torch %s, %d threads" % (blas_core(), torch.__version__,
                                                                     torch.get_num_threads()))
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            static(x)
            total = 0.0
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], record_shapes=True) as prof:
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    static(x)
                    total += (time.perf_counter() - t0) / rounds * 1e3
            acc = {}
            for e in prof.key_averages(group_by_input_shape=True):
                k = prof_key(e.key, e.input_shapes)
                acc[k] = acc.get(k, 0.0) + e.self_cpu_time_total / 1e3 / rounds
            acc["other"] = acc.get("other", 0.0) + total - sum(acc.values())
            print("\n### PyTorch, static vit_b_16, batch %d, %d threads: %.1f ms per forward under the profiler" %
                  (b, threads, total))
            for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
                print("TPROF %d %d %s %.3f" % (threads, b, k, v))
            print("TPROF %d %d total %.3f" % (threads, b, total))
            sys.stdout.flush()
    return 0


def timed(fn, rounds):
    fn()  # warm-up
    ts = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return ts


def main():
    args = [a for a in sys.argv[1:] if a not in ("--untuned", "--profile")]
    untuned = "--untuned" in sys.argv
    prof = "--profile" in sys.argv
    if len(args) < (2 if prof else 3):
        print(__doc__)
        return 2
    threads, rounds = int(args[0]), int(args[1])
    if prof:
        gflop, batches = 0.0, [int(b) for b in (args[2] if len(args) > 2 else "1,8").split(",")]
    else:
        gflop, batches = float(args[2]), [int(b) for b in (args[3] if len(args) > 3 else "1,8").split(",")]
    betas = [float(b) for b in (args[4] if len(args) > 4 else "0.25,0.5,0.75").split(",")]
    env = tuned_env(threads)
    if not untuned and any(os.environ.get(k) != v for k, v in env.items()):
        os.environ.update(env)  # read by glibc and libgomp at process start: re-execute with them set
        os.execv(sys.executable, [sys.executable] + sys.argv)
    import numpy as np
    import torch
    import torch.nn.functional as F
    import torchvision

    torch.set_num_threads(threads)
    for _, lib in blas_libs():
        lib.openblas_set_num_threads(threads)
    torch.manual_seed(0)
    if prof:
        print("PyTorch peer tuned as for the timings (OMP_WAIT_POLICY=%s, MALLOC_MMAP_THRESHOLD_=%s)" %
              (os.environ.get("OMP_WAIT_POLICY"), os.environ.get("MALLOC_MMAP_THRESHOLD_")))
        return profile(threads, rounds, batches)
    print(torch.__config__.show())
    tuning = ("untuned (--untuned: torch.set_num_threads only)" if untuned else
              "tuned: OMP_WAIT_POLICY=%s, torch threads %d, OpenBLAS threads %s, MALLOC_MMAP_THRESHOLD_=%s, "
              "MALLOC_TRIM_THRESHOLD_=%s, torch.inference_mode" %
              (os.environ.get("OMP_WAIT_POLICY"), torch.get_num_threads(), os.environ.get("OPENBLAS_NUM_THREADS"),
               os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get("MALLOC_TRIM_THRESHOLD_")))
    print("torch %s, torchvision %s, %d threads, mkldnn available: %s" %
          (torch.__version__, torchvision.__version__, torch.get_num_threads(), torch.backends.mkldnn.is_available()))
    print("PyTorch peer %s" % tuning)
    static = torchvision.models.vit_b_16(weights=None).eval()
    model = build_acm(torch)
    print("BLAS core (loaded OpenBLAS): %s" % blas_core())
    rng = np.random.default_rng(1)
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            t_st = timed(lambda: static(x), rounds)
            ts = statistics.median(t_st)
            print("\n(4) PyTorch eager ViT-B/16, batch %d, %d threads, %s, median of %d rounds" %
                  (b, threads, "untuned" if untuned else "tuned", rounds))
            print("| model | beta | latency ms | GFLOP/s (our FLOP count) | speed-up | FLOP ratio | realisation |\n"
                  "|---|---|---|---|---|---|---|")
            print("| torch static (torchvision vit_b_16) | - | %.1f | %.1f | 1.00 | 1.00 | 1.00 |" %
                  (ts * 1e3, gflop * b / ts))
            sys.stdout.flush()
            # the ACM model with every learner on: its own static figure, to check that the sorted-prefix code is not
            # slower than torchvision for reasons other than the skipped work
            ks_full = [[torch.full((b * model["T"],), model["N"], dtype=torch.int64) for _ in range(5)]
                       for _ in model["blocks"]]
            tf = statistics.median(timed(lambda: acm_forward(torch, F, model, x, ks_full), rounds))
            print("| torch sorted prefix, every learner on | 1.00 | %.1f | %.1f | %.2f | 1.00 | %.2f |" %
                  (tf * 1e3, gflop * b / tf, ts / tf, ts / tf))
            for beta in betas:
                ks = draw_k(torch, model, b, beta, rng)
                fa = gflop * 1e9 * b - acm_flops(model, ks)
                t_acm = timed(lambda: acm_forward(torch, F, model, x, ks), rounds)
                ta = statistics.median(t_acm)
                ratio = gflop * 1e9 * b / fa
                print("| torch sorted prefix | %.2f | %.1f | %.1f | %.2f | %.2f | **%.2f** |" %
                      (beta, ta * 1e3, fa / ta / 1e9, ts / ta, ratio, ts / ta / ratio))
                sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
