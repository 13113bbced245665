-- POST <path> {"user_id":"<prefix><7 digits>","session_id":"<session>"} for users 1..n, each with every
-- session of a comma list, in turn: all users' first session, then all users' second, and so on (one
-- list shared by every connection). Args: path prefix n sessions key. The requests are built once.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local requests, i = {}, 0

function prepare(args)
  local path, prefix, n = args[1], args[2], tonumber(args[3])
  for session in args[4]:gmatch("[^,]+") do
    for k = 1, n do
      local body = string.format('{"user_id":"%s%07d","session_id":"%s"}', prefix, k, session)
      requests[#requests + 1] = request_head("POST", path, #body) .. body
    end
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
