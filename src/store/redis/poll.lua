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
-- KEYS[4] voters         PREFIX:poll:{ID}:voters    set of voter ids, or (allow_change
--                        polls) hash voter id -> choice ("0+2")
-- KEYS[5..] idempotency  PREFIX:poll:{ID}:idem:{KEY} (`vote` only, one per keyed vote)
-- ARGV[1] operation: read | create | vote | close | reopen | voted | delete
-- ARGV[2] poll id, ARGV[3] the poll's changes channel,
-- ARGV[4] poll TTL in milliseconds (0: polls never expire),
-- ARGV[5] the caller's clock (unix ms); more per operation.
--
-- Replies are {"ok", …} or {"err", code}.
--
-- A poll with `closes_at` (unix ms, in the poll hash) is closed from that
-- instant by Redis's own clock (TIME): the first operation that finds it
-- past (a vote, a read, an instance's timer) closes it like an admin would,
-- version +1 and one publish; every later one finds it closed.

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

-- Redis's clock in unix milliseconds (scripts replicate their effects,
-- so TIME is allowed before writes).
local function server_now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Closes the poll if its closes_at has passed and it is still open.
-- Returns whether it is closed now, and the version (nil: unchanged).
local function close_if_due(created_at, closed, closes_at)
  if closed then
    return true
  end
  if not closes_at or closes_at == '' or server_now_ms() < tonumber(closes_at) then
    return false
  end
  redis.call('HSET', poll_key, 'closed', '1')
  local version = redis.call('INCR', version_key)
  publish(created_at, version, true, counts_of(redis.call('HLEN', votes_key)))
  return true, version
end

