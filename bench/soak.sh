#!/usr/bin/env bash
# The soak (issue 16, section 8): acmd under a long steady load with bad clients mixed in, checked for lost requests,
# server errors, memory growth, descriptor leaks and a clean exit.
#  1. acmd serves the shipped ACM model (--log-level warn, --request-timeout SOAK_REQUEST_TIMEOUT, --max-per-ip 0:
#     every client here is 127.0.0.1). Its open descriptors are counted once it is ready: the baseline. glibc's heap
#     trimming is turned off for it (GLIBC_TUNABLES glibc.malloc.trim_threshold, unless SOAK_PIN_HEAP=0): RSS is then
#     the high-water mark of the heap, which a leak raises, rather than a function of how many connections happen to
#     be open when it is sampled (with trimming, 30 connections more or less move it by ~1 MiB, 4% of acmd's ~25 MiB,
#     and back).
#  2. Saturation S: `acm bench -c SOAK_SAT_CONNS -d SOAK_SAT_SECS` (closed loop), its 200s per second. No speed is
#     assumed anywhere: every rate below is a fraction of S. Then a warm-up burst, 3 s closed loop at SOAK_WARM_CONNS
#     connections: at least as many as the run can hold open (the good client's SOAK_MAX_INFLIGHT, soak_client's
#     SOAK_MAX_SLOW slow clients and its short-lived ones), so that the memory that grows with the number of
#     connections (libmicrohttpd's per-connection pools) has grown before RSS is judged.
#  3. For SOAK_SECS seconds, open loop (Poisson) at SOAK_LOAD x S in all: a share SOAK_ADVERSARIAL of it from
#     build/bench/soak_client (bench/soak_client.c: bad requests that must get a 4xx — garbage images, wrong or missing
#     content types, invalid budget/deadline/priority headers, a huge Content-Length, malformed and short OIP JSON, an
#     unknown model, a wrong method, a line that is not HTTP —, disconnects mid-body and mid-compute, and slow clients
#     dripping a byte at a time, half finishing within the request timeout and half not), the rest good requests from
#     `acm bench -r` (Fashion-MNIST test images; latency from each scheduled send; at most SOAK_MAX_INFLIGHT
#     connections, arrivals past them wait and the wait counts in their latency; --max-idle half the request timeout:
#     acmd closes a connection idle for --request-timeout, and a request sent on it at that moment would be lost to
#     HTTP/1.1's keep-alive race, which a client that does not retry avoids by retiring idle connections first). soak_client samples the server
#     every SOAK_SAMPLE_S seconds: RSS, open descriptors, threads.
#  4. Once every client is done: descriptors back to the baseline (waited for up to 10 s), /metrics, SIGTERM, the
#     exit status.
#  5. `soak_client report` prints the tables and the checks and exits 1 if one fails: accounted (every request got a
#     status or was a planned disconnect), no_5xx (clients and the server's own count), bad_4xx, good_200 (429
#     allowed, reported), request_timeout (slow clients closed after the timeout, not before), rss_flat (the
#     least-squares line through the RSS samples of the last 5/6 of the run — after t = SOAK_SECS/6, e.g. the last 50
#     of 60 minutes or 50 of 60 seconds — rises by less than 2% of its value at the start of that window),
#     fds_baseline, sigterm_exit_0, no_crash (the server lived through the run, no death by signal, no sanitizer report
#     in its log). bench/soak_client.c's header states each rule exactly.
# Writes SOAK_OUT (default build/soak): samples.csv (t_s, rss_kb, fds, threads, client_open), good.json (acm bench),
# adversarial.json, saturation.json, metrics_start.txt and metrics.txt (before the load and at the end), acmd.log, summary.json (every figure and check) and soak.png (RSS
# and descriptors over time, with gnuplot).
# Knobs: SOAK_SECS (3600; or the second argument), SOAK_LOAD (0.8), SOAK_ADVERSARIAL (0.1), SOAK_REQUEST_TIMEOUT (5),
# SOAK_SAT_SECS (10), SOAK_SAT_CONNS (8), SOAK_MAX_INFLIGHT (64), SOAK_MAX_SLOW (32), SOAK_WARM_CONNS (128),
# SOAK_SAMPLE_S (2), SOAK_PIN_HEAP (1), SOAK_MODEL (models/fmnist-vit-acm.safetensors),
# SOAK_OUT (build/soak).  Usage: bash bench/soak.sh [BUILD [SECONDS]]   (CI: bash bench/soak.sh build 60)
set -eu
B=${1:-build}
SECS=${2:-${SOAK_SECS:-3600}}
LOAD=${SOAK_LOAD:-0.8}; ADV=${SOAK_ADVERSARIAL:-0.1}; RT=${SOAK_REQUEST_TIMEOUT:-5}
SAT_SECS=${SOAK_SAT_SECS:-10}; SAT_CONNS=${SOAK_SAT_CONNS:-8}; SAMPLE=${SOAK_SAMPLE_S:-2}
MAXIN=${SOAK_MAX_INFLIGHT:-64}; MAXSLOW=${SOAK_MAX_SLOW:-32}; WARM=${SOAK_WARM_CONNS:-128}
MODEL=${SOAK_MODEL:-models/fmnist-vit-acm.safetensors}; OUT=${SOAK_OUT:-build/soak}; PIN=${SOAK_PIN_HEAP:-1}
EXIT_TIMEOUT=10
MAXIDLE=$(awk -v t="$RT" 'BEGIN { m = int(t / 2); print m < 1 ? 1 : m }')
awk -v t="$RT" 'BEGIN { exit !(t >= 2) }' || { echo "soak: SOAK_REQUEST_TIMEOUT must be at least 2 (s)" >&2; exit 1; }
[ -f "$MODEL" ] || { echo "soak: no model $MODEL (SOAK_MODEL=PATH for another)" >&2; exit 1; }
make --no-print-directory "$B/acmd" "$B/acm" "$B/bench/soak_client" >/dev/null
SC=$B/bench/soak_client
mkdir -p "$OUT"
rm -f "$OUT"/{samples.csv,good.json,adversarial.json,saturation.json,metrics_start.txt,metrics.txt,acmd.log,summary.json,soak.png}
tmp=$(mktemp -d); pid=; lpid=
cleanup() {
    [ -n "$lpid" ] && kill "$lpid" 2>/dev/null
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
fds() { ls /proc/"$1"/fd | wc -l; }
# /metrics into FILE over bash's /dev/tcp (HTTP/1.0: the server closes after the answer); no curl needed
metrics() {
    { exec 3<>"/dev/tcp/127.0.0.1/$P" && printf 'GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
      sed '1,/^\r$/d' <&3 > "$1"; exec 3<&-; } || echo "soak: /metrics could not be read" >&2
}

heap=(); [ "$PIN" = 1 ] && heap=(env "GLIBC_TUNABLES=glibc.malloc.trim_threshold=4294967296${GLIBC_TUNABLES:+:$GLIBC_TUNABLES}")
"${heap[@]}" "$B/acmd" --model "fmnist=$MODEL" --log-level warn --listen 127.0.0.1:0 --port-file "$tmp/port" \
    --request-timeout "$RT" --exit-timeout "$EXIT_TIMEOUT" --max-per-ip 0 2>"$OUT/acmd.log" & pid=$!
for _ in $(seq 400); do [ -s "$tmp/port" ] && break; sleep 0.05; done
[ -s "$tmp/port" ] || { echo "soak: acmd did not start:"; cat "$OUT/acmd.log"; exit 1; }
P=$(cat "$tmp/port"); URL=http://127.0.0.1:$P
for _ in $(seq 600); do "$B/acm" health --server "$URL" >/dev/null 2>&1 && break; sleep 0.05; done
"$B/acm" health --server "$URL" >/dev/null || { echo "soak: acmd did not become ready:"; cat "$OUT/acmd.log"; exit 1; }
fd_base=$(fds "$pid")
metrics "$OUT/metrics_start.txt" # the server's counters before the load (the readiness wait's 503s stay out)
echo "soak: model $MODEL, ${SECS}s at ${LOAD} x saturation (${ADV} of it adversarial), request timeout ${RT}s," \
     "$(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); acmd pid $pid, $fd_base descriptors when ready"

"$B/acm" bench --server "$URL" -c "$SAT_CONNS" -d "$SAT_SECS" --json --no-progress > "$OUT/saturation.json"
S=$("$SC" get "$OUT/saturation.json" ok_rps)
good=$(awk -v s="$S" -v l="$LOAD" -v a="$ADV" 'BEGIN { printf "%.3f", s * l * (1 - a) }')
adv=$(awk -v s="$S" -v l="$LOAD" -v a="$ADV" 'BEGIN { printf "%.3f", s * l * a }')
awk -v g="$good" -v a="$adv" 'BEGIN { exit !(g > 0 && a > 0) }' || { echo "soak: saturation $S ok/s: nothing to run at"; exit 1; }
echo "soak: saturation S = $S ok/s (closed loop, -c $SAT_CONNS, ${SAT_SECS}s); good $good req/s + adversarial $adv req/s"
"$B/acm" bench --server "$URL" -c "$WARM" -d 3 --json --no-progress > "$tmp/warm.json"

"$SC" load --port "$P" --rate "$adv" --duration "$SECS" --request-timeout "$RT" --max-slow "$MAXSLOW" --pid "$pid" \
    --samples "$OUT/samples.csv" --sample-s "$SAMPLE" --out "$OUT/adversarial.json" & lpid=$!
brc=0; "$B/acm" bench --server "$URL" -r "$good" --max-inflight "$MAXIN" --max-idle "$MAXIDLE" -d "$SECS" --json --no-progress > "$OUT/good.json" || brc=$?
lrc=0; wait "$lpid" || lrc=$?; lpid=
[ "$brc" = 0 ] && [ "$lrc" = 0 ] || { echo "soak: a client failed (acm bench $brc, soak_client $lrc)"; exit 1; }

# every client is gone: the server's descriptors go back to the baseline (it closes a connection when it sees EOF)
fd_end=-1
if kill -0 "$pid" 2>/dev/null; then
    for _ in $(seq 100); do fd_end=$(fds "$pid"); [ "$fd_end" -le "$fd_base" ] && break; sleep 0.1; done
    metrics "$OUT/metrics.txt"
    kill -TERM "$pid"
    for _ in $(seq $(( (EXIT_TIMEOUT + 10) * 10 ))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
touch "$OUT/metrics.txt"
rc=0
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; rc=-1
else wait "$pid" || rc=$?; fi
pid=

if command -v gnuplot >/dev/null && [ "$(wc -l < "$OUT/samples.csv")" -gt 2 ]; then
    w=$(awk -v s="$SECS" 'BEGIN { print s / 6 }')
    gnuplot <<EOF || echo "soak: gnuplot failed" >&2
set terminal pngcairo size 1000,500 font ",10"
set output "$OUT/soak.png"
set datafile separator ","
set title "acmd soak: ${SECS} s at ${LOAD} x saturation (S = $(printf '%.1f' "$S") ok/s), $(nproc) CPUs, $(git log -1 --format=%h 2>/dev/null || echo '?')"
set xlabel "time since the load started (s)"; set grid
set ylabel "RSS (MiB)"; set y2label "open descriptors"; set ytics nomirror; set y2tics
set yrange [0:*]; set y2range [0:*]; set key bottom right
set arrow from $w, graph 0 to $w, graph 1 nohead dt 2
set label "end of warm-up" at $w, graph 0.95 offset 0.5,0
plot "$OUT/samples.csv" every ::1 u 1:(\$2/1024) w l lw 2 t "RSS (MiB)", \
     "" every ::1 u 1:3 axes x1y2 w l t "open descriptors", "" every ::1 u 1:5 axes x1y2 w l dt 3 t "adversarial connections open"
EOF
fi

"$SC" report --bench "$OUT/good.json" --adversarial "$OUT/adversarial.json" --samples "$OUT/samples.csv" \
    --metrics-start "$OUT/metrics_start.txt" --metrics "$OUT/metrics.txt" --log "$OUT/acmd.log" --duration "$SECS" --saturation "$S" --rate "$good" \
    --fd-baseline "$fd_base" --fd-end "$fd_end" --exit-code "$rc" --out "$OUT/summary.json"
