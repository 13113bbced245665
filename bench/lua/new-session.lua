-- POST <path> {"user_id":"<prefix><7 digits>","session_id":"<session prefix><9 digits>"}: users 1..n in
-- turn, each request a session no request named before (a counter), so every request is the first
-- heartbeat of a new session of a user who already has one. Args: path prefix n session-prefix key; the
-- caller makes the session prefix unique to the run. Ids have one length, so the head is built once.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local head, prefix, n, sprefix, i = nil, nil, 0, nil, 0

function prepare(args)
  prefix, n, sprefix = args[2], tonumber(args[3]), args[4]
  head = request_head("POST", args[1], #string.format('{"user_id":"%s%07d","session_id":"%s%09d"}', prefix, 0, sprefix, 0))
end

function request()
  i = i + 1
  return head .. string.format('{"user_id":"%s%07d","session_id":"%s%09d"}', prefix, (i - 1) % n + 1, sprefix, i)
end
