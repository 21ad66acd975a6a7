"""Build script for the optional C accelerator; all metadata lives in pyproject.toml.

`replproxy.rdb._speedups` speeds up loading RDB snapshots into the keyspace. It is optional:
where it cannot be compiled (no compiler, no Python headers) the install still succeeds and
the reader uses its pure-Python path. `pip install -e .` builds it in place.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "replproxy.rdb._speedups",
            sources=["replproxy/rdb/_speedups.c"],
            optional=True,
        )
    ]
)
