"""A graceful shutdown saves even when a downstream replica never acknowledges (issue 15).

Redis 7 waits `shutdown-timeout` for its replicas' ACKs, then saves and exits 0. The relay's
drain has its own share of `--shutdown-timeout`; the save gets the rest.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from collections.abc import Iterator

import pytest

from tests.harness.relay import start_relay, upstream_url
from tests.harness.servers import RedisServer, available_kinds, start_server, wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def master() -> Iterator[RedisServer]:
    server = start_server(available_kinds()[0])
    try:
        yield server
    finally:
        server.stop()


def fake_replica(port: int) -> socket.socket:
    """A "replica" that PSYNCs, reads its full sync, and then never sends an ACK."""
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.sendall(b"REPLCONF capa psync2\r\n")
    assert s.recv(100) == b"+OK\r\n"
    s.sendall(b"PSYNC ? -1\r\n")
    buf = b""
    while True:  # `\n` keep-alives, `+FULLRESYNC <replid> <offset>`, `$<size>`
        buf += s.recv(65536)
        line, found, rest = buf.lstrip(b"\n").partition(b"\r\n")
        header, found2, body = rest.partition(b"\r\n")
        if found and found2:
            break
    assert line.startswith(b"+FULLRESYNC") and header.startswith(b"$")
    size = int(header[1:])
    while len(body) < size:
        body += s.recv(65536)
    assert body.startswith(b"REDIS")
    return s


@pytest.mark.slow
def test_sigterm_saves_and_exits_0_despite_a_replica_that_never_acks(
    master: RedisServer,
) -> None:
    relay = start_relay(
        upstream_url(master), "--shutdown-timeout", "4", "--repl-diskless-sync-delay", "0"
    )
    try:
        with master.client() as c:
            for i in range(100):
                c.set(f"k{i}", i)
        replica = fake_replica(relay.port)
        wait_for(
            lambda: relay.info("replication").get("slave0", {}).get("state") == "online",
            30,
            what="the fake replica online",
        )
        with master.client() as c:
            c.set("after", "the sync")  # the replica is now behind, and never ACKs
        final = relay.wait_in_sync_with(master)
        sent = time.time()
        relay.proc.send_signal(signal.SIGTERM)
        assert relay.proc.wait(60) == 0, relay.log()[-3000:]
        replica.close()
    finally:
        relay.stop()
    log = relay.log()
    assert "Lagging replica" in log and "0 of 1 replicas are in sync" in log
    assert "did not finish within --shutdown-timeout" not in log
    rdb, state = relay.dir / "replproxy.rdb", relay.dir / "replproxy.rdb.json"
    assert rdb.stat().st_mtime >= sent - 1
    assert json.loads(state.read_text())["repl_offset"] == final
    assert "ready to exit, bye bye" in log
