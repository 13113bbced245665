-- POST /checkpoints, every request a state change: each user has at most one request in flight and
-- alternates Away and Busy (same length, so one request head), so no two requests for a user can
-- overtake each other. Users wait in a queue, first in first out; a user rejoins it when the answer
-- names it (ck answers its user_id, as does the node:http baseline); a user whose answer does not is
-- never reused, and the queue grows by a new user when it runs dry. Args: prefix users key; the caller
-- makes `prefix` unique to the run.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local head, prefix, pattern = nil, nil, nil
local queue, first, last, users, state = {}, 1, 0, 0, {}

function prepare(args)
  prefix = args[1]
  pattern = '"user_id":"' .. prefix:gsub("%p", "%%%0") .. '(%d+)"'
  head = request_head("POST", "/checkpoints", #string.format('{"user_id":"%s%07d","state":"Away"}', prefix, 0))
  users = tonumber(args[2])
  for u = 1, users do queue[u] = u end
  last = users
end

function request()
  local u
  if first <= last then
    u = queue[first]
    queue[first] = nil
    first = first + 1
  else
    users = users + 1
    u = users
  end
  local s = state[u] == "Away" and "Busy" or "Away"
  state[u] = s
  return head .. string.format('{"user_id":"%s%07d","state":"%s"}', prefix, u, s)
end

function response(status, headers, body)
  count_status(status)
  local u = body and body:match(pattern)
  if u then
    last = last + 1
    queue[last] = tonumber(u)
  end
end
