"""Replies: Python values to RESP2 / RESP3 bytes, byte-exact with Redis's `addReply*` family.

This module owns reply encoding and the text of numbers in replies. It never decides WHAT to
reply (the command modules do) and never parses anything. No I/O.

Hot paths call the small typed functions (`bulk`, `integer`, `bulk_array`, `double`...); `encode`
walks nested Python values for tests and rare commands. `proto` is the connection's protocol
(2 or 3, set by HELLO). Shapes (`networking.c`, 6.0 - 8.0 and Valkey 8 alike):

| reply          | RESP2                        | RESP3                       |
| -------------- | ---------------------------- | --------------------------- |
| null           | `$-1`                        | `_`                         |
| null array     | `*-1`                        | `_`                         |
| map of n pairs | `*2n` + flat k, v            | `%n`                        |
| set            | `*n`                         | `~n`                        |
| double         | bulk string of its text      | `,<text>`                   |
| boolean        | `:1` / `:0`                  | `#t` / `#f`                 |
| big number     | bulk string                  | `(<digits>`                 |
| verbatim       | bulk string, text only       | `=<len+4>` + `txt:` + text  |
| push           | `*n`                         | `>n`                        |

Double text (`addReplyDouble`), by the master's version - see `MasterDialect.double_style`:

- "g17" (Redis <= 7.0): `%.17g` (glibc; Python's `%` formatting matches it digit for digit);
  `inf`, `-inf`; `-0`; NaN prints `nan`, or `-nan` when its sign bit is set (glibc).
- "shortest" (Redis >= 7.2, Valkey): `d2string`: `nan`, `inf`, `-inf`, `0`, `-0`; an integral
  value with |x| <= 2^62 as a plain integer; anything else through `fpconv_dtoa`, a Grisu2
  port. Grisu2 is not always the shortest round-trip form (about 1 double in 1000 gets 17
  digits where 16 suffice, or another last digit), and its layout is its own: plain integer
  digits when the exponent is < ndigits + 7 (`123456789012345680000`), plain decimals when
  -7 < K or exp < 4, else `d.ddde+X` with the fewest exponent digits (`1e-7`, `1e+21`,
  `-2.6511482647000003e+5`). So this module ports Grisu2 exactly rather than using `repr`.

Long doubles (`ld2string(..., LD_STR_HUMAN)`: INCRBYFLOAT, HINCRBYFLOAT, GEOPOS): `%.17Lf`, then
trailing zeros and a trailing `.` removed, `-0` printed `0`. `format_long_double` takes the exact
value; `round_long_double` rounds an exact value to the x87 80-bit format Redis computes in.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, NamedTuple, cast

import hiredis

from replproxy.speedups import c_function

__all__ = [
    "CRLF",
    "EMPTY_ARRAY",
    "NULL_ARRAY",
    "OK",
    "PONG",
    "BigNumber",
    "DoubleStyle",
    "ErrorReply",
    "Push",
    "RespSet",
    "SimpleString",
    "Verbatim",
    "array",
    "array_len",
    "big_number",
    "boolean",
    "bulk",
    "bulk_array",
    "bulk_map",
    "bulk_set",
    "double",
    "encode",
    "error",
    "format_double",
    "format_long_double",
    "integer",
    "map_len",
    "null",
    "null_array",
    "push_len",
    "round_long_double",
    "set_len",
    "simple_string",
    "verbatim",
]

DoubleStyle = Literal["g17", "shortest"]

CRLF = b"\r\n"
OK = b"+OK\r\n"
PONG = b"+PONG\r\n"
EMPTY_ARRAY = b"*0\r\n"
_NULL2 = b"$-1\r\n"
_NULL_ARRAY2 = b"*-1\r\n"
_NULL3 = b"_\r\n"

# hiredis's stub types pack_command as taking a 1-tuple
_pack_command = cast(Callable[[tuple[Any, ...]], bytes], hiredis.pack_command)


# Which C module of the RESP accelerators holds each function.
_C_MODULES = {
    "bulks": "replproxy.resp._replies",
    "scored": "replproxy.resp._replies",
    "string_reads": "replproxy.resp._lanes",
    "split_commands": "replproxy.resp._lanes",
}


def c_speedup(name: str) -> Any:
    """A function of the RESP accelerators (`_replies.c`, `_lanes.c`), or None (not built,
    or REPLPROXY_NO_SPEEDUPS set: the Python paths are the reference)."""
    return c_function(_C_MODULES[name], name)


_C_BULKS = cast(Callable[[bytes, Sequence[bytes | None], bytes], bytes] | None, c_speedup("bulks"))
_LLONG_MIN = -(2**63)
_LLONG_MAX = 2**63 - 1


# --- value types for `encode` ----------------------------------------------------------------


class SimpleString(bytes):
    """`+...` status reply."""


class ErrorReply(bytes):
    """`-...` error reply; the bytes start with the code: `ErrorReply(b"ERR no such key")`."""


class BigNumber(int):
    """RESP3 `(` big number (a bulk string in RESP2)."""


class Verbatim(NamedTuple):
    """RESP3 `=` verbatim string (a bulk string of `text` in RESP2)."""

    text: bytes
    format: bytes = b"txt"


class Push(list[object]):
    """RESP3 `>` push (an array in RESP2)."""


class RespSet(list[object]):
    """An ordered set reply: `~` in RESP3, an array in RESP2 (Python sets work too, unordered)."""


class _NullArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NULL_ARRAY"


NULL_ARRAY = _NullArray()  # `*-1` in RESP2 (e.g. BLPOP timeout), `_` in RESP3


# --- scalars ---------------------------------------------------------------------------------


def simple_string(s: bytes) -> bytes:
    """`+s`. CR and LF would break the protocol: they become spaces."""
    if b"\r" in s or b"\n" in s:
        s = s.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"+%b\r\n" % s


def error(s: bytes) -> bytes:
    """`-s`, where `s` starts with the error code (`b"ERR ..."`, `b"WRONGTYPE ..."`).

    A leading `-` is accepted and kept single, as `addReplyErrorLength` does; CR and LF become
    spaces as in `addReplyErrorFormat`.
    """
    if s[:1] == b"-":
        s = s[1:]
    if b"\r" in s or b"\n" in s:
        s = s.replace(b"\r", b" ").replace(b"\n", b" ")
    return b"-%b\r\n" % s


def integer(n: int) -> bytes:
    """`:n` (a long long: the caller keeps it in range)."""
    return b":%d\r\n" % n


def bulk(b: bytes) -> bytes:
    """`$len` + bytes."""
    return b"$%d\r\n%b\r\n" % (len(b), b)


def null(proto: int) -> bytes:
    return _NULL2 if proto == 2 else _NULL3


def null_array(proto: int) -> bytes:
    return _NULL_ARRAY2 if proto == 2 else _NULL3


def boolean(b: bool, proto: int) -> bytes:
    if proto == 2:
        return b":1\r\n" if b else b":0\r\n"
    return b"#t\r\n" if b else b"#f\r\n"


def big_number(n: int | bytes, proto: int) -> bytes:
    digits = n if isinstance(n, bytes) else b"%d" % n
    return bulk(digits) if proto == 2 else b"(%b\r\n" % digits


def verbatim(text: bytes, proto: int, fmt: bytes = b"txt") -> bytes:
    """`addReplyVerbatim`: the format is cut or space-padded to 3 bytes."""
    if proto == 2:
        return bulk(text)
    return b"=%d\r\n%b:%b\r\n" % (len(text) + 4, fmt[:3].ljust(3), text)


def double(x: float, proto: int, style: DoubleStyle = "shortest") -> bytes:
    """`addReplyDouble`."""
    text = format_double(x, style)
    if proto == 2:
        return b"$%d\r\n%b\r\n" % (len(text), text)
    return b",%b\r\n" % text


# --- aggregates ------------------------------------------------------------------------------


def array_len(n: int) -> bytes:
    return b"*%d\r\n" % n


def map_len(n: int, proto: int) -> bytes:
    """Header of a map of `n` pairs (`addReplyMapLen`)."""
    return b"*%d\r\n" % (2 * n) if proto == 2 else b"%%%d\r\n" % n


def set_len(n: int, proto: int) -> bytes:
    return b"*%d\r\n" % n if proto == 2 else b"~%d\r\n" % n


def push_len(n: int, proto: int) -> bytes:
    return b"*%d\r\n" % n if proto == 2 else b">%d\r\n" % n


# The most bytes the reply being built may take, or None for no bound: the client session
# sets it around a command when output limits are configured (`SessionHub.call`), so a big
# range (LRANGE, HGETALL, SMEMBERS, ZRANGE, XRANGE...) over the client's limits is refused
# before its encoding is allocated. Single-threaded: one command runs at a time.
output_budget: int | None = None
# Collections smaller than this are encoded without a check (their size cannot matter).
_BUDGET_MIN_ITEMS = 64


class OutputBudgetExceeded(Exception):
    """The reply being built would pass `output_budget`: the session closes the client."""

    def __init__(self, size: int, budget: int) -> None:
        super().__init__(f"a reply of at least {size} bytes over the client's budget {budget}")
        self.size = size


def _check_budget(items: Sequence[bytes | None]) -> None:
    """Raise OutputBudgetExceeded when `items` would encode past `output_budget` (counted
    without encoding them: lengths plus the least framing, 5 bytes an element)."""
    budget = output_budget
    if budget is None or len(items) < _BUDGET_MIN_ITEMS:
        return
    size = 5 * len(items)
    for x in items:
        if x is not None:
            size += len(x)
            if size > budget:
                raise OutputBudgetExceeded(size, budget)
    if size > budget:
        raise OutputBudgetExceeded(size, budget)


def array(items: Sequence[bytes]) -> bytes:
    """An array of already encoded replies."""
    if output_budget is not None:
        _check_budget(items)
    return b"*%d\r\n%b" % (len(items), b"".join(items))


def _bulks(items: Sequence[bytes | None], proto: int) -> bytes:
    """Concatenated bulk strings (None -> null), without a header."""
    nul = _NULL2 if proto == 2 else _NULL3
    return b"".join([nul if x is None else b"$%d\r\n%b\r\n" % (len(x), x) for x in items])


def bulk_array(items: Sequence[bytes | None], proto: int = 2) -> bytes:
    """An array of bulk strings, None for a null element (MGET, LRANGE, KEYS...)."""
    if output_budget is not None:
        _check_budget(items)
    if _C_BULKS is not None:
        try:
            return _C_BULKS(b"*%d\r\n" % len(items), items, _NULL2 if proto == 2 else _NULL3)
        except TypeError:
            pass  # not all bytes (a bytearray, a memoryview): the generic path below
    if None not in items:
        # hiredis's command encoder writes exactly `*n` + `$len` bulks, in C.
        return _pack_command(tuple(items))
    return b"*%d\r\n%b" % (len(items), _bulks(items, proto))


def _reheaded(header: bytes, items: Sequence[bytes]) -> bytes:
    """`header` + the bulks of `items`, encoded in C (ours, else hiredis's `*n` dropped)."""
    if output_budget is not None:
        _check_budget(items)
    if _C_BULKS is not None:
        try:
            return _C_BULKS(header, items, _NULL3)
        except TypeError:
            pass
    packed = _pack_command(tuple(items))
    return b"".join((header, memoryview(packed)[packed.index(b"\r\n") + 2 :]))


def bulk_map(flat: Sequence[bytes | None], proto: int) -> bytes:
    """A map given as flat [k1, v1, k2, v2...] of bulk strings (HGETALL, CONFIG GET...)."""
    if proto == 2:
        return bulk_array(flat, 2)
    if flat and None not in flat:
        return _reheaded(b"%%%d\r\n" % (len(flat) // 2), flat)  # type: ignore[arg-type]
    return b"%%%d\r\n%b" % (len(flat) // 2, _bulks(flat, proto))


def bulk_set(items: Sequence[bytes], proto: int) -> bytes:
    """A set of bulk strings (SMEMBERS, SINTER...)."""
    if proto == 2:
        return bulk_array(items, 2)
    if items:
        return _reheaded(b"~%d\r\n" % len(items), items)
    return b"~0\r\n"


# --- the generic encoder ---------------------------------------------------------------------


def encode(value: object, proto: int = 2, style: DoubleStyle = "shortest") -> bytes:
    """Encode a nested Python value:

    None -> null; bool -> boolean; int -> integer (BigNumber, or out of the long long range, ->
    big number); float -> double; bytes/bytearray/memoryview/str -> bulk string (str as UTF-8);
    SimpleString, ErrorReply, Verbatim, NULL_ARRAY; list/tuple -> array (Push -> push, RespSet
    -> set); set/frozenset -> set; dict (Mapping) -> map.
    """
    parts: list[bytes] = []
    _encode_into(value, proto, style, parts)
    return b"".join(parts)


def _encode_into(value: object, proto: int, style: DoubleStyle, out: list[bytes]) -> None:
    if value is None:
        out.append(_NULL2 if proto == 2 else _NULL3)
    elif isinstance(value, SimpleString):
        out.append(simple_string(value))
    elif isinstance(value, ErrorReply):
        out.append(error(value))
    elif isinstance(value, bytes | bytearray | memoryview):
        out.append(bulk(bytes(value)))
    elif isinstance(value, str):
        out.append(bulk(value.encode()))
    elif isinstance(value, bool):
        out.append(boolean(value, proto))
    elif isinstance(value, int):
        if isinstance(value, BigNumber) or not _LLONG_MIN <= value <= _LLONG_MAX:
            out.append(big_number(int(value), proto))
        else:
            out.append(b":%d\r\n" % value)
    elif isinstance(value, float):
        out.append(double(value, proto, style))
    elif isinstance(value, Verbatim):
        out.append(verbatim(value.text, proto, value.format))
    elif isinstance(value, _NullArray):
        out.append(_NULL_ARRAY2 if proto == 2 else _NULL3)
    elif isinstance(value, Mapping):
        out.append(map_len(len(value), proto))
        for k, v in value.items():
            _encode_into(k, proto, style, out)
            _encode_into(v, proto, style, out)
    elif isinstance(value, list | tuple | set | frozenset):
        n = len(value)
        if isinstance(value, Push):
            out.append(push_len(n, proto))
        elif isinstance(value, RespSet | set | frozenset):
            out.append(set_len(n, proto))
        else:
            out.append(b"*%d\r\n" % n)
        for item in value:
            _encode_into(item, proto, style, out)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as RESP")


# --- doubles ---------------------------------------------------------------------------------


_HALF_LLONG = float(_LLONG_MAX // 2)  # (double)(LLONG_MAX/2) == 2**62


def format_double(x: float, style: DoubleStyle = "shortest") -> bytes:
    """The text Redis puts in a double reply (see the module docstring)."""
    if style == "g17":
        if x != x:
            return b"-nan" if math.copysign(1.0, x) < 0 else b"nan"
        if x in (math.inf, -math.inf):
            return b"inf" if x > 0 else b"-inf"
        return b"%.17g" % x
    if x != x:
        return b"nan"
    if x == 0.0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    if -_HALF_LLONG <= x <= _HALF_LLONG and x.is_integer():  # double2ll
        return b"%d" % int(x)
    if x in (math.inf, -math.inf):
        return b"inf" if x > 0 else b"-inf"
    return _fpconv_dtoa(x)


# fpconv_dtoa (deps/fpconv, Grisu2 by Florian Loitsch, as shipped in Redis 7.2+ and Valkey).
# Every uint64_t operation is masked so wrap-around behaves as in C.

_M64 = (1 << 64) - 1


def _cached_powers() -> tuple[tuple[int, int], ...]:
    """fpconv_powers.h: 10^k for k = -348, -340 ... 340 as a 64-bit significand (rounded to
    nearest) and a binary exponent. Computed exactly; equal to the C table entry for entry."""
    table = []
    for i in range(87):
        k = -348 + 8 * i
        num, den = (10**k, 1) if k >= 0 else (1, 10**-k)
        e = num.bit_length() - den.bit_length() - 64
        while True:  # find e with 2^63 <= 10^k / 2^e < 2^64
            n, d = (num, den << e) if e >= 0 else (num << -e, den)
            if n >= d << 64:
                e += 1
            elif n < d << 63:
                e -= 1
            else:
                break
        q, r = divmod(n, d)
        if 2 * r > d or (2 * r == d and q & 1):
            q += 1
        if q == 1 << 64:
            q, e = q >> 1, e + 1
        table.append((q, e))
    return tuple(table)


_POWERS = _cached_powers()
_TENS = tuple(10 ** (19 - i) for i in range(20))
_DOUBLE = struct.Struct("<d")
_HALF_UP = 1 << 63


def _grisu2(d: float) -> tuple[str, int]:
    """Digits and decimal exponent K (|d| ~ digits * 10^K) of fpconv's grisu2, d finite, != 0.

    Same arithmetic as the C code, with three exact shortcuts: `multiply` (64x64 -> high 64
    bits, rounded) is `(a * b + 2^63) >> 64`; normalizing loops are bit_length() shifts; and
    while the fractional part exceeds delta the integral digits cannot stop the generation, so
    they are `str(part1)`.
    """
    bits = int.from_bytes(_DOUBLE.pack(d), "little")
    frac = bits & 0x000FFFFFFFFFFFFF
    exp = (bits >> 52) & 0x7FF
    if exp:
        frac |= 1 << 52
        exp -= 1075
    else:
        exp = -1074
    # get_normalized_boundaries, normalize
    uf = (frac << 1) + 1
    s = 54 - uf.bit_length()
    ue = exp - 1 - s - 10
    uf <<= s + 10
    ls = 2 if frac == 1 << 52 else 1
    lf = (((frac << ls) - 1) << (exp - ls - ue)) & _M64
    wf = frac << (64 - frac.bit_length())
    # find_cachedpow10: C truncates the double product and the int division toward zero
    idx = int((int(-(ue + 87) * 0.30102999566398114) + 348) / 8)
    while True:
        current = ue + _POWERS[idx][1] + 64
        if current < -60:
            idx += 1
        elif current > -32:
            idx -= 1
        else:
            break
    cf, ce = _POWERS[idx]
    wf = (wf * cf + _HALF_UP) >> 64
    uf = ((uf * cf + _HALF_UP) >> 64) - 1
    lf = ((lf * cf + _HALF_UP) >> 64) + 1
    K = 348 - 8 * idx
    # generate_digits
    shift = -(ue + ce + 64)
    wfrac = uf - wf
    delta = uf - lf
    one = 1 << shift
    mask = one - 1
    part1 = uf >> shift
    part2 = uf & mask
    if part2 <= delta:  # the integral digits may already be enough
        digits: list[int] = []
        kappa = 10
        for div in _TENS[10:]:
            digit, part1 = divmod(part1, div)
            if digit or digits:
                digits.append(digit)
            kappa -= 1
            tmp = (part1 << shift) + part2
            if tmp <= delta:
                digits[-1] -= _round_digit(delta, tmp, (div << shift) & _M64, wfrac)
                return "".join(map(str, digits)), K + kappa
    out = str(part1)
    kappa = 0
    while True:
        part2 *= 10
        delta *= 10
        kappa -= 1
        digit = part2 >> shift
        part2 &= mask
        if part2 < delta:
            digit -= _round_digit(delta, part2, one, (wfrac * 10**-kappa) & _M64)
            return out + str(digit), K + kappa
        out += str(digit)


def _round_digit(delta: int, rem: int, kappa: int, frac: int) -> int:
    """round_digit: how many times the last digit steps down toward the value."""
    n = 0
    while (
        rem < frac
        and ((delta - rem) & _M64) >= kappa
        and (((rem + kappa) & _M64) < frac or ((frac - rem) & _M64) > ((rem + kappa - frac) & _M64))
    ):
        n += 1
        rem = (rem + kappa) & _M64
    return n


@lru_cache(maxsize=65536)
def _fpconv_dtoa(d: float) -> bytes:
    """fpconv_dtoa for finite non-zero d (cached: scores repeat, the port costs microseconds)."""
    neg = d < 0
    digits, K = _grisu2(d)
    ndigits = len(digits)
    exp = abs(K + ndigits - 1)
    sign = "-" if neg else ""
    if K >= 0 and exp < ndigits + 7:  # plain integer
        return f"{sign}{digits}{'0' * K}".encode()
    if K < 0 and (K > -7 or exp < 4):  # plain decimal
        offset = ndigits + K
        if offset <= 0:
            return f"{sign}0.{'0' * -offset}{digits}".encode()
        return f"{sign}{digits[:offset]}.{digits[offset:]}".encode()
    digits = digits[: min(ndigits, 18 - neg)]
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    esign = "-" if K + len(digits) - 1 < 0 else "+"
    return f"{sign}{mantissa}e{esign}{exp}".encode()


# --- long doubles ----------------------------------------------------------------------------

_LD_MANT = 64  # x87 extended precision: 64-bit significand, explicit integer bit
_LD_MIN_EXP = -16382  # exponent of the smallest normal, as m * 2^e with 1 <= m < 2
_LD_MAX_EXP = 16383


def round_long_double(x: Fraction | Decimal | int | float) -> Fraction | float:
    """`x` rounded to the nearest x87 80-bit long double (ties to even), exactly as strtold()
    or an x87 addition rounds; +-inf (a float) on overflow.

    INCRBYFLOAT's result is `round_long_double(round_long_double(a) + round_long_double(b))`
    with a, b the exact decimal values of the stored string and the increment.
    """
    if isinstance(x, float) and not math.isfinite(x):
        return x
    q = Fraction(x)
    if q == 0:
        return q
    sign = -1 if q < 0 else 1
    q = abs(q)
    e = q.numerator.bit_length() - q.denominator.bit_length()
    if Fraction(2) ** e > q:
        e -= 1
    e = max(e, _LD_MIN_EXP)  # subnormals share the smallest normal's quantum
    quantum = Fraction(2) ** (e - (_LD_MANT - 1))
    scaled = q / quantum
    m = round(scaled)  # Fraction.__round__ rounds half to even
    if m >= 1 << _LD_MANT:  # rounding carried into the next binade
        e += 1
    if e > _LD_MAX_EXP:
        return math.inf * sign
    return sign * m * quantum


def format_long_double(x: Fraction | Decimal | int | float) -> bytes:
    """`ld2string(..., LD_STR_HUMAN)` of the exact value `x` (already a long double value:
    see `round_long_double`): `%.17Lf`, trailing zeros and `.` cut, `-0` -> `0`."""
    if isinstance(x, float | Decimal) and x != x:
        return b"nan"
    if isinstance(x, float | Decimal) and (x == math.inf or x == -math.inf):
        return b"inf" if x > 0 else b"-inf"
    if isinstance(x, float):
        # The long double holds the double exactly, and Python's `%.17f` rounds the exact
        # value as glibc does: the same text, without the Fraction arithmetic.
        out = (b"%.17f" % x).rstrip(b"0").rstrip(b".")
        return b"0" if out == b"-0" else out
    q = Fraction(x)
    scaled = round(q * 10**17)  # printf rounds the exact binary value, ties to even
    if scaled == 0:
        return b"0"  # "-0.000..." is trimmed to "-0", then printed "0"
    sign = "-" if scaled < 0 else ""
    whole, frac = divmod(abs(scaled), 10**17)
    text = f"{sign}{whole}.{frac:017d}".rstrip("0").rstrip(".")
    return text.encode()
