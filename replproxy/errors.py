"""Error replies: the exception a command raises and Redis's shared error texts.

Every layer that answers clients (the command table's checks, the read commands, the session)
raises `ReplyError`; the session turns it into the `-...` reply. The texts are Redis's own
(`createSharedObjects` in server.c), the same in every version the relay follows.
"""

from __future__ import annotations


class ReplyError(Exception):
    """A command's error reply: `msg` is the text after `-`, starting with its code."""

    def __init__(self, msg: bytes) -> None:
        super().__init__(msg)
        self.msg = msg


# Redis's shared error texts (server.c `createSharedObjects`).
WRONGTYPE = b"WRONGTYPE Operation against a key holding the wrong kind of value"
SYNTAX = b"ERR syntax error"
NOT_INTEGER = b"ERR value is not an integer or out of range"
NOT_FLOAT = b"ERR value is not a valid float"
OUT_OF_RANGE_LONG = b"ERR value is out of range, value must between %d and %d" % (
    -(2**63 - 1),
    2**63 - 1,
)  # `getRangeLongFromObjectOrReply` over (-LONG_MAX, LONG_MAX)
