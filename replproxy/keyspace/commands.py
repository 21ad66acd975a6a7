"""Imports every per-type module so their `@write_command` appliers fill WRITE_COMMANDS.

The package imports it: importing anything from `replproxy.keyspace` gives the full table.
"""

# Imported for their registrations.
import replproxy.keyspace.keys
import replproxy.keyspace.object
import replproxy.keyspace.sort
import replproxy.keyspace.t_bitmap
import replproxy.keyspace.t_function
import replproxy.keyspace.t_geo
import replproxy.keyspace.t_hash
import replproxy.keyspace.t_hll
import replproxy.keyspace.t_list
import replproxy.keyspace.t_set
import replproxy.keyspace.t_stream
import replproxy.keyspace.t_string
import replproxy.keyspace.t_vset
import replproxy.keyspace.t_zset  # noqa: F401
