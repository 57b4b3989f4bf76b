#!/usr/bin/env bash
# Runs every test binary given as argument (Criterion), prints each one's result and time, and closes with the plain
# summary line "N passed, N failed". Exit status 1 if any test failed or crashed.
set -u
# LeakSanitizer blocks whose allocation stacks hold no frame but the allocator's and libcriterion's: Criterion's own
# runner (2.4, --jobs 2) leaves two such 48-byte blocks at the exit of some binaries. They are the only leaks let
# through (exit 0); a leak with any other frame on its stack (ours, or a test's) fails the binary as before.
criterion_only_leaks() {
    awk '/^(Direct|Indirect) leak/ { if (blk && ours) bad = 1; blk = 1; ours = 0; n++; next }
         blk && /^ *#[0-9]+ / { if ($1 != "#0" && $0 !~ /libcriterion\.so/) ours = 1; next }
         blk && !/^ *#/ { if (ours) bad = 1; blk = 0 }
         END { if (blk && ours) bad = 1; exit (n == 0 || bad) }'
}
pass=0; fail=0; bad_bins=()
for t in "$@"; do
    start=$(date +%s.%N)
    out=$("$t" --jobs 2 2>&1); rc=$?
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
    syn=$(printf '%s\n' "$out" | grep -E 'Synthesis: Tested' | tail -1)
    p=$(printf '%s' "$syn" | sed -nE 's/.*Passing: ([0-9]+).*/\1/p'); f=$(printf '%s' "$syn" | sed -nE 's/.*Failing: ([0-9]+).*/\1/p')
    c=$(printf '%s' "$syn" | sed -nE 's/.*Crashing: ([0-9]+).*/\1/p')
    p=${p:-0}; f=${f:-0}; c=${c:-0}
    # Criterion reports a test as passed before its process exits, so a sanitizer's report at exit (a leak) does not
    # fail it: any sanitizer report fails the binary here, but for Criterion's own leaks (above), whose report also
    # sets the exit status.
    san=$(printf '%s\n' "$out" | grep -E 'ERROR: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|SUMMARY: (Address|Leak|Thread|UndefinedBehavior)Sanitizer|runtime error:|WARNING: ThreadSanitizer')
    if [ -n "$san" ] && ! printf '%s\n' "$san" | grep -qvE 'ERROR: LeakSanitizer|SUMMARY: (Address|Leak)Sanitizer: [0-9]+ byte\(s\) leaked' &&
       printf '%s\n' "$out" | criterion_only_leaks; then
        san=
        [ "$f" -eq 0 ] && [ "$c" -eq 0 ] && [ "$p" -gt 0 ] && rc=0
        echo "  (${t#*/tests/}: LeakSanitizer reported only Criterion's own blocks: not ours, let through)"
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && [ "$c" -eq 0 ]; then f=1; fi
    if [ -n "$san" ]; then
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
