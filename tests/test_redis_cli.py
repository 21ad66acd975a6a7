"""redis-cli against replproxy's client endpoint, judged against a real read-only replica.

Every mode of Debian's redis-cli (/usr/bin/redis-cli, 7.0.x) that a user points at a replica
runs against the relay AND against a real replica of the same master, and the outputs must be
the same: the interactive session with its hints and `help` (drawn from COMMAND DOCS), piped
sessions, --scan, --bigkeys, --raw/--no-raw/--csv/--json, RESP3, -n, -a and --user/--pass,
READONLY errors. Where the output cannot be the same (--memkeys sizes are each server's own
memory, --stat and --latency print live figures) the test checks what the output says.

One master, replica and relay per server kind for the whole module (plus a pair each for the
password and ACL-file tests), so the file runs in well under a minute per kind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import random
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import termios
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import KINDS
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server, wait_for

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"

pytestmark = [
    pytest.mark.skipif(
        not Path(REDIS_CLI).exists(), reason="redis-cli (Debian's redis-tools) is not installed"
    ),
    pytest.mark.client_dialect,
]

PASSWORD = "pw-for-default"
ACL_FILE = (
    "user default on nopass ~* &* +@all\n"
    "user alice on >s3cret ~* &* +@all\n"
    "user carol off >off-pass ~* &* +@all\n"
)


# --- the servers ---------------------------------------------------------------------------


@dataclass
class Pair:
    """A real read-only replica and a relay of the same master, both in sync with it."""

    master: RedisServer
    replica: RedisServer
    relay: RelayProcess

    @property
    def ports(self) -> tuple[int, int]:
        return self.replica.port, self.relay.port


def wait_replica(master: RedisServer, replica: RedisServer) -> None:
    def synced() -> bool:
        off = int(master.info("replication")["master_repl_offset"])
        info = replica.info("replication")
        return info["master_link_status"] == "up" and int(info["slave_repl_offset"]) >= off

    wait_for(synced, 30, what="replica in sync")


def wait_relay(master: RedisServer, relay: RelayProcess, password: str | None) -> None:
    """relay.wait_in_sync_with, for a relay that may want a password."""

    def synced() -> bool:
        off = int(master.info("replication")["master_repl_offset"])
        with relay.client(password=password) as c:
            info = c.info("replication")
        return info["master_link_status"] == "up" and int(info["slave_repl_offset"]) == off

    wait_for(synced, 60, what="relay in sync")


@dataclass
class Dataset:
    """What the module's master holds, to check outputs against the truth too."""

    user_keys: set[str]
    db0_keys: int
    db3_keys: int
    biggest: dict[str, tuple[str, int]]  # type -> (key, size in redis-cli's unit)
    counts: dict[str, int]  # type -> number of keys in db 0


