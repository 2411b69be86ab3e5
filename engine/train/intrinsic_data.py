"""Training data and losses shared by the single-image intrinsic recipes (IntrinSeg, CGIntrinsics).

Two sources of supervision, one sample format (CHW tensors): ``image`` (3, H, W) sRGB camera image; ``albedo`` and
``shading`` (3, H, W) linear; ``mask`` (1, H, W) where the intrinsic targets count; ``labels`` (H, W) int64 class
indices and ``seg_mask`` (1, H, W) where they count (0 everywhere for MIT, which has no labels).

* **Rendered scenes** (:mod:`engine.synth`): a folder written by ``python -m engine.synth`` (cached in memory once
  read) or scenes rendered on the fly; every lighting of a scene is a sample.
* **MIT intrinsic objects** (Grosse et al. 2009): ``diffuse`` with its ground-truth shading, and the ten
  single-light images ``light01…10`` with shading = grey(light) / grey(reflectance) (the same reflectance under ten
  other lights), each at four scales. Read from the MIT layout (16-bit linear PNGs) or from a training pack
  (8-bit sRGB PNG/JPEG written by ``scripts/gpu_train/pack_intrinseg.py``): 8-bit files are sRGB-decoded.

Cross-validation folds hold out MIT objects by name (``holdout``); :func:`mit_benchmark_input` turns an object into
exactly what the benchmark gives a method (linear ÷ max, sRGB-encoded), so validation scores are the benchmark's.

Losses: :func:`lmse_loss` is the Grosse LMSE itself (20×20 windows every 10 px, a least-squares scale per window,
normalised by the truth's energy), differentiable; :func:`si_loss` is its one-window (global) form.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..imaging import linear_to_srgb, srgb_to_linear

MIT_OBJECTS = ("apple", "box", "cup1", "dinosaur", "frog1", "panther", "paper1", "phone", "squirrel", "teabag2")
#: The 5-fold split used for cross-validation: two objects held out per fold (alphabetical pairs).
FOLDS = tuple(tuple(MIT_OBJECTS[i:i + 2]) for i in range(0, 10, 2))
MIT_SCALES = (1.0, 0.85, 0.7, 0.55)
LIGHTS = tuple(f"light{i:02d}" for i in range(1, 11))


def fold_holdout(fold: int) -> tuple[str, ...]:
    return FOLDS[int(fold)]


def parse_objects(text: str | Sequence[str] | None) -> tuple[str, ...]:
    if not text:
        return ()
    if isinstance(text, str):
        return tuple(t.strip() for t in text.split(",") if t.strip())
    return tuple(text)


# --- reading MIT objects ---------------------------------------------------------------------------------------------

def read_linear(path: Path) -> np.ndarray:
    """16-bit PNG → linear as stored; 8-bit PNG/JPEG → sRGB-decoded. (H, W, C) float32 RGB."""
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise FileNotFoundError(f"{path}: missing or unreadable")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.shape[2] >= 3:
        array = array[:, :, 2::-1]
    if array.dtype == np.uint16:
        return np.ascontiguousarray(array.astype(np.float32) / 65535.0)
    return srgb_to_linear(np.ascontiguousarray(array.astype(np.float32) / 255.0))


def _find(folder: Path, stem: str) -> Path | None:
    for suffix in (".png", ".jpg", ".jpeg"):
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None


def load_mit_object(root: str | Path, name: str, lights: bool = True) -> dict:
    """One MIT object as linear float32 arrays: ``image`` (diffuse, else original), ``reflectance`` (H, W, 3),
    ``shading`` (H, W, 1), ``mask`` (H, W, 1) and ``lights`` (list of (H, W, 3), possibly empty)."""
    folder = Path(root) / name
    source = _find(folder, "diffuse") or _find(folder, "original")
    if source is None:
        raise FileNotFoundError(f"{folder}: no diffuse or original image")
    reflectance = read_linear(_find(folder, "reflectance"))
    if reflectance.shape[2] == 1:
        reflectance = np.repeat(reflectance, 3, axis=2)
    shading = read_linear(_find(folder, "shading")).mean(axis=2, keepdims=True)
    mask = (cv2.imread(str(_find(folder, "mask")), cv2.IMREAD_UNCHANGED) > 0)
    mask = (mask.max(axis=2) if mask.ndim == 3 else mask)[:, :, None].astype(np.float32)
    out = {"name": name, "image": read_linear(source)[:, :, :3], "reflectance": reflectance[:, :, :3],
           "shading": shading, "mask": mask, "lights": []}
    if lights:
        out["lights"] = [read_linear(p)[:, :, :3] for p in (_find(folder, s) for s in LIGHTS) if p is not None]
    return out


def mit_benchmark_input(obj: Mapping) -> np.ndarray:
    """The benchmark's input convention for an IMAGE method: the linear frame divided by its max, sRGB-encoded."""
    image = obj["image"]
    return linear_to_srgb(image / max(float(image.max()), 1e-8))


