"""Pub/Sub on the client endpoint: subscribers get what the master publishes.

The master propagates `PUBLISH` (and, from 7.0, `SPUBLISH`) to its replicas; the keyspace
hands each one to `PubSub.publish` (`Keyspace.on_publish`) while the stream applies, and a
client's own `PUBLISH` on the relay reaches the relay's subscribers, as on a Redis replica.
Delivery never awaits: a message is queued on each subscriber (`Client.push`), whose writer
task sends it; a subscriber that does not read is dropped at the pub/sub output buffer limit
(`client-output-buffer-limit pubsub`, 32mb 8mb 60 by default).

Replies follow `pubsub.c`: one `subscribe`/`unsubscribe` confirmation per channel, an
unsubscribe from nothing answers `[unsubscribe, nil, 0]`, RESP3 uses push frames (`>`) for
all of them, and the count is the client's total of channels plus patterns (shard channels
count apart). Channels and patterns are kept in subscription order per client, as Redis's
dicts are iterated for UNSUBSCRIBE with no arguments (Redis's order is its hash order; the
set of replies is the same).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from replproxy.glob import stringmatch
from replproxy.resp import reply

if TYPE_CHECKING:
    from replproxy.session.client import ClientSession as Client


def _kind_frame(kind: bytes, name: bytes | None, count: int, proto: int) -> bytes:
    head = reply.push_len(3, proto)
    return (
        head
        + reply.bulk(kind)
        + (reply.null(proto) if name is None else reply.bulk(name))
        + reply.integer(count)
    )


class PubSub:
    def __init__(self) -> None:
        # channel -> subscribers (dict as an ordered set, by client id)
        self.channels: dict[bytes, dict[int, Client]] = {}
        self.patterns: dict[bytes, dict[int, Client]] = {}
        self.shard_channels: dict[bytes, dict[int, Client]] = {}
        # Called with whether anyone is subscribed to a channel or a pattern, when that
        # changes: keyspace notifications are built only while someone could receive them.
        self.on_listened: Callable[[bool], None] | None = None
        self._listened = False

    def _check_listened(self) -> None:
        listened = bool(self.channels or self.patterns)
        if listened != self._listened:
            self._listened = listened
            if self.on_listened is not None:
                self.on_listened(listened)

    # ---- delivery ----

    def publish(self, channel: bytes, message: bytes) -> int:
        """Deliver to channel subscribers, then to pattern subscribers; the receiver count."""
        n = 0
        subs = self.channels.get(channel)
        if subs:
            body = b"$7\r\nmessage\r\n" + reply.bulk(channel) + reply.bulk(message)
            for c in list(subs.values()):
                c.push(reply.push_len(3, c.proto) + body)
                n += 1
        if self.patterns:
            for pattern, psubs in list(self.patterns.items()):
                if not stringmatch(pattern, channel):
                    continue
                body = (
                    b"$8\r\npmessage\r\n"
                    + reply.bulk(pattern)
                    + reply.bulk(channel)
                    + reply.bulk(message)
                )
                for c in list(psubs.values()):
                    c.push(reply.push_len(4, c.proto) + body)
                    n += 1
        return n

    def spublish(self, channel: bytes, message: bytes) -> int:
        subs = self.shard_channels.get(channel)
        if not subs:
            return 0
        body = b"$8\r\nsmessage\r\n" + reply.bulk(channel) + reply.bulk(message)
        for c in list(subs.values()):
            c.push(reply.push_len(3, c.proto) + body)
        return len(subs)

    # ---- per client ----

    def subscribe(self, c: Client, names: list[bytes], shard: bool = False) -> bytes:
        if shard:
            return _subscribe(c, names, self.shard_channels, c.shard_channels, b"ssubscribe", shard)
        out = _subscribe(c, names, self.channels, c.channels, b"subscribe", shard)
        self._check_listened()
        return out

    def unsubscribe(self, c: Client, names: list[bytes], shard: bool = False) -> bytes:
        if shard:
            return _unsubscribe(
                c, names, self.shard_channels, c.shard_channels, b"sunsubscribe", shard
            )
        out = _unsubscribe(c, names, self.channels, c.channels, b"unsubscribe", shard)
        self._check_listened()
        return out

    def psubscribe(self, c: Client, patterns: list[bytes]) -> bytes:
        out = _subscribe(c, patterns, self.patterns, c.patterns, b"psubscribe", False)
        self._check_listened()
        return out

    def punsubscribe(self, c: Client, patterns: list[bytes]) -> bytes:
        out = _unsubscribe(c, patterns, self.patterns, c.patterns, b"punsubscribe", False)
        self._check_listened()
        return out

    def drop_client(self, c: Client) -> None:
        """A closing (or RESET) client leaves every channel and pattern, silently."""
        for table, mine in (
            (self.channels, c.channels),
            (self.patterns, c.patterns),
            (self.shard_channels, c.shard_channels),
        ):
            for name in mine:
                unregister(table, name, c.id)
            mine.clear()
        self._check_listened()

    # ---- PUBSUB introspection ----

    def active_channels(self, pattern: bytes | None, shard: bool = False) -> list[bytes]:
        table = self.shard_channels if shard else self.channels
        return [ch for ch in table if pattern is None or stringmatch(pattern, ch)]

    def numsub(self, channels: list[bytes], shard: bool = False) -> list[tuple[bytes, int]]:
        table = self.shard_channels if shard else self.channels
        return [(ch, len(table.get(ch, ()))) for ch in channels]

    def numpat(self) -> int:
        return len(self.patterns)


def _subscribe(
    c: Client,
    names: list[bytes],
    table: dict[bytes, dict[int, Client]],
    mine: dict[bytes, None],
    kind: bytes,
    shard: bool,
) -> bytes:
    """(S|P)SUBSCRIBE: `table` is the server's subscribers by name, `mine` the client's."""
    out = []
    for name in names:
        if name not in mine:
            mine[name] = None
            table.setdefault(name, {})[c.id] = c
        out.append(_kind_frame(kind, name, _count(c, shard), c.proto))
    return b"".join(out)


def _unsubscribe(
    c: Client,
    names: list[bytes],
    table: dict[bytes, dict[int, Client]],
    mine: dict[bytes, None],
    kind: bytes,
    shard: bool,
) -> bytes:
    """(S|P)UNSUBSCRIBE; with no names, from everything the client has in `mine`."""
    if not names:
        names = list(mine)
        if not names:
            return _kind_frame(kind, None, _count(c, shard), c.proto)
    out = []
    for name in names:
        if name in mine:
            del mine[name]
            unregister(table, name, c.id)
        out.append(_kind_frame(kind, name, _count(c, shard), c.proto))
    return b"".join(out)


def _count(c: Client, shard: bool) -> int:
    return len(c.shard_channels) if shard else len(c.channels) + len(c.patterns)


K = TypeVar("K")


def unregister(table: dict[K, dict[int, Client]], key: K, cid: int) -> None:
    """Remove client `cid` from `table[key]`, and the key once nobody is left (subscribers
    here; the server's watchers and blocked readers too)."""
    subs = table.get(key)
    if subs is not None:
        subs.pop(cid, None)
        if not subs:
            del table[key]