def fill(master: RedisServer) -> Dataset:
    """A few thousand keys over several prefixes and every type --bigkeys knows.

    Each type has ONE biggest key (sizes are unique at the top), so --bigkeys names the same
    key whatever order SCAN visits them in.
    """
    rnd = random.Random(5)
    users = {f"user:{i}" for i in range(2000)}
    with master.client() as c:
        p = c.pipeline(transaction=False)
        for i in range(2000):
            p.set(f"user:{i}", "v" * rnd.randint(1, 60))
        p.set("user:big", "x" * 700)
        users.add("user:big")
        for i in range(800):
            p.hset(f"session:{i}", mapping={f"f{j}": j for j in range(rnd.randint(1, 20))})
        p.hset("session:big", mapping={f"f{j}": j for j in range(300)})  # hashtable encoded
        for i in range(300):
            p.rpush(f"queue:{i}", *range(rnd.randint(1, 50)))
        p.rpush("queue:big", *range(400))
        for i in range(200):
            p.sadd(f"tags:{i}", *range(rnd.randint(1, 30)))
        p.sadd("tags:big", *(f"t{j}" for j in range(250)))
        for i in range(200):
            p.zadd(f"rank:{i}", {f"m{j}": j / 3 for j in range(rnd.randint(1, 30))})
        p.zadd("rank:big", {f"m{j}": j * 1.5 for j in range(200)})
        for i in range(40):
            for j in range(rnd.randint(1, 10)):
                p.xadd(f"events:{i}", {"n": j})
        for j in range(30):
            p.xadd("events:big", {"n": j})
        # What the piped and RESP3 sessions read.
        p.set("k", "v")
        p.hset("h", mapping={"f1": "v1", "f2": "2"})
        p.rpush("l", "a", "b", "c")
        p.zadd("z", {"a": 1.5, "b": 2, "c": 0.1})
        p.sadd("s", "one")
        p.set("bin", b'a\x00b\xffc\n"')
        p.execute()
        db0 = c.dbsize()
    with master.client(db=3) as c3:
        c3.set("k", "in-db-3")
        c3.hset("h3", mapping={"a": "1"})
        c3.rpush("user:3list", "x")
        db3 = c3.dbsize()
    counts = {
        "string": 2001 + 2,
        "hash": 801 + 1,
        "list": 301 + 1,
        "set": 201 + 1,
        "zset": 201 + 1,
        "stream": 41,
    }
    assert sum(counts.values()) == db0
    biggest = {
        "string": ("user:big", 700),
        "hash": ("session:big", 300),
        "list": ("queue:big", 400),
        "set": ("tags:big", 250),
        "zset": ("rank:big", 200),
        "stream": ("events:big", 30),
    }
    return Dataset(users, db0, db3, biggest, counts)


def start_pair(
    master: RedisServer,
    *relay_args: str,
    password: str | None = None,
    replica_extra: dict[str, str] | None = None,
) -> Pair:
    replica = start_server(
        master.kind,
        password=password,
        extra={"replicaof": f"{master.host} {master.port}", **(replica_extra or {})},
    )
    try:
        relay = start_relay(upstream_url(master), *relay_args)
    except BaseException:
        replica.stop()
        raise
    pair = Pair(master, replica, relay)
    try:
        wait_replica(master, replica)
        wait_relay(master, relay, password)
    except BaseException:
        stop_pair(pair)
        raise
    return pair


def stop_pair(pair: Pair) -> None:
    pair.relay.stop()
    pair.replica.stop()


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def kind(request: pytest.FixtureRequest) -> ServerKind:
    return request.param


@pytest.fixture(scope="module")
def env(kind: ServerKind) -> Iterator[tuple[Pair, Dataset]]:
    master = start_server(kind)
    try:
        data = fill(master)
        # The test servers gather replicas for 0 s (tests/harness/servers.py); so does this relay.
        pair = start_pair(master, "--repl-diskless-sync-delay", "0")
        try:
            yield pair, data
        finally:
            stop_pair(pair)
    finally:
        master.stop()


@pytest.fixture(scope="module")
def pair(env: tuple[Pair, Dataset]) -> Pair:
    return env[0]


@pytest.fixture(scope="module")
def data(env: tuple[Pair, Dataset]) -> Dataset:
    return env[1]


# --- running redis-cli ---------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    out: str
    err: str


def cli(
    port: int,
    *args: str,
    stdin: str | None = None,
    timeout: float = 20,
    env: dict[str, str] | None = None,
) -> Run:
    p = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args],
        input=stdin,
        capture_output=True,
        timeout=timeout,
        encoding="utf-8",
        errors="surrogateescape",
        env={**os.environ, **(env or {})},
    )
    return Run(p.returncode, p.stdout, p.stderr)


def both(pair: Pair, *args: str, stdin: str | None = None) -> tuple[Run, Run]:
    """(relay's run, replica's run) of the same redis-cli command line."""
    return cli(pair.relay.port, *args, stdin=stdin), cli(pair.replica.port, *args, stdin=stdin)


