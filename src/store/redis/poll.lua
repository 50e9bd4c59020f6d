-- Every operation on one poll, run atomically by Redis (EVALSHA; the client
-- loads the script again when Redis answers NOSCRIPT, e.g. after a restart).
-- All keys of a poll share the hash tag {ID}, so this also runs on a Redis
-- Cluster.
--
-- The script only counts. The poll's text (question, labels) never changes
-- after creation: instances read it once, cache it under (id, created_at)
-- and render the results themselves. No operation but `read` (when asked)
-- touches the text, and the change channel carries a compact message:
--   {"id":"ID","created_at":MS,"version":V,"closed":false,"counts":[…]}
--
-- KEYS[1] poll hash      PREFIX:poll:{ID}
-- KEYS[2] votes hash     PREFIX:poll:{ID}:votes     option index -> count
-- KEYS[3] version        PREFIX:poll:{ID}:version
-- KEYS[4] voters set     PREFIX:poll:{ID}:voters
-- KEYS[5..] idempotency  PREFIX:poll:{ID}:idem:{KEY} (`vote` only, one per keyed vote)
-- ARGV[1] operation: read | create | vote | close | delete
-- ARGV[2] poll id, ARGV[3] the poll's changes channel,
-- ARGV[4] poll TTL in milliseconds (0: polls never expire),
-- ARGV[5] the caller's clock (unix ms); more per operation.
--
-- Replies are {"ok", …} or {"err", code}.

local poll_key, votes_key, version_key, voters_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, id, channel = ARGV[1], ARGV[2], ARGV[3]
local ttl_ms, now_ms = tonumber(ARGV[4]), tonumber(ARGV[5])
-- PUBLISH on one Redis; the cluster store runs this script with SPUBLISH here.
local PUBLISH = 'PUBLISH'

-- Every key of a poll expires together, TTL_MS after its last activity.
-- Renewing them costs four commands, so a vote renews them only once the
-- last renewal (`touched_at`) is older than 1/64 of the TTL: a poll lives
-- between 63/64 and all of the TTL after its last vote.
local function touch(touched_at)
  if ttl_ms == 0 or (touched_at and now_ms - tonumber(touched_at) < ttl_ms / 64) then
    return false
  end
  redis.call('HSET', poll_key, 'touched_at', now_ms)
  redis.call('PEXPIRE', poll_key, ttl_ms)
  redis.call('PEXPIRE', votes_key, ttl_ms)
  redis.call('PEXPIRE', version_key, ttl_ms)
  redis.call('PEXPIRE', voters_key, ttl_ms)
  return true
end

-- The current count of each of the n options, in option order.
local function counts_of(n)
  local fields = {}
  for i = 1, n do
    fields[i] = i - 1
  end
  local raw = redis.call('HMGET', votes_key, unpack(fields))
  local counts = {}
  for i = 1, n do
    counts[i] = tonumber(raw[i]) or 0
  end
  return counts
end

-- The compact change message; ids are [A-Za-z0-9_-], safe inside quotes.
local function publish(created_at, version, closed, counts)
  redis.call(PUBLISH, channel, '{"id":"' .. id .. '","created_at":' .. created_at
    .. ',"version":' .. version .. ',"closed":' .. (closed and 'true' or 'false')
    .. ',"counts":[' .. table.concat(counts, ',') .. ']}')
end

