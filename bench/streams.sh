#!/usr/bin/env bash
# Transcription serving, part 2 (bench/RESULTS.md, "Streams over a WebSocket"): how many real-time streams one acmd
# keeps with the p99 chunk latency at or under 200 ms, at beta 1 and 0.5. For each budget, N = 2, 4, 8, ... streams
# (`acm bench --streams N`: each sends a 4 s WAV looped for --seconds, in 100 ms frames as a live source would) until
# the server-side p99 (a chunk's last sample in -> its partial queued) passes 200 ms or a stream fails; the last N
# that held is the answer. RAMP (seconds, default 0) spreads the streams' starts (`--ramp`): 0 starts them all at
# once, so that every chunk boundary is a burst of N chunks at the same instant (the worst case); live streams start
# at random times, which RAMP=1 (starts spread over a second, three chunk periods) stands for. Model: the random-weight
# bench speech model (bench/speech_random.h, as bench/asr.sh; chunks of 8 tokens = 320 ms), or MODEL (a speech model
# file, e.g. the shipped models/speech.safetensors: chunks of 16 tokens = 640 ms). acmd with its defaults
# (workers: the cores less one; --stream-batch 64) and --max-streams 4096, plus ACMD_ARGS. The load generator runs on
# the same machine (one thread per stream): on a small machine it takes cores from acmd, which the figures include;
# its CPU time and acmd's are printed as a share of one core over the run. Prints the OpenBLAS core.
# Usage: [RAMP=S] [STREAMS='2 4 8 ...'] [MODEL=FILE] [ACMD_ARGS=...] bash bench/streams.sh [BUILD] [SECONDS per run, default 6]
set -eu
B=${1:-build}
S=${2:-6}
RAMP=${RAMP:-0}
make --no-print-directory "$B/acmd" "$B/acm" "$B/bench/speech" "$B/bench/asr_pace" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -n "${MODEL:-}" ]; then cp "$MODEL" "$tmp/speech.safetensors"
else "$B/bench/speech" --write-model "$tmp/speech.safetensors" >/dev/null; fi
"$B/bench/asr_pace" --make-wav "$tmp/a.wav" --seconds 4 --seed 1
# shellcheck disable=SC2086
"$B/acmd" --model "speech=$tmp/speech.safetensors" --max-streams 4096 --log-level warn ${ACMD_ARGS:-} \
    --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
acmd=$!
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/acmd.port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.1; done
echo "OpenBLAS core: $(curl -s "$URL/metrics" | grep -o 'blas_core="[^"]*"' | head -1)"
echo "model: ${MODEL:-the random-weight bench model (bench/speech_random.h)}"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); acmd ${ACMD_ARGS:-(defaults)};" \
     "$S s of audio per stream per run; stream starts spread over ${RAMP} s"
echo
echo "| beta | streams | failed | p50 ms | p95 ms | p99 ms | max ms | client p99 ms | budget realised | chunks per call | acmd CPU | client CPU |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
j() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
ticks() { awk '{print $14 + $15}' "/proc/$acmd/stat"; }
hz=$(getconf CLK_TCK)
for beta in 1 0.5; do
    held=0
    for n in ${STREAMS:-2 4 8 16 32 64 128 256 512}; do
        t0=$(ticks); w0=$(date +%s.%N)
        # the client's CPU time: `times` in the subshell prints its children's user and system seconds last
        ( "$B/acm" bench --server "$URL" --model speech --streams "$n" --seconds "$S" --budget "$beta" --ramp "$RAMP" \
            --json "$tmp/a.wav" >"$tmp/r.json" 2>"$tmp/r.err" || true; times ) >"$tmp/times"
        t1=$(ticks); w1=$(date +%s.%N)
        cli=$(tail -1 "$tmp/times" | /usr/bin/python3 -c "import sys,re; print(sum(int(m)*60+float(s) for m,s in re.findall(r'(\d+)m([\d.]+)s', sys.stdin.read())))")
        cpu=$(/usr/bin/python3 -c "w=$w1-$w0; print('%.0f %% | %.0f %%' % (100*($t1-$t0)/$hz/w, 100*$cli/w))")
        if ! [ -s "$tmp/r.json" ]; then echo "| $beta | $n | all | - | - | - | - | - | - | - | $cpu |"; break; fi
        echo "| $beta | $n | $(j "$tmp/r.json" "d['failed']") | $(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p50']") |" \
             "$(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p95']") | $(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['p99']") |" \
             "$(j "$tmp/r.json" "'%.1f' % d['server_latency_ms']['max']") | $(j "$tmp/r.json" "'%.1f' % d['client_latency_ms']['p99']") |" \
             "$(j "$tmp/r.json" "'%.3f' % d['budget_realised']") | $(j "$tmp/r.json" "'%.1f' % d['batch_mean']") | $cpu |"
        ok=$(j "$tmp/r.json" "int(d['failed'] == 0 and d['server_latency_ms']['p99'] <= 200)")
        [ "$ok" = 1 ] || break
        held=$n
    done
    echo "beta $beta: $held real-time streams held with p99 <= 200 ms"
    echo
done
