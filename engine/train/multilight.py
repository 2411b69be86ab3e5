"""Multi-light training data: scenes seen under several lightings, drawn as aligned pairs with negatives.

A *multi-light folder* is the ``image-sequence`` layout of :mod:`engine.datasets.sequences`: a folder of sub-folders,
each holding ≥ 2 aligned photos of one scene under different lightings (no ground truth needed). The reserved names
(``reflectance``, ``shading``, ``mask``, ``original``, ``diffuse``, ``specular``) are not frames, so the MIT intrinsic
folder (``light01``…``light10`` per object) is such a folder too; ``mask.png`` (a foreground mask, not intrinsic
truth) limits the losses to the object when present, and ``reflectance.png`` is used only for scenes named as
labelled (the semi-supervised setting). Frames are sRGB unless ``dataset.json`` says ``{"colour_space": "linear"}``;
with ``colour_space="auto"`` 16-bit PNG frames without a ``dataset.json`` (MIT's) are taken as linear.

Rendered scenes under K lightings (:mod:`engine.synth`, ``--lightings K``) load as the same :class:`Scene` records
(:func:`scenes_from_synthetic`), their ground truth used only when labelled.

:class:`PairStream` makes batch ``step`` a pure function of ``(seed, step, micro)``: scene, two distinct lightings,
one crop window shared by the pair (with flip), an independent exposure per photo, and a negative: a random crop of
another scene (the embedding loss's "random other sample").

:func:`multi_image_albedo` estimates a scene's albedo from its own frames, without ground truth (Weiss 2001's
maximum-likelihood reflectance gradient, the per-pixel median of the frames' log gradients, with a Retinex
threshold that gives small gradients to shading; integrated inside the mask by
``engine.methods.baselines_intrinsic.poisson_integrate``). It is the optional *teacher*
of the Ma et al. recipe (``w_teacher``), not part of that paper.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from ..imaging import linear_to_srgb, srgb_to_linear


@dataclass
class Scene:
    name: str
    frames: np.ndarray  # (K, H, W, 3) float32, linear, common scale (brightest value 1)
    mask: np.ndarray  # (H, W) float32 {0, 1}: where the losses count
    reflectance: np.ndarray | None = None  # (H, W, 3) linear ground truth, only for labelled scenes
    labelled: bool = False
    teacher: np.ndarray | None = None  # (H, W, 3) albedo estimated from the frames alone (multi_image_albedo)


def multi_image_albedo(frames: np.ndarray, mask: np.ndarray, threshold: float = 0.2) -> np.ndarray:
    """Albedo (H, W, 3), linear, up to one scale per channel, from K ≥ 2 aligned frames (K, H, W, 3) of one scene
    under different lightings: the median over frames of each log gradient (Weiss 2001: shading gradients change
    with the light, albedo gradients do not), kept where its largest channel exceeds ``threshold`` (Retinex: small
    gradients are shading), integrated inside ``mask``. No ground truth is used; 0 outside the mask."""
    from ..methods.baselines_intrinsic import forward_gradients, poisson_integrate

    mask = np.asarray(mask) > 0
    if mask.sum() < 2:
        return np.zeros(frames.shape[1:], dtype=np.float32)
    log = np.log(np.clip(frames.astype(np.float64), 1e-4, None))
    gy, gx = (np.median(np.stack(g), axis=0) for g in zip(*(forward_gradients(f) for f in log)))
    if threshold > 0:  # a reflectance change where the largest channel's median log gradient exceeds the threshold
        gy = gy * (np.abs(gy).max(axis=-1, keepdims=True) > threshold)
        gx = gx * (np.abs(gx).max(axis=-1, keepdims=True) > threshold)
    log_albedo = np.stack([poisson_integrate(gy[..., c], gx[..., c], mask) for c in range(3)], axis=-1)
    log_albedo -= log_albedo[mask].mean(axis=0)
    return (np.exp(log_albedo) * mask[..., None]).astype(np.float32)


def grey_shading_albedo(frames: np.ndarray, albedo: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``albedo`` (H, W, 3, known up to one scale per channel, e.g. :func:`multi_image_albedo`) rescaled per channel so
    that the scene's mean frame divided by it is grey on average inside the mask: the albedo then carries the scene's
    colour and ``frame / albedo`` is a (nearly) grey shading. Unchanged where the mask is empty."""
    inside = (np.asarray(mask) > 0) & (albedo.min(axis=-1) > 1e-3)
    if inside.sum() < 1:
        return albedo.astype(np.float32)
    ratio = np.median(frames.mean(axis=0)[inside] / albedo[inside], axis=0)  # per channel
    ratio = ratio / max(float(ratio.mean()), 1e-12)
    return (albedo * ratio).astype(np.float32)


