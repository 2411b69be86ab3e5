"""Dataset adapters for training, augmentation, and the deterministic batch stream the loop draws from.

Every adapter returns samples as dicts of CHW float32 tensors (labels: int64 HW). Adapters:

* :class:`AdapterDataset` -- any layout :mod:`engine.datasets` validates, e.g. :func:`MITIntrinsic` (the MIT
  intrinsic images layout, 16-bit linear PNGs read with ``cv2.IMREAD_UNCHANGED``: ``image``, ``reflectance``,
  ``shading``, ``mask``) and :func:`LOLPairs` (the LOL layout: ``image`` = low, ``target`` = high, sRGB);
* :class:`ImageFolder` -- any folder of photos (sRGB), for unsupervised or self-supervised recipes.
* :class:`engine.synth.SyntheticDataset` (rendered on the fly) and :class:`engine.synth.SyntheticFolder`.

:class:`Augment` applies the same random crop / flip / 90° rotation to every spatial layer of a sample, and
exposure and noise to the photometric ones; exposure also scales the layers that must stay consistent with the image
(shading), so ``image = albedo · shading`` survives augmentation in linear space.

:class:`BatchStream` makes batch ``step`` a pure function of ``(seed, step)``: resuming from a checkpoint continues
the exact same sequence of samples and augmentations without saving any random state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import cv2
import numpy as np
import torch

from ..imaging import IMAGE_SUFFIXES, linear_to_srgb, srgb_to_linear




def _chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


class AdapterDataset(torch.utils.data.Dataset):
    """A folder in one of the layouts of :mod:`engine.datasets` (``mit-intrinsic``, ``lol``, ``raindrop``, …) as
    training samples: frame 0 → ``image`` (further frames → ``frames``), each ground-truth array → its role name
    (MIT: ``reflectance``, ``shading``, ``mask``; LOL/Raindrop: ``target``). Layout checks and 16-bit reading
    (``cv2.IMREAD_UNCHANGED``) are the adapter's; ``colour_space`` says whether ``image`` is linear or sRGB."""

    def __init__(self, kind: str, folder: str | Path, split: str = "all", items: Sequence[str] | None = None,
                 max_side: int | None = None):
        from ..datasets import get_adapter

        self.adapter = get_adapter(kind)
        self.folder = self.adapter.validate(folder)
        self.items = list(items) if items is not None else self.adapter.items(self.folder, split)
        self.max_side = max_side
        self.colour_space = self.adapter.load(self.folder, self.items[0]).colour_space if self.items else "srgb"

    def __len__(self) -> int:
        return len(self.items)

    def _fit(self, array: np.ndarray) -> np.ndarray:
        if array.ndim == 2:
            array = array[:, :, None]
        if self.max_side and max(array.shape[:2]) > self.max_side:
            scale = self.max_side / max(array.shape[:2])
            size = (round(array.shape[1] * scale), round(array.shape[0] * scale))
            interpolation = cv2.INTER_NEAREST if array.dtype == bool else cv2.INTER_AREA
            resized = cv2.resize(array.astype(np.float32), size, interpolation=interpolation)
            array = resized[:, :, None] if resized.ndim == 2 else resized
        return array.astype(np.float32)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        sample = self.adapter.load(self.folder, self.items[index])
        out = {"image": _chw(self._fit(sample.frames[0]))}
        if len(sample.frames) > 1:
            out["frames"] = torch.stack([_chw(self._fit(f)) for f in sample.frames])
        for role, value in sample.truth.items():
            if isinstance(value, np.ndarray) and value.ndim >= 2:
                out[role] = _chw(self._fit(value))
        if sample.mask is not None:
            out["mask"] = _chw(self._fit(sample.mask))
        return out


def MITIntrinsic(root: str | Path, objects: Sequence[str] | None = None, max_side: int | None = None
                 ) -> AdapterDataset:
    """The MIT intrinsic images layout (linear 16-bit PNGs): ``image``, ``reflectance``, ``shading``, ``mask``."""
    return AdapterDataset("mit-intrinsic", root, items=objects, max_side=max_side)


def LOLPairs(root: str | Path, split: str = "all", max_side: int | None = None) -> AdapterDataset:
    """The LOL layout (``our485``/``eval15`` with ``low``/``high``): ``image`` (low) and ``target`` (high), sRGB."""
    return AdapterDataset("lol", root, split=split, max_side=max_side)


