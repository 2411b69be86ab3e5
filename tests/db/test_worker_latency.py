"""What makes a worker answer fast: a short idle poll, warming methods while the queue is empty (never before a
queued job), and the queue wait recorded in each job's timings."""

from __future__ import annotations

import db_test_methods  # noqa: F401  (registers the test-only methods)
from db import store
from db.session import session_scope
from engine.cli import build_parser
from engine.registry import get_method
from engine.worker import WARM_ENV, Worker, WorkerConfig


def _worker(sessions, artifacts, **config) -> Worker:
    config = {"worker_id": "latency", "device": "cpu", "poll_seconds": 0.01, "lease_seconds": 10, **config}
    return Worker(WorkerConfig(**config), sessions=sessions, artifacts=artifacts)


def _enqueue(sessions, artifacts, png: bytes, method: str, params=None) -> int:
    with session_scope(sessions) as session:
        record = store.get_or_create_input(session, [png], "image", "tiny.png", 16, 16, artifacts=artifacts)
        return store.enqueue_job(session, record.id, method, get_method(method).resolve_params(params)).id


def test_an_idle_worker_looks_at_the_queue_at_least_every_half_second():
    assert WorkerConfig().poll_seconds <= 0.5
    args = build_parser().parse_args(["worker"])
    assert args.poll <= 0.5 and args.warm is None


def test_each_job_records_its_queue_wait(sessions, artifacts, make_png):
    job_id = _enqueue(sessions, artifacts, make_png(1), "test_echo")
    assert _worker(sessions, artifacts, warm="none").run(until_empty=True) == 1
    with session_scope(sessions) as session:
        job = store.get_job(session, job_id)
        expected = (job.started_at - job.created_at).total_seconds()
        timings = dict(job.timings)
    assert {"queue_wait", "load_input", "total", "store_outputs"} <= set(timings)
    assert abs(timings["queue_wait"] - expected) < 1e-3 and timings["queue_wait"] >= 0


def test_warming_runs_each_listed_method_once_and_swallows_its_errors(sessions, artifacts, tmp_path, monkeypatch):
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv(db_test_methods.RUN_LOG_ENV, str(run_log))
    worker = _worker(sessions, artifacts, warm="test_crash, test_echo, not_a_method")
    assert worker._to_warm == ["test_crash", "test_echo"]
    assert worker.warm_next() is True  # test_crash raises: logged, skipped
    assert worker.warm_next() is True
    assert worker.warm_next() is False
    assert run_log.read_text().count("run tag=0") == 2  # one synthetic run of each, none repeated


def test_warm_lists(sessions, artifacts, monkeypatch):
    monkeypatch.delenv(WARM_ENV, raising=False)
    assert _worker(sessions, artifacts, warm="none").warm_next() is False
    every = _worker(sessions, artifacts)._to_warm  # default "all": the project's image methods it serves
    assert every and all(not name.startswith("test_") for name in every)
    assert all(get_method(name).input_kind.value == "image" for name in every)
    monkeypatch.setenv(WARM_ENV, "none")
    assert _worker(sessions, artifacts)._to_warm == []


def test_a_queued_job_is_taken_before_any_warming(sessions, artifacts, make_png, tmp_path, monkeypatch):
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv(db_test_methods.RUN_LOG_ENV, str(run_log))
    job_id = _enqueue(sessions, artifacts, make_png(2), "test_crash", {"tag": 9})
    worker = _worker(sessions, artifacts, warm="test_crash")
    assert worker.run(once=True) == 1
    assert run_log.read_text().splitlines()[0].startswith("run tag=9")  # the job ran first
    assert worker._to_warm == ["test_crash"]  # not warmed yet: the queue was not empty
    with session_scope(sessions) as session:
        assert store.get_job(session, job_id).status == "failed"
