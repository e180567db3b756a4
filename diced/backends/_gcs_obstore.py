"""GCS with obstore reads: gcsfs's credentials and uploads, obstore's GETs and listings.

Reads are most of a volume's requests. obstore sends them from Rust, off the GIL (see
docs/cloud.md, "Clients"); gcsfs keeps doing the uploads through GCS's JSON API, one
multipart request carrying the generation precondition, which every GCS implementation
honours (fake-gcs-server, the emulator the tests run against, refuses the XML API uploads
obstore would send). Both use the same credentials: obstore asks gcsfs for its bearer token.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from obstore.store import GCSStore

from diced.backends._gcs import GCSObjectStore
from diced.backends._obstore import ObstoreReads

__all__ = ["READ_OPTIONS", "GCSObstoreObjectStore"]

#: gcsfs options under which obstore's reads mean the same requests as gcsfs's (others, e.g.
#: ``requester_pays``, change every request: those stores read through gcsfs too).
READ_OPTIONS = frozenset({"endpoint_url", "token", "project", "access"})


class GCSObstoreObjectStore(ObstoreReads, GCSObjectStore):
    """:class:`~diced.backends._gcs.GCSObjectStore` whose reads and listings go through obstore.

    The version token is the object's generation, as gcsfs's conditional uploads expect.
    """

    token_field = "version"

    def __init__(self, fs: Any, bucket: str, prefix: str) -> None:
        super().__init__(fs, bucket, prefix)
        self.url = f"gs://{self.root}"
        config: dict[str, Any] = {"base_url": fs._location}
        if fs.credentials.credentials is None:  # anonymous: public buckets, emulators
            config["skip_signature"] = True
        if self.prefix:
            config["prefix"] = self.prefix
        provider: Any = None if config.get("skip_signature") else _GcsfsToken(fs)
        self.reader = GCSStore(
            bucket, **config, client_options={"allow_http": fs._location.startswith("http:")},
            credential_provider=provider)


class _GcsfsToken:
    """obstore credential provider: gcsfs's bearer token (refreshed by gcsfs when due)."""

    def __init__(self, fs: Any) -> None:
        self.credentials = fs.credentials

    def __call__(self) -> dict[str, Any]:
        headers: dict[str, str] = {}
        self.credentials.apply(headers)
        token = headers.get("authorization", "").removeprefix("Bearer ")
        expiry = self.credentials.credentials.expiry
        return {"token": token, "expires_at": None if expiry is None
                else expiry.replace(tzinfo=UTC)}
