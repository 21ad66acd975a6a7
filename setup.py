"""Build script for the optional C accelerator; all metadata lives in pyproject.toml.

`replproxy.rdb._loader` speeds up loading RDB snapshots into the keyspace (and the
`replproxy rdb` commands), `replproxy.rdb._jsonl` the JSON Lines of `replproxy rdb dump`,
`replproxy.resp._replies` the encoding of client replies, `replproxy.resp._lanes` the fast
lanes of canonical input (GET/MGET, the replication stream), and `replproxy.keyspace._store`
MSET's stores. All are optional:
where it cannot be compiled (no compiler, no Python headers) the install still succeeds and
the reader uses its pure-Python path. `pip install -e .` builds it in place.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "replproxy.rdb._loader",
            sources=["replproxy/rdb/_loader.c"],
            optional=True,
        ),
        # The JSON Lines of `replproxy rdb dump` (replproxy.rdb.cli falls back to Python).
        Extension(
            "replproxy.rdb._jsonl",
            sources=["replproxy/rdb/_jsonl.c"],
            optional=True,
        ),
        # Arrays of bulk strings and scored ranges for client replies (replproxy.resp.reply
        # encodes the same bytes in Python without it).
        Extension(
            "replproxy.resp._replies",
            sources=["replproxy/resp/_replies.c"],
            depends=["replproxy/resp/_resp.h"],
            optional=True,
        ),
        # GET/MGET and the replication stream's canonical commands (replproxy.resp.request
        # and replproxy.resp.stream take the same input in Python without it).
        Extension(
            "replproxy.resp._lanes",
            sources=["replproxy/resp/_lanes.c"],
            depends=["replproxy/resp/_resp.h"],
            optional=True,
        ),
        # MSET's stores with memory prefetching (replproxy.keyspace falls back to dict.update).
        Extension(
            "replproxy.keyspace._store",
            sources=["replproxy/keyspace/_store.c"],
            optional=True,
        ),
    ]
)
