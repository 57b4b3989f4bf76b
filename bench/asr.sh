#!/usr/bin/env bash
# Transcription serving, part 1 (bench/RESULTS.md, "Transcription serving, part 1"), in one run of about 3 minutes:
#   (b) whole-file throughput: seconds of audio transcribed per second with 16 concurrent clients (`acm bench --audio`,
#       8 WAV files of 4 s, round robin) at beta 1, 0.5 and 0.25 (X-Compute-Budget, policy cap), against the engine
#       alone on the same model and machine (bench/speech, table (2): 16 streams batched on one thread per core, the
#       same cap budgets), as a ratio;
#   (a) 50 uploads of a 30 s WAV at real-time pace (bench/asr_pace: 20 ms pieces on the audio's clock), started
#       evenly over 10 s so that they overlap: the answer's delay after the last byte, p50/p90/p99/max (target p99
#       <= 100 ms);
#   (c) mixed load: images (fmnist, /classify) at half their saturation and audio at half its, each open loop, alone
#       and together: each class's answered rate and p99 latency together against alone (target: >= 90% kept).
# Models: the random-weight bench speech model (bench/speech_random.h, D 256, depth 6, chunks of 8 tokens = 320 ms,
# left context 2 s; written by `bench/speech --write-model`), and the shipped fmnist model. acmd with its defaults
# (one worker per core). Prints the OpenBLAS core and the time each stage took. Loopback only.
# Usage: bash bench/asr.sh [BUILD]
set -eu
B=${1:-build}
IMG_MODEL=${ACM_BENCH_IMAGE_MODEL:-models/fmnist-vit-acm.safetensors}
T0=$(date +%s.%N)
stage() { awk -v a="$T0" -v b="$(date +%s.%N)" -v m="$*" 'BEGIN { printf "[%6.1f s] %s\n", b - a, m }'; }
make --no-print-directory "$B/acmd" "$B/acm" "$B/bench/speech" "$B/bench/asr_pace" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
W=$(nproc)
"$B/bench/speech" --write-model "$tmp/speech.safetensors" >/dev/null
mkdir "$tmp/clips"
for i in 1 2 3 4 5 6 7 8; do
    "$B/bench/asr_pace" --make-wav "$tmp/clips/c$i.wav" --seconds 4 --seed "$i"
    echo "a random model has no right transcript" >"$tmp/clips/c$i.txt"
done
"$B/bench/asr_pace" --make-wav "$tmp/long.wav" --seconds 30 --seed 9
stage "models and audio written"

# (b), the engine alone: 16 streams on W threads, chunks/s (wall, median of 3) x 0.32 s of audio per chunk
"$B/bench/speech" --tables 2 --streams 16 --threads "$W" --stream-seconds 10 --rounds 3 --betas 1,0.5,0.25 \
    >"$tmp/engine.txt"
core=$(sed -n 's/^speech: BLAS core \([^,]*\),.*/\1/p' "$tmp/engine.txt")
echo "asr: BLAS core $core, $W CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared)"
declare -A ENGINE
while IFS='|' read -r _ model beta wall _; do
    model=$(echo "$model" | tr -d ' '); beta=$(echo "$beta" | tr -d ' ')
    [ "$model" = ACM ] && ENGINE[$beta]=$(awk -v c="$wall" 'BEGIN { printf "%.1f", c * 0.32 }')
done < <(grep '^| ACM |' "$tmp/engine.txt")
stage "engine alone: ${ENGINE[1.00]} / ${ENGINE[0.50]} / ${ENGINE[0.25]} s of audio per s at beta 1 / 0.5 / 0.25"

"$B/acmd" --model "speech=$tmp/speech.safetensors" --model "fmnist=$IMG_MODEL" --max-queue 4096 --log-level warn \
    --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
P=$(cat "$tmp/acmd.port"); URL=http://127.0.0.1:$P
for _ in $(seq 400); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.05; done
stage "acmd ready (speech, fmnist; $W workers)"
j() { /usr/bin/python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }

