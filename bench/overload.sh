#!/usr/bin/env bash
# The overload experiment (issue "acm CLI and load generator"): a server that bends instead of breaking.
#  1. S, the saturation throughput of the shipped ACM model with the budget pinned to 1 (X-Compute-Budget-Min: 1):
#     closed loop, OVERLOAD_CONNS connections, the 200s per second. Also the same at a pinned beta = 0.25
#     (X-Compute-Budget: 0.25), whose ratio to S says which load the adaptive mode can be asked to carry.
#  2. Open loop (Poisson arrivals, latency from each request's scheduled send time) at 0.5, 1, 1.5, 2 and 3 x S, every
#     request with a 50 ms deadline, in two modes: static (budget pinned to 1) and adaptive (the deadline chooses beta).
# Every request is a Fashion-MNIST test image with its label (acm bench), so accuracy is accuracy under load.
# Prints a table (offered load, throughput, status counts, deadline attainment, p99, accuracy, mean beta) and writes
# OUT/overload.png (p99 latency, attainment, accuracy and mean beta against offered load / S) and OUT/*.json (each
# run's acm bench --json report).
# Knobs: OVERLOAD_MODEL (default models/fmnist-vit-acm.safetensors), OVERLOAD_SECS (10 per run), OVERLOAD_DEADLINE_MS
# (50), OVERLOAD_LOADS ("0.5 1 1.5 2 3"), OVERLOAD_CONNS (32), OVERLOAD_WORKERS (acmd's default: the cores less one),
# OVERLOAD_BATCH (8), OVERLOAD_ACMD_ARGS (more acmd flags, e.g. "--worker-nice 10"), OVERLOAD_OUT (bench/overload), OVERLOAD_REQUEST_START (1: the deadline runs stamp X-Request-Start
# with their scheduled send, so acmd counts each deadline from where the client counts it; 0: from arrival at acmd).  Usage: bash bench/overload.sh [BUILD]
set -eu
B=${1:-build}
MODEL=${OVERLOAD_MODEL:-models/fmnist-vit-acm.safetensors}
SECS=${OVERLOAD_SECS:-10}; DL=${OVERLOAD_DEADLINE_MS:-50}; LOADS=${OVERLOAD_LOADS:-0.5 1 1.5 2 3}
CONNS=${OVERLOAD_CONNS:-32}; BATCH=${OVERLOAD_BATCH:-8}; OUT=${OVERLOAD_OUT:-bench/overload}
[ -f "$MODEL" ] || { echo "overload: no model $MODEL (the shipped ACM model; OVERLOAD_MODEL=PATH for another)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "overload: gnuplot not installed (make deps)" >&2; exit 1; }
make --no-print-directory "$B/acmd" "$B/acm" >/dev/null
mkdir -p "$OUT"
tmp=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
stamp=(); [ "${OVERLOAD_REQUEST_START:-1}" = 1 ] && stamp=(--request-start)
workers=(); [ -n "${OVERLOAD_WORKERS:-}" ] && workers=(--workers "$OVERLOAD_WORKERS")
read -r -a more <<< "${OVERLOAD_ACMD_ARGS:-}"
"$B/acmd" --model "fmnist=$MODEL" "${workers[@]}" "${more[@]}" --max-batch "$BATCH" --log-level warn --listen 127.0.0.1:0 \
    --port-file "$tmp/port" 2>"$tmp/acmd.log" & pid=$!
for _ in $(seq 400); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$URL/v2/health/ready" >/dev/null || { echo "overload: acmd did not become ready:"; cat "$tmp/acmd.log"; exit 1; }
core=$(curl -s "$URL/metrics" | sed -nE 's/.*blas_core="([^"]*)".*/\1/p' | head -1)
echo "overload: model $MODEL, ${SECS}s per run, deadline ${DL} ms, batch $BATCH, $(nproc) CPUs, BLAS core ${core:-?}," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg), X-Request-Start ${stamp[*]:-off}, acmd ${workers[*]} ${more[*]}"

