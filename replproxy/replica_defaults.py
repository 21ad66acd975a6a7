"""What an idle replica of the master's version shows operators: INFO's sections and fields,
and CONFIG GET's parameters with their defaults (`ReplicaDefaults`).

Captured from real servers by scripts/gen_replica_defaults.py into
replproxy/data/replica-<server>-<major.minor>.json.gz (format: docs/metrics.md, "INFO as a
replica"). INFO (`replproxy.info`) follows a capture's sections and field order and shows the
captured idle value of every field the relay does not track; CONFIG GET
(`replproxy.session.configcmd`) lists every captured parameter. A master of a version with
no capture takes the nearest capture of its server at or below it (the oldest when none is
below; a Valkey older than 8.1 the Redis 7.0 one, the closest to the Redis 7.2 fork).
Pure data; loaded once per file.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from replproxy.dialect import MasterDialect

# server -> (major, minor) lines captured (the files in replproxy/data).
CAPTURED: dict[str, tuple[tuple[int, int], ...]] = {
    "redis": ((5, 0), (6, 2), (7, 0), (8, 2)),
    "valkey": ((8, 1),),
}


@dataclass(frozen=True)
class ReplicaDefaults:
    server: str
    version: str  # the captured server's version
    # [(section title, [(field, idle value)...])...], INFO everything's order.
    sections: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    default_sections: tuple[str, ...]
    all_sections: tuple[str, ...]
    config: dict[str, str]  # CONFIG GET * name -> default

    def fields(self, title: str) -> tuple[tuple[str, str], ...]:
        for t, f in self.sections:
            if t == title:
                return f
        return ()

    def has(self, title: str) -> bool:
        return any(t == title for t, _ in self.sections)


def choose(server: str, version: tuple[int, int, int]) -> str:
    """The data file stem for a master `server` at `version` (see the module docstring)."""
    lines = CAPTURED["valkey" if server == "valkey" else "redis"]
    line = (version[0], version[1])
    if server == "valkey" and line < min(lines):
        return "redis-7.0"
    below = [x for x in lines if x <= line]
    pick = max(below) if below else min(lines)
    return f"{'valkey' if server == 'valkey' else 'redis'}-{pick[0]}.{pick[1]}"


@cache
def load(stem: str) -> ReplicaDefaults:
    path = resources.files("replproxy").joinpath("data", f"replica-{stem}.json.gz")
    data = json.loads(gzip.decompress(path.read_bytes()))
    return ReplicaDefaults(
        server=data["server"],
        version=data["version"],
        sections=tuple((t, tuple((k, v) for k, v in f)) for t, f in data["info"]),
        default_sections=tuple(data["default_sections"]),
        all_sections=tuple(data["all_sections"]),
        config=dict(data["config"]),
    )


def for_dialect(dialect: MasterDialect) -> ReplicaDefaults:
    return load(choose(dialect.server, dialect.version))
