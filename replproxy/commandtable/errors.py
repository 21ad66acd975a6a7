"""The error texts of `processCommand`'s first checks: unknown command, unknown subcommand,
wrong arity (`commandCheckExistence`, `commandCheckArity` in server.c).

Pure functions of the argv (and the command's spec); the table's `resolve` and the handlers
of container commands use them. Nothing here looks a command up.
"""

from __future__ import annotations

from collections.abc import Sequence

from replproxy.commandtable.spec import CommandSpec

__all__ = ["arity_error", "unknown_command_error", "unknown_subcommand_error"]


def _cstr(b: bytes, limit: int) -> bytes:
    """`%.<limit>s` of an sds: at most `limit` bytes, and nothing from the first NUL on."""
    b = b[:limit]
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def _crlf_to_spaces(msg: bytes) -> bytes:
    if b"\r" in msg or b"\n" in msg:
        msg = msg.replace(b"\r", b" ").replace(b"\n", b" ")
    return msg


def unknown_command_error(argv: Sequence[bytes]) -> bytes:
    """`commandCheckExistence` for a name that is not a command."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"'" + _cstr(a, 128 - len(args)) + b"' "
    return _crlf_to_spaces(
        b"ERR unknown command '" + _cstr(argv[0], 128) + b"', with args beginning with: " + args
    )


def unknown_subcommand_error(argv: Sequence[bytes]) -> bytes:
    """`commandCheckExistence` for a container (OBJECT, CONFIG...) with an unknown subcommand."""
    return _crlf_to_spaces(
        b"ERR unknown subcommand '"
        + _cstr(argv[1], 128)
        + b"'. Try "
        + _cstr(argv[0], len(argv[0])).upper()
        + b" HELP."
    )


def arity_error(spec: CommandSpec) -> bytes:
    """`commandCheckArity`; on EXEC, `rejectCommand` aborts the transaction instead."""
    msg = b"wrong number of arguments for '%b' command" % spec.name
    if spec.name == b"exec":
        return b"EXECABORT Transaction discarded because of: " + msg
    return b"ERR " + msg


# --- before Redis 7.0 -------------------------------------------------------------------------


def _c_string(b: bytes) -> bytes:
    """`%s` of an sds: up to the first NUL."""
    nul = b.find(b"\0")
    return b if nul < 0 else b[:nul]


def legacy_unknown_command_error(argv: Sequence[bytes]) -> bytes:
    """Redis 5.0 / 6.2 `processCommand`: the name and the arguments in backticks, each
    argument `%.*s` with what is left of 128 bytes, while the list is shorter than 128."""
    args = b""
    for a in argv[1:]:
        if len(args) >= 128:
            break
        args += b"`" + _cstr(a, 128 - len(args)) + b"`, "
    return _crlf_to_spaces(
        b"ERR unknown command `" + _c_string(argv[0]) + b"`, with args beginning with: " + args
    )


def legacy_arity_error(spec: CommandSpec, version: str) -> bytes:
    """Redis 5.0 replies a plain error, even for EXEC; 6.2 (`rejectCommandFormat`) aborts
    the transaction on EXEC like 7.0."""
    msg = b"wrong number of arguments for '%b' command" % spec.name
    if spec.name == b"exec" and not version.startswith("5."):
        return b"EXECABORT Transaction discarded because of: " + msg
    return b"ERR " + msg


def legacy_subcommand_error(captured: bytes, probe: bytes, argv: Sequence[bytes]) -> bytes:
    """A container's unknown-subcommand reply before 7.0, from the reply the capture got
    for `<container> <probe>`: the texts differ per container and version (5.0's CLIENT and
    MEMORY end without a period), so the captured one is reused with the client's argument
    (`%s`: up to a NUL; CR and LF become spaces, `addReplyErrorFormat`). A captured reply
    without the probe (CLUSTER: "cluster support disabled") is the answer as it is."""
    text = captured[1:-2] if captured.startswith(b"-") else captured
    if probe and probe in text:
        text = text.replace(probe, _crlf_to_spaces(_c_string(argv[1])), 1)
    return text
