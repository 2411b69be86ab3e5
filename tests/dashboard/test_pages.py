"""One AppTest smoke test per page, each checking real content from a real (temporary) store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from dashboard import state
from db import store
from db.models import utcnow
from db.session import session_scope
from engine.worker import Worker, WorkerConfig
from helpers.badfiles import huge_png_header

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
TIMEOUT = 60


def open_page(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def queue_job(sessions, png: bytes, method: str = "jiep", name: str = "photo.png") -> int:
    from engine.registry import get_method

    with session_scope(sessions) as session:
        row = store.get_or_create_input(session, [png], "image", name, 64, 48)
        return store.enqueue_job(session, row.id, method, get_method(method).resolve_params({})).id


def run_worker(sessions) -> None:
    Worker(WorkerConfig(worker_id="test-worker", device="cpu"), sessions=sessions).run(until_empty=True)


def texts(elements) -> list[str]:
    return [str(e.value) for e in elements]


def test_decompose_uploads_runs_and_shows_results(sessions, photo_png):
    at = open_page()
    assert texts(at.title) == ["Decompose an image"]
    assert at.button(key=state.RUN).disabled  # nothing uploaded yet

    at.file_uploader(key=state.upload_key("image")).set_value(("photo.png", photo_png, "image/png")).run()
    assert not at.error
    assert "64×48 px" in texts(at.caption)
    assert at.multiselect(key=state.methods_key("image")).value == ["jiep"]
    # Parameter widgets come from JieP's ParamSpecs with the paper's defaults.
    assert at.select_slider(key=state.param_key("jiep", "alpha")).value == pytest.approx(0.001)
    assert at.slider(key=state.param_key("jiep", "K")).value == 20
    at.select_slider(key=state.param_key("jiep", "lambda")).set_value(0.5)

    at.button(key=state.RUN).click().run()
    assert not at.exception
    [job_id] = at.session_state[state.SUBMITTED_JOBS]
    with session_scope(sessions) as session:
        job = store.get_job(session, job_id)
        assert (job.method, job.status, job.params["lambda"], job.params["alpha"]) == ("jiep", "queued", 0.5, 0.001)
        assert job.input.original_name == "photo.png"
    assert any("queued" in m for m in texts(at.markdown))

    run_worker(sessions)
    at.run()  # the page now shows the finished job: the input beside its three layers, each downloadable
    assert any("succeeded" in m for m in texts(at.markdown))
    captions = [c for img in at.image for c in img.captions if not c.startswith("colour scale")]
    assert [c.split(":")[0] for c in captions[:2]] == ["photo.png", "input"]  # the upload preview, then results
    assert [c.split(":")[0] for c in captions[2:]] == ["illumination", "reflectance", "enhanced"]
    # Plain words for a non-expert, and a colour bar under the one-channel illumination.
    assert "lighting of the photo" in captions[2] and "colours of the surfaces" in captions[3]
    assert sum(c.startswith("colour scale") for img in at.image for c in img.captions) == 1
    assert sorted(b.label for b in at.download_button) == ["Download all (zip of PNGs + result.json)"] + ["PNG"] * 3
    assert any(c.endswith("on cpu · changed settings: lambda=0.5") for c in texts(at.caption))

    # The same upload again reuses the stored input and the identical finished job.
    at.button(key=state.RUN).click().run()
    assert at.session_state[state.SUBMITTED_JOBS] == [job_id]
    assert "already stored" in at.session_state[state.SUBMIT_NOTE]


def test_decompose_shows_decoder_message_and_blocks_run(sessions):
    at = open_page()
    at.file_uploader(key=state.upload_key("image")).set_value(("bomb.png", huge_png_header(), "image/png")).run()
    assert any("50000×50000" in e and "megapixels" in e for e in texts(at.error))
    assert at.button(key=state.RUN).disabled
    with session_scope(sessions) as session:
        assert store.list_inputs(session) == []


def test_methods_page_lists_registered_methods():
    at = open_page("app_pages/methods.py")
    assert texts(at.title) == ["Methods"]
    headers = texts(at.subheader)
    assert any(h.startswith("JieP") and "(2017)" in h for h in headers)
    assert any("`jiep`" in c and "one image" in c for c in texts(at.caption))
    # The output table carries each layer's meaning from the spec.
    tables = [t.value for t in at.table]
    assert any("illumination" in t.index and "reflectance" in t.index for t in tables)
    # Shipped weights come with their model card; baselines without a year show none.
    assert any(e.label.startswith("Model card: project weights") for e in at.expander)
    assert not any(h.endswith("(0)") or "(0) ·" in h for h in headers)


def test_jobs_page_shows_jobs_and_retries_a_failed_one(sessions, photo_png):
    failed = queue_job(sessions, photo_png)
    with session_scope(sessions) as session:
        claimed = store.claim_next_job(session, "w1", 60)
        assert claimed.id == failed
        store.fail_job(session, failed, "w1", "the input is too dark to decompose", retryable=False)
    at = open_page("app_pages/jobs.py")
    assert texts(at.title) == ["Jobs"]
    table = at.dataframe[0].value
    assert list(table["job"]) == [failed] and list(table["status"]) == ["failed"]
    assert "too dark" in table["error / message"][0]
    assert {m.label: m.value for m in at.metric}["Failed"] == "1"

    assert at.selectbox(key=state.JOBS_SELECTED).value == failed
    assert at.button(key=state.JOBS_CANCEL).disabled
    at.button(key=state.JOBS_RETRY).click().run()
    assert any("queued again" in s for s in texts(at.success))
    with session_scope(sessions) as session:
        assert store.get_job(session, failed).status == "queued"

    at.button(key=state.JOBS_CANCEL).click().run()
    with session_scope(sessions) as session:
        assert store.get_job(session, failed).status == "cancelled"


def test_gallery_lists_outputs_and_compares(sessions, photo_png):
    queue_job(sessions, photo_png)
    run_worker(sessions)
    at = open_page("app_pages/gallery.py")
    assert texts(at.title) == ["Gallery"]
    assert any("photo.png" in m and "64×48" in m for m in texts(at.text))  # the file name as plain text
    # The gallery's thumbnail of JieP is its most telling layer (enhanced), not the dark illumination.
    assert "JieP: joint intrinsic-extrinsic prior Retinex · enhanced" in [c for img in at.image for c in img.captions]
    # One input's results in one grid: a row per role, a column per method, the input once.
    assert at.segmented_control(key=state.GALLERY_VIEW).value == "grid"
    rows = [m for m in texts(at.markdown) if m in ("**enhanced**", "**reflectance**", "**illumination**")]
    assert rows == ["**enhanced**", "**reflectance**", "**illumination**"]
    assert at.query_params["input"] in ("1", ["1"])
    assert any(b.label.startswith("Download everything on this image") for b in at.download_button)

    at.segmented_control(key=state.GALLERY_VIEW).set_value("compare").run()
    labels = at.selectbox(key=state.COMPARE_RIGHT).options
    assert labels == ["input", "jiep · illumination", "jiep · reflectance", "jiep · enhanced"]

    at.selectbox(key=state.COMPARE_RIGHT).set_value("jiep · reflectance")
    at.slider(key=f"{state.COMPARE_AMOUNT}.wipe").set_value(0.25)
    at.slider(key=state.ZOOM).set_value(2.0).run()
    assert not at.exception
    captions = [c for img in at.image for c in img.captions]
    assert "left of the line: input · right of it: jiep · reflectance" in captions
    assert str(at.query_params["right"]).strip("[]'") == "jiep · reflectance"

    # Filtering by a day without runs, or by a method that never ran, empties the grid.
    today = utcnow().date()
    at.date_input(key=state.GALLERY_DATES).set_value((today - timedelta(days=3), today - timedelta(days=2))).run()
    assert any("Nothing here yet" in i for i in texts(at.info))
    at.date_input(key=state.GALLERY_DATES).set_value((today, today)).run()
    assert not at.info

    at.multiselect(key=state.GALLERY_METHODS).set_value(["weiss"]).run()
    assert any("Nothing here yet" in i for i in texts(at.info))


def test_sidebar_reports_database_and_a_missing_worker(sessions, photo_png):
    job_id = queue_job(sessions, photo_png)
    at = open_page()
    sidebar = " ".join(texts(at.sidebar.caption))
    assert "SQLite" in sidebar and "waiting for a worker" in sidebar
    with session_scope(sessions) as session:
        store.get_job(session, job_id).created_at = utcnow() - timedelta(minutes=5)
    at = open_page()  # a fresh session: AppTest drops the sidebar on reruns of an st.navigation app
    sidebar = " ".join(texts(at.sidebar.caption))
    assert "No worker is running" in sidebar and "make worker" in sidebar


def test_decompose_shows_vector_outputs_as_numbers(sessions, photo_png):
    from engine.imaging import decode_image
    from engine.registry import MethodInput, run_method

    at = open_page()
    at.segmented_control(key=state.INPUT_KIND).set_value("raw_image").run()
    at.file_uploader(key=state.upload_key("raw_image")).set_value(("raw.png", photo_png, "image/png")).run()
    at.multiselect(key=state.methods_key("raw_image")).set_value(["baseline_grey_world"])
    at.button(key=state.RUN).click().run()
    run_worker(sessions)
    at.run()
    expected, _, _ = run_method("baseline_grey_world", MethodInput((decode_image(photo_png).pixels,)), device="cpu")
    numbers = ", ".join(f"{v:.4g}" for v in np.ravel(expected.values["illuminant"]))
    assert f"**illuminant**: {numbers}" in texts(at.markdown)


def test_sidebar_tells_an_idle_worker_from_none(sessions):
    with session_scope(sessions) as session:
        store.record_heartbeat(session, "gpu-box:1:cuda", "cuda:0 (test)", ["jiep"])
    sidebar = " ".join(texts(open_page().sidebar.caption))
    assert "1 worker(s) ready" in sidebar and "no jobs waiting" in sidebar
    with session_scope(sessions) as session:
        store.record_worker_stopped(session, "gpu-box:1:cuda")
    sidebar = " ".join(texts(open_page().sidebar.caption))
    assert "No worker is running" in sidebar
