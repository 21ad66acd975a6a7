"""Client libraries' client-side caches on the relay, as on a REAL replica of the same
master: cached reads are served from the client's cache until the master writes the key,
then fresh values come back (the relay's invalidations reach the cache).

- redis-py (8.x) `cache_config`: RESP3, CLIENT TRACKING ON (default mode, and OPTIN /
  OPTOUT); redis-py enables it for Redis 7.4 and later only, so the older kinds skip.
- valkey-glide `ClientSideCache(server_assisted=True)`: CLIENT TRACKING ON BCAST; glide's
  standalone client talks to a replica with `read_only=True` (a relay, like a replica, has
  no primary for it to find).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.cache import CacheConfig, TrackingMode

from tests.harness.servers import ServerKind
from tests.harness.triple import Triple, triple

pytestmark = pytest.mark.client_dialect


@pytest.fixture
def three(server_kind: ServerKind) -> Iterator[Triple]:
    with triple(server_kind) as t:
        yield t


def fill(t: Triple, n: int) -> None:
    with t.master.client() as m:
        m.delete("s", "z", "l")
        m.set("k", f"v{n}")
        m.hset("h", mapping={"f": f"h{n}", "g": "x"})
        m.rpush("l", *[f"e{i}" for i in range(n)])
        m.sadd("s", f"m{n}")
        m.zadd("z", {f"z{n}": n})
    t.sync()


def reads(c: Any) -> list[object]:
    return [
        c.get("k"),
        c.hgetall("h"),
        c.lrange("l", 0, -1),
        sorted(c.smembers("s")),
        c.zrange("z", 0, -1, withscores=True),
        c.mget("k", "nokey"),
        c.exists("k", "h"),
    ]


@pytest.mark.parametrize("mode", [TrackingMode.PLAIN, TrackingMode.OPTIN, TrackingMode.OPTOUT])
def test_redis_py_cache_serves_fresh_values(three: Triple, mode: TrackingMode) -> None:
    if three.kind.is_valkey or three.kind.version < (7, 4, 0):
        pytest.skip("redis-py enables its client-side cache for Redis 7.4 and later only")
    t = three
    seen: dict[str, list[object]] = {}
    for name, port in t.ports.items():
        fill(t, 1)
        cfg = CacheConfig(
            tracking_mode=mode,
            cache_predicate=None if mode is TrackingMode.PLAIN else (lambda cmd, keys: True),
        )
        with redis.Redis(port=port, protocol=3, cache_config=cfg) as c:
            out: list[object] = [reads(c), reads(c), c.get_cache().size]
            for n in (2, 3):
                fill(t, n)
                out += [reads(c), c.get_cache().size]
            with t.master.client() as m:
                m.flushall()
            t.sync()
            out += [reads(c), c.get_cache().size]
        seen[name] = out
    assert seen["relay"] == seen["replica"]
    relay = seen["relay"]
    assert relay[5][0] == b"v3"  # type: ignore[index]  # the last write's, not a cached v1
    assert relay[2] > 0  # type: ignore[operator]  # the cache was used
    assert relay[7][0] is None  # type: ignore[index]  # FLUSHALL: nothing cached survives


async def _glide(t: Triple, port: int) -> list[object]:
    from glide import ClientSideCache, GlideClient, GlideClientConfiguration, NodeAddress

    cache = ClientSideCache.create(
        max_cache_kb=1024, entry_ttl_ms=0, enable_metrics=True, server_assisted=True
    )
    cfg = GlideClientConfiguration(
        [NodeAddress("127.0.0.1", port)],
        client_side_cache=cache,
        request_timeout=5000,
        read_only=True,
    )
    c = await GlideClient.create(cfg)
    try:
        out: list[object] = []
        for n in (1, 1, 2, 3):
            if n > 1:
                fill(t, n)
                await asyncio.sleep(0.1)  # the invalidation push reaches glide's reader
            out += [await c.get("k"), await c.hgetall("h"), sorted(await c.smembers("s"))]
        out.append((c.get_cache_hit_rate(), c.get_cache_total_lookups()))
        out.append(await c.custom_command(["CLIENT", "TRACKINGINFO"]))
        return out
    finally:
        await c.close()


def test_valkey_glide_server_assisted_cache(three: Triple) -> None:
    pytest.importorskip("glide", reason="valkey-glide is in the test extra")
    t = three
    seen = {}
    for name, port in t.ports.items():
        fill(t, 1)
        seen[name] = asyncio.run(asyncio.wait_for(_glide(t, port), 60))
    assert seen["relay"] == seen["replica"]
    relay = seen["relay"]
    assert relay[9] == b"v3"  # fresh after the master's writes
    stats = relay[12]
    assert isinstance(stats, tuple)
    hit_rate, lookups = stats
    assert lookups > 0 and hit_rate > 0
