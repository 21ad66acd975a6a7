"""`replproxy cluster`: the command line of the supervisor (registered by replproxy/cli.py).

Every flag is also read from the environment as `REPLPROXY_<FLAG_NAME>`, as for `run`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import trio
import typer

from replproxy.cluster.supervisor import PortPlan, Supervisor, SupervisorConfig
from replproxy.config import ConfigError, parse_upstream_url
from replproxy.logs import setup_logging
from replproxy.options import LogFormat, LogLevel, env


def cluster(
    ctx: typer.Context,
    seed: Annotated[
        list[str],
        typer.Option(
            envvar=env("SEED"),
            help="A node of the cluster: redis://host:port or "
            "redis://user:password@host:port (repeat for more; the credentials are "
            "used for every node).",
        ),
    ],
    dir: Annotated[
        Path,
        typer.Option(
            envvar=env("DIR"), help="Base directory: topology.json, and shard-<n>/ for each relay."
        ),
    ] = Path("."),
    port_base: Annotated[
        int, typer.Option(envvar=env("PORT_BASE"), help="Relay n listens on port-base + n.")
    ] = 6380,
    ports: Annotated[
        str | None,
        typer.Option(
            envvar=env("PORTS"),
            help="Relay ports by shard, e.g. 7000,7001,7002 (instead of --port-base).",
        ),
    ] = None,
    metrics_port_base: Annotated[
        int,
        typer.Option(
            envvar=env("METRICS_PORT_BASE"),
            help="Relay n serves /metrics on metrics-port-base + n.",
        ),
    ] = 9481,
    metrics_ports: Annotated[
        str | None,
        typer.Option(envvar=env("METRICS_PORTS"), help="Relay metrics ports by shard."),
    ] = None,
    port_step: Annotated[
        int,
        typer.Option(
            envvar=env("PORT_STEP"),
            help="Relay n's ports are base + step * n (0: the same ports for "
            "every relay, each on a host of its own: --relays external).",
        ),
    ] = 1,
    relays: Annotated[
        str,
        typer.Option(
            envvar=env("RELAYS"),
            help="spawn: run a relay process per shard here; external: relays "
            "run elsewhere (one pod per shard, reading /topology): only publish "
            "the topology and probe them at --announce-host.",
        ),
    ] = "spawn",
    bind: Annotated[
        str, typer.Option(envvar=env("BIND"), help="Address the relays' client ports listen on.")
    ] = "127.0.0.1",
    metrics_bind: Annotated[
        str, typer.Option(envvar=env("METRICS_BIND"), help="Address the HTTP ports listen on.")
    ] = "0.0.0.0",
    announce_host: Annotated[
        str | None,
        typer.Option(
            envvar=env("ANNOUNCE_HOST"),
            help="Address clients reach the relays at, as CLUSTER SLOTS and -MOVED "
            "name it (default: --bind); {shard} stands for the shard's name "
            "(replproxy-{shard}.replproxy).",
        ),
    ] = None,
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar=env("METRICS_PORT"),
            help="The supervisor's own /metrics, /livez, /readyz, /topology.",
        ),
    ] = 9480,
    refresh_interval: Annotated[
        float,
        typer.Option(
            envvar=env("REFRESH_INTERVAL"),
            help="Seconds between two reads of the cluster's topology (relays "
            "also ask for one after a -MOVED, a link loss or a failover).",
        ),
    ] = 10.0,
    restart_backoff_max: Annotated[
        float,
        typer.Option(
            envvar=env("RESTART_BACKOFF_MAX"),
            help="Cap of the delay before an exited relay is restarted.",
        ),
    ] = 30.0,
    shard_removal_grace: Annotated[
        float,
        typer.Option(
            envvar=env("SHARD_REMOVAL_GRACE"),
            help="Seconds a shard must be gone from the cluster before its relay is stopped.",
        ),
    ] = 30.0,
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar=env("SHUTDOWN_TIMEOUT"),
            help="Seconds each relay may take to stop after SIGTERM before it is killed.",
        ),
    ] = 15.0,
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
) -> None:
    """Run one relay per shard of a Redis/Valkey Cluster, each its own `replproxy run`
    process, following failovers, resharding and shards that come and go, until
    SIGTERM/SIGINT. Arguments after `--` go to every relay (e.g. `-- --save ""`)."""

    setup_logging(log_level, log_format)
    try:
        config = SupervisorConfig(
            seeds=tuple(parse_upstream_url(s) for s in seed),
            dir=dir.absolute(),
            ports=PortPlan.parse(port_base, ports, "port", port_step),
            metrics_ports=PortPlan.parse(
                metrics_port_base, metrics_ports, "metrics-port", port_step
            ),
            bind=bind,
            metrics_bind=metrics_bind,
            announce_host=announce_host or bind,
            http_port=metrics_port,
            http_bind=metrics_bind,
            refresh_interval=refresh_interval,
            restart_backoff_max=restart_backoff_max,
            removal_grace=shard_removal_grace,
            shutdown_timeout=shutdown_timeout,
            relay_args=tuple(a for a in ctx.args if a != "--"),
            log_level=log_level,
            log_format=log_format,
            spawn=relays == "spawn",
        )
        if relays not in ("spawn", "external"):
            raise ConfigError(f"--relays must be spawn or external, got {relays!r}")
        supervisor = Supervisor(config)
    except ConfigError as e:
        typer.echo(f"replproxy: {e}", err=True)
        raise typer.Exit(2) from e
    trio.run(supervisor.run)
    if supervisor.exit_code:
        raise typer.Exit(supervisor.exit_code)
