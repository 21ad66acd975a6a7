"""Argument parsing shared by the appliers, with Redis's exact acceptance rules.

The master already validated every argument it propagates, so these exist to read them the
way Redis does (a value Redis accepts must parse to the same number here), not to produce
client-facing errors.
"""

from __future__ import annotations

import math
import time

from replproxy.resp.request import string2ll

LLONG_MIN = -(2**63)
LLONG_MAX = 2**63 - 1


def parse_int(raw: bytes) -> int:
    """A signed 64-bit integer as `string2ll` accepts it (no spaces, no `+`, no leading 0)."""
    v = string2ll(raw)
    if v is None:
        raise ValueError(f"not an integer: {raw!r}")
    return v


def parse_double(raw: bytes) -> float:
    """A double as `strtod` reads it in `getDoubleFromObject`: `inf`/`-inf`/`+inf` (any
    case), decimal and hex forms; NaN and surrounding spaces are refused, as Redis does."""
    text = raw.decode("ascii")
    if not text or text[0].isspace() or text[-1].isspace():
        raise ValueError(f"not a float: {raw!r}")
    low = text.lower()
    if low in ("inf", "+inf", "infinity", "+infinity"):
        return math.inf
    if low in ("-inf", "-infinity"):
        return -math.inf
    if "_" in text:
        raise ValueError(f"not a float: {raw!r}")
    try:
        v = float(text)
    except ValueError:
        try:
            v = float.fromhex(text)
        except ValueError:
            raise ValueError(f"not a float: {raw!r}") from None
    if math.isnan(v):
        raise ValueError(f"not a float: {raw!r}")
    return v


def c_string(raw: bytes) -> bytes:
    """An argument as C string functions (`strcasecmp`, `strtod`, `%s`) see `argv[i]->ptr`:
    up to its first NUL byte."""
    nul = raw.find(b"\0")
    return raw if nul < 0 else raw[:nul]


def option_word(raw: bytes) -> bytes:
    """An argument as `strcasecmp` compares it with an option name: a C string, lowercased."""
    return c_string(raw).lower()


def now_ms() -> int:
    """The relay's clock, for the relative TTLs older masters send (`EXPIRE k 10` on 5.x)."""
    return int(time.time() * 1000)


def selected_db(arg: bytes, current: int, databases: int) -> int:
    """The DB after a `SELECT arg` from the master: `current` when the index is not an
    integer in range, as Redis's `selectCommand` then fails and changes nothing (the master
    never sends such a SELECT; a broken one must not stop or misdirect the stream)."""
    if arg.isdigit() and len(arg) <= 10:  # no sign, no spaces: what string2ll + range allow
        n = int(arg)
        if n < databases:
            return n
    return current
