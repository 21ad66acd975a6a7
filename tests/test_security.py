"""The client endpoint under attack: protected mode, the enable-*-command options, REPLICAOF,
downstream replicas' credentials, and secrets that must never show.

Each behaviour Redis has is judged against a real server of the same kind started the same
way (protected mode: a real redis-server with no password, reached from a loopback address
other than 127.0.0.1 and from the machine's own non-loopback address). Servers listen on
127.0.0.1 only; a client socket bound to another local source address reaches them, and
that source address is the peer address the server judges (what `--bind 0.0.0.0` would
expose to the network is the same check: protected mode does not depend on the bind address
since Redis 7.0).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from replproxy.resp.request import encode_command
from tests.conftest import KINDS
from tests.harness.readcheck import read_reply
from tests.harness.relay import RelayProcess, start_relay, upstream_url
from tests.harness.servers import RedisServer, ServerKind, free_port, start_server, wait_for

SEC_KINDS = [k for k in KINDS if k.name in ("redis7", "redis8", "valkey8")]
pytestmark = pytest.mark.skipif(not SEC_KINDS, reason="no redis7/redis8/valkey8 kind here")


def own_address() -> str | None:
    """An IPv4 address of this machine that is not a loopback one (None if it has none)."""
    try:
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True).stdout
    except OSError:
        out = ""
    for a in out.split():
        if "." in a and not a.startswith("127."):
            return a
    return None


def call_from(source: str, port: int, *cmds: tuple[str, ...]) -> list[bytes]:
    """Connect to 127.0.0.1:port FROM `source`, send the commands, one reply each (a reply
    the server sends unasked, like -DENIED, counts as the first)."""
    with socket.socket() as s:
        s.settimeout(10)
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        buf = bytearray()
        out = []
        for argv in cmds:
            try:
                s.sendall(encode_command([a.encode() for a in argv]))
                out.append(read_reply(s, buf))
            except (ConnectionError, BrokenPipeError):
                out.append(b"<closed>")
                break
        return out


def sources() -> list[str]:
    found = ["127.0.0.1", "127.0.0.2"]
    own = own_address()
    if own is not None:
        found.append(own)
    return found


@pytest.fixture(params=SEC_KINDS, ids=[k.name for k in SEC_KINDS])
def kind(request: pytest.FixtureRequest) -> ServerKind:
    return request.param


@pytest.fixture
def master(kind: ServerKind) -> Iterator[RedisServer]:
    m = start_server(kind)
    with m.client() as c:
        c.set("k", "v")
    try:
        yield m
    finally:
        m.stop()


def test_protected_mode_as_a_real_server(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess]
) -> None:
    """No password for `default`: a non-local peer gets Redis's -DENIED and is closed; which
    peers are local is the version's (`127.0.0.2` is not local for 7.0, is for 7.2+)."""
    real = start_server(kind, extra={"protected-mode": "yes"})
    try:
        relay = start_relay(upstream_url(master))
        relays.append(relay)
        for src in sources():
            theirs = call_from(src, real.port, ("ping",), ("get", "k"))
            mine = call_from(src, relay.port, ("ping",), ("get", "k"))
            if theirs[0].startswith(b"-DENIED"):
                assert mine == [*theirs[:1], b"<closed>"] == theirs, (src, mine, theirs)
            else:
                assert mine[0] == theirs[0] == b"+PONG\r\n", (src, mine, theirs)
        if own_address() is not None:
            r = call_from(own_address() or "", relay.port, ("ping",))
            assert r[0].startswith(b"-DENIED")
            assert relay.info("stats")["rejected_connections"] >= 1
        # 7.0's islocalClient takes exactly 127.0.0.1 and ::1; 7.2 any 127.x
        r = call_from("127.0.0.2", relay.port, ("ping",))
        expect_denied = not kind.is_valkey and kind.version < (7, 2, 0)
        assert r[0].startswith(b"-DENIED") == expect_denied
    finally:
        real.stop()


def test_protected_mode_off_with_a_password_or_the_option(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess]
) -> None:
    own = own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    with_pw = start_relay(upstream_url(master), "--requirepass", "pw", wait_ready=False)
    relays.append(with_pw)
    assert call_from(own, with_pw.port, ("ping",)) == [b"-NOAUTH Authentication required.\r\n"]
    assert call_from(own, with_pw.port, ("auth", "pw"), ("get", "k"))[0] == b"+OK\r\n"
    off = start_relay(upstream_url(master), "--protected-mode", "no")
    relays.append(off)
    assert call_from(own, off.port, ("ping",)) == [b"+PONG\r\n"]