-- The state every reply carries: created_at, version, closed, n, counts…
local function state_reply(created_at, version, closed, counts)
  local reply = { 'ok', created_at, version, closed and 1 or 0, #counts }
  for i = 1, #counts do
    reply[#reply + 1] = counts[i]
  end
  return reply
end

local ops = {}

-- ARGV[6] the created_at the caller has cached the text of ('' for none).
-- The reply is the state, then question, options JSON and vote_limit when
-- the cached text is missing or belongs to an earlier poll of this id.
function ops.read()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  local version = tonumber(redis.call('GET', version_key)) or 0
  local reply = state_reply(p[1], version, p[2] == '1', counts_of(redis.call('HLEN', votes_key)))
  if p[1] ~= ARGV[6] then
    local text = redis.call('HMGET', poll_key, 'question', 'options', 'vote_limit')
    reply[#reply + 1] = text[1]
    reply[#reply + 1] = text[2]
    reply[#reply + 1] = text[3]
  end
  return reply
end

-- ARGV[6] question, [7] options (JSON array of labels), [8] vote_limit,
-- [9] created_at (unix ms), [10] admin_token_sha256, [11..] initial counts.
function ops.create()
  if redis.call('EXISTS', poll_key) == 1 then
    return { 'err', 'exists' }
  end
  redis.call('HSET', poll_key, 'question', ARGV[6], 'options', ARGV[7], 'vote_limit', ARGV[8],
    'closed', '0', 'created_at', ARGV[9], 'admin_token_sha256', ARGV[10])
  local fields = {}
  for i = 11, #ARGV do
    fields[#fields + 1] = i - 11
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', votes_key, unpack(fields))
  redis.call('SET', version_key, 0)
  touch(nil)
  return { 'ok' }
end

-- A batch of votes, counted in order as if each were its own call.
-- ARGV[6] idempotency record TTL (seconds), ARGV[7] the created_at and
-- ARGV[8] the option count of the poll as the caller knows it (saves an
-- HLEN when they are still true), ARGV[9] number of votes, then three per
-- vote: option index, voter id, index into KEYS of its idempotency key
-- (0: none).
--
-- The reply is the state BEFORE the batch, then one status per vote:
--   '+'           counted (the caller replays the counts forward),
--   '=RECORD'     replayed: the record of the key's first outcome,
--   an error code refused (option_not_found, already_voted, idempotency_key_reused).
-- An idempotency record is "created_at,option,version,count0,count1,…": the
-- outcome of the vote without the poll's text. One publish per batch.
function ops.vote()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'vote_limit', 'touched_at')
  local created_at = p[1]
  if not created_at then
    return { 'err', 'poll_not_found' }
  end
  if p[2] == '1' then
    return { 'err', 'poll_closed' }
  end
  local one_per_voter = p[3] == 'one_per_voter'
  local idem_ttl = ARGV[6]
  local n = created_at == ARGV[7] and tonumber(ARGV[8]) or redis.call('HLEN', votes_key)
  local version = tonumber(redis.call('GET', version_key)) or 0
  local counts = counts_of(n)
  local reply = state_reply(created_at, version, false, counts)
  local added = {}
  local counted, new_voters = 0, false
  for v = 1, tonumber(ARGV[9]) do
    local at = 7 + 3 * v
    local option, voter, key_at = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
    local index = tonumber(option) + 1
    local status
    if index > n then
      status = 'option_not_found'
    else
      local stored = key_at > 0 and redis.call('GET', KEYS[key_at])
      local first_option
      if stored then
        -- A record left by a deleted poll of the same id does not count.
        local first_created, opt = string.match(stored, '^(%d+),(%d+),')
        if first_created == created_at then
          first_option = opt
        end
      end
      if first_option then
        status = first_option == option and ('=' .. stored) or 'idempotency_key_reused'
      elseif one_per_voter and redis.call('SADD', voters_key, voter) == 0 then
        status = 'already_voted'
      else
        new_voters = new_voters or one_per_voter
        counts[index] = counts[index] + 1
        added[index] = (added[index] or 0) + 1
        version = version + 1
        counted = counted + 1
        status = '+'
        if key_at > 0 then
          redis.call('SET', KEYS[key_at], created_at .. ',' .. option .. ',' .. version .. ','
            .. table.concat(counts, ','), 'EX', idem_ttl)
        end
      end
    end
    reply[#reply + 1] = status
  end
  if counted > 0 then
    for index, k in pairs(added) do
      redis.call('HINCRBY', votes_key, index - 1, k)
    end
    -- INCRBY, not SET: a SET would drop the key's TTL.
    redis.call('INCRBY', version_key, counted)
    publish(created_at, version, false, counts)
    if not touch(p[4]) and new_voters and ttl_ms > 0 then
      -- The voters set may be new: it must not outlive the poll.
      redis.call('PEXPIRE', voters_key, ttl_ms)
    end
  end
  return reply
end

-- Closing a closed poll changes nothing and publishes nothing.
function ops.close()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  local counts = counts_of(redis.call('HLEN', votes_key))
  if p[2] == '1' then
    return state_reply(p[1], tonumber(redis.call('GET', version_key)) or 0, true, counts)
  end
  redis.call('HSET', poll_key, 'closed', '1')
  local version = redis.call('INCR', version_key)
  publish(p[1], version, true, counts)
  touch(nil)
  return state_reply(p[1], version, true, counts)
end

-- Idempotency records are left to expire: they cannot be found without a
-- scan, and a vote ignores those of an earlier poll with the same id.
function ops.delete()
  if redis.call('EXISTS', poll_key) == 0 then
    return { 'err', 'poll_not_found' }
  end
  redis.call('DEL', poll_key, votes_key, version_key, voters_key)
  redis.call(PUBLISH, channel, '{"deleted":true,"id":"' .. id .. '"}')
  return { 'ok' }
end

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
return run()
