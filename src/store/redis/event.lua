-- Every operation on one event, run atomically by Redis. The event's keys
-- share the hash tag {EID}; its questions are polls under their own tags
-- (on a cluster they spread over the masters), so no script here touches a
-- question: the service strings these steps and poll.lua's `fence` together
-- (see src/service/events.rs for why every state a reader sees is valid).
--
-- Like poll.lua, this script only keeps ids and counters. The title and
-- the deck's summaries are text the instance encoded; the script stores
-- and returns them, never builds them.
--
-- KEYS[1] event hash   PREFIX:event:{EID}   title, code, created_at,
--                      admin_token_sha256, version, order (question ids,
--                      space-separated), current ('' = lobby),
--                      results_shown (0/1), dirty (ids a move may have
--                      left open)
-- KEYS[2] deck hash    PREFIX:event:{EID}:deck   question id -> summary JSON
-- ARGV[1] operation, ARGV[2] event id, ARGV[3] the event's changes channel,
-- ARGV[4] TTL in milliseconds (0: never expires); more per operation.
--
-- Replies are {"ok", …} or {"err", code}. Changes are announced as
--   {"event":"EID","version":V}   or   {"event":"EID","deleted":true}
-- and instances re-read the event (one read per change per instance).

local ev, deck = KEYS[1], KEYS[2]
local op, id, channel = ARGV[1], ARGV[2], ARGV[3]
local ttl_ms = tonumber(ARGV[4])
-- PUBLISH on one Redis; the cluster store runs this script with SPUBLISH here.
local PUBLISH = 'PUBLISH'

local function touch()
  if ttl_ms > 0 then
    redis.call('PEXPIRE', ev, ttl_ms)
    redis.call('PEXPIRE', deck, ttl_ms)
  end
end

local function announce(version)
  redis.call(PUBLISH, channel, '{"event":"' .. id .. '","version":' .. version .. '}')
end

