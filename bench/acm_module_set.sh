#!/usr/bin/env bash
# acm_module_set.sh — which modules should a small ViT make ACMs? (issue "acm-train acmize": choose the shipped set by
# measured latency as well as FLOPs). From a static model it makes three ACM models with the same weights layout as a
# real conversion (q,k,v,o,mlp / q,k,v,mlp / mlp), trained only a few steps (latency depends on the k each token
# runs, which the cap policy fixes from the budget, not on how well the learners are trained), calibrates them, and
# measures the CPU time of `acm-train eval` over the 10k test images at batch 8 with 1 BLAS thread, for the static
# model and each set at beta 0.5 and 0.25, ROUNDS times, interleaved. CPU time (user + sys) rather than wall time:
# on a shared machine the other processes inflate wall time far more than the CPU time of a 1-thread process.
# usage: bash bench/acm_module_set.sh [BASE (models/fmnist-vit.safetensors)] [BUILD (build)]   env: ROUNDS (3)
set -euo pipefail
BASE=${1:-models/fmnist-vit.safetensors}; B=${2:-build}; ROUNDS=${ROUNDS:-3}
[ -f "$BASE" ] || { echo "acm_module_set: no static model $BASE" >&2; exit 1; }
[ -x "$B/acm-train" ] || make "$B/acm-train"
T=$B/acm-train
W=$(mktemp -d /tmp/acm-module-set-XXXXXX)
trap 'rm -rf "$W"' EXIT
echo "acm_module_set: $BASE, $("$T" info "$BASE" | grep -m1 -o 'BLAS [^,]*' || true), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), load $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A MODS=([all]=q,k,v,o,mlp [qkvmlp]=q,k,v,mlp [mlp]=mlp)
for s in all qkvmlp mlp; do
    "$T" acmize --base "$BASE" --out "$W/$s.safetensors" --modules "${MODS[$s]}" --epochs 0.02,0.02,0.02 \
        --train-limit 3000 --quiet
    "$T" calibrate "$W/$s.safetensors" --images 200 --betas 0.2:0.8:0.1 --threads 1 >/dev/null
done
# one measurement: prints "CPU_SECONDS GFLOPS_PER_IMAGE"
measure() {
    /usr/bin/time -f "%U %S" -o "$W/t" "$T" eval "$@" --threads 1 --batch 8 --json > "$W/j" 2>/dev/null
    echo "$(awk '{print $1 + $2}' "$W/t") $(grep -o '"gflops_per_image": [0-9.e-]*' "$W/j" | awk '{print $2}')"
}
: > "$W/rows"
for r in $(seq "$ROUNDS"); do
    echo "static - $(measure "$BASE")" >> "$W/rows"
    for s in all qkvmlp mlp; do for b in 0.5 0.25; do
        echo "$s $b $(measure "$W/$s.safetensors" --policy cap --budget $b)" >> "$W/rows"
    done; done
    echo "  round $r of $ROUNDS done"
done
echo
echo "| modules | beta (cap) | GFLOP/image | CPU s per 10k images (median of $ROUNDS; all rounds) | speed-up vs static | FLOP ratio | realisation |"
echo "|---|---|---|---|---|---|---|"
awk '
{ key = $1 " " $2; n[key]++; v[key, n[key]] = $3; g[key] = $4; if (!(key in seen)) { seen[key] = 1; order[++k] = key } }
function median(key,   i, j, t, a, m) {
    m = n[key]; for (i = 1; i <= m; i++) a[i] = v[key, i]
    for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
END {
    s0 = median("static -"); g0 = g["static -"]
    for (i = 1; i <= k; i++) {
        key = order[i]; split(key, p, " "); med = median(key); all = ""
        for (j = 1; j <= n[key]; j++) all = all (j > 1 ? ", " : "") v[key, j]
        name = p[1] == "static" ? "static" : p[1] == "all" ? "q,k,v,o,mlp" : p[1] == "qkvmlp" ? "q,k,v,mlp" : "mlp"
        printf "| %s | %s | %.4f | **%.1f** (%s) | %.2fx | %.2fx | %.2f |\n", name, p[2], g[key], med, all, s0 / med,
               g0 / g[key], (s0 / med) / (g0 / g[key])
    }
}' "$W/rows"
