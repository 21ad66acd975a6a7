"""The table builder from source (scripts/command_table_source.py) and the version choice.

The builder is trusted for Redis 7.2/7.4 and Valkey 8.0/9.1 (which cannot run here) because,
fed the command JSON of the versions that do run, it gives exactly the bytes captured from
the real servers: Redis 7.0.15 entry for entry, Valkey 8.1 (JSON of 8.1.1, server 8.1.8)
likewise, and Redis 8.0.6's JSON against the 8.2.3 server differs only by what 8.2 added.

Source trees (each with src/commands/*.json and src/*.c, as in the servers' repositories)
are read from `REPLPROXY_COMMAND_SOURCES` or ../shared/command-sources, one directory per
version named `redis-7.0.15`, `valkey-8.1.1`...: docs/commandtable.md says how to make
them. Without them these comparisons skip, saying so (like the RDB fixtures).
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from replproxy.commandtable.versions import TABLES, choose_table, keynum_mode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts import command_table_source as cts  # noqa: E402
from scripts import gen_command_table as gen  # noqa: E402

SOURCES = Path(
    os.environ.get("REPLPROXY_COMMAND_SOURCES") or ROOT.parent / "shared" / "command-sources"
)


def tree(name: str) -> Path:
    path = SOURCES / name
    if not (path / "src" / "commands").is_dir():
        pytest.skip(f"{path} is absent (server source trees: docs/commandtable.md)")
    return path


def stored(stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        gzip.decompress((gen.DATA_DIR / f"commands-{stem}.json.gz").read_bytes())
    )
    return data


def built(name: str) -> dict[str, Any]:
    server, version = name.split("-")
    return gen.from_source(tree(name), server, version)


def _same_table(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a["commands"]) == sorted(b["commands"])
    for name in a["commands"]:
        assert a["commands"][name] == b["commands"][name], name
    assert a["meta"] == b["meta"]
    assert a["helps"] == b["helps"]
    assert (a["help2"], a["help3"]) == (b["help2"], b["help3"])


def test_redis_7_0_from_source_is_the_captured_table() -> None:
    _same_table(built("redis-7.0.15"), stored("redis-7.0"))


def test_valkey_8_1_from_source_is_the_captured_table() -> None:
    _same_table(built("valkey-8.1.1"), stored("valkey-8.1"))


def test_redis_8_0_from_source_is_8_2_less_what_8_2_added() -> None:
    """Also the record of what an 8.0 master lacks with the 8.2 table (docs/clients.md)."""
    b, c = built("redis-8.0.6"), stored("redis-8.2")
    only_82 = set(c["commands"]) - set(b["commands"])
    # Vector sets are a module built into 8.x (not in src/commands), XACKDEL/XDELEX new.
    assert only_82 == {"xackdel", "xdelex"} | {n for n in only_82 if n.startswith("V")}
    assert {n for n in only_82 if n.startswith("V")} == {
        "VADD", "VCARD", "VDIM", "VEMB", "VGETATTR", "VINFO", "VISMEMBER", "VLINKS",
        "VRANDMEMBER", "VREM", "VSETATTR", "VSIM",
    }  # fmt: skip
    assert not set(b["commands"]) - set(c["commands"])
    changed = {n for n in b["commands"] if b["commands"][n] != c["commands"][n]}
    # BITOP DIFF/DIFF1/ANDOR/ONE, CLUSTER SLOT-STATS, XADD/XTRIM KEEPREF/DELREF/ACKED.
    assert changed == {"bitop", "cluster", "xadd", "xtrim"}
    assert b["helps"] == c["helps"]


@pytest.mark.parametrize(
    ("name", "stem"),
    [("redis-7.2.6", "redis-7.2"), ("redis-7.4.1", "redis-7.4"),
     ("valkey-8.0.1", "valkey-8.0"), ("valkey-9.1.2", "valkey-9.1")],
)  # fmt: skip
def test_stored_generated_tables_are_a_fresh_build(name: str, stem: str) -> None:
    assert built(name) == stored(stem)


def test_every_table_file_exists_and_says_its_version() -> None:
    for server, lines in TABLES.items():
        for (major, minor), stem in lines.items():
            data = stored(stem)
            assert data["server"] == server
            assert data["version"].startswith(f"{major}.{minor}.")
            assert data["source"] in ("captured", "generated")


def test_c_literal_reading() -> None:
    """The generator pastes JSON strings between quotes into C: MIGRATE's token `""` is two
    empty literals."""
    assert cts._c('""') == ""
    assert cts._c("a\nb") == "a\nb"
    assert cts._c("plain") == "plain"
    assert cts._c('say \\"hi\\"') == 'say "hi"'


@pytest.mark.parametrize(
    ("server", "version", "stem", "warns"),
    [
        ("redis", (4, 0, 14), "redis-5.0", True),
        ("redis", (5, 0, 14), "redis-5.0", False),
        ("redis", (6, 0, 20), "redis-6.2", True),
        ("redis", (6, 2, 17), "redis-6.2", False),
        ("redis", (7, 0, 0), "redis-7.0", False),
        ("redis", (7, 2, 11), "redis-7.2", False),
        ("redis", (7, 4, 6), "redis-7.4", False),
        ("redis", (8, 0, 4), "redis-8.2", False),
        ("redis", (8, 2, 1), "redis-8.2", False),
        ("redis", (8, 4, 0), "redis-8.2", True),
        ("redis", (9, 0, 0), "redis-8.2", True),
        ("valkey", (7, 2, 5), "redis-7.2", False),
        ("valkey", (8, 0, 2), "valkey-8.0", False),
        ("valkey", (8, 1, 4), "valkey-8.1", False),
        ("valkey", (9, 0, 1), "valkey-9.1", True),
        ("valkey", (9, 1, 0), "valkey-9.1", False),
        ("valkey", (10, 0, 0), "valkey-9.1", True),
    ],
)
def test_choose_table(server: str, version: tuple[int, int, int], stem: str, warns: bool) -> None:
    choice = choose_table(server, version)
    assert choice.stem == stem
    assert (choice.warning is not None) == warns


def test_keynum_modes() -> None:
    assert keynum_mode("redis", (7, 2, 4)) == "int"
    assert keynum_mode("redis", (7, 4, 0)) == "long"
    assert keynum_mode("redis", (8, 2, 3)) == "long"
    assert keynum_mode("valkey", (8, 1, 8)) == "int"
    assert keynum_mode("valkey", (9, 0, 0)) == "valkey9"
