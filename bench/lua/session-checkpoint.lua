-- POST /checkpoints with a session_id, every request a state change of that session: as checkpoint.lua
-- (a queue of users, each with at most one request in flight, alternating Away and Busy; a user rejoins
-- the queue when the answer names it), for the session named in the arguments. Args: prefix users
-- session key; the caller makes `prefix` unique to the run.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local head, prefix, session, pattern = nil, nil, nil, nil
local queue, first, last, users, state = {}, 1, 0, 0, {}

function prepare(args)
  prefix, session = args[1], args[3]
  pattern = '"user_id":"' .. prefix:gsub("%p", "%%%0") .. '(%d+)"'
  head = request_head("POST", "/checkpoints",
    #string.format('{"user_id":"%s%07d","session_id":"%s","state":"Away"}', prefix, 0, session))
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
  return head .. string.format('{"user_id":"%s%07d","session_id":"%s","state":"%s"}', prefix, u, session, s)
end

function response(status, headers, body)
  count_status(status)
  local u = body and body:match(pattern)
  if u then
    last = last + 1
    queue[last] = tonumber(u)
  end
end
