"""Training recipe for CGIntrinsics (``engine.methods.cgintrinsics``) on rendered scenes.

Data: a folder written by ``python -m engine.synth`` (every lighting of a scene is a separate sample), or scenes
rendered on the fly when no folder is given (``--data synthetic``). Targets are taken in the network's own terms:
log reflectance *intensity* ``R* = log(r + g + b)`` of the albedo and the matching grey log shading
``S* = log(Σ image_linear) − R*`` (so ``R* + S*`` is exactly the log image intensity even under coloured light).

Loss, as in the paper's rendered-data term (methods.md §8), inside the valid mask (scene geometry, not the sky, not
clipped, not black): scale-invariant L2 on log reflectance and log shading, multi-scale gradient matching
(4 scales) on both, and reconstruction of the log input intensity by ``log R + log S``.
Validation reports the log-domain scale-invariant errors and the MIT-style scale-invariant MSE of the linear
reflectance (RGB) and shading, on held-out scenes (seeds from 1,000,000) and, when ``mit_dir`` is set, on MIT objects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from ..imaging import linear_to_srgb, srgb_to_linear
from ..methods.cgintrinsics import CGIntrinsicsNet, compose, pad_to_multiple
from .data import Augment, Subset
from .recipe import Phase, TrainingRecipe, register_recipe

VAL_SEED = 1_000_000
_EPS = 1e-4


def targets_from_synthetic(sample: Mapping[str, torch.Tensor], lighting: int) -> dict[str, torch.Tensor]:
    """A rendered sample (all lightings) → one training sample for ``lighting``: sRGB image, log targets, mask."""
    image = sample["image"][lighting]
    linear = sample["image_linear"][lighting]
    intensity_r = sample["albedo"].sum(0, keepdim=True)
    intensity_i = linear.sum(0, keepdim=True)
    log_r = torch.log(intensity_r.clamp(min=_EPS))
    log_s = torch.log(intensity_i.clamp(min=_EPS)) - log_r
    valid = (sample["labels"] != 0)[None] & (intensity_i > 3e-3) & (linear.max(0, keepdim=True).values < 0.98)
    return {"image": image, "log_r": log_r, "log_s": log_s, "mask": valid.float(),
            "albedo": sample["albedo"], "shading": torch.exp(log_s)}


def targets_from_mit(sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An MIT object (linear 16-bit layers) → the same keys; the network input is sRGB-encoded like a photo."""
    image_linear = sample["image"]
    albedo = sample["reflectance"]
    shading = sample["shading"][:1]
    mask = sample["mask"][:1] * (albedo.sum(0, keepdim=True) > 1e-3).float() * (shading > 1e-3).float()
    log_r = torch.log(albedo.sum(0, keepdim=True).clamp(min=_EPS))
    return {"image": linear_to_srgb(image_linear.clamp(max=1)), "log_r": log_r, "log_s": torch.log(shading.clamp(min=_EPS)),
            "mask": mask, "albedo": albedo, "shading": shading}


class _Lightings(torch.utils.data.Dataset):
    """Every (scene, lighting) of a synthetic dataset as one sample."""

    def __init__(self, scenes, lightings: int):
        self.scenes, self.lightings = scenes, lightings

    def __len__(self) -> int:
        return len(self.scenes) * self.lightings

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        scene, lighting = divmod(int(index), self.lightings)
        return targets_from_synthetic(self.scenes[scene], lighting)


class _Mapped(torch.utils.data.Dataset):
    def __init__(self, dataset, fn):
        self.dataset, self.fn = dataset, fn

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        return self.fn(self.dataset[index])


# --- losses -------------------------------------------------------------------------------------------------------

