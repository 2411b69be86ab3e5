"""The job worker, in this process and as real separate processes, on both backends.

In-process: a real method (JieP) end to end, vector outputs, user errors, retries up to max_attempts, device
filtering. Processes: two workers draining a queue never run a job twice; a worker killed with SIGKILL mid-job
is replaced after its lease expires and the job completes exactly once; SIGTERM gives the job back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import db_test_methods  # noqa: F401  (registers the test-only methods)
from db import store
from db.session import session_scope
from engine.imaging import decode_image
from engine.outputs import encode_result
from engine.registry import MethodInput, get_method, run_method
from engine.worker import Worker, WorkerConfig
from helpers.waiting import wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def _real_method() -> str:
    # JieP is the real method these tests run; until its module is importable a test-only method stands in.
    try:
        get_method("jiep")
        return "jiep"
    except Exception:
        return "test_echo"


REAL_METHOD = _real_method()


def _enqueue(sessions, artifacts, png: bytes, method: str, params=None, **kwargs) -> int:
    with session_scope(sessions) as session:
        record = store.get_or_create_input(session, [png], "image", "tiny.png", 16, 16, artifacts=artifacts)
        resolved = get_method(method).resolve_params(params)
        return store.enqueue_job(session, record.id, method, resolved, **kwargs).id


def _job(sessions, job_id):
    with session_scope(sessions) as session:
        job = store.get_job(session, job_id)
        outputs = store.outputs_for_job(session, job_id)
    return job, outputs


def _worker(sessions, artifacts, **config) -> Worker:
    config = {"worker_id": "inproc", "device": "cpu", "poll_seconds": 0.01, "lease_seconds": 10, **config}
    return Worker(WorkerConfig(**config), sessions=sessions, artifacts=artifacts)


# --- in this process ---------------------------------------------------------------------------------------

def test_worker_runs_a_real_method_and_stores_exactly_what_the_cli_would_write(sessions, artifacts, make_png):
    png = make_png(7)
    job_id = _enqueue(sessions, artifacts, png, REAL_METHOD)
    assert _worker(sessions, artifacts).run(until_empty=True) == 1
    job, outputs = _job(sessions, job_id)
    assert (job.status, job.attempts, job.error, job.device, job.progress) == ("succeeded", 1, None, "cpu", 1.0)
    assert {"load_input", "total", "store_outputs"} <= set(job.timings) and job.timings["total"] > 0

    spec = get_method(REAL_METHOD)
    direct, _, resolved = run_method(REAL_METHOD, MethodInput(frames=(decode_image(png).pixels,)), {},
                                     device="cpu")
    expected = {layer.layer: layer for layer in encode_result(spec, direct)}
    assert [o.layer for o in outputs] == list(expected)
    for output in outputs:
        assert artifacts.get(output.artifact_key, verify=True) == expected[output.layer].data
        assert output.kind == expected[output.layer].meta["kind"]
        assert output.meta["filename"] == expected[output.layer].filename
        assert decode_image(artifacts.get(output.artifact_key)).pixels.shape == (16, 16, 3)
    assert job.info["params"] == resolved and job.params == resolved


def test_vector_outputs_go_to_job_info(sessions, artifacts, make_png):
    png = make_png(3)
    job_id = _enqueue(sessions, artifacts, png, "test_echo", {"scale": 0.5})
    _worker(sessions, artifacts).run(once=True)
    job, outputs = _job(sessions, job_id)
    image = decode_image(png).pixels
    np.testing.assert_allclose(job.info["values"]["mean_rgb"], image.reshape(-1, 3).mean(axis=0), atol=1e-6)
    scaled = decode_image(artifacts.get(outputs[0].artifact_key)).pixels
    np.testing.assert_allclose(scaled, image * 0.5, atol=1 / 65535 + 1e-6)  # stored as 16-bit PNG
    # numpy values become JSON; NaN (no JSON number; PostgreSQL's JSON refuses it) becomes null
    assert job.info["result"] == {"pid": os.getpid(), "residual": None, "sizes": [3, 4]}


def test_a_worker_refuses_a_database_without_tables(empty_db_url, artifacts):
    from db.session import make_engine, make_sessions
    from engine.errors import IntrinsicLabError

    engine = make_engine(empty_db_url)
    try:
        worker = Worker(WorkerConfig(device="cpu"), sessions=make_sessions(engine), artifacts=artifacts)
        with pytest.raises(IntrinsicLabError, match="python -m db migrate"):
            worker.check_schema()
    finally:
        engine.dispose()


def test_user_errors_fail_the_job_at_once_with_their_message(sessions, artifacts, make_png):
    refused = _enqueue(sessions, artifacts, make_png(0), "test_user_error")
    with session_scope(sessions) as session:
        record = store.get_or_create_input(session, [make_png(1)], "image", "p.png", 16, 16, artifacts=artifacts)
        # Parameters are checked again by the worker: a bad value stored in the queue is a user error too.
        bad_param = store.enqueue_job(session, record.id, REAL_METHOD, {"definitely_not_a_parameter": 1}).id
    assert _worker(sessions, artifacts).run(until_empty=True) == 2
    job, outputs = _job(sessions, refused)
    assert (job.status, job.attempts, job.error, outputs) == (
        "failed", 1, "this test method refuses every input", [])
    job, _ = _job(sessions, bad_param)
    assert job.status == "failed" and job.attempts == 1 and "unknown parameter" in job.error


def test_unexpected_errors_are_bugs_and_fail_at_once_without_type_or_stack(sessions, artifacts, make_png,
                                                                            tmp_path, monkeypatch):
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv(db_test_methods.RUN_LOG_ENV, str(run_log))
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_crash", {"tag": 5}, max_attempts=3)
    assert _worker(sessions, artifacts).run(until_empty=True) == 1  # deterministic: not retried
    job, outputs = _job(sessions, job_id)
    assert (job.status, job.attempts, outputs) == ("failed", 1, [])
    assert "internal error" in job.error and "RuntimeError" not in job.error and "Traceback" not in job.error
    assert job.info["failure"] == "internal" and "simulated crash" in job.info["internal"]
    assert run_log.read_text().count("run tag=5") == 1

    with session_scope(sessions) as session:
        store.retry_job(session, job_id)
    assert _worker(sessions, artifacts).run(until_empty=True) == 1
    assert run_log.read_text().count("run tag=5") == 2


def test_out_of_memory_is_infrastructure_and_retried(sessions, artifacts, make_png, tmp_path, monkeypatch):
    run_log = tmp_path / "runs.log"
    monkeypatch.setenv(db_test_methods.RUN_LOG_ENV, str(run_log))
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_out_of_memory", {"tag": 7}, max_attempts=2)
    good = _enqueue(sessions, artifacts, make_png(1), "test_echo")
    assert _worker(sessions, artifacts).run(until_empty=True) == 3
    job, _ = _job(sessions, job_id)
    assert (job.status, job.attempts, job.info["failure"]) == ("failed", 2, "infrastructure")
    assert job.error == "the worker ran out of memory running test_out_of_memory"
    assert run_log.read_text().count("run tag=7") == 2
    assert _job(sessions, good)[0].status == "succeeded"  # the worker recovered


def test_nan_results_are_refused_not_stored(sessions, artifacts, make_png):
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_nan")
    assert _worker(sessions, artifacts).run(until_empty=True) == 1
    job, outputs = _job(sessions, job_id)
    assert (job.status, job.attempts, outputs) == ("failed", 1, [])
    assert "not finite numbers" in job.error and job.info["failure"] == "user"


def test_a_cpu_worker_leaves_cuda_only_jobs_queued(sessions, artifacts, make_png):
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_cuda_only")
    worker = _worker(sessions, artifacts)
    assert "test_cuda_only" not in worker.methods and REAL_METHOD in worker.methods
    assert worker.run(until_empty=True) == 0
    assert _job(sessions, job_id)[0].status == "queued"


def test_a_cancelled_job_is_abandoned_by_its_worker(sessions, artifacts, make_png):
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_sleep", {"seconds": 0.6})
    worker = _worker(sessions, artifacts, lease_seconds=0.3, progress_interval=0.0)
    original = worker._progress

    def progress_then_cancel(fraction, message):
        if fraction > 0.3:
            with session_scope(sessions) as session:
                store.cancel_job(session, job_id)
        original(fraction, message)

    worker._progress = progress_then_cancel
    assert worker.run(once=True) == 1
    job, outputs = _job(sessions, job_id)
    assert job.status == "cancelled" and outputs == [] and job.progress < 0.5


# --- separate processes ------------------------------------------------------------------------------------

@pytest.fixture
def spawn(tmp_path):
    """``spawn(name, *options)``: a worker process (the real CLI plus the test-only methods)."""
    processes = []

    def start(name: str, *options: str) -> subprocess.Popen:
        log = open(tmp_path / f"{name}.log", "w")
        env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
               db_test_methods.RUN_LOG_ENV: str(tmp_path / "runs.log")}
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "db_worker_main.py"), "--device", "cpu", "--worker-id", name,
             "--poll", "0.05", *options],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        proc.log_path = tmp_path / f"{name}.log"
        processes.append(proc)
        return proc

    yield start
    for proc in processes:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_for(condition, timeout: float, what: str, every: float = 0.05):
    return wait_until(condition, timeout, what, interval=every)


def _ready(proc) -> bool:
    assert proc.poll() is None, proc.log_path.read_text()
    return "serving" in proc.log_path.read_text()


def _runs(tmp_path) -> list[str]:
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def _stop(proc, timeout: float = 20) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


def test_two_worker_processes_drain_the_queue_each_job_once(sessions, artifacts, make_png, spawn, tmp_path):
    a, b = spawn("worker-a", "--lease", "10"), spawn("worker-b", "--lease", "10")
    _wait_for(lambda: _ready(a) and _ready(b), 60, "both workers to start")
    jobs = [_enqueue(sessions, artifacts, make_png(100 + k), "test_echo", {"tag": k, "seconds": 0.15})
            for k in range(8)]
    if REAL_METHOD == "jiep":
        jobs += [_enqueue(sessions, artifacts, make_png(200 + k), "jiep") for k in range(2)]

    def finished():
        with session_scope(sessions) as session:
            return all(store.get_job(session, j).status == "succeeded" for j in jobs)

    _wait_for(finished, 60, "every job to succeed")
    assert _stop(a) == 0 and _stop(b) == 0  # idle workers stop cleanly

    by_worker = {}
    for job_id in jobs:
        job, outputs = _job(sessions, job_id)
        assert job.attempts == 1, f"job {job_id} was claimed {job.attempts} times"
        assert len(outputs) == len({o.layer for o in outputs}) == (1 if job.method == "test_echo" else 3)
        by_worker.setdefault(job.worker_id, []).append(job_id)
    assert set(by_worker) == {"worker-a", "worker-b"}, f"one worker took every job: {by_worker}"
    runs = [line.split()[1] for line in _runs(tmp_path)]
    assert sorted(runs) == sorted(f"tag={k}" for k in range(8)), "a job ran twice or never"


def test_a_killed_workers_job_completes_once_elsewhere_and_sigterm_releases_a_job(sessions, artifacts, make_png,
                                                                                   spawn, tmp_path):
    # Two workers start together (process start-up dominates these tests); whichever takes the job is killed.
    workers = {name: spawn(name, "--lease", "1") for name in ("first", "second")}
    _wait_for(lambda: all(_ready(p) for p in workers.values()), 60, "both workers to start")
    job_id = _enqueue(sessions, artifacts, make_png(0), "test_sleep", {"seconds": 1.5, "tag": 9})
    job = _wait_for(lambda: (j := _job(sessions, job_id)[0]).status == "running" and j.progress > 0 and j, 30,
                    "a worker to be mid-job")
    doomed = workers.pop(job.worker_id)
    (survivor_name, survivor), = workers.items()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    lease_of_the_dead = _job(sessions, job_id)[0].lease_expires_at

    job = _wait_for(lambda: (j := _job(sessions, job_id)[0]).status in ("succeeded", "failed") and j, 60,
                    "the other worker to finish the job")
    _, outputs = _job(sessions, job_id)
    assert (job.status, job.attempts, job.worker_id) == ("succeeded", 2, survivor_name)
    assert job.started_at >= lease_of_the_dead  # taken over only once the lease had expired
    assert [o.layer for o in outputs] == ["copy"]
    assert _runs(tmp_path).count(f"end tag=9 pid={survivor.pid}") == 1
    assert [line.split()[0] for line in _runs(tmp_path)] == ["start", "start", "end"]

    # SIGTERM mid-job: the job goes back to the queue without using up an attempt, and the worker exits cleanly.
    long_job = _enqueue(sessions, artifacts, make_png(1), "test_sleep", {"seconds": 30.0})
    _wait_for(lambda: _job(sessions, long_job)[0].progress > 0, 30, "the worker to start the long job")
    assert _stop(survivor, timeout=10) == 0
    job, outputs = _job(sessions, long_job)
    assert (job.status, job.attempts, job.worker_id, outputs) == ("queued", 0, None, [])
    assert "released to the queue" in survivor.log_path.read_text()