def assert_same(pair: Pair, *args: str, stdin: str | None = None) -> Run:
    mine, theirs = both(pair, *args, stdin=stdin)
    assert mine == theirs, f"redis-cli {' '.join(args)}:\n relay   {mine}\n replica {theirs}"
    return mine


def cli_for(port: int, args: Sequence[str], seconds: float) -> str:
    """Run a redis-cli mode that never ends by itself for `seconds`, then stop it.

    stdbuf keeps its stdout line-buffered so nothing printed is lost at the kill.
    """
    cmd = [REDIS_CLI, "-p", str(port), *args]
    if shutil.which("stdbuf"):
        cmd = ["stdbuf", "-oL", *cmd]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        encoding="utf-8",
        errors="surrogateescape",
    )
    try:
        out, _ = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return out


class Terminal:
    """redis-cli on a pseudo-terminal, as a user at a keyboard sees it (linenoise, hints)."""

    def __init__(self, port: int, *args: str) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: only exec, never return into pytest
            try:
                os.environ["TERM"] = "xterm"
                os.execv(REDIS_CLI, [REDIS_CLI, "-p", str(port), *args])
            finally:
                os._exit(127)
        # A known width, so linenoise never queries the cursor position to find it.
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        self.out = bytearray()

    def drain(self, quiet: float = 0.1, limit: float = 5.0) -> None:
        """Read until the terminal has been quiet for `quiet` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.fd], [], [], quiet)
            if not ready:
                return
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self.out += data
            if b"\x1b[6n" in data:  # a cursor position query: answer as a terminal would
                os.write(self.fd, b"\x1b[1;1R")

    def type(self, keys: bytes) -> None:
        start = len(self.out)
        os.write(self.fd, keys)
        self.drain()
        if keys.endswith(b"\r"):
            # linenoise enters raw mode for each line with TCSAFLUSH, which discards keys
            # typed before it: wait for the next prompt (drawn after that) before typing on.
            # Without this, a loaded machine lost a line's first keys (a CI failure).
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (
                b"\n" in self.out[start:] and self.out.endswith(b"> ")
            ):
                self.drain(quiet=0.05, limit=deadline - time.monotonic())

    def wait_prompt(self, limit: float = 10.0) -> None:
        """Until the first prompt is on the screen: linenoise is in raw mode from then on
        (keys typed earlier are echoed by the terminal itself, in cooked mode)."""
        deadline = time.monotonic() + limit
        while b"> " not in self.out and time.monotonic() < deadline:
            self.drain(quiet=0.05, limit=deadline - time.monotonic())

    def close(self) -> bytes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self.fd)
        return bytes(self.out)


def terminal_session(port: int, keys: Sequence[bytes], *args: str, seconds: float = 0) -> bytes:
    """Type `keys` one chunk at a time into an interactive redis-cli; what the screen got.

    Output does not depend on timing: raw mode does not echo, and after each Enter the next
    keys wait for the next prompt (`Terminal.type`). A mode that prints by itself runs for
    `seconds`.
    """
    term = Terminal(port, *args)
    try:
        if seconds:
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0:
                term.drain(limit=left)
        else:
            term.wait_prompt()
            term.drain(quiet=0.3)
            for k in keys:
                term.type(k)
            term.drain(quiet=0.3)
    finally:
        out = term.close()
    return out.replace(str(port).encode(), b"PORT")


# --- interactive use: hints and help come from COMMAND DOCS ---------------------------------


def test_command_docs_get_output(pair: Pair) -> None:
    run = assert_same(pair, "--no-raw", "COMMAND", "DOCS", "get")
    assert '"summary"' in run.out and "value of a key" in run.out  # Redis and Valkey words


def _resp(f: Any) -> Any:
    """A parsed RESP2/RESP3 reply: maps become dicts, so their order does not count."""
    line = f.readline()[:-2]
    t, rest = line[:1], line[1:]
    if t in (b"$", b"=", b"!"):
        n = int(rest)
        return None if n < 0 else f.read(n + 2)[:-2]
    if t in (b"*", b"~", b">"):
        n = int(rest)
        return None if n < 0 else [_resp(f) for _ in range(n)]
    if t == b"%":
        return {_resp(f): _resp(f) for _ in range(int(rest))}
    if t == b"_":
        return None
    return (t, rest)


def _frozen(x: Any) -> Any:
    if isinstance(x, dict):
        return frozenset((k, _frozen(v)) for k, v in x.items())
    if isinstance(x, list):
        return tuple(_frozen(v) for v in x)
    return x


def _command_docs(port: int, proto: int) -> Any:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s, s.makefile("rb") as f:
        s.sendall(b"HELLO %d\r\nCOMMAND DOCS\r\n" % proto)
        _resp(f)
        return _resp(f)


def _docs2_as_maps(x: Any) -> Any:
    """RESP2 COMMAND DOCS: every doc and the subcommands table are flat maps."""
    out = {}
    for name, doc in zip(x[::2], x[1::2]):
        fields = dict(zip(doc[::2], doc[1::2]))
        if b"subcommands" in fields:
            fields[b"subcommands"] = _docs2_as_maps(fields[b"subcommands"])
        out[name] = _frozen(fields)
    return out


def test_full_command_docs_parse_the_same(pair: Pair) -> None:
    """What redis-cli asks for when it starts interactively: the whole table, both protocols.

    Redis lists commands in its dict's order, so only the content is compared.
    """
    rp, rl = pair.ports
    mine3, theirs3 = _command_docs(rl, 3), _command_docs(rp, 3)
    assert isinstance(mine3, dict) and len(mine3) > 200
    assert _frozen(mine3) == _frozen(theirs3)
    assert _docs2_as_maps(_command_docs(rl, 2)) == _docs2_as_maps(_command_docs(rp, 2))


INTERACTIVE = [
    b"hget ",  # the hint: "key field"
    b"\x15",  # ^U: clear the line
    b"zadd ",
    b"\x15",
    b"client kill ",  # a subcommand's hint
    b"\x15",
    b"help get\r",
    b"help xinfo stream\r",
    b"get k\r",
    b"hgetall h\r",
    b"zrange z 0 -1 withscores\r",
    b"set a b\r",
    b"nosuchcommand x\r",
    b"select 3\r",
    b"get k\r",
    b"get\r",
]


def test_interactive_session_with_hints(pair: Pair) -> None:
    rp, rl = pair.ports
    mine = terminal_session(rl, INTERACTIVE)
    theirs = terminal_session(rp, INTERACTIVE)
    assert b"\x1b[0;90;49m key field\x1b[0m" in theirs  # the hint as linenoise draws it
    assert re.search(rb"summary:\x1b\[0m [^\r]*value of a key", theirs)
    assert b"127.0.0.1:PORT[3]>" in theirs
    assert mine == theirs


def test_interactive_resp3_session(pair: Pair) -> None:
    rp, rl = pair.ports
    keys = [
        b"hgetall h\r",
        b"zrange z 0 -1 withscores\r",
        b"smembers s\r",
        b"hello 2\r",
        b"hgetall h\r",
    ]
    mine = terminal_session(rl, keys, "-3")
    theirs = terminal_session(rp, keys, "-3")
    # HELLO's reply carries the connection id, which differs between the two servers.
    id_line = rb'("id"(?:\r\n *\d+\)| =>) \(integer\) )\d+'
    assert re.sub(id_line, rb"\1N", mine) == re.sub(id_line, rb"\1N", theirs)


PIPED = (
    "get k\nhgetall h\nlrange l 0 -1\nzrange z 0 -1 withscores\nsmembers s\nget nosuch\n"
    "set a b\nget bin\nping\necho hi\nnosuchcommand\nget\nselect 3\nget k\nhgetall h3\n"
)


def test_piped_session(pair: Pair) -> None:
    raw = assert_same(pair, stdin="get k\nhgetall h\n")
    assert raw.out == "v\nf1\nv1\nf2\n2\n"
    run = assert_same(pair, stdin=PIPED)
    assert "READONLY You can't write against a read only replica." in run.out
    run = assert_same(pair, "--no-raw", stdin=PIPED)
    assert '1) "f1"' in run.out and '"in-db-3"' in run.out


# --- key space tools -----------------------------------------------------------------------


def _lines(out: str) -> list[str]:
    return [x for x in out.splitlines() if x]


def test_scan_pattern(pair: Pair, data: Dataset) -> None:
    mine, theirs = both(pair, "--scan", "--pattern", "user:*")
    assert mine.rc == theirs.rc == 0, (mine, theirs)
    keys = _lines(mine.out)
    assert len(keys) == len(set(keys))  # a still keyspace is visited once
    assert set(keys) == set(_lines(theirs.out)) == data.user_keys
    # -i also paces --scan; --quoted-pattern takes an escaped pattern.
    mine, theirs = both(pair, "--scan", "--quoted-pattern", '"user:1?"', "-i", "0.001")
    assert (
        sorted(_lines(mine.out))
        == sorted(_lines(theirs.out))
        == [f"user:{i}" for i in range(10, 20)]
    )
    mine, theirs = both(pair, "--scan")
    assert sorted(_lines(mine.out)) == sorted(_lines(theirs.out))
    assert len(_lines(mine.out)) == data.db0_keys
    mine, theirs = both(pair, "-n", "3", "--scan", "--pattern", "user:*")
    assert _lines(mine.out) == _lines(theirs.out) == ["user:3list"]


def test_scan_with_count(pair: Pair, data: Dataset) -> None:
    """`--scan --count N` where this redis-cli has it (7.2+); else SCAN ... COUNT N by hand."""
    usage = cli(pair.relay.port, "--help")
    has_count = "--count" in usage.out + usage.err
    for port in pair.ports:
        if has_count:
            run = cli(port, "--scan", "--pattern", "user:*", "--count", "100")
            assert run.rc == 0
            keys = _lines(run.out)
        else:
            keys, cursor, calls = [], "0", 0
            while True:
                run = cli(port, "scan", cursor, "match", "user:*", "count", "500")
                assert run.rc == 0, run
                cursor, *found = run.out.splitlines()
                keys += [k for k in found if k]
                calls += 1
                if cursor == "0":
                    break
            # COUNT is honoured as a hint: about (keys / 500) calls, not one nor thousands.
            assert 3 <= calls <= 40, (port, calls)
        assert sorted(keys) == sorted(data.user_keys), port


def _summary(out: str) -> list[str]:
    """--bigkeys/--memkeys summary lines (the progress lines above depend on SCAN order)."""
    assert "-------- summary -------" in out, out[-2000:]
    return [
        x.strip() for x in out.split("-------- summary -------", 1)[1].splitlines() if x.strip()
    ]


def test_bigkeys(pair: Pair, data: Dataset) -> None:
    mine, theirs = both(pair, "--bigkeys")
    assert mine.rc == theirs.rc == 0, (mine.err, theirs.err)
    assert mine.err == theirs.err
    assert _summary(mine.out) == _summary(theirs.out)
    summary = "\n".join(_summary(mine.out))
    assert f"Sampled {data.db0_keys} keys in the keyspace!" in summary
    units = {
        "string": "bytes",
        "hash": "fields",
        "list": "items",
        "set": "members",
        "zset": "members",
        "stream": "entries",
    }
    flat = re.sub(" +", " ", summary)
    for typ, (key, size) in data.biggest.items():
        assert f"Biggest {typ} found '\"{key}\"' has {size} {units[typ]}" in flat, summary
    for typ, n in data.counts.items():
        assert re.search(rf"^{n} {typ}s with ", summary, re.M), (typ, summary)
    # With a pattern and a pace (-i per 100 SCAN calls), in another db.
    mine, theirs = both(pair, "--bigkeys", "-n", "3", "-i", "0.01")
    assert mine.rc == 0 and _summary(mine.out) == _summary(theirs.out)


def _type_counts(summary: list[str]) -> dict[str, int]:
    found = {}
    for line in summary:
        m = re.match(r"^(\d+) (\w+)s with \d+ bytes", line)
        if m:
            found[m.group(2)] = int(m.group(1))
    return found


def test_memkeys(pair: Pair, data: Dataset) -> None:
    """Sizes are each server's own memory: check the run, the types and their counts."""
    for args in (["--memkeys"], ["--memkeys-samples", "10"]):
        mine, theirs = both(pair, *args)
        assert mine.rc == theirs.rc == 0, (mine.err, theirs.err)
        assert "error" not in (mine.out + mine.err).lower(), mine.out[-2000:] + mine.err
        summary = _summary(mine.out)
        assert f"Sampled {data.db0_keys} keys in the keyspace!" in summary
        counts = _type_counts(summary)
        assert counts == _type_counts(_summary(theirs.out))
        assert {t: n for t, n in counts.items() if n} == data.counts
        for typ in data.counts:
            line = next(x for x in summary if x.startswith("Biggest") and f" {typ} found" in x)
            assert re.search(r"has \d+ bytes$", line), line
            assert int(line.rsplit(" ", 2)[1]) > 0


