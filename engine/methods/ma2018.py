"""Single Image Intrinsic Decomposition without a Single Intrinsic Image.

Wei-Chiu Ma, Hang Chu, Bolei Zhou, Raquel Urtasun and Antonio Torralba. ECCV 2018. https://arxiv.org/abs/1711.10098

One network, applied to one photo, predicts albedo A, shading S and a soft gradient-assignment mask M (the probability
that an image gradient belongs to the albedo). It is *trained* without any intrinsic ground truth, from pairs of photos
of the same scene under two lightings, through a Siamese use of the same weights (``engine.train.ma2018_recipe``):
the albedo must agree across the pair, A·S must reconstruct each photo (and A₂·S₁ the first one: cross
reconstruction), the mask splits each log-image gradient between ∇log A (M⊙∇log I) and ∇log S ((1−M)⊙∇log I), and an
embedding loss pulls the two albedos of a pair together while pushing random crops of *other* scenes apart, which
rules out the trivial invariant answer (white albedo, shading = image). A labelled fraction can add supervised terms.
No code was released: the model and losses follow the paper text (``../shared/docs/methods.md`` §6, *unverified*), so
every loss weight is a setting of the recipe.

Network (this project's choice inside the paper's "U-Net"): a 4-level U-Net, two 3×3 conv + GroupNorm + ReLU blocks
per level, max-pool down, bilinear up with skip concatenation, ``width`` base channels (16 → 16, 32, 64, 128). It sees
the sRGB image normalised to its brightest pixel; one 1×1 head gives log albedo (3), log shading (1, grey) and the
mask logit (1). Everything is in linear light: log I = log A + log S.

Inference (the runner) decomposes at most ``max_side`` pixels on the long side (the scale it was trained at) and
upsamples; with ``albedo_output = "ratio"`` the full-resolution albedo is image ÷ upsampled shading (exact
reconstruction, keeps the fine detail); ``"network"`` returns the network's albedo head upsampled.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..imaging import from_tensor, linear_to_srgb, srgb_to_linear, to_tensor
from ..ops.padding import pad_to_multiple as _pad_to_multiple
from ..ops.tta import mirror_averaged, tta_param
from ..models import load_network
from ..limits import DownscaledMemory
from ..registry import (InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec, Role,
                        RunContext, register)

LEVELS = 4
MULTIPLE = 2 ** (LEVELS - 1)
LOG_EPS = 1e-4  # floor of linear intensity before the logarithm (full scale 1)


# --- building blocks ------------------------------------------------------------------------------------------------

def _block(c_in: int, c_out: int) -> nn.Sequential:
    groups = 4 if c_out % 4 == 0 else 1
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.GroupNorm(groups, c_out), nn.ReLU(inplace=True))


def normalise_input(srgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """sRGB (N, 3, H, W) → (network input: sRGB with the brightest linear value at 1, its linear image)."""
    linear = srgb_to_linear(srgb)
    peak = linear.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1)
    linear = linear / peak
    return linear_to_srgb(linear), linear  # linear ≤ 1 after ÷ peak


# --- network --------------------------------------------------------------------------------------------------------

class Ma2018Net(nn.Module):
    """``forward(srgb)`` with srgb (N, 3, H, W), H and W multiples of 8 → dict of (N, C, H, W) tensors:
    ``log_albedo`` (3), ``log_shading`` (1), ``mask`` (1, in [0, 1]) and ``log_image`` (3, the log of the
    normalised linear input, which ``log_albedo + log_shading`` should reconstruct).

    >>> net = Ma2018Net(width=4)
    >>> out = net(torch.rand(2, 3, 32, 48))
    >>> tuple(out["log_albedo"].shape), tuple(out["mask"].shape)
    ((2, 3, 32, 48), (2, 1, 32, 48))
    """

    def __init__(self, width: int = 16):
        super().__init__()
        self.width = int(width)
        channels = [self.width * 2 ** i for i in range(LEVELS)]
        self.down = nn.ModuleList()
        c_in = 3
        for c in channels:
            self.down.append(_block(c_in, c))
            c_in = c
        self.up = nn.ModuleList()
        for level in range(LEVELS - 2, -1, -1):
            self.up.append(_block(c_in + channels[level], channels[level]))
            c_in = channels[level]
        self.head = nn.Conv2d(c_in, 5, 1)
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():  # start at albedo = shading = 1, mask = ½
            self.head.bias.zero_()

    def forward(self, srgb: torch.Tensor) -> dict[str, torch.Tensor]:
        if srgb.ndim != 4 or srgb.shape[1] != 3 or srgb.shape[-1] % MULTIPLE or srgb.shape[-2] % MULTIPLE:
            raise ValueError(f"Expected (N, 3, H, W) with H, W multiples of {MULTIPLE}, got {tuple(srgb.shape)}")
        x, linear = normalise_input(srgb)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], 1))
        out = self.head(x).float()
        log_image = torch.log(linear.float().clamp(min=LOG_EPS))
        # Albedo and shading are offset around the input's mean log intensity so the head starts near a sensible
        # split (half of log I each way) without learning a large bias.
        centre = 0.5 * log_image.mean(1, keepdim=True)
        return {"log_albedo": out[:, 0:3] + centre, "log_shading": out[:, 3:4] + centre,
                "mask": torch.sigmoid(out[:, 4:5]), "log_image": log_image}


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`engine.ops.padding.pad_to_multiple` with this network's multiple."""
    return _pad_to_multiple(x, multiple)


