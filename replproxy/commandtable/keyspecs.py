"""Key extraction: `getKeysFromCommandWithSpecs` (db.c) over a command's key specs, and the
native `*GetKeys` fallbacks of the commands whose specs cannot say everything.

Option words are compared as C strings (`strcasecmp`, stopping at NUL); counts are parsed
with `string2ll` by the specs and with `atoi` by the fallbacks (so `ZUNION 2abc a b` still
finds two keys), as in Redis. Pure functions of a `CommandSpec` and an argv; nothing here
knows the table or builds replies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from replproxy.args import option_word
from replproxy.commandtable.spec import CommandSpec, KeySpec
from replproxy.resp.request import string2ll

__all__ = [
    "GETKEYS_OF",
    "KeyRef",
    "get_keys",
    "getkeys_of",
    "has_keys",
    "keys_from_command",
    "legacy_has_keys",
]


KeyRef = tuple[int, tuple[str, ...]]  # (argv position, key flags)
_NO_FLAGS: tuple[str, ...] = ()


def _c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def _atoi(arg: bytes) -> int:
    """glibc atoi: (int) strtol(s, NULL, 10): leading blanks, a sign, digits; clamped to a
    long, then truncated to 32 bits."""
    s = option_word(arg)
    i, n = 0, len(s)
    while i < n and s[i] in b" \t\n\v\f\r":
        i += 1
    neg = False
    if i < n and s[i] in b"+-":
        neg = s[i] == ord("-")
        i += 1
    j = i
    while j < n and 48 <= s[j] <= 57:
        j += 1
    v = int(s[i:j]) if j > i else 0
    v = -v if neg else v
    return _c_int(max(-(2**63), min(v, 2**63 - 1)))


# How a keynum spec turns numkeys into the last key (`getKeysUsingKeySpecs`): "int" (Redis
# 7.0/7.2, Valkey 8: `first + (int)numkeys - 1`, so 4294967298 counts as 2), "long" (Redis
# 7.4 and 8: no truncation), "valkey9" (`first + (numkeys - 1) * step`, refused outside the
# int range). `versions.keynum_mode` says which a table uses.
KeynumMode = str


def _keys_from_specs(
    spec: CommandSpec, argv: Sequence[bytes], keynum: KeynumMode = "int"
) -> list[KeyRef] | None:
    """`getKeysUsingKeySpecs` (GET_KEYSPEC_DEFAULT): None when a spec is invalid here."""
    argc = len(argv)
    keys: list[KeyRef] = []
    for ks in spec.key_specs:
        if "not_key" in ks.flags:
            continue
        if ks.begin_search == "index":
            first = ks.index
        elif ks.begin_search == "keyword":
            first = 0
            start = ks.startfrom if ks.startfrom > 0 else argc + ks.startfrom
            end = argc - 1 if ks.startfrom > 0 else 1
            step = 1 if start <= end else -1
            i = start
            while i != end:  # the last argument is never a keyword (it could not start keys)
                if i >= argc or i < 1:
                    break
                if option_word(argv[i]) == ks.keyword:
                    first = i + 1
                    break
                i += step
            if not first:
                continue
        else:
            return None
        if ks.find_keys == "range":
            step = ks.keystep
            if ks.lastkey >= 0:
                last = first + ks.lastkey
            elif not ks.limit:
                last = argc + ks.lastkey
            else:
                last = first + (_c_div(argc - first, ks.limit) + ks.lastkey)
        elif ks.find_keys == "keynum":
            step = ks.keystep
            at = first + ks.keynumidx
            if ks.keynumidx >= argc or at >= argc:
                return None
            numkeys = string2ll(argv[at])
            if numkeys is None or numkeys < 0:
                return None
            first += ks.firstkey
            if keynum == "int":
                last = first + _c_int(numkeys) - 1
            elif keynum == "long":
                last = first + numkeys - 1
            else:
                last = first + (numkeys - 1) * step
                if not -(2**31) <= last < 2**31:
                    return None
        else:
            return None
        if last >= argc or last < first or first >= argc:
            return None
        keys += [(i, ks.flags) for i in range(first, last + 1, step)]
        if "incomplete" in ks.flags:
            return None
    return keys


def _c_int(v: int) -> int:
    """A long long cast to a C int."""
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _generic(
    store: int, count: int, first: int, step: int
) -> Callable[[Sequence[bytes]], list[KeyRef]]:
    """`genericGetKeys`: CMD [destkey] numkeys key... (ZUNION, EVAL, LMPOP...)."""

    def getkeys(argv: Sequence[bytes]) -> list[KeyRef]:
        num = _atoi(argv[count])
        if num < 1 or num > _c_div(len(argv) - first, step):
            return []
        keys = [(first + i * step, _NO_FLAGS) for i in range(num)]
        if store:
            keys.append((store, _NO_FLAGS))
        return keys

    return getkeys


def _sort_ro_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    return [(1, ("RO", "access"))]


def _sort_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`sortGetKeys`: the sorted key, and the last STORE's key (LIMIT/GET/BY skip their
    arguments; STORE does not skip its own)."""
    keys: list[KeyRef] = [(1, ("RO", "access"))]
    store = 0
    argc = len(argv)
    i = 2
    while i < argc:
        w = option_word(argv[i])
        if w == b"limit":
            i += 2
        elif w == b"store" and i + 1 < argc:
            store = i + 1
        elif w in (b"get", b"by"):
            i += 1
        i += 1
    if store:
        keys.append((store, ("OW", "update")))
    return keys


