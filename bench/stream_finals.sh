#!/usr/bin/env bash
# Transcription serving, part 2 (bench/RESULTS.md, "Streamed finals against the whole file"): the share of test
# utterances whose streamed final transcript is the whole file's. The corpus keeps features, not audio, so the first
# N utterances of each test split are synthesised again (`acm-train speech-corpus --wav`: the same samples the stored
# features came from, checked feature for feature) as WAV files; each is sent both ways by `acm transcribe
# --compare-stream`: POST /transcribe of the whole file, then GET /stream (WebSocket) in 100 ms frames unpaced (the
# frames a paced stream sends, faster), its segments' final texts joined against the whole text word for word.
# acmd serves models/speech-acm.safetensors as `speech` and models/speech.safetensors as `speech-static`, with
# --stream-max-behind 0 (an unpaced stream would otherwise count as behind real time and have its budget cut) and
# PARALLEL files in flight (default 4), so streams and whole files share engine calls as under load.
# Rows: `speech` under `cap` at beta 1 and 0.5 and under the gates' own policy (no budget), `speech-static`.
# The test utterances are short and rarely hold the 800 ms of silence that ends a segment, so JOINED files per split
# (default 50) are also made of two consecutive utterances with GAP_S seconds of digital silence between (default 1.5):
# their streams may end a segment in the gap (endpointing), which the rows "SPLIT-joined" check the joining of.
# "same letters, words cut elsewhere": files whose texts differ only in where words are cut (spaces aside they are
# the same); the files whose letters differ are listed on stderr.
# SPEED=1 paces the streams in real time instead (then PARALLEL=64 or so keeps the run short): the same chunks and,
# since a stream with endpointing runs one chunk a job (commit 8144213; before it an unpaced stream's job held up to
# 8 and the endpoint was looked for only at a job's end), the same segments.
# Usage: [N=200] [JOINED=50] [GAP_S=1.5] [SPEED=0] [PARALLEL=4] [CORPUS=data/speech] bash bench/stream_finals.sh [BUILD]
set -eu
B=${1:-build}
N=${N:-200}
PARALLEL=${PARALLEL:-4}
SPEED=${SPEED:-0}
CORPUS=${CORPUS:-data/speech}
JOINED=${JOINED:-50}
GAP_S=${GAP_S:-1.5}
[ $((2 * JOINED)) -le "$N" ] || { echo "JOINED=$JOINED needs N >= $((2 * JOINED))" >&2; exit 2; }
make --no-print-directory "$B/acmd" "$B/acm" "$B/acm-train" >/dev/null
if [ ! -f "$CORPUS/corpus.json" ]; then # `make bench` on a machine without the speech corpus: say so, skip
    echo "$(basename "$0"): skipped: no speech corpus at $CORPUS (build one with \`acm-train speech-corpus --out $CORPUS\`,"
    echo "  docs/SPEECH-TRAINING.md, or point CORPUS= at one)"
    exit 0
fi
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
echo "corpus: $CORPUS, the first $N utterances of test-seen and test-unseen"
"$B/acm-train" speech-corpus --out "$CORPUS" --wav "$tmp/wav" --split test-seen,test-unseen --limit "$N"
mkdir -p "$tmp/joined"
sox -n -r 16000 -c 1 -e floating-point -b 32 "$tmp/gap.wav" trim 0 "$GAP_S"
for split in test-seen test-unseen; do
    for k in $(seq 0 $((JOINED - 1))); do
        sox "$(printf '%s/wav/%s-%07d.wav' "$tmp" "$split" $((2 * k)))" "$tmp/gap.wav" \
            "$(printf '%s/wav/%s-%07d.wav' "$tmp" "$split" $((2 * k + 1)))" "$(printf '%s/joined/%s-%04d.wav' "$tmp" "$split" "$k")"
    done
done
"$B/acmd" --model speech=models/speech-acm.safetensors --model speech-static=models/speech.safetensors \
    --stream-max-behind 0 --log-level warn --listen 127.0.0.1:0 --port-file "$tmp/acmd.port" 2>"$tmp/acmd.log" & pids+=($!)
for _ in $(seq 200); do [ -s "$tmp/acmd.port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/acmd.port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.1; done
echo "OpenBLAS core: $(curl -s "$URL/metrics" | grep -o 'blas_core="[^"]*"' | head -1)"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $PARALLEL files in flight;" \
     "streams at $SPEED x real time (0: unpaced)"
echo
echo "| split | model | policy | utterances | identical finals | share | same letters, words cut elsewhere | segments per utterance | failed |"
echo "|---|---|---|---|---|---|---|---|---|"
for split in test-seen test-unseen test-seen-joined test-unseen-joined; do
    case $split in *-joined) files=("$tmp/joined/${split%-joined}"-*.wav) ;; *) files=("$tmp/wav/$split"-*.wav) ;; esac
    [ "$JOINED" -gt 0 ] || case $split in *-joined) continue ;; esac
    for row in "speech cap-1 1" "speech cap-0.5 0.5" "speech gates -" "speech-static static -"; do
        read -r mname policy beta <<<"$row"
        budget=(); [ "$beta" = - ] || budget=(--budget "$beta")
        "$B/acm" transcribe --server "$URL" --model "$mname" "${budget[@]}" --compare-stream --speed "$SPEED" --parallel "$PARALLEL" --json \
            "${files[@]}" >"$tmp/r.jsonl" 2>"$tmp/r.err" || true
        /usr/bin/python3 - "$tmp/r.jsonl" "$split" "$mname" "$policy" "$N" <<'PY'
import json, sys
path, split, model, policy, n = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
files = [r for r in rows if "file" in r]
summary = rows[-1] if rows and "compared" in rows[-1] else {"compared": 0, "same": 0, "files": -1}
seg = sum(r["segments"] for r in files) / max(1, len(files))
print("| %s | %s | %s | %d | %d | %.2f%% | %d | %.2f | %d |" % (split, model, policy.replace("cap-", "cap "),
      summary["compared"], summary["same"], 100.0 * summary["same"] / max(1, summary["compared"]),
      summary.get("same_letters", 0) - summary["same"], seg, summary["files"] - summary["compared"]))
for r in files:
    if not r["same_letters"]:
        print("    differs: %s\n      whole:  %s\n      stream: %s" % (r["file"].rsplit("/", 1)[-1], r["whole"], r["stream"]),
              file=sys.stderr)
PY
        sed 's/^/    /' "$tmp/r.err" >&2
    done
done
