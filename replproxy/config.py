"""Runtime configuration: one frozen dataclass, built by the CLI from flags and REPLPROXY_* env.

Defaults follow redis.conf where a Redis setting exists (repl-timeout 60, repl-ping period),
and are larger where a relay's job differs (the backlog: a relay exists to absorb reconnects).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_upstream_url(url: str) -> Upstream:
    """`redis://[user:password@]host[:port][/db]`: the master to replicate from.

    `rediss://` (TLS) is reserved and refused with a clear message until it is supported.
    """
    parts = urlsplit(url)
    if parts.scheme == "rediss":
        raise ConfigError("rediss:// (TLS to the master) is not supported yet; use redis://")
    if parts.scheme != "redis":
        raise ConfigError(f"--upstream must be a redis:// URL, got {url!r}")
    if not parts.hostname:
        raise ConfigError(f"--upstream has no host: {url!r}")
    try:
        port = parts.port or 6379
    except ValueError as e:
        raise ConfigError(f"--upstream has an invalid port: {url!r}") from e
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise ConfigError("--upstream names a user without a password (redis://user:pass@host)")
    return Upstream(parts.hostname, port, username, password)


def parse_size(text: str) -> int:
    """A Redis-style memory size: `1gb`, `64mb`, `512kb`, `100b`, or bytes (`1048576`)."""
    t = text.strip().lower()
    units = {
        "gb": 1024**3,
        "mb": 1024**2,
        "kb": 1024,
        "g": 1000**3,
        "m": 1000**2,
        "k": 1000,
        "b": 1,
    }
    for suffix, mult in units.items():
        if t.endswith(suffix) and t[: -len(suffix)].isdigit():
            return int(t[: -len(suffix)]) * mult
    if t.isdigit():
        return int(t)
    raise ConfigError(f"not a size: {text!r} (examples: 512mb, 1gb, 1048576)")


@dataclass(frozen=True)
class OutputLimit:
    """`client-output-buffer-limit replica <hard> <soft> <soft-seconds>` (0 disables a limit)."""

    hard: int
    soft: int
    soft_seconds: int

    def __str__(self) -> str:
        return f"{self.hard} {self.soft} {self.soft_seconds}"


def parse_output_limit(text: str, name: str = "client-output-buffer-limit-replica") -> OutputLimit:
    """`"256mb 64mb 60"`: hard limit, soft limit, seconds the soft limit may be exceeded."""
    words = text.split()
    if len(words) != 3:
        raise ConfigError(f"--{name} needs <hard> <soft> <soft-seconds>, got {text!r}")
    if not words[2].isdigit():
        raise ConfigError(f"--{name}: bad seconds {words[2]!r}")
    return OutputLimit(parse_size(words[0]), parse_size(words[1]), int(words[2]))


def parse_yes_no(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "true", "1"):
        return True
    if t in ("no", "false", "0"):
        return False
    raise ConfigError(f"--{name} must be yes or no, got {text!r}")


SavePoint = tuple[int, int]
"""One `save <seconds> <changes>` rule: snapshot after `seconds` if at least `changes` writes."""

# Redis 7's built-in default (`save 3600 1 300 100 60 10000`).
DEFAULT_SAVE = "3600 1 300 100 60 10000"


def parse_save(text: str) -> tuple[SavePoint, ...]:
    """`--save "<seconds> <changes> [<seconds> <changes> ...]"`, exactly as redis.conf's `save`.

    `""` disables snapshots by policy (and, as in Redis, on shutdown unless `SHUTDOWN SAVE`).
    Seconds must be >= 1 and changes >= 0 (`setConfigSaveOption`). The literal `""` (as
    redis.conf spells it) is accepted too: an empty environment variable counts as unset.
    """
    words = text.split()
    if words in (['""'], ["''"]):
        words = []
    if len(words) % 2:
        raise ConfigError(f"--save needs <seconds> <changes> pairs, got {text!r}")
    points: list[SavePoint] = []
    for i in range(0, len(words), 2):
        try:
            seconds, changes = int(words[i]), int(words[i + 1])
        except ValueError:
            raise ConfigError(f"--save: not integers: {words[i]!r} {words[i + 1]!r}") from None
        if seconds < 1 or changes < 0:
            raise ConfigError(
                f"--save: invalid rule {seconds} {changes} (seconds >= 1, changes >= 0)"
            )
        points.append((seconds, changes))
    return tuple(points)


def format_save(points: tuple[SavePoint, ...]) -> str:
    return " ".join(f"{s} {c}" for s, c in points)


@dataclass(frozen=True)
class Config:
    upstream: Upstream
    port: int = 6380
    bind: str = "127.0.0.1"
    metrics_port: int = 9480
    metrics_bind: str = "0.0.0.0"
    dir: Path = Path(".")
    replica_announce_port: int | None = None
    replica_announce_ip: str | None = None
    repl_timeout: float = 60.0
    repl_backlog_size: int = 128 * 1024 * 1024
    # The disk-backed log (0 = off) and the age past which its oldest segments go (0 = none).
    repl_backlog_disk_size: int = 0
    repl_backlog_disk_ttl: float = 0.0
    reconnect_backoff_min: float = 0.5
    reconnect_backoff_max: float = 10.0
    ready_max_lag_bytes: int = 16 * 1024 * 1024
    ready_max_io_seconds: float = 30.0
    save: tuple[SavePoint, ...] = parse_save(DEFAULT_SAVE)
    dbfilename: str = "replproxy.rdb"
    shutdown_timeout: float = 10.0
    # Downstream replication (replproxy as the master of its own replicas).
    repl_diskless_sync_delay: float = 1.0
    client_output_buffer_limit_replica: OutputLimit = OutputLimit(
        256 * 1024 * 1024, 64 * 1024 * 1024, 60
    )
    replica_serve_psync_when_down: bool = True
    # The client endpoint (replproxy.server), with redis.conf's names and defaults.
    maxclients: int = 10000
    timeout: int = 0  # seconds a client may idle before it is closed (0 = never)
    client_query_buffer_limit: int = 1024 * 1024 * 1024
    proto_max_bulk_len: int = 512 * 1024 * 1024
    client_output_buffer_limit_normal: OutputLimit = OutputLimit(0, 0, 0)
    client_output_buffer_limit_pubsub: OutputLimit = OutputLimit(
        32 * 1024 * 1024, 8 * 1024 * 1024, 60
    )
    replica_serve_stale_data: bool = True
    # A script running longer (ms) makes other clients get -BUSY until it ends or SCRIPT
    # KILL; 0 disables the check (busy-reply-threshold, formerly lua-time-limit).
    busy_reply_threshold: int = 5000
    # Clients must AUTH: the `default` user's password, and/or users from an ACL file.
    requirepass: str | None = None
    aclfile: Path | None = None

    @property
    def listening_port(self) -> int:
        """What we tell the master in `REPLCONF listening-port` (announce port wins)."""
        return self.replica_announce_port or self.port

    @property
    def snapshot_path(self) -> Path:
        """The last snapshot received from the master (kept by the link)."""
        return self.dir / "upstream.rdb"

    @property
    def dbfile_path(self) -> Path:
        """replproxy's own persisted snapshot: the restart state (`replproxy.persistence`)."""
        return self.dir / self.dbfilename

    def validate(self) -> None:
        for name in ("port", "metrics_port"):
            v = getattr(self, name)
            if not 0 <= v <= 65535:
                raise ConfigError(f"--{name.replace('_', '-')} must be 0..65535, got {v}")
        if self.repl_timeout <= 0:
            raise ConfigError("--repl-timeout must be positive")
        if self.repl_backlog_disk_size < 0 or self.repl_backlog_disk_ttl < 0:
            raise ConfigError("--repl-backlog-disk-size and --repl-backlog-disk-ttl must be >= 0")
        if self.repl_backlog_size < 16 * 1024:
            raise ConfigError("--repl-backlog-size must be at least 16kb (Redis's minimum)")
        if (
            self.reconnect_backoff_min <= 0
            or self.reconnect_backoff_max < self.reconnect_backoff_min
        ):
            raise ConfigError("reconnect backoff: need 0 < min <= max")
        name = self.dbfilename
        if not name or "/" in name or name in (".", ".."):
            raise ConfigError(f"--dbfilename must be a file name, not a path: {name!r}")
        upstream = self.snapshot_path.name
        if name == upstream or name.startswith(upstream + "."):
            raise ConfigError(f"--dbfilename {name!r} collides with the link's {upstream}")
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must be >= 0")
        if self.repl_diskless_sync_delay < 0:
            raise ConfigError("--repl-diskless-sync-delay must be >= 0")
        if self.maxclients < 1:
            raise ConfigError("--maxclients must be at least 1")
        if self.timeout < 0:
            raise ConfigError("--timeout must be >= 0")
        if self.client_query_buffer_limit < 1024 * 1024:
            raise ConfigError("--client-query-buffer-limit must be at least 1mb (Redis's minimum)")
        if self.proto_max_bulk_len < 1024 * 1024:
            raise ConfigError("--proto-max-bulk-len must be at least 1mb (Redis's minimum)")
