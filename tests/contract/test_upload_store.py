"""The UploadStore port's behaviour, one suite run against FsUploadStore, S3UploadStore (over a real SeaweedFS,
tests/seaweedfs.py) and the in-memory fake (SPEC §5, §11): server-generated names, size and SHA-256, limit
enforced while reading, nothing kept on failure, seekable readers (what Range downloads use), quarantine, and no
name the store did not generate accepted. Backend specifics (sharding and temp files; multipart uploads, vendor
errors) follow the shared suite."""

from __future__ import annotations

import hashlib
import io
import os
import re

import pytest

from tests.fake_uploads import InMemoryUploadStore
from tests.seaweedfs import ACCESS_KEY_ID, SECRET_ACCESS_KEY, objects
from tow_adapters.fs_upload_store import FsUploadStore
from tow_adapters.s3_upload_store import MIN_PART_SIZE, S3Location, S3UploadStore, s3_client
from tow_core.errors import DependencyUnavailable, InvalidInput, NotFound, PayloadTooLarge


@pytest.fixture(params=["fs", "s3", "memory"])
def store(request, tmp_path):
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    return FsUploadStore(tmp_path / "root") if request.param == "fs" else InMemoryUploadStore()


def all_files(store) -> list[str]:
    """Everything the store holds, complete or not (for S3 also incomplete multipart uploads)."""
    if isinstance(store, InMemoryUploadStore):
        return sorted(store.files)
    if isinstance(store, S3UploadStore):
        return objects(store._client, store.bucket, store.prefix)
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


def chunked(data: bytes, size: int = 64 * 1024):
    return (data[i:i + size] for i in range(0, len(data), size))


def test_fs_layout_is_sharded_by_the_server_name(tmp_path):
    store = FsUploadStore(tmp_path / "root")
    stored = store.put([b"x"], max_bytes=1)
    assert all_files(store) == [f"{stored.storage_name[:2]}/{stored.storage_name[2:4]}/{stored.storage_name}"]


def test_put_writes_under_a_server_name_with_size_and_sha256(store):
    stored = store.put([b"hello ", b"world"], max_bytes=11)
    assert re.fullmatch(r"[0-9a-f]{32}", stored.storage_name)
    assert (stored.size_bytes, stored.sha256) == (11, hashlib.sha256(b"hello world").hexdigest())
    assert len(all_files(store)) == 1
    with store.open(stored.storage_name) as content:
        assert content.read() == b"hello world"
    assert store.exists(stored.storage_name)
    assert [e.storage_name for e in store.entries()] == [stored.storage_name]
    store.delete(stored.storage_name)
    store.delete(stored.storage_name)  # twice is fine
    assert not store.exists(stored.storage_name) and all_files(store) == []
    with pytest.raises(NotFound):
        store.open(stored.storage_name)


def test_one_byte_over_the_limit_keeps_nothing_and_stops_reading(store):
    pulled = []

    def body():
        for i in range(100):
            pulled.append(i)
            yield b"x" * 10

    with pytest.raises(PayloadTooLarge):
        store.put(body(), max_bytes=50)
    assert all_files(store) == [] and len(pulled) == 6  # refused at the chunk that crossed the limit


def test_a_failing_body_keeps_nothing(store):

    def body():
        yield b"partial"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(body(), max_bytes=100)
    assert all_files(store) == [] and list(store.entries()) == []


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "ab/cd/" + "a" * 32, "A" * 32, "a" * 31, "",
                                  "a" * 32 + "/..", ".tmp-" + "a" * 32, "%2e%2e" + "a" * 26])
def test_names_the_store_did_not_generate_are_refused_on_every_operation(store, name):
    for operation in (store.open, store.exists, store.delete, store.quarantine):
        with pytest.raises(InvalidInput):
            operation(name)


def test_a_file_larger_than_one_part_streams_in_and_reads_back_from_any_offset(store):
    data = os.urandom(2 * MIN_PART_SIZE + 12345)  # three S3 parts
    stored = store.put(chunked(data), max_bytes=len(data))
    assert (stored.size_bytes, stored.sha256) == (len(data), hashlib.sha256(data).hexdigest())
    assert len(all_files(store)) == 1
    with store.open(stored.storage_name) as content:
        assert content.seek(0, io.SEEK_END) == len(data)  # the size, as a Range answer needs it
        start = MIN_PART_SIZE - 10  # across the first part boundary
        content.seek(start)
        assert content.read(100) == data[start:start + 100]
        content.seek(5)
        assert content.read(3) == data[5:8]
        content.seek(len(data) - 4)
        assert content.read() == data[-4:] and content.read() == b""
    with store.open(stored.storage_name) as content:
        assert hashlib.sha256(content.read()).hexdigest() == stored.sha256


