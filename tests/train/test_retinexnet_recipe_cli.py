"""The self-contained RetinexNet training command (the one that produced the shipped weights), end to end on a tiny
LOL-layout folder: both phases, the steps-per-epoch schedule, the report, the exported weights and --evaluate."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from engine.methods.retinexnet import RetinexNet
from engine.train import retinexnet_recipe as recipe
from engine.train import retinexnet_reference as reference
from engine.weights import load_state_dict


@pytest.fixture
def lol_folder(tmp_path):
    rng = np.random.default_rng(0)
    for sub in ("low", "high"):
        (tmp_path / "lol" / sub).mkdir(parents=True)
    for k in range(5):
        high = np.clip(rng.uniform(0.2, 0.9, (1, 1, 3)) * (0.6 + 0.4 * rng.random((56, 64, 1))), 0, 1)
        low = np.clip(0.1 * high + rng.normal(0, 0.01, high.shape), 0, 1)
        for sub, image in (("low", low), ("high", high)):
            cv2.imwrite(str(tmp_path / "lol" / sub / f"{k}.png"), np.round(image[:, :, ::-1] * 255).astype(np.uint8))
    return tmp_path / "lol"


def test_training_command_runs_both_phases_and_exports(lol_folder, tmp_path, capsys):
    out = tmp_path / "run"
    code = reference.main(["--data", str(lol_folder), "--out", str(out), "--epochs", "2", "--steps-per-epoch", "3",
                        "--batch-size", "2", "--patch-size", "32", "--val-count", "1", "--precision", "float32",
                        "--seed", "3", "--split-seed", "0"])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["train_pairs"] == 4 and len(report["val_pairs"]) == 1
    # The training seed moved, the split did not: --evaluate (seed 0) scores the same held-out pair.
    assert report["val_pairs"] == [p[0].name for p in recipe.split_pairs(recipe.lol_pairs(lol_folder), 1, 0)[1]]
    for phase in ("decom", "relight"):
        assert report["phases"][phase]["steps"] == 6  # 2 epochs × 3 steps, more than one pass over 4 pairs / 2
        assert report["phases"][phase]["precision"] == "float32"
    assert np.isfinite(report["validation"]["psnr"]) and 0 < report["validation"]["ssim"] <= 1
    model = RetinexNet()
    model.load_state_dict(load_state_dict(out / "retinexnet.safetensors"))  # loads whole: every tensor is there
    capsys.readouterr()
    assert reference.main(["--data", str(lol_folder), "--val-count", "1", "--precision", "float32",
                        "--evaluate", str(out / "retinexnet.safetensors")]) == 0
    printed = capsys.readouterr().out
    assert f"PSNR {report['validation']['psnr']:.3f} dB" in printed and "float32" in printed
    assert "data, over all 5 pairs" in printed


def test_exposure_statistics_describe_the_pairs(lol_folder):
    stats = recipe.exposure_statistics(recipe.lol_pairs(lol_folder))
    assert stats["pairs"] == 5
    assert stats["correlation"] > 0.95  # the fixture's low images are the normal ones × 0.1, plus noise
    assert 9.0 < stats["ratio_p10"] <= stats["ratio_p50"] <= stats["ratio_p90"] < 11.0


def test_level_correlation_separates_input_from_reference():
    rows = [{"output_mean": 0.2 + k / 10, "input_mean": 0.02 + k / 100, "reference_mean": (0.5, 0.3, 0.6, 0.4)[k]}
            for k in range(4)]
    corr = recipe.level_correlation(rows)
    assert corr["output_vs_input"] == pytest.approx(1.0)
    assert abs(corr["output_vs_reference"]) < 0.5
    assert np.isnan(recipe.level_correlation(rows[:2])["output_vs_input"])


def test_training_command_needs_an_output_folder(lol_folder):
    with pytest.raises(SystemExit):
        reference.main(["--data", str(lol_folder)])
