-- Write a new version of one of WRK_KEYS secrets per request.
--   WRK_WRITE_METHOD  PUT (coffer) or POST (OpenBao KV v2)
--   WRK_WRITE_PREFIX  path prefix, the key number is appended
--   WRK_WRITE_STYLE   "coffer" -> {"value":"..."}, "kv2" -> {"data":{"value":"..."}}
local dir = os.getenv("WRK_LUA_DIR") or "bench/wrk"
dofile(dir .. "/common.lua")

local method, prefix, style, headers, threads
local n = 0

function init(args)
  method = os.getenv("WRK_WRITE_METHOD") or "PUT"
  prefix = os.getenv("WRK_WRITE_PREFIX")
  style = os.getenv("WRK_WRITE_STYLE") or "coffer"
  threads = tonumber(os.getenv("WRK_THREADS") or "1")
  headers = bench.headers()
end

function request()
  -- thread t writes keys t, t+threads, t+2*threads, ... (mod keys)
  local seq = n * threads + thread_id
  n = n + 1
  local key = seq % bench.keys
  local v = bench.value(seq)
  local body
  if style == "kv2" then
    body = '{"data":{"value":"' .. v .. '"}}'
  else
    body = '{"value":"' .. v .. '"}'
  end
  return wrk.format(method, prefix .. key, headers, body)
end
