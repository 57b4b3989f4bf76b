#!/usr/bin/python3
"""torch_vit.py — issue 6's peer: PyTorch eager, torchvision's vit_b_16 with random weights, batch 1 and 8.

By hand only, never in CI: needs Debian's python3-torch and python3-torchvision (apt-get install python3-torch
python3-torchvision), run under /usr/bin/python3. bench/acm_exec.sh calls it when torch imports, with the same thread
count as our engine and OPENBLAS_CORETYPE set to the core our engine ran on, so both use the same OpenBLAS kernels
when torch's matrix products go to OpenBLAS (torch.__config__.show() says which BLAS it was built with; the loaded
OpenBLAS's core is printed from the library itself).

usage: torch_vit.py THREADS ROUNDS DENSE_GFLOP_PER_IMAGE [BATCHES=1,8]
Prints a Markdown table: batch, median latency (ms), GFLOP/s counted with our engine's FLOPs of the same model
(2 per multiply-add, matrix products only) so that the two rates compare.
"""
import ctypes
import statistics
import sys
import time


def blas_core():
    """The core of every OpenBLAS mapped into this process (openblas_get_corename), or '?'."""
    cores = []
    seen = set()
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
                fn = lib.openblas_get_corename
                fn.restype = ctypes.c_char_p
                cores.append("%s (%s)" % (fn().decode(), path))
            except (OSError, AttributeError):
                pass
    return "; ".join(cores) if cores else "?"


def main():
    if len(sys.argv) < 4:
        print(__doc__)
        return 2
    threads, rounds, gflop = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    batches = [int(b) for b in (sys.argv[4] if len(sys.argv) > 4 else "1,8").split(",")]
    import torch
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    print(torch.__config__.show())
    print("torch %s, torchvision %s, %d threads, mkldnn available: %s" %
          (torch.__version__, torchvision.__version__, torch.get_num_threads(), torch.backends.mkldnn.is_available()))
    model = torchvision.models.vit_b_16(weights=None).eval()
    print("BLAS core (loaded OpenBLAS): %s" % blas_core())
    print("\n(4) PyTorch eager vit_b_16, %d threads, median of %d rounds" % (threads, rounds))
    print("| batch | latency ms | GFLOP/s (our FLOP count) |\n|---|---|---|")
    with torch.inference_mode():
        for b in batches:
            x = torch.randn(b, 3, 224, 224)
            model(x)  # warm-up
            ts = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                model(x)
                ts.append(time.perf_counter() - t0)
            t = statistics.median(ts)
            print("| %d | %.1f | %.1f |" % (b, t * 1e3, gflop * b / t))
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
