"""Real processes: ``scripts/serve.sh`` with its real workers and the real Streamlit dashboard, while good and bad
work is submitted.

Bad uploads go through the dashboard's submission path (``prepare_input`` / ``backend.submit``, as the Decompose page
calls them) and are refused there; bad jobs that reach the queue anyway (enqueued straight into the store) fail at
once; a job that kills its worker (``test_die``) kills two workers, which ``serve.sh`` restarts, and is then
quarantined. Meanwhile every good job succeeds, the dashboard answers its health check with the same process, and
the script keeps running until it is told to stop.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from helpers.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(check, timeout: float, what: str):
    return wait_until(check, timeout, what, interval=0.25)


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _wrapper(tmp_path: Path) -> Path:
    """A PYTHON for serve.sh: the real migrate and dashboard; workers that also know the test-only methods and use
    a short lease (so a dead worker's job is taken over within seconds)."""
    script = tmp_path / "python"
    script.write_text(f"""#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m engine worker" ]; then
  shift 3
  exec {PYTHON} {REPO}/tests/db/db_worker_main.py "$@" --poll 0.2 --lease 4 --quiet
fi
exec {PYTHON} "$@"
""")
    script.chmod(0o755)
    return script


@pytest.mark.slow
def test_workers_and_dashboard_keep_serving_while_bad_work_is_submitted(tmp_path, data_dir, monkeypatch):
    import db_test_methods  # noqa: F401  (the test-only methods, registered in this process too)

    from dashboard import backend
    from dashboard.uploads import UploadedFile, prepare_input
    from db import store
    from db.session import default_sessions, session_scope
    from engine.registry import InputKind, get_method
    from helpers.badfiles import byte_flipped, float_tiff, many_frame_gif, png_bytes, rgb_tiff, solid_png

    monkeypatch.setenv("INTRINSIC_LAB_MAX_JOB_MEMORY", "64M")
    port = _free_port()
    env = {**os.environ, "PYTHON": str(_wrapper(tmp_path)), "PORT": str(port), "WORKERS": "2",
           "ADDRESS": "127.0.0.1", "INTRINSIC_LAB_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), str(REPO / "tests" / "db")])}
    log = open(tmp_path / "serve.log", "w")
    serve = subprocess.Popen(["bash", str(REPO / "scripts" / "serve.sh")], cwd=REPO, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
    try:
        sessions = default_sessions()
        _wait(lambda: _healthy(port), 90, "the dashboard")
        _wait(lambda: len(_live(sessions)) == 2, 90, "two workers")
        dashboard_pid = _pid_listening(port)

        def good_png(seed: int) -> bytes:
            rng = np.random.default_rng(seed)
            return png_bytes((rng.random((16, 16, 3)) * 255).astype(np.uint8))

        def submit_good(seed: int) -> int:
            prepared = prepare_input([UploadedFile(f"good{seed}.png", good_png(seed))], InputKind.IMAGE)
            spec = get_method("baseline_image_albedo")
            return backend.submit(sessions, prepared, [(spec, {})]).job_ids[0]

        def enqueue(name: str, data: bytes, method: str) -> int:
            with session_scope(sessions) as session:
                row = store.get_or_create_input(session, [data], "image", name, 16, 16)
                return store.enqueue_job(session, row.id, method, get_method(method).resolve_params({})).id

        good = [submit_good(0)]
        refused = {}
        for name, data, kind in [("flipped.tif", byte_flipped(rgb_tiff()), InputKind.IMAGE),
                                 ("many.gif", many_frame_gif(5000), InputKind.IMAGE_SEQUENCE),
                                 ("nan.tif", float_tiff(np.full((8, 8), np.nan)), InputKind.IMAGE)]:
            prepared = prepare_input([UploadedFile(name, data)], kind)
            refused[name] = prepared.errors
            good.append(submit_good(len(good)))
        assert all(len(errors) == 1 and errors[0].startswith(name) for name, errors in refused.items()), refused

        die = enqueue("die.png", good_png(100), "test_die")  # kills whichever worker runs it
        bad = [enqueue("flipped.tif", byte_flipped(rgb_tiff()), "jiep"),
               enqueue("solid.png", solid_png(1500), "jiep"),
               enqueue("nan.tif", float_tiff(np.full((8, 8), np.nan)), "jiep")]
        for _ in range(4):
            good.append(submit_good(len(good)))
            time.sleep(1.0)

        def settled():
            with session_scope(sessions) as session:
                jobs = [store.get_job(session, j) for j in [*good, *bad, die]]
                return all(j.status in ("succeeded", "failed") for j in jobs) and jobs
        jobs = _wait(settled, 120, "every job to finish")
        by_id = {j.id: j for j in jobs}
        assert [by_id[j].status for j in good] == ["succeeded"] * len(good)
        for job_id in bad:
            job = by_id[job_id]
            assert (job.status, job.attempts, job.info["failure"]) == ("failed", 1, "user"), job.error
            assert "Error" not in job.error and "Traceback" not in job.error
        assert by_id[die].status == "failed" and by_id[die].info["quarantined"], by_id[die].error
        assert by_id[die].error.startswith("quarantined: running this job stopped 2 workers")

        # The dead workers were replaced; the dashboard is the same process and still answers; serve.sh runs on.
        assert _wait(lambda: len(_live(sessions)) >= 2, 60, "the restarted workers")
        assert _healthy(port) and _pid_listening(port) == dashboard_pid and serve.poll() is None
        assert (tmp_path / "serve.log").read_text().count("restarting it in") >= 2
        good.append(submit_good(99))
        _wait(lambda: _status(sessions, good[-1]) == "succeeded", 60, "a good job after the storm")
    finally:
        if serve.poll() is None:
            serve.send_signal(signal.SIGTERM)
            try:
                serve.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, signal.SIGKILL)
                serve.wait(10)
        log.close()
    assert serve.returncode is not None


def _live(sessions):
    from db import store
    from db.session import session_scope

    with session_scope(sessions) as session:
        return [w.worker_id for w in store.live_workers(session, 15)]


def _status(sessions, job_id):
    from db import store
    from db.session import session_scope

    with session_scope(sessions) as session:
        return store.get_job(session, job_id).status


def _pid_listening(port: int) -> int | None:
    """The pid of the process holding the dashboard's listening socket (from /proc, no extra tools)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                inode = fields[9]
                break
        if inode:
            break
    if inode is None:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) == f"socket:[{inode}]":
                    return int(proc.name)
        except OSError:
            continue
    return None