# --- live monitors -------------------------------------------------------------------------


def _stat_rows(out: str) -> tuple[list[str], list[list[str]]]:
    lines = out.splitlines()
    head = [i for i, x in enumerate(lines) if x.startswith("------- data ------")]
    assert head, out
    header = lines[head[0] : head[0] + 2]
    rows = [
        x.split()
        for x in lines[head[0] + 2 :]
        if x.strip() and not x.startswith("---") and not x.startswith("keys")
    ]
    return header, rows


def test_stat(pair: Pair, data: Dataset) -> None:
    rp, rl = pair.ports
    header, rows = _stat_rows(cli_for(rl, ["--stat", "-i", "0.2"], 1.5))
    rheader, rrows = _stat_rows(cli_for(rp, ["--stat", "-i", "0.2"], 1.5))
    assert header == rheader
    assert header[1].split()[:6] == ["keys", "mem", "clients", "blocked", "requests", "connections"]
    assert len(rows) >= 4, rows
    total = data.db0_keys + data.db3_keys
    assert {r[0] for r in rows} == {r[0] for r in rrows} == {str(total)}
    for r in rows:
        assert re.fullmatch(r"[\d.]+[BKMG]", r[1]), r  # mem, human-readable
        assert r[2].isdigit() and r[3] == "0"
        assert r[4].isdigit() and re.fullmatch(r"\(\+\d+\)", r[5]), r  # requests (+delta)
        assert r[6].isdigit()
    # Each round is one INFO: the request counter moves by about one a row.
    assert int(rows[-1][4]) > int(rows[0][4])


