"""Logging of the relay's processes: one event a line on stdout, text or JSON.

`replproxy run` and `replproxy cluster` (whose relays share its stdout, each line tagged
with its shard) set it up the same way.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from replproxy.config import ConfigError


class _JsonFormatter(logging.Formatter):
    def __init__(self, shard: str | None = None) -> None:
        super().__init__()
        self.shard = shard

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if self.shard is not None:
            out["shard"] = self.shard
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


LOG_LEVELS = ("debug", "info", "warning", "error")


def setup_logging(level: str, fmt: str, shard: str | None = None) -> None:
    """Log lines on stdout; `shard` (cluster mode) tags every line, as the relays of one
    `replproxy cluster` share its stdout."""
    if level.lower() not in LOG_LEVELS:
        raise ConfigError(f"--log-level must be debug, info, warning or error, got {level!r}")
    if fmt not in ("text", "json"):
        raise ConfigError(f"--log-format must be text or json, got {fmt!r}")
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter(shard))
    else:
        tag = f"[shard {shard}] " if shard is not None else ""
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s %(levelname)s {tag}%(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
