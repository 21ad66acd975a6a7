"""The dataset: numbered databases of typed values, loaded from snapshots, mutated by the stream.

This package owns the data the relay serves. It is filled by two paths only: a snapshot
(`KeyspaceLoader`, built off to the side and swapped in whole, so a reader never sees a
half-loaded dataset) and the master's write commands (`Keyspace.apply`). Everything here is
synchronous: a command or a whole transaction is applied between two trio checkpoints, so no
reader can observe half of it.

Values use the RDB value model of `replproxy.rdb.model` (bytes, list, set, dict/HashValue,
StreamValue, ModuleValue), except sorted sets, which are `ZSet` (a `ZSetValue` with a sorted
index) so ranks and ranges are cheap. A snapshot loads sorted sets as plain `ZSetValue`s and
`Keyspace.get` upgrades one on first access, so loading pays nothing for indexes it may
never need; code reading `dbs` directly must accept both. Write commands are dispatched by
lowercase name through `WRITE_COMMANDS`, the one table the per-type modules (`t_string`,
`t_list`, ...) fill with `@write_command`. Like a Redis replica, appliers do NOT check
expiry: a key whose TTL has passed stays until the master sends its `DEL`/`UNLINK`.

What a write reports goes out through hooks, each None (free) until someone needs it:
`on_key_modified` (a key changed: WATCH, blocked reads, client-side caching), `on_flush` /
`on_swapdb` (a DB emptied or swapped), `on_publish` (the master's PUBLISH and the keyspace
notifications appliers report with `Keyspace.notify`, see `replproxy.keyspace.notify`).

A command nobody handles, or one whose applier fails, is counted and logged once per name;
the keys it names are marked *unsupported* (reads of them must answer an error rather than
stale data) until a later write replaces them. Its bytes are still relayed by the
replication core, which owns the stream.
"""

import replproxy.keyspace.commands  # noqa: F401 - fills the registry
from replproxy.keyspace.registry import WRITE_COMMANDS, ApplyError, write_command
from replproxy.keyspace.store import Keyspace, KeyspaceLoader, library_name

__all__ = [
    "WRITE_COMMANDS",
    "ApplyError",
    "Keyspace",
    "KeyspaceLoader",
    "library_name",
    "write_command",
]
