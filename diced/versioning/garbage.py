"""Finding unreferenced objects: the read-only half of a garbage collector.

An object below ``repos/`` is *referenced* when a named repo reaches it: its records,
claims and tags, the manifests, index pages and blobs of its locked nodes, and the entries,
pointers and pointed-to blobs of its open (or sealing) nodes. Everything else (blobs
superseded at an open node, pointers of nodes since locked, pages of interrupted locks,
records of nodes that lost a branch race, repos whose name was deleted) is garbage.

Deleting what this finds is only safe while no process writes to the store: a writer
publishes a blob before the pointer that names it, and a collector running in between
would see that blob as garbage.
"""

from __future__ import annotations

from collections.abc import Iterator

from diced.backends import ObjectStore
from diced.versioning import keys
from diced.versioning.chunkindex import ChunkIndex, PageCache
from diced.versioning.graph import VersionGraph
from diced.versioning.node import load_manifest

__all__ = ["find_unreferenced"]


def _referenced(backend: ObjectStore, repo: str) -> set[str]:
    graph = VersionGraph(backend, repo)
    keep = {keys.repo_record(repo)}
    for prefix in ("branches/", "next/", "heads/", "tags/"):
        keep.update(backend.list_prefix(f"{keys.repo_prefix(repo)}{prefix}"))
    cache = PageCache(max_pages=0)
    for uuid, node in graph.nodes().items():
        keep.add(keys.node_record(repo, uuid))
        record = node.record
        if record.locked and record.manifest is not None:
            keep.add(keys.manifest(repo, record.manifest))
            manifest = load_manifest(backend, repo, record.manifest)
            keep.update(keys.blob(repo, h) for h in manifest.files.values())
            for array in manifest.arrays.values():
                index = ChunkIndex(backend, repo, len(array.zarr["shape"]), cache)
                keep.update(keys.page(repo, p.hex()) for p in index.pages(array.root,
                                                                         array.height))
                keep.update(keys.blob(repo, d.hex()) for _, d in index.items(array.root,
                                                                             array.height))
        else:
            for key in backend.list_prefix(keys.open_node_prefix(repo, uuid)):
                keep.add(key)
                if "/arrays/" in key:
                    continue
                pointer = backend.get(key)
                if pointer:
                    keep.add(keys.blob(repo, pointer.hex()))
    return keep


def find_unreferenced(backend: ObjectStore) -> Iterator[str]:
    """Yield the key of every object below ``repos/`` that no named repo references."""
    named = set()
    for key in backend.list_prefix(keys.repo_names_prefix()):
        claim = backend.get(key)
        if claim is not None:
            named.add(claim.decode())
    keep: set[str] = set()
    for repo in named:
        keep |= _referenced(backend, repo)
    for key in backend.list_prefix("repos/"):
        if key not in keep:
            yield key
