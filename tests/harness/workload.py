"""A seeded, repeatable random write workload that drives a REAL master through every family.

Strings, bitmaps, HyperLogLogs, lists, hashes, sets, sorted sets, geo, streams with consumer
groups, key operations (TTLs, RENAME, COPY, MOVE, SWAPDB, FLUSHDB, RESTORE, SORT STORE),
transactions, Lua scripts, functions, and blocking pops served by pushes. Small and large
values make both compact and big encodings occur; short TTLs make keys expire mid-run.
Commands a master version does not know are not sent to it. Errors from the master (a random
command hitting a key of another type) are expected and ignored: the master propagates only
what it executed, which is exactly what a replica must reproduce.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from tests.harness.servers import RedisServer

LIBRARY = """#!lua name=wl
redis.register_function('wl_write', function(keys, args)
  redis.call('INCRBY', keys[1], tonumber(args[1]))
  redis.call('RPUSH', keys[2], args[2])
  return redis.call('GET', keys[1])
end)
"""

EVAL_SCRIPT = """
redis.call('INCR', KEYS[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
"""


def _stream_id(v: object) -> str:
    """An entry ID as redis-py returns it: bytes here (no decode_responses), typed wider."""
    assert isinstance(v, bytes), v
    return v.decode()


class Workload:
    def __init__(
        self,
        server: RedisServer,
        seed: int,
        keys: int = 60,
        dbs: int = 3,
        big_every: int = 20,
        every_write: bool = False,
    ) -> None:
        """`every_write`: also every other write the master's version has (hash field TTLs,
        Redis 8's hash and stream commands and options, vector sets, SET options, geo
        stores, functions...), for the read differential; off, the stream is the historic
        one the other suites were written against."""
        self.server = server
        self.rng = random.Random(seed)
        self.keys = keys
        self.dbs = dbs
        self.big_every = big_every
        self.version = server.kind.version
        self.dialect = server.kind.dialect
        self.every_write = every_write
        self.client = server.client(socket_timeout=30)
        self.db = 0
        self.sent = 0
        self.errors = 0
        self.families: list[tuple[int, Callable[[], list[Any]]]] = []
        v = self.version
        add = self.families.append
        add((8, self.c_string))
        add((2, self.c_bitmap))
        add((2, self.c_hll))
        add((6, self.c_list))
        add((6, self.c_hash))
        add((5, self.c_set))
        add((6, self.c_zset))
        add((2, self.c_geo))
        add((4, self.c_stream))
        add((4, self.c_keys))
        if v >= (6, 2, 0):
            add((2, self.c_new_in_62))
        if every_write:
            add((3, self.c_more_strings))
            add((3, self.c_more_collections))
            add((3, self.c_more_streams))
            add((1, self.c_more_geo))
            add((2, self.c_more_keys))
            if self.dialect.at_least((7, 4), (9, 0)):
                add((4, self.c_hash_ttls))
            if self.dialect.at_least((8, 0), (9, 0)):
                add((3, self.c_hash_8))
            if self.dialect.at_least((8, 0), None):
                add((2, self.c_vset))
        self.total_weight = sum(w for w, _ in self.families)
        self._function_loaded = False

    # ---- values ----

    def key(self, prefix: str) -> str:
        return f"{prefix}:{self.rng.randrange(self.keys)}"

    def val(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return str(self.rng.randrange(-1000, 100000))
        if self.rng.randrange(self.big_every) == 0:
            return "v" * self.rng.randrange(65, 3000)  # past listpack value limits
        return f"v{self.rng.getrandbits(32):x}"

    def member(self) -> str:
        if self.rng.random() < 0.4:
            return str(self.rng.randrange(0, 400))  # integer members: intsets
        return f"m{self.rng.randrange(300)}"

    def score(self) -> str:
        r = self.rng.random()
        if r < 0.05:
            return self.rng.choice(["inf", "-inf", "+inf"])
        if r < 0.5:
            return str(self.rng.randrange(-50, 50))
        return repr(self.rng.uniform(-1e6, 1e6))

    # ---- families: each returns one argv ----

    def c_string(self) -> list[Any]:
        k, rng = self.key("s"), self.rng
        choice = rng.randrange(13)
        if choice == 0:
            return ["SET", k, self.val(), "EX", rng.randrange(1, 4)]  # expires mid-run
        if choice == 1:
            return ["SET", k, self.val(), "PX", rng.randrange(500, 60000), "NX"]
        if choice == 2:
            return ["SETEX", k, rng.randrange(1, 100), self.val()]
        if choice == 3:
            return ["APPEND", k, self.val()]
        if choice == 4:
            return ["INCRBY", self.key("n"), rng.randrange(-100, 100)]
        if choice == 5:
            return ["INCRBYFLOAT", self.key("f"), repr(rng.uniform(-10, 10))]
        if choice == 6:
            return ["SETRANGE", k, rng.randrange(0, 50), self.val()]
        if choice == 7:
            return ["MSET", k, self.val(), self.key("s"), self.val()]
        if choice == 8:
            return ["GETSET", k, self.val()]
        if choice == 9:
            return ["SETNX", k, self.val()]
        if choice == 10:
            return ["DECR", self.key("n")]
        if choice == 11:
            return ["PSETEX", k, rng.randrange(1000, 90000), self.val()]
        return ["SET", k, self.val(), "XX"]

    def c_bitmap(self) -> list[Any]:
        k, rng = self.key("b"), self.rng
        choice = rng.randrange(3)
        if choice == 0:
            return ["SETBIT", k, rng.randrange(0, 5000), rng.randrange(2)]
        if choice == 1:
            return [
                "BITFIELD",
                k,
                "OVERFLOW",
                rng.choice(["WRAP", "SAT"]),
                "INCRBY",
                rng.choice(["i8", "u4", "i16", "u32"]),
                rng.randrange(0, 200),
                rng.randrange(-300, 300),
                "SET",
                "u8",
                "#2",
                rng.randrange(256),
            ]
        return ["BITOP", rng.choice(["AND", "OR", "XOR"]), self.key("b"), k, self.key("b")]

    def c_hll(self) -> list[Any]:
        k, rng = self.key("hll"), self.rng
        choice = rng.randrange(4)
        if choice == 0:
            n = rng.choice([3, 20, 300, 2000])  # sparse, and some that turn dense
            return ["PFADD", k, *(f"e{rng.randrange(10**6)}" for _ in range(n))]
        if choice == 1:
            return ["PFMERGE", k, self.key("hll")]
        if choice == 2:
            return ["PFCOUNT", k]
        return ["PFADD", k, "a", "b", "c"]

    def c_list(self) -> list[Any]:
        k, rng = self.key("l"), self.rng
        choice = rng.randrange(12)
        if choice < 3:
            return [
                rng.choice(["LPUSH", "RPUSH"]),
                k,
                *(self.val() for _ in range(rng.randrange(1, 8))),
            ]
        if choice == 3:
            return ["LPOP", k] if self.version < (6, 2, 0) else ["LPOP", k, rng.randrange(1, 4)]
        if choice == 4:
            return ["RPOPLPUSH", k, self.key("l")]
        if choice == 5:
            return ["LTRIM", k, rng.randrange(-5, 3), rng.randrange(-3, 20)]
        if choice == 6:
            return ["LREM", k, rng.randrange(-2, 3), self.val()]
        if choice == 7:
            return ["LINSERT", k, rng.choice(["BEFORE", "AFTER"]), self.val(), self.val()]
        if choice == 8:
            return ["LSET", k, rng.randrange(-3, 3), self.val()]
        if choice == 9:
            return ["RPUSHX", k, self.val()]
        if choice == 10 and self.version >= (6, 2, 0):
            return [
                "LMOVE",
                k,
                self.key("l"),
                rng.choice(["LEFT", "RIGHT"]),
                rng.choice(["LEFT", "RIGHT"]),
            ]
        return ["RPOP", k]

    def c_hash(self) -> list[Any]:
        k, rng = self.key("h"), self.rng
        choice = rng.randrange(7)
        if choice < 3:
            n = rng.choice([1, 2, 5, 150]) if rng.random() < 0.05 else rng.randrange(1, 5)
            args = []
            for _ in range(n):
                args += [f"f{rng.randrange(200)}", self.val()]
            return ["HSET", k, *args]
        if choice == 3:
            return ["HDEL", k, f"f{rng.randrange(200)}", f"f{rng.randrange(200)}"]
        if choice == 4:
            return ["HINCRBY", k, f"n{rng.randrange(5)}", rng.randrange(-50, 50)]
        if choice == 5:
            return ["HINCRBYFLOAT", k, f"x{rng.randrange(5)}", repr(rng.uniform(-5, 5))]
        return ["HSETNX", k, f"f{rng.randrange(200)}", self.val()]

    def c_set(self) -> list[Any]:
        k, rng = self.key("set"), self.rng
        choice = rng.randrange(8)
        if choice < 3:
            n = 600 if rng.random() < 0.02 else rng.randrange(1, 6)  # big: past intset/listpack
            return ["SADD", k, *(self.member() for _ in range(n))]
        if choice == 3:
            return ["SREM", k, self.member(), self.member()]
        if choice == 4:
            return ["SPOP", k, rng.choice([1, 3, 2000])]
        if choice == 5:
            return ["SMOVE", k, self.key("set"), self.member()]
        if choice == 6:
            return [
                rng.choice(["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]),
                self.key("set"),
                k,
                self.key("set"),
            ]
        return ["SPOP", k]

    def c_zset(self) -> list[Any]:
        k, rng = self.key("z"), self.rng
        choice = rng.randrange(10)
        if choice < 3:
            n = 200 if rng.random() < 0.03 else rng.randrange(1, 5)
            flags = rng.choice(
                [[], ["NX"], ["XX"], ["CH"]]
                + ([["GT"], ["LT", "CH"]] if self.version >= (6, 2, 0) else [])
            )
            args = []
            for _ in range(n):
                args += [self.score(), self.member()]
            return ["ZADD", k, *flags, *args]
        if choice == 3:
            return ["ZINCRBY", k, rng.randrange(-10, 10), self.member()]
        if choice == 4:
            return ["ZREM", k, self.member()]
        if choice == 5:
            return ["ZREMRANGEBYRANK", k, rng.randrange(-5, 2), rng.randrange(-2, 5)]
        if choice == 6:
            return ["ZREMRANGEBYSCORE", k, f"({rng.randrange(-50, 0)}", rng.randrange(0, 50)]
        if choice == 7:
            return [
                rng.choice(["ZUNIONSTORE", "ZINTERSTORE"]),
                self.key("z"),
                2,
                k,
                self.key("z"),
                "WEIGHTS",
                rng.randrange(-2, 3),
                1,
                "AGGREGATE",
                rng.choice(["SUM", "MIN", "MAX"]),
            ]
        if choice == 8:
            return [rng.choice(["ZPOPMIN", "ZPOPMAX"]), k, rng.randrange(1, 3)]
        return ["ZADD", k, "0", f"lex{rng.randrange(50)}"]

    def c_geo(self) -> list[Any]:
        k, rng = self.key("g"), self.rng
        if rng.random() < 0.7:
            return [
                "GEOADD",
                k,
                round(rng.uniform(-170, 170), 6),
                round(rng.uniform(-80, 80), 6),
                self.member(),
            ]
        if self.version >= (6, 2, 0) and rng.random() < 0.5:
            return [
                "GEOSEARCHSTORE",
                self.key("g"),
                k,
                "FROMLONLAT",
                rng.uniform(-170, 170),
                rng.uniform(-80, 80),
                "BYRADIUS",
                rng.choice([500, 3000, 20000]),
                "km",
                "ASC",
                "COUNT",
                rng.randrange(1, 20),
            ]
        return [
            "GEORADIUS",
            k,
            rng.uniform(-170, 170),
            rng.uniform(-80, 80),
            rng.choice([1000, 5000]),
            "km",
            "STORE",
            self.key("z"),
        ]

    def c_stream(self) -> list[Any]:
        k, rng = self.key("x"), self.rng
        choice = rng.randrange(10)
        if choice < 4:
            trim = []
            if rng.random() < 0.2:
                trim = ["MAXLEN", rng.randrange(5, 50)]
            return ["XADD", k, *trim, "*", "f", self.val(), "g", self.val()]
        if choice == 4:
            return [
                "XGROUP",
                "CREATE",
                k,
                f"grp{rng.randrange(3)}",
                rng.choice(["0", "$"]),
                "MKSTREAM",
            ]
        if choice == 5:
            return [
                "XREADGROUP",
                "GROUP",
                f"grp{rng.randrange(3)}",
                f"c{rng.randrange(3)}",
                "COUNT",
                rng.randrange(1, 5),
                *(["NOACK"] if rng.random() < 0.2 else []),
                "STREAMS",
                k,
                ">",
            ]
        if choice == 6:
            return ["XDEL", k, f"{rng.randrange(1, 2**41)}-0"]
        if choice == 7:
            return ["XTRIM", k, "MAXLEN", rng.randrange(0, 30)]
        if choice == 8 and self.version >= (6, 2, 0):
            return [
                "XAUTOCLAIM",
                k,
                f"grp{rng.randrange(3)}",
                f"c{rng.randrange(3)}",
                0,
                "0-0",
                "COUNT",
                rng.randrange(1, 4),
            ]
        return ["XACK", k, f"grp{rng.randrange(3)}", "0-1"]

    def c_keys(self) -> list[Any]:
        rng = self.rng
        k = self.key(rng.choice(["s", "l", "h", "set", "z", "x", "hll"]))
        choice = rng.randrange(12)
        if choice == 0:
            return ["EXPIRE", k, rng.randrange(1, 5)]
        if choice == 1:
            return ["PEXPIRE", k, rng.randrange(2000, 60000)]
        if choice == 2:
            return ["PERSIST", k]
        if choice == 3:
            return ["DEL", k]
        if choice == 4:
            return ["UNLINK", k]
        if choice == 5:
            return ["RENAME", k, k + "r"]
        if choice == 6:
            return ["MOVE", k, rng.randrange(self.dbs)]
        if choice == 7:
            return ["EXPIREAT", k, int(time.time()) + rng.randrange(5, 500)]
        if choice == 8:
            return [
                "SORT",
                self.key("l"),
                "ALPHA",
                "LIMIT",
                0,
                rng.randrange(1, 10),
                "STORE",
                self.key("l"),
            ]
        if choice == 9 and rng.random() < 0.1:
            return ["SWAPDB", self.db, rng.randrange(self.dbs)]
        if choice == 10 and rng.random() < 0.02:
            return ["FLUSHDB"]
        return ["RENAMENX", k, self.key("s")]

    def c_new_in_62(self) -> list[Any]:
        rng = self.rng
        k = self.key("s")
        choice = rng.randrange(6)
        if choice == 0:
            if rng.random() < 0.5:
                return ["GETEX", k, "PERSIST"]
            return ["GETEX", k, "EX", rng.randrange(1, 100)]
        if choice == 1:
            return ["SET", k, self.val(), "GET"]
        if choice == 2:
            return [
                "COPY",
                self.key(rng.choice(["s", "l", "h", "z", "x"])),
                k + "c",
                "DB",
                rng.randrange(self.dbs),
                "REPLACE",
            ]
        if choice == 3:
            return ["GETDEL", k]
        if choice == 4:
            return ["ZRANGESTORE", self.key("z"), self.key("z"), 0, rng.randrange(0, 5)]
        if self.version >= (7, 0, 0):
            return ["LMPOP", 1, self.key("l"), "LEFT", "COUNT", 2]
        return ["LPOP", self.key("l"), 2]

    # ---- every other write (every_write) ----

    def _new(self, redis: tuple[int, ...] | None, valkey: tuple[int, ...] | None = None) -> bool:
        return self.dialect.at_least(redis, valkey)

    def c_more_strings(self) -> list[Any]:
        k, rng = self.key("s"), self.rng
        choice = rng.randrange(12)
        if choice == 0 and self._new((6, 2), (0,)):
            return [
                "SET",
                k,
                self.val(),
                rng.choice(["EXAT", "PXAT"]),
                int(time.time() * (1 if rng.random() < 0.5 else 1000)) + 10**6,
            ]
        if choice == 1 and self._new((6, 0), (0,)):
            return ["SET", k, self.val(), "KEEPTTL"]
        if choice == 2 and self._new(None, (8, 1)):
            return ["SET", k, self.val(), "IFEQ", rng.choice([self.val(), "v"])]
        if choice == 3:
            return ["MSETNX", k, self.val(), self.key("s"), self.val()]
        if choice == 4:
            return ["INCRBYFLOAT", self.key("f"), rng.choice(["1e3", "-0.5", "3.0e-2", "10"])]
        if choice == 5:
            return ["SETRANGE", k, rng.randrange(0, 100), self.val()]
        if choice == 6:
            return ["APPEND", self.key("n"), rng.choice(["1", "x", "007"])]
        if choice == 7:
            ops = ["AND", "OR", "XOR", "NOT"]
            if self._new((8, 2), None):
                ops += ["DIFF", "DIFF1", "ANDOR", "ONE"]
            op = rng.choice(ops)
            srcs = (
                [self.key("b")]
                if op == "NOT"
                else [
                    self.key("b")
                    for _ in range(2 if op in ("DIFF", "DIFF1", "ANDOR") else rng.randrange(1, 4))
                ]
            )
            return ["BITOP", op, self.key("b"), *srcs]
        if choice == 8:
            return [
                "BITFIELD",
                self.key("b"),
                "OVERFLOW",
                rng.choice(["FAIL", "WRAP", "SAT"]),
                "INCRBY",
                rng.choice(["i5", "u7", "i64", "u63"]),
                f"#{rng.randrange(20)}",
                rng.randrange(-1000, 1000),
            ]
        if choice == 9:
            return ["SETBIT", self.key("s"), rng.randrange(0, 300), 1]
        if choice == 10:
            return ["DECRBY", self.key("n"), rng.randrange(-5, 5)]
        return ["SET", k, str(rng.randrange(0, 12000))]  # shared integers, int encoding

    def c_more_collections(self) -> list[Any]:
        rng = self.rng
        choice = rng.randrange(16)
        if choice == 0:
            # Small string sets (listpack in 7.2+, in insertion order) and their limits.
            return [
                "SADD",
                self.key("ss"),
                *(f"w{rng.randrange(200)}" for _ in range(rng.choice([1, 3, 8, 130]))),
            ]
        if choice == 1:
            return ["SADD", self.key("ss"), "x" * rng.choice([10, 64, 65, 100])]
        if choice == 2:
            return ["SREM", self.key("ss"), *(f"w{rng.randrange(200)}" for _ in range(5))]
        if choice == 3:
            return ["SMOVE", self.key("ss"), self.key("ss"), f"w{rng.randrange(200)}"]
        if choice == 4 and self._new((7, 0), (0,)):
            return [
                "LMPOP",
                rng.randrange(1, 3),
                self.key("l"),
                self.key("l"),
                rng.choice(["LEFT", "RIGHT"]),
                "COUNT",
                rng.randrange(1, 4),
            ]
        if choice == 5 and self._new((7, 0), (0,)):
            return [
                "ZMPOP",
                1,
                self.key("z"),
                rng.choice(["MIN", "MAX"]),
                "COUNT",
                rng.randrange(1, 4),
            ]
        if choice == 6:
            return ["LINSERT", self.key("l"), "AFTER", self.val(), self.val()]
        if choice == 7:
            return ["LPUSHX", self.key("l"), self.val()]
        if choice == 8 and self._new((6, 2), (0,)):
            return ["ZDIFFSTORE", self.key("z"), 2, self.key("z"), self.key("z")]
        if choice == 9:
            return ["ZREMRANGEBYLEX", self.key("z"), "[lex1", "(lex3"]
        if choice == 10:
            return [
                "ZADD",
                self.key("z"),
                *(
                    x
                    for i in range(rng.choice([1, 5, 129]))
                    for x in (rng.choice(["0", "-0", "1.5", "1e-9"]), f"zz{i}")
                ),
            ]
        if choice == 11:
            return ["ZADD", self.key("z"), "1", "y" * rng.choice([63, 64, 65])]
        if choice == 12:
            return ["HSET", self.key("h"), f"big{rng.randrange(3)}", "y" * rng.choice([63, 64, 65])]
        if choice == 13:
            return ["HDEL", self.key("h"), *(f"f{rng.randrange(200)}" for _ in range(20))]
        if choice == 14:
            return [
                "RPUSH",
                self.key("l"),
                *("q" * rng.choice([10, 100, 3000]) for _ in range(rng.randrange(1, 4))),
            ]
        return ["ZINCRBY", self.key("z"), rng.choice(["inf", "-1e300", "0.1"]), self.member()]

    def c_more_streams(self) -> list[Any]:
        k, rng = self.key("x"), self.rng
        choice = rng.randrange(14)
        policy = []
        if self._new((8, 2), None) and rng.random() < 0.6:
            policy = [rng.choice(["KEEPREF", "DELREF", "ACKED"])]
        if choice < 3:
            trim = (
                []
                if rng.random() < 0.4
                else [rng.choice(["MAXLEN", "MINID"]), rng.choice(["=", "~", ""])]
            )
            if trim:
                trim[1:] = [t for t in trim[1:] if t]
                trim.append(
                    str(rng.randrange(1, 20))
                    if trim[0] == "MAXLEN"
                    else f"{int(time.time() * 1000) - rng.randrange(0, 3000)}-0"
                )
            return ["XADD", k, *trim, *policy, "*", "f", self.val()]
        if choice == 3:
            return ["XTRIM", k, "MAXLEN", rng.randrange(0, 30), *policy]
        if choice == 4 and self._new((8, 2), None):
            ids = self._pending_or_entry_ids(k)
            return ["XDELEX", k, *policy, "IDS", len(ids), *ids] if ids else ["XLEN", k]
        if choice == 5 and self._new((8, 2), None):
            g = f"grp{rng.randrange(3)}"
            ids = self._pending_or_entry_ids(k, g)
            return ["XACKDEL", k, g, *policy, "IDS", len(ids), *ids] if ids else ["XLEN", k]
        if choice == 6:
            g = f"grp{rng.randrange(3)}"
            ids = self._pending_or_entry_ids(k, g)
            return ["XACK", k, g, *ids] if ids else ["XLEN", k]
        if choice == 7 and self._new((7, 0), (0,)):
            return [
                "XGROUP",
                "SETID",
                k,
                f"grp{rng.randrange(3)}",
                rng.choice(["0", "$"]),
                "ENTRIESREAD",
                rng.choice([0, 3, 1000]),
            ]
        if choice == 8 and self._new((6, 2), (0,)):
            return ["XGROUP", "CREATECONSUMER", k, f"grp{rng.randrange(3)}", f"c{rng.randrange(5)}"]
        if choice == 9:
            return ["XGROUP", "DELCONSUMER", k, f"grp{rng.randrange(3)}", f"c{rng.randrange(5)}"]
        if choice == 10 and rng.random() < 0.3:
            return ["XGROUP", "DESTROY", k, f"grp{rng.randrange(3)}"]
        if choice == 11:
            create: list[Any] = [
                "XGROUP",
                "CREATE",
                k,
                f"grp{rng.randrange(3)}",
                rng.choice(["0", "$"]),
                "MKSTREAM",
            ]
            if self._new((7, 0), (0,)) and rng.random() < 0.5:
                create += ["ENTRIESREAD", rng.choice([0, 2, 500])]
            return create
        if choice == 12:
            return [
                "XREADGROUP",
                "GROUP",
                f"grp{rng.randrange(3)}",
                f"c{rng.randrange(5)}",
                "COUNT",
                rng.randrange(1, 6),
                "STREAMS",
                k,
                ">",
            ]
        return ["XDEL", k, *(self._pending_or_entry_ids(k)[:2] or ["1-1"])]

    def _pending_or_entry_ids(self, key: str, group: str | None = None) -> list[str]:
        """A few real IDs of `key`: pending in `group` or just entries (XACK, XDELEX...)."""
        out: list[str] = []
        try:
            if group is not None and self.rng.random() < 0.7:
                for p in self.client.xpending_range(key, group, "-", "+", 10):
                    out.append(_stream_id(p["message_id"]))
            else:
                for i, _ in self.client.xrange(key, count=12) or []:
                    out.append(_stream_id(i))
        except redis.ResponseError:
            return []
        self.rng.shuffle(out)
        return out[: self.rng.randrange(1, 4)]

    def c_more_geo(self) -> list[Any]:
        k, rng = self.key("g"), self.rng
        choice = rng.randrange(4)
        if choice == 0 and self._new((6, 2), (0,)):
            return [
                "GEOADD",
                k,
                rng.choice(["NX", "XX", "CH"]),
                round(rng.uniform(-170, 170), 5),
                round(rng.uniform(-80, 80), 5),
                self.member(),
            ]
        if choice == 1 and self._new((6, 2), (0,)):
            return [
                "GEOSEARCHSTORE",
                self.key("g"),
                k,
                "FROMMEMBER",
                self.member(),
                "BYBOX",
                rng.choice([1000, 8000]),
                rng.choice([1000, 8000]),
                "km",
                "STOREDIST",
            ]
        if choice == 2:
            return [
                "GEORADIUSBYMEMBER",
                k,
                self.member(),
                rng.choice([2000, 9000]),
                "km",
                "STOREDIST",
                self.key("z"),
            ]
        return [
            "GEORADIUS",
            k,
            rng.uniform(-170, 170),
            rng.uniform(-80, 80),
            4000,
            "km",
            "COUNT",
            rng.randrange(1, 5),
            "STORE",
            self.key("g"),
        ]

    def c_more_keys(self) -> list[Any]:
        rng = self.rng
        k = self.key(rng.choice(["s", "l", "h", "set", "ss", "z", "x", "hll", "g"]))
        choice = rng.randrange(6)
        if choice == 0 and self._new((7, 0), (0,)):
            return ["EXPIRE", k, rng.randrange(100, 1000), rng.choice(["NX", "XX", "GT", "LT"])]
        if choice == 1 and self._new((6, 2), (0,)):
            return ["COPY", k, self.key("s") + "c", "REPLACE"]
        if choice == 2:
            return [
                "SORT",
                self.key(rng.choice(["l", "set", "z"])),
                "BY",
                "nosort",
                "GET",
                "#",
                "GET",
                "s:*",
                "STORE",
                self.key("l"),
            ]
        if choice == 3:
            return ["PEXPIREAT", k, int(time.time() * 1000) + rng.randrange(10**5, 10**7)]
        if choice == 4:
            return ["RENAME", k, self.key("s")]
        return ["PERSIST", k]

    def c_hash_ttls(self) -> list[Any]:
        """Hash field TTLs (Redis 7.4, Valkey 9): listpackex hashes list their fields by
        expiry on the server."""
        k, rng = self.key("hx"), self.rng
        fields = [f"f{rng.randrange(12)}" for _ in range(rng.randrange(1, 4))]
        choice = rng.randrange(8)
        if choice < 2:
            return ["HSET", k, *(x for f in fields for x in (f, self.val()))]
        if choice == 2:
            return [
                "HEXPIRE",
                k,
                rng.randrange(2000, 9000),
                *([rng.choice(["NX", "XX", "GT", "LT"])] if rng.random() < 0.3 else []),
                "FIELDS",
                len(fields),
                *fields,
            ]
        if choice == 3:
            return ["HPEXPIRE", k, rng.randrange(10**7, 10**8), "FIELDS", len(fields), *fields]
        if choice == 4:
            return [
                "HEXPIREAT",
                k,
                int(time.time()) + rng.randrange(2000, 10**5),
                "FIELDS",
                len(fields),
                *fields,
            ]
        if choice == 5:
            return [
                "HPEXPIREAT",
                k,
                int(time.time() * 1000) + rng.randrange(10**7, 10**8),
                "FIELDS",
                len(fields),
                *fields,
            ]
        if choice == 6:
            return ["HPERSIST", k, "FIELDS", len(fields), *fields]
        return ["HDEL", k, *fields]

    def c_hash_8(self) -> list[Any]:
        """Redis 8.0's HGETEX / HSETEX / HGETDEL."""
        k, rng = self.key("hx"), self.rng
        fields = [f"f{rng.randrange(12)}" for _ in range(rng.randrange(1, 4))]
        choice = rng.randrange(5)
        if choice == 0:
            opt: list[object] = rng.choice(
                [
                    ["EX", rng.randrange(2000, 9000)],
                    ["PX", rng.randrange(10**7, 10**8)],
                    ["EXAT", int(time.time()) + 5000],
                    ["PERSIST"],
                    [],
                ]
            )
            return ["HGETEX", k, *opt, "FIELDS", len(fields), *fields]
        if choice in (1, 2):
            cond = rng.choice([[], ["FNX"], ["FXX"]])
            ttl: list[object] = rng.choice(
                [
                    ["EX", rng.randrange(2000, 9000)],
                    ["PX", rng.randrange(10**7, 10**8)],
                    ["KEEPTTL"],
                    [],
                ]
            )
            return [
                "HSETEX",
                k,
                *cond,
                *ttl,
                "FIELDS",
                len(fields),
                *(x for f in fields for x in (f, self.val())),
            ]
        if choice == 3:
            return ["HGETDEL", k, "FIELDS", len(fields), *fields]
        return ["HINCRBY", k, fields[0], 1]

    def c_vset(self) -> list[Any]:
        """Vector sets (Redis 8): VADD of new elements, VREM, VSETATTR."""
        k, rng = f"v:{self.rng.randrange(6)}", self.rng
        dim = 3 + int(k[-1]) % 3
        choice = rng.randrange(6)
        el = f"e{rng.randrange(40)}"
        if choice < 3:
            opts: list[Any] = []
            if k.endswith(("4", "5")):
                opts += [rng.choice(["Q8", "NOQUANT", "BIN"])] if rng.random() < 0.2 else []
            vec = [f"{rng.uniform(-1, 1):.3f}" for _ in range(dim)]
            attr = ["SETATTR", f'{{"n": {rng.randrange(100)}}}'] if rng.random() < 0.5 else []
            return ["VADD", k, "VALUES", dim, *vec, el, *opts, *attr]
        if choice == 3:
            return ["VREM", k, el]
        if choice == 4:
            return ["VSETATTR", k, el, rng.choice(['{"n": 1, "s": "x"}', ""])]
        return ["VADD", k, "VALUES", dim, *["0.5"] * dim, el]

    # ---- execution ----

    def execute(self, argv: list[Any]) -> Any:
        self.sent += 1
        try:
            return self.client.execute_command(*argv)
        except redis.ResponseError:
            self.errors += 1
            return None

    def one(self) -> list[Any]:
        pick = self.rng.uniform(0, self.total_weight)
        for w, fn in self.families:
            pick -= w
            if pick <= 0:
                return fn()
        return self.families[-1][1]()

    def run(self, n: int) -> None:
        """`n` steps: mostly single commands, some transactions, scripts, functions, blocking
        pops, RESTOREs and DB switches."""
        rng = self.rng
        for _ in range(n):
            r = rng.random()
            if r < 0.06:
                self.transaction()
            elif r < 0.09:
                self.script()
            elif r < 0.10 and self.version >= (7, 0, 0):
                self.function()
            elif r < 0.11:
                self.blocking_pop()
            elif r < 0.13:
                self.restore()
            elif r < 0.14:
                self.xclaim()
            elif r < 0.15:
                self.select(rng.randrange(self.dbs))
            else:
                self.execute(self.one())

    def select(self, db: int) -> None:
        self.db = db
        self.client.execute_command("SELECT", db)

    def transaction(self) -> None:
        pipe = self.client.pipeline(transaction=True)
        for _ in range(self.rng.randrange(1, 6)):
            pipe.execute_command(*self.one())
        self.sent += 1
        try:
            pipe.execute(raise_on_error=False)
        except redis.ResponseError:
            self.errors += 1

    def script(self) -> None:
        self.execute(
            [
                "EVAL",
                EVAL_SCRIPT,
                3,
                self.key("n"),
                self.key("h"),
                self.key("set"),
                f"f{self.rng.randrange(50)}",
                self.val(),
            ]
        )

    def function(self) -> None:
        if not self._function_loaded:
            self.client.execute_command("FUNCTION", "LOAD", "REPLACE", LIBRARY)
            self._function_loaded = True
        self.execute(
            [
                "FCALL",
                "wl_write",
                2,
                self.key("n"),
                self.key("l"),
                self.rng.randrange(1, 10),
                self.val(),
            ]
        )

    def xclaim(self) -> None:
        """Claim a really pending entry for another consumer (arrives as XCLAIM ... LASTID)."""
        key, group = self.key("x"), f"grp{self.rng.randrange(3)}"
        try:
            pending = self.client.xpending_range(key, group, "-", "+", 5)
        except redis.ResponseError:
            return
        if pending:
            ids = [p["message_id"] for p in pending[: self.rng.randrange(1, len(pending) + 1)]]
            self.execute(["XCLAIM", key, group, f"c{self.rng.randrange(3)}", 0, *ids])

    def restore(self) -> None:
        src = self.key(self.rng.choice(["s", "l", "h", "set", "z", "x", "hll"]))
        payload = self.client.dump(src)
        if payload is None:
            return
        ttl = self.rng.choice([0, 0, 5000, 100000])
        self.execute(["RESTORE", src + "d", ttl, payload, "REPLACE"])

    def blocking_pop(self) -> None:
        """A second client blocks on an empty key; a push from this one serves it."""
        key = f"blk:{self.rng.randrange(1000000)}"
        kind = self.rng.choice(
            ["BLPOP", "BRPOPLPUSH", "BZPOPMIN"] + (["BLMOVE"] if self.version >= (6, 2, 0) else [])
        )
        other = self.server.client(db=self.db, socket_timeout=10)
        result: list[Any] = []

        def block() -> None:
            try:
                if kind == "BLPOP":
                    result.append(other.execute_command("BLPOP", key, 5))
                elif kind == "BRPOPLPUSH":
                    result.append(other.execute_command("BRPOPLPUSH", key, key + ":dst", 5))
                elif kind == "BLMOVE":
                    result.append(
                        other.execute_command("BLMOVE", key, key + ":dst", "LEFT", "RIGHT", 5)
                    )
                else:
                    result.append(other.execute_command("BZPOPMIN", key, 5))
            finally:
                other.close()

        t = threading.Thread(target=block)
        t.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # wait until the other client is really blocked
            info = self.client.info("clients")
            if int(info.get("blocked_clients", 0)) > 0:
                break
            time.sleep(0.005)
        if kind == "BZPOPMIN":
            self.execute(["ZADD", key, 1, "a", 2, "b"])
        else:
            self.execute(["RPUSH", key, "x", "y"])
        t.join(10)
        self.sent += 1
