"""CONFIG, SLOWLOG and LATENCY: what operators read and tune on a replica.

- CONFIG GET answers every parameter a replica of the master's version has (captured from
  real servers: `replproxy.replica_defaults`), with the relay's own settings under their
  redis.conf names and the server's defaults for the rest (docs/configuration.md); secrets
  read `<redacted>`. CONFIG RESETSTAT zeroes what INFO counts. CONFIG SET is
  `replproxy.session.config_set`.
- SLOWLOG GET/LEN/RESET and LATENCY LATEST/HISTORY/RESET/DOCTOR/GRAPH/HISTOGRAM read the
  hub's `replproxy.session.stats`. `<container> HELP` is the master's own text (the command
  table's).

Handlers only; the counting is the hub's.
"""

from __future__ import annotations

from replproxy.config import OutputLimit
from replproxy.errors import SYNTAX
from replproxy.glob import stringmatch
from replproxy.keyspace.notify import flags_text
from replproxy.keyspace.reads import ReplyError, arg_long
from replproxy.replica_defaults import for_dialect
from replproxy.resp import reply
from replproxy.session.registry import Client, command
from replproxy.tls import config_params as tls_config_params

OK = reply.OK
REDACTED = "<redacted>"


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


# ---- CONFIG ----


def _output_limits(c: Client) -> str:
    cfg = c.hub.config

    def words(lim: OutputLimit) -> str:
        return f"{lim.hard} {lim.soft} {lim.soft_seconds}"

    return (
        f"normal {words(cfg.client_output_buffer_limit_normal)} "
        f"slave {words(cfg.client_output_buffer_limit_replica)} "
        f"pubsub {words(cfg.client_output_buffer_limit_pubsub)}"
    )


def relay_params(c: Client) -> dict[str, str]:
    """The relay's own settings under redis.conf's names (they replace the defaults)."""
    hub = c.hub
    cfg = hub.config
    up = hub.view.upstream
    stale = "yes" if cfg.replica_serve_stale_data else "no"
    return {
        "bind": cfg.bind,
        "port": str(hub.view.bound_port or cfg.port) if cfg.plain_port_enabled else "0",
        "databases": str(c.ks.databases),
        "dir": str(cfg.dir.resolve()),
        "dbfilename": cfg.dbfilename,
        "save": " ".join(f"{s} {n}" for s, n in cfg.save),
        "appendonly": "no",
        "maxclients": str(cfg.maxclients),
        "timeout": str(cfg.timeout),
        "client-query-buffer-limit": str(cfg.client_query_buffer_limit),
        "proto-max-bulk-len": str(cfg.proto_max_bulk_len),
        "client-output-buffer-limit": _output_limits(c),
        "replicaof": f"{up.host} {up.port}",
        "slaveof": f"{up.host} {up.port}",
        "replica-read-only": "yes",
        "slave-read-only": "yes",
        "replica-serve-stale-data": stale,
        "slave-serve-stale-data": stale,
        # Never promote a relay (INFO slave_priority too).
        "replica-priority": "0",
        "slave-priority": "0",
        "repl-backlog-size": str(cfg.repl_backlog_size),
        "repl-timeout": str(int(cfg.repl_timeout)),
        "repl-diskless-sync-delay": str(int(cfg.repl_diskless_sync_delay)),
        # Secrets are never shown: a set one reads as REDACTED (docs/security.md).
        "requirepass": REDACTED if cfg.requirepass else "",
        "masterauth": REDACTED if up.password else "",
        "masteruser": up.username or "",
        "aclfile": str(cfg.aclfile) if cfg.aclfile else "",
        "replica-announce-ip": cfg.replica_announce_ip or "",
        "slave-announce-ip": cfg.replica_announce_ip or "",
        "replica-announce-port": str(cfg.replica_announce_port or 0),
        "slave-announce-port": str(cfg.replica_announce_port or 0),
        "enable-debug-command": cfg.enable_debug_command,
        "protected-mode": "yes" if cfg.protected_mode else "no",
        "acllog-max-len": str(cfg.acllog_max_len),
        "slowlog-log-slower-than": str(hub.slowlog.slower_than),
        "slowlog-max-len": str(hub.slowlog.max_len),
        "latency-monitor-threshold": str(hub.latency.threshold_ms),
        "maxmemory-clients": hub.memory.setting,
        "busy-reply-threshold": str(cfg.busy_reply_threshold),
        "notify-keyspace-events": flags_text(c.ks.notify_config),
        "tracking-table-max-keys": str(hub.tracking.max_keys),
        "lua-time-limit": str(cfg.busy_reply_threshold),
        "shutdown-timeout": str(int(cfg.shutdown_timeout)),
        "logfile": "",
        "daemonize": "no",
        "pidfile": "",
        "unixsocket": "",
        **tls_config_params(cfg.tls, None, REDACTED),
    }


