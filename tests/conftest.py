"""Shared fixtures: real servers of every available kind, and the fixture corpus path."""

from __future__ import annotations

import inspect
import os
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.relay import RelayProcess
from tests.harness.servers import (
    MAIN_KINDS,
    OLDER_KINDS,
    RedisServer,
    ServerKind,
    available_kinds,
    kinds_chosen,
    start_server,
)

KINDS = available_kinds()
SHARED_RDB = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures" / "rdb"


# `one_kind` (a module's pytestmark): the relay's own mechanics (link states, restarts,
# faults, downstream replicas, lag, operations) work the same whatever the master's version;
# the version's part of them (handshake, snapshot, stream) is what every suite that runs on
# every kind covers. Each such test runs against ONE kind, spread over the kinds by name, so
# the whole suite fits CI's time on two cores; REPLPROXY_TEST_EVERY_KIND=1 runs them all.

# Why a `client_dialect` test does not run against a Redis 5 master (see pytest_collection_
# modifyitems): its fixture or its checks use commands that 5.0 does not have.
CLIENT_DIALECT_SKIP = (
    "this test's fixture or checks use commands Redis 5.0 does not have; the relay's replies "
    "to a Redis 5 master's clients are checked against a real 5.0 replica by "
    "test_reads_differential and test_dialect_scenarios"
)


# What in a test's or a fixture's source means it starts a process (a server or the relay).
_STARTS_PROCESSES = (
    "start_server(",
    "start_relay(",
    "subprocess.",
    "RelayProcess(",
    "start_cluster(",
    "Popen(",
)


def _source_starts_processes(fn: object, seen: dict[object, bool]) -> bool:
    """Whether `fn`'s source, or that of a test-suite function it names, starts a process."""
    if fn in seen:
        return seen[fn]
    seen[fn] = False
    try:
        src = inspect.getsource(fn)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return False
    found = any(word in src for word in _STARTS_PROCESSES)
    code = getattr(fn, "__code__", None)
    if not found and code is not None:
        names = set(code.co_names)
        for const in code.co_consts:  # nested functions and lambdas
            if inspect.iscode(const):
                names.update(const.co_names)
        env = getattr(fn, "__globals__", {})
        for name in names:
            callee = env.get(name)
            if (
                inspect.isfunction(callee)
                and callee.__module__.startswith("tests")
                and _source_starts_processes(callee, seen)
            ):
                found = True
                break
    seen[fn] = found
    return found


def _starts_processes(item: pytest.Item, seen: dict[object, bool]) -> bool:
    """Whether `item` needs real server (or relay) processes: its own source or a fixture's
    starts one, or it is parametrized with a server kind."""
    callspec = getattr(item, "callspec", None)
    if callspec is not None and any(
        isinstance(v, ServerKind)
        or (isinstance(v, tuple) and any(isinstance(x, ServerKind) for x in v))
        for v in callspec.params.values()
    ):
        return True
    fn = getattr(item, "function", None)
    if fn is not None and _source_starts_processes(fn, seen):
        return True
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    for defs in info.name2fixturedefs.values():
        for d in defs:
            if _source_starts_processes(d.func, seen):
                return True
    return False


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-seconds",
        type=float,
        default=None,
        help="how long tests/test_faults.py's chaos test injects faults, per server kind "
        "(default 60; also REPLPROXY_CHAOS_SECONDS)",
    )


def _kind_of(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for v in callspec.params.values():
        if isinstance(v, ServerKind):
            return v.name
    return None


def _rotated_kind(item: pytest.Item) -> str:
    """The one kind a `one_kind` test runs against: chosen by the test's name, so the
    module's tests spread over the main kinds in use (and a `client_dialect` test never gets
    Redis 5, which it would skip)."""
    names = [k.name for k in KINDS if kinds_chosen() or k.name in MAIN_KINDS]
    names = names or [k.name for k in KINDS]
    if item.get_closest_marker("client_dialect") is not None and len(names) > 1:
        names = [n for n in names if n != "redis5"] or names
    base = getattr(item, "originalname", None) or item.name.split("[")[0]
    kind = _kind_of(item)
    others = [p for p in item.callspec.id.split("-") if p != kind]  # type: ignore[attr-defined]
    key = f"{item.path.name}::{base}::{'-'.join(others)}"
    return names[zlib.crc32(key.encode()) % len(names)]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test `server` (it starts real server processes) or `unit` (sans-I/O, no
    process: `pytest -m unit` runs those alone, in seconds), skip `client_dialect` tests
    parametrized with the Redis 5 kind, saying why, and run each `one_kind` test against one
    kind only and the older versions (Redis 6.2, 5.0) in `every_version` suites only (unless
    REPLPROXY_TEST_EVERY_KIND=1, or REPLPROXY_TEST_KINDS names the kinds)."""
    every_kind = os.environ.get("REPLPROXY_TEST_EVERY_KIND", "") not in ("", "0")
    if len(KINDS) > 1 and not every_kind:
        keep, dropped = [], []
        for item in items:
            kind = _kind_of(item)
            if kind is None:
                keep.append(item)
            elif (
                not kinds_chosen()
                and kind in OLDER_KINDS
                and item.get_closest_marker("every_version") is None
            ):
                dropped.append(item)  # an older version: only the keyspace and differentials
            elif item.get_closest_marker("one_kind") is not None and kind != _rotated_kind(item):
                dropped.append(item)
            else:
                keep.append(item)
        if dropped:
            config.hook.pytest_deselected(items=dropped)
            items[:] = keep
    seen: dict[object, bool] = {}
    for item in items:
        if item.get_closest_marker("server") is None and item.get_closest_marker("unit") is None:
            item.add_marker(
                pytest.mark.server if _starts_processes(item, seen) else pytest.mark.unit
            )
    skip = pytest.mark.skip(reason=CLIENT_DIALECT_SKIP)
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or item.get_closest_marker("client_dialect") is None:
            continue
        if any(getattr(v, "name", None) == "redis5" for v in callspec.params.values()):
            item.add_marker(skip)


def kind_by_name(name: str) -> ServerKind | None:
    return next((k for k in KINDS if k.name == name), None)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A `unit` test that starts a process was misclassified: fail it, so `-m unit` stays
    server-free (mark it `server` explicitly)."""
    if request.node.get_closest_marker("unit") is None:
        return

    def refuse(*args: object, **kw: object) -> None:
        raise AssertionError("a unit-marked test started a process: mark it `server`")

    monkeypatch.setattr(subprocess, "Popen", refuse)


@pytest.fixture(scope="session", autouse=True)
def _process_dirs_under_basetemp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every server's and relay's directory (`tempfile.mkdtemp` in the harness) goes under
    pytest's basetemp, which pytest prunes to the last three runs: a run writes hundreds of
    them (logs, RDB files, disk backlogs), and /tmp kept every one."""
    before = tempfile.tempdir
    tempfile.tempdir = str(tmp_path_factory.getbasetemp())
    try:
        yield
    finally:
        tempfile.tempdir = before


@pytest.fixture(params=KINDS, ids=[k.name for k in KINDS])
def server_kind(request: pytest.FixtureRequest) -> ServerKind:
    """Parametrizes a test over every server kind on this machine."""
    return request.param


@pytest.fixture
def master(server_kind: ServerKind) -> Iterator[RedisServer]:
    """A fresh real master of each available kind."""
    server = start_server(server_kind)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start(server_kind: ServerKind) -> Iterator:
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
