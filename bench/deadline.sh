#!/usr/bin/env bash
# Deadline attainment and mean β applied against offered load, for 20, 50 and 100 ms deadlines (issue 8; figures go
# to bench/RESULTS.md, "SLA scheduling"). For each deadline and offered load, wrk (bench/deadline.lua) POSTs a 28x28 PNG
# to /classify with X-Deadline-Ms for ACM_BENCH_SECS; reported per run:
#   attainment  200s the server answered within the deadline (its own timing.total_ms) / all requests
#   e504        refused (at admission or lost in the queue); mean_beta: mean budget_applied of the 200s
#   and from the server's /metrics (the difference over the run): deadline misses by phase, mean β of
#   acm_request_budget_ratio{source="deadline"}, the cost model's recent error (/v2/models/m/stats).
# Offered load: ACM_BENCH_LOADS (requests/s, default "50 100 200 400 800 1600"), 64 connections paced by exponential
# think times (wrk has no open loop: past saturation the achieved rate is the server's). The model: ACM_BENCH_MODEL, else
# models/fmnist-vit-acm.safetensors, else the golden random test model (tests/golden/vit_a.safetensors; tiny, said so).
# Knobs: ACM_BENCH_WORKERS (default: acmd's), ACM_BENCH_BATCH (8), ACM_BENCH_SECS (10), ACM_BENCH_DEADLINES ("20 50 100").
# Loopback only. Usage: bash bench/deadline.sh [BUILD]
set -eu
B=${1:-build}
BATCH=${ACM_BENCH_BATCH:-8}; D=${ACM_BENCH_SECS:-10}
LOADS=${ACM_BENCH_LOADS:-50 100 200 400 800 1600}; DEADLINES=${ACM_BENCH_DEADLINES:-20 50 100}
command -v wrk >/dev/null || { echo "deadline: wrk not installed (make deps)"; exit 1; }
make --no-print-directory "$B/acmd" "$B/bench/server_engine" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
model=${ACM_BENCH_MODEL:-}
if [ -z "$model" ]; then
    if [ -f models/fmnist-vit-acm.safetensors ]; then model=models/fmnist-vit-acm.safetensors
    else model=tests/golden/vit_a.safetensors; echo "deadline: no shipped ACM model: using the golden random test model"; fi
fi
"$B/bench/server_engine" make-png "$tmp/x.png"
export ACM_BENCH_PNG=$tmp/x.png
workers=()
[ -n "${ACM_BENCH_WORKERS:-}" ] && workers=(--workers "$ACM_BENCH_WORKERS")
"$B/acmd" --model "m=$model" "${workers[@]}" --max-batch "$BATCH" --max-queue 4096 --log-level warn \
    --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
P=$(cat "$tmp/acmd.port")
for _ in $(seq 400); do curl -sf "http://127.0.0.1:$P/v2/health/ready" >/dev/null && break; sleep 0.05; done
echo "deadline: model $model, batch $BATCH, ${D}s per run, $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"

# one number from /metrics: metric NAME{LABELS} (exact series text before the value)
metric() { curl -s "http://127.0.0.1:$P/metrics" | awk -v s="$1" 'index($0, s " ") == 1 { print $NF; f = 1 } END { if (!f) print 0 }'; }
series=(
    'acm_deadline_misses_total{phase="admission"}' 'acm_deadline_misses_total{phase="queue"}'
    'acm_deadline_misses_total{phase="compute"}' 'acm_request_budget_ratio_sum{source="deadline"}'
    'acm_request_budget_ratio_count{source="deadline"}'
)
# warm the cost model with a few seconds of moderate load first
ACM_BENCH_DEADLINE_MS=100 ACM_BENCH_RATE=100 ACM_BENCH_CONNS=8 wrk -t2 -c8 -d3s -s bench/deadline.lua "http://127.0.0.1:$P/v1/models/m/classify" >/dev/null
printf '%-8s %-8s %-9s %-10s %-8s %-9s %-8s %-8s %-8s %-9s %-8s\n' deadline offered achieved attainment e504 mean_beta \
    miss_adm miss_q miss_cmp p99_ms cost_err
for dl in $DEADLINES; do
    for rate in $LOADS; do
        before=(); for s in "${series[@]}"; do before+=("$(metric "$s")"); done
        out=$(ACM_BENCH_DEADLINE_MS=$dl ACM_BENCH_RATE=$rate ACM_BENCH_CONNS=64 wrk -t2 -c64 -d"${D}s" -s bench/deadline.lua \
              "http://127.0.0.1:$P/v1/models/m/classify")
        after=(); for s in "${series[@]}"; do after+=("$(metric "$s")"); done
        line=$(echo "$out" | grep '^deadline_result')
        get() { echo "$line" | sed -nE "s/.* $1=([^ ]+).*/\1/p"; }
        d() { awk -v a="${after[$1]}" -v b="${before[$1]}" 'BEGIN { printf "%.0f", a - b }'; }
        err=$(curl -s "http://127.0.0.1:$P/v2/models/m/stats" | sed -nE 's/.*"mean_abs_ms":([0-9.eE+-]+).*/\1/p')
        printf '%-8s %-8s %-9s %-10s %-8s %-9s %-8s %-8s %-8s %-9s %-8s\n' "$dl" "$rate" "$(get achieved_rps)" \
            "$(get attainment)" "$(get e504)" "$(get mean_beta)" "$(d 0)" "$(d 1)" "$(d 2)" "$(get p99_ms)" "${err:-?}"
        echo "deadline_run deadline_ms=$dl offered_rps=$rate $line" >> "$tmp/raw"
    done
done
echo "--- raw"; cat "$tmp/raw"
