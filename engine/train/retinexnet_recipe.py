"""Training RetinexNet on LOL-layout pairs (``DIR/low/*.png`` and ``DIR/high/*.png`` with the same names).

The paper's recipe (methods.md §9), phase by phase and apart:

* **decom**: DecomNet on (low, high) patches with
  ``rec_low + rec_high + 0.001·(R_high·I_low ≈ low) + 0.001·(R_low·I_high ≈ high)
  + 0.1·(smooth(I_low, R_low) + smooth(I_high, R_high)) + 0.01·|R_low − R_high|``;
* **relight**: RelightNet on the frozen DecomNet's (R_low, I_low) with ``|R_low·I_delta − high| + 3·smooth(I_delta, R_low)``;
* ``smooth(I, R) = mean(|∇I|·exp(−10·avgpool3(|∇gray(R)|)))`` over x and y, with the authors' 2×2 difference kernels
  and TF 'SAME' padding; all reconstruction terms are mean absolute errors;
* Adam, lr 1e-3, ×0.1 after epoch 20 of 100; batches of 16 random 48×48 patches, one per image of a shuffled epoch,
  each with one of the 8 flip/rotation modes applied identically to both images.

An epoch is ``len(train pairs) // batch_size`` steps, as in the authors' loop. The validation pairs are held out by a
seeded permutation of the sorted file names, so the split is reproducible and independent of file-system order.

Train it with the shared loop: ``python -m engine train retinexnet --data DIR`` (through :class:`RetinexNetRecipe`).
The shipped weights were produced by the authors'-schedule loop of :mod:`engine.train.retinexnet_reference` (its
model card gives the command); that module also holds the ``--evaluate`` command the card's scores come from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..imaging import linear_to_srgb, read_image, srgb_to_linear
from ..metrics import fidelity
from ..metrics.fidelity import Protocol
from ..methods.retinexnet import RetinexNet
from .recipe import Phase, TrainingRecipe, register_recipe

GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # tf.image.rgb_to_grayscale


# --- losses ---------------------------------------------------------------------------------------------------


def gradient(x: torch.Tensor, direction: str) -> torch.Tensor:
    """|∇x| with the authors' kernels [[0, 0], [−1, 1]] (x) and its transpose (y) under TF 'SAME' padding.

    A 2×2 'SAME' convolution pads one zero row/column after, so x[i, j] = |in[i+1, j+1] − in[i+1, j]| — note the
    one-row offset, which we keep because the loss weights were tuned with it.
    """
    kernel = torch.tensor([[0.0, 0.0], [-1.0, 1.0]], dtype=x.dtype, device=x.device)
    if direction == "y":
        kernel = kernel.t()
    elif direction != "x":
        raise ValueError(f"direction must be 'x' or 'y', got {direction!r}")
    return F.conv2d(F.pad(x, (0, 1, 0, 1)), kernel.view(1, 1, 2, 2)).abs()


def smoothness(illumination: torch.Tensor, reflectance: torch.Tensor) -> torch.Tensor:
    """Structure-aware illumination smoothness: gradients of I are cheap where the reflectance has edges."""
    w = torch.tensor(GREY_WEIGHTS, dtype=reflectance.dtype, device=reflectance.device).view(1, 3, 1, 1)
    grey = (reflectance * w).sum(dim=1, keepdim=True)
    total = 0.0
    for direction in ("x", "y"):
        # TF's SAME average pool divides by the number of in-image samples, hence count_include_pad=False.
        local = F.avg_pool2d(gradient(grey, direction), 3, 1, padding=1, count_include_pad=False)
        total = total + gradient(illumination, direction) * torch.exp(-10.0 * local)
    return total.mean()


def decom_loss(model: RetinexNet, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    # Losses in float32 even when the networks run under bfloat16 autocast (8-bit mantissas would blur the small
    # reconstruction errors of dark images).
    r_low, i_low = (t.float() for t in model.decom(low))
    r_high, i_high = (t.float() for t in model.decom(high))
    terms = {
        "rec_low": (r_low * i_low - low).abs().mean(),
        "rec_high": (r_high * i_high - high).abs().mean(),
        "mutual_low": (r_high * i_low - low).abs().mean(),
        "mutual_high": (r_low * i_high - high).abs().mean(),
        "smooth_low": smoothness(i_low, r_low),
        "smooth_high": smoothness(i_high, r_high),
        "equal_r": (r_low - r_high).abs().mean(),
    }
    loss = (terms["rec_low"] + terms["rec_high"] + 0.001 * (terms["mutual_low"] + terms["mutual_high"])
            + 0.1 * (terms["smooth_low"] + terms["smooth_high"]) + 0.01 * terms["equal_r"])
    return loss, {k: float(v.detach()) for k, v in terms.items()}


def relight_loss(model: RetinexNet, low: torch.Tensor, high: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    with torch.no_grad():  # DecomNet is frozen in this phase; no graph is needed through it
        r_low, i_low = model.decom(low)
    delta = model.relight(r_low, i_low).float()
    r_low = r_low.float()
    terms = {"relight": (r_low * delta - high).abs().mean(), "smooth_delta": smoothness(delta, r_low)}
    return terms["relight"] + 3.0 * terms["smooth_delta"], {k: float(v.detach()) for k, v in terms.items()}


# --- data -----------------------------------------------------------------------------------------------------


def lol_pairs(data_dir: str | Path) -> list[tuple[Path, Path]]:
    """(low, high) file pairs of a LOL-layout folder, sorted by name."""
    data_dir = Path(data_dir)
    low_dir, high_dir = data_dir / "low", data_dir / "high"
    if not low_dir.is_dir() or not high_dir.is_dir():
        raise FileNotFoundError(f"{data_dir}: expected sub-folders low/ and high/ (LOL layout)")
    pairs = [(p, high_dir / p.name) for p in sorted(low_dir.iterdir()) if (high_dir / p.name).is_file()]
    if not pairs:
        raise FileNotFoundError(f"{data_dir}: no low/high pairs with matching names")
    return pairs


def split_pairs(pairs: list, val_count: int, seed: int) -> tuple[list, list]:
    order = np.random.default_rng(seed).permutation(len(pairs))
    val = sorted(int(i) for i in order[:val_count])
    train = sorted(int(i) for i in order[val_count:])
    return [pairs[i] for i in train], [pairs[i] for i in val]


def augment(image: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 dihedral transforms (mode 0 = identity): rotate by 90°·(mode % 4), flip first if mode ≥ 4."""
    if mode >= 4:
        image = image[::-1]
    return np.rot90(image, k=mode % 4)