def _migrate_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`migrateGetKeys`: argv[3], or everything after KEYS when argv[3] is empty."""
    first, num = 3, 1
    argc = len(argv)
    if argc > 6:
        i = 6
        while i < argc:
            w = option_word(argv[i])
            if w == b"keys":
                if argv[3]:
                    num = 0  # a syntax error for MIGRATE itself
                else:
                    first = i + 1
                    num = argc - first
                break
            i += {b"auth": 1, b"auth2": 2}.get(w, 0)
            i += 1
    return [(first + i, ("RW", "access", "delete")) for i in range(num)]


def _legacy_migrate_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """Redis 5.0 / 6.2 `migrateGetKeys`: no AUTH/AUTH2 skipping, and a KEYS after a
    non-empty argv[3] is passed over (the search goes on)."""
    first, num = 3, 1
    argc = len(argv)
    if argc > 6:
        for i in range(6, argc):
            if option_word(argv[i]) == b"keys" and not argv[3]:
                first, num = i + 1, argc - i - 1
                break
    return [(first + i, _NO_FLAGS) for i in range(num)]


def _georadius_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`georadiusGetKeys`: the key, and the last STORE/STOREDIST key."""
    stored = -1
    argc = len(argv)
    i = 5
    while i < argc:
        if option_word(argv[i]) in (b"store", b"storedist") and i + 1 < argc:
            stored = i + 1
            i += 1
        i += 1
    keys = [(1, _NO_FLAGS)]
    if stored != -1:
        keys.append((stored, _NO_FLAGS))
    return keys


def _xread_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`xreadGetKeys`: the first half of what follows STREAMS, after known options."""
    argc = len(argv)
    streams = -1
    i = 1
    while i < argc:
        w = option_word(argv[i])
        if w in (b"block", b"count"):
            i += 1
        elif w == b"group":
            i += 2
        elif w == b"noack":
            pass
        elif w == b"streams":
            streams = i
            break
        else:
            break
        i += 1
    num = argc - streams - 1 if streams != -1 else 0
    if streams == -1 or num == 0 or num % 2:
        return []
    return [(i, _NO_FLAGS) for i in range(streams + 1, argc - num // 2)]


def _memory_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """Redis 6.2 `memoryGetKeys`: MEMORY USAGE's key (before 7.0 MEMORY had no
    subcommands, so this one function finds the key of the whole command)."""
    if len(argv) >= 3 and option_word(argv[1]) == b"usage":
        return [(2, _NO_FLAGS)]
    return []


def _lcs_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """Redis 6.2 `lcsGetKeys` (STRALGO LCS): the two keys after KEYS, unless STRINGS comes
    first."""
    argc = len(argv)
    for i in range(1, argc):
        w = option_word(argv[i])
        if w == b"strings":
            break
        if w == b"keys" and argc - 1 - i >= 2:
            return [(i + 1, _NO_FLAGS), (i + 2, _NO_FLAGS)]
    return []


def _set_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`setGetKeys`: SET with GET reads the key too."""
    if any(option_word(a) == b"get" for a in argv[3:]):
        return [(1, ("RW", "access", "update"))]
    return [(1, ("OW", "update"))]