def test_latency(pair: Pair) -> None:
    rp, rl = pair.ports
    for port in (rl, rp):
        # Not on a terminal: one summary line "min max avg samples" after -i seconds.
        run = cli(port, "--latency", "-i", "0.3")
        assert run.rc == 0, run
        m = re.fullmatch(r"(\d+) (\d+) (\d+\.\d\d) (\d+)\n", run.out)
        assert m, run.out
        assert int(m.group(1)) <= float(m.group(3)) <= int(m.group(2)) and int(m.group(4)) > 5
    # On a terminal: the live "min: .., max: .., avg: .. (N samples)" line.
    out = terminal_session(rl, [], "--latency", seconds=0.8).decode()
    assert re.search(r"min: \d+, max: \d+, avg: \d+\.\d\d \(\d+ samples\)", out), out
    out = terminal_session(rl, [], "--latency-history", "-i", "0.3", seconds=1.0).decode()
    assert re.search(
        r"min: \d+, max: \d+, avg: \d+\.\d\d \(\d+ samples\) -- \d+\.\d\d seconds "
        r"range",
        out,
    ), out


class Follower:
    """`redis-cli --replica`: lines collected by a thread as they come."""

    def __init__(self, port: int) -> None:
        cmd = [REDIS_CLI, "-p", str(port), "--replica"]
        if shutil.which("stdbuf"):
            cmd = ["stdbuf", "-oL", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="surrogateescape",
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self) -> list[str]:
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.thread.join(5)
        return self.lines


