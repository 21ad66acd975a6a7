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
reads, never propagated: they are read commands below. Since 7.0 a replica does not apply
the 512 MB offset limit to its master (`mustObeyClient`), so neither do the appliers (the
reads, answering clients, do).

Masters before 6.0.6 (all of 5.x) mishandle signed 64-bit fields (`((uint64_t)-1) << 64`,
fixed by "Fix BITFIELD i64 type handling, see #7417"): a negative i64 reads as -1 and a
wrapped i64 becomes -1 or 0. Their replicas compute the same, so for such a master (the
snapshot's `redis-ver`) this module does too: the dataset must be the master's.

Read commands (`@read_command`), as `bitops.c` answers them:

- `GETBIT key offset`: the offset is checked first (`getBitOffsetFromArgument`: a
  non-negative long long whose byte, offset >> 3, is below `proto-max-bulk-len`, assumed
  the default 512 MB: so offsets up to 2^32 - 1); a missing key or a bit past the end is 0.
- `BITCOUNT key [start end [BYTE|BIT]]`, `BITPOS key bit [start [end [BYTE|BIT]]]`: the
  order of the checks moved between versions. Redis up to 7.2 and Valkey 7.2 look the key
  up first (a missing key answers 0 / -1|0 even with bad arguments; BITCOUNT's "start > end,
  both negative" answers 0 before BYTE|BIT is checked); Redis 7.4+ and Valkey 8 parse
  everything first. Valkey 8 also accepts `BITCOUNT key start` (end = the last byte) and
  checks BYTE|BIT before parsing end. The range arithmetic is the same everywhere.
- `BITFIELD_RO key [GET type offset] ...`: parsed as BITFIELD (`OVERFLOW` accepted, `SET`/
  `INCRBY` parsed in full, value included) and then refused with "BITFIELD_RO only supports
  the GET subcommand" when one is present, before the key's type is checked. `#n` offsets
  are n * bits in 64-bit wrapping arithmetic, as C computes them.
"""

from __future__ import annotations

import re

from replproxy.args import c_string, option_word, parse_int
from replproxy.errors import SYNTAX
from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import (
    PROTO_MAX_BULK_LEN,
    ReadContext,
    ReplyError,
    arg_long,
    lookup_string,
    read_command,
)
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace
from replproxy.resp.request import string2ll

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
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"setbit", db, key)
    ks.mark_raw(db, key)  # `lookupStringForBitCommand`: a raw string, new or unshared


# ---- BITFIELD ----

_WRAP, _SAT, _FAIL = 0, 1, 2
_OVERFLOW = {b"WRAP": _WRAP, b"SAT": _SAT, b"FAIL": _FAIL}


def _bitfield_type(raw: bytes) -> tuple[bool, int]:
    """`getBitfieldTypeFromArgument`: (signed, bits); i1..i64 or u1..u63."""
    try:
        return _read_bitfield_type(raw)
    except ReplyError:
        raise ApplyError(f"invalid bitfield type {raw!r}") from None


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
    legacy = any(w[2] == 64 for w in writes) and ks.dialect.bitfield_legacy_i64
    current = _string(ks, db, key)
    buf = bytearray(current or b"")
    need = (highest >> 3) + 1
    if len(buf) < need:
        buf.extend(bytes(need - len(buf)))
    changes = 0
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
        changes += 1
    ks.set(db, key, bytes(buf), keepttl=True)
    ks.mark_raw(db, key)
    if changes and ks.notify_flags:
        ks.notify(ksn.STRING, b"setbit", db, key)


# ---- BITOP ----


def _or_all(values: list[int]) -> int:
    acc = 0
    for v in values:
        acc |= v
    return acc


@write_command("bitop", keys=(2, 2, 1), roles=lambda argv: ([argv[2]], argv[3:]))
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
        if ks.delete(db, dest, fresh=True) and ks.notify_flags:
            ks.notify(ksn.GENERIC, b"del", db, dest)
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
    value = result.to_bytes(maxlen, "big")
    if ks.notify_flags:
        ks.notify_overwrite(db, dest, value)
    ks.set(db, dest, value, fresh=True)
    ks.mark_raw(db, dest)  # the result is `createObject(OBJ_STRING, sds)`
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"set", db, dest)


# ---- reads ----

_BIT_OFFSET_ERR = b"ERR bit offset is not an integer or out of range"
_BITFIELD_TYPE_ERR = (
    b"ERR Invalid bitfield type. Use something like i16 u8. "
    b"Note that u64 is not supported but i64 is."
)
_ZERO = b":0\r\n"
_NOT_ZERO = re.compile(rb"[^\x00]")
_NOT_FF = re.compile(rb"[^\xff]")


def _is_bit_unit(raw: bytes) -> bool:
    """BYTE (False) or BIT (True) at the end of BITCOUNT / BITPOS, else a syntax error."""
    unit = option_word(raw)
    if unit == b"bit":
        return True
    if unit == b"byte":
        return False
    raise ReplyError(SYNTAX)


def _read_bit_offset(raw: bytes, bits: int = 0) -> int:
    """`getBitOffsetFromArgument` for a client: with `bits`, `#n` means n * bits (wrapping
    at 64 bits as the C multiplication does)."""
    usehash = bits > 0 and raw[:1] == b"#"
    offset = string2ll(raw[1:] if usehash else raw)
    if offset is None:
        raise ReplyError(_BIT_OFFSET_ERR)
    if usehash:
        offset = ((offset * bits + (1 << 63)) & _U64) - (1 << 63)
    if offset < 0 or (offset >> 3) >= PROTO_MAX_BULK_LEN:
        raise ReplyError(_BIT_OFFSET_ERR)
    return offset


def _read_bitfield_type(raw: bytes) -> tuple[bool, int]:
    """`getBitfieldTypeFromArgument`: (signed, bits), with the client-facing error."""
    sign = raw[:1]
    if sign != b"i" and sign != b"u":
        raise ReplyError(_BITFIELD_TYPE_ERR)
    bits = string2ll(c_string(raw[1:]))  # strlen(p+1)
    signed = sign == b"i"
    if bits is None or bits < 1 or bits > (64 if signed else 63):
        raise ReplyError(_BITFIELD_TYPE_ERR)
    return signed, bits


def _byte_range(start: int, end: int, length: int, isbit: bool) -> tuple[int, int, int, int]:
    """The C range arithmetic shared by BITCOUNT and BITPOS: (first byte, last byte,
    first_byte_neg_mask, last_byte_neg_mask); first > last means an empty range."""
    total = length << 3 if isbit else length
    if start < 0:
        start += total
    if end < 0:
        end += total
    start = max(start, 0)
    end = max(end, 0)
    if end >= total:
        end = total - 1
    first_mask = last_mask = 0
    if isbit and start <= end:
        first_mask = ~((1 << (8 - (start & 7))) - 1) & 0xFF
        last_mask = (1 << (7 - (end & 7))) - 1
        start >>= 3
        end >>= 3
    return start, end, first_mask, last_mask


@read_command("getbit")
def getbit(c: ReadContext, argv: list[bytes]) -> bytes:
    offset = _read_bit_offset(argv[2])
    v = lookup_string(c, argv[1])
    byte = offset >> 3
    if v is None or byte >= len(v):
        return _ZERO
    return b":1\r\n" if v[byte] & (0x80 >> (offset & 7)) else _ZERO


@read_command("bitcount")
def bitcount(c: ReadContext, argv: list[bytes]) -> bytes:
    argc = len(argv)
    d = c.ks.dialect
    parse_first, lone_start = d.bit_range_args_first, d.bitcount_lone_start
    isbit = False
    if not parse_first:
        v = lookup_string(c, argv[1])
        if v is None:
            return _ZERO
        if argc == 4 or (argc == 5 and d.bit_unit_option):
            start = arg_long(argv[2])
            end = arg_long(argv[3])
            if start < 0 and end < 0 and start > end:
                return _ZERO
            if argc == 5:
                isbit = _is_bit_unit(argv[4])
        elif argc == 2:
            start, end = 0, len(v) - 1
        else:
            raise ReplyError(SYNTAX)
    elif argc == 4 or argc == 5 or (argc == 3 and lone_start):
        start = arg_long(argv[2])
        if lone_start:  # Valkey: BYTE|BIT before end
            if argc == 5:
                isbit = _is_bit_unit(argv[4])
            end = arg_long(argv[3]) if argc >= 4 else 0
        else:
            end = arg_long(argv[3])
            if argc == 5:
                isbit = _is_bit_unit(argv[4])
        v = lookup_string(c, argv[1])
        if argc == 3:
            end = len(v or b"") - 1
        if start < 0 and end < 0 and start > end:
            return _ZERO
        if v is None:
            return _ZERO
    elif argc == 2:
        v = lookup_string(c, argv[1])
        if v is None:
            return _ZERO
        start, end = 0, len(v) - 1
    else:
        raise ReplyError(SYNTAX)
    if argc > 2:
        start, end, first_mask, last_mask = _byte_range(start, end, len(v), isbit)
    else:
        first_mask = last_mask = 0
    if start > end:
        return _ZERO
    count = int.from_bytes(memoryview(v)[start : end + 1], "little").bit_count()
    if first_mask:
        count -= (v[start] & first_mask).bit_count()
    if last_mask:
        count -= (v[end] & last_mask).bit_count()
    return b":%d\r\n" % count


def _first_bit(buf: bytes, lo: int, hi: int, bit: int) -> int:
    """`redisBitpos(buf + lo, hi - lo, bit)`: the position of the first `bit` from lo*8; when
    there is none, -1 for a 1 and (hi - lo) * 8 for a 0 (the right is taken as zero-padded)."""
    m = (_NOT_ZERO if bit else _NOT_FF).search(buf, lo, hi)
    if m is None:
        return -1 if bit else (hi - lo) << 3
    k = m.start()
    byte = buf[k] if bit else buf[k] ^ 0xFF
    return ((k - lo) << 3) + 8 - byte.bit_length()


@read_command("bitpos")
def bitpos(c: ReadContext, argv: list[bytes]) -> bytes:
    bit = arg_long(argv[2])
    if bit != 0 and bit != 1:
        raise ReplyError(b"ERR The bit argument must be 1 or 0.")
    missing = b":-1\r\n" if bit else _ZERO
    argc = len(argv)
    parse_first = c.ks.dialect.bit_range_args_first
    isbit = end_given = False
    start = end = 0
    if not parse_first:
        v = lookup_string(c, argv[1])
        if v is None:
            return missing
    if argc == 4 or argc == 5 or (argc == 6 and c.ks.dialect.bit_unit_option):
        start = arg_long(argv[3])
        if argc == 6:
            isbit = _is_bit_unit(argv[5])
        if argc >= 5:
            end = arg_long(argv[4])
            end_given = True
        if parse_first:
            v = lookup_string(c, argv[1])
        length = len(v or b"")
        if not end_given:
            end = length - 1  # `(totlen<<3) + 7` with BIT, which needs an explicit end
        start, end, first_mask, last_mask = _byte_range(start, end, length, isbit)
    elif argc == 3:
        if parse_first:
            v = lookup_string(c, argv[1])
        start, end, first_mask, last_mask = 0, len(v or b"") - 1, 0, 0
    else:
        raise ReplyError(SYNTAX)
    if v is None:
        return missing
    if start > end:
        return b":-1\r\n"
    # bitposCommand's three steps: a masked first byte, the whole bytes, a masked last byte.
    nbytes = end - start + 1
    pos = -1
    done = False
    if first_mask:
        tmp = v[start] & ~first_mask & 0xFF if bit else v[start] | first_mask
        if last_mask and nbytes == 1:
            tmp = tmp & ~last_mask & 0xFF if bit else tmp | last_mask
        pos = _first_bit(bytes((tmp,)), 0, 1, bit)
        if nbytes == 1 or (pos != -1 and pos != 8):
            done = True
        else:
            start += 1
            nbytes -= 1
    if not done:
        whole = nbytes - (1 if last_mask else 0)
        if whole > 0:
            pos = _first_bit(v, start, start + whole, bit)
            if nbytes == whole or (pos != -1 and pos != whole << 3):
                done = True
            else:
                start += whole
                nbytes -= whole
        if not done:
            tmp = v[end] & ~last_mask & 0xFF if bit else v[end] | last_mask
            pos = _first_bit(bytes((tmp,)), 0, 1, bit)
    if end_given and bit == 0 and pos == nbytes << 3:
        return b":-1\r\n"
    if pos != -1:
        pos += start << 3
    return b":%d\r\n" % pos


@read_command("bitfield_ro")
def bitfield_ro(c: ReadContext, argv: list[bytes]) -> bytes:
    gets: list[tuple[int, int, bool]] = []  # offset, bits, signed
    readonly = True
    j, argc = 2, len(argv)
    while j < argc:
        left = argc - j - 1
        sub = option_word(argv[j])
        if sub == b"get" and left >= 2:
            is_get = True
        elif (sub == b"set" or sub == b"incrby") and left >= 3:
            is_get = False
        elif sub == b"overflow" and left >= 1:
            if option_word(argv[j + 1]) not in (b"wrap", b"sat", b"fail"):
                raise ReplyError(b"ERR Invalid OVERFLOW type specified")
            j += 2
            continue
        else:
            raise ReplyError(SYNTAX)
        signed, bits = _read_bitfield_type(argv[j + 1])
        offset = _read_bit_offset(argv[j + 2], bits)
        if is_get:
            gets.append((offset, bits, signed))
            j += 3
        else:
            readonly = False
            arg_long(argv[j + 3])
            j += 4
    if not readonly:
        raise ReplyError(b"ERR BITFIELD_RO only supports the GET subcommand")
    v = lookup_string(c, argv[1]) or b""
    out = [b"*%d\r\n" % len(gets)]
    for offset, bits, signed in gets:
        byte = offset >> 3
        # As the C code: up to 9 bytes from the field's first byte, zero-padded.
        window = int.from_bytes(v[byte : byte + 9].ljust(9, b"\0"), "big")
        value = (window >> (72 - (offset & 7) - bits)) & ((1 << bits) - 1)
        if signed and value >> (bits - 1):
            value -= 1 << bits
        out.append(b":%d\r\n" % value)
    return b"".join(out)
