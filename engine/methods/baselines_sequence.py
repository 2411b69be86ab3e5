"""Trivial baselines for image sequences of a static scene under changing light (I_t = R · S_t per channel).

* **Max over frames**: reflectance = the per-pixel maximum of the frames. Under a light that moves around the scene,
  every pixel is lit nearly head-on in some frame, and near that peak the cosine shading is flat, so the maximum is a
  good reflectance up to a slowly varying scale. On the MIT light01–10 sequences it beats Weiss (2001).
* **Median over frames**: reflectance = the per-pixel median; the classic answer when shadows move across a pixel
  in fewer than half of the frames.

Shading of each frame = frame / reflectance (per channel). Both work in linear light; outputs are linear, the
reflectance scaled so that its bright end is 1.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)
from ..sequence_layers import linear_stack, normalise_reflectance, shading_from_reflectance


def _runner(statistic: Callable[[np.ndarray], np.ndarray]):
    def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
        frames = linear_stack(inputs, params["input_encoding"])
        with ctx.timed("statistic"):
            reflectance, scale = normalise_reflectance(statistic(frames).astype(np.float32), inputs.mask)
        return MethodResult(layers={"reflectance": reflectance,
                                    "shading": shading_from_reflectance(frames, reflectance)},
                            info={"frames": len(inputs.frames), "reflectance_scale": scale})
    return run


def _spec(name: str, title: str, statistic: Callable[[np.ndarray], np.ndarray], summary: str) -> MethodSpec:
    return register(MethodSpec(
        name=name,
        title=title,
        paper="Trivial baseline (no paper): a per-pixel statistic of the frames taken as the reflectance",
        year=0,  # no paper: shown without a year
        task="intrinsic",
        summary=summary,
        input_kind=InputKind.IMAGE_SEQUENCE,
        outputs=(
            OutputSpec("reflectance", OutputKind.IMAGE, "the statistic of the frames, scaled so its bright end is 1",
                       "linear", role=Role.REFLECTANCE),
            OutputSpec("shading", OutputKind.IMAGE_STACK, "shading of each frame (frame / reflectance)", "linear",
                       role=Role.SHADING),
        ),
        params=(
            ParamSpec("input_encoding", "srgb", "how the frames are encoded: sRGB photos or linear (raw, 16-bit "
                      "linear PNG) values", type=str, choices=("srgb", "linear")),
        ),
        runner=lambda: _runner(statistic),
        devices=("cpu", "cuda"),  # numpy only: on a CUDA worker it runs on the host
        is_baseline=True,
        provenance="Written for Intrinsic Lab: the reflectance is one per-pixel statistic of the linear frames.",
        min_side=1,
    ))


MAX_SPEC = _spec("baseline_max_frames", "Baseline: max over frames", lambda f: f.max(axis=0),
                 "Reflectance is the per-pixel maximum over the frames (each pixel at its best-lit moment); "
                 "shading = frame / reflectance.")
MEDIAN_SPEC = _spec("baseline_median_frames", "Baseline: median over frames", lambda f: np.median(f, axis=0),
                    "Reflectance is the per-pixel median over the frames (moving shadows voted out); "
                    "shading = frame / reflectance.")
