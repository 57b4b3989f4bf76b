#!/usr/bin/env bash
# acmd's figures against the engine's own and a bare libmicrohttpd server (bench/RESULTS.md, "acmd"):
#   1. throughput: wrk closed loop (32 connections POSTing one 28x28 PNG to /classify) vs server_engine throughput at
#      the same batch size, workers and BLAS threads (batches kept full: the mean batch size is printed from /metrics);
#   2. one client at a time: wrk -c1 p50/p99 vs the engine's batch-1 latency (engine call alone, and PNG decode + call);
#   3. /v2/health/live rate vs server_bare (same MHD flags), alternating rounds in the same run;
#   4. on the shipped ACM model: acmd at X-Compute-Budget 1 and 0.25 vs the engine at the same budgets (the gain the
#      engine has at 0.25, and how much of it acmd passes on).
# The model is a random static ViT of the Fashion-MNIST model's shape (125.8 MFLOP/image; server_engine make-model)
# until models/fmnist-vit.safetensors ships; ACM_BENCH_MODEL=PATH uses another.
# Knobs: ACM_BENCH_WORKERS (2), ACM_BENCH_BATCH (8), ACM_BENCH_SECS (5), ACM_BENCH_ROUNDS (3), ACM_BENCH_ACM_MODEL
# (models/fmnist-vit-acm.safetensors), ACM_BENCH_ACMD_ARGS (more acmd flags for both servers, e.g. "--worker-nice 10"). Loopback only. Usage: bash bench/server_bench.sh BUILD
set -eu
B=${1:-build}
W=${ACM_BENCH_WORKERS:-2}; BATCH=${ACM_BENCH_BATCH:-8}; D=${ACM_BENCH_SECS:-5}
command -v wrk >/dev/null || { echo "server_bench: wrk not installed (make deps)"; exit 1; }
make --no-print-directory "$B/acmd" "$B/bench/server_engine" "$B/bench/server_bare" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
model=${ACM_BENCH_MODEL:-}
if [ -z "$model" ]; then
    if [ -f models/fmnist-vit.safetensors ]; then model=models/fmnist-vit.safetensors
    else model=$tmp/fm.safetensors; "$B/bench/server_engine" make-model "$model"; fi
fi
"$B/bench/server_engine" make-png "$tmp/x.png"
export ACM_BENCH_PNG=$tmp/x.png
echo "server_bench: model $model, workers $W x 1 BLAS thread, batch $BATCH, ${D}s per run, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), acmd flags: ${ACM_BENCH_ACMD_ARGS:-none}"

