"""The Python halves of the Lua environment: what Lua 5.1 cannot compute exactly.

Redis's Lua libraries are C code; `lua/env.lua`, `lua/cjson.lua` and `lua/cmsgpack.lua`
reimplement them in Lua and call here for the bits a double-only VM cannot do exactly:

- `patch_tailcalls`: rewrites every TAILCALL of a compiled chunk into a CALL (the RETURN
  that always follows returns its results), so calling a Lua stand-in in tail position
  keeps the caller's frame, as calling one of Redis's C functions does;
- `Lrand48`: Redis's `redisLrand48` (rand.c), the PRNG behind `math.random`, one per server
  and shared by the eval and function states, never reseeded between scripts (only
  `math.randomseed` seeds it);
- number texts: `%.14g` (lua_Number -> string), fpconv_dtoa for `redis.call` arguments;
- LuaBitOp's operations on 32-bit words, `struct` (lua_struct.c) on bytes, and the IEEE
  and 64-bit integer codecs of cmsgpack.

Numbers arrive from Lua as `%.17g` texts where the sign of zero or NaN matters (lupa turns
an integral double, -0.0 included, into a Python int). Nothing here touches the Lua state
except `Struct`, which asks the engine's `tonumber`/`tostring` for Lua's own conversions.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import math
import struct
from collections.abc import Callable, Sequence

from replproxy.resp.reply import _fpconv_dtoa

__all__ = [
    "Lrand48",
    "Struct",
    "bit_barg",
    "bit_tohex",
    "bitop",
    "fpconv_arg",
    "lua_number_text",
    "mp_double",
    "mp_float",
    "mp_int64",
    "patch_tailcalls",
    "sha1hex",
]

# ---------------------------------------------------------------- bytecode

_OP_MASK = 0x3F
_OP_CALL = 28
_OP_TAILCALL = 29


@functools.lru_cache(maxsize=32)
def patch_tailcalls(dump: bytes) -> bytes:
    """A Lua 5.1 binary chunk (string.dump) with every OP_TAILCALL made an OP_CALL.

    The compiler emits `TAILCALL A B 0` then `RETURN A 0`; `CALL A B 0` (all results) before
    that same RETURN returns the same values, with the caller's frame kept. Walks the dump
    layout of ldump.c (header, then each prototype: source, lines, counts, code, constants,
    nested prototypes, debug info) and touches only opcodes.

    Remembers its last results: every engine (two per relay, made again by SCRIPT FLUSH)
    compiles the same environment and libraries, whose dumps are the same bytes each time
    (patching them was most of the cost of making an engine)."""
    b = bytearray(dump)
    if b[:5] != b"\x1bLua\x51" or b[6] != 1 or b[7] != 4 or b[9] != 4:
        raise ValueError("not a little-endian Lua 5.1 chunk with 32-bit ints")
    size_t = b[8]
    p = 12

    def rd_int() -> int:
        nonlocal p
        v: int = struct.unpack_from("<i", b, p)[0]
        p += 4
        return v

    def skip_string() -> None:
        nonlocal p
        n = int.from_bytes(b[p : p + size_t], "little")
        p += size_t + n

    def function() -> None:
        nonlocal p
        skip_string()  # source
        p += 8 + 4  # linedefined, lastlinedefined; nups, numparams, is_vararg, maxstacksize
        n = rd_int()
        for off in range(p, p + 4 * n, 4):
            if b[off] & _OP_MASK == _OP_TAILCALL:
                b[off] = (b[off] & ~_OP_MASK) | _OP_CALL
        p += 4 * n
        for _ in range(rd_int()):  # constants
            t = b[p]
            p += 1
            if t == 1:
                p += 1
            elif t == 3:
                p += 8
            elif t == 4:
                skip_string()
        for _ in range(rd_int()):  # nested prototypes
            function()
        n = rd_int()  # lineinfo
        p += 4 * n
        for _ in range(rd_int()):  # locvars
            skip_string()
            p += 8
        for _ in range(rd_int()):  # upvalue names
            skip_string()

    function()
    if p != len(b):
        raise ValueError("unexpected bytes after the main function")
    return bytes(b)


# ---------------------------------------------------------------- numbers


def lua_number_text(x: float) -> bytes:
    """lua_number2str: `%.14g` as glibc prints it (NaN keeps its sign: `-nan`)."""
    if x != x:
        return b"-nan" if math.copysign(1.0, x) < 0 else b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    return b"%.14g" % x


def fpconv_arg(text: bytes) -> bytes:
    """fpconv_dtoa of a finite non-zero number (the `redis.call` argument text of 7.2+)."""
    return _fpconv_dtoa(float(text))


def sha1hex(data: bytes) -> bytes:
    return hashlib.sha1(data).hexdigest().encode()


class Lrand48:
    """redisLrand48 / redisSrand48 (rand.c): the 48-bit LCG x = a*x + c mod 2^48, returning
    its top 31 bits, starting from x = 0x1234ABCD330E."""

    _A = 0x5DEECE66D
    _C = 0xB
    _MASK = (1 << 48) - 1
    _MAX = 2147483647  # REDIS_LRAND48_MAX (INT32_MAX)

    def __init__(self) -> None:
        self.x = 0x1234ABCD330E

    def next(self) -> int:
        self.x = (self._A * self.x + self._C) & self._MASK
        return self.x >> 17

    def seed(self, seedval: int) -> None:
        """SEED(X0, LOW(seedval), HIGH(seedval)) of an int32."""
        s = seedval & 0xFFFFFFFF
        self.x = ((s >> 16) << 32) | ((s & 0xFFFF) << 16) | 0x330E

    def random(self) -> float:
        """The `r` of redis_math_random: (lrand48() % MAX) / MAX."""
        return (self.next() % self._MAX) / self._MAX


# ---------------------------------------------------------------- bit

_U32 = 0xFFFFFFFF


def bit_barg(text: bytes) -> int:
    """barg for numbers outside +-2^51: the low 32 bits of the double n + 2^52 + 2^51."""
    d = float(text) + 6755399441055744.0
    return struct.unpack("<Q", struct.pack("<d", d))[0] & _U32


def bitop(op: bytes, a: int, b: int) -> int:
    """One LuaBitOp operation on unsigned 32-bit words (shift counts already masked)."""
    a = int(a)
    b = int(b)
    if op == b"and":
        return a & b
    if op == b"or":
        return a | b
    if op == b"xor":
        return a ^ b
    if op == b"shl":
        return (a << b) & _U32
    if op == b"shr":
        return a >> b
    if op == b"sar":
        sa = a - (1 << 32) if a & 0x80000000 else a
        return (sa >> b) & _U32
    if op == b"rol":
        return ((a << b) | (a >> (32 - b))) & _U32
    if op == b"ror":
        return ((a << (32 - b)) | (a >> b)) & _U32
    if op == b"bswap":
        return int.from_bytes(a.to_bytes(4, "little"), "big")
    raise ValueError(op)


def bit_tohex(b: int, n: int) -> bytes:
    b = int(b)
    n = int(n)
    digits = "0123456789abcdef"
    if n == -(2**31):
        n += 1
    if n < 0:
        n = -n
        digits = "0123456789ABCDEF"
    n = min(n, 8)
    out = []
    for _ in range(n):
        out.append(digits[b & 15])
        b >>= 4
    return "".join(reversed(out)).encode()


# ---------------------------------------------------------------- cmsgpack


def mp_double(text: bytes) -> bytes:
    """mp_encode_double: float32 (0xca) when the value survives the round trip, else 0xcb."""
    d = float(text)
    f = ctypes.c_float(d).value
    if d == f:
        return b"\xca" + struct.pack(">f", f)
    return b"\xcb" + struct.pack(">d", d)


def mp_float(raw: bytes) -> float:
    """A big-endian IEEE float32 (4 bytes) or float64 (8 bytes), as a double."""
    value: float = struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
    return value


def mp_int64(raw: bytes, signed: bool) -> float:
    """uint64 and int64 alike end as a signed 64-bit integer (lua_pushunsigned is
    lua_pushinteger on 64-bit Linux), then a double."""
    return float(int.from_bytes(raw, "big", signed=True))


# ---------------------------------------------------------------- struct

_MAXINTSIZE = 32
_MAXALIGN = 8  # max(offsetof(struct {char; double}, d), sizeof(int)) on x86-64
_INT_MAX = 2**31 - 1
_LONG_MIN = -(2**63)
_M64 = (1 << 64) - 1


def _to_long(n: float) -> int:
    """(long)n on x86-64: truncation; out of range or NaN gives LONG_MIN."""
    if n != n or not (-(2.0**63) <= n < 2.0**63):
        return _LONG_MIN
    return int(n)


def _to_ulong(n: float) -> int:
    """(unsigned long)n for n >= 0 as gcc compiles it on x86-64 (below 2^63 a signed
    conversion, above it the conversion of n - 2^63 with the top bit flipped)."""
    if n != n:
        return (_LONG_MIN & _M64) ^ (1 << 63)
    if n < 2.0**63:
        return int(n) & _M64
    v = _to_long(n - 2.0**63) & _M64
    return v ^ (1 << 63)


class StructError(Exception):
    def __init__(self, kind: int, *args: object) -> None:
        super().__init__(kind, *args)
        self.reply = (kind, *args)


class Struct:
    """lua_struct.c: pack, unpack and size over a format string.

    Entry points take (kinds, *values) as the Lua stand-in passes them: `kinds` is the
    comma-separated Lua type of each argument, numbers come as `%.17g` texts. They return
    (0, results...), (1, narg, extramsg) for luaL_argerror or (2, msg) for luaL_error."""

    def __init__(self, tonumber: Callable[[bytes], float | None]) -> None:
        # Lua's own string -> number conversion (lua_isnumber / lua_tonumber on a string).
        self.tonumber = tonumber

    # -- arguments, as the luaL_check* helpers see them

    @staticmethod
    def _args(kinds: bytes, values: Sequence[object]) -> list[tuple[str, object]]:
        names = kinds.decode().split(",") if kinds else []
        return list(zip(names, values, strict=True))

    @staticmethod
    def _typeerror(
        narg: int, tname: str, args: list[tuple[str, object]], marker: bool = False
    ) -> StructError:
        """luaL_typerror; `marker`: b_pack pushed a nil right after its arguments."""
        if narg <= len(args):
            got = args[narg - 1][0]
        else:
            got = "nil" if marker and narg == len(args) + 1 else "no value"
        return StructError(1, narg, f"{tname} expected, got {got}".encode())

    def _number(self, narg: int, args: list[tuple[str, object]], marker: bool = False) -> float:
        if narg <= len(args):
            kind, v = args[narg - 1]
            if kind == "number":
                return float(v)  # type: ignore[arg-type]
            if kind == "string":
                n = self.tonumber(v)  # type: ignore[arg-type]
                if n is not None:
                    return float(n)
        raise self._typeerror(narg, "number", args, marker)

    def _string(self, narg: int, args: list[tuple[str, object]], marker: bool = False) -> bytes:
        if narg <= len(args):
            kind, v = args[narg - 1]
            if kind == "string":
                return v  # type: ignore[return-value]
            if kind == "number":
                return lua_number_text(float(v))  # type: ignore[arg-type]
        raise self._typeerror(narg, "string", args, marker)

    # -- the format string

    @staticmethod
    def _getnum(fmt: bytes, i: int, default: int) -> tuple[int, int]:
        if i >= len(fmt) or not (48 <= fmt[i] <= 57):
            return default, i
        a = 0
        while i < len(fmt) and 48 <= fmt[i] <= 57:
            d = fmt[i] - 48
            if a > _INT_MAX // 10 or a * 10 > _INT_MAX - d:
                raise StructError(2, b"integral size overflow")
            a = a * 10 + d
            i += 1
        return a, i

    def _optsize(self, opt: int, fmt: bytes, i: int) -> tuple[int, int]:
        c = chr(opt)
        if c in "Bb":
            return 1, i
        if c in "Hh":
            return 2, i
        if c in "LlT":
            return 8, i
        if c == "f":
            return 4, i
        if c == "d":
            return 8, i
        if c == "x":
            return 1, i
        if c == "c":
            return self._getnum(fmt, i, 1)
        if c in "iI":
            sz, i = self._getnum(fmt, i, 4)
            if sz > _MAXINTSIZE:
                raise StructError(
                    2, b"integral size %d is larger than limit of %d" % (sz, _MAXINTSIZE)
                )
            return sz, i
        return 0, i

    @staticmethod
    def _toalign(length: int, align: int, opt: int, size: int) -> int:
        if size == 0 or opt == ord("c"):
            return 0
        if size > align:
            size = align
        return (size - (length & (size - 1))) & (size - 1)

    def _control(self, opt: int, fmt: bytes, i: int, h: list[int]) -> int:
        c = chr(opt)
        if c == " ":
            return i
        if c == ">":
            h[0] = 0
            return i
        if c == "<":
            h[0] = 1
            return i
        if c == "!":
            a, i = self._getnum(fmt, i, _MAXALIGN)
            if not (a > 0 and a & (a - 1) == 0):
                raise StructError(2, b"alignment %d is not a power of 2" % a)
            h[1] = a
            return i
        raise StructError(1, 1, b"invalid format option '%c'" % opt)

    @staticmethod
    def _cstr(s: bytes) -> bytes:
        z = s.find(b"\0")
        return s if z < 0 else s[:z]

    # -- the three functions

    def pack(self, nargs: int, kinds: bytes, *values: object) -> tuple[object, ...]:
        try:
            args = self._args(kinds, values)
            fmt = self._cstr(self._string(1, args))
            h = [1, 1]  # little endian (native), align 1
            out = bytearray()
            arg = 2
            i = 0
            while i < len(fmt):
                opt = fmt[i]
                i += 1
                size, i = self._optsize(opt, fmt, i)
                toalign = self._toalign(len(out), h[1], opt, size)
                out += b"\0" * toalign
                c = chr(opt)
                if c in "bBhHlLTiI":
                    n = self._number(arg, args, True)
                    arg += 1
                    value = (_to_long(n) & _M64) if n < 0 else _to_ulong(n)
                    raw = bytes((value >> (8 * k)) & 0xFF if k < 8 else 0 for k in range(size))
                    out += raw if h[0] == 1 else raw[::-1]
                elif c == "x":
                    out += b"\0"
                elif c == "f":
                    f = ctypes.c_float(self._number(arg, args, True)).value
                    arg += 1
                    out += struct.pack("<f" if h[0] == 1 else ">f", f)
                elif c == "d":
                    d = self._number(arg, args, True)
                    arg += 1
                    out += struct.pack("<d" if h[0] == 1 else ">d", d)
                elif c in "cs":
                    s = self._string(arg, args, True)
                    arg += 1
                    if size == 0:
                        size = len(s)
                    if len(s) < size:
                        raise StructError(1, arg, b"string too short")
                    out += s[:size]
                    if c == "s":
                        out += b"\0"
                else:
                    i = self._control(opt, fmt, i, h)
            return (0, bytes(out))
        except StructError as e:
            return e.reply

    def unpack(self, nargs: int, kinds: bytes, *values: object) -> tuple[object, ...]:
        try:
            args = self._args(kinds, values)
            fmt = self._cstr(self._string(1, args))
            data = self._string(2, args)
            pos = 1
            if len(args) >= 3 and args[2][0] != "nil":
                pos = _to_long(self._number(3, args)) & _M64  # size_t
            if pos <= 0:
                raise StructError(1, 3, b"offset must be 1 or greater")
            pos -= 1
            h = [1, 1]
            ld = len(data)
            results: list[object] = []
            i = 0
            while i < len(fmt):
                opt = fmt[i]
                i += 1
                size, i = self._optsize(opt, fmt, i)
                pos += self._toalign(pos, h[1], opt, size)
                if not (size <= ld and pos <= ld - size):
                    raise StructError(1, 2, b"data string too short")
                c = chr(opt)
                if c in "bBhHlLTiI":
                    raw = data[pos : pos + size]
                    if h[0] == 1:
                        raw = raw[::-1]
                    v = 0
                    for byte in raw:
                        v = ((v << 8) | byte) & _M64
                    if c.islower():
                        mask = (_M64 << ((size * 8 - 1) & 63)) & _M64
                        if v & mask:
                            v |= mask
                        v = v - (1 << 64) if v >> 63 else v
                    results.append(float(v))
                elif c == "x":
                    pass
                elif c == "f":
                    results.append(
                        struct.unpack("<f" if h[0] == 1 else ">f", data[pos : pos + 4])[0]
                    )
                elif c == "d":
                    results.append(
                        struct.unpack("<d" if h[0] == 1 else ">d", data[pos : pos + 8])[0]
                    )
                elif c == "c":
                    if size == 0:
                        prev = results[-1] if results else None
                        n: float | None = None
                        if isinstance(prev, float):
                            n = prev
                        elif isinstance(prev, bytes):
                            n = self.tonumber(prev)
                        if n is None:
                            raise StructError(2, b"format 'c0' needs a previous size")
                        size = _to_ulong(n) if n >= 0 else _to_long(n) & _M64
                        results.pop()
                        if not (size <= ld and pos <= ld - size):
                            raise StructError(1, 2, b"data string too short")
                    results.append(data[pos : pos + size])
                elif c == "s":
                    e = data.find(b"\0", pos)
                    if e < 0:
                        raise StructError(2, b"unfinished string in data")
                    size = e - pos + 1
                    results.append(data[pos:e])
                else:
                    i = self._control(opt, fmt, i, h)
                pos += size
            results.append(float(pos + 1))
            return (0, *results)
        except StructError as e:
            return e.reply

    def size(self, nargs: int, kinds: bytes, *values: object) -> tuple[object, ...]:
        try:
            args = self._args(kinds, values)
            fmt = self._cstr(self._string(1, args))
            h = [1, 1]
            pos = 0
            i = 0
            while i < len(fmt):
                opt = fmt[i]
                i += 1
                size, i = self._optsize(opt, fmt, i)
                pos += self._toalign(pos, h[1], opt, size)
                if opt == ord("s"):
                    raise StructError(1, 1, b"option 's' has no fixed size")
                if opt == ord("c") and size == 0:
                    raise StructError(1, 1, b"option 'c0' has no fixed size")
                if not (48 <= opt <= 57 or 65 <= opt <= 90 or 97 <= opt <= 122):  # isalnum
                    i = self._control(opt, fmt, i, h)
                pos += size
            return (0, float(pos))
        except StructError as e:
            return e.reply
