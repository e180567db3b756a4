"""The GCS and S3 backends (both S3 clients) against the conformance kit, on the emulators.

Also checks what the kit cannot: a conditional write whose response is lost and which is
sent again reports its own success, not a conflict; real conflicts still report False.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from diced.backends import ObjectStore, open_backend
from diced.backends._gcs import GCSObjectStore
from diced.backends._gcs_obstore import GCSObstoreObjectStore
from diced.backends._obstore import ObstoreObjectStore
from diced.backends._requests import RequestObjectStore
from diced.backends._s3 import S3ObjectStore
from diced.testing import ObjectStoreTests


class TestGCSObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, gcs_bucket: str) -> Iterator[ObjectStore]:
        store = open_backend(f"gs://{gcs_bucket}/prefix", storage_options={"client": "fsspec"})
        assert type(store) is GCSObjectStore
        yield store
        store.close()


class TestGCSObstoreObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, gcs_bucket: str) -> Iterator[ObjectStore]:
        store = open_backend(f"gs://{gcs_bucket}/prefix")
        assert isinstance(store, GCSObstoreObjectStore)
        yield store
        store.close()


class TestS3ObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, s3_bucket: str) -> Iterator[ObjectStore]:
        store = open_backend(f"s3://{s3_bucket}/prefix", storage_options={"client": "fsspec"})
        assert isinstance(store, S3ObjectStore)
        yield store
        store.close()


class TestObstoreS3ObjectStore(ObjectStoreTests):
    @pytest.fixture
    def store(self, s3_bucket: str) -> Iterator[ObjectStore]:
        store = open_backend(f"s3://{s3_bucket}/prefix")
        assert isinstance(store, ObstoreObjectStore)
        yield store
        store.close()


@pytest.fixture(params=["gcs-fsspec", "gcs-obstore", "s3-fsspec", "s3-obstore"])
def cloud_store(request: pytest.FixtureRequest) -> RequestObjectStore:
    """A fresh store on each emulator, through each client."""
    cloud, client = request.param.split("-")
    bucket = request.getfixturevalue(f"{cloud}_bucket")
    scheme = "gs" if cloud == "gcs" else "s3"
    store = open_backend(f"{scheme}://{bucket}/store", storage_options={"client": client})
    assert isinstance(store, RequestObjectStore) and store.atomic_conditional_writes
    return store


def _lose_first_response(store: RequestObjectStore, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make the store's first upload land but fail as if its response were lost."""
    store_once = store._store
    calls = [0]

    def store_then_drop_response(*args: Any, **kwargs: Any) -> None:
        calls[0] += 1
        store_once(*args, **kwargs)
        if calls[0] == 1:
            raise ConnectionResetError("connection reset before the response arrived")

    monkeypatch.setattr(store, "_store", store_then_drop_response)
    monkeypatch.setattr(store, "backoff", 0.01)
    return calls


def test_put_if_absent_retried_after_a_lost_response_reports_success(
        cloud_store: RequestObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _lose_first_response(cloud_store, monkeypatch)
    assert cloud_store.put_if_absent("claim", b"mine") is True
    assert calls[0] == 2, "the write was not sent again"
    assert cloud_store.get("claim") == b"mine"
    assert cloud_store.put_if_absent("claim", b"other") is False


def test_compare_and_swap_retried_after_a_lost_response_reports_success(
        cloud_store: RequestObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud_store.put("pointer", b"old")
    calls = _lose_first_response(cloud_store, monkeypatch)
    assert cloud_store.compare_and_swap("pointer", b"old", b"new") is True
    assert calls[0] == 2, "the write was not sent again"
    assert cloud_store.get("pointer") == b"new"
    assert cloud_store.compare_and_swap("pointer", b"old", b"newer") is False


def test_compare_and_swap_loses_to_a_write_between_read_and_swap(
        cloud_store: RequestObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    cloud_store.put("pointer", b"old")
    fetch = cloud_store._fetch_versioned

    def fetch_then_other_writer(key: str) -> tuple[bytes, str]:
        found = fetch(key)
        cloud_store.put(key, b"theirs")
        return found

    monkeypatch.setattr(cloud_store, "_fetch_versioned", fetch_then_other_writer)
    assert cloud_store.compare_and_swap("pointer", b"old", b"mine") is False
    assert cloud_store.get("pointer") == b"theirs"


def test_compare_and_swap_retries_when_the_same_bytes_were_rewritten(
        cloud_store: RequestObjectStore, monkeypatch: pytest.MonkeyPatch) -> None:
    # Another writer rewrites the expected bytes (a new generation/ETag, same content)
    # between the read and the swap: content comparison says the swap may proceed.
    cloud_store.put("pointer", b"old")
    fetch = cloud_store._fetch_versioned
    rewrites = [0]

    def fetch_then_rewrite(key: str) -> tuple[bytes, str]:
        found = fetch(key)
        if not rewrites[0]:
            rewrites[0] += 1
            cloud_store.put(key, b"old")
        return found

    monkeypatch.setattr(cloud_store, "_fetch_versioned", fetch_then_rewrite)
    assert cloud_store.compare_and_swap("pointer", b"old", b"mine") is True
    assert cloud_store.get("pointer") == b"mine"


def test_a_missing_bucket_is_a_clear_storage_error(cloud_location: str) -> None:
    from diced import StorageError

    scheme = cloud_location.split("://")[0]
    store = open_backend(f"{scheme}://no-such-bucket-here/x")
    assert store.get("k") is None
    with pytest.raises(StorageError, match="bucket does not exist"):
        store.put("k", b"v")


def test_permissionfile_is_a_service_account_key(tmp_path: Any, gcs_url: str) -> None:
    """The key file becomes gcsfs's credentials (requests would then be signed with it)."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()).decode()
    key = tmp_path / "key.json"
    key.write_text(json.dumps({
        "type": "service_account", "project_id": "lab", "private_key_id": "1",
        "private_key": pem, "client_email": "diced@lab.iam.gserviceaccount.com",
        "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token",
    }))
    store = open_backend("gs://bucket/prefix", permissionfile=str(key))
    assert isinstance(store, GCSObjectStore)
    credentials = store.fs.credentials.credentials
    assert isinstance(credentials, service_account.Credentials)
    assert credentials.service_account_email == "diced@lab.iam.gserviceaccount.com"
    anonymous = open_backend("gs://bucket/prefix", anonymous=True)
    assert anonymous.fs.credentials.method == "anon"


def test_storage_options_point_at_an_endpoint_without_the_environment(
        gcs_bucket: str, s3_bucket: str, gcs_url: str, s3_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from diced import DicedStore

    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    for location, options in ((f"gs://{gcs_bucket}/s", {"endpoint_url": gcs_url, "token": "anon"}),
                              (f"s3://{s3_bucket}/s", {"endpoint_url": s3_url})):
        with DicedStore(location, storage_options=options) as store:
            store.create_repo("r")
        with DicedStore(location, storage_options=options) as store:
            assert [name for name, _ in store.list_repos()] == ["r"]