def model_from_state(state: Mapping[str, torch.Tensor]) -> Ma2018Net:
    """A network whose width matches the state dict (the first convolution's output channels)."""
    model = Ma2018Net(width=int(state["down.0.0.weight"].shape[0]))
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval()


# --- inference ------------------------------------------------------------------------------------------------------

def decompose(image: np.ndarray, model: Ma2018Net, device: torch.device, max_side: int = 512,
              albedo_output: str = "ratio", tta: str = "flip") -> dict[str, np.ndarray]:
    """sRGB (H, W, 3) → linear albedo (H, W, 3), grey shading (H, W, 1) and mask (H, W, 1), at the input size."""
    h, w = image.shape[:2]
    srgb = to_tensor(image, device)
    linear_full = srgb_to_linear(srgb)
    scale = min(1.0, max_side / max(h, w))
    x = F.interpolate(srgb, scale_factor=scale, mode="area", recompute_scale_factor=False) if scale < 1.0 else srgb
    padded, (ph, pw) = pad_to_multiple(x)
    with torch.no_grad():
        # the two passes side by side on the CPU (engine.ops.tta): a little faster, and less slowed by busy
        # neighbours (README, busy-machine table)
        out = mirror_averaged(model, padded, tta, concurrent=True)
    crop = lambda t: t[..., :ph, :pw]  # noqa: E731
    log_a, log_s, mask = crop(out["log_albedo"]), crop(out["log_shading"]), crop(out["mask"])
    if scale < 1.0:
        up = lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)  # noqa: E731
        log_a, log_s, mask = up(log_a), up(log_s), up(mask)
    shading = torch.exp(log_s)
    if albedo_output == "ratio":
        peak = linear_full.flatten(1).amax(1).clamp(min=1e-6).view(-1, 1, 1, 1)
        albedo = (linear_full / peak) / shading.clamp(min=LOG_EPS)
    else:
        albedo = torch.exp(log_a)
    return {"albedo": from_tensor(albedo), "shading": from_tensor(shading), "mask": from_tensor(mask)}


