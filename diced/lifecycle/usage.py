"""A count of stored objects and their bytes: the unit every lifecycle report adds up."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from diced.backends._base import ObjectInfo

__all__ = ["Usage"]


@dataclass(frozen=True)
class Usage:
    """``objects`` stored objects holding ``bytes`` bytes (as the backend stores them)."""

    objects: int = 0
    bytes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.objects + other.objects, self.bytes + other.bytes)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.objects - other.objects, self.bytes - other.bytes)

    @classmethod
    def of(cls, infos: Iterable[ObjectInfo]) -> Usage:
        """The total of listed objects."""
        objects = size = 0
        for info in infos:
            objects, size = objects + 1, size + info.size
        return cls(objects, size)
