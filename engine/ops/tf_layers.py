"""Layers that behave exactly like TensorFlow 1's, for re-implementations of methods released as TF code.

* :class:`SameConv2d`: a convolution with TF's ``'SAME'`` zero padding for any size and stride (for a stride-2 3×3
  convolution on an even size TF pads 0 at the top/left and 1 at the bottom/right; PyTorch's symmetric ``padding=1``
  would shift the grid).
* :func:`resize_like`: TF1's ``resize_nearest_neighbor`` to a reference's size (``floor(dst · in / out)``, which is
  PyTorch's ``mode="nearest"``).
* :func:`tf_default_init`: TF1's ``tf.layers.conv2d`` default initialisation (Glorot-uniform kernels, zero biases).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .tiling import same_padding


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow 'SAME' zero padding for any input size and stride.

    Symmetric cases use the convolution's own padding (cheaper); the asymmetric ones (stride 2 on even sizes) pad
    explicitly, because PyTorch's ``padding=`` is always symmetric. ``before`` overrides the top/left padding (used
    by tiles, which must sample on the whole image's grid); the bottom/right padding then keeps ceil(size / stride)
    outputs.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=0)

    def forward(self, x: torch.Tensor, before: tuple[int, int] | None = None) -> torch.Tensor:
        k, s = self.kernel_size[0], self.stride[0]
        if before is None:
            top, bottom = same_padding(x.shape[-2], k, s)
            left, right = same_padding(x.shape[-1], k, s)
        else:
            top, left = before
            bottom = max((-(-x.shape[-2] // s) - 1) * s + k - x.shape[-2] - top, 0)
            right = max((-(-x.shape[-1] // s) - 1) * s + k - x.shape[-1] - left, 0)
        if top == bottom and left == right:
            return F.conv2d(x, self.weight, self.bias, s, (top, left))
        return F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, self.bias, s)


def resize_like(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour resize of ``x`` to ``ref``'s spatial size (TF1 ``resize_nearest_neighbor`` semantics)."""
    if x.shape[-2:] == ref.shape[-2:]:
        return x
    return F.interpolate(x, size=tuple(ref.shape[-2:]), mode="nearest")


def tf_default_init(module: nn.Module) -> None:
    """Initialise like TF1's ``tf.layers.conv2d`` defaults, which the authors trained with: Glorot-uniform kernels,
    zero biases. PyTorch's default (Kaiming-uniform with a = √5, uniform biases) starts DecomNet far slower: after
    300 steps on LOL its reflectance of a normal-light image is still nearly grey (mean max−min over RGB 0.025 against
    0.175; ``scripts/retinexnet_init_check.py``), because colour is a small part of the reconstruction loss."""
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
