"""Hash slots: `keyHashSlot` and slot ranges, as Redis Cluster computes them (cluster.c).

Owns nothing but pure functions; no I/O, no topology (see `replproxy.cluster.topology`).

A key's slot is CRC16 (XMODEM: polynomial 0x1021, initial value 0, no reflection) of the key,
modulo 16384; when the key holds a `{` followed later by a `}` with at least one byte between
them, only the bytes between the first `{` and the first `}` after it are hashed (a hash
tag), so `{user1}.a` and `{user1}.b` share a slot. `{}` and a `{` without a later `}` hash the
whole key. `binascii.crc_hqx(data, 0)` is exactly that CRC, in C.
"""

from __future__ import annotations

from binascii import crc_hqx
from collections.abc import Iterable, Sequence

from replproxy.resp.request import string2ll

CLUSTER_SLOTS = 16384

SlotRange = tuple[int, int]
"""An inclusive range of slots, (start, end)."""


def key_hash_slot(key: bytes) -> int:
    """`keyHashSlot`: the slot of `key`, honouring a hash tag."""
    s = key.find(b"{")
    if s != -1:
        e = key.find(b"}", s + 1)
        if e > s + 1:
            return crc_hqx(key[s + 1 : e], 0) & 0x3FFF
    return crc_hqx(key, 0) & 0x3FFF


def ranges_of(slots: Iterable[int]) -> list[SlotRange]:
    """Sorted, merged inclusive ranges covering exactly `slots`."""
    out: list[SlotRange] = []
    for s in sorted(set(slots)):
        if out and out[-1][1] == s - 1:
            out[-1] = (out[-1][0], s)
        else:
            out.append((s, s))
    return out


def slots_of(ranges: Iterable[SlotRange]) -> list[int]:
    """Every slot of `ranges`, in order."""
    return [s for start, end in ranges for s in range(start, end + 1)]


def count_slots(ranges: Sequence[SlotRange]) -> int:
    return sum(end - start + 1 for start, end in ranges)


def parse_slot(arg: bytes) -> int | None:
    """A slot number as `getSlotOrReply` accepts it (a long long in 0..16383), or None."""
    v = string2ll(arg)
    return v if v is not None and 0 <= v < CLUSTER_SLOTS else None
