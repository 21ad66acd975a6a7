"""Start-up checks and the start-up line: what `replproxy run` refuses, and what it says.

A relay that cannot start says why in one line and exits with status 1, as redis-server
does: a port in use (naming it and its flag), a `--dir` it cannot use. `StartupError` carries
that line; the CLI prints it (`find_startup_error` digs it out of trio's exception groups)
instead of a traceback. The start-up line names the version, the C accelerators in use
(`replproxy.speedups`) and every listening address.

This module owns no state; it reads the config and the listeners it is given.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import trio

from replproxy import __version__
from replproxy.speedups import accelerators_in_use


class StartupError(Exception):
    """The relay cannot start; the message is the whole explanation (one line)."""


def check_dir(path: Path) -> None:
    """`--dir` must be (or become) a directory we can list and write in: checked by doing so,
    since permission bits say nothing for root or on a read-only mount."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise StartupError(f"--dir {path}: not a directory") from None
    except OSError as e:
        raise StartupError(f"--dir {path}: cannot create it: {e.strerror}") from None
    if not path.is_dir():
        raise StartupError(f"--dir {path}: not a directory")
    try:
        os.listdir(path)
    except OSError as e:
        raise StartupError(f"--dir {path}: not readable: {e.strerror}") from None
    probe = path / f".replproxy-write-test-{os.getpid()}"
    try:
        with open(probe, "wb") as f:
            f.write(b"ok")
    except OSError as e:
        raise StartupError(f"--dir {path}: not writable: {e.strerror}") from None
    finally:
        with contextlib.suppress(OSError):
            probe.unlink()


_WHY = {
    errno.EADDRINUSE: "the port is already in use",
    errno.EADDRNOTAVAIL: "the address is not one of this host's",
    errno.EACCES: "permission denied (ports below 1024 need privileges)",
}


async def listen(
    nursery: trio.Nursery,
    flag: str,
    serve: Callable[..., Awaitable[Any]],
    port: int | None,
    host: str,
) -> Any:
    """Start `serve(port, host)` and return what it reports (its listeners); a bind failure
    becomes a `StartupError` naming the address and the flag that chose it."""
    try:
        return await nursery.start(serve, port, host)
    except OSError as e:
        why = _WHY.get(e.errno or 0, e.strerror or str(e))
        raise StartupError(f"cannot listen on {host}:{port} ({flag}): {why}") from None


def find_startup_error(exc: BaseException) -> StartupError | None:
    """The `StartupError` inside `exc` (possibly nested in exception groups), if any."""
    if isinstance(exc, StartupError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find_startup_error(inner)
            if found is not None:
                return found
    return None


def addresses(listeners: Sequence[trio.SocketListener]) -> str:
    out = []
    for li in listeners:
        host, port = li.socket.getsockname()[:2]
        out.append(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    return ", ".join(out)


def startup_line(
    clients: Sequence[trio.SocketListener],
    tls_clients: Sequence[trio.SocketListener],
    metrics: Sequence[trio.SocketListener],
    metrics_tls: bool,
    master: str,
    run_id: str,
    probe: bool,
) -> str:
    accel = accelerators_in_use()
    served = " and ".join(
        x
        for x in (
            addresses(clients) if clients else "",
            f"TLS {addresses(tls_clients)}" if tls_clients else "",
        )
        if x
    )
    return (
        f"replproxy {__version__} (run id {run_id[:8]}; C accelerators: "
        f"{', '.join(accel) if accel else 'none (pure Python)'}) serving clients on "
        f"{served}, metrics and health on {addresses(metrics)}"
        f"{' (HTTPS)' if metrics_tls else ''}; master {master}"
        f"; master offset probe {'on' if probe else 'off'}; dialect: logged once the "
        "master's snapshot loads"
    )
