#!/usr/bin/env bash
# Runs every test binary given as argument (Criterion), prints each one's result and time, and closes with the plain
# summary line "N passed, N failed". Exit status 1 if any test failed or crashed.
set -u
pass=0; fail=0; bad_bins=()
for t in "$@"; do
    start=$(date +%s.%N)
    out=$("$t" --jobs 2 2>&1); rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
    syn=$(printf '%s\n' "$out" | grep -E 'Synthesis: Tested' | tail -1)
    p=$(printf '%s' "$syn" | sed -nE 's/.*Passing: ([0-9]+).*/\1/p'); f=$(printf '%s' "$syn" | sed -nE 's/.*Failing: ([0-9]+).*/\1/p')
    c=$(printf '%s' "$syn" | sed -nE 's/.*Crashing: ([0-9]+).*/\1/p')
    p=${p:-0}; f=${f:-0}; c=${c:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then f=1; fi
    # Criterion reports a test as passed before its process exits, so a sanitizer's report at exit (a leak) does not
    # fail it: any sanitizer report fails the binary here.
    if printf '%s\n' "$out" | grep -qE 'ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|runtime error:|WARNING: ThreadSanitizer'; then
        f=$((f + 1)); rc=1
    fi
    pass=$((pass + p)); fail=$((fail + f + c))
    if [ "$rc" -ne 0 ] || [ "$f" -ne 0 ] || [ "$c" -ne 0 ]; then
        bad_bins+=("$t"); printf '%s\n' "$out" | grep -vE '^\[----\] *$' | tail -40
        printf '  ✗ %-44s %3s passed %3s failed  %6ss\n' "${t#*/tests/}" "$p" "$((f + c))" "$secs"
    else
        printf '  ✓ %-44s %3s passed %3s failed  %6ss\n' "${t#*/tests/}" "$p" 0 "$secs"
    fi
done
[ ${#bad_bins[@]} -gt 0 ] && printf 'failed: %s\n' "${bad_bins[*]}"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