def test_over_the_limit_after_several_parts_keeps_nothing(store):
    pulled = []

    def body():
        for _ in range(4 * MIN_PART_SIZE // (64 * 1024)):
            pulled.append(1)
            yield b"y" * (64 * 1024)

    with pytest.raises(PayloadTooLarge):
        store.put(body(), max_bytes=2 * MIN_PART_SIZE + 1)  # S3: two parts sent before the limit is crossed
    assert all_files(store) == [] and list(store.entries()) == []
    assert len(pulled) == 2 * MIN_PART_SIZE // (64 * 1024) + 1


def test_a_body_failing_after_several_parts_keeps_nothing(store):

    def body():
        yield os.urandom(MIN_PART_SIZE + 1)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put(body(), max_bytes=10 * MIN_PART_SIZE)
    assert all_files(store) == [] and list(store.entries()) == []


def test_quarantine_moves_a_file_out_of_the_store(store):
    stored = store.put([b"orphan"], max_bytes=100)
    kept = store.put([b"kept"], max_bytes=100)
    where = store.quarantine(stored.storage_name)
    assert stored.storage_name in where
    assert not store.exists(stored.storage_name) and store.exists(kept.storage_name)
    assert [e.storage_name for e in store.entries()] == [kept.storage_name]
    with pytest.raises(NotFound):
        store.open(stored.storage_name)


def test_an_empty_file_is_a_file(store):
    stored = store.put([], max_bytes=10)
    assert (stored.size_bytes, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
    with store.open(stored.storage_name) as content:
        assert content.read() == b""


# --- S3 specifics -----------------------------------------------------------------------------------------


def test_s3_objects_live_under_the_key_prefix(s3_store, s3_prefix, seaweedfs):
    stored = s3_store.put([b"x"], max_bytes=1)
    assert objects(seaweedfs.client(), s3_store.bucket, s3_prefix) == [f"uploads/{stored.storage_name}"]


def test_s3_an_upload_killed_midway_is_a_partial_file_that_quarantine_keeps(s3_store, seaweedfs):
    """A process killed during a multipart upload leaves it incomplete: listed as partial, then completed
    under quarantine/ with the bytes that had arrived (nothing deleted), leaving no incomplete upload."""
    client, bucket, prefix = seaweedfs.client(), s3_store.bucket, s3_store.prefix
    name, first = "ab" * 16, os.urandom(MIN_PART_SIZE)
    started = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}{name}")
    client.upload_part(Bucket=bucket, Key=f"{prefix}{name}", UploadId=started["UploadId"], PartNumber=1, Body=first)
    empty = client.create_multipart_upload(Bucket=bucket, Key=f"{prefix}{'cd' * 16}")

    entries = sorted(s3_store.entries(), key=lambda e: e.storage_name)
    assert [(e.storage_name, e.partial) for e in entries] == [
        (f"{name}:{started['UploadId']}", True), (f"{'cd' * 16}:{empty['UploadId']}", True)]
    assert not s3_store.exists(name)
    where = s3_store.quarantine(entries[0].storage_name, partial=True)
    assert where.startswith(f"s3://{bucket}/{prefix}quarantine/") and where.endswith(f"{name}.partial")
    assert "aborted" in s3_store.quarantine(entries[1].storage_name, partial=True)
    [kept] = objects(client, bucket, prefix)
    assert kept == where.removeprefix(f"s3://{bucket}/{prefix}")
    assert client.get_object(Bucket=bucket, Key=prefix + kept)["Body"].read() == first
    assert list(s3_store.entries()) == []
    for bad in (name, f"{name}:", "../x:abc", f"{name}:a b"):
        with pytest.raises(InvalidInput):
            s3_store.quarantine(bad, partial=True)


def test_s3_failures_are_dependency_unavailable_not_vendor_errors(seaweedfs, s3_bucket):
    def store(bucket=s3_bucket, secret=SECRET_ACCESS_KEY, endpoint=seaweedfs.endpoint_url):
        location = S3Location(bucket, endpoint_url=endpoint)
        return S3UploadStore(s3_client(location, ACCESS_KEY_ID, secret), location)

    name = "0" * 32
    for broken in (store(secret="wrong-secret"), store(bucket="tow-no-such-bucket"),
                   store(endpoint="http://127.0.0.1:9")):  # nothing listens on the discard port
        for attempt in (lambda s: s.put([b"x"], max_bytes=10), lambda s: s.open(name), lambda s: s.exists(name),
                        lambda s: list(s.entries()), lambda s: s.delete(name)):
            with pytest.raises(DependencyUnavailable) as caught:
                attempt(broken)
            assert "S3 bucket" in str(caught.value) and caught.value.retry_after_seconds > 0
            if broken.bucket == "tow-no-such-bucket":
                assert str(caught.value).endswith("NoSuchBucket")


def test_s3_key_prefix_and_part_size_are_checked():
    for prefix in ("/abs/", "no-slash", "a//b/", "../x/"):
        with pytest.raises(InvalidInput):
            S3UploadStore(None, S3Location("b", key_prefix=prefix))
    with pytest.raises(InvalidInput):
        S3UploadStore(None, S3Location("b"), part_size=MIN_PART_SIZE - 1)
