"""Runtime configuration: one frozen dataclass, built by the CLI from flags and REPLPROXY_* env.

Defaults follow redis.conf where a Redis setting exists (repl-timeout 60, repl-ping period),
and are larger where a relay's job differs (the backlog: a relay exists to absorb reconnects).
"""

from __future__ import annotations

import os
import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Upstream:
    host: str
    port: int
    username: str | None = None
    # The master's password (masterauth): never in a repr, a log line or an error message.
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


# The userinfo of a URL: everything between "//" and the last "@" before the path.
_URL_PASSWORD = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*://[^/@:]*):[^/]*@")


def mask_url(url: str) -> str:
    """`url` with its password replaced by `***` (`redis://user:***@host`), for messages."""
    return _URL_PASSWORD.sub(r"\1:***@", url, count=1)


def parse_upstream_url(url: str, password_file: Path | None = None) -> Upstream:
    """`redis[s]://[user[:password]@]host[:port][/db]`: the master to replicate from.

    The password may come from `password_file` instead (its first line), which keeps it out
    of the process's arguments; the URL must not carry one then. Error messages show the URL
    with its password masked. `rediss://` is the same with TLS: the CLI turns
    `--tls-replication` on for it (`upstream_url_wants_tls`).
    """
    shown = mask_url(url)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"--upstream must be a redis:// or rediss:// URL, got {shown!r}")
    if not parts.hostname:
        raise ConfigError(f"--upstream has no host: {shown!r}")
    try:
        port = parts.port or 6379
    except ValueError:
        raise ConfigError(f"--upstream has an invalid port: {shown!r}") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password_file is not None:
        if password is not None:
            raise ConfigError(
                "--upstream-password-file: the --upstream URL has a password "
                "too; give it in one place only"
            )
        password = read_password_file(password_file, "--upstream-password-file")
    if username and password is None:
        raise ConfigError(
            "--upstream names a user without a password (redis://user:pass@host, "
            "or --upstream-password-file)"
        )
    return Upstream(parts.hostname, port, username, password)