def test_replicaof_needs_the_acl_permission(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess], tmp_path: Path
) -> None:
    """A user without @admin cannot re-point the relay (to a server that would collect the
    master's credentials): NOPERM, and the relay keeps replicating its master."""
    acl = tmp_path / "users.acl"
    acl.write_text("user default on nopass ~* &* +@all\nuser app on >apppw ~* &* +@all -@admin\n")
    relay = start_relay(upstream_url(master), "--aclfile", str(acl))
    relays.append(relay)
    bait = socket.socket()
    bait.bind(("127.0.0.1", 0))
    bait.listen()
    bait_port = bait.getsockname()[1]
    try:
        r = call_from(
            "127.0.0.1",
            relay.port,
            ("auth", "app", "apppw"),
            ("replicaof", "127.0.0.1", str(bait_port)),
            ("slaveof", "127.0.0.1", str(bait_port)),
        )
        assert r[0] == b"+OK\r\n"
        assert r[1].startswith(b"-NOPERM") and b"'replicaof' command" in r[1]
        assert r[2].startswith(b"-NOPERM") and b"'slaveof' command" in r[2]
        bait.settimeout(1.5)
        with pytest.raises(TimeoutError):
            bait.accept()  # the relay never connected to it
    finally:
        bait.close()
    info = relay.info("replication")
    assert info["master_port"] == master.port and info["master_link_status"] == "up"
    log = call_from("127.0.0.1", relay.port, ("acl", "log", "1"))[0]
    assert b"replicaof" in log or b"slaveof" in log


def test_enable_replicaof_command_local(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess]
) -> None:
    own = own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    relay = start_relay(
        upstream_url(master), "--protected-mode", "no", "--enable-replicaof-command", "local"
    )
    relays.append(relay)
    other = start_server(kind)
    try:
        r = call_from(own, relay.port, ("replicaof", "127.0.0.1", str(other.port)))
        assert r == [
            b"-ERR REPLICAOF command not allowed. If the enable-replicaof-command "
            b'option is set to "local", you can run it from a local connection, '
            b"otherwise you need to set this option in the configuration file, and "
            b"then restart the server.\r\n"
        ]
        assert relay.info("replication")["master_port"] == master.port
        # inside MULTI the refusal dooms the transaction, as any rejected command
        r = call_from(own, relay.port, ("multi",), ("slaveof", "127.0.0.1", "1"), ("exec",))
        assert r[1].startswith(b"-ERR SLAVEOF command not allowed")
        assert r[2].startswith(b"-EXECABORT")
        r = call_from("127.0.0.1", relay.port, ("replicaof", "127.0.0.1", str(other.port)))
        assert r == [b"+OK\r\n"]
        wait_for(
            lambda: relay.info("replication")["master_port"] == other.port,
            30,
            what="the relay re-pointed by a local client",
        )
    finally:
        other.stop()


def test_enable_debug_command_as_a_real_server(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess]
) -> None:
    own = own_address()
    if own is None:
        pytest.skip("this machine has no non-loopback address to connect from")
    real = start_server(kind, extra={"enable-debug-command": "local"})
    try:
        relay = start_relay(upstream_url(master), "--protected-mode", "no")
        relays.append(relay)
        theirs = call_from(own, real.port, ("debug", "digest"), ("auth", "x"))
        mine = call_from(own, relay.port, ("debug", "digest"), ("auth", "x"))
        assert mine[0] == theirs[0] and mine[0].startswith(b"-ERR DEBUG command not allowed")
        local = call_from("127.0.0.1", relay.port, ("debug", "digest"))
        assert local[0].startswith(b"+")
    finally:
        real.stop()


def test_refused_acl_changes_without_acl_writable(
    master: RedisServer, relays: list[RelayProcess]
) -> None:
    relay = start_relay(upstream_url(master))
    relays.append(relay)
    r = call_from(
        "127.0.0.1",
        relay.port,
        ("acl", "setuser", "eve", "on", "nopass", "+@all"),
        ("acl", "deluser", "x"),
        ("acl", "load"),
        ("acl", "save"),
        ("acl", "users"),
    )
    for line in r[:4]:
        assert line.startswith(b"-ERR ACL ") and b"--acl-writable" in line
    assert r[4] == b"*1\r\n$7\r\ndefault\r\n"