def rescale_exposure(image: np.ndarray, gain: float) -> np.ndarray:
    """``image`` (sRGB in [0, 1]) as if exposed ``gain`` times as long: scaled in linear light, clipped, re-encoded."""
    return linear_to_srgb(np.clip(srgb_to_linear(image) * gain, 0.0, 1.0)).astype(np.float32)


def random_patch_pair(low: np.ndarray, high: np.ndarray, patch: int, rng: np.random.Generator,
                      exposure_jitter: float = 1.0) -> dict[str, torch.Tensor]:
    """The same random ``patch``×``patch`` crop and dihedral transform of both (H, W, 3) images, as CHW tensors.

    ``exposure_jitter`` F > 1 re-exposes the low-light crop by a gain drawn log-uniformly from [1/F, F] (the
    normal-light target is unchanged), so the low-light level alone stops predicting the target's level.
    """
    h, w = low.shape[:2]
    y = int(rng.integers(0, h - patch + 1))
    x = int(rng.integers(0, w - patch + 1))
    mode = int(rng.integers(0, 8))
    out = {}
    for name, image in (("low", low), ("high", high)):
        crop = augment(image[y:y + patch, x:x + patch], mode)
        if name == "low" and exposure_jitter > 1.0:
            crop = rescale_exposure(crop, float(np.exp(rng.uniform(-1.0, 1.0) * np.log(exposure_jitter))))
        out[name] = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1)))
    return out


class PatchPairs(torch.utils.data.Dataset):
    """Item i: one random patch of pair i (same crop and transform for low and high) as CHW float tensors."""

    def __init__(self, pairs: list[tuple[Path, Path]], patch: int = 48, seed: int = 0, exposure_jitter: float = 1.0):
        self.images = [(read_image(lo).pixels, read_image(hi).pixels) for lo, hi in pairs]
        self.patch = patch
        self.rng = np.random.default_rng(seed)
        self.exposure_jitter = exposure_jitter

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        low, high = self.images[index]
        return random_patch_pair(low, high, self.patch, self.rng, self.exposure_jitter)


