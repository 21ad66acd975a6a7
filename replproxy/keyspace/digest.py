"""DEBUG DIGEST and DEBUG DIGEST-VALUE of the keyspace, as `src/debug.c` computes them.

Owns only the digest arithmetic; it reads the keyspace and never changes it. The digest is
what proves a relay's dataset equal to its master's, so it follows `computeDatasetDigest` /
`xorObjectDigest` (Redis 5.0 to 8.x, Valkey 7.2 to 8.1) to the byte:

- `xor(d, data)`: d ^= SHA1(data) (order-free); `mix(d, data)`: d = SHA1(d ^ SHA1(data))
  (ordered). Digests are 20 bytes, shown as 40 lowercase hex characters.
- Dataset: for each non-empty DB j in order, `mix(final, htonl(j))`, then for each key
  xor(final, key digest), where the key digest starts at zero, mixes the key name, then the
  object digest. An empty dataset is all zeros. Logically expired keys still in the DB count
  (the master's digest sees them too until its DEL arrives).
- Object: `mix(htonl(type))` (string 0, list 1, set 2, zset 3, hash 4, module 5, stream 6);
  string: mix(value); list: mix(each element, head first); set: xor(each member); zset: per
  member `e = mix(mix(0, member), score text)`, xor(d, e); hash: per field `e = mix(mix(0,
  field), value)`, then xor(e, `!!hexpire!!`) when the field has a TTL (Redis 7.4+), and
  xor(d, e) - the 20 bytes of `e` are hashed again, as `xorDigest` hashes whatever it gets;
  stream: only the entries, in id order: mix(`<ms>.<seq>`), then mix(field), mix(value) for
  each pair (consumer groups, PEL and stream metadata are NOT digested); then, if the key has
  a TTL, xor(`!!expire!!`) (its presence, not its value).
- Score text: Redis <= 7.0 `snprintf("%.17g")`; Redis 7.2+ and every Valkey the raw
  `fpconv_dtoa` (Grisu2; NOT `d2string`'s integer shortcut, so 2^62 digests as
  `4611686018427388000`). `digest_style_for` picks one from the server's name and version.
- Module values: `debug.c` mixes the type (5), then xors in the 20 bytes of the module
  digest context's `x` as its callback left them. Vector sets digest as `VectorSetDigest`
  does (`t_vset.vset_digest`); for any other module the relay lacks the callback and
  `DigestUnavailable` is raised rather than a digest that would look valid and be wrong.
- DIGEST-VALUE: the object digest alone (no key name, no DB id); a missing or logically
  expired key (a replica's `lookupKeyRead` hides it) digests as zeros.
"""

from __future__ import annotations

import math
from collections import deque
from hashlib import sha1
from typing import Literal

from replproxy.keyspace.store import Keyspace
from replproxy.rdb.model import HashValue, ModuleValue, StreamValue, Value, ZSetValue
from replproxy.resp.reply import _fpconv_dtoa, format_double  # raw Grisu2

DigestStyle = Literal["g17", "shortest"]

ZERO_DIGEST = b"0" * 40

OBJ_STRING = 0
OBJ_LIST = 1
OBJ_SET = 2
OBJ_ZSET = 3
OBJ_HASH = 4
OBJ_MODULE = 5
OBJ_STREAM = 6

_TYPE = {t: t.to_bytes(4, "big") for t in range(7)}  # htonl(o->type)
_EXPIRE = int.from_bytes(sha1(b"!!expire!!").digest(), "big")
_HEXPIRE = int.from_bytes(sha1(b"!!hexpire!!").digest(), "big")


class DigestUnavailable(Exception):
    """The digest depends on something the relay cannot compute (a module's callback)."""


def _h(data: bytes) -> int:
    return int.from_bytes(sha1(data).digest(), "big")


def _mix(d: int, data: bytes) -> int:
    """`mixDigest`: SHA1 of (digest xor SHA1(data))."""
    return int.from_bytes(sha1((d ^ _h(data)).to_bytes(20, "big")).digest(), "big")


