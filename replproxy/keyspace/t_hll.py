"""HyperLogLog: PFADD, PFMERGE, PFCOUNT and PFDEBUG re-executed byte for byte as `hyperloglog.c`.

Owns the HLL string layout and the write appliers that edit it; it touches nothing but the
keys those commands name. A HyperLogLog is a plain string (`bytes` in the keyspace), and a
snapshot, `SET` or `RESTORE` carries its bytes; after that the master only sends the commands,
so the replica must compute the very bytes the master computed or `GET`/`DUMP`/`STRLEN`/
`DEBUG DIGEST` stop matching. The code that decides bytes is the same in Redis 5.0 to 8.x and
Valkey 7.2 to 8.1 (read: 5.0.7, 7.0.15, unstable of late 2024, Valkey unstable of late 2024;
later changes are AVX2/NEON fast paths and histogram accumulators, tested by their authors
to give identical results, and the same tests pass here against Valkey 8.1):

- Header (16 bytes): `HYLL`, encoding (0 dense, 1 sparse), 3 unused bytes, the cached
  cardinality as 8 bytes little endian; bit 7 of the last one set = cache invalid.
- Element -> register: MurmurHash64A(seed 0xadc83b19); index = low 14 bits; count = trailing
  zeros of the remaining 50 bits (with bit 50 forced to 1) + 1, so 1..51.
- Dense: 16384 six-bit registers packed LSB first (12288 bytes).
- Sparse: opcodes ZERO `00xxxxxx` (1..64 zero registers), XZERO `01xxxxxx yyyyyyyy`
  (1..16384), VAL `1vvvvvxx` (1..4 registers of value 1..32). The opcode sequence is NOT
  canonical: `hllSparseSet` splits the opcode covering a register in place and then merges
  equal adjacent VALs only in a window of 5 opcodes from the previous one, so the bytes
  depend on the order of the updates. `_Sparse` repeats those edits exactly, on a list of
  opcodes with their first register (bisect instead of the C linear scan).
- Promotion to dense (`hllSparseToDense`, header copied) when a count exceeds 32 or an
  edit would grow the string past `hll-sparse-max-bytes`. LIMIT: that setting is assumed to
  be the default 3000 (`HLL_SPARSE_MAX_BYTES`); a master configured otherwise diverges once
  a key nears the limit.
- PFADD invalidates the cache when a register changed (or the key was created); PFMERGE
  always does; a single-key PFCOUNT with an invalid cache stores `hllCount` (Ertl's
  estimator, 5.0+) and that is why it is propagated; a multi-key PFCOUNT never writes.
- PFMERGE: the registers' maximum over all keys (the destination included); a dense input
  makes the destination dense, otherwise the maximum is applied to the (sparse) destination
  register by register in ascending order, exactly as `hllSparseSet` calls.
- PFDEBUG GETREG/TODENSE convert a sparse value to dense and are propagated for it.

`pfcount` and `pfdebug` are in the write table because the master propagates them when they
wrote; to a client of the relay PFCOUNT is a read command.

The read (`@read_command("pfcount")`, what a client of the relay gets):

- One key: the cached cardinality when the cache is valid, else `hllCount` computed and
  stored in the relay's copy, exactly as `pfcountCommand` does on a real replica (it has no
  replica check: the replica's bytes then differ from the master's until the master's own
  PFCOUNT or PFADD arrives, and its DEBUG DIGEST with them). The relay answers as that
  replica, so its copy changes the same way (watchers of the key are told, as
  `signalModifiedKey` does).
- Several keys: the count of the registers' maximum (`hllMerge` into a raw HLL), never
  stored anywhere, on the master either.
- Errors, in key order: a non-string is WRONGTYPE; a string that is not an HLL (`HYLL`
  magic, encoding <= 1, a dense one exactly 12304 bytes) is "WRONGTYPE Key is not a valid
  HyperLogLog string value."; a sparse HLL whose opcodes do not cover exactly 16384
  registers is "INVALIDOBJ Corrupted HLL object detected", for one key as for several. The
  walk is the C one: to the end of the string, a cut XZERO at the end reading the string's
  NUL terminator as its second byte (so such a value is valid when that completes 16384).
  Released 7.0.15 source lets `hllMerge` stop silently at a VAL past the last register; the
  builds tested (Debian's 7.0.15, Valkey 8.1.8, both carrying the CVE-2025-32023 fix) refuse
  it like any other overrun, and so does this. A valid cache is returned without looking
  at the registers at all (a corrupted value with a valid cache counts on one key).
"""

