"""Command line: `replproxy run` (the relay) and `replproxy rdb ...` (snapshot tools).

Every `run` flag is also read from the environment as `REPLPROXY_<FLAG_NAME>` (shown as
`[env var: ...]` in `--help`), the Kubernetes way of configuring a sidecar.
"""

from __future__ import annotations

import gc
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import trio
import typer

from replproxy import __version__
from replproxy.cluster.cli import cluster as cluster_command
from replproxy.conffile import BAD_DIRECTIVE, Setting, read_config_file
from replproxy.config import (
    DEFAULT_SAVE,
    Config,
    ConfigError,
    SentinelSettings,
    TlsSettings,
    Upstream,
    parse_output_limit,
    parse_protected_action,
    parse_save,
    parse_sentinel_addrs,
    parse_size,
    parse_upstream_url,
    parse_yes_no,
    upstream_url_wants_tls,
)
from replproxy.logs import setup_logging
from replproxy.options import LogFormat, LogLevel, env
from replproxy.rdb.cli import app as rdb_app
from replproxy.startup import StartupError, check_dir, find_startup_error

# Allocations between two runs of the cyclic GC's youngest generation (CPython: 700).
GC_THRESHOLD = 50_000

app = typer.Typer(
    help="replproxy: a Redis/Valkey replication relay. It replicates from one master as a "
    "replica and serves the dataset read-only over RESP, with Prometheus metrics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
app.add_typer(rdb_app, name="rdb", help="Inspect, dump and verify RDB snapshot files.")
# `replproxy cluster` (replproxy/cluster/cli.py); arguments after `--` go to every relay.
app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    cluster_command
)


