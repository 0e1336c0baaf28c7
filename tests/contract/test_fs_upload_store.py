"""The UploadStore port's behaviour, run against FsUploadStore and the in-memory fake (SPEC §5):
server-generated names, size and SHA-256, limit enforced while reading, nothing kept on failure, and no
name the store did not generate accepted. File-system specifics (sharding, temp files) are FsUploadStore's."""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.fake_uploads import InMemoryUploadStore
from tow_adapters.fs_upload_store import FsUploadStore
from tow_core.errors import InvalidInput, NotFound, PayloadTooLarge


@pytest.fixture(params=["fs", "memory"])
def store(request, tmp_path):
    return FsUploadStore(tmp_path / "root") if request.param == "fs" else InMemoryUploadStore()


def all_files(store) -> list[str]:
    if isinstance(store, InMemoryUploadStore):
        return sorted(store.files)
    return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())


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