def _resize(array: np.ndarray, max_side: int | None, nearest: bool = False) -> np.ndarray:
    if not max_side or max(array.shape[:2]) <= max_side:
        return array
    scale = max_side / max(array.shape[:2])
    size = (max(1, round(array.shape[1] * scale)), max(1, round(array.shape[0] * scale)))
    out = cv2.resize(array, size, interpolation=cv2.INTER_NEAREST if nearest else cv2.INTER_AREA)
    return out[:, :, None] if array.ndim == 3 and out.ndim == 2 else out


def _colour_space(folder: Path, seq_folder: Path, frame_files: Sequence[Path], requested: str) -> str:
    if requested in ("srgb", "linear"):
        return requested
    config = folder / "dataset.json"
    if config.is_file():
        return json.loads(config.read_text()).get("colour_space", "srgb")
    first = cv2.imread(str(frame_files[0]), cv2.IMREAD_UNCHANGED)
    return "linear" if first is not None and first.dtype == np.uint16 else "srgb"


def read_truth(path: Path, max_side: int | None) -> np.ndarray:
    """A ground-truth layer as linear float (H, W, 3): 16-bit PNGs are linear (MIT), 8-bit ones sRGB-encoded."""
    from ..datasets.base import as_rgb, read_float

    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    array = _resize(as_rgb(read_float(path)), max_side)
    return array if raw is not None and raw.dtype == np.uint16 else srgb_to_linear(array)


def load_multilight_folder(folder: str | Path, *, max_side: int | None = 320, exclude: Sequence[str] = (),
                           include: Sequence[str] | None = None, labelled: Sequence[str] = (),
                           colour_space: str = "auto", min_intensity: float = 0.02, use_mask: bool = True
                           ) -> list[Scene]:
    """Every scene (sub-folder with ≥ 2 frames) of a multi-light folder, validated by the ``image-sequence``
    adapter; ``exclude``/``include`` select scenes by name; scenes in ``labelled`` keep their reference reflectance."""
    from ..datasets import get_adapter
    from ..datasets.base import as_rgb, read_float

    adapter = get_adapter("image-sequence")
    folder = adapter.validate(folder)
    scenes = []
    for name in adapter.item_ids(folder, "all"):
        if name in set(exclude) or (include is not None and name not in set(include)):
            continue
        seq = adapter._sequences(folder)[name]
        files = adapter._frames(seq)
        space = _colour_space(folder, seq, files, colour_space)
        frames = np.stack([_resize(as_rgb(read_float(p)), max_side) for p in files]).astype(np.float32)
        if space == "srgb":
            frames = srgb_to_linear(frames)
        frames /= max(float(frames.max()), 1e-6)
        # Valid where the scene is lit in the median frame and nothing clips.
        median = np.median(frames.mean(axis=3), axis=0)
        valid = (median > min_intensity * float(np.percentile(median, 99))) & (frames.max(axis=(0, 3)) < 0.999)
        if use_mask and (seq / "mask.png").is_file():
            valid &= _resize(read_float(seq / "mask.png").max(axis=2), max_side, nearest=True) > 0.5
        reflectance = None
        is_labelled = name in set(labelled) and (seq / "reflectance.png").is_file()
        if is_labelled:
            reflectance = read_truth(seq / "reflectance.png", max_side)
            valid &= reflectance.mean(axis=2) > 1e-3
        scenes.append(Scene(name, frames, valid.astype(np.float32), reflectance, is_labelled))
    return scenes


def scenes_from_synthetic(dataset, count: int, labelled_fraction: float = 0.0, prefix: str = "synth") -> list[Scene]:
    """Rendered scenes (an :class:`engine.synth.SyntheticDataset` or ``SyntheticFolder`` with ≥ 2 lightings)."""
    scenes = []
    n_labelled = int(round(labelled_fraction * count))
    for i in range(min(count, len(dataset))):
        sample = dataset[i]
        frames = sample["image_linear"].permute(0, 2, 3, 1).cpu().numpy().astype(np.float32)
        if frames.shape[0] < 2:
            raise ValueError("synthetic scenes need at least 2 lightings (python -m engine.synth --lightings K)")
        frames /= max(float(frames.max()), 1e-6)
        valid = (sample["labels"].cpu().numpy() != 0) & (frames.max(axis=(0, 3)) < 0.999) \
            & (frames.mean(axis=3).min(axis=0) > 1e-3)
        labelled = i < n_labelled
        albedo = sample["albedo"].permute(1, 2, 0).cpu().numpy().astype(np.float32) if labelled else None
        scenes.append(Scene(f"{prefix}{i:05d}", frames, valid.astype(np.float32), albedo, labelled))
    return scenes


