"""The optional C accelerators (`replproxy/rdb/_loader.c`, `replproxy/rdb/_jsonl.c`,
`replproxy/resp/_encode.c`, `replproxy/keyspace/_store.c`).

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
