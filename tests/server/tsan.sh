#!/usr/bin/env bash
# The server tests against a ThreadSanitizer build of acmd.
#
# Criterion itself cannot run under ThreadSanitizer (its inheritable arena clashes with TSan's memory layout:
# Snaipe/Criterion#274, "Could not initialize inheritable arena"), so `make test SANITIZE=thread` cannot start any
# Criterion binary. What needs TSan here is the server, which is multi-threaded (I/O loop + engine workers); the test
# programs are plain clients. This script builds build/san-thread/acmd, and runs the ordinary server test binaries
# with ACM_ACMD pointing at it; the harness fails a test whose server printed any sanitizer report. A second pass runs
# the classify tests of test_sla and test_load against acmd with --blas-threads 2 (through a wrapper that puts it
# before the test's own options), so that each worker has its own thread pool (engine/cpu/pool.c) and the layers
# between the GEMMs run on two threads under TSan too.
# Usage: bash tests/server/tsan.sh   (from the repository root)
set -eu
make --no-print-directory SANITIZE=thread build/san-thread/acmd
make --no-print-directory build/tests/server/test_http build/tests/server/test_load build/tests/server/test_sla \
    build/tests/server/test_limits
export ACM_ACMD=build/san-thread/acmd ACM_BUILD=build
export TSAN_OPTIONS="suppressions=$PWD/tests/server/tsan.supp halt_on_error=0 second_deadlock_stack=1"
bash tests/run.sh build/tests/server/test_http build/tests/server/test_load build/tests/server/test_sla \
    build/tests/server/test_limits
# The workers' thread pools (engine/cpu/pool.c) run only in a worker of more than one thread; the test binaries above
# start acmd with one BLAS thread per worker (and some with two workers, which two threads each would oversubscribe),
# and their timing assertions assume that engine. So the pools get their own run: one worker of two threads serving
# the shipped ACM model under 8 s of closed-loop classify load at mixed budgets (the pooled layers, the ACM row parts
# and their scatter), then a drain; any ThreadSanitizer report in acmd's log, a transport error or a non-200 fails.
echo "-- the workers' thread pools: acmd --workers 1 --blas-threads 2 under acm bench"
make --no-print-directory build/acm >/dev/null
tmp=$(mktemp -d /tmp/acmd-tsan-pool-XXXXXX)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
build/san-thread/acmd --model fmnist=models/fmnist-vit-acm.safetensors --workers 1 --blas-threads 2 \
    --listen 127.0.0.1:0 --port-file "$tmp/port" --log-level warn 2>"$tmp/acmd.log" &
pid=$!
for _ in $(seq 600); do [ -s "$tmp/port" ] && curl -sf "http://127.0.0.1:$(cat "$tmp/port")/v2/health/ready" >/dev/null && break; sleep 0.1; done
build/acm bench --server "http://127.0.0.1:$(cat "$tmp/port")" --model fmnist -c 4 -d 8 \
    --budget choice:0.25,0.5,0.75,1 --json > "$tmp/bench.json"
kill -TERM "$pid"
wait "$pid" || { echo "acmd exited $? after SIGTERM"; cat "$tmp/acmd.log"; exit 1; }
/usr/bin/python3 - "$tmp/bench.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("pool run: %d sent, by status %s, %d transport errors" % (d["sent"], json.dumps(d["by_status"]), d["errors"]))
ok = d["sent"] > 0 and d["errors"] == 0 and d["accounted"] and set(d["by_status"]) == {"200"}
sys.exit(0 if ok else 1)
PY
if grep -q "ThreadSanitizer" "$tmp/acmd.log"; then cat "$tmp/acmd.log"; echo "ThreadSanitizer report in the pool run"; exit 1; fi