from __future__ import annotations

import math
import re
import struct
from bisect import bisect_right
from collections import Counter
from itertools import accumulate

from replproxy.keyspace import notify as ksn
from replproxy.keyspace.reads import WRONGTYPE, ReadContext, ReplyError, lookup, read_command
from replproxy.keyspace.registry import ApplyError, write_command
from replproxy.keyspace.store import Keyspace

HLL_P = 14
HLL_Q = 64 - HLL_P
HLL_REGISTERS = 1 << HLL_P
HLL_HDR_SIZE = 16
HLL_DENSE_SIZE = HLL_HDR_SIZE + HLL_REGISTERS * 6 // 8  # 12304
HLL_DENSE = 0
HLL_SPARSE = 1
HLL_SPARSE_VAL_MAX_VALUE = 32
HLL_SPARSE_MAX_BYTES = 3000  # hll-sparse-max-bytes default (see the LIMIT above)
HLL_ALPHA_INF = 0.721347520444481703680  # 0.5 / ln(2)

_M64 = (1 << 64) - 1
_MURMUR_M = 0xC6A4A7935BD1E995
_SEED = 0xADC83B19
_CARD_INVALID = 0x80  # in header byte 15 (card[7])

# A new key: header + XZERO:16384 with the cache valid and 0 (`createHLLObject`).
EMPTY_SPARSE = b"HYLL\x01\x00\x00\x00" + bytes(8) + b"\x7f\xff"


# ---- element -> (register, count) ----


def murmurhash64a(data: bytes, seed: int = _SEED) -> int:
    """MurmurHash2, 64-bit, as modified for Redis (endian neutral)."""
    m = _MURMUR_M
    n = len(data)
    h = (seed ^ (n * m)) & _M64
    nblocks = n >> 3
    if nblocks:
        for k in struct.unpack_from(f"<{nblocks}Q", data):
            k = (k * m) & _M64
            k ^= k >> 47
            h = ((h ^ ((k * m) & _M64)) * m) & _M64
    if n & 7:
        h = ((h ^ int.from_bytes(data[n & ~7 :], "little")) * m) & _M64
    h ^= h >> 47
    h = (h * m) & _M64
    return h ^ (h >> 47)


def pattern(element: bytes) -> tuple[int, int]:
    """`hllPatLen`: (register index, count of the `000..1` pattern)."""
    h = murmurhash64a(element)
    rest = (h >> HLL_P) | (1 << HLL_Q)
    return h & (HLL_REGISTERS - 1), (rest & -rest).bit_length()


# ---- dense registers ----

_T_AND63 = bytes(b & 63 for b in range(256))
_T_SHR6 = bytes(b >> 6 for b in range(256))
_T_SHR4 = bytes(b >> 4 for b in range(256))
_T_SHR2 = bytes(b >> 2 for b in range(256))
_T_AND15_SHL2 = bytes((b & 15) << 2 for b in range(256))
_T_AND3_SHL4 = bytes((b & 3) << 4 for b in range(256))
_T_SHL6 = bytes((b << 6) & 0xFF for b in range(256))
_T_AND15_SHL4 = bytes(((b & 15) << 4) for b in range(256))
_T_SHL2 = bytes((b << 2) & 0xFF for b in range(256))


def _or(a: bytes | bytearray, b: bytes | bytearray) -> bytes:
    """Bytewise OR of two equal-length strings (one big-integer OR, at C speed)."""
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(len(a), "little")