class PairStream:
    """Deterministic batches of pairs (in linear light, with each photo's ``gain`` and noise ``sigma``; see
    :func:`apply_photometric`, which makes the photos on the training device): ``image1``, ``image2`` ((B, 3, c, c)), ``mask`` (B, 1, c, c),
    ``negative`` and ``negative_mask`` (a crop of another scene), ``labelled`` (B,) and ``albedo`` (B, 3, c, c;
    zeros where unlabelled), ``has_teacher`` (B,) and ``teacher`` (the scene's :func:`multi_image_albedo`, zeros
    where it has none). Scenes smaller than the crop are padded by reflection (the padding is masked out)."""

    def __init__(self, scenes: Sequence[Scene], batch_size: int, seed: int, crop: int = 96,
                 exposure: tuple[float, float] = (0.5, 1.0), noise: float = 0.005, min_valid: float = 0.05,
                 swap: float = 0.0):
        if not scenes:
            raise ValueError("no training scenes")
        self.scenes, self.batch_size, self.seed, self.crop = list(scenes), batch_size, seed, crop
        self.exposure, self.noise, self.min_valid = exposure, noise, min_valid
        self.weights = np.array([max(1.0, float(s.mask.sum()) ** 0.5) for s in self.scenes])
        self.weights /= self.weights.sum()
        # Albedo-swap composites (``swap`` of the samples): one scene's teacher albedo times another scene's
        # shadings under two of its lightings (its frames divided by its own teacher albedo).
        self.swap = float(swap)
        self.grey_teachers = {i: grey_shading_albedo(s.frames, s.teacher, s.mask)
                              for i, s in enumerate(self.scenes) if s.teacher is not None} if swap > 0 else {}

    def _window(self, scene: Scene, rng: np.random.Generator) -> tuple[int, int]:
        h, w = scene.mask.shape
        c = self.crop
        for _ in range(10):  # prefer windows that hold some of the object
            top, left = int(rng.integers(0, max(1, h - c + 1))), int(rng.integers(0, max(1, w - c + 1)))
            if scene.mask[top:top + c, left:left + c].mean() >= self.min_valid:
                break
        return top, left

    def _cut(self, array: np.ndarray, top: int, left: int) -> np.ndarray:
        c = self.crop
        out = array[..., top:top + c, left:left + c, :] if array.ndim >= 3 else array[top:top + c, left:left + c]
        h, w = out.shape[-3:-1] if array.ndim >= 3 else out.shape
        if h < c or w < c:
            pad = [(0, 0)] * (out.ndim - (3 if array.ndim >= 3 else 2)) + [(0, c - h), (0, c - w)]
            pad += [(0, 0)] if array.ndim >= 3 else []
            out = np.pad(out, pad, mode="constant")
        return out

    def _composite(self, rng: np.random.Generator) -> tuple:
        """An albedo-swap pair: scene i's (grey-shading) teacher albedo × scene j's two shadings, j ≠ i."""
        keys = list(self.grey_teachers)
        p = self.weights[keys] / self.weights[keys].sum()
        i, j = (int(v) for v in rng.choice(keys, size=2, replace=False, p=p))
        source, light = self.scenes[i], self.scenes[j]
        a, b = rng.choice(light.frames.shape[0], size=2, replace=False)
        top, left = self._window(source, rng)
        source_mask = self._cut(source.mask, top, left)
        # the shading window: of a few drawn, the one whose object overlaps the albedo window's object most
        stop, sleft = max((self._window(light, rng) for _ in range(4)),
                          key=lambda w: float((source_mask * self._cut(light.mask, *w)).sum()))
        albedo = self._cut(self.grey_teachers[i], top, left)
        light_albedo = self._cut(self.grey_teachers[j], stop, sleft)
        valid = (source_mask * self._cut(light.mask, stop, sleft)
                 * (light_albedo.min(axis=-1) > 1e-3) * (albedo.min(axis=-1) > 1e-3)).astype(np.float32)
        shade = lambda f: self._cut(f, stop, sleft) / np.maximum(light_albedo, 1e-3) * valid[..., None]  # noqa: E731
        f1, f2 = albedo * shade(light.frames[a]), albedo * shade(light.frames[b])
        peak = max(float(max(f1.max(), f2.max())), 1e-6)
        return i, f1 / peak, f2 / peak, valid, albedo

    def sample(self, counter: int) -> dict[str, torch.Tensor]:
        """One pair in linear light (photometric changes are applied per batch, vectorised, in :meth:`batch`)."""
        rng = np.random.default_rng([self.seed, 7, counter])
        if len(self.grey_teachers) >= 2 and rng.random() < self.swap:
            i, f1, f2, mask, teacher = self._composite(rng)
            scene = self.scenes[i]
            albedo = np.zeros_like(f1)  # a composite has no ground truth, even when its albedo scene is labelled
            labelled, flip = False, rng.random() < 0.5
        else:
            i = int(rng.choice(len(self.scenes), p=self.weights))
            scene = self.scenes[i]
            k = scene.frames.shape[0]
            a, b = rng.choice(k, size=2, replace=False)
            top, left = self._window(scene, rng)
            flip = rng.random() < 0.5
            f1, f2 = self._cut(scene.frames[a], top, left), self._cut(scene.frames[b], top, left)
            mask = self._cut(scene.mask, top, left)
            labelled = scene.labelled
            albedo = self._cut(scene.reflectance, top, left) if scene.labelled else np.zeros_like(f1)
            teacher = self._cut(scene.teacher, top, left) if scene.teacher is not None else np.zeros_like(f1)
        others = [j for j in range(len(self.scenes)) if j != i] or [i]
        j = int(rng.choice(others))
        other = self.scenes[j]
        ntop, nleft = self._window(other, rng)
        neg = self._cut(other.frames[int(rng.integers(0, other.frames.shape[0]))], ntop, nleft)
        neg_mask = self._cut(other.mask, ntop, nleft)
        out = {"image1": f1, "image2": f2, "mask": mask[..., None], "negative": neg,
               "negative_mask": neg_mask[..., None], "albedo": albedo, "teacher": teacher}
        tensors = {key: torch.from_numpy(np.ascontiguousarray(v.transpose(2, 0, 1))) for key, v in out.items()}
        if flip:
            tensors = {key: v.flip(-1) for key, v in tensors.items()}
        low, high = np.log(self.exposure[0]), np.log(self.exposure[1])
        tensors["gain"] = torch.from_numpy(np.exp(rng.uniform(low, high, 3)).astype(np.float32))
        tensors["sigma"] = torch.from_numpy(rng.uniform(0, self.noise, 3).astype(np.float32))
        tensors["labelled"] = torch.tensor(float(labelled))
        tensors["has_teacher"] = torch.tensor(float(scene.teacher is not None))
        tensors["same_scene_negative"] = torch.tensor(float(j == i))
        return tensors

    def batch(self, step: int, micro: int = 0, accumulate: int = 1) -> dict[str, torch.Tensor]:
        start = (step * accumulate + micro) * self.batch_size
        samples = [self.sample(c) for c in range(start, start + self.batch_size)]
        out = {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
        out["noise_seed"] = torch.tensor(int(np.random.default_rng([self.seed, 11, start]).integers(2 ** 62)))
        return out


def apply_photometric(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Turn a :class:`PairStream` batch (linear crops, ``gain``, ``sigma``, ``noise_seed``) into photos, on the
    batch's device (vectorised): an independent exposure and noise level per photo, then sRGB encoding. The noise
    comes from a generator seeded by the batch, so a batch is the same photos wherever it is made."""
    out = dict(batch)
    if "gain" not in out:
        return out
    gain, sigma = out.pop("gain"), out.pop("sigma")
    device = gain.device
    generator = torch.Generator(device=device).manual_seed(int(out.pop("noise_seed")))
    for index, key in enumerate(("image1", "image2", "negative")):
        x = out[key] * gain[:, index].view(-1, 1, 1, 1)
        noise = torch.randn(x.shape, generator=generator, device=device) * sigma[:, index].view(-1, 1, 1, 1)
        out[key] = linear_to_srgb((x + noise).clamp(0, 1))
    return out
