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
wrap=$(mktemp /tmp/acmd-tsan-pool-XXXXXX)
trap 'rm -f "$wrap"' EXIT
printf '#!/bin/sh\nexec %s/build/san-thread/acmd --blas-threads 2 "$@"\n' "$PWD" > "$wrap"
chmod +x "$wrap"
echo "-- again with --blas-threads 2 (the workers' thread pools)"
ACM_ACMD=$wrap bash tests/run.sh build/tests/server/test_sla build/tests/server/test_load
