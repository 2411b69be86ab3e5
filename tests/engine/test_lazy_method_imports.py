"""The CLI runs one method, so it imports that method's module only (not every method's libraries)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import UnknownMethodError
from engine.registry import find_method, get_method

REPO = Path(__file__).resolve().parents[2]


def test_find_method_imports_only_the_methods_own_module():
    code = ("import sys, json; from engine.registry import find_method; spec = find_method('jiep'); "
            "print(json.dumps([spec.name, sorted(m for m in sys.modules if m.startswith('engine.methods.'))]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    name, modules = json.loads(out.stdout.strip().splitlines()[-1])
    assert name == "jiep" and modules == ["engine.methods.jiep"]


def test_find_method_agrees_with_get_method_and_refuses_unknown_names():
    assert find_method("retinexnet") is get_method("retinexnet")
    with pytest.raises(UnknownMethodError, match="registered: .*jiep"):
        find_method("jeip")
