-- cjson as Redis ships it (deps/lua/src/lua_cjson.c, Lua CJSON 2.1.0), in Lua.
--
-- Loaded by env.lua with its utilities. Same defaults (sparse arrays ratio 2 / safe 10,
-- nesting 1000 both ways, 14 significant digits, NaN/Inf refused on encode and accepted on
-- decode), same configuration functions (whose settings persist in the Lua state, as the C
-- module's upvalue does), same error texts, and the same number scanning (strtod: hex,
-- inf/nan, a NUL byte ends the text). Objects are written in `next` order, which is the C
-- module's `lua_next` order. Errors are raised from the stand-in's frame with the caller's
-- position, as luaL_error does.

local U = ...
local NULL, argerror, typeerror = U.NULL, U.argerror, U.typeerror
local c_llong, standin, real_of = U.c_llong, U.standin, U.real_of
local type, tostring, tonumber, select, error, pcall, next, rawget, rawset, setmetatable =
      type, tostring, tonumber, select, error, pcall, next, rawget, rawset, setmetatable
local s_format, s_byte, s_sub, s_find, s_char, s_gsub, s_lower, s_match =
      string.format, string.byte, string.sub, string.find, string.char, string.gsub,
      string.lower, string.match
local t_concat = table.concat
local floor, huge = math.floor, math.huge

local MAXCSTACK = 8000
local INT_MAX = 2147483647

local TOKEN_NAMES = {
  "T_OBJ_BEGIN", "T_OBJ_END", "T_ARR_BEGIN", "T_ARR_END", "T_STRING", "T_NUMBER",
  "T_BOOLEAN", "T_NULL", "T_COLON", "T_COMMA", "T_END", "T_WHITESPACE", "T_ERROR",
  "T_UNKNOWN",
}

local ESCAPES = {["\""] = "\\\"", ["\\"] = "\\\\", ["/"] = "\\/", ["\b"] = "\\b",
                 ["\t"] = "\\t", ["\n"] = "\\n", ["\f"] = "\\f", ["\r"] = "\\r",
                 ["\127"] = "\\u007f"}
for i = 0, 31 do
  local c = s_char(i)
  if not ESCAPES[c] then ESCAPES[c] = s_format("\\u%04x", i) end
end
local ESCAPE_PATTERN = "[%z\1-\31\"/\\\127]"

local UNESCAPES = {["\""] = "\"", ["\\"] = "\\", ["/"] = "/", b = "\b", t = "\t",
                   n = "\n", f = "\f", r = "\r"}

-- (int)(lua_Integer)d: json_integer_option stores luaL_checkinteger's value in an int.
local function to_int32(d)
  local v = c_llong(d) % 4294967296
  if v >= 2147483648 then v = v - 4294967296 end
  return v
end

