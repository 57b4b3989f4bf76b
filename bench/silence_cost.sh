#!/usr/bin/env bash
# Transcription serving, part 2 (bench/RESULTS.md, "Silence is cheap?"): the compute a stream spends per second of
# silence against speech. PAIRS files, each two test-seen utterances of the corpus (re-made as audio,
# `acm-train speech-corpus --wav`) with silence around and between them: LEAD s, the first, GAP s, the second, TAIL s.
# The silence is digital zeros in one copy of each file and white noise (sox -R: repeatable) of `vol` NOISE in
# another (sox stat: vol 0.003 is an RMS of 0.00098, -60 dBFS; vol 0.03 -40 dBFS). Each file is streamed
# (`acm transcribe --stream --json`, 100 ms frames paced at SPEED times real time, so that a job of the stream is
# mostly one chunk of the model) to acmd serving models/speech-acm.safetensors as `speech`, under the gates' own
# policy (no budget: the model's default, argmax) and under `cap` at beta 0.25 (the model's floor: the least it can
# spend), 0.5 and 1, all streams at once. bench/stream_cost.py gives each partial's FLOPs to the span that holds its
# audio (speech, silence; "boundary" for a partial across both). Prints the table, and with PICTURE=FILE draws the
# chunks of the first file along its audio (gnuplot): GFLOPs per second of audio of every partial, per policy.
# Usage: [PAIRS=3] [LEAD=2] [GAP=3] [TAIL=2] [NOISE=0.003] [SPEED=1] [PICTURE=FILE] [CORPUS=data/speech]
#        bash bench/silence_cost.sh [BUILD]
set -eu
B=${1:-build}
PAIRS=${PAIRS:-3}; LEAD=${LEAD:-2}; GAP=${GAP:-3}; TAIL=${TAIL:-2}; NOISE=${NOISE:-0.003}; SPEED=${SPEED:-1}
CORPUS=${CORPUS:-data/speech}
if [ ! -f "$CORPUS/corpus.json" ]; then # `make bench` on a machine without the speech corpus: say so, skip
    echo "$(basename "$0"): skipped: no speech corpus at $CORPUS (build one with \`acm-train speech-corpus --out $CORPUS\`,"
    echo "  docs/SPEECH-TRAINING.md, or point CORPUS= at one)"
    exit 0
fi
make --no-print-directory "$B/acmd" "$B/acm" "$B/acm-train" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
"$B/acm-train" speech-corpus --out "$CORPUS" --wav "$tmp/wav" --split test-seen --limit $((2 * PAIRS)) >/dev/null
fmt=(-r 16000 -c 1 -e floating-point -b 32)
for kind in zeros noise; do
    for s in "$LEAD" "$GAP" "$TAIL"; do
        if [ "$kind" = zeros ]; then sox -n "${fmt[@]}" "$tmp/sil-$kind-$s.wav" trim 0 "$s"
        else sox -R -n "${fmt[@]}" "$tmp/sil-$kind-$s.wav" synth "$s" whitenoise vol "$NOISE"; fi
    done
done
for p in $(seq 0 $((PAIRS - 1))); do
    a=$(printf '%s/wav/test-seen-%07d.wav' "$tmp" $((2 * p))); b=$(printf '%s/wav/test-seen-%07d.wav' "$tmp" $((2 * p + 1)))
    la=$(soxi -D "$a"); lb=$(soxi -D "$b")
    /usr/bin/python3 -c "
l, a, g, b, t = $LEAD, $la, $GAP, $lb, $TAIL
for s, e, lab in [(0, l, 'silence'), (l, l + a, 'speech'), (l + a, l + a + g, 'silence'),
                  (l + a + g, l + a + g + b, 'speech'), (l + a + g + b, l + a + g + b + t, 'silence')]:
    print('%.6f %.6f %s' % (s, e, lab))" >"$tmp/spans-$p"
    for kind in zeros noise; do
        sox "$tmp/sil-$kind-$LEAD.wav" "$a" "$tmp/sil-$kind-$GAP.wav" "$b" "$tmp/sil-$kind-$TAIL.wav" "$tmp/file-$kind-$p.wav"
    done
done
"$B/acmd" --model speech=models/speech-acm.safetensors --log-level warn --listen 127.0.0.1:0 \
    --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/acmd.port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.1; done
