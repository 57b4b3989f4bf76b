#!/usr/bin/env bash
# Issue 26: op-by-op profile of the static ViT-B/16, the engine (build/bench/profile_vit: its backend's ops timed one by
# one) against PyTorch's profiler on torchvision's vit_b_16 (bench/torch_vit.py --profile, tuned as for the timings),
# one table per thread count and batch: op, acm ms, PyTorch ms per forward. bench/RESULTS.md has the runs.
# Knobs (environment): THREADS ("1 2"), BATCHES (1,8), ROUNDS (3), NICE (5), SSE (0; 1: the engine's kernels on their
# SSE path, as before issue 26's AVX-512 kernels).
# usage: bash bench/profile_vit.sh [BUILD_DIR=build]
set -eu
B=${1:-build}
TS=${THREADS:-1 2}
BS=${BATCHES:-1,8}
R=${ROUNDS:-3}
N=${NICE:-5}
[ -x "$B/bench/profile_vit" ] || make --no-print-directory "$B/bench/profile_vit"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== bench/profile_vit.sh: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for T in $TS; do
    nice -n "$N" "$B/bench/profile_vit" $([ "${SSE:-0}" = 1 ] && echo --sse) --threads "$T" --rounds "$R" --batches "$BS" | tee -a "$log" | grep -v '^PROF'
    core=$(sed -n 's/^profile_vit: BLAS core \([A-Za-z0-9]*\),.*/\1/p' "$log" | head -1)
    if /usr/bin/python3 -c 'import torch, torchvision' 2>/dev/null; then
        OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$core} \
            nice -n "$N" /usr/bin/python3 bench/torch_vit.py --profile "$T" "$R" "$BS" | tee -a "$log" | grep -v '^TPROF'
    else
        echo "PyTorch side skipped: /usr/bin/python3 cannot import torch and torchvision"
    fi
done
# the joined tables: PROF/TPROF lines are "threads batch op ms"
awk '
$1 == "PROF" || $1 == "TPROF" {
    k = $2 " " $3
    if (!(k in seen)) { seen[k] = 1; keys[++nk] = k }
    if (!(($2, $3, $4) in known)) { known[$2, $3, $4] = 1; ops[k, ++nops[k]] = $4 }
    if ($1 == "PROF") acm[$2, $3, $4] = $5; else pt[$2, $3, $4] = $5
}
END {
    name["patch"] = "patch embed"; name["embed"] = "cls + pos"; name["layernorm"] = "LayerNorm"
    name["qkv"] = "GEMM qkv (torch: + bias, scale, split)"; name["att_qk"] = "attention QK^T"
    name["att_softmax"] = "attention softmax"; name["att_pv"] = "attention PV"; name["proj"] = "GEMM proj"
    name["residual_copy"] = "residual copy"; name["fc1"] = "GEMM fc1 (acm: without bias)"
    name["bias_gelu"] = "bias + GELU (torch: GELU)"; name["gelu"] = "GELU"; name["fc2"] = "GEMM fc2"
    name["add"] = "adds"; name["head"] = "head"; name["gemm_other"] = "GEMM other"; name["other"] = "other"
    name["total"] = "**total (forward)**"
    for (i = 1; i <= nk; i++) {
        k = keys[i]; split(k, tb, " ")
        printf "\n#### static ViT-B/16, %s thread(s), batch %s: ms per forward\n", tb[1], tb[2]
        print "| op | acm ms | PyTorch ms | acm − PyTorch ms |"
        print "|---|---|---|---|"
        for (j = 1; j <= nops[k]; j++) {
            o = ops[k, j]
            if (o == "total") continue
            a = (tb[1] SUBSEP tb[2] SUBSEP o) in acm ? acm[tb[1], tb[2], o] : ""
            p = (tb[1] SUBSEP tb[2] SUBSEP o) in pt ? pt[tb[1], tb[2], o] : ""
            d = (a != "" || p != "") ? sprintf("%+.1f", a - p) : ""
            printf "| %s | %s | %s | %s |\n", (o in name ? name[o] : o), a == "" ? "–" : sprintf("%.1f", a), \
                p == "" ? "–" : sprintf("%.1f", p), d
        }
        printf "| %s | %.1f | %.1f | %+.1f |\n", name["total"], acm[tb[1], tb[2], "total"], pt[tb[1], tb[2], "total"], \
            acm[tb[1], tb[2], "total"] - pt[tb[1], tb[2], "total"]
    }
}' "$log"