def _chw(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).float()


class MITSamples(torch.utils.data.Dataset):
    """Every (object, lighting, scale) of the chosen MIT objects as a training sample (see the module doc)."""

    def __init__(self, root: str | Path, objects: Sequence[str], use_lights: bool = True,
                 scales: Sequence[float] = MIT_SCALES, swap: float = 0.0, seed: int = 0):
        self.objects = [load_mit_object(root, name, lights=use_lights) for name in objects]
        self.scales = tuple(scales)
        self.index = [(o, v, s) for o, obj in enumerate(self.objects) for v in range(1 + len(obj["lights"]))
                      for s in range(len(self.scales))]
        self._cache: dict[int, dict[str, torch.Tensor]] = {}  # prepared samples (resizing is the costly part)
        # ``swap`` of the items are albedo-swap composites (:meth:`composite`); they need two objects
        swap = min(max(float(swap), 0.0), 0.9) if len(self.objects) >= 2 else 0.0
        self.n_swap = int(round(len(self.index) * swap / (1.0 - swap)))
        self.seed = seed

    def __len__(self) -> int:
        return len(self.index) + self.n_swap

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        index = int(index)
        if index >= len(self.index):
            return self.composite(index - len(self.index))
        if index not in self._cache:
            self._cache[index] = self._prepare(index)
        return dict(self._cache[index])

    def composite(self, k: int) -> dict[str, torch.Tensor]:
        """Composite ``k``: one object's reflectance times another object's (grey) shading under one of its
        lightings, at one scale, both cut to their common size at drawn offsets; exact by construction (image =
        albedo × shading in linear light), masked to where both objects are. Deterministic in (seed, k); built from
        the cached samples, not cached itself."""
        rng = np.random.default_rng([self.seed, 13, k])
        s = int(rng.integers(len(self.scales)))
        o1, o2 = (int(v) for v in rng.choice(len(self.objects), size=2, replace=False))
        pick = lambda o: self.index.index((o, int(rng.integers(1 + len(self.objects[o]["lights"]))), s))  # noqa: E731
        first, second = self[pick(o1)], self[pick(o2)]
        (_, h1, w1), (_, h2, w2) = first["albedo"].shape, second["shading"].shape
        h, w = min(h1, h2), min(w1, w2)
        cut = lambda t, y, x: t[..., y:y + h, x:x + w]  # noqa: E731
        y1, x1 = int(rng.integers(h1 - h + 1)), int(rng.integers(w1 - w + 1))
        y2, x2 = int(rng.integers(h2 - h + 1)), int(rng.integers(w2 - w + 1))
        albedo, shading = cut(first["albedo"], y1, x1), cut(second["shading"], y2, x2)
        mask = cut(first["mask"], y1, x1) * cut(second["mask"], y2, x2)
        linear = albedo * shading
        srgb = linear_to_srgb((linear / linear.max().clamp(min=1e-8)).numpy())
        return {"image": torch.from_numpy(np.ascontiguousarray(srgb)).float(), "albedo": albedo, "shading": shading,
                "mask": mask, "labels": torch.zeros(h, w, dtype=torch.int64), "seg_mask": torch.zeros(1, h, w)}

    def _prepare(self, index: int) -> dict[str, torch.Tensor]:
        o, v, s = self.index[index]
        obj = self.objects[o]
        reflectance, mask = obj["reflectance"], obj["mask"]
        grey_r = reflectance.mean(axis=2, keepdims=True)
        if v == 0:
            image, shading = obj["image"], obj["shading"]
        else:
            image = obj["lights"][v - 1]
            shading = image.mean(axis=2, keepdims=True) / np.maximum(grey_r, 1e-4)
            mask = mask * (grey_r > 2e-3)
        mask = mask * (grey_r > 1e-4) * (shading > 1e-5)
        scale = self.scales[s]
        layers = {"image": image, "reflectance": reflectance, "shading": shading, "mask": mask}
        if scale != 1.0:
            h, w = image.shape[:2]
            size = (max(32, round(w * scale)), max(32, round(h * scale)))
            for key, value in layers.items():
                resized = cv2.resize(value, size, interpolation=cv2.INTER_AREA)
                layers[key] = resized[:, :, None] if resized.ndim == 2 else resized
            layers["mask"] = (layers["mask"] > 0.99).astype(np.float32)
        image = layers["image"]
        srgb = linear_to_srgb(image / max(float(image.max()), 1e-8))
        h, w = srgb.shape[:2]
        return {"image": _chw(srgb), "albedo": _chw(layers["reflectance"]),
                "shading": _chw(np.repeat(layers["shading"], 3, axis=2)), "mask": _chw(layers["mask"]),
                "labels": torch.zeros(h, w, dtype=torch.int64), "seg_mask": torch.zeros(1, h, w)}


