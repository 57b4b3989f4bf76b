#!/usr/bin/env bash
# Issue "one ACM model for every budget", experiment 4 (models/fmnist-vit-acm.md, "One model for every budget"): the
# adaptive model against the uniform baseline (every token runs K learners, no gates) at equal measured latency and
# equal FLOPs, side by side in one run (build/bench/equal_latency; it prints the BLAS core it ran on).
# The uniform baseline is an arm of train/scripts/budget_arms.sh (phase 3 with --uniform K, not shipped): without it
# this benchmark says so and stops.
# Knobs (environment): ADAPTIVE (default models/fmnist-vit-acm.safetensors), UNIFORM (default
# ../ckpt/arms/uniform_1_s1/model.safetensors), K (1), POLICY (cap), BETAS (0.15,0.2,0.25,0.3,0.35), ROUNDS (7),
# THREADS (1), NICE (0).
# usage: bash bench/equal_latency.sh [BUILD_DIR=build]
set -eu
B=${1:-build}
A=${ADAPTIVE:-models/fmnist-vit-acm.safetensors}
U=${UNIFORM:-../ckpt/arms/uniform_1_s1/model.safetensors}
if [ ! -f "$U" ]; then
    echo "equal_latency: skipped: no uniform baseline at $U (make it with train/scripts/budget_arms.sh ... uniform:1," \
         "or set UNIFORM=PATH K=K)"
    exit 0
fi
make --no-print-directory "$B/bench/equal_latency" >/dev/null   # relinks after an engine change
echo "== bench/equal_latency.sh: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)," \
     "$(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
nice -n "${NICE:-0}" "$B/bench/equal_latency" --adaptive "$A" --uniform "$U" --k "${K:-1}" --policy "${POLICY:-cap}" \
    --betas "${BETAS:-0.15,0.2,0.25,0.3,0.35}" --rounds "${ROUNDS:-7}" --threads "${THREADS:-1}"
