"""Angular errors: illuminant estimation (one RGB vector per image) and surface normals (one vector per pixel).

Colour constancy reports the distribution of per-image errors with five statistics (Hordley & Finlayson 2006;
Gijsenij et al. 2011): mean, median, tri-mean (Q1 + 2·Q2 + Q3) / 4, and the means of the best and worst 25 %.
Quartiles use linear interpolation (``numpy.percentile`` default, as MATLAB's ``quantile`` does for these sizes
closely enough); "best 25 %" is the mean of the errors at or below the first quartile and "worst 25 %" the mean of
those at or above the third.
"""

from __future__ import annotations

import numpy as np


def angle_deg(a, b) -> np.ndarray:
    """Angle in degrees between vectors along the last axis (scale-free). Zero vectors give NaN."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.sum(a * b, axis=-1) / (na * nb)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def illuminant_error(truth_rgb, estimate_rgb) -> float:
    """Recovery angular error (degrees) between a true and an estimated illuminant RGB."""
    value = float(angle_deg(truth_rgb, estimate_rgb))
    if not np.isfinite(value):
        raise ValueError(f"an illuminant is the zero vector: truth {truth_rgb}, estimate {estimate_rgb}")
    return value


def error_statistics(errors) -> dict[str, float]:
    """Mean, median, tri-mean, best 25 %, worst 25 % of a set of per-image errors."""
    e = np.sort(np.asarray(errors, dtype=np.float64).ravel())
    if e.size == 0:
        raise ValueError("no errors to summarise")
    q1, q2, q3 = np.percentile(e, [25, 50, 75])
    return {
        "mean": float(e.mean()),
        "median": float(q2),
        "trimean": float((q1 + 2 * q2 + q3) / 4),
        "best25": float(e[e <= q1].mean()),
        "worst25": float(e[e >= q3].mean()),
    }


def normal_errors(truth, estimate, mask=None) -> dict[str, float]:
    """Per-pixel angle between normal maps (H, W, 3): mean (degrees) and % of pixels under 20°, 25°, 30°."""
    angles = angle_deg(truth, estimate)
    valid = np.isfinite(angles)
    if mask is not None:
        m = np.asarray(mask)
        if m.ndim == 3:
            m = m[..., 0]
        valid &= m.astype(bool)
    values = angles[valid]
    if values.size == 0:
        raise ValueError("no valid pixels to compare (empty mask or zero normals)")
    return {
        "mean": float(values.mean()),
        "under20": float(100.0 * np.mean(values < 20)),
        "under25": float(100.0 * np.mean(values < 25)),
        "under30": float(100.0 * np.mean(values < 30)),
    }
