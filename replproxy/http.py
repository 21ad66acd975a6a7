"""The HTTP endpoint on `--metrics-port`: `/metrics` and the Kubernetes probes.

A deliberately tiny HTTP/1.1 responder on the trio loop (prometheus_client's own server runs
a thread). Each connection serves one request and closes. Probes:

- `/livez` (`/healthz`): the event loop answers - never depends on the master.
- `/startupz`: the first sync (snapshot load or partial resync) completed.
- `/readyz`: link up AND first sync done AND last I/O from the master recent AND the lag
  behind the master (`replproxy.probe`) under `--ready-max-lag-bytes` and
  `--ready-max-lag-seconds`; the body says which condition failed.

With `--metrics-tls yes` it speaks HTTPS with the relay's certificate (`replproxy.tls`'s
metrics context, which asks no client certificate).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from prometheus_client import CONTENT_TYPE_LATEST

from replproxy import tls
from replproxy.metrics import make_registry, render

if TYPE_CHECKING:
    from replproxy.gate import ServingGate
    from replproxy.interfaces import StatusView

log = logging.getLogger("replproxy.http")

MAX_REQUEST = 8192
REQUEST_TIMEOUT = 10.0


class HttpServer:
    def __init__(
        self,
        view: StatusView,
        gate: ServingGate,
        tls_context: Callable[[], ssl.SSLContext | None] = lambda: None,
    ) -> None:
        self.view = view
        self.gate = gate
        self.registry = make_registry(view)
        self.tls_context = tls_context

    async def handle(self, stream: trio.abc.Stream) -> None:
        ctx = self.tls_context()
        if ctx is not None:
            try:
                stream = await tls.accept(stream, ctx, "an HTTP client", REQUEST_TIMEOUT)
            except tls.TlsHandshakeError as e:
                log.debug("HTTPS connection refused: %s", e)
                await trio.aclose_forcefully(stream)
                return
        try:
            async with stream:
                with trio.move_on_after(REQUEST_TIMEOUT):
                    request = await self._read_head(stream)
                    if request is None:
                        return
                    status, ctype, body = self.route(request)
                    head = (
                        f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
                    )
                    await stream.send_all(head.encode() + body)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass  # the scraper went away; nothing to do
        except Exception:  # a bug here must never take the process down
            log.exception("error serving an HTTP request")

    async def _read_head(self, stream: trio.abc.Stream) -> str | None:
        buf = b""
        while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
            data = await stream.receive_some(4096)
            if not data:
                return None
            buf += data
            if len(buf) > MAX_REQUEST:
                return None
        line = buf.split(b"\n", 1)[0].decode("latin-1").strip()
        return line

    def route(self, request_line: str) -> tuple[str, str, bytes]:
        parts = request_line.split()
        if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"only GET\n"
        path = parts[1].split("?", 1)[0]
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, render(self.registry)
        if path in ("/livez", "/healthz"):
            return "200 OK", "text/plain", b"ok\n"
        if path == "/startupz":
            if self.view.link_status.initial_sync_done:
                return "200 OK", "text/plain", b"initial sync complete\n"
            return "503 Service Unavailable", "text/plain", b"initial sync not complete\n"
        if path == "/readyz":
            ok, why = self.gate.readiness()
            return (
                ("200 OK" if ok else "503 Service Unavailable"),
                "text/plain",
                why.encode() + b"\n",
            )
        return "404 Not Found", "text/plain", b"not found\n"

    async def serve(
        self, port: int, host: str, *, task_status: trio.TaskStatus[list[trio.SocketListener]]
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self.handle, listeners)
            task_status.started(listeners)
