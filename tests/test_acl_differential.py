"""ACLs as a real replica enforces them: the relay and a real replica of the same master, both
started with the same ACL file, answer a matrix of users x commands the same way.

For every (user, command) pair a fresh connection authenticates and sends the command to
both servers; an error must have the same text (NOPERM, NOAUTH, WRONGPASS... where Redis's
text is deterministic, else its first word), any other answer the same RESP type. Commands
that would change the real replica if allowed (SHUTDOWN, REPLICAOF, MONITOR, SYNC) are sent
with arguments that make them fail after the ACL check, or only for users who are refused.
Then ACL WHOAMI / USERS / LIST / GETUSER / CAT / DRYRUN / LOG are compared (ACL LOG by its
fields: client-info and times differ between two servers). Redis 7.0 rebuilds the command
rules of ACL LIST from bits and lists single commands in hash order, so for 7.0 those are
compared as a set after the categories, which keep their order.

Runs against redis7 (7.0), redis8 (8.2) and valkey8 (8.1) where installed (their NOPERM texts,
ACL LOG fields and rule display differ); REPLPROXY_TEST_KINDS narrows the kinds.
"""

from __future__ import annotations

import hashlib
import re
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from replproxy.commandtable.table import CommandTable
from replproxy.resp.request import encode_command
from tests.conftest import KINDS
from tests.harness.readcheck import Agg, parse_reply, read_reply
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, all_kinds, start_server, wait_for

# The keyspace and differential suites run against the older versions too (conftest.py).
pytestmark = pytest.mark.every_version

ACL_KINDS = [k for k in KINDS if k.name in ("redis7", "redis8", "valkey8")]


HASHED = hashlib.sha256(b"hpw").hexdigest()

# name -> (password, ACL file line without "user <name>")
USERS: dict[str, tuple[str | None, str]] = {
    "default": (None, "on nopass ~* &* +@all"),
    "reader": ("rpw", "on >rpw ~app:* &news -@all +@read"),
    "admin": ("apw", "on >apw ~* &* +@all"),
    "rw": ("rwpw", "on >rwpw %R~app:* %W~tmp:* resetchannels -@all +@read +@write"),
    "chan": ("cpw", "on >cpw resetkeys &news:* &exact -@all +@pubsub +ping"),
    "sel": (
        "spw",
        "on >spw ~app:* resetchannels -@all +get (~secret:* +strlen) (%R~tmp:* +@string)",
    ),
    "first": ("fpw", "on >fpw ~* resetchannels -@all +select|0 +client|getname +config|get"),
    "off": ("opw", "off >opw ~* &* +@all"),
    "free": (None, "on nopass ~* &* -@all +ping +@connection"),
    "slow": ("slpw", "on >slpw ~* &* -@all +@slow"),
    "nodanger": ("ndpw", "on >ndpw ~* &* +@all -@admin -@dangerous -keys"),
    "hashed": ("hpw", f"on #{HASHED} ~* resetchannels +@read -@all +@read -get +get"),
}

ACL_TEXT = "".join(f"user {name} {rules}\n" for name, (_, rules) in USERS.items())

# (argv, how): EXACT compares an error's text, WORD only its first word (the relay's own texts
# for what it does, e.g. REPLICAOF with a bad port, differ from Redis's), ACL only what the
# ACL decided (the relay refuses CONFIG SET, EVAL, ACL DELUSER... for its own reasons, after
# the same ACL check).
EXACT, WORD, ACL = True, False, None
Cmd = tuple[tuple[str, ...], bool | None]
COMMANDS: list[Cmd] = [
    (("ping",), True),
    (("get", "app:1"), True),
    (("get", "secret:1"), True),
    (("get", "tmp:1"), True),
    (("strlen", "secret:1"), True),
    (("strlen", "app:1"), True),
    (("mget", "app:1", "secret:1"), True),
    (("mget", "app:1", "app:2"), True),
    (("hgetall", "app:h"), True),
    (("exists", "app:1", "tmp:1"), True),
    (("keys", "*"), True),
    (("scan", "0"), True),
    (("dbsize",), True),
    (("set", "app:1", "x"), True),
    (("set", "tmp:1", "x"), True),
    (("set", "secret:1", "x"), True),
    (("copy", "app:1", "tmp:2"), True),
    (("copy", "tmp:1", "app:2"), True),
    (("del", "tmp:1"), True),
    (("lmove", "app:l", "tmp:l", "left", "right"), True),
    (("flushall",), True),
    (("select", "0"), True),
    (("select", "1"), True),
    (("client", "getname"), True),
    (("client", "id"), True),
    (("client", "list"), True),
    (("client", "kill", "id", "987654321"), True),
    (("config", "get", "maxmemory"), True),
    (("config", "set", "maxmemory", "1"), ACL),
    (("info", "server"), True),
    (("debug", "digest"), True),
    (("save",), True),
    (("shutdown", "abort"), False),
    (("replicaof", "127.0.0.1", "notaport"), False),
    (("slaveof", "127.0.0.1", "notaport"), False),
    (("acl", "whoami"), True),
    (("acl", "cat"), True),
    (("acl", "users"), True),
    (("acl", "deluser", "nobody"), EXACT),
    (("subscribe", "news"), True),
    (("subscribe", "news:1"), True),
    (("subscribe", "other"), True),
    (("subscribe", "news:1", "other"), True),
    (("ssubscribe", "news:2"), True),
    (("psubscribe", "news:*"), True),
    (("psubscribe", "*"), True),
    (("psubscribe", "news:1"), True),
    (("publish", "exact", "m"), True),
    (("publish", "news:9", "m"), True),
    (("publish", "other", "m"), True),
    (("spublish", "news:3", "m"), True),
    (("pubsub", "channels"), True),
    (("unsubscribe", "whatever"), True),
    (("eval", "return 1", "0"), True),
    (("eval", "return redis.call('get', KEYS[1])", "1", "secret:1"), True),
    (("object", "encoding", "app:1"), True),
    (("sort_ro", "app:l"), True),
    (("sort_ro", "app:l", "by", "app:w_*"), True),
    (("sort_ro", "app:l", "by", "nosort", "get", "#"), True),
    (("sort_ro", "app:l", "limit", "x", "1", "get", "#"), True),
    (("xread", "streams", "app:s", "0"), True),
    (("xread", "streams", "secret:s", "0"), True),
    (("multi",), True),
    (("exec",), True),
    (("wait", "0", "0"), True),
]

