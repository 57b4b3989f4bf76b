#!/usr/bin/env bash
# Scale-out on one machine (issue 23; figures go to bench/RESULTS.md, "Scale-out behind haproxy"), with
# deploy/local-cluster.sh and `acm bench` on the Fashion-MNIST test images:
#   1. the same cores, three ways, side by side: 1 acmd with 2 workers, clients straight to it; 2 acmd with 1 worker
#      each behind haproxy; 1 acmd with 2 workers behind haproxy (the hop alone). Closed loop, ACM_BENCH_CONNS (8)
#      connections, ACM_BENCH_SECS (8) s per run, the three arms run in the order A B C C B A and each figure is the
#      mean of its two runs (drift on a shared machine falls on every arm alike). Throughput and p99.
#   2. rolling restarts under steady load: 2 x 1 worker behind haproxy, saturation measured (closed loop), then an
#      open loop at 50% of it for ACM_BENCH_ROLL_SECS (20) s; from 1 s in until the load ends, `local-cluster.sh roll`
#      replaces each instance (a new one added and UP, then the old one SIGTERMed and drained), one roll after
#      another, so that the whole window is restart. Errors, non-200s, p50 and p99, beside the same open loop without
#      a restart.
# Every process listens on loopback. Usage: bash bench/scaleout.sh [BUILD]
set -eu
B=${1:-build}
C=${ACM_BENCH_CONNS:-8}; D=${ACM_BENCH_SECS:-8}; RS=${ACM_BENCH_ROLL_SECS:-20}
make --no-print-directory "$B/acmd" "$B/acm" >/dev/null
tmp=$(mktemp -d)
pids=()
cleanup() {
    ACM_BUILD=$B bash deploy/local-cluster.sh stop "$tmp/c" >/dev/null 2>&1 || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
export ACM_BUILD=$B LB_PORT=$(free_port) ADMIN_PORT=$(free_port) HAPROXY_METRICS_PORT=$(free_port) PROM_PORT=$(free_port)
export PROMETHEUS=0 CLUSTER_MAX_S=900 # no scraper competing for the cores in the measurements
LB=http://127.0.0.1:$LB_PORT

# acm bench --json -> "throughput p99 errors non200 sent"
summary() {
    /usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
non200 = sum(v for k, v in d["by_status"].items() if k != "200")
print("%.1f %.2f %d %d %d %.2f" % (d["throughput_rps"], d["latency_ms"]["p99"], d["errors"], non200, d["sent"], d["latency_ms"]["p50"]))' "$1"
}
bench() { # bench OUT URL args...
    local out=$1 url=$2
    shift 2
    "$B/acm" bench --server "$url" --json --no-progress "$@" >"$out"
}

# one acmd with 2 workers, no haproxy
direct_start() {
    "$B/acmd" --model fmnist=models/fmnist-vit-acm.safetensors --workers 2 --log-level warn --listen 127.0.0.1:0 \
        --port-file "$tmp/direct.port" 2>"$tmp/direct.log" &
    direct_pid=$!
    pids+=("$direct_pid")
    for _ in $(seq 600); do
        [ -s "$tmp/direct.port" ] && "$B/acm" health --server "http://127.0.0.1:$(cat "$tmp/direct.port")" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "scaleout: acmd did not start"; exit 1
}
direct_stop() { kill -TERM "$direct_pid"; wait "$direct_pid" || true; rm -f "$tmp/direct.port"; }

core=$("$B/acmd" --model fmnist=models/fmnist-vit-acm.safetensors --workers 1 --listen 127.0.0.1:0 --port-file "$tmp/p0" \
        --log-level warn 2>/dev/null & p=$!; for _ in $(seq 300); do [ -s "$tmp/p0" ] && break; sleep 0.1; done; sleep 1
        curl -s "http://127.0.0.1:$(cat "$tmp/p0")/metrics" | sed -nE 's/.*blas_core="([^"]*)".*/\1/p' | head -1; kill $p)
echo "scaleout: $(nproc) CPUs, OpenBLAS core $core, load $(cut -d' ' -f1-3 /proc/loadavg), closed loop -c $C, ${D} s per run"

# ---- 1. the same cores three ways ----------------------------------------------------------------------------------
run_arm() { # run_arm A|B|C N
    case $1 in
    A) direct_start; bench "$tmp/A$2.json" "http://127.0.0.1:$(cat "$tmp/direct.port")" -c "$C" -d "$D"; direct_stop ;;
    B) bash deploy/local-cluster.sh start "$tmp/c" 2 --workers 1 --log-level warn >/dev/null
       bench "$tmp/B$2.json" "$LB" -c "$C" -d "$D"; bash deploy/local-cluster.sh stop "$tmp/c" >/dev/null ;;
    C) bash deploy/local-cluster.sh start "$tmp/c" 1 --workers 2 --log-level warn >/dev/null
       bench "$tmp/C$2.json" "$LB" -c "$C" -d "$D"; bash deploy/local-cluster.sh stop "$tmp/c" >/dev/null ;;
    esac
}
for a in A B C; do run_arm $a 1; done
for a in C B A; do run_arm $a 2; done
printf '%-44s %10s %10s %9s %7s %7s\n' arm "req/s" "p99 ms" "p50 ms" errors non200
for a in A B C; do
    case $a in A) name="1 acmd x 2 workers, direct" ;; B) name="2 acmd x 1 worker, haproxy" ;; C) name="1 acmd x 2 workers, haproxy" ;; esac
    read -r t1 p1 e1 n1 _ m1 <<<"$(summary "$tmp/${a}1.json")"
    read -r t2 p2 e2 n2 _ m2 <<<"$(summary "$tmp/${a}2.json")"
    printf '%-44s %10.1f %10.2f %9.2f %7d %7d   (runs: %s/%s req/s, p99 %s/%s)\n' "$name" \
        "$(echo "($t1 + $t2) / 2" | bc -l)" "$(echo "($p1 + $p2) / 2" | bc -l)" "$(echo "($m1 + $m2) / 2" | bc -l)" \
        $((e1 + e2)) $((n1 + n2)) "$t1" "$t2" "$p1" "$p2"
