-- wrk script for bench/deadline.sh: POSTs the PNG named by $ACM_BENCH_PNG with X-Deadline-Ms: $ACM_BENCH_DEADLINE_MS,
-- paced towards an offered load of $ACM_BENCH_RATE requests/s over all connections (each connection waits an
-- exponential think time of mean connections/rate before its next request; wrk has no open-loop mode, so past
-- saturation this turns into a closed loop and the achieved rate is what the server gives). Counts per thread: 200s,
-- 200s answered by the server within the deadline (its own timing.total_ms), 504s, other statuses, and the sum of
-- budget_applied over the 200s; done() prints one line "deadline_result ..." that deadline.sh parses.
local f = assert(io.open(os.getenv("ACM_BENCH_PNG"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local deadline = tonumber(os.getenv("ACM_BENCH_DEADLINE_MS"))
local rate = tonumber(os.getenv("ACM_BENCH_RATE"))
wrk.headers["Content-Type"] = "image/png"
wrk.headers["X-Deadline-Ms"] = tostring(deadline)

local conns = tonumber(os.getenv("ACM_BENCH_CONNS") or "64") -- all connections, as given to wrk -c

local threads = {}
function setup(thread)
    table.insert(threads, thread)
    thread:set("id", #threads)
end

local ok, in_time, late, other, beta_sum = 0, 0, 0, 0, 0
function init(args)
    math.randomseed(os.time() * 100 + (wrk.thread:get("id") or 0))
end

function delay()
    if not rate or rate <= 0 then return 0 end
    local mean_ms = 1000 * conns / rate
    return math.floor(-mean_ms * math.log(1 - math.random()))
end

function response(status, headers, body)
    if status == 200 then
        ok = ok + 1
        local total = tonumber(body:match('"total_ms":([%d%.eE+-]+)'))
        if total and total <= deadline then in_time = in_time + 1 end
        local b = tonumber(body:match('"budget_applied":([%d%.eE+-]+)'))
        if b then beta_sum = beta_sum + b end
    elseif status == 504 then
        late = late + 1
    else
        other = other + 1
    end
    wrk.thread:set("ok", ok); wrk.thread:set("in_time", in_time); wrk.thread:set("late", late)
    wrk.thread:set("other", other); wrk.thread:set("beta_sum", beta_sum)
end

function done(summary, latency, requests)
    local s = {ok = 0, in_time = 0, late = 0, other = 0, beta_sum = 0}
    for _, t in ipairs(threads) do
        for k, _ in pairs(s) do s[k] = s[k] + (t:get(k) or 0) end
    end
    local n = s.ok + s.late + s.other
    io.write(string.format("deadline_result requests=%d ok=%d in_time=%d e504=%d other=%d attainment=%.4f mean_beta=%.4f "
        .. "p50_ms=%.3f p99_ms=%.3f achieved_rps=%.1f\n", n, s.ok, s.in_time, s.late, s.other,
        n > 0 and s.in_time / n or 0, s.ok > 0 and s.beta_sum / s.ok or 0, latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, n / (summary.duration / 1e6)))
end
