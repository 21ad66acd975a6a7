"""Bitmaps: SETBIT, BITFIELD and BITOP applied to string values (`bytes`).

This module owns the bit-level writes of `bitops.c`; the values are the strings of
`t_string` (a bitmap is a string), so it only ever stores `bytes`. Bit 0 is the most
significant bit of byte 0, as in Redis. Writes past the end zero-pad the string first
(`lookupStringForBitCommand` / `sdsgrowzero`) and keep the key's TTL (the value is changed
in place); BITOP replaces its destination with `setKey` (TTL dropped), or deletes it when
the result is empty.

What arrives (every version, verbatim): `SETBIT`, `BITFIELD` (the whole command, GET
sub-operations included: they change nothing and are skipped here), `BITOP AND|OR|XOR|NOT`
and Redis 8.2's `DIFF|DIFF1|ANDOR|ONE`. `BITFIELD_RO`, `GETBIT`, `BITCOUNT`, `BITPOS` are
reads and are not registered. Since 7.0 a replica does not apply the 512 MB offset limit
to its master (`mustObeyClient`), so neither does this module.

Masters before 6.0.6 (all of 5.x) mishandle signed 64-bit fields (`((uint64_t)-1) << 64`,
fixed by "Fix BITFIELD i64 type handling, see #7417"): a negative i64 reads as -1 and a
wrapped i64 becomes -1 or 0. Their replicas compute the same, so for such a master (the
snapshot's `redis-ver`) this module does too: the dataset must be the master's.
"""

from __future__ import annotations

from replproxy.keyspace import ApplyError, Keyspace, write_command
from replproxy.keyspace.util import parse_int

_U64 = (1 << 64) - 1


def _string(ks: Keyspace, db: int, key: bytes) -> bytes | None:
    value = ks.get(db, key)
    if value is None or type(value) is bytes:
        return value
    raise ApplyError(f"WRONGTYPE: {key!r} holds a {type(value).__name__}, not a string")


def _bit_offset(raw: bytes, bits: int = 0) -> int:
    """`getBitOffsetFromArgument`: a non-negative integer; with `bits`, `#n` means n*bits."""
    if bits and raw[:1] == b"#":
        offset = parse_int(raw[1:]) * bits
    else:
        offset = parse_int(raw)
    if offset < 0:
        raise ApplyError(f"bit offset is not an integer or out of range: {raw!r}")
    return offset