def config_params(c: Client) -> dict[str, str]:
    """What CONFIG GET shows: every parameter of a replica of the master's version (its
    defaults), the relay's own settings replacing theirs."""
    params = dict(for_dialect(c.ks.dialect).config)
    for name, value in relay_params(c).items():
        if name in params:
            params[name] = value
    return params


def config_get(c: Client, patterns: list[bytes]) -> bytes:
    params = config_params(c)
    flat: list[bytes] = []
    seen: set[str] = set()
    for raw in patterns:
        pattern = raw.lower()
        exact = params.get(pattern.decode("utf-8", "replace"))
        if exact is not None and not any(ch in raw for ch in b"*?["):
            # A plain name is answered under the spelling the client used (7.0+).
            name = pattern.decode("utf-8", "replace")
            if name not in seen:
                seen.add(name)
                flat += [raw if c.ks.dialect.config_get_echoes_name else pattern, exact.encode()]
            continue
        for name, value in params.items():
            if name not in seen and stringmatch(pattern, name.encode()):
                seen.add(name)
                flat += [name.encode(), value.encode()]
    return reply.bulk_map(flat, c.proto)


@command("config")
def cmd_config(c: Client, argv: list[bytes]) -> bytes:
    sub = argv[1].lower()
    if sub == b"get":
        return config_get(c, argv[2:])
    if sub == b"resetstat":
        c.hub.reset_stats()
        return OK
    if sub == b"rewrite":
        raise ReplyError(
            b"ERR replproxy is configured by its command line, environment and "
            b"--config file: CONFIG REWRITE is not supported"
        )
    raise ReplyError(SYNTAX)


# ---- SLOWLOG ----


@command("slowlog")
def cmd_slowlog(c: Client, argv: list[bytes]) -> bytes:
    sub = argv[1].lower()
    log = c.hub.slowlog
    if sub == b"reset" and len(argv) == 2:
        log.reset()
        return OK
    if sub == b"len" and len(argv) == 2:
        return reply.integer(len(log.entries))
    if sub == b"get" and len(argv) in (2, 3):
        count = 10
        if len(argv) == 3:
            count = arg_long(argv[2], b"ERR count should be greater than or equal to -1")
            if count < -1:
                raise ReplyError(b"ERR count should be greater than or equal to -1")
            if count == -1:
                count = len(log.entries)
        entries = list(log.entries)[:count]
        out = [
            reply.array(
                [
                    reply.integer(e.id),
                    reply.integer(e.time),
                    reply.integer(e.usec),
                    reply.bulk_array(e.argv, c.proto),
                    reply.bulk(e.peer.encode()),
                    reply.bulk(e.name),
                ]
            )
            for e in entries
        ]
        return reply.array(out)
    raise ReplyError(
        f"ERR unknown subcommand or wrong number of arguments for "
        f"'{_s(argv[1])}'. Try SLOWLOG HELP.".encode()
    )


# ---- LATENCY ----


def _latency_disabled(c: Client) -> bytes:
    dialect = c.ks.dialect
    url = dialect.latency_docs_url
    text = (
        f"I'm sorry, Dave, I can't do that. Latency monitoring is disabled in this "
        f'{"Valkey" if dialect.valkey else "Redis"} instance. You may use "CONFIG SET '
        f'latency-monitor-threshold <milliseconds>." in order to enable it.'
    )
    if url:
        text += f" If we weren't in a deep space mission I'd suggest to take a look at {url}."
    return (text + "\n").encode()


