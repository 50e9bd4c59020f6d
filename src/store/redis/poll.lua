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
-- KEYS[5] words          PREFIX:poll:{ID}:words     word cloud: sorted set entry -> score
--                        votes * 8192 + (8191 - first-seen sequence), so the most voted
--                        come first and ties keep the order they were first seen
-- KEYS[6] hidden         PREFIX:poll:{ID}:hidden    word cloud: set of entries the host hides
-- KEYS[7..] idempotency  PREFIX:poll:{ID}:idem:{KEY} (`vote` only, one per keyed vote)
-- ARGV[1] operation: read | create | vote | close | reopen | voted | delete | hide
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
local words_key, hidden_key = KEYS[5], KEYS[6]
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
  redis.call('PEXPIRE', words_key, ttl_ms)
  redis.call('PEXPIRE', hidden_key, ttl_ms)
  return true
end

-- Word clouds. The counts of a word cloud are one field (0: entries
-- counted); its entries live in the words sorted set. Redis reads only the
-- top: never the whole set.
local WORD = 8192    -- score units per vote; the first-seen sequence stays below
local TOP = 50       -- entries results carry
local MAX_DISTINCT = 5000
local MAX_HIDDEN = 50
local cloud_poll     -- memo: whether this poll is a word cloud
local function is_cloud()
  if cloud_poll == nil then
    cloud_poll = redis.call('HGET', poll_key, 'kind') == 'wordcloud'
  end
  return cloud_poll
end

