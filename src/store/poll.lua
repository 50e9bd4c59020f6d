-- Every operation on one poll, run atomically by Redis (EVALSHA; the client
-- loads the script again when Redis answers NOSCRIPT, e.g. after a restart).
-- One script for all of them so that reads, votes and closes share one
-- results encoder: what a client reads and what pub/sub carries have the
-- same shape. All keys of a poll share the hash tag {ID}, so this also runs
-- on a Redis Cluster.
--
-- KEYS[1] poll hash      PREFIX:poll:{ID}
-- KEYS[2] votes hash     PREFIX:poll:{ID}:votes     option index -> count
-- KEYS[3] version        PREFIX:poll:{ID}:version
-- KEYS[4] voters set     PREFIX:poll:{ID}:voters
-- KEYS[5] idempotency    PREFIX:poll:{ID}:idem:{KEY} (votes with a key only)
-- ARGV[1] operation: get | create | vote | close | delete
-- ARGV[2] poll id, ARGV[3] the poll's changes channel; more per operation.
--
-- Replies are {"ok", payload} or {"err", code}.

local poll_key, votes_key, version_key, voters_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local op, id, channel = ARGV[1], ARGV[2], ARGV[3]

local function exists()
  return redis.call('EXISTS', poll_key) == 1
end

-- The poll's hash, read once; nil when the poll does not exist.
local function read_poll()
  local p = redis.call('HMGET', poll_key, 'question', 'options', 'vote_limit', 'closed', 'created_at')
  if not p[2] then
    return nil
  end
  return {
    question = p[1],
    labels = cjson.decode(p[2]),
    vote_limit = p[3],
    closed = p[4] == '1',
    created_at = p[5],
  }
end

-- The current count of each option, in option order.
local function current_counts(n)
  local fields = {}
  for i = 1, n do
    fields[i] = tostring(i - 1)
  end
  local raw = redis.call('HMGET', votes_key, unpack(fields))
  local counts = {}
  for i = 1, n do
    counts[i] = tonumber(raw[i]) or 0
  end
  return counts
end

-- The results object of the API, as JSON, for the given counts and version.
local function encode(poll, counts, version, closed)
  local options, total = {}, 0
  for i = 1, #poll.labels do
    local votes = counts[i] or 0
    total = total + votes
    options[i] = { id = i - 1, label = poll.labels[i], votes = votes }
  end
  return cjson.encode({
    id = id,
    question = poll.question,
    vote_limit = poll.vote_limit,
    closed = closed,
    version = version,
    total = total,
    options = options,
  })
end

-- The current results, as JSON.
local function results_json(poll)
  poll = poll or read_poll()
  local version = tonumber(redis.call('GET', version_key)) or 0
  return encode(poll, current_counts(#poll.labels), version, poll.closed)
end

-- An idempotency record is "created_at,option,version,count0,count1,…": the
-- outcome of the vote without the poll's text, which never changes, so a
-- record costs tens of bytes however long the question and labels are.
local function record_of(poll, option, version, counts)
  return poll.created_at .. ',' .. option .. ',' .. version .. ',' .. table.concat(counts, ',')
end

-- The first outcome a record stands for, or nil when it was left by a
-- deleted poll of the same id; the second value is the record's option.
local function replay(poll, record)
  local fields = {}
  for field in string.gmatch(record, '[^,]+') do
    fields[#fields + 1] = field
  end
  if fields[1] ~= poll.created_at then
    return nil
  end
  local counts = {}
  for i = 4, #fields do
    counts[#counts + 1] = tonumber(fields[i])
  end
  -- A vote is only counted on an open poll, so its outcome was open.
  return encode(poll, counts, tonumber(fields[3]), false), fields[2]
end

local ops = {}

function ops.get()
  if not exists() then
    return { 'err', 'poll_not_found' }
  end
  return { 'ok', results_json() }
end

-- ARGV[4] question, [5] options (JSON array of labels), [6] vote_limit,
-- [7] created_at (unix ms), [8] admin_token_sha256, [9..] initial counts.
function ops.create()
  if exists() then
    return { 'err', 'exists' }
  end
  redis.call('HSET', poll_key, 'question', ARGV[4], 'options', ARGV[5], 'vote_limit', ARGV[6],
    'closed', '0', 'created_at', ARGV[7], 'admin_token_sha256', ARGV[8])
  local counts = {}
  for i = 9, #ARGV do
    counts[#counts + 1] = tostring(i - 9)
    counts[#counts + 1] = ARGV[i]
  end
  redis.call('HSET', votes_key, unpack(counts))
  redis.call('SET', version_key, 0)
  return { 'ok', results_json() }
end

-- ARGV[4] option index, [5] voter id, [6] idempotency record TTL (seconds).
-- Checks in the order of the memory store: poll, closed, option, key, voter.
function ops.vote()
  local poll = read_poll()
  if not poll then
    return { 'err', 'poll_not_found' }
  end
  if poll.closed then
    return { 'err', 'poll_closed' }
  end
  local option = ARGV[4]
  if tonumber(option) >= #poll.labels then
    return { 'err', 'option_not_found' }
  end
  local idem_key = KEYS[5]
  if idem_key then
    local stored = redis.call('GET', idem_key)
    if stored then
      local first, first_option = replay(poll, stored)
      if first then
        if first_option ~= option then
          return { 'err', 'idempotency_key_reused' }
        end
        return { 'ok', first }
      end
    end
  end
  if poll.vote_limit == 'one_per_voter' and redis.call('SADD', voters_key, ARGV[5]) == 0 then
    return { 'err', 'already_voted' }
  end
  redis.call('HINCRBY', votes_key, option, 1)
  local version = redis.call('INCR', version_key)
  local counts = current_counts(#poll.labels)
  local results = encode(poll, counts, version, false)
  redis.call('PUBLISH', channel, results)
  if idem_key then
    redis.call('SET', idem_key, record_of(poll, option, version, counts), 'EX', ARGV[6])
  end
  return { 'ok', results }
end

-- Closing a closed poll changes nothing and publishes nothing.
function ops.close()
  if not exists() then
    return { 'err', 'poll_not_found' }
  end
  if redis.call('HGET', poll_key, 'closed') == '1' then
    return { 'ok', results_json() }
  end
  redis.call('HSET', poll_key, 'closed', '1')
  redis.call('INCR', version_key)
  local results = results_json()
  redis.call('PUBLISH', channel, results)
  return { 'ok', results }
end

-- Idempotency records are left to expire: they cannot be found without a
-- scan, and a vote ignores those of an earlier poll with the same id.
function ops.delete()
  if not exists() then
    return { 'err', 'poll_not_found' }
  end
  redis.call('DEL', poll_key, votes_key, version_key, voters_key)
  redis.call('PUBLISH', channel, cjson.encode({ deleted = true, id = id }))
  return { 'ok', '' }
end

local run = ops[op]
if not run then
  return redis.error_reply('unknown operation')
end
return run()
