"""``python -m engine.speed --busy N``: the busy neighbours really spin, and always stop by themselves."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from engine import speed


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime in clock ticks (100 Hz on Linux)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_busy_processes_spin_while_the_block_runs_and_stop_after_it():
    with speed.busy_processes(1, seconds=30) as procs:
        assert len(procs) == 1
        pid = procs[0].pid
        before = _cpu_seconds(pid)
        deadline = time.monotonic() + 20
        while _cpu_seconds(pid) - before < 0.05 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _cpu_seconds(pid) - before >= 0.05, "the busy process did not use the CPU"
    assert procs[0].poll() is not None


def test_busy_processes_stop_by_themselves_at_their_deadline():
    with speed.busy_processes(1, seconds=0.2) as procs:
        procs[0].wait(timeout=30)  # ends on its own, without being terminated
        assert procs[0].returncode == 0


def test_no_busy_processes_and_the_ratio():
    with speed.busy_processes(0) as procs:
        assert procs == []
    assert speed.busy_ratio({"median_s": 2.0}, {"median_s": 3.0}) == pytest.approx(1.5)


def test_busy_must_not_be_negative(capsys):
    with pytest.raises(SystemExit):
        speed.main(["--busy", "-1", "--cases", "jiep-600x400"])



@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("priority", ["idle", "nice"])
def test_busy_processes_can_run_at_a_background_priority(priority):
    import os

    def applied(pid):
        if priority == "idle":
            return os.sched_getscheduler(pid) == os.SCHED_IDLE
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16]) >= 10  # field 19: nice

    with speed.busy_processes(1, seconds=30, priority=priority) as procs:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not applied(procs[0].pid):  # the child sets it as it starts
            time.sleep(0.05)
        assert applied(procs[0].pid)
    assert procs[0].poll() is not None


def test_a_case_whose_data_is_missing_is_skipped_with_its_reason_not_failed(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "INTRINSIC_LAB_SHARED": str(tmp_path / "no-shared")}
    proc = subprocess.run([sys.executable, "-m", "engine.speed", "--cases", "sfsnet-12mp", "--device", "cpu",
                           "--repeat", "1"], capture_output=True, text=True, env=env, cwd=speed.REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "skipped: needs the face photo" in proc.stdout and "FAILED" not in proc.stdout
