"""Shared fixtures: real servers of every available kind, and the fixture corpus path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.relay import RelayProcess
from tests.servers import RedisServer, ServerKind, available_kinds, start_server

KINDS = available_kinds()
SHARED_RDB = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "rdb"


# Why a `client_dialect` test does not run against a Redis 5 master (see pytest_collection_
# modifyitems): its oracle is a server of the master's own version, answering clients.
CLIENT_DIALECT_SKIP = (
    "with a Redis 5/6 master the relay answers clients in Redis 7.0's dialect (command table, "
    "error texts, reply shapes: docs/clients.md), so a Redis 5 server is not this test's oracle"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-seconds", type=float, default=None,
        help="how long tests/test_faults.py's chaos test injects faults, per server kind "
        "(default 60; also REPLPROXY_CHAOS_SECONDS)",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip `client_dialect` tests parametrized with the Redis 5 kind, saying why: what
    they check (the relay's answers to clients) follows Redis 7.0 for every Redis master."""
    skip = pytest.mark.skip(reason=CLIENT_DIALECT_SKIP)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.get_closest_marker("client_dialect") is None:
            continue
        if any(getattr(v, "name", None) == "redis5" for v in callspec.params.values()):
            item.add_marker(skip)


def kind_by_name(name: str) -> ServerKind | None:
    return next((k for k in KINDS if k.name == name), None)


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def server_kind(request: pytest.FixtureRequest) -> ServerKind:
    """Parametrizes a test over every server kind on this machine."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def master(server_kind: ServerKind) -> Iterator[RedisServer]:
    """A fresh real master of each available kind."""
    server = start_server(server_kind)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start(server_kind: ServerKind) -> Iterator:  # type: ignore[type-arg]
    """A factory for more servers of the test's kind; all are stopped at the end."""
    started: list[RedisServer] = []

    def _start(**kw: object) -> RedisServer:
        kind = kw.pop("kind", server_kind)
        s = start_server(kind, **kw)  # type: ignore[arg-type]
        started.append(s)
        return s

    try:
        yield _start
    finally:
        for s in started:
            s.stop()


@pytest.fixture
def shared_rdb() -> Path:
    if not SHARED_RDB.is_dir():
        pytest.skip("../shared/fixtures/rdb is absent (a fresh clone has no shared folder)")
    return SHARED_RDB


@pytest.fixture
def relays() -> Iterator[list[RelayProcess]]:
    """replproxy processes a test starts (append them); all are stopped at the end."""
    started: list[RelayProcess] = []
    try:
        yield started
    finally:
        for r in started:
            r.stop()