def dense_registers(value: bytes) -> bytes:
    """The 16384 registers of a dense HLL, one byte each (3 packed bytes = 4 registers)."""
    packed = value[HLL_HDR_SIZE:HLL_DENSE_SIZE]
    b0, b1, b2 = packed[0::3], packed[1::3], packed[2::3]
    regs = bytearray(HLL_REGISTERS)
    regs[0::4] = b0.translate(_T_AND63)
    regs[1::4] = _or(b0.translate(_T_SHR6), b1.translate(_T_AND15_SHL2))
    regs[2::4] = _or(b1.translate(_T_SHR4), b2.translate(_T_AND3_SHL4))
    regs[3::4] = b2.translate(_T_SHR2)
    return bytes(regs)


def pack_dense(regs: bytes | bytearray) -> bytes:
    """The 12288 packed bytes of 16384 registers (each < 64), as HLL_DENSE_SET_REGISTER."""
    r0, r1, r2, r3 = regs[0::4], regs[1::4], regs[2::4], regs[3::4]
    out = bytearray(HLL_DENSE_SIZE - HLL_HDR_SIZE)
    out[0::3] = _or(bytes(r0), r1.translate(_T_SHL6))
    out[1::3] = _or(r1.translate(_T_SHR2), r2.translate(_T_AND15_SHL4))
    out[2::3] = _or(r2.translate(_T_SHR4), r3.translate(_T_SHL2))
    return bytes(out)


def _dense_add(buf: bytearray, pairs: list[tuple[int, int]]) -> int:
    """`hllDenseSet` for each (index, count) on a whole dense value; returns the updates."""
    updated = 0
    for index, count in pairs:
        pos = HLL_HDR_SIZE * 8 + index * 6
        byte = pos >> 3
        fb = pos & 7
        if fb <= 2:  # the register lies in one byte (the C code touches the next harmlessly)
            old = (buf[byte] >> fb) & 63
            if count > old:
                buf[byte] = (buf[byte] & ~(63 << fb)) | (count << fb)
                updated += 1
        else:
            fb8 = 8 - fb
            old = ((buf[byte] >> fb) | (buf[byte + 1] << fb8)) & 63
            if count > old:
                buf[byte] = (buf[byte] & ~(63 << fb) & 0xFF) | ((count << fb) & 0xFF)
                buf[byte + 1] = (buf[byte + 1] & ~(63 >> fb8)) | (count >> fb8)
                updated += 1
    return updated


_LANES_HIGH = int.from_bytes(b"\x80" * HLL_REGISTERS, "little")


def _max_registers(a: bytes, b: bytes) -> bytes:
    """Bytewise max of two register arrays (values < 128), SWAR on big integers."""
    x = int.from_bytes(a, "little")
    y = int.from_bytes(b, "little")
    ge = (((x | _LANES_HIGH) - y) & _LANES_HIGH) >> 7  # 1 in each lane where a >= b
    mask = (ge << 8) - ge  # 0xff in those lanes
    return ((x & mask) | (y & ~mask)).to_bytes(HLL_REGISTERS, "little")


# ---- sparse opcodes ----

# Every opcode as the bytes it is, with the registers it covers.
_OPCODE = re.compile(rb"[\x40-\x7f][\x00-\xff]|[\x00-\x3f\x80-\xff]")
_SPAN: dict[bytes, int] = {}
for _b in range(0x40):
    _SPAN[bytes((_b,))] = _b + 1
for _b in range(0x80, 0x100):
    _SPAN[bytes((_b,))] = (_b & 3) + 1
for _l in range(HLL_REGISTERS):
    _SPAN[bytes((0x40 | (_l >> 8), _l & 0xFF))] = _l + 1
# _VAL[value][len]: the VAL opcode; _ZERO[len]: the shortest zero run opcode as C writes it.
_VAL = [[b""] * 5] + [
    [b""] + [bytes((0x80 | (v - 1) << 2 | (n - 1),)) for n in range(1, 5)]
    for v in range(1, HLL_SPARSE_VAL_MAX_VALUE + 1)
]