class FullPairs(torch.utils.data.Dataset):
    """Whole validation images, batch size 1 (sizes may differ)."""

    def __init__(self, pairs: list[tuple[Path, Path]]):
        self.pairs = pairs
        self.images = [(read_image(lo).pixels, read_image(hi).pixels) for lo, hi in pairs]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        low, high = self.images[index]
        return {"low": torch.from_numpy(low.transpose(2, 0, 1).copy()),
                "high": torch.from_numpy(high.transpose(2, 0, 1).copy()), "name": self.pairs[index][0].name}


class _ImagesOnly(torch.utils.data.Dataset):
    """FullPairs without the file name, which cannot be collated into a batch."""

    def __init__(self, pairs: FullPairs):
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self.pairs[index]
        return {"low": item["low"], "high": item["high"]}


# --- evaluation -----------------------------------------------------------------------------------------------


#: Validation protocol: RGB, data range 1, no crop; SSIM is scikit-image's (channel_axis=2, 7×7 uniform window,
#: gaussian_weights=False, per-channel mean) as wrapped by engine.metrics.fidelity.
PROTOCOL = Protocol(channels="rgb", data_range=1.0, crop=0)


def psnr_ssim(output: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """PSNR and SSIM of the enhanced image (clipped to [0, 1], as it is saved) against the normal-light image."""
    output = np.clip(output, 0.0, 1.0)
    return fidelity.psnr(target, output, PROTOCOL), fidelity.ssim(target, output, PROTOCOL)


@torch.no_grad()
def evaluate(model: RetinexNet, val: FullPairs, device: torch.device,
             precision: torch.dtype = torch.float32, denoise: float = 0.0) -> dict[str, Any]:
    """Mean PSNR/SSIM of the enhanced images over ``val`` (whole images), computed in ``precision``; ``denoise`` > 0
    denoises the reflectance first with the runner's option at that strength (0: off, the default protocol).

    Each image also gets ``psnr_best_gain``: its PSNR after the one global gain that best matches the reference, a
    diagnostic (not a score) of how much of the error is overall exposure rather than structure or colour.
    """
    from ..device import autocast, precision_name
    from ..methods.retinexnet import denoise_reflectance

    model.eval()
    per_image = []
    for item in val:
        with autocast(device, precision):
            reflectance, illumination, delta, enhanced = model(item["low"][None].to(device))
        target = item["high"].numpy().transpose(1, 2, 0)
        if denoise > 0:
            r = reflectance[0].float().cpu().numpy().transpose(1, 2, 0)
            i = illumination[0].float().cpu().numpy().transpose(1, 2, 0)
            output = denoise_reflectance(r, i, denoise) * delta[0].float().cpu().numpy().transpose(1, 2, 0)
        else:
            output = enhanced[0].float().cpu().numpy().transpose(1, 2, 0)
        p, s = psnr_ssim(output, target)
        clipped = np.clip(output, 0.0, 1.0)
        gain = float((clipped * target).sum() / max(float((clipped * clipped).sum()), 1e-12))
        per_image.append({"name": item["name"], "psnr": p, "ssim": s,
                          "psnr_best_gain": fidelity.psnr(target, np.clip(clipped * gain, 0.0, 1.0), PROTOCOL),
                          "best_gain": gain, "output_mean": float(clipped.mean()),
                          "reference_mean": float(target.mean()), "input_mean": float(item["low"].mean())})
    return {"psnr": float(np.mean([r["psnr"] for r in per_image])),
            "ssim": float(np.mean([r["ssim"] for r in per_image])),
            "psnr_best_gain": float(np.mean([r["psnr_best_gain"] for r in per_image])), "per_image": per_image,
            "level_correlation": level_correlation(per_image),
            "precision": precision_name(precision), "denoise": denoise, "protocol": PROTOCOL.describe()}


def exposure_statistics(pairs: list[tuple[Path, Path]]) -> dict[str, float]:
    """How the normal-light level relates to the low-light level over ``pairs``: the correlation of their mean levels
    and the 10th/50th/90th percentiles of the ratio normal / low (a fact of the data, printed by ``--evaluate``)."""
    levels = np.array([(read_image(lo).pixels.mean(), read_image(hi).pixels.mean()) for lo, hi in pairs])
    ratio = levels[:, 1] / np.maximum(levels[:, 0], 1e-6)
    p10, p50, p90 = np.percentile(ratio, [10, 50, 90])
    return {"pairs": len(pairs), "correlation": float(np.corrcoef(levels[:, 0], levels[:, 1])[0, 1]),
            "ratio_p10": float(p10), "ratio_p50": float(p50), "ratio_p90": float(p90)}


def level_correlation(per_image: list[dict[str, Any]]) -> dict[str, float]:
    """Pearson correlations, over images, of the output's mean level with the low-light input's and with the
    reference's (a diagnostic of where the exposure error comes from; NaN with fewer than 3 images)."""
    if len(per_image) < 3:
        return {"output_vs_input": float("nan"), "output_vs_reference": float("nan")}
    out, inp, ref = (np.array([r[k] for r in per_image]) for k in ("output_mean", "input_mean", "reference_mean"))
    return {"output_vs_input": float(np.corrcoef(out, inp)[0, 1]),
            "output_vs_reference": float(np.corrcoef(out, ref)[0, 1])}


# --- the recipe for the shared loop ---------------------------------------------------------------------------


class RetinexNetRecipe(TrainingRecipe):
    method = "retinexnet"
    description = "DecomNet then RelightNet on LOL low/normal-light pairs (Wei et al. 2018)"
    defaults = {
        "lr": 1e-3, "batch_size": 16, "accumulate": 1, "val_every": 500, "checkpoint_every": 200,
        "weight_decay": 0.0, "patch_size": 48, "val_count": 15, "epochs": 100, "lr_drop_epoch": 20,
    }
    metric_higher_is_better = {"psnr": True, "ssim": True}

    def build_model(self, config: Mapping[str, Any]) -> nn.Module:
        return RetinexNet()

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        if data_dir is None:
            raise ValueError("retinexnet trains on LOL-layout pairs: pass --data DIR (with low/ and high/)")
        train, val = split_pairs(lol_pairs(data_dir), int(config["val_count"]), seed)
        return FullPairs(train), FullPairs(val)

    def batch_stream(self, train: FullPairs, seed: int, config: Mapping[str, Any]):
        """Batches for the shared loop: patches drawn by :class:`~engine.train.data.BatchStream`'s per-sample rng,
        so a resumed run sees the same patches as an uninterrupted one."""
        from .data import BatchStream

        patch = int(config["patch_size"])

        def to_patch(sample, rng):
            low, high = (sample[k].numpy().transpose(1, 2, 0) for k in ("low", "high"))
            return random_patch_pair(low, high, patch, rng)

        return BatchStream(_ImagesOnly(train), int(config["batch_size"]), seed, to_patch)

    def data_licence(self, data_dir: Path | None) -> str:
        return "LOL dataset (Wei et al. 2018), released by the authors for research use"

    def phases(self, config: Mapping[str, Any]) -> list[Phase]:
        return [Phase("decom"), Phase("relight")]

    def trainable_parameters(self, model: nn.Module, phase: Phase):
        return list(getattr(model, phase.name).parameters())

    def lr_factor(self, step: int, steps: int, config: Mapping[str, Any], phase: Phase) -> float:
        drop_at = steps * float(config["lr_drop_epoch"]) / float(config["epochs"])
        return 0.1 if step >= drop_at else 1.0

    def loss(self, model: nn.Module, batch: Mapping[str, torch.Tensor], phase: Phase, optimizer: str):
        fn = decom_loss if phase.name == "decom" else relight_loss
        return fn(model, batch["low"], batch["high"])

    def validate(self, model: nn.Module, val, device: torch.device, config: Mapping[str, Any]) -> dict[str, float]:
        result = evaluate(model, val, device)
        return {"psnr": result["psnr"], "ssim": result["ssim"]}

    def export(self, model: nn.Module, config: Mapping[str, Any]):
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        return state, {"architecture": "DecomNet + RelightNet (TF 'SAME' semantics)", "input": "any size, sRGB [0,1]"}


RECIPE = register_recipe(RetinexNetRecipe())