def mit_samples(config: Mapping, objects: Sequence[str], seed: int) -> "MITSamples | None":
    """The recipes' MIT training items: ``mit_dir``'s ``objects`` (all lightings if ``mit_lights``), plus
    ``mit_swap`` of albedo-swap composites; None without objects."""
    if not objects:
        return None
    return MITSamples(config["mit_dir"], objects, bool(config["mit_lights"]), swap=float(config.get("mit_swap", 0.0)),
                      seed=seed)


# --- rendered scenes -------------------------------------------------------------------------------------------------

def synthetic_sample(sample: Mapping[str, torch.Tensor], lighting: int) -> dict[str, torch.Tensor]:
    """A rendered scene (all lightings) → one training sample for ``lighting`` (intrinsic mask: scene geometry,
    not the sky, not clipped, not black)."""
    image = sample["image"][lighting].float()
    linear = sample["image_linear"][lighting].float()
    labels = sample["labels"].long()
    valid = (labels != 0)[None] & (linear.sum(0, keepdim=True) > 3e-3) & (linear.max(0, keepdim=True).values < 0.98)
    return {"image": image, "albedo": sample["albedo"].float(), "shading": sample["shading"][lighting].float(),
            "mask": valid.float(), "labels": labels, "seg_mask": torch.ones(1, *labels.shape)}


_KEEP = ("image", "image_linear", "albedo", "shading", "labels")