def _zero_op(n: int) -> bytes:
    if n > 64:  # HLL_SPARSE_ZERO_MAX_LEN
        n -= 1
        return bytes((0x40 | (n >> 8), n & 0xFF))
    return bytes((n - 1,))


class _Promote(Exception):
    """`hllSparseSet` jumped to `promote`: the value must become dense."""


class _Sparse:
    """A sparse HLL's opcodes with the first register of each, edited as `hllSparseSet`."""

    __slots__ = ("max_bytes", "ops", "size", "starts")

    def __init__(self, value: bytes, max_bytes: int) -> None:
        ops = _OPCODE.findall(value, HLL_HDR_SIZE)
        starts = list(accumulate(map(_SPAN.__getitem__, ops), initial=0))
        if starts.pop() != HLL_REGISTERS or sum(map(len, ops)) != len(value) - HLL_HDR_SIZE:
            raise ApplyError("corrupted sparse HyperLogLog")
        self.ops: list[bytes] = ops
        self.starts: list[int] = starts
        self.size = len(value)  # sdslen, header included
        self.max_bytes = max_bytes

    def set(self, index: int, count: int) -> int:
        """1 if the register grew, 0 if not; raises `_Promote` as the C code goes dense."""
        if count > HLL_SPARSE_VAL_MAX_VALUE:
            raise _Promote
        ops, starts = self.ops, self.starts
        i = bisect_right(starts, index) - 1
        op = ops[i]
        b = op[0]
        first = starts[i]
        if b & 0x80:  # VAL
            old = ((b >> 2) & 0x1F) + 1
            if old >= count:
                return 0
            runlen = (b & 3) + 1
            if runlen == 1:
                ops[i] = _VAL[count][1]
                self._merge(i)
                return 1
            last = first + runlen - 1
            seq: list[bytes] = []
            seqstarts: list[int] = []
            if index != first:
                seq.append(_VAL[old][index - first])
                seqstarts.append(first)
            seq.append(_VAL[count][1])
            seqstarts.append(index)
            if index != last:
                seq.append(_VAL[old][last - index])
                seqstarts.append(index + 1)
        else:
            if b < 0x40:  # ZERO
                runlen = b + 1
                if runlen == 1:
                    ops[i] = _VAL[count][1]
                    self._merge(i)
                    return 1
            else:  # XZERO
                runlen = (((b & 0x3F) << 8) | op[1]) + 1
            last = first + runlen - 1
            seq = []
            seqstarts = []
            if index != first:
                seq.append(_zero_op(index - first))
                seqstarts.append(first)
            seq.append(_VAL[count][1])
            seqstarts.append(index)
            if index != last:
                seq.append(_zero_op(last - index))
                seqstarts.append(index + 1)
        delta = sum(map(len, seq)) - len(op)
        if delta > 0 and self.size + delta > self.max_bytes:
            raise _Promote
        ops[i : i + 1] = seq
        starts[i : i + 1] = seqstarts
        self.size += delta
        self._merge(i)
        return 1

    def _merge(self, i: int) -> None:
        """Step 4: merge equal adjacent VALs, scanning 5 opcodes from the previous one."""
        ops = self.ops
        n = len(ops)
        j = i - 1 if i > 0 else 0
        scan = 5
        while j < n and scan:
            scan -= 1
            b = ops[j][0]
            if b & 0x80 and j + 1 < n:
                b2 = ops[j + 1][0]
                if b2 & 0x80 and (b >> 2) == (b2 >> 2):
                    length = (b & 3) + (b2 & 3) + 2
                    if length <= 4:
                        ops[j] = _VAL[((b >> 2) & 0x1F) + 1][length]
                        del ops[j + 1]
                        del self.starts[j + 1]
                        n -= 1
                        self.size -= 1
                        continue
            j += 1

    def registers(self) -> bytearray:
        regs = bytearray(HLL_REGISTERS)
        for op, start in zip(self.ops, self.starts):
            b = op[0]
            if b & 0x80:
                n = (b & 3) + 1
                regs[start : start + n] = bytes((((b >> 2) & 0x1F) + 1,)) * n
        return regs

    def histogram(self) -> list[int]:
        hist = [0] * 64
        for op, k in Counter(self.ops).items():
            b = op[0]
            if b & 0x80:
                hist[((b >> 2) & 0x1F) + 1] += ((b & 3) + 1) * k
            else:
                hist[0] += _SPAN[op] * k
        return hist

    def to_bytes(self, header: bytes) -> bytes:
        return header + b"".join(self.ops)


