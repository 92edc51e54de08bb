-- Room-key requests: REST calls with the room in the path (/api/room/room_x/...), 1,000 rooms.
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/room/room_rk" .. (n % 1000) .. "/state")
end
