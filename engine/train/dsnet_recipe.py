"""Training recipe for DS-Net (``engine.methods.dsnet``): HypNet + SelNet on 44×44 log-chroma patches.

Data (``--data DIR``: any colour-constancy folder :mod:`engine.datasets.colour_constancy` reads, e.g. the 10
INTEL-TAU Sony IMX135 images of ``../shared/data/color-constancy/intel-tau-imx135``). Every image is brought to a
canvas whose longest side is ``canvas`` (384: the runner's default working side), divided by its true illuminant
(a "white-balanced" raw scene) and kept with a mask of usable pixels (not clipped, not black). Two more sources of
scenes, also stored white-balanced in the same canvas:

* photographs (``photos_dir``, comma-separated folders, e.g. ``../shared/data/photos/kodak24``): the sRGB curve is
  undone and the linear image is taken as a white-balanced scene of this camera (von Kries: a drawn illuminant
  multiplies each channel), with sRGB-clipped pixels masked;
* rendered scenes from :mod:`engine.synth` (``synth_scenes``): albedo × grey shading + grey specular, linear already.

A training patch is drawn as the colour-constancy literature does: a random scene (``p_real``/``p_photo``, the rest
rendered), a random 44×44 crop whose pixels are all usable, a random horizontal flip (the paper's only geometric
augmentation; with ``dihedral`` = 1 also a random vertical flip and transposition, so all 8 orientations of the
square patch; on the INTEL-TAU field images it made the held-out error worse, see the model card), then
**re-illumination in camera space** — multiplied by an illuminant drawn along *this camera's* illuminant locus (a
line in (u, v) = (ln r/g, ln b/g) fitted by PCA to the training images' ground truths, extended by ``locus_margin``
at both ends, with Gaussian spread ``locus_spread`` across it); a real scene keeps its own illuminant with probability
``keep_original`` — with intensity jitter (``intensity_min``..``intensity_max``) and sensor-like noise. Batches are
built vectorised from ``(seed, step)`` alone (:class:`PatchStream`), so runs are reproducible and resumable.

Cross-validation: ``fold`` = k ∈ [0, folds) trains on every image not in fold k and validates on fold k (folds are a
seeded permutation of the sorted image names, ``fold_seed``); the locus is fitted on the training images only.
``fold = -1`` trains on all images (validation then reports the training images: not a held-out number).

Losses (methods.md §2): HypNet = batch mean of the per-sample minimum over branches of the (u, v) MSE (winner takes
all); SelNet = cross-entropy with the winning branch as label; weight decay ``weight_decay`` (1e-5 = the paper's
5e-6·Σw²). The paper used momentum SGD (lr 0.02, 4M iterations); with a few thousand steps Adam (``optimizer``)
converges much faster, so it is the default. ``schedule_seconds`` > 0 makes the cosine learning-rate decay follow
wall time instead of steps (for runs cut by ``--max-seconds``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..methods.dsnet import PATCH, DSNet, estimate, log_chroma, rgb_to_uv
from .recipe import TrainingRecipe, register_recipe


# --- scenes ----------------------------------------------------------------------------------------------------------

def _fit_canvas(image: np.ndarray, side: int) -> np.ndarray:
    """Landscape orientation, area-downscaled so the longest side is at most ``side``."""
    import cv2

    if image.shape[0] > image.shape[1]:
        image = np.ascontiguousarray(np.rot90(image))
    scale = min(1.0, side / max(image.shape[:2]))
    if scale < 1.0:
        size = (max(PATCH, round(image.shape[1] * scale)), max(PATCH, round(image.shape[0] * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image


def fold_split(items: list[str], folds: int, fold: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) item names for fold ``fold`` of ``folds`` (-1: all for training, all for validation)."""
    items = sorted(items)
    if fold < 0:
        return items, items
    if not 0 <= fold < folds or folds > len(items):
        raise ValueError(f"dsnet: fold {fold} of {folds} is not possible with {len(items)} images")
    order = np.random.default_rng(seed).permutation(len(items))
    held = {items[i] for i in np.array_split(order, folds)[fold]}
    return [i for i in items if i not in held], [i for i in items if i in held]


