"""The scripting package in isolation: no server, no socket, no trio.

`Scripting` runs against a small in-process `Keyspace` through the relay's own read
handlers (a `ReadContext` per script run, as the relay's script client is); the clock is
a list the test moves by hand and `on_busy` a callback the test owns, so the busy-script
machinery (threshold, -BUSY, SCRIPT KILL / FUNCTION KILL, FUNCTION STATS) is exercised
deterministically. The byte-for-byte comparison with real replicas is
tests/test_scripting_differential.py; these pin the interfaces and the Python halves.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from replproxy.commandtable import CommandSpec, table_for
from replproxy.dialect import MasterDialect
from replproxy.keyspace import Keyspace
from replproxy.keyspace.reads import READ_COMMANDS, ReadContext, ReplyError
from replproxy.keyspace.t_function import parse_function_dump
from replproxy.rdb.model import Function
from replproxy.resp import reply
from replproxy.scripting import libs
from replproxy.scripting.script import (
    SCRIPT_FLAG_ALLOW_STALE,
    SCRIPT_FLAG_EVAL_COMPAT_MODE,
    SCRIPT_FLAG_NO_WRITES,
    Caller,
    ShebangError,
    extract_shebang_flags,
    flags_to_cmd_flags,
)
from replproxy.scripting.scripting import Scripting

REDIS70 = MasterDialect("redis", (7, 0, 15))
VALKEY81 = MasterDialect("valkey", (8, 1, 8))
REDIS82 = MasterDialect("redis", (8, 2, 3))


def _keyspace() -> Keyspace:
    ks = Keyspace()
    for argv in (
        ["SET", "str", "hello"],
        ["RPUSH", "list", "a", "b", "c"],
        ["HSET", "hash", "f", "v"],
        ["ZADD", "zset", "1.5", "m"],
        ["SET", "n", "7"],
    ):
        ks.apply(0, [a.encode() for a in argv])
    ks.apply(1, [b"SET", b"other", b"db1"])
    return ks


class Relay:
    """What the relay gives a script: its read handlers on a keyspace, a clock, libraries."""

    def __init__(self, dialect: MasterDialect = REDIS70, threshold: int = 5000) -> None:
        self.ks = _keyspace()
        self.libraries: dict[bytes, Function] = {}
        self.now = [0.0]
        self.tick = 0.0  # seconds each clock read moves the clock on
        self.busy_calls: list[bool] = []
        self.on_busy: Callable[[], None] = lambda: None
        self.calls: list[list[bytes]] = []
        self.scripting = Scripting(
            dialect,
            table_for(dialect.server, dialect.version),
            clock=self.clock,
            libraries=lambda: self.libraries,
            rdb_version=lambda: 10,
            busy_reply_threshold=threshold,
            on_busy=lambda: self.on_busy(),
        )

    def clock(self) -> float:
        self.now[0] += self.tick
        return self.now[0]

    def caller(self, proto: int = 2, *, stale: bool = False, db: int = 0) -> Caller:
        def call(spec: CommandSpec, argv: list[bytes], resp: int) -> bytes:
            self.calls.append(argv)
            ctx = ReadContext(self.ks, db=db, proto=resp)
            ctx.can_block = False
            if spec.name == b"echo":  # a server command: the relay's is one line too
                return reply.bulk(argv[1])
            try:
                return READ_COMMANDS[spec.name](ctx, argv)
            except ReplyError as e:
                return reply.error(e.msg)

        return Caller(proto, call, stale=stale)

    def eval(
        self, src: str, *args: str, proto: int = 2, ro: bool = False, nkeys: int | None = None
    ) -> bytes:
        argv = [
            b"EVAL",
            src.encode(),
            str(len(args) if nkeys is None else nkeys).encode(),
            *(a.encode() for a in args),
        ]
        return self.scripting.eval(self.caller(proto), argv, evalsha=False, ro=ro)

    def cmd(self, *argv: str, proto: int = 2) -> bytes:
        b = [a.encode() for a in argv]
        name = b[0].lower()
        if name in (b"eval", b"eval_ro", b"evalsha", b"evalsha_ro"):
            return self.scripting.eval(
                self.caller(proto), b, evalsha=b"sha" in name, ro=name.endswith(b"_ro")
            )
        if name in (b"fcall", b"fcall_ro"):
            return self.scripting.fcall(self.caller(proto), b, ro=name == b"fcall_ro")
        if name == b"script":
            return self.scripting.script(self.caller(proto), b)
        return self.scripting.function(self.caller(proto), b)


@pytest.fixture
def relay() -> Relay:
    return Relay()


# ---------------------------------------------------------------- replies and conversions


def test_eval_reads_through_the_relays_handlers(relay: Relay) -> None:
    assert relay.eval("return redis.call('GET', KEYS[1])", "str") == b"$5\r\nhello\r\n"
    assert (
        relay.eval("return redis.call('LRANGE', 'list', 0, -1)")
        == b"*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
    )
    assert relay.calls[-1] == [b"LRANGE", b"list", b"0", b"-1"]


def test_lua_values_become_replies_in_the_callers_protocol(relay: Relay) -> None:
    src = "return {1, 3.99, 'x', true, false, nil, 5}"
    assert relay.eval(src) == b"*5\r\n:1\r\n:3\r\n$1\r\nx\r\n:1\r\n$-1\r\n"
    assert relay.eval(src, proto=3) == b"*5\r\n:1\r\n:3\r\n$1\r\nx\r\n:1\r\n_\r\n"
    resp3 = "redis.setresp(3) return {true, false, {double=1.5}, {map={a=1}}, {set={b=true}}}"
    assert (
        relay.eval(resp3, proto=3)
        == b"*5\r\n#t\r\n#f\r\n,1.5\r\n%1\r\n$1\r\na\r\n:1\r\n~1\r\n$1\r\nb\r\n"
    )
    assert (
        relay.eval(resp3)
        == b"*5\r\n:1\r\n:0\r\n$3\r\n1.5\r\n*2\r\n$1\r\na\r\n:1\r\n*1\r\n$1\r\nb\r\n"
    )


def test_resp3_replies_of_redis_call_become_lua_types(relay: Relay) -> None:
    src = (
        "redis.setresp(3) local h = redis.call('HGETALL', 'hash') "
        "local z = redis.call('ZSCORE', 'zset', 'm') "
        "return {type(h.map), h.map.f, type(z), z.double}"
    )
    assert relay.eval(src) == b"*4\r\n$5\r\ntable\r\n$1\r\nv\r\n$5\r\ntable\r\n:1\r\n"


def test_doubles_follow_the_masters_version() -> None:
    assert Relay(REDIS70).eval("return {double=0.1}") == b"$19\r\n0.10000000000000001\r\n"
    assert Relay(REDIS82).eval("return {double=0.1}") == b"$3\r\n0.1\r\n"
    assert (
        Relay(REDIS70).eval("return redis.call('ECHO', 2^62)")
        == b"$22\r\n4.6116860184273879e+18\r\n"
    )
    assert (
        Relay(REDIS82).eval("return redis.call('ECHO', 2^62)") == b"$19\r\n4611686018427387904\r\n"
    )


def test_errors_name_the_script_and_line(relay: Relay) -> None:
    sha = libs.sha1hex(b"local x = 1\nreturn redis.call('GET', 'list')").decode()
    out = relay.eval("local x = 1\nreturn redis.call('GET', 'list')")
    assert out == (
        b"-WRONGTYPE Operation against a key holding the wrong kind of value "
        b"script: %s, on @user_script:2.\r\n" % sha.encode()
    )
    assert relay.eval("return nosuch").startswith(
        b"-ERR user_script:1: Script attempted to access nonexistent global variable 'nosuch'"
    )
    assert relay.eval("x = 1").startswith(b"-ERR user_script:1: Attempt to modify a readonly table")
    assert relay.eval("return redis.pcall('GET', 'list')").startswith(b"-WRONGTYPE")


def test_errors_keep_crlf_only_where_the_master_does() -> None:
    assert b"a b" in Relay(REDIS70).eval("error('a\\nb')")
    assert b"a\nb" in Relay(REDIS82).eval("error('a\\nb')")


# ---------------------------------------------------------------- what a script may run


def test_a_write_gets_the_replicas_readonly_error(relay: Relay) -> None:
    assert relay.eval("return redis.call('SET', 'a', 'b')").startswith(
        b"-READONLY You can't write against a read only replica. script: "
    )
    assert relay.eval("return redis.call('SET', 'a', 'b')", ro=True).startswith(
        b"-ERR Write commands are not allowed from read-only scripts. script: "
    )
    # PUBLISH may replicate: refused to a read-only script, run for a compatibility one.
    assert (
        relay.eval("return redis.pcall('PUBLISH', 'c', 'm')", ro=True)
        == b"-ERR Write commands are not allowed from read-only scripts.\r\n"
    )
    assert not any(argv[0] == b"SET" for argv in relay.calls)


def test_noscript_and_unknown_commands_never_reach_the_relay(relay: Relay) -> None:
    assert (
        relay.eval("return redis.pcall('EVAL', 'return 1', 0)")
        == b"-ERR This Redis command is not allowed from script\r\n"
    )
    assert (
        relay.eval("return redis.pcall('NOSUCH')")
        == b"-ERR Unknown Redis command called from script\r\n"
    )
    assert (
        relay.eval("return redis.pcall('GET')")
        == b"-ERR Wrong number of args calling Redis command from script\r\n"
    )
    assert relay.calls == []


def test_a_stale_replica_refuses_commands_without_the_stale_flag(relay: Relay) -> None:
    argv = [b"EVAL", b"return redis.call('GET', 'str')", b"0"]
    assert (
        relay.scripting.eval(relay.caller(stale=True), argv, evalsha=False, ro=False)
        == b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n"
    )
    argv = [b"EVAL", b"#!lua flags=no-writes,allow-stale\nreturn redis.call('GET', 'str')", b"0"]
    assert relay.scripting.eval(relay.caller(stale=True), argv, evalsha=False, ro=False).startswith(
        b"-ERR Can not execute the command on a stale replica script:"
    )


def test_shebang_flags_replace_the_commands_flags(relay: Relay) -> None:
    base = frozenset({"noscript", "stale", "skip_monitor"})
    flags = relay.scripting.command_flags
    assert flags(b"eval", [b"EVAL", b"return 1", b"0"], base) == base
    assert "write" in flags(b"eval", [b"EVAL", b"#!lua\nreturn 1", b"0"], base)
    ro = flags(b"eval", [b"EVAL", b"#!lua flags=no-writes\nreturn 1", b"0"], base)
    assert "write" not in ro and "stale" not in ro
    assert "stale" in flags(b"eval", [b"EVAL", b"#!lua flags=no-writes,allow-stale\n", b"0"], base)
    # an unknown SHA or a bad shebang leaves the command's flags to the command itself
    assert flags(b"evalsha", [b"EVALSHA", b"f" * 40, b"0"], base) == base
    assert flags(b"eval", [b"EVAL", b"#!lua flags=bad\nreturn 1", b"0"], base) == base


def test_extract_shebang_flags() -> None:
    assert extract_shebang_flags(b"return 1") == (SCRIPT_FLAG_EVAL_COMPAT_MODE, 0, b"lua")
    assert extract_shebang_flags(b"#!lua flags=no-writes,allow-stale\nreturn 1") == (
        SCRIPT_FLAG_NO_WRITES | SCRIPT_FLAG_ALLOW_STALE,
        33,
        b"lua",
    )
    with pytest.raises(ShebangError, match="Unexpected engine"):
        extract_shebang_flags(b"#!py\nreturn 1")
    assert extract_shebang_flags(b"#!py\nreturn 1", valkey=True)[2] == b"py"
    with pytest.raises(ShebangError, match="Invalid script shebang"):
        extract_shebang_flags(b"#!lua")
    assert flags_to_cmd_flags(frozenset({"stale"}), SCRIPT_FLAG_NO_WRITES) == frozenset()


# ---------------------------------------------------------------- the script cache


def test_script_load_evalsha_exists_flush(relay: Relay) -> None:
    sha = relay.cmd("SCRIPT", "LOAD", "return 'x'")
    assert sha == b"$40\r\n" + libs.sha1hex(b"return 'x'") + b"\r\n"
    digest = sha[5:45].decode()
    assert relay.cmd("EVALSHA", digest.upper(), "0") == b"$1\r\nx\r\n"
    assert relay.cmd("SCRIPT", "EXISTS", digest, "f" * 40) == b"*2\r\n:1\r\n:0\r\n"
    assert relay.cmd("SCRIPT", "FLUSH") == b"+OK\r\n"
    assert (
        relay.cmd("EVALSHA", digest, "0") == b"-NOSCRIPT No matching script. Please use EVAL.\r\n"
    )


def test_eval_compiled_scripts_are_evicted_past_500_from_7_4() -> None:
    r = Relay(REDIS82)
    loaded = r.cmd("SCRIPT", "LOAD", "return 'kept'")[5:45].decode()
    first = libs.sha1hex(b"return 0").decode()
    for i in range(501):
        r.eval(f"return {i}")
    assert r.cmd("SCRIPT", "EXISTS", first, loaded) == b"*2\r\n:0\r\n:1\r\n"
    old = Relay(REDIS70)
    for i in range(501):
        old.eval(f"return {i}")
    assert old.cmd("SCRIPT", "EXISTS", first) == b"*1\r\n:1\r\n"


def test_math_random_is_one_sequence_per_server(relay: Relay) -> None:
    # Redis's first draws of a fresh server (redisLrand48 from its initial state).
    assert relay.eval("return math.random(100)") == b":40\r\n"
    second = relay.eval("return tostring(math.random())")
    relay.eval("math.randomseed(7)")
    a = relay.eval("return tostring(math.random())")
    relay.eval("math.randomseed(7)")
    assert relay.eval("return tostring(math.random())") == a != second


# ---------------------------------------------------------------- functions


LIB = b"""#!lua name=lib
redis.register_function{function_name='get', callback=function(keys, args)
  return redis.call('GET', keys[1]) end, flags={'no-writes'}, description='reads'}
