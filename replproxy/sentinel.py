"""The Sentinel-aware upstream: which master to replicate from, asked of Redis Sentinels.

With `--sentinel host:port[,host:port...] --sentinel-master NAME` the relay learns its master
the way Sentinel clients do (Redis's "Sentinel client spec"):

- before every connection attempt the link asks the Sentinels in turn
  (`SENTINEL get-master-addr-by-name NAME`); the first one that answers wins and moves to the
  front of the list, so a dead Sentinel costs one timeout at most once;
- every Sentinel is subscribed to `+switch-master` (`<name> <old-ip> <old-port> <new-ip>
  <new-port>`); a switch of our master re-points the link at once (`UpstreamLink.repoint`):
  the promoted replica continues our history through its replid2, so the relay does a partial
  resync, exactly as after `REPLICAOF`.

The relay never becomes a promotion candidate: it reports `slave_priority:0` in INFO (Sentinel
skips replicas with priority 0 in `sentinelSelectSlave`), and `REPLICAOF NO ONE` is refused.
Sentinel may still reconfigure it like any replica of the old master (its `SLAVEOF` inside a
`MULTI`): that is the same `repoint`, and a second one to the same master is a no-op.

This module owns the connections to the Sentinels and nothing else; it tells the link where
the master is through the two callbacks it is given and never touches the link's state. The
reply parsing is hiredis's; `switch_master_target` is sans-I/O.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import Any

import hiredis
import trio

from replproxy import tls
from replproxy.config import SentinelSettings

log = logging.getLogger("replproxy.sentinel")


TIMEOUT = 5.0  # seconds to connect to one Sentinel and get its answer
KEEPALIVE = 15.0  # a PING on the subscription this often; no byte for twice that: reconnect
RECV_SIZE = 16 * 1024


def switch_master_target(payload: bytes, name: str) -> tuple[str, int] | None:
    """The new master named by a `+switch-master` message, when it is about master `name`."""
    words = payload.decode("utf-8", "replace").split()
    if len(words) != 5 or words[0] != name:
        return None
    try:
        return words[3], int(words[4])
    except ValueError:
        return None


class SentinelError(Exception):
    """One Sentinel could not be used; the message says why."""


# What ends one Sentinel's connection (its answer, or the subscription): that Sentinel is
# given up for now, and the next one, or this one again later, is tried.
_SENTINEL_LOST = (
    SentinelError,
    tls.TlsHandshakeError,
    OSError,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
)


def _command(*args: str | bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class _Connection:
    """One connection to a Sentinel: commands out, replies in (hiredis parses them)."""

    def __init__(self, stream: trio.abc.Stream, name: str) -> None:
        self.stream = stream
        self.name = name
        self.reader = hiredis.Reader()
        self.received_at = trio.current_time()

    async def send(self, *args: str | bytes) -> None:
        await self.stream.send_all(_command(*args))

    async def read(self) -> Any:
        while True:
            reply = self.reader.gets()
            if reply is not False:
                if isinstance(reply, hiredis.ReplyError):
                    raise SentinelError(f"sentinel {self.name}: -{reply}")
                return reply
            data = await self.stream.receive_some(RECV_SIZE)
            if not data:
                raise SentinelError(f"sentinel {self.name} closed the connection")
            self.received_at = trio.current_time()
            self.reader.feed(bytes(data))


class SentinelClient:
    """Asks the Sentinels where the master is, and tells of every `+switch-master`."""

    def __init__(
        self,
        settings: SentinelSettings,
        client_context: Callable[[], ssl.SSLContext | None],
        backoff_min: float = 0.5,
        backoff_max: float = 10.0,
    ) -> None:
        self.settings = settings
        self._context = client_context
        self.addrs = list(settings.addrs)
        self.backoff_min, self.backoff_max = backoff_min, backoff_max
        self.switches = 0  # +switch-master messages about our master

    def _name(self, addr: tuple[str, int]) -> str:
        host, port = addr
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    async def _open(self, addr: tuple[str, int]) -> _Connection:
        host, port = addr
        name = self._name(addr)
        stream: trio.abc.Stream
        with trio.move_on_after(TIMEOUT) as cs:
            stream = await trio.open_tcp_stream(host, port)
        if cs.cancelled_caught:
            raise SentinelError(f"timeout connecting to sentinel {name}")
        try:
            if self.settings.tls:
                ctx = self._context()
                assert ctx is not None, "--sentinel-tls builds the client context"
                stream = await tls.connect(stream, ctx, host, f"sentinel {name}", TIMEOUT)
            conn = _Connection(stream, name)
            s = self.settings
            if s.password is not None:
                auth = ("AUTH", s.username, s.password) if s.username else ("AUTH", s.password)
                await conn.send(*auth)
                with trio.move_on_after(TIMEOUT):
                    try:
                        await conn.read()
                    except SentinelError as e:
                        raise SentinelError(f"Unable to AUTH to sentinel {name}: {e}") from e
                    return conn
                raise SentinelError(f"sentinel {name}: no reply to AUTH")
            return conn
        except BaseException:
            await trio.aclose_forcefully(stream)
            raise

    async def master_address(self) -> tuple[str, int] | None:
        """The master's address as the first Sentinel that knows it says, or None."""
        name = self.settings.master_name
        for addr in list(self.addrs):
            try:
                conn = await self._open(addr)
                async with conn.stream:
                    await conn.send("SENTINEL", "get-master-addr-by-name", name)
                    reply = None
                    with trio.move_on_after(TIMEOUT) as cs:
                        reply = await conn.read()
                    if cs.cancelled_caught:
                        raise SentinelError(f"sentinel {conn.name}: no reply")
            except _SENTINEL_LOST as e:
                log.warning("sentinel %s could not tell the master: %s", self._name(addr), e)
                continue
            if not (isinstance(reply, list) and len(reply) == 2):
                log.warning("sentinel %s does not know master %r", self._name(addr), name)
                continue
            try:
                found = reply[0].decode(), int(reply[1])
            except (ValueError, AttributeError):
                log.warning("sentinel %s: unexpected reply %r", self._name(addr), reply)
                continue
            # Sentinel clients put the Sentinel that answered first (the spec's step 3).
            self.addrs.remove(addr)
            self.addrs.insert(0, addr)
            log.info("sentinel %s: master %r is at %s:%d", self._name(addr), name, *found)
            return found
        return None

    async def watch(self, on_switch: Callable[[str, int], object]) -> None:
        """Subscribe to `+switch-master` on every Sentinel, forever (until cancelled)."""
        async with trio.open_nursery() as nursery:
            for addr in self.settings.addrs:
                nursery.start_soon(self._watch_one, addr, on_switch)

    async def _watch_one(
        self, addr: tuple[str, int], on_switch: Callable[[str, int], object]
    ) -> None:
        delay = self.backoff_min
        failing = False
        while True:
            try:
                conn = await self._open(addr)
                async with conn.stream:
                    await conn.send("SUBSCRIBE", "+switch-master")
                    await conn.read()  # the subscribe confirmation
                    if failing:
                        log.info("sentinel %s: subscribed again to +switch-master", conn.name)
                    failing, delay = False, self.backoff_min
                    async with trio.open_nursery() as nursery:
                        nursery.start_soon(self._keepalive, conn, nursery.cancel_scope)
                        await self._messages(conn, on_switch)
            except _SENTINEL_LOST as e:
                if not failing:
                    log.warning("sentinel %s: subscription lost: %s; retrying", self._name(addr), e)
                failing = True
            await trio.sleep(delay)
            delay = min(self.backoff_max, delay * 2)

    async def _keepalive(self, conn: _Connection, scope: trio.CancelScope) -> None:
        """PING the subscription; a Sentinel silent for two periods is given up on."""
        while True:
            await trio.sleep(KEEPALIVE)
            if trio.current_time() - conn.received_at > 2 * KEEPALIVE:
                log.warning("sentinel %s: no reply for %gs: reconnecting", conn.name, 2 * KEEPALIVE)
                scope.cancel()  # ends this subscription; `_watch_one` connects again
                return
            await conn.send("PING")

    async def _messages(self, conn: _Connection, on_switch: Callable[[str, int], object]) -> None:
        name = self.settings.master_name
        while True:
            msg = await conn.read()
            if not (isinstance(msg, list) and len(msg) == 3 and msg[0] == b"message"):
                continue  # PING replies (`pong`), confirmations
            target = switch_master_target(msg[2], name)
            if target is None:
                continue
            self.switches += 1
            log.warning(
                "sentinel %s: +switch-master %s", conn.name, msg[2].decode("utf-8", "replace")
            )
            on_switch(*target)
