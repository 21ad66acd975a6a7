"""The scripts of the scripting differential test (tests/test_scripting_differential.py).

Each case is one command (EVAL, EVALSHA, FCALL, SCRIPT, FUNCTION...) sent as it is to a
real read-only replica and to the relay, whose replies must be the same bytes, in RESP2 and
RESP3. They run in this order, twice (RESP2 then RESP3): math.random's sequence and
cjson's settings carry over from one script to the next on both sides alike.

`DATA` is written on the master before the replica and the relay sync (it reaches them in
the snapshot), with `SNAPSHOT_LIBRARY`; `STREAM_LIBRARY` is loaded once they are in sync
(it reaches them through the replication stream). Nothing here depends on the order of a
hash table (KEYS, SMEMBERS, HGETALL of big hashes are sorted inside the scripts), on
randomness, on time, or on the server's memory.

`ORDER_DEPENDENT` marks the cases whose reply follows the order of a Lua table's string
keys (pairs, cjson objects, msgpack maps, RESP3 maps and sets) or of a small hash or set:
Redis's Lua hashes strings as stock Lua 5.1 does, so those are byte-exact against Redis;
Valkey's Lua uses murmur32 (deps/lua/src/lstring.c) and its small hashes loaded from a
snapshot keep another order, so against Valkey they are compared as unordered data.
"""

from __future__ import annotations

DATA: list[list[str]] = [
    ["SET", "str", "hello"],
    ["SET", "num", "42"],
    ["SET", "float", "3.25"],
    ["SET", "neg", "-17"],
    ["SET", "big", "123456789012345678"],
    ["SET", "bin", "a\x00b\r\nc"],
    ["SET", "json", '{"a":1,"b":[1,2,{"c":null}],"d":"x\\u00e9y","e":1.5e3}'],
    ["RPUSH", "list", "a", "b", "c", "b", "d"],
    ["HSET", "hash", "f1", "v1", "f2", "2", "f3", "3.5"],
    ["SADD", "set", "x", "y", "z"],
    ["SADD", "intset", "1", "2", "3", "10"],
    ["HSET", "hash1", "only", "field"],
    ["SADD", "set1", "only"],
    ["ZADD", "zset", "1", "one", "2", "two", "2.5", "twoandhalf", "-1", "minus", "inf", "top"],
    ["XADD", "stream", "1-1", "f", "v1"],
    ["XADD", "stream", "2-1", "f", "v2", "g", "w"],
    ["XGROUP", "CREATE", "stream", "grp", "0"],
    ["GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"],
    ["PFADD", "hll", "a", "b", "c", "d"],
    ["SETBIT", "bits", "7", "1"],
    ["SETBIT", "bits", "100", "1"],
    ["SET", "k1", "v1"],
    ["SET", "k2", "v2"],
    ["SELECT", "1"],
    ["SET", "db1key", "in db 1"],
    ["SELECT", "0"],
]

SNAPSHOT_LIBRARY = """#!lua name=snaplib
local function get(keys, args) return redis.call('GET', keys[1]) end
local function both(keys, args) return {keys, args} end
local function boom(keys, args) error('boom in a function') end
local function calls_write(keys, args) return redis.call('SET', keys[1], 'x') end
local function pcall_write(keys, args) return redis.pcall('SET', keys[1], 'x') end
local function kind(keys, args)
  local ok, err = pcall(function() return KEYS end)
  return {tostring(ok), tostring(err)}
end
local function conv(keys, args) return {1, 'two', {3}, true, false, {ok='fine'}} end
local function resp3(keys, args)
  redis.setresp(3)
  return {redis.call('HGETALL', keys[1]), redis.call('ZSCORE', keys[2], 'two')}
end
redis.register_function('snap_get', get)
redis.register_function{function_name='snap_ro', callback=get, flags={'no-writes'}}
redis.register_function{function_name='snap_both', callback=both,
                        flags={'no-writes', 'allow-stale'}, description='keys and args'}
redis.register_function{function_name='snap_boom', callback=boom, flags={'no-writes'}}
redis.register_function{function_name='snap_calls_write', callback=calls_write,
                        flags={'no-writes'}}
redis.register_function{function_name='snap_pcall_write', callback=pcall_write,
                        flags={'no-writes'}}
redis.register_function{function_name='snap_kind', callback=kind, flags={'no-writes'}}
redis.register_function{function_name='snap_conv', callback=conv, flags={'no-writes'}}
redis.register_function{function_name='snap_resp3', callback=resp3, flags={'no-writes'}}
"""

STREAM_LIBRARY = """#!lua name=streamlib
local counter = 0
redis.register_function{function_name='stream_len', flags={'no-writes', 'allow-oom'},
  callback=function(keys, args) return redis.call('XLEN', keys[1]) end}
redis.register_function{function_name='stream_cjson', flags={'NO-WRITES'},
  callback=function(keys, args) return cjson.encode(cjson.decode(args[1])) end}
redis.register_function{function_name='stream_upvalue', flags={'no-writes'},
  callback=function(keys, args) counter = counter + 1 return counter end}
redis.register_function{function_name='stream_rand', flags={'no-writes'},
  callback=function(keys, args) return tostring(math.random()) end}
"""

# A library with one function: FUNCTION LIST of it is byte-exact (with several, the order
# of functions is a hash table's on a real server).
SINGLE_LIBRARY = """#!lua name=single
redis.register_function{function_name='single_fn', callback=function() return 'single' end,
                        flags={'no-writes', 'allow-stale', 'no-cluster', 'allow-cross-slot-keys',
                               'allow-oom'}, description='the only one'}
"""


