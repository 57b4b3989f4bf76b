#!/usr/bin/env bash
# Builds bench/train_throughput.c and bench/sgemm_ceiling.c against the libraries in $1 (default build) and runs
# them: training images/s and GFLOP/s against the 2-thread sgemm ceiling (issue 3; see bench/RESULTS.md).
set -eu
B=${1:-build}
CFLAGS="-std=c11 -D_GNU_SOURCE -O2 -march=x86-64-v2 -fno-fast-math -I. -Iengine -Iproto -I/usr/include/openblas"
LIBS="$B/libacmtrain.a $B/libacmproto.a $B/libacm.a -L/usr/lib/x86_64-linux-gnu/openblas-pthread -lopenblas -lfftw3f -ljansson -lnettle -lz -lm -lpthread"
mkdir -p "$B/bench"
cc $CFLAGS -o "$B/bench/train_throughput" bench/train_throughput.c $LIBS
cc $CFLAGS -o "$B/bench/sgemm_ceiling" bench/sgemm_ceiling.c $LIBS
"$B/bench/sgemm_ceiling" --threads 2
"$B/bench/train_throughput" --threads 2 --rounds ${ROUNDS:-5}
