"""Downloads, queue state, time estimates and the speed panel, on a real store with a real worker run."""

from __future__ import annotations

import json
import zipfile

from dashboard import backend, results
from dashboard.uploads import UploadedFile, prepare_input
from engine.registry import InputKind, get_method
from engine.worker import Worker, WorkerConfig


def test_downloads_queue_and_speed(sessions, photo_png):
    prepared = prepare_input([UploadedFile("photo.png", photo_png)], InputKind.IMAGE)
    first = backend.submit(sessions, prepared, [(get_method("jiep"), {})])
    second = backend.submit(sessions, prepared, [(get_method("baseline_identity_enhance"), {})])
    job_id, later = first.job_ids[0], second.job_ids[0]
    assert results.queue_state(sessions, job_id).position == 1
    state = results.queue_state(sessions, later)
    assert state.position == 2 and "no worker is running" in state.sentence()
    assert results.typical_seconds(sessions, "jiep", 64 * 48) is None  # no earlier run to go by

    Worker(WorkerConfig(worker_id="t", device="cpu"), sessions=sessions).run(until_empty=True)
    assert results.queue_state(sessions, job_id) is None  # finished: not in the queue
    assert results.typical_seconds(sessions, "jiep", 64 * 48) > 0
    assert results.typical_seconds(sessions, "jiep", 4000 * 3000) is None  # a far bigger input is no guide

    archive = zipfile.ZipFile(results.result_zip(sessions, job_id))  # a temporary file, built in chunks
    names = sorted(archive.namelist())
    assert names == [f"jiep_{job_id}_{layer}.png" for layer in ("enhanced", "illumination", "reflectance")] \
        + ["result.json"]
    record = json.loads(archive.read("result.json"))
    assert record["method"] == "jiep" and len(record["layers"]) == 3
    assert archive.read(record["layers"][0]["file"])[:4] == b"\x89PNG"

    whole = zipfile.ZipFile(results.input_zip(sessions, first.input_id))
    assert "input/input.png" in whole.namelist()
    assert {n.split("/")[0] for n in whole.namelist()} == {"input", "jiep", "baseline_identity_enhance"}

    speed = {row["method"]: row for row in results.speed_table(sessions)}
    assert speed["JieP: joint intrinsic-extrinsic prior Retinex"]["runs"] == 1
    assert speed["JieP: joint intrinsic-extrinsic prior Retinex"]["compute (s)"] > 0
