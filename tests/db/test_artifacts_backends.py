"""Both artifact backends behave alike: the local folder and an S3 bucket on a real S3-compatible server (SeaweedFS,
started by ``make test``; these S3 cases skip with the reason when it is absent). Nothing is mocked."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import tracemalloc
import urllib.request

import boto3
import pytest

from db.artifacts import (ARTIFACTS_ENV, CHUNK, LINKS_ENV, ArtifactError, ArtifactStorageUnavailable, ArtifactStore,
                          S3ArtifactStore, open_artifacts)

PREFIX = "lab/artifacts"


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return open_artifacts(tmp_path / "artifacts")
    bucket = request.getfixturevalue("s3_bucket")
    return open_artifacts(f"s3://{bucket}/{PREFIX}")


def _raw_client():
    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL_S3"])


def _overwrite(store, key: str, data: bytes) -> None:
    """Damage a stored artifact behind the store's back (a bad disk, someone writing to the bucket)."""
    if isinstance(store, ArtifactStore):
        store.path(key).write_bytes(data)
    else:
        _raw_client().put_object(Bucket=store.bucket, Key=store.object_name(key), Body=data)


def test_round_trip_under_the_sha256_key(store):
    data = os.urandom(3 * CHUNK + 123)  # several streaming chunks
    key = store.put(data)
    assert key == hashlib.sha256(data).hexdigest()
    assert store.exists(key) and store.size(key) == len(data)
    assert store.get(key, verify=True) == data
    with store.open(key) as handle:
        first = handle.read(1000)
        assert first == data[:1000] and first + handle.read() == data
    assert b"".join(store.iter_chunks(key, 4096)) == data
    with store.open_file(key) as handle:  # seekable, read whole once (what a download button gets)
        handle.seek(10)
        assert handle.read() == data[10:]
    assert store.hash_matches(key)
    assert list(store.keys()) == [key]
    assert store.delete(key) and not store.exists(key) and not store.delete(key)
    assert list(store.keys()) == []


def test_put_file_streams_a_path_or_an_open_file(store, tmp_path):
    data = os.urandom(16 * CHUNK + 5)
    path = tmp_path / "result.png"
    path.write_bytes(data)
    store.exists("0" * 64)  # (an S3 store makes its client on first use)
    tracemalloc.start()
    try:
        key = store.put_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < len(data) / 4, f"storing a {len(data) / 1e6:.0f} MB file held {peak / 1e6:.1f} MB"
    assert key == hashlib.sha256(data).hexdigest() and store.get(key) == data
    handle = io.BytesIO(b"header" + data[:100])
    handle.seek(6)  # stores the rest of the file from where it stands
    part = store.put_file(handle)
    assert store.get(part, verify=True) == data[:100]


def test_storing_the_same_bytes_again_writes_nothing(store):
    key = store.put(b"same bytes")
    if isinstance(store, ArtifactStore):
        before = store.path(key).stat().st_mtime_ns
        assert store.put(b"same bytes") == key
        assert store.path(key).stat().st_mtime_ns == before
        return
    puts = []
    store.client.meta.events.register("before-call.s3.PutObject", lambda **kwargs: puts.append(1))
    try:
        assert store.put(b"same bytes") == key and store.put_file(io.BytesIO(b"same bytes")) == key
        assert puts == []  # a HEAD found it: no upload
        store.put(b"other bytes")
        assert puts == [1]  # (new bytes are uploaded, and counted)
    finally:
        store.client.meta.events.unregister("before-call.s3.PutObject")


def test_bytes_that_change_while_stored_are_refused_and_nothing_is_left(store):
    class Shifty(io.BytesIO):
        """Hashes as one thing, then reads as another (a file rewritten between the hash and the upload)."""

        def seek(self, *args):
            with self.getbuffer() as view:
                view[0] = ord("X")
            return super().seek(*args)

    original = b"A" * 5000
    key = hashlib.sha256(original).hexdigest()
    with pytest.raises(ArtifactError):
        store.put_file(Shifty(original))
    assert not store.exists(key)


def test_missing_and_corrupt_artifacts_raise_clear_errors(store):
    missing = "0" * 64
    assert not store.exists(missing) and not store.delete(missing)
    for call in (store.get, store.open, store.size, store.hash_matches):
        with pytest.raises(ArtifactError, match="missing"):
            call(missing)
    key = store.put(b"original bytes")
    _overwrite(store, key, b"tampered bytes")
    assert store.get(key) == b"tampered bytes"  # without verify: a plain read
    with pytest.raises(ArtifactError, match="corrupt"):
        store.get(key, verify=True)
    assert not store.hash_matches(key)


