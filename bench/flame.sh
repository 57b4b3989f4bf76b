#!/usr/bin/env bash
# flame.sh — where acmd's time goes, as flame graphs drawn by gnuplot (no FlameGraph scripts needed).
#
# Starts acmd on the shipped ACM model, drives it with acm bench, and profiles the whole process with perf (cpu-clock
# samples, DWARF call chains, kernel frames where perf_event_paranoid allows) for two loads:
#   health    GET /v2/health/live, closed loop, FLAME_CONNS connections: the I/O thread alone
#   classify  POST /v1/models/fmnist/classify of Fashion-MNIST test images, closed loop: I/O thread and workers
# For each it writes FLAME_OUT/<load>.png (one box per frame, width = share of samples, the thread's name at the
# root, frames of a library without symbols merged into one "[library]" box), FLAME_OUT/<load>.folded (the folded
# stacks: "thread;outer;...;inner count") and prints the functions with the most samples of their own.
# Knobs: FLAME_MODEL (models/fmnist-vit-acm.safetensors), FLAME_SECS (5), FLAME_CONNS (8), FLAME_FREQ (999 Hz),
# FLAME_OUT (bench/flame).  Usage: bash bench/flame.sh [BUILD]
set -euo pipefail
B=${1:-build}
MODEL=${FLAME_MODEL:-models/fmnist-vit-acm.safetensors}
SECS=${FLAME_SECS:-5}; CONNS=${FLAME_CONNS:-8}; FREQ=${FLAME_FREQ:-999}; OUT=${FLAME_OUT:-bench/flame}
command -v perf >/dev/null || { echo "flame: perf not installed (apt-get install linux-perf)" >&2; exit 1; }
command -v gnuplot >/dev/null || { echo "flame: gnuplot not installed (make deps)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "flame: no model $MODEL" >&2; exit 1; }
make --no-print-directory "$B/acmd" "$B/acm" >/dev/null
mkdir -p "$OUT"
tmp=$(mktemp -d); pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

"$B/acmd" --model "fmnist=$MODEL" --log-level warn --listen 127.0.0.1:0 --port-file "$tmp/port" 2>"$tmp/acmd.log" &
pid=$!
for _ in $(seq 400); do [ -s "$tmp/port" ] && break; sleep 0.05; done
URL=http://127.0.0.1:$(cat "$tmp/port")
for _ in $(seq 600); do curl -sf "$URL/v2/health/ready" >/dev/null && break; sleep 0.05; done
curl -sf "$URL/v2/health/ready" >/dev/null || { echo "flame: acmd did not become ready:"; cat "$tmp/acmd.log"; exit 1; }
core=$(curl -s "$URL/metrics" | sed -nE 's/.*blas_core="([^"]*)".*/\1/p' | head -1)
echo "flame: model $MODEL, ${SECS}s per load, $CONNS connections, $FREQ Hz, $(nproc) CPUs, BLAS core ${core:-?}," \
     "perf_event_paranoid $(cat /proc/sys/kernel/perf_event_paranoid), load average $(cut -d' ' -f1-3 /proc/loadavg)"

# perf script -> folded stacks. A sample is a header line ("comm pid time: period event:") and its frames, innermost
# first; the root is the thread's name, and consecutive frames of one library without symbols become one box.
fold() {
    perf script -i "$1" 2>/dev/null | awk '
        function flush(   s, i) {
            if (n == 0) return
            s = comm
            for (i = n; i >= 1; i--) s = s ";" f[i]
            cnt[s]++; n = 0
        }
        /^[^ \t]/ { flush(); comm = $1; for (i = 2; i < NF && $i !~ /^[0-9]+$/; i++) comm = comm "_" $i; next }
        /^[ \t]*$/ { flush(); next }
        {
            sym = $2; lib = $NF; gsub(/[()]/, "", lib); sub(/.*\//, "", lib); sub(/\.so.*/, "", lib)
            sub(/\+0x[0-9a-f]+$/, "", sym)
            if (sym == "[unknown]") { if (lib == "[unknown]" ) next; sym = "[" lib "]" }
            if (n > 0 && f[n] == sym) next
            f[++n] = sym
        }
        END { flush(); for (s in cnt) print s, cnt[s] }' | sort
}

# folded stacks -> one box per frame: x0 x1 depth name (x in samples), as flamegraph.pl lays them out: stacks sorted,
# a frame that continues the previous stack at the same depth widens its box.
layout() {
    awk '
        BEGIN { x = 0; depth = 0 }
        function close_from(d,   i) {
            for (i = depth; i >= d; i--) if (i in open) { print start[i], x, i, open[i]; delete open[i] }
            if (d - 1 < depth) depth = d - 1
        }
        {
            c = $NF; $NF = ""; sub(/ $/, ""); m = split($0, fr, ";")
            d = 1
            while (d <= m && d <= depth && open[d] == fr[d]) d++
            close_from(d)
            for (i = d; i <= m; i++) { open[i] = fr[i]; start[i] = x }
            depth = m; x += c
        }
        END { close_from(1); print "# total", x }'
}

plot() { # $1 boxes file, $2 png, $3 title
    local total maxd
    total=$(sed -n 's/^# total //p' "$1"); maxd=$(awk '!/^#/ && $3 > m { m = $3 } END { print m + 0 }' "$1")
    awk -v T="$total" '!/^#/ {
            name = $4; for (i = 5; i <= NF; i++) name = name " " $i
            w = ($2 - $1) / T
            lab = w > 0.035 ? name : ""; maxc = int(w * 250); if (length(lab) > maxc) lab = substr(lab, 1, maxc > 2 ? maxc - 2 : 0) ".."
            if (w <= 0.035) lab = ""
            h = 0; for (i = 1; i <= length(name); i++) h = (h * 31 + index("abcdefghijklmnopqrstuvwxyz_", substr(name, i, 1))) % 997
            r = 205 + h % 50; g = 80 + (h * 7) % 120; b = 30 + (h * 13) % 40
            if (name ~ /^\[/) { r = 150; g = 150; b = 200 }
            printf "%.6f %.6f %d %d \"%s\"\n", $1 / T, $2 / T, $3, r * 65536 + g * 256 + b, lab }' "$1" > "$1.plot"
    gnuplot <<EOF
set terminal pngcairo size 1600,$((140 + maxd * 18)) font "DejaVu Sans,8" noenhanced
set output "$2"
set title "$3" font ",11"
set xrange [0:1]; set yrange [0.5:$maxd + 0.5]
set xlabel "share of the samples (100 % = all threads' samples)"; set format x "%.0f%%"
set xtics ("0" 0, "20" 0.2, "40" 0.4, "60" 0.6, "80" 0.8, "100" 1)
unset ytics; set border 1
set style fill solid 1.0 border rgb "white"
plot "$1.plot" using ((\$1+\$2)/2):3:((\$2-\$1)/2):(0.5):4 with boxxyerror lc rgb variable notitle, \
     "" using (\$1 + 0.001):3:5 with labels left font ",7" notitle
EOF
}

profile() { # $1 name, then acm bench arguments
    local name=$1; shift
    perf record -q -e cpu-clock -F "$FREQ" --call-graph dwarf,16384 -p "$pid" -o "$tmp/$name.data" -- sleep "$SECS" \
        2>"$tmp/$name.perf" &
    local rec=$!
    "$B/acm" bench --server "$URL" --no-progress --json -c "$CONNS" -d "$SECS" "$@" > "$tmp/$name.json"
    wait "$rec"
    local rps
    rps=$(sed -nE 's/.*"throughput_rps": *([0-9.]+).*/\1/p' "$tmp/$name.json" | head -1)
    fold "$tmp/$name.data" > "$OUT/$name.folded"
    layout < "$OUT/$name.folded" > "$tmp/$name.boxes"
    local n
    n=$(sed -n 's/^# total //p' "$tmp/$name.boxes")
    plot "$tmp/$name.boxes" "$OUT/$name.png" "acmd, $name: $n samples over ${SECS} s at ${rps:-?} req/s ($CONNS connections, BLAS core ${core:-?})"
    echo; echo "== $name: $n samples, ${rps:-?} req/s; own samples by function (top 15) =="
    awk '{ c = $NF; $NF = ""; sub(/ $/, ""); m = split($0, f, ";"); self[f[m]] += c; t += c }
         END { for (s in self) printf "%6.2f%%  %s\n", 100 * self[s] / t, s }' "$OUT/$name.folded" | sort -rn | head -15
    echo "== $name: by thread =="
    awk '{ c = $NF; split($1, f, ";"); th[f[1]] += c; t += c } END { for (s in th) printf "%6.2f%%  %s\n", 100 * th[s] / t, s }' \
        "$OUT/$name.folded" | sort -rn
}

profile health --get /v2/health/live
profile classify --model fmnist
echo; echo "flame: wrote $OUT/health.png, $OUT/classify.png and their folded stacks"