class SceneLightings(torch.utils.data.Dataset):
    """Every (scene, lighting) of a synthetic dataset; scenes read from a folder are kept in memory (float16)."""

    def __init__(self, scenes, lightings: int, cache: bool = True):
        self.scenes, self.lightings, self.cache = scenes, lightings, cache
        self._cached: dict[int, dict[str, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.scenes) * self.lightings

    def _scene(self, index: int) -> dict[str, torch.Tensor]:
        if not self.cache:
            return self.scenes[index]
        if index not in self._cached:
            scene = self.scenes[index]
            self._cached[index] = {k: (scene[k].half() if k != "labels" else scene[k].to(torch.uint8))
                                   for k in _KEEP}
        return self._cached[index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene, lighting = divmod(int(index), self.lightings)
        return synthetic_sample(self._scene(scene), lighting)


class Mixture(torch.utils.data.Dataset):
    """Rendered and MIT samples in one index space: a fraction ``share`` of the items are MIT samples (cycled)."""

    def __init__(self, synthetic, mit, share: float):
        self.synthetic, self.mit = synthetic, mit
        n_syn = len(synthetic) if synthetic is not None else 0
        n_mit = len(mit) if mit is not None else 0
        if n_syn == 0 and n_mit == 0:
            raise ValueError("no training data: neither rendered scenes nor MIT objects")
        if n_mit == 0:
            self.n_syn, self.n_mit = n_syn, 0
        elif n_syn == 0:
            self.n_syn, self.n_mit = 0, n_mit
        else:
            share = min(max(share, 0.0), 0.95)
            self.n_syn = n_syn
            self.n_mit = max(1, int(round(n_syn * share / (1.0 - share))))

    def __len__(self) -> int:
        return self.n_syn + self.n_mit

    def __getitem__(self, index: int):
        index = int(index)
        if index < self.n_syn:
            return self.synthetic[index]
        return self.mit[(index - self.n_syn) % len(self.mit)]


def synthetic_source(data_dir: Path | None, config: Mapping, seed: int):
    """A folder written by ``python -m engine.synth`` (every lighting), or scenes rendered on the fly."""
    from ..synth import SyntheticDataset, SyntheticFolder, is_synthetic_folder

    if data_dir is not None and is_synthetic_folder(data_dir):
        folder = SyntheticFolder(data_dir)
        m = folder.manifest
        note = (f"{len(folder)} scenes × {m['lightings']} lighting(s) from `python -m engine.synth --n {len(folder)} "
                f"--size {m['size']} --lightings {m['lightings']} --seed {m['seed']} --style "
                f"{m.get('style', 'classic')}" + (" --textures PHOTOS" if m.get("texture_dir") else "") + "`")
        return SceneLightings(folder, int(m["lightings"])), note
    if data_dir is not None:
        raise ValueError(f"{data_dir}: not a folder written by python -m engine.synth (use --data synthetic to "
                         "render scenes on the fly)")
    if int(config.get("synthetic_scenes", 0)) <= 0:
        return None, "none"
    lightings = int(config["lightings"])
    dataset = SyntheticDataset(int(config["synthetic_scenes"]), int(config["render_size"]), lightings,
                               base_seed=seed * 10_000_000, texture_dir=config.get("texture_dir") or None,
                               style=str(config.get("style", "photographic")))
    return SceneLightings(dataset, lightings, cache=False), (
        f"rendered on the fly ({config.get('style', 'photographic')} style"
        + (", photo textures" if config.get("texture_dir") else "") + ")")


def mit_training_objects(config: Mapping) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(training objects, held-out objects) from ``mit_dir``, ``mit_objects`` and ``mit_holdout``/``fold``."""
    if not config.get("mit_dir"):
        return (), ()
    present = tuple(p.name for p in sorted(Path(config["mit_dir"]).iterdir())
                    if p.is_dir() and (_find(p, "reflectance") is not None))
    wanted = parse_objects(config.get("mit_objects")) or present
    holdout = parse_objects(config.get("mit_holdout"))
    if int(config.get("fold", -1)) >= 0:
        holdout = holdout + fold_holdout(int(config["fold"]))
    unknown = [o for o in wanted + holdout if o not in present]
    if unknown:
        raise ValueError(f"MIT objects {unknown} are not in {config['mit_dir']} (found {list(present)})")
    return tuple(o for o in wanted if o not in holdout), tuple(o for o in present if o in holdout)


# --- losses -----------------------------------------------------------------------------------------------------------

def shuffle_channels(batch: dict[str, torch.Tensor], p: float, keys: Sequence[str] = ("image", "albedo", "shading")
                     ) -> dict[str, torch.Tensor]:
    """Colour augmentation that keeps a decomposition exact: per sample, with probability ``p``, one random
    permutation of the RGB channels applied alike to the image, its albedo and its shading. Image = albedo × shading
    holds per channel, sRGB encoding is per channel and the ÷max normalisation is over all channels, so the permuted
    sample is as valid as the original. It keeps a network from tying albedo hues to the few hues of its training
    objects (the ten MIT objects are mostly red, orange and brown) and pushes it to pass the input's chromaticity
    through; on its own it did not cure orange albedos on photos (see ``white_balance`` and ``chroma_loss``).
    Single-channel layers are left as they are. Uses torch's global generator (seeded by the training loop)."""
    n = batch[keys[0]].shape[0]
    if p <= 0 or n == 0:
        return batch
    flip = torch.rand(n) < p
    perms = torch.stack([torch.randperm(3) if f else torch.arange(3) for f in flip.tolist()])
    out = dict(batch)
    for key in keys:
        x = out[key]
        if x.shape[1] == 3:
            index = perms.to(x.device)[:, :, None, None].expand_as(x)
            out[key] = torch.gather(x, 1, index)
    return out


def white_balance(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """What a camera's white balance does, with the true light: per sample, the shading's mean colour (inside the
    mask, linear) is divided out of the shading and of the image, so the light averages grey and the albedo is
    unchanged. Image = albedo × shading still holds per channel (the sRGB image is decoded, divided and re-encoded;
    values above 1 are kept, the networks divide by the maximum). Rendered scenes are lit by coloured sun, sky and
    lamps; photographs come white-balanced, and a network trained on unbalanced renders learns to push albedos away
    from the light's colour (blue sky light → orange albedo). Grey-shaded samples (the MIT objects) are unchanged.
    (N, 3, H, W) image and shading, (N, 1, H, W) mask; a 1-channel shading is left as it is."""
    image, shading, mask = batch["image"], batch["shading"], batch["mask"]
    if shading.shape[1] != 3:
        return batch
    m = mask.float()
    mean = (shading.float() * m).sum((2, 3)) / m.sum((2, 3)).clamp(min=1e-6)  # (N, 3)
    gain = mean / mean.mean(1, keepdim=True).clamp(min=1e-6)
    gain = torch.where(gain > 1e-3, gain, torch.ones_like(gain))[:, :, None, None]
    encoded = linear_to_srgb(srgb_to_linear(image) / gain)
    out = dict(batch)
    out["image"], out["shading"] = encoded.to(image.dtype), (shading / gain).to(shading.dtype)
    return out


def lmse_loss(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, window: int = 20, step: int = 10
              ) -> torch.Tensor:
    """The Grosse LMSE per channel and image (Σ_windows min_a Σ m(t − a·p)² / Σ_windows Σ m·t²), averaged.

    (N, C, H, W) layers, (N, 1, H, W) mask. Differentiable; a window where the prediction is empty contributes
    its full truth energy (as in the metric)."""
    pred, truth, mask = pred.float(), truth.float(), mask.float()
    if min(pred.shape[-2:]) < window:
        window, step = min(pred.shape[-2:]), max(1, min(pred.shape[-2:]) // 2)
    area = float(window * window)

    def sums(x):
        return F.avg_pool2d(x, window, step) * area

    tt, te, ee = sums(mask * truth * truth), sums(mask * truth * pred), sums(mask * pred * pred)
    residual = (tt - te * te / ee.clamp(min=1e-6)).clamp(min=0)
    total = tt.sum(dim=(2, 3)).clamp(min=1e-6)
    per = residual.sum(dim=(2, 3)) / total
    has = (tt.sum(dim=(2, 3)) > 1e-6).float()
    return (per * has).sum() / has.sum().clamp(min=1.0)


def si_loss(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, joint: bool = False) -> torch.Tensor:
    """Global scale-invariant error normalised like LMSE: min_a Σ m(t − a·p)² / Σ m·t², per image and channel, or
    with ``joint`` one scale ``a`` per image shared by its channels, so that the colour balance counts: per-channel
    scales forgive any colour cast (a yellow albedo predicted orange costs nothing)."""
    pred, truth, mask = pred.float(), truth.float(), mask.float()
    dims = (1, 2, 3) if joint else (2, 3)
    tt = (mask * truth * truth).sum(dim=dims)
    te = (mask * truth * pred).sum(dim=dims)
    ee = (mask * pred * pred).sum(dim=dims)
    per = (tt - te * te / ee.clamp(min=1e-6)).clamp(min=0) / tt.clamp(min=1e-6)
    has = (tt > 1e-6).float()
    return (per * has).sum() / has.sum().clamp(min=1.0)


def chroma_loss(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor, floor: float = 1e-3) -> torch.Tensor:
    """Mean squared error of the chromaticity (each pixel's RGB ÷ its sum) inside the mask, where the truth is not
    black. Scale-free, like the other terms, but blind to nothing but colour: the windowed, per-channel LMSE lets each
    20×20 window pick its own per-channel scale, so it barely sees a colour cast, and networks trained on it alone
    returned one hue for every albedo. (N, 3, H, W) layers, (N, 1, H, W) mask."""
    pred, truth = pred.float().clamp(min=0), truth.float().clamp(min=0)
    t_sum = truth.sum(dim=1, keepdim=True)
    weight = mask.float() * (t_sum > floor).float()
    pc = pred / (pred.sum(dim=1, keepdim=True) + floor)
    tc = truth / t_sum.clamp(min=floor)
    return ((pc - tc) ** 2 * weight).sum() / (3 * weight.sum()).clamp(min=1.0)


def masked_cross_entropy(scores: torch.Tensor, labels: torch.Tensor, seg_mask: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over pixels where ``seg_mask`` is 1 (0 when a batch has no labelled pixel)."""
    per_pixel = F.cross_entropy(scores.float(), labels.clamp(0, scores.shape[1] - 1), reduction="none")
    weight = seg_mask[:, 0].float()
    return (per_pixel * weight).sum() / weight.sum().clamp(min=1.0)


def as_benchmark_stores(layer: np.ndarray, colour_space: str = "linear", grey: bool = False) -> np.ndarray:
    """What the benchmark scores for an output layer: stored as a 16-bit PNG (clipped to [0, 1]), decoded, and
    brought into the linear space of the MIT ground truth (``engine.outputs.encode_result`` then
    ``engine.benchmark.convention.decode_layer``; repeated here because importing ``engine.benchmark`` needs the
    database packages, which a training machine lacks)."""
    from ..imaging import decode_image, encode_png

    pixels = decode_image(encode_png(np.asarray(layer, dtype=np.float32)), "output").pixels.astype(np.float64)
    if grey:
        pixels = pixels[..., :1]
    if colour_space == "srgb":
        pixels = srgb_to_linear(pixels).astype(np.float64)
    return pixels


def grosse_scores(reflectance: np.ndarray, shading: np.ndarray, obj: Mapping) -> dict[str, float]:
    """The benchmark's metric (``engine.metrics`` ``grosse_lmse`` = ½ albedo LMSE + ½ shading LMSE)."""
    from ..metrics.intrinsic import lmse

    a = lmse(obj["reflectance"], reflectance, obj["mask"])
    s = lmse(obj["shading"], shading, obj["mask"])
    return {"grosse_lmse": 0.5 * (a + s), "albedo_lmse": a, "shading_lmse": s}


def evaluate_mit(model, mit_dir: str, objects, decompose) -> dict[str, dict[str, float]]:
    """Per object: the benchmark's Grosse LMSE of ``decompose(image) -> (reflectance, shading)`` on the object's
    benchmark input (the runner's path, so training validation scores what users get); ``model`` is put in eval
    mode for the call and returned to its previous mode."""
    was_training = model.training
    model.eval()
    scores = {}
    try:
        for name in objects:
            obj = load_mit_object(mit_dir, name, lights=False)
            reflectance, shading = decompose(mit_benchmark_input(obj))
            scores[name] = grosse_scores(reflectance, shading, obj)
    finally:
        model.train(was_training)
    return scores


def mit_metrics(scores: Mapping[str, Mapping[str, float]], prefix: str) -> dict[str, float]:
    """Means over objects of :func:`evaluate_mit`'s scores, named ``PREFIX_lmse``, ``PREFIX_albedo_lmse``, …"""
    names = {"grosse_lmse": "lmse", "albedo_lmse": "albedo_lmse", "shading_lmse": "shading_lmse"}
    return {f"{prefix}_{name}": float(np.mean([s[key] for s in scores.values()])) for key, name in names.items()}
