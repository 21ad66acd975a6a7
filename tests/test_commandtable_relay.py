"""The relay answers COMMAND and the first checks' errors as a REAL replica of its master.

For each server kind (Redis 5.0, 6.2, 7.0, 8.2, Valkey 8.1: `REPLPROXY_TEST_KINDS`), one
master, a real replica of it (`--replicaof`) and a relay process of it; every reply below
is compared byte for byte between the replica and the relay, in RESP2 and (from Redis 6.0)
RESP3: COMMAND, COMMAND COUNT, COMMAND INFO of every command and subcommand, COMMAND DOCS,
COMMAND LIST, COMMAND GETKEYS, COMMAND HELP, and the errors for unknown commands, unknown
subcommands and wrong arity. So the relay serves ITS master version's table
(`commandtable.versions.choose_table`), not one version's for all.

Order: the server lists commands and a container's subcommands in hash order (random per
process), so COMMAND, COMMAND INFO / DOCS without names and COMMAND LIST are compared as
multisets, a container's subcommands sorted (as tests/test_commandtable.py does).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest

from replproxy.commandtable.table import CommandTable, table_for
from tests.conftest import KINDS
from tests.harness.readcheck import RawConnection
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, start_server
from tests.test_commandtable import (
    GETKEYS_CASES,
    LIST_CASES,
    UNKNOWN_COMMANDS,
    UNKNOWN_SUBCOMMANDS,
    _split,
    canonical_info,
    docs_pairs,
    info_multiset,
    parts,
    wrong_arity_argvs,
)
from tests.test_server import wait_replica

# The keyspace and differential suites run against the older versions too (conftest.py).
pytestmark = pytest.mark.every_version


@dataclass
class _Endpoint:
    """What RawConnection needs of a server: where it listens."""

    port: int
    host: str = "127.0.0.1"
    password: str | None = None


class Pair:
    """A real replica and the relay of the same master, with raw connections to each."""

    def __init__(self, kind: ServerKind, replica: RedisServer, relay: RelayProcess) -> None:
        self.kind = kind
        self.protos = (2, 3) if kind.version >= (6, 0, 0) else (2,)
        server = "valkey" if kind.is_valkey else "redis"
        self.table: CommandTable = table_for(server, kind.version)
        self.replica = {p: RawConnection(replica, p) for p in self.protos}
        relay_ep = _Endpoint(relay.port)
        self.relay = {p: RawConnection(relay_ep, p) for p in self.protos}  # type: ignore[arg-type]

    def both(self, argv: Sequence[bytes | str], proto: int) -> tuple[bytes, bytes]:
        return self.replica[proto].call(argv), self.relay[proto].call(argv)

    def same(self, argv: Sequence[bytes | str]) -> None:
        for p in self.protos:
            theirs, mine = self.both(argv, p)
            assert mine == theirs, (argv, p)


@pytest.fixture(scope="module", params=KINDS, ids=[k.name for k in KINDS])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    kind: ServerKind = request.param
    master = start_server(kind)
    replica = relay = None
    try:
        replica = start_server(kind, extra={"replicaof": f"{master.host} {master.port}"})
        relay = start_relay(upstream_url(master))
        with master.client() as c:
            c.set("k", "v")
        wait_replica(master, replica)
        relay.wait_in_sync_with(master)
        yield Pair(kind, replica, relay)
    finally:
        if relay is not None:
            relay.stop()
        if replica is not None:
            replica.stop()
        master.stop()


def test_the_relay_uses_its_masters_table(pair: Pair) -> None:
    assert pair.table.version.split(".")[:2] == [str(n) for n in pair.kind.version[:2]]
    assert pair.table.legacy == (pair.kind.version < (7, 0, 0))


def test_command_count_and_help(pair: Pair) -> None:
    for argv in (
        ["command", "count"],
        ["COMMAND", "HELP"],
        ["command", "help", "x"],
        ["command", "count", "x"],
        ["command", "nosuch"],
    ):
        pair.same(argv)


def test_command_all_entries(pair: Pair) -> None:
    """COMMAND, and COMMAND INFO without names (everything from 7.0, nothing before)."""
    for argv in (["command"], ["command", "info"]):
        for p in pair.protos:
            theirs, mine = pair.both(argv, p)
            assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
            assert info_multiset(mine) == info_multiset(theirs)


def test_command_info_of_every_command_and_subcommand(pair: Pair) -> None:
    names = [n.decode() for n in pair.table.full_names()]
    assert len(names) >= len(pair.table)
    for p in pair.protos:
        theirs, mine = pair.both(["command", "info", *names], p)
        assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
        assert [canonical_info(e) for e in parts(mine)] == [
            canonical_info(e) for e in parts(theirs)
        ]
    for case in (["get", "nosuch", "GET", "Object|Encoding", "object"], ["", "get|x", "|"]):
        for p in pair.protos:
            theirs, mine = pair.both(["command", "info", *case], p)
            assert [canonical_info(e) for e in parts(mine)] == [
                canonical_info(e) for e in parts(theirs)
            ], case


def test_command_docs(pair: Pair) -> None:
    """All of it (a multiset of pairs), and named commands; before 7.0 the error."""
    for p in pair.protos:
        theirs, mine = pair.both(["command", "docs"], p)
        if theirs.startswith(b"-"):
            assert pair.table.legacy
            assert mine == theirs
            continue
        assert mine[: mine.index(b"\r\n")] == theirs[: theirs.index(b"\r\n")]
        assert sorted(docs_pairs(mine)) == sorted(docs_pairs(theirs))
    plain = [n for n in pair.table.full_names() if not _is_container(pair.table, n)]
    for case in ([b"get"], [b"nosuch", b"GET", b"object|encoding"], plain):
        pair.same([b"command", b"docs", *case])


@pytest.mark.parametrize("args", LIST_CASES[:20], ids=lambda a: repr(a)[:40])
def test_command_list(pair: Pair, args: list[str | bytes]) -> None:
    argv = ["command", "list", *args]
    for p in pair.protos:
        theirs, mine = pair.both(argv, p)
        if theirs[:1] == b"-":
            assert mine == theirs
        else:
            assert sorted(parts(mine)) == sorted(parts(theirs))


def test_command_getkeys(pair: Pair) -> None:
    for case in GETKEYS_CASES:
        for sub in (b"getkeys", b"getkeysandflags"):
            pair.same([b"command", sub, *_split(case)])


@pytest.mark.parametrize(
    "argv", UNKNOWN_COMMANDS + UNKNOWN_SUBCOMMANDS, ids=lambda a: repr(b" ".join(a)[:40])
)
def test_unknown_command_and_subcommand_errors(pair: Pair, argv: list[bytes]) -> None:
    pair.same(argv)


def test_wrong_arity_errors(pair: Pair) -> None:
    """Every command with one argument too few and too many. Before 7.0 only top-level
    commands: a container parses its own arguments there, and some of 7.0's wrong counts
    are valid commands on an old server."""
    argvs = wrong_arity_argvs(pair.table)
    if pair.table.legacy:
        argvs = [a for a in argvs if len(a) == 1 or not _is_container(pair.table, a[0])]
    assert len(argvs) > 150
    for argv in argvs:
        for p in pair.protos:
            theirs, mine = pair.both(argv, p)
            assert theirs.startswith(b"-"), argv  # nothing was executed
            assert mine == theirs, (argv, p)


def _is_container(t: CommandTable, name: bytes) -> bool:
    spec = t.get(name.lower())
    return spec is not None and spec.is_container
