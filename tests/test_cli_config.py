"""The command line and configuration: flags, REPLPROXY_* environment, clear refusals."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replproxy.cli import app
from replproxy.config import ConfigError, parse_size, parse_upstream_url

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
        ("rediss://h:6379", "TLS"),
        ("http://h:6379", "redis:// URL"),
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
    out = CliRunner().invoke(
        app, ["run", "--help"], terminal_width=200, env={"COLUMNS": "200"}
    ).output
    for flag in ["upstream", "port", "bind", "metrics-port", "dir", "replica-announce-port",
                 "repl-timeout", "repl-backlog-size", "log-format"]:
        assert f"--{flag}" in out
        assert f"REPLPROXY_{flag.upper().replace('-', '_')}" in out


def test_rediss_is_refused_with_exit_1() -> None:
    res = CliRunner().invoke(app, ["run", "--upstream", "rediss://h:6379", "--port", "0"])
    assert res.exit_code == 1  # redis-server's status for a configuration it refuses
    assert "TLS" in res.output


def test_settings_come_from_the_environment() -> None:
    # A wrong setting read from the environment proves the variable is honoured.
    env = dict(os.environ, REPLPROXY_UPSTREAM="redis://127.0.0.1:1", REPLPROXY_PORT="70000")
    res = subprocess.run([sys.executable, "-m", "replproxy", "run"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert "--port must be 0..65535, got 70000" in res.stderr
