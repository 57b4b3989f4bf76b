#!/usr/bin/env bash
# local-cluster.sh — scale-out on one machine, for real: haproxy in front of N acmd instances on loopback, health
# checks on readiness, and Prometheus scraping every instance and haproxy (docs/DEPLOY.md, "Scale-out").
#
#   deploy/local-cluster.sh start DIR N [acmd options...]   N instances (slots 1..N) behind haproxy; prints the ports
#   deploy/local-cluster.sh add DIR [acmd options...]       one more instance in the next slot, once it is ready
#   deploy/local-cluster.sh term DIR SLOT                   SIGTERM to an instance: it drains (readiness 503, haproxy
#                                                           takes it out within a check), exits; the slot goes to maint
#   deploy/local-cluster.sh roll DIR [acmd options...]      rolling restart: for each running instance, add a new one,
#                                                           then term the old one
#   deploy/local-cluster.sh status DIR                      per slot: port, pid, haproxy's state, requests served
#   deploy/local-cluster.sh stop DIR                        SIGTERM to everything; waits for the drains
#
# DIR holds the state: instances/SLOT/{pid,port,log,args}, haproxy.cfg, prometheus.yml, targets.json (Prometheus'
# file discovery of the instances), ports (LB_PORT, ADMIN_PORT, HAPROXY_METRICS_PORT, PROM_PORT). Everything listens on
# 127.0.0.1 only. Environment: ACM_BUILD (default build: acmd and acm), LB_PORT (default 8090), ADMIN_PORT (8091,
# haproxy's runtime API), HAPROXY_METRICS_PORT (8092), PROM_PORT (9090), CLUSTER_MAX_S (default 3600: the cluster
# stops itself after that long, whatever happens to the shell that started it), PROMETHEUS=0 to run without it.
#
# acmd instances: --listen 127.0.0.1:0 (the port from --port-file), --drain-grace-s 2 (haproxy checks readiness every
# 250 ms and takes a server out at the first 503), --model fmnist=models/fmnist-vit-acm.safetensors unless the options
# name models. haproxy: slots are a server-template of 16 servers, all in maint until an instance takes one; adding and
# removing instances goes through haproxy's runtime API (no reload, no connection lost).
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
B=${ACM_BUILD:-build}
SLOTS=16

die() { echo "local-cluster: $*" >&2; exit 1; }
usage() { sed -n '4,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

cmd=${1:-}; D=${2:-}
[ -n "$cmd" ] && [ -n "$D" ] || usage
shift 2

# haproxy's runtime API on ADMIN_PORT (bash's /dev/tcp: no socat needed)
admin() {
    local port out
    port=$(get ADMIN_PORT)
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s\n' "$1" >&3
    out=$(timeout 5 cat <&3)
    exec 3<&-
    [ -n "$out" ] && printf '%s\n' "$out"
    return 0
}
get() { sed -n "s/^$1=//p" "$D/ports" 2>/dev/null; }
alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
slot_pid() { cat "$D/instances/$1/pid" 2>/dev/null; }
slot_port() { cat "$D/instances/$1/port" 2>/dev/null; }
running_slots() {
    local s
    for s in $(ls "$D/instances" 2>/dev/null | sort -n); do
        alive "$(slot_pid "$s")" && [ ! -e "$D/instances/$s/terminated" ] && echo "$s"
    done
}
# haproxy's view of a slot: UP, DOWN, MAINT (srv_op_state 2 = running, 0 = stopped; srv_admin_state bits 0x01
# forced, 0x02 inherited and 0x20 resolution maintenance; 0x04 only records the config's `disabled`)
hap_state() {
    admin "show servers state acmd" | awk -v n="s$1" '$4 == n {
        adm = $7; maint = adm % 2 || int(adm / 2) % 2 || int(adm / 32) % 2
        print maint ? "MAINT" : $6 == 2 ? "UP" : $6 == 0 ? "DOWN" : "STARTING" }'
}

