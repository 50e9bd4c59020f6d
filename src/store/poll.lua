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
-- ARGV[4] poll TTL in milliseconds (0: polls never expire); more per operation.
--
-- Replies are {"ok", …} or {"err", code}.

local poll_key, votes_key, version_key, voters_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, id, channel, ttl_ms = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])

-- Every key of a poll expires together, TTL_MS after its last activity.
local function touch()
  if ttl_ms > 0 then
    redis.call('PEXPIRE', poll_key, ttl_ms)
    redis.call('PEXPIRE', votes_key, ttl_ms)
    redis.call('PEXPIRE', version_key, ttl_ms)
    redis.call('PEXPIRE', voters_key, ttl_ms)
  end
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
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '","created_at":' .. created_at
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

-- ARGV[5] the created_at the caller has cached the text of ('' for none).
-- The reply is the state, then question, options JSON and vote_limit when
-- the cached text is missing or belongs to an earlier poll of this id.
function ops.read()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  local version = tonumber(redis.call('GET', version_key)) or 0
  local reply = state_reply(p[1], version, p[2] == '1', counts_of(redis.call('HLEN', votes_key)))
  if p[1] ~= ARGV[5] then
    local text = redis.call('HMGET', poll_key, 'question', 'options', 'vote_limit')
    reply[#reply + 1] = text[1]
    reply[#reply + 1] = text[2]
    reply[#reply + 1] = text[3]
  end
  return reply
end

-- ARGV[5] question, [6] options (JSON array of labels), [7] vote_limit,
-- [8] created_at (unix ms), [9] admin_token_sha256, [10..] initial counts.
function ops.create()
  if redis.call('EXISTS', poll_key) == 1 then
    return { 'err', 'exists' }
  end
  redis.call('HSET', poll_key, 'question', ARGV[5], 'options', ARGV[6], 'vote_limit', ARGV[7],
    'closed', '0', 'created_at', ARGV[8], 'admin_token_sha256', ARGV[9])
  local fields = {}
  for i = 10, #ARGV do
    fields[#fields + 1] = i - 10
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', votes_key, unpack(fields))
  redis.call('SET', version_key, 0)
  touch()
  return { 'ok' }
end

-- A batch of votes, counted in order as if each were its own call.
-- ARGV[5] idempotency record TTL (seconds), ARGV[6] number of votes, then
-- three per vote: option index, voter id, index into KEYS of its
-- idempotency key (0: none).
--
-- The reply is the state BEFORE the batch, then one status per vote:
--   '+'           counted (the caller replays the counts forward),
--   '=RECORD'     replayed: the record of the key's first outcome,
--   an error code refused (option_not_found, already_voted, idempotency_key_reused).
-- An idempotency record is "created_at,option,version,count0,count1,…": the
-- outcome of the vote without the poll's text. One publish per batch.
function ops.vote()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'vote_limit')
  local created_at = p[1]
  if not created_at then
    return { 'err', 'poll_not_found' }
  end
  if p[2] == '1' then
    return { 'err', 'poll_closed' }
  end
  local one_per_voter = p[3] == 'one_per_voter'
  local idem_ttl = ARGV[5]
  local n = redis.call('HLEN', votes_key)
  local version = tonumber(redis.call('GET', version_key)) or 0
  local counts = counts_of(n)
  local reply = state_reply(created_at, version, false, counts)
  local added = {}
  local counted = 0
  for v = 1, tonumber(ARGV[6]) do
    local at = 4 + 3 * v
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
    redis.call('SET', version_key, version)
    publish(created_at, version, false, counts)
    touch()
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
  touch()
  return state_reply(p[1], version, true, counts)
end

-- Idempotency records are left to expire: they cannot be found without a
-- scan, and a vote ignores those of an earlier poll with the same id.
function ops.delete()
  if redis.call('EXISTS', poll_key) == 0 then
    return { 'err', 'poll_not_found' }
  end
  redis.call('DEL', poll_key, votes_key, version_key, voters_key)
  redis.call('PUBLISH', channel, '{"deleted":true,"id":"' .. id .. '"}')
  return { 'ok' }
end

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
return run()