class Locus:
    """A straight illuminant locus in (u, v), fitted by PCA to ground truths; draws illuminants along it."""

    def __init__(self, illuminants: np.ndarray, margin: float, spread: float):
        uv = rgb_to_uv(torch.as_tensor(illuminants, dtype=torch.float64)).numpy()
        self.mean = uv.mean(0)
        if len(uv) >= 2 and np.ptp(uv, axis=0).max() > 1e-6:
            _, _, vt = np.linalg.svd(uv - self.mean, full_matrices=False)
            self.direction = vt[0]
        else:
            self.direction = np.array([1.0, -1.0]) / math.sqrt(2)
        self.normal = np.array([-self.direction[1], self.direction[0]])
        t = (uv - self.mean) @ self.direction
        residual = (uv - self.mean) @ self.normal
        self.t_range = (float(t.min() - margin), float(t.max() + margin))
        self.spread = float(max(spread, residual.std() if len(uv) > 2 else 0.0))

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 3) illuminants (max channel 1)."""
        low, high = self.t_range
        t = torch.rand(n, generator=generator, dtype=torch.float64) * (high - low) + low
        s = torch.randn(n, generator=generator, dtype=torch.float64) * self.spread
        uv = (torch.as_tensor(self.mean)[None] + t[:, None] * torch.as_tensor(self.direction)[None]
              + s[:, None] * torch.as_tensor(self.normal)[None])
        rgb = torch.stack([uv[:, 0].exp(), torch.ones(n, dtype=torch.float64), uv[:, 1].exp()], 1)
        return (rgb / rgb.max(1, keepdim=True).values).float()

    def describe(self) -> str:
        return (f"(u, v) mean ({self.mean[0]:.3f}, {self.mean[1]:.3f}), direction ({self.direction[0]:.3f}, "
                f"{self.direction[1]:.3f}), t in [{self.t_range[0]:.3f}, {self.t_range[1]:.3f}], "
                f"spread {self.spread:.3f}")


class Scenes:
    """White-balanced linear scenes on one canvas (N, H, W, 3), a usable-pixel mask, and the patch positions."""

    def __init__(self, canvas: tuple[int, int]):
        self.canvas = canvas
        self.images: list[np.ndarray] = []
        self.illuminants: list[np.ndarray] = []  # the scene's own light (max 1); grey for photos and renders
        self.kinds: list[str] = []
        self.masks: list[np.ndarray] = []

    def add(self, image: np.ndarray, usable: np.ndarray, illuminant: np.ndarray | None, kind: str) -> None:
        h, w = self.canvas
        image = image[:h, :w]
        usable = usable[:h, :w] & np.all(image > 0, axis=2)
        if illuminant is not None:
            light = np.asarray(illuminant, np.float64)
            light = light / light.max()
            image = image / light[None, None, :].astype(np.float32)
        else:
            light = np.ones(3)
        top = float(np.percentile(image[usable], 99)) if usable.any() else 1.0
        padded = np.zeros((h, w, 3), np.float32)
        mask = np.zeros((h, w), bool)
        padded[:image.shape[0], :image.shape[1]] = image / max(top, 1e-6) * 0.5
        mask[:image.shape[0], :image.shape[1]] = usable
        self.images.append(padded)
        self.masks.append(mask)
        self.illuminants.append(light)
        self.kinds.append(kind)

    def finish(self, stride: int = 2) -> None:
        from ..methods.dsnet import _box_sums, patch_offsets

        self.stack = torch.from_numpy(np.stack(self.images))  # (N, H, W, 3)
        self.lights = torch.from_numpy(np.stack(self.illuminants)).float()
        positions, counts = [], []
        h, w = self.canvas
        ys, xs = patch_offsets(h, stride), patch_offsets(w, stride)
        for mask in self.masks:
            bad = _box_sums((~mask).astype(np.float64), ys, xs)
            iy, ix = np.nonzero(bad < 0.5)
            positions.append(np.stack([ys[iy], xs[ix]], 1))
            counts.append(len(iy))
        self.counts = torch.tensor(counts)
        self.starts = torch.cumsum(torch.tensor([0] + counts[:-1]), 0)
        self.positions = torch.from_numpy(np.concatenate(positions) if positions else np.zeros((0, 2), np.int64))
        del self.images, self.masks

    def groups(self) -> dict[str, torch.Tensor]:
        out = {}
        for kind in ("real", "photo", "synth"):
            idx = [i for i, k in enumerate(self.kinds) if k == kind and int(self.counts[i]) > 0]
            if idx:
                out[kind] = torch.tensor(idx)
        return out


def load_colour_constancy(folder: Path, items: list[str], scenes: Scenes, side: int, saturation: float
                          ) -> np.ndarray:
    from ..datasets import get_adapter

    adapter = get_adapter("color-constancy")
    truths = []
    for item in items:
        sample = adapter.load(folder, item)
        image = sample.frames[0]
        clipped = np.any(image >= saturation, axis=2).astype(np.float32)
        image = _fit_canvas(image, side)
        clipped = _fit_canvas(clipped[..., None], side).reshape(image.shape[:2]) > 0
        truth = np.asarray(sample.truth["illuminant"], np.float64)
        scenes.add(image.astype(np.float32), ~clipped, truth, "real")
        truths.append(truth)
    return np.stack(truths)


def load_photos(folders: list[str], scenes: Scenes, side: int, limit: int) -> int:
    from ..datasets.base import as_rgb, read_float
    from ..imaging import srgb_to_linear
    from .data import IMAGE_SUFFIXES

    files = []
    for folder in folders:
        files += sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    files = files[:limit] if limit > 0 else files
    for path in files:
        srgb = as_rgb(read_float(path))
        clipped = np.any(srgb >= 0.98, axis=2).astype(np.float32)
        linear = _fit_canvas(srgb_to_linear(srgb), side)
        clipped = _fit_canvas(clipped[..., None], side).reshape(linear.shape[:2]) > 0
        scenes.add(linear.astype(np.float32), ~clipped, None, "photo")
    return len(files)


def render_synthetic(n: int, size: int, seed: int, scenes: Scenes) -> None:
    from ..synth import render_sample

    device = "cuda" if torch.cuda.is_available() else "cpu"
    for i in range(n):
        try:
            s = {k: v.cpu() for k, v in render_sample(seed + i, size, 1, device).items()}
        except Exception:  # noqa: BLE001 -- a CUDA problem in the renderer must not cost the run: use the CPU
            device = "cpu"
            s = render_sample(seed + i, size, 1, device)
        neutral = s["albedo"] * s["shading"][0].mean(0, keepdim=True) + s["specular"][0].mean(0, keepdim=True)
        image = neutral.permute(1, 2, 0).numpy().astype(np.float32)
        usable = (s["labels"].numpy() != 0) & np.all(image > 1e-4, axis=2)
        scenes.add(image, usable, None, "synth")


# --- the patch stream -------------------------------------------------------------------------------------------------

class PatchStream:
    """Batch ``step`` as a pure function of (seed, step, micro-batch): vectorised crops, flips, re-illumination."""

    def __init__(self, scenes: Scenes, locus: Locus, batch_size: int, seed: int, config: Mapping[str, Any]):
        self.scenes, self.locus, self.batch_size, self.seed = scenes, locus, batch_size, seed
        self.groups = scenes.groups()
        if "real" not in self.groups and "photo" not in self.groups and "synth" not in self.groups:
            raise ValueError("dsnet: no scene has a usable 44×44 patch")
        shares = {"real": float(config["p_real"]), "photo": float(config["p_photo"]),
                  "synth": max(0.0, 1.0 - float(config["p_real"]) - float(config["p_photo"]))}
        self.kinds = [k for k in ("real", "photo", "synth") if k in self.groups and shares[k] > 0]
        if not self.kinds:
            self.kinds = list(self.groups)
            shares = {k: 1.0 for k in self.kinds}
        total = sum(shares[k] for k in self.kinds)
        self.probs = torch.tensor([shares[k] / total for k in self.kinds])
        self.c = dict(config)

    def _to(self, device: torch.device) -> None:
        if getattr(self, "device", None) != device:
            sc = self.scenes
            self.stack, self.positions = sc.stack.to(device), sc.positions.to(device)
            self.lights = sc.lights.to(device)
            self.device = device

    def batch(self, step: int, micro: int = 0, accumulate: int = 1) -> dict[str, torch.Tensor]:
        """Small draws come from a CPU generator; the gather, re-illumination and noise run on ``stream_device``
        (``auto``: CUDA when present), where the loop would move the batch anyway."""
        wanted = str(self.c.get("stream_device", "auto"))
        self._to(torch.device("cuda" if wanted == "auto" and torch.cuda.is_available() else
                              ("cpu" if wanted == "auto" else wanted)))
        dev = self.device
        seed = int(self.seed) * 1_000_003 + (step * accumulate + micro) * 7919 + 17
        g = torch.Generator().manual_seed(seed)
        b, c, sc = self.batch_size, self.c, self.scenes
        kind = torch.multinomial(self.probs, b, replacement=True, generator=g)
        scene = torch.empty(b, dtype=torch.long)
        for k, name in enumerate(self.kinds):
            sel = kind == k
            members = self.groups[name]
            scene[sel] = members[torch.randint(len(members), (int(sel.sum()),), generator=g)]
        pick = (torch.rand(b, generator=g) * sc.counts[scene]).long().clamp(max=sc.counts[scene] - 1)
        index = sc.starts[scene] + pick
        flip = torch.rand(b, generator=g) < 0.5
        lights = self.locus.draw(b, g)
        real = self.kinds.index("real") if "real" in self.kinds else -1
        keep = (torch.rand(b, generator=g) < float(c["keep_original"])) & (kind == real)
        lights = torch.where(keep[:, None], sc.lights[scene], lights)
        lo, hi = math.log(float(c["intensity_min"])), math.log(float(c["intensity_max"]))
        gain = torch.exp(torch.rand(b, generator=g) * (hi - lo) + lo)
        sigma = torch.rand(b, generator=g) * float(c["noise"])
        dihedral = bool(int(c.get("dihedral", 0)))
        if dihedral:  # drawn after everything else, so dihedral=0 keeps the batches of the runs before it
            vflip = (torch.rand(b, generator=g) < 0.5).to(dev)
            transpose = (torch.rand(b, generator=g) < 0.5).to(dev)

        top_left = self.positions[index.to(dev)]
        ar = torch.arange(PATCH, device=dev)
        rows = (top_left[:, 0, None] + ar)[:, :, None]
        cols = (top_left[:, 1, None] + ar)[:, None, :]
        patches = self.stack[scene.to(dev)[:, None, None], rows, cols]  # (B, 44, 44, 3)
        patches = torch.where(flip.to(dev)[:, None, None, None], patches.flip(2), patches)
        if dihedral:
            patches = torch.where(vflip[:, None, None, None], patches.flip(1), patches)
            patches = torch.where(transpose[:, None, None, None], patches.transpose(1, 2), patches)
        lights, gain, sigma = lights.to(dev), gain.to(dev), sigma.to(dev)
        x = patches * (lights * gain[:, None])[:, None, None, :]
        if float(c["noise"]) > 0:
            gd = torch.Generator(device=dev).manual_seed(seed)
            x = x + sigma[:, None, None, None] * x.clamp(min=0).sqrt() * torch.randn(x.shape, generator=gd, device=dev)
        x = x.clamp(min=1e-4).permute(0, 3, 1, 2).contiguous()
        return {"uv": log_chroma(x), "target": rgb_to_uv(lights)}


# --- the recipe -------------------------------------------------------------------------------------------------------

def hypnet_selnet_loss(hyps: torch.Tensor, logits: torch.Tensor, target: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(winner-takes-all HypNet loss, SelNet cross-entropy, winner index) for hyps (B, 2, 2), target (B, 2)."""
    err = ((hyps.float() - target[:, None, :]) ** 2).mean(-1)  # (B, branches)
    best, winner = err.min(1)
    return best.mean(), F.cross_entropy(logits.float(), winner.detach()), winner