def _normalise(layer: np.ndarray, mask: np.ndarray | None = None, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    values = layer[mask] if mask is not None and mask.any() else layer
    ref = float(np.percentile(values, percentile)) if values.size else 1.0
    scale = 1.0 / max(ref, 1e-6)
    return np.clip(layer * scale, 0.0, None).astype(np.float32), scale


def _load(weights: str | None, device: torch.device) -> tuple[Ma2018Net, dict]:
    return load_network("ma2018", weights, device, model_from_state)


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    with ctx.timed("load"):
        model, weights_info = _load(ctx.weights, ctx.device)
    ctx.progress(0.3, "decomposing")
    with ctx.timed("inference"):
        layers = decompose(inputs.image, model, ctx.device, int(params["max_side"]), str(params["albedo_output"]),
                           str(params["tta"]))
    mask = None
    if inputs.mask is not None:
        mask = np.asarray(inputs.mask)
        mask = (mask[..., 0] if mask.ndim == 3 else mask) > 0.5
    # Albedo and shading are only defined up to a scale: each is shown with its 99th percentile (in the mask) at 1.
    albedo, a_scale = _normalise(layers["albedo"], mask)
    shading, s_scale = _normalise(layers["shading"], mask)
    ctx.progress(1.0, "done")
    return MethodResult(layers={"albedo": albedo, "shading": shading,
                                "assignment": np.clip(layers["mask"], 0.0, 1.0).astype(np.float32)},
                        info={"weights": weights_info, "albedo_scale": a_scale, "shading_scale": s_scale,
                              "network_width": model.width})


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="ma2018", name="multilight",
        description="trained by this project without intrinsic ground truth on the ten MIT objects' light01..10 "
                    "photos, with a multi-image (Weiss + Retinex) teacher computed from those photos and albedo-swap "
                    "composites of them, 1,600 steps with weight averaging; 5-fold cross-validated MIT LMSE 0.0233 "
                    "with the runner's defaults (mirror averaging, max_side 512), below the Color Retinex "
                    "baseline's 0.0259; more of an albedo's fine texture goes into its shading than with Color "
                    "Retinex (0.40 against 0.16 on held-out renders, scripts/intrinsic_leak.py; see the card)",
        filename="ma2018-multilight.safetensors",
        sha256="076c3e26cc7f04bfdcc62a53ed8d56593e50e80abf0f6e63c4184da6fda29982",
        licence="MIT (project weights); training data: MIT Intrinsic (research use)",
        model_card="assets/model_cards/ma2018-multilight.md",
    ))


_declare_weights()

SPEC = register(MethodSpec(
    name="ma2018", title="Ma et al. (no single intrinsic image)", year=2018, task="intrinsic",
    paper="W.-C. Ma, H. Chu, B. Zhou, R. Urtasun and A. Torralba. Single Image Intrinsic Decomposition without a "
          "Single Intrinsic Image. ECCV 2018.",
    summary="U-Net trained from pairs of lightings (albedo consistency, reconstruction, gradient assignment, "
            "embedding loss against collapse); one photo in, albedo, shading and the gradient-assignment mask out.",
    input_kind=InputKind.IMAGE,
    outputs=(OutputSpec("albedo", OutputKind.IMAGE, "albedo (reflectance), up to scale", "linear",
                        role=Role.REFLECTANCE),
             OutputSpec("shading", OutputKind.GREY, "grey shading, up to scale", "linear", role=Role.SHADING),
             OutputSpec("assignment", OutputKind.GREY, "soft gradient-assignment mask: probability that the image "
                        "gradient at a pixel belongs to the albedo (1) rather than the shading (0)", "none",
                        role=Role.ATTENTION)),
    params=(ParamSpec("max_side", 512, "longest side the network sees (larger inputs are downscaled and the "
                                       "outputs upsampled back); 512 as for CGIntrinsics and IntrinSeg: the MIT "
                                       "cross-validation is better near the photo's own resolution than at the 320 "
                                       "the network trained at (model card)", int, 32, 2048),
            ParamSpec("albedo_output", "ratio", "full-size albedo as image ÷ shading ('ratio', exact "
                      "reconstruction) or the network's albedo head upsampled ('network')", str,
                      choices=("ratio", "network")),
            tta_param()),
    runner=lambda: run, learned=True,
    # The network sees the photo downscaled to max_side. scripts/method_memory.py --methods ma2018 --size 4000x3000
    # (-p ma2018.max_side=2048), with the two mirror passes side by side (since 2026-11-29): 1.1 GB of growth at the
    # default 512, 3.0 GB (peak 3,104 MiB) at 2048, so about 90 bytes per photo pixel and about 700 per network
    # pixel; declared with a margin. (One pass after the other: 1.09 GB at 320 and 2.82 GB at 2048. The former flat
    # 400 B/px refused 12 MP photos, and let max_side=2048 pass at 2.8 GB.)
    memory=DownscaledMemory("max_side", full_bytes=100, network_bytes=800),
    provenance="model and losses from the paper text (no code was released; every loss weight is a setting); written for Intrinsic Lab; "
               "weights trained by this project (engine/train/ma2018_recipe.py)",
    url="https://arxiv.org/abs/1711.10098",
))
