"""Max and median over frames: the sequence baselines every leaderboard shows."""

from __future__ import annotations

import numpy as np
import torch

from engine.methods import baselines_sequence as bs
from engine.registry import MethodInput, Role, RunContext, methods_for, InputKind


def run(spec, frames):
    resolved = spec.resolve_params({"input_encoding": "linear"})
    return spec.runner()(MethodInput(frames=tuple(frames)), resolved, RunContext(device=torch.device("cpu")))


def test_registered_as_sequence_baselines_with_roles():
    names = {s.name for s in methods_for(InputKind.IMAGE_SEQUENCE)}
    assert {"baseline_max_frames", "baseline_median_frames"} <= names
    for spec in (bs.MAX_SPEC, bs.MEDIAN_SPEC):
        assert spec.is_baseline and spec.task == "intrinsic"
        assert spec.output("reflectance").role == Role.REFLECTANCE and spec.output("shading").role == Role.SHADING


def test_reflectance_is_the_statistic_and_shading_explains_the_frames(rng):
    frames = [rng.uniform(0.05, 0.9, (5, 6, 3)).astype(np.float32) for _ in range(5)]
    for spec, statistic in ((bs.MAX_SPEC, np.max), (bs.MEDIAN_SPEC, np.median)):
        result = run(spec, frames)
        expected = statistic(np.stack(frames), axis=0)
        r = result.layers["reflectance"]
        np.testing.assert_allclose(r / r.max(), expected / expected.max(), rtol=1e-5)
        np.testing.assert_allclose(result.layers["shading"] * r[None], np.stack(frames), rtol=1e-4, atol=1e-6)
