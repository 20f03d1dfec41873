-- POSTs the same JWT login (JWT_LOGIN_BODY) to JWT_LOGIN_PATH on every request.
wrk.method = "POST"
wrk.body = os.getenv("JWT_LOGIN_BODY")
wrk.path = os.getenv("JWT_LOGIN_PATH") or "/api/v1/auth/jwt/login"
wrk.headers["content-type"] = "application/json"

function done(summary, latency, requests)
  local errors = summary.errors.status + summary.errors.connect + summary.errors.read
    + summary.errors.write + summary.errors.timeout
  io.write(string.format("logins/s: %.0f  p50: %.2f ms  p99: %.2f ms  errors: %d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, errors))
end

-- Names the first few failed answers (a status other than 200) as they come.
local failed = 0
function response(status, headers, body)
  if status ~= 200 and failed < 3 then
    failed = failed + 1
    io.write(string.format("answered %d: %s\n", status, string.sub(body or "", 1, 200)))
  end
end
