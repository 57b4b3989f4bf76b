#!/usr/bin/env bash
# Issue 6, fast ACM execution (bench/RESULTS.md): build/bench/acm_exec prints tables (1) ViT-B ACM vs static,
# (1b) schedules per module, (3) static GFLOP/s vs the same-run sgemm ceiling and (5) workers x BLAS threads; then the
# PyTorch eager peer (4) when Debian's python3-torch and python3-torchvision are installed (by hand, never in CI), and
# (2) the shipped Fashion-MNIST models once models/fmnist-vit-acm.safetensors exists.
# Knobs (environment): THREADS (default: every core; a list such as "1 2" runs the engine and the peer once per count),
# ROUNDS (3), NICE (5: the level of the machine's other long jobs), MODULES (1; 0 skips table 1b), POOL_AB (0; 1 adds
# table 6, the worker's pool on and off in one process).
# usage: bash bench/acm_exec.sh [BUILD_DIR=build]
set -eu
B=${1:-build}
TS=${THREADS:-$(nproc)}
R=${ROUNDS:-3}
N=${NICE:-5}
extra=()
[ "${MODULES:-1}" = 0 ] && extra+=(--no-modules)
[ "${POOL_AB:-0}" = 1 ] && extra+=(--pool-ab)
[ -x "$B/bench/acm_exec" ] || make --no-print-directory "$B/bench/acm_exec"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== bench/acm_exec.sh: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for T in $TS; do
nice -n "$N" "$B/bench/acm_exec" --threads "$T" --rounds "$R" --throughput 1 "${extra[@]}" | tee "$log"
core=$(sed -n 's/^acm_exec: BLAS core \([A-Za-z0-9]*\),.*/\1/p' "$log" | head -1)
gflop=$(sed -n 's/.*dense \([0-9.]*\) GFLOP per image.*/\1/p' "$log" | head -1)
if /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} \
        nice -n "$N" /usr/bin/python3 bench/torch_vit.py "$T" "$R" "$gflop"
else
    echo "(4) PyTorch peer skipped: /usr/bin/python3 cannot import torch and torchvision" \
         "(apt-get install python3-torch python3-torchvision, by hand; never in CI)"
fi
done
T=${TS##* }
if [ -f models/fmnist-vit-acm.safetensors ] && [ -f models/fmnist-vit.safetensors ]; then
    nice -n "$N" "$B/bench/acm_exec" --threads "$T" --rounds "$R" --no-forward --no-modules \
        --fmnist models/fmnist-vit-acm.safetensors models/fmnist-vit.safetensors \
        /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
else
    echo "(2) Fashion-MNIST skipped: models/fmnist-vit-acm.safetensors and models/fmnist-vit.safetensors not both there yet"
fi