echo "OpenBLAS core: $(curl -s "$URL/metrics" | grep -o 'blas_core="[^"]*"' | head -1)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "files: $PAIRS, each ${LEAD} s silence, test-seen utterance, ${GAP} s silence, utterance, ${TAIL} s silence;" \
     "the silence digital zeros or white noise at vol $NOISE; streamed at ${SPEED}x real time, all at once"
policies="gates cap-0.25 cap-0.5 cap-1"
waits=()
for pol in $policies; do
    budget=(); [ "$pol" = gates ] || budget=(--budget "${pol#cap-}")
    for kind in zeros noise; do
        for p in $(seq 0 $((PAIRS - 1))); do
            "$B/acm" transcribe --server "$URL" --model speech "${budget[@]}" --stream --json --speed "$SPEED" \
                "$tmp/file-$kind-$p.wav" >"$tmp/m-$pol-$kind-$p.jsonl" 2>"$tmp/e-$pol-$kind-$p" & waits+=($!)
        done
    done
done
fail=0
for w in "${waits[@]}"; do wait "$w" || fail=1; done
[ "$fail" = 0 ] || { cat "$tmp"/e-* >&2; echo "a stream failed" >&2; exit 1; }
echo
echo "| policy | silence | speech: GFLOPs per s of audio | budget realised | silence: GFLOPs per s | budget realised | silence / speech | boundary chunks | chunks |"
echo "|---|---|---|---|---|---|---|---|---|"
for pol in $policies; do
    for kind in zeros noise; do
        args=()
        for p in $(seq 0 $((PAIRS - 1))); do args+=("$tmp/spans-$p" "$tmp/m-$pol-$kind-$p.jsonl"); done
        /usr/bin/python3 bench/stream_cost.py "${args[@]}" --chunks "$tmp/c-$pol-$kind" >"$tmp/s.json"
        /usr/bin/python3 - "$tmp/s.json" "$pol" "$kind" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
sp, si = d.get("speech", {}), d.get("silence", {})
z = {"gflops_per_s": float("nan"), "budget": float("nan"), "chunks": 0}
sp, si = sp or z, si or z
n = sum(v["chunks"] for v in d.values())
print("| %s | %s | %.4f | %.3f | %.4f | %.3f | %.2f | %d | %d |" % (
    sys.argv[2].replace("cap-", "cap "), "digital zeros" if sys.argv[3] == "zeros" else "white noise",
    sp["gflops_per_s"], sp["budget"], si["gflops_per_s"], si["budget"],
    si["gflops_per_s"] / sp["gflops_per_s"] if sp["gflops_per_s"] else float("nan"),
    d.get("boundary", {"chunks": 0})["chunks"], n))
PY
    done
done
if [ -n "${PICTURE:-}" ]; then
    for pol in $policies; do for kind in zeros noise; do awk '$1 == 0 {print; s = $2; e = $3; r = $0}
        END {split(r, f, " "); print 0, e, 2 * e - s, f[4], f[5], f[6]}' "$tmp/c-$pol-$kind" >"$tmp/p-$pol-$kind"  # the last step drawn
    done; done
    read -r -a sil < <(awk '$3 == "silence" {printf "%s %s ", $1, $2}' "$tmp/spans-0") || true
    {
        echo "set terminal pngcairo size 1400,700 noenhanced font ',11'"
        echo "set output '$PICTURE'"
        echo "set multiplot layout 2,1 title 'speech-acm streamed: GFLOPs per second of audio of each 640 ms chunk (shaded: the inserted silence)'"
        for kind in zeros noise; do
            i=1; for ((k = 0; k < ${#sil[@]}; k += 2)); do
                echo "set object $i rect from ${sil[k]}, graph 0 to ${sil[k+1]}, graph 1 fc rgb '#dddddd' fs solid noborder behind"; i=$((i + 1))
            done
            echo "set title '$( [ $kind = zeros ] && echo 'silence: digital zeros' || echo "silence: white noise (sox whitenoise vol $NOISE)")'"
            echo "set xlabel 'seconds'; set ylabel 'GFLOPs per s of audio'; set yrange [0:*]; set key outside right"
            echo "plot '$tmp/p-gates-$kind' using 2:(\$5/(\$3-\$2)) with steps lw 2 title \"gates' own (argmax)\", \\"
            echo "     '$tmp/p-cap-0.5-$kind' using 2:(\$5/(\$3-\$2)) with steps lw 2 title 'cap 0.5', \\"
            echo "     '$tmp/p-cap-1-$kind' using 2:(\$5/(\$3-\$2)) with steps lw 2 title 'cap 1', \\"
            echo "     '$tmp/p-cap-0.25-$kind' using 2:(\$5/(\$3-\$2)) with steps lw 1 dt 2 lc rgb '#666666' title 'cap 0.25 (the floor)'"
            echo "unset object"
        done
        echo "unset multiplot"
    } | gnuplot
    echo "picture: $PICTURE"
fi
