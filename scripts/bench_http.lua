-- wrk script for scripts/bench_http.py (issue 14).
--   wrk -t1 -c50 -d10s --latency -s scripts/bench_http.lua http://host:port/health
--   wrk -tT ... -s scripts/bench_http.lua http://host:port/ -- requests.bin T
-- With a file argument, replays the PRE-SIGNED raw HTTP/1.1 requests it holds (separated by
-- NUL bytes), each once, in order, shared out among wrk's threads; without one, GETs the
-- URL's path. Counts the answers by status and prints one line for the caller to parse:
--   RESULT requests=N duration_us=D p50_us=P p99_us=Q sent=S file=F statuses=202:N,...
--          errors=connect:0,read:0,write:0,status:0,timeout:0
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
  table.insert(threads, thread)
end

statuses = {}
sent = 0
file_count = 0
local reqs = nil

function init(args)
  threads_total = tonumber(args[2]) or 1
  if args[1] then
    local f = assert(io.open(args[1], "rb"))
    local data = f:read("*a")
    f:close()
    reqs = {}
    local n, pos = 0, 1
    while true do
      local stop = string.find(data, "\0", pos, true)
      if not stop then break end
      n = n + 1
      -- thread k of T takes records k, k+T, k+2T, ...
      if (n - tid) % (threads_total or 1) == 0 then
        table.insert(reqs, string.sub(data, pos, stop - 1))
      end
      pos = stop + 1
    end
    file_count = #reqs
  end
end

function request()
  sent = sent + 1
  if reqs then
    -- Past the end the file wraps around: those are replays, answered 401 and counted.
    return reqs[((sent - 1) % #reqs) + 1]
  end
  return wrk.format("GET", wrk.path)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  local total_sent, total_file = 0, 0
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do total[k] = (total[k] or 0) + v end
    total_sent = total_sent + t:get("sent")
    total_file = total_file + t:get("file_count")
  end
  local parts = {}
  for k, v in pairs(total) do table.insert(parts, k .. ":" .. v) end
  table.sort(parts)
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d sent=%d file=%d statuses=%s " ..
    "errors=connect:%d,read:%d,write:%d,status:%d,timeout:%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    total_sent, total_file, table.concat(parts, ","),
    e.connect, e.read, e.write, e.status, e.timeout))
end
