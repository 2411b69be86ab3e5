"""Store functions on both backends: input dedupe, job dedupe, the claim/lease/complete protocol, user actions,
and the dashboard's queries."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from db import store
from db.models import Job, utcnow
from db.session import session_scope

REPO = Path(__file__).resolve().parents[2]


def _input(sessions, artifacts, data: bytes, kind="image", name="x.png"):
    with session_scope(sessions) as session:
        return store.get_or_create_input(session, [data], kind, name, 16, 16, artifacts=artifacts)


def _job(sessions, input_id, method="test_echo", params=None, **kwargs):
    with session_scope(sessions) as session:
        return store.enqueue_job(session, input_id, method, params if params is not None else {"tag": 1}, **kwargs)


def _claim(sessions, worker="w1", lease=60.0, **kwargs):
    with session_scope(sessions) as session:
        return store.claim_next_job(session, worker, lease, **kwargs)


def _get(sessions, job_id) -> Job:
    with session_scope(sessions) as session:
        return store.get_job(session, job_id)


def test_the_store_never_imports_torch_or_the_engine():
    code = ("import sys, db, db.models, db.session, db.store, db.artifacts, db.__main__; "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'engine', 'streamlit')); "
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


# --- inputs ---------------------------------------------------------------------------------------------

def test_same_upload_reuses_the_input_and_its_files(sessions, artifacts, make_png):
    png = make_png(0)
    first = _input(sessions, artifacts, png, name="a.png")
    again = _input(sessions, artifacts, png, name="renamed.png")
    assert again.id == first.id and again.original_name == "a.png"
    assert artifacts.get(first.frames[0]) == png
    other_kind = _input(sessions, artifacts, png, kind="raw_image")
    other_file = _input(sessions, artifacts, make_png(1))
    assert len({first.id, other_kind.id, other_file.id}) == 3
    with session_scope(sessions) as session:
        assert [i.id for i in store.list_inputs(session)] == [other_file.id, other_kind.id, first.id]
        assert [i.id for i in store.list_inputs(session, kind="raw_image")] == [other_kind.id]


def test_a_sequence_is_identified_by_its_files_in_order(sessions, artifacts, make_png):
    a, b = make_png(0), make_png(1)
    with session_scope(sessions) as session:
        ab = store.get_or_create_input(session, [a, b], "image_sequence", "seq", 16, 16, artifacts=artifacts)
        ba = store.get_or_create_input(session, [b, a], "image_sequence", "seq", 16, 16, artifacts=artifacts)
        ab_again = store.get_or_create_input(session, [a, b], "image_sequence", "s", 16, 16, artifacts=artifacts)
    assert ab.id == ab_again.id != ba.id
    assert ab.frame_count == 2 and ab.frames == [hashlib.sha256(a).hexdigest(), hashlib.sha256(b).hexdigest()]
    assert [artifacts.get(k) for k in ab.frames] == [a, b]


# --- enqueueing -----------------------------------------------------------------------------------------

def test_identical_requests_reuse_the_job_unless_forced_or_failed(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id, params={"scale": 0.5, "tag": 1})
    assert _job(sessions, input_id, params={"tag": 1, "scale": 0.5}).id == job.id  # key order is irrelevant
    assert _job(sessions, input_id, params={"tag": 2, "scale": 0.5}).id != job.id
    assert _job(sessions, input_id, params={"tag": 1, "scale": 0.5}, weights="v2").id != job.id
    assert _job(sessions, input_id, params={"tag": 1, "scale": 0.5}, force=True).id != job.id
    with session_scope(sessions) as session:
        store.cancel_job(session, job.id)
    # a cancelled job is not a result: asking again queues a fresh one
    fresh = _job(sessions, input_id, params={"tag": 1, "scale": 0.5})
    assert fresh.id != job.id and fresh.status == "queued" and fresh.max_attempts == 3


# --- claiming ---------------------------------------------------------------------------------------------

def test_claim_takes_the_oldest_job_once_and_respects_the_method_filter(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    first = _job(sessions, input_id, params={"tag": 1})
    other = _job(sessions, input_id, method="test_sleep", params={"seconds": 1.0, "tag": 2})
    second = _job(sessions, input_id, params={"tag": 3})
    claimed = _claim(sessions, "w1", methods=["test_echo"])
    assert (claimed.id, claimed.status, claimed.attempts, claimed.worker_id) == (first.id, "running", 1, "w1")
    assert claimed.lease_expires_at > utcnow() + timedelta(seconds=50)
    assert _claim(sessions, "w2", methods=["test_echo"]).id == second.id
    assert _claim(sessions, "w3", methods=["test_echo"]) is None
    assert _claim(sessions, "w3").id == other.id
    assert _claim(sessions, "w4") is None


def test_claim_can_be_limited_to_given_jobs(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    first, second, third = (_job(sessions, input_id, params={"tag": tag}) for tag in (1, 2, 3))
    assert _claim(sessions, "w1", job_ids=[third.id, second.id]).id == second.id  # the oldest of those given
    assert _claim(sessions, "w2", job_ids=[third.id, second.id]).id == third.id
    assert _claim(sessions, "w3", job_ids=[third.id, second.id]) is None
    assert _claim(sessions, "w3", job_ids=[]) is None
    assert _claim(sessions, "w3").id == first.id


def test_complete_attaches_outputs_once_and_only_for_the_lease_holder(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id)
    _claim(sessions, "w1")
    key = artifacts.put(b"layer bytes")
    outputs = [store.NewOutput("scaled", key, "image", {"min": 0.0})]
    with session_scope(sessions) as session:
        assert store.set_progress(session, job.id, "w1", 0.25, "a quarter")
        assert not store.set_progress(session, job.id, "intruder", 0.5, "no")
        assert not store.complete_job(session, job.id, "intruder", outputs)
    assert (_get(sessions, job.id).progress, _get(sessions, job.id).progress_message) == (0.25, "a quarter")
    with session_scope(sessions) as session:
        assert store.complete_job(session, job.id, "w1", outputs, timings={"total": 1.5}, device="cpu",
                                  info={"values": {"mean": [0.1, 0.2, 0.3]}})
        assert not store.complete_job(session, job.id, "w1", outputs)  # twice: refused
    done = _get(sessions, job.id)
    assert (done.status, done.progress, done.device, done.timings) == ("succeeded", 1.0, "cpu", {"total": 1.5})
    assert done.info == {"values": {"mean": [0.1, 0.2, 0.3]}} and done.finished_at is not None
    with session_scope(sessions) as session:
        assert [(o.layer, o.artifact_key) for o in store.outputs_for_job(session, job.id)] == [("scaled", key)]
        assert store.renew_lease(session, job.id, "w1", 60) is False


def test_expired_lease_is_taken_over_and_the_old_worker_can_no_longer_write(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id)
    now = utcnow()
    _claim(sessions, "dead", lease=10, now=now)
    assert _claim(sessions, "w2", now=now + timedelta(seconds=9)) is None  # lease still valid
    taken = _claim(sessions, "w2", now=now + timedelta(seconds=11))
    assert (taken.id, taken.worker_id, taken.attempts) == (job.id, "w2", 2)
    assert "worker dead stopped responding" in taken.error
    with session_scope(sessions) as session:
        assert not store.renew_lease(session, job.id, "dead", 10)
        assert not store.complete_job(session, job.id, "dead", [])
        assert store.fail_job(session, job.id, "dead", "late", retryable=True) is None
        assert store.complete_job(session, job.id, "w2", [])
    assert _get(sessions, job.id).status == "succeeded" and _get(sessions, job.id).error is None


def test_lost_leases_use_up_attempts_and_end_failed_with_the_last_error(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id, max_attempts=1)
    now = utcnow()
    assert _claim(sessions, "a", lease=5, now=now).attempts == 1
    assert _claim(sessions, "c", lease=5, now=now + timedelta(seconds=6)) is None
    failed = _get(sessions, job.id)
    assert failed.status == "failed" and failed.attempts == 1 and failed.finished_at is not None
    assert failed.error == "worker a stopped responding (its lease expired) during attempt 1 of 1"


def test_a_job_that_stopped_two_workers_is_quarantined_until_a_user_retries(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id, max_attempts=5)
    now = utcnow()
    assert _claim(sessions, "a", lease=5, now=now).attempts == 1
    assert _claim(sessions, "b", lease=5, now=now + timedelta(seconds=6)).attempts == 2
    with session_scope(sessions) as session:  # a failed attempt in between keeps the count
        assert store.fail_job(session, job.id, "b", "database hiccup", retryable=True, info={}) == "queued"
    assert _claim(sessions, "c", lease=5, now=now + timedelta(seconds=7)).attempts == 3
    assert _claim(sessions, "d", lease=5, now=now + timedelta(seconds=13)) is None  # c died too: quarantine
    failed = _get(sessions, job.id)
    assert failed.status == "failed" and failed.attempts == 3
    assert failed.error.startswith("quarantined: running this job stopped 2 workers (the last was c)")
    assert failed.info["quarantined"] and failed.info["lost_workers"] == 2
    with session_scope(sessions) as session:
        store.retry_job(session, job.id)
    assert _claim(sessions, "e", lease=5, now=now + timedelta(seconds=20)).attempts == 1
    assert (_get(sessions, job.id).info or {}).get("lost_workers") is None


def test_fail_retries_unexpected_errors_until_attempts_run_out(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id, max_attempts=2)
    _claim(sessions, "w")
    with session_scope(sessions) as session:
        assert store.fail_job(session, job.id, "w", "boom 1", retryable=True) == "queued"
    assert _get(sessions, job.id).error == "boom 1"
    _claim(sessions, "w")
    with session_scope(sessions) as session:
        assert store.fail_job(session, job.id, "w", "boom 2", retryable=True) == "failed"
    assert (_get(sessions, job.id).status, _get(sessions, job.id).error) == ("failed", "boom 2")


def test_user_errors_fail_at_once_and_retry_job_queues_again(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id)
    _claim(sessions, "w")
    with session_scope(sessions) as session:
        assert store.fail_job(session, job.id, "w", "bad parameter", retryable=False) == "failed"
        with pytest.raises(store.JobStateError, match="only queued or running"):
            store.cancel_job(session, job.id)
    with session_scope(sessions) as session:
        again = store.retry_job(session, job.id)
        assert (again.status, again.attempts, again.error, again.worker_id) == ("queued", 0, None, None)
    assert _claim(sessions, "w2").id == job.id
    with session_scope(sessions) as session:
        store.complete_job(session, job.id, "w2", [])
        with pytest.raises(store.JobStateError, match="only failed or cancelled"):
            store.retry_job(session, job.id)
        with pytest.raises(store.JobStateError, match="no job"):
            store.retry_job(session, 10_000)


def test_cancelling_a_running_job_takes_it_from_its_worker(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    queued = _job(sessions, input_id, params={"tag": 1})
    running = _job(sessions, input_id, params={"tag": 2})
    with session_scope(sessions) as session:
        store.cancel_job(session, queued.id)
    assert _claim(sessions, "w").id == running.id
    with session_scope(sessions) as session:
        store.cancel_job(session, running.id)
    with session_scope(sessions) as session:
        assert not store.renew_lease(session, running.id, "w", 60)
        assert not store.complete_job(session, running.id, "w", [])
        assert store.count_jobs_by_status(session)["cancelled"] == 2
    assert _claim(sessions, "w") is None


def test_release_gives_the_job_back_without_using_an_attempt(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id)
    _claim(sessions, "w")
    with session_scope(sessions) as session:
        assert store.release_job(session, job.id, "w")
    released = _get(sessions, job.id)
    assert (released.status, released.attempts, released.worker_id) == ("queued", 0, None)


# --- queries ----------------------------------------------------------------------------------------------

def _finish(sessions, worker, job_id, artifacts, layer="scaled"):
    claimed = _claim(sessions, worker)
    assert claimed.id == job_id
    with session_scope(sessions) as session:
        key = artifacts.put(f"{job_id}".encode())
        assert store.complete_job(session, job_id, worker, [store.NewOutput(layer, key, "image")])


def test_gallery_lists_every_input_with_the_latest_job_of_each_method(sessions, artifacts, make_png):
    a = _input(sessions, artifacts, make_png(0)).id
    b = _input(sessions, artifacts, make_png(1)).id
    a_echo_old = _job(sessions, a, params={"tag": 1})
    _finish(sessions, "w", a_echo_old.id, artifacts)
    a_echo_new = _job(sessions, a, params={"tag": 2})
    _finish(sessions, "w", a_echo_new.id, artifacts)
    a_sleep = _job(sessions, a, method="test_sleep", params={"seconds": 0.0, "tag": 0})
    _finish(sessions, "w", a_sleep.id, artifacts, layer="copy")
    b_echo = _job(sessions, b, params={"tag": 3})
    _finish(sessions, "w", b_echo.id, artifacts)
    b_queued = _job(sessions, b, method="test_sleep", params={"seconds": 9.0, "tag": 0})
    with session_scope(sessions) as session:
        rows = store.gallery(session)
        assert [(r.input.id, {m: j.id for m, j in r.jobs.items()}) for r in rows] == [
            (b, {"test_echo": b_echo.id}),
            (a, {"test_echo": a_echo_new.id, "test_sleep": a_sleep.id}),
        ]
        assert [o.layer for o in rows[1].jobs["test_sleep"].outputs] == ["copy"]
        only_sleep = store.gallery(session, method="test_sleep", status=None)
        assert [(r.input.id, sorted(r.jobs)) for r in only_sleep] == [(b, ["test_sleep"]), (a, ["test_sleep"])]
        assert only_sleep[0].jobs["test_sleep"].id == b_queued.id
        assert store.gallery(session, since=utcnow() + timedelta(hours=1)) == []
        assert len(store.gallery(session, until=utcnow() + timedelta(hours=1))) == 2

        per_input = store.outputs_for_input(session, a)
        assert [(o.job.id, o.layer) for o in per_input] == [
            (a_sleep.id, "copy"), (a_echo_new.id, "scaled"), (a_echo_old.id, "scaled")]
        assert [o.job.id for o in store.outputs_for_input(session, a, method="test_sleep")] == [a_sleep.id]

        assert [j.id for j in store.list_jobs(session, status="queued")] == [b_queued.id]
        assert [j.id for j in store.list_jobs(session, method="test_echo", input_id=a)] == [
            a_echo_new.id, a_echo_old.id]
        assert [j.id for j in store.list_jobs(session, status=["queued", "succeeded"], limit=2)] == [
            b_queued.id, b_echo.id]
        assert store.count_jobs_by_status(session) == {
            "queued": 1, "running": 0, "succeeded": 4, "failed": 0, "cancelled": 0}


def test_metrics_are_recorded_per_job_or_per_benchmark_sample(sessions, artifacts, make_png):
    input_id = _input(sessions, artifacts, make_png(0)).id
    job = _job(sessions, input_id)
    with session_scope(sessions) as session:
        store.record_metric(session, "psnr", 21.5, job_id=job.id, method="test_echo")
        store.record_metric(session, "si_mse", 0.012, method="jiep", sample="mit/cup1",
                            protocol={"dataset": "MIT", "resolution": 256})
    with session_scope(sessions) as session:
        assert [(m.name, m.value) for m in store.list_metrics(session, job_id=job.id)] == [("psnr", 21.5)]
        bench = store.list_metrics(session, method="jiep")
        assert (bench[0].sample, bench[0].protocol) == ("mit/cup1", {"dataset": "MIT", "resolution": 256})
