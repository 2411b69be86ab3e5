"""Content-addressed artifact files: keys, atomic writes, idempotence, refusal of unsafe keys."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from db.artifacts import ArtifactError, ArtifactStore


def test_put_stores_bytes_under_their_sha256_and_reads_them_back(tmp_path):
    store = ArtifactStore(tmp_path)
    data = b"\x89PNG fake but fine" * 100
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.path(key) == tmp_path / key[:2] / key[2:]
    assert store.get(key, verify=True) == data
    assert store.exists(key)


def test_put_is_idempotent_and_leaves_no_temporary_files(tmp_path):
    store = ArtifactStore(tmp_path)
    key = store.put(b"same bytes")
    first = store.path(key).stat()
    assert store.put(b"same bytes") == key
    assert store.path(key).stat().st_mtime_ns == first.st_mtime_ns  # not rewritten
    assert [p.name for p in store.path(key).parent.iterdir()] == [key[2:]]


def test_failed_write_leaves_neither_a_partial_file_nor_a_temporary_one(tmp_path, monkeypatch):
    store = ArtifactStore(tmp_path)
    data = b"x" * 10_000

    def fail(*args, **kwargs):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        store.put(data)
    key = hashlib.sha256(data).hexdigest()
    assert not store.exists(key)
    assert list(store.path(key).parent.iterdir()) == []


def test_concurrent_writers_of_the_same_bytes_produce_one_intact_file(tmp_path):
    store = ArtifactStore(tmp_path)
    data = os.urandom(200_000)
    keys, errors = [], []

    def write():
        try:
            keys.append(store.put(data))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(set(keys)) == 1
    assert store.get(keys[0], verify=True) == data
    assert [p.name for p in store.path(keys[0]).parent.iterdir()] == [keys[0][2:]]


@pytest.mark.parametrize("key", [
    "../../etc/passwd", "/etc/passwd", "ab/../../cd", "", "A" * 64, "a" * 63, "a" * 65, "g" * 64,
    "a" * 62 + "/.", "..", None, 123,
])
def test_malformed_or_escaping_keys_are_refused_before_touching_files(tmp_path, key):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="not an artifact key"):
        store.get(key)
    with pytest.raises(ArtifactError):
        store.path(key)


def test_missing_and_corrupt_artifacts_raise_clear_errors(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match="missing"):
        store.get("0" * 64)
    key = store.put(b"original")
    store.path(key).write_bytes(b"tampered")
    assert store.get(key) == b"tampered"  # without verify: plain read
    with pytest.raises(ArtifactError, match="corrupt"):
        store.get(key, verify=True)


def test_default_root_is_the_artifacts_folder_of_the_data_folder(data_dir):
    assert ArtifactStore().root == data_dir / "artifacts"
