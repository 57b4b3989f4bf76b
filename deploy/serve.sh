#!/usr/bin/env bash
# make serve / make stop: acmd on the shipped models (docs/DESIGN.md §6 names: fmnist, fmnist-static, speech, speech-static).
#
#   deploy/serve.sh BUILD [acmd options...]   start BUILD/acmd (make serve; `make serve ACMD_ARGS='...'` adds options)
#   deploy/serve.sh BUILD --stop              SIGTERM to that acmd, then wait for its drain (make stop)
#
# The log (one JSON line per request, and the server's messages) goes to BUILD/acmd.log, started afresh each time;
# warnings and errors also come to this terminal. The pid is in BUILD/acmd.pid while acmd runs. It runs until SIGTERM
# or SIGINT: `make stop` (or `kill $(cat build/acmd.pid)`) from anywhere, Ctrl-C when it runs in the foreground. Either
# drains it: requests in flight are answered, then it exits 0.
set -u
B=${1:-build}
shift || true
log=$B/acmd.log pidf=$B/acmd.pid portf=$B/acmd.port

# the pid of the acmd that serve.sh started, if it still runs (a stale file from a killed run is ignored)
running() {
    local pid
    pid=$(cat "$pidf" 2>/dev/null) || return 1
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(ps -p "$pid" -o comm= 2>/dev/null)" = acmd ] && echo "$pid"
}

if [ "${1:-}" = --stop ]; then
    if ! pid=$(running); then
        echo "stop: no acmd started by 'make serve' is running ($pidf)"
        rm -f "$pidf" "$portf"
        exit 0
    fi
    echo "stop: SIGTERM to acmd (pid $pid): it drains (requests in flight are answered) and exits"
    kill -TERM "$pid"
    for _ in $(seq 600); do kill -0 "$pid" 2>/dev/null || { echo "stop: acmd stopped"; exit 0; }; sleep 0.1; done
    echo "stop: acmd (pid $pid) still runs after 60 s; 'kill $pid' again stops it at once"
    exit 1
fi

if [ ! -x "$B/acmd" ]; then echo "serve: $B/acmd is not built: run 'make' first"; exit 1; fi
if pid=$(running); then
    echo "serve: acmd already runs (pid $pid, log $log): 'make stop' first"
    exit 1
fi
args=() names=()
for m in fmnist=models/fmnist-vit-acm.safetensors fmnist-static=models/fmnist-vit.safetensors \
         speech=models/speech-acm.safetensors speech-static=models/speech.safetensors; do
    if [ -f "${m#*=}" ]; then args+=(--model "$m") names+=("${m%%=*} (${m#*=})")
    else echo "serve: ${m#*=} is missing: '${m%%=*}' is not served"; fi
done
if [ ${#args[@]} -eq 0 ]; then echo "serve: no shipped model under models/"; exit 1; fi
host=127.0.0.1
prev=
for a in "$@"; do # the address to check readiness on, when --listen is given
    case $prev:$a in --listen:*) host=${a%:*} ;; *:--listen=*) host=${a#--listen=}; host=${host%:*} ;; esac
    prev=$a
done
[ "$host" = 0.0.0.0 ] && host=127.0.0.1

: >"$log"
rm -f "$portf"
# no load balancer in front of a local server: no grace period after SIGTERM (`make stop` returns at once; the queued
# requests still run); ACMD_ARGS='--drain-grace-s 5' puts it back
"$B/acmd" "${args[@]}" --log-file "$log" --port-file "$portf" --drain-grace-s 0 "$@" &
pid=$!
echo "$pid" >"$pidf"
# SIGTERM to this script (a supervisor stopping `make serve`) is passed on; SIGINT (Ctrl-C) reaches acmd by itself.
trap 'kill -TERM "$pid" 2>/dev/null' TERM
trap ':' INT

ready=0
for _ in $(seq 1200); do # readiness: the models load and warm up (a few seconds)
    kill -0 "$pid" 2>/dev/null || break
    if [ -s "$portf" ] && "$B/acm" health --server "http://$host:$(cat "$portf")" --timeout 2 >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [ $ready = 1 ]; then
    echo "serve: acmd ready on http://$host:$(cat "$portf") (pid $pid), serving $(IFS=,; echo "${names[*]}" | sed 's/,/, /g')"
    echo "       log: $log (one JSON line per request; warnings and errors also here)"
    echo "       try: curl -s -H 'Content-Type: image/png' --data-binary @clients/examples/shirt.png" \
         "http://$host:$(cat "$portf")/v1/models/fmnist/classify"
    echo "       stop: 'make stop' (or Ctrl-C in the foreground): drains, then exits"
elif kill -0 "$pid" 2>/dev/null; then
    echo "serve: acmd (pid $pid) is not ready after 120 s: see $log"
fi
rc=0
while :; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2>/dev/null || break # wait returned for a trapped signal: acmd is still draining
done
rm -f "$pidf" "$portf"
echo "serve: acmd exited with status $rc (log: $log)"
exit $rc