targets() { # Prometheus file discovery: the running instances (written whole, then renamed: never read half-written)
    local s first=1
    {
        printf '[{"targets": ['
        for s in $(running_slots); do
            [ $first = 1 ] || printf ', '
            printf '"127.0.0.1:%s"' "$(slot_port "$s")"
            first=0
        done
        printf '], "labels": {"service": "acm-local"}}]\n'
    } >"$D/targets.json.tmp" && mv "$D/targets.json.tmp" "$D/targets.json"
}

# start_instance SLOT [acmd options]: starts acmd, waits for readiness, gives the slot to haproxy, waits for UP
start_instance() {
    local s=$1 i=$D/instances/$1 pid port t models=0 a
    shift
    mkdir -p "$i"
    rm -f "$i/port" "$i/terminated"
    for a in "$@"; do case $a in --model|--model=*|--config|--config=*) models=1 ;; esac; done
    local extra=()
    [ $models = 1 ] || extra=(--model fmnist=models/fmnist-vit-acm.safetensors)
    printf '%s\n' "$@" >"$i/args"
    setsid "$B/acmd" "${extra[@]}" --listen 127.0.0.1:0 --port-file "$i/port" --drain-grace-s 2 \
        --log-file "$i/log" "$@" </dev/null >>"$i/stderr" 2>&1 &
    pid=$!
    echo "$pid" >"$i/pid"
    for t in $(seq 600); do # models load and warm up: seconds
        alive "$pid" || die "instance $s (pid $pid) exited while starting: $(tail -3 "$i/stderr")"
        if [ -s "$i/port" ] && "$B/acm" health --server "http://127.0.0.1:$(cat "$i/port")" --timeout 2 >/dev/null 2>&1; then
            break
        fi
        sleep 0.1
    done
    port=$(cat "$i/port" 2>/dev/null) || die "instance $s did not start within 60 s"
    admin "set server acmd/s$s addr 127.0.0.1 port $port" >/dev/null
    admin "set server acmd/s$s state ready" >/dev/null
    for t in $(seq 100); do
        [ "$(hap_state "$s")" = UP ] && break
        sleep 0.1
    done
    [ "$(hap_state "$s")" = UP ] || die "haproxy does not see instance $s (127.0.0.1:$port) UP after 10 s"
    targets
    echo "local-cluster: instance $s ready on 127.0.0.1:$port (pid $pid), UP in haproxy"
}

# term_instance SLOT: SIGTERM; haproxy's readiness check takes it out; once it has exited the slot goes to maint
term_instance() {
    local s=$1 pid t
    pid=$(slot_pid "$s")
    alive "$pid" || { echo "local-cluster: instance $s is not running"; return 0; }
    touch "$D/instances/$s/terminated"
    kill -TERM "$pid"
    for t in $(seq 600); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && die "instance $s (pid $pid) still runs 60 s after SIGTERM"
    admin "set server acmd/s$s state maint" >/dev/null
    targets
    echo "local-cluster: instance $s drained and exited ($(grep -o '"msg":"[^"]*exit[^"]*"' "$D/instances/$s/log" | tail -1))"
}

write_haproxy_cfg() {
    cat >"$D/haproxy.cfg" <<EOF
# written by deploy/local-cluster.sh
global
    maxconn 4096
    # the runtime API, on loopback and without authentication: any local user can drive it (a development tool)
    stats socket ipv4@127.0.0.1:$(get ADMIN_PORT) level admin
    pidfile $D/haproxy.pid

defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s
    # a request that could not connect (an instance that just closed its listener) goes to another one; a request
    # that reached an instance is never sent twice
    retries 2
    retry-on conn-failure
    option redispatch 1

frontend acm
    bind 127.0.0.1:$(get LB_PORT)
    default_backend acmd

frontend metrics
    bind 127.0.0.1:$(get HAPROXY_METRICS_PORT)
    http-request use-service prometheus-exporter if { path /metrics }

backend acmd
    balance roundrobin
    # readiness: 503 while warming up and from the first moment of a drain
    option httpchk GET /v2/health/ready
    http-check expect status 200
    default-server check inter 250ms fastinter 250ms downinter 500ms fall 1 rise 1
    server-template s 1-$SLOTS 127.0.0.1:9 disabled
EOF
}

