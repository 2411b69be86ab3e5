"""The C heap of compute processes (engine/allocator.py): tcmalloc is preloaded where installed and keeps freed tensor
memory for reuse, and a long-lived process gives it back when it holds more than it should. Each case runs in its own
interpreter, so the test process keeps glibc's allocator."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from engine import allocator

REPO = Path(__file__).resolve().parents[2]
glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                           reason="the preload and malloc_trim are for glibc systems")

def test_bad_settings_are_named(monkeypatch):
    monkeypatch.setenv(allocator.MODE_ENV, "fast")
    with pytest.raises(ValueError, match="INTRINSIC_LAB_MALLOC='fast'"):
        allocator.requested_mode()
    monkeypatch.setenv(allocator.KEEP_ENV, "lots")
    with pytest.raises(ValueError, match="INTRINSIC_LAB_MALLOC_KEEP='lots'"):
        allocator.keep_bytes()
    monkeypatch.setenv(allocator.KEEP_ENV, "512M")
    assert allocator.keep_bytes() == 512 << 20
    monkeypatch.delenv(allocator.KEEP_ENV)
    assert allocator.keep_bytes() == allocator.DEFAULT_KEEP


@glibc
def test_the_engine_process_runs_with_tcmalloc_where_installed_and_refuses_a_bad_mode():
    code = "import runpy, sys; sys.argv = ['engine', '--help']; runpy.run_module('engine', run_name='__main__')"
    check = ("import engine.allocator as a, runpy, sys, contextlib, io\n"
             "sys.argv = ['engine', '--help']\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    try:\n        runpy.run_module('engine', run_name='__main__')\n"
             "    except SystemExit:\n        pass\n"
             "print(a.current_mode())\n")
    out = subprocess.run([sys.executable, "-c", check], cwd=REPO, capture_output=True, text=True, timeout=120)
    expected = "tcmalloc" if allocator.tcmalloc_path() else "system"
    assert out.stdout.strip().splitlines()[-1] == expected, out.stderr
    bad = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, allocator.MODE_ENV: "fast"})
    assert bad.returncode == 2
    assert "INTRINSIC_LAB_MALLOC='fast'" in bad.stderr and "Traceback" not in bad.stderr


_TCMALLOC = """
import numpy as np
from engine import allocator
allocator.preload_tcmalloc()  # starts this program again with tcmalloc preloaded
mode = allocator.current_mode()
block = np.ones((200 << 20) // 8)  # 200 MB, every page touched
del block
free = allocator.free_bytes()
print(mode, allocator.current_mode(), free >> 20, allocator.release_memory(keep=1 << 30), allocator.release_memory(keep=0),
      allocator.free_bytes() >> 20)
"""


needs_tcmalloc = pytest.mark.skipif(allocator.tcmalloc_path() is None,
                                    reason="tcmalloc is not installed (libtcmalloc-minimal4)")


def _program(code: str, mode: str) -> list[str]:
    """Run ``code`` in a fresh interpreter with INTRINSIC_LAB_MALLOC=mode and nothing preloaded; its output words."""
    env = {**os.environ, allocator.MODE_ENV: mode}
    env.pop("LD_PRELOAD", None)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()


@needs_tcmalloc
def test_tcmalloc_is_preloaded_by_re_executing_and_gives_memory_back_on_release():
    mode, heap, free_mb, kept, released, after_mb = _program(_TCMALLOC, "tcmalloc")
    assert (mode, heap) == ("tcmalloc", "tcmalloc")
    assert int(free_mb) >= 190  # freed, kept for the next tensor (glibc would have unmapped it at once)
    assert kept == "False" and released == "True" and int(after_mb) < 16


_CHILD = """
import os, subprocess, sys
from engine import allocator
allocator.preload_tcmalloc()
child = subprocess.run([sys.executable, "-c", "from engine import allocator; print(allocator.current_mode())"],
                       capture_output=True, text=True).stdout.strip()
print(allocator.current_mode(), os.environ.get("LD_PRELOAD", "-"), os.environ.get("INTRINSIC_LAB_MALLOC_REEXEC", "-"),
      child)
"""


@needs_tcmalloc
def test_programs_a_tcmalloc_process_starts_keep_their_own_allocator():
    assert _program(_CHILD, "auto") == ["tcmalloc", "-", "-", "system"]
