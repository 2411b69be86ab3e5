"""Shared pieces of the Laffont & Bazin tests: run the method on linear frames, a scale-invariant error, and a
textured reflectance."""

from __future__ import annotations

import numpy as np
import torch

from engine.methods import laffont_bazin as lb
from engine.registry import MethodInput, RunContext


def run_laffont_bazin(frames, **params):
    """The method on linear float frames with these parameters (on the CPU), after the spec's own input check."""
    resolved = lb.SPEC.resolve_params({"input_encoding": "linear", **params})
    inputs = MethodInput(frames=tuple(np.asarray(f, np.float32) for f in frames))
    lb.SPEC.check_input(inputs)
    return lb.run(inputs, resolved, RunContext(device=torch.device("cpu")))


def scale_invariant_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Worst channel's relative RMS error after the best per-channel scale (the model is per channel)."""
    errors = []
    for c in range(truth.shape[2]):
        e, t = estimate[..., c].ravel().astype(np.float64), truth[..., c].ravel().astype(np.float64)
        alpha = (e @ t) / (e @ e)
        errors.append(np.sqrt(np.mean((alpha * e - t) ** 2)) / np.sqrt(np.mean(t ** 2)))
    return max(errors)


def textured_reflectance(rng, h=24, w=28):
    return rng.uniform(0.15, 0.9, (h, w, 3)).astype(np.float32)
