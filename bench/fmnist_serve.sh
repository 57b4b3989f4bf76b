#!/usr/bin/env bash
# Issue 26: acmd's throughput on the shipped Fashion-MNIST models, two builds side by side (what the engine's gains give
# a served model). Each build's acmd serves models/fmnist-vit-acm.safetensors as "fmnist" and
# models/fmnist-vit.safetensors as "fmnist-static"; `acm bench` (closed loop, the Fashion-MNIST test images) loads
# fmnist at X-Compute-Budget 1 and 0.25 and fmnist-static without a budget. The builds alternate round by round (the
# machine may be shared: load moves between runs); the table has the medians and the ratio new / old of each round's
# throughput (median of the per-round ratios).
# usage: bash bench/fmnist_serve.sh [NEW_BUILD=build] [OLD_BUILD]
#        OLD_REF=<commit> bash bench/fmnist_serve.sh [NEW_BUILD]   builds <commit> first, from `git archive`, in a
#                                                                  temporary directory (a few minutes at make -j2)
#        With neither OLD_BUILD nor OLD_REF (as `make bench` runs it): NEW_BUILD alone, no ratio.
# Knobs (environment): SECS (5 per run), ROUNDS (3), CONC (16 requests in flight), ACMD_ARGS (acmd's worker layout;
# default "--workers 1 --blas-threads 2": one worker with its pool on both cores), NICE (5),
# DATA (/usr/share/datasets/fashion-mnist).
set -eu
NEW=${1:-build}
OLD=${2:-}
S=${SECS:-5}; R=${ROUNDS:-3}; C=${CONC:-16}; N=${NICE:-5}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
read -r -a layout <<< "${ACMD_ARGS:---workers 1 --blas-threads 2}"
for f in models/fmnist-vit-acm.safetensors models/fmnist-vit.safetensors; do
    [ -f "$f" ] || { echo "fmnist_serve: $f missing"; exit 1; }
done
tmp=$(mktemp -d /tmp/fmnist-serve-XXXXXX); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
if [ -z "$OLD" ] && [ -n "${OLD_REF:-}" ]; then
    ref=$OLD_REF
    mkdir -p "$tmp/old-src"
    git archive "$ref" | tar -x -C "$tmp/old-src"
    echo "fmnist_serve: building $ref in $tmp/old-src (make -j2 at nice $N)"
    nice -n "$N" make --no-print-directory -C "$tmp/old-src" -j2 build/acmd >/dev/null
    OLD=$tmp/old-src/build
    old_name=$ref
else
    old_name=${OLD:-none}
fi
make --no-print-directory "$NEW/acmd" "$NEW/acm" >/dev/null
echo "== bench/fmnist_serve.sh: $(date -u +%FT%TZ), old $old_name, new $NEW (commit $(git rev-parse --short HEAD)), acmd ${layout[*]}, $C in flight, ${S}s x $R rounds, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

start() { # build dir, name -> port in $tmp/NAME.port, pid appended
    nice -n "$N" "$1/acmd" --model fmnist=models/fmnist-vit-acm.safetensors \
        --model fmnist-static=models/fmnist-vit.safetensors "${layout[@]}" --listen 127.0.0.1:0 \
        --port-file "$tmp/$2.port" --log-level info 2>"$tmp/$2.log" &
    pids+=($!)
    for _ in $(seq 600); do
        [ -s "$tmp/$2.port" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/$2.port")/v2/health/ready" >/dev/null && return 0
        sleep 0.1
    done
    echo "fmnist_serve: acmd of $1 did not become ready"; cat "$tmp/$2.log"; exit 1
}
[ -n "$OLD" ] && start "$OLD" old
start "$NEW" new
core=$(grep -o 'BLAS core [A-Za-z0-9]*' "$tmp/new.log" | head -1 || true)
# one run: server name, model, budget ('-': none) -> answers/s (non-200 answers or transport errors fail the run)
run() {
    local b=() port
    port=$(cat "$tmp/$1.port")
    [ "$3" != - ] && b=(--budget "$3")
    nice -n "$N" "$NEW/acm" bench --server "http://127.0.0.1:$port" --model "$2" -c "$C" -t 2 -d "$S" "${b[@]}" \
        --data "$DATA" --json > "$tmp/run.json"
    /usr/bin/python3 - "$tmp/run.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
if d["errors"] or set(d["by_status"]) - {"200"}:
    sys.exit("fmnist_serve: errors %s, statuses %s" % (d["errors"], d["by_status"]))
print("%.1f" % d["throughput_rps"])
PY
}
: > "$tmp/rows"
for round in $(seq "$R"); do
    for cfg in "fmnist 1" "fmnist 0.25" "fmnist-static -"; do
        set -- $cfg
        if [ -z "$OLD" ]; then o=0; n=$(run new "$1" "$2")
        elif [ $((round % 2)) = 1 ]; then o=$(run old "$1" "$2"); n=$(run new "$1" "$2")
        else n=$(run new "$1" "$2"); o=$(run old "$1" "$2"); fi
        echo "round $round: $1 budget $2: old $o, new $n answers/s"
        echo "$1 $2 $o $n" >> "$tmp/rows"
    done
done
echo
echo "acmd throughput (answers/s, medians of $R rounds; ratio: median of per-round new / old)${core:+, $core}"
echo "| model | budget | old | new | new / old |"
echo "|---|---|---|---|---|"
/usr/bin/python3 - "$tmp/rows" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m, b, o, n = line.split()
    rows.setdefault((m, b), []).append((float(o), float(n)))
for (m, b), v in rows.items():
    old = statistics.median(o for o, _ in v)
    print("| %s | %s | %s | %.1f | %s |" % (m, b, "%.1f" % old if old else "–", statistics.median(n for _, n in v),
          "**%.2f**" % statistics.median(n / o for o, n in v) if old else "–"))
PY
