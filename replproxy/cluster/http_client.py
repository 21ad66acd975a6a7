"""A tiny HTTP/1.0 GET for the cluster parts: a relay reading its topology from a URL, the
supervisor probing a relay's `/startupz`. Plain HTTP only (both ends are replproxy's own)."""

from __future__ import annotations

from urllib.parse import urlsplit

import trio

TIMEOUT = 5.0


async def http_get(url: str, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """(status, body) of GET `url`; OSError when it cannot be asked, trio.TooSlowError when
    the answer takes longer than `timeout`."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise OSError(f"only http:// URLs are supported: {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    chunks = []
    try:
        with trio.fail_after(timeout):
            stream = await trio.open_tcp_stream(parts.hostname, parts.port or 80)
            async with stream:
                request = f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\n\r\n"
                await stream.send_all(request.encode())
                while data := await stream.receive_some(65536):
                    chunks.append(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
        raise OSError(f"GET {url}: {e!r}") from e
    raw = b"".join(chunks)
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].split()
    if len(status) < 2 or not status[1].isdigit():
        raise OSError(f"GET {url}: not an HTTP answer: {head[:80]!r}")
    return int(status[1]), body
