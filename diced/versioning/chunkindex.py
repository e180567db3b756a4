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

import numpy as np
import numpy.typing as npt

from diced.backends import ObjectStore
from diced.errors import StorageError
from diced.versioning import keys
from diced.versioning.digest import DIGEST_SIZE, digest
from diced.versioning.records import corrupt
from diced.versioning.trash import read_immutable

__all__ = ["ChunkIndex", "Columns", "PageCache", "bits_per_level"]

_MAGIC = b"DIP1"
_HEADER = struct.Struct("<4sBI")
Coords = tuple[int, ...]
Page = dict[int, bytes]
#: A page as arrays: sorted slots and their 16-byte digests (see ChunkIndex.page_columns).
Columns = tuple[npt.NDArray[np.uint64], npt.NDArray[np.void]]


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


def _columns(data: bytes, key: str) -> Columns:
    """A page's sorted slots (uint64) and their digests (16-byte voids), parsed in place."""
    if len(data) < _HEADER.size:
        raise corrupt("index page", key, "truncated header")
    magic, _kind, count = _HEADER.unpack_from(data)
    end = _HEADER.size + 8 * count
    if magic != _MAGIC or len(data) != end + DIGEST_SIZE * count:
        raise corrupt("index page", key, "bad header or length")
    return (np.frombuffer(data, dtype="<u8", count=count, offset=_HEADER.size),
            np.frombuffer(data, dtype=f"V{DIGEST_SIZE}", count=count, offset=end))


def _decode(data: bytes, key: str) -> Page:
    slots, _ = _columns(data, key)
    end = _HEADER.size + 8 * len(slots)
    return {s: data[end + i * DIGEST_SIZE: end + (i + 1) * DIGEST_SIZE]
            for i, s in enumerate(slots.tolist())}


class PageCache:
    """A bounded LRU of decoded index pages, keyed by page digest.

    Pages are immutable, so cached entries never need invalidation; one cache can be
    shared by every repo and node of a store. Thread-safe.
    """

    def __init__(self, max_pages: int = 65536) -> None:
        self.max_pages = max_pages
        self._pages: OrderedDict[bytes, Page] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[bytes, threading.Lock] = {}

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

    def get_or_load(self, key: bytes, load: Callable[[], Page]) -> Page:
        """The cached page, or ``load()``'s, loaded once however many threads ask at once.

        The chunks of one read resolve on many threads, which all need the same few pages
        first: one request per page, not one per thread.
        """
        page = self.get(key)
        if page is not None:
            return page
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:
            page = self.get(key)
            if page is None:
                try:
                    page = load()
                    self.put(key, page)
                finally:
                    with self._lock:
                        self._loading.pop(key, None)
        return page


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

    def _fetch(self, page_digest: bytes) -> tuple[bytes, str]:
        """A page's bytes from the store (or its trash), verified against its digest, and
        its key."""
        key = keys.page(self.repo, page_digest.hex())
        data = read_immutable(self.backend, key)
        if data is None:
            raise StorageError(f"index page {key!r} is missing: the store is damaged; "
                               "restore it from a copy (diced fsck lists what is missing)")
        if digest(data) != page_digest:
            # Named by its digest: a flipped bit must not turn a chunk into zeros.
            raise corrupt("index page", key, "its bytes do not match their digest")
        return data, key

    def _page(self, page_digest: bytes) -> Page:
        return self.cache.get_or_load(page_digest, lambda: _decode(*self._fetch(page_digest)))

    def page_columns(self, page_digest: bytes) -> Columns:
        """One page's entries as arrays, to compare pages without a Python loop: its slots
        (sorted ``uint64``) and their digests (16-byte ``void``), verified.

        Served from the page cache when the page is there; otherwise parsed straight from
        its bytes (and not cached: the caller compares it once).
        """
        page = self.cache.get(page_digest)
        if page is None:
            return _columns(*self._fetch(page_digest))
        slots = np.fromiter(page.keys(), dtype="<u8", count=len(page))
        digests = np.frombuffer(b"".join(page.values()), dtype=f"V{DIGEST_SIZE}")
        order = np.argsort(slots, kind="stable")
        return slots[order], digests[order]

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

    def read_page(self, page_digest: bytes) -> Mapping[int, bytes]:
        """The entries of one page, verified and cached: slot → child page digest, or
        chunk digest in a leaf (level 0). Do not modify the mapping (it is shared)."""
        return self._page(page_digest)

    def slot_coords(self, base: Coords, slot: int, level: int) -> Coords:
        """The first chunk coordinates below ``slot`` of a page at ``level`` whose own first
        coordinates are ``base`` (at level 0: the chunk's coordinates)."""
        shift = level * self.bits
        return tuple(b | (((slot >> (self.bits * d)) & self._mask) << shift)
                     for d, b in enumerate(base))

    def _items(self, node: bytes, level: int, base: Coords) -> Iterator[tuple[Coords, bytes]]:
        for slot, entry in sorted(self._page(node).items()):
            coords = self.slot_coords(base, slot, level)
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
        written (create-only, content-addressed); the input tree is left untouched. The
        new pages are written together, in one batch (one round trip on a bucket), and
        all of them are stored when this returns: a manifest naming the root may follow.
        """
        if not changes:
            return root, height
        new_height = max([height, *(self.height_for(c) for c in changes)])
        node = None if root is None else bytes.fromhex(root)
        pending: dict[str, bytes] = {}
        for _ in range(height, new_height):
            if node is not None:
                node = self._write({0: node}, False, pending)
        new = self._apply(node, new_height - 1, list(changes.items()), pending)
        self.backend.put_many_immutable(list(pending.items()))
        return (None if new is None else new.hex()), new_height

    def _apply(self, node: bytes | None, level: int,
               changes: Sequence[tuple[Coords, bytes | None]],
               pending: dict[str, bytes]) -> bytes | None:
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
                child = self._apply(page.get(slot), level - 1, group, pending)
                if child is None:
                    page.pop(slot, None)
                else:
                    page[slot] = child
        return self._write(page, level == 0, pending) if page else None

    def _write(self, page: Page, leaf: bool, pending: dict[str, bytes]) -> bytes:
        """Encode ``page`` into ``pending`` (key → bytes, written by the caller); its digest."""
        data = _encode(page, leaf)
        page_digest = digest(data)
        pending[keys.page(self.repo, page_digest.hex())] = data
        self.cache.put(page_digest, page)
        return page_digest
