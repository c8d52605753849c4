"""The Lua scripts the Redis store runs. Each is one round trip and touches keys of one hash slot.

Times come from Redis (``TIME``), never from the callers, so replicas on different hosts agree on the
window without synchronised clocks; callers only ever exchange *durations* with Redis.

Key layout (``ns`` is the namespace setting, ``{id}`` a Redis Cluster hash tag):

* ``ns{id}:w``  hash: ``r:<second>`` requests and ``t:<second>`` tokens admitted in that second
  (Redis time), the seconds ``now - 60 .. now``: the same 61-bucket window as
  :class:`routerd.routing.usage.UsageWindow`, so the bound "no 60 s span holds more than rpm" holds
  for the sum of all processes.
* ``ns{id}:p``  string: the process holding the half-open probe (``SET NX PX``).
* ``ns{shared}:cooldowns``  hash: deployment id -> ``<until ms>|<reason>`` (Redis time).
* ``ns{shared}:load``  hash: process id -> ``<ms>|<json {id: [in_flight, latency, ttft]}>``.
* ``ns{id}:f``  hash: failures counted toward ``allowed_fails``, per error kind (index), expiring with
  the failure window.
* ``ns{access}:w:<scope>``  hash: the window of a client key or team (``key:<alias>``, ``team:<id>``),
  laid out as a deployment's. Every access key shares the ``{access}`` hash tag, so one script checks a
  key and its team together, on a Cluster too.
* ``ns{access}:par:<scope>``  hash: parallel-request slots held per process: ``<process>`` -> count and
  ``<process>@`` -> expiry (ms, Redis time), renewed by the process's sync: a process that dies stops
  renewing, and its slots are freed when the expiry passes.
"""

from __future__ import annotations

__all__ = [
    "ACCESS",
    "ADJUST",
    "ADJUST_MANY",
    "ADMIT",
    "COOLDOWN",
    "FAILS",
    "RECOVER",
    "REFUND",
    "RELEASE",
    "SEED",
    "SLOTS_FREE",
    "SLOTS_KEEP",
    "SYNC",
]

_PRELUDE = """
if redis.replicate_commands then pcall(redis.replicate_commands) end
local t = redis.call('TIME')
local now = tonumber(t[1])
local now_ms = now * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# A usage window hash ('r:<second>' calls, 't:<second>' tokens): its last 60 seconds per second and
# summed; older fields are deleted on the way. ADMIT (deployments) and ACCESS (keys and teams) read
# their windows through it.
_READ_WINDOW = """
local function read_window(key)
  local flat = redis.call('HGETALL', key)
  local reqs, toks, req, tok, stale = {}, {}, 0, 0, {}
  for i = 1, #flat, 2 do
    local sec, v = tonumber(string.sub(flat[i], 3)), tonumber(flat[i + 1])
    if sec < now - 60 then
      stale[#stale + 1] = flat[i]
    elseif string.sub(flat[i], 1, 1) == 'r' then
      reqs[sec] = v; req = req + v
    else
      toks[sec] = v; tok = tok + v
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  return reqs, toks, req, tok
end
"""

# KEYS: window, probe. ARGV: rpm (-1: none), tpm (-1: none), tokens, probe lease ms (0: not a probe),
# owner, calls (the attempt's upstream calls: more than 1 for a fanned-out text completion), extra
# calls to reserve ahead (a lease; 0: none; only with an rpm limit), extra tokens to reserve ahead (a
# lease; 0: none; only with a tpm limit). Returns {1, granted calls, ms left in this second, this
# second, granted extra tokens}: admitted (granted calls and tokens + extra tokens counted now); {0,
# ms}: window full for ms more; {-1, ms}: another process probes. "Fits" is UsageWindow's rule: an
# attempt larger than the limit still fits an empty window. Reservations never go past the limit.
ADMIT = (
    _PRELUDE
    + _READ_WINDOW
    + """
local rpm, tpm, tokens = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local lease = tonumber(ARGV[4])
if lease > 0 then
  if not redis.call('SET', KEYS[2], ARGV[5], 'NX', 'PX', lease) then
    return {-1, math.max(redis.call('PTTL', KEYS[2]), 1)}
  end
end
local left_ms = 1000 - (now_ms - now * 1000)
if rpm < 0 and tpm < 0 then return {1, 1, left_ms, now} end
local calls, extra = tonumber(ARGV[6]), tonumber(ARGV[7])
local function fits(req, tok)
  if rpm >= 0 and req + calls > rpm and req > 0 then return false end
  return tpm < 0 or tok <= 0 or tok + tokens <= tpm
end
local reqs, toks, req, tok = read_window(KEYS[1])
if fits(req, tok) then
  local granted, more = calls, 0
  if extra > 0 and rpm >= 0 then granted = calls + math.max(0, math.min(extra, rpm - req - calls)) end
  local extra_tokens = tonumber(ARGV[8] or '0')
  if extra_tokens > 0 and tpm >= 0 then more = math.max(0, math.min(extra_tokens, tpm - tok - tokens)) end
  redis.call('HINCRBY', KEYS[1], 'r:' .. now, granted)
  if tokens + more > 0 then redis.call('HINCRBY', KEYS[1], 't:' .. now, tokens + more) end
  redis.call('PEXPIRE', KEYS[1], 62000)
  return {1, granted, left_ms, now, more}
end
if lease > 0 then redis.call('DEL', KEYS[2]) end
for s = now - 60, now do
  req = req - (reqs[s] or 0); tok = tok - (toks[s] or 0)
  if fits(req, tok) then return {0, math.max((s + 61) * 1000 - now_ms, 1)} end
end
return {0, 61000}
"""
)

# KEYS: window. ARGV: pairs (age in seconds, token delta): correct tokens counted ``age`` seconds ago.
ADJUST = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  local age = tonumber(ARGV[i])
  if age <= 60 then
    local field = 't:' .. (now - age)
    if redis.call('HINCRBY', KEYS[1], field, tonumber(ARGV[i + 1])) < 0 then
      redis.call('HSET', KEYS[1], field, 0)
    end
  end
end
return 1
"""
)

