/* The store's Lua script as a C string (included once, by redis_proto.c). Every call passes
 * ARGV[1] = operation and ARGV[2] = the P events channel; the rest per operation:
 *
 *   create   KEYS key [members]       ARGV kind id pod ttl count assignedAt [short]
 *            -> {1, value} written (NX; with TTL short when given and > 0: a tentative
 *            assignment, SPEC 3.6), or {0, existing value} (the winner; this second use
 *            renews it, and a room's members set, to ttl)
 *   replace  KEYS key                 ARGV kind id expect pod ttl now
 *            -> {1, value} moved (or created when absent), or {0, current value}
 *   set      KEYS key                 ARGV kind id pod ttl now       -> {1, value}
 *   del      KEYS key [members]       ARGV kind id                   -> keys removed
 *   join     KEYS room members        ARGV id who ttl max            -> count or -1 (no room)
 *            A participant added to the set (at most max) raises participantCount to the
 *            set's size and publishes "count"; the room keeps its TTL (KEEPTTL) and a new
 *            set gets the room's remaining TTL, so a tentative room's set goes with it (create
 *            and renew extend both). A value in the canonical layout (what value() writes, and
 *            HyperStudy's JSON.stringify) has its count replaced in place; others go through
 *            cjson. Numbers are concatenated as strings once: every number-to-string conversion
 *            is a printf inside Redis, and every redis.call costs a few thousand instructions.
 *   batch    KEYS per entry           ARGV sidttl fullttl roomttl max origin, then per
 *            entry "p" pod (KEYS sid: a sid pin, SET NX PX sidttl; a sid there already gets
 *            fullttl and stays) or "j" id who (KEYS room members: join as above)
 *            -> {codes, value, ...}: codes holds one token per entry, separated by
 *            spaces: a pin's 1 (written: its value is the pod sent) or 0 (there already:
 *            its value follows codes, in entry order), a join's answer (its count); one
 *            string instead of an integer per entry (each costs the reader a reply object).
 *            The joins' counts are published together, as
 *            "counts origin 0 id n id n ..." messages of at most 1,024 bytes (origin: the
 *            sending process's "@" token, so it skips its own; not a key, so a parser
 *            without it finds no such room)
 *   active   KEYS active              ARGV now window                -> {pod, rooms, parts, ...}
 *            per-pod sums of the activity fields (value "pod rooms parts lastActiveMs")
 *            seen within window of now; older fields are deleted
 *   renew    KEYS key [members]       ARGV ttl                       -> 1, or 0 when key is gone
 *   podput   KEYS pod pods            ARGV name json ttl             -> 1 changed, 0 heartbeat
 *   pods     KEYS pods                ARGV pod-key-prefix            -> {json, ...}
 *   poddrain KEYS pod                 ARGV name                      -> 1 or 0 (unknown)
 *   poddel   KEYS pod pods            ARGV name                      -> 1 or 0
 *
 * A room value that is not JSON with a string podId counts as absent (overwritten); a
 * HyperStudy value with a podId is the assignment, whoever wrote it. Messages published on
 * the channel are described in redis_proto.h. */
#ifndef PODROUTER_REDIS_SCRIPT_LUA_H
#define PODROUTER_REDIS_SCRIPT_LUA_H

