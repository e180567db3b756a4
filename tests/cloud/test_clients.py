"""Which client serves a bucket (obstore or fsspec), and the options each understands.

s3:// uses obstore unless ``client="fsspec"`` or an option only s3fs understands; gs:// reads
through obstore and uploads through gcsfs. Stores written through one client read through
the other, and DICED's options (``storage_options`` endpoint and keys, ``anonymous``, AWS
profiles) keep working on the emulators.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from diced import DicedStore, InvalidInputError
from diced.backends import open_backend
from diced.backends._gcs import GCSObjectStore
from diced.backends._gcs_obstore import GCSObstoreObjectStore
from diced.backends._obstore import ObstoreObjectStore
from diced.backends._s3 import S3ObjectStore


def test_s3_uses_obstore_unless_told_or_an_option_needs_s3fs(s3_bucket: str) -> None:
    location = f"s3://{s3_bucket}/store"
    assert isinstance(open_backend(location), ObstoreObjectStore)
    assert isinstance(open_backend(location, storage_options={"client": "obstore"}),
                      ObstoreObjectStore)
    assert isinstance(open_backend(location, storage_options={"client": "fsspec"}),
                      S3ObjectStore)
    s3fs_only = {"config_kwargs": {"max_pool_connections": 20}}
    assert isinstance(open_backend(location, storage_options=s3fs_only), S3ObjectStore)
    with pytest.raises(InvalidInputError, match=r"config_kwargs.*client='fsspec'"):
        open_backend(location, storage_options={**s3fs_only, "client": "obstore"})
    with pytest.raises(InvalidInputError, match="not a client"):
        open_backend(location, storage_options={"client": "boto"})


def test_gcs_reads_through_obstore_unless_told_or_an_option_needs_gcsfs(gcs_bucket: str) -> None:
    location = f"gs://{gcs_bucket}/store"
    assert isinstance(open_backend(location), GCSObstoreObjectStore)
    assert type(open_backend(location, storage_options={"client": "fsspec"})) is GCSObjectStore
    assert type(open_backend(location, storage_options={"requester_pays": True})) \
        is GCSObjectStore
    with pytest.raises(InvalidInputError, match="requester_pays"):
        open_backend(location, storage_options={"requester_pays": True, "client": "obstore"})


@pytest.mark.parametrize("cloud", ["gcs", "s3"])
def test_a_store_written_by_one_client_reads_through_the_other(
        cloud: str, request: pytest.FixtureRequest) -> None:
    scheme = "gs" if cloud == "gcs" else "s3"
    location = f"{scheme}://{request.getfixturevalue(f'{cloud}_bucket')}/store"
    volume = np.arange(96 * 80 * 70, dtype=np.uint16).reshape(96, 80, 70)
    for writer, reader in (("fsspec", "obstore"), ("obstore", "fsspec")):
        with DicedStore(location, storage_options={"client": writer}) as store:
            repo = store.create_repo(f"by-{writer}")
            repo.create_array("a", volume.dtype, shape=volume.shape, chunks=(32, 32, 32))[...] \
                = volume
            repo.upload_filedata("notes/read me.txt", b"hello")
            locked = repo.get_current_version()
            repo.lock_node("v1")
        with DicedStore(location, storage_options={"client": reader}) as store:
            repo = store.open_repo(uuid=locked, readonly=True)
            assert np.array_equal(repo.get_array("a")[...], volume)
            assert repo.download_filedata("notes/read me.txt") == b"hello"


def test_s3_endpoint_and_keys_in_storage_options_without_the_environment(
        s3_bucket: str, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    options = {"endpoint_url": s3_url, "key": "testing", "secret": "testing"}
    with DicedStore(f"s3://{s3_bucket}/s", storage_options=options) as store:
        assert isinstance(store.backend, ObstoreObjectStore)
        store.create_repo("r")
    with DicedStore(f"s3://{s3_bucket}/s", storage_options=options) as store:
        assert [name for name, _ in store.list_repos()] == ["r"]


def test_an_aws_profile_signs_obstore_requests(
        s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """obstore cannot read ~/.aws; botocore's chain supplies the profile's keys."""
    credentials = tmp_path / "credentials"
    credentials.write_text("[lab]\naws_access_key_id = testing\n"
                           "aws_secret_access_key = testing\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    backend = open_backend(f"s3://{s3_bucket}/p", storage_options={"profile": "lab"})
    assert isinstance(backend, ObstoreObjectStore)
    provider = backend.reader.credential_provider
    assert provider is not None and provider()["access_key_id"] == "testing"
    backend.put("k", b"v")
    assert backend.get("k") == b"v"


def _make_public(bucket: str, s3_url: str) -> None:
    """Let anyone read and list ``bucket`` on moto, as a public dataset's bucket does."""
    import boto3

    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"]}]}
    boto3.client("s3", endpoint_url=s3_url).put_bucket_policy(Bucket=bucket,
                                                             Policy=json.dumps(policy))


@pytest.mark.parametrize("cloud", ["gcs", "s3"])
def test_anonymous_reads_a_public_bucket(cloud: str, request: pytest.FixtureRequest) -> None:
    """Unsigned requests read a store in a public bucket (fake-gcs-server serves anyone)."""
    scheme = "gs" if cloud == "gcs" else "s3"
    bucket = request.getfixturevalue(f"{cloud}_bucket")
    if cloud == "s3":
        _make_public(bucket, request.getfixturevalue("s3_url"))
    location = f"{scheme}://{bucket}/public"
    with DicedStore(location) as store:
        store.create_repo("open").create_array("a", np.uint8, shape=(10,))[...] = 7
    with DicedStore(location, anonymous=True) as store:
        assert isinstance(store.backend, (ObstoreObjectStore, GCSObstoreObjectStore))
        assert (store.open_repo("open", readonly=True).get_array("a")[...] == 7).all()
