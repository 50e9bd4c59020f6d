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
-- KEYS[3] Q&A hash     PREFIX:event:{EID}:qa     t:ID text JSON, s:ID status,
--                      v:ID votes, a:ID author voter, p:VOTER last post (ms),
--                      u:VOTER the ids VOTER upvoted (",3,7,")
-- KEYS[4] board zset   PREFIX:event:{EID}:qa:board  public ids by board order
-- KEYS[5] held zset    PREFIX:event:{EID}:qa:held   pending and hidden ids
-- KEYS[6] upvotes set  PREFIX:event:{EID}:qa:ups    "ID:VOTER"
-- (the event hash also holds qa_version, qa_seq, qa_pin, qa_moderation)
-- ARGV[1] operation, ARGV[2] event id, ARGV[3] the event's changes channel,
-- ARGV[4] TTL in milliseconds (0: never expires); more per operation.
--
-- Replies are {"ok", …} or {"err", code}. Changes are announced as
--   {"event":"EID","version":V}   or   {"event":"EID","deleted":true}
-- and instances re-read the event (one read per change per instance).

local ev, deck = KEYS[1], KEYS[2]
local qa, board, held, ups = KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local op, id, channel = ARGV[1], ARGV[2], ARGV[3]
local ttl_ms = tonumber(ARGV[4])
-- PUBLISH on one Redis; the cluster store runs this script with SPUBLISH here.
local PUBLISH = 'PUBLISH'

local function touch()
  if ttl_ms > 0 then
    for _, key in ipairs(KEYS) do
      redis.call('PEXPIRE', key, ttl_ms)
    end
  end
end

