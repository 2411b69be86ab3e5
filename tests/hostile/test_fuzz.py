"""A fuzz of mutated PNG/JPEG/TIFF/WebP files through the CLI's and the dashboard's input paths.

Every mutant must end in exactly one of: a result (exit 0, strict-JSON ``result.json``, finite layers) or one
user-facing line (exit 2); never a traceback, another exit status, or a hang. CI runs a sample of
``FUZZ_SAMPLE`` mutants; ``INTRINSIC_LAB_FUZZ=all`` runs all 1,000 (about a minute), ``INTRINSIC_LAB_FUZZ=N`` the
first N. ``scripts/hostile_table.py --fuzz`` runs the same mutants as separate processes with time and peak memory.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from dashboard.uploads import UploadedFile, prepare_input
from engine.cli import main
from engine.registry import InputKind
from helpers.badfiles import fuzz_cases

FUZZ_SAMPLE = 40
CHEAP_METHOD = "baseline_image_albedo"  # decoding is what is under test; the method only has to run


def _selected() -> list[tuple[str, bytes]]:
    cases = fuzz_cases(1000)
    wanted = os.environ.get("INTRINSIC_LAB_FUZZ", "")
    if wanted == "all":
        return cases
    if wanted.isdigit():
        return cases[: int(wanted)]
    return cases[:: len(cases) // FUZZ_SAMPLE][:FUZZ_SAMPLE]


def _strict(constant):
    raise ValueError(f"result.json holds {constant}, which is not a JSON number")


@pytest.mark.parametrize("name,data", _selected(), ids=lambda v: v if isinstance(v, str) else "")
def test_mutant_gets_a_result_or_one_plain_line(name, data, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    out = tmp_path / "out"
    start = time.perf_counter()
    code = main(["run", CHEAP_METHOD, str(path), "--out", str(out), "--device", "cpu"])
    took = time.perf_counter() - start
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    assert code in (0, 2), captured.err
    assert took < 20, f"{name} took {took:.1f} s"
    if code == 0:
        record = json.loads((out / "result.json").read_text(), parse_constant=_strict)
        assert record["files"]
    else:
        lines = [line for line in captured.err.splitlines() if line.startswith("error: ")]
        assert len(lines) == 1 and name in lines[0], captured.err

    prepared = prepare_input([UploadedFile(name, data)], InputKind.IMAGE)
    assert prepared.ready != bool(prepared.errors)
    assert all(isinstance(m, str) and "Traceback" not in m for m in prepared.errors)
    assert prepared.ready == (code == 0), (prepared.errors, captured.err)
