"""The Lua scripts :class:`~ciris_actors.fleet.RedisFleet` runs on the server.

Each script is one atomic step on the server's clock (``TIME``), with the semantics of
:class:`~ciris_actors.fleet.MemoryFleet`. The keys of one provider share the namespace's
hash tag, so a fleet lives on one cluster slot:

- ``{ns}:v:<provider>``: the latest verdict, a JSON object (``disabled`` stands for an
  infinite ``until``, which JSON cannot say; ``expires`` is the key's own expiry, checked
  to the microsecond); expires ``VERDICT_LINGER`` after the deadline, ``DISABLED_TTL``
  after a disable, ``VERDICT_LINGER`` after a close (kept so that a node that missed the
  close reads it, and a late report cannot undo it).
- ``{ns}:votes:<provider>``: a sorted set, node -> time of its ordinary open; expires one
  quorum window after the newest vote.
- ``{ns}:probe:<provider>``: ``"<expiry>|<node>"``, the half-open probe claim; expires
  with the claim.
- ``{ns}:epoch:<provider>``: the last epoch handed out; lives as long as the verdict it
  numbered (at least ``VERDICT_LINGER``).
- ``{ns}:index``: a sorted set, provider -> its verdict key's expiry, for full reads;
  lives as long as its last member.

Numbers cross as ``%.17g`` strings (exact for doubles), never through cjson, which
rounds to 14 digits.
"""

from __future__ import annotations

__all__ = ["CLAIM", "READ", "REPORT"]

_PRELUDE = """
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = now_us / 1000000
local now_ms = math.floor(now_us / 1000)
local function num(x) return string.format('%.17g', x) end
local function extend(key, at)
  local ms = math.ceil(at * 1000)
  local pttl = redis.call('PTTL', key)
  if pttl == -1 or (pttl >= 0 and now_ms + pttl < ms) then
    redis.call('PEXPIREAT', key, ms)
  end
end
local function load(key)
  local raw = redis.call('GET', key)
  if not raw then return nil, nil end
  -- A value that is not one of ours (written by hand, say) counts as no verdict, so
  -- that it cannot fail every read and report of the fleet.
  local ok, v = pcall(cjson.decode, raw)
  if not ok or type(v) ~= 'table' or type(v.expires) ~= 'number' then return nil, nil end
  if v.expires <= now then return nil, nil end
  return v, raw
end
"""

