-- wrk script: POST the PNG named by $ACM_BENCH_PNG to the URL given on wrk's command line (bench/server_bench.sh).
local f = assert(io.open(os.getenv("ACM_BENCH_PNG"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "image/png"
