"""`replproxy rdb info|dump|verify`, run through typer's CliRunner on fixtures and built files."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from replproxy.rdb import KeyEntry, read_file
from replproxy.rdb.cli import app, encode_bytes
from tests.test_rdb_fixtures import NEGATIVE, NON_ASCII_UTF8, POSITIVE
from tests.test_rdb_reader import rdb, rkey, rlen, rstr

runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_accepts_every_sound_fixture(shared_rdb: Path) -> None:
    for name in POSITIVE:
        code, out, err = run("verify", str(shared_rdb / name))
        assert code == 0, (name, err)
        assert out.startswith("OK: ")


@pytest.mark.parametrize("name", sorted(NEGATIVE))
def test_verify_refuses_negative_fixtures_with_the_offset(shared_rdb: Path, name: str) -> None:
    code, out, err = run("verify", str(shared_rdb / name))
    assert code == 1
    assert out == ""
    assert err.startswith("error: ")
    assert NEGATIVE[name][1] in err
    assert "at byte offset " in err


def test_verify_reports_truncation(tmp_path: Path) -> None:
    data = rdb(rkey(0, b"k", rstr(b"v" * 100)))
    path = tmp_path / "cut.rdb"
    path.write_bytes(data[:40])
    code, _, err = run("verify", str(path))
    assert code == 1 and "truncated" in err and "at byte offset" in err


def test_info_summarises_a_file(shared_rdb: Path) -> None:
    code, out, _ = run("info", "--json", str(shared_rdb / "rdbtools/redis_50_with_streams.rdb"))
    assert code == 0
    info = json.loads(out)
    assert (info["magic"], info["version"]) == ("REDIS", 9)
    assert info["aux"]["redis-ver"] == "999.999.999"
    db0 = info["dbs"]["0"]
    assert db0["keys"] == info["keys"] == 14
    assert db0["by_type"]["stream"] == 1
    assert db0["by_encoding"]["stream/stream listpacks"] == 1
    assert db0["by_encoding"]["set/intset"] >= 1
    assert info["checksum"].startswith("ok (0x")

    code, out, _ = run("info", str(shared_rdb / "librdb/multiple_dbs.rdb"))
    assert code == 0
    assert "format: REDIS version 11" in out
    assert "db 0: 1 keys" in out and "db 2: 1 keys" in out
    assert "checksum: ok" in out


def test_info_reports_functions_modules_and_checksum_states(shared_rdb: Path) -> None:
    def info_of(name: str) -> tuple[int, dict]:
        code, out, _ = run("info", "--json", str(shared_rdb / name))
        return code, json.loads(out)

    assert info_of("librdb/function.rdb")[1]["functions"] == 1
    assert info_of("librdb/module_aux.rdb")[1]["module_aux"] == 2
    assert info_of("librdb/script.rdb")[1]["checksum"].startswith("disabled")
    assert info_of("rdbtools/regular_set.rdb")[1]["checksum"].startswith("absent")
    assert info_of("valkey/corrupt_empty_keys.rdb")[1]["skipped_empty_keys"] == 9
    code, info = info_of("librdb/invalid_chksum_v8.rdb")
    assert code == 1 and info["checksum"].startswith("MISMATCH")
    code, _, err = run("info", str(shared_rdb / "valkey/corrupt_ziplist.rdb"))
    assert code == 1 and "ziplist" in err


def test_dump_writes_one_json_object_per_key(shared_rdb: Path) -> None:
    path = shared_rdb / "rdbtools/redis_50_with_streams.rdb"
    code, out, _ = run("dump", str(path))
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    entries = [e for e in read_file(path) if isinstance(e, KeyEntry)]
    assert len(lines) == len(entries)
    by_key = {line["key"]: line for line in lines}
    assert set(by_key["list"]) == {"db", "key", "type", "value", "expire_ms"}
    assert by_key["string"] == {
        "db": 0,
        "key": "string",
        "type": "string",
        "value": "Hello World",
        "expire_ms": None,
    }
    assert by_key["hash"]["value"][0] == ["b", "2"]
    assert by_key["zset_zipped"]["value"] == [["a", 1.0], ["b", 2.0], ["c", 3.0]]
    assert by_key["set_zipped_1"]["value"] == ["1", "2", "3", "4"]
    stream = by_key["mystream"]
    assert stream["type"] == "stream"
    assert stream["value"]["entries"][0] == {
        "id": "1528176919539-0",
        "fields": [["message", "apple"]],
    }
    assert stream["value"]["groups"][0]["name"] == "mygroup"


def test_dump_is_binary_safe(shared_rdb: Path) -> None:
    code, out, _ = run("dump", str(shared_rdb / "rdbtools/non_ascii_values.rdb"))
    assert code == 0
    by_key = {line["key"]: line["value"] for line in map(json.loads, out.splitlines())}
    assert by_key["utf8"] == NON_ASCII_UTF8.decode()
    assert base64.b64decode(by_key["bin"]["b64"]) == b"\x00$ ~0\x7f\xff\n\xaa\t\x80\rAb"
    assert base64.b64decode(by_key["ascii"]["b64"]).startswith(b"\x00")  # control chars
    assert by_key["printable"] == "!+ Ab^~"
    assert encode_bytes(b"tab\there") == {"b64": base64.b64encode(b"tab\there").decode()}
    assert encode_bytes("é".encode()) == "é"


def test_dump_of_ttls_infinities_and_modules(tmp_path: Path, shared_rdb: Path) -> None:
    import struct

    hash_ttl = (
        struct.pack("<Q", 1_000)
        + rlen(2)
        + rlen(0)
        + rstr(b"a")
        + rstr(b"1")
        + rlen(6)
        + rstr(b"b")
        + rstr(b"2")
    )
    data = rdb(
        b"\xfc" + struct.pack("<q", 1_900_000_000_000) + rkey(0, b"s", rstr(b"v")),
        rkey(24, b"h", hash_ttl),
        rkey(
            5,
            b"z",
            rlen(2)
            + rstr(b"x")
            + struct.pack("<d", float("inf"))
            + rstr(b"y")
            + struct.pack("<d", -1.5),
        ),
        version=12,
    )
    path = tmp_path / "t.rdb"
    path.write_bytes(data)
    code, out, _ = run("dump", str(path))
    assert code == 0
    s, h, z = map(json.loads, out.splitlines())
    assert s["expire_ms"] == 1_900_000_000_000
    assert h["value"] == [["a", "1"], ["b", "2"]] and h["field_expires"] == [["b", 1_005]]
    assert z["value"] == [["y", -1.5], ["x", "inf"]]
    code, out, _ = run("dump", str(shared_rdb / "librdb/module.rdb"))
    (m,) = map(json.loads, out.splitlines())
    assert m["type"] == "test__rdb" and m["value"]["module"] == "test__rdb"
    assert base64.b64decode(m["value"]["raw"]["b64"]).endswith(b"\x00")


def test_dump_stops_with_an_error_on_a_corrupt_file(shared_rdb: Path) -> None:
    code, out, err = run("dump", str(shared_rdb / "valkey/corrupt_ziplist.rdb"))
    assert code == 1
    assert len(out.splitlines()) == 15  # the keys before the corrupt one
    assert "at byte offset 488" in err


def test_no_command_shows_help() -> None:
    result = runner.invoke(app, [])
    assert "info" in result.output and "dump" in result.output and "verify" in result.output


def test_main_runs_the_plain_forms_directly_like_typer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replproxy rdb` runs `verify|dump|info [--json] FILE` without typer's dispatch: same
    output and exit status as through typer."""
    from replproxy.rdb.cli import main

    good = tmp_path / "good.rdb"
    good.write_bytes(rdb(rkey(0, b"k", rstr(b"v")), rkey(1, b"l", rlen(1) + rstr(b"x"))))
    bad = tmp_path / "bad.rdb"
    bad.write_bytes(good.read_bytes()[:-3])
    for argv in (
        ["verify", str(good)],
        ["verify", str(bad)],
        ["dump", str(good)],
        ["dump", str(bad)],
        ["info", str(good)],
        ["info", "--json", str(good)],
        ["info", str(good), "--json"],
        ["info", str(bad)],
    ):
        code, out, err = run(*argv)
        assert main(argv) == code, argv
        got = capsys.readouterr()
        assert (got.out, got.err) == (out, err), argv
    with pytest.raises(SystemExit) as info:  # not a plain form: typer's usage error
        main(["verify", str(tmp_path / "missing.rdb")])
    assert info.value.code == 2
