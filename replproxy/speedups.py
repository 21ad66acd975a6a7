"""The optional C accelerators (`replproxy/rdb/_speedups.c`, `replproxy/resp/_encode.c`,
`replproxy/keyspace/_store.c`).

Each is built when a compiler is there and is never required: every caller keeps the Python
path, which is the reference. `REPLPROXY_NO_SPEEDUPS=1` turns them all off (read when the
caller looks its function up, usually at import).
"""

from __future__ import annotations

import importlib
import os
from typing import Any


def c_function(module: str, name: str) -> Any:
    """`module.name` of a C accelerator, or None (not built, or REPLPROXY_NO_SPEEDUPS set)."""
    if os.environ.get("REPLPROXY_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None


# Each accelerator's short name (the start-up line's) and module.
ACCELERATORS = {
    "rdb": "replproxy.rdb._speedups",
    "resp": "replproxy.resp._encode",
    "store": "replproxy.keyspace._store",
}


def accelerators_in_use() -> list[str]:
    """The short names of the accelerators this process uses (built and not turned off)."""
    if os.environ.get("REPLPROXY_NO_SPEEDUPS", "") not in ("", "0"):
        return []
    found = []
    for short, module in ACCELERATORS.items():
        try:
            importlib.import_module(module)
        except ImportError:
            continue
        found.append(short)
    return found
