"""The store level: format header, and the repos of a store with their unique names."""

from __future__ import annotations

from diced.backends import ObjectStore
from diced.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from diced.versioning import keys
from diced.versioning.graph import VersionGraph, new_uuid
from diced.versioning.records import (
    RepoRecord,
    check_store_header,
    now,
    parse_uuid,
    store_header,
)

__all__ = ["RepoCatalog", "validate_repo_name"]


def validate_repo_name(name: str) -> str:
    """Return ``name`` if it can name a repo, else raise :class:`InvalidInputError`."""
    if not isinstance(name, str) or not name or len(name) > 200 or not name.isprintable():
        raise InvalidInputError(f"invalid repo name {name!r}: use 1-200 printable characters")
    return name


class RepoCatalog:
    """Creates, finds and deletes the repos of one store.

    Opening checks (or, for an empty location, writes) the format header ``diced.json``.

    Raises
    ------
    FormatVersionError
        The store was written by a newer diced.
    InvalidInputError
        The location holds other data but no diced header.
    """

    def __init__(self, backend: ObjectStore, location: str) -> None:
        self.backend = backend
        header = backend.get(keys.STORE_HEADER)
        if header is None:
            if next(iter(backend.list_prefix("")), None) is not None:
                raise InvalidInputError(
                    f"{location!r} is not empty and is not a diced store; choose an empty or "
                    "new directory"
                )
            backend.put_if_absent(keys.STORE_HEADER, store_header())
            header = backend.get(keys.STORE_HEADER)
            assert header is not None
        self.format_version = check_store_header(header, location)

    def create(self, name: str, description: str = "") -> RepoRecord:
        """Create a repo with a root node on branch ``master``; names are unique."""
        validate_repo_name(name)
        if not isinstance(description, str):
            raise InvalidInputError(f"a repo description must be a string, not {description!r}")
        name_key = keys.repo_name(name)  # computed first: a bad name writes nothing
        repo = new_uuid()
        try:
            root = VersionGraph(self.backend, repo).create_root()
            record = RepoRecord(uuid=repo, name=name, description=description, created=now(),
                                root=root.uuid)
            self.backend.put_if_absent(keys.repo_record(repo), record.to_bytes())
            claimed = self.backend.put_if_absent(name_key, repo.encode())
        except BaseException:
            self._purge(repo)
            raise
        if not claimed:
            self._purge(repo)
            raise AlreadyExistsError(
                f"a repo named {name!r} already exists; choose another name or delete_repo it"
            )
        return record

    def list(self) -> list[RepoRecord]:
        """Every repo of the store, sorted by name."""
        records = []
        for key in self.backend.list_prefix(keys.repo_names_prefix()):
            record = self._named(key)
            if record is not None:
                records.append(record)
        return sorted(records, key=lambda r: r.name)

    def _named(self, name_key: str) -> RepoRecord | None:
        """The repo record the name claim at ``name_key`` points to (``None``: no claim)."""
        data = self.backend.get(name_key)
        if data is None:
            return None
        record_key = keys.repo_record(parse_uuid(data, "repo name claim", name_key))
        raw = self.backend.get(record_key)
        return None if raw is None else RepoRecord.from_bytes(raw, record_key)

    def by_name(self, name: str) -> RepoRecord:
        """The repo named ``name``; :class:`NotFoundError` if none."""
        record = self._named(keys.repo_name(validate_repo_name(name)))
        if record is None:
            raise NotFoundError(f"no repo named {name!r}; list_repos() shows the repos")
        return record

    def by_uuid(self, uuid: str) -> RepoRecord:
        """The repo with UUID ``uuid`` (only if it is still named)."""
        if not isinstance(uuid, str) or len(uuid) != 32:
            raise NotFoundError(f"no repo with UUID {uuid!r}")
        record_key = keys.repo_record(uuid)
        data = self.backend.get(record_key)
        record = None if data is None else RepoRecord.from_bytes(data, record_key)
        if record is None or self.backend.get(keys.repo_name(record.name)) != uuid.encode():
            raise NotFoundError(f"no repo with UUID {uuid!r}")
        return record

    def find_node(self, uuid: str) -> tuple[RepoRecord, str]:
        """The repo holding version node ``uuid`` (full UUID or unique prefix) and its full UUID.

        Raises
        ------
        NotFoundError
            No repo holds such a node.
        InvalidInputError
            The prefix matches nodes in several repos.
        """
        hits = []
        for record in self.list():
            try:
                hits.append((record, VersionGraph(self.backend, record.uuid).resolve(uuid)))
            except NotFoundError:
                continue
        if not hits:
            raise NotFoundError(f"no version node {uuid!r} in any repo of this store")
        if len(hits) > 1:
            raise InvalidInputError(f"version {uuid!r} matches nodes in several repos; give more "
                                    "digits of the UUID, or open the repo by name first")
        return hits[0]

    def delete(self, name: str) -> None:
        """Delete repo ``name`` and everything it holds (irreversible).

        Dropping the name is the commit point; a crash afterwards leaves unreferenced
        objects below ``repos/<uuid>/`` that a garbage collector may remove.
        """
        record = self.by_name(name)
        self.backend.delete(keys.repo_name(name))
        self._purge(record.uuid)

    def _purge(self, repo: str) -> None:
        for key in list(self.backend.list_prefix(keys.repo_prefix(repo))):
            self.backend.delete(key)

