-- wrk script: replays the bodies written by `baddybugs-loadgen --write-bodies FILE`, each once,
-- in file order, as the agent posts them (gzip, Bearer key). Used by `scripts/bench.sh ceiling`.
--
--   BODIES=FILE API_KEY=KEY wrk -t1 -c16 -d60s -s scripts/wrk-bodies.lua URL
--
-- Run it with one thread (-t1): each wrk thread has its own Lua state and would replay the file
-- from its start, sending every body again (the server would count them as duplicates).
-- When the file runs out it starts over: the server then counts duplicates.

local file = assert(io.open(assert(os.getenv("BODIES"), "BODIES is not set"), "rb"))

wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("API_KEY"), "API_KEY is not set")
wrk.headers["Content-Encoding"] = "gzip"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Agent-Version"] = "1.0.0"

request = function()
  local line = file:read("*l")
  if not line then
    file:seek("set", 0)
    line = assert(file:read("*l"), "the bodies file is empty")
  end
  local body = file:read(tonumber(line))
  return wrk.format(nil, nil, nil, body)
end

-- `request` runs in the thread's Lua state and `done` in another one, so the count of replays
-- cannot be reported from here: the server's duplicate counter tells (it must stay 0).
done = function(summary, latency, requests)
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    io.write(string.format("latency p%s %.2f ms\n", p, latency:percentile(p) / 1000))
  end
  io.write(string.format("latency max %.2f ms\n", latency.max / 1000))
end
