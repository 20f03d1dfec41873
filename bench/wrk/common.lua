-- Environment shared by the target scripts (set by run.sh):
--   WRK_AUTH_HEADER  header name carrying the token ("Authorization", "X-Vault-Token")
--   WRK_AUTH_VALUE   its value ("Bearer <token>", "<token>")
--   WRK_KEYS         number of distinct secret paths the write load spreads over
local dir = os.getenv("WRK_LUA_DIR") or "bench/wrk"
dofile(dir .. "/report.lua")

bench = {}

function bench.headers()
  local h = { ["Content-Type"] = "application/json" }
  local name = os.getenv("WRK_AUTH_HEADER")
  if name and name ~= "" then
    h[name] = os.getenv("WRK_AUTH_VALUE") or ""
  end
  return h
end

bench.keys = tonumber(os.getenv("WRK_KEYS") or "1000")

-- Give each wrk thread a distinct id so the write scripts walk disjoint
-- sequences of keys; setup() runs in the main Lua state, once per thread.
local next_id = 0
function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

-- A 64-byte payload that differs on every request, so no layer can skip a
-- write as a no-op: "bench-" and 58 random URL-safe characters, like the
-- API keys and tokens a secrets store holds. (Filler such as a run of "x"
-- would look like a value a person typed, and coffer runs its strength
-- estimator on those: 1 to 4 ms of CPU each, see BENCHMARKS.md.)
local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
local seeded = false
function bench.value(n)
  if not seeded then
    math.randomseed(os.time() + (thread_id or 0) * 7919)
    seeded = true
  end
  local out = {}
  for i = 1, 58 do
    local k = math.random(1, 64)
    out[i] = alphabet:sub(k, k)
  end
  return "bench-" .. table.concat(out)
end
