"""Training recipe for Ma et al. 2018 (``engine.methods.ma2018``): intrinsic images from pairs of lightings.

Data (no intrinsic ground truth needed):

* ``--data DIR``: a multi-light folder (:mod:`engine.train.multilight`: sub-folders of ≥ 2 aligned photos of one
  scene; the MIT intrinsic folder qualifies, its ``light01..10``), or a folder written by
  ``python -m engine.synth --lightings K`` (K ≥ 2);
* ``--data synthetic``: ``synthetic_scenes`` scenes rendered under ``lightings`` lightings by :mod:`engine.synth`;
* ``extra_data`` adds more multi-light folders (comma-separated) and ``synthetic_scenes`` adds rendered scenes to a
  folder; ``exclude`` / ``include`` select scenes by name (cross-validation folds).

Losses on a pair (I₁, I₂) of one scene, in log linear light, inside the valid mask; all weights are settings
(the paper's are not known: methods.md §6 is *unverified*):

* ``w_rec``  reconstruction ‖log A_k + log S_k − log I_k‖₁ for k = 1, 2;
* ``w_cross`` cross reconstruction ‖log A₂ + log S₁ − log I₁‖₁ (and symmetric), up to one global gain per colour
  channel (the two lightings' exposure and colour may differ);
* ``w_grad`` gradient assignment ‖∇log A − M⊙∇log I‖₁ + ‖∇log S − (1−M)⊙∇log Ī‖₁ (Ī: grey);
* ``w_embed`` embedding loss on the mean-free grey log albedo pooled ``embed_pool``×: ‖e(A₁) − e(A₂)‖² pulled
  together and a hinge max(0, ``embed_margin`` − ‖e(A₁) − e(A_neg)‖²) pushing a random crop of another scene away
  (this is what prevents the all-white albedo: a constant albedo is at distance 0 from every other scene's; with a
  grey shading the albedo's colour is pinned by the image, so the embedding looks at its intensity);
* ``w_sup`` (semi-supervised, only on scenes named in ``labelled`` or drawn by ``labelled_fraction``): scale-invariant
  L2 of log albedo against the reference reflectance and of log shading against log(Ī_k / Ā);
* ``w_teacher`` (*not in the paper*; this project's addition, on by default (1) because it lowered the
  cross-validated MIT LMSE from 0.0463 to 0.0275 on the cup1+dinosaur fold, see the model card): the same
  scale-invariant L2 as ``w_sup`` but against each scene's *multi-image* albedo estimate
  (``engine.train.multilight.multi_image_albedo``: Weiss's median of the frames' log gradients with a Retinex
  threshold ``teacher_threshold``), computed once per scene from its own photos when the data load (about 1 s per
  320-px scene), so still without any intrinsic ground truth; with 2 photos a scene the median is their mean;
* ``swap`` (*not in the paper*; this project's addition, 0.8 by default because it lowered the 5-fold
  cross-validated MIT LMSE from 0.0330 (``swap=0``) to 0.0291 (0.5) and 0.0276 (0.8), see the model card): the share
  of training pairs that are *albedo-swap composites* (``PairStream``): scene i's teacher albedo (rescaled per
  channel so that its scene's shading is grey, ``multilight.grey_shading_albedo``) times scene j's shadings under two
  of j's lightings (j's photos divided by j's own teacher albedo), with i's teacher as the target. Each scene's albedo
  is then seen under the other training scenes' shapes and lights, which its own photos cannot show; no ground truth
  is read. Needs the teacher (``w_teacher`` > 0); a no-op without it;
* ``w_smooth`` shading smoothness ‖∇log S‖² -- *not in the paper*: this project's addition, on by default (10)
  because it lowered the cross-validated MIT LMSE in the tuning runs recorded in the model card; ``w_smooth=0
  w_teacher=0`` gives the paper's objective.

Validation (``val_data`` + ``val_scenes``): the Grosse LMSE (½ albedo + ½ shading LMSE) and the two parts on held-out
scenes with MIT ground truth, at the loaded resolution, through the method's own ``decompose``.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F

from ..methods.ma2018 import Ma2018Net, decompose
from .multilight import PairStream, Scene, apply_photometric, load_multilight_folder, scenes_from_synthetic
from .recipe import Phase, TrainingRecipe, register_recipe


def _names(text: str) -> list[str]:
    return [t.strip() for t in str(text or "").split(",") if t.strip()]


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x over the mask, per image and channel → (N, C, 1, 1)."""
    m = mask.expand_as(x)
    return (x * m).sum((2, 3), keepdim=True) / m.sum((2, 3), keepdim=True).clamp(min=1.0)


