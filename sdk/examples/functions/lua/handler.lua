-- An Ember function in Lua. The top level runs once, when the function is
-- deployed; the snapshot taken right after keeps what it built, so every
-- instance starts with it. handle(payload) runs per invocation and returns
-- the result as a string; a Lua error becomes a function error.
local greeting = os.getenv("GREETING") or "hi"
local served = 0   -- per instance: counts invocations since its restore

local function words(s)
  local n = 0
  for _ in s:gmatch("%S+") do n = n + 1 end
  return n
end

function handle(payload)
  served = served + 1
  if payload == "" then
    error("send some text")
  end
  return string.format("%s! %d words, %d bytes (call %d on this instance)\n",
                       greeting, words(payload), #payload, served)
end
