#!/usr/bin/env bash
# Transcription serving, part 2 (bench/RESULTS.md, "Streams over a WebSocket"): how many real-time streams one acmd
# keeps with the p99 chunk latency at or under 200 ms, at beta 1 and 0.5. For each budget, N = 2, 4, 8, ... streams
# (`acm bench --streams N`: each sends a 4 s WAV looped for --seconds, in 100 ms frames as a live source would) until
# the server-side p99 (a chunk's last sample in -> its partial queued) passes 200 ms or a stream fails; the last N
# that held is the answer. Model: the random-weight bench speech model (bench/speech_random.h, as bench/asr.sh; chunks
# of 8 tokens = 320 ms). acmd with its defaults (one worker per core), --max-streams 4096. The load generator runs on
# the same machine (one thread per stream): on a small machine it takes cores from acmd, which the figures include.
# Prints the OpenBLAS core. Usage: bash bench/streams.sh [BUILD] [SECONDS per run, default 6]
set -eu
B=${1:-build}
S=${2:-6}
make --no-print-directory "$B/acmd" "$B/acm" "$B/bench/speech" "$B/bench/asr_pace" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
"$B/bench/speech" --write-model "$tmp/speech.safetensors" >/dev/null
"$B/bench/asr_pace" --make-wav "$tmp/a.wav" --seconds 4 --seed 1
"$B/acmd" --model "speech=$tmp/speech.safetensors" --max-streams 4096 --log-level warn \
    --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/acmd.port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.1; done
echo "OpenBLAS core: $(curl -s "$URL/metrics" | grep -o 'blas_core="[^"]*"' | head -1)"
echo "machine: $(nproc) cores; acmd workers: $(nproc); $S s of audio per stream per run"
echo
echo "| beta | streams | failed | p50 ms | p95 ms | p99 ms | max ms | client p99 ms | budget realised |"
echo "|---|---|---|---|---|---|---|---|---|"
j() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
for beta in 1 0.5; do
    held=0
    for n in 2 4 8 16 32 64 128 256 512; do
        "$B/acm" bench --server "$URL" --model speech --streams "$n" --seconds "$S" --budget "$beta" --json \
            "$tmp/a.wav" >"$tmp/r.json" 2>"$tmp/r.err" || true
        if ! [ -s "$tmp/r.json" ]; then echo "| $beta | $n | all | - | - | - | - | - | - |"; break; fi
        echo "| $beta | $n | $(j "$tmp/r.json" "d['failed']") | $(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p50']") |" \
             "$(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p95']") | $(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p99']") |" \
             "$(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['max']") | $(j "$tmp/r.json" "'%.1f' % d['client_latency_ms']['p99']") |" \
             "$(j "$tmp/r.json" "'%.3f' % d['budget_realised']") |"
        ok=$(j "$tmp/r.json" "int(d['failed'] == 0 and d['server_latency_ms']['p99'] <= 200)")
        [ "$ok" = 1 ] || break
        held=$n
    done
    echo "beta $beta: $held real-time streams held with p99 <= 200 ms"
    echo
done
