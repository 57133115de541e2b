-- wrk script: POST the bodies of a file (one a line, from `pgnoti-bench bodies`) in turn.
-- Each thread starts its own share of the file: wrk gives every thread its own Lua state,
-- and an unseeded math.random would start them all at the same line, turning "distinct"
-- bodies into duplicates. p50/p99 are printed for run.sh to read.
-- usage: wrk -t T ... -s bodies.lua URL -- FILE T
local started = 0
function setup(thread)
  thread:set("index", started)
  started = started + 1
end
local bodies = {}
local i = 0
init = function(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  local threads = tonumber(args[2]) or 1
  i = math.floor(index * #bodies / threads)
end
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "/notify/smartro", {["Content-Type"] = "application/x-www-form-urlencoded"}, bodies[i])
end
done = function(summary, latency, requests)
  io.write(string.format("p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000))
end