def score_text(score: float, style: DigestStyle) -> bytes:
    """The text a zset score is digested as."""
    if style == "g17":
        return format_double(score, "g17")
    # fpconv_dtoa: the sign, then "0", "inf", "nan" or the Grisu2 digits.
    neg = math.copysign(1.0, score) < 0
    if score == 0.0:
        return b"-0" if neg else b"0"
    if score != score:
        return b"-nan" if neg else b"nan"
    if math.isinf(score):
        return b"-inf" if neg else b"inf"
    return _fpconv_dtoa(score)


def object_digest(value: Value, has_expire: bool, style: DigestStyle, d: int = 0) -> int:
    """`xorObjectDigest` mixed into `d`, as an integer (big endian digest bytes)."""
    mix, h = _mix, _h
    if isinstance(value, bytes):
        d = mix(mix(d, _TYPE[OBJ_STRING]), value)
    elif isinstance(value, list | deque):  # a list, or the keyspace's ListValue
        d = mix(d, _TYPE[OBJ_LIST])
        for element in value:
            d = mix(d, element)
    elif isinstance(value, set):
        d = mix(d, _TYPE[OBJ_SET])
        for member in value:
            d ^= h(member)
    elif isinstance(value, ZSetValue):
        d = mix(d, _TYPE[OBJ_ZSET])
        for member, score in value.items():
            d ^= h(_bytes(mix(mix(0, member), score_text(score, style))))
    elif isinstance(value, dict):
        d = mix(d, _TYPE[OBJ_HASH])
        ttls = value.expires if isinstance(value, HashValue) else None
        pairs: dict[bytes, bytes] = value  # type: ignore[assignment]  # not a ZSetValue here
        for field, v in pairs.items():
            e = mix(mix(0, field), v)
            if ttls and field in ttls:
                e ^= _HEXPIRE
            d ^= h(_bytes(e))
    elif isinstance(value, StreamValue):
        d = mix(d, _TYPE[OBJ_STREAM])
        for (ms, seq), entry in value.entries.items():
            d = mix(d, b"%d.%d" % (ms, seq))
            for name, data in entry:
                d = mix(mix(d, name), data)
    elif isinstance(value, ModuleValue) and value.name == "vectorset":
        from replproxy.keyspace.t_vset import VectorSet, vset_digest

        if not isinstance(value, VectorSet):
            raise DigestUnavailable("a vectorset value of an unknown encoding version")
        d = mix(d, _TYPE[OBJ_MODULE])
        d ^= h(vset_digest(value.data))
    elif isinstance(value, ModuleValue):
        raise DigestUnavailable(
            f"a value of module type {value.name!r} is digested by the module itself, which "
            "the relay does not run"
        )
    else:
        raise TypeError(f"not a keyspace value: {type(value).__name__}")
    if has_expire:
        d ^= _EXPIRE
    return d


def _bytes(d: int) -> bytes:
    return d.to_bytes(20, "big")


def _hex(d: int) -> bytes:
    return b"%040x" % d


def digest(ks: Keyspace, style: DigestStyle) -> bytes:
    """DEBUG DIGEST: 40 hex characters, all zeros for an empty dataset."""
    final = 0
    for j, keys in enumerate(ks.dbs):
        if not keys:
            continue
        final = _mix(final, j.to_bytes(4, "big"))
        expires = ks.expires[j]
        for key, value in keys.items():
            final ^= _h(_bytes(object_digest(value, key in expires, style, _mix(0, key))))
    return _hex(final)


def digest_value(ks: Keyspace, db: int, key: bytes, style: DigestStyle) -> bytes:
    """DEBUG DIGEST-VALUE for one key: 40 hex characters, zeros when the key reads missing."""
    value = ks.get(db, key)
    if value is None:
        return ZERO_DIGEST
    expire = ks.get_expire(db, key)
    if expire is not None and ks.now_ms() > expire:  # keyIsExpired: now > when
        return ZERO_DIGEST
    return _hex(object_digest(value, expire is not None, style))