def _peek_sparse(value: bytes) -> _Sparse:
    """The parsed opcodes of a sparse value, for reading only."""
    entry = _SPARSE_CACHE.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    return _Sparse(value, HLL_SPARSE_MAX_BYTES)


def sparse_registers(value: bytes) -> bytes:
    return bytes(_peek_sparse(value).registers())


def registers(value: bytes) -> bytes:
    """The 16384 registers of an HLL of either encoding, one byte each."""
    if value[4] == HLL_DENSE:
        return dense_registers(value)
    return sparse_registers(value)


def _dense_header(header: bytes) -> bytes:
    """`hllSparseToDense` copies the whole header, then sets the encoding."""
    return header[:4] + b"\x00" + header[5:HLL_HDR_SIZE]


def _set_many(value: bytes, pairs: list[tuple[int, int]], max_bytes: int) -> tuple[bytes, int]:
    """Apply `hllDenseSet`/`hllSparseSet` for each (index, count) in order, promoting a sparse
    value when the C code would; returns the new bytes, cache invalidated, and the number of
    registers updated (the caller stores nothing when that is 0, as PFADD then changes
    nothing)."""
    header = _invalidate(value[:HLL_HDR_SIZE])
    if value[4] == HLL_DENSE:
        buf = bytearray(value)
        updated = _dense_add(buf, pairs)
        buf[:HLL_HDR_SIZE] = header
        return bytes(buf), updated
    sparse = _take_sparse(value, max_bytes)
    updated = 0
    for n, (index, count) in enumerate(pairs):
        try:
            updated += sparse.set(index, count)
        except _Promote:
            # hllSparseToDense copies the current header: only card[7] bit 7 can have
            # moved since `value`, and it is set now anyway.
            regs = sparse.registers()
            for idx, cnt in pairs[n:]:
                if cnt > regs[idx]:
                    regs[idx] = cnt
            return _dense_header(header) + pack_dense(regs), updated + 1
    return _keep_sparse(sparse.to_bytes(header), sparse), updated


# Parsed sparse values by identity of the bytes they were parsed from (or produced), so a
# stream of PFADDs to a few keys does not re-parse ~1000 opcodes per command. An entry is
# taken OUT before its state is edited, so a state never outlives the bytes it describes
# (a bytes object shared by two keys is simply parsed again for the second).
_SPARSE_CACHE: dict[int, tuple[bytes, _Sparse]] = {}
_SPARSE_CACHE_SIZE = 32


def _take_sparse(value: bytes, max_bytes: int) -> _Sparse:
    entry = _SPARSE_CACHE.pop(id(value), None)
    if entry is not None and entry[0] is value:
        entry[1].max_bytes = max_bytes
        return entry[1]
    return _Sparse(value, max_bytes)


def _keep_sparse(value: bytes, sparse: _Sparse) -> bytes:
    if len(_SPARSE_CACHE) >= _SPARSE_CACHE_SIZE:
        del _SPARSE_CACHE[next(iter(_SPARSE_CACHE))]
    _SPARSE_CACHE[id(value)] = (value, sparse)
    return value


# ---- the estimator (hllCount) ----