def si_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scale-invariant masked L2 in log space: per image, the variance of (pred − target) over the mask."""
    n = mask.sum((1, 2, 3)).clamp(min=1.0)
    diff = (pred - target) * mask
    mean = diff.sum((1, 2, 3)) / n
    return (((diff - mean.view(-1, 1, 1, 1)) * mask) ** 2).sum((1, 2, 3)).div(n).mean()


def gradient_matching(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, scales: int = 4) -> torch.Tensor:
    """Multi-scale L1 on the spatial gradients of the log difference (scale-invariant by construction)."""
    total = pred.new_zeros(())
    diff, m = pred - target, mask
    for scale in range(scales):
        if scale:
            diff, m = diff[..., ::2, ::2], m[..., ::2, ::2]
        mx = m[..., :, 1:] * m[..., :, :-1]
        my = m[..., 1:, :] * m[..., :-1, :]
        gx = (diff[..., :, 1:] - diff[..., :, :-1]).abs() * mx
        gy = (diff[..., 1:, :] - diff[..., :-1, :]).abs() * my
        total = total + (gx.sum() + gy.sum()) / (mx.sum() + my.sum()).clamp(min=1.0)
    return total


def reconstruction(log_r: torch.Tensor, log_s: torch.Tensor, image_srgb: torch.Tensor, mask: torch.Tensor
                   ) -> torch.Tensor:
    log_i = torch.log(srgb_to_linear(image_srgb).sum(1, keepdim=True).clamp(min=_EPS))
    return (((log_r + log_s - log_i) * mask) ** 2).sum() / mask.sum().clamp(min=1.0)


def si_mse_linear(pred: torch.Tensor, truth: torch.Tensor, mask: torch.Tensor) -> float:
    """MIT-style scale-invariant MSE: the least-squares scale of pred onto truth inside the mask, then the MSE."""
    m = mask.expand_as(truth)
    alpha = (pred * truth * m).sum() / (pred * pred * m).sum().clamp(min=1e-12)
    return float((((alpha * pred - truth) * m) ** 2).sum() / m.sum().clamp(min=1.0))


class CGIntrinsicsRecipe(TrainingRecipe):
    method = "cgintrinsics"
    description = ("CGIntrinsics U-Net (Li & Snavely 2018, 7 levels, two decoders) trained on procedural scenes "
                   "rendered by engine.synth with scale-invariant L2, 4-scale gradient matching and reconstruction "
                   "losses.")
    defaults = {
        "lr": 2e-4, "batch_size": 8, "accumulate": 1, "val_every": 200, "checkpoint_every": 200,
        "weight_decay": 0.0, "width": 0.25, "crop": 128, "render_size": 128, "lightings": 1,
        "synthetic_scenes": 100_000, "val_scenes": 24, "val_fraction": 0.03, "w_si": 1.0, "w_grad": 1.0,
        "w_rec": 1.0, "mit_dir": "", "mit_max_side": 256, "exposure_min": 0.6, "exposure_max": 1.5, "noise": 0.01,
        "beta1": 0.5, "style": "classic", "texture_dir": "", "mit_share": 0.0, "mit_objects": "", "mit_holdout": "",
        "fold": -1, "mit_lights": True, "mit_swap": 0.0, "init": "", "w_lmse": 0.0, "max_side": 512, "time_budget": 0.0,
    }
    metric_higher_is_better = {"log_r_simse": False, "log_s_simse": False, "albedo_simse": False,
                               "shading_simse": False, "mit_albedo_simse": False, "mit_shading_simse": False,
                               "mit_lmse": False, "mit_albedo_lmse": False, "mit_shading_lmse": False,
                               "mit_train_lmse": False, "mit_train_albedo_lmse": False,
                               "mit_train_shading_lmse": False}

    def build_model(self, config: Mapping[str, Any]) -> CGIntrinsicsNet:
        model = CGIntrinsicsNet(width=float(config["width"]))
        if config.get("init"):
            from .intrinseg_recipe import load_init

            load_init(model, str(config["init"]))
        return model

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        from ..synth import SyntheticDataset, SyntheticFolder, is_synthetic_folder

        self.val_objects = ()
        if float(config["mit_share"]) > 0 and config.get("mit_dir"):
            return self._mixed_datasets(data_dir, seed, config)
        size = int(config["render_size"])
        val_scenes = SyntheticDataset(int(config["val_scenes"]), size, 1, base_seed=VAL_SEED)
        val = _Lightings(val_scenes, 1)
        if data_dir is None:
            lightings = int(config["lightings"])
            train = _Lightings(SyntheticDataset(int(config["synthetic_scenes"]), size, lightings,
                                                base_seed=seed * 10_000_000), lightings)
        elif is_synthetic_folder(data_dir):
            folder = SyntheticFolder(data_dir)
            m = folder.manifest
            train = _Lightings(folder, int(m["lightings"]))
            self.data_note = (f"{len(folder)} scenes × {m['lightings']} lighting(s) from `python -m engine.synth "
                              f"--n {len(folder)} --size {m['size']} --lightings {m['lightings']} --seed {m['seed']} "
                              f"--out {data_dir}`")
        else:
            from ..datasets.base import DatasetError
            from .data import AdapterDataset, split_indices

            try:
                mit = AdapterDataset("mit-intrinsic", data_dir, max_side=int(config["mit_max_side"]))
            except DatasetError as exc:
                raise ValueError(f"cgintrinsics trains on a synthetic folder (python -m engine.synth) or the MIT "
                                 f"layout; {exc}") from None
            train_idx, val_idx = split_indices(len(mit), float(config["val_fraction"]) or 0.2, seed)
            train = Subset(mit, train_idx, targets_from_mit)
            val = Subset(mit, val_idx, targets_from_mit)
        return train, val

    def _mixed_datasets(self, data_dir, seed, config):
        """Rendered scenes (photographic style, photo textures) mixed with the MIT training objects of a fold."""
        from .intrinsic_data import Mixture, mit_samples, mit_training_objects, synthetic_source

        synthetic, self.data_note = synthetic_source(data_dir, config, seed)
        train_objects, holdout = mit_training_objects(config)
        mit = mit_samples(config, train_objects, seed)
        self.mit_note = (f"MIT objects {', '.join(train_objects)}" if train_objects else "no MIT objects") + (
            f"; held out: {', '.join(holdout)}" if holdout else "")
        self.val_objects = holdout or train_objects
        self.val_prefix = "mit" if holdout else "mit_train"
        train = _Mapped(Mixture(synthetic, mit, float(config["mit_share"])), targets_from_generic)
        val_count = min(int(config["val_scenes"]), len(synthetic)) if synthetic is not None else 0
        val = Subset(_Mapped(synthetic, targets_from_generic), list(range(val_count))) if val_count else []
        return train, val

    def make_augment(self, config: Mapping[str, Any]) -> Augment:
        # No 90° turns: photos are upright and light mostly comes from above, a cue worth keeping.
        return Augment(crop=int(config["crop"]), flip=True, rotate=False,
                       exposure=(float(config["exposure_min"]), float(config["exposure_max"])),
                       noise=float(config["noise"]), photometric=("image",), srgb=("image",))

    def phases(self, config: Mapping[str, Any]) -> list[Phase]:
        return [Phase("main")]

    def make_optimizers(self, model, config, phase):
        return {"main": torch.optim.Adam(model.parameters(), lr=float(config["lr"]),
                                         betas=(float(config["beta1"]), 0.999))}

    def begin(self, config) -> None:
        super().begin(config)
        import time

        self.clock = time.perf_counter()

    def lr_factor(self, step: int, steps: int, config, phase) -> float:
        # Constant, then a linear decay over the last fifth so the exported weights are not mid-jump.
        budget = float(config.get("time_budget") or 0.0)
        if budget > 0:  # runs stopped by --max-seconds: decay over the last fifth of the wall-clock budget too
            import time

            progress = max(step / max(1, steps), (time.perf_counter() - self.clock) / budget)
            return 1.0 if progress < 0.8 else max(0.05, (1.0 - progress) / 0.2)
        tail = max(1, steps // 5)
        return 1.0 if step < steps - tail else max(0.05, (steps - step) / tail)

    def loss(self, model, batch, phase, optimizer):
        image, mask = batch["image"], batch["mask"]
        x, (h, w) = pad_to_multiple(image)
        log_r, log_s = model(x)
        log_r, log_s = log_r[..., :h, :w].float(), log_s[..., :h, :w].float()
        terms = {
            "si_r": si_mse(log_r, batch["log_r"], mask), "si_s": si_mse(log_s, batch["log_s"], mask),
            "grad_r": gradient_matching(log_r, batch["log_r"], mask),
            "grad_s": gradient_matching(log_s, batch["log_s"], mask),
            "rec": reconstruction(log_r, log_s, image, mask),
        }
        c = {**self.defaults, **self.run_config}
        total = (float(c["w_si"]) * (terms["si_r"] + terms["si_s"])
                 + float(c["w_grad"]) * (terms["grad_r"] + terms["grad_s"]) + float(c["w_rec"]) * terms["rec"])
        if float(c["w_lmse"]):
            from .intrinsic_data import lmse_loss

            # The Grosse LMSE itself on the grey layers the benchmark compares (exp of the log outputs).
            terms["lmse_r"] = lmse_loss(torch.exp(log_r.clamp(-12, 6)), torch.exp(batch["log_r"]), mask)
            terms["lmse_s"] = lmse_loss(torch.exp(log_s.clamp(-12, 6)), torch.exp(batch["log_s"]), mask)
            total = total + float(c["w_lmse"]) * (terms["lmse_r"] + terms["lmse_s"])
        return total, {k: float(v.detach()) for k, v in terms.items()}

    def _evaluate(self, model, samples, device) -> dict[str, float]:
        sums: dict[str, list[float]] = {k: [] for k in ("log_r_simse", "log_s_simse", "albedo_simse",
                                                       "shading_simse")}
        for sample in samples:
            image = sample["image"][None].to(device)
            mask = sample["mask"][None].to(device)
            x, (h, w) = pad_to_multiple(image)
            log_r, log_s = model(x)
            log_r, log_s = log_r[..., :h, :w].float(), log_s[..., :h, :w].float()
            reflectance, shading = compose(image, log_r, log_s)
            sums["log_r_simse"].append(float(si_mse(log_r, sample["log_r"][None].to(device), mask)))
            sums["log_s_simse"].append(float(si_mse(log_s, sample["log_s"][None].to(device), mask)))
            sums["albedo_simse"].append(si_mse_linear(reflectance, sample["albedo"][None].to(device), mask))
            sums["shading_simse"].append(si_mse_linear(shading, sample["shading"][None].to(device), mask))
        return {k: float(np.mean(v)) for k, v in sums.items() if v}

    def validate(self, model, val, device, config) -> dict[str, float]:
        metrics = self._evaluate(model, [val[i] for i in range(len(val))], device) if len(val) else {}
        if getattr(self, "val_objects", ()):
            from ..methods.cgintrinsics import decompose
            from .intrinsic_data import evaluate_mit, mit_metrics

            side = int(config["max_side"])
            metrics.update(mit_metrics(evaluate_mit(model, config["mit_dir"], self.val_objects,
                                                    lambda image: decompose(image, model, device, side)),
                                       self.val_prefix))
        elif config.get("mit_dir"):
            from .data import MITIntrinsic

            mit = MITIntrinsic(config["mit_dir"], max_side=int(config["mit_max_side"]))
            mit_metrics = self._evaluate(model, [targets_from_mit(mit[i]) for i in range(len(mit))], device)
            metrics.update({f"mit_{k}": v for k, v in mit_metrics.items() if k in ("albedo_simse", "shading_simse")})
        return metrics

    def export(self, model, config):
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        params = sum(p.numel() for p in model.parameters())
        return state, {"architecture": f"CGIntrinsicsNet(width={float(config['width'])}), {params:,} parameters",
                       "training scenes": getattr(self, "data_note", "rendered on the fly"),
                       **({"MIT objects": self.mit_note} if getattr(self, "mit_note", None) else {}),
                       **({"initialised from": config["init"]} if config.get("init") else {}),
                       "validation data": "held-out synthetic scenes (seeds from 1,000,000)"
                                          + (f"; MIT intrinsic objects in {config['mit_dir']} (research use)"
                                             if config.get("mit_dir") else ""),
                       "input": "sRGB image; H, W padded to multiples of 128",
                       "outputs": "log reflectance intensity, log shading (1 channel each)"}

    def data_licence(self, data_dir: Path | None) -> str:
        if data_dir is None:
            return "procedural scenes rendered on the fly by engine.synth (no third-party content)"
        from ..synth import is_synthetic_folder

        if is_synthetic_folder(data_dir):
            import json

            manifest = json.loads((Path(data_dir) / "manifest.json").read_text())
            return manifest.get("licence", "engine.synth output")
        return "MIT Intrinsic Images: UC Regents, educational, research and non-profit use"


def targets_from_generic(sample: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A sample of :mod:`engine.train.intrinsic_data` (rendered or MIT) → this recipe's log-intensity targets:
    ``R* = log Σ albedo``, ``S* = log Σ (albedo · shading) − R*`` (specular excluded), grey shading ``exp(S*)``."""
    albedo, shading = sample["albedo"], sample["shading"]
    intensity_r = albedo.sum(0, keepdim=True)
    log_r = torch.log(intensity_r.clamp(min=_EPS))
    log_s = torch.log((albedo * shading).sum(0, keepdim=True).clamp(min=_EPS)) - log_r
    mask = sample["mask"] * (intensity_r > 1e-3).float()
    return {"image": sample["image"], "log_r": log_r, "log_s": log_s, "mask": mask, "albedo": albedo,
            "shading": torch.exp(log_s)}


register_recipe(CGIntrinsicsRecipe())
