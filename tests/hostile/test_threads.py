"""The thread policy: affinity and cgroup quota aware, split among the workers started together, passive waits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