def _sigma(x: float) -> float:
    if x == 1.0:
        return math.inf
    y = 1.0
    z = x
    while True:
        x *= x
        z_prev = z
        z += x * y
        y += y
        if z_prev == z:
            return z


def _tau(x: float) -> float:
    if x == 0.0 or x == 1.0:
        return 0.0
    y = 1.0
    z = 1 - x
    while True:
        x = math.sqrt(x)
        z_prev = z
        y *= 0.5
        z -= math.pow(1 - x, 2) * y
        if z_prev == z:
            return z / 3


def count_from_histogram(hist: list[int]) -> int:
    """`hllCount` after the histogram: Ertl's estimator, in the same double operations."""
    m = float(HLL_REGISTERS)
    z = m * _tau((m - hist[HLL_Q + 1]) / m)
    for j in range(HLL_Q, 0, -1):
        z += hist[j]
        z *= 0.5
    z += m * _sigma(hist[0] / m)
    e = HLL_ALPHA_INF * m * m / z
    f = math.floor(e)  # llroundl: half away from zero (e >= 0)
    return int(f) + (1 if e - f >= 0.5 else 0)


_BYTE = [bytes((v,)) for v in range(64)]


def _dense_histogram(regs: bytes) -> list[int]:
    hist = [0] * 64
    left = HLL_REGISTERS
    for v in range(64):
        b = _BYTE[v]
        if b in regs:  # memchr: absent values cost little; present ones are counted
            n = regs.count(b)
            hist[v] = n
            left -= n
            if not left:
                break
    return hist


def histogram(value: bytes) -> list[int]:
    """The register histogram `hllCount` starts from (`reghisto`)."""
    if value[4] == HLL_DENSE:
        return _dense_histogram(dense_registers(value))
    return _peek_sparse(value).histogram()


def hll_count(value: bytes) -> int:
    """The cardinality PFCOUNT computes for one HLL (ignoring its cache)."""
    return count_from_histogram(histogram(value))


def cached_count(value: bytes) -> int | None:
    """The cached cardinality, or None when the cache is invalid."""
    if value[15] & _CARD_INVALID:
        return None
    return int.from_bytes(value[8:16], "little")


# ---- the appliers ----


def is_hll(value: object) -> bool:
    """`isHLLObjectOrReply` without the reply."""
    return (
        isinstance(value, bytes)
        and len(value) >= HLL_HDR_SIZE
        and value[:4] == b"HYLL"
        and value[4] <= HLL_SPARSE
        and (value[4] != HLL_DENSE or len(value) == HLL_DENSE_SIZE)
    )


def _lookup(ks: Keyspace, db: int, key: bytes) -> bytes | None:
    value = ks.get(db, key)
    if value is None:
        return None
    if not is_hll(value):
        raise ApplyError(f"{key!r} is not a valid HyperLogLog string value")
    return value  # type: ignore[return-value]


def _invalidate(value: bytes) -> bytes:
    if value[15] & _CARD_INVALID:
        return value
    return value[:15] + bytes((value[15] | _CARD_INVALID,)) + value[16:]


def _sparse_max_bytes(ks: Keyspace) -> int:
    """The master's hll-sparse-max-bytes: the default unless the keyspace was told otherwise
    (a hook for a relay that learns the master's configuration; none does yet)."""
    return int(getattr(ks, "hll_sparse_max_bytes", HLL_SPARSE_MAX_BYTES))