def _bitfield_keys(argv: Sequence[bytes]) -> list[KeyRef]:
    """`bitfieldGetKeys`: read-only when only GET/OVERFLOW come before anything else."""
    readonly = True
    argc = len(argv)
    i = 2
    while i < argc:
        rem = argc - i - 1
        w = option_word(argv[i])
        if w == b"get" and rem >= 2:
            i += 2
        elif w in (b"set", b"incrby") and rem >= 3:
            readonly = False
            break
        elif w == b"overflow" and rem >= 1:
            i += 1
        else:
            readonly = False
            break
        i += 1
    return [(1, ("RO", "access") if readonly else ("RW", "access", "update"))]


GETKEYS_PROCS: dict[str, Callable[[Sequence[bytes]], list[KeyRef]]] = {
    "sintercard": _generic(0, 1, 2, 1),
    "zunionInterDiffStore": _generic(1, 2, 3, 1),
    "zunionInterDiff": _generic(0, 1, 2, 1),
    "eval": _generic(0, 2, 3, 1),
    "function": _generic(0, 2, 3, 1),
    "lmpop": _generic(0, 1, 2, 1),
    "blmpop": _generic(0, 2, 3, 1),
    "zmpop": _generic(0, 1, 2, 1),
    "sortRO": _sort_ro_keys,
    "sort": _sort_keys,
    "migrate": _migrate_keys,
    "migrateLegacy": _legacy_migrate_keys,
    "georadius": _georadius_keys,
    "xread": _xread_keys,
    "set": _set_keys,
    "bitfield": _bitfield_keys,
    "memory": _memory_keys,
    "lcs": _lcs_keys,
}

# Which command has which `<proc>GetKeys` (commands.c / commands.def: the same in Redis 7.0
# and Valkey 8.1). COMMAND INFO does not show it, so it is listed here.
GETKEYS_OF: dict[bytes, str] = {
    b"bitfield": "bitfield",
    b"migrate": "migrate",
    b"sort": "sort",
    b"sort_ro": "sortRO",
    b"georadius": "georadius",
    b"georadiusbymember": "georadius",
    b"blmpop": "blmpop",
    b"bzmpop": "blmpop",
    b"lmpop": "lmpop",
    b"zmpop": "zmpop",
    b"eval": "eval",
    b"evalsha": "eval",
    b"eval_ro": "eval",
    b"evalsha_ro": "eval",
    b"fcall": "function",
    b"fcall_ro": "function",
    b"sintercard": "sintercard",
    b"zdiff": "zunionInterDiff",
    b"zinter": "zunionInterDiff",
    b"zintercard": "zunionInterDiff",
    b"zunion": "zunionInterDiff",
    b"zdiffstore": "zunionInterDiffStore",
    b"zinterstore": "zunionInterDiffStore",
    b"zunionstore": "zunionInterDiffStore",
    b"xread": "xread",
    b"xreadgroup": "xread",
    b"set": "set",
}

