-- cmsgpack as Redis ships it (deps/lua/src/lua_cmsgpack.c, lua-cmsgpack 0.4.0), in Lua.
--
-- Same encodings byte for byte: a number equal to its int64 cast is an integer in the
-- smallest format, any other number a float32 when it survives the round trip else a
-- float64; a table whose keys are exactly 1..n is an array (of `#t` elements, read with
-- metamethods), any other a map in `next` order; tables nested 16 deep and values of other
-- types are nil. Decoding keeps the C module's quirks (uint64 above 2^63 comes back
-- negative; 0x90-0x9f are arrays). IEEE floats and 64-bit integers go through the Python
-- half (host.mp_*), exact where Lua's doubles are not.

local U = ...
local host, argerror, typeerror, c_llong, standin, real_of, pack =
      U.host, U.argerror, U.typeerror, U.c_llong, U.standin, U.real_of, U.pack
local type, tostring, tonumber, select, error, pcall, next, rawget, unpack =
      type, tostring, tonumber, select, error, pcall, next, rawget, unpack
local s_format, s_byte, s_sub, s_char = string.format, string.byte, string.sub, string.char
local t_concat = table.concat
local floor, huge = math.floor, math.huge

local MAX_NESTING = 16
local MAXCSTACK = 8000
local TWO32 = 4294967296

local function fail(msg) error(msg, 0) end

-- ---------------------------------------------------------------- encoding

-- Big-endian bytes of a non-negative integer < 2^32.
local function be32(n)
  return s_char(floor(n / 16777216) % 256, floor(n / 65536) % 256, floor(n / 256) % 256, n % 256)
end
local function be16(n) return s_char(floor(n / 256) % 256, n % 256) end

-- The 8 bytes of an integer in [-2^63, 2^63) in two's complement (exact in doubles: the
-- high word is n / 2^32 floored, the low word the exact remainder).
local function be64(n)
  local hi = floor(n / TWO32)
  local lo = n - hi * TWO32
  return be32(hi % TWO32) .. be32(lo)
end