#: KEYS: verdict, votes, probe, epoch, index. ARGV: provider, kind, duration, reason,
#: report epoch, node, quorum, quorum window, linger, disabled ttl, channel.
#: Returns {now, verdict JSON or ""}.
REPORT = (
    _PRELUDE
    + """
local provider, kind, reason, node = ARGV[1], ARGV[2], ARGV[4], ARGV[6]
local duration, report_epoch = tonumber(ARGV[3]), tonumber(ARGV[5])
local quorum, window = tonumber(ARGV[7]), tonumber(ARGV[8])
local linger, disabled_ttl, channel = tonumber(ARGV[9]), tonumber(ARGV[10]), ARGV[11]
local cur, cur_raw = load(KEYS[1])
if cur and (cur.kind == 'closed' or cur.kind == 'reset') then
  cur, cur_raw = nil, nil  -- a close: no verdict in force
end

local function publish(until_)
  local last = tonumber(redis.call('GET', KEYS[4]) or '0')
  local epoch = math.max(last + 1, now_us)
  local opens = kind ~= 'closed' and kind ~= 'reset'
  local disabled = until_ == math.huge
  local expires = now + linger
  if opens then
    if disabled then expires = now + disabled_ttl else expires = until_ + linger end
  end
  local v = '{"provider":' .. cjson.encode(provider)
    .. ',"epoch":' .. string.format('%.0f', epoch)
    .. ',"kind":' .. cjson.encode(kind)
    .. ',"until":' .. (disabled and '0' or num(until_))
    .. ',"disabled":' .. (disabled and 'true' or 'false')
    .. ',"reason":' .. cjson.encode(reason)
    .. ',"node":' .. cjson.encode(node)
    .. ',"at":' .. num(now)
    .. ',"expires":' .. num(expires) .. '}'
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', num(now))
  -- A close is kept (and read) as long as a verdict lingers, so that a node that missed
  -- its push learns of it, and a late report cannot undo it.
  redis.call('SET', KEYS[1], v)
  redis.call('PEXPIREAT', KEYS[1], math.ceil(expires * 1000))
  redis.call('ZADD', KEYS[5], num(expires), provider)
  local top = redis.call('ZRANGE', KEYS[5], -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', KEYS[5], math.ceil(tonumber(top[2]) * 1000)) end
  redis.call('DEL', KEYS[3])
  redis.call('SET', KEYS[4], string.format('%.0f', epoch), 'KEEPTTL')
  extend(KEYS[4], expires)
  redis.call('PUBLISH', channel, v)
  return v
end

if kind == 'reset' then
  -- A reset does not undo a verdict its node had not seen.
  if cur and cur.epoch > report_epoch and cur.node ~= node then return {num(now), cur_raw} end
  redis.call('DEL', KEYS[2])
  publish(0)
  return {num(now), ''}
end
if kind == 'closed' then
  if cur and cur.epoch ~= report_epoch then return {num(now), cur_raw} end
  redis.call('DEL', KEYS[2])
  if cur then publish(0) end
  redis.call('DEL', KEYS[3])
  return {num(now), ''}
end
if kind == 'probe_failed' and not (cur and cur.epoch == report_epoch) then
  -- The verdict the probe was for is gone or replaced: one node's ordinary open.
  kind = 'failure'
end
if kind == 'failure' then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', num(now - window))
  redis.call('ZADD', KEYS[2], num(now), node)
  redis.call('PEXPIREAT', KEYS[2], math.ceil((now + window) * 1000))
  if redis.call('ZCARD', KEYS[2]) < quorum then return {num(now), cur_raw or ''} end
end
if cur and cur.disabled then
  if kind == 'disabled' then
    -- Reported again: it lives on (the key, its place in the index, its epoch).
    local expires = now + disabled_ttl
    cur.expires = expires
    local raw = string.gsub(cur_raw, '"expires":[^,}]*', '"expires":' .. num(expires))
    redis.call('SET', KEYS[1], raw)
    redis.call('PEXPIREAT', KEYS[1], math.ceil(expires * 1000))
    redis.call('ZADD', KEYS[5], num(expires), provider)
    local top = redis.call('ZRANGE', KEYS[5], -1, -1, 'WITHSCORES')
    if top[2] then redis.call('PEXPIREAT', KEYS[5], math.ceil(tonumber(top[2]) * 1000)) end
    extend(KEYS[4], expires)
    return {num(now), raw}
  end
  return {num(now), cur_raw}
end
local until_ = now + duration
if kind == 'disabled' then until_ = math.huge end
if cur and cur['until'] >= until_ then return {num(now), cur_raw} end
return {num(now), publish(until_)}
"""
)

#: KEYS: verdict, probe, index, epoch. ARGV: epoch, node, ttl, linger, provider.
#: Returns {now, won "1"/"0", holder or "", remaining}.
CLAIM = (
    _PRELUDE
    + """
local epoch, node, ttl = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local linger, provider = tonumber(ARGV[4]), ARGV[5]
local cur, cur_raw = load(KEYS[1])
if not cur or cur.kind == 'closed' or cur.kind == 'reset' or cur.epoch ~= epoch then
  return {num(now), '0', '', '0'}
end
local until_ = cur['until']
if cur.disabled then until_ = math.huge end
if until_ > now then return {num(now), '0', '', num(until_ - now)} end
local probe = redis.call('GET', KEYS[2])
if probe then
  local bar = string.find(probe, '|', 1, true)
  local expiry, holder = tonumber(string.sub(probe, 1, bar - 1)), string.sub(probe, bar + 1)
  if expiry > now and holder ~= node then
    return {num(now), '0', holder, num(expiry - now)}
  end
end
local expiry = now + ttl
redis.call('SET', KEYS[2], num(expiry) .. '|' .. node)
redis.call('PEXPIREAT', KEYS[2], math.ceil(expiry * 1000))
-- The verdict stays in force until the probe's result: it lives while it is claimed.
local expires = expiry + linger
if expires > cur.expires then
  local raw = string.gsub(cur_raw, '"expires":[^,}]*', '"expires":' .. num(expires))
  redis.call('SET', KEYS[1], raw)
  redis.call('PEXPIREAT', KEYS[1], math.ceil(expires * 1000))
  redis.call('ZADD', KEYS[3], num(expires), provider)
  local top = redis.call('ZRANGE', KEYS[3], -1, -1, 'WITHSCORES')
  if top[2] then redis.call('PEXPIREAT', KEYS[3], math.ceil(tonumber(top[2]) * 1000)) end
  extend(KEYS[4], expires)
end
return {num(now), '1', node, num(ttl)}
"""
)

#: KEYS: index. ARGV: the verdict keys' prefix. Returns {now, verdict JSON...}.
READ = (
    _PRELUDE
    + """
local out = {num(now)}
for _, provider in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. num(now), '+inf')) do
  local _, raw = load(ARGV[1] .. provider)
  if raw then table.insert(out, raw) end
end
return out
"""
)