done

# ---- 2. rolling restart at 50% of saturation -----------------------------------------------------------------------
bash deploy/local-cluster.sh start "$tmp/c" 2 --workers 1 --log-level warn >/dev/null
bench "$tmp/sat.json" "$LB" -c "$C" -d "$D"
read -r sat _ <<<"$(summary "$tmp/sat.json")"
rate=$(echo "$sat / 2" | bc)
bench "$tmp/steady.json" "$LB" -r "$rate" -d "$RS"
bench "$tmp/roll.json" "$LB" -r "$rate" -d "$RS" &
bp=$!
sleep 1 # the restarts start 1 s into the load and follow one another until it ends
t0=$(date +%s.%N)
rolls=0
while kill -0 "$bp" 2>/dev/null; do
    bash deploy/local-cluster.sh roll "$tmp/c" >>"$tmp/roll.log" 2>&1 || { cat "$tmp/roll.log"; exit 1; }
    rolls=$((rolls + 1))
    rt=$(echo "$(date +%s.%N) - $t0" | bc)
done
wait "$bp"
echo
echo "rolling restarts of 2 instances (1 worker each) behind haproxy, open loop at $rate req/s (50% of $sat measured):"
printf '%-40s %8s %8s %8s %8s %7s %7s\n' run sent "req/s" "p50 ms" "p99 ms" errors non200
for r in steady roll; do
    read -r t p e n s m <<<"$(summary "$tmp/$r.json")"
    printf '%-40s %8d %8.1f %8.2f %8.2f %7d %7d\n' "$([ $r = roll ] && echo "restarting throughout (${RS} s)" || echo "no restart (${RS} s)")" "$s" "$t" "$m" "$p" "$e" "$n"
done
printf '%d rolling restarts back to back, from 1 s to %.1f s (the load: 0 to %s s): %s instances added, %s drained\n' "$rolls" \
    "$(echo "$rt + 1" | bc)" "$RS" "$(grep -c 'ready on' "$tmp/roll.log")" "$(grep -c 'drained and exited' "$tmp/roll.log")"
