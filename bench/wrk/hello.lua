-- Plain GET of the URL wrk was given; only here for the JSON report.
local dir = os.getenv("WRK_LUA_DIR") or "bench/wrk"
dofile(dir .. "/report.lua")
