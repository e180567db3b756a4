"""Test kits that ship with diced, for diced's own tests and for third-party backends.

Importing this package needs pytest (the ``test`` extra); diced itself never imports it.
"""

from __future__ import annotations

from diced.testing.backend import ObjectStoreTests
from diced.testing.counting import CountingObjectStore, count_requests

__all__ = ["CountingObjectStore", "ObjectStoreTests", "count_requests"]
