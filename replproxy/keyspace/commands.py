"""Imports every per-type module so their `@write_command` appliers fill WRITE_COMMANDS.

Import this (not the type modules one by one) wherever the complete table is needed.
"""

from replproxy.keyspace import (  # noqa: F401 - imported for their registrations
    generic,
    t_bitmap,
    t_function,
    t_geo,
    t_hash,
    t_hll,
    t_list,
    t_set,
    t_stream,
    t_string,
    t_vset,
    t_zset,
)
