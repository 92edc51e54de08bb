-- Engine.IO polling handshakes, each with a new session (the pod answers an open packet with a
-- new sid, which pod-router learns and pins), spread over 1,000 rooms.
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/socket.io/?EIO=4&transport=polling&t=hs" .. n ..
    "&roomId=room_hs" .. (n % 1000) .. "&participantId=p" .. n)
end
