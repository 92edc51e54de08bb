-- Engine.IO polling handshakes, each a new session of a new participant (the pod answers an open
-- packet with a new sid, which pod-router learns and pins), spread over 1,000 rooms. The
-- participant ids carry the start time, so a warm-up run does not pre-create the measured run's.
local n = 0
local run = string.format("%x", os.time())
request = function()
  n = n + 1
  return wrk.format("GET", "/socket.io/?EIO=4&transport=polling&t=hs" .. n ..
    "&roomId=room_hs" .. (n % 1000) .. "&participantId=p" .. run .. "_" .. n)
end
