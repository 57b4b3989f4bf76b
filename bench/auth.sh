#!/usr/bin/env bash
# bench/auth.sh — what API keys and TLS cost, and whether a FLOP-rate limit keeps one tenant from hurting another
# (issue 25; bench/RESULTS.md, "acmd, part 5"). One run, loopback only, about 2.5 minutes with the defaults.
#
#   0. The key check alone, in process (bench/auth_keys.c): ns per lookup for 1 to 1000 keys in the file, and, after
#      stage 1, that time as a fraction of one request's p50 on plain HTTP: a bound the server-level run cannot see
#      through a shared machine's noise.
#   1. Three acmd side by side on the same model, one worker x 1 BLAS thread each: plain HTTP without keys, plain
#      HTTP with --auth-file (the client sends its key), HTTPS with keys (--tls-cert, a certificate made here). Rounds
#      interleave them (round r starts with a different server, so that no server always runs first), and each visit
#      measures one client's latency (wrk -c1: p50, p99) then saturation throughput (wrk -c8, keep-alive: the TLS
#      handshake is paid once per connection, then only record encryption). Figures are medians over rounds; the
#      ratios are medians of the per-round ratios to plain HTTP.
#   2. Two tenants on the keyed server: capacity C is part 1's plain throughput. Tenant b sends 0.3 C req/s (open
#      loop, X-Deadline-Ms); tenant a's key gets flops_rate = 0.3 C requests' worth of FLOPs a second (acmd's own cost
#      of a request at its budget, read from a 429), flops_burst 1/20 s of that, and a floods at 3x the rate. Phases, interleaved over rounds: b alone;
#      b with a flooding under the limit; b with a flooding on a key without limits (the control: what the limit
#      prevents, a load of 1.2 C). The auth file is rewritten and acmd reloaded with SIGHUP for the tenants.
#
# Knobs: ACM_BENCH_ROUNDS (5), ACM_BENCH_SECS (3: throughput run), ACM_BENCH_LAT_SECS (2: latency run),
# ACM_BENCH_TENANT_SECS (8), ACM_BENCH_TENANT_ROUNDS (2), ACM_BENCH_DEADLINE_MS (100), ACM_BENCH_MODEL
# (models/fmnist-vit-acm.safetensors). Usage: bash bench/auth.sh [BUILD]
set -eu
B=${1:-build}
R=${ACM_BENCH_ROUNDS:-5}; D=${ACM_BENCH_SECS:-3}; L=${ACM_BENCH_LAT_SECS:-2}
TD=${ACM_BENCH_TENANT_SECS:-8}; TR=${ACM_BENCH_TENANT_ROUNDS:-2}; DL=${ACM_BENCH_DEADLINE_MS:-100}
MODEL=${ACM_BENCH_MODEL:-models/fmnist-vit-acm.safetensors}
for c in wrk openssl jq curl; do command -v $c >/dev/null || { echo "auth.sh: $c not installed (make deps)"; exit 1; }; done
make --no-print-directory "$B/acmd" "$B/acm" "$B/bench/server_engine" "$B/bench/auth_keys" >/dev/null
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

# ---- 0. the key check alone --------------------------------------------------------------------------------------
"$B/bench/auth_keys" 3 | tee "$tmp/part0"
echo

# ---- setup: a PNG, a certificate, keys ------------------------------------------------------------------------------
"$B/bench/server_engine" make-png "$tmp/x.png"
export ACM_BENCH_PNG=$tmp/x.png
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
K=bench-key-0123456789abcdef
line() { echo "$2" | "$B/acmd" --hash-key "$1"; } # the auth-file line of key $2 named $1
{ line bench "$K"; echo "$(line probe probe-key) flops_rate=1 flops_burst=1"; } > "$tmp/keys"

start() { # name, then acmd's options; sets port_<name>
    local n=$1; shift
    "$B/acmd" --model "m=$MODEL" --workers 1 --blas-threads 1 --listen 127.0.0.1:0 --port-file "$tmp/$n.port" \
        --log-level info "$@" 2>"$tmp/$n.log" & pids+=($!)
    eval "pid_$n=$!"
    for _ in $(seq 400); do grep -q "ready:" "$tmp/$n.log" 2>/dev/null && break; sleep 0.05; done
    grep -q "ready:" "$tmp/$n.log" || { echo "auth.sh: acmd $n did not start:"; cat "$tmp/$n.log"; exit 1; }
    eval "port_$n=$(cat "$tmp/$n.port")"
}
start plain
start keys --auth-file "$tmp/keys"
start tls --auth-file "$tmp/keys" --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"
core=$(sed -n 's/.*BLAS core \([A-Za-z0-9_]*\).*/\1/p' "$tmp/plain.log" | head -1)
echo "auth.sh: model $MODEL, 1 worker x 1 BLAS thread per acmd, OpenBLAS core $core, $(nproc) CPUs, load" \
     "$(cut -d' ' -f1-3 /proc/loadavg); $R rounds of wrk -c1 ${L}s + wrk -c8 ${D}s per server"