write_prometheus_cfg() {
    cat >"$D/prometheus.yml" <<EOF
# written by deploy/local-cluster.sh: every instance (file discovery, rewritten as instances come and go) and haproxy
global:
  scrape_interval: 1s
  evaluation_interval: 5s
rule_files:
  - $ROOT/deploy/prometheus/acm-rules.yml
scrape_configs:
  - job_name: acmd
    file_sd_configs:
      - files: [$D/targets.json]
        refresh_interval: 5s
  - job_name: haproxy
    static_configs:
      - targets: ["127.0.0.1:$(get HAPROXY_METRICS_PORT)"]
EOF
}

wait_http() { # wait_http PORT PATH SECONDS
    local t
    for t in $(seq $(( $3 * 10 ))); do
        curl -fsS -o /dev/null "http://127.0.0.1:$1$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

case $cmd in
start)
    n=${1:-}; shift || true
    [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $SLOTS ] || die "start: N must be 1..$SLOTS"
    [ -x "$B/acmd" ] && [ -x "$B/acm" ] || die "$B/acmd and $B/acm are not built: run 'make' first"
    command -v haproxy >/dev/null || die "haproxy is not installed (make deps installs it)"
    [ -e "$D/ports" ] && alive "$(cat "$D/haproxy.pid" 2>/dev/null)" && die "a cluster already runs in $D ('stop' first)"
    mkdir -p "$D"
    D=$(cd "$D" && pwd)
    rm -rf "$D/instances" "$D/prom" "$D/haproxy.log" "$D/prometheus.log"
    printf 'LB_PORT=%s\nADMIN_PORT=%s\nHAPROXY_METRICS_PORT=%s\nPROM_PORT=%s\n' "${LB_PORT:-8090}" "${ADMIN_PORT:-8091}" \
        "${HAPROXY_METRICS_PORT:-8092}" "${PROM_PORT:-9090}" >"$D/ports"
    write_haproxy_cfg
    out=$(haproxy -c -f "$D/haproxy.cfg" 2>&1) || die "haproxy.cfg does not check: $out"
    setsid haproxy -f "$D/haproxy.cfg" </dev/null >>"$D/haproxy.log" 2>&1 &
    echo $! >"$D/haproxy.pid"
    for t in $(seq 50); do admin "show info" >/dev/null 2>&1 && break; sleep 0.1; done
    admin "show info" >/dev/null 2>&1 || die "haproxy did not start: $(tail -3 "$D/haproxy.log")"
    targets
    if [ "${PROMETHEUS:-1}" != 0 ]; then
        command -v prometheus >/dev/null || die "prometheus is not installed (make deps installs it; PROMETHEUS=0 runs without)"
        write_prometheus_cfg
        setsid prometheus --config.file="$D/prometheus.yml" --storage.tsdb.path="$D/prom" \
            --storage.tsdb.retention.time=2h --web.listen-address="127.0.0.1:$(get PROM_PORT)" \
            </dev/null >>"$D/prometheus.log" 2>&1 &
        echo $! >"$D/prometheus.pid"
    fi
    for s in $(seq "$n"); do start_instance "$s" "$@" || exit 1; done
    if [ "${PROMETHEUS:-1}" != 0 ]; then
        wait_http "$(get PROM_PORT)" /-/ready 30 || die "prometheus is not ready after 30 s: $(tail -3 "$D/prometheus.log")"
    fi
    # the bound: whatever happens to the caller, the cluster stops after CLUSTER_MAX_S
    # (SIGTERM to the watchdog, from `stop`, ends its sleep and it: it never goes on to a stop of its own)
    setsid bash -c 'trap "kill \$s 2>/dev/null; exit 0" TERM; sleep "$2" & s=$!; wait $s; exec "$0" stop "$1"' \
        "$0" "$D" "${CLUSTER_MAX_S:-3600}" </dev/null >/dev/null 2>&1 &
    echo $! >"$D/watchdog.pid"
    echo "local-cluster: $n instance(s) behind haproxy on http://127.0.0.1:$(get LB_PORT)" \
         "(runtime API 127.0.0.1:$(get ADMIN_PORT), haproxy metrics :$(get HAPROXY_METRICS_PORT)/metrics)"
    [ "${PROMETHEUS:-1}" != 0 ] && echo "local-cluster: Prometheus on http://127.0.0.1:$(get PROM_PORT) (rules: deploy/prometheus/acm-rules.yml)"
    echo "local-cluster: stops by itself in ${CLUSTER_MAX_S:-3600} s; 'deploy/local-cluster.sh stop $D' before"
    ;;
