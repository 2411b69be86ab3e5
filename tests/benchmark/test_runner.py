"""The benchmark runner on the real job queue: jobs per (method, item), scoring, resume, re-use."""

import numpy as np
import pytest

from db import benchmark_store as bstore
from db.models import Job
from db.session import session_scope
from engine.benchmark import BenchConfig, BenchmarkError, convention, leaderboard, run, start
from engine.datasets import get_adapter
from engine.metrics import get_metric
from engine.registry import get_method

from benchmark.tiny_data import BASELINES


def _jobs(sessions):
    with session_scope(sessions) as session:
        return session.query(Job).count()


def test_run_scores_each_method_and_item_from_queued_jobs(bench_store, tiny_mit):
    sessions, artifacts = bench_store
    config = BenchConfig(BASELINES, "mit-intrinsic", "train", str(tiny_mit))
    report = run(config, sessions=sessions, artifacts=artifacts, device="cpu", poll_s=0.01)
    assert report.complete and report.succeeded == 4 and report.failed == 0 and not report.reused
    assert _jobs(sessions) == 4  # one job per (method, item), all through the queue
    with session_scope(sessions) as session:
        rows = leaderboard.per_image(session, "mit-intrinsic", "train")
        entry = bstore.get_entry(session, report.run_id, "baseline_image_albedo", "apple")
        assert entry.device == "cpu" and entry.runtime_s is not None and entry.job_id is not None
        run_row = bstore.get_run(session, report.run_id)
        assert run_row.status == "complete" and run_row.config["metrics"]["grosse_lmse"].startswith("½ shading")
    # image-as-albedo: its reflectance is the input, so its score equals the metric on the linear image itself
    sample = get_adapter("mit-intrinsic").load(tiny_mit, "apple")
    expected = get_metric("albedo_lmse").compute({"reflectance": sample.frames[0]}, sample.truth)
    got = rows.query("method == 'baseline_image_albedo' and item == 'apple' and metric == 'albedo_lmse'")["value"]
    assert float(got.iloc[0]) == pytest.approx(expected, rel=1e-3, abs=1e-6)
    # the synthetic scene is exactly Retinex's model (a sharp albedo edge, smooth shading): it must beat the baseline
    table = leaderboard.summary(rows, get_adapter("mit-intrinsic").metrics)
    by_method = table.set_index("method")
    assert by_method.loc["baseline_color_retinex", "grosse_lmse"] < 0.2 * by_method.loc["baseline_image_albedo",
                                                                                          "grosse_lmse"]
    assert leaderboard.primary_metric(table) == "grosse_lmse"
    assert by_method.loc["baseline_color_retinex", "rank:grosse_lmse"] == 1


def test_identical_configuration_is_reused_and_a_stopped_run_resumes(bench_store, tiny_mit):
    sessions, artifacts = bench_store
    config = BenchConfig(("baseline_image_albedo",), "mit-intrinsic", "train", str(tiny_mit))
    first = start(config, sessions=sessions, artifacts=artifacts)  # queue only: nobody works
    assert first.pending == 2 and first.queued_now == 2
    resumed = run(config, sessions=sessions, artifacts=artifacts, device="cpu", poll_s=0.01)
    assert resumed.run_id == first.run_id and resumed.reused and resumed.queued_now == 0 and resumed.complete
    again = run(config, sessions=sessions, artifacts=artifacts, device="cpu", poll_s=0.01)
    assert again.run_id == first.run_id and again.queued_now == 0 and _jobs(sessions) == 2
    # a changed parameter is a different configuration; the queue still shares identical jobs across runs
    other = BenchConfig(("baseline_image_albedo", "baseline_color_retinex"), "mit-intrinsic", "train",
                        str(tiny_mit), params={"baseline_color_retinex": {"threshold_gray": "0.5"}})
    report = run(other, sessions=sessions, artifacts=artifacts, device="cpu", poll_s=0.01)
    assert report.run_id != first.run_id and report.complete and _jobs(sessions) == 4


