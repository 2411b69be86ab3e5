"""Tiny synthetic metric inputs for the contract tests (``tests/contract/test_metrics.py``).

:func:`example` builds, for one metric, ``(perfect, random, truth)``: a prediction identical to the ground truth, a
random one, and the ground truth, each a dict holding exactly the roles the metric ``needs``. The contract checks
that the perfect prediction scores the best value of the metric's range, that the random one scores inside the range
and worse, so a metric's declared direction and range are tested without writing a test.

Ground-truth roles are built by :data:`TRUTH`; a prediction role is the ground truth of the same name, or of the
name :data:`PRED_TRUTH` maps it to (``restored`` is scored against ``target``). A metric that needs a role not
listed here declares ``MetricSpec.example``: a function ``(rng) -> (perfect, random, truth)``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

SIDE = 24

#: prediction role → the ground-truth role a perfect prediction equals
PRED_TRUTH = {"restored": "target"}


def _image(rng, channels=3):
    return (0.05 + 0.9 * rng.random((SIDE, SIDE, channels))).astype(np.float64)


def _unit(rng):
    v = rng.standard_normal((SIDE, SIDE, 3))
    v[..., 2] = np.abs(v[..., 2]) + 0.1  # facing the camera, like a face's normals
    return v / np.linalg.norm(v, axis=2, keepdims=True)


def _judgements(reflectance: np.ndarray, rng) -> dict[str, Any]:
    """IIW-style judgements that agree with ``reflectance`` (so it scores WHDR 0)."""
    points, comparisons = [], []
    grey = reflectance.mean(axis=2)
    for i in range(12):
        (y1, x1), (y2, x2) = rng.integers(0, SIDE, 2), rng.integers(0, SIDE, 2)
        points += [{"id": 2 * i, "x": (x1 + 0.5) / SIDE, "y": (y1 + 0.5) / SIDE, "opaque": True},
                   {"id": 2 * i + 1, "x": (x2 + 0.5) / SIDE, "y": (y2 + 0.5) / SIDE, "opaque": True}]
        r1, r2 = grey[y1, x1], grey[y2, x2]
        darker = "1" if r2 / r1 > 1.1 else "2" if r1 / r2 > 1.1 else "E"
        comparisons.append({"point1": 2 * i, "point2": 2 * i + 1, "darker": darker, "darker_score": 1.0})
    return {"intrinsic_points": points, "intrinsic_comparisons": comparisons}


def _truth(rng) -> dict[str, Any]:
    reflectance = _image(rng)
    mask = np.zeros((SIDE, SIDE), bool)
    mask[2:-2, 2:-2] = True
    return {"reflectance": reflectance, "shading": _image(rng, 1), "mask": mask, "target": _image(rng),
            "illuminant": 0.2 + rng.random(3), "normals": _unit(rng),
            "judgements": _judgements(reflectance, rng)}


#: how a random prediction of each role is drawn
RANDOM: dict[str, Callable[[np.random.Generator, Any], Any]] = {
    "normals": lambda rng, like: _unit(rng),
    "illuminant": lambda rng, like: 0.2 + rng.random(3),
}


def example(metric, rng: np.random.Generator) -> tuple[dict, dict, dict]:
    """(perfect prediction, random prediction, ground truth) for ``metric`` (a MetricSpec)."""
    if getattr(metric, "example", None) is not None:
        return metric.example(rng)
    scene = _truth(rng)
    missing = [r for r in (*metric.truth_roles, *(PRED_TRUTH.get(p, p) for p in metric.pred_roles)) if r not in scene]
    if missing:
        raise KeyError(f"metric {metric.name}: no example for role(s) {missing}; declare MetricSpec.example")
    perfect = {role: scene[PRED_TRUTH.get(role, role)] for role in metric.pred_roles}
    random = {role: RANDOM.get(role, lambda g, like: g.random(np.shape(like)))(rng, value)
              for role, value in perfect.items()}
    return perfect, random, {role: scene[role] for role in metric.truth_roles}