def test_replica_mode(pair: Pair) -> None:
    """`redis-cli --replica`: SYNC, then the master's writes as they stream by."""
    followers = [Follower(port) for port in pair.ports]
    try:
        wait_for(
            lambda: all(
                any("Logging commands from master" in x for x in f.lines) for f in followers
            ),
            20,
            what="redis-cli --replica to sync",
        )
        with pair.master.client(db=9) as c:
            c.set("rcli:replica", "1")
            c.delete("rcli:replica")
        wait_for(
            lambda: all(any('"del"' in x.lower() for x in f.lines) for f in followers),
            10,
            what="the writes to reach redis-cli --replica",
        )
    finally:
        mine, theirs = (f.stop() for f in followers)

    # The RDB's size differs (each writes its own aux fields): compare what is not a size.
    def shape(lines: list[str]) -> list[str]:
        return [
            re.sub(r"after \d+ bytes", "after N bytes", x) for x in lines if x != '"ping"'
        ]  # the master's pings fall anywhere

    assert shape(mine) == shape(theirs)
    low = [x.lower() for x in mine]
    assert '"set","rcli:replica","1"' in low and '"del","rcli:replica"' in low, mine


# --- output formats, protocols, databases --------------------------------------------------


@pytest.mark.parametrize(
    "fmt",
    [
        [],
        ["--no-raw"],
        ["--csv"],
        ["--json"],
        ["-3", "--json"],
        ["-3"],
        ["-3", "--no-raw"],
        ["-3", "--csv"],
    ],
    ids=lambda a: " ".join(a) or "raw",
)
def test_formats_and_resp3(pair: Pair, fmt: list[str]) -> None:
    for cmd in (
        ["hgetall", "h"],
        ["zrange", "z", "0", "-1", "withscores"],
        ["zscore", "z", "a"],
        ["get", "bin"],
        ["get", "nosuch"],
        ["lrange", "l", "0", "-1"],
        ["hmget", "h", "f1", "nosuch"],
        ["smembers", "s"],
        ["set", "a", "b"],
        ["xrange", "events:big", "-", "+", "count", "2"],
    ):
        assert_same(pair, *fmt, *cmd)
    if fmt == ["-3"]:
        assert cli(pair.relay.port, "-3", "hgetall", "h").out == "f1 v1\nf2 2\n"
    if fmt == ["-3", "--no-raw"]:
        assert cli(pair.relay.port, "-3", "--no-raw", "zscore", "z", "a").out == "(double) 1.5\n"