def test_registered_dataset_and_clear_errors(bench_store, tiny_mit):
    sessions, artifacts = bench_store
    with session_scope(sessions) as session:
        bstore.register_dataset(session, "mit-mini", "mit-intrinsic", str(tiny_mit))
    needs = "grey_world produces none of what MIT Intrinsic Images.s metrics need \\(reflectance, shading\\)"
    with pytest.raises(BenchmarkError, match=needs):
        start(BenchConfig(("baseline_grey_world",), "mit-mini", "train"), sessions=sessions, artifacts=artifacts)
    with pytest.raises(BenchmarkError, match="unknown dataset 'nope'; registered: mit-mini"):
        start(BenchConfig(BASELINES, "nope"), sessions=sessions, artifacts=artifacts)
    with pytest.raises(BenchmarkError, match="give its folder"):
        start(BenchConfig(BASELINES, "mit-intrinsic"), sessions=sessions, artifacts=artifacts)
    report = start(BenchConfig(("@baselines",), "mit-mini", "all"), sessions=sessions, artifacts=artifacts)
    with session_scope(sessions) as session:
        assert set(bstore.get_run(session, report.run_id).methods) == set(BASELINES)


def test_input_convention_and_roles():
    from engine.datasets import Sample
    from engine.imaging import srgb_to_linear

    linear = np.array([[[0.1, 0.2, 0.4]]], dtype=np.float32)
    sample = Sample("x", (linear,), "linear", {})
    srgb = convention.method_frames(sample, get_method("baseline_color_retinex"))[0]
    assert srgb_to_linear(srgb) == pytest.approx(linear / 0.4, rel=1e-4)  # scaled to max 1, then encoded
    raw = convention.method_frames(sample, get_method("baseline_grey_world"))[0]
    assert raw == pytest.approx(linear)
    assert convention.output_roles(get_method("jiep")) == {"reflectance": "reflectance", "shading": "illumination",
                                                         "restored": "enhanced"}


def test_illuminant_vectors_and_restoration_layers_are_scored(bench_store, tmp_path):
    """Vector outputs (grey world's illuminant) and sRGB layers (identity on LOL) through the same queue."""
    import json

    import cv2

    from engine.metrics.angular import illuminant_error
    from engine.metrics.fidelity import psnr

    sessions, artifacts = bench_store
    cc = tmp_path / "cc"
    cc.mkdir()
    rng = np.random.default_rng(0)
    lights = {"a": [0.7, 0.5, 0.3], "b": [0.3, 0.5, 0.8]}
    for stem, light in lights.items():
        raw = (0.1 + 0.8 * rng.random((16, 16, 1))) * np.array([0.9, 0.6, 0.5])  # not grey: a nonzero error
        cv2.imwrite(str(cc / f"{stem}.png"), np.round(raw[:, :, ::-1] * 65535).astype(np.uint16))
        (cc / f"{stem}_metadata.json").write_text(json.dumps({"illuminant_color_raw": light}))
    report = run(BenchConfig(("baseline_grey_world",), "color-constancy", "all", str(cc)), sessions=sessions,
                 artifacts=artifacts, device="cpu", poll_s=0.01)
    assert report.complete and report.succeeded == 2
    with session_scope(sessions) as session:
        rows = leaderboard.per_image(session, "color-constancy", "all").set_index("item")
    sample = get_adapter("color-constancy").load(cc, "a")
    direct = illuminant_error(lights["a"], sample.frames[0].reshape(-1, 3).mean(axis=0))
    assert rows.loc["a", "value"] == pytest.approx(direct, abs=0.01)
    table = leaderboard.summary(rows.reset_index())
    assert {"angular_error:mean", "angular_error:median", "angular_error:trimean", "angular_error:best25",
            "angular_error:worst25"} <= set(table.columns)

    lol = tmp_path / "lol"
    for folder, value in (("low", 40), ("high", 120)):
        (lol / "eval15" / folder).mkdir(parents=True)
        cv2.imwrite(str(lol / "eval15" / folder / "1.png"), np.full((12, 12, 3), value, np.uint8))
    report = run(BenchConfig(("baseline_identity_enhance",), "lol", "test", str(lol)), sessions=sessions,
                 artifacts=artifacts, device="cpu", poll_s=0.01)
    assert report.complete and report.succeeded == 1
    with session_scope(sessions) as session:
        scores = leaderboard.per_image(session, "lol", "test").set_index("metric")["value"]
    assert scores["psnr_rgb"] == pytest.approx(psnr(np.full((1, 1, 3), 120 / 255), np.full((1, 1, 3), 40 / 255)))
    assert set(scores.index) == {"psnr_rgb", "psnr_y", "ssim_rgb", "ssim_y"}