# Before 7.0 (server.c's `redisCommandTable` of 6.2.5 and 5.0.7): the commands with a
# `*GetKeys` function; every other command's keys are its (first, last, step) range.
# The functions are 7.0's where they find the same keys; MIGRATE's differs
# (`migrateLegacy`), and 6.2 had two that 7.0 replaced with key specs (MEMORY, STRALGO).
_GETKEYS_OF_62: dict[bytes, str] = {
    b"zunionstore": "zunionInterDiffStore",
    b"zinterstore": "zunionInterDiffStore",
    b"zdiffstore": "zunionInterDiffStore",
    b"zunion": "zunionInterDiff",
    b"zinter": "zunionInterDiff",
    b"zdiff": "zunionInterDiff",
    b"sort": "sort",
    b"migrate": "migrateLegacy",
    b"memory": "memory",
    b"eval": "eval",
    b"evalsha": "eval",
    b"georadius": "georadius",
    b"georadiusbymember": "georadius",
    b"xread": "xread",
    b"xreadgroup": "xread",
    b"stralgo": "lcs",
}
_GETKEYS_OF_50: dict[bytes, str] = {
    b"zunionstore": "zunionInterDiffStore",  # 5.0's zunionInterGetKeys: the same keys
    b"zinterstore": "zunionInterDiffStore",
    b"sort": "sort",
    b"migrate": "migrateLegacy",
    b"eval": "eval",
    b"evalsha": "eval",
    b"georadius": "georadius",
    b"georadius_ro": "georadius",
    b"georadiusbymember": "georadius",
    b"georadiusbymember_ro": "georadius",
    b"xread": "xread",
    b"xreadgroup": "xread",
}


def getkeys_of(legacy: bool, major: int) -> dict[bytes, str]:
    """Which command has which `*GetKeys` function in a table: 7.0's (and every later
    version's) for a table with key specs, else the 5.0 or 6.2 one."""
    if not legacy:
        return GETKEYS_OF
    return _GETKEYS_OF_50 if major < 6 else _GETKEYS_OF_62


def has_keys(spec: CommandSpec) -> bool:
    """`doesCommandHaveKeys`: a fallback function, or a spec that is not `not_key`."""
    return spec.getkeys_proc is not None or _has_keyspec(spec.key_specs)


def _has_keyspec(specs: Sequence[KeySpec]) -> bool:
    """Whether a key spec finds keys (one that is not `not_key`)."""
    return any("not_key" not in ks.flags for ks in specs)


def get_keys(spec: CommandSpec, argv: Sequence[bytes], keynum: KeynumMode = "int") -> list[KeyRef]:
    """`getKeysFromCommandWithSpecs`: the (position, flags) of each key in `argv` (argv[0]
    is the command name; for a subcommand, argv[1] its name; the arity already checked).
    Empty when the arguments are not valid for the key specs and the fallback finds nothing
    either. The fallbacks of some commands report no flags, as in Redis."""
    specs = spec.key_specs
    has_keyspec = _has_keyspec(specs)
    varflags = any("variable_flags" in ks.flags for ks in specs)
    if has_keyspec and not varflags:
        keys = _keys_from_specs(spec, argv, keynum)
        if keys is not None:
            return keys
    if spec.getkeys_proc is not None:
        return GETKEYS_PROCS[spec.getkeys_proc](argv)
    return []


def legacy_has_keys(spec: CommandSpec) -> bool:
    """Before 7.0 (`ACLCheckCommandPerm`, COMMAND GETKEYS): a command has keys when it has
    a `*GetKeys` function or a first key."""
    return spec.getkeys_proc is not None or spec.first_key > 0


def keys_from_command(spec: CommandSpec, argv: Sequence[bytes]) -> list[int]:
    """`getKeysFromCommand`: the command's own `*GetKeys` when it has one, else the legacy
    (first, last, step) range of COMMAND INFO, which, unlike the key specs, includes the
    channels of SSUBSCRIBE and SPUBLISH. No keys when a variadic command is too short for
    its range. The key positions cluster routing (`getNodeByQuery`) hashes, and before
    7.0 all a command's keys: those Redis 5.0/6.2 check against ACL key patterns, route by
    and answer COMMAND GETKEYS with (a 5.0/6.2 table carries its own version's functions,
    `getkeys_of`)."""
    if spec.getkeys_proc is not None:
        return [pos for pos, _ in GETKEYS_PROCS[spec.getkeys_proc](argv)]
    first = spec.first_key
    if first <= 0:
        return []
    argc = len(argv)
    last = spec.last_key if spec.last_key >= 0 else argc + spec.last_key
    if last >= argc:
        return []  # only a variadic command gets here (the arity check passed)
    return list(range(first, last + 1, spec.key_step or 1))