local function new_module()
  -- json_config_t, with Redis's defaults.
  local cfg = {
    sparse_convert = 0, sparse_ratio = 2, sparse_safe = 10,
    encode_max_depth = 1000, decode_max_depth = 1000,
    encode_invalid_numbers = 0, decode_invalid_numbers = 1,
    encode_keep_buffer = 1, precision = 14,
  }

  -- ------------------------------------------------------------ configuration

  -- json_arg_init: at most `args` arguments.
  local function arg_init(nargs, args)
    if nargs > args then argerror(args + 1, "found too many arguments", 2) end
  end

  local function integer_option(narg, nargs, v, key, min, max)
    if v ~= nil then
      local n = tonumber(v)
      if n == nil or narg > nargs then typeerror(narg, "number", nargs, v, 2) end
      local value = to_int32(n)
      if not (min <= value and value <= max) then
        argerror(1, s_format("expected integer between %d and %d", min, max), 2)
      end
      cfg[key] = value
    end
    return cfg[key]
  end

  local BOOL_OPTIONS = {"off", "on"}
  local function enum_option(narg, nargs, v, key, options)
    local bool_true = 1
    options = options or BOOL_OPTIONS
    if v ~= nil then
      if type(v) == "boolean" then
        cfg[key] = v and bool_true or 0
      else
        local t = type(v)
        if t ~= "string" and t ~= "number" then typeerror(narg, "string", nargs, v, 2) end
        local name, found = tostring(v), nil
        for i, opt in ipairs(options) do
          if opt == name then found = i - 1 end
        end
        if not found then argerror(narg, s_format("invalid option '%s'", name), 2) end
        cfg[key] = found
      end
    end
    local s = cfg[key]
    if s == 0 or s == bool_true then return s == bool_true end
    return options[s + 1]
  end

  local M = {}

  -- ------------------------------------------------------------ encoding

  local encode_number, encode_value

  local function fail(msg) error(msg, 0) end

  local function cannot(v, reason)
    fail(s_format("Cannot serialise %s: %s", type(v), reason))
  end

  encode_number = function(num, out)
    local inv = cfg.encode_invalid_numbers
    if inv == 0 then
      if num ~= num or num == huge or num == -huge then cannot(num, "must not be NaN or Inf") end
    elseif inv == 1 then
      if num ~= num then out[#out + 1] = "nan" return end
    else
      if num ~= num or num == huge or num == -huge then out[#out + 1] = "null" return end
    end
    out[#out + 1] = s_format("%." .. cfg.precision .. "g", num)
  end

  local function encode_string(s, out)
    out[#out + 1] = "\"" .. s_gsub(s, ESCAPE_PATTERN, ESCAPES) .. "\""
  end

  -- lua_array_length: the largest index of a table of positive integer keys, or -1.
  local function array_length(t)
    local max, items = 0, 0
    for k in next, t do
      if type(k) == "number" and k ~= 0 and floor(k) == k and k >= 1 then
        if k > max then max = k end
        items = items + 1
      else
        return -1
      end
    end
    if cfg.sparse_ratio > 0 and max > items * cfg.sparse_ratio and max > cfg.sparse_safe then
      if cfg.sparse_convert == 0 then fail("Cannot serialise table: excessively sparse array") end
      return -1
    end
    return max
  end

  encode_value = function(v, out, depth, slots)
    local t = type(v)
    if t == "string" then
      encode_string(v, out)
    elseif t == "number" then
      encode_number(v, out)
    elseif t == "boolean" then
      out[#out + 1] = v and "true" or "false"
    elseif t == "table" then
      depth = depth + 1
      if depth > cfg.encode_max_depth or slots + 3 > MAXCSTACK then
        fail(s_format("Cannot serialise, excessive nesting (%d)", depth))
      end
      local r = real_of(v)
      local len = array_length(r)
      if len > 0 then
        out[#out + 1] = "["
        for i = 1, len do
          if i > 1 then out[#out + 1] = "," end
          encode_value(rawget(r, i), out, depth, slots + 1)
        end
        out[#out + 1] = "]"
      else
        out[#out + 1] = "{"
        local comma = false
        for k, val in next, r do
          if comma then out[#out + 1] = "," else comma = true end
          local kt = type(k)
          if kt == "number" then
            out[#out + 1] = "\""
            encode_number(k, out)
            out[#out + 1] = "\":"
          elseif kt == "string" then
            encode_string(k, out)
            out[#out + 1] = ":"
          else
            cannot(k, "table key must be a number or string")
          end
          encode_value(val, out, depth, slots + 2)
        end
        out[#out + 1] = "}"
      end
    elseif t == "nil" or v == NULL then
      out[#out + 1] = "null"
    else
      cannot(v, "type not supported")
    end
  end

  local function encode(v)
    local out = {}
    encode_value(v, out, 0, 1)
    return t_concat(out)
  end

  -- ------------------------------------------------------------ decoding

  -- strtod's longest accepted prefix of s at p (glibc, C locale): the end position after
  -- it, or nil when nothing converts.
  local function strtod_end(s, p)
    local q = p
    local c = s_byte(s, q)
    if c == 43 or c == 45 then q = q + 1 end
    local rest = s_lower(s_sub(s, q, q + 7))
    if s_sub(rest, 1, 8) == "infinity" then return q + 8 end
    if s_sub(rest, 1, 3) == "inf" then return q + 3 end
    if s_sub(rest, 1, 3) == "nan" then
      local e = q + 3
      local paren = s_match(s, "^%([%w_]*%)", e)
      if paren then e = e + #paren end
      return e
    end
    if s_sub(rest, 1, 2) == "0x" then
      local h = s_match(s, "^%x*%.?%x*", q + 2)
      if h and s_find(h, "%x") then
        local e = q + 2 + #h
        local ex = s_match(s, "^[pP][+-]?%d+", e)
        if ex then e = e + #ex end
        return e
      end
      return q + 1   -- just the "0"
    end
    local d = s_match(s, "^%d*%.?%d*", q)
    if not d or not s_find(d, "%d") then return nil end
    local e = q + #d
    local ex = s_match(s, "^[eE][+-]?%d+", e)
    if ex then e = e + #ex end
    return e
  end

  -- json_is_invalid_number
  local function invalid_number(s, p)
    local c = s_byte(s, p)
    if c == 43 then return true end
    if c == 45 then p = p + 1 c = s_byte(s, p) end
    if c == 48 then
      local c2 = s_byte(s, p + 1) or 0
      if c2 == 120 or c2 == 88 or (c2 >= 48 and c2 <= 57) then return true end
      return false
    elseif c == nil or c <= 57 then
      return false
    end
    local w = s_lower(s_sub(s, p, p + 2))
    return w == "inf" or w == "nan"
  end

  local CH2TOKEN = {[123] = 1, [125] = 2, [91] = 3, [93] = 4, [44] = 10, [58] = 9}
  local UNKNOWN = {[102] = true, [105] = true, [73] = true, [110] = true, [78] = true,
                   [116] = true, [34] = true, [43] = true, [45] = true}
  for i = 48, 57 do UNKNOWN[i] = true end

  local function decode(s)
    local n = #s
    if n >= 2 and (s_byte(s, 1) == 0 or s_byte(s, 2) == 0) then
      fail("JSON parser does not support UTF-16 or UTF-32")
    end
    local pos = 1          -- 1-based position of the next character
    local depth = 0
    -- token: kind (index into TOKEN_NAMES), value, index (1-based for messages)
    local kind, value, index

    local function byte_at(p)
      if p > n then return 0 end
      return s_byte(s, p)
    end

    local function set_error(what)
      kind, value, index = 13, what, pos
    end

    local function string_token()
      pos = pos + 1
      local parts = {}
      while true do
        local c = byte_at(pos)
        if c == 34 then break end
        if c == 0 then set_error("unexpected end of string") return end
        if c == 92 then
          local e = s_char(byte_at(pos + 1))
          if e == "u" then
            local function hex4(p)
              local h = s_sub(s, p, p + 3)
              if #h < 4 or not s_find(h, "^%x%x%x%x$") then return nil end
              return tonumber(h, 16)
            end
            local cp = hex4(pos + 2)
            local len = 6
            if cp and cp >= 0xD800 and cp <= 0xDFFF then
              if cp >= 0xDC00 then cp = nil
              elseif byte_at(pos + 6) ~= 92 or byte_at(pos + 7) ~= 117 then cp = nil
              else
                local lo = hex4(pos + 8)
                if not lo or lo < 0xDC00 or lo > 0xDFFF then cp = nil
                else
                  cp = (cp - 0xD800) * 1024 + (lo - 0xDC00) + 0x10000
                  len = 12
                end
              end
            end
            if not cp then set_error("invalid unicode escape code") return end
            local u
            if cp <= 0x7F then u = s_char(cp)
            elseif cp <= 0x7FF then
              u = s_char(floor(cp / 64) + 0xC0, cp % 64 + 0x80)
            elseif cp <= 0xFFFF then
              u = s_char(floor(cp / 4096) + 0xE0, floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
            else
              u = s_char(floor(cp / 262144) + 0xF0, floor(cp / 4096) % 64 + 0x80,
                         floor(cp / 64) % 64 + 0x80, cp % 64 + 0x80)
            end
            parts[#parts + 1] = u
            pos = pos + len
          else
            local r = UNESCAPES[e]
            if not r then set_error("invalid escape code") return end
            parts[#parts + 1] = r
            pos = pos + 2
          end
        else
          local q = s_find(s, "[%z\"\\]", pos)
          if not q then q = n + 1 end
          parts[#parts + 1] = s_sub(s, pos, q - 1)
          pos = q
        end
      end
      pos = pos + 1
      kind, value = 5, t_concat(parts)
    end

    local function number_token()
      local e = strtod_end(s, pos)
      if not e then set_error("invalid number") return end
      kind, value = 6, tonumber(s_sub(s, pos, e - 1))
      pos = e
    end

    local function next_token()
      local c = byte_at(pos)
      while c == 32 or c == 9 or c == 10 or c == 13 do
        pos = pos + 1
        c = byte_at(pos)
      end
      index = pos
      if c == 0 then kind = 11 return end
      local k = CH2TOKEN[c]
      if k then kind = k pos = pos + 1 return end
      if not UNKNOWN[c] then set_error("invalid token") return end
      if c == 34 then string_token() return end
      if c == 45 or (c >= 48 and c <= 57) then
        if cfg.decode_invalid_numbers == 0 and invalid_number(s, pos) then
          set_error("invalid number")
          return
        end
        number_token()
        return
      end
      if s_sub(s, pos, pos + 3) == "true" then kind, value = 7, true pos = pos + 4 return end
      if s_sub(s, pos, pos + 4) == "false" then kind, value = 7, false pos = pos + 5 return end
      if s_sub(s, pos, pos + 3) == "null" then kind, value = 8, nil pos = pos + 4 return end
      if cfg.decode_invalid_numbers ~= 0 and invalid_number(s, pos) then
        number_token()
        return
      end
      set_error("invalid token")
    end

    local function parse_error(expected)
      local found = kind == 13 and value or TOKEN_NAMES[kind]
      fail(s_format("Expected %s but found %s at character %d", expected, found, index))
    end

    local process_value

    local function descend(slots, need)
      depth = depth + 1
      if depth > cfg.decode_max_depth or slots + need > MAXCSTACK then
        fail(s_format("Found too many nested data structures (%d) at character %d",
                      depth, pos - 1))
      end
    end

    local function parse_object(slots)
      descend(slots, 3)
      local t = {}
      next_token()
      if kind == 2 then depth = depth - 1 return t end
      while true do
        if kind ~= 5 then parse_error("object key string") end
        local key = value
        next_token()
        if kind ~= 9 then parse_error("colon") end
        next_token()
        rawset(t, key, process_value(slots + 2))
        next_token()
        if kind == 2 then depth = depth - 1 return t end
        if kind ~= 10 then parse_error("comma or object end") end
        next_token()
      end
    end

    local function parse_array(slots)
      descend(slots, 2)
      local t = {}
      next_token()
      if kind == 4 then depth = depth - 1 return t end
      local i = 1
      while true do
        rawset(t, i, process_value(slots + 1))
        i = i + 1
        next_token()
        if kind == 4 then depth = depth - 1 return t end
        if kind ~= 10 then parse_error("comma or array end") end
        next_token()
      end
    end

    process_value = function(slots)
      if kind == 5 or kind == 6 or kind == 7 then return value end
      if kind == 1 then return parse_object(slots) end
      if kind == 3 then return parse_array(slots) end
      if kind == 8 then return NULL end
      parse_error("value")
    end

    next_token()
    local v = process_value(1)
    next_token()
    if kind ~= 11 then parse_error("the end") end
    return v
  end

  -- ------------------------------------------------------------ the module table

  -- Runs `fn` (which raises position-less messages) and re-raises its error at the
  -- stand-in's caller, as luaL_error does; an error table (SCRIPT KILL) passes unchanged.
  local function guarded(fn, arg)
    local ok, res = pcall(fn, arg)
    if ok then return res end
    if type(res) == "string" then error(res, 3) end
    error(res, 0)
  end

  M.encode = standin(function(...)
    local nargs = select('#', ...)
    if nargs ~= 1 then argerror(1, "expected 1 argument") end
    return (guarded(encode, (...)))
  end)
  M.decode = standin(function(...)
    local nargs = select('#', ...)
    if nargs ~= 1 then argerror(1, "expected 1 argument") end
    local s = ...
    local t = type(s)
    if t ~= "string" and t ~= "number" then typeerror(1, "string", nargs, s) end
    return (guarded(decode, tostring(s)))
  end)
  M.encode_sparse_array = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 3)
    local a, b, c = ...
    local convert = enum_option(1, nargs, a, "sparse_convert")
    local ratio = integer_option(2, nargs, b, "sparse_ratio", 0, INT_MAX)
    local safe = integer_option(3, nargs, c, "sparse_safe", 0, INT_MAX)
    return convert, ratio, safe
  end)
  M.encode_max_depth = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (integer_option(1, nargs, (...), "encode_max_depth", 1, INT_MAX))
  end)
  M.decode_max_depth = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (integer_option(1, nargs, (...), "decode_max_depth", 1, INT_MAX))
  end)
  M.encode_number_precision = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (integer_option(1, nargs, (...), "precision", 1, 14))
  end)
  M.encode_keep_buffer = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (enum_option(1, nargs, (...), "encode_keep_buffer"))
  end)
  M.encode_invalid_numbers = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (enum_option(1, nargs, (...), "encode_invalid_numbers", {"off", "on", "null"}))
  end)
  M.decode_invalid_numbers = standin(function(...)
    local nargs = select('#', ...)
    arg_init(nargs, 1)
    return (enum_option(1, nargs, (...), "decode_invalid_numbers"))
  end)
  M.new = standin(function() return new_module() end)
  M.null = NULL
  M._NAME = "cjson"
  M._VERSION = "2.1.0"
  return M
end

return new_module()
