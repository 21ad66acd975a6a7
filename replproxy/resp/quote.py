"""How the master's bytes appear in a log line: escaped, quoted and cut short.

This module owns one function, `quote_master_bytes`, used wherever a log line or a link error
quotes what the master sent (a handshake reply, a bad snapshot header, the command that broke
the stream, a command name it could not apply). A misbehaving or hostile master must not be
able to write control characters, ANSI escapes or megabytes into the log: every byte outside
printable ASCII is escaped the way Redis's `sdscatrepr` does, and only the first `limit` bytes
are shown, followed by how many there were. It touches nothing else.
"""

from __future__ import annotations

__all__ = ["QUOTE_LIMIT", "quote_master_bytes"]

QUOTE_LIMIT = 64  # bytes shown of one quoted piece; the rest is summarized by its length

_ESCAPES = {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    0x07: "\\a",
    0x08: "\\b",
}
_TABLE = [_ESCAPES.get(b, chr(b) if 0x20 <= b < 0x7F else f"\\x{b:02x}") for b in range(256)]


def quote_master_bytes(
    data: bytes | bytearray | memoryview | str,
    limit: int = QUOTE_LIMIT,
    *,
    total: int | None = None,
    quotes: bool = True,
) -> str:
    """`data` as a double-quoted, escaped string of at most `limit` source bytes.

    A str (a text that embeds a master's byte, such as a parser's error message) is quoted as
    its UTF-8 bytes. Longer input ends in `...(+N more bytes)` so the reader knows it was cut
    and by how much; `total` is the real length when `data` is already a prefix of it.
    `quotes=False` leaves out the surrounding double quotes (for a message, not a value).
    """
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else bytes(data)
    size = max(len(raw), total or 0)
    head = raw[:limit]
    shown = "".join([_TABLE[b] for b in head])
    q = '"' if quotes else ""
    if size > len(head):
        return f"{q}{shown}...{q}(+{size - len(head)} more bytes)"
    return f"{q}{shown}{q}"
