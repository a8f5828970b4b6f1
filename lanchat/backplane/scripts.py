"""The backplane's Lua scripts: each runs atomically inside Redis (EVALSHA), so what must happen
together does (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).
Plain text, no I/O; link.py registers them with redis-py, which loads them again after a Redis
restart (NOSCRIPT). Every key a script touches is passed in KEYS (entries.Keys: one hash tag).
"""

from __future__ import annotations

# Create the room's meta hash unless it exists: a new history (epoch) whose seqs start after
# ARGV[2] (a relay that knew an earlier, lost history keeps its seqs growing). Returns
# {epoch, seq} as they are now.
#   KEYS[1] meta    ARGV[1] a new epoch    ARGV[2] the seq to start after
INIT = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'seq', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
"""

# Append a batch of one relay's events, giving each the next seq in the same step as its XADD:
# the seq is the stream's order as a dense count, the same for every reader. Refused (an error
# starting EPOCH) when the history is not the one the relay knows: Redis lost its data, and the
# relay must learn of the new history before it adds to it.
#   KEYS[1] stream  KEYS[2] meta
#   ARGV[1] MAXLEN (approximate, ~)  ARGV[2] epoch  ARGV[3] run  ARGV[4] relay
#   then lseq, event for each entry
# Returns the seq of the last entry.
APPEND = """
local epoch = redis.call('HGET', KEYS[2], 'epoch')
if epoch ~= ARGV[2] then
  return redis.error_reply('EPOCH the history is ' .. tostring(epoch))
end
local seq = tonumber(redis.call('HGET', KEYS[2], 'seq') or '0')
for i = 5, #ARGV, 2 do
  seq = seq + 1
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
             'seq', seq, 'run', ARGV[3], 'lseq', ARGV[i], 'relay', ARGV[4],
             'event', ARGV[i + 1])
end
redis.call('HSET', KEYS[2], 'seq', seq)
return seq
"""

# Give and free names, in order. A name is free when nobody holds it, this relay holds it (an
# earlier run of it, say), or its holder's heartbeat has expired (a dead relay). Returns, for
# every name another live relay holds, the name key and the holder's value.
#   KEYS[1] names hash
#   ARGV[1] this relay's name  ARGV[2] the start of heartbeat keys (ends with ':alive:')
#   then op, key, value triples: op '+' gives the key (value: names_value), '-' frees it
NAMES = """
local taken = {}
for i = 3, #ARGV, 3 do
  local op, key, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local holder = redis.call('HGET', KEYS[1], key)
  local relay = nil
  if holder then
    local ok, held = pcall(cjson.decode, holder)
    if ok and type(held) == 'table' then relay = held['relay'] end
  end
  if op == '-' then
    if relay == ARGV[1] then redis.call('HDEL', KEYS[1], key) end
  elseif relay == nil or relay == ARGV[1]
      or redis.call('EXISTS', ARGV[2] .. relay) == 0 then
    redis.call('HSET', KEYS[1], key, value)
  else
    table.insert(taken, key)
    table.insert(taken, holder)
  end
end
return taken
"""
