// redis_functions.cpp: the Lua library of redis_functions.h.
//
// The arithmetic mirrors window.cpp line by line (buckets, alignment after
// clock jumps, room and retry time, saturation, refunds by bucket number);
// the store's parameterised unit tests feed both the same events and compare
// the answers. Lua numbers are doubles: every value here (milliseconds since
// the epoch, bucket numbers, counts of at most 61 * (2^32-1)) is an integer
// below 2^53, so they are exact; numbers go to Redis commands as strings made
// by string.format('%d'), never through Lua's %.14g.

#include "redis_functions.h"

namespace redis_functions {

namespace {

// @V@ stands for the digest of this text.
constexpr std::string_view lua = R"lua(#!lua name=qmail_throttle_1_@V@

local SLOTS = 61            -- window.h: 60 buckets and the one in progress
local MAX_COUNT = 4294967295
local NEVER = -1
local MARGIN = 60000        -- ms a key outlives the last event it counts

local function fmt(n) return string.format('%d', n) end

local function clock(arg)
  local t = tonumber(arg)
  if t ~= nil and t > 0 then return t end
  local now = redis.call('TIME')
  return tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
end

local function width_of(seconds)
  return math.floor((seconds * 1000 + 59) / 60)
end

local function bucket_of(now, width)
  local b = math.floor(now / width)
  if b * width > now then b = b - 1 elseif (b + 1) * width <= now then b = b + 1 end
  return b
end

-- A counter: newest (bucket number of slot 0), limit, and slot[0..len-1]
-- (slot i: events charged in bucket newest - i); slots from len on are 0,
-- so a counter with few recent buckets costs little.

-- "NEWEST LIMIT S0 ... SK" -> counter, nil when it is not of this format
local function decode(raw)
  if not string.find(raw, '^%d+ %d+[0-9 ]*$') then return nil end
  local c = {newest = 0, limit = 0, slot = {}, len = 0}
  local i = -2
  for word in string.gmatch(raw, '%d+') do
    if i >= SLOTS or #word > 16 then return nil end
    local v = tonumber(word)
    if i == -2 then c.newest = v elseif i == -1 then c.limit = v else c.slot[i] = v end
    i = i + 1
  end
  c.len = i
  return c
end

local function fresh() return {newest = 0, limit = 0, slot = {}, len = 0} end

local function encode(c)
  local last = c.len - 1
  while last >= 0 and c.slot[last] == 0 do last = last - 1 end
  local out = {fmt(c.newest), c.limit}
  for i = 0, last do out[i + 3] = c.slot[i] end
  return table.concat(out, ' ')
end

local function align(c, width, now)
  local b = bucket_of(now, width)
  if b >= c.newest then
    local gap = b - c.newest
    if gap >= SLOTS then
      c.slot, c.len = {}, 0
    elseif gap > 0 then
      local len = math.min(c.len + gap, SLOTS)
      for i = len - 1, gap, -1 do c.slot[i] = c.slot[i - gap] end
      for i = 0, math.min(gap, len) - 1 do c.slot[i] = 0 end
      c.len = len
    end
    c.newest = b
  elseif c.newest - b >= SLOTS then
    c.newest = b   -- the clock went back by more than a window
  end
  return c.newest
end

local function used(c)
  local sum = 0
  for i = 0, c.len - 1 do sum = sum + c.slot[i] end
  return sum
end

local function slot_end(c, width, i)
  return (c.newest + SLOTS - i) * width
end

-- fits, used, retry_after_ms (NEVER when amount > limit)
local function room(c, width, now, limit, amount)
  local u = used(c)
  if u + amount <= limit then return true, u, 0 end
  if amount > limit then return false, u, NEVER end
  local left = u
  for i = c.len - 1, 0, -1 do
    left = left - c.slot[i]
    if left + amount <= limit then
      local e = slot_end(c, width, i)
      local r = 0
      if e > now then r = e - now end
      if r == 0 then r = 1 end
      return false, u, r
    end
  end
  return false, u, NEVER
end

local function add(c, amount)
  if c.len == 0 then c.slot[0], c.len = 0, 1 end
  c.slot[0] = math.min(c.slot[0] + amount, MAX_COUNT)
end

local function later(a, b)
  if a == NEVER then return b ~= NEVER end
  if b == NEVER then return false end
  return a > b
end

local function give_back(c, bucket, amount)
  if bucket > c.newest then return 0 end
  local age = c.newest - bucket
  if age >= c.len then return 0 end
  local back = math.min(amount, c.slot[age])
  c.slot[age] = c.slot[age] - back
  return back
end

local function next_release(c, width, now)
  for i = c.len - 1, 0, -1 do
    if c.slot[i] ~= 0 then
      local e = slot_end(c, width, i)
      if e > now then return e - now end
      return 0
    end
  end
  return 0
end

-- "METRIC/WINDOW" -> window seconds; nil for other fields ("~...": reservations)
local function window_of(field)
  if string.sub(field, 1, 1) == '~' then return nil end
  local w = string.match(field, '/(%d+)$')
  if w == nil then return nil end
  return tonumber(w)
end

local function corrupt(key, field)
  return redis.error_reply('QTCORRUPT counter ' .. field .. ' of ' .. key .. ' is not of this format')
end

-- the key lives at least ms from now
local function keep(key, ms)
  if redis.call('PTTL', key) < ms then redis.call('PEXPIRE', key, fmt(ms)) end
end

-- "a;b;;c;" -> {'a', 'b', '', 'c'}
local function split(s)
  local out, pos = {}, 1
  while true do
    local e = string.find(s, ';', pos, true)
    if e == nil then return out end
    out[#out + 1] = string.sub(s, pos, e - 1)
    pos = e + 1
  end
end

-- A reservation "~TOKEN" = "DEADLINE;" then "FIELD;BUCKET;AMOUNT;BEFORE;AFTER;"
-- per counter it charged, BEFORE and AFTER its value around the charge ("":
-- none). Undoing it puts back BEFORE when the counter is still AFTER (so the
-- counter is exactly as if the charge had never been made), else gives back
-- AMOUNT from BUCKET. "~" holds the earliest deadline of a key's reservations.
local function undo(key, spec)
  local w = split(spec)
  for i = 2, #w - 4, 5 do
    local field = w[i]
    local raw = redis.call('HGET', key, field)
    if raw and raw == w[i + 4] then
      if w[i + 3] == '' then redis.call('HDEL', key, field) else redis.call('HSET', key, field, w[i + 3]) end
    elseif raw then
      local c = decode(raw)
      if c and give_back(c, tonumber(w[i + 1]), tonumber(w[i + 2])) > 0 then
        redis.call('HSET', key, field, encode(c))
      end
    end
  end
end

-- "~" = "COUNT EARLIEST": how many reservations the key holds, and no later
-- than the earliest of their deadlines.
local function pending(key)
  local v = redis.call('HGET', key, '~')
  if not v then return 0, nil end
  local n, d = string.match(v, '^(%d+) (%d+)$')
  return tonumber(n) or 0, tonumber(d)
end

local function set_pending(key, n, deadline)
  if n <= 0 or deadline == nil then redis.call('HDEL', key, '~')
  else redis.call('HSET', key, '~', fmt(n) .. ' ' .. fmt(deadline)) end
end

-- reservations whose deadline passed are given back
local function settle_due(key, now)
  local n, first = pending(key)
  if n == 0 or (first ~= nil and first > now) then return end
  local all = redis.call('HGETALL', key)
  local left, earliest = 0, nil
  for i = 1, #all, 2 do
    local f = all[i]
    if #f > 1 and string.sub(f, 1, 1) == '~' then
      local deadline = tonumber(string.match(all[i + 1], '^(%d+)'))
      if deadline == nil or deadline <= now then
        undo(key, all[i + 1])
        redis.call('HDEL', key, f)
      else
        left = left + 1
        if earliest == nil or deadline < earliest then earliest = deadline end
      end
    end
  end
  set_pending(key, left, earliest)
end

-- now amount token hold n {key_index field seconds limit}*n. hold 0: not a
-- cluster, so no reservation can exist here and none is looked for.
local function charge(keys, args)
  local now = clock(args[1])
  local amount = tonumber(args[2])
  local token, hold = args[3], tonumber(args[4])
  local n = tonumber(args[5])
  if hold > 0 then
    for _, key in ipairs(keys) do settle_due(key, now) end
  end
  local counters, work, refused = {}, {}, nil
  for i = 1, n do
    local b = 6 + (i - 1) * 4
    local k = {key = keys[tonumber(args[b])], field = args[b + 1], seconds = tonumber(args[b + 2]),
               limit = tonumber(args[b + 3])}
    counters[i] = k
    local raw = redis.call('HGET', k.key, k.field)
    local c = fresh()
    if raw then
      c = decode(raw)
      if c == nil then return corrupt(k.key, k.field) end
    end
    local before = c.newest
    local width = width_of(k.seconds)
    local bucket = align(c, width, now)
    local fits, u, retry = room(c, width, now, k.limit, amount)
    if not fits and (refused == nil or later(retry, refused[4])) then refused = {i - 1, u, k.limit, retry} end
    -- the key's expiry must rise when the counter is new or a newer bucket began
    work[i] = {c = c, width = width, bucket = bucket, before = raw or '', later = not raw or bucket > before}
  end
  if refused then return {0, now, refused[1], refused[2], refused[3], refused[4]} end
  local life = {}
  local out = {1, now}
  for i, k in ipairs(counters) do
    local w = work[i]
    add(w.c, amount)
    w.c.limit = k.limit
    w.after = encode(w.c)
    redis.call('HSET', k.key, k.field, w.after)
    if w.later then
      local l = slot_end(w.c, w.width, 0) - now + MARGIN
      if life[k.key] == nil or l > life[k.key] then life[k.key] = l end
    end
    out[#out + 1] = w.bucket
  end
  if token ~= '' then
    local spec = {}
    local deadline = now + hold
    for i, k in ipairs(counters) do
      spec[k.key] = spec[k.key] or {fmt(deadline)}
      local s = spec[k.key]
      s[#s + 1] = k.field
      s[#s + 1] = fmt(work[i].bucket)
      s[#s + 1] = fmt(amount)
      s[#s + 1] = work[i].before
      s[#s + 1] = work[i].after
    end
    for key, s in pairs(spec) do
      redis.call('HSET', key, '~' .. token, table.concat(s, ';') .. ';')
      local count, first = pending(key)
      if first == nil or first > deadline then first = deadline end
      set_pending(key, count + 1, first)
      if life[key] == nil or life[key] < hold + MARGIN then life[key] = hold + MARGIN end
    end
  end
  for key, l in pairs(life) do keep(key, l) end
  return out
end

-- token commit
local function settle(keys, args)
  local key, f = keys[1], '~' .. args[1]
  local spec = redis.call('HGET', key, f)
  if not spec then return 0 end
  if args[2] ~= '1' then undo(key, spec) end
  redis.call('HDEL', key, f)
  local n, first = pending(key)
  set_pending(key, n - 1, first)
  return 1
end

-- n {key_index field bucket amount}*n
local function refund(keys, args)
  local n = tonumber(args[1])
  local found = {}
  for i = 1, n do
    local b = 2 + (i - 1) * 4
    local key, field = keys[tonumber(args[b])], args[b + 1]
    local raw = redis.call('HGET', key, field)
    if raw then
      local c = decode(raw)
      if c == nil then return corrupt(key, field) end
      found[i] = c
    end
  end
  local total = 0
  for i = 1, n do
    local c = found[i]
    local b = 2 + (i - 1) * 4
    if c then
      local back = give_back(c, tonumber(args[b + 2]), tonumber(args[b + 3]))
      if back > 0 then
        redis.call('HSET', keys[tonumber(args[b])], args[b + 1], encode(c))
        total = total + back
      end
    end
  end
  return total
end

-- now -> now, then field used limit next_release_ms per counter
local function usage(keys, args)
  local now = clock(args[1])
  local all = redis.call('HGETALL', keys[1])
  local out = {now}
  for i = 1, #all, 2 do
    local seconds = window_of(all[i])
    if seconds then
      local c = decode(all[i + 1])
      if c == nil then return corrupt(keys[1], all[i]) end
      local width = width_of(seconds)
      align(c, width, now)
      out[#out + 1] = all[i]
      out[#out + 1] = used(c)
      out[#out + 1] = c.limit
      out[#out + 1] = next_release(c, width, now)
    end
  end
  return out
end

local function reset(keys, args)
  local n = 0
  for _, f in ipairs(redis.call('HKEYS', keys[1])) do
    if window_of(f) then n = n + 1 end
  end
  redis.call('DEL', keys[1])
  return n
end

-- now -> entries dropped: idle counters of an identity's key, or an expired record
local function expire(keys, args)
  local now = clock(args[1])
  local key = keys[1]
  local t = redis.call('TYPE', key)['ok']
  if t == 'string' then
    local at = tonumber(string.match(redis.call('GET', key), '^(%d+) '))
    if at == nil or at <= now then
      redis.call('DEL', key)
      return 1
    end
    return 0
  end
  if t ~= 'hash' then return 0 end
  settle_due(key, now)
  local all = redis.call('HGETALL', key)
  local dropped, kept = 0, 0
  for i = 1, #all, 2 do
    local seconds = window_of(all[i])
    if seconds then
      local c = decode(all[i + 1])
      if c and slot_end(c, width_of(seconds), 0) <= now then
        redis.call('HDEL', key, all[i])
        dropped = dropped + 1
      else
        kept = kept + 1
      end
    elseif all[i] ~= '~' then
      kept = kept + 1
    end
  end
  if kept == 0 then redis.call('DEL', key) end
  return dropped
end

redis.register_function('qt1_charge_@V@', charge)
redis.register_function('qt1_settle_@V@', settle)
redis.register_function('qt1_refund_@V@', refund)
redis.register_function{function_name = 'qt1_usage_@V@', callback = usage, flags = {'no-writes'}}
redis.register_function('qt1_reset_@V@', reset)
redis.register_function('qt1_expire_@V@', expire)
)lua";

// FNV-1a, 32 bits.
constexpr std::uint32_t digest_of(std::string_view text) {
  std::uint32_t h = 2166136261u;
  for (char c : text) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  return h;
}

// The digest in hex, computed once (no static object with a destructor:
// nothing to run at exit).
const char* digest() {
  static char d[9];
  if (d[0] == '\0') {
    static const char hex[] = "0123456789abcdef";
    const std::uint32_t h = digest_of(lua);
    for (int i = 0; i < 8; ++i) d[i] = hex[(h >> (28 - 4 * i)) & 15];
  }
  return d;
}

}  // namespace

std::string name(Function f) {
  const char* base = "";
  switch (f) {
    case Function::charge: base = "qt1_charge_"; break;
    case Function::settle: base = "qt1_settle_"; break;
    case Function::refund: base = "qt1_refund_"; break;
    case Function::usage: base = "qt1_usage_"; break;
    case Function::reset: base = "qt1_reset_"; break;
    case Function::expire: base = "qt1_expire_"; break;
  }
  return std::string(base) + digest();
}

std::string_view source() {
  static std::string* text = nullptr;  // made once, kept until exit
  if (text == nullptr) {
    text = new std::string(lua);
    for (std::size_t p; (p = text->find("@V@")) != std::string::npos;) text->replace(p, 3, digest());
  }
  return *text;
}

}  // namespace redis_functions
