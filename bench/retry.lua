-- The same signed Smartro approval over and over: what a PG retry storm costs (dedup path,
-- no new event).
local body = nil
init = function(args)
  local f = assert(io.open(args[1], "rb"))
  local raw = f:read("*a")
  f:close()
  local split = raw:find("\r\n\r\n", 1, true)
  body = raw:sub(split + 4)
end
request = function()
  return wrk.format("POST", "/notify/smartro", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