# Commands that change the real replica when allowed: only sent to users that are refused
# them on both servers, which the matrix checks through ACL DRYRUN first.
RISKY: list[tuple[str, ...]] = [
    ("monitor",),
    ("sync",),
    ("psync", "?", "-1"),
    ("shutdown", "nosave"),
    ("replicaof", "127.0.0.1", "1"),
]


def raw_call(port: int, *cmds: Sequence[str], timeout: float = 10) -> list[bytes]:
    """A fresh connection, the commands in order, one reply each."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        buf = bytearray()
        out = []
        for argv in cmds:
            s.sendall(encode_command([a.encode() for a in argv]))
            out.append(read_reply(s, buf))
        return out


_ACL_ERRORS = (b"-NOPERM", b"-NOAUTH", b"-WRONGPASS", b"-EXECABORT")


def classify(r: bytes, how: bool | None) -> bytes:
    """What must be equal: an error's text (or its first word), else the RESP type; for ACL
    only the ACL's own errors."""
    if how is ACL:
        return r if r.startswith(_ACL_ERRORS) else b"passed the ACL"
    if r.startswith(b"-"):
        return r if how else r.split(b" ", 1)[0]
    return r[:1]


def items(raw: bytes) -> list:
    v = parse_reply(raw)
    assert isinstance(v, Agg), raw
    return v.items


def login(user: str) -> list[tuple[str, ...]]:
    pw = USERS[user][0]
    if user == "default":
        return []
    return [("auth", user, pw or "anything")]


@dataclass
class Pair:
    kind: ServerKind
    master: RedisServer
    replica: RedisServer
    relay: RelayProcess
    files: tuple[Path, Path]  # the replica's and the relay's ACL files

    @property
    def ports(self) -> tuple[int, int]:
        return self.replica.port, self.relay.port


def fill(master: RedisServer) -> None:
    with master.client() as c:
        c.set("app:1", "v1")
        c.set("app:2", "v2")
        c.set("secret:1", "s")
        c.set("tmp:1", "t")
        c.hset("app:h", mapping={"f": "v"})
        c.rpush("app:l", "3", "1", "2")
        c.xadd("app:s", {"f": "v"})
        c.xadd("secret:s", {"f": "v"})


def wait_replica(master: RedisServer, replica: RedisServer) -> None:
    def synced() -> bool:
        off = int(master.info("replication")["master_repl_offset"])
        with replica.client(username="admin", password="apw") as c:
            info = c.info("replication")
        return info["master_link_status"] == "up" and int(info["slave_repl_offset"]) >= off

    wait_for(synced, 30, what="replica in sync")


@pytest.fixture(scope="module", params=ACL_KINDS, ids=[k.name for k in ACL_KINDS])
def pair(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pair]:
    kind: ServerKind = request.param
    yield from _start_pair(kind, ACL_TEXT, tmp_path_factory.mktemp(f"acl-{kind.name}"))


def _start_pair(kind: ServerKind, acl_text: str, d: Path) -> Iterator[Pair]:
    # One file each: ACL SAVE rewrites it (the relay runs with --acl-writable to be compared
    # on ACL SETUSER / DELUSER / SAVE / LOAD too).
    replica_acl, relay_acl = d / "replica.acl", d / "relay.acl"
    replica_acl.write_text(acl_text)
    relay_acl.write_text(acl_text)
    master = start_server(kind)
    replica = relay = None
    try:
        fill(master)
        replica = start_server(
            kind,
            extra={"replicaof": f"127.0.0.1 {master.port}", "aclfile": str(replica_acl)},
            wait=False,
        )
        relay = start_relay(upstream_url(master), "--aclfile", str(relay_acl), "--acl-writable")
        wait_replica(master, replica)
        relay.wait_in_sync_with(master)
        relay.wait_saved()  # SAVE is among the commands compared
        yield Pair(kind, master, replica, relay, (replica_acl, relay_acl))
    finally:
        for s in (relay, replica, master):
            if s is not None:
                s.stop()


def test_users_by_commands_matrix(pair: Pair) -> None:
    """Every user x every command: the same answer class on the relay and the replica."""
    diffs = []
    for user in USERS:
        for argv, exact in COMMANDS:
            script = [*login(user), argv]
            theirs, mine = (raw_call(p, *script) for p in pair.ports)
            a = [classify(r, exact) for r in theirs]
            b = [classify(r, exact) for r in mine]
            if a != b:
                diffs.append(f"{user} {argv}: replica {theirs!r} relay {mine!r}")
    assert not diffs, "\n".join(diffs)


def test_wrong_passwords_and_disabled_users(pair: Pair) -> None:
    cases: list[list[tuple[str, ...]]] = [
        [("auth", "reader", "nope"), ("get", "app:1")],
        [("auth", "off", "opw"), ("get", "app:1")],
        [("auth", "nobody", "x")],
        [("auth", "free", "anything"), ("ping",)],
        [("auth", "hashed", "hpw"), ("get", "app:1")],
        [("auth", "onlyone")],
        [("hello", "3", "auth", "reader", "bad")],
        [("hello", "2", "auth", "reader", "rpw"), ("acl", "whoami")],
    ]
    for script in cases:
        theirs, mine = (raw_call(p, *script) for p in pair.ports)
        a = [classify(r, True) for r in theirs]
        b = [classify(r, True) for r in mine]
        assert a == b, f"{script}: replica {theirs!r} relay {mine!r}"


def test_risky_admin_commands_refused(pair: Pair) -> None:
    """MONITOR, SYNC, PSYNC, SHUTDOWN, REPLICAOF by users who may not run them: NOPERM on
    both, and both keep running and replicating."""
    for user in ("reader", "rw", "chan", "sel", "first", "free", "nodanger", "hashed"):
        for argv in RISKY:
            dry = raw_call(
                pair.replica.port, ("auth", "admin", "apw"), ("acl", "dryrun", user, *argv)
            )[1]
            assert dry != b"+OK\r\n", f"{user} may run {argv} on the replica: not a safe case"
            theirs, mine = (raw_call(p, *login(user), argv) for p in pair.ports)
            assert [classify(r, True) for r in mine] == [classify(r, True) for r in theirs], (
                f"{user} {argv}: replica {theirs!r} relay {mine!r}"
            )
    assert pair.relay.alive()
    with pair.relay.client(username="admin", password="apw") as c:
        info = c.info("replication")
    assert info["master_port"] == pair.master.port and info["master_link_status"] == "up"


