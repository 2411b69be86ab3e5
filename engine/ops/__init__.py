"""Reusable numeric building blocks on torch tensors (CPU or CUDA, float32, matrix-free).

- :mod:`engine.ops.filters`: box means (clipped window or MATLAB-symmetric padding), max filter, forward differences.
- :mod:`engine.ops.guided_filter`: He et al.'s guided filter.
- :mod:`engine.ops.laplacian`: weighted 5-point Laplacian products and diagonals, ``diag(d) + L_w`` systems.
- :mod:`engine.ops.multigrid`: aggregation multigrid V-cycle for those systems (a PCG preconditioner).
- :mod:`engine.ops.pcg`: batched preconditioned conjugate gradient.
- :mod:`engine.ops.tiling`: running a network on a large image in overlapping, cross-faded tiles, exactly
  (``run_tiled``, ``TileGeometry``); imported by name, not re-exported here.
- :mod:`engine.ops.tf_layers`: TensorFlow-1-exact layers for ports of TF code (``SameConv2d``, ``resize_like``,
  ``tf_default_init``); imported by name (it needs ``torch.nn``).

Images are ``(..., H, W)`` tensors here; leading dimensions are independent.
"""

from .filters import (box_mean_clipped, box_mean_symmetric, box_sum_clipped, forward_diff_x, forward_diff_y,
                      max_filter_replicate, pad_symmetric)
from .guided_filter import guided_filter
from .laplacian import WeightedLaplacianSystem, laplacian_diagonal, laplacian_matvec
from .multigrid import AggregationMultigrid
from .pcg import PCGResult, pcg

__all__ = [
    "box_mean_clipped", "box_mean_symmetric", "box_sum_clipped", "forward_diff_x", "forward_diff_y",
    "max_filter_replicate", "pad_symmetric", "guided_filter", "WeightedLaplacianSystem", "laplacian_diagonal",
    "laplacian_matvec", "AggregationMultigrid", "PCGResult", "pcg",
]
