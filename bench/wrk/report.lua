-- Shared by every bench script: prints one machine-readable line when wrk is
-- done, so run.sh never has to scrape wrk's human-oriented text.
--
--   BENCH_JSON {"requests":..,"duration_us":..,"rps":..,"errors":{..},"latency_us":{..}}
--
-- Latencies are in microseconds. errors.status counts responses that were not
-- 2xx/3xx (wrk's "Non-2xx or 3xx responses"); the others are socket errors.

local function num(x)
  -- integral values print without an exponent or a fraction
  if x == math.floor(x) then return string.format("%d", x) end
  return string.format("%.3f", x)
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  local parts = {
    string.format('"requests":%s', num(summary.requests)),
    string.format('"duration_us":%s', num(summary.duration)),
    string.format('"bytes":%s', num(summary.bytes)),
    string.format('"rps":%.2f', summary.requests / secs),
    string.format('"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}',
      e.connect, e.read, e.write, e.status, e.timeout),
    string.format('"latency_us":{"min":%s,"mean":%.1f,"stdev":%.1f,"max":%s,'
      .. '"p50":%s,"p75":%s,"p90":%s,"p99":%s,"p999":%s}',
      num(latency.min), latency.mean, latency.stdev, num(latency.max),
      num(latency:percentile(50)), num(latency:percentile(75)), num(latency:percentile(90)),
      num(latency:percentile(99)), num(latency:percentile(99.9))),
  }
  io.write("BENCH_JSON {" .. table.concat(parts, ",") .. "}\n")
end
