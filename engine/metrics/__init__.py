"""Metrics with declared direction, range, needs and protocol (see :mod:`engine.metrics.registry`).

Pure functions live in :mod:`.intrinsic` (si-MSE, LMSE, DSSIM), :mod:`.fidelity` (PSNR, SSIM), :mod:`.angular`
(illuminant and normal angular errors with their statistics) and :mod:`.whdr`; :mod:`.catalogue` declares them.
"""

from .registry import HIGHER, LOWER, MetricSpec, all_metrics, get_metric, metrics_for, register_metric

__all__ = ["HIGHER", "LOWER", "MetricSpec", "all_metrics", "get_metric", "metrics_for", "register_metric"]