#define PR_REDIS_SCRIPT_TEXT                                                                       \
    "local op, ch = ARGV[1], ARGV[2]\n"                                                            \
    "local function num(n) return string.format('%.0f', tonumber(n) or 0) end\n"                   \
    "local function parse(kind, v)\n"                                                              \
    "  if not v then return nil end\n"                                                             \
    "  if kind ~= 'room' then return v, nil end\n"                                                 \
    "  local ok, t = pcall(cjson.decode, v)\n"                                                     \
    "  if ok and type(t) == 'table' and type(t.podId) == 'string' and t.podId ~= '' then\n"        \
    "    return t.podId, t\n"                                                                      \
    "  end\n"                                                                                      \
    "  return nil\n"                                                                               \
    "end\n"                                                                                        \
    "local function same(cur, want)\n"                                                             \
    "  return cur == want or string.sub(cur, 1, #want + 1) == want .. '.'\n"                       \
    "end\n"                                                                                        \
    "local function value(kind, pod, count, at)\n"                                                 \
    "  if kind ~= 'room' then return pod end\n"                                                    \
    "  return '{\"podId\":\"' .. pod .. '\",\"participantCount\":' .. num(count) ..\n"             \
    "         ',\"assignedAt\":' .. num(at) .. '}'\n"                                              \
    "end\n"                                                                                        \
    "local function announce(kind, id, pod, count, at)\n"                                          \
    "  if kind ~= 'sid' then\n"                                                                    \
    "    redis.call('PUBLISH', ch, 'set ' .. kind .. ' ' .. id .. ' ' .. pod .. ' ' ..\n"          \
    "                num(count) .. ' ' .. num(at))\n"                                              \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function count_of(v)\n"                                                                 \
    "  if string.sub(v, 1, 10) ~= '{\"podId\":\"' then return nil end\n"                           \
    "  local i = string.find(v, '\",\"participantCount\":', 11, true)\n"                           \
    "  if not i then return nil end\n"                                                             \
    "  if not string.find(string.sub(v, 11, i - 1), '^[%w_.:%-]+$') then return nil end\n"         \
    "  local j = string.find(v, ',\"assignedAt\":', i + 21, true)\n"                               \
    "  local c = j and string.sub(v, i + 21, j - 1)\n"                                             \
    "  if not c or not string.find(c, '^%d+$') or not string.find(v, '^%d+}$', j + 14) then\n"     \
    "    return nil\n"                                                                             \
    "  end\n"                                                                                      \
    "  return tonumber(c), string.sub(v, 1, i + 20), string.sub(v, j)\n"                           \
    "end\n"                                                                                        \
    "local function join(room, members, who, ttl, max)\n"                                          \
    "  local cur = redis.call('GET', room)\n"                                                      \
    "  if not cur then return -1 end\n"                                                            \
    "  local count, head, tail = count_of(cur)\n"                                                  \
    "  local t\n"                                                                                  \
    "  if not count then\n"                                                                        \
    "    local p\n"                                                                                \
    "    p, t = parse('room', cur)\n"                                                              \
    "    if not p then return -1 end\n"                                                            \
    "    count = tonumber(t.participantCount) or 0\n"                                              \
    "  end\n"                                                                                      \
    "  if redis.call('SADD', members, who) == 0 then return count end\n"                           \
    "  local n = redis.call('SCARD', members)\n"                                                   \
    "  if n > max then\n"                                                                          \
    "    redis.call('SREM', members, who)\n"                                                       \
    "    return count\n"                                                                           \
    "  end\n"                                                                                      \
    "  if n > count then count = n end\n"                                                          \
    "  local cs = tostring(count)\n"                                                               \
    "  if t then\n"                                                                                \
    "    t.participantCount = count\n"                                                             \
    "    redis.call('SET', room, cjson.encode(t), 'KEEPTTL')\n"                                    \
    "  else\n"                                                                                     \
    "    redis.call('SET', room, head .. cs .. tail, 'KEEPTTL')\n"                                 \
    "  end\n"                                                                                      \
    "  if n == 1 then\n"                                                                           \
    "    local left = redis.call('PTTL', room)\n"                                                  \
    "    if left > 0 then redis.call('PEXPIRE', members, left)\n"                                  \
    "    else redis.call('PEXPIRE', members, ttl) end\n"                                           \
    "  end\n"                                                                                      \
    "  return count, cs\n"                                                                         \
    "end\n"                                                                                        \
    "if op == 'create' then\n"                                                                     \
    "  local kind, id, pod, ttl = ARGV[3], ARGV[4], ARGV[5], ARGV[6]\n"                            \
    "  local cur = redis.call('GET', KEYS[1])\n"                                                   \
    "  if parse(kind, cur) then\n"                                                                 \
    "    redis.call('PEXPIRE', KEYS[1], ttl)\n"                                                    \
    "    if KEYS[2] then redis.call('PEXPIRE', KEYS[2], ttl) end\n"                                \
    "    return {0, cur}\n"                                                                        \
    "  end\n"                                                                                      \
    "  local v = value(kind, pod, ARGV[7], ARGV[8])\n"                                             \
    "  local short = tonumber(ARGV[9] or '0') or 0\n"                                              \
    "  if short > 0 and short < tonumber(ttl) then ttl = ARGV[9] end\n"                            \
    "  redis.call('SET', KEYS[1], v, 'PX', ttl)\n"                                                 \
    "  announce(kind, id, pod, ARGV[7], ARGV[8])\n"                                                \
    "  return {1, v}\n"                                                                            \
    "elseif op == 'replace' or op == 'set' then\n"                                                 \
    "  local kind, id = ARGV[3], ARGV[4]\n"                                                        \
    "  local expect, pod, ttl, now\n"                                                              \
    "  if op == 'replace' then\n"                                                                  \
    "    expect, pod, ttl, now = ARGV[5], ARGV[6], ARGV[7], ARGV[8]\n"                             \
    "  else\n"                                                                                     \
    "    pod, ttl, now = ARGV[5], ARGV[6], ARGV[7]\n"                                              \
    "  end\n"                                                                                      \
    "  local cur = redis.call('GET', KEYS[1])\n"                                                   \
    "  local p, t = parse(kind, cur)\n"                                                            \
    "  if p and op == 'replace' and not same(p, expect) then return {0, cur} end\n"                \
    "  local count = 0\n"                                                                          \
    "  if t and tonumber(t.participantCount) then count = tonumber(t.participantCount) end\n"      \
    "  local v = value(kind, pod, count, now)\n"                                                   \
    "  redis.call('SET', KEYS[1], v, 'PX', ttl)\n"                                                 \
    "  announce(kind, id, pod, count, now)\n"                                                      \
    "  return {1, v}\n"                                                                            \
    "elseif op == 'del' then\n"                                                                    \
    "  local n = redis.call('DEL', unpack(KEYS))\n"                                                \
    "  redis.call('PUBLISH', ch, 'del ' .. ARGV[3] .. ' ' .. ARGV[4])\n"                           \
    "  return n\n"                                                                                 \
    "elseif op == 'join' then\n"                                                                   \
    "  local count, cs = join(KEYS[1], KEYS[2], ARGV[4], ARGV[5], tonumber(ARGV[6]))\n"            \
    "  if cs then redis.call('PUBLISH', ch, 'count ' .. ARGV[3] .. ' ' .. cs) end\n"               \
    "  return count\n"                                                                             \
    "elseif op == 'batch' then\n"                                                                  \
    "  local sttl, fttl, rttl, max = ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])\n"               \
    "  local evhead = 'counts ' .. ARGV[7] .. ' 0 '\n"                                             \
    "  local codes, out, k, a, ev, evlen = {}, {''}, 1, 8, {}, #evhead\n"                          \
    "  while a <= #ARGV do\n"                                                                      \
    "    if ARGV[a] == 'p' then\n"                                                                 \
    "      if redis.call('SET', KEYS[k], ARGV[a + 1], 'PX', sttl, 'NX') then\n"                    \
    "        codes[#codes + 1] = 1\n"                                                              \
    "      else\n"                                                                                 \
    "        local cur = redis.call('GET', KEYS[k])\n"                                             \
    "        redis.call('PEXPIRE', KEYS[k], fttl)\n"                                               \
    "        codes[#codes + 1] = 0\n"                                                              \
    "        out[#out + 1] = cur\n"                                                                \
    "      end\n"                                                                                  \
    "      k, a = k + 1, a + 2\n"                                                                  \
    "    else\n"                                                                                   \
    "      local count, cs = join(KEYS[k], KEYS[k + 1], ARGV[a + 2], rttl, max)\n"                 \
    "      codes[#codes + 1] = count\n"                                                            \
    "      if cs then\n"                                                                           \
    "        local e = ARGV[a + 1] .. ' ' .. cs\n"                                                 \
    "        if evlen + #e + 1 > 1024 then\n"                                                      \
    "          redis.call('PUBLISH', ch, evhead .. table.concat(ev, ' '))\n"                       \
    "          ev, evlen = {}, #evhead\n"                                                          \
    "        end\n"                                                                                \
    "        ev[#ev + 1] = e\n"                                                                    \
    "        evlen = evlen + #e + 1\n"                                                             \
    "      end\n"                                                                                  \
    "      k, a = k + 2, a + 3\n"                                                                  \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  if #ev > 0 then redis.call('PUBLISH', ch, evhead .. table.concat(ev, ' ')) end\n"           \
    "  out[1] = table.concat(codes, ' ')\n"                                                        \
    "  return out\n"                                                                               \
    "elseif op == 'active' then\n"                                                                 \
    "  local now, window = tonumber(ARGV[3]), tonumber(ARGV[4])\n"                                 \
    "  local sums, order, stale = {}, {}, {}\n"                                                    \
    "  local all = redis.call('HGETALL', KEYS[1])\n"                                               \
    "  for i = 1, #all, 2 do\n"                                                                    \
    "    local pod, r, p, at = string.match(all[i + 1], '^(%S+) (%d+) (%d+) (%d+)$')\n"            \
    "    if pod and now - tonumber(at) < window then\n"                                            \
    "      local s = sums[pod]\n"                                                                  \
    "      if not s then s = {0, 0}; sums[pod] = s; table.insert(order, pod) end\n"                \
    "      s[1] = s[1] + tonumber(r); s[2] = s[2] + tonumber(p)\n"                                 \
    "    else\n"                                                                                   \
    "      table.insert(stale, all[i])\n"                                                          \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  for i = 1, #stale, 256 do\n"                                                                \
    "    redis.call('HDEL', KEYS[1], unpack(stale, i, math.min(i + 255, #stale)))\n"               \
    "  end\n"                                                                                      \
    "  local out = {}\n"                                                                           \
    "  for _, pod in ipairs(order) do\n"                                                           \
    "    table.insert(out, pod); table.insert(out, sums[pod][1]); table.insert(out, sums[pod][2])\n" \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "elseif op == 'renew' then\n"                                                                  \
    "  local r = redis.call('PEXPIRE', KEYS[1], ARGV[3])\n"                                        \
    "  if KEYS[2] then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end\n"                              \
    "  return r\n"                                                                                 \
    "elseif op == 'podput' then\n"                                                                 \
    "  local name, ttl = ARGV[3], ARGV[5]\n"                                                       \
    "  local new = cjson.decode(ARGV[4])\n"                                                        \
    "  local cur = redis.call('GET', KEYS[1])\n"                                                   \
    "  local changed = 1\n"                                                                        \
    "  if cur then\n"                                                                              \
    "    local ok, old = pcall(cjson.decode, cur)\n"                                               \
    "    if ok and type(old) == 'table' then\n"                                                    \
    "      if old.draining == true then new.draining = true end\n"                                 \
    "      local a, b = tonumber(old.last_seen_at) or 0, tonumber(new.last_seen_at) or 0\n"        \
    "      if a > b then new.last_seen_at = a end\n"                                               \
    "      local oc, nc = old.capacity or {}, new.capacity or {}\n"                                \
    "      if old.address == new.address and old.draining == new.draining and\n"                   \
    "         old.zone == new.zone and oc.rooms == nc.rooms and\n"                                 \
    "         oc.participants == nc.participants then changed = 0 end\n"                           \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  local v = cjson.encode(new)\n"                                                              \
    "  redis.call('SET', KEYS[1], v, 'PX', ttl)\n"                                                 \
    "  redis.call('SADD', KEYS[2], name)\n"                                                        \
    "  if changed == 1 then redis.call('PUBLISH', ch, 'pod ' .. v) end\n"                          \
    "  return changed\n"                                                                           \
    "elseif op == 'pods' then\n"                                                                   \
    "  local out = {}\n"                                                                           \
    "  for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"                                \
    "    local v = redis.call('GET', ARGV[3] .. name)\n"                                           \
    "    if v then table.insert(out, v) else redis.call('SREM', KEYS[1], name) end\n"              \
    "  end\n"                                                                                      \
    "  return out\n"                                                                               \
    "elseif op == 'poddrain' then\n"                                                               \
    "  local cur = redis.call('GET', KEYS[1])\n"                                                   \
    "  if not cur then return 0 end\n"                                                             \
    "  local ok, t = pcall(cjson.decode, cur)\n"                                                   \
    "  if not ok or type(t) ~= 'table' then return 0 end\n"                                        \
    "  t.draining = true\n"                                                                        \
    "  local v = cjson.encode(t)\n"                                                                \
    "  local left = redis.call('PTTL', KEYS[1])\n"                                                 \
    "  if left > 0 then redis.call('SET', KEYS[1], v, 'PX', left)\n"                               \
    "  else redis.call('SET', KEYS[1], v) end\n"                                                   \
    "  redis.call('PUBLISH', ch, 'pod ' .. v)\n"                                                   \
    "  return 1\n"                                                                                 \
    "elseif op == 'poddel' then\n"                                                                 \
    "  local n = redis.call('DEL', KEYS[1])\n"                                                     \
    "  redis.call('SREM', KEYS[2], ARGV[3])\n"                                                     \
    "  redis.call('PUBLISH', ch, 'delpod ' .. ARGV[3])\n"                                          \
    "  return n\n"                                                                                 \
    "end\n"                                                                                        \
    "return redis.error_reply('podrouter: unknown op')\n"

#endif