def test_acl_writable_setuser_deluser_save_load(
    master: RedisServer, relays: list[RelayProcess], tmp_path: Path
) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text("user default on nopass ~* &* +@all\n")
    relay = start_relay(upstream_url(master), "--aclfile", str(acl), "--acl-writable")
    relays.append(relay)
    port = relay.port
    assert call_from("127.0.0.1", port, ("acl", "setuser", "bob", "on", ">bpw", "~k", "+get")) == [
        b"+OK\r\n"
    ]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as bob:
        buf = bytearray()
        bob.sendall(encode_command([b"auth", b"bob", b"bpw"]) + encode_command([b"get", b"k"]))
        assert read_reply(bob, buf) == b"+OK\r\n"
        assert read_reply(bob, buf) == b"$1\r\nv\r\n"
        assert call_from("127.0.0.1", port, ("acl", "deluser", "bob")) == [b":1\r\n"]
        bob.settimeout(5)
        assert bob.recv(100) == b""  # its client was closed with the user
    r = call_from(
        "127.0.0.1",
        port,
        ("acl", "setuser", "carol", "on", ">cpw", "~*", "+@read"),
        ("acl", "save"),
    )
    assert r == [b"+OK\r\n", b"+OK\r\n"]
    text = acl.read_text()
    assert "user carol on" in text and "user default on nopass" in text and "bob" not in text
    acl.write_text(text.replace("user carol on", "user carol off"))
    assert call_from("127.0.0.1", port, ("acl", "load"), ("auth", "carol", "cpw")) == [
        b"+OK\r\n",
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n",
    ]
    acl.write_text("user x on +nosuch\n")
    err = call_from("127.0.0.1", port, ("acl", "load"))[0]
    assert err.startswith(b"-ERR ") and b"Error in applying operation '+nosuch'" in err
    assert b"no change to the previously active ACL rules was performed" in err
    assert call_from("127.0.0.1", port, ("acl", "users")) == [
        b"*2\r\n$5\r\ncarol\r\n$7\r\ndefault\r\n"
    ]


# --- downstream replicas authenticate like any client ---------------------------------------


def test_downstream_replica_needs_credentials_and_permissions(
    kind: ServerKind, master: RedisServer, relays: list[RelayProcess], tmp_path: Path
) -> None:
    """A replica of the relay logs in with its masteruser/masterauth, and its user needs the
    replication commands (PSYNC, REPLCONF, PING); one whose user lacks PSYNC is refused and
    the refusal is in the relay's ACL LOG."""
    acl = tmp_path / "users.acl"
    acl.write_text(
        "user default on >adminpw ~* &* +@all\n"
        "user repl on >replpw -@all +psync +replconf +ping\n"
        "user weak on >weakpw -@all +replconf +ping\n"
    )
    relay = start_relay(upstream_url(master), "--aclfile", str(acl))
    relays.append(relay)
    good = start_server(
        kind,
        extra={
            "replicaof": f"127.0.0.1 {relay.port}",
            "masteruser": "repl",
            "masterauth": "replpw",
        },
    )
    bad = start_server(
        kind,
        extra={
            "replicaof": f"127.0.0.1 {relay.port}",
            "masteruser": "weak",
            "masterauth": "weakpw",
        },
    )
    nopw = start_server(kind, extra={"replicaof": f"127.0.0.1 {relay.port}"})
    try:
        wait_for(
            lambda: good.info("replication")["master_link_status"] == "up",
            60,
            what="the replica with the right user in sync",
        )
        with good.client() as c:
            assert c.get("k") == b"v"
        assert bad.info("replication")["master_link_status"] == "down"
        assert nopw.info("replication")["master_link_status"] == "down"

        def logged() -> bool:
            r = call_from("127.0.0.1", relay.port, ("auth", "adminpw"), ("acl", "log"))[1]
            return b"weak" in r and b"psync" in r

        wait_for(logged, 30, what="the weak replica's PSYNC in the ACL LOG")
    finally:
        for s in (good, bad, nopw):
            s.stop()


# --- secrets -------------------------------------------------------------------------------

MASTER_PW = "Sup3r-s3cret-master-pw"
CLIENT_PW = "cl1ent-s3cret-pw"


def _everything_shown(relay: RelayProcess) -> str:
    """Every place a secret could leak to: the log, /metrics, INFO (all sections), CONFIG
    GET *, CLIENT LIST, ACL LIST, ACL LOG, ROLE (the command line is checked apart: a
    password given in --upstream is in it by definition)."""
    out = [relay.log(), relay.http("/metrics")[1]]
    auth = ("auth", CLIENT_PW)
    for cmd in (
        ("info", "everything"),
        ("info", "all"),
        ("config", "get", "*"),
        ("config", "get", "masterauth"),
        ("config", "get", "requirepass"),
        ("client", "list"),
        ("client", "info"),
        ("acl", "list"),
        ("acl", "log"),
        ("role",),
    ):
        out.append(repr(call_from("127.0.0.1", relay.port, auth, cmd)[1]))
    return "\n".join(out)