@write_command("setbit")
def setbit(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    offset = _bit_offset(argv[2])
    on = parse_int(argv[3])
    if on & ~1:
        raise ApplyError("bit is not an integer or out of range")
    current = _string(ks, db, key)
    byte = offset >> 3
    mask = 1 << (7 - (offset & 7))
    if current is None or len(current) <= byte:
        old = 0
        head = memoryview(current or b"")
        pad = bytes(byte - len(head))
        tail: bytes | memoryview = b""
    else:
        old = current[byte]
        head = memoryview(current)[:byte]
        pad = b""
        tail = memoryview(current)[byte + 1 :]
    new = (old | mask) if on else (old & ~mask)
    ks.set(db, key, b"".join((head, pad, bytes((new,)), tail)), keepttl=True)


# ---- BITFIELD ----

_WRAP, _SAT, _FAIL = 0, 1, 2
_OVERFLOW = {b"WRAP": _WRAP, b"SAT": _SAT, b"FAIL": _FAIL}


def _bitfield_type(raw: bytes) -> tuple[bool, int]:
    """`getBitfieldTypeFromArgument`: (signed, bits); i1..i64 or u1..u63."""
    sign = raw[:1]
    if sign not in (b"i", b"u"):
        raise ApplyError(f"invalid bitfield type {raw!r}")
    bits = parse_int(raw[1:].split(b"\0", 1)[0])
    signed = sign == b"i"
    if bits < 1 or bits > (64 if signed else 63):
        raise ApplyError(f"invalid bitfield type {raw!r}")
    return signed, bits


def _legacy_i64(ks: Keyspace) -> bool:
    """True when the master is a Redis before 6.0.6 (see the module docstring)."""
    ver = ks.loaded_aux.get(b"redis-ver")
    if ver is None:
        return False
    try:
        return tuple(int(x) for x in ver.split(b".")[:3]) < (6, 0, 6)
    except ValueError:
        return False


def _overflowed(value: int, bits: int, signed: bool, owtype: int) -> int | None:
    """The value to store for the exact result `value`, or None when OVERFLOW FAIL refuses
    it. `checkSignedBitfieldOverflow`/`checkUnsignedBitfieldOverflow` reduce, for every
    input a master accepts, to "the exact sum leaves the type's range"."""
    if signed:
        hi = (1 << (bits - 1)) - 1
        lo = -hi - 1
    else:
        hi = (1 << bits) - 1
        lo = 0
    if lo <= value <= hi:
        return value
    if owtype == _SAT:
        return hi if value > hi else lo
    if owtype == _FAIL:
        return None
    return value  # WRAP: the low `bits` bits are what gets stored


@write_command("bitfield")
def bitfield(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """BITFIELD key [GET t o] [SET t o v] [INCRBY t o incr] [OVERFLOW WRAP|SAT|FAIL] ...

    As `bitfieldGeneric`: every operation is parsed first; if any writes, the string is
    created/zero-padded up to the farthest bit any write (even a failing one) reaches, then
    the writes run in order, each seeing the previous ones.
    """
    key = argv[1]
    owtype = _WRAP
    writes: list[tuple[bool, int, int, bool, int, int]] = []  # incr?, offset, bits, signed, n, ow
    highest = -1
    j, n = 2, len(argv)
    while j < n:
        sub = argv[j].upper()
        if sub == b"OVERFLOW" and j + 1 < n:
            ow = _OVERFLOW.get(argv[j + 1].upper())
            if ow is None:
                raise ApplyError(f"invalid OVERFLOW type {argv[j + 1]!r}")
            owtype = ow
            j += 2
        elif sub == b"GET" and j + 2 < n:
            signed, bits = _bitfield_type(argv[j + 1])
            _bit_offset(argv[j + 2], bits)
            j += 3
        elif sub in (b"SET", b"INCRBY") and j + 3 < n:
            signed, bits = _bitfield_type(argv[j + 1])
            offset = _bit_offset(argv[j + 2], bits)
            writes.append((sub == b"INCRBY", offset, bits, signed, parse_int(argv[j + 3]), owtype))
            highest = max(highest, offset + bits - 1)
            j += 4
        else:
            raise ApplyError(f"BITFIELD syntax error at {argv[j]!r}")
    if not writes:
        return
    legacy = any(w[2] == 64 for w in writes) and _legacy_i64(ks)
    current = _string(ks, db, key)
    buf = bytearray(current or b"")
    need = (highest >> 3) + 1
    if len(buf) < need:
        buf.extend(bytes(need - len(buf)))
    for is_incr, offset, bits, signed, arg, ow in writes:
        first = offset >> 3
        last = (offset + bits - 1) >> 3
        span = (last - first + 1) * 8
        shift = span - (offset & 7) - bits
        field_mask = ((1 << bits) - 1) << shift
        chunk = int.from_bytes(buf[first : last + 1], "big")
        if is_incr:
            old = (chunk & field_mask) >> shift
            if signed and old >> (bits - 1):
                old = -1 if legacy and bits == 64 else old - (1 << bits)
            target = _overflowed(old + arg, bits, signed, ow)
            if (
                legacy
                and bits == 64
                and ow == _WRAP
                and target is not None
                and (not -(1 << 63) <= target < 1 << 63)
            ):
                target = -1 if target & (1 << 63) else 0
        elif signed:
            target = _overflowed(arg, bits, signed, ow)
        else:
            # An unsigned SET stores the 64-bit two's complement of a negative value.
            target = _overflowed(arg & _U64, bits, signed, ow)
        if target is None:
            continue
        chunk = (chunk & ~field_mask) | ((target << shift) & field_mask)
        buf[first : last + 1] = chunk.to_bytes(last - first + 1, "big")
    ks.set(db, key, bytes(buf), keepttl=True)


# ---- BITOP ----


def _or_all(values: list[int]) -> int:
    acc = 0
    for v in values:
        acc |= v
    return acc


@write_command("bitop", keys=(2, 2, 1))
def bitop(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """BITOP op destkey key [key ...]: missing sources are empty strings; shorter ones are
    zero-padded to the longest; an empty result deletes the destination.

    Redis 8.2: DIFF = X & ~(Y1|Y2..), DIFF1 = ~X & (Y1|Y2..), ANDOR = X & (Y1|Y2..),
    ONE = the bits set in exactly one source (`bitops.c`, `BITOP_DIFF` ... `BITOP_ONE`).
    """
    op = argv[1].upper()
    dest = argv[2]
    sources = [_string(ks, db, k) or b"" for k in argv[3:]]
    if not sources:
        raise ApplyError("BITOP without a source key")
    maxlen = max(len(s) for s in sources)
    if op == b"NOT" and len(sources) != 1:
        raise ApplyError("BITOP NOT must be called with a single source key")
    if maxlen == 0:
        ks.delete(db, dest)
        return
    ints = [int.from_bytes(s, "big") << (8 * (maxlen - len(s))) for s in sources]
    full = (1 << (8 * maxlen)) - 1
    first, rest = ints[0], ints[1:]
    if op == b"AND":
        result = first
        for v in rest:
            result &= v
    elif op == b"OR":
        result = _or_all(ints)
    elif op == b"XOR":
        result = 0
        for v in ints:
            result ^= v
    elif op == b"NOT":
        result = first ^ full
    elif op == b"DIFF":
        result = first & ~_or_all(rest)
    elif op == b"DIFF1":
        result = (first ^ full) & _or_all(rest)
    elif op == b"ANDOR":
        result = first & _or_all(rest)
    elif op == b"ONE":
        once = twice = 0
        for v in ints:
            twice |= once & v
            once |= v
        result = once & ~twice
    else:
        raise ApplyError(f"BITOP operation {argv[1]!r} is not supported")
    ks.set(db, dest, result.to_bytes(maxlen, "big"))