class DSNetRecipe(TrainingRecipe):
    method = "dsnet"
    description = ("DS-Net (Shi, Loy & Tang 2016): HypNet (two hypotheses) + SelNet (which one) on 44×44 "
                   "log-chroma patches, trained winner-takes-all on re-illuminated patches of a colour-constancy "
                   "folder (plus re-lit photographs and rendered scenes).")
    defaults = {
        "lr": 1e-3, "batch_size": 128, "accumulate": 1, "val_every": 1000, "checkpoint_every": 1000,
        "weight_decay": 1e-5, "optimizer": "adam", "momentum": 0.9, "schedule_seconds": 0.0, "final_lr": 0.02,
        "fold": -1, "folds": 5, "fold_seed": 0, "canvas": 384, "saturation": 0.98,
        "photos_dir": "", "photos_max": 0, "synth_scenes": 0, "synth_size": 192,
        "p_real": 0.6, "p_photo": 0.3, "keep_original": 0.3, "locus_margin": 0.15, "locus_spread": 0.03,
        "intensity_min": 0.3, "intensity_max": 2.0, "noise": 0.01, "dihedral": 0, "val_stride": 8,
        "stream_device": "auto",
        "export_dtype": "int8",
    }
    metric_higher_is_better = {"angular_mean": False, "angular_median": False, "angular_worst": False}

    def build_model(self, config):
        return DSNet()

    def begin(self, config):
        super().begin(config)
        self._start = None  # set at the first step, so data preparation does not eat the schedule

    def make_datasets(self, data_dir, seed, config):
        if data_dir is None:
            raise ValueError("dsnet trains on a colour-constancy folder (--data DIR: images + ground-truth "
                             "illuminants, e.g. ../shared/data/color-constancy/intel-tau-imx135)")
        from ..datasets import get_adapter

        adapter = get_adapter("color-constancy")
        folder = adapter.validate(data_dir)
        items = adapter.item_ids(folder, "all")
        train_items, val_items = fold_split(items, int(config["folds"]), int(config["fold"]), int(config["fold_seed"]))
        side = int(config["canvas"])
        scenes = Scenes((round(side * 2 / 3), side))
        truths = load_colour_constancy(folder, train_items, scenes, side, float(config["saturation"]))
        photos = [p for p in str(config["photos_dir"]).split(",") if p.strip()]
        n_photos = load_photos(photos, scenes, side, int(config["photos_max"])) if photos else 0
        if int(config["synth_scenes"]) > 0:
            render_synthetic(int(config["synth_scenes"]), int(config["synth_size"]), 5_000_000 + seed * 1000, scenes)
        scenes.finish()
        self.locus = Locus(truths, float(config["locus_margin"]), float(config["locus_spread"]))
        self.reference_white = truths.mean(0) / np.linalg.norm(truths.mean(0))
        self.data_note = (f"{len(train_items)} images of {folder.name} for training "
                          f"({', '.join(train_items) if len(train_items) <= 12 else ''}), {n_photos} photographs, "
                          f"{int(config['synth_scenes'])} rendered scenes; locus {self.locus.describe()}")
        self.val_note = (f"held-out fold {int(config['fold'])} of {int(config['folds'])}: {', '.join(val_items)}"
                         if int(config["fold"]) >= 0 else "the training images themselves (not held out)")
        self.scenes = scenes
        val = [(item, adapter.load(folder, item)) for item in val_items]
        return scenes, [(item, s.frames[0], np.asarray(s.truth["illuminant"], np.float64)) for item, s in val]

    def batch_stream(self, train, seed, config):
        return PatchStream(train, self.locus, int(config["batch_size"]), seed, config)

    def make_optimizers(self, model, config, phase):
        params = [p for p in model.parameters() if p.requires_grad]
        if str(config["optimizer"]).lower() == "sgd":
            opt = torch.optim.SGD(params, lr=float(config["lr"]), momentum=float(config["momentum"]),
                                  weight_decay=float(config["weight_decay"]))
        else:
            opt = torch.optim.Adam(params, lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))
        return {"main": opt}

    def lr_factor(self, step, steps, config, phase):
        """Cosine decay to ``final_lr`` × lr, over steps or (``schedule_seconds``) over wall time."""
        seconds = float(config.get("schedule_seconds", 0.0) or 0.0)
        if seconds > 0:
            if getattr(self, "_start", None) is None:
                self._start = time.perf_counter()
            progress = (time.perf_counter() - self._start) / seconds
        else:
            progress = step / max(1, steps)
        progress = min(max(progress, 0.0), 1.0)
        floor = float(config.get("final_lr", 0.02))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    def loss(self, model, batch, phase, optimizer):
        hyps, logits = model(batch["uv"])
        hyp_loss, sel_loss, winner = hypnet_selnet_loss(hyps, logits, batch["target"])
        accuracy = (logits.argmax(1) == winner).float().mean()
        return hyp_loss + sel_loss, {"hyp": float(hyp_loss.detach()), "sel": float(sel_loss.detach()),
                                     "sel_acc": float(accuracy), "branch1": float(winner.float().mean())}

    def validate(self, model, val, device, config):
        from ..metrics.angular import error_statistics, illuminant_error
        from ..methods.dsnet import working_image

        errors = []
        for _, image, truth in val:
            small, invalid, _ = working_image(image, float(config["saturation"]), int(config["canvas"]))
            with torch.autocast(device.type, enabled=False):
                found = estimate(model.float(), small, invalid, device, int(config["val_stride"]))
            errors.append(illuminant_error(truth, found["illuminant"]))
        model.train()
        if not errors:
            return {}
        stats = error_statistics(errors)
        return {"angular_mean": stats["mean"], "angular_median": stats["median"], "angular_worst": max(errors)}

    def export(self, model, config):
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        state["reference_white"] = torch.as_tensor(getattr(self, "reference_white", np.full(3, 3 ** -0.5)),
                                                   dtype=torch.float32)
        dtype = str(config.get("export_dtype", "int8"))
        if dtype == "float16":
            state = {k: (v.half() if v.is_floating_point() and k != "reference_white" else v) for k, v in state.items()}
        elif dtype == "int8":
            from ..methods.dsnet import quantize_state

            state = quantize_state(state)
        elif dtype != "float32":
            raise ValueError(f"dsnet: export_dtype must be int8, float16 or float32, not {dtype!r}")
        params = sum(p.numel() for p in model.parameters())
        return state, {"architecture": f"DSNet = HypNet + SelNet, {params:,} parameters, stored as {dtype}"
                                       + (" (per-output-channel scales)" if dtype == "int8" else ""),
                       "training data": getattr(self, "data_note", ""),
                       "validation data": getattr(self, "val_note", ""),
                       "input": "44×44 log-chroma patches of a linear raw image at longest side "
                                f"{int(config['canvas'])}",
                       "outputs": "per patch two (u, v) hypotheses and two selection logits"}

    def data_licence(self, data_dir):
        return ("INTEL-TAU dataset terms (research); photographs: Kodak (unrestricted) / BSD (non-commercial "
                "research); rendered scenes: engine.synth (no third-party content)")


register_recipe(DSNetRecipe())