url() { case $1 in tls) echo "https://127.0.0.1:$port_tls/v1/models/m/classify" ;;
                   *) eval "echo http://127.0.0.1:\$port_$1/v1/models/m/classify" ;; esac; }
# wrk latency percentile line ("    99%   12.34ms") -> milliseconds
pct_ms() { awk -v p="$1%" '$1 == p { v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
           f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.3f", v * f }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---- 1. keys and TLS against plain HTTP ---------------------------------------------------------------------------
cfgs=(plain keys tls)
: > "$tmp/part1"
for round in $(seq "$R"); do
    for i in 0 1 2; do
        c=${cfgs[$(( (i + round - 1) % 3 ))]}
        hdr=(); [ "$c" = plain ] || hdr=(-H "Authorization: Bearer $K")
        lat=$(wrk -t1 -c1 -d"${L}s" --latency -s bench/server_post_png.lua "${hdr[@]}" "$(url "$c")")
        thr=$(wrk -t1 -c8 -d"${D}s" -s bench/server_post_png.lua "${hdr[@]}" "$(url "$c")")
        p50=$(echo "$lat" | pct_ms 50); p99=$(echo "$lat" | pct_ms 99)
        rps=$(echo "$thr" | awk '/^Requests\/sec:/ { print $2 }')
        bad=$(printf '%s\n%s\n' "$lat" "$thr" | awk '/Non-2xx/ { n += $5 } /Socket errors/ { n += 1 } END { print n + 0 }')
        echo "round $round $c: c1 p50 ${p50} ms p99 ${p99} ms; c8 ${rps} req/s; non-2xx or socket errors: $bad"
        echo "$round $c $p50 $p99 $rps $bad" >> "$tmp/part1"
    done
done
col() { awk -v c="$1" -v k="$2" '$2 == c { print $k }' "$tmp/part1" | median; }
ratio() { # median over rounds of (cfg's column k / plain's column k)
    awk -v c="$1" -v k="$2" '$2 == "plain" { p[$1] = $k } $2 == c { x[$1] = $k }
         END { for (r in x) if (p[r] > 0) print x[r] / p[r] }' "$tmp/part1" | median; }
echo
echo "| server | c1 p50 ms | c1 p99 ms | c8 req/s | req/s vs plain | p50 vs plain | errors |"
echo "|---|---|---|---|---|---|---|"
for c in plain keys tls; do
    printf '| %s | %.3f | %.3f | %.1f | %.3f | %.3f | %d |\n' "$c" "$(col "$c" 3)" "$(col "$c" 4)" "$(col "$c" 5)" \
        "$(ratio "$c" 5)" "$(ratio "$c" 3)" "$(awk -v c="$c" '$2 == c { n += $6 } END { print n + 0 }' "$tmp/part1")"
done

k1=$(awk -F= '/^keys=1 / { print $3 }' "$tmp/part0"); k100=$(awk -F= '/^keys=100 / { print $3 }' "$tmp/part0")
awk -v a="$k1" -v b="$k100" -v p="$(col plain 3)" 'BEGIN { printf "key check: %d ns (1 key), %d ns (100 keys) per request = %.4f %% / %.4f %% of plain HTTP'"'"'s one-client p50 (%.3f ms)\n", a, b, 100 * a / (p * 1e6), 100 * b / (p * 1e6), p }'

# ---- 2. two tenants -------------------------------------------------------------------------------------------------
C=$(col plain 5)
# acmd's cost of one request at its budget (what the FLOP bucket charges): the probe key's second request is a 429
# whose message says it
for _ in 1 2; do
    msg=$(curl -s -H "Authorization: Bearer probe-key" -H 'Content-Type: image/png' --data-binary @"$tmp/x.png" "$(url keys)")
done
cost=$(echo "$msg" | sed -n 's/.*this request: \([0-9.e+]*\) FLOPs.*/\1/p')
[ -n "$cost" ] || { echo "auth.sh: no cost in the probe's answer: $msg"; exit 1; }
rb=$(awk -v c="$C" 'BEGIN { printf "%d", 0.3 * c }'); ra=$rb
fr=$(awk -v c="$cost" -v r="$ra" 'BEGIN { printf "%.6g", c * r }')
# a burst of 1/20 s of a's rate (at least one request): the default, one second's worth, would let a put a second of
# work in the queue at once, ahead of b's deadlines
fb=$(awk -v c="$cost" -v r="$ra" 'BEGIN { n = r / 20; if (n < 1) n = 1; printf "%.6g", c * n }')
{ line bench "$K"; line b tenant-b-key; echo "$(line a tenant-a-key) flops_rate=$fr flops_burst=$fb"; line a_open tenant-a-open-key; } \
    > "$tmp/keys"
kill -HUP "$pid_keys"
for _ in $(seq 100); do grep -q "auth-file .* reloaded: 4 key" "$tmp/keys.log" && break; sleep 0.05; done
grep -q "auth-file .* reloaded: 4 key" "$tmp/keys.log" || { echo "auth.sh: the reload did not happen"; exit 1; }
echo
echo "two tenants: capacity C = $C req/s (plain, c8); one request costs $cost FLOPs at its budget; b: $rb req/s," \
     "X-Deadline-Ms $DL; a: flops_rate $fr FLOP/s ($ra req/s), flops_burst $fb, flooding at $((3 * ra)) req/s; ${TD}s per phase, $TR rounds"
bench() { "$B/acm" bench --server "http://127.0.0.1:$port_keys" --model m --no-progress --json -d "$TD" "$@"; }
: > "$tmp/part2"
for round in $(seq "$TR"); do
    for phase in alone limited open; do
        case $phase in
            alone) bench --api-key tenant-b-key -r "$rb" --deadline-ms "$DL" > "$tmp/b.json"; echo '{}' > "$tmp/a.json" ;;
            limited|open)
                k=tenant-a-key; [ $phase = open ] && k=tenant-a-open-key
                bench --api-key "$k" -r $((3 * ra)) --max-inflight 64 > "$tmp/a.json" & ap=$!
                bench --api-key tenant-b-key -r "$rb" --deadline-ms "$DL" > "$tmp/b.json"
                wait "$ap" ;;
        esac
        b_ok=$(jq '.by_status["200"] // 0' "$tmp/b.json"); b_sent=$(jq '.sent' "$tmp/b.json")
        b_rps=$(jq '.ok_rps' "$tmp/b.json"); b_att=$(jq '.deadline.attainment // 0' "$tmp/b.json")
        b_p99=$(jq '.latency_ms.p99 // 0' "$tmp/b.json")
        a_ok=$(jq '.by_status["200"] // 0' "$tmp/a.json"); a_429=$(jq '.by_status["429"] // 0' "$tmp/a.json")
        a_sent=$(jq '.sent // 0' "$tmp/a.json")
        echo "round $round $phase: b $b_ok/$b_sent answered 200 ($b_rps req/s), deadlines met $b_att, p99 $b_p99 ms," \
             "statuses $(jq -c '.by_status' "$tmp/b.json"), client CPU $(jq '.client_cpu.share' "$tmp/b.json");" \
             "a $a_sent sent, $a_ok 200, $a_429 429, client CPU $(jq '.client_cpu.share // 0' "$tmp/a.json")"
        echo "$round $phase $b_ok $b_sent $b_rps $b_att $b_p99 $a_sent $a_ok $a_429" >> "$tmp/part2"
    done
done
c2() { awk -v c="$1" -v k="$2" '$2 == c { print $k }' "$tmp/part2" | median; }
r2() { awk -v c="$1" -v k="$2" '$2 == "alone" { p[$1] = $k } $2 == c { x[$1] = $k }
         END { for (r in x) if (p[r] > 0) print x[r] / p[r] }' "$tmp/part2" | median; }
echo
echo "| phase | b 200s/s | b vs alone | b deadlines met | b p99 ms | a sent | a 200 | a 429 |"
echo "|---|---|---|---|---|---|---|---|"
for ph in alone limited open; do
    printf '| %s | %.1f | %.4f | %.4f | %.2f | %.0f | %.0f | %.0f |\n' "$ph" "$(c2 $ph 5)" "$(r2 $ph 3)" "$(c2 $ph 6)" \
        "$(c2 $ph 7)" "$(c2 $ph 8)" "$(c2 $ph 9)" "$(c2 $ph 10)"
done
echo "(medians over $TR rounds; 'b vs alone': b's 200s over b's 200s alone in the same round, same seed so same arrivals)"
echo "auth.sh: done, OpenBLAS core $core, load $(cut -d' ' -f1-3 /proc/loadavg)"
