#!/usr/bin/env bash
# Training throughput of `acm-train base` against the 2-thread sgemm ceiling (issue 3; see bench/RESULTS.md).
# `make bench` builds $1/bench/{sgemm_ceiling,train_throughput} (Makefile rule bench/NAME.c) and then runs this.
set -eu
B=${1:-build}
[ -x "$B/bench/train_throughput" ] && [ -x "$B/bench/sgemm_ceiling" ] || make "$B/bench/train_throughput" "$B/bench/sgemm_ceiling"
"$B/bench/sgemm_ceiling" --threads 2
"$B/bench/train_throughput" --threads 2 --rounds "${ROUNDS:-5}"                 # width 192 (the suggested configuration)
"$B/bench/train_throughput" --threads 2 --rounds "${ROUNDS:-5}" --dim 128 --heads 4   # models/fmnist-vit
