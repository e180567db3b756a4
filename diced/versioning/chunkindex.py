"""The chunk index of a locked node: a copy-on-write radix tree of immutable pages.

Each array of a locked node has one tree mapping chunk coordinates to the digest of the
chunk's bytes. Level 0 pages (leaves) hold chunk digests; higher pages hold the digests of
child pages. At every level a page consumes ``bits`` bits of *each* coordinate, so a leaf
covers a compact block of chunks (8×8×8 chunks in 3-D) and a bulk read touches few pages.
The tree is as tall as the largest coordinate needs (a 512³ volume of 64³ chunks has one
page), so lookups cost O(log n) page visits, independent of history depth.

Pages are content-addressed and written create-only, so an update rewrites only the path
from changed leaves to the root; every other page is shared with the parent version.

Page bytes: ``b"DIP1"``, a kind byte (0 leaf, 1 inner), a little-endian uint32 count, the
sorted slot numbers as uint64, then one 16-byte digest per slot.
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future

import numpy as np

from diced.backends import ObjectStore
from diced.errors import StorageError
from diced.versioning import keys
from diced.versioning.digest import DIGEST_SIZE, digest
from diced.versioning.records import corrupt

__all__ = ["ChunkIndex", "PageCache", "bits_per_level"]

_MAGIC = b"DIP1"
_HEADER = struct.Struct("<4sBI")
Coords = tuple[int, ...]
Page = dict[int, bytes]


def bits_per_level(ndim: int) -> int:
    """Bits of each coordinate one tree level consumes: about 9 bits per page in total.

    A 0-d array has one chunk; its tree is a single leaf with slot 0.
    """
    return max(1, 9 // max(ndim, 1))


def _encode(page: Mapping[int, bytes], leaf: bool) -> bytes:
    slots = sorted(page)
    return b"".join([
        _HEADER.pack(_MAGIC, 0 if leaf else 1, len(slots)),
        np.asarray(slots, dtype="<u8").tobytes(),
        *(page[s] for s in slots),
    ])


def _decode(data: bytes, key: str) -> Page:
    if len(data) < _HEADER.size:
        raise corrupt("index page", key, "truncated header")
    magic, _kind, count = _HEADER.unpack_from(data)
    end = _HEADER.size + 8 * count
    if magic != _MAGIC or len(data) != end + DIGEST_SIZE * count:
        raise corrupt("index page", key, "bad header or length")
    slots = np.frombuffer(data, dtype="<u8", count=count, offset=_HEADER.size).tolist()
    return {s: data[end + i * DIGEST_SIZE: end + (i + 1) * DIGEST_SIZE]
            for i, s in enumerate(slots)}


class PageCache:
    """A bounded LRU of decoded index pages, keyed by page digest.

    Pages are immutable, so cached entries never need invalidation; one cache can be
    shared by every repo and node of a store. Thread-safe.
    """

    def __init__(self, max_pages: int = 65536) -> None:
        self.max_pages = max_pages
        self._pages: OrderedDict[bytes, Page] = OrderedDict()
        self._loading: dict[bytes, Future[Page]] = {}
        self._lock = threading.Lock()

    def get(self, key: bytes) -> Page | None:
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
            return page

    def put(self, key: bytes, page: Page) -> None:
        with self._lock:
            self._pages[key] = page
            if len(self._pages) > self.max_pages:
                self._pages.popitem(last=False)

    def load(self, key: bytes, fetch: Callable[[], Page]) -> Page:
        """The page ``key``: cached, or ``fetch()``-ed once however many threads ask at once.

        Threads that miss the same page while one of them fetches it wait for that fetch
        (a bulk read's first chunks all need the root page; one request is enough).
        """
        with self._lock:
            page = self._pages.get(key)
            if page is not None:
                self._pages.move_to_end(key)
                return page
            pending = self._loading.get(key)
            mine = pending is None
            if pending is None:
                pending = self._loading[key] = Future()
        if not mine:
            return pending.result()
        try:
            page = fetch()
        except BaseException as exc:
            pending.set_exception(exc)
            raise
        else:
            self.put(key, page)
            pending.set_result(page)
            return page
        finally:
            with self._lock:
                del self._loading[key]


class ChunkIndex:
    """Reads and copy-on-write updates of chunk-index trees stored in one repo.

    A tree is named by ``(root, height)``: the root page digest (``None`` for an empty
    tree) and the number of levels.
    """

    def __init__(self, backend: ObjectStore, repo: str, ndim: int, cache: PageCache) -> None:
        self.backend = backend
        self.repo = repo
        self.ndim = ndim
        self.bits = bits_per_level(ndim)
        self._mask = (1 << self.bits) - 1
        self.cache = cache

    def _slot(self, coords: Coords, level: int) -> int:
        shift, mask, bits = level * self.bits, self._mask, self.bits
        slot = 0
        for d, c in enumerate(coords):
            slot |= ((c >> shift) & mask) << (bits * d)
        return slot

    def _page(self, page_digest: bytes) -> Page:
        return self.cache.load(page_digest, lambda: self._fetch(page_digest))

    def _fetch(self, page_digest: bytes) -> Page:
        key = keys.page(self.repo, page_digest.hex())
        data = self.backend.get(key)
        if data is None:
            raise StorageError(f"index page {key!r} is missing: the store is damaged; "
                               "restore it from a copy (diced fsck lists what is missing)")
        if digest(data) != page_digest:
            # Named by its digest: a flipped bit must not turn a chunk into zeros.
            raise corrupt("index page", key, "its bytes do not match their digest")
        return _decode(data, key)

    def height_for(self, coords: Coords) -> int:
        """Levels needed so that every coordinate of ``coords`` fits."""
        top = max(coords, default=0).bit_length()
        return max(1, -(-top // self.bits))

    def lookup(self, root: str | None, height: int, coords: Coords) -> bytes | None:
        """Digest of the chunk at ``coords``, or ``None`` if the tree has no such chunk."""
        if root is None or self.height_for(coords) > height:
            return None
        node = bytes.fromhex(root)
        for level in range(height - 1, -1, -1):
            entry = self._page(node).get(self._slot(coords, level))
            if entry is None:
                return None
            node = entry
        return node

    def items(self, root: str | None, height: int) -> Iterator[tuple[Coords, bytes]]:
        """Yield ``(coords, chunk digest)`` for every chunk in the tree."""
        if root is None:
            return
        yield from self._items(bytes.fromhex(root), height - 1, (0,) * self.ndim)

    def _items(self, node: bytes, level: int, base: Coords) -> Iterator[tuple[Coords, bytes]]:
        shift = level * self.bits
        for slot, entry in sorted(self._page(node).items()):
            coords = tuple(
                b | (((slot >> (self.bits * d)) & self._mask) << shift)
                for d, b in enumerate(base)
            )
            if level == 0:
                yield coords, entry
            else:
                yield from self._items(entry, level - 1, coords)

    def pages(self, root: str | None, height: int) -> Iterator[bytes]:
        """Yield the digest of every page of the tree (for garbage collection)."""
        if root is None:
            return
        stack = [(bytes.fromhex(root), height - 1)]
        while stack:
            node, level = stack.pop()
            yield node
            if level > 0:
                stack.extend((child, level - 1) for child in self._page(node).values())

    def update(self, root: str | None, height: int,
               changes: Mapping[Coords, bytes | None]) -> tuple[str | None, int]:
        """Apply ``changes`` (coords → new digest, or ``None`` to remove) to a tree.

        Returns the new ``(root, height)``. Only pages on paths to changed chunks are
        written (create-only, content-addressed); the input tree is left untouched.
        """
        if not changes:
            return root, height
        new_height = max([height, *(self.height_for(c) for c in changes)])
        node = None if root is None else bytes.fromhex(root)
        for _ in range(height, new_height):
            if node is not None:
                node = self._write({0: node}, leaf=False)
        new = self._apply(node, new_height - 1, list(changes.items()))
        return (None if new is None else new.hex()), new_height

    def _apply(self, node: bytes | None, level: int,
               changes: Sequence[tuple[Coords, bytes | None]]) -> bytes | None:
        page = dict(self._page(node)) if node is not None else {}
        if level == 0:
            for coords, value in changes:
                slot = self._slot(coords, 0)
                if value is None:
                    page.pop(slot, None)
                else:
                    page[slot] = value
        else:
            groups: dict[int, list[tuple[Coords, bytes | None]]] = {}
            for change in changes:
                groups.setdefault(self._slot(change[0], level), []).append(change)
            for slot, group in groups.items():
                child = self._apply(page.get(slot), level - 1, group)
                if child is None:
                    page.pop(slot, None)
                else:
                    page[slot] = child
        return self._write(page, leaf=level == 0) if page else None

    def _write(self, page: Page, leaf: bool) -> bytes:
        data = _encode(page, leaf)
        page_digest = digest(data)
        self.backend.put_if_absent(keys.page(self.repo, page_digest.hex()), data)
        self.cache.put(page_digest, page)
        return page_digest