def read_password_file(path: Path, flag: str) -> str:
    """A password kept in a file (a Kubernetes secret): its first line, without the line
    break."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{flag} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{flag} {path}: not UTF-8 text") from None
    password = text.split("\n", 1)[0].removesuffix("\r")
    if not password:
        raise ConfigError(f"{flag} {path}: the file is empty")
    return password


def upstream_url_wants_tls(url: str) -> bool:
    """`rediss://`: the link to the master uses TLS (as `tls-replication yes`)."""
    return urlsplit(url).scheme == "rediss"


# ---- TLS and Sentinel settings (their contexts and clients: replproxy.tls, .sentinel) ----

SENTINEL_DEFAULT_PORT = 26379

AUTH_CLIENTS = ("yes", "no", "optional")

_PROTOCOLS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = list(_PROTOCOLS.values())
# REDIS_TLS_PROTO_DEFAULT
DEFAULT_PROTOCOLS = (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3)


def parse_protocols(text: str | None) -> tuple[ssl.TLSVersion, ssl.TLSVersion]:
    """`tls-protocols "TLSv1.2 TLSv1.3"`: the lowest and highest version allowed.

    Redis turns each version off or on; Python's ssl can only set a range, so a set with a
    hole (`TLSv1 TLSv1.3`) is refused rather than silently widened.
    """
    if text is None or not text.strip():
        return DEFAULT_PROTOCOLS
    chosen = set()
    for word in text.split():
        v = _PROTOCOLS.get(word.lower())
        if v is None:
            raise ConfigError(
                f"--tls-protocols: invalid protocol {word!r}: use a combination of 'TLSv1', "
                "'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'"
            )
        chosen.add(v)
    idx = sorted(_ORDER.index(v) for v in chosen)
    if idx != list(range(idx[0], idx[-1] + 1)):
        raise ConfigError(
            f"--tls-protocols {text!r}: the versions must be consecutive (Python's ssl "
            "module sets a minimum and a maximum version)"
        )
    return _ORDER[idx[0]], _ORDER[idx[-1]]


@dataclass(frozen=True)
class TlsSettings:
    """The `tls-*` settings, with redis.conf's names and defaults (plus `verify_hostname`
    and `metrics`, the relay's own)."""

    port: int = 0  # the TLS client port; 0: none
    cert_file: Path | None = None
    key_file: Path | None = None
    key_file_pass: str | None = field(default=None, repr=False)
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    client_key_file_pass: str | None = field(default=None, repr=False)
    ca_cert_file: Path | None = None
    ca_cert_dir: Path | None = None
    dh_params_file: Path | None = None
    auth_clients: str = "yes"
    replication: bool = False  # the link to the master uses TLS (rediss:// sets it)
    protocols: str | None = None
    ciphers: str | None = None
    ciphersuites: str | None = None
    prefer_server_ciphers: bool = False
    verify_hostname: bool = True
    metrics: bool = False  # /metrics and the probes over HTTPS

    @property
    def serves(self) -> bool:
        """Whether the relay accepts TLS connections anywhere (it then needs a certificate)."""
        return self.port != 0 or self.metrics

    def validate(self) -> None:
        """Refuse settings that cannot work, with Redis's reasons where Redis has them."""
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--tls-port must be 0..65535, got {self.port}")
        if self.auth_clients not in AUTH_CLIENTS:
            raise ConfigError(
                f"--tls-auth-clients must be yes, no or optional, got {self.auth_clients!r}"
            )
        parse_protocols(self.protocols)
        if self.serves and (self.cert_file is None or self.key_file is None):
            what = "--tls-port" if self.port else "--metrics-tls yes"
            raise ConfigError(f"{what} needs --tls-cert-file and --tls-key-file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("--tls-cert-file and --tls-key-file go together")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ConfigError("--tls-client-cert-file and --tls-client-key-file go together")
        if self.port and self.auth_clients != "no" and not self.has_ca:
            raise ConfigError(
                "Either --tls-ca-cert-file or --tls-ca-cert-dir must be specified when "
                "--tls-auth-clients is enabled (yes or optional, Redis's default is yes)"
            )

    @property
    def has_ca(self) -> bool:
        return self.ca_cert_file is not None or self.ca_cert_dir is not None

    def client_identity(self) -> tuple[Path, Path, str | None] | None:
        """The certificate the relay presents as a client (`redis_tls_client_ctx`, else the
        server one), or None."""
        if self.client_cert_file is not None and self.client_key_file is not None:
            return self.client_cert_file, self.client_key_file, self.client_key_file_pass
        if self.cert_file is not None and self.key_file is not None:
            return self.cert_file, self.key_file, self.key_file_pass
        return None


@dataclass(frozen=True)
class SentinelSettings:
    addrs: tuple[tuple[str, int], ...]
    master_name: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False  # connect to the Sentinels over TLS (the client context of replproxy.tls)

    def validate(self) -> None:
        if not self.addrs:
            raise ConfigError("--sentinel needs at least one host:port")
        if not self.master_name:
            raise ConfigError("--sentinel needs --sentinel-master NAME")
        if self.username and self.password is None:
            raise ConfigError("--sentinel-username needs --sentinel-password")


def parse_sentinel_addrs(text: str) -> tuple[tuple[str, int], ...]:
    """`host:port[,host:port...]` (`[v6]:port` for IPv6; the port defaults to 26379)."""
    out: list[tuple[str, int]] = []
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        host, port_text = item, ""
        if item.startswith("["):
            end = item.find("]")
            if end < 0:
                raise ConfigError(f"--sentinel: bad address {item!r}")
            host, rest = item[1:end], item[end + 1 :]
            port_text = rest[1:] if rest.startswith(":") else rest
        elif item.count(":") == 1:
            host, port_text = item.split(":")
        try:
            port = int(port_text) if port_text else SENTINEL_DEFAULT_PORT
        except ValueError:
            raise ConfigError(f"--sentinel: bad port in {item!r}") from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"--sentinel: bad address {item!r}")
        out.append((host, port))
    if not out:
        raise ConfigError("--sentinel needs at least one host:port")
    return tuple(out)


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


PROTECTED_ACTIONS = ("no", "yes", "local")


def parse_protected_action(name: str, text: str) -> str:
    """`enable-debug-command`-style options: no, yes or local (only from 127.0.0.1/::1)."""
    t = text.strip().lower()
    if t not in PROTECTED_ACTIONS:
        raise ConfigError(f"--{name} must be no, yes or local, got {text!r}")
    return t


def parse_yes_no(name: str, text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "true", "1"):
        return True
    if t in ("no", "false", "0"):
        return False
    raise ConfigError(f"--{name} must be yes or no, got {text!r}")


