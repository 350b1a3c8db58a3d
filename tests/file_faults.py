"""Damage files the way disks and copies do, for tests and benches of on-disk caches."""

from __future__ import annotations

import random
from pathlib import Path


def flip_bits(path: Path, bits: int, seed: int, region: bytes = b"") -> None:
    """Flip ``bits`` distinct random bits of the file at ``path``; inside the first copy of
    ``region`` in it when given (e.g. a tensor's raw bytes), else anywhere."""
    data = bytearray(path.read_bytes())
    start = data.find(region) if region else 0
    if start < 0:
        raise ValueError(f"{path}: the given bytes are not stored in it as they are")
    size = len(region) or len(data)
    for position in random.Random(seed).sample(range(size * 8), bits):
        data[start + position // 8] ^= 1 << (position % 8)
    path.write_bytes(bytes(data))