redis.register_function('write', function(keys) return redis.call('SET', keys[1], 'x') end)
"""


def test_functions_follow_the_masters_libraries(relay: Relay) -> None:
    assert relay.cmd("FCALL_RO", "get", "1", "str") == b"-ERR Function not found\r\n"
    relay.libraries[b"lib"] = Function(LIB)
    assert relay.cmd("FCALL_RO", "get", "1", "str") == b"$5\r\nhello\r\n"
    assert relay.cmd("FCALL", "GET", "1", "str") == b"$5\r\nhello\r\n"
    assert (
        relay.cmd("FCALL", "write", "1", "str")
        == b"-READONLY Can not run script with write flag on readonly replica\r\n"
    )
    flags = relay.scripting.command_flags
    assert "write" in flags(b"fcall", [b"FCALL", b"write", b"0"], frozenset())
    assert "write" not in flags(b"fcall_ro", [b"FCALL_RO", b"get", b"0"], frozenset())
    stats = relay.cmd("FUNCTION", "STATS")
    assert b"libraries_count\r\n:1\r\n$15\r\nfunctions_count\r\n:2" in stats
    listed = relay.cmd("FUNCTION", "LIST", "WITHCODE")
    assert b"$5\r\nreads\r\n" in listed and b"+no-writes\r\n" in listed and LIB in listed
    dumped = relay.cmd("FUNCTION", "DUMP")
    payload = dumped[dumped.index(b"\r\n") + 2 : -2]
    assert [f.code for f in parse_function_dump(payload)] == [LIB]
    assert struct.unpack("<H", payload[-10:-8]) == (10,)
    # FUNCTION DELETE on the master: the function goes away here too
    del relay.libraries[b"lib"]
    assert relay.cmd("FCALL_RO", "get", "1", "str") == b"-ERR Function not found\r\n"


def test_functions_get_keys_and_args_and_no_globals(relay: Relay) -> None:
    relay.libraries[b"l2"] = Function(
        b"#!lua name=l2\nredis.register_function{function_name='f', flags={'no-writes'},"
        b" callback=function(k, a) return {k[1], a[1], tostring(pcall(function() "
        b"return KEYS end))} end}"
    )
    assert (
        relay.cmd("FCALL_RO", "f", "1", "key", "arg")
        == b"*3\r\n$3\r\nkey\r\n$3\r\narg\r\n$5\r\nfalse\r\n"
    )


# ---------------------------------------------------------------- busy scripts, in isolation


LOOP = "local i = 0 while true do i = i + 1 end"


def test_a_script_under_the_threshold_never_calls_on_busy() -> None:
    r = Relay(threshold=5000)
    r.on_busy = lambda: r.busy_calls.append(True)
    assert (
        r.eval("local i = 0 for j = 1, 1000000 do i = i + j end return i") == b":500000500000\r\n"
    )
    assert r.busy_calls == []


def test_busy_script_serves_others_and_script_kill_ends_it() -> None:
    r = Relay(threshold=100)
    seen: list[bytes] = []

    def on_busy() -> None:
        s = r.scripting
        seen.append(b"busy" if s.busy else b"idle")
        seen.append(s.busy_error())
        seen.append(r.cmd("FUNCTION", "KILL"))  # the wrong KILL for an EVAL
        seen.append(r.cmd("FUNCTION", "STATS"))
        seen.append(r.cmd("SCRIPT", "KILL"))

    r.on_busy = on_busy
    r.tick = 0.06  # the hook's second look at the clock finds the script past 100 ms
    out = r.eval(LOOP)
    assert out.startswith(b"-ERR Script killed by user with SCRIPT KILL... script: ")
    busy = (
        b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN "
        b"NOSAVE.\r\n"
    )
    assert seen == [b"busy", busy, busy, busy, b"+OK\r\n"]
    assert not r.scripting.busy
    assert r.cmd("SCRIPT", "KILL") == b"-NOTBUSY No scripts in execution right now.\r\n"


def test_pcall_cannot_catch_the_kill() -> None:
    r = Relay(threshold=1)
    r.tick = 1.0

    def on_busy() -> None:
        r.cmd("SCRIPT", "KILL")

    r.on_busy = on_busy
    out = r.eval("while true do pcall(function() while true do end end) end")
    assert out.startswith(b"-ERR Script killed by user")


def test_a_busy_function_is_killed_by_function_kill_only() -> None:
    r = Relay(VALKEY81, threshold=1)
    r.libraries[b"loop"] = Function(
        b"#!lua name=loop\nredis.register_function{function_name='loop', flags={'no-writes'},"
        b" callback=function() local i = 0 while true do i = i + 1 end end}"
    )
    replies: list[bytes] = []

    def on_busy() -> None:
        replies.append(r.cmd("SCRIPT", "KILL"))
        replies.append(r.cmd("FUNCTION", "STATS", proto=3))
        replies.append(r.cmd("FUNCTION", "KILL"))

    r.on_busy = on_busy
    r.tick = 1.0
    out = r.cmd("FCALL_RO", "loop", "0")
    assert out == (
        b"-ERR Script killed by user with FUNCTION KILL. script: loop, on @user_function:2.\r\n"
    )
    assert replies[0] == (
        b"-BUSY Valkey is busy running a script. You can only call FUNCTION "
        b"KILL or SHUTDOWN NOSAVE.\r\n"
    )
    assert replies[1].startswith(
        b"%2\r\n$14\r\nrunning_script\r\n%3\r\n$4\r\nname\r\n$4\r\nloop\r\n"
        b"$7\r\ncommand\r\n*3\r\n$8\r\nFCALL_RO\r\n$4\r\nloop\r\n$1\r\n0\r\n"
        b"$11\r\nduration_ms\r\n:"
    )
    assert replies[2] == b"+OK\r\n"


def test_a_coroutine_carries_the_busy_hook() -> None:
    r = Relay(threshold=1)
    r.tick = 1.0

    def kill() -> None:
        r.cmd("SCRIPT", "KILL")

    r.on_busy = kill
    out = r.eval(
        "local co = coroutine.create(function() while true do end end) "
        "return {coroutine.resume(co)}"
    )
    assert out.startswith(b"*2\r\n$-1\r\n")  # resume returned false, the kill's message
    assert b"Script killed by user" in out


# ---------------------------------------------------------------- the sandbox


@pytest.mark.parametrize(
    "src",
    [
        "return type(python)",
        "return type(io)",
        "return type(require)",
        "return type(getfenv)",
        "return type(debug)",
        "return type(newproxy)",
        "return type(package)",
    ],
)
def test_the_sandbox_has_no_way_out(relay: Relay, src: str) -> None:
    assert b"nonexistent global variable" in relay.eval(src)


def test_loaded_chunks_run_in_the_sandbox(relay: Relay) -> None:
    assert b"nonexistent global variable 'python'" in relay.eval(
        "return loadstring('return python')()"
    )
    assert relay.eval("return {loadstring(string.dump(function() return 1 end))}") == b"*0\r\n"


# ---------------------------------------------------------------- the Python halves


def test_patch_tailcalls_keeps_the_callers_frame() -> None:
    import lupa.lua51 as lua51

    rt = lua51.LuaRuntime(encoding=None, register_eval=False)
    chunk = rt.eval("loadstring")(b"local f = ... return f()", b"@caller")
    patched = rt.eval("loadstring")(libs.patch_tailcalls(rt.eval("string.dump")(chunk)), b"@caller")
    where = rt.eval("function() return debug.getinfo(2, 'S').source end")
    assert patched(where) == b"@caller"
    assert chunk(where) != b"@caller"  # a real tail call loses the frame


def test_lrand48_matches_redis() -> None:
    prng = libs.Lrand48()
    assert int(prng.random() * 100) + 1 == 40
    prng.seed(-5)
    assert prng.x == (0xFFFF << 32) | (0xFFFB << 16) | 0x330E


def test_bitop_and_tohex() -> None:
    assert libs.bitop(b"sar", 0xFFFFFF00, 4) == 0xFFFFFFF0
    assert libs.bitop(b"rol", 0x12345678, 8) == 0x34567812
    assert libs.bitop(b"bswap", 0x12345678, 0) == 0x78563412
    assert libs.bit_tohex(255, -4) == b"00FF"
    assert libs.bit_barg(b"4294967296") == 0


def test_mp_double_picks_float32_when_exact() -> None:
    assert libs.mp_double(b"1.5") == b"\xca" + struct.pack(">f", 1.5)
    assert libs.mp_double(b"0.1") == b"\xcb" + struct.pack(">d", 0.1)
