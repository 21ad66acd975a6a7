"""A misbehaving master, end to end: the real relay process against a fake master.

The fake master (tests/harness/fakemaster.py) is a real TCP server speaking the replication
protocol with one fault injected; the relay is the real process. Each test checks what the
relay did with the fault: dropped the link (and reconnected with the PSYNC it should), never
applied, relayed or counted a bad command, never went online on a wrong reply, never wrote a
snapshot the disk cannot hold, and logged the master's bytes escaped and cut short.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from replproxy.link import driver
from tests.harness.fakemaster import REPLID, FakeMaster, MasterPeer, command
from tests.harness.relay import RelayProcess, start_relay
from tests.harness.servers import wait_for

pytestmark = pytest.mark.timeout(120)

FAST_RETRY = ("--reconnect-backoff-max", "0.5")
# The fake master speaks replication only: the master offset probe's ordinary client
# connection (CLIENT SETINFO, INFO) would look like a second replica to it.
NO_PROBE = ("--master-offset-probe", "no")


def relay_for(fake: FakeMaster, relays: list[RelayProcess], *args: str) -> RelayProcess:
    relay = start_relay(fake.url, *FAST_RETRY, *NO_PROBE, *args, wait_ready=False)
    relays.append(relay)
    return relay


@pytest.mark.parametrize(
    "bad,logged,quoted",
    [
        (b"SET evil 1\r\n", "Master using the inline protocol. Desync?", '"SET evil 1\\r\\n'),
        (
            b"*3\r\n$3\r\nSET\r\n$4\r\nevil\r\n:1\r\n",
            "expected '$', got ':'",
            '"*3\\r\\n$3\\r\\nSET',
        ),
    ],
    ids=["inline", "malformed"],
)
def test_bad_command_in_the_stream_drops_the_link_unapplied_and_uncounted(
    relays: list[RelayProcess], bad: bytes, logged: str, quoted: str
) -> None:
    good = command("SET", "a", "1")

    def script(peer: MasterPeer) -> None:
        argv = peer.handshake()
        if argv[1] == b"?":
            peer.full_sync(offset=100)
            peer.wait_ack()  # loaded and online
            peer.send(good + bad + command("SET", "b", "2"))
        else:
            peer.send(f"+CONTINUE {REPLID}\r\n".encode())

    with FakeMaster(script) as fake:
        relay = relay_for(fake, relays)
        second = fake.wait_peers(2)[1]
        wait_for(lambda: second.psync is not None, 30, what="the second PSYNC")
        # It continues right after the last good command: the bad bytes were never counted.
        assert second.psync == [b"PSYNC", REPLID.encode(), b"%d" % (100 + len(good) + 1)]
        wait_for(lambda: relay.info()["master_link_status"] == "up", 30, what="link up")
        with relay.client() as c:
            assert c.get("a") == b"1"
            assert c.get("evil") is None and c.get("b") is None
        assert relay.info()["slave_repl_offset"] == 100 + len(good)
        log = relay.log()
        assert logged in log
        assert f"at offset {100 + len(good) + 1}, command {quoted}" in log


def test_continue_to_psync_question_mark_never_marks_the_link_up(
    relays: list[RelayProcess],
) -> None:
    def script(peer: MasterPeer) -> None:
        peer.handshake()
        peer.send(b"+CONTINUE\r\n" + command("SET", "k", "v"))

    with FakeMaster(script) as fake:
        relay = relay_for(fake, relays)
        peers = fake.wait_peers(3)
        wait_for(lambda: all(p.psync is not None for p in peers[:3]), 30, what="PSYNCs")
        assert all(p.psync == [b"PSYNC", b"?", b"-1"] for p in peers[:3])
        assert relay.http("/readyz")[0] != 200
        assert relay.info()["master_link_status"] == "down"
        assert "master answered +CONTINUE to PSYNC ? -1" in relay.log()


@pytest.mark.parametrize(
    "ping_reply,logged",
    [
        (b"\x1b[31mHELLO" + b"A" * 500 + b"\r\n", "Unexpected reply to PING from master"),
        (b"-ERR no way\r\n", "Error reply to PING from master"),
        (b"$4\r\n", "Unexpected reply to PING from master"),
    ],
)
def test_bad_ping_reply_drops_the_link_before_the_handshake(
    relays: list[RelayProcess], ping_reply: bytes, logged: str
) -> None:
    def script(peer: MasterPeer) -> None:
        peer.handshake(ping_reply=ping_reply)  # the relay closes instead of going on

    with FakeMaster(script) as fake:
        relay = relay_for(fake, relays)
        peers = fake.wait_peers(2)
        wait_for(lambda: peers[0].closed.is_set(), 30, what="the relay to drop the link")
        assert peers[0].commands == [[b"PING"]]  # no REPLCONF, no PSYNC after that reply
        log = relay.log()
        assert logged in log
        # The master's bytes are escaped and cut short in the log.
        assert "\x1b" not in log
        if ping_reply.startswith(b"\x1b"):
            assert '"\\x1b[31mHELLO' in log and "more bytes)" in log
            assert "A" * 100 not in log


def test_garbage_replconf_reply_drops_the_link(relays: list[RelayProcess]) -> None:
    def script(peer: MasterPeer) -> None:
        assert peer.read_command() == [b"PING"]
        peer.send(b"+PONG\r\n")
        peer.read_command()  # REPLCONF listening-port
        peer.send(b":1\r\n")

    with FakeMaster(script) as fake:
        relay = relay_for(fake, relays)
        peers = fake.wait_peers(2)
        wait_for(lambda: peers[0].closed.is_set(), 30, what="the relay to drop the link")
        assert not any(c[0] == b"PSYNC" for c in peers[0].commands)
        assert 'Unexpected reply to REPLCONF listening-port from master: ":1"' in relay.log()


def test_snapshot_larger_than_the_free_disk_is_refused_before_writing(
    relays: list[RelayProcess],
) -> None:
    huge = 10**15  # a petabyte: more than any test machine's free space

    def script(peer: MasterPeer) -> None:
        peer.handshake()
        peer.send(f"+FULLRESYNC {REPLID} 0\r\n$%d\r\n".encode() % huge + b"REDIS0010" * 1000)

    with FakeMaster(script) as fake:
        relay = relay_for(fake, relays)
        fake.wait_peers(3)  # it retries, with backoff
        log = relay.log()
        assert f"the master announced a snapshot of {huge} bytes but only" in log
        assert "retrying in" in log
        assert not (relay.dir / "upstream.rdb.incoming").exists()
        assert relay.http("/readyz")[0] != 200


@pytest.mark.parametrize("size", [100, 100_000], ids=["in-buffer", "past-buffer"])
def test_a_transfer_that_fills_the_disk_leaves_no_incoming_file(tmp_path: Path, size: int) -> None:
    path = tmp_path / "upstream.rdb"
    incoming = tmp_path / "upstream.rdb.incoming"
    incoming.symlink_to("/dev/full")  # every write fails with ENOSPC
    snapshot = driver._SnapshotFile(path)
    try:
        snapshot.write(b"x" * size)
    except driver.LinkFailure as e:
        assert "no space left" in str(e)
    # What the transfer's `finally` does, its own exception (if any) on the way out: closing
    # flushes what the buffer still holds, which fails again; the file must go all the same.
    snapshot.discard()
    assert not os.path.lexists(incoming)


def test_a_leftover_incoming_file_counts_as_free_space(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "upstream.rdb"
    usage = shutil.disk_usage(tmp_path)

    def disk_usage(where: Any) -> Any:
        return usage._replace(free=1000)

    monkeypatch.setattr(driver.shutil, "disk_usage", disk_usage)
    assert driver.snapshot_room(path) == 1000
    (tmp_path / "upstream.rdb.incoming").write_bytes(b"x" * 5000)  # a failed transfer's
    # The next transfer truncates it first: its bytes are room for the new snapshot.
    assert driver.snapshot_room(path) == 6000
    assert driver.snapshot_space_error(5500, driver.snapshot_room(path), tmp_path) is None


def test_after_a_transfer_that_filled_the_disk_the_next_full_sync_works(
    relays: list[RelayProcess], tmp_path: Path
) -> None:
    incoming = tmp_path / "upstream.rdb.incoming"
    incoming.symlink_to("/dev/full")  # the first transfer's writes fail with ENOSPC

    def script(peer: MasterPeer) -> None:
        peer.handshake()
        peer.full_sync(offset=100)
        peer.wait_ack()  # loaded and online (the first connection closes instead)
        peer.send(command("SET", "k", "v"))

    with FakeMaster(script) as fake:
        relay = start_relay(fake.url, *FAST_RETRY, *NO_PROBE, dir=tmp_path, wait_ready=False)
        relays.append(relay)
        wait_for(
            lambda: relay.info()["master_link_status"] == "up", 60, what="a full sync that works"
        )
        assert "No space left on device" in relay.log()
        assert not os.path.lexists(incoming)
        with relay.client() as c:
            wait_for(lambda: c.get("k") == b"v", 30, what="the stream applied")
        assert len(fake.peers) == 2  # one failed transfer, then the good one
