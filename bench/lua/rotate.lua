-- POST <path> {"user_id":"<prefix><7 digits>"} for users 1..n in turn, one list shared by every
-- connection. Args: path prefix n key. The requests are built once, so sending costs no formatting.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local requests, n, i = {}, 0, 0

function prepare(args)
  local path, prefix = args[1], args[2]
  n = tonumber(args[3])
  for k = 1, n do
    local body = string.format('{"user_id":"%s%07d"}', prefix, k)
    requests[k] = request_head("POST", path, #body) .. body
  end
end

function request()
  i = i % n + 1
  return requests[i]
end
