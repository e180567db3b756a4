"""The storage lifecycle of a store: sizes, integrity, garbage collection, copies.

One module per job, each a function over backends (the API in :mod:`diced.store` and
:mod:`diced.repo` calls them; ``diced du``, ``fsck``, ``gc``, ``clone``, ``sync``,
``push`` and ``pull`` are their command-line faces):

- :mod:`diced.lifecycle.sizes` — stored bytes per array, version, repo and store;
- :mod:`diced.lifecycle.verify` — check every reachable object, report damage;
- :mod:`diced.lifecycle.gc` (with :mod:`~diced.lifecycle.lease`) — delete the unreachable;
- :mod:`diced.lifecycle.sync` — copy repos and versions between stores.

See docs/lifecycle.md, and docs/format.md for why collecting garbage is safe.
"""

from diced.lifecycle.gc import DEFAULT_GRACE, GcReport, parse_duration
from diced.lifecycle.sizes import ArrayUsage, RepoUsage, StoreUsage, VersionUsage
from diced.lifecycle.sync import RepoCopy, SyncReport
from diced.lifecycle.usage import Usage
from diced.lifecycle.verify import Damage, VerifyReport
from diced.versioning.prune import BranchDeletion

__all__ = [
    "DEFAULT_GRACE",
    "ArrayUsage",
    "BranchDeletion",
    "Damage",
    "GcReport",
    "RepoCopy",
    "RepoUsage",
    "StoreUsage",
    "SyncReport",
    "Usage",
    "VerifyReport",
    "VersionUsage",
    "parse_duration",
]