def test_database_option(pair: Pair) -> None:
    run = assert_same(pair, "-n", "3", "--no-raw", "get", "k")
    assert run.out == '"in-db-3"\n'
    assert_same(pair, "-n", "3", "hgetall", "h3")
    assert_same(pair, "-n", "3", "get", "nosuch")
    assert_same(pair, "-n", "99", "get", "k")  # an invalid db: redis-cli's own message
    run = assert_same(pair, "-u", "redis://127.0.0.1/3", "get", "k")
    assert run.out == "in-db-3\n"


def test_repeat_and_stdin_options(pair: Pair) -> None:
    run = assert_same(pair, "-r", "3", "get", "k")
    assert run.out == "v\nv\nv\n"
    assert_same(pair, "-x", "hget", "h", stdin="f1")
    assert_same(pair, "-e", "get", "k")


# --- writes --------------------------------------------------------------------------------


def test_writes_are_refused_as_on_a_replica(pair: Pair) -> None:
    run = assert_same(pair, "--no-raw", "set", "a", "b")
    assert run.out == "(error) READONLY You can't write against a read only replica.\n"
    run = assert_same(pair, "set", "a", "b")
    assert run.out.startswith("READONLY You can't write against a read only replica.")
    run = assert_same(pair, "-e", "--no-raw", "del", "k")  # -e: non-zero exit on an error
    assert run.rc == 1 and "READONLY" in run.out + run.err
    assert_same(pair, "--no-raw", "incr", "counter")
    assert_same(pair, "--pipe", stdin="*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n")


