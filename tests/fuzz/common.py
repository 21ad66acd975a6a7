"""Helpers shared by the fuzz targets: no atheris here, so the corpus replays without it."""

from __future__ import annotations

import random
from collections.abc import Iterator


class Input:
    """Consumes a fuzz input: a few control bytes up front, the rest as the payload."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self, nbytes: int) -> int:
        return int.from_bytes(bytes(self.byte() for _ in range(nbytes)), "little")

    def rest(self) -> bytes:
        out = self.data[self.pos :]
        self.pos = len(self.data)
        return out


def chunks(data: bytes, seed: int) -> Iterator[bytes]:
    """`data` cut at places chosen by `seed` (1-byte pieces included), deterministically."""
    rng = random.Random(seed)
    i = 0
    while i < len(data):
        n = rng.choice((1, 1, 2, 3, 5, 8, 13, 64, 512))
        yield data[i : i + n]
        i += n
