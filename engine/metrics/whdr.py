"""WHDR, the weighted human disagreement rate of Intrinsic Images in the Wild (Bell, Bala & Snavely 2014).

Judgements come from the IIW JSON file: ``intrinsic_points`` (id, x, y in [0, 1] of the width/height, ``opaque``)
and ``intrinsic_comparisons`` (``point1``, ``point2``, ``darker`` ∈ {"1", "2", "E"}, ``darker_score`` = weight).
For each usable comparison the reflectance intensities (mean over channels of the *linear* reflectance, floored at
1e-10) at the two points give the algorithm's answer: "1" if r2/r1 > 1 + δ, "2" if r1/r2 > 1 + δ, else "E".
WHDR = Σ weight·[answer ≠ human] / Σ weight. Comparisons with a non-opaque point, no weight, or a weight ≤ 0 are
skipped, as in the authors' evaluation.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

DELTA = 0.10


def whdr(reflectance: np.ndarray, judgements: Mapping[str, Any], delta: float = DELTA) -> float:
    reflectance = np.asarray(reflectance, dtype=np.float64)
    if reflectance.ndim == 2:
        reflectance = reflectance[:, :, None]
    rows, cols = reflectance.shape[:2]
    points = {p["id"]: p for p in judgements.get("intrinsic_points", [])}
    error_sum = weight_sum = 0.0
    for c in judgements.get("intrinsic_comparisons", []):
        human = c.get("darker")
        weight = c.get("darker_score")
        if human not in ("1", "2", "E") or weight is None or weight <= 0:
            continue
        p1, p2 = points.get(c["point1"]), points.get(c["point2"])
        if p1 is None or p2 is None or not p1.get("opaque", True) or not p2.get("opaque", True):
            continue
        r1 = max(1e-10, float(reflectance[_row(p1, rows), _col(p1, cols)].mean()))
        r2 = max(1e-10, float(reflectance[_row(p2, rows), _col(p2, cols)].mean()))
        if r2 / r1 > 1.0 + delta:
            answer = "1"
        elif r1 / r2 > 1.0 + delta:
            answer = "2"
        else:
            answer = "E"
        weight_sum += weight
        if answer != human:
            error_sum += weight
    if weight_sum == 0:
        raise ValueError("the judgement file holds no usable comparisons")
    return error_sum / weight_sum


def _row(point, rows: int) -> int:
    return min(int(point["y"] * rows), rows - 1)


def _col(point, cols: int) -> int:
    return min(int(point["x"] * cols), cols - 1)