def total_system_memory() -> int:
    """The machine's memory (INFO total_system_memory)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def parse_maxmemory_clients(text: str) -> int:
    """`maxmemory-clients`: a size (`64mb`), or `N%` (1-100) of the machine's memory (Redis
    takes a percentage of `maxmemory`, which a relay does not have); 0 = no limit."""
    t = text.strip()
    if t.endswith("%"):
        pct = t[:-1]
        if not pct.isdigit() or not 0 < int(pct) <= 100:
            raise ConfigError(f"--maxmemory-clients: bad percentage {text!r} (1%..100%)")
        return total_system_memory() * int(pct) // 100
    return parse_size(t)


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
    metrics_bind: str = "127.0.0.1"
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
    ready_max_lag_seconds: float = 30.0
    # A second connection to the master reads its offset every second: the true lag.
    master_offset_probe: bool = True
    progress_bar: bool = False  # a progress bar for the initial sync (the CLI: on a terminal)
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
    # Longest wait before another full sync to a downstream replica whose previous ones
    # failed (capped exponential backoff; 0 = never wait).
    repl_full_sync_backoff_max: float = 30.0
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
    # SLOWLOG and LATENCY (redis.conf's names and defaults; CONFIG SET changes them).
    slowlog_log_slower_than: int = 10000
    slowlog_max_len: int = 128
    latency_monitor_threshold: int = 0
    # Output buffers of all clients together: over it the biggest are closed ("0" = no
    # limit; a size, or a percentage of the machine's memory: `parse_maxmemory_clients`).
    maxmemory_clients: str = "0"
    # Clients must AUTH: the `default` user's password, or users from an ACL file
    # (`replproxy.acl`); never both (Redis silently lets the file's `default` win).
    requirepass: str | None = field(default=None, repr=False)
    aclfile: Path | None = None
    acl_writable: bool = False  # ACL SETUSER/DELUSER/LOAD/SAVE allowed at run time
    acllog_max_len: int = 128
    # Keyspace notifications (Redis's letters; "" off) and the client-side caching table's
    # bound (0: none): both also settable with CONFIG SET.
    notify_keyspace_events: str = ""
    tracking_table_max_keys: int = 1_000_000
    # Non-local clients are refused while `default` has no password (Redis's protected mode).
    protected_mode: bool = True
    # Who may run DEBUG and REPLICAOF: "no", "yes" or "local" (Redis's enable-*-command).
    enable_debug_command: str = "local"
    enable_replicaof_command: str = "yes"
    # Cluster mode (replproxy.cluster): the topology file or URL, this relay's shard in it,
    # where to ask the supervisor for a refresh, and whether clients start in READONLY.
    cluster_topology: str | None = None
    cluster_shard: str = ""
    cluster_notify: str | None = None
    cluster_implicit_readonly: bool = True
    # TLS (replproxy.tls) and the Sentinel-aware upstream (replproxy.sentinel).
    tls: TlsSettings = field(default_factory=TlsSettings)
    sentinel: SentinelSettings | None = None

    @property
    def plain_port_enabled(self) -> bool:
        """`--port 0` with a `--tls-port` disables the plain port, as Redis; without one it
        picks a free port (a relay listening nowhere would be useless)."""
        return self.port != 0 or self.tls.port == 0

    @property
    def listening_port(self) -> int:
        """What we tell the master in `REPLCONF listening-port`: the announce port, else the
        TLS port when the link uses TLS (Redis's rule) or the plain port is off, else --port."""
        if self.replica_announce_port:
            return self.replica_announce_port
        if self.tls.port and (self.tls.replication or not self.plain_port_enabled):
            return self.tls.port
        return self.port

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
        if self.ready_max_lag_bytes < 0 or self.ready_max_lag_seconds < 0:
            raise ConfigError("--ready-max-lag-bytes and --ready-max-lag-seconds must be >= 0")
        if self.shutdown_timeout < 0:
            raise ConfigError("--shutdown-timeout must be >= 0")
        if self.repl_full_sync_backoff_max < 0:
            raise ConfigError("--repl-full-sync-backoff-max must be >= 0")
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
        if self.requirepass is not None and self.aclfile is not None:
            raise ConfigError(
                "--requirepass and --aclfile: give the default user's password in the ACL file "
                "('user default on >password ...'); Redis would let the file silently replace "
                "--requirepass"
            )
        for name in ("enable_debug_command", "enable_replicaof_command"):
            if getattr(self, name) not in PROTECTED_ACTIONS:
                raise ConfigError(f"--{name.replace('_', '-')} must be no, yes or local")
        if self.slowlog_max_len < 0:
            raise ConfigError("--slowlog-max-len must be >= 0")
        if self.latency_monitor_threshold < 0:
            raise ConfigError("--latency-monitor-threshold must be >= 0")
        parse_maxmemory_clients(self.maxmemory_clients)
        if self.acllog_max_len < 0:
            raise ConfigError("--acllog-max-len must be >= 0")
        if self.cluster_topology is not None and not self.cluster_shard:
            raise ConfigError("--cluster-topology needs --cluster-shard (this relay's shard)")
        if self.cluster_notify is not None:
            host, _, port = self.cluster_notify.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ConfigError(
                    f"--cluster-notify must be host:port, got {self.cluster_notify!r}"
                )
        self.tls.validate()
        if self.sentinel is not None:
            self.sentinel.validate()
        elif not self.upstream.host:
            raise ConfigError("--upstream is required (or --sentinel with --sentinel-master)")
        if self.tracking_table_max_keys < 0:
            raise ConfigError("--tracking-table-max-keys must be >= 0")