# --- authentication ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def password_pair(env: tuple[Pair, Dataset]) -> Iterator[Pair]:
    p = start_pair(env[0].master, "--requirepass", PASSWORD, password=PASSWORD)
    try:
        yield p
    finally:
        stop_pair(p)


@pytest.fixture(scope="module")
def acl_pair(env: tuple[Pair, Dataset]) -> Iterator[Pair]:
    d = Path(tempfile.mkdtemp(prefix="replproxy-acl-"))
    acl = d / "users.acl"
    acl.write_text(ACL_FILE)
    p = start_pair(env[0].master, "--aclfile", str(acl), replica_extra={"aclfile": str(acl)})
    try:
        yield p
    finally:
        stop_pair(p)


def test_password(password_pair: Pair) -> None:
    pair = password_pair
    run = assert_same(pair, "--no-raw", "get", "k")
    assert run.out == "(error) NOAUTH Authentication required.\n"
    run = assert_same(pair, "-a", PASSWORD, "get", "k")
    assert run.out == "v\n" and "Using a password" in run.err
    run = assert_same(pair, "-a", PASSWORD, "--no-auth-warning", "--no-raw", "set", "a", "b")
    assert run.out == "(error) READONLY You can't write against a read only replica.\n"
    run = assert_same(pair, "-a", "wrong", "--no-auth-warning", "get", "k")
    assert "AUTH failed: WRONGPASS" in run.err or "WRONGPASS" in run.out
    assert_same(pair, "--pass", PASSWORD, "--no-auth-warning", "hgetall", "h")
    assert_same(pair, "-u", f"redis://:{PASSWORD}@127.0.0.1", "--no-auth-warning", "get", "k")
    mine, theirs = (
        cli(p, "get", "k", env={"REDISCLI_AUTH": PASSWORD})
        for p in (pair.relay.port, pair.replica.port)
    )
    assert mine == theirs and mine.out == "v\n"
    assert_same(pair, "-a", PASSWORD, "--no-auth-warning", stdin="get k\nauth x\nget k\n")


def test_acl_user(acl_pair: Pair) -> None:
    pair = acl_pair
    run = assert_same(pair, "--user", "alice", "--pass", "s3cret", "--no-auth-warning", "get", "k")
    assert run.out == "v\n"
    for user, pw in (("alice", "nope"), ("bob", "s3cret"), ("carol", "off-pass")):
        run = assert_same(pair, "--user", user, "--pass", pw, "--no-auth-warning", "get", "k")
        assert "WRONGPASS invalid username-password pair or user is disabled." in (
            run.out + run.err
        )
    assert_same(
        pair,
        "-u",
        "redis://alice:s3cret@127.0.0.1",
        "--no-auth-warning",
        "--no-raw",
        "hgetall",
        "h",
    )
    run = assert_same(pair, "--no-raw", "get", "k")  # default is nopass in this file
    assert run.out == '"v"\n'
    assert_same(pair, "--no-raw", stdin="auth alice s3cret\nget k\nauth alice x\nget k\n")
