"""Redis Cluster / Valkey Cluster: one relay per shard, and a cluster-aware read endpoint.

Two roles, one package (docs/cluster.md):

- `replproxy cluster` (`supervisor.py`): reads the cluster's topology (`discovery.py`), runs
  a `replproxy run` process per shard primary, restarts them, forwards SIGTERM, and writes
  the topology file the relays read. It never touches a relay's data.
- A relay started with `--cluster-topology` (`node.py`): loads that topology, re-points its
  link when its shard's primary changes, and answers clients as a replica of that shard:
  CLUSTER commands, READONLY/READWRITE/ASKING, and the redirections of `getNodeByQuery`.

The cores are sans-I/O: `slots.py` (hash slots), `topology.py` (the cluster as data, its
parsers and its file), `view.py` (one relay's replies and redirections over a topology).
The rest of replproxy knows this package through four hooks: `Relay.cluster` (app.py),
`ClusterNode.check` in the dispatcher (server.py), `ClusterNode.lane_slots` for the GET/MGET
fast lane, and `Keyspace.on_cluster` for CLUSTER commands in the stream.
"""
