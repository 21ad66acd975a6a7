"""Command line: `replproxy run` (the relay) and `replproxy rdb ...` (snapshot tools).

Every `run` flag is also read from the environment as `REPLPROXY_<FLAG_NAME>` (shown as
`[env var: ...]` in `--help`), the Kubernetes way of configuring a sidecar.
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import time
from pathlib import Path
from typing import Annotated

import trio
import typer

from replproxy import __version__
from replproxy.config import (
    DEFAULT_SAVE,
    Config,
    ConfigError,
    parse_output_limit,
    parse_save,
    parse_size,
    parse_upstream_url,
    parse_yes_no,
)
from replproxy.rdb.cli import app as rdb_app

# Allocations between two runs of the cyclic GC's youngest generation (CPython: 700).
GC_THRESHOLD = 50_000

app = typer.Typer(
    help="replproxy: a Redis/Valkey replication relay. It replicates from one master as a "
    "replica and serves the dataset read-only over RESP, with Prometheus metrics.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(rdb_app, name="rdb", help="Inspect, dump and verify RDB snapshot files.")


def _env(name: str) -> str:
    return f"REPLPROXY_{name}"


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out)


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@app.command()
def run(
    upstream: Annotated[
        str,
        typer.Option(
            envvar=_env("UPSTREAM"),
            help="The master: redis://[user:password@]host:port (rediss:// is reserved for TLS).",
        ),
    ],
    port: Annotated[
        int, typer.Option(envvar=_env("PORT"), help="Client RESP port (0 picks a free one).")
    ] = 6380,
    bind: Annotated[
        str, typer.Option(envvar=_env("BIND"), help="Address the client port listens on.")
    ] = "127.0.0.1",
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar=_env("METRICS_PORT"),
            help="HTTP port for /metrics, /livez, /readyz, /startupz.",
        ),
    ] = 9480,
    metrics_bind: Annotated[
        str, typer.Option(envvar=_env("METRICS_BIND"), help="Address the HTTP port listens on.")
    ] = "0.0.0.0",
    dir: Annotated[
        Path,
        typer.Option(
            envvar=_env("DIR"),
            help="Working directory for the snapshot and replication state.",
        ),
    ] = Path("."),
    replica_announce_port: Annotated[
        int | None,
        typer.Option(
            envvar=_env("REPLICA_ANNOUNCE_PORT"),
            help="Port announced to the master (REPLCONF listening-port); default: --port.",
        ),
    ] = None,
    replica_announce_ip: Annotated[
        str | None,
        typer.Option(
            envvar=_env("REPLICA_ANNOUNCE_IP"),
            help="IP announced to the master (REPLCONF ip-address).",
        ),
    ] = None,
    repl_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("REPL_TIMEOUT"),
            help="Seconds without progress before the link is dropped (Redis repl-timeout).",
        ),
    ] = 60.0,
    repl_backlog_size: Annotated[
        str,
        typer.Option(
            envvar=_env("REPL_BACKLOG_SIZE"),
            help="In-memory replication backlog (e.g. 128mb).",
        ),
    ] = "128mb",
    repl_backlog_disk_size: Annotated[
        str,
        typer.Option(
            envvar=_env("REPL_BACKLOG_DISK_SIZE"),
            help="Disk-backed replication log in --dir/backlog (e.g. 10gb; 0 = off): replicas "
            "away longer than the memory backlog covers still partially resync, also after "
            "a restart of replproxy.",
        ),
    ] = "0",
    repl_backlog_disk_ttl: Annotated[
        float,
        typer.Option(
            envvar=_env("REPL_BACKLOG_DISK_TTL"),
            help="Drop disk-log segments older than this many seconds (0 = only the size "
            "limit applies).",
        ),
    ] = 0.0,
    reconnect_backoff_max: Annotated[
        float,
        typer.Option(
            envvar=_env("RECONNECT_BACKOFF_MAX"),
            help="Cap of the reconnect backoff, in seconds.",
        ),
    ] = 10.0,
    save: Annotated[
        str,
        typer.Option(
            envvar=_env("SAVE"),
            help='Snapshot policy as redis.conf\'s save: "<seconds> <changes> ..." saves after '
            'that many seconds if at least that many writes were applied; "" disables it '
            "(and the shutdown save).",
        ),
    ] = DEFAULT_SAVE,
    dbfilename: Annotated[
        str,
        typer.Option(
            envvar=_env("DBFILENAME"),
            help="File name in --dir of replproxy's snapshot (its restart state).",
        ),
    ] = "replproxy.rdb",
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar=_env("SHUTDOWN_TIMEOUT"),
            help="Seconds a graceful shutdown (SIGTERM/SIGINT, SHUTDOWN) may take, final "
            "save included; a second signal exits at once.",
        ),
    ] = 10.0,
    repl_diskless_sync_delay: Annotated[
        float,
        typer.Option(
            envvar=_env("REPL_DISKLESS_SYNC_DELAY"),
            help="Seconds a downstream full sync needing a fresh snapshot waits for more "
            "replicas to share it (Redis repl-diskless-sync-delay).",
        ),
    ] = 1.0,
    client_output_buffer_limit_replica: Annotated[
        str,
        typer.Option(
            envvar=_env("CLIENT_OUTPUT_BUFFER_LIMIT_REPLICA"),
            help='"<hard> <soft> <soft-seconds>" for downstream replicas: unsent bytes beyond '
            "hard, or beyond soft for soft-seconds, drop the replica (hard is raised to the "
            "backlog size).",
        ),
    ] = "256mb 64mb 60",
    replica_serve_psync_when_down: Annotated[
        str,
        typer.Option(
            envvar=_env("REPLICA_SERVE_PSYNC_WHEN_DOWN"),
            help="yes: keep serving downstream SYNC/PSYNC from the stored stream while the "
            "master link is down; no: refuse with -NOMASTERLINK as Redis does.",
        ),
    ] = "yes",
    maxclients: Annotated[
        int,
        typer.Option(envvar=_env("MAXCLIENTS"),
                     help="Most client connections at once; more get "
                     "'-ERR max number of clients reached'."),
    ] = 10000,
    timeout: Annotated[
        int,
        typer.Option(envvar=_env("TIMEOUT"),
                     help="Close a client idle for this many seconds (0 = never; subscribers "
                     "and blocked clients are exempt, as in Redis)."),
    ] = 0,
    client_query_buffer_limit: Annotated[
        str,
        typer.Option(envvar=_env("CLIENT_QUERY_BUFFER_LIMIT"),
                     help="Largest unparsed request buffer a client may hold."),
    ] = "1gb",
    proto_max_bulk_len: Annotated[
        str,
        typer.Option(envvar=_env("PROTO_MAX_BULK_LEN"),
                     help="Largest bulk string a client may send."),
    ] = "512mb",
    client_output_buffer_limit_normal: Annotated[
        str,
        typer.Option(envvar=_env("CLIENT_OUTPUT_BUFFER_LIMIT_NORMAL"),
                     help='"<hard> <soft> <soft-seconds>" for normal clients (0 = no limit).'),
    ] = "0 0 0",
    client_output_buffer_limit_pubsub: Annotated[
        str,
        typer.Option(envvar=_env("CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB"),
                     help='"<hard> <soft> <soft-seconds>" for Pub/Sub subscribers.'),
    ] = "32mb 8mb 60",
    replica_serve_stale_data: Annotated[
        str,
        typer.Option(envvar=_env("REPLICA_SERVE_STALE_DATA"),
                     help="yes: answer reads while the master link is down (Redis's default); "
                     "no: answer -MASTERDOWN except to STALE-flagged commands."),
    ] = "yes",
    busy_reply_threshold: Annotated[
        int,
        typer.Option("--busy-reply-threshold", "--lua-time-limit",
                     envvar=_env("BUSY_REPLY_THRESHOLD"), min=0,
                     help="Milliseconds a Lua script may run before other clients get "
                     "-BUSY (until it ends or SCRIPT KILL); 0: never."),
    ] = 5000,
    requirepass: Annotated[
        str | None,
        typer.Option(envvar=_env("REQUIREPASS"),
                     help="Password of the 'default' user: clients must AUTH."),
    ] = None,
    aclfile: Annotated[
        Path | None,
        typer.Option(envvar=_env("ACLFILE"),
                     help="ACL file of users (redis aclfile syntax: 'user <name> on >pass'); "
                     "every user is read-only here."),
    ] = None,
    log_level: Annotated[
        str, typer.Option(envvar=_env("LOG_LEVEL"), help="debug, info, warning or error.")
    ] = "info",
    log_format: Annotated[
        str, typer.Option(envvar=_env("LOG_FORMAT"), help="text or json (one object a line).")
    ] = "text",
) -> None:
    """Replicate from the master and serve the dataset, until SIGTERM/SIGINT."""
    from replproxy.app import Relay

    setup_logging(log_level, log_format)
    try:
        config = Config(
            upstream=parse_upstream_url(upstream),
            port=port,
            bind=bind,
            metrics_port=metrics_port,
            metrics_bind=metrics_bind,
            dir=dir,
            replica_announce_port=replica_announce_port,
            replica_announce_ip=replica_announce_ip,
            repl_timeout=repl_timeout,
            repl_backlog_size=parse_size(repl_backlog_size),
            repl_backlog_disk_size=parse_size(repl_backlog_disk_size),
            repl_backlog_disk_ttl=repl_backlog_disk_ttl,
            reconnect_backoff_max=reconnect_backoff_max,
            save=parse_save(save),
            dbfilename=dbfilename,
            shutdown_timeout=shutdown_timeout,
            repl_diskless_sync_delay=repl_diskless_sync_delay,
            client_output_buffer_limit_replica=parse_output_limit(
                client_output_buffer_limit_replica
            ),
            replica_serve_psync_when_down=parse_yes_no(
                "replica-serve-psync-when-down", replica_serve_psync_when_down
            ),
            maxclients=maxclients,
            timeout=timeout,
            client_query_buffer_limit=parse_size(client_query_buffer_limit),
            proto_max_bulk_len=parse_size(proto_max_bulk_len),
            client_output_buffer_limit_normal=parse_output_limit(
                client_output_buffer_limit_normal, "client-output-buffer-limit-normal"
            ),
            client_output_buffer_limit_pubsub=parse_output_limit(
                client_output_buffer_limit_pubsub, "client-output-buffer-limit-pubsub"
            ),
            replica_serve_stale_data=parse_yes_no(
                "replica-serve-stale-data", replica_serve_stale_data
            ),
            busy_reply_threshold=busy_reply_threshold,
            requirepass=requirepass,
            aclfile=aclfile,
        )
        relay = Relay(config)
    except ConfigError as e:
        typer.echo(f"replproxy: {e}", err=True)
        raise typer.Exit(2) from e
    # The stream allocates two containers per command (argv and its record) that die young
    # and never form cycles; with CPython's default first threshold (700) the cyclic
    # collector re-scanned them for a quarter of the apply time (benchmarks/apply.py).
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    trio.run(relay.run)
    if relay.exit_code:
        raise typer.Exit(relay.exit_code)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
