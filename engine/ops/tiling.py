"""Running a fully convolutional network on a large image in overlapping tiles, without seams and exactly.

:func:`run_tiled` cuts a (1, C, H, W) image into ``tile``×``tile`` windows whose origins are multiples of ``align``
(the network's total stride, so every tile sits on the whole image's stride grid), keeps of each window only the part
farther than ``halo`` pixels (≥ the receptive-field radius) from an interior tile edge, and cross-fades neighbouring
kept parts over ``blend`` pixels. Memory is bounded by one tile; outputs away from the blend bands equal the whole
image's.

Tiling costs work: every tile recomputes its halos. :func:`plan_tiles` therefore tiles only when memory needs it:
the whole image when its activations fit the memory budget, else the fewest, largest tiles that fit (rectangular,
sized to the image, so a 1920×1080 photo that needs two tiles gets two of about 1080×1016, not nine of 768×768).

For networks with TensorFlow 'SAME' stride-2 convolutions and nearest resizes to a skip's size (RetinexNet), the
padding and rounding depend on the *whole* image's size: :class:`TileGeometry` tells a tile where it sits so that
it pads and resizes exactly as the whole image would there (:func:`same_padding` is TF's 'SAME' rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (before, after) for one axis: the output has ceil(size / stride) samples and any odd
    total padding puts the extra sample after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _nearest_indices(count: int, start: int, out_full: int, in_full: int, in_start: int, in_count: int) -> np.ndarray:
    """Source rows, local to a tile, that a whole-image nearest resize from ``in_full`` to ``out_full`` samples for
    the tile's output rows ``start … start + count − 1``. The float32 arithmetic is that of TF1 and PyTorch
    (``floorf(dst · (float)in / out)``), so a tile reproduces the whole image exactly, rounding included."""
    scale = np.float32(in_full) / np.float32(out_full)
    rows = np.floor(np.arange(start, start + count, dtype=np.float32) * scale).astype(np.int64)
    return np.clip(np.minimum(rows, in_full - 1) - in_start, 0, in_count - 1)


@dataclass(frozen=True)
class TileGeometry:
    """Where a tile sits in the whole image: its origin (multiples of the network's stride) and the whole size."""

    height: int
    width: int
    top: int
    left: int

    def size(self, level: int) -> tuple[int, int]:
        """The whole image's size after ``level`` stride-2 steps ('SAME': ceil halving)."""
        h, w = self.height, self.width
        for _ in range(level):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def origin(self, level: int) -> tuple[int, int]:
        return self.top >> level, self.left >> level

    def down_padding(self, level: int, kernel: int = 3) -> tuple[int, int]:
        """Top/left padding of the whole image's stride-2 step from ``level`` to ``level + 1``."""
        h, w = self.size(level)
        return same_padding(h, kernel, 2)[0], same_padding(w, kernel, 2)[0]

    def resize(self, x: torch.Tensor, x_level: int, ref: torch.Tensor, ref_level: int) -> torch.Tensor:
        """Nearest resize of ``x`` (at ``x_level``) to ``ref``'s tile, sampling what the whole image would."""
        (out_h, out_w), (in_h, in_w) = self.size(ref_level), self.size(x_level)
        (oy, ox), (iy, ix) = self.origin(ref_level), self.origin(x_level)
        rows = _nearest_indices(ref.shape[-2], oy, out_h, in_h, iy, x.shape[-2])
        cols = _nearest_indices(ref.shape[-1], ox, out_w, in_w, ix, x.shape[-1])
        rows_t, cols_t = (torch.from_numpy(a).to(x.device) for a in (rows, cols))
        if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
            # index_select would return NCHW, and every later convolution would reorder to oneDNN's channels-last
            # (RetinexNet's tiles ran 25 % slower than whole images): gather on the NHWC view to keep the layout
            nhwc = x.permute(0, 2, 3, 1)
            return nhwc.index_select(1, rows_t).index_select(2, cols_t).permute(0, 3, 1, 2)
        return x.index_select(-2, rows_t).index_select(-1, cols_t)


def ramp(length: int, fade_start: bool, fade_end: bool, blend: int) -> np.ndarray:
    """Per-pixel blend weight along one axis of a tile's kept part: rising/falling over ``blend`` pixels at sides
    shared with a neighbour, so that overlapping tiles fade into each other instead of meeting at a seam."""
    weight = np.ones(length, np.float32)
    n = min(blend, length)
    rising = (np.arange(n, dtype=np.float32) + 0.5) / n
    if fade_start:
        weight[:n] = np.minimum(weight[:n], rising)
    if fade_end:
        weight[length - n:] = np.minimum(weight[length - n:], rising[::-1])
    return weight


def tile_starts(size: int, tile: int, halo: int, blend: int, align: int = 8) -> list[int]:
    """Tile origins along one axis: multiples of ``align``, consecutive kept parts overlapping by ≥ ``blend``."""
    if size <= tile:
        return [0]
    step = max(align, (tile - 2 * halo - blend) // align * align)
    starts = list(range(0, size - tile, step))
    starts.append((size - tile) // align * align)  # the last tile reaches the border (up to align − 1 px larger)
    return sorted(set(starts))


def minimum_tile(halo: int, blend: int, margin: int = 64) -> int:
    """The smallest useful tile side: two halos, the blend band and ``margin`` kept pixels."""
    return 2 * halo + blend + margin


def _side_for(size: int, count: int, halo: int, blend: int, align: int) -> int | None:
    """The smallest tile side (a multiple of ``align``) that covers ``size`` in exactly ``count`` tiles, or None."""
    if count == 1:
        return size
    side = -(-(size + (count - 1) * (2 * halo + blend)) // count)
    side = -(-side // align) * align
    while side < size:
        n = len(tile_starts(size, side, halo, blend, align))
        if n == count:
            return side
        if n < count:
            return None
        side += align
    return None


@dataclass(frozen=True)
class TilePlan:
    """How to run an image: ``tile`` (height, width) windows, ``rows``×``cols`` of them; ``work`` is the pixels
    computed over the image's pixels (1.0 whole; the excess is the halos and blend bands recomputed)."""

    tile: tuple[int, int]
    rows: int
    cols: int
    work: float

    @property
    def whole(self) -> bool:
        return self.rows == self.cols == 1


def plan_tiles(height: int, width: int, bytes_per_pixel: float, budget: float, halo: int, blend: int = 32,
               align: int = 8, min_tile: int | None = None) -> TilePlan:
    """The whole image if ``height × width × bytes_per_pixel`` fits ``budget`` bytes, else the tiling with the least
    work (fewest recomputed halo pixels) whose windows each fit it. ``bytes_per_pixel``: the network's peak memory
    per pixel of its input window. When even the smallest useful tile (``min_tile``) does not fit, that tile."""
    min_tile = min_tile or minimum_tile(halo, blend)
    pixels_fit = max(budget / max(bytes_per_pixel, 1e-9), float(min_tile * min_tile))
    if height * width <= pixels_fit:
        return TilePlan((height, width), 1, 1, 1.0)
    best: TilePlan | None = None
    max_rows = max(1, -(-height // max(1, min_tile - 2 * halo - blend)))
    max_cols = max(1, -(-width // max(1, min_tile - 2 * halo - blend)))
    for rows in range(1, max_rows + 1):
        tile_h = _side_for(height, rows, halo, blend, align)
        if tile_h is None or (rows > 1 and tile_h < min_tile):
            continue
        for cols in range(1, max_cols + 1):
            tile_w = _side_for(width, cols, halo, blend, align)
            if tile_w is None or (cols > 1 and tile_w < min_tile) or tile_h * tile_w > pixels_fit:
                continue
            work = rows * cols * tile_h * tile_w / (height * width)
            if best is None or (work, rows * cols) < (best.work, best.rows * best.cols):
                best = TilePlan((tile_h, tile_w), rows, cols, work)
            break  # more columns only add work
    if best is None:
        side = (min_tile, min_tile)
        rows = len(tile_starts(height, min_tile, halo, blend, align))
        cols = len(tile_starts(width, min_tile, halo, blend, align))
        best = TilePlan(side, rows, cols, rows * cols * min_tile * min_tile / (height * width))
    return best


def plan_in_budget(height: int, width: int, network_bytes_per_pixel: float, buffer_bytes_per_pixel: float,
                   halo: int, blend: int = 32, budget: float | None = None, align: int = 8,
                   min_tile: int | None = None) -> TilePlan:
    """:func:`plan_tiles` inside a job's memory budget (``INTRINSIC_LAB_MAX_JOB_MEMORY`` unless ``budget`` is given):
    the network's tiles get what the photo's full-size buffers (``buffer_bytes_per_pixel`` of the whole photo: input,
    accumulators) leave, but never under half the budget, so a huge photo (which the job check refuses at its declared
    cost anyway) does not end in tiles that are all halo. A method that plans this way declares ``bytes_per_pixel =
    2 × buffer_bytes_per_pixel``: its job fits when its buffers fit in half the budget."""
    if budget is None:
        from ..limits import limits

        budget = limits().max_job_memory
    budget = max(budget - height * width * buffer_bytes_per_pixel, budget / 2)
    return plan_tiles(height, width, network_bytes_per_pixel, budget, halo, blend, align=align, min_tile=min_tile)


def run_tiled(fn: Callable[[torch.Tensor, TileGeometry], dict[str, torch.Tensor]], image: torch.Tensor,
              tile: int | tuple[int, int], halo: int, blend: int = 32, align: int = 8,
              progress: Callable[[float, str], None] = lambda fraction, message: None) -> dict[str, torch.Tensor]:
    """``fn(crop, geometry)`` → {name: (1, C, h, w) tensor} over a (1, C, H, W) image, whole if it fits in one
    ``tile`` window (a side, or (height, width)), else tile by tile; returns {name: (1, C, H, W)} on the CPU."""
    _, _, height, width = image.shape
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else (int(tile[0]), int(tile[1]))
    if height <= tile_h and width <= tile_w:
        return {name: value.cpu() for name, value in fn(image, TileGeometry(height, width, 0, 0)).items()}
    rows, cols = tile_starts(height, tile_h, halo, blend, align), tile_starts(width, tile_w, halo, blend, align)
    acc: dict[str, torch.Tensor] = {}
    weight_sum = torch.zeros(1, 1, height, width)
    count, total = 0, len(rows) * len(cols)
    for y0 in rows:
        y1 = height if y0 == rows[-1] else min(height, y0 + tile_h)
        for x0 in cols:
            x1 = width if x0 == cols[-1] else min(width, x0 + tile_w)
            layers = fn(image[:, :, y0:y1, x0:x1], TileGeometry(height, width, y0, x0))
            # Keep what lies farther than the halo from interior tile edges (the image border is no edge).
            ky0, ky1 = (y0 + halo if y0 > 0 else 0), (y1 - halo if y1 < height else height)
            kx0, kx1 = (x0 + halo if x0 > 0 else 0), (x1 - halo if x1 < width else width)
            weight = torch.from_numpy(np.outer(ramp(ky1 - ky0, y0 > 0, y1 < height, blend),
                                               ramp(kx1 - kx0, x0 > 0, x1 < width, blend)))[None, None]
            crop = (slice(None), slice(None), slice(ky0 - y0, ky1 - y0), slice(kx0 - x0, kx1 - x0))
            for name, layer in layers.items():
                if name not in acc:
                    acc[name] = torch.zeros(1, layer.shape[1], height, width)
                acc[name][:, :, ky0:ky1, kx0:kx1] += layer[crop].float().cpu() * weight
            weight_sum[:, :, ky0:ky1, kx0:kx1] += weight
            count += 1
            progress(count / total, f"tile {count}/{total}")
    return {name: value / weight_sum for name, value in acc.items()}
