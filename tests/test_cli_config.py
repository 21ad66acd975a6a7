"""The command line and configuration: flags, REPLPROXY_* environment, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replproxy.cli import app
from replproxy.config import ConfigError, parse_size, parse_upstream_url, upstream_url_wants_tls

ROOT = Path(__file__).resolve().parent.parent


def test_upstream_url_forms() -> None:
    u = parse_upstream_url("redis://10.0.0.5:6390")
    assert (u.host, u.port, u.username, u.password) == ("10.0.0.5", 6390, None, None)
    u = parse_upstream_url("redis://:p%40ss@h")
    assert (u.host, u.port, u.username, u.password) == ("h", 6379, None, "p@ss")
    u = parse_upstream_url("redis://relay:secret@h:7000/0")
    assert (u.username, u.password, u.port) == ("relay", "secret", 7000)


@pytest.mark.parametrize(
    "url,msg",
    [
        ("http://h:6379", "redis:// or rediss:// URL"),
        ("redis://:6379", "no host"),
        ("redis://h:notaport", "invalid port"),
        ("redis://user@h", "without a password"),
    ],
)
def test_bad_upstream_urls_are_refused_clearly(url: str, msg: str) -> None:
    with pytest.raises(ConfigError, match=msg):
        parse_upstream_url(url)


def test_sizes() -> None:
    assert parse_size("128mb") == 128 * 1024**2
    assert parse_size("1gb") == 1024**3
    assert parse_size("4096") == 4096
    with pytest.raises(ConfigError):
        parse_size("lots")


def test_help_documents_every_flag_with_its_env_var() -> None:
    # rich reads the width from COLUMNS: long flag names must not wrap the env var names.
    out = (
        CliRunner()
        .invoke(app, ["run", "--help"], terminal_width=200, env={"COLUMNS": "200"})
        .output
    )
    for flag in [
        "upstream",
        "port",
        "bind",
        "metrics-port",
        "dir",
        "replica-announce-port",
        "repl-timeout",
        "repl-backlog-size",
        "log-format",
    ]:
        assert f"--{flag}" in out
        assert f"REPLPROXY_{flag.upper().replace('-', '_')}" in out


def test_rediss_is_the_same_url_with_tls() -> None:
    u = parse_upstream_url("rediss://relay:secret@h:7000")
    assert (u.host, u.port, u.username, u.password) == ("h", 7000, "relay", "secret")
    assert upstream_url_wants_tls("rediss://h") and not upstream_url_wants_tls("redis://h")


@pytest.mark.parametrize(
    "args,msg",
    [
        (["--tls-port", "7000"], "--tls-port needs --tls-cert-file and --tls-key-file"),
        (["--metrics-tls", "yes"], "--metrics-tls yes needs --tls-cert-file"),
        (
            ["--tls-port", "7000", "--tls-cert-file", "c", "--tls-key-file", "k"],
            "Either --tls-ca-cert-file or --tls-ca-cert-dir must be specified",
        ),
        (["--tls-auth-clients", "maybe"], "--tls-auth-clients must be yes, no or optional"),
        (["--tls-protocols", "TLSv1.4"], "invalid protocol 'TLSv1.4'"),
        (["--tls-protocols", "TLSv1 TLSv1.3"], "must be consecutive"),
        (["--tls-client-cert-file", "c"], "go together"),
        (["--tls-replication", "perhaps"], "--tls-replication must be yes or no"),
        (
            ["--tls-replication", "yes", "--tls-ca-cert-file", "/nonexistent/ca.pem"],
            "Failed to configure CA certificate",
        ),
        (["--sentinel", "h:26379"], "--sentinel needs --sentinel-master NAME"),
        (["--sentinel", "h:x", "--sentinel-master", "m"], "bad port"),
        (["--masterauth", "p", "--upstream", "redis://:q@h"], "not both"),
    ],
)
def test_tls_and_sentinel_settings_are_checked_at_start_up(args: list[str], msg: str) -> None:
    base = [] if "--upstream" in args else ["--upstream", "redis://h:6379"]
    res = CliRunner().invoke(app, ["run", *base, "--port", "0", *args])
    assert res.exit_code == 1, res.output  # redis-server's status for a refused configuration
    assert msg in res.output


def test_upstream_is_required_without_sentinels() -> None:
    res = CliRunner().invoke(app, ["run", "--port", "0"], env={"REPLPROXY_UPSTREAM": ""})
    assert res.exit_code == 1
    assert "no master to replicate from" in res.output and "--sentinel" in res.output


def test_every_flag_is_documented_in_configuration_md() -> None:
    import typer.main

    run = typer.main.get_command(app).commands["run"]  # type: ignore[attr-defined]
    doc = (ROOT / "docs" / "configuration.md").read_text()
    flags = [o for p in run.params for o in p.opts if o.startswith("--") and o != "--help"]
    assert [f for f in flags if f"`{f}`" not in doc] == []


def test_settings_come_from_the_environment() -> None:
    # A wrong setting read from the environment proves the variable is honoured.
    env = dict(os.environ, REPLPROXY_UPSTREAM="redis://127.0.0.1:1", REPLPROXY_PORT="70000")
    res = subprocess.run(
        [sys.executable, "-m", "replproxy", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 1
    assert "--port must be 0..65535, got 70000" in res.stderr
