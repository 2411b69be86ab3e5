"""AppTest checks of the Leaderboards and Benchmarks pages on a store holding a real scored run."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from benchmark.tiny_data import BASELINES, scored_store
from dashboard import state
from db.artifacts import ArtifactStore

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture
def scored(sessions, tmp_path):
    return scored_store(tmp_path / "mit", sessions, ArtifactStore())


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def frame_with(at: AppTest, column: str):
    """The page's dataframe that has ``column`` (AppTest does not expose dataframe keys)."""
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no dataframe with a {column!r} column")


def test_leaderboard_ranks_by_direction_and_keeps_reported_rows_apart(scored):
    at = open_page("app_pages/leaderboard.py")
    assert [t.value for t in at.title] == ["Leaderboards"]
    assert at.selectbox(key="leaderboard.sort").value == "grosse_lmse"  # MIT's primary score
    table = frame_with(at, "rank")
    from engine.registry import get_method

    # Display names, never internal ids, in the table and the chart legends; lower LMSE first.
    assert list(table["shown as"]) == [get_method(m).title for m in ("baseline_color_retinex", "baseline_image_albedo")]
    assert list(table["rank"]) == [1, 2]
    reported = frame_with(at, "source")
    assert set(reported["kind"]) == {"reported"} and "cgintrinsics" in set(reported["method"])
    assert not set(reported["method"]) & {"baseline_color_retinex", "baseline_image_albedo"}
    per_image = frame_with(at, "baseline_image_albedo")
    assert list(per_image.index) == ["apple", "box"] and set(per_image.columns) == set(BASELINES)
    # a higher-is-better column would sort the other way; here ranking by shading LMSE keeps direction "lower"
    at.selectbox(key="leaderboard.sort").set_value("shading_lmse").run()
    ranked = frame_with(at, "rank")
    assert ranked["shading_lmse"].is_monotonic_increasing


def test_drill_down_opens_the_gallery_on_that_image(scored):
    at = open_page("app_pages/leaderboard.py")
    at.selectbox(key="leaderboard.item").set_value("box").run()
    at.button(key="leaderboard.open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert [t.value for t in at.title] == ["Gallery"]
    assert sorted(at.multiselect(key=state.GALLERY_METHODS).value) == sorted(BASELINES)
    chosen = at.selectbox(key=state.GALLERY_INPUT)
    assert "mit-mini/box" in chosen.format_func(chosen.value)


def test_benchmark_page_lists_runs_and_validates_folders(scored, tmp_path, monkeypatch):
    monkeypatch.setenv("INTRINSIC_LAB_DATASETS", str(tmp_path))
    at = open_page("app_pages/benchmark.py")
    runs = frame_with(at, "progress")
    assert list(runs["status"]) == ["complete"] and runs["progress"].iloc[0] == 1.0
    at.text_input(key="benchmark.register_name").input("broken")
    at.text_input(key="benchmark.register_folder").input("missing").run()
    at.button(key="benchmark.register").click().run()
    shown = lambda: [e.value.replace("\\", "") for e in at.error]  # noqa: E731 (Markdown escapes removed)
    assert any("missing: no such folder in the datasets folder" in m for m in shown())
    # Anywhere else on the server: one message, whether or not the folder exists, naming nothing there.
    at.text_input(key="benchmark.register_folder").input("/root").run()
    at.button(key="benchmark.register").click().run()
    assert any("only folders inside the server" in m and "/root" not in m for m in shown())


def test_backend_registers_queues_and_lists_benchmarks(sessions, tmp_path, monkeypatch):
    """What the Benchmarks page calls: validation by the adapter inside the datasets folder, the queue, the runs."""
    from benchmark.tiny_data import write_tiny_mit
    from dashboard import backend
    from engine.datasets import DatasetError

    monkeypatch.setenv("INTRINSIC_LAB_DATASETS", str(tmp_path))
    write_tiny_mit(tmp_path / "mit")
    assert backend.register_dataset(sessions, " mini ", "mit-intrinsic", "mit").startswith(
        "Registered **mini** (test: 0, train: 2, all: 2 items)")
    assert backend.registered_datasets(sessions)["mini"] == ("mit-intrinsic", "mit")
    with pytest.raises(DatasetError, match="no such folder"):
        backend.register_dataset(sessions, "gone", "mit-intrinsic", "missing")
    with pytest.raises(DatasetError, match="only folders inside"):
        backend.register_dataset(sessions, "away", "mit-intrinsic", str(tmp_path / "mit"))
    assert backend.start_benchmark(sessions, [BASELINES[0]], "mini", "train").startswith("Run 1: 2 job(s) queued")
    runs = backend.benchmark_runs(sessions)
    assert [(r["dataset"], r["status"], r["progress"]) for r in runs] == [("mini", "running", 0.0)]
    assert list(backend.leaderboards(sessions)["dataset"]) == ["mini"]  # a board as soon as a run exists
    assert backend.leaderboard_rows(sessions, "mini", "train").empty  # nothing scored yet