# one field (a/b/c) of an acm bench --json report
field() { /usr/bin/python3 -c 'import json,sys
o=json.load(open(sys.argv[1]))
for k in sys.argv[2].split("/"):
    o = o.get(k) if isinstance(o, dict) else None
print("" if o is None else (f"{o:.6g}" if isinstance(o, float) else o))' "$1" "$2"; }
status() { /usr/bin/python3 -c 'import json,sys
s=json.load(open(sys.argv[1]))["by_status"]; print(s.get(sys.argv[2], 0))' "$1" "$2"; }
bench() { local out=$1; shift; "$B/acm" bench --server "$URL" --model fmnist --no-progress --json "$@" > "$out"; }

# warm-up: the cost model and the caches
bench "$tmp/warm.json" -c 8 -d 3
bench "$OUT/saturation_b1.json" -c "$CONNS" -d "$SECS" --budget-min 1
bench "$OUT/saturation_b025.json" -c "$CONNS" -d "$SECS" --budget 0.25
S=$(field "$OUT/saturation_b1.json" ok_rps); S25=$(field "$OUT/saturation_b025.json" ok_rps)
ratio=$(awk -v a="$S25" -v b="$S" 'BEGIN { printf "%.2f", a / b }')
echo "saturation: beta 1 (pinned) S = $S ok/s, p50 $(field "$OUT/saturation_b1.json" latency_ms/p50) ms;" \
     "beta 0.25 $S25 ok/s = ${ratio} x S (hard target: $(awk -v r="$ratio" 'BEGIN { print (r < 2.2 ? "1.5" : "2") }') x S)"

printf '\n| mode | load/S | offered/s | ok/s | 200 | 429 | 504 | other | lost | attain %% | p99 ms (all) | accuracy %% | mean beta |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
: > "$tmp/plot.dat"
for f in $LOADS; do
    rate=$(awk -v f="$f" -v s="$S" 'BEGIN { printf "%.1f", f * s }')
    for mode in static adaptive; do
        j="$OUT/${mode}_${f}.json"
        if [ "$mode" = static ]; then bench "$j" -r "$rate" -d "$SECS" --deadline-ms "$DL" --budget-min 1 "${stamp[@]}"
        else bench "$j" -r "$rate" -d "$SECS" --deadline-ms "$DL" "${stamp[@]}"; fi
        ok=$(status "$j" 200); e429=$(status "$j" 429); e504=$(status "$j" 504)
        other=$(/usr/bin/python3 -c 'import json,sys
s=json.load(open(sys.argv[1]))["by_status"]; print(sum(v for k,v in s.items() if k not in ("200","429","504")))' "$j")
        errs=$(field "$j" errors); acc=$(field "$j" accuracy/accuracy); beta=$(field "$j" budget_applied_mean)
        att=$(field "$j" deadline/attainment); p99=$(field "$j" latency_all_ms/p99)
        printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.2f | %.1f | %.2f | %s |\n' "$mode" "$f" "$rate" \
            "$(field "$j" ok_rps)" "$ok" "$e429" "$e504" "$other" "$errs" "$(awk -v a="$att" 'BEGIN { print 100 * a }')" \
            "${p99:-0}" "$(awk -v a="${acc:-0}" 'BEGIN { print 100 * a }')" "${beta:-}"
        [ "$(field "$j" accounted)" = True ] || echo "overload: $j: requests not all accounted for" >&2
        echo "$mode $f ${p99:-0} $att ${acc:-0} ${beta:-0}" >> "$tmp/plot.dat"
    done
done
grep '^static' "$tmp/plot.dat" > "$tmp/static.dat"; grep '^adaptive' "$tmp/plot.dat" > "$tmp/adaptive.dat"
gnuplot <<EOF
set terminal pngcairo size 1100,800 font ",10"
set output "$OUT/overload.png"
set multiplot layout 2,2 title "acmd under overload: $(basename "$MODEL"), ${DL} ms deadline, S = $S req/s (beta 1)"
set xlabel "offered load / S"; set key top left; set grid
set ylabel "p99 latency, all answers (ms)"; set logscale y
plot "$tmp/static.dat" u 2:3 w lp t "static (beta 1)", "$tmp/adaptive.dat" u 2:3 w lp t "adaptive (deadline)", $DL w l dt 2 t "deadline"
unset logscale y; set ylabel "deadline attainment (%)"; set yrange [0:105]; set key bottom left
plot "$tmp/static.dat" u 2:(100*\$4) w lp t "static", "$tmp/adaptive.dat" u 2:(100*\$4) w lp t "adaptive", 99 w l dt 2 t "99%"
set ylabel "accuracy of the 200s (%)"; set yrange [*:*]
plot "$tmp/static.dat" u 2:(100*\$5) w lp t "static", "$tmp/adaptive.dat" u 2:(100*\$5) w lp t "adaptive"
set ylabel "mean beta applied"; set yrange [0:1.05]
plot "$tmp/static.dat" u 2:6 w lp t "static", "$tmp/adaptive.dat" u 2:6 w lp t "adaptive"
unset multiplot
EOF
echo; echo "overload: wrote $OUT/overload.png and the runs' JSON reports in $OUT/"
