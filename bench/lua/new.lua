-- POST <path> {"user_id":"<prefix><9 digits>"}: every request from a user no request sent before.
-- Args: path prefix key; the caller makes `prefix` unique to the run. Ids have one length, so the
-- request head is built once.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local head, prefix, i = nil, nil, 0

function prepare(args)
  prefix = args[2]
  head = request_head("POST", args[1], #string.format('{"user_id":"%s%09d"}', prefix, 0))
end

function request()
  i = i + 1
  return head .. string.format('{"user_id":"%s%09d"}', prefix, i)
end
