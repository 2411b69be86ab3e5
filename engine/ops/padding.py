"""Padding a batch to a size a network's down- and up-sampling can round-trip."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (…, H, W) at the bottom and right to multiples of ``multiple``; returns (padded, (H, W)) to crop back.

    Reflect padding where the image is large enough for it, else replicate (reflection needs pad < size)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)
