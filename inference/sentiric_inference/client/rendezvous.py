"""Rendezvous (highest-random-weight) hashing: which endpoint a session key belongs to.

Each endpoint scores hash(key, endpoint); the key goes to the highest score. When an
endpoint leaves, only the keys it held move (each to its own runner-up); when one joins, it
takes only the keys it now outscores. No ring, no virtual nodes, no shared state: every
client computes the same ranking from the same endpoint list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def score(key: str, endpoint: str) -> int:
    # blake2b is in hashlib everywhere and fast; 8 bytes of it order endpoints uniformly.
    digest = hashlib.blake2b(
        f"{key}\x00{endpoint}".encode("utf-8", "surrogatepass"), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big")


def rank(key: str, endpoints: Iterable[str]) -> list[str]:
    """Endpoints from the key's first choice to its last (ties broken by name)."""
    return sorted(endpoints, key=lambda endpoint: (-score(key, endpoint), endpoint))
