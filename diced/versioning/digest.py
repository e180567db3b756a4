"""Content digests used to name immutable objects (chunks, files, index pages)."""

from __future__ import annotations

import xxhash

__all__ = ["DIGEST_SIZE", "digest"]

#: Bytes in a digest. 128 bits makes accidental collisions negligible at any store size.
DIGEST_SIZE = 16


def digest(data: bytes | memoryview) -> bytes:
    """Return the 16-byte XXH3-128 digest of ``data``.

    XXH3 runs at tens of GB/s, so content addressing costs no measurable write speed
    (a cryptographic hash would cost ~15% of zstd-1's compression time). It is not
    collision-resistant against an adversary; that is acceptable because anyone who can
    write objects into a repo can already change its open nodes.
    """
    return xxhash.xxh3_128_digest(data)