@pytest.mark.parametrize("how", ["url", "password-file", "env-file"])
def test_secrets_never_shown(
    kind: ServerKind, relays: list[RelayProcess], tmp_path: Path, how: str
) -> None:
    master = start_server(kind, password="admin-pw")
    try:
        with master.client() as c:
            c.execute_command(
                "ACL", "SETUSER", "relayuser", "on", f">{MASTER_PW}", "+psync", "+replconf", "+ping"
            )
            c.set("k", "v")
        pwfile = tmp_path / "masterpw"
        pwfile.write_text(MASTER_PW + "\n")
        env = None
        if how == "url":
            args = [upstream_url(master, username="relayuser", password=MASTER_PW)]
        elif how == "password-file":
            args = [
                f"redis://relayuser@127.0.0.1:{master.port}",
                "--upstream-password-file",
                str(pwfile),
            ]
        else:
            args = [f"redis://relayuser@127.0.0.1:{master.port}"]
            env = {"REPLPROXY_UPSTREAM_PASSWORD_FILE": str(pwfile)}
        relay = start_relay(
            args[0],
            *args[1:],
            "--requirepass",
            CLIENT_PW,
            "--log-level",
            "debug",
            wait_ready=False,
            env=env,
        )
        relays.append(relay)
        wait_for(lambda: relay.http("/startupz")[0] == 200, 60, what="the relay's first sync")
        # a failed AUTH and a wrong masterauth-like attempt are logged without the secret
        call_from("127.0.0.1", relay.port, ("auth", MASTER_PW))
        shown = _everything_shown(relay)
        assert MASTER_PW not in shown
        assert CLIENT_PW not in shown
        config = call_from(
            "127.0.0.1", relay.port, ("auth", CLIENT_PW), ("config", "get", "masterauth")
        )[1]
        assert config == b"*2\r\n$10\r\nmasterauth\r\n$10\r\n<redacted>\r\n"
        if how != "url":
            with open(f"/proc/{relay.proc.pid}/cmdline", "rb") as f:
                assert MASTER_PW.encode() not in f.read()
    finally:
        master.stop()


def test_config_errors_mask_the_upstream_password(tmp_path: Path) -> None:
    for url in (f"redis://u:{MASTER_PW}@127.0.0.1:notaport", f"http://u:{MASTER_PW}@h:1"):
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "replproxy",
                "run",
                "--upstream",
                url,
                "--port",
                "0",
                "--metrics-port",
                str(free_port()),
                "--dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ},
        )
        assert out.returncode == 1
        assert MASTER_PW not in out.stdout + out.stderr
        assert "u:***@" in out.stderr


def test_password_file_errors(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "replproxy",
                "run",
                *args,
                "--port",
                "0",
                "--metrics-port",
                str(free_port()),
                "--dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )

    empty = tmp_path / "empty"
    empty.write_text("")
    out = run("--upstream", "redis://u@127.0.0.1:1", "--upstream-password-file", str(empty))
    assert out.returncode == 1 and "the file is empty" in out.stderr
    out = run(
        "--upstream", "redis://u@127.0.0.1:1", "--upstream-password-file", str(tmp_path / "missing")
    )
    assert out.returncode == 1 and "No such file" in out.stderr
    pw = tmp_path / "pw"
    pw.write_text("x\n")
    out = run("--upstream", "redis://u:y@127.0.0.1:1", "--upstream-password-file", str(pw))
    assert out.returncode == 1 and "give it in one place only" in out.stderr
    assert "u:y@" not in out.stderr


def test_upstream_password_stays_out_of_reprs_and_messages(tmp_path: Path) -> None:
    from replproxy.config import Config, ConfigError, mask_url, parse_upstream_url

    assert mask_url("redis://u:p@ss@h:1/0") == "redis://u:***@h:1/0"
    assert mask_url("redis://:pw@h") == "redis://:***@h"
    assert mask_url("redis://h:6379") == "redis://h:6379"
    up = parse_upstream_url(f"redis://u:{MASTER_PW}@h:1")
    assert up.password == MASTER_PW and MASTER_PW not in repr(up) and str(up) == "h:1"
    cfg = Config(upstream=up, requirepass=CLIENT_PW)
    assert MASTER_PW not in repr(cfg) and CLIENT_PW not in repr(cfg)
    f = tmp_path / "pw"
    f.write_text(MASTER_PW + "\r\nignored\n")
    assert parse_upstream_url("redis://u@h", f).password == MASTER_PW
    for bad in (f"redis://u:{MASTER_PW}@h:x", f"http://u:{MASTER_PW}@h"):
        with pytest.raises(ConfigError) as e:
            parse_upstream_url(bad)
        assert MASTER_PW not in str(e.value) and "***" in str(e.value)
    for bad_cfg in (
        Config(upstream=up, enable_debug_command="maybe"),
        Config(upstream=up, enable_replicaof_command=""),
    ):
        with pytest.raises(ConfigError, match="must be no, yes or local"):
            bad_cfg.validate()
