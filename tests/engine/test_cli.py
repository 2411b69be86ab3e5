"""The CLI as a user meets it: real subprocesses, real files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers.badfiles import cases, gradient
from engine.imaging import encode_png

REPO = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd=REPO):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=300)


def test_methods_lists_registered_methods():
    proc = run_cli("methods", "--json")
    assert proc.returncode == 0, proc.stderr
    names = {m["name"] for m in json.loads(proc.stdout)}
    assert "jiep" in names


@pytest.mark.parametrize("name,data,expected", [c for c in cases() if c[2] is not None], ids=lambda v: str(v)[:12])
def test_bad_input_gives_one_clear_line(tmp_path, name, data, expected):
    path = tmp_path / name
    path.write_bytes(data)
    proc = run_cli("run", "jiep", str(path), "--out", str(tmp_path / "out"))
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ") and expected in lines[0]
    assert "Traceback" not in proc.stderr


def test_missing_file_and_unknown_method(tmp_path):
    proc = run_cli("run", "jiep", str(tmp_path / "nope.png"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "no such file" in proc.stderr
    img = tmp_path / "img.png"
    img.write_bytes(encode_png(gradient()))
    proc = run_cli("run", "no-such-method", str(img), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "unknown method 'no-such-method'" in proc.stderr
    proc = run_cli("run", "jiep", str(img), "--out", str(tmp_path / "o"), "-p", "nonsense=1")
    assert proc.returncode == 2 and "unknown parameter" in proc.stderr


def test_one_by_one_image_is_refused_clearly(tmp_path):
    img = tmp_path / "dot.png"
    img.write_bytes(encode_png(np.full((1, 1, 3), 0.5, np.float32)))
    proc = run_cli("run", "jiep", str(img), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "1×1 pixels" in proc.stderr