local function encode_int(n, out)
  if n >= 0 then
    if n <= 127 then out[#out + 1] = s_char(n)
    elseif n <= 0xff then out[#out + 1] = "\204" .. s_char(n)
    elseif n <= 0xffff then out[#out + 1] = "\205" .. be16(n)
    elseif n <= 0xffffffff then out[#out + 1] = "\206" .. be32(n)
    else out[#out + 1] = "\207" .. be64(n) end
  else
    if n >= -32 then out[#out + 1] = s_char(n + 256)
    elseif n >= -128 then out[#out + 1] = "\208" .. s_char(n + 256)
    elseif n >= -32768 then out[#out + 1] = "\209" .. be16(n + 65536)
    elseif n >= -2147483648 then out[#out + 1] = "\210" .. be32(n + TWO32)
    else out[#out + 1] = "\211" .. be64(n) end
  end
end

local function encode_number(n, out)
  -- IS_INT64_EQUIVALENT: not infinite and (int64_t)n == n.
  if n == floor(n) and n >= -9223372036854775808 and n < 9223372036854775808 then
    encode_int(n, out)
  else
    out[#out + 1] = host.mp_double(s_format("%.17g", n))
  end
end

local function encode_bytes(s, out)
  local len = #s
  if len < 32 then out[#out + 1] = s_char(0xa0 + len)
  elseif len <= 0xff then out[#out + 1] = "\217" .. s_char(len)
  elseif len <= 0xffff then out[#out + 1] = "\218" .. be16(len)
  else out[#out + 1] = "\219" .. be32(len) end
  out[#out + 1] = s
end

local function encode_array_header(n, out)
  if n <= 15 then out[#out + 1] = s_char(0x90 + n)
  elseif n <= 65535 then out[#out + 1] = "\220" .. be16(n)
  else out[#out + 1] = "\221" .. be32(n % TWO32) end
end

local function encode_map_header(n, out)
  if n <= 15 then out[#out + 1] = s_char(0x80 + n)
  elseif n <= 65535 then out[#out + 1] = "\222" .. be16(n)
  else out[#out + 1] = "\223" .. be32(n % TWO32) end
end

-- table_is_an_array: keys exactly 1..count (each a number equal to its int cast, > 0).
local function is_array(t)
  local count, max = 0, 0
  for k in next, t do
    if type(k) ~= "number" or k <= 0 or k ~= floor(k) or k > 2147483647 then return false end
    if k > max then max = k end
    count = count + 1
  end
  return max == count
end

local encode_value
encode_value = function(v, out, level)
  local t = type(v)
  if t == "table" and level == MAX_NESTING then t = "nil" end
  if t == "string" then
    encode_bytes(v, out)
  elseif t == "boolean" then
    out[#out + 1] = v and "\195" or "\194"
  elseif t == "number" then
    encode_number(v, out)
  elseif t == "table" then
    local r = real_of(v)
    if is_array(r) then
      local len = #r
      encode_array_header(len, out)
      for j = 1, len do encode_value(v[j], out, level + 1) end
    else
      local n = 0
      for _ in next, r do n = n + 1 end
      encode_map_header(n, out)
      for k, val in next, r do
        encode_value(k, out, level + 1)
        encode_value(val, out, level + 1)
      end
    end
  else
    out[#out + 1] = "\192"
  end
end

-- ---------------------------------------------------------------- decoding

local EOF, BADFMT = {}, {}

-- Decodes one value at position p (1-based) of s; returns value, next position. `slots`
-- mirrors the C module's Lua stack use, for its "too many return values" check.
local decode_value
decode_value = function(s, p, n, slots)
  if p > n then error(EOF, 0) end
  if slots + 1 > MAXCSTACK then
    error("stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)", 0)
  end
  local c = s_byte(s, p)
  local function need(k) if p + k - 1 > n then error(EOF, 0) end end
  if c == 0xcc then need(2) return s_byte(s, p + 1), p + 2
  elseif c == 0xd0 then need(2) local b = s_byte(s, p + 1) if b >= 128 then b = b - 256 end return b, p + 2
  elseif c == 0xcd then need(3) local a, b = s_byte(s, p + 1, p + 2) return a * 256 + b, p + 3
  elseif c == 0xd1 then
    need(3)
    local a, b = s_byte(s, p + 1, p + 2)
    local v = a * 256 + b
    if v >= 32768 then v = v - 65536 end
    return v, p + 3
  elseif c == 0xce then
    need(5)
    local a, b, cc, d = s_byte(s, p + 1, p + 4)
    return ((a * 256 + b) * 256 + cc) * 256 + d, p + 5
  elseif c == 0xd2 then
    need(5)
    local a, b, cc, d = s_byte(s, p + 1, p + 4)
    local v = ((a * 256 + b) * 256 + cc) * 256 + d
    if v >= 2147483648 then v = v - TWO32 end
    return v, p + 5
  elseif c == 0xcf then need(9) return host.mp_int64(s_sub(s, p + 1, p + 8), false), p + 9
  elseif c == 0xd3 then need(9) return host.mp_int64(s_sub(s, p + 1, p + 8), true), p + 9
  elseif c == 0xc0 then return nil, p + 1
  elseif c == 0xc3 then return true, p + 1
  elseif c == 0xc2 then return false, p + 1
  elseif c == 0xca then need(5) return host.mp_float(s_sub(s, p + 1, p + 4)), p + 5
  elseif c == 0xcb then need(9) return host.mp_float(s_sub(s, p + 1, p + 8)), p + 9
  elseif c == 0xd9 then
    need(2)
    local l = s_byte(s, p + 1)
    need(2 + l)
    return s_sub(s, p + 2, p + 1 + l), p + 2 + l
  elseif c == 0xda then
    need(3)
    local a, b = s_byte(s, p + 1, p + 2)
    local l = a * 256 + b
    need(3 + l)
    return s_sub(s, p + 3, p + 2 + l), p + 3 + l
  elseif c == 0xdb then
    need(5)
    local a, b, cc, d = s_byte(s, p + 1, p + 4)
    local l = ((a * 256 + b) * 256 + cc) * 256 + d
    p = p + 5
    if p + l - 1 > n then error(EOF, 0) end
    return s_sub(s, p, p + l - 1), p + l
  end
  local count, is_map, q
  if c == 0xdc or c == 0xde then
    need(3)
    local a, b = s_byte(s, p + 1, p + 2)
    count, is_map, q = a * 256 + b, c == 0xde, p + 3
  elseif c == 0xdd or c == 0xdf then
    need(5)
    local a, b, cc, d = s_byte(s, p + 1, p + 4)
    count, is_map, q = ((a * 256 + b) * 256 + cc) * 256 + d, c == 0xdf, p + 5
  elseif c < 0x80 then return c, p + 1                                 -- positive fixnum
  elseif c >= 0xe0 then return c - 256, p + 1                          -- negative fixnum
  elseif c >= 0xa0 and c <= 0xbf then                                   -- fix raw
    local l = c - 0xa0
    need(1 + l)
    return s_sub(s, p + 1, p + l), p + 1 + l
  elseif c >= 0x90 and c <= 0x9f then count, is_map, q = c - 0x90, false, p + 1
  elseif c >= 0x80 and c <= 0x8f then count, is_map, q = c - 0x80, true, p + 1
  else
    error(BADFMT, 0)
  end
  local t = {}
  if is_map then
    for _ = 1, count do
      local k, v
      k, q = decode_value(s, q, n, slots + 1)
      v, q = decode_value(s, q, n, slots + 2)
      -- lua_settable raises these without a position (luaG_runerror in a C function).
      if k == nil then error({plain = "table index is nil"}, 0) end
      if k ~= k then error({plain = "table index is NaN"}, 0) end
      t[k] = v
    end
  else
    for i = 1, count do
      local v
      v, q = decode_value(s, q, n, slots + 2)
      t[i] = v
    end
  end
  return t, q
end

-- (int)v of an integer: its low 32 bits, signed.
local function int32(v)
  v = v % TWO32
  if v >= 2147483648 then v = v - TWO32 end
  return v
end

-- mp_unpack_full: (limit, offset) as given; the offset comes first when either is set.
-- `base` is how many arguments stay on the C function's stack while it decodes.
local function unpack_full(s, limit, offset, base)
  local len = #s
  if offset < 0 or limit < 0 then
    -- (sic: the C module prints the input length as the limit)
    fail(s_format("Invalid request to unpack with offset of %d and limit of %d.",
                  int32(offset), int32(len)))
  elseif offset > len then
    fail(s_format("Start offset %d greater than input length %d.", int32(offset), int32(len)))
  end
  local decode_all = limit == 0 and offset == 0
  if decode_all then limit = 2147483647 end
  local results = {}
  local p, cnt = offset + 1, 0
  while p <= len and cnt < limit do
    local ok, v, q = pcall(decode_value, s, p, len, base + cnt)
    if not ok then
      if v == EOF then fail("Missing bytes in input.") end
      if v == BADFMT then fail("Bad data format in input.") end
      error(v, 0)
    end
    cnt = cnt + 1
    results[cnt] = v
    p = q
  end
  if decode_all then return unpack(results, 1, cnt) end
  local left = len - p + 1
  return left == 0 and -1 or (p - 1), unpack(results, 1, cnt)
end

local function guarded(...)
  local r = pack(pcall(...))
  if r[1] then return unpack(r, 2, r.n) end
  local e = r[2]
  if type(e) == "string" then error(e, 3) end
  if type(e) == "table" and e.plain then error(e.plain, 0) end
  error(e, 0)
end

local M = {}
M.pack = standin(function(...)
  local nargs = select('#', ...)
  if nargs == 0 then argerror(0, "MessagePack pack needs input.") end
  local out = {}
  for i = 1, nargs do encode_value((select(i, ...)), out, 0) end
  return (t_concat(out))
end)

local function checkstring1(nargs, s)
  local t = type(s)
  if nargs < 1 or (t ~= "string" and t ~= "number") then typeerror(1, "string", nargs, s, 2) end
  return tostring(s)
end

local function checkinteger(narg, nargs, v)
  local n = tonumber(v)
  if n == nil or narg > nargs then typeerror(narg, "number", nargs, v, 2) end
  return c_llong(n)
end

M.unpack = standin(function(...)
  local nargs = select('#', ...)
  local s = checkstring1(nargs, (...))
  return guarded(unpack_full, s, 0, 0, nargs)
end)
M.unpack_one = standin(function(...)
  local nargs = select('#', ...)
  local s, off = ...
  local offset = 0
  if nargs >= 2 and off ~= nil then offset = checkinteger(2, nargs, off) end
  s = checkstring1(math.min(nargs, 1), s)
  return guarded(unpack_full, s, 1, offset, 1)
end)
M.unpack_limit = standin(function(...)
  local nargs = select('#', ...)
  local s, lim, off = ...
  local limit = checkinteger(2, nargs, lim)
  local offset = 0
  if nargs >= 3 and off ~= nil then offset = checkinteger(3, nargs, off) end
  s = checkstring1(math.min(nargs, 1), s)
  return guarded(unpack_full, s, limit, offset, 1)
end)
M._NAME = "cmsgpack"
M._VERSION = "lua-cmsgpack 0.4.0"
M._COPYRIGHT = U.cfg.cmsgpack_copyright
M._DESCRIPTION = "MessagePack C implementation for Lua"
return M