def _norm_rules(text: bytes, rebuilt: bool) -> bytes:
    """Redis 7.0 lists single-command rules in hash order: sort them (categories keep their
    place, they come first)."""
    if not rebuilt:
        return text

    def fix(segment: str) -> str:
        words = segment.split(" ")
        head = [w for w in words if not (w[:1] in "+-" and w[1:2] != "@")]
        singles = sorted(w for w in words if w[:1] in "+-" and w[1:2] != "@")
        return " ".join(head + singles)

    s = text.decode()
    parts = re.split(r"( \(|\))", s)
    return "".join(fix(p) if p not in (" (", ")") else p for p in parts).encode()


def _rebuilt(kind: ServerKind) -> bool:
    return not kind.is_valkey and kind.version < (7, 2, 0)


def test_acl_introspection(pair: Pair) -> None:
    rebuilt = _rebuilt(pair.kind)
    admin = ("auth", "admin", "apw")
    for cmd in (
        ("acl", "whoami"),
        ("acl", "users"),
        ("acl", "getuser", "nobody"),
        ("acl", "cat", "nosuch"),
        ("acl", "genpass", "0"),
        ("acl", "genpass", "x"),
        ("acl", "log", "x"),
        ("acl", "load"),
        ("acl", "save"),
    ):
        theirs, mine = (raw_call(p, admin, cmd)[1] for p in pair.ports)
        assert mine == theirs, f"{cmd}: replica {theirs!r} relay {mine!r}"
    # ACL LIST
    theirs_rules, mine_rules = (items(raw_call(p, admin, ("acl", "list"))[1]) for p in pair.ports)
    assert [_norm_rules(x, rebuilt) for x in mine_rules] == [
        _norm_rules(x, rebuilt) for x in theirs_rules
    ]
    # ACL GETUSER, in RESP2 and RESP3
    for proto in ("2", "3"):
        for user in USERS:
            theirs, mine = (
                raw_call(p, admin, ("hello", proto), ("acl", "getuser", user))[2]
                for p in pair.ports
            )
            if not rebuilt:
                assert mine == theirs, f"GETUSER {user}: replica {theirs!r} relay {mine!r}"
            else:
                assert _getuser_norm(parse_reply(mine)) == _getuser_norm(parse_reply(theirs)), (
                    f"GETUSER {user}: replica {theirs!r} relay {mine!r}"
                )
    # ACL CAT: the same names (Redis lists a category's commands in hash order)
    for cat_cmd in (
        ("acl", "cat"),
        *[("acl", "cat", c) for c in ("read", "admin", "slow", "connection", "pubsub")],
    ):
        theirs_cats, mine_cats = (items(raw_call(p, admin, cat_cmd)[1]) for p in pair.ports)
        if len(cat_cmd) == 2:
            assert mine_cats == theirs_cats
        else:
            assert sorted(mine_cats) == sorted(theirs_cats), cat_cmd


def _getuser_norm(v: object) -> object:
    if isinstance(v, Agg):
        return Agg(v.kind, [_getuser_norm(x) for x in v.items])
    if isinstance(v, list):
        return [_getuser_norm(x) for x in v]
    if isinstance(v, bytes) and (v.startswith(b"-@all") or v.startswith(b"+@all")):
        return _norm_rules(v, True)
    return v


def test_acl_dryrun(pair: Pair) -> None:
    admin = ("auth", "admin", "apw")
    cases = [(user, argv) for user in USERS for argv, _ in COMMANDS[:30]] + [
        (user, argv) for user in USERS for argv in RISKY
    ]
    cases += [
        ("nobody", ("get", "x")),
        ("reader", ("nosuchcmd",)),
        ("reader", ("get",)),
        ("reader", ("config", "nosuch")),
        ("reader", ("config", "get")),
    ]
    diffs = []
    for user, argv in cases:
        theirs, mine = (raw_call(p, admin, ("acl", "dryrun", user, *argv))[1] for p in pair.ports)
        if mine != theirs:
            diffs.append(f"DRYRUN {user} {argv}: replica {theirs!r} relay {mine!r}")
    assert not diffs, "\n".join(diffs)


_LOG_SCRIPT: list[list[tuple[str, ...]]] = [
    [("auth", "reader", "wrong")],
    [("auth", "reader", "wrong")],
    [("auth", "nobody", "x")],
    [("auth", "reader", "rpw"), ("get", "secret:1")],
    [("auth", "reader", "rpw"), ("get", "secret:1")],
    [("auth", "reader", "rpw"), ("config", "get", "maxmemory")],
    [("auth", "chan", "cpw"), ("subscribe", "news:1", "other")],
    [("auth", "chan", "cpw"), ("psubscribe", "*")],
    [("auth", "reader", "rpw"), ("multi",), ("get", "secret:2"), ("exec",)],
    [("hello", "3", "auth", "sel", "bad")],
    [("auth", "sel", "spw"), ("set", "tmp:1", "x")],
]


def test_acl_log(pair: Pair) -> None:
    admin = ("auth", "admin", "apw")
    for port in pair.ports:
        raw_call(port, admin, ("acl", "log", "reset"))
        for script in _LOG_SCRIPT:
            raw_call(port, *script)
    theirs, mine = (items(raw_call(p, admin, ("acl", "log"))[1]) for p in pair.ports)
    assert len(mine) == len(theirs) == 10
    for a, b in zip(theirs, mine, strict=True):
        fa = dict(zip(a.items[::2], a.items[1::2], strict=True))
        fb = dict(zip(b.items[::2], b.items[1::2], strict=True))
        assert list(fa) == list(fb)  # the same fields, in the same order
        for f in (b"count", b"reason", b"context", b"object", b"username"):
            assert fa[f] == fb[f], (f, fa, fb)
        ca = dict(kv.split(b"=", 1) for kv in fa[b"client-info"].split(b" "))
        cb = dict(kv.split(b"=", 1) for kv in fb[b"client-info"].split(b" "))
        assert ca[b"user"] == cb[b"user"]
        assert float(fb[b"age-seconds"]) >= 0
        if b"entry-id" in fa:
            assert fa[b"entry-id"] == fb[b"entry-id"]
            assert int(fb[b"timestamp-last-updated"]) >= int(fb[b"timestamp-created"])
    short_a, short_b = (len(items(raw_call(p, admin, ("acl", "log", "2"))[1])) for p in pair.ports)
    assert short_a == short_b == 2