@pytest.mark.parametrize("key", ["../../etc/passwd", "/etc/passwd", "ab/../../cd", "", "A" * 64, "a" * 63,
                                 "g" * 64, "a" * 62 + "/.", None, 123])
def test_malformed_keys_are_refused_before_any_request(store, key):
    for call in (store.get, store.exists, store.open, store.size, store.delete, store.link):
        with pytest.raises(ArtifactError, match="not an artifact key"):
            call(key)


def test_listing_skips_what_is_not_an_artifact(store):
    key = store.put(b"listed")
    if isinstance(store, ArtifactStore):
        (store.root / key[:2] / f".{key[2:10]}.tmp").write_bytes(b"a write in progress")
        (store.root / "README").write_text("not an artifact")
    else:
        client = _raw_client()
        client.put_object(Bucket=store.bucket, Key=f"{PREFIX}/README", Body=b"not an artifact")
        client.put_object(Bucket=store.bucket, Key=f"elsewhere/{key[:2]}/{key[2:]}", Body=b"another prefix")
    assert list(store.keys()) == [key]


def test_the_setting_chooses_the_backend(data_dir, monkeypatch):
    monkeypatch.delenv(ARTIFACTS_ENV, raising=False)
    assert isinstance(open_artifacts(), ArtifactStore) and open_artifacts().root == data_dir / "artifacts"
    monkeypatch.setenv(ARTIFACTS_ENV, str(data_dir / "elsewhere"))
    assert open_artifacts().root == data_dir / "elsewhere"
    monkeypatch.setenv(ARTIFACTS_ENV, "s3://my-bucket/some/prefix/")
    s3 = open_artifacts()
    assert isinstance(s3, S3ArtifactStore) and (s3.bucket, s3.prefix) == ("my-bucket", "some/prefix")
    assert s3.object_name("ab" + "c" * 62) == "some/prefix/ab/" + "c" * 62
    assert open_artifacts() is s3  # one client per process and setting
    for bad in ("http://example.com/x", "s3:///no-bucket", "s3://bucket/p?x=1"):
        with pytest.raises(ArtifactError):
            open_artifacts(bad)


def test_download_links_come_from_the_bucket_only(store, monkeypatch):
    data = b"\x89PNG not really" * 100
    key = store.put(data)
    link = store.link(key, "jiep_1_reflectance.png", "image/png")
    if isinstance(store, ArtifactStore):
        assert link is None  # the dashboard serves local files itself
        return
    with urllib.request.urlopen(link, timeout=10) as response:  # no credentials: the signature is the permission
        assert response.read() == data
        assert 'filename="jiep_1_reflectance.png"' in response.headers["Content-Disposition"]
        assert response.headers["Content-Type"] == "image/png"
    assert S3ArtifactStore(store.bucket, PREFIX, links="off").link(key) is None


def test_storage_failures_are_infrastructure_errors_with_the_reason(s3_bucket, monkeypatch):
    key = open_artifacts(f"s3://{s3_bucket}/p").put(b"x")
    missing = open_artifacts("s3://no-such-bucket-here/p")
    with pytest.raises(ArtifactStorageUnavailable, match="does not exist"):
        missing.check()
    with pytest.raises(ArtifactStorageUnavailable, match="does not exist"):
        missing.put(b"x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    refused = open_artifacts(f"s3://{s3_bucket}/p")
    with pytest.raises(ArtifactStorageUnavailable, match="access refused") as caught:
        refused.get(key)
    assert isinstance(caught.value, OSError)  # a worker retries the job instead of failing it
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    with pytest.raises(ArtifactStorageUnavailable, match="failed"):
        open_artifacts(f"s3://{s3_bucket}/p").exists(key)


def test_a_store_sent_to_another_process_still_works(store):
    """Ray hands the command's store to its workers by pickling it: the copy reaches the same artifacts (an S3 copy
    builds its own client there from the process's credentials)."""
    import pickle

    key = store.put(b"sent across")
    copy = pickle.loads(pickle.dumps(store))
    assert copy.get(key) == b"sent across" and copy.put(b"back") == store.put(b"back")
