"""The thread policy: affinity and cgroup quota aware, split among the workers started together, passive waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import threads

REPO = Path(__file__).resolve().parents[2]


def test_share_follows_affinity_quota_and_worker_count(tmp_path, monkeypatch):
    monkeypatch.delenv(threads.THREADS_ENV, raising=False)
    monkeypatch.delenv(threads.WORKERS_ENV, raising=False)
    monkeypatch.setattr(threads, "_affinity_cpus", lambda: 8)
    assert threads.available_cpus(tmp_path) == 8  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("250000 100000\n")  # docker --cpus 2.5
    assert threads.available_cpus(tmp_path) == 3
    assert threads.thread_share(cgroup_root=tmp_path) == 3
    monkeypatch.setenv(threads.WORKERS_ENV, "2")
    assert threads.thread_share(cgroup_root=tmp_path) == 1
    monkeypatch.setenv(threads.WORKERS_ENV, "8")
    assert threads.thread_share(cgroup_root=tmp_path) == 1  # never zero
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert threads.thread_share(cgroup_root=tmp_path) == 1 and threads.thread_share(2, tmp_path) == 4
    monkeypatch.setenv(threads.THREADS_ENV, "5")
    assert threads.thread_share(cgroup_root=tmp_path) == 5
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("150000")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000")
    assert threads.available_cpus(v1) == 2


def test_python_m_engine_sets_passive_waits_and_its_share_before_torch_loads():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env.update({"INTRINSIC_LAB_WORKERS": "64", "PYTHONPATH": str(REPO)})
    code = ("import runpy, sys; sys.argv = ['engine', 'methods'];\n"
            "import engine.threads as t; t.apply_thread_policy();\n"
            "import torch, os; print(os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'], "
            "torch.get_num_threads())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["PASSIVE", "1", "1"]
    main = (REPO / "engine" / "__main__.py").read_text()
    assert main.index("apply_thread_policy()") < main.index("from engine.cli import main")


def test_threads_for_work_one_per_stretch_of_pixels_within_the_share():
    assert threads.threads_for_work(240_000, 2_500_000, 2) == 1  # JieP at 600×400: one thread
    assert threads.threads_for_work(6_000_000, 2_500_000, 2) == 2
    assert threads.threads_for_work(6_000_000, 2_500_000, 16) == 2
    assert threads.threads_for_work(60_000_000, 2_500_000, 16) == 16  # never above the share
    assert threads.threads_for_work(10, 2_500_000, 1) == 1  # never zero


def test_a_method_runs_with_its_thread_count_and_the_process_gets_its_own_back():
    """JieP declares one thread per 2.5 MP: a small photo runs single-threaded; the process's count is restored,
    also when the method fails; a method without the setting runs with the process's count."""
    import numpy as np
    import torch

    from engine.errors import IntrinsicLabError
    from engine.registry import MethodInput, find_method, method_threads, run_method

    assert find_method("jiep").pixels_per_thread and find_method("retinexnet").pixels_per_thread is None
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        image = np.random.default_rng(0).uniform(0.05, 0.9, (40, 60, 3)).astype(np.float32)
        _, ctx, _ = run_method("jiep", MethodInput(frames=(image,)), {}, device="cpu")
        assert ctx.threads == 1 and torch.get_num_threads() == 2
        _, ctx, _ = run_method("baseline_image_albedo", MethodInput(frames=(image,)), {}, device="cpu")
        assert ctx.threads == 2
        with pytest.raises(IntrinsicLabError):  # a run that fails inside the method still restores the count
            with method_threads(find_method("jiep"), MethodInput(frames=(image,)), torch.device("cpu")) as n:
                assert n == 1 and torch.get_num_threads() == 1
                raise IntrinsicLabError("failed inside the method")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)



def test_training_and_sweeps_run_as_background_work():
    """background_priority: SCHED_IDLE by default (every thread, also ones started before), nice 10 or nothing on
    request; in child processes so this test process keeps its priority."""
    code = ("import os, threading, time; from engine.threads import background_priority; "
            "t = threading.Thread(target=time.sleep, args=(1,)); t.start(); "
            "mode = background_priority(); "
            "tids = [int(x) for x in os.listdir('/proc/self/task')]; "
            "print(mode, sorted({os.sched_getscheduler(x) for x in tids}), os.nice(0))")
    env = {k: v for k, v in os.environ.items() if k != threads.BACKGROUND_ENV}
    own = os.nice(0)

    def run(mode=None):
        extra = {threads.BACKGROUND_ENV: mode} if mode else {}
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True,
                             env={**env, **extra}).stdout.strip().split(maxsplit=1)
        return out[0], out[1]

    assert run() == ("idle", f"[{os.SCHED_IDLE}] {own}")
    assert run("nice") == ("nice", f"[{os.SCHED_OTHER}] {max(own, 10)}")
    assert run("normal") == ("normal", f"[{os.SCHED_OTHER}] {own}")
    with pytest.raises(ValueError):
        threads.set_priority("urgent")


def test_a_bad_background_setting_is_refused_before_training_starts(tmp_path):
    """A typo in INTRINSIC_LAB_BACKGROUND is named, with exit status 2, not quietly taken for idle."""
    env = {**os.environ, threads.BACKGROUND_ENV: "urgent"}
    done = subprocess.run([sys.executable, "-m", "engine", "train", "sfsnet", "--data", "synthetic", "--steps", "1",
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "INTRINSIC_LAB_BACKGROUND='urgent' is not one of idle, nice, normal" in done.stderr
    assert "Traceback" not in done.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


def test_a_module_still_being_imported_by_another_thread_is_left_alone(monkeypatch):
    """In the dashboard's server, one session's thread may be importing torch while another applies the policy:
    torch is then in sys.modules without set_num_threads yet. That must not raise (it took a page down)."""
    import types

    monkeypatch.setitem(sys.modules, "torch", types.ModuleType("torch"))  # what a half-done import looks like
    monkeypatch.setitem(sys.modules, "cv2", types.ModuleType("cv2"))
    assert threads.apply_thread_policy(1) >= 1


def test_the_dashboard_applies_the_policy_once_per_process():
    code = ("import torch; from engine.threads import apply_thread_policy_once; "
            "first = apply_thread_policy_once(1); torch.set_num_threads(2); "
            "print(first, apply_thread_policy_once(1), torch.get_num_threads())")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", threads.THREADS_ENV)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env,
                         check=True).stdout.split()
    assert out == ["1", "1", "2"]  # the second call changed nothing