# (b), through HTTP
"$B/acm" bench --server "$URL" --model speech --audio "$tmp/clips" -c 16 -d 3 --budget 1 --json >/dev/null # warm-up
echo
echo "(b) whole files, 16 clients: seconds of audio per second"
echo "| beta | acmd (HTTP) | engine alone | ratio | p50 ms | p99 ms | files |"
echo "|---|---|---|---|---|---|---|"
for beta in 1 0.5 0.25; do
    "$B/acm" bench --server "$URL" --model speech --audio "$tmp/clips" -c 16 -d 10 --budget "$beta" --json >"$tmp/b$beta.json"
    key=$(printf '%.2f' "$beta")
    sps=$(j "$tmp/b$beta.json" 'd["audio"]["seconds_per_s"]')
    echo "| $beta | $(printf '%.1f' "$sps") | ${ENGINE[$key]} | $(awk -v a="$sps" -v b="${ENGINE[$key]}" 'BEGIN { printf "%.2f", a / b }') |" \
         "$(j "$tmp/b$beta.json" '"%.0f | %.0f | %d" % (d["latency_ms"]["p50"], d["latency_ms"]["p99"], d["by_status"].get("200", 0))') |"
done
stage "(b) done"

# (a) real-time uploads
echo
echo "(a) 50 uploads of 30 s at real-time pace, started over 10 s"
"$B/bench/asr_pace" --port "$P" --model speech --wav "$tmp/long.wav" --uploads 50 --stagger 10 || echo "(some uploads failed)"
stage "(a) done"

# (c) mixed load: saturation of each alone, then half of each, alone and together
"$B/acm" bench --server "$URL" --model fmnist -c 16 -d 6 --json >"$tmp/img_sat.json"
img_sat=$(j "$tmp/img_sat.json" 'd["ok_rps"]')
aud_sat=$(j "$tmp/b1.json" 'd["ok_rps"]')
img_r=$(awk -v x="$img_sat" 'BEGIN { printf "%.1f", x / 2 }'); aud_r=$(awk -v x="$aud_sat" 'BEGIN { printf "%.2f", x / 2 }')
"$B/acm" bench --server "$URL" --model fmnist -r "$img_r" -d 10 --json >"$tmp/img_alone.json"
"$B/acm" bench --server "$URL" --model speech --audio "$tmp/clips" -r "$aud_r" -d 10 --budget 1 --json >"$tmp/aud_alone.json"
"$B/acm" bench --server "$URL" --model fmnist -r "$img_r" -d 10 --json >"$tmp/img_mixed.json" & m1=$!
"$B/acm" bench --server "$URL" --model speech --audio "$tmp/clips" -r "$aud_r" -d 10 --budget 1 --json >"$tmp/aud_mixed.json"
wait "$m1"
echo
echo "(c) mixed: images at half their saturation ($img_sat/s -> $img_r/s) + audio at half its ($aud_sat files/s -> $aud_r/s)"
echo "| class | alone: ok/s | mixed: ok/s | kept | alone p99 ms | mixed p99 ms |"
echo "|---|---|---|---|---|---|"
for c in img aud; do
    a=$(j "$tmp/${c}_alone.json" 'd["ok_rps"]'); m=$(j "$tmp/${c}_mixed.json" 'd["ok_rps"]')
    echo "| $([ $c = img ] && echo images || echo audio) | $(printf '%.2f' "$a") | $(printf '%.2f' "$m") |" \
         "$(awk -v a="$a" -v m="$m" 'BEGIN { printf "%.0f%%", 100 * m / a }') |" \
         "$(j "$tmp/${c}_alone.json" '"%.1f" % d["latency_ms"]["p99"]') | $(j "$tmp/${c}_mixed.json" '"%.1f" % d["latency_ms"]["p99"]') |"
done
stage "(c) done"
