"""Benchmark sweeps on a real local Ray cluster: the same rows and scores as the queue path, resume, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import torch
from sqlalchemy import func, select

from db import benchmark_store as bstore
from db.artifacts import ArtifactStore
from db.models import Job, Output
from db.session import make_engine, make_sessions, migrate, session_scope
from engine.benchmark import BenchConfig, leaderboard, run, start
from engine.worker import Worker, WorkerConfig

from benchmark.tiny_data import BASELINES, write_tiny_mit

pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[client]>=2.60,<2.61')")

from engine.distributed.ray_bench import RayOptions, run_on_ray  # noqa: E402

NETWORK = "ma2018"  # a small learned network with shipped weights (1 MB)


@pytest.fixture
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Ray actors (1 thread each): identical arithmetic, identical bytes
    yield
    torch.set_num_threads(before)


def _store(path):
    url = f"sqlite:///{path / 'lab.sqlite'}"
    migrate(url)
    engine = make_engine(url)
    return make_sessions(engine), ArtifactStore(path / "artifacts"), engine


def _rows(sessions, run_id):
    """Everything a run wrote, in a comparable form: scores, entries, jobs and their outputs' artifacts."""
    with session_scope(sessions) as session:
        scores = leaderboard.per_image(session, "mit-intrinsic", "train")
        scores = sorted(map(tuple, scores[["method", "item", "metric", "value"]].itertuples(index=False)))
        entries, outputs = [], {}
        for entry in bstore.entries(session, run_id):
            entries.append((entry.method, entry.item, entry.status, entry.device))
            job = session.get(Job, entry.job_id)
            outputs[(entry.method, entry.item)] = sorted((o.layer, o.kind, o.artifact_key) for o in job.outputs)
        jobs = session.scalar(select(func.count(Job.id)))
        per_job = session.execute(select(Output.job_id, Output.layer, func.count()).group_by(Output.job_id,
                                                                                            Output.layer)).all()
    assert all(count == 1 for *_, count in per_job), "a layer stored twice for one job"
    return scores, sorted(entries), outputs, jobs


def _pixels(data: bytes):
    """A stored layer's PNG (8 or 16 bits, as engine.imaging.encode_png writes it) as its integer pixels."""
    import cv2
    import numpy as np

    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert pixels is not None, "not a PNG layer"
    return pixels


def _assert_same_outputs(ours, our_store, theirs, their_store):
    """The same layers for every (method, item), each stored artifact byte-identical or, for a learned network, the
    same image up to one quantisation step in a few pixels: a Ray actor and the driver run the same single-thread
    arithmetic, but buffers at other addresses can take other SIMD paths, and a sigmoid output that lands on a
    16-bit rounding boundary then flips one level (seen for ma2018's assignment mask on one machine)."""
    import numpy as np

    assert {k: [(layer, kind) for layer, kind, _ in v] for k, v in ours.items()} == \
        {k: [(layer, kind) for layer, kind, _ in v] for k, v in theirs.items()}
    for job, layers in ours.items():
        for (layer, _, key), (_, _, other) in zip(layers, theirs[job]):
            if key == other:
                continue
            assert job[0] == NETWORK, f"{job} {layer}: a deterministic baseline stored different bytes"
            a, b = _pixels(our_store.get(key)), _pixels(their_store.get(other))
            assert a.shape == b.shape and a.dtype == b.dtype, (job, layer)
            diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
            assert diff.max() <= 1 and (diff > 0).mean() < 0.01, (job, layer, float(diff.max()))


def test_ray_sweep_writes_the_queue_paths_rows_and_resumes(ray_cluster, data_dir, tmp_path, single_thread, capsys):
    from engine.cli import main

    mit = write_tiny_mit(tmp_path / "mit")
    config = BenchConfig((*BASELINES, NETWORK), "mit-intrinsic", "train", str(mit))
    queue_sessions, queue_artifacts, e1 = _store(tmp_path / "queue")
    plain = run(config, sessions=queue_sessions, artifacts=queue_artifacts, device="cpu", poll_s=0.01)
    assert plain.complete and plain.succeeded == 6 and not plain.failed, plain.errors

    # The command's store (INTRINSIC_LAB_DATA): interrupted after queueing, and after a queue worker did one job ...
    migrate()
    ray_sessions, ray_artifacts = make_sessions(e2 := make_engine()), ArtifactStore()
    first = start(config, sessions=ray_sessions, artifacts=ray_artifacts)
    assert first.pending == 6
    Worker(WorkerConfig(device="cpu", warm="none"), sessions=ray_sessions, artifacts=ray_artifacts).run_next()
    # ... then the same benchmark on Ray finishes it
    bench = ["bench", *config.methods, "--dataset", "mit-intrinsic", "--split", "train", "--data", str(mit), "--json"]
    assert main([*bench, "--on", "ray", "--batch", "2"]) == 0
    table = json.loads(capsys.readouterr().out)
    assert sorted(row["method"] for row in table) == sorted(config.methods)

    ray_rows, queue_rows = _rows(ray_sessions, first.run_id), _rows(queue_sessions, plain.run_id)
    assert ray_rows[0] == queue_rows[0] and ray_rows[1] == queue_rows[1] and ray_rows[3] == queue_rows[3]
    _assert_same_outputs(ray_rows[2], ray_artifacts, queue_rows[2], queue_artifacts)
    with session_scope(ray_sessions) as session:
        workers = [job.worker_id for job in session.scalars(select(Job))]
    assert sum(not w.startswith("ray:") for w in workers) == 1  # the queue worker's one job, the rest on Ray
    # Rerunning finds everything done: no new job, nothing to send to Ray.
    again = run_on_ray(config, sessions=ray_sessions, artifacts=ray_artifacts)
    assert again.complete and again.run_id == first.run_id and again.queued_now == 0
    assert _rows(ray_sessions, again.run_id)[3] == 6
    assert main([*bench, "--on", "ray", "--device", "cpu"]) == 2
    assert "--no-work and --device are for the in-process worker" in capsys.readouterr().err
    e1.dispose()
    e2.dispose()


