"""EVAL scripts: the script cache and its Lua state (eval.c).

This module owns the EVAL Lua state and the cache of scripts by SHA1 (body, shebang flags,
compiled chunk). A replica's cache holds what its own clients loaded: the master's scripts
never reach it (scripts replicate by their effects), SCRIPT FLUSH empties it. From Redis
7.4 and in Valkey 8 the scripts EVAL compiled are evicted past 500, oldest first (a use
makes a script the newest); SCRIPT LOAD's stay. It does not decide whether a script may run
or what it may call (script.py) and does no I/O.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from replproxy.dialect import MasterDialect
from replproxy.scripting.engine import EngineHost, LuaEngine
from replproxy.scripting.libs import Lrand48
from replproxy.scripting.script import ShebangError, engine_error, extract_shebang_flags

# LRU_LIST_LENGTH of eval.c: EVAL-compiled scripts kept at most.
SCRIPT_CACHE_EVAL_MAX = 500


def sha1hex(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()


@dataclass
class LuaScript:
    body: bytes
    flags: int
    fn: Any  # the compiled chunk


class CreateError(Exception):
    """luaCreateFunction's error reply text (after `-ERR `)."""

    def __init__(self, msg: bytes) -> None:
        super().__init__(msg)
        self.msg = msg


class EvalScripts:
    def __init__(self, dialect: MasterDialect, host: EngineHost, prng: Lrand48) -> None:
        self.dialect = dialect
        self._host = host
        self._prng = prng
        self.engine = LuaEngine("eval", dialect, host, prng)
        self.scripts: dict[bytes, LuaScript] = {}
        # EVAL-compiled scripts, oldest first (only with `script_cache_lru`).
        self.lru: OrderedDict[bytes, None] = OrderedDict()
        self.evicted = 0

    def flush(self) -> None:
        """SCRIPT FLUSH (scriptingReset): a new Lua state, an empty cache."""
        self.engine = LuaEngine("eval", self.dialect, self._host, self._prng)
        self.scripts.clear()
        self.lru.clear()

    def get(self, sha: bytes) -> LuaScript | None:
        """The cached script (the SHA1 in any case)."""
        return self.scripts.get(sha.lower())

    def exists(self, sha: bytes) -> bool:
        z = sha.find(b"\0")
        return (sha if z < 0 else sha[:z]).lower() in self.scripts

    def create(self, body: bytes, *, from_eval: bool) -> tuple[bytes, LuaScript]:
        """luaCreateFunction: (sha, script), compiled and cached unless it already was.
        Raises CreateError with the reply's text."""
        sha = sha1hex(body)
        script = self.scripts.get(sha)
        if script is not None:
            if not from_eval and self.dialect.script_load_promotes:
                self.lru.pop(sha, None)
            return sha, script
        try:
            flags, shebang_len, engine = extract_shebang_flags(body, valkey=self.dialect.valkey)
        except ShebangError as e:
            raise CreateError(e.msg) from None
        bad_engine = engine_error(engine)
        if bad_engine is not None:
            raise CreateError(bad_engine)
        fn = self.engine.compile(body[shebang_len:], b"@user_script")
        if isinstance(fn, bytes):
            raise CreateError(b"Error compiling script (new function): " + fn)
        if from_eval and self.dialect.script_cache_lru:
            while len(self.lru) >= SCRIPT_CACHE_EVAL_MAX:
                oldest, _ = self.lru.popitem(last=False)
                del self.scripts[oldest]
                self.evicted += 1
            self.lru[sha] = None
        script = LuaScript(body, flags, fn)
        self.scripts[sha] = script
        return sha, script

    def touch(self, sha: bytes) -> None:
        """A script EVAL cached was used: it becomes the newest."""
        if sha in self.lru:
            self.lru.move_to_end(sha)

    def flags_of(self, argv: list[bytes], evalsha: bool) -> int | None:
        """evalGetCommandFlags' view: the script's flags, or None when they cannot be known
        yet (unknown SHA, a shebang that does not parse)."""
        if evalsha:
            if len(argv[1]) != 40:
                return None
            script = self.scripts.get(argv[1].lower())
            return script.flags if script else None
        script = self.scripts.get(sha1hex(argv[1]))
        if script is not None:
            return script.flags
        try:
            return extract_shebang_flags(argv[1], valkey=self.dialect.valkey)[0]
        except ShebangError:
            return None