def _l1(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.expand_as(x)
    return (x.abs() * m).sum() / m.sum().clamp(min=1.0)


def _grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return x[..., :, 1:] - x[..., :, :-1], x[..., 1:, :] - x[..., :-1, :]


def _pair_masks(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return mask[..., :, 1:] * mask[..., :, :-1], mask[..., 1:, :] * mask[..., :-1, :]


def si_l2(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Scale-invariant L2 in log space per image and channel, weighted per image (0 = unlabelled)."""
    diff = pred - target
    diff = (diff - _masked_mean(diff, mask)) * mask.expand_as(diff)
    per_image = (diff ** 2).sum((1, 2, 3)) / mask.expand_as(diff).sum((1, 2, 3)).clamp(min=1.0)
    return (per_image * weight).sum() / weight.sum().clamp(min=1.0)


class Ma2018Recipe(TrainingRecipe):
    method = "ma2018"
    description = ("Ma et al. 2018: one U-Net trained from pairs of photos of one scene under two lightings "
                   "(albedo consistency, reconstruction and cross reconstruction, soft gradient assignment, embedding "
                   "loss with negatives from other scenes), without intrinsic ground truth unless a labelled "
                   "fraction is asked for.")
    defaults = {
        "lr": 1e-3, "batch_size": 16, "accumulate": 1, "val_every": 200, "checkpoint_every": 200,
        "weight_decay": 0.0, "width": 16, "crop": 96, "max_side": 320, "colour_space": "auto", "use_mask": True,
        "exclude": "", "include": "", "extra_data": "", "labelled": "", "labelled_fraction": 0.0,
        "synthetic_scenes": 0, "synthetic_size": 128, "lightings": 4, "synthetic_device": "cpu",
        "exposure_min": 0.4, "exposure_max": 1.0, "noise": 0.005,
        "w_rec": 1.0, "w_cross": 1.0, "w_grad": 1.0, "w_embed": 1.0, "embed_margin": 0.1, "embed_pool": 4,
        "w_sup": 1.0, "w_smooth": 10.0, "dark": 0.02, "w_teacher": 1.0, "teacher_threshold": 0.2,
        "swap": 0.8,
        "val_data": "", "val_scenes": "", "val_max_side": 320, "schedule_seconds": 0.0,
    }
    metric_higher_is_better = {"grosse_lmse": False, "albedo_lmse": False, "shading_lmse": False,
                               "albedo_variance": True}

    # --- model and data ---------------------------------------------------------------------------------------
    def build_model(self, config: Mapping[str, Any]) -> Ma2018Net:
        return Ma2018Net(width=int(config["width"]))

    def _labelled(self, names: list[str], seed: int, config: Mapping[str, Any]) -> list[str]:
        chosen = _names(config["labelled"])
        fraction = float(config["labelled_fraction"])
        if fraction > 0:
            order = sorted(names, key=lambda n: zlib.crc32(f"{seed}:{n}".encode()))
            chosen += order[:int(round(fraction * len(names)))]
        return chosen

    def load_scenes(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]) -> list[Scene]:
        from ..synth import SyntheticDataset, SyntheticFolder, is_synthetic_folder

        folders = ([data_dir] if data_dir is not None else []) + [Path(p) for p in _names(config["extra_data"])]
        include = _names(config["include"]) or None
        scenes: list[Scene] = []
        notes = []
        synthetic_scenes = int(config["synthetic_scenes"])
        for folder in folders:
            if is_synthetic_folder(folder):
                synth = SyntheticFolder(folder)
                part = scenes_from_synthetic(synth, len(synth), float(config["labelled_fraction"]),
                                             prefix=f"{folder.name}/")
                notes.append(f"{len(part)} rendered scenes × {synth.manifest['lightings']} lightings from {folder}")
            else:
                from ..datasets import get_adapter

                adapter = get_adapter("image-sequence")
                names = [n for n in adapter.item_ids(adapter.validate(folder), "all")
                         if n not in _names(config["exclude"]) and (include is None or n in include)]
                part = load_multilight_folder(
                    folder, max_side=int(config["max_side"]), exclude=_names(config["exclude"]), include=include,
                    labelled=self._labelled(names, seed, config), colour_space=str(config["colour_space"]),
                    use_mask=bool(config["use_mask"]))
                notes.append(f"{folder}: {len(part)} scenes ({', '.join(s.name for s in part)}), "
                             f"{sum(s.labelled for s in part)} labelled")
            scenes += part
        if data_dir is None and synthetic_scenes <= 0:
            synthetic_scenes = 64
        if synthetic_scenes > 0:
            lightings = max(2, int(config["lightings"]))
            rendered = SyntheticDataset(synthetic_scenes, int(config["synthetic_size"]), lightings,
                                        base_seed=seed * 10_000_000, device=str(config["synthetic_device"]))
            part = scenes_from_synthetic(rendered, synthetic_scenes, float(config["labelled_fraction"]))
            notes.append(f"{len(part)} engine.synth scenes × {lightings} lightings at {config['synthetic_size']} px "
                         f"(seeds from {seed * 10_000_000})")
            scenes += part
        if not scenes:
            raise ValueError("ma2018: no training scenes (check --data, include/exclude)")
        if float(config.get("w_teacher", 0.0)) > 0:
            from .multilight import multi_image_albedo

            for scene in scenes:
                scene.teacher = multi_image_albedo(scene.frames, scene.mask, float(config["teacher_threshold"]))
            notes.append(f"multi-image teacher albedo (threshold {float(config['teacher_threshold']):g}) for every "
                         "scene, from its own frames")
            if float(config.get("swap", 0.0)) > 0:
                notes.append(f"{float(config['swap']):.0%} of the pairs are albedo-swap composites (one scene's "
                             "teacher albedo under another scene's two lightings)")
        self.data_note = "; ".join(notes)
        return scenes

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        self.scenes = self.load_scenes(data_dir, seed, config)
        val = []
        if config.get("val_data") and _names(config["val_scenes"]):
            val = load_val_objects(Path(config["val_data"]), _names(config["val_scenes"]), int(config["val_max_side"]))
        return self.scenes, val

    def batch_stream(self, train, seed: int, config: Mapping[str, Any]) -> PairStream:
        return PairStream(train, int(config["batch_size"]), seed, crop=int(config["crop"]),
                          exposure=(float(config["exposure_min"]), float(config["exposure_max"])),
                          noise=float(config["noise"]), swap=float(config.get("swap", 0.0)))

    # --- optimisation -----------------------------------------------------------------------------------------
    def phases(self, config: Mapping[str, Any]) -> list[Phase]:
        return [Phase("main")]

    def lr_factor(self, step: int, steps: int, config, phase) -> float:
        # Constant, then a linear decay over the last quarter: of the steps, or (``schedule_seconds`` > 0, for runs
        # stopped by --max-seconds) of that many seconds of wall time since the first step -- time-dependent.
        seconds = float(config.get("schedule_seconds", 0.0))
        if seconds > 0:
            import time

            if step == 0 or not hasattr(self, "_t0"):
                self._t0 = time.perf_counter()
            fraction = (time.perf_counter() - self._t0) / seconds
            return 1.0 if fraction < 0.75 else max(0.05, (1.0 - fraction) / 0.25)
        tail = max(1, steps // 4)
        return 1.0 if step < steps - tail else max(0.05, (steps - step) / tail)

    def loss(self, model, batch, phase, optimizer):
        c = {**self.defaults, **self.run_config}
        return ma2018_losses(model, batch, c)

    # --- evaluation and export --------------------------------------------------------------------------------
    def validate(self, model, val, device, config) -> dict[str, float]:
        if not val:
            return {}
        scores = score_objects(model, val, device, int(config["val_max_side"]))
        return {k: float(np.mean([s[k] for s in scores.values()])) for k in
                ("grosse_lmse", "albedo_lmse", "shading_lmse", "albedo_variance")}

    def export(self, model, config):
        state = {k: v.detach().cpu().to(torch.float16) if v.is_floating_point() else v.detach().cpu()
                 for k, v in model.state_dict().items()}
        params = sum(p.numel() for p in model.parameters())
        return state, {"architecture": f"Ma2018Net(width={int(config['width'])}), {params:,} parameters, "
                                       "stored as float16",
                       "training scenes": getattr(self, "data_note", ""),
                       "validation data": (f"{config['val_scenes']} in {config['val_data']} (MIT ground truth, "
                                           "research use)") if config.get("val_scenes") else "none",
                       "input": "sRGB image (normalised to its brightest pixel); H, W padded to multiples of 8",
                       "outputs": "log albedo (3), log grey shading (1), gradient-assignment mask (1)"}

    def data_licence(self, data_dir: Path | None) -> str:
        return ("multi-light captures as given (MIT Intrinsic Images: UC Regents, research use; multi-illumination "
                "kitchen: MIT) and/or engine.synth scenes (no third-party content)")


def ma2018_losses(model, batch: Mapping[str, torch.Tensor], c: Mapping[str, Any]
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """The training objective on one batch of pairs (see the module docstring); returns (total, parts)."""
    batch = apply_photometric(batch)
    i1, i2, neg = batch["image1"], batch["image2"], batch["negative"]
    n = i1.shape[0]
    out = model(torch.cat([i1, i2, neg], 0))
    la, ls, m, li = (out[k].float() for k in ("log_albedo", "log_shading", "mask", "log_image"))
    la1, la2, lan = la[:n], la[n:2 * n], la[2 * n:]
    ls1, ls2 = ls[:n], ls[n:2 * n]
    li1, li2 = li[:n], li[n:2 * n]
    dark = float(np.log(float(c["dark"])))
    mask = batch["mask"].float() * (li1.mean(1, keepdim=True) > dark).float() * (li2.mean(1, keepdim=True) > dark).float()
    neg_mask = batch["negative_mask"].float() * (li[2 * n:].mean(1, keepdim=True) > dark).float()

    terms: dict[str, torch.Tensor] = {}
    terms["rec"] = _l1(la1 + ls1 - li1, mask) + _l1(la2 + ls2 - li2, mask)
    r1, r2 = la2 + ls1 - li1, la1 + ls2 - li2
    terms["cross"] = _l1(r1 - _masked_mean(r1, mask), mask) + _l1(r2 - _masked_mean(r2, mask), mask)

    grad = la.new_zeros(())
    full_mask = torch.cat([mask, mask, neg_mask], 0)
    for d_a, d_s, d_i, d_m, d_v, mm in zip(_grad(la), _grad(ls), _grad(li), _grad(m), _pair_masks(full_mask),
                                           (m[..., :, :-1], m[..., :-1, :])):
        grey = d_i.mean(1, keepdim=True)
        grad = grad + _l1(d_a - mm * d_i, d_v) + _l1(d_s - (1 - mm) * grey, d_v)
    terms["grad"] = grad

    pool = max(1, int(c["embed_pool"]))

    def embed(log_albedo, valid):
        # The grey (intensity) part: the colour part cannot collapse, it must reconstruct the image's colour under
        # a grey shading; what can collapse is the albedo's intensity (A = chromaticity, S = image intensity).
        grey = log_albedo.mean(1, keepdim=True)
        centred = (grey - _masked_mean(grey, valid)) * valid
        return F.avg_pool2d(centred, pool), F.avg_pool2d(valid, pool)

    e1, v1 = embed(la1, mask)
    e2, _ = embed(la2, mask)
    en, vn = embed(lan, neg_mask)
    pos = ((e1 - e2) ** 2 * v1).sum((1, 2, 3)) / v1.sum((1, 2, 3)).clamp(min=1e-6)
    both = v1 * vn
    dist = ((e1 - en) ** 2 * both).sum((1, 2, 3)) / both.sum((1, 2, 3)).clamp(min=1e-6)
    usable = (1 - batch["same_scene_negative"].float()) * (both.sum((1, 2, 3)) > 0).float()
    hinge = (F.relu(float(c["embed_margin"]) - dist) * usable).sum() / usable.sum().clamp(min=1.0)
    terms["embed_pos"], terms["embed_neg"] = pos.mean(), hinge

    def albedo_supervision(albedo: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        # Scale-invariant L2 of both photos' log albedo against a reference albedo, and of their log shading
        # against log(grey photo ÷ grey reference), for the pairs with weight > 0.
        log_ref = torch.log(albedo.float().clamp(min=1e-4))
        grey_ref = log_ref.exp().mean(1, keepdim=True).clamp(min=1e-4).log()
        ref_mask = mask * (albedo.float().mean(1, keepdim=True) > 1e-3).float()
        out = si_l2(la1, log_ref, ref_mask, weight) + si_l2(la2, log_ref, ref_mask, weight)
        for ls_k, li_k in ((ls1, li1), (ls2, li2)):
            target = li_k.exp().mean(1, keepdim=True).clamp(min=1e-4).log() - grey_ref
            out = out + si_l2(ls_k, target, ref_mask, weight)
        return out

    labelled = batch["labelled"].float()
    terms["sup"] = (albedo_supervision(batch["albedo"], labelled)
                    if float(c["w_sup"]) > 0 and float(labelled.sum()) > 0 else la.new_zeros(()))
    has_teacher = batch["has_teacher"].float() if "has_teacher" in batch else la.new_zeros((n,))
    terms["teacher"] = (albedo_supervision(batch["teacher"], has_teacher)
                        if float(c.get("w_teacher", 0.0)) > 0 and float(has_teacher.sum()) > 0 else la.new_zeros(()))
    if float(c["w_smooth"]) > 0:
        gx, gy = _grad(ls[:2 * n])
        mx, my = _pair_masks(torch.cat([mask, mask], 0))
        terms["smooth"] = (gx ** 2 * mx).sum() / mx.sum().clamp(min=1) + (gy ** 2 * my).sum() / my.sum().clamp(min=1)
    else:
        terms["smooth"] = la.new_zeros(())

    total = (float(c["w_rec"]) * terms["rec"] + float(c["w_cross"]) * terms["cross"]
             + float(c["w_grad"]) * terms["grad"] + float(c["w_embed"]) * (terms["embed_pos"] + terms["embed_neg"])
             + float(c["w_sup"]) * terms["sup"] + float(c.get("w_teacher", 0.0)) * terms["teacher"]
             + float(c["w_smooth"]) * terms["smooth"])
    parts = {k: float(v.detach()) for k, v in terms.items()}
    with torch.no_grad():
        parts["albedo_std"] = float(_masked_std(la1, mask).mean())
        parts["mask_mean"] = float(m[:n].mean())
    return total, parts


def _masked_std(log_albedo: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    grey = log_albedo.mean(1, keepdim=True)
    mean = _masked_mean(grey, mask)
    return _masked_mean((grey - mean) ** 2, mask).sqrt().flatten()


# --- evaluation on objects with MIT ground truth ---------------------------------------------------------------------

def load_val_objects(folder: Path, names: list[str], max_side: int | None) -> list[dict]:
    """MIT objects (the input the benchmark decomposes, reflectance, shading, mask), resized to ``max_side``."""
    from ..datasets.base import read_float
    from .multilight import _resize, read_truth

    objects = []
    for name in names:
        obj = folder / name
        source = next((obj / f for f in ("diffuse.png", "original.png", "light01.png") if (obj / f).is_file()), None)
        if source is None or not (obj / "reflectance.png").is_file():
            raise FileNotFoundError(f"{obj}: needs diffuse.png (or original.png) and reflectance.png to validate")
        image = read_truth(source, max_side)  # 16-bit PNG: linear (MIT); 8-bit: sRGB, linearised
        reflectance = read_truth(obj / "reflectance.png", max_side)
        shading = read_truth(obj / "shading.png", max_side).mean(axis=2, keepdims=True)
        mask = _resize(read_float(obj / "mask.png").max(axis=2), max_side, nearest=True) > 0.5
        objects.append({"name": name, "image": image, "reflectance": reflectance, "shading": shading, "mask": mask})
    return objects


def score_objects(model, objects: list[dict], device, max_side: int = 320, albedo_output: str = "ratio"
                  ) -> dict[str, dict[str, float]]:
    """name → Grosse LMSE and its parts, with the benchmark's input convention (linear ÷ max, sRGB-encoded)."""
    from ..imaging import linear_to_srgb
    from ..metrics import intrinsic

    scores = {}
    was_training = model.training
    model.eval()
    for obj in objects:
        linear = obj["image"]
        image = linear_to_srgb(linear / max(float(linear.max()), 1e-6))
        layers = decompose(image, model, device, max_side, albedo_output)
        a = intrinsic.lmse(obj["reflectance"], layers["albedo"], obj["mask"])
        s = intrinsic.lmse(obj["shading"], layers["shading"], obj["mask"])
        grey = np.log(np.clip(layers["albedo"].mean(axis=2), 1e-4, None))[obj["mask"]]
        scores[obj["name"]] = {"grosse_lmse": 0.5 * (a + s), "albedo_lmse": a, "shading_lmse": s,
                               "albedo_variance": float(grey.var())}
    model.train(was_training)
    return scores


register_recipe(Ma2018Recipe())
