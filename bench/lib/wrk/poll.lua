-- Polling requests with known sids: POSTs of a small Socket.IO event on sessions created
-- beforehand through the same proxy (file of "sid roomId participantId" lines, from
-- `bench-loadgen --mode sids`). The first script argument is that file.
local sids = {}
local n = 0
local body = '42/experiment,["exp:response",{"trial":1,"key":"space","rt":412}]'
init = function(args)
  for line in io.lines(args[1]) do
    local sid, room, part = line:match("^(%S+) (%S+) (%S+)")
    if sid then
      sids[#sids + 1] = "/socket.io/?EIO=4&transport=polling&sid=" .. sid .. "&roomId=" .. room ..
        "&participantId=" .. part
    end
  end
  if #sids == 0 then error("no sids in " .. tostring(args[1])) end
end
request = function()
  n = n + 1
  local u = sids[(n % #sids) + 1] .. "&t=pl" .. n
  return wrk.format("POST", u, { ["Content-Type"] = "text/plain;charset=UTF-8" }, body)
end