-- The top entries as JSON: enough that TOP visible ones are among them,
-- each [text, votes, hidden 0/1], with the distinct count and the hidden
-- entries' totals, so every instance renders the host's view and everyone
-- else's from one message of bounded size.
local function cloud_json()
  local hidden = redis.call('SMEMBERS', hidden_key)
  local is_hidden, hidden_distinct, hidden_votes = {}, 0, 0
  for _, entry in ipairs(hidden) do
    is_hidden[entry] = true
    local score = redis.call('ZSCORE', words_key, entry)
    local votes = score and math.floor(tonumber(score) / WORD) or 0
    if votes > 0 then
      hidden_distinct, hidden_votes = hidden_distinct + 1, hidden_votes + votes
    end
  end
  local raw = redis.call('ZREVRANGEBYSCORE', words_key, '+inf', WORD, 'WITHSCORES',
    'LIMIT', 0, TOP + #hidden)
  local top, visible = {}, 0
  for i = 1, #raw, 2 do
    if visible == TOP then
      break
    end
    local h = is_hidden[raw[i]] and 1 or 0
    visible = visible + 1 - h
    top[#top + 1] = '[' .. cjson.encode(raw[i]) .. ',' .. math.floor(tonumber(raw[i + 1]) / WORD)
      .. ',' .. h .. ']'
  end
  return '{"top":[' .. table.concat(top, ',') .. '],"distinct":'
    .. redis.call('ZCOUNT', words_key, WORD, '+inf') .. ',"hidden_distinct":' .. hidden_distinct
    .. ',"hidden_votes":' .. hidden_votes .. '}'
end

-- Adds DELTA votes to ENTRY; a new entry is first seen now.
local function word_add(entry, delta)
  if redis.call('ZSCORE', words_key, entry) then
    redis.call('ZINCRBY', words_key, delta * WORD, entry)
  else
    redis.call('ZADD', words_key, WORD * (1 + delta) - 1 - redis.call('ZCARD', words_key), entry)
  end
end

-- The entries of a ballot "e<entry>\n<entry>…" (normalised by the caller).
local function entries_of(ballot)
  local list = {}
  for entry in string.gmatch(string.sub(ballot, 2), '[^\n]+') do
    list[#list + 1] = entry
  end
  return list
end

-- Whether counting ENTRIES would pass the distinct-entries cap.
local function overflows(entries)
  local new = 0
  for _, entry in ipairs(entries) do
    if not redis.call('ZSCORE', words_key, entry) then
      new = new + 1
    end
  end
  return new > 0 and redis.call('ZCARD', words_key) + new > MAX_DISTINCT
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
-- A word cloud's message adds its top entries ("cloud"), never the whole set.
local function publish(created_at, version, closed, counts)
  redis.call(PUBLISH, channel, '{"id":"' .. id .. '","created_at":' .. created_at
    .. ',"version":' .. version .. ',"closed":' .. (closed and 'true' or 'false')
    .. ',"counts":[' .. table.concat(counts, ',') .. ']'
    .. (is_cloud() and (',"cloud":' .. cloud_json()) or '') .. '}')
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
      'max_choices', 'allow_change', 'results', 'closes_at', 'listed', 'kind', 'kind_spec')
    for i = 1, 10 do
      reply[#reply + 1] = text[i] or ''
    end
  end
  return reply
end

-- ARGV[6] question, [7] options (JSON array of labels), [8] vote_limit,
-- [9] created_at (unix ms), [10] admin_token_sha256, [11] max_choices,
-- [12] allow_change (0/1), [13] results, [14] closes_at (unix ms, '' for
-- none), [15] listed (0/1), [16] kind, [17] kind_spec (JSON, the
-- instances' to read), [18] scale_min, [19] max_entries, [20..] initial counts.
function ops.create()
  if redis.call('EXISTS', poll_key) == 1 then
    return { 'err', 'exists' }
  end
  redis.call('HSET', poll_key, 'question', ARGV[6], 'options', ARGV[7], 'vote_limit', ARGV[8],
    'closed', '0', 'created_at', ARGV[9], 'admin_token_sha256', ARGV[10],
    'max_choices', ARGV[11], 'allow_change', ARGV[12], 'results', ARGV[13], 'listed', ARGV[15],
    'kind', ARGV[16], 'kind_spec', ARGV[17], 'scale_min', ARGV[18], 'max_entries', ARGV[19])
  if ARGV[14] ~= '' then
    redis.call('HSET', poll_key, 'closes_at', ARGV[14])
  end
  local fields = {}
  for i = 20, #ARGV do
    fields[#fields + 1] = i - 20
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
    local first_created, choice = string.match(stored, '^(%d+),([^,]+),')
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

-- How a ballot is compared in an idempotency record: as it is, or a word
-- cloud's by its SHA-1 (entries may hold commas; the record stays small).
local function record_form(ballot)
  if string.sub(ballot, 1, 1) == 'e' then
    return 'h' .. redis.sha1hex(ballot)
  end
  return ballot
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
    reply[#reply + 1] = first_choice == record_form(ARGV[at]) and ('=' .. stored) or 'poll_closed'
  end
  return reply
end

-- The count changes of BALLOT on a poll of KIND with N counts: a list of
-- {field (1-based), delta}, and a word cloud's entries; or nil and the
-- refusal. Ballots: "0+2" options, "v3" a scale value, "r2+0+1" a ranking
-- (first to last), "e<entry>\n…" word-cloud entries. Ranking counts are
-- points of each option, then first places (N = 2 × options).
local function deltas_of(ballot, n, kind, max_choices, scale_min, max_entries)
  local shape = string.sub(ballot, 1, 1)
  local deltas = {}
  if kind == 'scale' then
    if shape ~= 'v' then
      return nil, 'wrong_shape'
    end
    local index = (tonumber(string.sub(ballot, 2)) or -1) - scale_min + 1
    if index < 1 or index > n then
      return nil, 'bad_value'
    end
    return { { index, 1 } }
  elseif kind == 'ranking' then
    if shape ~= 'r' then
      return nil, 'wrong_shape'
    end
    local m, seen, order = n / 2, {}, {}
    for o in string.gmatch(string.sub(ballot, 2), '%d+') do
      order[#order + 1] = tonumber(o)
    end
    if #order ~= m then
      return nil, 'bad_ranking'
    end
    for rank, o in ipairs(order) do
      if o >= m or seen[o] then
        return nil, 'bad_ranking'
      end
      seen[o] = true
      deltas[rank] = { o + 1, m - rank }
    end
    deltas[#deltas + 1] = { m + order[1] + 1, 1 }
    return deltas
  elseif kind == 'wordcloud' then
    if shape ~= 'e' then
      return nil, 'wrong_shape'
    end
    local entries = entries_of(ballot)
    if #entries > max_entries then
      return nil, 'bad_entries'
    end
    return { { 1, #entries } }, entries
  end
  if not string.match(shape, '%d') then
    return nil, 'wrong_shape'
  end
  local chosen = options_of(ballot, n)
  if not chosen then
    return nil, 'option_not_found'
  elseif #chosen > max_choices then
    return nil, 'too_many_choices'
  end
  for i, index in ipairs(chosen) do
    deltas[i] = { index, 1 }
  end
  return deltas
end

-- A batch of votes, counted in order as if each were its own call.
-- ARGV[6] idempotency record TTL (seconds), ARGV[7] the created_at and
-- ARGV[8] the count of counts of the poll as the caller knows it (saves an
-- HLEN when they are still true), ARGV[9] number of votes, then three per
-- vote: ballot (see deltas_of; options distinct, ascending), voter id,
-- index into KEYS of its idempotency key (0: none).
--
-- The reply is the state BEFORE the batch, then one status per vote:
--   '+'           counted (the caller replays the counts forward),
--   '+BALLOT'     counted, replacing the voter's earlier BALLOT (allow_change),
--   '~'           the voter's ballot already (allow_change): nothing changed,
--   '=RECORD'     replayed: the record of the key's first outcome,
--   an error code refused (option_not_found, too_many_choices, already_voted,
--                 idempotency_key_reused, wrong_shape, bad_value, bad_ranking,
--                 bad_entries, too_many_entries),
-- then, for a word cloud, its top entries after the batch (cloud_json).
-- An idempotency record is "created_at,ballot,version,count0,count1,…": the
-- outcome of the vote without the poll's text. One publish per batch.
function ops.vote()
  local p = redis.call('HMGET', poll_key, 'created_at', 'closed', 'vote_limit', 'touched_at',
    'max_choices', 'allow_change', 'results', 'closes_at', 'kind', 'scale_min', 'max_entries')
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
  local kind, scale_min, max_entries = p[9] or 'choice', tonumber(p[10]) or 0, tonumber(p[11]) or 0
  cloud_poll = kind == 'wordcloud'
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
  local function add(ballot, sign)
    local deltas, entries = deltas_of(ballot, n, kind, max_choices, scale_min, max_entries)
    for _, d in ipairs(deltas or {}) do
      counts[d[1]] = counts[d[1]] + sign * d[2]
      added[d[1]] = (added[d[1]] or 0) + sign * d[2]
    end
    for _, entry in ipairs(entries or {}) do
      word_add(entry, sign)
    end
  end
  for v = 1, tonumber(ARGV[9]) do
    local at = 7 + 3 * v
    local choice, voter, key_at = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
    -- (A word cloud's second result is its entries, not a refusal.)
    local deltas, refusal = deltas_of(choice, n, kind, max_choices, scale_min, max_entries)
    local status
    if not deltas then
      status = refusal
    else
      local stored, first_choice = key_record(key_at, created_at)
      local form = record_form(choice)
      local previous
      if first_choice then
        status = first_choice == form and ('=' .. stored) or 'idempotency_key_reused'
      elseif cloud_poll and overflows(entries_of(choice)) then
        status = 'too_many_entries'
      elseif allow_change then
        previous = redis.call('HGET', voters_key, voter)
        if previous == choice then
          -- Nothing changes, but the key keeps this answer: the same key
          -- with another choice is then refused, not counted.
          status = '~'
          remember_key(key_at, created_at, form, version, counts, idem_ttl)
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
          add(previous, -1)
        end
        add(choice, 1)
        version = version + 1
        counted = counted + 1
        remember_key(key_at, created_at, form, version, counts, idem_ttl)
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
    if not touch(p[4]) and ttl_ms > 0 then
      -- The voters record or the words set may be new: neither may
      -- outlive the poll.
      if new_voters then
        redis.call('PEXPIRE', voters_key, ttl_ms)
      end
      if cloud_poll then
        redis.call('PEXPIRE', words_key, ttl_ms)
      end
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
  redis.call('DEL', poll_key, votes_key, version_key, voters_key, words_key, hidden_key)
  redis.call(PUBLISH, channel, '{"deleted":true,"id":"' .. id .. '"}')
  return { 'ok' }
end

-- ARGV[6] a normalised entry, ARGV[7] '1' to hide it, '0' to show it.
-- A change raises the version and publishes; a no-op changes nothing.
function ops.hide()
  local p = redis.call('HMGET', poll_key, 'created_at', 'kind', 'closed')
  if not p[1] then
    return { 'err', 'poll_not_found' }
  elseif p[2] ~= 'wordcloud' then
    return { 'err', 'not_wordcloud' }
  end
  local changed
  if ARGV[7] == '1' then
    if redis.call('SISMEMBER', hidden_key, ARGV[6]) == 0
        and redis.call('SCARD', hidden_key) >= MAX_HIDDEN then
      return { 'err', 'too_many_hidden' }
    end
    changed = redis.call('SADD', hidden_key, ARGV[6]) == 1
  else
    changed = redis.call('SREM', hidden_key, ARGV[6]) == 1
  end
  local closed = p[3] == '1'
  local counts = counts_of(redis.call('HLEN', votes_key))
  local version = tonumber(redis.call('GET', version_key)) or 0
  if changed then
    version = redis.call('INCR', version_key)
    publish(p[1], version, closed, counts)
    touch(nil)
  end
  return state_reply(p[1], version, closed, counts)
end

-- Operations whose reply ends with a word cloud's top entries (the state
-- after the operation), so the caller renders without a second read.
local ends_with_cloud = { read = true, vote = true, close = true, reopen = true, hide = true }

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
local reply = run()
if reply[1] == 'ok' and ends_with_cloud[op] and is_cloud() then
  reply[#reply + 1] = cloud_json()
end
return reply
