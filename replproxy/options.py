"""Command-line definitions that `replproxy run` (replproxy/cli.py) and `replproxy cluster`
(replproxy/cluster/cli.py) share: where a flag is read from the environment, and the logging
flags, which mean the same in both (the supervisor hands its own to every relay it spawns).
"""

from __future__ import annotations

from typing import Annotated

import typer


def env(name: str) -> str:
    """The environment variable a flag is also read from: `REPLPROXY_<FLAG_NAME>`."""
    return f"REPLPROXY_{name}"


LogLevel = Annotated[
    str, typer.Option(envvar=env("LOG_LEVEL"), help="debug, info, warning or error.")
]
LogFormat = Annotated[
    str, typer.Option(envvar=env("LOG_FORMAT"), help="text or json (one object a line).")
]
