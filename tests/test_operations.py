"""Operating replproxy (issue 17): `replproxy status`, the start-up line and progress, clear
start-up errors, a config file driving a real relay, and what the relay leaves in --dir."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, free_port, start_server, wait_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.one_kind]

ROOT = Path(__file__).resolve().parent.parent


def replproxy(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REPLPROXY_")}
    full_env.update({"COLUMNS": "200"}, **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "replproxy", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def test_status_shows_link_lag_backlog_replicas_and_clients(master: RedisServer) -> None:
    relay = start_relay(upstream_url(master))
    replicas = [start_server(master.kind) for _ in range(2)]
    try:
        with master.client() as c:
            for i in range(100):
                c.set(f"k{i}", i)
        for r in replicas:
            with r.client() as c:
                c.execute_command("REPLICAOF", "127.0.0.1", relay.port)
        relay.wait_in_sync_with(master)

        def both_online() -> bool:
            info = relay.info()
            return info["connected_slaves"] == 2 and all(
                info[f"slave{i}"]["state"] == "online"
                and info[f"slave{i}"]["offset"] == info["slave_repl_offset"]
                for i in range(2)
            )

        wait_for(both_online, 60, what="two online replicas, caught up")
        wait_for(
            lambda: relay.info()["replproxy_master_offset_probe"] == "ok", 10, what="the probe"
        )
        info = relay.info()
        res = replproxy("status", "--url", f"redis://127.0.0.1:{relay.port}")
        assert res.returncode == 0, res.stderr
        out = res.stdout
        lines = out.splitlines()

        def row(label: str) -> str:
            return next(line for line in lines if line.strip().startswith(label))

        assert out.startswith("replproxy 0.1.0")
        assert f"127.0.0.1:{master.port}" in row("master")
        assert row("link").split()[1] == "up"
        assert info["master_replid"] in row("replid")
        offset = info["slave_repl_offset"]
        assert f"applied {offset}, read {offset}, master {offset}" in row("offsets")
        assert "0 B, 0.0s" in row("lag") and "source: probe" in row("lag")
        assert "ago (1 since start)" in row("last full sync")
        assert "none since start (0 since start)" in row("last partial sync")
        assert "from offset" in row("memory") and row("disk").split()[1] == "off"
        assert "Downstream replicas (2)" in out
        for r in replicas:
            line = row(f"127.0.0.1:{r.port}")
            assert line.split()[1:3] == ["online", str(offset)], line
            assert "0 B, 0.0s" in line
        assert re.search(r"clients\s+\d+ connected \(max 10000\)", out)
        assert re.search(r"memory\s+RSS \S+ \(peak", out)
        assert "db0: 100 keys" in row("keys")

        watched = replproxy(
            "status",
            "--url",
            f"redis://127.0.0.1:{relay.port}",
            "--watch",
            "--interval",
            "0.2",
            "--count",
            "2",
        )
        assert watched.returncode == 0, watched.stderr
        assert watched.stdout.count("Downstream replicas (2)") == 2
    finally:
        for r in replicas:
            r.stop()
        relay.stop()


def test_status_of_an_unreachable_relay_is_one_line() -> None:
    port = free_port()
    res = replproxy("status", "--url", f"redis://127.0.0.1:{port}")
    assert res.returncode == 1
    assert res.stderr.startswith(f"replproxy: cannot read INFO from redis://127.0.0.1:{port}: ")
    assert res.stderr.count("\n") == 1


def test_info_replication_adds_fields_after_redis_own(master: RedisServer) -> None:
    relay = start_relay(upstream_url(master))
    try:
        with relay.client() as c:
            c.response_callbacks.pop("INFO", None)  # the text, in order
            text = c.execute_command("INFO", "replication")
        text = text.decode() if isinstance(text, bytes) else str(text)
        names = [line.split(":", 1)[0] for line in text.splitlines() if ":" in line]
        ours = [i for i, n in enumerate(names) if n.startswith("replproxy_")]
        assert ours and min(ours) > names.index("repl_backlog_histlen")
        assert all(names[i].startswith("replproxy_") for i in range(min(ours), len(names)))
    finally:
        relay.stop()


def listening_socket() -> tuple[socket.socket, int]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    return s, s.getsockname()[1]


@pytest.mark.parametrize("flag", ["--port", "--metrics-port"])
def test_port_in_use_is_one_line_naming_it(flag: str, tmp_path: Path) -> None:
    busy, port = listening_socket()
    try:
        other = "--metrics-port" if flag == "--port" else "--port"
        res = replproxy(
            "run",
            "--upstream",
            "redis://127.0.0.1:1",
            "--dir",
            str(tmp_path),
            flag,
            str(port),
            other,
            str(free_port()),
        )
    finally:
        busy.close()
    assert res.returncode == 1
    assert res.stderr == (
        f"replproxy: cannot listen on 127.0.0.1:{port} ({flag}): the port is already in use\n"
    )
    assert "Traceback" not in res.stdout


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: (p / "afile").write_text("x") and p / "afile", "not a directory"),
        (
            lambda p: (p / "afile").write_text("x") and p / "afile" / "sub",
            "cannot create it: Not a directory",
        ),
        (lambda p: Path("/sys"), "not writable: Permission denied"),
    ],
    ids=["a-file", "under-a-file", "read-only"],
)
def test_unusable_dir_is_one_line(tmp_path: Path, make, message: str) -> None:
    d = make(tmp_path)
    res = replproxy("run", "--upstream", "redis://127.0.0.1:1", "--dir", str(d))
    assert res.returncode == 1
    assert res.stderr == f"replproxy: --dir {d}: {message}\n"


def test_unreadable_dir_is_one_line() -> None:
    # A directory root cannot list either (no CAP_SYS_ADMIN over another process's
    # map_files); as another user, any mode-0 directory does.
    d = Path("/proc/1/map_files")
    try:
        os.listdir(d)
    except PermissionError:
        pass
    else:
        pytest.skip("this process may list /proc/1/map_files (it has CAP_SYS_ADMIN)")
    res = replproxy("run", "--upstream", "redis://127.0.0.1:1", "--dir", str(d))
    assert res.returncode == 1
    assert res.stderr == f"replproxy: --dir {d}: not readable: Permission denied\n"


def test_start_up_line_progress_and_dialect_in_the_log(server_kind, tmp_path: Path) -> None:
    # A master that waits 3 s before its (diskless) transfer: the relay says what it waits
    # for instead of staying silent while clients get -LOADING.
    master = start_server(
        server_kind, extra={"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "3"}
    )
    relay = start_relay(upstream_url(master))
    try:
        log = relay.log()
        line = next(x for x in log.splitlines() if "C accelerators" in x)
        assert re.search(
            r"replproxy 0\.1\.0 \(run id [0-9a-f]{8}; C accelerators: ([a-z, ]+|"
            r"none \(pure Python\))\) serving clients on 127\.0\.0\.1:"
            f"{relay.port}, metrics and health on 127\\.0\\.0\\.1:{relay.metrics_port}; "
            f"master 127\\.0\\.0\\.1:{master.port}; master offset probe on",
            line,
        ), line
        assert re.search(
            r"waiting \ds for the master to start sending its snapshot.*"
            r"clients get -LOADING until it is loaded",
            log,
        ), log
        name = "valkey" if server_kind.is_valkey else "redis"
        version = ".".join(map(str, server_kind.version))
        if server_kind.major >= 4:  # RDB files before Redis 4 name no version
            wait_for(
                lambda: f"master dialect: {name} {version}" in relay.log(),
                10,
                what="the dialect line",
            )
    finally:
        relay.stop()
        master.stop()


def test_accelerators_off_are_named_in_the_start_up_line(master: RedisServer) -> None:
    relay = start_relay(upstream_url(master), env={"REPLPROXY_NO_SPEEDUPS": "1"}, wait_ready=False)
    try:
        wait_for(
            lambda: "C accelerators: none (pure Python)" in relay.log(),
            10,
            what="the start-up line",
        )
    finally:
        relay.stop()


def test_progress_bar_on_a_terminal(server_kind, tmp_path: Path) -> None:
    master = start_server(
        server_kind, extra={"repl-diskless-sync": "yes", "repl-diskless-sync-delay": "3"}
    )
    main, sub = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLPROXY_")}
    env.update(COLUMNS="150", TERM="xterm")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "replproxy",
            "run",
            "--upstream",
            upstream_url(master),
            "--port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--dir",
            str(tmp_path),
        ],
        stdin=sub,
        stdout=sub,
        stderr=sub,
        env=env,
        close_fds=True,
    )
    os.close(sub)
    out = b""
    try:
        deadline = time.monotonic() + 60
        while b"link up" not in out and time.monotonic() < deadline:
            r, _, _ = select.select([main], [], [], 0.5)
            if r:
                try:
                    out += os.read(main, 65536)
                except OSError:
                    break
        text = out.decode(errors="replace")
        assert "link up" in text, text
        # rich draws the bar with cursor controls on a terminal, the phase as its label.
        assert "waiting for the master's snapshot" in text, text
        assert "\x1b[" in text
    finally:
        proc.terminate()
        proc.wait(20)
        os.close(main)
        master.stop()


def test_config_file_drives_a_real_relay(tmp_path: Path, server_kind) -> None:
    master = start_server(server_kind, password="s3cret")
    port, mport = free_port(), free_port()
    conf = tmp_path / "replproxy.conf"
    conf.write_text(
        f"# a relay configured like a Redis replica\n"
        f"replicaof 127.0.0.1 {master.port}\n"
        f"masterauth s3cret\n"
        f"port {port}\n"
        f"dir {tmp_path / 'data'}\n"
        f"maxclients 77\n"
        f"timeout 30\n"
        f"client-output-buffer-limit pubsub 16mb 4mb 30\n"
        f"metrics-port 1\n"  # the flag below wins
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLPROXY_")}
    env["REPLPROXY_TIMEOUT"] = "45"  # the environment wins over the file
    log = tmp_path / "relay.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "replproxy",
                "run",
                "--config",
                str(conf),
                "--metrics-port",
                str(mport),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
            env=env,
        )
    relay = RelayProcess(port, mport, tmp_path / "data", proc, log)
    try:
        wait_for(lambda: proc.poll() is None and _ready(relay), 60, what="relay ready")
        relay.wait_in_sync_with(master)
        with relay.client() as c:
            got = dict(zip(*[iter(c.execute_command("CONFIG", "GET", "*"))] * 2, strict=True))
        got = {k.decode(): v.decode() for k, v in got.items()}
        assert got["maxclients"] == "77"
        assert got["timeout"] == "45"
        # The file's masterauth reached the link (it synced with a master that requires it);
        # CONFIG GET never shows a secret (docs/security.md).
        assert got["masterauth"] == "<redacted>"
        assert got["dir"] == str((tmp_path / "data").resolve())
        assert "pubsub 16777216 4194304 30" in got["client-output-buffer-limit"]
    finally:
        relay.stop()
        master.stop()


def _ready(relay: RelayProcess) -> bool:
    try:
        return relay.http("/startupz")[0] == 200
    except OSError:
        return False


def test_gitignore_covers_everything_the_relay_writes(master: RedisServer) -> None:
    """A relay run with the default `--dir .` in a checkout leaves nothing untracked:
    its snapshots, their state files, the kept upstream snapshot, the downstream snapshots
    and the disk backlog are all ignored by the repository's .gitignore."""
    relay = start_relay(
        upstream_url(master), "--repl-backlog-disk-size", "1mb", "--repl-backlog-size", "16kb"
    )
    replica = start_server(master.kind)
    try:
        with master.client() as c:
            for i in range(300):
                c.set(f"k{i}", "v" * 100)  # past the 16 kB backlog: a fresh snapshot follows
        relay.wait_in_sync_with(master)
        with replica.client() as c:
            c.execute_command("REPLICAOF", "127.0.0.1", relay.port)
        wait_for(
            lambda: (
                relay.info()["connected_slaves"] == 1
                and relay.info()["slave0"]["state"] == "online"
            ),
            60,
            what="replica online",
        )
        with relay.client() as c:
            # A save of its own (after the full sync, or --save's) may still run: SAVE then
            # says "Background save already in progress", as Redis does.
            wait_for(
                lambda: not c.info("persistence")["rdb_bgsave_in_progress"],
                30,
                what="no background save",
            )
            c.execute_command("SAVE")
    finally:
        replica.stop()
        relay.stop()
    written = sorted(
        str(p.relative_to(relay.dir))
        for p in relay.dir.rglob("*")
        if p.is_file() and p != relay.logfile  # the test harness's own log
    )
    assert {"upstream.rdb", "upstream.rdb.json", "replproxy.rdb", "replproxy.rdb.json"} <= set(
        written
    )
    assert any(w.startswith("backlog/") for w in written)
    res = subprocess.run(
        ["git", "check-ignore", "--no-index", "--verbose", "--non-matching", *written],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    not_ignored = [line.split("\t")[1] for line in res.stdout.splitlines() if line.startswith("::")]
    assert not not_ignored, f"written by the relay and not in .gitignore: {not_ignored}"