# KEYS: window. ARGV: second (Redis time), calls, tokens: give back the unused part of an expired lease.
REFUND = """
for i, kind in ipairs({'r:', 't:'}) do
  local amount = tonumber(ARGV[i + 1] or '0')
  if amount > 0 then
    local field = kind .. ARGV[1]
    local left = tonumber(redis.call('HGET', KEYS[1], field) or '0')
    if left > 0 then redis.call('HSET', KEYS[1], field, math.max(left - amount, 0)) end
  end
end
return 1
"""

# KEYS: window. ARGV: triples (age, requests, tokens): a process's local counts, after Redis came back.
SEED = (
    _PRELUDE
    + """
for i = 1, #ARGV, 3 do
  local sec = now - tonumber(ARGV[i])
  redis.call('HINCRBY', KEYS[1], 'r:' .. sec, tonumber(ARGV[i + 1]))
  if tonumber(ARGV[i + 2]) > 0 then redis.call('HINCRBY', KEYS[1], 't:' .. sec, tonumber(ARGV[i + 2])) end
end
redis.call('PEXPIRE', KEYS[1], 62000)
return 1
"""
)

# KEYS: cooldowns. ARGV: id, ms, reason, channel, origin. Deadlines only move later. (The probe key
# lives in the deployment's hash slot, so the caller deletes it separately.)
COOLDOWN = (
    _PRELUDE
    + """
local deadline = now_ms + tonumber(ARGV[2])
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old then
  local old_deadline = tonumber(string.sub(old, 1, string.find(old, '|', 1, true) - 1))
  if old_deadline >= deadline then deadline = old_deadline end
end
redis.call('HSET', KEYS[1], ARGV[1], deadline .. '|' .. ARGV[3])
redis.call('PUBLISH', ARGV[4], ARGV[5] .. '|c|' .. ARGV[1] .. '|' .. (deadline - now_ms) .. '|' .. ARGV[3])
return deadline - now_ms
"""
)

# KEYS: cooldowns. ARGV: id, channel, origin. The probe succeeded: everyone may send again.
RECOVER = """
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('PUBLISH', ARGV[2], ARGV[3] .. '|h|' .. ARGV[1])
return 1
"""

