/*
 * The Lua scripts of the shared state (state_redis.c), each run
 * atomically by Redis. Times are Redis's own (TIME), so that instances
 * whose clocks differ agree on every window; a script answers durations
 * from now, which the caller turns into its own clock. Keys (PREFIX is
 * "proxyd:", D a token's digest in hex):
 *
 *   PREFIX w:D       hash  e: window end; i: the token as it arrived and
 *                          o: the instance that owes the push at e
 *                          (both only while one is owed)
 *   PREFIX owed      zset  D -> e, for the windows with a push owed
 *   PREFIX live:ID   an instance alive (refreshed every second)
 *   PREFIX hb        zset  D -> next heartbeat (unix ms, the instances')
 *   PREFIX hb:D      the registered token
 *   PREFIX b:NAME    hash  t: tokens, ts: their time, p: paused until
 *   PREFIX pauses    zset  "PROVIDER:NAME" -> until (a Web Push origin)
 *
 * Scripts reach keys they build from PREFIX (the owed and heartbeat
 * walks), which a standalone Redis or Sentinel set-up allows; for Redis
 * Cluster those two walks would be split by slot (docs/scaling.md).
 */
#ifndef STATE_REDIS_SCRIPTS_H
#define STATE_REDIS_SCRIPTS_H

#define STATE_REDIS_PREFIX	"proxyd:"

#define STATE_REDIS_NOW \
	"local t = redis.call('TIME')\n" \
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / " \
	"1000)\n"

enum state_redis_script {
	SCRIPT_HIT,
	SCRIPT_OUT,
	SCRIPT_CANCEL,
	SCRIPT_TAKEOVER,
	SCRIPT_HB_PUT,
	SCRIPT_HB_CLAIM,
	SCRIPT_BUCKET_TAKE,
	SCRIPT_BUCKET_PAUSE,
	SCRIPT_SCOPE_PAUSE,
	SCRIPT_SCOPE_POLL,
	SCRIPT_COUNT,
};

