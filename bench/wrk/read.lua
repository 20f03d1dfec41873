-- GET one pre-populated secret, same request every time.
--   WRK_READ_PATH  request path, e.g. /api/v1/secrets/bench/read
local dir = os.getenv("WRK_LUA_DIR") or "bench/wrk"
dofile(dir .. "/common.lua")

local req
function init(args)
  req = wrk.format("GET", os.getenv("WRK_READ_PATH"), bench.headers())
end

function request()
  return req
end