add)
    [ -e "$D/ports" ] || die "no cluster in $D"
    D=$(cd "$D" && pwd)
    last=$(ls "$D/instances" | sort -n | tail -1)
    s=$(( ${last:-0} + 1 ))
    [ "$s" -le $SLOTS ] || die "add: all $SLOTS slots used"
    start_instance "$s" "$@"
    ;;
term)
    [ -e "$D/ports" ] || die "no cluster in $D"
    D=$(cd "$D" && pwd)
    term_instance "${1:?term DIR SLOT}"
    ;;
roll)
    [ -e "$D/ports" ] || die "no cluster in $D"
    D=$(cd "$D" && pwd)
    old=$(running_slots)
    for s in $old; do
        # the new instance takes the old one's options unless new ones are given
        if [ $# -gt 0 ]; then args=("$@"); else mapfile -t args <"$D/instances/$s/args"; fi
        last=$(ls "$D/instances" | sort -n | tail -1)
        start_instance $(( last + 1 )) "${args[@]}" || exit 1
        term_instance "$s" || exit 1
    done
    ;;
status)
    [ -e "$D/ports" ] || die "no cluster in $D"
    D=$(cd "$D" && pwd)
    printf '%-5s %-7s %-8s %-9s %s\n' slot port pid haproxy "classify/infer answered"
    for s in $(ls "$D/instances" | sort -n); do
        pid=$(slot_pid "$s") port=$(slot_port "$s")
        n=$(grep -c '"route":"\(classify\|infer\)"' "$D/instances/$s/log" 2>/dev/null)
        printf '%-5s %-7s %-8s %-9s %s\n' "$s" "$port" "$(alive "$pid" && echo "$pid" || echo exited)" "$(hap_state "$s")" "${n:-0}"
    done
    ;;
stop)
    [ -d "$D" ] || die "no cluster in $D"
    D=$(cd "$D" && pwd)
    pids=()
    for s in $(ls "$D/instances" 2>/dev/null); do
        pid=$(slot_pid "$s")
        alive "$pid" && kill -TERM "$pid" && pids+=("$pid")
    done
    for f in haproxy prometheus watchdog; do
        pid=$(cat "$D/$f.pid" 2>/dev/null)
        # the watchdog runs this very stop when its time is up: it then ends by itself
        { [ $f = watchdog ] && { [ "$pid" = "$PPID" ] || [ "$pid" = $$ ]; }; } && continue
        if alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
        fi
    done
    for t in $(seq 300); do
        left=0
        for pid in "${pids[@]}"; do alive "$pid" && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for pid in "${pids[@]}"; do alive "$pid" && kill -KILL "$pid"; done
    rm -f "$D/ports"
    echo "local-cluster: stopped (${#pids[@]} processes)"
    ;;
*) usage ;;
esac