def _eval(src: str, keys: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> list[str]:
    return ["EVAL", src, str(len(keys)), *keys, *args]


def _ro(src: str, keys: tuple[str, ...] = (), args: tuple[str, ...] = ()) -> list[str]:
    return ["EVAL_RO", src, str(len(keys)), *keys, *args]


def _ret(expr: str) -> list[str]:
    return _eval("return " + expr)


ORDER_DEPENDENT: set[tuple[str, ...]] = set()


def cases(*, redis70: bool = False) -> list[list[str]]:
    """The cases, in order. A raised error table without a string `err` crashes Redis 7.0
    (it formats a NULL message): `redis70` leaves those out."""
    c: list[list[str]] = []
    add = c.append

    def order(argv: list[str]) -> None:
        ORDER_DEPENDENT.add(tuple(argv))
        add(argv)

    if not redis70:
        add(_eval("error({err=5})"))
        add(_eval("error({1})"))
        add(_eval("error({})"))
        add(_eval("error(setmetatable({}, {__index=function() return 'meta' end}))"))

    # ---- conversions Lua -> reply
    for expr in [
        "1",
        "-1",
        "0",
        "3.99",
        "-3.99",
        "1e15",
        "2^53",
        "2^63",
        "-2^63",
        "1/0",
        "-1/0",
        "0/0",
        "-0.0",
        "'str'",
        "''",
        "'a\\0b'",
        "true",
        "false",
        "nil",
        "{}",
        "{1,2,3}",
        "{1,nil,3}",
        "{nil,2}",
        "{1,{2,{3,{4}}}}",
        "{'a',{},'b'}",
        "{x=1}",
        "{1,2,x=3}",
        "{[1]=1,[3]=3}",
        "{true,false,nil,true}",
        "{ok='OK'}",
        "{ok='with\\r\\nnewline'}",
        "{ok='a\\0b'}",
        "{ok=5}",
        "{err='ERR custom'}",
        "{err='no code'}",
        "{err='MYCODE x'}",
        "{err='trailing\\r\\n'}",
        "{err='mid\\r\\ndle'}",
        "{err=7}",
        "{err=''}",
        "{err='x', ok='y'}",
        "{ok='y', double=1}",
        "{double=1.5}",
        "{double=0.1}",
        "{double=1/0}",
        "{double=-1/0}",
        "{double=0/0}",
        "{double=-(0/0)}",
        "{double=1e300}",
        "{double=-0.0}",
        "{double=100}",
        "{double='1.5'}",
        "{big_number='12345678901234567890'}",
        "{big_number='a\\r\\nb'}",
        "{big_number=12}",
        "{verbatim_string={format='txt', string='hi'}}",
        "{verbatim_string={format='markdown', string='#'}}",
        "{verbatim_string={format='ab', string='x'}}",
        "{verbatim_string={format='txt'}}",
        "{map={a=1}}",
        "{map={}}",
        "{map={[1]='one'}}",
        "{map={a={map={b=true}}}}",
        "{set={a=true}}",
        "{set={}}",
        "{set={[5]=true}}",
        "{map={a=1}, set={b=true}}",
        "{{map={x='y'}}, {set={z=true}}, {double=2.5}}",
        "{1, {err='nested error'}, 3}",
        "{1, {ok='nested status'}}",
        "redis",
        "_G",
        "cjson.null",
        "{cjson.null}",
        "print",
        "coroutine.create(print)",
        "function() end",
        "string.rep('x', 100)",
        "#KEYS",
        "#ARGV",
        "setmetatable({}, {__index=function() return 1 end})",
        "setmetatable({1}, {__len=function() return 9 end})",
        "unpack({1,2,3})",
        "(function() return 1, 2 end)()",
        "{(function() return 1, 2 end)()}",
        "math.huge",
        "math.pi",
        "2^31",
        "-2^31",
        "2^32 + 0.5",
        "-(2^62)",
    ]:
        add(_ret(expr))
    order(_eval("redis.setresp(3) return {map={a=1, b={set={c=true, d=true}}}}"))
    order(_eval("return {map={a=1, b=2, c=3}}"))
    order(_eval("return {set={a=true, b=true, c=true}}"))
    for expr in [
        "{true, false, nil}",
        "{double=2.5}",
        "{map={a=1}}",
        "{big_number='99'}",
        "{verbatim_string={format='txt', string='v'}}",
        "{set={x=true}}",
        "true",
        "false",
        "{ok='OK'}",
        "{err='ERR x'}",
    ]:
        add(_eval("redis.setresp(3) return " + expr))
        add(_eval("redis.setresp(2) return " + expr))

    # ---- redis.call of every read family
    reads = [
        "'GET', 'str'",
        "'GET', 'nokey'",
        "'GET', 'list'",
        "'MGET', 'str', 'nokey', 'num'",
        "'STRLEN', 'str'",
        "'GETRANGE', 'str', 1, 3",
        "'GETRANGE', 'str', -3, -1",
        "'EXISTS', 'str', 'nokey', 'list'",
        "'TYPE', 'zset'",
        "'TYPE', 'nokey'",
        "'TTL', 'str'",
        "'PTTL', 'nokey'",
        "'GET', 'bin'",
        "'GET', 'big'",
        "'GET', 'float'",
        "'LRANGE', 'list', 0, -1",
        "'LRANGE', 'list', 1, 2",
        "'LLEN', 'list'",
        "'LINDEX', 'list', -1",
        "'LPOS', 'list', 'b'",
        "'LPOS', 'list', 'b', 'COUNT', 0",
        "'LINDEX', 'list', 99",
        "'HGET', 'hash', 'f1'",
        "'HMGET', 'hash', 'f1', 'nope', 'f2'",
        "'HLEN', 'hash'",
        "'HEXISTS', 'hash', 'f2'",
        "'HSTRLEN', 'hash', 'f3'",
        "'HGET', 'hash', 'nope'",
        "'SCARD', 'set'",
        "'SISMEMBER', 'set', 'x'",
        "'SMISMEMBER', 'set', 'x', 'q'",
        "'SCARD', 'intset'",
        "'ZCARD', 'zset'",
        "'ZSCORE', 'zset', 'twoandhalf'",
        "'ZSCORE', 'zset', 'top'",
        "'ZSCORE', 'zset', 'nope'",
        "'ZMSCORE', 'zset', 'one', 'nope', 'minus'",
        "'ZRANGE', 'zset', 0, -1",
        "'ZRANGE', 'zset', 0, -1, 'WITHSCORES'",
        "'ZRANGEBYSCORE', 'zset', '(1', '+inf', 'WITHSCORES'",
        "'ZRANK', 'zset', 'two'",
        "'ZREVRANK', 'zset', 'two'",
        "'ZCOUNT', 'zset', '-inf', 2",
        "'ZRANGEBYLEX', 'zset', '-', '+'",
        "'ZRANGE', 'zset', 'inf', '-inf', 'BYSCORE', 'REV'",
        "'XLEN', 'stream'",
        "'XRANGE', 'stream', '-', '+'",
        "'XREVRANGE', 'stream', '+', '-', 'COUNT', 1",
        "'XREAD', 'STREAMS', 'stream', '0'",
        "'XREAD', 'COUNT', 1, 'STREAMS', 'stream', '1-1'",
        "'XPENDING', 'stream', 'grp'",
        "'GEODIST', 'geo', 'Palermo', 'Catania', 'km'",
        "'GEOHASH', 'geo', 'Catania'",
        "'GEOSEARCH', 'geo', 'FROMMEMBER', 'Palermo', 'BYRADIUS', 200, 'km', 'ASC'",
        "'GEORADIUS_RO', 'geo', 15, 37, 200, 'km', 'WITHDIST', 'ASC'",
        "'PFCOUNT', 'hll'",
        "'GETBIT', 'bits', 7",
        "'BITCOUNT', 'bits'",
        "'BITPOS', 'bits', 1",
        "'BITFIELD_RO', 'bits', 'GET', 'u8', 0",
        "'DBSIZE'",
        "'ECHO', 'echoed'",
        "'PING'",
        "'PING', 'msg'",
        "'SORT_RO', 'list', 'ALPHA'",
        "'SORT_RO', 'intset'",
        "'LCS', 'k1', 'k2'",
        "'GET', 'json'",
        "'OBJECT', 'FREQ', 'str'",
        "'TOUCH', 'str'",
        "'EXPIRETIME', 'str'",
        "'HRANDFIELD', 'nokey'",
        "'SRANDMEMBER', 'nokey'",
        "'ZRANDMEMBER', 'nokey'",
        "'XINFO', 'GROUPS', 'stream'",
    ]
    for r in reads:
        add(_eval(f"return redis.call({r})"))
    order(_eval("redis.setresp(3) return redis.call('HGETALL', 'hash')"))
    add(_eval("redis.setresp(3) return redis.call('ZRANGE', 'zset', 0, -1, 'WITHSCORES')"))
    order(_eval("redis.setresp(3) return redis.call('SMEMBERS', 'intset')"))
    order(_eval("return redis.call('SMEMBERS', 'intset')"))
    add(_eval("redis.setresp(3) return redis.call('HGETALL', 'hash1')"))
    add(_eval("redis.setresp(3) return redis.call('SMEMBERS', 'set1')"))
    add(_eval("redis.setresp(3) return redis.call('ZSCORE', 'zset', 'twoandhalf')"))
    add(_eval("redis.setresp(3) return redis.call('GET', 'nokey')"))
    add(_eval("redis.setresp(3) return redis.call('SISMEMBER', 'set', 'x')"))
    add(_eval("redis.setresp(3) return redis.call('XREAD', 'STREAMS', 'stream', '0')"))
    add(_eval("redis.setresp(3) return redis.call('GEODIST', 'geo', 'Palermo', 'Catania')"))
    add(
        _eval(
            "redis.setresp(3) local r = redis.call('HGETALL', 'hash') "
            "local t = {} for k, v in pairs(r.map) do t[#t+1] = k .. '=' .. v end "
            "table.sort(t) return t"
        )
    )
    add(
        _eval(
            "redis.setresp(3) local r = redis.call('MEMORY', 'DOCTOR') "
            "return {r.verbatim_string.format, type(r.verbatim_string.string)}"
        )
    )
    add(
        _eval(
            "redis.setresp(3) local r = redis.call('ZSCORE', 'zset', 'one') "
            "return {type(r), type(r.double), r.double}"
        )
    )
    add(
        _eval(
            "redis.setresp(3) local r = redis.call('SMEMBERS', 'intset') "
            "local t = {} for k in pairs(r.set) do t[#t+1] = k end table.sort(t) return t"
        )
    )
    add(_eval("local t = redis.call('KEYS', '*') table.sort(t) return t"))
    add(_eval("local t = redis.call('SMEMBERS', 'set') table.sort(t) return t"))
    add(_eval("local t = redis.call('HKEYS', 'hash') table.sort(t) return t"))
    add(_eval("return redis.call('GET', KEYS[1])", ("str",)))
    add(_eval("return {KEYS[1], KEYS[2], ARGV[1], ARGV[2], #KEYS, #ARGV}", ("a", "b"), ("c", "d")))
    add(_eval("return redis.call('SELECT', 1)"))
    add(_eval("redis.call('SELECT', 1) return redis.call('GET', 'db1key')"))
    add(_eval("return redis.call('GET', 'db1key')"))
    add(_eval("local r = redis.call('PING') return type(r) .. ':' .. r.ok"))
    add(_eval("return type(redis.call('GET', 'nokey'))"))
    add(_eval("return redis.call('XREAD', 'BLOCK', 10, 'STREAMS', 'stream', '$')"))
    add(_eval("return redis.call('XREAD', 'COUNT', 'x', 'BLOCK', 10, 'STREAMS', 'stream', '$')"))
    add(_eval("return redis.call('xread', 'block', 10, 'streams', 'stream', '0')"))

    # ---- redis.call errors, redis.pcall
    for r in [
        "'GET', 'list'",
        "'NOSUCH'",
        "'GET'",
        "'GET', 'a', 'b'",
        "'EVAL', 'return 1', 0",
        "'CLIENT', 'ID'",
        "'OBJECT', 'nosuch'",
        "'OBJECT'",
        "'SUBSCRIBE', 'ch'",
        "'MULTI'",
        "'WATCH', 'x'",
        "'SET', 'k', 'v'",
        "'DEL', 'str'",
        "'INCR', 'num'",
        "'LPUSH', 'list', 'x'",
        "'PUBLISH', 'ch', 'msg'",
        "'SPUBLISH', 'ch', 'msg'",
        "'PFCOUNT', 'hll'",
        "'EXPIRE', 'str', 10",
        "'FLUSHALL'",
        "'HINCRBY', 'hash', 'f2', 1",
        "'SORT', 'list', 'ALPHA'",
        "'GEORADIUS', 'geo', 15, 37, 200, 'km'",
        "'XREADGROUP', 'GROUP', 'grp', 'c', 'STREAMS', 'stream', '>'",
        "'FCALL', 'snap_get', 1, 'str'",
        "'FUNCTION', 'LIST'",
        "'SCRIPT', 'EXISTS', 'a'",
        "'ZADD', 'zset', 1, 'x'",
        "'ZINCRBY', 'zset', 1, 'one'",
        "'LCS', 'list', 'k1'",
        "'GETRANGE', 'str', 'x', 1",
        "'LRANGE', 'list', 'a', 'b'",
        "'SHUTDOWN'",
        "'WAIT', 0, 0",
        "'SETRANGE', 'str', 0, 'x'",
        "'RENAME', 'str', 'str2'",
        "'AUTH', 'x'",
        "'HELLO'",
        "'SWAPDB', 0, 1",
        "'MONITOR'",
        "'SAVE'",
        "'SYNC'",
    ]:
        add(_eval(f"return redis.call({r})"))
        add(_eval(f"return redis.pcall({r})"))
        add(_ro(f"return redis.call({r})"))
    for src in [
        "return redis.call()",
        "return redis.pcall()",
        "return redis.call({})",
        "return redis.call('GET', {})",
        "return redis.call('GET', nil)",
        "return redis.call('GET', true)",
        "return redis.pcall('GET', function() end)",
        "return redis.call(1)",
        "return redis.call('ECHO', 1.5)",
        "return redis.call('ECHO', 0.1)",
        "return redis.call('ECHO', 1e20)",
        "return redis.call('ECHO', -0.0)",
        "return redis.call('ECHO', 1/0)",
        "return redis.call('ECHO', 0/0)",
        "return redis.call('ECHO', 2^62)",
        "return redis.call('ECHO', 2^63)",
        "return redis.call('ECHO', 100)",
        "return redis.call('ECHO', -7)",
        "return redis.call('ECHO', 1e-7)",
        "return redis.call('ECHO', 123456.789)",
        "return redis.call('ECHO', 2^53 + 1)",
        "return redis.call('ECHO', 'a\\0b')",
        "return redis.call('get', 1)",
        "local ok, e = pcall(redis.call, 'GET', 'list') return {tostring(ok), e}",
        "local ok, e = pcall(redis.call, 'NOSUCH') return {tostring(ok), e}",
        "local r = redis.pcall('GET', 'list') return {type(r), r.err}",
        "local r = redis.pcall('NOSUCH') return r.err",
        "local r = redis.pcall('SET', 'a', 'b') return r",
        "return redis.pcall('GET', 'list').ignore_error_stats_update",
        "local ok, e = pcall(redis.call) return {tostring(ok), e}",
        "local ok, e = pcall(error) return {tostring(ok), tostring(e)}",
        "local ok, e = pcall(error, 'x') return {tostring(ok), e}",
        "local ok, e = pcall(error, 'x', 0) return {tostring(ok), e}",
        "local ok, e = pcall(error, 'x', 2) return {tostring(ok), e}",
        "local ok, e = pcall(error, {err='t'}) return {tostring(ok), e}",
        "local ok, e = pcall(error, {x=1}) return {tostring(ok), type(e)}",
        "local ok, e = pcall(error, 5) return {tostring(ok), e}",
        "return select('#', pcall(error, {}))",
        "return {pcall()}",
        "return {pcall(nil)}",
        "return {pcall(42)}",
        "return {xpcall(function() error('x') end, function(m) return 'handled: ' .. m end)}",
        "return {xpcall(function() redis.call('NOSUCH') end, function(m) return type(m) end)}",
        "return {pcall(function() return 1, 2, 3 end)}",
        "error('plain')",
        "error('plain', 0)",
        "error('plain', 2)",
        "error()",
        "error(nil)",
        "error(42)",
        "error({err='ERR table'})",
        "error({err='CODE t'})",
        "error({err='x', source='s', line=9})",
        "error(redis)",
        "error(true)",
        "error('a\\nb')",
        "error('a\\r\\nb')",
        "error('nul\\0byte')",
        "local function f() error('deep') end local function g() f() end g()",
        "local t = nil return t.x",
        "return 1 + {}",
        "return #nil",
        "return nil .. 'x'",
        "return ('x')()",
        "local a = {} a()",
        "return 1 < 'x'",
        "return {} < {}",
        "return redis.call('GET', KEYS[1])",
        "return KEYS[1]:upper()",
        "return string.rep('x', -1)",
        "return ('x'):rep(3)",
        "return tostring(nil) .. tostring(1.5) .. tostring(-0.0) .. tostring(1e100)",
        "return tostring(1/0) .. tostring(0/0) .. tostring(-(0/0))",
        "return tonumber('0x10') + tonumber('  12  ') + tonumber('1e2')",
        "return {tonumber('z'), tonumber('10', 2), tonumber('ff', 16), tonumber('8', 8)}",
        "return string.format('%d %s %5.2f %q', 3.7, 'x', 1.234, 'a\\nb')",
        "return string.format('%5s|%-5s|%x|%X|%o|%e|%g|%c', 'a', 'b', 255, 255, 8, 1.5, 0.1, 65)",
        "return {string.byte('ABC', 1, -1)}",
        "return string.char(72, 105)",
        "return {string.find('hello world', 'o w')}",
        "return {string.find('hello', 'l+')}",
        "return {string.match('key:123', '(%a+):(%d+)')}",
        "return (string.gsub('hello', 'l', 'L'))",
        "return {string.gsub('abc', '%w', '%0%0')}",
        "local t = {} for w in string.gmatch('a b c', '%a') do t[#t+1] = w end return t",
        "return string.reverse('abc') .. string.lower('ABC') .. string.upper('abc')",
        "return string.len('\\0\\0')",
        "return string.sub('hello', 2, -2)",
        "return table.concat({1, 2, 'x'}, ',')",
        "local t = {3, 1, 2} table.sort(t) return t",
        "local t = {3, 1, 2} table.sort(t, function(a, b) return a > b end) return t",
        "local t = {1, 2} table.insert(t, 3) table.insert(t, 1, 0) return t",
        "local t = {1, 2, 3} table.remove(t) table.remove(t, 1) return t",
        "return table.getn({1, 2, 3})",
        "return table.maxn({[5]=1, [2]=1})",
        "return {unpack({1, 2, 3}, 2)}",
        "return select('#', unpack({}, 1, 3))",
        "return {select(2, 'a', 'b', 'c')}",
        "return select('#', nil, nil)",
        "return {math.floor(3.7), math.ceil(3.2), math.abs(-2), math.max(1, 5, 3), math.min(4, 2)}",
        "return {math.fmod(7, 3), math.sqrt(16), math.pow(2, 10), math.modf(3.5)}",
        "return tostring(math.exp(1)) .. ' ' .. tostring(math.log(10)) .. ' ' .. "
        "tostring(math.sin(1))",
        "return {math.frexp(8)}",
        "return math.ldexp(1, 10)",
        "return 7 % 3 .. ' ' .. -7 % 3",
        "return 2^0.5 > 1.41",
        "return 10 / 4",
        "return tostring(10 / 4)",
        "return type(_VERSION) .. _VERSION",
        "return type(collectgarbage('count'))",
        "return type(gcinfo())",
        "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) return b * 2 "
        "end) "
        "local _, x = coroutine.resume(co, 1) local _, y = coroutine.resume(co, 10) return {x, "
        "y, coroutine.status(co)}",
        "local f = coroutine.wrap(function() coroutine.yield(1) coroutine.yield(2) end) return "
        "{f(), f()}",
        "local co = coroutine.create(function() error('in co') end) return {coroutine.resume(co)}",
        "local f = coroutine.wrap(function() error('in wrap') end) f()",
        "local f = coroutine.wrap(function() error({err='ERR wrapped'}) end) f()",
        "return coroutine.create(print)",
        "return coroutine.create(redis.call)",
        "return {coroutine.resume(coroutine.create(function() return redis.call('GET', 'str') "
        "end))}",
        "return coroutine.running()",
        "return {coroutine.resume(42)}",
        "local co = coroutine.create(function() end) coroutine.resume(co) return "
        "{coroutine.resume(co)}",
    ]:
        add(_eval(src))

    # ---- the sandbox: globals, readonly tables, what is missing
    for src in [
        "return a",
        "a = 1",
        "local a = 1 return a",
        "x.y = 1",
        "return _G.nosuch",
        "_G.x = 1",
        "_G['x'] = 1",
        "rawset(_G, 'x', 1)",
        "return rawget(_G, 'nosuch')",
        "return rawget(_G, 'redis') == redis",
        "return type(rawget(_G, 'cjson'))",
        "return rawequal(_G, _G._G)",
        "setmetatable(_G, nil)",
        "setmetatable(_G, {})",
        "setmetatable(redis, {})",
        "return getmetatable(_G) ~= nil",
        "local t = {} for k in pairs(getmetatable(_G)) do t[#t+1] = k end return t",
        "getmetatable(_G).__index = nil",
        "return getmetatable(_G).__index(nil, 'zz')",
        "return getmetatable(_G).__index(nil, true)",
        "return getmetatable(_G).__index()",
        "return getmetatable(redis)",
        "return getmetatable(cjson.null)",
        "return getmetatable('') ~= nil",
        "getmetatable('').__index = {}",
        "getmetatable('').x = 1",
        "return getmetatable('').__index == string",
        "local t = {} for k in pairs(getmetatable('')) do t[#t+1] = k end return t",
        "redis.call = nil",
        "redis.x = 1",
        "rawset(redis, 'x', 1)",
        "string.x = 1",
        "string.upper = nil",
        "math.random = nil",
        "table.insert = nil",
        "cjson.x = 1",
        "rawset(cjson, 'x', 1)",
        "bit.band = nil",
        "struct.pack = nil",
        "cmsgpack.pack = nil",
        "coroutine.create = nil",
        "table.insert(redis, 1)",
        "table.insert(string, 'x', 1)",
        "table.insert(_G, 1)",
        "return #redis",
        "return #_G",
        "return next({})",
        "return type(next(redis))",
        "return table.getn(redis)",
        "return {ipairs(redis)} ~= nil",
        "local n = 0 for _ in ipairs(redis) do n = n + 1 end return n",
        "local t = {} for k in pairs(redis) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(string) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(math) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(table) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(coroutine) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(cjson) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(cmsgpack) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(bit) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(struct) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} for k in pairs(_G) do t[#t+1] = k end table.sort(t) return t",
        "local t = {} table.foreach(redis, function(k) t[#t+1] = k end) table.sort(t) return t",
        "return type(os)",
        "return os.clock() >= 0",
        "return type(io)",
        "return type(require)",
        "return type(dofile)",
        "return type(loadfile)",
        "return type(print)",
        "return type(getfenv)",
        "return type(setfenv)",
        "return type(newproxy)",
        "return type(module)",
        "return type(package)",
        "return type(debug)",
        "return type(load)",
        "return type(loadstring)",
        "return type(string.dump)",
        "return loadstring('return 1 + 1')()",
        "return {loadstring('syntax error here')}",
        "return loadstring('return x_global')()",
        "loadstring('y_global = 1')()",
        "return {loadstring('return 1', 'mychunk')}",
        "return loadstring('error(\"e\")', '=named')()",
        "return {loadstring(string.dump(function() return 1 end))}",
        "return {loadstring('\\27Lua')}",
        "return {loadstring()}",
        "return {loadstring(123)}",
        "return load(function() return nil end) ~= nil",
        "local parts = {'return ', '4', '2'} local i = 0 "
        "return load(function() i = i + 1 return parts[i] end)()",
        "return {load('x')}",
        "return {load(function() return {} end)}",
        "return type(string.dump(function() end))",
        "return string.dump(print)",
        "return string.dump(redis.call)",
        "return tostring(type(redis.breakpoint))",
        "return redis.breakpoint()",
        "return redis.debug('x')",
        "return redis.replicate_commands()",
        "return redis.set_repl(redis.REPL_ALL)",
        "return redis.set_repl(redis.REPL_NONE)",
        "return redis.set_repl(99)",
        "return redis.set_repl()",
        "return redis.set_repl('x')",
        "return {redis.REPL_NONE, redis.REPL_AOF, redis.REPL_SLAVE, redis.REPL_REPLICA, "
        "redis.REPL_ALL}",
        "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
        "return {redis.REDIS_VERSION, redis.REDIS_VERSION_NUM}",
        "return redis.log(redis.LOG_NOTICE, 'from a script', 1, nil, {}, 'end')",
        "return redis.log(redis.LOG_DEBUG, 'debug')",
        "return redis.log(1)",
        "return redis.log('x', 'y')",
        "return redis.log(-1, 'y')",
        "return redis.log(4, 'y')",
        "return redis.setresp(2)",
        "return redis.setresp(3)",
        "return redis.setresp(1)",
        "return redis.setresp()",
        "return redis.setresp(2, 3)",
        "return redis.setresp('3')",
        "return redis.sha1hex('')",
        "return redis.sha1hex('abc')",
        "return redis.sha1hex(123)",
        "return redis.sha1hex()",
        "return redis.sha1hex('a', 'b')",
        "return redis.sha1hex({})",
        "return redis.error_reply('ERR my error')",
        "return redis.error_reply('-ERR dash')",
        "return redis.error_reply('nocode')",
        "return redis.error_reply('CODE  two spaces')",
        "return redis.error_reply('')",
        "return redis.error_reply('-')",
        "return redis.error_reply('a\\r\\nb')",
        "return redis.error_reply(5)",
        "return redis.error_reply()",
        "return redis.error_reply('a', 'b')",
        "return redis.status_reply('QUEUED')",
        "return redis.status_reply('')",
        "return redis.status_reply('a\\r\\nb')",
        "return redis.status_reply(5)",
        "return redis.status_reply()",
        "local e = redis.error_reply('X y') return {e.err, type(e)}",
        "local s = redis.status_reply('fine') return s.ok",
        "return redis.acl_check_cmd('GET', 'k')",
        "return redis.acl_check_cmd('SET', 'k', 'v')",
        "return redis.acl_check_cmd('NOSUCH')",
        "return redis.acl_check_cmd()",
        "return redis.acl_check_cmd({})",
        "return {pcall(redis.acl_check_cmd, 'NOSUCH')}",
    ]:
        add(_eval(src))

    for src in [
        "local t = {} for k in pairs(redis) do t[#t+1] = k end return t",
        "local t = {} for k in pairs(string) do t[#t+1] = k end return t",
        "local t = {} for k in pairs(cjson) do t[#t+1] = k end return t",
        "local t = {} for k in pairs(cmsgpack) do t[#t+1] = k end return t",
        "local t = {} for k in pairs({a=1, b=2, c=3, d=4}) do t[#t+1] = k end return t",
        "return cjson.encode({1,2,x=1})",
        "return cjson.encode({a=1,b=2,c=3,d=4,e=5,f=6,g=7,h=8})",
        'return cjson.encode(cjson.decode(\'{"z":1,"y":2,"x":3,"w":4}\'))',
        "return cjson.encode(cjson.decode(redis.call('GET', 'json')))",
        'return cjson.encode(cjson.decode(\'{"a":[1,{"b":null}],"c":"d"}\'))',
        "return cmsgpack.pack({1,2,x=3})",
        "return cmsgpack.pack(redis)",
        "return cmsgpack.pack({a=1, b=2, c={d=1, e=2}})",
    ]:
        order(_eval(src))

    # ---- math.random (one sequence per server, across scripts)
    for src in [
        "return math.random()",
        "return tostring(math.random())",
        "return math.random(10)",
        "return math.random(5, 8)",
        "return {math.random(100), math.random(100), math.random(100)}",
        "math.randomseed(42) return {math.random(1000), math.random(1000)}",
        "math.randomseed(42) return tostring(math.random())",
        "math.randomseed(-5) return math.random(1000000)",
        "return math.random(0)",
        "return math.random(3, 1)",
        "return math.random(1, 2, 3)",
        "return math.random('x')",
        "return math.random('7')",
        "return math.randomseed()",
        "return math.random(2^40)",
        "return math.random(-2^40, 5)",
        "return tostring(math.random())",
    ]:
        add(_eval(src))

    # ---- cjson
    for v in [
        "{}",
        "{1,2,3}",
        "{a=1}",
        "{[1]=1,[2]=2,[4]=4}",
        "{[20]=1}",
        "{[11]=1,[1]=1}",
        "{[0]=1}",
        "{[-1]=1}",
        "{[1.5]=1}",
        "{['1']=1}",
        "'str'",
        "'esc \"\\\\/\\b\\f\\n\\r\\t'",
        "'\\0\\1\\31\\127\\128\\255'",
        "''",
        "1",
        "1.5",
        "-0.0",
        "0.1",
        "1e300",
        "1/3",
        "123456789012345678",
        "2^53",
        "true",
        "false",
        "cjson.null",
        "{cjson.null}",
        "{a=cjson.null}",
        "{{{{}}}}",
        "{a={b={c={}}}}",
        "{1, 'two', {3}, {four=4}}",
        "{[true]=1}",
        "{function() end}",
        "print",
        "1/0",
        "0/0",
        "{1/0}",
        "redis",
        "{x=redis}",
        "setmetatable({}, {__index={a=1}})",
        "{{}, {}}",
    ]:
        add(_ret(f"cjson.encode({v})"))
    for j in [
        "{}",
        "[]",
        "[1,2,3]",
        '{"a":1}',
        '{"a":[1,{"b":null}],"c":"d"}',
        '"str"',
        '"\\u00e9\\u4e2d\\ud83d\\ude00"',
        '"\\ud83d"',
        '"\\udc00"',
        '"\\u12"',
        '"\\x"',
        '"tab\\tnl\\n"',
        '"\\/"',
        "1",
        "-1.5e3",
        "0x10",
        "1.5abc",
        "+1",
        "inf",
        "-Infinity",
        "nan",
        "NaN",
        "007",
        "- 1",
        ".5",
        "1.",
        "1e",
        "true",
        "false",
        "null",
        "nul",
        "[1,]",
        "[1 2]",
        '{"a" 1}',
        "{1:2}",
        '{"a":1,}',
        "",
        " ",
        "  [ 1 , 2 ]  ",
        "[",
        "]",
        "{",
        '"unterminated',
        "[1]x",
        "1 2",
        '"a\\u0000b"',
        "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
        '{"a":{"b":{"c":{"d":1}}}}',
        "[1e400]",
        "[-0]",
        "[0.1, 1e-5, 12345678901234567890]",
    ]:
        lua = j.replace("\\", "\\\\").replace("'", "\\'")
        add(_ret(f"cjson.decode('{lua}')"))
        (order if j.startswith('{"a":[') else add)(
            _eval(
                f"local ok, r = pcall(cjson.decode, '{lua}') return {{tostring(ok), "
                f"cjson.encode({{r}})}}"
            )
        )
    for src in [
        "return cjson.decode()",
        "return cjson.decode(1, 2)",
        "return cjson.decode({})",
        "return cjson.decode(123)",
        "return cjson.encode()",
        "return cjson.encode(1, 2)",
        "return cjson.decode('\\0[1]')",
        "return cjson.decode('[1]\\0garbage')",
        "return cjson.decode('[1,\\0]')",
        "local t = {} for i = 1, 1100 do t = {t} end return cjson.encode(t)",
        "local s = string.rep('[', 1100) .. string.rep(']', 1100) return cjson.decode(s)",
        "local t = {} t[1] = t return cjson.encode(t)",
        "return type(cjson.decode('null')) .. tostring(cjson.decode('null') == cjson.null)",
        "return {cjson.encode_sparse_array()}",
        "return {cjson.encode_max_depth()}",
        "return {cjson.decode_max_depth()}",
        "return {cjson.encode_number_precision()}",
        "return {cjson.encode_keep_buffer()}",
        "return {cjson.encode_invalid_numbers()}",
        "return {cjson.decode_invalid_numbers()}",
        "return cjson._NAME .. cjson._VERSION",
        "return {cjson.encode_number_precision(0)}",
        "return {cjson.encode_number_precision(15)}",
        "return {cjson.encode_number_precision('x')}",
        "return {cjson.encode_number_precision(1, 2)}",
        "return {cjson.encode_sparse_array('maybe')}",
        "return {cjson.encode_invalid_numbers('x')}",
        "local c = cjson.new() c.encode_number_precision(3) return {c.encode(1/3), "
        "cjson.encode(1/3)}",
        "local c = cjson.new() c.encode_invalid_numbers(true) return {c.encode(1/0), "
        "c.encode(0/0)}",
        "local c = cjson.new() c.encode_invalid_numbers('null') return c.encode({1/0})",
        "local c = cjson.new() c.encode_sparse_array(true) return c.encode({[20]=1})",
        "local c = cjson.new() c.encode_sparse_array(false, 0) return c.encode({[20]=1})",
        "local c = cjson.new() c.decode_invalid_numbers(false) return {pcall(c.decode, 'inf')}",
        "local c = cjson.new() c.decode_invalid_numbers(false) return {pcall(c.decode, '0x1')}",
        "local c = cjson.new() c.encode_max_depth(2) return {pcall(c.encode, {{{1}}})}",
        "local c = cjson.new() c.decode_max_depth(2) return {pcall(c.decode, '[[[1]]]')}",
        "local c = cjson.new() c.x = 1 return c.x",
        "cjson.encode_number_precision(5) local a = cjson.encode(math.pi) "
        "cjson.encode_number_precision(14) return a",
        "return cjson.encode(redis.call('LRANGE', 'list', 0, -1))",
        "return cjson.decode(redis.call('GET', 'json')).b[3].c == cjson.null",
    ]:
        add(_eval(src))

    # ---- cmsgpack
    for v in [
        "0",
        "1",
        "127",
        "128",
        "255",
        "256",
        "65535",
        "65536",
        "2^32 - 1",
        "2^32",
        "2^53",
        "2^63",
        "-1",
        "-32",
        "-33",
        "-128",
        "-129",
        "-32768",
        "-32769",
        "-2^31",
        "-2^31 - 1",
        "-2^63",
        "1.5",
        "0.1",
        "-0.0",
        "1/0",
        "-1/0",
        "0/0",
        "1e300",
        "3.4e38",
        "1e-45",
        "'x'",
        "''",
        "string.rep('a', 31)",
        "string.rep('a', 32)",
        "string.rep('a', 255)",
        "string.rep('a', 256)",
        "string.rep('a', 65536)",
        "true",
        "false",
        "nil",
        "{}",
        "{1,2,3}",
        "{a=1}",
        "{[2]=1}",
        "{[1]=1,[2]=2,[4]=4}",
        "{{{}}}",
        "print",
        "cjson.null",
        "{1, 'a', {b={c=true}}}",
    ]:
        add(_ret(f"cmsgpack.pack({v})"))
    for src in [
        "return cmsgpack.pack()",
        "return cmsgpack.pack(1, 'a', {2})",
        "local t = {} for i = 1, 20 do t = {t} end return cmsgpack.pack(t)",
        "local t = {} for i = 1, 16 do t[i] = i end return cmsgpack.pack(t)",
        "local t = {} for i = 1, 70000 do t[i] = i % 3 end return #cmsgpack.pack(t)",
        "local t = {} for i = 1, 17 do t['k' .. i] = i end return #cmsgpack.pack(t)",
        "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3}, {four=4}, true, 1.5))}",
        "return {cmsgpack.unpack(cmsgpack.pack(-2^63, 2^63, 0.1, -0.0))}",
        "return {cmsgpack.unpack('\\207\\255\\255\\255\\255\\255\\255\\255\\255')}",
        "return {cmsgpack.unpack('\\211\\128\\0\\0\\0\\0\\0\\0\\0')}",
        "return tostring(cmsgpack.unpack('\\202\\127\\192\\0\\0'))",
        "return tostring(cmsgpack.unpack('\\203\\255\\248\\0\\0\\0\\0\\0\\0'))",
        "return {cmsgpack.unpack('\\147\\1\\2')}",
        "return {cmsgpack.unpack('\\193')}",
        "return {cmsgpack.unpack('\\196\\1x')}",
        "return {cmsgpack.unpack('')}",
        "return {cmsgpack.unpack()}",
        "return {cmsgpack.unpack({})}",
        "return {cmsgpack.unpack(1)}",
        "return {cmsgpack.unpack('\\145\\192')}",
        "return {cmsgpack.unpack('\\129\\192\\1')}",
        "return {cmsgpack.unpack('\\151')}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 3)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 4)}",
        "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2, 1)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), -1)}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3))}",
        "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 'x')}",
        "return {cmsgpack.unpack_one('\\1', 'x')}",
        "return {cmsgpack.unpack('\\217\\5abc')}",
        "return {cmsgpack.unpack('\\220\\0\\1')}",
        "return cmsgpack._NAME .. cmsgpack._VERSION .. cmsgpack._COPYRIGHT .. "
        "cmsgpack._DESCRIPTION",
        "local t = {} for i = 1, 9000 do t[i] = 1 end return select('#', "
        "cmsgpack.unpack(string.rep('\\1', 9000)))",
    ]:
        add(_eval(src))

    # ---- bit
    for v in [
        "0",
        "1",
        "-1",
        "2^31",
        "2^32",
        "2^32 + 5",
        "-2^31",
        "-(2^31) - 1",
        "2^52",
        "2^53 + 2",
        "2^60 + 3",
        "-2^60 - 7",
        "1.5",
        "2.5",
        "-1.5",
        "0.49999",
        "1e20",
        "1/0",
        "0/0",
        "'12'",
        "'0x10'",
        "' 7 '",
    ]:
        add(_ret(f"bit.tobit({v})"))
        add(_ret(f"bit.tohex({v})"))
    for src in [
        "bit.band(0xff, 0x0f)",
        "bit.band(-1, 0xffff, 0xff00)",
        "bit.bor(1, 2, 4, 8)",
        "bit.bxor(0xff, 0x0f)",
        "bit.bnot(0)",
        "bit.bnot(-1)",
        "bit.lshift(1, 31)",
        "bit.lshift(1, 32)",
        "bit.lshift(1, 33)",
        "bit.rshift(-1, 1)",
        "bit.arshift(-256, 4)",
        "bit.arshift(256, 4)",
        "bit.rol(0x12345678, 8)",
        "bit.ror(0x12345678, 8)",
        "bit.rol(1, 0)",
        "bit.ror(1, 0)",
        "bit.rol(1, 32)",
        "bit.bswap(0x12345678)",
        "bit.tohex(255, 2)",
        "bit.tohex(255, -2)",
        "bit.tohex(255, 0)",
        "bit.tohex(255, 12)",
        "bit.tohex(-1, -8)",
        "bit.tohex(1, -2^31)",
        "bit.band()",
        "bit.band('x')",
        "bit.band(1, 'x')",
        "bit.band(1, {}, 2)",
        "bit.lshift(1)",
        "bit.tohex()",
        "bit.tohex(1, 'x')",
        "bit.band(1, nil)",
        "bit.bor(2^53, 1)",
        "bit.tobit()",
        "bit.bnot({})",
    ]:
        add(_ret(src))

    # ---- struct
    for src in [
        "struct.pack('b', 1)",
        "struct.pack('B', 255)",
        "struct.pack('h', -2)",
        "struct.pack('>H', 258)",
        "struct.pack('<i', 1)",
        "struct.pack('>i', -1)",
        "struct.pack('l', 2^40)",
        "struct.pack('>L', 2^63)",
        "struct.pack('L', 2^64)",
        "struct.pack('L', -1)",
        "struct.pack('i3', 65536 + 2)",
        "struct.pack('>i10', -2)",
        "struct.pack('I16', 1)",
        "struct.pack('i33', 1)",
        "struct.pack('i0', 5)",
        "struct.pack('f', 1.5)",
        "struct.pack('>d', 0.1)",
        "struct.pack('f', 1e300)",
        "struct.pack('d', 0/0)",
        "struct.pack('s', 'abc')",
        "struct.pack('c3', 'abcdef')",
        "struct.pack('c0', 'abc')",
        "struct.pack('c5', 'ab')",
        "struct.pack('x')",
        "struct.pack('!4 b i', 1, 2)",
        "struct.pack('!8 b d', 1, 2)",
        "struct.pack('!3 b')",
        "struct.pack('b i', 1, 2)",
        "struct.pack('! b i', 1, 2)",
        "struct.pack('z')",
        "struct.pack('5')",
        "struct.pack('i99999999999')",
        "struct.pack('i', 'x')",
        "struct.pack('i', '12')",
        "struct.pack('s', 12)",
        "struct.pack('s', {})",
        "struct.pack('i')",
        "struct.pack()",
        "struct.pack(5, 1)",
        "struct.pack('ii', 1)",
        "struct.pack('b', 1.9)",
        "struct.pack('b', -1.9)",
        "struct.pack('B', 1e20)",
        "struct.pack('i', 1/0)",
        "struct.pack('i', 0/0)",
        "{struct.unpack('>i', struct.pack('>i', -5))}",
        "{struct.unpack('BBB', 'abc')}",
        "{struct.unpack('<h>h', '\\1\\2\\1\\2')}",
        "{struct.unpack('I16', string.rep('\\255', 16))}",
        "{struct.unpack('i16', string.rep('\\255', 16))}",
        "{struct.unpack('i9', string.rep('\\128', 9))}",
        "{struct.unpack('f', struct.pack('f', 0.1))}",
        "{struct.unpack('d', struct.pack('d', -0.0))}",
        "{struct.unpack('s', 'ab\\0cd')}",
        "{struct.unpack('s', 'abc')}",
        "{struct.unpack('c2', 'abc')}",
        "{struct.unpack('bc0', '\\3abcd')}",
        "{struct.unpack('c0', 'abc')}",
        "{struct.unpack('c1c0', '2abcd')}",
        "{struct.unpack('i', 'ab')}",
        "{struct.unpack('b', 'abc', 2)}",
        "{struct.unpack('b', 'abc', 0)}",
        "{struct.unpack('b', 'abc', 4)}",
        "{struct.unpack('b', 'abc', -1)}",
        "{struct.unpack('!4 b i', struct.pack('!4 b i', 7, 9))}",
        "{struct.unpack('x b', 'ab')}",
        "{struct.unpack('L', string.rep('\\255', 8))}",
        "{struct.unpack('l', string.rep('\\255', 8))}",
        "{struct.unpack()}",
        "{struct.unpack('b')}",
        "struct.size('i')",
        "struct.size('!8 b d')",
        "struct.size('bhilf')",
        "struct.size('s')",
        "struct.size('c0')",
        "struct.size('c7')",
        "struct.size('z')",
        "struct.size('!3')",
        "struct.size()",
        "struct.size(' x ')",
    ]:
        add(_ret(src))

    # ---- shebang flags
    for body in [
        "#!lua\nreturn 1",
        "#!lua flags=no-writes\nreturn 1",
        "#!lua flags=no-writes,allow-stale\nreturn redis.call('GET', 'str')",
        "#!lua flags=no-writes\nreturn redis.call('SET', 'str', 'x')",
        "#!lua flags=no-writes\nreturn redis.pcall('PUBLISH', 'ch', 'm')",
        "#!lua flags=allow-oom\nreturn 1",
        "#!lua flags=no-cluster,no-writes\nreturn 2",
        "#!lua flags=allow-cross-slot-keys,no-writes\nreturn 3",
        "#!lua flags=\nreturn 1",
        "#!lua flags=bad\nreturn 1",
        "#!lua flags=no-writes,\nreturn 1",
        "#!lua name=x\nreturn 1",
        "#!lua x\nreturn 1",
        "#!lua",
        "#!python\nreturn 1",
        "#!\nreturn 1",
        "#! lua\nreturn 1",
        "#!lua  flags=no-writes  \nreturn 4",
        '#!lua "flags=no-writes"\nreturn 5',
        "#!lua flags=no-writes\nerror('line 2')",
        "#!lua flags=no-writes\n\n\nreturn a",
        "#!lua flags=NO-WRITES\nreturn 1",
    ]:
        add(["EVAL", body, "0"])
        add(["EVAL_RO", body, "0"])

    # ---- the script cache
    add(["SCRIPT", "LOAD", "return 'loaded'"])
    add(["EVALSHA", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063", "0"])
    add(["EVALSHA", "BA6D5BB9E5EBEC6FD2EE3E6BFB7FEC4D4F0F0063", "0"])
    add(["EVALSHA_RO", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063", "0"])
    add(
        [
            "SCRIPT",
            "EXISTS",
            "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063",
            "BA6D5BB9E5EBEC6FD2EE3E6BFB7FEC4D4F0F0063",
            "ffffffffffffffffffffffffffffffffffffffff",
            "short",
        ]
    )
    add(["SCRIPT", "LOAD", "#!lua flags=no-writes\nreturn KEYS[1]"])
    add(["SCRIPT", "LOAD", "return ("])
    add(["SCRIPT", "LOAD", "#!lua flags=nope\nreturn 1"])
    add(["SCRIPT", "LOAD", "return redis.call('SET', 'a', 'b')"])
    add(["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"])
    add(["EVALSHA", "abc", "0"])
    add(["EVALSHA", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063", "x"])
    add(["EVALSHA", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063", "1"])
    add(["EVAL", "return 1", "x"])
    add(["EVAL", "return 1", "-1"])
    add(["EVAL", "return 1", "2", "a"])
    add(["EVAL", "return 1", "99999999999999999999"])
    add(["EVAL", "return 1"])
    add(["EVAL", "return (", "0"])
    add(["EVAL", "return 'unfinished", "0"])
    add(["EVAL", "\x1bLua", "0"])
    add(["EVAL", "", "0"])
    add(["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"])
    add(["EVAL", "return 1", "0"])
    add(["SCRIPT", "EXISTS", "e0e1f9fabfc9d4800c877a703b823ac0578ff8db"])
    add(["SCRIPT", "FLUSH", "now"])
    add(["SCRIPT", "FLUSH", "SYNC"])
    add(["EVALSHA", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063", "0"])
    add(["SCRIPT", "EXISTS", "ba6d5bb9e5ebec6fd2ee3e6bfb7fec4d4f0f0063"])
    add(["SCRIPT", "LOAD", "return 'loaded'"])
    add(["SCRIPT", "FLUSH", "ASYNC"])
    add(["SCRIPT", "FLUSH"])
    add(["SCRIPT", "LOAD"])
    add(["SCRIPT", "HELP"])
    add(["FUNCTION", "HELP"])
    add(["SCRIPT", "NOSUCH"])
    add(["SCRIPT", "KILL"])
    add(["SCRIPT", "KILL", "x"])
    add(["SCRIPT"])

    # ---- limits: stacks, big replies, metamethods, coroutines around redis.call
    for src in [
        "local function f() f() end f()",
        "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end return f(10000)",
        "local function f(n) if n == 0 then return 0 end return 1 + f(n - 1) end return f(200000)",
        "return string.rep('x', 100000)",
        "local t = {} for i = 1, 20000 do t[i] = i end return t",
        "return {unpack({}, 1, 1e6)}",
        "return select('#', unpack({}, 1, 7990))",
        "return tostring(setmetatable({}, {__tostring = function() return 'custom' end}))",
        "return setmetatable({}, {__index = function(t, k) return k * 2 end})[21]",
        "local mt = {__eq = function() return true end} "
        "return setmetatable({}, mt) == setmetatable({}, mt)",
        "return coroutine.wrap(function() return redis.call('PING') end)()",
        "local co = coroutine.create(function() coroutine.yield(redis.call('LLEN', 'list')) end) "
        "return {coroutine.resume(co)}",
        "error(string.rep('x', 300))",
    ]:
        add(_eval(src))

    # ---- inside MULTI/EXEC, and from another DB
    for argv in [
        ["MULTI"],
        _eval("return redis.call('GET', 'str')"),
        ["FCALL_RO", "snap_ro", "1", "str"],
        _ro("return redis.call('LLEN', 'list')"),
        ["EXEC"],
        ["MULTI"],
        ["EVAL", "#!lua\nreturn 1", "0"],
        _eval("return 1"),
        ["EXEC"],
        ["MULTI"],
        _eval("return redis.call('SET', 'a', 'b')"),
        ["EXEC"],
        ["MULTI"],
        ["FCALL", "snap_get", "1", "str"],
        ["EXEC"],
        ["SELECT", "1"],
        _eval("return redis.call('GET', 'db1key')"),
        _eval("redis.call('SELECT', 0) return redis.call('GET', 'str')"),
        _eval("return redis.call('GET', 'db1key')"),
        ["SELECT", "0"],
    ]:
        add(argv)

    # ---- functions
    for argv in [
        ["FCALL", "snap_get", "1", "str"],
        ["FCALL_RO", "snap_get", "1", "str"],
        ["FCALL", "snap_ro", "1", "str"],
        ["FCALL_RO", "snap_ro", "1", "str"],
        ["FCALL", "SNAP_RO", "1", "str"],
        ["FCALL_RO", "snap_ro", "1", "list"],
        ["FCALL", "snap_both", "2", "a", "b", "c"],
        ["FCALL", "snap_both", "0"],
        ["FCALL", "snap_both", "0", "x", "y"],
        ["FCALL_RO", "snap_boom", "0"],
        ["FCALL_RO", "snap_calls_write", "1", "str"],
        ["FCALL_RO", "snap_pcall_write", "1", "str"],
        ["FCALL_RO", "snap_kind", "0"],
        ["FCALL_RO", "snap_conv", "0"],
        ["FCALL_RO", "snap_resp3", "2", "hash1", "zset"],
        ["FCALL_RO", "stream_len", "1", "stream"],
        ["FCALL", "stream_len", "1", "stream"],
        ["FCALL_RO", "stream_cjson", "0", '{"a":[1,2]}'],
        ["FCALL_RO", "stream_cjson", "0", "[bad"],
        ["FCALL_RO", "stream_upvalue", "0"],
        ["FCALL_RO", "stream_upvalue", "0"],
        ["FCALL_RO", "stream_rand", "0"],
        ["FCALL", "nosuch", "0"],
        ["FCALL_RO", "nosuch", "0"],
        ["FCALL", "nosuch", "x"],
        ["FCALL_RO", "snap_ro", "x"],
        ["FCALL_RO", "snap_ro", "-1"],
        ["FCALL_RO", "snap_ro", "2", "a"],
        ["FCALL_RO", "snap_ro"],
        ["FCALL_RO", "single_fn", "0"],
        ["FUNCTION", "LIST", "LIBRARYNAME", "single"],
        ["FUNCTION", "LIST", "LIBRARYNAME", "SINGLE"],
        ["FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "single"],
        ["FUNCTION", "LIST", "LIBRARYNAME", "sing*", "WITHCODE"],
        ["FUNCTION", "LIST", "LIBRARYNAME", "nomatch"],
        ["FUNCTION", "LIST", "LIBRARYNAME"],
        ["FUNCTION", "LIST", "BADARG"],
        ["FUNCTION", "LIST", "WITHCODE", "WITHCODE"],
        ["FUNCTION", "STATS"],
        ["FUNCTION", "KILL"],
        ["FUNCTION", "NOSUCH"],
        ["FUNCTION", "LOAD", "#!lua name=x\nredis.register_function('f', function() return 1 end)"],
        ["FUNCTION", "LOAD", "REPLACE", "#!lua name=x\nreturn 1"],
        ["FUNCTION", "DELETE", "snaplib"],
        ["FUNCTION", "FLUSH"],
        ["FUNCTION", "RESTORE", "x"],
        ["FUNCTION", "DUMP", "x"],
        ["EVAL", "return redis.call('FCALL', 'snap_get', 1, 'str')", "0"],
        ["EVAL", "return redis.call('FUNCTION', 'STATS')", "0"],
    ]:
        add(argv)
    return c


# Multi-library replies compared as sets (see the test): the order of libraries and of a
# library's functions is a hash table's on a real server.
UNORDERED = [
    ["FUNCTION", "LIST"],
    ["FUNCTION", "LIST", "WITHCODE"],
    ["FUNCTION", "DUMP"],
    ["FUNCTION", "LIST", "LIBRARYNAME", "*lib"],
]