@app.command()
def run(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            envvar=env("CONFIG"),
            help="A config file in redis.conf syntax (redis.conf's names, e.g. port, "
            "replicaof, masterauth; replproxy's own settings by their flag names). Flags "
            "and REPLPROXY_* variables win over it.",
        ),
    ] = None,
    upstream: Annotated[
        str | None,
        typer.Option(
            envvar=env("UPSTREAM"),
            help="The master: redis://host:port, or redis://user:password@host:port "
            "(rediss:// is reserved for TLS); or 'replicaof host port' in --config. The "
            "password may come from --upstream-password-file instead.",
        ),
    ] = None,
    upstream_password_file: Annotated[
        Path | None,
        typer.Option(
            envvar=env("UPSTREAM_PASSWORD_FILE"),
            help="File whose first line is the master's password (masterauth), to keep it out "
            "of the command line; the --upstream URL then has none (redis://user@host).",
        ),
    ] = None,
    masteruser: Annotated[
        str | None,
        typer.Option(
            envvar=env("MASTERUSER"),
            help="ACL user for the master when --upstream names none (masteruser).",
        ),
    ] = None,
    masterauth: Annotated[
        str | None,
        typer.Option(
            envvar=env("MASTERAUTH"),
            help="Password for the master when --upstream gives none (masterauth).",
        ),
    ] = None,
    port: Annotated[
        int, typer.Option(envvar=env("PORT"), help="Client RESP port (0 picks a free one).")
    ] = 6380,
    bind: Annotated[
        str, typer.Option(envvar=env("BIND"), help="Address the client port listens on.")
    ] = "127.0.0.1",
    metrics_port: Annotated[
        int,
        typer.Option(
            envvar=env("METRICS_PORT"),
            help="HTTP port for /metrics, /livez, /readyz, /startupz.",
        ),
    ] = 9480,
    metrics_bind: Annotated[
        str,
        typer.Option(
            envvar=env("METRICS_BIND"),
            help="Address the HTTP port listens on (0.0.0.0 in a container).",
        ),
    ] = "127.0.0.1",
    dir: Annotated[
        Path,
        typer.Option(
            envvar=env("DIR"),
            help="Working directory for the snapshot and replication state.",
        ),
    ] = Path("."),
    replica_announce_port: Annotated[
        int | None,
        typer.Option(
            envvar=env("REPLICA_ANNOUNCE_PORT"),
            help="Port announced to the master (REPLCONF listening-port); default: --port.",
        ),
    ] = None,
    replica_announce_ip: Annotated[
        str | None,
        typer.Option(
            envvar=env("REPLICA_ANNOUNCE_IP"),
            help="IP announced to the master (REPLCONF ip-address).",
        ),
    ] = None,
    repl_timeout: Annotated[
        float,
        typer.Option(
            envvar=env("REPL_TIMEOUT"),
            help="Seconds without progress before the link is dropped (Redis repl-timeout).",
        ),
    ] = 60.0,
    repl_backlog_size: Annotated[
        str,
        typer.Option(
            envvar=env("REPL_BACKLOG_SIZE"),
            help="In-memory replication backlog (e.g. 128mb).",
        ),
    ] = "128mb",
    repl_backlog_disk_size: Annotated[
        str,
        typer.Option(
            envvar=env("REPL_BACKLOG_DISK_SIZE"),
            help="Disk-backed replication log in --dir/backlog (e.g. 10gb; 0 = off): replicas "
            "away longer than the memory backlog covers still partially resync, also after "
            "a restart of replproxy.",
        ),
    ] = "0",
    repl_backlog_disk_ttl: Annotated[
        float,
        typer.Option(
            envvar=env("REPL_BACKLOG_DISK_TTL"),
            help="Drop disk-log segments older than this many seconds (0 = only the size "
            "limit applies).",
        ),
    ] = 0.0,
    reconnect_backoff_max: Annotated[
        float,
        typer.Option(
            envvar=env("RECONNECT_BACKOFF_MAX"),
            help="Cap of the reconnect backoff, in seconds.",
        ),
    ] = 10.0,
    save: Annotated[
        str,
        typer.Option(
            envvar=env("SAVE"),
            help='Snapshot policy as redis.conf\'s save: "<seconds> <changes> ..." saves after '
            'that many seconds if at least that many writes were applied; "" disables it '
            "(and the shutdown save).",
        ),
    ] = DEFAULT_SAVE,
    dbfilename: Annotated[
        str,
        typer.Option(
            envvar=env("DBFILENAME"),
            help="File name in --dir of replproxy's snapshot (its restart state).",
        ),
    ] = "replproxy.rdb",
    shutdown_timeout: Annotated[
        float,
        typer.Option(
            envvar=env("SHUTDOWN_TIMEOUT"),
            help="Seconds a graceful shutdown (SIGTERM/SIGINT, SHUTDOWN) may take, final "
            "save included; a second signal exits at once.",
        ),
    ] = 10.0,
    repl_diskless_sync_delay: Annotated[
        float,
        typer.Option(
            envvar=env("REPL_DISKLESS_SYNC_DELAY"),
            help="Seconds a downstream full sync needing a fresh snapshot waits for more "
            "replicas to share it (Redis repl-diskless-sync-delay).",
        ),
    ] = 1.0,
    repl_full_sync_backoff_max: Annotated[
        float,
        typer.Option(
            envvar=env("REPL_FULL_SYNC_BACKOFF_MAX"),
            help="Longest wait (seconds) before another full sync to a downstream replica "
            "whose previous ones failed to load (capped exponential backoff; 0 = off).",
        ),
    ] = 30.0,
    client_output_buffer_limit_replica: Annotated[
        str,
        typer.Option(
            envvar=env("CLIENT_OUTPUT_BUFFER_LIMIT_REPLICA"),
            help='"<hard> <soft> <soft-seconds>" for downstream replicas: unsent bytes beyond '
            "hard, or beyond soft for soft-seconds, drop the replica (hard is raised to the "
            "backlog size).",
        ),
    ] = "256mb 64mb 60",
    replica_serve_psync_when_down: Annotated[
        str,
        typer.Option(
            envvar=env("REPLICA_SERVE_PSYNC_WHEN_DOWN"),
            help="yes: keep serving downstream SYNC/PSYNC from the stored stream while the "
            "master link is down; no: refuse with -NOMASTERLINK as Redis does.",
        ),
    ] = "yes",
    maxclients: Annotated[
        int,
        typer.Option(
            envvar=env("MAXCLIENTS"),
            help="Most client connections at once; more get '-ERR max number of clients reached'.",
        ),
    ] = 10000,
    timeout: Annotated[
        int,
        typer.Option(
            envvar=env("TIMEOUT"),
            help="Close a client idle for this many seconds (0 = never; subscribers "
            "and blocked clients are exempt, as in Redis).",
        ),
    ] = 0,
    client_query_buffer_limit: Annotated[
        str,
        typer.Option(
            envvar=env("CLIENT_QUERY_BUFFER_LIMIT"),
            help="Largest unparsed request buffer a client may hold.",
        ),
    ] = "1gb",
    proto_max_bulk_len: Annotated[
        str,
        typer.Option(
            envvar=env("PROTO_MAX_BULK_LEN"), help="Largest bulk string a client may send."
        ),
    ] = "512mb",
    client_output_buffer_limit_normal: Annotated[
        str,
        typer.Option(
            envvar=env("CLIENT_OUTPUT_BUFFER_LIMIT_NORMAL"),
            help='"<hard> <soft> <soft-seconds>" for normal clients (0 = no limit).',
        ),
    ] = "0 0 0",
    client_output_buffer_limit_pubsub: Annotated[
        str,
        typer.Option(
            envvar=env("CLIENT_OUTPUT_BUFFER_LIMIT_PUBSUB"),
            help='"<hard> <soft> <soft-seconds>" for Pub/Sub subscribers.',
        ),
    ] = "32mb 8mb 60",
    replica_serve_stale_data: Annotated[
        str,
        typer.Option(
            envvar=env("REPLICA_SERVE_STALE_DATA"),
            help="yes: answer reads while the master link is down (Redis's default); "
            "no: answer -MASTERDOWN except to STALE-flagged commands.",
        ),
    ] = "yes",
    busy_reply_threshold: Annotated[
        int,
        typer.Option(
            "--busy-reply-threshold",
            "--lua-time-limit",
            envvar=env("BUSY_REPLY_THRESHOLD"),
            min=0,
            help="Milliseconds a Lua script may run before other clients get "
            "-BUSY (until it ends or SCRIPT KILL); 0: never.",
        ),
    ] = 5000,
    requirepass: Annotated[
        str | None,
        typer.Option(
            envvar=env("REQUIREPASS"),
            help="Password of the 'default' user: clients must AUTH (not with "
            "--aclfile: set the default user's password there).",
        ),
    ] = None,
    aclfile: Annotated[
        Path | None,
        typer.Option(
            envvar=env("ACLFILE"),
            help="ACL file of users, in Redis's aclfile syntax and with its full rule "
            "language ('user alice on >pass ~app:* &news -@all +@read'), enforced "
            "as the master's version enforces it (docs/security.md).",
        ),
    ] = None,
    acl_writable: Annotated[
        bool,
        typer.Option(
            "--acl-writable",
            envvar=env("ACL_WRITABLE"),
            help="Allow ACL SETUSER, DELUSER, LOAD and SAVE (SAVE rewrites --aclfile); "
            "without it the users are configuration only.",
        ),
    ] = False,
    slowlog_log_slower_than: Annotated[
        int,
        typer.Option(
            envvar=env("SLOWLOG_LOG_SLOWER_THAN"),
            help="SLOWLOG keeps commands that took at least this many microseconds "
            "(negative: none, 0: all).",
        ),
    ] = 10000,
    slowlog_max_len: Annotated[
        int,
        typer.Option(envvar=env("SLOWLOG_MAX_LEN"), help="Entries SLOWLOG keeps."),
    ] = 128,
    latency_monitor_threshold: Annotated[
        int,
        typer.Option(
            envvar=env("LATENCY_MONITOR_THRESHOLD"),
            help="LATENCY records events of at least this many milliseconds (0: off).",
        ),
    ] = 0,
    maxmemory_clients: Annotated[
        str,
        typer.Option(
            envvar=env("MAXMEMORY_CLIENTS"),
            help="Output buffers of all clients together (a size, or N% of the "
            "machine's memory): over it the biggest clients are closed (0: no "
            "limit; CLIENT NO-EVICT exempts one).",
        ),
    ] = "0",
    acllog_max_len: Annotated[
        int,
        typer.Option(
            envvar=env("ACLLOG_MAX_LEN"),
            help="Entries kept in the ACL LOG (Redis's acllog-max-len).",
        ),
    ] = 128,
    notify_keyspace_events: Annotated[
        str,
        typer.Option(
            envvar=env("NOTIFY_KEYSPACE_EVENTS"),
            help="Keyspace notifications for the master's writes, in Redis's letters "
            "(e.g. AKE; empty: off), published on __keyspace@<db>__ / __keyevent@<db>__ "
            "as a replica does; CONFIG SET can change it.",
        ),
    ] = "",
    tracking_table_max_keys: Annotated[
        int,
        typer.Option(
            envvar=env("TRACKING_TABLE_MAX_KEYS"),
            help="Keys the client-side caching table (CLIENT TRACKING) remembers "
            "before it invalidates the oldest (0: no limit); CONFIG SET can change it.",
        ),
    ] = 1_000_000,
    protected_mode: Annotated[
        str,
        typer.Option(
            envvar=env("PROTECTED_MODE"),
            help="yes: while the default user has no password, refuse clients that "
            "are not local with Redis's -DENIED error (Redis's protected mode); no: "
            "serve them.",
        ),
    ] = "yes",
    enable_debug_command: Annotated[
        str,
        typer.Option(
            envvar=env("ENABLE_DEBUG_COMMAND"),
            help="Who may run DEBUG (DIGEST): no, yes, or local (clients on "
            "127.0.0.1 / ::1), as Redis's enable-debug-command; ACLs apply too.",
        ),
    ] = "local",
    enable_replicaof_command: Annotated[
        str,
        typer.Option(
            envvar=env("ENABLE_REPLICAOF_COMMAND"),
            help="Who may run REPLICAOF/SLAVEOF (re-pointing the relay, which then "
            "authenticates to the new master with its credentials): no, yes, or "
            "local. yes lets remote Sentinels fail it over; ACLs apply too.",
        ),
    ] = "yes",
    master_offset_probe: Annotated[
        str,
        typer.Option(
            envvar=env("MASTER_OFFSET_PROBE"),
            help="yes: a second connection reads the master's offset every second "
            "(INFO replication; its user needs +info) for the true lag; no: the lag "
            "in seconds is estimated from the master's PINGs.",
        ),
    ] = "yes",
    ready_max_lag_bytes: Annotated[
        str,
        typer.Option(
            envvar=env("READY_MAX_LAG_BYTES"),
            help="/readyz answers 503 while the relay is more than this far behind "
            "the master (e.g. 16mb).",
        ),
    ] = "16mb",
    ready_max_lag_seconds: Annotated[
        float,
        typer.Option(
            envvar=env("READY_MAX_LAG_SECONDS"),
            help="/readyz answers 503 while the relay's data is more than this many "
            "seconds behind the master.",
        ),
    ] = 30.0,
    progress: Annotated[
        str,
        typer.Option(
            envvar=env("PROGRESS"),
            help="A progress bar for the initial sync: auto (on a terminal), yes, "
            "no. Progress log lines are written either way.",
        ),
    ] = "auto",
    check_config: Annotated[
        bool,
        typer.Option(
            "--check-config",
            help="Check the settings (and --dir), print each with where it came "
            "from (flag, env, config file line, default), and exit.",
        ),
    ] = False,
    tls_port: Annotated[
        int,
        typer.Option(
            envvar=env("TLS_PORT"),
            help="TLS client port (clients and downstream replicas); 0 = none. With "
            "it, --port 0 disables the plain port.",
        ),
    ] = 0,
    tls_cert_file: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CERT_FILE"),
            help="PEM certificate (chain) of the TLS ports; also the client "
            "certificate towards the master unless --tls-client-cert-file.",
        ),
    ] = None,
    tls_key_file: Annotated[
        str | None,
        typer.Option(envvar=env("TLS_KEY_FILE"), help="PEM private key of --tls-cert-file."),
    ] = None,
    tls_key_file_pass: Annotated[
        str | None,
        typer.Option(envvar=env("TLS_KEY_FILE_PASS"), help="Passphrase of --tls-key-file."),
    ] = None,
    tls_client_cert_file: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CLIENT_CERT_FILE"),
            help="Client certificate for outgoing TLS (master, Sentinels).",
        ),
    ] = None,
    tls_client_key_file: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CLIENT_KEY_FILE"), help="Private key of --tls-client-cert-file."
        ),
    ] = None,
    tls_client_key_file_pass: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CLIENT_KEY_FILE_PASS"), help="Passphrase of --tls-client-key-file."
        ),
    ] = None,
    tls_ca_cert_file: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CA_CERT_FILE"),
            help="CA bundle verifying peers (the master, Sentinels, client "
            "certificates); without it or --tls-ca-cert-dir the master is verified "
            "against the system's trust store.",
        ),
    ] = None,
    tls_ca_cert_dir: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_CA_CERT_DIR"),
            help="Directory of CA certificates (OpenSSL hashed names).",
        ),
    ] = None,
    tls_dh_params_file: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_DH_PARAMS_FILE"),
            help="DH parameters for the TLS ports (older OpenSSL only).",
        ),
    ] = None,
    tls_auth_clients: Annotated[
        str,
        typer.Option(
            envvar=env("TLS_AUTH_CLIENTS"),
            help="Client certificates on --tls-port: yes (required), optional, no.",
        ),
    ] = "yes",
    tls_replication: Annotated[
        str,
        typer.Option(
            envvar=env("TLS_REPLICATION"),
            help="yes: the link to the master uses TLS (rediss:// implies it).",
        ),
    ] = "no",
    tls_protocols: Annotated[
        str | None,
        typer.Option(
            envvar=env("TLS_PROTOCOLS"), help='TLS versions, e.g. "TLSv1.2 TLSv1.3" (the default).'
        ),
    ] = None,
    tls_ciphers: Annotated[
        str | None,
        typer.Option(envvar=env("TLS_CIPHERS"), help="OpenSSL cipher list for TLS <= 1.2."),
    ] = None,
    tls_ciphersuites: Annotated[
        str | None,
        typer.Option(envvar=env("TLS_CIPHERSUITES"), help="OpenSSL TLS 1.3 cipher suites."),
    ] = None,
    tls_prefer_server_ciphers: Annotated[
        str,
        typer.Option(
            envvar=env("TLS_PREFER_SERVER_CIPHERS"),
            help="yes: the TLS ports choose the cipher by their own preference.",
        ),
    ] = "no",
    tls_verify_hostname: Annotated[
        str,
        typer.Option(
            envvar=env("TLS_VERIFY_HOSTNAME"),
            help="yes: the master's (and Sentinels') certificate must name the host "
            "connected to; no: only the chain is verified.",
        ),
    ] = "yes",
    metrics_tls: Annotated[
        str,
        typer.Option(
            envvar=env("METRICS_TLS"),
            help="yes: /metrics and the probes over HTTPS (--tls-cert-file).",
        ),
    ] = "no",
    sentinel: Annotated[
        str | None,
        typer.Option(
            envvar=env("SENTINEL"),
            help="Sentinels to ask for the master: host:port[,host:port...].",
        ),
    ] = None,
    sentinel_master: Annotated[
        str | None,
        typer.Option(
            envvar=env("SENTINEL_MASTER"),
            help="The master's name in the Sentinels (sentinel monitor NAME ...).",
        ),
    ] = None,
    sentinel_username: Annotated[
        str | None,
        typer.Option(envvar=env("SENTINEL_USERNAME"), help="ACL user for the Sentinels."),
    ] = None,
    sentinel_password: Annotated[
        str | None,
        typer.Option(envvar=env("SENTINEL_PASSWORD"), help="Password for the Sentinels."),
    ] = None,
    sentinel_tls: Annotated[
        str,
        typer.Option(
            envvar=env("SENTINEL_TLS"),
            help="yes: connect to the Sentinels over TLS (the client settings).",
        ),
    ] = "no",
    cluster_topology: Annotated[
        str | None,
        typer.Option(
            envvar=env("CLUSTER_TOPOLOGY"),
            help="Cluster mode: the topology file (or http:// URL) that `replproxy "
            "cluster` writes; clients then see this relay as a cluster replica "
            "(CLUSTER SLOTS/SHARDS/NODES, -MOVED). See docs/cluster.md.",
        ),
    ] = None,
    cluster_shard: Annotated[
        str,
        typer.Option(
            envvar=env("CLUSTER_SHARD"),
            help="Cluster mode: the name of this relay's shard in the topology.",
        ),
    ] = "",
    cluster_notify: Annotated[
        str | None,
        typer.Option(
            envvar=env("CLUSTER_NOTIFY"),
            help="Cluster mode: host:port (UDP) of the supervisor, told when a "
            "refresh of the topology is due (-MOVED answered, link down, failover).",
        ),
    ] = None,
    cluster_implicit_readonly: Annotated[
        str,
        typer.Option(
            envvar=env("CLUSTER_IMPLICIT_READONLY"),
            help="Cluster mode: yes: connections start in READONLY mode, so plain "
            "cluster clients (redis-cli -c) read here; no: as a cluster replica, "
            "reads are redirected to the primary until the client sends READONLY.",
        ),
    ] = "yes",
    log_level: LogLevel = "info",
    log_format: LogFormat = "text",
) -> None:
    """Replicate from the master and serve the dataset, until SIGTERM/SIGINT."""
    from replproxy.app import Relay

    try:
        values, origin = _settings(ctx, config)
        try:
            setup_logging(
                values["log_level"], values["log_format"], shard=values["cluster_shard"] or None
            )
        except ConfigError as e:
            raise _located(str(e), origin) from None
        cfg = _build_config(values, origin)
        check_dir(cfg.dir)  # before anything writes there (the disk backlog, snapshots)
        relay = Relay(cfg)
    except (ConfigError, StartupError) as e:
        typer.echo(f"replproxy: {e}", err=True)
        raise typer.Exit(1) from None
    if check_config:
        for line in _describe(ctx, values, origin):
            typer.echo(line)
        return
    # The stream allocates two containers per command (argv and its record) that die young
    # and never form cycles; with CPython's default first threshold (700) the cyclic
    # collector re-scanned them for a quarter of the apply time (benchmarks/apply.py).
    gc.set_threshold(GC_THRESHOLD, 20, 100)
    try:
        trio.run(relay.run)
    except BaseException as e:
        err = find_startup_error(e)
        if err is None:
            raise
        typer.echo(f"replproxy: {err}", err=True)
        raise typer.Exit(1) from None
    if relay.exit_code:
        raise typer.Exit(relay.exit_code)


