"""The MIT validation both intrinsic recipes share (``intrinsic_data.evaluate_mit`` / ``mit_metrics``), on a tiny
MIT-layout folder written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.imaging import encode_png
from engine.methods.cgintrinsics import CGIntrinsicsNet
from engine.methods.cgintrinsics import decompose as cg_decompose
from engine.methods.intrinseg import IntrinSegNet
from engine.methods.intrinseg import decompose as seg_decompose
from engine.train.intrinsic_data import evaluate_mit, load_mit_object, mit_metrics


@pytest.fixture(scope="module")
def mit_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("mit")
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:48, 0:64] / 48.0
    for name in ("cube", "ball"):
        folder = root / name
        folder.mkdir()
        albedo = np.kron(rng.uniform(0.2, 0.9, (4, 4, 3)), np.ones((12, 16, 1)))
        shading = (0.3 + 0.6 * x * (1 - 0.5 * y))[..., None]
        mask = np.zeros((48, 64, 1))
        mask[4:44, 6:58] = 1
        (folder / "reflectance.png").write_bytes(encode_png(albedo))
        (folder / "shading.png").write_bytes(encode_png(np.repeat(shading, 3, axis=2)))
        (folder / "diffuse.png").write_bytes(encode_png(albedo * shading))
        (folder / "mask.png").write_bytes(encode_png(mask, bit_depth=8))
    return root


def test_the_truth_scores_zero_and_a_flat_guess_does_not(mit_dir):
    model = torch.nn.Linear(1, 1).train()

    def oracle(name):
        obj = load_mit_object(mit_dir, name, lights=False)
        return lambda image: (obj["reflectance"], obj["shading"])

    for name in ("cube", "ball"):
        exact = evaluate_mit(model, str(mit_dir), [name], oracle(name))[name]
        assert exact["grosse_lmse"] < 1e-6
        flat = evaluate_mit(model, str(mit_dir), [name],
                            lambda image: (np.ones_like(image), np.ones(image.shape[:2] + (1,))))[name]
        assert flat["albedo_lmse"] > 0.01 and flat["shading_lmse"] > 0.001  # smooth shading: small locally
    assert model.training  # its mode is given back


def test_both_networks_are_scored_through_their_runner_path(mit_dir):
    device = torch.device("cpu")
    torch.manual_seed(0)
    cg = CGIntrinsicsNet(width=0.0625).train()
    seg = IntrinSegNet(width=0.125).train()

    def seg_split(image):
        out = seg_decompose(image, seg, device, "aspect", 128)
        return out["albedo"], out["shading"]

    for model, split in ((cg, lambda image: cg_decompose(image, cg, device, 128)), (seg, seg_split)):
        scores = evaluate_mit(model, str(mit_dir), ["cube", "ball"], split)
        assert set(scores) == {"cube", "ball"} and model.training
        metrics = mit_metrics(scores, "mit")
        assert set(metrics) == {"mit_lmse", "mit_albedo_lmse", "mit_shading_lmse"}
        assert np.isfinite(list(metrics.values())).all()
        assert metrics["mit_lmse"] == pytest.approx(0.5 * (metrics["mit_albedo_lmse"] + metrics["mit_shading_lmse"]))