# KEYS: probe. ARGV: owner. An abandoned probe: let another process probe now.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

# KEYS: cooldowns, load. ARGV: process id, its load (json, '' for none), staleness ms.
# Returns {now ms, {id, remaining ms, reason, ...}, {payload of each other live process, ...}}.
SYNC = (
    _PRELUDE
    + """
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[2], ARGV[1], now_ms .. '|' .. ARGV[2])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
local cooling, expired = {}, {}
local flat = redis.call('HGETALL', KEYS[1])
for i = 1, #flat, 2 do
  local v = flat[i + 1]
  local bar = string.find(v, '|', 1, true)
  local left = tonumber(string.sub(v, 1, bar - 1)) - now_ms
  if left <= 0 then
    expired[#expired + 1] = flat[i]
  else
    cooling[#cooling + 1] = flat[i]; cooling[#cooling + 1] = left; cooling[#cooling + 1] = string.sub(v, bar + 1)
  end
end
if #expired > 0 then redis.call('HDEL', KEYS[1], unpack(expired)) end
local peers, gone = {}, {}
flat = redis.call('HGETALL', KEYS[2])
for i = 1, #flat, 2 do
  local v = flat[i + 1]
  local bar = string.find(v, '|', 1, true)
  if tonumber(string.sub(v, 1, bar - 1)) < now_ms - tonumber(ARGV[3]) then
    gone[#gone + 1] = flat[i]
  elseif flat[i] ~= ARGV[1] then
    peers[#peers + 1] = string.sub(v, bar + 1)
  end
end
if #gone > 0 then redis.call('HDEL', KEYS[2], unpack(gone)) end
return {now_ms, cooling, peers}
"""
)

# KEYS: per scope (a key, then its team): window, slots. ARGV: owner, slot expiry ms, then 9 per scope:
# rpm (-1: not checked now), tpm (-1), calls (0: not counted now: its lease served), tokens, extra calls,
# extra tokens (a lease), parallel limit (-1: none), slots needed (0: none), slots wanted (needed plus
# spare). Every scope is checked before any is counted, so a refused call leaves no trace. Returns
# {1, ms left in this second, this second, then per scope: granted calls, extra tokens, slots} or
# {0, scope number (1-based), 'r' | 't' | 'p', ms until it may fit}.
ACCESS = (
    _PRELUDE
    + _READ_WINDOW
    + """
local owner, ttl = ARGV[1], tonumber(ARGV[2])
local n = #KEYS / 2
local left_ms = 1000 - (now_ms - now * 1000)
local seen = {}
for i = 1, n do
  local b = 2 + (i - 1) * 9
  local rpm, tpm, calls, tokens = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local req, tok = 0, 0
  if calls > 0 and (rpm >= 0 or tpm >= 0) then
    local reqs, toks
    reqs, toks, req, tok = read_window(KEYS[2 * i - 1])
    local function over(r, t)
      if rpm >= 0 and r + calls > rpm and r > 0 then return 'r' end
      if tpm >= 0 and t > 0 and t + tokens > tpm then return 't' end
      return nil
    end
    local why = over(req, tok)
    if why then
      local r, t = req, tok
      for s = now - 60, now do
        r = r - (reqs[s] or 0); t = t - (toks[s] or 0)
        if not over(r, t) then return {0, i, why, math.max((s + 61) * 1000 - now_ms, 1)} end
      end
      return {0, i, why, 61000}
    end
  end
  local par, need = tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8])
  local held = 0
  if par >= 0 and need > 0 then
    local flat = redis.call('HGETALL', KEYS[2 * i])
    local counts, expiry = {}, {}
    for j = 1, #flat, 2 do
      local f = flat[j]
      if string.sub(f, -1) == '@' then expiry[string.sub(f, 1, -2)] = tonumber(flat[j + 1])
      else counts[f] = tonumber(flat[j + 1]) end
    end
    for who, count in pairs(counts) do
      if (expiry[who] or 0) < now_ms then
        redis.call('HDEL', KEYS[2 * i], who, who .. '@')
      else
        held = held + count
      end
    end
    if held + need > par then return {0, i, 'p', 1000} end
  end
  seen[i] = {req, tok, held}
end
local out = {1, left_ms, now}
for i = 1, n do
  local b = 2 + (i - 1) * 9
  local rpm, tpm, calls, tokens = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), tonumber(ARGV[b + 4])
  local extra, extra_tokens = tonumber(ARGV[b + 5]), tonumber(ARGV[b + 6])
  local par, need, want = tonumber(ARGV[b + 7]), tonumber(ARGV[b + 8]), tonumber(ARGV[b + 9])
  local req, tok, held = seen[i][1], seen[i][2], seen[i][3]
  local granted, more, slots = 0, 0, 0
  if calls > 0 and (rpm >= 0 or tpm >= 0) then
    granted = calls
    if extra > 0 and rpm >= 0 then granted = calls + math.max(0, math.min(extra, rpm - req - calls)) end
    if extra_tokens > 0 and tpm >= 0 then more = math.max(0, math.min(extra_tokens, tpm - tok - tokens)) end
    redis.call('HINCRBY', KEYS[2 * i - 1], 'r:' .. now, granted)
    if tokens + more > 0 then redis.call('HINCRBY', KEYS[2 * i - 1], 't:' .. now, tokens + more) end
    redis.call('PEXPIRE', KEYS[2 * i - 1], 62000)
  end
  if par >= 0 and need > 0 then
    slots = math.max(need, math.min(want, par - held))
    redis.call('HINCRBY', KEYS[2 * i], owner, slots)
    redis.call('HSET', KEYS[2 * i], owner .. '@', now_ms + ttl)
    redis.call('PEXPIRE', KEYS[2 * i], 2 * ttl)
  end
  out[#out + 1] = granted; out[#out + 1] = more; out[#out + 1] = slots
end
return out
"""
)

