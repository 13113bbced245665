-- POST /heartbeats {"user_ids":[...]}: users <prefix>0000001..n in requests of `per` users, sent in turn.
-- Args: prefix n per key. The requests are built once.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local requests, i = {}, 0

function prepare(args)
  local prefix, n, per = args[1], tonumber(args[2]), tonumber(args[3])
  for first = 1, n, per do
    local ids = {}
    for k = first, math.min(n, first + per - 1) do ids[#ids + 1] = string.format('"%s%07d"', prefix, k) end
    local body = '{"user_ids":[' .. table.concat(ids, ",") .. ']}'
    requests[#requests + 1] = request_head("POST", "/heartbeats", #body) .. body
  end
end

function request()
  i = i % #requests + 1
  return requests[i]
end