wait_port() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
wait_ready() { for _ in $(seq 400); do curl -sf "http://127.0.0.1:$1/v2/health/ready" >/dev/null && return 0; sleep 0.05; done; return 1; }
# wrk latency percentile line ("    99%   12.34ms") -> milliseconds
pct_ms() { awk -v p="$1%" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
           f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.3f", v * f }'; }
rps() { awk '/^Requests\/sec:/ { print $2 }'; }

read -r -a more <<< "${ACM_BENCH_ACMD_ARGS:-}"
"$B/acmd" --model "m=$model" --workers "$W" --blas-threads 1 "${more[@]}" --max-batch "$BATCH" --log-level info \
    --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
wait_port "$tmp/acmd.port"; P=$(cat "$tmp/acmd.port"); wait_ready "$P"

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
R=${ACM_BENCH_ROUNDS:-3}

# 1. throughput: engine and acmd alternate (the machine is shared: load moves between runs), median of the ratios
: > "$tmp/thr"
for round in $(seq "$R"); do
    eng=$("$B/bench/server_engine" throughput "$model" "$tmp/x.png" "$W" "$BATCH" "$D")
    e_items=$(echo "$eng" | awk '/decode=0/ { sub(/.*items_per_s=/, ""); print $1 }')
    e_dec=$(echo "$eng" | awk '/decode=1/ { sub(/.*items_per_s=/, ""); print $1 }')
    out=$(wrk -t2 -c32 -d"${D}s" -s bench/server_post_png.lua "http://127.0.0.1:$P/v1/models/m/classify")
    a_rps=$(echo "$out" | rps)
    non2xx=$(echo "$out" | awk '/Non-2xx/ { print $5 }')
    r1=$(awk -v a="$a_rps" -v e="$e_items" 'BEGIN { printf "%.3f", a / e }')
    r2=$(awk -v a="$a_rps" -v e="$e_dec" 'BEGIN { printf "%.3f", a / e }')
    echo "throughput round $round: engine=$e_items engine_with_decode=$e_dec acmd=$a_rps non_2xx=${non2xx:-0} ratio=$r1 ratio_with_decode=$r2"
    echo "$r1 $r2" >> "$tmp/thr"
done
bs=$(curl -s "http://127.0.0.1:$P/metrics" | awk '/^acm_batch_size_sum/ { s = $2 } /^acm_batch_size_count/ { c = $2 } END { printf "%.2f", c ? s / c : 0 }')
echo "acmd_throughput mean_batch=$bs median_ratio=$(cut -d' ' -f1 "$tmp/thr" | median) median_ratio_with_decode=$(cut -d' ' -f2 "$tmp/thr" | median)"

# 2. one client at a time, alternating with the engine's batch-1 latency
: > "$tmp/lat"
logstart=$(wc -l < "$tmp/acmd.log")
for round in $(seq "$R"); do
    lat=$("$B/bench/server_engine" latency "$model" "$tmp/x.png" 300)
    out=$(wrk -t1 -c1 -d"${D}s" --latency -s bench/server_post_png.lua "http://127.0.0.1:$P/v1/models/m/classify")
    p50=$(echo "$out" | pct_ms 50); p99=$(echo "$out" | pct_ms 99)
    ep50=$(echo "$lat" | sed -E 's/.* engine_p50_ms=([0-9.]+).*/\1/'); ep99=$(echo "$lat" | sed -E 's/.* engine_p99_ms=([0-9.]+).*/\1/')
    d50=$(awk -v a="$p50" -v e="$ep50" 'BEGIN { printf "%.3f", a - e }'); d99=$(awk -v a="$p99" -v e="$ep99" 'BEGIN { printf "%.3f", a - e }')
    echo "one client round $round: engine p50 $ep50 p99 $ep99 ms; acmd p50 $p50 p99 $p99 ms; added p50 $d50 p99 $d99 ms"
    echo "$d50 $d99" >> "$tmp/lat"
done
echo "acmd_one_client median_added_p50_ms=$(cut -d' ' -f1 "$tmp/lat" | median) median_added_p99_ms=$(cut -d' ' -f2 "$tmp/lat" | median)"
# acmd's own account of those requests (access log): admit = headers to queued (body, admission); queue = until a
# worker takes the batch up; compute = decode + engine + response body; resume = batch done to response queued (the
# hand-back: uv_async_send wake-up of the I/O thread, MHD resume)
field() { grep -o "\"$1\":[0-9.e+-]*" | cut -d: -f2; }
pq() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { printf "%.3f", NR ? v[int(NR * p) + 1] : 0 }'; }
tail -n +"$((logstart + 1))" "$tmp/acmd.log" | grep '"route":"classify"' > "$tmp/onecl.log" || true
line="acmd_one_client_inside n=$(wc -l < "$tmp/onecl.log")"
for f in admit_ms queue_ms compute_ms resume_ms; do
    line="$line ${f%_ms}_p50_ms=$(field $f < "$tmp/onecl.log" | pq 0.5) ${f%_ms}_p99_ms=$(field $f < "$tmp/onecl.log" | pq 0.99)"
done
echo "$line"

# 3. health vs a bare MHD server, alternating
"$B/bench/server_bare" "$tmp/bare.port" & pids+=($!)
wait_port "$tmp/bare.port"; BP=$(cat "$tmp/bare.port")
sa=0; sb=0
for round in $(seq "$R"); do
    b=$(wrk -t2 -c32 -d3s "http://127.0.0.1:$BP/v2/health/live" | rps)
    a=$(wrk -t2 -c32 -d3s "http://127.0.0.1:$P/v2/health/live" | rps)
    echo "health round $round: bare_mhd=$b acmd=$a"
    sa=$(awk -v x="$sa" -v y="$a" 'BEGIN { print x + y }'); sb=$(awk -v x="$sb" -v y="$b" 'BEGIN { print x + y }')
done
echo "acmd_health req_per_s=$(awk -v s="$sa" -v r="$R" 'BEGIN { printf "%.0f", s / r }') bare_mhd=$(awk -v s="$sb" -v r="$R" 'BEGIN { printf "%.0f", s / r }') ratio=$(awk -v a="$sa" -v b="$sb" 'BEGIN { printf "%.3f", a / b }')"

# 4. beta = 0.25 end to end: on the shipped ACM model, acmd (X-Compute-Budget 1 and 0.25, wrk as in 1) against the
#    engine at the same budgets, workers and batch size (with the PNG decode, as acmd's workers do), alternating rounds:
#    what the engine gains at 0.25 and what acmd passes on of it
AM=${ACM_BENCH_ACM_MODEL:-models/fmnist-vit-acm.safetensors}
if [ -f "$AM" ]; then
    "$B/acmd" --model "a=$AM" --workers "$W" --blas-threads 1 "${more[@]}" --max-batch "$BATCH" --log-level warn \
        --listen 127.0.0.1:0 --port-file "$tmp/acm.port" 2>"$tmp/acm.log" & pids+=($!)
    wait_port "$tmp/acm.port"; AP=$(cat "$tmp/acm.port"); wait_ready "$AP"
    : > "$tmp/b25"
    for round in $(seq "$R"); do
        line="beta round $round:"
        for beta in 1 0.25; do
            e=$("$B/bench/server_engine" throughput "$AM" "$tmp/x.png" "$W" "$BATCH" "$D" "$beta" | awk '/decode=1/ { sub(/.*items_per_s=/, ""); print $1 }')
            a=$(wrk -t2 -c32 -d"${D}s" -H "X-Compute-Budget: $beta" -s bench/server_post_png.lua "http://127.0.0.1:$AP/v1/models/a/classify" | rps)
            line="$line engine_b$beta=$e acmd_b$beta=$a"
            printf '%s %s ' "$e" "$a" >> "$tmp/b25"
        done
        echo "$line"; echo >> "$tmp/b25"
    done
    # columns: engine_1 acmd_1 engine_025 acmd_025
    echo "acmd_beta025 median_engine_gain=$(awk '{ printf "%.3f\n", $3 / $1 }' "$tmp/b25" | median)" \
         "median_acmd_gain=$(awk '{ printf "%.3f\n", $4 / $2 }' "$tmp/b25" | median)" \
         "median_acmd_over_engine_at_025=$(awk '{ printf "%.3f\n", $4 / $3 }' "$tmp/b25" | median)" \
         "median_gain_passed_on=$(awk '{ printf "%.3f\n", ($4 / $2) / ($3 / $1) }' "$tmp/b25" | median)"
else
    echo "beta 0.25: skipped, no ACM model at $AM (ACM_BENCH_ACM_MODEL=PATH)"
fi
