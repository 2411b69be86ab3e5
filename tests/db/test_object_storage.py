"""The store, the worker and the dashboard on an S3 bucket (a real SeaweedFS server; these skip without one):
moving a local store into a bucket with every hash checked, purge, and a worker that keeps nothing on its disk."""

from __future__ import annotations

import urllib.request
import zipfile

import boto3
import test_sharing
from db import store
from db.__main__ import main as db_main
from db.artifacts import ARTIFACTS_ENV, ArtifactStore, open_artifacts
from db.session import session_scope
from engine.worker import Worker, WorkerConfig
from test_worker import REAL_METHOD


def _raw(store_):
    return boto3.client("s3", endpoint_url=store_.client.meta.endpoint_url)


def test_copy_moves_a_local_store_into_a_bucket_and_verifies_every_hash(tmp_path, s3_bucket, capsys):
    local = ArtifactStore(tmp_path / "artifacts")
    keys = sorted(local.put(bytes([i]) * (1000 + i)) for i in range(6))
    target = f"s3://{s3_bucket}/moved"
    assert db_main(["artifacts", "copy", "--from", str(local.root), "--to", target]) == 0
    assert "6 copied, 0 already there, 6 verified" in capsys.readouterr().out
    bucket = open_artifacts(target)
    assert list(bucket.keys()) == keys
    assert all(bucket.get(key, verify=True) == local.get(key) for key in keys)

    local.put(b"one more")  # a second run uploads only what is new, and checks everything again
    assert db_main(["artifacts", "copy", "--from", str(local.root), "--to", target]) == 0
    assert "1 copied, 6 already there, 7 verified" in capsys.readouterr().out

    damaged = keys[2]
    _raw(bucket).put_object(Bucket=s3_bucket, Key=bucket.object_name(damaged), Body=b"bit rot")
    assert db_main(["artifacts", "verify", target]) == 1
    out, err = capsys.readouterr()
    assert "6 artifact(s) match their key, 1 corrupt" in out and damaged in err
    assert db_main(["artifacts", "copy", "--from", str(local.root), "--to", target]) == 1
    out, err = capsys.readouterr()
    assert "1 corrupt in the target" in out and damaged in err
    assert db_main(["artifacts", "verify", str(local.root)]) == 0  # the local store is intact


def test_copy_refuses_bad_credentials_and_unknown_buckets_with_the_reason(tmp_path, s3_bucket, capsys,
                                                                         monkeypatch):
    local = ArtifactStore(tmp_path / "artifacts")
    local.put(b"x")
    assert db_main(["artifacts", "copy", "--from", str(local.root), "--to", "s3://no-bucket-of-ours/p"]) == 2
    assert "the bucket 'no-bucket-of-ours' does not exist" in capsys.readouterr().err
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    assert db_main(["artifacts", "copy", "--from", str(local.root), "--to", f"s3://{s3_bucket}/p"]) == 2
    assert "access refused" in capsys.readouterr().err
    assert db_main(["artifacts", "copy", "--from", str(tmp_path / "nothing"), "--to", f"s3://{s3_bucket}/p"]) == 2
    assert "no artifact folder" in capsys.readouterr().err


def test_purge_deletes_only_unreferenced_objects_from_the_bucket(sessions, s3_bucket, make_png):
    test_sharing.test_purge_removes_expired_rows_and_only_their_files(
        sessions, open_artifacts(f"s3://{s3_bucket}/purge"), make_png)


def test_python_m_db_purge_uses_the_configured_bucket(sessions, s3_bucket, make_png, monkeypatch, capsys):
    monkeypatch.setenv(ARTIFACTS_ENV, f"s3://{s3_bucket}/lab")  # DATABASE_URL is the test database
    from datetime import timedelta

    from db import sharing
    from db.models import utcnow

    with session_scope(sessions) as session:
        old = store.get_or_create_input(session, [make_png(5)], "image", "old.png", 16, 16)
        sharing.add_owner(session, old.id, "visitor", keep_for=timedelta(hours=1))
        old.expires_at = utcnow() - timedelta(minutes=1)
        key = old.frames[0]
    bucket = open_artifacts()
    assert bucket.exists(key)
    assert db_main(["purge"]) == 0
    assert "deleted 1 file(s)" in capsys.readouterr().out
    assert not bucket.exists(key)


def test_a_worker_needs_only_the_two_urls_and_the_dashboard_reads_its_results_back(sessions, s3_bucket, data_dir,
                                                                                  make_png, monkeypatch):
    from dashboard import backend, results

    monkeypatch.setenv(ARTIFACTS_ENV, f"s3://{s3_bucket}/lab")
    before = {p.name for p in data_dir.rglob("*")}  # the test database may live here (SQLite); nothing else may
    with session_scope(sessions) as session:
        record = store.get_or_create_input(session, [make_png(7)], "image", "tiny.png", 16, 16)
        job_id = store.enqueue_job(session, record.id, REAL_METHOD, {}).id
    assert Worker(WorkerConfig(device="cpu", warm="none"), sessions=sessions).run(until_empty=True) == 1
    written = {p.name for p in data_dir.rglob("*")} - before
    assert {name for name in written if not name.endswith(("-wal", "-shm", "-journal"))} == set()

    (job,) = backend.job_views(sessions, [job_id])
    assert job.status == "succeeded" and job.layers
    bucket = open_artifacts()
    raw = _raw(bucket)
    for layer in job.layers:
        stored = raw.get_object(Bucket=s3_bucket, Key=bucket.object_name(layer.artifact_key))["Body"].read()
        assert backend.artifact_bytes(layer.artifact_key) == stored and stored[:4] == b"\x89PNG"
        with urllib.request.urlopen(backend.artifact_link(layer.artifact_key, layer.filename), timeout=10) as page:
            assert page.read() == stored
        with backend.artifact_file(layer.artifact_key) as handle:
            assert handle.read() == stored
    with zipfile.ZipFile(results.result_zip(sessions, job_id)) as archive:
        assert sorted(archive.namelist()) == sorted([layer.filename for layer in job.layers] + ["result.json"])


def test_a_worker_retries_when_the_bucket_refuses_it(sessions, s3_bucket, make_png, monkeypatch):
    """Storage failures are infrastructure: the job goes back to the queue instead of failing for the user."""
    from db.models import Job

    monkeypatch.setenv(ARTIFACTS_ENV, f"s3://{s3_bucket}/lab")
    with session_scope(sessions) as session:
        record = store.get_or_create_input(session, [make_png(8)], "image", "tiny.png", 16, 16)
        job_id = store.enqueue_job(session, record.id, REAL_METHOD, {}).id
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")  # the worker's credentials are refused
    Worker(WorkerConfig(device="cpu", warm="none"), sessions=sessions).run(once=True)
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        assert job.status == "queued" and job.error == "the server's storage failed while the job ran"