# Scripts run their commands as the caller's user (`scriptVerifyACL`): a denial is the
# script's error (its text differs by version), `pcall` returns it, `redis.acl_check_cmd`
# asks without logging; denials are logged with context `lua`.
SCRIPTS: list[tuple[str, ...]] = [
    ("eval", "return redis.call('get', 'app:1')", "0"),
    ("eval", "return redis.call('get', 'secret:1')", "0"),
    ("eval", "return redis.pcall('get', 'secret:1')", "0"),
    ("eval", "return redis.call('strlen', 'secret:1')", "0"),
    ("eval", "return redis.call('config', 'get', 'maxmemory')", "0"),
    ("eval", "return redis.pcall('publish', 'other', 'm')", "0"),
    ("eval", "return redis.call('set', 'tmp:1', 'x')", "0"),
    ("eval", "return redis.acl_check_cmd('get', 'secret:1')", "0"),
    ("eval", "return redis.acl_check_cmd('get', 'app:1')", "0"),
    ("eval", "return redis.acl_check_cmd('set', 'tmp:1', 'x')", "0"),
    ("eval_ro", "return redis.call('get', KEYS[1])", "1", "secret:1"),
]


def test_scripts_run_as_the_callers_user(pair: Pair) -> None:
    admin = ("auth", "admin", "apw")
    for port in pair.ports:
        raw_call(port, admin, ("acl", "log", "reset"))
    diffs = []
    for user in ("default", "reader", "rw", "sel", "chan"):
        for argv in SCRIPTS:
            theirs, mine = (raw_call(p, *login(user), argv)[-1] for p in pair.ports)
            if mine != theirs:
                diffs.append(f"{user} {argv}: replica {theirs!r} relay {mine!r}")
    assert not diffs, "\n".join(diffs)
    theirs_log, mine_log = (items(raw_call(p, admin, ("acl", "log"))[1]) for p in pair.ports)
    assert len(mine_log) == len(theirs_log) > 0
    for a, b in zip(theirs_log, mine_log, strict=True):
        fa = dict(zip(a.items[::2], a.items[1::2], strict=True))
        fb = dict(zip(b.items[::2], b.items[1::2], strict=True))
        for f in (b"count", b"reason", b"context", b"object", b"username"):
            assert fa[f] == fb[f], (f, fa, fb)


def test_exec_rechecks_after_auth_in_multi(pair: Pair) -> None:
    script = [
        ("auth", "admin", "apw"),
        ("multi",),
        ("auth", "reader", "rpw"),
        ("get", "secret:1"),
        ("get", "app:1"),
        ("exec",),
    ]
    theirs, mine = (raw_call(p, *script) for p in pair.ports)
    assert mine == theirs


@pytest.mark.skipif(not ACL_KINDS, reason="no redis7/redis8/valkey8 kind here")
def test_relay_aclfile_errors_are_redis_errors(tmp_path: Path) -> None:
    """A file Redis refuses to start with is refused with Redis's own error text."""
    kind = ACL_KINDS[0]
    bad = tmp_path / "bad.acl"
    bad.write_text("user a on >x +nosuchcmd\nuser b on ~a ~* ~b\n# comment\nuser a on\n")
    master = start_server(kind)
    try:
        import subprocess
        import sys

        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "replproxy",
                "run",
                "--upstream",
                upstream_url(master),
                "--aclfile",
                str(bad),
                "--port",
                "0",
                "--metrics-port",
                "0",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 1
        assert (
            f"{bad}:1: Error in applying operation '+nosuchcmd': Unknown command or "
            f"category name in ACL. "
        ) in out.stderr
        assert f"{bad}:2: Adding a pattern after the * pattern" in out.stderr
        assert f"{bad}:3 should start with user keyword followed by the username." in out.stderr
        assert "WARNING: Duplicate user 'a' found on line 4." in out.stderr
        assert out.stderr.rstrip().endswith(
            "WARNING: ACL errors detected, no change to the previously active ACL rules was "
            "performed"
        )
    finally:
        master.stop()