class ImageFolder(torch.utils.data.Dataset):
    """Every image under a folder (recursively), as ``image`` (3, H, W) sRGB, for self-supervised recipes."""

    def __init__(self, root: str | Path, files: Sequence[Path] | None = None):
        self.root = Path(root)
        self.files = list(files) if files is not None else sorted(
            p for p in self.root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise FileNotFoundError(f"{self.root}: no images ({', '.join(IMAGE_SUFFIXES)})")

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from ..datasets.base import as_rgb, read_float

        return {"image": _chw(as_rgb(read_float(self.files[index])))}


class Subset(torch.utils.data.Dataset):
    def __init__(self, dataset, indices: Sequence[int], transform: Callable | None = None):
        self.dataset, self.indices, self.transform = dataset, list(indices), transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        sample = self.dataset[self.indices[index]]
        return self.transform(sample) if self.transform else sample


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded split; at least one validation item whenever there are two or more items."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_val = min(n - 1, max(1, round(n * val_fraction))) if n > 1 else 0
    return sorted(order[n_val:]), sorted(order[:n_val])


# --- augmentation --------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Augment:
    """Random crop (to ``crop``; smaller images are padded by reflection), flips, 90° rotations, exposure and noise.

    ``photometric`` layers get exposure (in linear light: ``srgb`` says which are sRGB-encoded) and Gaussian noise;
    ``follow_exposure`` layers are scaled by the same exposure (e.g. shading) to keep ``image = albedo · shading``.
    Layers with a leading frame axis (K, C, H, W) are transformed alike. Labels (int) use nearest operations only.
    """

    crop: int | None = 128
    flip: bool = True
    rotate: bool = True
    exposure: tuple[float, float] | None = (0.7, 1.4)
    noise: float = 0.0
    photometric: tuple[str, ...] = ("image",)
    follow_exposure: tuple[str, ...] = ()
    srgb: tuple[str, ...] = ()

    def __call__(self, sample: Mapping[str, torch.Tensor], rng: np.random.Generator) -> dict[str, torch.Tensor]:
        out = dict(sample)
        h, w = next(iter(out.values())).shape[-2:]
        if self.crop:
            pad_h, pad_w = max(0, self.crop - h), max(0, self.crop - w)
            if pad_h or pad_w:
                out = {k: _pad(v, pad_h, pad_w) for k, v in out.items()}
                h, w = h + pad_h, w + pad_w
            top, left = int(rng.integers(0, h - self.crop + 1)), int(rng.integers(0, w - self.crop + 1))
            out = {k: v[..., top:top + self.crop, left:left + self.crop] for k, v in out.items()}
        if self.flip and rng.random() < 0.5:
            out = {k: v.flip(-1) for k, v in out.items()}
            if "normals" in out:  # mirroring the image mirrors the x component of camera-space normals
                out["normals"] = out["normals"] * torch.tensor([-1.0, 1.0, 1.0]).view(3, 1, 1)
        if self.rotate:
            turns = int(rng.integers(0, 4))
            if turns:
                out = {k: torch.rot90(v, turns, (-2, -1)) for k, v in out.items()}
                if "normals" in out:
                    n = out["normals"]
                    for _ in range(turns):  # a 90° counter-clockwise image turn maps (x, y) → (−y, x)
                        n = torch.stack([-n[1], n[0], n[2]])
                    out["normals"] = n
        if self.exposure:
            gain = float(np.exp(rng.uniform(np.log(self.exposure[0]), np.log(self.exposure[1]))))
            for key in self.photometric:
                if key in out:
                    x = srgb_to_linear(out[key]) if key in self.srgb else out[key]
                    x = x * gain
                    out[key] = linear_to_srgb(x.clamp(max=1)) if key in self.srgb else x
            for key in self.follow_exposure:
                if key in out:
                    out[key] = out[key] * gain
        if self.noise:
            for key in self.photometric:
                if key in out:
                    sigma = float(rng.uniform(0, self.noise))
                    noise = torch.from_numpy(rng.standard_normal(out[key].shape).astype(np.float32))
                    out[key] = (out[key] + sigma * noise).clamp(min=0)
        return {k: v.contiguous() for k, v in out.items()}


def _pad(v: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    if v.dtype in (torch.int64, torch.uint8):
        return torch.nn.functional.pad(v, (0, pad_w, 0, pad_h))
    shape = v.shape
    flat = v.reshape(-1, *shape[-3:]) if v.ndim >= 3 else v[None]
    mode = "reflect" if pad_h < shape[-2] and pad_w < shape[-1] else "replicate"
    padded = torch.nn.functional.pad(flat, (0, pad_w, 0, pad_h), mode=mode)
    return padded.reshape(*shape[:-2], shape[-2] + pad_h, shape[-1] + pad_w)


# --- the deterministic stream -------------------------------------------------------------------------------------

def collate(samples: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    keys = samples[0].keys()
    return {k: torch.stack([s[k] for s in samples]) for k in keys}


class BatchStream:
    """Batches as a pure function of (seed, step, micro-batch): epoch-wise permutations, seeded augmentation."""

    def __init__(self, dataset, batch_size: int, seed: int, augment: Callable | None = None):
        if len(dataset) == 0:
            raise ValueError("the training set is empty")
        self.dataset, self.batch_size, self.seed, self.augment = dataset, batch_size, seed, augment
        self._perm_epoch, self._perm = -1, None

    def _index(self, counter: int) -> int:
        n = len(self.dataset)
        epoch, position = divmod(counter, n)
        if epoch != self._perm_epoch:
            self._perm = np.random.default_rng([self.seed, epoch]).permutation(n)
            self._perm_epoch = epoch
        return int(self._perm[position])

    def batch(self, step: int, micro: int = 0, accumulate: int = 1) -> dict[str, torch.Tensor]:
        start = (step * accumulate + micro) * self.batch_size
        samples = []
        for counter in range(start, start + self.batch_size):
            sample = self.dataset[self._index(counter)]
            if self.augment is not None:
                sample = self.augment(sample, np.random.default_rng([self.seed, 1, counter]))
            samples.append(sample)
        return collate(samples)


def to_device(batch: Mapping[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    non_blocking = device.type == "cuda"
    return {k: v.to(device, non_blocking=non_blocking) for k, v in batch.items()}