local function announce(version)
  local qa_version = redis.call('HGET', ev, 'qa_version') or '0'
  redis.call(PUBLISH, channel, '{"event":"' .. id .. '","version":' .. version
    .. ',"qa":' .. qa_version .. '}')
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
-- [9] qa_moderation (0/1), then pairs: question id, summary JSON (in deck
-- order).
function ops.create()
  if redis.call('EXISTS', ev) == 1 then
    return { 'err', 'exists' }
  end
  local order = {}
  for i = 10, #ARGV, 2 do
    order[#order + 1] = ARGV[i]
    redis.call('HSET', deck, ARGV[i], ARGV[i + 1])
  end
  redis.call('HSET', ev, 'title', ARGV[5], 'code', ARGV[6], 'created_at', ARGV[7],
    'admin_token_sha256', ARGV[8], 'version', 0, 'order', table.concat(order, ' '),
    'current', '', 'results_shown', 1, 'dirty', '', 'qa_version', 0, 'qa_seq', 0,
    'qa_pin', '', 'qa_moderation', ARGV[9])
  touch()
  return { 'ok' }
end

-- The four fields of one Q&A question: id, status, votes, text JSON.
local function qa_item(list, qid)
  local f = redis.call('HMGET', qa, 's:' .. qid, 'v:' .. qid, 't:' .. qid)
  list[#list + 1] = qid
  list[#list + 1] = f[1] or 'hidden'
  list[#list + 1] = f[2] or '0'
  list[#list + 1] = f[3] or '{}'
end

-- Public ids in board order with the pinned one first.
local function qa_ordered(pin, from, count)
  local ids = {}
  if pin ~= '' then
    ids[1] = pin
  end
  local ranked = redis.call('ZREVRANGE', board, 0, from + count)
  for _, qid in ipairs(ranked) do
    if qid ~= pin then
      ids[#ids + 1] = qid
    end
  end
  return ids
end

-- {'ok', title, code, created_at, version, current, results_shown,
--  n, id1, summary1, …, then the board: qa_version, qa_moderation, pin,
--  public count, n top (pinned first when there is one), their fields,
--  n held, their fields}
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
  local q = redis.call('HMGET', ev, 'qa_version', 'qa_moderation', 'qa_pin')
  local pin = q[3] or ''
  reply[#reply + 1] = q[1] or '0'
  reply[#reply + 1] = q[2] or '0'
  reply[#reply + 1] = pin
  reply[#reply + 1] = redis.call('ZCARD', board)
  local top = qa_ordered(pin, 0, 50)
  local n = math.min(#top, pin ~= '' and 51 or 50)
  reply[#reply + 1] = n
  for i = 1, n do
    qa_item(reply, top[i])
  end
  local waiting = redis.call('ZRANGE', held, 0, 49)
  reply[#reply + 1] = #waiting
  for _, qid in ipairs(waiting) do
    qa_item(reply, qid)
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
  redis.call('DEL', ev, deck, qa, board, held, ups)
  redis.call(PUBLISH, channel, '{"event":"' .. id .. '","deleted":true}')
  local reply = { 'ok', e[1] }
  for _, q in ipairs(split(e[2])) do
    reply[#reply + 1] = q
  end
  return reply
end

-- The board order as one score: open before answered, then most votes,
-- then the oldest (lowest id) first.
local function qa_score(qid, status, votes)
  local open = status == 'answered' and 0 or 1
  return open * 1099511627776 + votes * 4096 + (4095 - tonumber(qid))
end

-- A change of the board: its version rises and followers hear of it.
local function qa_changed()
  redis.call('HINCRBY', ev, 'qa_version', 1)
  touch()
  announce(redis.call('HGET', ev, 'version'))
end

local function qa_reply(qid)
  local reply = { 'ok' }
  qa_item(reply, qid)
  reply[#reply + 1] = redis.call('HGET', ev, 'qa_pin') or ''
  return reply
end

-- ARGV[5] voter, ARGV[6] text JSON ({"text","name"}). Refusals:
-- not_found, rate_limited:MS, too_many.
function ops.qa_post()
  local e = redis.call('HMGET', ev, 'qa_seq', 'qa_moderation')
  if not e[1] then
    return { 'err', 'not_found' }
  end
  local voter = ARGV[5]
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local last = tonumber(redis.call('HGET', qa, 'p:' .. voter))
  if last and now - last < 10000 then
    return { 'err', 'rate_limited:' .. (10000 - (now - last)) }
  end
  local seq = tonumber(e[1]) + 1
  if seq > 2000 then
    return { 'err', 'too_many' }
  end
  local status = e[2] == '1' and 'pending' or 'open'
  redis.call('HSET', ev, 'qa_seq', seq)
  redis.call('HSET', qa, 't:' .. seq, ARGV[6], 's:' .. seq, status, 'v:' .. seq, 0,
    'a:' .. seq, voter, 'p:' .. voter, now)
  if status == 'open' then
    redis.call('ZADD', board, qa_score(seq, status, 0), seq)
  else
    redis.call('ZADD', held, seq, seq)
  end
  qa_changed()
  return qa_reply(tostring(seq))
end

-- ARGV[5] question id, ARGV[6] voter, ARGV[7] '1' up / '0' take back.
function ops.qa_vote()
  if redis.call('EXISTS', ev) == 0 then
    return { 'err', 'not_found' }
  end
  local qid, voter = ARGV[5], ARGV[6]
  local f = redis.call('HMGET', qa, 's:' .. qid, 'a:' .. qid, 'v:' .. qid)
  if f[1] ~= 'open' and f[1] ~= 'answered' then
    return { 'err', 'question_not_found' }
  end
  if f[2] == voter then
    return { 'err', 'own_question' }
  end
  local member = qid .. ':' .. voter
  local changed, delta
  if ARGV[7] == '1' then
    changed, delta = redis.call('SADD', ups, member), 1
  else
    changed, delta = redis.call('SREM', ups, member), -1
  end
  if changed == 1 then
    local votes = redis.call('HINCRBY', qa, 'v:' .. qid, delta)
    redis.call('ZADD', board, qa_score(qid, f[1], votes), qid)
    local mine = redis.call('HGET', qa, 'u:' .. voter) or ','
    if delta == 1 then
      mine = mine .. qid .. ','
    else
      mine = string.gsub(mine, ',' .. qid .. ',', ',', 1)
    end
    redis.call('HSET', qa, 'u:' .. voter, mine)
    qa_changed()
  end
  return qa_reply(qid)
end

-- ARGV[5] question id, ARGV[6] approve | hide | answer | pin.
function ops.qa_mod()
  local e = redis.call('HMGET', ev, 'qa_pin')
  if redis.call('EXISTS', ev) == 0 then
    return { 'err', 'not_found' }
  end
  local qid, action = ARGV[5], ARGV[6]
  local f = redis.call('HMGET', qa, 's:' .. qid, 'v:' .. qid)
  local status, votes = f[1], tonumber(f[2] or '0')
  if not status then
    return { 'err', 'question_not_found' }
  end
  local pin = e[1] or ''
  local new_status, new_pin = status, pin
  if action == 'approve' then
    if status == 'pending' or status == 'hidden' then
      new_status = 'open'
    end
  elseif action == 'hide' then
    new_status = 'hidden'
    if pin == qid then
      new_pin = ''
    end
  elseif action == 'answer' then
    new_status = 'answered'
  elseif action == 'pin' then
    if status == 'hidden' then
      return { 'err', 'question_not_found' }
    end
    if status == 'pending' then
      new_status = 'open'
    end
    new_pin = pin == qid and '' or qid
  else
    return { 'err', 'unknown_action' }
  end
  if new_status == status and new_pin == pin then
    return qa_reply(qid)
  end
  redis.call('HSET', qa, 's:' .. qid, new_status)
  redis.call('HSET', ev, 'qa_pin', new_pin)
  if new_status == 'open' or new_status == 'answered' then
    redis.call('ZREM', held, qid)
    redis.call('ZADD', board, qa_score(qid, new_status, votes), qid)
  else
    redis.call('ZREM', board, qid)
    redis.call('ZADD', held, qid, qid)
  end
  qa_changed()
  return qa_reply(qid)
end

-- ARGV[5] offset, ARGV[6] limit: {'ok', public count, pin, n, fields…}
function ops.qa_page()
  local pin = redis.call('HGET', ev, 'qa_pin')
  if not pin then
    return { 'err', 'not_found' }
  end
  local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
  local ids = qa_ordered(pin, offset, limit)
  local reply = { 'ok', redis.call('ZCARD', board), pin }
  local page = {}
  for i = offset + 1, math.min(#ids, offset + limit) do
    page[#page + 1] = ids[i]
  end
  reply[#reply + 1] = #page
  for _, qid in ipairs(page) do
    qa_item(reply, qid)
  end
  return reply
end

-- ARGV[5] voter: {'ok', ",3,7,"}
function ops.qa_upvoted()
  return { 'ok', redis.call('HGET', qa, 'u:' .. ARGV[5]) or ',' }
end

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
return run()