-- The option indexes of a choice "0+2", 1-based, or nil when one is past n.
local function options_of(choice, n)
  local list = {}
  for o in string.gmatch(choice, '%d+') do
    local index = tonumber(o) + 1
    if index > n then
      return nil
    end
    list[#list + 1] = index
  end
  return list
end

local ops = {}

-- ARGV[6] the created_at the caller has cached the text of ('' for none).
-- The reply is the state, then question, options JSON and vote_limit when
-- the cached text is missing or belongs to an earlier poll of this id.
-- The text is question, options, vote_limit, max_choices, allow_change,
-- results, closes_at, listed ('' for a field the poll lacks).
function ops.read()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'closes_at')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  local closed = close_if_due(p[1], p[2] == '1', p[3])
  local version = tonumber(redis.call('GET', version_key)) or 0
  local reply = state_reply(p[1], version, closed, counts_of(redis.call('HLEN', votes_key)))
  if p[1] ~= ARGV[6] then
    local text = redis.call('HMGET', poll_key, 'question', 'options', 'vote_limit',
      'max_choices', 'allow_change', 'results', 'closes_at', 'listed')
    for i = 1, 8 do
      reply[#reply + 1] = text[i] or ''
    end
  end
  return reply
end

-- ARGV[6] question, [7] options (JSON array of labels), [8] vote_limit,
-- [9] created_at (unix ms), [10] admin_token_sha256, [11] max_choices,
-- [12] allow_change (0/1), [13] results, [14] closes_at (unix ms, '' for
-- none), [15] listed (0/1), [16..] initial counts.
function ops.create()
  if redis.call('EXISTS', poll_key) == 1 then
    return { 'err', 'exists' }
  end
  redis.call('HSET', poll_key, 'question', ARGV[6], 'options', ARGV[7], 'vote_limit', ARGV[8],
    'closed', '0', 'created_at', ARGV[9], 'admin_token_sha256', ARGV[10],
    'max_choices', ARGV[11], 'allow_change', ARGV[12], 'results', ARGV[13], 'listed', ARGV[15])
  if ARGV[14] ~= '' then
    redis.call('HSET', poll_key, 'closes_at', ARGV[14])
  end
  local fields = {}
  for i = 16, #ARGV do
    fields[#fields + 1] = i - 16
    fields[#fields + 1] = ARGV[i]
  end
  redis.call('HSET', votes_key, unpack(fields))
  redis.call('SET', version_key, 0)
  touch(nil)
  return { 'ok' }
end

-- The outcome on record for the idempotency key at KEYS[key_at] (0: none)
-- and the choice it counted; nil for a record left by a deleted poll of
-- the same id.
local function key_record(key_at, created_at)
  local stored = key_at > 0 and redis.call('GET', KEYS[key_at])
  if stored then
    local first_created, choice = string.match(stored, '^(%d+),([%d+]+),')
    if first_created == created_at then
      return stored, choice
    end
  end
  return nil
end

-- Records the outcome of a vote under its idempotency key (KEYS[key_at];
-- 0: none): "created_at,choice,version,count0,count1,…".
local function remember_key(key_at, created_at, choice, version, counts, ttl)
  if key_at > 0 then
    redis.call('SET', KEYS[key_at], created_at .. ',' .. choice .. ',' .. version .. ','
      .. table.concat(counts, ','), 'EX', ttl)
  end
end

-- The reply to a batch on a closed poll: nothing counts, but a retry of a
-- vote counted before the close replays its outcome ('=RECORD'); every
-- other vote is 'poll_closed'.
local function closed_batch(created_at)
  local n = created_at == ARGV[7] and tonumber(ARGV[8]) or redis.call('HLEN', votes_key)
  local version = tonumber(redis.call('GET', version_key)) or 0
  local reply = state_reply(created_at, version, true, counts_of(n))
  for v = 1, tonumber(ARGV[9]) do
    local at = 7 + 3 * v
    local stored, first_choice = key_record(tonumber(ARGV[at + 2]), created_at)
    reply[#reply + 1] = first_choice == ARGV[at] and ('=' .. stored) or 'poll_closed'
  end
  return reply
end

-- A batch of votes, counted in order as if each were its own call.
-- ARGV[6] idempotency record TTL (seconds), ARGV[7] the created_at and
-- ARGV[8] the option count of the poll as the caller knows it (saves an
-- HLEN when they are still true), ARGV[9] number of votes, then three per
-- vote: choice ("0" or "0+2": distinct, ascending), voter id, index into
-- KEYS of its idempotency key (0: none).
--
-- The reply is the state BEFORE the batch, then one status per vote:
--   '+'           counted (the caller replays the counts forward),
--   '+CHOICE'     counted, replacing the voter's earlier CHOICE (allow_change),
--   '~'           the voter's choice already (allow_change): nothing changed,
--   '=RECORD'     replayed: the record of the key's first outcome,
--   an error code refused (option_not_found, too_many_choices, already_voted,
--                 idempotency_key_reused).
-- An idempotency record is "created_at,choice,version,count0,count1,…": the
-- outcome of the vote without the poll's text. One publish per batch.
function ops.vote()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'vote_limit', 'touched_at',
    'max_choices', 'allow_change', 'results', 'closes_at')
  local created_at = p[1]
  if not created_at then
    return { 'err', 'poll_not_found' }
  end
  if close_if_due(created_at, p[2] == '1', p[8]) then
    return closed_batch(created_at)
  end
  local one_per_voter = p[3] == 'one_per_voter'
  local max_choices = tonumber(p[5]) or 1
  local allow_change = one_per_voter and p[6] == '1'
  -- Voters are remembered for the one-per-voter rule and for after_vote
  -- visibility; unlimited after_vote polls only remember that they voted.
  local record_voters = one_per_voter or p[7] == 'after_vote'
  local idem_ttl = ARGV[6]
  local n = created_at == ARGV[7] and tonumber(ARGV[8]) or redis.call('HLEN', votes_key)
  local version = tonumber(redis.call('GET', version_key)) or 0
  local counts = counts_of(n)
  local reply = state_reply(created_at, version, false, counts)
  local added = {}
  local counted, new_voters = 0, false
  for v = 1, tonumber(ARGV[9]) do
    local at = 7 + 3 * v
    local choice, voter, key_at = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
    local chosen = options_of(choice, n)
    local status
    if not chosen then
      status = 'option_not_found'
    elseif #chosen > max_choices then
      status = 'too_many_choices'
    else
      local stored, first_choice = key_record(key_at, created_at)
      local previous
      if first_choice then
        status = first_choice == choice and ('=' .. stored) or 'idempotency_key_reused'
      elseif allow_change then
        previous = redis.call('HGET', voters_key, voter)
        if previous == choice then
          -- Nothing changes, but the key keeps this answer: the same key
          -- with another choice is then refused, not counted.
          status = '~'
          remember_key(key_at, created_at, choice, version, counts, idem_ttl)
        else
          redis.call('HSET', voters_key, voter, choice)
          new_voters = true
        end
      elseif record_voters and redis.call('SADD', voters_key, voter) == 0 and one_per_voter then
        status = 'already_voted'
      else
        new_voters = new_voters or record_voters
      end
      if not status then
        status = '+'
        if previous then
          status = '+' .. previous
          for _, index in ipairs(options_of(previous, n) or {}) do
            counts[index] = counts[index] - 1
            added[index] = (added[index] or 0) - 1
          end
        end
        for _, index in ipairs(chosen) do
          counts[index] = counts[index] + 1
          added[index] = (added[index] or 0) + 1
        end
        version = version + 1
        counted = counted + 1
        remember_key(key_at, created_at, choice, version, counts, idem_ttl)
      end
    end
    reply[#reply + 1] = status
  end
  if counted > 0 then
    for index, k in pairs(added) do
      if k ~= 0 then
        redis.call('HINCRBY', votes_key, index - 1, k)
      end
    end
    -- INCRBY, not SET: a SET would drop the key's TTL.
    redis.call('INCRBY', version_key, counted)
    publish(created_at, version, false, counts)
    if not touch(p[4]) and new_voters and ttl_ms > 0 then
      -- The voters record may be new: it must not outlive the poll.
      redis.call('PEXPIRE', voters_key, ttl_ms)
    end
  end
  return reply
end

-- Closing a closed poll changes nothing and publishes nothing.
function ops.close()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'closes_at')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  local counts = counts_of(redis.call('HLEN', votes_key))
  if close_if_due(p[1], p[2] == '1', p[3]) then
    return state_reply(p[1], tonumber(redis.call('GET', version_key)) or 0, true, counts)
  end
  redis.call('HSET', poll_key, 'closed', '1')
  local version = redis.call('INCR', version_key)
  publish(p[1], version, true, counts)
  touch(nil)
  return state_reply(p[1], version, true, counts)
end

-- Opens a closed poll again; a no-op on an open one. A poll past its
-- closes_at stays closed ('past_closes_at').
function ops.reopen()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'closes_at', 'event')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  if p[4] then
    -- An event's question: only the event opens it (by a move).
    return { 'err', 'in_event:' .. p[4] }
  end
  local counts = counts_of(redis.call('HLEN', votes_key))
  if p[3] and server_now_ms() >= tonumber(p[3]) then
    close_if_due(p[1], p[2] == '1', p[3])
    return { 'err', 'past_closes_at' }
  end
  if p[2] ~= '1' then
    return state_reply(p[1], tonumber(redis.call('GET', version_key)) or 0, false, counts)
  end
  redis.call('HSET', poll_key, 'closed', '0')
  local version = redis.call('INCR', version_key)
  publish(p[1], version, false, counts)
  touch(nil)
  return state_reply(p[1], version, false, counts)
end

-- ARGV[6] a voter id: {'ok', 1} when the poll has a vote of theirs on
-- record in the voters set, {'ok', 1, CHOICE} in the voters hash
-- (allow_change), else {'ok', 0}.
function ops.voted()
  local kind = redis.call('TYPE', voters_key).ok
  if kind == 'hash' then
    local choice = redis.call('HGET', voters_key, ARGV[6])
    if choice then
      return { 'ok', 1, choice }
    end
    return { 'ok', 0 }
  elseif kind == 'set' then
    return { 'ok', redis.call('SISMEMBER', voters_key, ARGV[6]) }
  end
  return { 'ok', 0 }
end

-- An event's question, opened or closed by an event move or toggle.
-- ARGV[6] event id, ARGV[7] '1' open / '0' close, ARGV[8] the generation
-- (the event's version). Applied only if no later generation has fenced
-- this poll already ('gen' in the poll hash), so a slow or repeated step of
-- an older move never reopens a question a newer move closed. A question
-- past its closes_at stays closed. Replies with the state.
function ops.fence()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'closes_at', 'gen')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  end
  redis.call('HSET', poll_key, 'event', ARGV[6])
  local gen = tonumber(ARGV[8])
  local closed = p[2] == '1'
  if gen >= (tonumber(p[4]) or 0) then
    redis.call('HSET', poll_key, 'gen', gen)
    local want_closed = ARGV[7] ~= '1'
    if not want_closed and p[3] and p[3] ~= '' and server_now_ms() >= tonumber(p[3]) then
      want_closed = true
    end
    if closed ~= want_closed then
      redis.call('HSET', poll_key, 'closed', want_closed and '1' or '0')
      local version = redis.call('INCR', version_key)
      closed = want_closed
      publish(p[1], version, closed, counts_of(redis.call('HLEN', votes_key)))
    end
    touch(nil)
  end
  return state_reply(p[1], tonumber(redis.call('GET', version_key)) or 0, closed,
    counts_of(redis.call('HLEN', votes_key)))
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
