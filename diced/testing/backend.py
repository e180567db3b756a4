"""Conformance tests for the :class:`~diced.backends.ObjectStore` contract.

Every backend's test module subclasses :class:`ObjectStoreTests` and provides one pytest
fixture, ``store``, returning a fresh, empty store::

    class TestMemoryObjectStore(ObjectStoreTests):
        @pytest.fixture
        def store(self) -> Iterator[ObjectStore]:
            ...

The tests branch on the store's capability attributes: write tests skip on a store that
is not ``writable``, and the threads racing conditional writes skip where they are not
``atomic_conditional_writes``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pytest

from diced.backends import ObjectStore
from diced.errors import InvalidInputError

__all__ = ["ObjectStoreTests", "increment_counter", "increment_counter_by_token"]

_T = TypeVar("_T")

INVALID_KEYS = [
    "",
    "/absolute",
    "empty//segment",
    "trailing/",
    "..",
    "../up",
    "a/../b",
    ".",
    "./a",
    "a/.",
    "back\\slash",
    "nul\0byte",
]
#: Keys a backend must store verbatim: percent escapes are never decoded, and characters
#: that are special in URLs, globs or shells are plain characters.
UNUSUAL_KEYS = [
    "enc/a%2Fb.json",
    "enc/100%25",
    "enc/%",
    "enc/with space",
    "enc/ünïcødé",
    "enc/a+b=c~d,e;f@g",
    "enc/colon:and::double",
    "enc/[glob]*?",
    "enc/#hash&amp",
]
PAYLOAD = bytes(range(256)) * 4


def _race(workers: int, task: Callable[[int], _T]) -> list[_T]:
    """Run ``task(i)`` for ``i`` in ``range(workers)`` on threads released at once."""
    barrier = threading.Barrier(workers)

    def run(index: int) -> _T:
        barrier.wait(timeout=30)
        return task(index)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run, index) for index in range(workers)]
        return [future.result(timeout=120) for future in futures]


def increment_counter(store: ObjectStore, key: str) -> int:
    """Add one to the decimal counter at ``key`` with a read + compare-and-swap retry loop.

    Returns the number of attempts that lost a race; the counter must already exist.
    """
    lost = 0
    while True:
        current = store.get(key)
        assert current is not None, f"counter {key!r} vanished"
        if store.compare_and_swap(key, current, b"%d" % (int(current) + 1)):
            return lost
        lost += 1


def increment_counter_by_token(store: ObjectStore, key: str) -> int:
    """Like :func:`increment_counter`, with version tokens: no read inside the swap."""
    lost = 0
    while True:
        current = store.get_versioned(key)
        assert current is not None, f"counter {key!r} vanished"
        if store.put_if_match(key, b"%d" % (int(current.data) + 1), current.token):
            return lost
        lost += 1


class ObjectStoreTests:
    """The behaviour every :class:`~diced.backends.ObjectStore` must show.

    Subclasses override the ``store`` fixture to return a fresh, empty store (and clean it
    up afterwards if needed). The class name does not start with ``Test``, so pytest only
    collects the subclasses.
    """

    @pytest.fixture
    def store(self) -> ObjectStore:
        raise NotImplementedError(
            "subclasses of ObjectStoreTests provide a `store` fixture returning a fresh, "
            "empty ObjectStore"
        )

    @pytest.fixture
    def writable_store(self, store: ObjectStore) -> ObjectStore:
        """The store, or a skip when the backend declares it takes no writes."""
        if not store.writable:
            pytest.skip(f"{type(store).__name__} is read-only")
        return store

    @pytest.fixture
    def atomic_store(self, writable_store: ObjectStore) -> ObjectStore:
        """The store, or a skip when its conditional writes are check-then-write."""
        if not writable_store.atomic_conditional_writes:
            pytest.skip(f"{type(writable_store).__name__} has no atomic conditional writes")
        return writable_store

    # -- reads of missing keys ---------------------------------------------------------------

    def test_fresh_store_is_empty(self, store: ObjectStore) -> None:
        assert list(store.list_prefix("")) == []

    def test_get_missing_key_returns_none(self, store: ObjectStore) -> None:
        assert store.get("no/such/key") is None

    def test_get_range_missing_key_returns_none(self, store: ObjectStore) -> None:
        assert store.get_range("no/such/key", 0, 10) is None

    def test_list_prefix_matching_nothing_is_empty(self, store: ObjectStore) -> None:
        assert list(store.list_prefix("no/such/")) == []

    # -- put and get -------------------------------------------------------------------------

    def test_get_many_returns_each_object_in_order(self, writable_store: ObjectStore) -> None:
        keys = [f"many/{i:03d}" for i in range(40)]
        for i, key in enumerate(keys[::2]):
            writable_store.put(key, b"v%d" % i)
        asked = [*keys, "many/000", "no/such/key"]
        got = writable_store.get_many(asked)
        assert got == [writable_store.get(key) for key in asked]
        assert got[0] == b"v0" and got[1] is None and got[-1] is None
        assert all(data is None or type(data) is bytes for data in got)
        assert writable_store.get_many([]) == []

    def test_put_then_get_returns_bytes(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", PAYLOAD)
        got = writable_store.get("k")
        assert type(got) is bytes
        assert got == PAYLOAD

    def test_put_replaces(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"first version, longer")
        writable_store.put("k", b"second")
        assert writable_store.get("k") == b"second"
        assert list(writable_store.list_prefix("")) == ["k"]

    def test_empty_object_is_not_missing(self, writable_store: ObjectStore) -> None:
        writable_store.put("empty", b"")
        assert writable_store.get("empty") == b""
        assert writable_store.get_range("empty", 0, 10) == b""
        assert list(writable_store.list_prefix("emp")) == ["empty"]
        assert writable_store.put_if_absent("empty", b"x") is False
        assert writable_store.compare_and_swap("empty", b"", b"now full") is True
        assert writable_store.get("empty") == b"now full"
        assert writable_store.compare_and_swap("empty", b"now full", b"") is True
        assert writable_store.get("empty") == b""

    def test_large_object_round_trip(self, writable_store: ObjectStore) -> None:
        data = PAYLOAD * 3000
        writable_store.put("big", data)
        assert writable_store.get("big") == data
        assert writable_store.get_range("big", 500_000, 1000) == data[500_000:501_000]

    # -- ranged reads ------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("start", "length", "expected"),
        [
            (0, 4, b"0123"),
            (3, 3, b"345"),
            (0, 10, b"0123456789"),
            (8, 10, b"89"),
            (9, 1, b"9"),
            (5, 0, b""),
            (10, 1, b""),
            (25, 5, b""),
        ],
    )
    def test_get_range(
        self, writable_store: ObjectStore, start: int, length: int, expected: bytes
    ) -> None:
        writable_store.put("digits", b"0123456789")
        got = writable_store.get_range("digits", start, length)
        assert type(got) is bytes
        assert got == expected

    # -- put_if_absent -----------------------------------------------------------------------

    def test_put_if_absent_creates_once(self, writable_store: ObjectStore) -> None:
        assert writable_store.put_if_absent("k", b"winner") is True
        assert writable_store.put_if_absent("k", b"loser") is False
        assert writable_store.get("k") == b"winner"

    def test_put_if_absent_after_delete_creates_again(self, writable_store: ObjectStore) -> None:
        assert writable_store.put_if_absent("k", b"one") is True
        writable_store.delete("k")
        assert writable_store.put_if_absent("k", b"two") is True
        assert writable_store.get("k") == b"two"

    def test_put_if_absent_refuses_after_put(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"plain put")
        assert writable_store.put_if_absent("k", b"other") is False
        assert writable_store.get("k") == b"plain put"

    # -- compare_and_swap --------------------------------------------------------------------

    def test_compare_and_swap_succeeds_on_match(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"old")
        assert writable_store.compare_and_swap("k", b"old", b"new") is True
        assert writable_store.get("k") == b"new"

    def test_compare_and_swap_fails_on_mismatch(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"actual")
        assert writable_store.compare_and_swap("k", b"stale", b"new") is False
        assert writable_store.get("k") == b"actual"

    def test_compare_and_swap_fails_on_prefix_of_content(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"abcdef")
        assert writable_store.compare_and_swap("k", b"abc", b"new") is False
        assert writable_store.compare_and_swap("k", b"abcdefg", b"new") is False
        assert writable_store.get("k") == b"abcdef"

    def test_compare_and_swap_fails_on_missing_key(self, writable_store: ObjectStore) -> None:
        assert writable_store.compare_and_swap("k", b"", b"new") is False
        assert writable_store.compare_and_swap("k", b"anything", b"new") is False
        assert writable_store.get("k") is None
        assert list(writable_store.list_prefix("")) == []

    def test_compare_and_swap_to_same_content(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"same")
        assert writable_store.compare_and_swap("k", b"same", b"same") is True
        assert writable_store.get("k") == b"same"

    def test_compare_and_swap_chain(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"0")
        for i in range(5):
            assert writable_store.compare_and_swap("k", b"%d" % i, b"%d" % (i + 1)) is True
        assert writable_store.get("k") == b"5"

    # -- content-addressed objects -------------------------------------------------------------

    def test_put_immutable_stores_and_is_idempotent(self, writable_store: ObjectStore) -> None:
        writable_store.put_immutable("blob/ab", PAYLOAD)
        writable_store.put_immutable("blob/ab", PAYLOAD)
        assert writable_store.get("blob/ab") == PAYLOAD
        assert list(writable_store.list_prefix("blob/")) == ["blob/ab"]

    def test_put_many_immutable_stores_each(self, writable_store: ObjectStore) -> None:
        items = [(f"many-blobs/{i:03d}", b"%d" % i * (i + 1)) for i in range(40)]
        writable_store.put_many_immutable([*items, items[0]])  # a repeated key is idempotent
        assert writable_store.get_many([key for key, _ in items]) == [d for _, d in items]
        writable_store.put_many_immutable([])
        with pytest.raises(InvalidInputError):
            writable_store.put_many_immutable([("ok/key", b"x"), ("/bad//key", b"x")])

    def test_concurrent_put_immutable_stores_whole_bytes(self, atomic_store: ObjectStore) -> None:
        data = PAYLOAD * 256
        _race(8, lambda i: atomic_store.put_immutable("blob/same", data))
        assert atomic_store.get("blob/same") == data

    # -- version tokens ----------------------------------------------------------------------

    def test_get_versioned_missing_key_returns_none(self, store: ObjectStore) -> None:
        assert store.get_versioned("missing") is None

    def test_get_versioned_returns_bytes_and_token(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"one")
        first = writable_store.get_versioned("k")
        assert first is not None and first.data == b"one" and first.token
        writable_store.put("k", b"two")
        second = writable_store.get_versioned("k")
        assert second is not None and second.data == b"two" and second.token != first.token

    def test_put_if_match_succeeds_on_current_token(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"old")
        seen = writable_store.get_versioned("k")
        assert seen is not None
        assert writable_store.put_if_match("k", b"new", seen.token) is True
        assert writable_store.get("k") == b"new"

    def test_put_if_match_fails_on_stale_token(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"old")
        seen = writable_store.get_versioned("k")
        assert seen is not None
        writable_store.put("k", b"changed")
        assert writable_store.put_if_match("k", b"mine", seen.token) is False
        assert writable_store.get("k") == b"changed"

    def test_put_if_match_fails_on_deleted_object(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"old")
        seen = writable_store.get_versioned("k")
        assert seen is not None
        writable_store.delete("k")
        assert writable_store.put_if_match("k", b"mine", seen.token) is False
        assert writable_store.get("k") is None

    def test_put_if_match_none_means_absent(self, writable_store: ObjectStore) -> None:
        assert writable_store.put_if_match("k", b"first", None) is True
        assert writable_store.put_if_match("k", b"second", None) is False
        assert writable_store.get("k") == b"first"

    def test_concurrent_put_if_match_increments(self, atomic_store: ObjectStore) -> None:
        threads, increments = 8, 30
        atomic_store.put("counter", b"0")

        def add(_: int) -> None:
            for _ in range(increments):
                increment_counter_by_token(atomic_store, "counter")

        _race(threads, add)
        assert atomic_store.get("counter") == b"%d" % (threads * increments)

    # -- delete ------------------------------------------------------------------------------

    def test_delete(self, writable_store: ObjectStore) -> None:
        writable_store.put("k", b"v")
        writable_store.put("kept", b"w")
        writable_store.delete("k")
        assert writable_store.get("k") is None
        assert writable_store.get_range("k", 0, 1) is None
        assert list(writable_store.list_prefix("")) == ["kept"]

    def test_delete_missing_key_is_not_an_error(self, writable_store: ObjectStore) -> None:
        writable_store.delete("never/existed")
        writable_store.put("k", b"v")
        writable_store.delete("k")
        writable_store.delete("k")
        assert writable_store.get("k") is None

    # -- list_prefix and key shapes ----------------------------------------------------------

    def test_list_info_reports_sizes_and_times(self, writable_store: ObjectStore) -> None:
        before = time.time()
        writable_store.put("sized/a", b"")
        writable_store.put("sized/b", b"x" * 1000)
        writable_store.put("other", b"y")
        infos = {i.key: i for i in writable_store.list_info("sized/")}
        assert sorted(infos) == ["sized/a", "sized/b"]
        assert (infos["sized/a"].size, infos["sized/b"].size) == (0, 1000)
        for info in infos.values():
            # The backend's clock (a server's, for a bucket) and ours roughly agree.
            assert before - 120 < info.modified < time.time() + 120
        assert [i.key for i in writable_store.list_info("nothing/")] == []

    def test_rewriting_an_object_refreshes_its_time(self, writable_store: ObjectStore) -> None:
        # The garbage collector's grace period restarts when an object is written again
        # with the same bytes (a trash copy made anew, a record rewritten unchanged).
        writable_store.put("aged/a", b"same")
        writable_store.put("aged/b", b"same")
        first = {i.key: i.modified for i in writable_store.list_info("aged/")}
        time.sleep(1.1)  # bucket listings give times to the second
        writable_store.put("aged/a", b"same")
        assert writable_store.compare_and_swap("aged/b", b"same", b"same")
        later = {i.key: i.modified for i in writable_store.list_info("aged/")}
        assert later["aged/a"] > first["aged/a"] and later["aged/b"] > first["aged/b"]

    def test_list_prefix_is_a_plain_string_prefix(self, writable_store: ObjectStore) -> None:
        for key in ["names/foo.json", "names/bar", "namesake", "other/foo.json"]:
            writable_store.put(key, b"x")

        def listed(prefix: str) -> list[str]:
            return sorted(writable_store.list_prefix(prefix))

        assert listed("names/fo") == ["names/foo.json"]
        assert listed("names/foo.json") == ["names/foo.json"]
        assert listed("names/foo.json/") == []
        assert listed("names/") == ["names/bar", "names/foo.json"]
        assert listed("names") == ["names/bar", "names/foo.json", "namesake"]
        assert listed("n") == ["names/bar", "names/foo.json", "namesake"]
        assert listed("") == ["names/bar", "names/foo.json", "namesake", "other/foo.json"]
        assert listed("names/z") == []
        assert listed("zzz") == []

    def test_nested_keys(self, writable_store: ObjectStore) -> None:
        keys = ["a/b/c/d", "a/b/e", "a/f", "a/b/c/g/h/i/j"]
        for key in keys:
            writable_store.put(key, key.encode())
        for key in keys:
            assert writable_store.get(key) == key.encode()
        assert sorted(writable_store.list_prefix("a/b/")) == ["a/b/c/d", "a/b/c/g/h/i/j", "a/b/e"]
        assert sorted(writable_store.list_prefix("a/b/c")) == ["a/b/c/d", "a/b/c/g/h/i/j"]
        assert sorted(writable_store.list_prefix("a/")) == sorted(keys)

    def test_intermediate_path_is_not_an_object(self, writable_store: ObjectStore) -> None:
        writable_store.put("a/b/c", b"leaf")
        assert writable_store.get("a/b") is None
        assert writable_store.get_range("a/b", 0, 1) is None
        writable_store.delete("a/b")
        assert writable_store.get("a/b/c") == b"leaf"
        assert writable_store.compare_and_swap("a/b", b"", b"x") is False

    def test_deleting_last_nested_key_empties_prefix(self, writable_store: ObjectStore) -> None:
        writable_store.put("deep/er/key", b"v")
        writable_store.delete("deep/er/key")
        assert list(writable_store.list_prefix("deep")) == []
        assert list(writable_store.list_prefix("")) == []

    def test_unusual_keys_are_stored_verbatim(self, writable_store: ObjectStore) -> None:
        for key in UNUSUAL_KEYS:
            writable_store.put(key, key.encode())
        for key in UNUSUAL_KEYS:
            assert writable_store.get(key) == key.encode(), key
            assert writable_store.get_range(key, 0, 3) == key.encode()[:3], key
        assert sorted(writable_store.list_prefix("enc/")) == sorted(UNUSUAL_KEYS)
        assert list(writable_store.list_prefix("enc/a%2F")) == ["enc/a%2Fb.json"]
        assert writable_store.get("enc/a/b.json") is None
        assert writable_store.get("enc/100%") is None
        assert writable_store.put_if_absent("enc/100%25", b"x") is False
        assert writable_store.compare_and_swap("enc/%", b"enc/%", b"swapped") is True
        assert writable_store.get("enc/%") == b"swapped"
        for key in UNUSUAL_KEYS:
            writable_store.delete(key)
        assert list(writable_store.list_prefix("")) == []

    @pytest.mark.parametrize("key", INVALID_KEYS)
    def test_invalid_keys_are_rejected(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidInputError):
            store.get(key)
        with pytest.raises(InvalidInputError):
            store.get_range(key, 0, 1)
        if store.writable:
            with pytest.raises(InvalidInputError):
                store.put(key, b"x")
            with pytest.raises(InvalidInputError):
                store.put_if_absent(key, b"x")
            with pytest.raises(InvalidInputError):
                store.compare_and_swap(key, b"", b"x")
            with pytest.raises(InvalidInputError):
                store.delete(key)
        assert list(store.list_prefix("")) == []

    # -- concurrency between threads ---------------------------------------------------------

    def test_concurrent_compare_and_swap_increments(self, atomic_store: ObjectStore) -> None:
        threads, increments = 8, 50
        atomic_store.put("counter", b"0")

        def add(_: int) -> None:
            for _ in range(increments):
                increment_counter(atomic_store, "counter")

        _race(threads, add)
        assert atomic_store.get("counter") == b"%d" % (threads * increments)

    def test_concurrent_put_if_absent_has_one_winner(self, atomic_store: ObjectStore) -> None:
        results = _race(8, lambda i: atomic_store.put_if_absent("lock", b"writer %d" % i))
        assert results.count(True) == 1
        assert atomic_store.get("lock") == b"writer %d" % results.index(True)

    def test_concurrent_reads_never_see_a_torn_object(self, writable_store: ObjectStore) -> None:
        versions = (PAYLOAD * 1024, PAYLOAD[::-1] * 1024)
        writable_store.put("obj", versions[0])
        writing = threading.Event()
        writing.set()

        def rewrite() -> int:
            try:
                for i in range(1, 21):
                    writable_store.put("obj", versions[i % 2])
            finally:
                writing.clear()
            return 0

        def count_torn_reads() -> int:
            torn = 0
            while writing.is_set():
                torn += writable_store.get("obj") not in versions
            return torn

        _, torn_reads = _race(2, lambda i: count_torn_reads() if i else rewrite())
        assert torn_reads == 0