def _settings(ctx: typer.Context, config: Path | None) -> tuple[dict[str, Any], dict[str, Setting]]:
    """Every `run` setting's value with its precedence applied: flag > env > file > default.

    Returns the values (by parameter name) and, for those the file gave, where it did.
    """
    values = dict(ctx.params)
    origin: dict[str, Setting] = {}
    if config is None:
        return values, origin
    params = {
        p.opts[0][2:]: p
        for p in ctx.command.params
        if p.opts and p.name not in ("config", "check_config")
    }
    for flag, setting in read_config_file(config, params).items():
        param = params.get(flag)
        if param is None or param.name is None:
            raise setting.error(BAD_DIRECTIVE)
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            continue  # a flag or an environment variable wins over the file
        try:
            values[param.name] = param.process_value(ctx, setting.value)
        except Exception as e:  # the CLI library's BadParameter: say it Redis's way
            raise setting.error(_click_message(e)) from None
        origin[param.name] = setting
    return values, origin


_SECRETS = ("masterauth", "requirepass")


def _describe(ctx: typer.Context, values: dict[str, Any], origin: dict[str, Setting]) -> list[str]:
    """`--check-config`: every setting, its value and where the value came from."""
    out = []
    for p in ctx.command.params:
        name = p.name
        if not name or not p.opts or name in ("config", "check_config"):
            continue
        value = values.get(name)
        if name in _SECRETS and value is not None:
            value = "(set)"
        elif name == "upstream" and value is not None:
            value = re.sub(r"//[^@/]*@", "//(credentials)@", str(value))
        if name in origin:
            where = f"config file {origin[name].where}"
        else:
            source = ctx.get_parameter_source(name)
            kind = source.name if source is not None else "DEFAULT"
            where = {"COMMANDLINE": "flag", "ENVIRONMENT": "env"}.get(kind, "default")
            if kind == "ENVIRONMENT":
                where = f"env {env(name.upper())}"
        shown = "" if value is None else str(value)
        if not shown or any(ch.isspace() or ch in "\"'" for ch in shown):
            shown = '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'
        out.append(f"{p.opts[0][2:]} {shown}  # {where}")
    return out