def _doctor(c: Client) -> bytes:
    mon = c.hub.latency
    if mon.threshold_ms <= 0:
        return _latency_disabled(c)
    if not mon.events:
        return (
            b"Dave, no latency spike was observed during the lifetime of this Redis "
            b"instance, not in the slightest bit. I honestly think you ought to sleep "
            b"better.\n"
        )
    lines = [
        b"Dave, I have observed latency spikes in this Redis instance. You don't mind "
        b"talking about it, do you Dave?\n"
    ]
    for i, (name, ev) in enumerate(mon.events.items(), 1):
        samples = [ms for _, ms in ev.samples]
        avg = sum(samples) // len(samples) if samples else 0
        first = ev.samples[0][0] if ev.samples else 0
        lines.append(
            f"{i}. {name}: {len(samples)} latency spikes (average {avg}ms, mean deviation "
            f"0ms, period {0 if len(samples) < 2 else (ev.samples[-1][0] - first) // (len(samples) - 1)} "  # noqa: E501
            f"sec). Worst all time event {ev.max}ms.\n".encode()
        )
    lines.append(
        b"\nI have a few advices for you:\n\n- Check your commands: a read of a "
        b"big collection (LRANGE, HGETALL, SMEMBERS, ZRANGE...) takes time in "
        b"proportion to its size; SLOWLOG GET lists the slowest.\n"
    )
    return b"".join(lines)


def _graph(name: str, samples: list[tuple[int, int]], now: int) -> bytes:
    """`latencyCommandGenSparkeline`, simplified: one column per sample, its height in
    eight steps of the highest, with how long ago it was under it."""
    top = max(ms for _, ms in samples) or 1
    rows = []
    for level in range(8, 0, -1):
        rows.append("".join("#" if ms * 8 >= level * top else " " for _, ms in samples))
    ages = " ".join(f"{now - t}s" for t, _ in samples)
    low = min(ms for _, ms in samples)
    head = f"{name} - high {top} ms, low {low} ms (all time high {top} ms)\n"
    return (head + "-" * 80 + "\n" + "\n".join(rows) + "\n\n" + ages + "\n").encode()


def _histogram(c: Client, names: list[bytes]) -> bytes:
    stats = c.hub.cmdstats.commands
    chosen = list(stats) if not names else [n.lower() for n in names if n.lower() in stats]
    out: list[bytes] = []
    count = 0
    for name in chosen:
        st = stats[name]
        if not st.calls:
            continue
        buckets = st.hist.pow2_usec()
        flat = b"".join(reply.integer(b) + reply.integer(n) for b, n in buckets)
        out.append(
            reply.bulk(name)
            + reply.map_len(2, c.proto)
            + reply.bulk(b"calls")
            + reply.integer(st.calls)
            + reply.bulk(b"histogram_usec")
            + reply.map_len(len(buckets), c.proto)
            + flat
        )
        count += 1
    return reply.map_len(count, c.proto) + b"".join(out)


@command("latency")
def cmd_latency(c: Client, argv: list[bytes]) -> bytes:
    mon = c.hub.latency
    sub = argv[1].lower()
    n = len(argv)
    now = int(c.hub.wall())
    if sub == b"latest" and n == 2:
        return reply.array(
            [
                reply.array(
                    [
                        reply.bulk(name.encode()),
                        reply.integer(ev.samples[-1][0]),
                        reply.integer(ev.samples[-1][1]),
                        reply.integer(ev.max),
                    ]
                )
                for name, ev in mon.events.items()
                if ev.samples
            ]
        )
    if sub == b"history" and n == 3:
        ev = mon.events.get(_s(argv[2]))
        samples = list(ev.samples) if ev else []
        return reply.array(
            [reply.array([reply.integer(t), reply.integer(ms)]) for t, ms in samples]
        )
    if sub == b"reset" and n >= 2:
        return reply.integer(mon.reset([_s(a) for a in argv[2:]]))
    if sub == b"doctor" and n == 2:
        return reply.verbatim(_doctor(c), c.proto)
    if sub == b"graph" and n == 3:
        name = _s(argv[2])
        ev = mon.events.get(name)
        if ev is None or not ev.samples:
            raise ReplyError(f"ERR No samples available for event '{name}'".encode())
        return reply.verbatim(_graph(name, list(ev.samples), now), c.proto)
    if sub == b"histogram":
        return _histogram(c, argv[2:])
    raise ReplyError(
        f"ERR unknown subcommand or wrong number of arguments for "
        f"'{_s(argv[1])}'. Try LATENCY HELP.".encode()
    )
