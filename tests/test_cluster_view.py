"""The cluster's sans-I/O parts, without servers: hash slots, the topology and its file,
shard naming across failovers, the supervisor's readiness, and the redirections of
`getNodeByQuery` as a relay applies them. (What a real cluster answers is compared in
tests/test_cluster_integration.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from replproxy.cluster.slots import key_hash_slot, parse_slot, ranges_of, slots_of
from replproxy.cluster.supervisor import (
    PortPlan,
    RelayProcess,
    Supervisor,
    SupervisorConfig,
    name_shards,
)
from replproxy.cluster.topology import (
    Health,
    Node,
    Shard,
    Topology,
    TopologyError,
    build_topology,
    from_json,
    match_shards,
    parse_cluster_nodes,
    parse_cluster_slots,
    relay_node_id,
    same_routing,
    to_json,
)
from replproxy.cluster.view import (
    ClusterView,
    OpenSlots,
    cluster_info,
    cluster_nodes,
    cluster_slots,
    redirect,
)
from replproxy.commandtable import CommandSpec, ResolveError, table_for
from replproxy.config import ConfigError, Upstream

TABLE = table_for("redis")


def _id(c: str) -> str:
    return c * 40


def _topology(relay_health: Health = "online") -> Topology:
    shards = []
    for i, (a, b) in enumerate([(0, 5460), (5461, 10922), (10923, 16383)]):
        shards.append(
            Shard(
                name=str(i),
                slots=((a, b),),
                primary=Node(
                    _id("abc"[i]), "10.0.0.1", 7000 + i, cport=17000 + i, config_epoch=i + 1
                ),
                replicas=(Node(_id("def"[i]), "10.0.0.2", 7100 + i),),
                relay=Node(
                    relay_node_id("10.0.0.9", 6380 + i), "10.0.0.9", 6380 + i, health=relay_health
                ),
            )
        )
    return Topology(tuple(shards), current_epoch=6)


def _view(shard: str = "0", relay_health: Health = "online") -> ClusterView:
    t = _topology(relay_health)
    s = t.shard(shard)
    assert s is not None and s.relay is not None
    return ClusterView(t, shard, s.relay)


def _redirect(view: ClusterView, *argv: bytes, readonly: bool = True, **kw: object) -> bytes | None:
    spec = TABLE.resolve(list(argv))
    assert not hasattr(spec, "msg"), spec
    return redirect(view, spec, list(argv), readonly=readonly, **kw)  # type: ignore[arg-type]


# ---- slots ----


@pytest.mark.parametrize(
    ("key", "same_as"),
    [
        (b"{user1000}.following", b"user1000"),
        (b"foo{bar}{zap}", b"bar"),
        (b"foo{{bar}}zap", b"{bar"),
        (b"foo{}{bar}", b"foo{}{bar}"),  # an empty tag: the whole key
        (b"{}", b"{}"),
        (b"foo{bar", b"foo{bar"),  # no closing brace
        (b"}{x}", b"x"),
    ],
)
def test_key_hash_slot_uses_the_first_nonempty_hash_tag(key: bytes, same_as: bytes) -> None:
    assert key_hash_slot(key) == key_hash_slot(same_as)


def test_key_hash_slot_known_values() -> None:
    # CLUSTER KEYSLOT on a real node (also checked against one in the integration tests).
    assert key_hash_slot(b"foo") == 12182
    assert key_hash_slot(b"") == 0
    assert key_hash_slot(b"123456789") == 0x31C3 % 16384


def test_slot_ranges_and_parsing() -> None:
    assert ranges_of([5, 1, 2, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert slots_of([(1, 3), (7, 7)]) == [1, 2, 3, 7]
    assert parse_slot(b"16383") == 16383
    assert parse_slot(b"16384") is None and parse_slot(b"-1") is None
    assert parse_slot(b"01") is None and parse_slot(b"x") is None


# ---- topology ----

NODES = (
    "aaaa 127.0.0.1:7000@17000 myself,master - 0 1700000000000 1 connected 0-5460 "
    "[5461-<-bbbb]\n"
    "bbbb 127.0.0.1:7001@17001,host-b master - 0 1700000000001 2 connected 5461-10922 12000\n"
    "cccc 127.0.0.1:7002@17002 master,fail? - 1699999999000 1700000000002 3 disconnected "
    "10923-11999 12001-16383\n"
    "dddd 127.0.0.1:7003@17003 slave aaaa 0 1700000000003 1 connected\n"
    "eeee 127.0.0.1:7004@17004 master - 0 1700000000004 7 connected\n"
)


def test_cluster_nodes_lines_are_parsed() -> None:
    lines = {n.id: n for n in parse_cluster_nodes(NODES)}
    a, b, c, d = lines["aaaa"], lines["bbbb"], lines["cccc"], lines["dddd"]
    assert a.myself and a.is_master and a.slots == ((0, 5460),)
    assert a.importing == {5461: "bbbb"} and not a.migrating
    assert (b.hostname, b.cport, b.slots) == ("host-b", 17001, ((5461, 10922), (12000, 12000)))
    assert "fail?" in c.flags and not c.connected and c.ping_sent == 1699999999000
    assert d.master_id == "aaaa" and not d.is_master
    with pytest.raises(TopologyError):
        parse_cluster_nodes("aaaa 127.0.0.1:7000@17000 master")


def test_topology_from_cluster_slots_adds_primaries_without_slots() -> None:
    slots = [
        [0, 5460, [b"127.0.0.1", 7000, b"aaaa"], [b"127.0.0.1", 7003, b"dddd"]],
        [5461, 10922, [b"127.0.0.1", 7001, b"bbbb", {b"hostname": b"host-b"}]],
        [12000, 12000, [b"127.0.0.1", 7001, b"bbbb"]],
        [10923, 11999, [b"127.0.0.1", 7002, b"cccc"]],
        [12001, 16383, [b"127.0.0.1", 7002, b"cccc"]],
    ]
    t = build_topology(parse_cluster_slots(slots), parse_cluster_nodes(NODES), current_epoch=7)
    assert [s.primary.id for s in t.shards] == ["aaaa", "bbbb", "cccc", "eeee"]
    assert t.shards[1].slots == ((5461, 10922), (12000, 12000))
    assert t.shards[1].primary.hostname == "host-b"
    assert [r.id for r in t.shards[0].replicas] == ["dddd"]
    assert t.shards[2].primary.flags == ("fail?",)
    assert t.shards[3].slots == () and t.slots_assigned == 16384
    assert t.state_ok  # fail? is not fail


def test_topology_file_round_trips_and_refuses_nonsense() -> None:
    t = _topology()
    assert from_json(to_json(t)) == t
    assert same_routing(from_json(to_json(t)), t)
    for bad in (
        '{"format": 9, "shards": []}',
        "not json",
        '{"format": 1}',
        '{"format": 1, "shards": [{"slots": [[0, 16384]], "primary": '
        '{"id": "a", "ip": "h", "port": 1}}]}',
    ):
        with pytest.raises(TopologyError):
            from_json(bad)


def test_shards_keep_their_names_across_a_failover_and_new_shards_get_free_ones() -> None:
    before = _topology().shards
    # Shard 1 fails over (its replica is the primary now, the old primary a replica),
    # shard 2 leaves, a new shard with new nodes arrives.
    s1 = before[1]
    failed_over = Shard(primary=s1.replicas[0], slots=s1.slots, replicas=(s1.primary,))
    new = Shard(primary=Node(_id("9"), "10.0.0.3", 7009), slots=())
    current = [failed_over, before[0], new]
    assert match_shards(before, current) == {0: 1, 1: 0}
    # While shard 2's relay still runs its name is taken; once it is gone it is free.
    assert name_shards(before, current, reserved=["2"]) == ["1", "0", "3"]
    assert name_shards(before, current) == ["1", "0", "2"]


def test_a_demoted_primary_seen_alone_mid_failover_is_not_a_new_shard() -> None:
    before = _topology().shards
    s1 = before[1]
    # One node's view mid-failover: the promoted replica owns the slots, alone; the old
    # primary still a master of its own, without slots.
    promoted = Shard(primary=s1.replicas[0], slots=s1.slots)
    demoted = Shard(primary=s1.primary, slots=())
    current = [before[0], promoted, before[2], demoted]
    assert name_shards(before, current) == ["0", "1", "2", ""]
    # A resharding that empties a shard keeps it (until its node is removed).
    drained = Shard(primary=before[0].primary, slots=(), replicas=before[0].replicas)
    grown = Shard(
        primary=before[2].primary, slots=((0, 5460), (10923, 16383)), replicas=before[2].replicas
    )
    assert name_shards(before, [drained, before[1], grown]) == ["0", "1", "2"]


def test_port_plans() -> None:
    assert PortPlan.parse(7000, None, "port").port(2) == 7002
    plan = PortPlan.parse(7000, "8001, 8005", "port")
    assert (plan.port(0), plan.port(1), plan.port(2)) == (8001, 8005, None)
    with pytest.raises(ConfigError):
        PortPlan.parse(7000, "80,x", "port")


async def test_the_supervisor_is_ready_once_every_shard_has_an_online_relay(
    tmp_path: Path,
) -> None:
    """`/readyz`: not between the refresh that finds a shard and the start of its relay (a
    round awaits its probes in between; it said ready there, before any relay or topology
    file existed), nor while a relay starts; a shard without a port left has no relay and
    holds nothing back."""

    def supervisor(ports: PortPlan) -> Supervisor:
        sup = Supervisor(
            SupervisorConfig(
                seeds=(Upstream("127.0.0.1", 7000),),
                dir=tmp_path,
                ports=ports,
                metrics_ports=PortPlan(base=9121),
            )
        )
        sup.discovered = _topology()
        sup.last_refresh_ok = trio.current_time()
        return sup

    sup = supervisor(PortPlan(base=6380))
    assert sup.readiness() == (False, "relays not online: 0, 1, 2")
    for name in ("0", "1"):
        sup.relays[name] = RelayProcess(name, 6380 + int(name), 9121 + int(name), state="online")
    assert sup.readiness() == (False, "relays not online: 2")
    sup.relays["2"] = RelayProcess("2", 6382, 9123)  # started, not synced yet
    assert sup.readiness() == (False, "relays not online: 2")
    sup.relays["2"].state = "online"
    assert sup.readiness() == (True, "ready")
    sup = supervisor(PortPlan(listed=(6380, 6381)))  # no port for shard 2: no relay
    for name in ("0", "1"):
        sup.relays[name] = RelayProcess(name, 6380 + int(name), 9121 + int(name), state="online")
    assert sup.readiness() == (True, "ready")


# ---- redirections ----


def test_reads_of_my_shard_are_served_and_others_go_to_their_relay() -> None:
    view = _view("0")
    keys = {key_hash_slot(b"k%d" % i): b"k%d" % i for i in range(2000)}
    k0 = next(k for s, k in keys.items() if s <= 5460)
    k2 = next(k for s, k in keys.items() if s >= 10923)
    assert _redirect(view, b"GET", k0) is None
    assert _redirect(view, b"GET", k2) == b"-MOVED %d 10.0.0.9:6382\r\n" % key_hash_slot(k2)
    # A READWRITE client is redirected as by a cluster replica: to the primary.
    assert _redirect(
        view, b"GET", k0, readonly=False
    ) == b"-MOVED %d 10.0.0.1:7000\r\n" % key_hash_slot(k0)
    # Writes always go to the slot's primary.
    assert _redirect(view, b"SET", k2, b"v") == b"-MOVED %d 10.0.0.1:7002\r\n" % key_hash_slot(k2)
    assert _redirect(view, b"SET", k0, b"v") == b"-MOVED %d 10.0.0.1:7000\r\n" % key_hash_slot(k0)


def test_a_relay_not_synced_yet_is_not_named_its_primary_is() -> None:
    view = _view("0", relay_health="loading")
    k2 = next(b"k%d" % i for i in range(2000) if key_hash_slot(b"k%d" % i) >= 10923)
    assert _redirect(
        view, b"GET", k2, my_offset=5
    ) == b"-MOVED %d 10.0.0.1:7002\r\n" % key_hash_slot(k2)
    # This relay itself lists the others as loading and itself as available once synced.
    slots = cluster_slots(view, 2, my_offset=5)
    assert slots.count(b"10.0.0.9") == 1


def test_crossslot_clusterdown_and_keyless_commands() -> None:
    view = _view("0")
    tag = next(b"{%d}" % i for i in range(100) if key_hash_slot(b"%d" % i) <= 5460)
    assert _redirect(view, b"MGET", tag + b"1", tag + b"2") is None  # one slot: served
    assert (
        _redirect(view, b"MGET", b"a", b"b")
        == b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
    )
    assert _redirect(view, b"PING") is None and _redirect(view, b"DBSIZE") is None
    # Sharded Pub/Sub channels count as keys (the legacy range of SSUBSCRIBE).
    crossslot = _redirect(view, b"SSUBSCRIBE", b"a", b"b")
    assert crossslot is not None and crossslot.startswith(b"-CROSSSLOT")
    holes = Topology(_topology().shards[:2])
    v = ClusterView(holes, "0", holes.shards[0].relay)  # type: ignore[arg-type]
    k2 = next(b"k%d" % i for i in range(2000) if key_hash_slot(b"k%d" % i) >= 10923)
    k0 = next(b"k%d" % i for i in range(2000) if key_hash_slot(b"k%d" % i) <= 5460)
    assert _redirect(v, b"GET", k2) == b"-CLUSTERDOWN Hash slot not served\r\n"
    assert _redirect(v, b"GET", k0) == b"-CLUSTERDOWN The cluster is down\r\n"
    assert "cluster_state:fail" in cluster_info(v).decode()


def test_exec_is_checked_over_the_whole_transaction() -> None:
    view = _view("0")
    ks = [b"k%d" % i for i in range(2000)]
    k0 = next(k for k in ks if key_hash_slot(k) <= 5460)
    k0b = next(k for k in ks if key_hash_slot(k) <= 5460 and key_hash_slot(k) != key_hash_slot(k0))
    exec_spec = TABLE.resolve([b"EXEC"])
    q = [(TABLE.resolve([b"GET", k0]), [b"GET", k0]), (TABLE.resolve([b"GET", k0b]), [b"GET", k0b])]
    assert redirect(view, exec_spec, [b"EXEC"], readonly=True, queued=q).startswith(b"-CROSSSLOT")  # type: ignore[arg-type,union-attr]
    assert redirect(view, exec_spec, [b"EXEC"], readonly=True, queued=q[:1]) is None  # type: ignore[arg-type]
    assert redirect(view, exec_spec, [b"EXEC"], readonly=True, queued=None) is None  # type: ignore[arg-type]


def test_open_slots_from_a_valkey_stream_give_ask_and_tryagain() -> None:
    view = _view("0")
    k0, other = b"{b}k0", b"{b}other"  # one slot (3300), two keys
    slot = key_hash_slot(k0)
    assert slot <= 5460
    opens = OpenSlots()
    opens.apply_setslot(
        [b"CLUSTER", b"SETSLOT", str(slot).encode(), b"MIGRATING", _id("b").encode()]
    )
    missing = {k0}

    def exists(k: bytes) -> bool:
        return k not in missing

    assert (
        _redirect(view, b"GET", k0, open_slots=opens, key_exists=exists)
        == b"-ASK %d 10.0.0.9:6381\r\n" % slot
    )
    assert (
        _redirect(view, b"MGET", k0, other, open_slots=opens, key_exists=exists)
        == b"-TRYAGAIN Multiple keys request during rehashing of slot\r\n"
    )
    assert _redirect(view, b"GET", other, open_slots=opens, key_exists=exists) is None
    opens.apply_setslot([b"CLUSTER", b"SETSLOT", str(slot).encode(), b"NODE", _id("b").encode()])
    assert not opens.migrating
    # The importing side serves ASKING clients.
    view1 = _view("1")
    imp = OpenSlots()
    imp.apply_setslot([b"CLUSTER", b"SETSLOT", str(slot).encode(), b"IMPORTING", _id("a").encode()])
    assert _redirect(view1, b"GET", k0, open_slots=imp, key_exists=exists, asking=True) is None
    assert _redirect(view1, b"GET", k0, open_slots=imp, key_exists=exists).startswith(b"-MOVED")  # type: ignore[union-attr]


def test_cluster_nodes_marks_myself_and_lists_relays_as_replicas() -> None:
    view = _view("1")
    lines = cluster_nodes(view, now_ms=1234).splitlines()
    assert len(lines) == 6
    me = [line for line in lines if "myself" in line]
    assert len(me) == 1
    words = me[0].split()
    assert words[1] == "10.0.0.9:6381@0" and words[2] == "myself,slave"
    assert words[3] == _id("b") and words[6] == "2"
    prim = next(line for line in lines if line.startswith(_id("a")))
    assert prim.split()[2] == "master" and prim.endswith(" 0-5460")


def test_the_get_mget_lane_serves_only_keys_of_the_relays_slots() -> None:
    """The C lane's slot filter: a GET of a served slot runs there, anything else (another
    slot, an MGET across slots) is left to the exact path, which redirects it; its CRC16
    and hash tags are `key_hash_slot`'s."""
    import random

    from replproxy.resp import request
    from replproxy.resp.request import RequestParser, encode_command

    if request._C_STRING_READS is None:
        pytest.skip("the C lane is not built (or REPLPROXY_NO_SPEEDUPS is set)")
    rng = random.Random(7)
    alphabet = b"ab{}x\x00\xff"
    keys = [bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(300)]
    db = {k: b"v" for k in keys}
    for k in keys:
        slot = key_hash_slot(k)
        only = bytearray(16384)
        only[slot] = 1
        for mask, served in ((bytes(only), 1), (bytes(b ^ 1 for b in only), 0)):
            parser = RequestParser()
            parser.feed(encode_command([b"GET", k]))
            assert parser.string_reads(db, {}, 0, b"$-1\r\n", slots=mask)[1] == served, k
    a, b = b"{b}1", b"{b}2"  # one slot
    c = next(k for k in keys if key_hash_slot(k) != key_hash_slot(a))
    two_slots = bytearray(16384)
    two_slots[key_hash_slot(a)] = two_slots[key_hash_slot(c)] = 1
    for argv, served in (([b"MGET", a, b], 1), ([b"MGET", a, c], 0), ([b"MGET", c], 1)):
        parser = RequestParser()
        parser.feed(encode_command(argv))
        assert parser.string_reads(db, {}, 0, b"$-1\r\n", slots=bytes(two_slots))[1] == served, argv