# KEYS: slots. ARGV: owner, count, expiry ms: this process gives back ``count`` parallel slots.
SLOTS_FREE = (
    _PRELUDE
    + """
local left = redis.call('HINCRBY', KEYS[1], ARGV[1], -tonumber(ARGV[2]))
if left <= 0 then
  redis.call('HDEL', KEYS[1], ARGV[1], ARGV[1] .. '@')
else
  redis.call('HSET', KEYS[1], ARGV[1] .. '@', now_ms + tonumber(ARGV[3]))
end
return left
"""
)

# KEYS: slots of every scope where this process holds some. ARGV: owner, expiry ms: renew them.
SLOTS_KEEP = (
    _PRELUDE
    + """
for i = 1, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 1 then
    redis.call('HSET', KEYS[i], ARGV[1] .. '@', now_ms + tonumber(ARGV[2]))
    redis.call('PEXPIRE', KEYS[i], 2 * tonumber(ARGV[2]))
  end
end
return 1
"""
)

# KEYS: failures. ARGV: window ms, then the increment per error kind (index order). Returns the
# fleet's counts per kind in the current window (which starts at the first failure counted).
FAILS = """
local out = {}
for i = 2, #ARGV do
  local add = tonumber(ARGV[i])
  if add > 0 then
    out[#out + 1] = redis.call('HINCRBY', KEYS[1], tostring(i - 2), add)
  else
    out[#out + 1] = tonumber(redis.call('HGET', KEYS[1], tostring(i - 2)) or '0')
  end
end
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1])) end
return out
"""

# KEYS: windows (all in one hash slot: the {access} ones). ARGV: triples (key number, age in seconds,
# token delta): ADJUST for several windows in one round trip.
ADJUST_MANY = (
    _PRELUDE
    + """
for i = 1, #ARGV, 3 do
  local key, age = KEYS[tonumber(ARGV[i])], tonumber(ARGV[i + 1])
  if age <= 60 and redis.call('EXISTS', key) == 1 then
    local field = 't:' .. (now - age)
    if redis.call('HINCRBY', key, field, tonumber(ARGV[i + 2])) < 0 then redis.call('HSET', key, field, 0) end
  end
end
return 1
"""
)
