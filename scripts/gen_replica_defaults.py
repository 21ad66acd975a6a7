#!/usr/bin/env python3
"""Capture what an idle replica of each server version shows operators (INFO everything and
CONFIG GET *) into replproxy/data/replica-<server>-<major.minor>.json.gz; the format is
docs/metrics.md ("INFO as a replica") and docs/configuration.md ("CONFIG GET").

How to run (from the repository root, with the test servers installed: tests/harness/servers.py):

    python scripts/gen_replica_defaults.py                  # every server kind found
    python scripts/gen_replica_defaults.py --kind redis8    # just one

Each capture starts a real master and a real replica of it, both with the server's compiled-in
defaults (only port, bind, dir and replicaof are given), waits for the link, and records:

- `info`: the sections of `INFO everything` in order, each with its fields in order and the
  idle replica's values. The sections whose lines depend on the dataset or the traffic
  (Commandstats, Errorstats, Latencystats, Keyspace, Keysizes) are kept empty: the relay
  makes their lines. Values the relay computes itself are replaced by "" (`VOLATILE`), so a
  re-run on the same server gives the same file;
- `default_sections` / `all_sections`: the section titles `INFO default` and `INFO all`
  show (`everything` shows every section of `info`);
- `config`: every `CONFIG GET *` parameter and its default, sorted by name. The parameters
  that name this capture's process (port, dir, replicaof...) are the relay's own settings
  and are stored empty.

The output is deterministic (sorted JSON keys, gzip without a timestamp).
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness.servers import (  # noqa: E402
    RedisServer,
    ServerKind,
    all_kinds,
    free_port,
    wait_for,
    wait_until_up,
)

DATA_DIR = ROOT / "replproxy" / "data"
DYNAMIC_SECTIONS = ("Commandstats", "Errorstats", "Latencystats", "Keyspace", "Keysizes")
# Fields whose value the relay computes on every INFO (replproxy/info.py): stored empty.
VOLATILE = frozenset(
    [
        "redis_version",
        "valkey_version",
        "server_name",
        "redis_build_id",
        "os",
        "process_id",
        "run_id",
        "tcp_port",
        "server_time_usec",
        "uptime_in_seconds",
        "uptime_in_days",
        "lru_clock",
        "executable",
        "listener0",
        "gcc_version",
        "config_file",
        "connected_clients",
        "client_recent_max_input_buffer",
        "client_recent_max_output_buffer",
        "used_memory",
        "used_memory_human",
        "used_memory_rss",
        "used_memory_rss_human",
        "used_memory_peak",
        "used_memory_peak_human",
        "used_memory_peak_perc",
        "used_memory_dataset",
        "used_memory_dataset_perc",
        "used_memory_overhead",
        "used_memory_startup",
        "used_memory_peak_time",
        "total_system_memory",
        "total_system_memory_human",
        "mem_fragmentation_ratio",
        "mem_fragmentation_bytes",
        "mem_clients_normal",
        "mem_clients_slaves",
        "mem_replication_backlog",
        "mem_total_replication_buffers",
        "allocator_allocated",
        "allocator_active",
        "allocator_resident",
        "allocator_frag_ratio",
        "allocator_frag_bytes",
        "allocator_rss_ratio",
        "allocator_rss_bytes",
        "rss_overhead_ratio",
        "rss_overhead_bytes",
        "allocator_muzzy",
        "rdb_changes_since_last_save",
        "rdb_last_save_time",
        "rdb_last_load_keys_loaded",
        "total_connections_received",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "total_net_repl_input_bytes",
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "instantaneous_input_repl_kbps",
        "total_reads_processed",
        "total_writes_processed",
        "reply_buffer_shrinks",
        "reply_buffer_expands",
        "total_error_replies",
        "eventloop_cycles",
        "eventloop_duration_sum",
        "eventloop_duration_cmd_sum",
        "instantaneous_eventloop_cycles_per_sec",
        "instantaneous_eventloop_duration_usec",
        "io_threaded_reads_processed",
        "io_threaded_writes_processed",
        "io_threaded_poll_processed",
        "io_threaded_accept_processed",
        "io_thread_0",
        "master_host",
        "master_port",
        "master_last_io_seconds_ago",
        "slave_read_repl_offset",
        "slave_repl_offset",
        "master_link_up_since_seconds",
        "master_replid",
        "master_replid2",
        "master_repl_offset",
        "repl_backlog_size",
        "repl_backlog_first_byte_offset",
        "repl_backlog_histlen",
        "replica_full_sync_buffer_peak",
        "used_cpu_sys",
        "used_cpu_user",
        "used_cpu_sys_children",
        "used_cpu_user_children",
        "used_cpu_sys_main_thread",
        "used_cpu_user_main_thread",
    ]
)
# CONFIG GET parameters that describe the captured process, not a default: the relay shows
# its own (replproxy/session/ops_commands.py); stored empty.
PROCESS_PARAMS = frozenset(
    ["port", "bind", "dir", "replicaof", "slaveof", "logfile", "pidfile", "unixsocket", "daemonize"]
)
SERVER_NAME = {
    "redis5": "redis",
    "redis62": "redis",
    "redis7": "redis",
    "redis8": "redis",
    "valkey8": "valkey",
}


def file_stem(server: str, version: str) -> str:
    major, minor = version.split(".")[:2]
    return f"{server}-{major}.{minor}"


def data_path(server: str, version: str) -> Path:
    return DATA_DIR / f"replica-{file_stem(server, version)}.json.gz"


def _command(port: int, *args: str) -> bytes:
    """One command over a raw socket (RESP2); the reply's bytes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        req = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a.encode()), a.encode()) for a in args
        )
        s.sendall(req)
        buf = b""
        s.settimeout(0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(1 << 20)
            except TimeoutError:
                if buf:
                    break
                continue
            if not chunk:
                break
            buf += chunk
        return buf


def _bulk_text(raw: bytes) -> str:
    assert raw.startswith(b"$"), raw[:80]
    return raw.split(b"\r\n", 1)[1].rsplit(b"\r\n", 1)[0].decode()


def _flat_array(raw: bytes) -> list[str]:
    lines = raw.split(b"\r\n")
    out = []
    for i, line in enumerate(lines):
        if line.startswith(b"$"):
            out.append(lines[i + 1].decode())
    return out


def parse_info(text: str) -> list[list[Any]]:
    sections: list[list[Any]] = []
    for line in text.split("\r\n"):
        if line.startswith("# "):
            sections.append([line[2:], []])
        elif line and sections:
            name, _, value = line.partition(":")
            sections[-1][1].append([name, value])
    return sections


def _start(kind: ServerKind, dir: Path, *extra: str) -> RedisServer:
    port = free_port()
    args = [kind.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(dir), *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = RedisServer(kind, port, dir, proc)
    wait_until_up(server)
    return server


def capture(kind: ServerKind) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"replproxy-capture-{kind.name}-"))
    (tmp / "m").mkdir()
    (tmp / "r").mkdir()
    master = _start(kind, tmp / "m")
    replica = _start(kind, tmp / "r", "--replicaof", "127.0.0.1", str(master.port))
    try:
        wait_for(
            lambda: b"master_link_status:up" in _command(replica.port, "INFO", "replication"), 60
        )
        info = parse_info(_bulk_text(_command(replica.port, "INFO", "everything")))
        if not info:  # Redis 5.0 answers `everything` with nothing: `all` is the same there
            info = parse_info(_bulk_text(_command(replica.port, "INFO", "all")))
        for section in info:
            if section[0] in DYNAMIC_SECTIONS:
                section[1] = []
            for field in section[1]:
                if field[0] in VOLATILE:
                    field[1] = ""
        titles = {}
        for which in ("default", "all"):
            got = parse_info(_bulk_text(_command(replica.port, "INFO", which)))
            titles[which] = [sec[0] for sec in got]
        flat = _flat_array(_command(replica.port, "CONFIG", "GET", "*"))
        config = {n: ("" if n in PROCESS_PARAMS else v) for n, v in zip(flat[::2], flat[1::2])}
        version = ".".join(map(str, kind.version))
        return {
            "server": SERVER_NAME[kind.name],
            "version": version,
            "info": info,
            # The sections `INFO` / `INFO default` and `INFO all` show (`everything`: all).
            "default_sections": titles["default"],
            "all_sections": titles["all"],
            "config": sorted(config.items()),
        }
    finally:
        replica.stop()
        master.stop()


def write(data: dict[str, Any]) -> Path:
    path = data_path(data["server"], data["version"])
    raw = json.dumps(data, sort_keys=True, indent=0).encode()
    path.write_bytes(gzip.compress(raw, mtime=0))
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kind", action="append", help="server kinds (default: every one found)")
    args = ap.parse_args()
    kinds = [k for k in all_kinds() if k.name in SERVER_NAME]
    if args.kind:
        kinds = [k for k in kinds if k.name in args.kind]
    for k in kinds:
        print(f"{k.name}: {write(capture(k))}")


if __name__ == "__main__":
    main()
