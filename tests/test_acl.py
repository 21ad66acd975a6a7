"""`replproxy.acl` without servers: every rule of the language, its errors (Redis's texts),
permission checks, ACL LIST / GETUSER / LOG output, aclfile loading, per-version rules.

Expected texts come from the real servers (tests/test_acl_differential.py compares the relay
with a real replica; these pin the module's own behaviour, version by version).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from replproxy.acl import (
    ACL_DENIED_CHANNEL,
    ACL_DENIED_CMD,
    ACL_DENIED_KEY,
    ACL_OK,
    Acl,
    AclDialect,
    AclLoadError,
    denied_text,
    describe_user,
    is_local_host,
)
from replproxy.commandtable import CommandTable
from replproxy.resp import reply

T62 = CommandTable.load("redis-6.2")
T70 = CommandTable.load("redis-7.0")
T82 = CommandTable.load("redis-8.2")
V70 = AclDialect(False, (7, 0, 15))
V72 = AclDialect(False, (7, 2, 4))
V62 = AclDialect(False, (6, 2, 5))
VK8 = AclDialect(True, (8, 1, 8))


def make(rules: str, dialect: AclDialect = V70, name: bytes = b"u") -> Acl:
    acl = Acl(T70, dialect)
    acl.set_user(name, [r.encode() for r in rules.split()])
    return acl


def listed(acl: Acl, name: bytes = b"u") -> str:
    return describe_user(acl.users[name], acl.cmds, acl.dialect).decode()


def err(rules: str, dialect: AclDialect = V70) -> str:
    with pytest.raises(ValueError) as e:
        make(rules, dialect)
    return str(e.value)


def sha(p: str) -> str:
    return hashlib.sha256(p.encode()).hexdigest()


# --- the rule language -------------------------------------------------------------------


def test_new_user_is_off_with_nothing() -> None:
    acl = Acl(T70, V70)
    acl.set_user(b"u", [])
    assert listed(acl) == "off resetchannels -@all"
    acl72 = Acl(T70, V72)
    acl72.set_user(b"u", [])
    assert listed(acl72) == "off sanitize-payload resetchannels -@all"
    acl62 = Acl(T70, V62)
    acl62.set_user(b"u", [])
    assert listed(acl62) == "off &* -@all"  # 6.2: acl-pubsub-default allchannels


def test_default_user() -> None:
    assert Acl(T70, V70).list_reply() == reply.bulk_array([b"user default on nopass ~* &* +@all"])
    assert Acl(T70, V72).list_reply() == reply.bulk_array(
        [b"user default on nopass sanitize-payload ~* &* +@all"]
    )


def test_flags_and_passwords() -> None:
    acl = make("on >a >b >a #" + sha("c") + " <b")
    assert listed(acl) == f"on #{sha('a')} #{sha('c')} resetchannels -@all"
    acl.set_user(b"u", [b"off", b"nopass"])
    assert listed(acl) == "off nopass resetchannels -@all"
    acl.set_user(b"u", [b"resetpass", b"skip-sanitize-payload", b"ON"])
    assert listed(acl) == "on skip-sanitize-payload resetchannels -@all"
    acl.set_user(b"u", [b">x", b"!" + sha("x").encode()])
    assert acl.users[b"u"].passwords == []


def test_password_errors() -> None:
    assert err("<nope") == (
        "Error in ACL SETUSER modifier '<nope': The password you are "
        "trying to remove from the user does not exist"
    )
    assert err("#abc") == (
        "Error in ACL SETUSER modifier '#abc': The password hash must be "
        "exactly 64 characters and contain only lowercase hexadecimal "
        "characters"
    )
    assert "must be exactly 64" in err("!" + sha("x").upper())


def test_credentials() -> None:
    acl = make("on >pw")
    assert acl.check_credentials(b"u", b"pw")
    assert not acl.check_credentials(b"u", b"other")
    assert not acl.check_credentials(b"nobody", b"pw")
    acl.set_user(b"u", [b"off"])
    assert not acl.check_credentials(b"u", b"pw")
    acl.set_user(b"u", [b"on", b"nopass"])
    assert acl.check_credentials(b"u", b"anything")
    acl.set_user(b"u", [b"resetpass"])
    assert not acl.check_credentials(b"u", b"anything")


def test_key_patterns() -> None:
    acl = make("~a* ~b* %R~r:* %W~w:* %RW~rw:* %R~a*")
    assert listed(acl) == "off ~a* ~b* %R~r:* %W~w:* ~rw:* resetchannels -@all"
    acl.set_user(b"u", [b"allkeys"])
    assert listed(acl) == "off ~* resetchannels -@all"
    assert err("~* ~x").endswith(
        "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does "
        "not have any effect. Try 'resetkeys' to start with an empty list of patterns"
    )
    acl.set_user(b"u", [b"resetkeys", b"~x"])
    assert listed(acl) == "off ~x resetchannels -@all"
    assert err("%X~a").endswith("Syntax error")
    assert err("%RR~a").endswith("Syntax error")
    # 7.0 takes `%~a` (a pattern with no permission); 7.2.6+ refuses it (CVE-2024-31227)
    assert err("%~a", AclDialect(False, (7, 2, 6))).endswith("Syntax error")
    assert err("%~a", VK8).endswith("Syntax error")
    make("%~a", V72)
    assert err("%R~a", V62).endswith("Syntax error")  # no %R~ before 7.0


def test_channel_patterns() -> None:
    acl = make("&a &b &a")
    assert listed(acl) == "off resetchannels &a &b -@all"
    acl.set_user(b"u", [b"allchannels"])
    assert listed(acl) == "off &* -@all"
    assert err("&* &x").endswith("Try 'resetchannels' to start with an empty list of channels")
    assert err("&a\tb").endswith("Syntax error")


def test_command_rules_kept_as_written_from_7_2() -> None:
    acl = make("-@all +@read +get -@read +config|get +client +client|id -client +select|0", V72)
    assert listed(acl) == (
        "off sanitize-payload resetchannels -@all +get -@read +config|get -client +select|0"
    )
    acl.set_user(b"u", [b"+@all", b"-debug", b"-@DANGEROUS", b"+@Dangerous"])
    assert listed(acl) == "off sanitize-payload resetchannels +@all -debug +@dangerous"
    acl.set_user(b"u", [b"nocommands"])
    assert listed(acl) == "off sanitize-payload resetchannels -@all"


def test_command_rules_rebuilt_from_bits_in_7_0() -> None:
    # As redis-server 7.0.15 lists them (categories first, then single commands)
    assert listed(make("-@all +@read +get")) == "off resetchannels -@all +@read"
    assert listed(make("+@all -@read +get")).startswith("off resetchannels +@all -@read +get")
    assert listed(make("-@all +select|0")) == "off resetchannels -@all +select|0"
    assert listed(make("-@all +config|get")) == "off resetchannels -@all +config|get"


def test_command_errors() -> None:
    assert err("+nosuch") == (
        "Error in ACL SETUSER modifier '+nosuch': Unknown command or category name in ACL"
    )
    assert err("-@nosuch").endswith("Unknown command or category name in ACL")
    assert err("-get|x").endswith("Unknown command or category name in ACL")
    assert err("+config|nosuch").endswith("Unknown command or category name in ACL")
    assert err("+config|get|x").endswith("Allowing first-arg of a subcommand is not supported")
    assert err("+select|").endswith("Syntax error")
    assert err("bogus").endswith("Syntax error")
    # all or nothing: the failing rule leaves the user as it was
    acl = make("on >pw ~a +get")
    with pytest.raises(ValueError):
        acl.set_user(b"u", [b"off", b"+nosuch"])
    assert listed(acl) == f"on #{sha('pw')} ~a resetchannels -@all +get"


def test_reset() -> None:
    acl = make("on >p ~* &* +@all (~x +get)")
    acl.set_user(b"u", [b"reset"])
    assert listed(acl) == "off sanitize-payload resetchannels -@all"
    acl62 = make("on >p ~* +@all", V62)
    acl62.set_user(b"u", [b"reset"])
    assert listed(acl62) == "off sanitize-payload &* -@all"


def test_selectors() -> None:
    acl = make("on ~app:* +get (~secret:* +strlen) (%R~tmp:* +@string)")
    assert listed(acl) == (
        "on ~app:* resetchannels -@all +get (~secret:* resetchannels -@all "
        "+strlen) (%R~tmp:* resetchannels -@all +@string)"
    )
    # a selector may come in several arguments
    acl.set_user(b"v", [b"on", b"(~a", b"+get)", b"(", b"~b", b"+get", b")"])
    assert listed(acl, b"v") == (
        "on resetchannels -@all (~a resetchannels -@all +get) (~b resetchannels -@all +get)"
    )
    acl.set_user(b"v", [b"clearselectors"])
    assert listed(acl, b"v") == "on resetchannels -@all"
    assert err("(~a +get") == "Unmatched parenthesis in acl selector starting at '(~a'."
    assert err("(~a +nosuch)").endswith("Unknown command or category name in ACL")
    assert err("(~a +get)", V62).endswith("Syntax error")
    assert err("clearselectors", V62).endswith("Syntax error")


# --- permission checks -------------------------------------------------------------------


def check(acl: Acl, *argv: str, user: bytes = b"u") -> tuple[int, int]:
    args = [a.encode() for a in argv]
    spec = acl.table.find(args)
    assert spec is not None
    return acl.check(user, spec, args)


def test_command_and_key_checks() -> None:
    acl = make("on ~app:* -@all +@read")
    assert check(acl, "get", "app:1") == (ACL_OK, 0)
    assert check(acl, "get", "secret") == (ACL_DENIED_KEY, 1)
    assert check(acl, "mget", "app:1", "secret", "app:2") == (ACL_DENIED_KEY, 2)
    assert check(acl, "set", "app:1", "x") == (ACL_DENIED_CMD, 0)
    assert check(acl, "config", "get", "x") == (ACL_DENIED_CMD, 0)
    assert check(acl, "auth", "a", "b") == (ACL_OK, 0)  # no_auth commands skip the bit test
    assert check(acl, "ping") == (ACL_DENIED_CMD, 0)


def test_read_and_write_key_permissions() -> None:
    acl = make("on %R~r:* %W~w:* -@all +@read +@write")
    assert check(acl, "get", "r:1") == (ACL_OK, 0)
    assert check(acl, "get", "w:1") == (ACL_DENIED_KEY, 1)
    assert check(acl, "set", "w:1", "v") == (ACL_OK, 0)
    assert check(acl, "set", "r:1", "v") == (ACL_DENIED_KEY, 1)
    assert check(acl, "copy", "r:1", "w:2") == (ACL_OK, 0)
    assert check(acl, "copy", "w:1", "r:2") == (ACL_DENIED_KEY, 1)
    # SET ... GET reads the key too (variable flags: the command's own key function)
    assert check(acl, "set", "w:1", "v", "get") == (ACL_DENIED_KEY, 1)


def test_first_args_and_subcommands() -> None:
    acl = make("on ~* -@all +select|0 +config|get +client")
    assert check(acl, "select", "0") == (ACL_OK, 0)
    assert check(acl, "select", "1") == (ACL_DENIED_CMD, 0)
    assert check(acl, "config", "get", "x") == (ACL_OK, 0)
    assert check(acl, "config", "set", "x", "y") == (ACL_DENIED_CMD, 0)
    assert check(acl, "client", "kill", "id", "1") == (ACL_OK, 0)


def test_category_on_a_container_sets_all_its_subcommands() -> None:
    # CONFIG (the container) is @slow, so +@slow allows CONFIG SET too, as in Redis.
    acl = make("on ~* -@all +@slow")
    assert check(acl, "config", "set", "x", "y") == (ACL_OK, 0)
    acl = make("on ~* +@all -@admin")
    assert check(acl, "config", "get", "x") == (ACL_DENIED_CMD, 0)
    assert check(acl, "client", "id") == (ACL_OK, 0)


def test_channels() -> None:
    acl = make("on resetkeys &news:* &exact -@all +@pubsub")
    assert check(acl, "subscribe", "news:1") == (ACL_OK, 0)
    assert check(acl, "subscribe", "news:1", "other") == (ACL_DENIED_CHANNEL, 2)
    assert check(acl, "publish", "exact", "m") == (ACL_OK, 0)
    assert check(acl, "publish", "exactly", "m") == (ACL_DENIED_CHANNEL, 1)
    # a PSUBSCRIBE pattern must be one of the user's patterns, literally
    assert check(acl, "psubscribe", "news:*") == (ACL_OK, 0)
    assert check(acl, "psubscribe", "news:1") == (ACL_DENIED_CHANNEL, 1)
    assert check(acl, "psubscribe", "*") == (ACL_DENIED_CHANNEL, 1)
    assert check(acl, "unsubscribe", "anything") == (ACL_OK, 0)  # never checked
    assert check(acl, "ssubscribe", "news:2") == (ACL_OK, 0)


def test_selectors_pick_the_most_relevant_error() -> None:
    acl = make("on ~app:* -@all +get (~secret:* +strlen) (%R~tmp:* +@string)")
    assert check(acl, "get", "app:1") == (ACL_OK, 0)
    assert check(acl, "get", "tmp:1") == (ACL_OK, 0)
    assert check(acl, "strlen", "secret:1") == (ACL_OK, 0)
    assert check(acl, "get", "secret:1") == (ACL_DENIED_KEY, 1)
    assert check(acl, "set", "tmp:1", "x") == (ACL_DENIED_KEY, 1)
    assert check(acl, "hget", "app:1", "f") == (ACL_DENIED_CMD, 0)


def test_noperm_texts_per_version() -> None:
    spec = T70.find([b"client", b"getname"])
    get = T70.find([b"get"])
    assert spec is not None and get is not None
    assert Acl(T70, V70).noperm(ACL_DENIED_CMD, b"bob", spec) == (
        b"-NOPERM this user has no permissions to run the 'client|getname' command\r\n"
    )
    assert Acl(T70, V62).noperm(ACL_DENIED_CMD, b"bob", spec) == (
        b"-NOPERM this user has no permissions to run the 'client' command or its subcommand\r\n"
    )
    assert Acl(T70, V72).noperm(ACL_DENIED_CMD, b"bob", spec) == (
        b"-NOPERM User bob has no permissions to run the 'client|getname' command\r\n"
    )
    assert Acl(T70, VK8).noperm(ACL_DENIED_KEY, b"bob", get) == (
        b"-NOPERM No permissions to access a key\r\n"
    )
    assert Acl(T70, V70).noperm(ACL_DENIED_CHANNEL, b"bob", get) == (
        b"-NOPERM this user has no permissions to access one of the channels used as arguments\r\n"
    )


def test_dryrun_texts() -> None:
    acl = make("on ~app:* -@all +get")
    get = acl.table.find([b"get"])
    assert get is not None
    assert acl.dryrun(b"u", get, [b"get", b"app:1"]) == b"+OK\r\n"
    assert acl.dryrun(b"u", get, [b"get", b"x"]) == reply.bulk(
        b"This user has no permissions to access the 'x' key"
    )
    acl72 = make("on ~app:* -@all +get", V72)
    assert acl72.dryrun(b"u", get, [b"get", b"x"]) == reply.bulk(
        b"User u has no permissions to access the 'x' key"
    )


# --- replies -----------------------------------------------------------------------------


def test_getuser_shapes() -> None:
    acl = make("on >pw ~a %R~b &c -@all +get (~x +set)")
    h = sha("pw").encode()
    assert acl.getuser_reply(b"u", 2) == (
        b"*12\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$9\r\npasswords\r\n*1\r\n$64\r\n"
        + h
        + b"\r\n$8\r\ncommands\r\n$10\r\n-@all +get\r\n$4\r\nkeys\r\n$7\r\n~a %R~b\r\n"
        b"$8\r\nchannels\r\n$2\r\n&c\r\n$9\r\nselectors\r\n*1\r\n*6\r\n$8\r\ncommands\r\n"
        b"$10\r\n-@all +set\r\n$4\r\nkeys\r\n$2\r\n~x\r\n$8\r\nchannels\r\n$0\r\n\r\n"
    )
    assert acl.getuser_reply(b"u", 3).startswith(b"%6\r\n$5\r\nflags\r\n~1\r\n")
    assert acl.getuser_reply(b"nobody", 2) == b"$-1\r\n"
    acl62 = make("on ~a resetchannels &c -@all +get", V62)
    assert acl62.getuser_reply(b"u", 2) == (
        b"*10\r\n$5\r\nflags\r\n*1\r\n$2\r\non\r\n$9\r\npasswords\r\n*0\r\n$8\r\ncommands\r\n"
        b"$10\r\n-@all +get\r\n$4\r\nkeys\r\n*1\r\n$1\r\na\r\n$8\r\nchannels\r\n*1\r\n$1\r\nc\r\n"
    )


def test_cat() -> None:
    acl = Acl(T70, V70)
    assert acl.cat_reply(None).startswith(b"*21\r\n$8\r\nkeyspace\r\n$4\r\nread\r\n")
    names = acl.cat_reply(b"ADMIN")
    assert b"$6\r\nconfig\r\n" not in names and b"$10\r\nconfig|get\r\n" in names
    with pytest.raises(ValueError, match="Unknown category 'nope'"):
        acl.cat_reply(b"nope")


def test_log_groups_and_orders() -> None:
    acl = Acl(T70, V72, log_max_len=3)
    acl.add_log(ACL_DENIED_KEY, "toplevel", b"k", b"u", 1000, b"id=1")
    acl.add_log(ACL_DENIED_KEY, "toplevel", b"k", b"u", 2000, b"id=2")  # the same, grouped
    acl.add_log(ACL_DENIED_KEY, "toplevel", b"k", b"u", 70_000, b"id=3")  # a minute later
    assert [(e.count, e.entry_id, e.cinfo) for e in acl.log] == [(1, 1, b"id=3"), (2, 0, b"id=2")]
    for i in range(5):
        acl.add_log(ACL_DENIED_CMD, "multi", b"c%d" % i, b"u", 80_000, b"")
    assert len(acl.log) == 3 and acl.log[0].object == b"c4"
    out = acl.log_reply(1, 81_000, 2, "shortest")
    assert out.startswith(
        b"*1\r\n*20\r\n$5\r\ncount\r\n:1\r\n$6\r\nreason\r\n$7\r\ncommand\r\n"
        b"$7\r\ncontext\r\n$5\r\nmulti\r\n$6\r\nobject\r\n$2\r\nc4\r\n"
    )
    assert b"$11\r\nage-seconds\r\n$1\r\n1\r\n" in out
    assert b"entry-id" not in Acl(T70, V70).log_reply(1, 0, 2, "g17")
    assert acl.denied[ACL_DENIED_KEY] == 3


# --- aclfile -------------------------------------------------------------------------------


def test_aclfile_loads_with_a_fresh_default(tmp_path: Path) -> None:
    f = tmp_path / "users.acl"
    f.write_text("user b on >x ~* +@all\n\n  user a off  \n")
    acl = Acl(T70, V70, aclfile=f)
    assert list(acl.users) == [b"a", b"b", b"default"]
    assert listed(acl, b"default") == "on nopass ~* &* +@all"


def test_aclfile_errors_are_redis_errors(tmp_path: Path) -> None:
    f = tmp_path / "users.acl"
    f.write_text(
        "user a on >x +nosuch -nosuch2\nuser b on ~* ~b <nope\n# comment\n"
        "user a on\nuser c on (~a +get\n"
    )
    with pytest.raises(AclLoadError) as e:
        Acl(T70, V70, aclfile=f)
    assert e.value.errors == (
        f"{f}:1: Error in applying operation '+nosuch': Unknown command or category name in "
        f"ACL. {f}:1: Error in applying operation '-nosuch2': Unknown command or category name "
        f"in ACL. {f}:2: Adding a pattern after the * pattern (or the 'allkeys' flag) is not "
        f"valid and does not have any effect. Try 'resetkeys' to start with an empty list of "
        f"patterns. {f}:3 should start with user keyword followed by the username. WARNING: "
        f"Duplicate user 'a' found on line 4. {f}:5: Unmatched parenthesis in selector "
        f"definition.WARNING: ACL errors detected, no change to the previously active ACL "
        f"rules was performed"
    )
    with pytest.raises(AclLoadError, match="Error loading ACLs, opening file"):
        Acl(T70, V70, aclfile=tmp_path / "missing")


def test_save_text_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "users.acl"
    f.write_text("user a on >x ~k:* &c -@all +get (~s +strlen)\n")
    acl = Acl(T70, V72, aclfile=f)
    text = acl.save_text()
    f.write_text(text.decode())
    assert Acl(T70, V72, aclfile=f).save_text() == text


def test_requirepass_sets_the_default_password() -> None:
    acl = Acl(T70, V70, requirepass="pw")
    assert not acl.default_authenticated()
    assert acl.auth_required(False) and not acl.auth_required(True)
    assert acl.check_credentials(b"default", b"pw")


def test_context_change_rebuilds_users() -> None:
    acl = Acl(T70, V70)
    acl.set_user(b"u", [b"on", b"-@all", b"+@read", b"+get"])
    acl.set_context(T82, V72)
    assert listed(acl) == "on sanitize-payload resetchannels -@all +@read +get"
    assert check(acl, "get", "k")[0] == ACL_DENIED_KEY  # no key patterns


# --- Redis 6.2: its own table, no subcommands, keys from getKeysFromCommand -----------------


def make62(rules: str) -> Acl:
    acl = Acl(T62, V62)
    acl.set_user(b"u", [r.encode() for r in rules.split()])
    return acl


def test_62_keys_are_every_key_getkeysfromcommand_finds() -> None:
    """6.2 has no key specs: the (first, last, step) range or its own *GetKeys function,
    every key against the `~` patterns (no read/write permissions)."""
    acl = make62("on ~app:* -@all +@read +@write +@scripting +memory")
    assert check(acl, "get", "app:1") == (ACL_OK, 0)
    assert check(acl, "get", "secret:1") == (ACL_DENIED_KEY, 1)
    assert check(acl, "mget", "app:1", "app:2", "secret:1") == (ACL_DENIED_KEY, 3)
    assert check(acl, "mset", "app:1", "x", "secret:1", "y") == (ACL_DENIED_KEY, 3)
    assert check(acl, "memory", "usage", "secret:1") == (ACL_DENIED_KEY, 2)
    assert check(acl, "memory", "doctor") == (ACL_OK, 0)
    assert check(acl, "object", "encoding", "secret:1") == (ACL_DENIED_KEY, 2)
    # an unknown subcommand is the container's to answer, after the ACL judged it
    obj = T62.get(b"object")
    assert obj is not None
    assert acl.check(b"u", obj, [b"object", b"nosuch", b"secret:1"]) == (ACL_DENIED_KEY, 2)
    assert check(acl, "stralgo", "lcs", "keys", "app:1", "secret:1") == (ACL_DENIED_KEY, 4)
    assert check(acl, "stralgo", "lcs", "strings", "secret:1", "x") == (ACL_OK, 0)
    assert check(acl, "eval", "s", "1", "secret:1") == (ACL_DENIED_KEY, 3)
    assert check(acl, "eval", "s", "0", "secret:1") == (ACL_OK, 0)
    assert check(acl, "zunionstore", "app:d", "2", "app:a", "secret:b") == (ACL_DENIED_KEY, 4)
    assert check(acl, "zunionstore", "secret:d", "1", "app:a") == (ACL_DENIED_KEY, 1)
    assert check(acl, "xread", "streams", "app:s", "secret:s", "0", "0") == (ACL_DENIED_KEY, 3)
    assert check(acl, "georadius", "app:g", "0", "0", "1", "km", "store", "secret:x") == (
        ACL_DENIED_KEY,
        7,
    )
    assert check(acl, "sort", "app:l", "by", "secret:*", "store", "secret:d") == (
        ACL_DENIED_KEY,
        5,
    )
    # MIGRATE's 6.2 function does not skip AUTH's argument: "keys" as a password starts keys
    assert check(acl, "migrate", "h", "1", "", "0", "1", "auth", "keys", "app:a") == (
        ACL_OK,
        0,
    )
    assert check(acl, "migrate", "h", "1", "", "0", "1", "keys", "secret:a") == (
        ACL_DENIED_KEY,
        7,
    )


def test_62_first_args_are_checked_on_the_whole_command() -> None:
    """6.2 has no subcommands: `+client|id` allows CLIENT with the first argument `id`
    (any case, a C string), `-client|id` is an unknown command, `+cmd|x` takes anything."""
    acl = make62("on ~* -@all +client|id +select|0 +config|get|x +ping|a")
    assert check(acl, "client", "id") == (ACL_OK, 0)
    assert check(acl, "client", "ID") == (ACL_OK, 0)
    assert check(acl, "client", "getname") == (ACL_DENIED_CMD, 0)
    assert check(acl, "client", "list") == (ACL_DENIED_CMD, 0)
    assert check(acl, "select", "0") == (ACL_OK, 0)
    assert check(acl, "select", "1") == (ACL_DENIED_CMD, 0)
    assert check(acl, "config", "get", "x") == (ACL_DENIED_CMD, 0)
    assert check(acl, "ping", "a") == (ACL_OK, 0)
    assert check(acl, "ping") == (ACL_DENIED_CMD, 0)
    spec = T62.find([b"client", b"getname"])
    assert spec is not None and spec.name == b"client|getname"  # a routing subcommand
    denial = acl.denial(b"u", spec, [b"client", b"getname"])
    assert denial is not None and denial.obj == b"client"  # what the ACL LOG names
    assert acl.noperm(ACL_DENIED_CMD, b"u", spec) == (
        b"-NOPERM this user has no permissions to run the 'client' command or its subcommand\r\n"
    )
    assert listed(acl) == "on ~* &* -@all +client|id +config|get|x +ping|a +select|0"
    for bad, why in (
        ("-client|id", "Unknown command or category name in ACL"),
        ("+nosuch|x", "Unknown command or category name in ACL"),
        ("+get|", "Syntax error"),
    ):
        with pytest.raises(ValueError, match=why):
            acl.set_user(b"u", [bad.encode()])
    # while the command is allowed, `+cmd|x` adds nothing
    acl = make62("on ~* +@all -client +client +client|id")
    assert listed(acl) == "on ~* &* +@all"


def test_62_categories_are_its_own() -> None:
    """6.2's categories, one bit per command: `+@all` lists as `+@all`, SELECT is not
    @connection, CLIENT (all of it) is @admin and @connection."""
    acl = Acl(T62, V62)
    assert listed(acl, b"default") == "on nopass ~* &* +@all"
    acl = make62("on ~* -@all +@connection")
    assert check(acl, "select", "0") == (ACL_DENIED_CMD, 0)
    assert check(acl, "client", "kill", "id", "1") == (ACL_OK, 0)
    assert listed(acl) == "on ~* &* -@all +@connection"
    names = acl.cat_reply(b"connection")
    assert b"client" in names and b"client|id" not in names and b"select" not in names


def test_a_master_older_than_6_2_is_judged_with_7_0s_table() -> None:
    """5.0 had no ACL (and its table no categories): the relay's ACL is 7.0's."""
    from replproxy.dialect import MasterDialect

    assert MasterDialect("redis", (5, 0, 7)).acl_command_table is T70
    assert MasterDialect("redis", (6, 0, 16)).acl_command_table is T70
    assert MasterDialect("redis", (6, 2, 5)).acl_command_table is T62
    t50 = CommandTable.load("redis-5.0")
    acl = Acl(T70, AclDialect.of(MasterDialect("redis", (5, 0, 7))))
    acl.set_user(b"u", [b"on", b"~app:*", b"%R~ro:*", b"-@all", b"+@read", b"+client|id"])
    for argv, want in (
        ([b"get", b"secret:1"], (ACL_DENIED_KEY, 1)),
        ([b"get", b"ro:1"], (ACL_OK, 0)),
        ([b"client", b"id"], (ACL_OK, 0)),
        ([b"client", b"list"], (ACL_DENIED_CMD, 0)),
        ([b"object", b"encoding", b"secret:1"], (ACL_DENIED_KEY, 2)),
    ):
        spec = t50.find(argv)  # what the relay dispatches with a 5.0 master
        assert spec is not None
        assert acl.check(b"u", spec, argv) == want, argv


# --- connections ---------------------------------------------------------------------------


def test_local_peers_per_version() -> None:
    assert is_local_host("127.0.0.1", V70) and is_local_host("::1", V70)
    assert not is_local_host("127.0.0.2", V70)
    assert is_local_host("127.0.0.2", V72) and is_local_host("127.9.9.9", VK8)
    assert not is_local_host("10.0.0.1", V72)


def test_denied_texts() -> None:
    assert b"4) Setup a an authentication" in denied_text(V70)
    assert b"4) Set up an authentication" in denied_text(V72)
    assert denied_text(VK8).startswith(b"-DENIED Running in protected mode")
    assert b"no bind address was specified" in denied_text(V62)
    assert all(t.endswith(b"\r\n") for t in map(denied_text, (V62, V70, V72, VK8)))