@write_command("pfadd")
def pfadd(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    key = argv[1]
    value = _lookup(ks, db, key)
    created = value is None
    if value is None:
        value = EMPTY_SPARSE
    new, updated = _set_many(value, [pattern(e) for e in argv[2:]], _sparse_max_bytes(ks))
    if updated or created:
        ks.set(db, key, new, keepttl=True)
        ks.mark_raw(db, key)  # HLLs are raw strings, written in place
        if ks.notify_flags:
            ks.notify(ksn.STRING, b"pfadd", db, key)


@write_command("pfcount", keys=(1, -1, 1))
def pfcount(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """Only a single-key PFCOUNT that refreshed the cache arrives; nothing else writes."""
    if len(argv) != 2:
        return  # the union of several keys is computed, never stored
    key = argv[1]
    value = _lookup(ks, db, key)
    if value is None or not value[15] & _CARD_INVALID:
        return
    if value[4] == HLL_DENSE:
        card = count_from_histogram(_dense_histogram(dense_registers(value)))
        ks.set(db, key, value[:8] + card.to_bytes(8, "little") + value[16:], keepttl=True)
        ks.mark_raw(db, key)  # HLLs are raw strings, written in place
        return
    try:
        sparse = _take_sparse(value, _sparse_max_bytes(ks))
    except ApplyError:
        # Opcodes the strict parser refuses but `hllSparseRegHisto` counts (a SET value
        # ending in a cut XZERO): the master stored a count, so store the same.
        try:
            card = _count_one(value)
        except ReplyError:
            raise ApplyError(f"{key!r} is a corrupted sparse HyperLogLog") from None
        ks.set(db, key, value[:8] + card.to_bytes(8, "little") + value[16:], keepttl=True)
        ks.mark_raw(db, key)  # HLLs are raw strings, written in place
        return
    card = count_from_histogram(sparse.histogram())
    new = value[:8] + card.to_bytes(8, "little") + value[16:]
    ks.set(db, key, _keep_sparse(new, sparse), keepttl=True)
    ks.mark_raw(db, key)  # HLLs are raw strings, written in place


@write_command("pfmerge", keys=(1, -1, 1), roles=lambda argv: ([argv[1]], argv[2:]))
def pfmerge(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    maxregs: bytes | None = None
    use_dense = False
    for key in argv[1:]:
        value = _lookup(ks, db, key)
        if value is None:
            continue
        if value[4] == HLL_DENSE:
            use_dense = True
        try:
            regs = _merge_registers(value, ks.dialect.hll_merge_refuses_overflow)
        except ReplyError:
            raise ApplyError(f"{key!r} is a corrupted sparse HyperLogLog") from None
        maxregs = regs if maxregs is None else _max_registers(maxregs, regs)
    dest = argv[1]
    value = ks.get(db, dest)  # type: ignore[assignment]
    if value is None:
        value = EMPTY_SPARSE
    if use_dense:
        # Every register ends at the maximum (the destination is one of the inputs).
        assert maxregs is not None
        new = _dense_header(_invalidate(value[:HLL_HDR_SIZE])) + pack_dense(maxregs)
    else:
        pairs = (
            []
            if maxregs is None
            else [(m.start(), m.group()[0]) for m in _NONZERO.finditer(maxregs)]
        )
        new, _ = _set_many(value, pairs, _sparse_max_bytes(ks))
    ks.set(db, dest, new, keepttl=True)
    ks.mark_raw(db, dest)  # HLLs are raw strings, written in place
    # `pfmergeCommand` reports the merge as a PFADD (a mass-add of elements).
    if ks.notify_flags:
        ks.notify(ksn.STRING, b"pfadd", db, dest)


_NONZERO = re.compile(rb"[^\x00]")


@write_command("pfdebug", keys=(2, 2, 1))
def pfdebug(ks: Keyspace, db: int, argv: list[bytes]) -> None:
    """GETREG and TODENSE convert a sparse HLL to dense (and are then propagated)."""
    if len(argv) != 3 or argv[1].lower() not in (b"getreg", b"todense"):
        return
    value = _lookup(ks, db, argv[2])
    if value is None or value[4] == HLL_DENSE:
        return
    regs = sparse_registers(value)
    ks.set(db, argv[2], _dense_header(value[:HLL_HDR_SIZE]) + pack_dense(regs), keepttl=True)
    ks.mark_raw(db, argv[2])  # HLLs are raw strings, written in place


# ---- the read ----

_NOT_HLL = b"WRONGTYPE Key is not a valid HyperLogLog string value."
_CORRUPT = b"INVALIDOBJ Corrupted HLL object detected"


def _read_hll(c: ReadContext, key: bytes) -> bytes | None:
    """`lookupKeyRead` + `isHLLObjectOrReply`."""
    v = lookup(c, key)
    if v is None:
        return None
    if type(v) is not bytes:
        raise ReplyError(WRONGTYPE)
    if not is_hll(v):
        raise ReplyError(_NOT_HLL)
    return v


def _sparse_ops_exact(value: bytes) -> list[tuple[int, int]]:
    """(run length, register value) of each opcode as the C loops walk them: to the end of
    the string, a last cut XZERO reading the NUL terminator as its second byte. Only for
    values the strict parser (`_Sparse`) refused."""
    data = value + b"\0"
    end = len(value)
    ops = []
    p = HLL_HDR_SIZE
    while p < end:
        b = data[p]
        if b < 0x40:  # ZERO
            ops.append((b + 1, 0))
            p += 1
        elif b < 0x80:  # XZERO
            ops.append((((b & 0x3F) << 8 | data[p + 1]) + 1, 0))
            p += 2
        else:  # VAL
            ops.append(((b & 3) + 1, ((b >> 2) & 0x1F) + 1))
            p += 1
    return ops


def _count_one(value: bytes) -> int:
    """`hllCount` of one stored HLL, or INVALIDOBJ as `hllSparseRegHisto` decides it."""
    try:
        return hll_count(value)
    except ApplyError:  # a sparse value the strict parser refused
        pass
    hist = [0] * 64
    total = 0
    for run, val in _sparse_ops_exact(value):
        total += run
        hist[val] += run
    if total != HLL_REGISTERS:
        raise ReplyError(_CORRUPT)
    return count_from_histogram(hist)


def _merge_registers(value: bytes, refuses_overflow: bool = True) -> bytes:
    """The registers `hllMerge` takes the maximum with, or INVALIDOBJ. Unpatched
    (`MasterDialect.hll_merge_refuses_overflow` false) the walk adds ZERO runs unchecked
    and stops at a VAL run past the last register."""
    try:
        return registers(value)
    except ApplyError:  # a sparse value the strict parser refused
        pass
    regs = bytearray(HLL_REGISTERS)
    i = 0
    for run, val in _sparse_ops_exact(value):
        if i + run > HLL_REGISTERS:
            if refuses_overflow:
                raise ReplyError(_CORRUPT)
            if val:
                break
            i += run
            continue
        if val:
            regs[i : i + run] = bytes((val,)) * run
        i += run
    if i != HLL_REGISTERS:
        raise ReplyError(_CORRUPT)
    return bytes(regs)


@read_command("pfcount")
def pfcount_read(c: ReadContext, argv: list[bytes]) -> bytes:
    if len(argv) == 2:
        if c.ks.dialect.pfcount_sees_expired_keys:
            c = ReadContext(c.ks, db=c.db, proto=c.proto, now=0)  # sees every key
        value = _read_hll(c, argv[1])
        if value is None:
            return b":0\r\n"
        # `dbUnshareStringValue` comes before the count: the value is raw even when the
        # count then finds it corrupted.
        c.ks.mark_raw(c.db, argv[1])
        card = cached_count(value)
        if card is None:
            card = _count_one(value)
            # A replica's PFCOUNT stores the count in its own copy, as the master's does
            # (see the module docstring): the relay answers as that replica.
            pfcount(c.ks, c.db, [b"pfcount", argv[1]])
        return b":%d\r\n" % card
    maxregs: bytes | None = None
    for key in argv[1:]:
        value = _read_hll(c, key)
        if value is None:
            continue
        regs = _merge_registers(value, c.ks.dialect.hll_merge_refuses_overflow)
        maxregs = regs if maxregs is None else _max_registers(maxregs, regs)
    if maxregs is None:
        maxregs = bytes(HLL_REGISTERS)
    return b":%d\r\n" % count_from_histogram(_dense_histogram(maxregs))
