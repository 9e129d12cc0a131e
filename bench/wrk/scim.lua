-- wrk script for the SCIM scenarios of `python -m bench.run`.
-- Usage: wrk ... -s scim.lua URL -- MODE DATAFILE TOKEN BASEPATH EXTRA RUNID
--   MODE      create | get | filter | list | patch | put | member_add | member_remove | group_get
--   DATAFILE  lines "id userName" (users) or "id" (member pool), written by the seeder
--   BASEPATH  /scim/v2 (Provisor) or /v2 (scim2-server)
--   EXTRA     group id (member_* / group_get) or number of list pages (list)
-- Every request is different (random or sequential ids), so no cache or plan shortcut flatters it.
-- `done` prints one line "BENCHJSON {...}" that bench.run parses.

local mode, datafile, token, basepath, extra, runid
local ids, names = {}, {}
local n = 0
local counter = 0
local headers = {}

function init(args)
  mode, datafile, token, basepath, extra, runid = args[1], args[2], args[3], args[4], args[5], args[6]
  headers["Authorization"] = "Bearer " .. token
  headers["Content-Type"] = "application/scim+json"
  headers["Accept"] = "application/scim+json"
  if datafile ~= "-" then
    for line in io.lines(datafile) do
      local id, name = line:match("^(%S+)%s*(%S*)$")
      if id then
        n = n + 1
        ids[n] = id
        names[n] = name
      end
    end
  end
  math.randomseed(os.time() + (tonumber(runid) or 0))
end

local function pick()
  return math.random(1, n)
end

local function nexti()
  counter = counter + 1
  return ((counter - 1) % n) + 1
end

local function user_json(user_name, k)
  return '{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User"],"userName":"' .. user_name ..
    '","name":{"givenName":"Bench","familyName":"Family' .. k .. '"},"displayName":"Bench Family' .. k ..
    '","title":"Engineer","emails":[{"value":"' .. user_name .. '","type":"work","primary":true}],"active":true}'
end

function request()
  if mode == "create" then
    counter = counter + 1
    local un = "c" .. runid .. "." .. counter .. "@bench.example.com"
    return wrk.format("POST", basepath .. "/Users", headers, user_json(un, counter))
  elseif mode == "get" then
    return wrk.format("GET", basepath .. "/Users/" .. ids[pick()], headers)
  elseif mode == "filter" then
    local q = "filter=userName%20eq%20%22" .. names[pick()] .. "%22"
    return wrk.format("GET", basepath .. "/Users?" .. q, headers)
  elseif mode == "list" then
    local page = math.random(0, tonumber(extra) - 1)
    return wrk.format("GET", basepath .. "/Users?startIndex=" .. (page * 100 + 1) .. "&count=100", headers)
  elseif mode == "patch" then
    counter = counter + 1
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
      '{"op":"replace","path":"displayName","value":"Patched ' .. counter .. '"},' ..
      '{"op":"replace","path":"title","value":"Title ' .. counter .. '"}]}'
    return wrk.format("PATCH", basepath .. "/Users/" .. ids[pick()], headers, body)
  elseif mode == "put" then
    local i = pick()
    counter = counter + 1
    return wrk.format("PUT", basepath .. "/Users/" .. ids[i], headers, user_json(names[i], counter))
  elseif mode == "member_add" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
      '{"op":"add","path":"members","value":[{"value":"' .. ids[nexti()] .. '"}]}]}'
    return wrk.format("PATCH", basepath .. "/Groups/" .. extra, headers, body)
  elseif mode == "member_remove" then
    local body = '{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[' ..
      '{"op":"remove","path":"members[value eq \\"' .. ids[nexti()] .. '\\"]"}]}'
    return wrk.format("PATCH", basepath .. "/Groups/" .. extra, headers, body)
  elseif mode == "group_get" then
    return wrk.format("GET", basepath .. "/Groups/" .. extra .. "?excludedAttributes=members", headers)
  end
  error("unknown mode " .. tostring(mode))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,' ..
    '"err_timeout":%d}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, e.connect, e.read, e.write, e.status, e.timeout))
end