def _click_message(e: Exception) -> str:
    message = getattr(e, "message", None) or str(e)
    return str(message).splitlines()[0] if message else type(e).__name__


_FLAG = re.compile(r"--([a-z0-9-]+)")


def _build_config(values: dict[str, Any], origin: dict[str, Setting]) -> Config:
    """The `Config` from the settings; a bad value from the file names its file and line."""

    def parsed(name: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(values[name], *args)
        except ConfigError as e:
            flag = "--" + name.replace("_", "-")
            msg = str(e) if flag in str(e) else f"{flag}: {e}"
            raise _located(msg, origin) from None

    def yes_no(name: str) -> bool:
        return bool(parsed(name, lambda v: parse_yes_no(name.replace("_", "-"), v)))

    sentinels = None
    if values["sentinel"] or values["sentinel_master"]:
        sentinels = SentinelSettings(
            parsed("sentinel", lambda v: parse_sentinel_addrs(v or "")),
            values["sentinel_master"] or "",
            values["sentinel_username"],
            values["sentinel_password"],
            yes_no("sentinel_tls"),
        )
    if not values["upstream"]:  # unset, or set empty (REPLPROXY_UPSTREAM="")
        values["upstream"] = None
    if values["upstream"] is None and sentinels is None:
        raise ConfigError(
            "no master to replicate from: give --upstream, REPLPROXY_UPSTREAM, "
            "'replicaof <host> <port>' in the --config file, or --sentinel with "
            "--sentinel-master"
        )
    password_file = values["upstream_password_file"]
    if values["upstream"] is None:  # with Sentinels: the master is found at run time
        upstream = Upstream("", 0)
    else:
        upstream = parsed("upstream", parse_upstream_url, password_file)
    tls = TlsSettings(
        port=values["tls_port"],
        cert_file=_path(values["tls_cert_file"]),
        key_file=_path(values["tls_key_file"]),
        key_file_pass=values["tls_key_file_pass"],
        client_cert_file=_path(values["tls_client_cert_file"]),
        client_key_file=_path(values["tls_client_key_file"]),
        client_key_file_pass=values["tls_client_key_file_pass"],
        ca_cert_file=_path(values["tls_ca_cert_file"]),
        ca_cert_dir=_path(values["tls_ca_cert_dir"]),
        dh_params_file=_path(values["tls_dh_params_file"]),
        auth_clients=values["tls_auth_clients"].strip().lower(),
        replication=yes_no("tls_replication")
        or (values["upstream"] is not None and upstream_url_wants_tls(values["upstream"])),
        protocols=values["tls_protocols"],
        ciphers=values["tls_ciphers"],
        ciphersuites=values["tls_ciphersuites"],
        prefer_server_ciphers=yes_no("tls_prefer_server_ciphers"),
        verify_hostname=yes_no("tls_verify_hostname"),
        metrics=yes_no("metrics_tls"),
    )
    if values["masterauth"] is not None and (
        upstream.password is not None or upstream.username is not None
    ):
        raise _located(
            "give the master's credentials in --upstream or with --masteruser/"
            "--masterauth, not both",
            origin,
        )
    if upstream.password is None and values["masterauth"] is not None:
        upstream = Upstream(
            upstream.host, upstream.port, values["masteruser"], values["masterauth"]
        )
    elif upstream.password is None and values["masteruser"] is not None:
        raise _located("--masteruser needs --masterauth (the user's password)", origin)
    if values["progress"] not in ("auto", "yes", "no"):
        raise _located(f"--progress must be auto, yes or no, got {values['progress']!r}", origin)
    progress_bar = values["progress"] == "yes" or (
        values["progress"] == "auto" and sys.stdout.isatty() and values["log_format"] == "text"
    )
    try:
        config = Config(
            upstream=upstream,
            tls=tls,
            sentinel=sentinels,
            cluster_topology=values["cluster_topology"],
            cluster_shard=values["cluster_shard"],
            cluster_notify=values["cluster_notify"],
            cluster_implicit_readonly=yes_no("cluster_implicit_readonly"),
            port=values["port"],
            bind=values["bind"],
            metrics_port=values["metrics_port"],
            metrics_bind=values["metrics_bind"],
            dir=Path(values["dir"]),
            replica_announce_port=values["replica_announce_port"],
            replica_announce_ip=values["replica_announce_ip"],
            repl_timeout=values["repl_timeout"],
            repl_backlog_size=parsed("repl_backlog_size", parse_size),
            repl_backlog_disk_size=parsed("repl_backlog_disk_size", parse_size),
            repl_backlog_disk_ttl=values["repl_backlog_disk_ttl"],
            reconnect_backoff_max=values["reconnect_backoff_max"],
            save=parsed("save", parse_save),
            dbfilename=values["dbfilename"],
            shutdown_timeout=values["shutdown_timeout"],
            repl_diskless_sync_delay=values["repl_diskless_sync_delay"],
            repl_full_sync_backoff_max=values["repl_full_sync_backoff_max"],
            client_output_buffer_limit_replica=parsed(
                "client_output_buffer_limit_replica", parse_output_limit
            ),
            replica_serve_psync_when_down=yes_no("replica_serve_psync_when_down"),
            maxclients=values["maxclients"],
            timeout=values["timeout"],
            client_query_buffer_limit=parsed("client_query_buffer_limit", parse_size),
            proto_max_bulk_len=parsed("proto_max_bulk_len", parse_size),
            client_output_buffer_limit_normal=parsed(
                "client_output_buffer_limit_normal",
                parse_output_limit,
                "client-output-buffer-limit-normal",
            ),
            client_output_buffer_limit_pubsub=parsed(
                "client_output_buffer_limit_pubsub",
                parse_output_limit,
                "client-output-buffer-limit-pubsub",
            ),
            replica_serve_stale_data=yes_no("replica_serve_stale_data"),
            busy_reply_threshold=values["busy_reply_threshold"],
            requirepass=values["requirepass"],
            aclfile=Path(values["aclfile"]) if values["aclfile"] is not None else None,
            acl_writable=values["acl_writable"],
            acllog_max_len=values["acllog_max_len"],
            slowlog_log_slower_than=values["slowlog_log_slower_than"],
            slowlog_max_len=values["slowlog_max_len"],
            latency_monitor_threshold=values["latency_monitor_threshold"],
            maxmemory_clients=values["maxmemory_clients"],
            notify_keyspace_events=values["notify_keyspace_events"],
            tracking_table_max_keys=values["tracking_table_max_keys"],
            protected_mode=yes_no("protected_mode"),
            enable_debug_command=parsed(
                "enable_debug_command",
                lambda v: parse_protected_action("enable-debug-command", v),
            ),
            enable_replicaof_command=parsed(
                "enable_replicaof_command",
                lambda v: parse_protected_action("enable-replicaof-command", v),
            ),
            master_offset_probe=yes_no("master_offset_probe"),
            ready_max_lag_bytes=parsed("ready_max_lag_bytes", parse_size),
            ready_max_lag_seconds=values["ready_max_lag_seconds"],
            progress_bar=progress_bar,
        )
        config.validate()
    except ConfigError as e:
        raise _located(str(e), origin) from None
    return config


def _path(p: str | None) -> Path | None:
    return Path(p) if p else None


def _located(message: str, origin: dict[str, Setting]) -> ConfigError:
    """`message` about a `--flag`; when the config file set that flag, name its line."""
    m = _FLAG.search(message)
    setting = origin.get(m.group(1).replace("-", "_")) if m else None
    return setting.error(message) if setting is not None else ConfigError(message)


@app.command()
def status(
    url: Annotated[
        str,
        typer.Option(
            envvar=env("STATUS_URL"),
            help="The relay: redis://[[user:password@]]host:port (its client port).",
        ),
    ] = "redis://127.0.0.1:6380",
    watch: Annotated[bool, typer.Option("--watch", help="Redraw every --interval.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between redraws.")] = 1.0,
    count: Annotated[
        int | None, typer.Option(help="With --watch: stop after this many screens.")
    ] = None,
) -> None:
    """The relay's state on one screen: link, lag, syncs, backlog, replicas, clients."""
    from replproxy.status import StatusError, status_command

    try:
        status_command(url, watch, interval, count)
    except StatusError as e:
        typer.echo(f"replproxy: {e}", err=True)
        raise typer.Exit(1) from None


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    """The `replproxy` command: a bad flag is one line and exit status 1 (redis-server's way),
    not a usage box."""
    try:
        rv = app(standalone_mode=False)
    except Exception as e:
        # The CLI library's usage errors (BadParameter, NoSuchOption, ...) carry these two.
        if not (hasattr(e, "format_message") and hasattr(e, "exit_code")):
            raise
        if type(e).__name__ == "NoArgsIsHelpError":  # the help was printed: not an error
            sys.exit(0)
        typer.echo(f"replproxy: {e.format_message()}", err=True)
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
