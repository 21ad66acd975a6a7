"""Sets: the master's set writes, applied to `set[bytes]` values.

This module owns the appliers of the set commands a master propagates; it touches no other
type. Redis's encodings (intset, listpack, hashtable) change only memory layout and the
iteration order of replies, never membership, which is all a `set` holds. A set that becomes
empty is deleted, as `t_set.c` does after every removal.

What arrives (read from `src/t_set.c`, 5.0 to 8.x, and Valkey 8):

- verbatim: SADD, SREM, SMOVE, SINTERSTORE, SUNIONSTORE, SDIFFSTORE. The *STORE commands
  overwrite the destination whatever its type and drop its TTL (`setKey`), or delete it when
  the result is empty; a missing source is an empty set; the destination may be a source.
- SPOP is random, so it never arrives: `SPOP k` -> `SREM k m` (`spopCommand`, 5.0+);
  `SPOP k n` -> `DEL k` when n >= size, otherwise SREMs (`spopWithCountCommand`: one
  `SREM k m` per member in 5.x/6.x, batches of up to 1024 members in 7.0+, wrapped in
  MULTI/EXEC). SRANDMEMBER is a read. Neither is registered: if one arrived verbatim it
  would be reported as unsupported rather than guessed at.
"""

from __future__ import annotations

from replproxy.keyspace import ApplyError, Keyspace, write_command


def _set(ks: Keyspace, db: int, key: bytes) -> set[bytes] | None:
    value = ks.get(db, key)
    if value is None or type(value) is set:
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a set")


@write_command("sadd")
def sadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    if s is None:
        ks.set(db, key, set(argv[2:]))
    else:
        s.update(argv[2:])
        ks.touched(db, key)


@write_command("srem")
def srem(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    s = _set(ks, db, key)
    if s is None:
        return
    s.difference_update(argv[2:])
    if s:
        ks.touched(db, key)
    else:
        ks.delete(db, key)


@write_command("smove", keys=(1, 2, 1))
def smove(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """SMOVE source destination member."""
    src_key, dst_key, member = argv[1], argv[2], argv[3]
    src = _set(ks, db, src_key)
    dst = _set(ks, db, dst_key)  # smoveCommand checks both types before acting
    if src is None or member not in src or src is dst:
        return  # same source and destination: a no-op in smoveCommand
    src.discard(member)
    if src:
        ks.touched(db, src_key)
    else:
        ks.delete(db, src_key)
    if dst is None:
        ks.set(db, dst_key, {member})
    else:
        dst.add(member)
        ks.touched(db, dst_key)


def _store(ks: Keyspace, db: int, dst_key: bytes, result: set[bytes]) -> None:
    if result:
        ks.set(db, dst_key, result)
    else:
        ks.delete(db, dst_key)


def _sources(ks: Keyspace, db: int, keys: list[bytes]) -> list[set[bytes] | None]:
    return [_set(ks, db, k) for k in keys]


@write_command("sinterstore", keys=(1, -1, 1))
def sinterstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    sets = _sources(ks, db, argv[2:])
    result: set[bytes] = set()
    if sets and all(s is not None for s in sets):
        present = sorted((s for s in sets if s is not None), key=len)
        result = present[0].intersection(*present[1:])
    _store(ks, db, argv[1], result)


@write_command("sunionstore", keys=(1, -1, 1))
def sunionstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    result: set[bytes] = set()
    result.update(*(s for s in _sources(ks, db, argv[2:]) if s is not None))
    _store(ks, db, argv[1], result)


@write_command("sdiffstore", keys=(1, -1, 1))
def sdiffstore(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    first, *others = _sources(ks, db, argv[2:])
    result: set[bytes] = set()
    if first is not None:
        result = first.difference(*(s for s in others if s is not None))
    _store(ks, db, argv[1], result)
