-- Redis's Lua environment (script_lua.c, eval.c, function_lua.c) on a stock Lua 5.1.
--
-- Loaded once per Lua state by replproxy/scripting/engine.py with (host, cfg, libs):
-- `host` holds the Python callbacks (redis.call, logging, the PRNG, the busy hook, number
-- codecs), `cfg` the dialect (texts and features of the master's version), `libs` the
-- sources of cjson.lua and cmsgpack.lua. Returns the API the engine drives (compile, run,
-- load_library...). Every chunk of this file and of the libraries is compiled with the
-- chunk name "=replproxy": the error handler skips those frames, so an error reports the
-- user's line, as Redis's C functions (which these Lua functions stand in for) do.
--
-- Redis patches its Lua VM with readonly tables (lua_enablereadonlytable): the globals and
-- every library table reachable from them refuse any write with "Attempt to modify a
-- readonly table". A stock VM cannot refuse a raw write, so each protected table is shown
-- to scripts as an empty proxy whose metatable reads through to the real table and refuses
-- writes; the base functions that see through metatables (next, pairs, rawget, rawset,
-- getmetatable, setmetatable, table.insert, table.foreach) are replaced by stand-ins that
-- treat a proxy as the table it stands for.
--
-- Every chunk (the user's and these) is compiled with its tail calls turned into plain
-- calls (host.patch_tailcalls): Redis's API functions are C functions, and a C function
-- called in tail position leaves its caller's frame in place, so `return redis.call(...)`
-- still reports the user's line; a Lua stand-in called the same way would replace it.

local host, cfg, libs = ...

local type, tostring, tonumber, select, error, pcall, xpcall =
      type, tostring, tonumber, select, error, pcall, xpcall
local next, rawget, rawset, rawequal, setmetatable, getmetatable, unpack =
      next, rawget, rawset, rawequal, setmetatable, getmetatable, unpack
local setfenv, loadstring, load, ipairs = setfenv, loadstring, load, ipairs
local newproxy = newproxy
local string, table, math, coroutine, os = string, table, math, coroutine, os
local dbg_getinfo, dbg_sethook, dbg_gethook = debug.getinfo, debug.sethook, debug.gethook
local dbg_getmetatable = debug.getmetatable
local s_format, s_byte, s_sub, s_find, s_char, s_gsub, s_lower =
      string.format, string.byte, string.sub, string.find, string.char, string.gsub, string.lower
local t_concat = table.concat
local floor, ceil, huge = math.floor, math.ceil, math.huge

local INTERNAL = "=replproxy"
local HOOK_EVERY = 100000   -- luaMaskCountHook's instruction count

-- ---------------------------------------------------------------- helpers

local function pack(...) return {n = select('#', ...), ...} end

-- A C string view of a Lua string: Redis copies many texts with sdsnew()/%s.
local function cstr(s)
  local z = s_find(s, "\0", 1, true)
  if z then return s_sub(s, 1, z - 1) end
  return s
end

-- sdstrim(s, "\r\n"): drop CR and LF at both ends.
local function trim_crlf(s)
  return (s_gsub(s_gsub(s, "^[\r\n]+", ""), "[\r\n]+$", ""))
end

local function map_crlf(s) return (s_gsub(s, "[\r\n]", " ")) end

-- Lua functions standing in for Redis's C functions: they must look like C functions to
-- coroutine.create and string.dump.
local standins = setmetatable({}, {__mode = "k"})
local function standin(f) standins[f] = true return f end

-- luaL_argerror as a C function would raise it; `up` is how many frames separate the caller
-- of argerror from the stand-in (1: the stand-in called argerror itself).
local function argerror(narg, extramsg, up)
  up = up or 1
  local ar = dbg_getinfo(1 + up, "n")
  local name = ar and ar.name
  if ar and ar.namewhat == "method" then
    narg = narg - 1
    if narg == 0 then
      error(s_format("calling '%s' on bad self (%s)", tostring(name), extramsg), 2 + up)
    end
  end
  error(s_format("bad argument #%d to '%s' (%s)", narg, name or "?", extramsg), 2 + up)
end

local function typename_of(n, nargs, v)
  if n > nargs then return "no value" end
  return type(v)
end

-- luaL_typerror
local function typeerror(narg, tname, nargs, v, up)
  argerror(narg, s_format("%s expected, got %s", tname, typename_of(narg, nargs, v)), (up or 1) + 1)
end

-- luaL_checknumber / luaL_checkint / luaL_checkinteger / luaL_checklstring.
local function checknumber(narg, nargs, v, up)
  local n = tonumber(v)
  if n == nil or narg > nargs then typeerror(narg, "number", nargs, v, (up or 1) + 1) end
  return n
end

-- (int)d and (lua_Integer)d on x86-64: truncation; out of range or NaN gives the
-- "integer indefinite" value (INT_MIN / LLONG_MIN).
local function c_int(d)
  if d ~= d or d >= 2147483648 or d <= -2147483649 then return -2147483648 end
  if d >= 0 then return floor(d) end
  return ceil(d)
end
local function c_llong(d)
  if d ~= d or d >= 9223372036854775808 or d < -9223372036854775808 then
    return -9223372036854775808
  end
  if d >= 0 then return floor(d) end
  return ceil(d)
end

-- luaL_checkint is (int)luaL_checkinteger: the 64-bit conversion, then its low 32 bits.
local function to_int32(d)
  local v = c_llong(d) % 4294967296
  if v >= 2147483648 then v = v - 4294967296 end
  return v
end

local function checkstring(narg, nargs, v, up)
  local t = type(v)
  if narg > nargs or (t ~= "string" and t ~= "number") then
    typeerror(narg, "string", nargs, v, (up or 1) + 1)
  end
  return tostring(v)
end

-- ---------------------------------------------------------------- readonly tables

local backing = {}     -- proxy -> the real table it shows
local proxy_of = {}    -- real table -> its proxy

local RO = "Attempt to modify a readonly table"
local function ro_newindex() error(RO, 2) end

local function protect(real)
  local p = proxy_of[real]
  if p then return p end
  p = setmetatable({}, {__index = real, __newindex = ro_newindex})
  backing[p] = real
  proxy_of[real] = p
  return p
end

local function real_of(t) return backing[t] or t end

-- luaProtectedTableError: the __index of the globals (and of the function engine's
-- library API tables).
local global_missing = standin(function(...)
  if select('#', ...) ~= 2 then
    host.log(3, "malicious code trying to call luaProtectedTableError with wrong arguments")
    error("Wrong number of arguments to luaProtectedTableError", 2)
  end
  local k = select(2, ...)
  local t = type(k)
  if t ~= "string" and t ~= "number" then
    error("Second argument to luaProtectedTableError must be a string or number", 2)
  end
  error(s_format("Script attempted to access nonexistent global variable '%s'", tostring(k)), 2)
end)

local function error_metatable() return {__index = global_missing} end

-- cjson.null is a NULL light userdata in Redis; a stock VM can only make full userdata, so
-- a single one stands for it (printed and typed the same, no visible metatable).
local NULL = newproxy(true)
getmetatable(NULL).__tostring = function() return "userdata: (nil)" end

-- The string metatable, readonly since the CVE-2025-46818 fix; getmetatable("") shows it.
local string_mt = getmetatable("")

-- ---------------------------------------------------------------- errors as Redis raises them

-- luaPushErrorBuff: "-CODE msg" or "msg" -> {err = "CODE msg"}.
local function error_table(buf)
  buf = cstr(buf)
  local code, msg
  if s_byte(buf, 1) == 45 then
    local sp = s_find(buf, " ", 1, true)
    if sp then
      code, msg = s_sub(buf, 2, sp - 1), s_sub(buf, sp + 1)
    else
      code, msg = "ERR", s_sub(buf, 2)
    end
  else
    code, msg = "ERR", buf
  end
  return {err = code .. " " .. trim_crlf(msg)}
end

local function raise(buf) error(error_table(buf), 0) end

-- ---------------------------------------------------------------- stand-ins for base functions

local function next_s(...)
  local nargs = select('#', ...)
  local t, k = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  return next(real_of(t), k)
end
standin(next_s)

local function pairs_s(...)
  local nargs = select('#', ...)
  local t = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  return next_s, t, nil
end
standin(pairs_s)

local function rawget_s(...)
  local nargs = select('#', ...)
  local t, k = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  if nargs < 2 then argerror(2, "value expected") end
  return rawget(real_of(t), k)
end
standin(rawget_s)

local function rawset_s(...)
  local nargs = select('#', ...)
  local t, k, v = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  if nargs < 2 then argerror(2, "value expected") end
  if nargs < 3 then argerror(3, "value expected") end
  if backing[t] then error(RO, 0) end
  return rawset(t, k, v)
end
standin(rawset_s)

local errmt_proxies = {}   -- real table -> proxy of its (readonly) metatable

local function getmetatable_s(...)
  if select('#', ...) < 1 then argerror(1, "value expected") end
  local v = ...
  local real = backing[v]
  if real then
    local mt = dbg_getmetatable(real)
    if mt == nil then return nil end
    return protect(mt)
  end
  if v == NULL then return nil end
  local mt = getmetatable(v)
  if mt == string_mt then return proxy_of[string_mt] end
  return mt
end
standin(getmetatable_s)

local function setmetatable_s(...)
  local nargs = select('#', ...)
  local t, mt = ...
  local tt = type(mt)
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  if nargs < 2 or (tt ~= "nil" and tt ~= "table") then argerror(2, "nil or table expected") end
  local cur = dbg_getmetatable(real_of(t))
  if cur ~= nil and rawget(cur, "__metatable") ~= nil then
    error("cannot change a protected metatable", 2)
  end
  if backing[t] then error(RO, 0) end
  return setmetatable(t, mt)
end
standin(setmetatable_s)

-- Redis's pcall (luaRedisPcall): an error table with a string `err` comes back as that
-- string; with no argument it calls its own `true` placeholder.
local real_error = error
local function pcall_s(...)
  if select('#', ...) == 0 then return false, "attempt to call a boolean value" end
  local f, msg, level = ...
  if f == real_error and type(level) == "number" and level >= 2
      and (type(msg) == "string" or type(msg) == "number") then
    -- error called by Redis's (C) pcall: its level 2 is pcall's caller, our level 2 too.
    local ar = dbg_getinfo(floor(level), "Sl")
    local where = ""
    if ar and ar.currentline > 0 then where = s_format("%s:%d: ", ar.short_src, ar.currentline) end
    return false, where .. tostring(msg)
  end
  local r = pack(pcall(...))
  if r[1] then return unpack(r, 1, r.n) end
  local e = r[2]
  if type(e) == "table" then
    local f = e.err
    local ft = type(f)
    if ft == "string" or ft == "number" then return false, f end
    return false, e, f
  end
  return false, e
end
standin(pcall_s)

-- The environment chunks loaded by scripts run in (the eval globals or the function
-- engine's globals), set below.
local ENV

-- Redis's VM parses every chunk as text (f_parser never undumps): a binary chunk is a
-- syntax error at its first byte. A leading space makes the stock parser read it as text
-- and report the same error at the same place.
local real_dump = string.dump
local function compile(s, chunkname, env)
  if s_byte(s, 1) == 27 then s = " " .. s end
  local f, msg = loadstring(s, chunkname)
  if not f then return nil, msg end
  f = loadstring(host.patch_tailcalls(real_dump(f)), chunkname)
  setfenv(f, env or ENV)
  return f
end

local function loadstring_s(...)
  local nargs = select('#', ...)
  local s, name = ...
  s = checkstring(1, nargs, s)
  if nargs >= 2 and name ~= nil then name = checkstring(2, nargs, name) else name = s end
  return compile(s, name)
end
standin(loadstring_s)

local function load_s(...)
  local nargs = select('#', ...)
  local reader, name = ...
  if nargs >= 2 and name ~= nil then name = checkstring(2, nargs, name) else name = "=(load)" end
  if nargs < 1 or type(reader) ~= "function" then typeerror(1, "function", nargs, reader) end
  local parts = {}
  while true do
    local ok, piece = pcall(reader)
    if not ok then return nil, piece end
    if piece == nil then break end
    if type(piece) == "number" then piece = tostring(piece) end
    if type(piece) ~= "string" then
      local where = dbg_getinfo(2, "Sl")
      local pos = ""
      if where and where.currentline > 0 then
        pos = s_format("%s:%d: ", where.short_src, where.currentline)
      end
      return nil, pos .. "reader function must return a string"
    end
    parts[#parts + 1] = piece
  end
  return compile(t_concat(parts), name)
end
standin(load_s)

-- ---------------------------------------------------------------- library stand-ins

local real_insert, real_foreach = table.insert, table.foreach
table.insert = standin(function(...)
  local nargs = select('#', ...)
  local t = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  if backing[t] then
    if nargs == 3 then checknumber(2, nargs, (select(2, ...)))
    elseif nargs ~= 2 then error("wrong number of arguments to 'insert'", 2) end
    error(RO, 0)
  end
  if nargs == 3 then checknumber(2, nargs, (select(2, ...)))
  elseif nargs ~= 2 then error("wrong number of arguments to 'insert'", 2) end
  return real_insert(...)
end)
table.foreach = standin(function(...)
  local nargs = select('#', ...)
  local t, f = ...
  if nargs < 1 or type(t) ~= "table" then typeerror(1, "table", nargs, t) end
  if nargs < 2 or type(f) ~= "function" then typeerror(2, "function", nargs, f) end
  return real_foreach(real_of(t), f)
end)

string.dump = standin(function(...)
  local nargs = select('#', ...)
  local f = ...
  if nargs < 1 or type(f) ~= "function" then typeerror(1, "function", nargs, f) end
  if standins[f] or dbg_getinfo(f, "S").what == "C" then
    error("unable to dump given function", 2)
  end
  return real_dump(f)
end)

-- Coroutines: a stock VM does not pass a Lua hook on to new threads, so every resume
-- carries the running thread's hook (the busy-script count hook) into the coroutine.
local real_create, real_resume = coroutine.create, coroutine.resume
local function is_lua_function(f)
  return type(f) == "function" and not standins[f] and dbg_getinfo(f, "S").what ~= "C"
end
local function carry_hook(co)
  local h, mask, count = dbg_gethook()
  if h then dbg_sethook(co, h, mask, count) else dbg_sethook(co) end
end
coroutine.create = standin(function(...)
  local f = ...
  if not is_lua_function(f) then argerror(1, "Lua function expected") end
  return real_create(f)
end)
coroutine.resume = standin(function(...)
  local nargs = select('#', ...)
  local co = ...
  if nargs < 1 or type(co) ~= "thread" then argerror(1, "coroutine expected") end
  carry_hook(co)
  return real_resume(...)
end)
coroutine.wrap = standin(function(...)
  local f = ...
  if not is_lua_function(f) then argerror(1, "Lua function expected") end
  local co = real_create(f)
  return standin(function(...)
    carry_hook(co)
    local r = pack(real_resume(co, ...))
    if r[1] then return unpack(r, 2, r.n) end
    local e = r[2]
    local t = type(e)
    if t == "string" or t == "number" then error(e, 2) end
    error(e, 0)
  end)
end)

-- ---------------------------------------------------------------- the PRNG (redisLrand48)

math.random = standin(function(...)
  local nargs = select('#', ...)
  local r = host.rand()   -- drawn before the arguments are checked, as Redis does
  if nargs == 0 then return r end
  if nargs == 1 then
    local u = to_int32(checknumber(1, nargs, (...)))
    if not (1 <= u) then argerror(1, "interval is empty") end
    return floor(r * u) + 1
  end
  if nargs == 2 then
    local l, u = ...
    l = to_int32(checknumber(1, nargs, l))
    u = to_int32(checknumber(2, nargs, u))
    if not (l <= u) then argerror(2, "interval is empty") end
    return floor(r * (u - l + 1)) + l
  end
  error("wrong number of arguments", 2)
end)
math.randomseed = standin(function(...)
  local nargs = select('#', ...)
  host.srand(to_int32(checknumber(1, nargs, (...))))
end)

-- ---------------------------------------------------------------- RESP reply -> Lua (redisProtocolToLuaType)

local parse

local function parse_line(s, p)
  local e = s_find(s, "\r\n", p, true)
  return s_sub(s, p + 1, e - 1), e + 2
end

parse = function(s, p)
  local c = s_byte(s, p)
  if c == 36 then                                    -- $ bulk
    local n, q = parse_line(s, p)
    n = tonumber(n)
    if n < 0 then return false, q end
    return s_sub(s, q, q + n - 1), q + n + 2
  elseif c == 58 then                                -- : integer
    local v, q = parse_line(s, p)
    return tonumber(v), q
  elseif c == 42 or c == 62 then                     -- * array (> push: never a reply)
    local n, q = parse_line(s, p)
    n = tonumber(n)
    if n < 0 then return false, q end
    local t = {}
    for i = 1, n do
      local v
      v, q = parse(s, q)
      t[i] = v
    end
    return t, q
  elseif c == 43 then                                -- + status
    local v, q = parse_line(s, p)
    return {ok = v}, q
  elseif c == 45 then                                -- - error
    local v, q = parse_line(s, p)
    local t = error_table("-" .. v)
    t.ignore_error_stats_update = true
    return t, q
  elseif c == 37 then                                -- % map
    local n, q = parse_line(s, p)
    local m = {}
    for _ = 1, tonumber(n) do
      local k, v
      k, q = parse(s, q)
      v, q = parse(s, q)
      m[k] = v
    end
    return {map = m}, q
  elseif c == 126 then                               -- ~ set
    local n, q = parse_line(s, p)
    local m = {}
    for _ = 1, tonumber(n) do
      local k
      k, q = parse(s, q)
      m[k] = true
    end
    return {set = m}, q
  elseif c == 44 then                                -- , double
    local v, q = parse_line(s, p)
    return {double = tonumber(v) or 0}, q
  elseif c == 40 then                                -- ( big number
    local v, q = parse_line(s, p)
    return {big_number = v}, q
  elseif c == 35 then                                -- # boolean
    local v, q = parse_line(s, p)
    return v == "t", q
  elseif c == 95 then                                -- _ null
    local _, q = parse_line(s, p)
    return nil, q
  elseif c == 61 then                                -- = verbatim
    local n, q = parse_line(s, p)
    n = tonumber(n)
    local body = s_sub(s, q, q + n - 1)
    return {verbatim_string = {string = s_sub(body, 5), format = s_sub(body, 1, 3)}}, q + n + 2
  elseif c == 124 then                               -- | attribute: skipped
    local n, q = parse_line(s, p)
    for _ = 1, 2 * tonumber(n) do
      local _v
      _v, q = parse(s, q)
    end
    return parse(s, q)
  end
  error("unexpected reply type " .. tostring(c), 0)
end

-- ---------------------------------------------------------------- Lua -> RESP (luaReplyToRedisReply)

local run_resp = 2        -- the script client's protocol (redis.setresp)
local caller_resp = 2     -- the calling client's protocol

local fmt_double
if cfg.double_style == "g17" then
  fmt_double = function(d)
    if d == huge then return "inf" end
    if d == -huge then return "-inf" end
    return s_format("%.17g", d)
  end
else
  fmt_double = function(d) return host.fmt_double(s_format("%.17g", d)) end
end

local function bulk(s) return "$" .. #s .. "\r\n" .. s .. "\r\n" end
local function null() if caller_resp == 2 then return "$-1\r\n" end return "_\r\n" end

-- Redis checks for room for 4 more stack slots before each value (lua_checkstack against
-- LUAI_MAXCSTACK = 8000); `slots` mirrors how many it uses at each nesting level.
local MAXCSTACK = 8000

local emit
emit = function(v, out, slots)
  if slots + 4 > MAXCSTACK then
    out[#out + 1] = "-ERR reached lua stack limit\r\n"
    return
  end
  local t = type(v)
  if t == "string" then
    out[#out + 1] = bulk(v)
  elseif t == "boolean" then
    if run_resp == 2 then
      out[#out + 1] = v and ":1\r\n" or null()
    elseif caller_resp == 2 then
      out[#out + 1] = v and ":1\r\n" or ":0\r\n"
    else
      out[#out + 1] = v and "#t\r\n" or "#f\r\n"
    end
  elseif t == "number" then
    out[#out + 1] = s_format(":%d\r\n", v)
  elseif t == "table" then
    local r = real_of(v)
    local x = rawget(r, "err")
    if type(x) == "string" then
      local msg = v.err
      msg = cstr(tostring(msg))
      out[#out + 1] = "-" .. map_crlf(s_gsub(msg, "[\r\n]+$", "")) .. "\r\n"
      return
    end
    x = rawget(r, "ok")
    if type(x) == "string" then
      out[#out + 1] = "+" .. map_crlf(cstr(x)) .. "\r\n"
      return
    end
    x = rawget(r, "double")
    if type(x) == "number" then
      local d = fmt_double(x)
      if caller_resp == 2 then out[#out + 1] = bulk(d) else out[#out + 1] = "," .. d .. "\r\n" end
      return
    end
    x = rawget(r, "big_number")
    if type(x) == "string" then
      x = map_crlf(x)
      if caller_resp == 2 then out[#out + 1] = bulk(x) else out[#out + 1] = "(" .. x .. "\r\n" end
      return
    end
    x = rawget(r, "verbatim_string")
    if type(x) == "table" then
      local vr = real_of(x)
      local fmt = rawget(vr, "format")
      if type(fmt) == "string" then
        local str = rawget(vr, "string")
        if type(str) == "string" then
          if caller_resp == 2 then
            out[#out + 1] = bulk(str)
          else
            fmt = s_sub(cstr(fmt) .. "   ", 1, 3)
            out[#out + 1] = "=" .. (#str + 4) .. "\r\n" .. fmt .. ":" .. str .. "\r\n"
          end
          return
        end
      end
    end
    x = rawget(r, "map")
    if type(x) == "table" then
      local at = #out + 1
      out[at] = false
      local n = 0
      local mr = real_of(x)
      for k, val in next, mr do
        emit(k, out, slots + 3)
        emit(val, out, slots + 2)
        n = n + 1
      end
      out[at] = caller_resp == 2 and ("*" .. (2 * n) .. "\r\n") or ("%" .. n .. "\r\n")
      return
    end
    x = rawget(r, "set")
    if type(x) == "table" then
      local at = #out + 1
      out[at] = false
      local n = 0
      for k in next, real_of(x) do
        emit(k, out, slots + 3)
        n = n + 1
      end
      out[at] = caller_resp == 2 and ("*" .. n .. "\r\n") or ("~" .. n .. "\r\n")
      return
    end
    local at = #out + 1
    out[at] = false
    local j = 1
    while true do
      local e = rawget(r, j)
      if e == nil then break end
      emit(e, out, slots + 1)
      j = j + 1
    end
    out[at] = "*" .. (j - 1) .. "\r\n"
  else
    out[#out + 1] = null()
  end
end

-- ---------------------------------------------------------------- the redis table

local function format_arg(v)
  -- luaArgsToRedisArgv: "%.17g" (7.0), fpconv_dtoa (7.2), an integer when exact (7.4+).
  local style = cfg.arg_style
  if style == "g17" then return s_format("%.17g", v) end
  if v ~= v or v == huge or v == -huge or v == 0 then
    if v == 0 and style == "ll" then return "0" end
    return s_format("%.17g", v)
  end
  if style == "ll" and v == floor(v) and v >= -4611686018427387904 and v <= 4611686018427387904 then
    return s_format("%d", v)
  end
  return host.fpconv(s_format("%.17g", v))
end

local function command_argv(up, ...)
  local nargs = select('#', ...)
  if nargs == 0 then return nil, cfg.msg_no_args end
  local argv = {...}
  for i = 1, nargs do
    local v = argv[i]
    local t = type(v)
    if t == "number" then argv[i] = format_arg(v)
    elseif t ~= "string" then return nil, cfg.msg_bad_arg end
  end
  return argv, nargs
end

local function generic_call(raise_error, ...)
  local argv, n = command_argv(1, ...)
  if not argv then
    local e = error_table(n)
    if raise_error then error(e, 0) end
    return e
  end
  local status, reply = host.call(run_resp, unpack(argv, 1, n))
  if status ~= 0 then
    local e = error_table(reply)
    e.ignore_error_stats_update = true
    if raise_error then error(e, 0) end
    return e
  end
  local v = parse(reply, 1)
  if raise_error and s_byte(reply, 1) == 45 then error(v, 0) end
  return v
end

local redis = {}

redis.call = standin(function(...) return generic_call(true, ...) end)
redis.pcall = standin(function(...) return generic_call(false, ...) end)

local LOG_LEVELS = {"LOG_DEBUG", "LOG_VERBOSE", "LOG_NOTICE", "LOG_WARNING"}

local function log_fn(...)
  local nargs = select('#', ...)
  if nargs < 2 then raise(cfg.msg_log_arity) end
  local level = ...
  if tonumber(level) == nil then raise("First argument must be a number (log level).") end
  level = c_int(tonumber(level))
  if level < 0 or level > 3 then raise(cfg.msg_log_level) end
  local parts = {}
  for j = 2, nargs do
    local s = select(j, ...)
    local t = type(s)
    if t == "string" or t == "number" then
      if j ~= 2 then parts[#parts + 1] = " " end
      parts[#parts + 1] = tostring(s)
    end
  end
  host.log(level, t_concat(parts))
end

local function add_log(t)
  t.log = standin(log_fn)
  for i, name in ipairs(LOG_LEVELS) do t[name] = i - 1 end
end

local function add_version(t)
  for _, kv in ipairs(cfg.version_fields) do t[kv[1]] = kv[2] end
end

local function build_redis_api()
  local r = redis
  add_log(r)
  add_version(r)
  r.setresp = standin(function(...)
    local nargs = select('#', ...)
    if nargs ~= 1 then raise(cfg.msg_setresp_arity) end
    local resp = c_int(tonumber((...)) or 0)
    if resp ~= 2 and resp ~= 3 then raise("RESP version must be 2 or 3.") end
    run_resp = resp
  end)
  r.sha1hex = standin(function(...)
    if select('#', ...) ~= 1 then raise("wrong number of arguments") end
    local s = ...
    local t = type(s)
    if t ~= "string" and t ~= "number" then s = "" end
    return host.sha1hex(tostring(s))
  end)
  r.error_reply = standin(function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= "string" then
      return error_table("wrong number or type of arguments")
    end
    s = cstr(s)
    if s_byte(s, 1) ~= 45 then s = "-" .. s end
    return error_table(s)
  end)
  r.status_reply = standin(function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= "string" then
      return error_table("wrong number or type of arguments")
    end
    return {ok = s}
  end)
  r.set_repl = standin(function(...)
    if select('#', ...) ~= 1 then raise(cfg.msg_set_repl_arity) end
    local flags = c_int(tonumber((select(1, ...))) or 0)
    if flags < 0 or flags > 3 then
      raise("Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.")
    end
  end)
  r.REPL_NONE = 0
  r.REPL_AOF = 1
  r.REPL_SLAVE = 2
  r.REPL_REPLICA = 2
  r.REPL_ALL = 3
  r.acl_check_cmd = standin(function(...)
    local argv, n = command_argv(1, ...)
    if not argv then raise(n) end
    local ok = host.acl_check(unpack(argv, 1, n))
    if ok == nil then raise(cfg.msg_acl_invalid) end
    return ok
  end)
  if cfg.flavour == "eval" then
    -- The debugger's functions: without a debugging session they do nothing.
    r.breakpoint = standin(function() return false end)
    r.debug = standin(function() end)
    r.replicate_commands = standin(function() return true end)
  end
end
build_redis_api()

-- ---------------------------------------------------------------- bit (LuaBitOp)

local TWO52_51 = 6755399441055744   -- 2^52 + 2^51
local TWO32 = 4294967296

-- barg: the low 32 bits of the double n + 2^52 + 2^51, as an unsigned integer.
local function barg(narg, nargs, v)
  local n = tonumber(v)
  if n == nil or narg > nargs then typeerror(narg, "number", nargs, v, 2) end
  if n > -2251799813685248 and n < 2251799813685248 then
    return ((n + TWO52_51) - TWO52_51) % TWO32
  end
  return host.bit_barg(s_format("%.17g", n))
end

local function bret(b)
  if b >= 2147483648 then return b - TWO32 end
  return b
end

local bit = {}
local bitop = host.bitop
bit.tobit = standin(function(...) return bret(barg(1, select('#', ...), (...))) end)
bit.bnot = standin(function(...) return bret(TWO32 - 1 - barg(1, select('#', ...), (...))) end)
local function reduce(op)
  return standin(function(...)
    local nargs = select('#', ...)
    local b = barg(1, nargs, (...))
    for i = nargs, 2, -1 do b = bitop(op, b, barg(i, nargs, (select(i, ...)))) end
    return bret(b)
  end)
end
bit.band = reduce("and")
bit.bor = reduce("or")
bit.bxor = reduce("xor")
local function shift(op)
  return standin(function(...)
    local nargs = select('#', ...)
    local b = barg(1, nargs, (...))
    local n = barg(2, nargs, (select(2, ...))) % 32
    return bret(bitop(op, b, n))
  end)
end
bit.lshift = shift("shl")
bit.rshift = shift("shr")
bit.arshift = shift("sar")
bit.rol = shift("rol")
bit.ror = shift("ror")
bit.bswap = standin(function(...) return bret(bitop("bswap", barg(1, select('#', ...), (...)), 0)) end)
bit.tohex = standin(function(...)
  local nargs = select('#', ...)
  local b = barg(1, nargs, (...))
  local n = 8
  if nargs >= 2 then n = bret(barg(2, nargs, (select(2, ...)))) end
  return host.bit_tohex(b, n)
end)

-- ---------------------------------------------------------------- struct (lua_struct.c)

-- Arguments go to the Python half as (count, their Lua types joined by commas, values),
-- numbers as %.17g texts; it answers (0, results...), (1, narg, extramsg) for
-- luaL_argerror or (2, msg) for luaL_error.
local struct = {}
local function struct_fn(impl)
  return standin(function(...)
    local nargs = select('#', ...)
    local kinds, vals = {}, {}
    for i = 1, nargs do
      local v = (select(i, ...))
      local t = type(v)
      kinds[i] = t
      if t == "number" then vals[i] = s_format("%.17g", v)
      elseif t == "string" then vals[i] = v
      else vals[i] = false end
    end
    local r = pack(impl(nargs, t_concat(kinds, ","), unpack(vals, 1, nargs)))
    if r[1] == 1 then argerror(r[2], r[3]) end
    if r[1] == 2 then error(r[2], 2) end
    return unpack(r, 2, r.n)
  end)
end
struct.pack = struct_fn(host.struct_pack)
struct.unpack = struct_fn(host.struct_unpack)
struct.size = struct_fn(host.struct_size)

-- ---------------------------------------------------------------- cjson and cmsgpack

local U = {
  host = host, cfg = cfg, NULL = NULL, argerror = argerror, typeerror = typeerror,
  checknumber = checknumber, checkstring = checkstring, c_int = c_int, c_llong = c_llong,
  standin = standin, real_of = real_of, pack = pack,
}
local function load_lib(src)
  return assert(compile(src, INTERNAL, _G))(U)
end
local cjson = load_lib(libs.cjson)
local cmsgpack = load_lib(libs.cmsgpack)

-- ---------------------------------------------------------------- the globals

local UG = {}            -- what scripts see as their globals (through the proxy P_G)
local P_G = protect(UG)

local function set_global(name, value)
  if type(value) == "table" and not backing[value] then value = protect(value) end
  rawset(UG, name, value)
end

local os_lib = nil
if cfg.has_os then os_lib = {clock = os.clock} end

-- In the order Redis registers them (luaopen_base, then the libraries, then its API).
set_global("_G", P_G)
for _, name in ipairs({"assert", "collectgarbage", "error", "gcinfo"}) do set_global(name, _G[name]) end
set_global("getmetatable", getmetatable_s)
set_global("load", load_s)
set_global("loadstring", loadstring_s)
set_global("next", next_s)
set_global("pcall", pcall_s)
set_global("rawequal", rawequal)
set_global("rawget", rawget_s)
set_global("rawset", rawset_s)
set_global("select", select)
set_global("setmetatable", setmetatable_s)
for _, name in ipairs({"tonumber", "tostring", "type", "unpack", "xpcall", "_VERSION", "ipairs"}) do
  set_global(name, _G[name])
end
set_global("pairs", pairs_s)
set_global("coroutine", coroutine)
set_global("table", table)
set_global("string", string)
set_global("math", math)
if os_lib then set_global("os", os_lib) end
set_global("cjson", cjson)
set_global("struct", struct)
set_global("cmsgpack", cmsgpack)
set_global("bit", bit)
set_global("redis", redis)
if cfg.valkey then rawset(UG, "server", protect(redis)) end

-- luaProtectedTableError on the globals; the string metatable shows as a readonly table
-- whose __index is the (proxied) string library.
setmetatable(UG, error_metatable())
proxy_of[string_mt] = protect({__index = protect(string)})

-- ---------------------------------------------------------------- the error handler

-- Redis's handler, line for line (its line numbers show in errors raised inside it, e.g.
-- "err_handler_def:10: Attempt to modify a readonly table" for error(redis)), plus the
-- skipping of this file's frames on line 7.
local ERRH = [[
local dbg, INTERNAL = ...
local error_handler = function (err)
  local i, l = dbg.getinfo(2,'nSl'), 2
  if i and i.what == 'C' then
    l = 3 i = dbg.getinfo(3,'nSl')
  end while i and i.source == INTERNAL do l = l + 1 i = dbg.getinfo(l,'nSl') end
  if type(err) ~= 'table' then
    err = {err='ERR ' .. tostring(err)}  end  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end  return err
end
return error_handler
]]
-- The handler's own lines: line 10 assigns err['source'] (Redis's line 10 too).
ERRH = "\n" .. ERRH
local errh_chunk = assert(loadstring(ERRH, "@err_handler_def"))
setfenv(errh_chunk, {type = type, tostring = tostring})
local err_handler = errh_chunk({getinfo = dbg_getinfo}, INTERNAL)

if cfg.flavour == "eval" then
  rawset(UG, "__redis__err__handler", err_handler)
  if cfg.valkey then rawset(UG, "__server__err__handler", err_handler) end
end

-- ---------------------------------------------------------------- the function engine's globals

-- FUNCTION LOAD runs a library with only `redis` (register_function, log, versions) in its
-- globals; its functions later run with the full globals. Both through one environment
-- whose __index is switched (luaEngineCreate), built below once register_function exists.
local F_MT = {__index = UG, __newindex = ro_newindex}
local F_ENV = setmetatable({}, F_MT)
local LIB_API = {}
ENV = cfg.flavour == "function" and F_ENV or P_G

-- ---------------------------------------------------------------- running scripts

local api = {}
local killed = false

local in_script = false   -- the user's code (or ours it called) is on the stack

local count_hook
count_hook = function()
  if in_script and host.interrupt() then
    killed = true
    -- Every line from now on raises again, so pcall cannot keep the script alive.
    dbg_sethook(count_hook, "l")
    error(error_table(cfg.msg_killed), 0)
  end
end

-- Per-script state: the KEYS/ARGV globals (EVAL), the protocols.
local function begin(proto, hook)
  run_resp = 2
  caller_resp = proto
  killed = false
  if hook then dbg_sethook(count_hook, "", HOOK_EVERY) end
end

-- luaCallFunction after the pcall: a reply, or the error's parts.
local function finish(ok, res)
  if ok then
    local out = {}
    emit(res, out, 2)
    return true, t_concat(out)
  end
  if type(res) ~= "table" then
    local t = type(res)
    if t == "string" or t == "number" then return nil, tostring(res) end
    return nil, "execution failure"
  end
  local function field(name)
    local ok2, v = pcall(function() return res[name] end)
    if not ok2 then return nil end
    local tv = type(v)
    if tv == "string" or tv == "number" then return tostring(v) end
    return nil
  end
  return false, field("err"), field("source"), field("line")
end

function api.compile(body, chunkname)
  return compile(body, chunkname)
end

function api.run_eval(fn, proto, hook, keys, args)
  rawset(UG, "KEYS", keys)
  rawset(UG, "ARGV", args)
  begin(proto, hook)
  -- The hook goes on the line the script returns to: a line event in between would raise
  -- the kill error again, outside the protected call (Redis converts the reply in C).
  in_script = true
  local ok, res = xpcall(fn, err_handler) in_script = false dbg_sethook()
  return finish(ok, res)
end

local libraries = {}     -- library name -> {function name -> callback}

function api.run_function(lib, name, proto, hook, keys, args)
  local fn = libraries[lib][name]
  begin(proto, hook)
  in_script = true
  local ok, res = xpcall(function() return fn(keys, args) end, err_handler) in_script = false dbg_sethook()
  return finish(ok, res)
end

-- ---------------------------------------------------------------- FUNCTION LOAD (function_lua.c)

local loading = nil      -- while a library runs: {functions = {...}, order = {...}}

local FLAGS = {"no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys"}

local function verify_name(name)
  return #name > 0 and not s_find(name, "[^%w_]")
end

local function string_arg(v)
  local t = type(v)
  if t == "string" or t == "number" then return tostring(v) end
  return nil
end

local FLAG_BITS = {}
for i, name in ipairs(FLAGS) do FLAG_BITS[name] = 2 ^ (i - 1) end

-- luaRegisterFunctionReadFlags: j = 1, 2... until nil, each a known flag (any case).
local function read_flags(t)
  local seen = {}
  local j = 1
  while true do
    local v = t[j]
    if v == nil then break end
    local tv = type(v)
    if tv ~= "string" and tv ~= "number" then return nil end
    local s = s_lower(cstr(tostring(v)))
    local bitval = FLAG_BITS[s]
    if not bitval then return nil end
    seen[s] = bitval
    j = j + 1
  end
  local flags = 0
  for _, b in next, seen do flags = flags + b end
  return flags
end

local function register_function(...)
  if not loading then raise("redis.register_function can only be called on FUNCTION LOAD command") end
  local nargs = select('#', ...)
  if nargs < 1 or nargs > 2 then raise("wrong number of arguments to redis.register_function") end
  local name, desc, cb, flags
  if nargs == 1 then
    local t = ...
    if type(t) ~= "table" then
      raise("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).")
    end
    for k, v in next, real_of(t) do
      if type(k) ~= "string" and type(k) ~= "number" then
        raise("named argument key given to redis.register_function is not a string")
      end
      local key = s_lower(cstr(tostring(k)))
      if key == "function_name" then
        name = string_arg(v)
        if not name then raise("function_name argument given to redis.register_function must be a string") end
      elseif key == "description" then
        desc = string_arg(v)
        if not desc then raise("description argument given to redis.register_function must be a string") end
      elseif key == "callback" then
        if type(v) ~= "function" then raise("callback argument given to redis.register_function must be a function") end
        cb = v
      elseif key == "flags" then
        if type(v) ~= "table" then raise("flags argument to redis.register_function must be a table representing function flags") end
        flags = read_flags(v)
        if not flags then raise("unknown flag given") end
      else
        raise("unknown argument given to redis.register_function")
      end
    end
    if not name then raise("redis.register_function must get a function name argument") end
    if not cb then raise("redis.register_function must get a callback argument") end
  else
    local n, f = ...
    name = string_arg(n)
    if not name then raise("first argument to redis.register_function must be a string") end
    if type(f) ~= "function" then raise("second argument to redis.register_function must be a function") end
    cb = f
  end
  if not verify_name(cstr(name)) then
    raise("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long")
  end
  if loading.functions[name] then raise("Function already exists in the library") end
  loading.functions[name] = cb
  loading.order[#loading.order + 1] = {name, desc or false, flags or 0}
end

if cfg.flavour == "function" then
  local lib_redis = {register_function = standin(register_function)}
  add_log(lib_redis)
  add_version(lib_redis)
  setmetatable(lib_redis, error_metatable())
  rawset(LIB_API, "redis", protect(lib_redis))
  if cfg.valkey then rawset(LIB_API, "server", protect(lib_redis)) end
  setmetatable(LIB_API, error_metatable())
end

-- Run a library's code (its shebang line already cut, its line feed kept): returns the
-- functions it registered as {name, description or false, flags bits}, or nil and the
-- error text ("Error compiling function: ..." / "Error registering functions: ...").
function api.load_library(lib, code)
  local f, msg = compile(code, "@user_function", F_ENV)
  if not f then return nil, "Error compiling function: " .. msg end
  F_MT.__index = LIB_API
  loading = {functions = {}, order = {}}
  local ok, res = pcall(f)
  F_MT.__index = UG
  local done = loading
  loading = nil
  if not ok then
    local e = res
    if type(e) == "table" then e = e.err end
    if type(e) ~= "string" and type(e) ~= "number" then e = "ERR " .. tostring(res) end
    if type(res) ~= "table" then e = "ERR " .. tostring(res) end
    return nil, "Error registering functions: " .. tostring(e)
  end
  libraries[lib] = done.functions
  return done.order
end

function api.drop_library(lib)
  libraries[lib] = nil
end

api.NULL = NULL
api.protect = protect
api.UG = UG
return api