static const char *const state_redis_scripts[SCRIPT_COUNT] = {
	/* KEYS: w:D, owed. ARGV: window ms, instance, D, keep ms.
	 * -> {0 opened | 1 open, the caller owes it | 2 covered | 3 open,
	 * owed by the caller already, ms to the window's end}. The caller
	 * that owes it sends the token as it arrived right after (HSET i,
	 * on the same connection): most requests open a window, and those
	 * need not carry the token to Redis at all. */
	[SCRIPT_HIT] = STATE_REDIS_NOW
	"local w = tonumber(ARGV[1])\n"
	"local h = redis.call('HMGET', KEYS[1], 'e', 'o')\n"
	"local e = tonumber(h[1])\n"
	"if h[2] then\n"
	"  if h[2] == ARGV[2] then return {3, (e or now) - now} end\n"
	"  return {2, (e or now) - now}\n"
	"end\n"
	"if e == nil or e <= now then\n"
	"  redis.call('HSET', KEYS[1], 'e', now + w)\n"
	"  redis.call('PEXPIRE', KEYS[1], w + 1000)\n"
	"  return {0, w}\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'o', ARGV[2])\n"
	"redis.call('ZADD', KEYS[2], e, ARGV[3])\n"
	"redis.call('PEXPIRE', KEYS[1], e - now + tonumber(ARGV[4]))\n"
	"return {1, e - now}\n",

	/* A push for D goes out now (ARGV[4] 1: the owed one, handed out):
	 * the window runs anew; the caller's owed entry goes.
	 * KEYS: w:D, owed. ARGV: window ms, D, instance, owed-out flag. */
	[SCRIPT_OUT] = STATE_REDIS_NOW
	"local w = tonumber(ARGV[1])\n"
	"local o = redis.call('HGET', KEYS[1], 'o')\n"
	"if ARGV[4] == '1' and (o == ARGV[3] or not o) then\n"
	"  redis.call('HDEL', KEYS[1], 'i', 'o')\n"
	"  redis.call('ZREM', KEYS[2], ARGV[2])\n"
	"  o = false\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'e', now + w)\n"
	"if not o then redis.call('PEXPIRE', KEYS[1], w + 1000) end\n"
	"return 0\n",

	/* The leading push failed: no window, unless a push is owed in it.
	 * KEYS: w:D. */
	[SCRIPT_CANCEL] =
	"if redis.call('HEXISTS', KEYS[1], 'o') == 0 then\n"
	"  redis.call('DEL', KEYS[1])\n"
	"end\n"
	"return 0\n",

	/* Owed pushes whose window ended while their instance is gone, or
	 * long ago: the caller owes them now. KEYS: owed. ARGV: instance,
	 * window ms, grace ms (an alive owner's), max.
	 * -> {input, ms since the window ended, ...} */
	[SCRIPT_TAKEOVER] = STATE_REDIS_NOW
	"local p = '" STATE_REDIS_PREFIX "'\n"
	"local w = tonumber(ARGV[2])\n"
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, "
	"'LIMIT', 0, tonumber(ARGV[4]))\n"
	"local out = {}\n"
	"for _, d in ipairs(due) do\n"
	"  local k = p .. 'w:' .. d\n"
	"  local h = redis.call('HMGET', k, 'i', 'o', 'e')\n"
	"  if not h[2] then\n"
	"    redis.call('ZREM', KEYS[1], d)\n"
	"  else\n"
	"    local e = tonumber(h[3]) or now\n"
	"    local alive = redis.call('EXISTS', p .. 'live:' .. h[2]) == 1\n"
	"    if h[2] ~= ARGV[1] and (not alive or now - e > "
	"tonumber(ARGV[3])) then\n"
	"      redis.call('ZREM', KEYS[1], d)\n"
	"      redis.call('HDEL', k, 'i', 'o')\n"
	"      redis.call('HSET', k, 'e', now + w)\n"
	"      redis.call('PEXPIRE', k, w + 1000)\n"
	"      if h[1] then\n"
	"        table.insert(out, h[1])\n"
	"        table.insert(out, now - e)\n"
	"      end\n"
	"    end\n"
	"  end\n"
	"end\n"
	"return out\n",

	/* KEYS: hb, hb:D. ARGV: token, next, D, max (0: none), NX flag.
	 * -> 0 stored, 1 full */
	[SCRIPT_HB_PUT] =
	"if redis.call('EXISTS', KEYS[2]) == 0 then\n"
	"  local max = tonumber(ARGV[4])\n"
	"  if max > 0 and redis.call('ZCARD', KEYS[1]) >= max then "
	"return 1 end\n"
	"  redis.call('SET', KEYS[2], ARGV[1])\n"
	"elseif ARGV[5] == '1' then\n"
	"  redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[3])\n"
	"  return 0\n"
	"end\n"
	"redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])\n"
	"return 0\n",

	/* Registrations due at ARGV[1], each moved to ARGV[3] before it is
	 * handed out (a lease of one interval: a claimer that dies leaves
	 * it to whoever claims it next). KEYS: hb. ARGV: now, max, next.
	 * -> {{token, ...}, the next due time or -1} */
	[SCRIPT_HB_CLAIM] =
	"local p = '" STATE_REDIS_PREFIX "'\n"
	"local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], "
	"'LIMIT', 0, tonumber(ARGV[2]))\n"
	"local out = {}\n"
	"for _, d in ipairs(due) do\n"
	"  local tok = redis.call('GET', p .. 'hb:' .. d)\n"
	"  if tok then\n"
	"    redis.call('ZADD', KEYS[1], ARGV[3], d)\n"
	"    table.insert(out, tok)\n"
	"  else\n"
	"    redis.call('ZREM', KEYS[1], d)\n"
	"  end\n"
	"end\n"
	"local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
	"return {out, first[2] or '-1'}\n",

	/* A token bucket: KEYS: b:NAME. ARGV: rate per second, burst (0:
	 * one second's worth). -> 0 taken, or ms to wait */
	[SCRIPT_BUCKET_TAKE] = STATE_REDIS_NOW
	"local h = redis.call('HMGET', KEYS[1], 't', 'ts', 'p')\n"
	"local p = tonumber(h[3]) or 0\n"
	"if p > now then return p - now end\n"
	"local rate = tonumber(ARGV[1])\n"
	"if rate <= 0 then return 0 end\n"
	"local burst = tonumber(ARGV[2])\n"
	"if burst <= 0 then burst = math.max(rate, 1) end\n"
	"local tk = tonumber(h[1])\n"
	"local ts = tonumber(h[2]) or now\n"
	"if tk == nil then tk = burst end\n"
	"tk = math.min(burst, tk + math.max(0, now - ts) * rate / 1000)\n"
	"local wait = 0\n"
	"if tk >= 1 then tk = tk - 1 else "
	"wait = math.ceil((1 - tk) * 1000 / rate) end\n"
	"redis.call('HSET', KEYS[1], 't', tostring(tk), 'ts', now)\n"
	"redis.call('PEXPIRE', KEYS[1], 600000)\n"
	"return wait\n",

	/* KEYS: b:NAME. ARGV: ms. */
	[SCRIPT_BUCKET_PAUSE] = STATE_REDIS_NOW
	"local until_ = now + tonumber(ARGV[1])\n"
	"local p = tonumber(redis.call('HGET', KEYS[1], 'p')) or 0\n"
	"if until_ > p then redis.call('HSET', KEYS[1], 'p', until_) end\n"
	"redis.call('PEXPIRE', KEYS[1], 600000)\n"
	"return 0\n",

	/* KEYS: pauses. ARGV: scope, ms, max: past max pauses (anyone can
	 * make a push service answer 429) the one ending first goes, as an
	 * instance's own table keeps no more either. */
	[SCRIPT_SCOPE_PAUSE] = STATE_REDIS_NOW
	"redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])\n"
	"if redis.call('ZCARD', KEYS[1]) > tonumber(ARGV[3]) then\n"
	"  redis.call('ZPOPMIN', KEYS[1])\n"
	"end\n"
	"return 0\n",

	/* The pauses still running, ended ones dropped. KEYS: pauses.
	 * ARGV: max. -> {scope, ms left, ...} */
	[SCRIPT_SCOPE_POLL] = STATE_REDIS_NOW
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"local r = redis.call('ZRANGEBYSCORE', KEYS[1], now + 1, '+inf', "
	"'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))\n"
	"local out = {}\n"
	"for i = 1, #r, 2 do\n"
	"  table.insert(out, r[i])\n"
	"  table.insert(out, tonumber(r[i + 1]) - now)\n"
	"end\n"
	"return out\n",
};

#endif
