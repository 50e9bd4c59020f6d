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

-- The results object of the API, as JSON.
local function results_json()
  local poll = redis.call('HMGET', poll_key, 'question', 'options', 'vote_limit', 'closed')
  local labels = cjson.decode(poll[2])
  local fields = {}
  for i = 1, #labels do
    fields[i] = tostring(i - 1)
  end
  local counts = redis.call('HMGET', votes_key, unpack(fields))
  local options, total = {}, 0
  for i = 1, #labels do
    local votes = tonumber(counts[i]) or 0
    total = total + votes
    options[i] = { id = i - 1, label = labels[i], votes = votes }
  end
  return cjson.encode({
    id = id,
    question = poll[1],
    vote_limit = poll[3],
    closed = poll[4] == '1',
    version = tonumber(redis.call('GET', version_key)) or 0,
    total = total,
    options = options,
  })
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
  if not exists() then
    return { 'err', 'poll_not_found' }
  end
  local poll = redis.call('HMGET', poll_key, 'closed', 'vote_limit', 'created_at')
  if poll[1] == '1' then
    return { 'err', 'poll_closed' }
  end
  local option = ARGV[4]
  if redis.call('HEXISTS', votes_key, option) == 0 then
    return { 'err', 'option_not_found' }
  end
  local idem_key = KEYS[5]
  if idem_key then
    local stored = redis.call('GET', idem_key)
    if stored then
      local record = cjson.decode(stored)
      -- A record left by a deleted poll of the same id does not count.
      if record.poll_created_at == poll[3] then
        if record.option ~= option then
          return { 'err', 'idempotency_key_reused' }
        end
        return { 'ok', record.results }
      end
    end
  end
  if poll[2] == 'one_per_voter' and redis.call('SADD', voters_key, ARGV[5]) == 0 then
    return { 'err', 'already_voted' }
  end
  redis.call('HINCRBY', votes_key, option, 1)
  redis.call('INCR', version_key)
  local results = results_json()
  redis.call('PUBLISH', channel, results)
  if idem_key then
    local record = cjson.encode({ option = option, poll_created_at = poll[3], results = results })
    redis.call('SET', idem_key, record, 'EX', ARGV[6])
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