SETUSER_SCRIPT: list[tuple[str, ...]] = [
    ("acl", "setuser", "x1", "on", ">p1", "~k:*", "&ch", "+get"),
    ("acl", "setuser", "x1", "+nosuch"),
    ("acl", "setuser", "x1", "allkeys", "~a"),
    ("acl", "setuser", "x1", "<nope"),
    ("acl", "setuser", "x1", "#bad"),
    ("acl", "setuser", "x1", "(~a", "+get"),
    ("acl", "setuser", "x1", "(~a +get)", "(", "%R~b", "+@read", ")"),
    ("acl", "setuser", "x1", "+config|get|x"),
    ("acl", "setuser", "x1", "+select|"),
    ("acl", "setuser", "x 2", "on"),
    ("acl", "setuser", "x1", "-@nosuch"),
    ("acl", "setuser", "x1", "%X~a"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x1", "clearselectors", "resetkeys", "%RW~rw:*", "resetchannels"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x1", "reset"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x2", "on", "nopass", "+@all", "-@dangerous", "+debug", "~*", "&*"),
    ("acl", "setuser", "x3", "on", ">a", ">b", "<a", "+client|id", "+select|0", "+select|1"),
    ("acl", "getuser", "x3"),
    ("acl", "deluser", "x3", "nobody"),
    ("acl", "deluser", "default"),
    ("acl", "users"),
    ("acl", "save"),
    ("acl", "load"),
    ("acl", "users"),
]


def test_setuser_deluser_save_load(pair: Pair) -> None:
    """With --acl-writable the relay changes users as the replica does: the same replies
    (rule errors included), the same users, and ACL SAVE writes the same file."""
    rebuilt = _rebuilt(pair.kind)
    admin = ("auth", "admin", "apw")
    for cmd in SETUSER_SCRIPT:
        theirs, mine = (raw_call(p, admin, cmd)[1] for p in pair.ports)
        if cmd[1] == "getuser" and rebuilt:
            assert _getuser_norm(parse_reply(mine)) == _getuser_norm(parse_reply(theirs)), cmd
        else:
            assert mine == theirs, f"{cmd}: replica {theirs!r} relay {mine!r}"
    theirs_rules, mine_rules = (items(raw_call(p, admin, ("acl", "list"))[1]) for p in pair.ports)
    assert [_norm_rules(x, rebuilt) for x in mine_rules] == [
        _norm_rules(x, rebuilt) for x in theirs_rules
    ]
    theirs_file, mine_file = (f.read_bytes().splitlines() for f in pair.files)
    assert [_norm_rules(x, rebuilt) for x in mine_file] == [
        _norm_rules(x, rebuilt) for x in theirs_file
    ]
    # a user a client is logged in as, deleted: that client is closed on both
    for port in pair.ports:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(encode_command([b"auth", b"x2", b"any"]))
            assert read_reply(s, bytearray()) == b"+OK\r\n"
            assert raw_call(port, admin, ("acl", "deluser", "x2"))[1] == b":1\r\n"
            s.settimeout(5)
            assert s.recv(100) == b""


def test_denial_counters(pair: Pair) -> None:
    """INFO's acl_access_denied_* (7.2+) count what every test before was refused, the same
    on both: each test sent both servers the same commands (under pytest-xdist, another
    worker may have run them; this test's own denials count either way)."""
    admin = ("auth", "admin", "apw")
    for port in pair.ports:
        raw_call(port, ("auth", "reader", "rpw"), ("config", "get", "maxmemory"))
        raw_call(port, ("auth", "reader", "rpw"), ("get", "secret:1"))

    def counters(port: int) -> dict[str, str]:
        text = raw_call(port, admin, ("info", "stats"))[1].decode()
        return dict(
            line.split(":", 1) for line in text.split("\r\n") if line.startswith("acl_access")
        )

    theirs, mine = (counters(p) for p in pair.ports)
    assert mine == theirs
    if not _rebuilt(pair.kind):
        assert len(mine) == 4 and int(mine["acl_access_denied_cmd"]) > 0


# --- Redis 6.2: its own command table, texts and reply shapes ---------------------------------

R62 = [k for k in KINDS if k.name == "redis62"]
ACL62 = (
    "user default on nopass ~* &* +@all\n"
    "user reader on >rpw ~app:* resetchannels &news -@all +@read\n"
    "user chan on >cpw resetkeys resetchannels &news:* &exact -@all +@pubsub\n"
    "user admin on >apw ~* &* +@all\n"
)
SCRIPT62: list[tuple[str, ...]] = [
    ("get", "app:1"),
    ("get", "secret:1"),
    ("mget", "app:1", "secret:1"),
    ("set", "app:1", "x"),
    ("keys", "*"),
    ("subscribe", "news:1"),
    ("subscribe", "news:1", "other"),
    ("psubscribe", "news:*"),
    ("psubscribe", "*"),
    ("publish", "exact", "m"),
    ("publish", "other", "m"),
    ("hgetall", "app:h"),
    ("eval", "return redis.call('get', 'secret:1')", "0"),
    ("eval", "return redis.pcall('publish', 'other', 'm')", "0"),
    ("eval", "return redis.call('get', 'app:1')", "0"),
]


@pytest.mark.skipif(not R62, reason="redis62 is not among REPLPROXY_TEST_KINDS here")
def test_redis62_texts_and_shapes(tmp_path: Path) -> None:
    """A 6.2 master: NOPERM texts, key patterns enforced, the default user an aclfile
    resets, ACL GETUSER's 6.2 shape and the 7-field ACL LOG."""
    kind = R62[0]
    for name in ("replica.acl", "relay.acl"):
        (tmp_path / name).write_text(ACL62)
    master = start_server(kind)
    replica = relay = None
    try:
        fill(master)
        replica = start_server(
            kind,
            extra={
                "replicaof": f"127.0.0.1 {master.port}",
                "aclfile": str(tmp_path / "replica.acl"),
            },
            wait=False,
        )
        relay = start_relay(upstream_url(master), "--aclfile", str(tmp_path / "relay.acl"))
        wait_replica(master, replica)
        relay.wait_in_sync_with(master)
        ports = (replica.port, relay.port)
        for user, pw in (("reader", "rpw"), ("chan", "cpw")):
            for argv in SCRIPT62:
                theirs, mine = (raw_call(p, ("auth", user, pw), argv) for p in ports)
                assert [classify(r, EXACT) for r in mine] == [classify(r, EXACT) for r in theirs], (
                    f"{user} {argv}: replica {theirs!r} relay {mine!r}"
                )
        admin = ("auth", "admin", "apw")
        for cmd in (
            ("acl", "getuser", "reader"),
            ("acl", "getuser", "chan"),
            ("acl", "getuser", "default"),
            ("acl", "users"),
        ):
            theirs_reply, mine_reply = (raw_call(p, admin, cmd)[1] for p in ports)
            assert mine_reply == theirs_reply, (
                f"{cmd}: replica {theirs_reply!r} relay {mine_reply!r}"
            )
        theirs_rules, mine_rules = (items(raw_call(p, admin, ("acl", "list"))[1]) for p in ports)
        assert [_norm_rules(x, True) for x in mine_rules] == [
            _norm_rules(x, True) for x in theirs_rules
        ]
        theirs_log, mine_log = (items(raw_call(p, admin, ("acl", "log", "3"))[1]) for p in ports)
        for a, b in zip(theirs_log, mine_log, strict=True):
            assert len(a.items) == len(b.items) == 14
            assert a.items[:10] == b.items[:10]  # count, reason, context, object, username
    finally:
        for s in (relay, replica, master):
            if s is not None:
                s.stop()


# The users of USERS that Redis 6.2 can define: no selectors, no %R~/%W~ (rw, sel); a new 6.2
# user has every channel (`acl-pubsub-default allchannels`), so a channel pattern needs a
# `resetchannels` first.
USERS62: dict[str, tuple[str | None, str]] = {
    name: (pw, re.sub(r"(?<!resetchannels )(&(?!\*)\S+)", r"resetchannels \1", rules, count=1))
    for name, (pw, rules) in USERS.items()
    if name not in ("rw", "sel")
}
# and one who may run scripts with restricted keys and first arguments
USERS62["scripter"] = (
    "scpw",
    "on >scpw ~app:* resetchannels &news -@all +@read +@scripting +select|0 +publish|news",
)
ACL_TEXT62 = "".join(f"user {name} {rules}\n" for name, (_, rules) in USERS62.items())
TABLE62 = CommandTable.load("redis-6.2")
# The matrix's commands 6.2 has (no SSUBSCRIBE, SPUBLISH, SORT_RO); plus what only 6.2 has or
# judges differently: first-arg rules on containers, keys only its own *GetKeys functions
# find (MEMORY USAGE, STRALGO LCS KEYS), a container whose keys come from its range.
COMMANDS62: list[Cmd] = [c for c in COMMANDS if TABLE62.get(c[0][0].encode()) is not None] + [
    (("memory", "usage", "secret:1"), EXACT),
    (("memory", "usage", "app:1"), EXACT),
    (("memory", "doctor"), ACL),
    # (the relay does not serve STRALGO: only the ACL's decision is compared)
    (("stralgo", "lcs", "keys", "app:1", "secret:1"), ACL),
    (("stralgo", "lcs", "keys", "app:1", "app:2"), ACL),
    (("stralgo", "lcs", "strings", "secret:1", "x"), ACL),
    (("object", "encoding", "secret:1"), EXACT),
    (("object", "freq", "app:1"), WORD),
    (("xinfo", "stream", "secret:s"), EXACT),
    (("xread", "count", "1", "streams", "app:s", "secret:s", "0", "0"), EXACT),
    (("zunion", "2", "app:z", "secret:z"), EXACT),
    (("zunion", "1", "app:z"), EXACT),
    (("georadius_ro", "secret:g", "0", "0", "1", "km"), EXACT),
    (("evalsha", "0" * 40, "1", "secret:1"), EXACT),
    (("sort", "app:l", "by", "secret:*", "get", "secret:*"), EXACT),
    (("client", "GETNAME"), EXACT),
    (("client", "nosuch"), EXACT),
    (("config", "nosuch"), EXACT),
    (("object", "nosuch", "secret:1"), EXACT),
    (("config", "GET", "maxmemory"), EXACT),
    (("select", "00"), EXACT),
    (("command", "getkeys", "get", "secret:1"), EXACT),
    (("auth", "x"), EXACT),
    (("hello", "2"), WORD),
]


def login62(user: str) -> list[tuple[str, ...]]:
    pw = USERS62[user][0]
    return [] if user == "default" else [("auth", user, pw or "anything")]


@pytest.fixture(scope="module")
def pair62(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    if not R62:
        pytest.skip("redis62 is not among REPLPROXY_TEST_KINDS here")
    yield from _start_pair(R62[0], ACL_TEXT62, tmp_path_factory.mktemp("acl-redis62"))


def test_redis62_users_by_commands_matrix(pair62: Pair) -> None:
    """The matrix on a 6.2 master, with 6.2's command table: its categories (SELECT is not
    @connection, CLIENT and CONFIG are whole @admin commands), first-arg rules (`+client|getname`
    allows CLIENT with that first argument) and keys (`getKeysFromCommand`, every key against
    the `~` patterns)."""
    diffs = []
    for user in USERS62:
        for argv, exact in COMMANDS62:
            script = [*login62(user), argv]
            theirs, mine = (raw_call(p, *script) for p in pair62.ports)
            a = [classify(_script_error(r), exact) for r in theirs]
            b = [classify(_script_error(r), exact) for r in mine]
            if a != b:
                diffs.append(f"{user} {argv}: replica {theirs!r} relay {mine!r}")
    assert not diffs, "\n".join(diffs)


def test_redis62_introspection(pair62: Pair) -> None:
    """ACL LIST / GETUSER of every user as a 6.2 replica renders them (the command rules
    rebuilt from 6.2's bits: single commands compared as a set), ACL CAT with 6.2's
    categories."""
    admin = ("auth", "admin", "apw")
    theirs_rules, mine_rules = (items(raw_call(p, admin, ("acl", "list"))[1]) for p in pair62.ports)
    assert [_norm_rules(x, True) for x in mine_rules] == [
        _norm_rules(x, True) for x in theirs_rules
    ]
    for proto in ("2", "3"):
        for user in USERS62:
            theirs, mine = (
                raw_call(p, admin, ("hello", proto), ("acl", "getuser", user))[2]
                for p in pair62.ports
            )
            assert _getuser_norm(parse_reply(mine)) == _getuser_norm(parse_reply(theirs)), (
                f"GETUSER {user}: replica {theirs!r} relay {mine!r}"
            )
    for cmd in (
        ("acl", "cat"),
        *[("acl", "cat", c) for c in ("read", "admin", "slow", "connection", "keyspace")],
    ):
        theirs_cats, mine_cats = (items(raw_call(p, admin, cmd)[1]) for p in pair62.ports)
        assert sorted(mine_cats) == sorted(theirs_cats), cmd


# 6.2's rule language where it differs from 7.0's: `+cmd|x` takes any first argument of any
# command (split at the first `|`, ignored while the command is allowed), `-cmd|x` is unknown,
# no selectors or %R~.
SETUSER62: list[tuple[str, ...]] = [
    ("acl", "setuser", "x1", "on", ">p1", "~k:*", "resetchannels", "&ch", "+get"),
    ("acl", "setuser", "x1", "+nosuch"),
    ("acl", "setuser", "x1", "allkeys", "~a"),
    ("acl", "setuser", "x1", "<nope"),
    ("acl", "setuser", "x1", "#bad"),
    ("acl", "setuser", "x1", "%R~a"),
    ("acl", "setuser", "x1", "(~a +get)"),
    ("acl", "setuser", "x1", "clearselectors"),
    ("acl", "setuser", "x1", "&more"),
    ("acl", "setuser", "x1", "+select|"),
    ("acl", "setuser", "x1", "-client|id"),
    ("acl", "setuser", "x1", "+client|id", "+nosuchcmd|x"),
    ("acl", "setuser", "x1", "+config|get|x", "+client|ID", "+client|id", "+get|x", "+ping|a|b"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x1", "+client", "+client|list"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x1", "-@all", "+@admin", "-client", "+client|list", "-@dangerous"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x1", "reset"),
    ("acl", "getuser", "x1"),
    ("acl", "setuser", "x2", "on", "nopass", "+@all", "-@dangerous", "+debug", "~*", "&*"),
    ("acl", "setuser", "x3", "on", ">a", ">b", "<a", "+client|id", "+select|0", "+select|1"),
    ("acl", "getuser", "x3"),
    ("acl", "setuser", "x4", "on", "nopass", "~k*", "+@all", "-get", "-@hash", "+hget"),
    ("acl", "getuser", "x4"),
    ("acl", "deluser", "x3", "nobody"),
    ("acl", "deluser", "default"),
    ("acl", "users"),
    ("acl", "save"),
    ("acl", "load"),
    ("acl", "users"),
]
# What the users SETUSER62 leaves may run (each logged in with its password).
AFTER_SETUSER62: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("auth", "x2", "x"), ("debug", "digest")),
    (("auth", "x2", "x"), ("flushall",)),
    (("auth", "x4", "x"), ("get", "k1")),
    (("auth", "x4", "x"), ("hget", "k1", "f")),
    (("auth", "x4", "x"), ("hget", "app:h", "f")),
    (("auth", "x4", "x"), ("hgetall", "k1")),
    (("auth", "x4", "x"), ("strlen", "k1")),
]


def test_redis62_setuser_deluser_save_load(pair62: Pair) -> None:
    admin = ("auth", "admin", "apw")
    for cmd in SETUSER62:
        theirs, mine = (raw_call(p, admin, cmd)[1] for p in pair62.ports)
        if cmd[1] == "getuser":
            assert _getuser_norm(parse_reply(mine)) == _getuser_norm(parse_reply(theirs)), (
                f"{cmd}: replica {theirs!r} relay {mine!r}"
            )
        else:
            assert mine == theirs, f"{cmd}: replica {theirs!r} relay {mine!r}"
    theirs_rules, mine_rules = (items(raw_call(p, admin, ("acl", "list"))[1]) for p in pair62.ports)
    assert [_norm_rules(x, True) for x in mine_rules] == [
        _norm_rules(x, True) for x in theirs_rules
    ]
    theirs_file, mine_file = (f.read_bytes().splitlines() for f in pair62.files)
    assert [_norm_rules(x, True) for x in mine_file] == [_norm_rules(x, True) for x in theirs_file]
    for script in AFTER_SETUSER62:
        theirs_replies, mine_replies = (raw_call(p, *script) for p in pair62.ports)
        assert [classify(r, EXACT) for r in mine_replies] == [
            classify(r, EXACT) for r in theirs_replies
        ], f"{script}: replica {theirs_replies!r} relay {mine_replies!r}"


_LOG_SCRIPT62: list[list[tuple[str, ...]]] = [
    [("auth", "reader", "wrong")],
    [("auth", "reader", "rpw"), ("get", "secret:1")],
    [("auth", "reader", "rpw"), ("client", "id")],
    [("auth", "first", "fpw"), ("client", "id")],
    [("auth", "reader", "rpw"), ("memory", "usage", "secret:1")],
    [("auth", "reader", "rpw"), ("eval", "return redis.call('get', 'secret:2')", "0")],
    [("auth", "reader", "rpw"), ("eval", "return redis.call('client', 'id')", "0")],
    [("auth", "reader", "rpw"), ("multi",), ("get", "secret:3"), ("exec",)],
    [("auth", "chan", "cpw"), ("subscribe", "news:1", "other")],
    [("auth", "chan", "cpw"), ("psubscribe", "*")],
]


def test_redis62_acl_log(pair62: Pair) -> None:
    """6.2 logs a refused command by its whole name (`client`, not `client|id`)."""
    admin = ("auth", "admin", "apw")
    for port in pair62.ports:
        raw_call(port, admin, ("acl", "log", "reset"))
        for script in _LOG_SCRIPT62:
            raw_call(port, *script)
    theirs, mine = (items(raw_call(p, admin, ("acl", "log", "20"))[1]) for p in pair62.ports)
    assert len(mine) == len(theirs) == len(_LOG_SCRIPT62)
    for a, b in zip(theirs, mine, strict=True):
        fa = dict(zip(a.items[::2], a.items[1::2], strict=True))
        fb = dict(zip(b.items[::2], b.items[1::2], strict=True))
        assert list(fa) == list(fb)
        for f in (b"count", b"reason", b"context", b"object"):
            assert fa[f] == fb[f], (f, fa, fb)


def _script_error(r: bytes) -> bytes:
    """The message of a script's error, without the wrapping that says where it was raised
    (6.2: "Error running script (call to f_<sha>): @user_script:1: @user_script: 1: ...";
    the relay wraps it as 7.0 does: docs/scripting.md, 6.2 scripts are not compared)."""
    m = re.match(
        rb"-ERR Error running script \(call to f_[0-9a-f]+\): @user_script:\d+: "
        rb"@user_script: \d+: (.*)\r\n$",
        r,
    ) or re.match(rb"-ERR (.*) script: [0-9a-f]+, on @user_script:\d+\.\r\n$", r)
    if m is None:  # an error `redis.pcall` returned: 6.2 prefixes where it was raised
        m = re.match(rb"-(?:@user_script: \d+: |ERR )(The user executing the script .*)\r\n$", r)
    return b"-ERR " + m.group(1) + b"\r\n" if m else r


def test_redis62_scripts_run_as_the_callers_user(pair62: Pair) -> None:
    """`redis.call` in a 6.2 script is judged as the caller, with 6.2's keys and first-arg
    rules (6.2's texts: "The user executing the script can't ...")."""
    scripts = [
        ("eval", "return redis.call('get', 'app:1')", "0"),
        ("eval", "return redis.call('get', 'secret:1')", "0"),
        ("eval", "return redis.pcall('get', 'secret:1')", "0"),
        ("eval", "return redis.call('strlen', 'secret:1')", "0"),
        ("eval", "return redis.pcall('publish', 'other', 'm')", "0"),
        ("eval", "return redis.pcall('publish', 'news', 'm')", "0"),
        ("eval", "return redis.call('select', '0')", "0"),
        ("eval", "return redis.call('select', '1')", "0"),
        ("eval", "return redis.call('object', 'encoding', 'secret:1')", "0"),
        ("eval", "return redis.pcall('memory', 'usage', 'secret:1')", "0"),
        ("eval", "return redis.call('xread', 'streams', 'app:s', 'secret:s', '0', '0')", "0"),
        ("eval", "return redis.call('get', KEYS[1])", "1", "secret:1"),
        ("eval", "return redis.call('get', KEYS[1])", "1", "app:1"),
    ]
    diffs = []
    for user in ("default", "reader", "chan", "first", "slow", "hashed", "scripter"):
        for argv in scripts:
            theirs, mine = (raw_call(p, *login62(user), argv)[-1] for p in pair62.ports)
            if classify(_script_error(mine), EXACT) != classify(_script_error(theirs), EXACT):
                diffs.append(f"{user} {argv}: replica {theirs!r} relay {mine!r}")
    assert not diffs, "\n".join(diffs)


# Before 7.0 a container answers an unknown subcommand itself, when it runs: after NOAUTH
# and the ACL, and from inside a transaction.
ORDER62: list[list[tuple[str, ...]]] = [
    [("client", "nosuch")],
    [("auth", "reader", "rpw"), ("client", "nosuch")],
    [("auth", "first", "fpw"), ("client", "nosuch")],
    [("auth", "first", "fpw"), ("config", "get")],
    [("multi",), ("client", "nosuch"), ("get", "app:1"), ("exec",)],
    [("auth", "reader", "rpw"), ("multi",), ("client", "nosuch"), ("exec",)],
    [("auth", "reader", "rpw"), ("multi",), ("object", "nosuch", "secret:1"), ("exec",)],
]


def test_redis62_unknown_subcommands_after_the_acl(pair62: Pair) -> None:
    for script in ORDER62:
        theirs, mine = (raw_call(p, *script) for p in pair62.ports)
        assert mine == theirs, f"{script}: replica {theirs!r} relay {mine!r}"
    # NOAUTH first: a replica with a password on its default user
    for port in pair62.ports:
        raw_call(port, ("auth", "admin", "apw"), ("acl", "setuser", "default", ">dpw"))
    try:
        theirs, mine = (raw_call(p, ("client", "nosuch")) for p in pair62.ports)
        assert mine == theirs
    finally:
        for port in pair62.ports:
            raw_call(port, ("auth", "admin", "apw"), ("acl", "setuser", "default", "nopass"))


# --- Redis 5.0: no ACL upstream, the relay's ACL is Redis 7.0's ----------------------------

R5 = [k for k in KINDS if k.name == "redis5"]


@pytest.mark.skipif(not R5, reason="redis5 is not among REPLPROXY_TEST_KINDS here")
def test_redis5_master_gets_redis_7_0s_acl(tmp_path: Path) -> None:
    """A 5.0 master has no ACL: with `--aclfile` the relay enforces Redis 7.0's
    (docs/security.md), judged with 7.0's command table. The oracle is a real Redis 7.0
    replica of the same 5.0 master with the same file: the same ACL decisions (NOPERM,
    NOAUTH, WRONGPASS) for every user and every command 5.0 has. With `--requirepass`
    alone the oracle is a real 5.0 replica: its AUTH, its texts."""
    r7 = next((k for k in all_kinds() if k.name == "redis7"), None)
    if r7 is None:
        pytest.skip("no Redis 7.0 binary here")
    table50 = CommandTable.load("redis-5.0")
    commands = [c for c in COMMANDS if table50.get(c[0][0].encode()) is not None] + [
        # Containers 5.0's table leaves whole (XINFO parses its own subcommand, XGROUP is a
        # write): judged as 7.0's subcommands, their key specs and bits included.
        (("xinfo", "stream", "secret:s"), ACL),
        (("xinfo", "stream", "app:s"), ACL),
        (("xinfo", "groups", "secret:s"), ACL),
        (("xgroup", "create", "secret:s", "g", "$"), ACL),
        (("xgroup", "create", "app:s", "g", "$"), ACL),
    ]
    for name in ("replica.acl", "relay.acl"):
        (tmp_path / name).write_text(ACL_TEXT)
    master = start_server(R5[0])
    replica = relay = replica2 = relay2 = None
    try:
        fill(master)
        replica = start_server(
            r7,
            extra={
                "replicaof": f"127.0.0.1 {master.port}",
                "aclfile": str(tmp_path / "replica.acl"),
            },
            wait=False,
        )
        relay = start_relay(upstream_url(master), "--aclfile", str(tmp_path / "relay.acl"))
        wait_replica(master, replica)
        relay.wait_in_sync_with(master)
        diffs = []
        for user in USERS:
            for argv, _ in commands:
                script = [*login(user), argv]
                theirs, mine = (raw_call(p, *script) for p in (replica.port, relay.port))
                a = [classify(r, ACL) for r in theirs]
                b = [classify(r, ACL) for r in mine]
                if a != b:
                    diffs.append(f"{user} {argv}: replica {theirs!r} relay {mine!r}")
        assert not diffs, "\n".join(diffs)
        # --requirepass alone: the default user's password, as a real 5.0 replica takes it
        # (a password only, 5.0's texts: the AUTH of the master's own version).
        replica2 = start_server(
            master.kind, extra={"replicaof": f"127.0.0.1 {master.port}"}, password="pw5"
        )
        relay2 = start_relay(upstream_url(master), "--requirepass", "pw5")

        def synced(port: int) -> bool:
            info = raw_call(port, ("auth", "pw5"), ("info", "replication"))[1]
            return b"master_link_status:up" in info

        for port in (replica2.port, relay2.port):
            wait_for(lambda p=port: synced(p), 30, what="linked to the 5.0 master")
        for auth_script in (
            [("get", "app:1")],
            [("auth", "wrong"), ("get", "app:1")],
            [("auth", "pw5"), ("get", "app:1")],
            [("auth", "default", "pw5"), ("get", "app:1")],
            [("auth", "default", "wrong")],
            [("auth", "nobody", "pw5")],
        ):
            theirs, mine = (raw_call(p, *auth_script) for p in (replica2.port, relay2.port))
            assert mine == theirs, f"{auth_script}: replica {theirs!r} relay {mine!r}"
    finally:
        for s in (relay2, replica2, relay, replica, master):
            if s is not None:
                s.stop()
