"""replproxy: a Redis/Valkey replication relay.

It replicates from one master as a replica (PSYNC), keeps the dataset and a replication
backlog, serves reads over RESP like a read-only replica and serves PSYNC to downstream
replicas with the master's own replication id and offsets.
"""

__version__ = "0.1.0"
