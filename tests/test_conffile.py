"""`replproxy run --config`: redis.conf syntax, precedence flag > env > file > default, and
one-line errors naming the file and line for every bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from replproxy.conffile import ConfigFileError, read_config_file, split_args

FLAGS = {
    "upstream",
    "port",
    "metrics-port",
    "maxclients",
    "timeout",
    "master-offset-probe",
    "client-output-buffer-limit-replica",
    "save",
    "log-level",
}


def run(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("REPLPROXY_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "replproxy", "run", *args],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def effective(out: str) -> dict[str, tuple[str, str]]:
    """`--check-config` lines: name -> (value, origin)."""
    result = {}
    for line in out.splitlines():
        setting, _, origin = line.partition("  # ")
        name, _, value = setting.partition(" ")
        result[name] = (value, origin)
    return result


def test_split_args_as_redis_splits_them() -> None:
    assert split_args('save "" ') == ["save", ""]
    assert split_args(r'requirepass "a b\x41\n"') == ["requirepass", "a bA\n"]
    assert split_args("masterauth 'it\\'s'") == ["masterauth", "it's"]
    assert split_args('bind "unbalanced') is None
    assert split_args('port "6380"x') is None  # a closing quote must end the word


def test_redis_names_map_to_flags(tmp_path: Path) -> None:
    f = tmp_path / "r.conf"
    f.write_text(
        "# a comment\n\n"
        "replicaof 10.1.2.3 6390\n"
        "Port 7000\n"  # names are case-insensitive
        "client-output-buffer-limit replica 1gb 512mb 30\n"
        "save 900 1\nsave 300 10\n"
        "loglevel notice\n"
        "master-offset-probe no\n"
    )
    s = read_config_file(f, FLAGS)
    assert s["upstream"].value == "redis://10.1.2.3:6390"
    assert s["port"].value == "7000" and s["port"].where == f"{f}:4"
    assert s["client-output-buffer-limit-replica"].value == "1gb 512mb 30"
    assert s["save"].value == "900 1 300 10"
    assert s["log-level"].value == "info"
    assert s["master-offset-probe"].value == "no"


def test_include_and_save_reset(tmp_path: Path) -> None:
    (tmp_path / "base.conf").write_text("save 60 1\nmaxclients 10\n")
    f = tmp_path / "r.conf"
    f.write_text('include base.conf\nsave ""\nmaxclients 20\n')
    s = read_config_file(f, FLAGS)
    assert s["save"].value == '""' and s["maxclients"].value == "20"


@pytest.mark.parametrize(
    "line,reason",
    [
        ("daemonize yes", "Bad directive or wrong number of arguments"),
        ("port", "Bad directive or wrong number of arguments"),
        ("port 6379 6380", "Bad directive or wrong number of arguments"),
        ("port 70000", "argument must be between 0 and 65535 inclusive"),
        ("port six", "argument couldn't be parsed into an integer"),
        ("repl-backlog-size lots", "argument must be a memory value"),
        ("replica-serve-stale-data maybe", "argument must be 'yes' or 'no'"),
        ("client-output-buffer-limit nobody 1 1 1", "Invalid client class specified"),
        ("client-output-buffer-limit replica 1mb x 60", "Error in hard, soft or soft_seconds"),
        ("replicaof host 0", "Invalid master port"),
        ("replicaof no one", "a relay always replicates"),
        ("save 900", "Invalid save parameters"),
        ("loglevel loud", "must be one of the following"),
        ("bind 127.0.0.1 -::1", "one bind address"),
        ('requirepass "open', "Unbalanced quotes in configuration line"),
    ],
)
def test_bad_lines_name_the_file_and_line(tmp_path: Path, line: str, reason: str) -> None:
    f = tmp_path / "bad.conf"
    f.write_text(f"# first\nmaxclients 5\n{line}\n")
    with pytest.raises(ConfigFileError) as e:
        read_config_file(f, FLAGS)
    assert str(e.value).startswith(f"config file {f}, line 3: >>> '{line}': ")
    assert reason in str(e.value)


def test_precedence_flag_over_env_over_file_over_default(tmp_path: Path) -> None:
    f = tmp_path / "r.conf"
    f.write_text(
        "replicaof 10.0.0.1 6379\nmaxclients 50\ntimeout 30\nport 7000\nrepl-backlog-size 1mb\n"
    )
    res = run(
        ["--config", str(f), "--timeout", "50", "--dir", str(tmp_path / "d"), "--check-config"],
        env={"REPLPROXY_PORT": "7001", "REPLPROXY_TIMEOUT": "40"},
    )
    assert res.returncode == 0, res.stderr
    eff = effective(res.stdout)
    assert eff["timeout"] == ("50", "flag")  # flag > env > file
    assert eff["port"] == ("7001", "env REPLPROXY_PORT")  # env > file
    assert eff["maxclients"] == ("50", f"config file {f}:2")  # file > default
    assert eff["upstream"] == ("redis://10.0.0.1:6379", f"config file {f}:1")
    assert eff["repl-backlog-size"] == ("1mb", f"config file {f}:5")
    assert eff["bind"] == ("127.0.0.1", "default")
    assert eff["metrics-bind"] == ("127.0.0.1", "default")  # like the client port


def test_config_file_from_the_environment_and_masked_secrets(tmp_path: Path) -> None:
    f = tmp_path / "r.conf"
    f.write_text("replicaof 10.0.0.1 6379\nmasteruser relay\nmasterauth s3cret\n")
    res = run(["--dir", str(tmp_path / "d"), "--check-config"], env={"REPLPROXY_CONFIG": str(f)})
    assert res.returncode == 0, res.stderr
    eff = effective(res.stdout)
    assert eff["masterauth"][0] == "(set)" and "s3cret" not in res.stdout
    assert eff["masteruser"] == ("relay", f"config file {f}:2")


@pytest.mark.parametrize(
    "args,env,message",
    [
        (["--port", "abc"], {}, "Invalid value for '--port'"),
        (["--port", "70000"], {}, "--port must be 0..65535, got 70000"),
        (["--repl-backlog-size", "lots"], {}, "--repl-backlog-size: not a size: 'lots'"),
        (["--ready-max-lag-bytes", "x"], {}, "--ready-max-lag-bytes: not a size"),
        (["--master-offset-probe", "maybe"], {}, "--master-offset-probe must be yes or no"),
        (["--log-level", "loud"], {}, "--log-level must be debug, info, warning or error"),
        (["--progress", "always"], {}, "--progress must be auto, yes or no"),
        (["--masteruser", "relay"], {}, "--masteruser needs --masterauth"),
        (["--no-such-flag"], {}, "No such option: --no-such-flag"),
        ([], {"REPLPROXY_MAXCLIENTS": "0"}, "--maxclients must be at least 1"),
    ],
)
def test_bad_values_are_one_line_and_exit_1(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    res = run(["--upstream", "redis://127.0.0.1:1", "--dir", str(tmp_path), *args], env=env)
    assert res.returncode == 1
    assert res.stderr.count("\n") == 1 and res.stderr.startswith("replproxy: ")
    assert message in res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_no_master_anywhere_is_one_line(tmp_path: Path) -> None:
    res = run(["--dir", str(tmp_path)])
    assert res.returncode == 1
    assert res.stderr == (
        "replproxy: no master to replicate from: give --upstream, REPLPROXY_UPSTREAM, "
        "'replicaof <host> <port>' in the --config file, or --sentinel with --sentinel-master\n"
    )


@pytest.mark.parametrize(
    "content,message",
    [
        ("replicaof h 1\nfoo bar\n", "line 2: >>> 'foo bar': Bad directive"),
        ("replicaof h 1\nmetrics-port abc\n", "line 2: >>> 'metrics-port abc': "),
        # A value the file passes but the relay refuses still names its line.
        (
            "replicaof h 1\nrepl-backlog-size 1kb\n",
            "line 2: >>> 'repl-backlog-size 1kb': --repl-backlog-size must be at least 16kb",
        ),
        (
            "replicaof h 1\nmaxclients 0\n",
            "line 2: >>> 'maxclients 0': argument must be between 1 and",
        ),
    ],
)
def test_bad_config_file_lines_stop_start_up(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "r.conf"
    f.write_text(content)
    res = run(["--config", str(f), "--dir", str(tmp_path)])
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert res.stderr.startswith(f"replproxy: config file {f}, ")
    assert message in res.stderr


def test_unreadable_config_file(tmp_path: Path) -> None:
    res = run(["--config", str(tmp_path / "missing.conf")])
    assert res.returncode == 1
    assert res.stderr == (
        f"replproxy: cannot read config file {tmp_path / 'missing.conf'}: "
        "No such file or directory\n"
    )
