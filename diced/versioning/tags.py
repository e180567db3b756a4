"""Tags: names given forever to locked nodes of a repo (``v1.0``, ``paper-2024``...).

A tag is one create-only object, ``repos/R/tags/<name>`` (a :class:`TagRecord`), so two
processes tagging the same name race safely (exactly one wins) and a tag never moves:
it can only be deleted, after which the name is free again. Only locked nodes can be
tagged, so what a tag names never changes either. A tag is addressed as ``tag:NAME``
wherever a version is accepted (see :meth:`VersionGraph.resolve`).
"""

from __future__ import annotations

import re

from diced.backends import ObjectStore
from diced.errors import AlreadyExistsError, InvalidInputError, NotFoundError
from diced.versioning import keys
from diced.versioning.records import NodeRecord, TagRecord, now, require_locked

__all__ = ["TAG_PREFIX", "Tags", "validate_tag_name"]

#: How a reference names a tag: ``tag:NAME``.
TAG_PREFIX = "tag:"
_TAG_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+@-]{0,199}$")


def validate_tag_name(name: str) -> str:
    """Return ``name`` if it can name a tag, else raise :class:`InvalidInputError`.

    Tag names are safe in URLs and shells alike: a letter or digit, then letters, digits
    and ``_ . + @ -``, up to 200 characters.
    """
    if not isinstance(name, str) or not _TAG_NAME.match(name):
        raise InvalidInputError(
            f"invalid tag name {name!r:.80}: use a letter or digit, then letters, digits, "
            "'_', '.', '+', '@' or '-' (up to 200 characters), such as v1.0"
        )
    return name


class Tags:
    """The tags of one repo."""

    def __init__(self, backend: ObjectStore, repo: str) -> None:
        self.backend = backend
        self.repo = repo

    def create(self, name: str, node: NodeRecord, message: str) -> TagRecord:
        """Tag locked ``node`` as ``name``; exactly one of several racing creators wins.

        Raises
        ------
        InvalidInputError
            A bad name or message, or ``node`` is open (lock it first).
        LockedError
            ``node`` has an unfinished lock (``lock_node`` again finishes it).
        AlreadyExistsError
            The name is taken (tags never move; delete the tag first to reuse its name).
        """
        validate_tag_name(name)
        if not isinstance(message, str):
            raise InvalidInputError(f"a tag message must be a string, not {message!r:.80}")
        require_locked(node, "tagging it")
        record = TagRecord(name=name, uuid=node.uuid, message=message, created=now())
        if not self.backend.put_if_absent(keys.tag_record(self.repo, name), record.to_bytes()):
            existing = self.find(name)
            where = f" (it names {existing.uuid})" if existing is not None else ""
            raise AlreadyExistsError(f"a tag named {name!r} already exists{where}; tags never "
                                     "move: choose another name, or delete_tag it first")
        return record

    def find(self, name: str) -> TagRecord | None:
        """The tag ``name``, or ``None`` if there is none."""
        key = keys.tag_record(self.repo, validate_tag_name(name))
        data = self.backend.get(key)
        return None if data is None else TagRecord.from_bytes(data, key)

    def get(self, name: str) -> TagRecord:
        """The tag ``name``; :class:`NotFoundError` if there is none."""
        record = self.find(name)
        if record is None:
            raise NotFoundError(f"no tag named {name!r} in repo {self.repo}; list_tags() "
                                "shows the tags")
        return record

    def list(self) -> list[TagRecord]:
        """Every tag of the repo, sorted by name."""
        found = []
        for key in self.backend.list_prefix(keys.tags_prefix(self.repo)):
            data = self.backend.get(key)
            if data is not None:
                found.append(TagRecord.from_bytes(data, key))
        return sorted(found, key=lambda t: t.name)

    def delete(self, name: str) -> None:
        """Delete tag ``name`` (the node it named is untouched); :class:`NotFoundError` if
        there is none."""
        self.get(name)
        self.backend.delete(keys.tag_record(self.repo, name))
