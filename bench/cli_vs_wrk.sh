#!/usr/bin/env bash
# acm bench against wrk on GET /v2/health/live of one acmd, alternating rounds in the same run (bench/RESULTS.md,
# "acm bench vs wrk"). Both get the same connections and threads; the figure is the median of the per-round ratios
# acm_bench_req_per_s / wrk_req_per_s (issue 9's target: >= 0.5).
# The model is the golden random-weight ViT (tests/golden/vit_a.safetensors; the health route does not compute).
# Knobs: ACM_BENCH_CONNS (32), ACM_BENCH_THREADS (2), ACM_BENCH_SECS (3), ACM_BENCH_ROUNDS (3). Loopback only.
# Usage: bash bench/cli_vs_wrk.sh [BUILD]
set -eu
B=${1:-build}
C=${ACM_BENCH_CONNS:-32}; T=${ACM_BENCH_THREADS:-2}; D=${ACM_BENCH_SECS:-3}; R=${ACM_BENCH_ROUNDS:-3}
command -v wrk >/dev/null || { echo "cli_vs_wrk: wrk not installed (make deps)"; exit 1; }
make --no-print-directory "$B/acmd" "$B/acm" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
"$B/acmd" --model fmnist=tests/golden/vit_a.safetensors --workers 1 --log-level warn \
    --listen 127.0.0.1:0 --port-file "$tmp/port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/port" ] && break; sleep 0.05; done
P=$(cat "$tmp/port"); URL=http://127.0.0.1:$P
for _ in $(seq 400); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.05; done
echo "cli_vs_wrk: $URL/v2/health/live, $C connections, $T threads, ${D}s per run, $R rounds, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  wrk:       wrk -t$T -c$C -d${D}s $URL/v2/health/live"
echo "  acm bench: $B/acm bench --server $URL --get /v2/health/live -c $C -t $T -d $D --json"
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
: > "$tmp/ratios"
for round in $(seq "$R"); do
    w=$(wrk -t"$T" -c"$C" -d"${D}s" "$URL/v2/health/live" | awk '/^Requests\/sec:/ { print $2 }')
    "$B/acm" bench --server "$URL" --get /v2/health/live -c "$C" -t "$T" -d "$D" --no-progress --json > "$tmp/acm.json"
    a=$(grep -o '"throughput_rps": [0-9.e+]*' "$tmp/acm.json" | awk '{ print $2 }')
    cpu=$(grep -o '"share": [0-9.e+]*' "$tmp/acm.json" | awk '{ printf "%.2f", $2 }')
    acc=$(grep -o '"accounted": [a-z]*' "$tmp/acm.json" | awk '{ print $2 }')
    ratio=$(awk -v a="$a" -v w="$w" 'BEGIN { printf "%.3f", a / w }')
    echo "round $round: wrk=$w acm_bench=$(printf '%.0f' "$a") ratio=$ratio acm_cpu_share=$cpu accounted=$acc"
    echo "$ratio" >> "$tmp/ratios"
done
echo "cli_vs_wrk median_ratio=$(median < "$tmp/ratios")"