local function split(text)
  local list = {}
  for word in string.gmatch(text or '', '%S+') do
    list[#list + 1] = word
  end
  return list
end

local function add_once(list, item)
  if item == nil or item == '' then
    return
  end
  for _, x in ipairs(list) do
    if x == item then
      return
    end
  end
  list[#list + 1] = item
end

local ops = {}

-- ARGV[5] title, [6] code, [7] created_at, [8] admin_token_sha256,
-- then pairs: question id, summary JSON (in deck order).
function ops.create()
  if redis.call('EXISTS', ev) == 1 then
    return { 'err', 'exists' }
  end
  local order = {}
  for i = 9, #ARGV, 2 do
    order[#order + 1] = ARGV[i]
    redis.call('HSET', deck, ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', ev, 'title', ARGV[5], 'code', ARGV[6], 'created_at', ARGV[7],
    'admin_token_sha256', ARGV[8], 'version', 0, 'order', table.concat(order, ' '),
    'current', '', 'results_shown', 1, 'dirty', '')
  touch()
  return { 'ok' }
end

-- {'ok', title, code, created_at, version, current, results_shown,
--  n, id1, summary1, …}
function ops.read()
  local e = redis.call('HMGET', ev, 'title', 'code', 'created_at', 'version', 'order',
    'current', 'results_shown')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  local order = split(e[5])
  local reply = { 'ok', e[1], e[2], e[3], e[4], e[6], e[7], #order }
  local summaries = #order > 0 and redis.call('HMGET', deck, unpack(order)) or {}
  for i, qid in ipairs(order) do
    reply[#reply + 1] = qid
    reply[#reply + 1] = summaries[i] or ''
  end
  return reply
end

function ops.token()
  local token = redis.call('HGET', ev, 'admin_token_sha256')
  if not token then
    return { 'err', 'not_found' }
  end
  return { 'ok', token }
end

-- ARGV[5] the version the caller read, ARGV[6] the target ('' = lobby).
-- {'ok', gen, current, code, dirty…}
function ops.begin()
  local e = redis.call('HMGET', ev, 'version', 'current', 'dirty', 'code')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  if e[1] ~= ARGV[5] then
    return { 'err', 'stale' }
  end
  local version, current, dirty = tonumber(e[1]), e[2], split(e[3])
  local target = ARGV[6]
  if current ~= target then
    add_once(dirty, current)
    add_once(dirty, target)
    version = version + 1
    current = target
    redis.call('HSET', ev, 'current', current, 'version', version,
      'dirty', table.concat(dirty, ' '))
  end
  touch()
  local reply = { 'ok', version, current, e[4] }
  for _, q in ipairs(dirty) do
    reply[#reply + 1] = q
  end
  return reply
end

-- ARGV[5] the move's generation: done unless a later move began.
function ops.finish()
  local e = redis.call('HMGET', ev, 'version', 'current')
  if e[1] and e[1] == ARGV[5] then
    redis.call('HSET', ev, 'dirty', e[2])
    announce(e[1])
  end
  return { 'ok' }
end

-- ARGV[5] the version the caller read, ARGV[6] append | replace | remove |
-- reorder, then: append id summary; replace old new summary; remove id;
-- reorder 'id id …' (the same ids). {'ok', version}
function ops.edit()
  local e = redis.call('HMGET', ev, 'version', 'order', 'current', 'dirty')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  if e[1] ~= ARGV[5] then
    return { 'err', 'stale' }
  end
  local order, current, dirty = split(e[2]), e[3], split(e[4])
  local kind = ARGV[6]
  if kind == 'append' then
    order[#order + 1] = ARGV[7]
    redis.call('HSET', deck, ARGV[7], ARGV[8])
  elseif kind == 'replace' or kind == 'remove' then
    local at
    for i, q in ipairs(order) do
      if q == ARGV[7] then
        at = i
      end
    end
    if not at then
      return { 'err', 'stale' }
    end
    redis.call('HDEL', deck, ARGV[7])
    if kind == 'replace' then
      order[at] = ARGV[8]
      redis.call('HSET', deck, ARGV[8], ARGV[9])
      if current == ARGV[7] then
        current = ARGV[8]
      end
    else
      table.remove(order, at)
      if current == ARGV[7] then
        current = ''
      end
      local kept = {}
      for _, q in ipairs(dirty) do
        if q ~= ARGV[7] then
          kept[#kept + 1] = q
        end
      end
      dirty = kept
    end
  elseif kind == 'reorder' then
    local new = split(ARGV[7])
    if #new ~= #order then
      return { 'err', 'stale' }
    end
    local seen = {}
    for _, q in ipairs(order) do
      seen[q] = true
    end
    for _, q in ipairs(new) do
      if not seen[q] then
        return { 'err', 'stale' }
      end
      seen[q] = nil
    end
    order = new
  else
    return { 'err', 'unknown_edit' }
  end
  local version = tonumber(e[1]) + 1
  redis.call('HSET', ev, 'order', table.concat(order, ' '), 'current', current,
    'dirty', table.concat(dirty, ' '), 'version', version)
  touch()
  announce(version)
  return { 'ok', version }
end

-- Renews the event's keys; {'ok', code} (the caller renews the code's key).
function ops.touch()
  local code = redis.call('HGET', ev, 'code')
  if not code then
    return { 'err', 'not_found' }
  end
  touch()
  return { 'ok', code }
end

-- ARGV[5] '1' to show the current question's counts, '0' to hide them.
function ops.results()
  local e = redis.call('HMGET', ev, 'version', 'results_shown')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  local version = tonumber(e[1])
  if e[2] ~= ARGV[5] then
    version = version + 1
    redis.call('HSET', ev, 'results_shown', ARGV[5], 'version', version)
    announce(version)
  end
  touch()
  return { 'ok', version }
end

-- {'ok', code, id…}: the code to release and the questions to delete.
function ops.delete()
  local e = redis.call('HMGET', ev, 'code', 'order')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  redis.call('DEL', ev, deck)
  redis.call(PUBLISH, channel, '{"event":"' .. id .. '","deleted":true}')
  local reply = { 'ok', e[1] }
  for _, q in ipairs(split(e[2])) do
    reply[#reply + 1] = q
  end
  return reply
end

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
return run()
