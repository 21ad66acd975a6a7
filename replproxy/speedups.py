"""The optional C accelerators, and the one switch that turns them off.

- `replproxy/rdb/_loader.c`: loading RDB records straight into the keyspace (and counting
  them for `replproxy rdb info|verify`);
- `replproxy/rdb/_jsonl.c`: the JSON Lines of `replproxy rdb dump`;
- `replproxy/resp/_replies.c`: arrays of bulk strings and scored ranges in replies;
- `replproxy/resp/_lanes.c`: GET/MGET and the replication stream's canonical commands;
- `replproxy/keyspace/_store.c`: MSET's stores with memory prefetching.

Each is built when a compiler is there and is never required: every caller keeps a Python
twin with the same semantics, which is the reference (the tests run both). One switch:
`REPLPROXY_NO_SPEEDUPS=1` in the environment turns them all off, read once, when this module
is imported; callers look their functions up at import.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

ENABLED = os.environ.get("REPLPROXY_NO_SPEEDUPS", "") in ("", "0")


def c_function(module: str, name: str) -> Any:
    """`module.name` of a C accelerator, or None (not built, or REPLPROXY_NO_SPEEDUPS set)."""
    if not ENABLED:
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# Each accelerator's short name (the start-up line's) and module.
ACCELERATORS = {
    "rdb": "replproxy.rdb._loader",
    "jsonl": "replproxy.rdb._jsonl",
    "replies": "replproxy.resp._replies",
    "lanes": "replproxy.resp._lanes",
    "store": "replproxy.keyspace._store",
}


def accelerators_in_use() -> list[str]:
    """The short names of the accelerators this process uses (built and not turned off)."""
    if not ENABLED:
        return []
    found = []
    for short, module in ACCELERATORS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        found.append(short)
    return found