@pytest.mark.parametrize("mode", ["auto", "system"])
def test_ray_actors_run_with_the_drivers_c_heap(ray_cluster, monkeypatch, mode):
    """Ray starts an actor's process with forwarded_env(): with tcmalloc where the driver would use it
    (engine/allocator.py), with glibc's malloc when INTRINSIC_LAB_MALLOC=system."""
    from engine.allocator import tcmalloc_path
    from engine.distributed.cluster import forwarded_env

    monkeypatch.setenv("INTRINSIC_LAB_MALLOC", mode)

    @ray_cluster.remote(num_cpus=0)
    class Probe:
        def heap(self):
            from engine.allocator import current_mode

            return current_mode()

    probe = Probe.options(runtime_env={"env_vars": forwarded_env()}).remote()
    expected = "tcmalloc" if mode == "auto" and tcmalloc_path() else "system"
    assert ray_cluster.get(probe.heap.remote(), timeout=120) == expected
    ray_cluster.kill(probe)


def test_a_ray_sweep_stopped_early_resumes_where_it_stopped(ray_cluster, tmp_path):
    mit = write_tiny_mit(tmp_path / "mit")
    config = BenchConfig((*BASELINES, NETWORK), "mit-intrinsic", "train", str(mit))
    sessions, artifacts, engine = _store(tmp_path / "store")
    # One job per call, and no call after 0.5 s: the actors are still starting then, so only their first jobs run.
    stopped = run_on_ray(config, RayOptions(batch=1), sessions=sessions, artifacts=artifacts, timeout_s=0.5)
    assert not stopped.complete and 0 < stopped.succeeded < 6 and not stopped.failed, stopped.errors
    with session_scope(sessions) as session:
        assert bstore.get_run(session, stopped.run_id).status == "incomplete"
    resumed = run_on_ray(config, RayOptions(batch=2), sessions=sessions, artifacts=artifacts, poll_s=0.05)
    assert resumed.complete and resumed.succeeded == 6 and resumed.run_id == stopped.run_id and resumed.reused
    with session_scope(sessions) as session:
        jobs = session.scalars(select(Job)).all()
        assert len(jobs) == 6 and all(j.status == "succeeded" and j.attempts == 1 for j in jobs)
    engine.dispose()


def test_killing_a_ray_worker_mid_sweep_leaves_every_row_exactly_once(ray_cluster, tmp_path):
    mit = write_tiny_mit(tmp_path / "mit", count=8, side=224)  # ~0.3 s a job: long enough to kill one mid-job
    config = BenchConfig(("baseline_color_retinex",), "mit-intrinsic", "train", str(mit))
    sessions, artifacts, engine = _store(tmp_path / "store")
    kills: list[int] = []  # every pid killed
    victims: list[tuple[int, int]] = []  # (job, pid) of a kill that hit a job mid-run

    def kill_a_running_worker():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not victims:
            with session_scope(sessions) as session:
                running = session.execute(select(Job.id, Job.worker_id).where(
                    Job.status == "running", Job.worker_id.like("ray:%"))).first()
            if running is not None:
                pid = int(running.worker_id.split(":")[-2])
                os.kill(pid, signal.SIGKILL)
                kills.append(pid)
                time.sleep(0.05)
                with session_scope(sessions) as session:  # still held by the dead process: it died mid-job
                    job = session.get(Job, running.id)
                    if job.status == "running" and job.worker_id == running.worker_id:
                        victims.append((running.id, pid))
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_running_worker)
    killer.start()
    report = run_on_ray(config, RayOptions(batch=4), sessions=sessions, artifacts=artifacts, poll_s=0.05)
    killer.join()
    assert victims, "no Ray worker was killed while it ran a job"
    assert report.complete and report.succeeded == 8 and not report.failed, report.errors
    job_id, pid = victims[0]
    with session_scope(sessions) as session:
        jobs = session.scalars(select(Job)).all()
        assert len(jobs) == 8 and all(j.status == "succeeded" for j in jobs)
        victim = session.get(Job, job_id)
        assert victim.attempts == 2 and f":{pid}:" not in victim.worker_id  # run again, by another process
        assert all(j.attempts <= 2 for j in jobs) and sum(j.attempts for j in jobs) <= 8 + len(kills)
    scores, entries, outputs, count = _rows(sessions, report.run_id)
    assert count == 8 and len(entries) == 8 and all(e[2] == "succeeded" for e in entries)
    assert all(len(layers) == len(outputs[("baseline_color_retinex", "apple")]) for layers in outputs.values())
    engine.dispose()


@pytest.mark.cuda
def test_on_a_cluster_with_a_gpu_network_jobs_run_on_gpu_actors(cuda_device, tmp_path, request):
    ray_cluster = request.getfixturevalue("ray_cluster")  # after the skip without CUDA: no cluster started for it
    if not ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("the local Ray cluster found no GPU")
    mit = write_tiny_mit(tmp_path / "mit")
    sessions, artifacts, engine = _store(tmp_path / "store")
    report = run_on_ray(BenchConfig((NETWORK,), "mit-intrinsic", "train", str(mit)), sessions=sessions,
                        artifacts=artifacts, poll_s=0.05)
    assert report.complete and report.succeeded == 2 and not report.failed, report.errors
    with session_scope(sessions) as session:
        assert all(job.worker_id.endswith(":cuda") for job in session.scalars(select(Job)))
    engine.dispose()
