-- Every request is a distinct TomatoPay approval (new TID), so every one is a real commit:
-- decode, insert notification + outbox row, fsync, ACK, file the event.
local counter = 0
local thread_id = 0
local threads = {}

function setup(thread)
  thread:set("tid_prefix", string.format("%02d", #threads))
  table.insert(threads, thread)
end

function init(args)
  run = os.time()
end

request = function()
  counter = counter + 1
  local tid = string.format("bench%s%010d%08d", tid_prefix, run % 10000000000, counter)
  local body = "PayMethod=CARD&MID=tomato001m&Amt=1000&Name=%C8%AB%B1%E6%B5%BF&GoodsName=%BB%E7%B0%FA" ..
               "&TID=" .. tid .. "&OID=O" .. counter .. "&AuthDate=241123153000&AuthCode=1&StateCd=0&ResultCode=3001"
  return wrk.format("POST", "/notify/tomatopay", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end

done = function(summary, latency, requests)
  io.write(string.format("non-2xx or socket errors: %d\n", summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