def test_open_slots_from_a_valkey_full_sync_snapshot() -> None:
    a, b = _id("a"), _id("b")
    opens = OpenSlots.from_snapshot(f"12<{a},700>{b},bad,99999<{a},".encode())
    assert opens.importing == {12: a} and opens.migrating == {700: b}
    assert not OpenSlots.from_snapshot(None).migrating


def test_a_6_2_master_routes_by_6_2s_keys() -> None:
    """A Redis 6.2 cluster routes by `getKeysFromCommand` with 6.2's functions: STRALGO LCS
    KEYS (7.0 has no STRALGO), MEMORY USAGE, and a container's (first, last, step) range
    (OBJECT's key, whatever its subcommand)."""
    t62 = table_for("redis", (6, 2, 5))
    view = _view("0")
    ks = [b"k%d" % i for i in range(2000)]
    k0 = next(k for k in ks if key_hash_slot(k) <= 5460)
    k2 = next(k for k in ks if key_hash_slot(k) >= 10923)

    def route(*argv: bytes) -> bytes | None:
        spec: CommandSpec | ResolveError | None = t62.resolve(list(argv))
        if isinstance(spec, ResolveError):  # the container answers it, after routing
            spec = t62.get(argv[0].lower())
        assert isinstance(spec, CommandSpec), spec
        return redirect(view, spec, list(argv), readonly=True)

    moved = b"-MOVED %d 10.0.0.9:6382\r\n" % key_hash_slot(k2)
    assert route(b"STRALGO", b"LCS", b"KEYS", k0, k0) is None
    assert route(b"STRALGO", b"LCS", b"KEYS", k2, k2) == moved
    crossslot = route(b"STRALGO", b"LCS", b"KEYS", k0, k2)
    assert crossslot is not None and crossslot.startswith(b"-CROSSSLOT")
    assert route(b"STRALGO", b"LCS", b"STRINGS", k2, k2) is None
    assert route(b"MEMORY", b"USAGE", k2) == moved
    assert route(b"MEMORY", b"DOCTOR") is None
    assert route(b"OBJECT", b"ENCODING", k2) == moved
    assert route(b"OBJECT", b"NOSUCH", k2) == moved
    assert route(b"EVALSHA", b"x" * 40, b"1", k2) == moved
