#!/usr/bin/env bash
# Runs each libFuzzer target (build/fuzz/fuzz_NAME, from `make fuzz-build`) for SECONDS on its committed corpus
# tests/fuzz/corpus/NAME (read only: new inputs go to build/fuzz/work/NAME, crashes, leaks and timeouts to
# build/fuzz/artifacts/NAME-*). Prints one line per target: executions, seconds, corpus size, result. Exit 1 on any
# finding. A finding worth keeping becomes a regression test by copying it into the committed corpus (test_replay).
# Usage: bash tests/fuzz/run.sh SECONDS NAME...
set -u
secs=$1; shift
mkdir -p build/fuzz/artifacts
fail=0
for t in "$@"; do
    mkdir -p "build/fuzz/work/$t"
    log="build/fuzz/work/$t.log"
    start=$(date +%s)
    "build/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
        -artifact_prefix="build/fuzz/artifacts/$t-" "build/fuzz/work/$t" "tests/fuzz/corpus/$t" >"$log" 2>&1
    rc=$?
    execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
    corpus=$(ls "build/fuzz/work/$t" | wc -l)
    if [ "$rc" -ne 0 ]; then
        fail=1
        grep -E "ERROR|SUMMARY|runtime error|invariant|Test unit written" "$log" | head -20
        printf '  ✗ fuzz_%-12s %10s execs %4ss  rc %d (log: %s)\n' "$t" "${execs:-?}" "$(( $(date +%s) - start ))" "$rc" "$log"
    else
        printf '  ✓ fuzz_%-12s %10s execs %4ss  %5s new corpus files, no finding\n' "$t" "${execs:-?}" "$(( $(date +%s) - start ))" "$corpus"
    fi
done
exit $fail
