"""Lua scripting as a read-only replica runs it: EVAL, EVALSHA, SCRIPT, FCALL, FUNCTION.

This package owns the relay's Lua states (lupa's Lua 5.1, set up as Redis's environment),
the script cache, the compiled function libraries and the one running script. It reads the
master's libraries (`Keyspace.functions`) and never changes the dataset; a script's commands
run through the caller-supplied `Caller.call`, which the relay backs with its own read
handlers. Sans-I/O: no sockets, no trio; the clock is injected and the busy-script hook
calls back (`on_busy`) for the shell to serve other clients. See docs/scripting.md.

- `scripting.Scripting`: the commands and what the dispatcher asks (flags, -BUSY).
- `script`: flags, shebangs, the run context, the checks of Redis's script.c.
- `eval` / `functions`: the script cache; the libraries and FUNCTION DUMP.
- `engine`: one Lua state; `lua/*.lua` its environment and libraries; `libs` the Python
  halves of what Lua's doubles cannot compute exactly.
- `commands`: the relay's side (handlers, the script client, serving clients while busy).
"""

from replproxy.scripting.script import Caller
from replproxy.scripting.scripting import DEFAULT_BUSY_REPLY_THRESHOLD, Scripting

__all__ = ["DEFAULT_BUSY_REPLY_THRESHOLD", "Caller", "Scripting"]
