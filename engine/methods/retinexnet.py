"""RetinexNet: Deep Retinex Decomposition for Low-Light Enhancement.

Chen Wei, Wenjing Wang, Wenhan Yang, Jiaying Liu. BMVC 2018. https://daooshee.github.io/BMVC2018website/

A low-light image S is decomposed by **DecomNet** into a reflectance R (3 channels) and an illumination I (1 channel)
with S ≈ R·I. DecomNet is trained without ground-truth decompositions, only from paired low/normal-light photos of the
same scene: both must share one reflectance, each must be reconstructed, and the illumination must be smooth except
where the reflectance has edges. **RelightNet** (the paper's Enhance-Net) then maps (R, I) of the low image to a
brightened illumination I_delta, and the enhanced image is R·I_delta. The paper denoises R with BM3D before the
recombination; here that step is optional, off by default, and done with OpenCV's non-local means
(``denoise_reflectance``).

Faithfulness to the authors' TensorFlow 1 code (see ``../shared/docs/methods.md`` §9):

* every convolution uses TensorFlow's ``'SAME'`` zero padding, which for a stride-2 3×3 convolution on an even size
  pads 0 at the top/left and 1 at the bottom/right (PyTorch's symmetric ``padding=1`` would shift the grid);
* RelightNet's up-steps resize with nearest neighbour *to the skip's size* (not ×2), which is what makes odd sizes work;
  TF1's ``resize_nearest_neighbor`` (no align corners, no half-pixel centres) picks ``floor(dst · in / out)``, exactly
  PyTorch's ``mode="nearest"``;
* DecomNet's input is ``[max over RGB, R, G, B]``; its outputs are sigmoids; RelightNet's output has no activation.

* convolutions start from TF1's defaults (Glorot-uniform kernels, zero biases), which matters for training.

A photo whose activations do not fit the job's memory budget (``INTRINSIC_LAB_MAX_JOB_MEMORY``) is processed in
overlapping tiles whose halo exceeds the receptive field and whose seams are cross-faded (``enhance_tensor``), so a
12-megapixel photo runs in bounded memory without visible seams; tiles are the fewest and largest that fit
(:func:`engine.ops.tiling.plan_tiles`), since every tile recomputes its halos. On CPUs with
native bfloat16 (AVX512-BF16, AMX) the 64-channel layers run under bfloat16 autocast by default (parameter
``precision``), about 2.4× faster at 600×400; the output layers stay float32.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..device import PRECISIONS
from ..errors import ParameterError, WeightsUnavailableError
from ..imaging import from_tensor, to_tensor
from ..ops.tf_layers import SameConv2d, resize_like, tf_default_init
from ..ops.tiling import TileGeometry, TilePlan, minimum_tile, plan_in_budget, run_tiled
from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)

# --- networks -------------------------------------------------------------------------------------------------


def _float32(x: torch.Tensor):
    """Leave autocast (if on) for a network's cheap output layer, so bfloat16 runs still give float32-fine outputs."""
    return torch.autocast(x.device.type, enabled=False)


class DecomNet(nn.Module):
    """(N, 3, H, W) image in [0, 1] → reflectance (N, 3, H, W) and illumination (N, 1, H, W), both in (0, 1)."""

    def __init__(self, channels: int = 64, kernel_size: int = 3, layers: int = 5):
        super().__init__()
        self.shallow = SameConv2d(4, channels, kernel_size * 3)
        self.activated = nn.ModuleList(SameConv2d(channels, channels, kernel_size) for _ in range(layers))
        self.recon = SameConv2d(channels, 4, kernel_size)
        tf_default_init(self)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if image.ndim != 4 or image.shape[1] != 3:
            raise ValueError(f"Expected (N, 3, H, W), got {tuple(image.shape)}")
        x = torch.cat([image.amax(dim=1, keepdim=True), image], dim=1)
        x = self.shallow(x)  # the authors leave this layer linear
        for conv in self.activated:
            x = conv(x).relu_()  # in place: the convolution's output has no other use
        with _float32(x):  # the output layer is 2% of the work; float32 keeps R and I finer than 8-bit steps
            x = torch.sigmoid(self.recon(x.float()))
        return x[:, :3], x[:, 3:4]


class RelightNet(nn.Module):
    """Reflectance (N, 3, H, W) and illumination (N, 1, H, W) → enhanced illumination I_delta (N, 1, H, W).

    An encoder of three stride-2 convolutions, a decoder whose steps resize to the matching skip and add it, and a
    multi-scale fusion of the three decoder outputs. The output is linear (not clamped).
    """

    def __init__(self, channels: int = 64, kernel_size: int = 3):
        super().__init__()
        self.conv0 = SameConv2d(4, channels, kernel_size)
        self.down = nn.ModuleList(SameConv2d(channels, channels, kernel_size, stride=2) for _ in range(3))
        self.up = nn.ModuleList(SameConv2d(channels, channels, kernel_size) for _ in range(3))
        self.fusion = SameConv2d(channels * 3, channels, 1)
        self.output = SameConv2d(channels, 1, kernel_size)
        tf_default_init(self)

    def forward(self, reflectance: torch.Tensor, illumination: torch.Tensor,
                tile: TileGeometry | None = None) -> torch.Tensor:
        """``tile``: compute a tile of a larger image exactly as the whole image would be computed there (the
        stride-2 grid and the nearest-resize rounding depend on the whole image's size, not the tile's)."""
        if tile is None:
            def down(i, x):
                return self.down[i](x)

            def resize(x, x_level, ref, ref_level):
                return resize_like(x, ref)
        else:
            def down(i, x):
                return self.down[i](x, before=tile.down_padding(i))

            resize = tile.resize
        x0 = self.conv0(torch.cat([reflectance, illumination], dim=1))
        x1 = down(0, x0).relu_()
        x2 = down(1, x1).relu_()
        x3 = down(2, x2).relu_()
        d1 = self.up[0](resize(x3, 3, x2, 2)).relu_() + x2
        d2 = self.up[1](resize(d1, 2, x1, 1)).relu_() + x1
        d3 = self.up[2](resize(d2, 1, x0, 0)).relu_() + x0
        # The authors concatenate [resize(d1), resize(d2), d3] (192 channels at full size) and apply a 1×1 conv.
        # A 1×1 conv commutes with a nearest resize (both act per pixel), so each part is fused at its own scale
        # and then resized: the same result with a third of the full-size work and no 192-channel tensor.
        w = self.fusion.weight
        c = d3.shape[1]
        fused = (resize(F.conv2d(d1, w[:, :c]), 2, d3, 0) + resize(F.conv2d(d2, w[:, c:2 * c]), 1, d3, 0)
                 + F.conv2d(d3, w[:, 2 * c:], self.fusion.bias))
        with _float32(fused):
            return self.output(fused.float())


class RetinexNet(nn.Module):
    """Both networks; ``forward`` returns (R, I, I_delta, enhanced = R·I_delta)."""

    def __init__(self):
        super().__init__()
        self.decom = DecomNet()
        self.relight = RelightNet()

    def forward(self, image: torch.Tensor, tile: TileGeometry | None = None):
        reflectance, illumination = self.decom(image)
        delta = self.relight(reflectance, illumination, tile)
        return reflectance, illumination, delta, reflectance * delta


#: Receptive-field radius (pixels) of DecomNet followed by RelightNet, rounded up: DecomNet 4 + 6·1 = 10; RelightNet's
#: encoder reaches 1 + 1 + 2 + 4 = 8 input pixels, its decoder adds 4 + 2 + 1 + 1 plus up to 4 + 2 + 1 pixels of
#: nearest-resize offset, and the 4× / 2× fusion resizes up to 3 more.
RECEPTIVE_RADIUS = 10 + 8 + 8 + 7 + 3


# --- checkpoint key remap -------------------------------------------------------------------------------------

#: TensorFlow variable scope (without /kernel, /bias) → our module path. RelightNet's layers were created unnamed
#: by ``tf.layers.conv2d``, so TF numbered them in creation order.
TF_TO_TORCH: dict[str, str] = {
    "DecomNet/shallow_feature_extraction": "decom.shallow",
    **{f"DecomNet/activated_layer_{i}": f"decom.activated.{i}" for i in range(5)},
    "DecomNet/recon_layer": "decom.recon",
    "RelightNet/conv2d": "relight.conv0",
    **{f"RelightNet/conv2d_{i + 1}": f"relight.down.{i}" for i in range(3)},
    **{f"RelightNet/conv2d_{i + 4}": f"relight.up.{i}" for i in range(3)},
    "RelightNet/conv2d_7": "relight.fusion",
    "RelightNet/conv2d_8": "relight.output",
}


def tf_name_to_torch(name: str) -> str | None:
    """Map one TF checkpoint variable name to our state-dict key, or ``None`` for variables we do not use
    (optimizer slots such as ``…/AdamOptimizer``, ``beta1_power``, the unused DenoiseNet)."""
    scope, _, leaf = name.rpartition("/")
    if scope not in TF_TO_TORCH:
        return None
    return {"kernel": f"{TF_TO_TORCH[scope]}.weight", "bias": f"{TF_TO_TORCH[scope]}.bias"}.get(leaf)


def remap_tf_tensors(tensors: Mapping[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """TF variables → our state dict. Kernels are HWIO in TF and OIHW in PyTorch: transpose (3, 2, 0, 1)."""
    state: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        key = tf_name_to_torch(name)
        if key is None:
            continue
        array = np.asarray(value, dtype=np.float32)
        if key.endswith(".weight"):
            if array.ndim != 4:
                raise ValueError(f"{name}: expected a 4-D HWIO kernel, got shape {array.shape}")
            array = array.transpose(3, 2, 0, 1)
        state[key] = torch.from_numpy(np.ascontiguousarray(array))
    return state


def _expected_shapes(network: str) -> dict[str, tuple[int, ...]]:
    module = DecomNet() if network == "decom" else RelightNet()
    return {f"{network}.{k}": tuple(v.shape) for k, v in module.state_dict().items()}


def _complete_set(entries: Mapping[str, Any], network: str) -> dict[str, str] | None:
    """TF names of ``network``'s variables in a checkpoint, if all are there with our architecture's shapes.

    Whole networks only: the authors' Decom checkpoint also carries an older, different RelightNet whose first
    layers share our names, so matching variable by variable would assemble a chimera.
    """
    expected = _expected_shapes(network)
    names: dict[str, str] = {}
    for name, entry in entries.items():
        key = tf_name_to_torch(name)
        if key not in expected:
            continue
        shape = tuple(entry.shape)
        torch_shape = (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else shape
        if torch_shape != expected[key]:
            return None
        names[key] = name
    return names if set(names) == set(expected) else None


def convert_official(path: str | Path) -> dict[str, torch.Tensor]:
    """Convert the authors' TensorFlow 1 checkpoint(s) to our state dict, without TensorFlow.

    ``path`` is a checkpoint prefix, its ``.index`` file, a folder holding one checkpoint (``model/Decom``), or the
    repository's ``model`` folder holding ``Decom/`` and ``Relight/``. Each network is taken whole from one
    checkpoint, preferring the one whose path names it (the authors restore DecomNet from ``Decom/`` and RelightNet
    from ``Relight/``); a checkpoint whose data shard is missing or empty is passed over. The result holds
    ``decom.*`` and/or ``relight.*``; an error is raised only if neither network could be read.
    """
    from ..convert.tf_checkpoint import find_checkpoints, list_variables, read_checkpoint

    prefixes = find_checkpoints(path)
    state: dict[str, torch.Tensor] = {}
    problems: list[str] = []
    for network in ("decom", "relight"):
        candidates = []
        for prefix in prefixes:
            names = _complete_set(list_variables(prefix), network)
            if names is not None:
                candidates.append((prefix, names))
        candidates.sort(key=lambda c: network not in str(c[0]).lower())
        for prefix, names in candidates:
            wanted = set(names.values())
            try:
                tensors = read_checkpoint(prefix, include=wanted.__contains__)
            except (OSError, ValueError) as exc:
                problems.append(f"{network} from {prefix}: {exc}")
                continue
            state.update(remap_tf_tensors(tensors))
            break
        else:
            if not candidates:
                problems.append(f"{network}: no checkpoint holds all its variables with the expected shapes")
    if not state:
        raise WeightsUnavailableError(f"{path}: no usable RetinexNet checkpoint ({'; '.join(problems)})")
    return state


def split_state(state: Mapping[str, torch.Tensor]) -> tuple[dict, dict]:
    """One flat state dict → (DecomNet's, RelightNet's), each without its prefix; a missing half is empty."""
    decom = {k[len("decom."):]: v for k, v in state.items() if k.startswith("decom.")}
    relight = {k[len("relight."):]: v for k, v in state.items() if k.startswith("relight.")}
    return decom, relight


# --- runner ---------------------------------------------------------------------------------------------------

#: Tiles are processed with this many discarded pixels around their kept part (≥ the receptive radius, a multiple
#: of 8 so that every tile starts on the stride-8 grid of the encoder) and cross-faded over ``_BLEND`` pixels.
_HALO = 8 * math.ceil(RECEPTIVE_RADIUS / 8)
_BLEND = 32
_DEFAULT_TILE = {"cuda": 2048}  # the CPU tiles from the memory budget (tile_plan)
_MIN_TILE = minimum_tile(_HALO, _BLEND)
#: Peak memory of the network per pixel of its input window (CPU, float32, inference, whole image: 1551 B/px at
#: 600×400 and 1565 at 300×200, resident-set growth measured on the build machine), with a margin; and per pixel of
#: the whole photo, what tiling keeps besides (input, accumulators): about 50, from 1.6 GB of growth for a 12 MP
#: photo in 1 GB tiles (``scripts/method_memory.py --methods retinexnet --size 4000x3000``). At the former 128 the
#: job check refused a 12 MP photo.
NETWORK_BYTES_PER_PIXEL = 1700
BUFFER_BYTES_PER_PIXEL = 64


def tile_plan(height: int, width: int, budget: float | None = None) -> TilePlan:
    """How the CPU runs a ``height``×``width`` photo: whole when the network's activations fit the job's memory
    budget (``INTRINSIC_LAB_MAX_JOB_MEMORY`` unless ``budget`` is given), else the fewest, largest tiles that do
    (:func:`engine.ops.tiling.plan_in_budget`)."""
    return plan_in_budget(height, width, NETWORK_BYTES_PER_PIXEL, BUFFER_BYTES_PER_PIXEL, _HALO, _BLEND, budget)


@torch.inference_mode()
def enhance_tensor(model: RetinexNet, image: torch.Tensor, tile: int | tuple[int, int] = 768,
                   progress=lambda fraction, message: None,
                   precision: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Run RetinexNet on a (1, 3, H, W) image, whole if it fits in one ``tile`` window (a side, or (height, width)),
    else in tiles.

    ``precision`` bfloat16 runs the 64-channel layers under autocast (2.4× faster at 600×400 on the build machine's
    AVX512-BF16 CPU, ``python -m engine.speed``; validation PSNR 16.22 dB against 16.23 in float32); the output
    layers stay float32.

    Returns ``reflectance`` (1, 3, H, W), ``illumination``, ``enhanced_illumination`` (1, 1, H, W) on the CPU.
    Tiles overlap by ``2·_HALO + _BLEND`` pixels; each keeps only its part farther than ``_HALO`` from an interior
    tile edge, and kept parts are cross-faded, so memory is bounded by one tile and there are no seams.
    """
    from ..device import autocast

    with autocast(image.device, precision):
        return _enhance(model, image, tile, progress)


def _enhance(model: RetinexNet, image: torch.Tensor, tile: int | tuple[int, int], progress) -> dict[str, torch.Tensor]:
    def network(crop: torch.Tensor, geometry: TileGeometry) -> dict[str, torch.Tensor]:
        whole = crop.shape[-2:] == image.shape[-2:]
        r, i, delta, _ = model(crop, None if whole else geometry)
        return {"reflectance": r, "illumination": i, "enhanced_illumination": delta}

    return run_tiled(network, image, tile, _HALO, _BLEND, progress=progress)


def denoise_reflectance(reflectance: np.ndarray, illumination: np.ndarray, strength: float) -> np.ndarray:
    """Illumination-aware reflectance denoising (the paper's joint denoising step, with a different denoiser).

    The paper runs BM3D on R with a strength that follows the illumination, because dividing by a dark I amplifies
    the noise there. We denoise R with OpenCV's non-local means (``fastNlMeansDenoisingColored``, luminance
    strength ``strength``, colour strength the same, on 8-bit values) and blend ``I·R + (1 − I)·denoised(R)``,
    so dark regions are denoised fully and well-lit ones keep their detail.
    """
    import cv2

    bgr = np.round(np.clip(reflectance[:, :, ::-1], 0, 1) * 255).astype(np.uint8)
    denoised = cv2.fastNlMeansDenoisingColored(np.ascontiguousarray(bgr), None, strength, strength, 7, 21)
    denoised = denoised[:, :, ::-1].astype(np.float32) / 255.0
    lit = np.clip(illumination, 0.0, 1.0)
    return (lit * reflectance + (1.0 - lit) * denoised).astype(np.float32)


def build_model(state: Mapping[str, torch.Tensor], resolved) -> tuple[RetinexNet, dict[str, Any]]:
    """RetinexNet from a state dict (the builder given to :func:`engine.models.load_model`).

    The official release's RelightNet data file is not always at hand (only its index is, here): when the official
    set holds DecomNet alone, RelightNet comes from the project set and the returned info says so.
    """
    from ..weights import load_weights

    decom, relight = split_state(state)
    info: dict[str, Any] = {}
    if not decom:
        raise WeightsUnavailableError(f"{resolved.path}: holds no DecomNet weights (decom.*)")
    if not relight:
        project, project_resolved = load_weights("retinexnet", "project")
        relight = split_state(project)[1]
        info["relight_weights"] = project_resolved.describe()
        info["note"] = "DecomNet from the selected weights, RelightNet from the project's (none in the file)"
    model = RetinexNet()
    model.decom.load_state_dict(decom)
    model.relight.load_state_dict(relight)
    # channels_last lets oneDNN run the 64-channel convolutions about a quarter cheaper on the CPU.
    return model.to(memory_format=torch.channels_last), info


def load_model(weights: str | None, device: torch.device) -> tuple[RetinexNet, dict[str, Any]]:
    """RetinexNet with a weight set (``project``, ``official``, an installed one) or a file path, loaded once per
    file and device (:func:`engine.models.load_model`)."""
    from ..models import load_model as load

    return load("retinexnet", weights, device, build_model)


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    from ..device import precision_name, resolve_precision

    try:
        precision = resolve_precision(params["precision"], ctx.device)
    except ValueError as exc:
        raise ParameterError(str(exc)) from None
    with ctx.timed("load"):
        model, weight_info = load_model(ctx.weights, ctx.device)
    height, width = inputs.image.shape[:2]
    tile: int | tuple[int, int] = int(params["tile_size"]) or _DEFAULT_TILE.get(ctx.device.type, 0)
    if not tile:
        tile = tile_plan(height, width).tile
    elif tile < _MIN_TILE:
        raise ParameterError(f"tile_size {tile} is below {_MIN_TILE} (two halos of {_HALO} px plus the blend)")
    with ctx.timed("network"):
        image = to_tensor(inputs.image, ctx.device).contiguous(memory_format=torch.channels_last)
        layers = enhance_tensor(model, image, tile, progress=lambda f, m: ctx.progress(0.9 * f, m),
                                precision=precision)
    out = {name: from_tensor(value) for name, value in layers.items()}
    reflectance = out["reflectance"]
    if params["denoise"]:
        ctx.progress(0.9, "denoising the reflectance")
        with ctx.timed("denoise"):
            reflectance = denoise_reflectance(reflectance, out["illumination"], float(params["denoise_strength"]))
    delta = out["enhanced_illumination"]
    enhanced = reflectance * delta
    tile_h, tile_w = (tile, tile) if isinstance(tile, int) else tile
    info = {**weight_info, "tile_size": "whole" if height <= tile_h and width <= tile_w else f"{tile_w}×{tile_h}",
            "denoised": bool(params["denoise"]),
            "precision": precision_name(precision),
            "enhanced_clipped_fraction": float(np.mean((enhanced < 0) | (enhanced > 1))),
            "enhanced_illumination_range": [float(delta.min()), float(delta.max())]}
    return MethodResult(
        layers={"reflectance": reflectance, "illumination": out["illumination"],
                "enhanced_illumination": np.clip(delta, 0.0, 1.0), "enhanced": np.clip(enhanced, 0.0, 1.0)},
        info=info,
    )


# --- registration ---------------------------------------------------------------------------------------------

def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="retinexnet", name="project",
        description="Trained by this project on 147 LOL our485 pairs (15 held out), paper losses and schedule",
        format="safetensors", filename="retinexnet.safetensors", sha256=PROJECT_WEIGHTS_SHA256,
        licence="MIT (this project); trained on the LOL dataset", model_card="assets/model_cards/retinexnet.md",
    ))
    declare_weights(WeightSet(
        method="retinexnet", name="official",
        description="The authors' TensorFlow 1 checkpoints (model/Decom, model/Relight), converted without TensorFlow",
        format="tensorflow-checkpoint", source_url="https://github.com/weichen582/RetinexNet/tree/master/model",
        source_filename="model", licence="as published in weichen582/RetinexNet",
        converter="engine.methods.retinexnet:convert_official", model_card="assets/model_cards/retinexnet-official.md",
        official=True,
    ))


PROJECT_WEIGHTS_SHA256 = "64bd61ef0cfc439aa6575de4f0bbc6e00120710db552ad2626da9ddc52d5335a"

_declare_weights()

register(MethodSpec(
    name="retinexnet",
    title="RetinexNet",
    paper="Chen Wei, Wenjing Wang, Wenhan Yang, Jiaying Liu. Deep Retinex Decomposition for Low-Light Enhancement. "
          "BMVC 2018.",
    year=2018,
    task="enhance",
    summary="Learned Retinex decomposition of a low-light photo into reflectance and illumination, then a learned "
            "brightening of the illumination; trained on LOL low/normal-light pairs.",
    input_kind=InputKind.IMAGE,
    outputs=(
        OutputSpec("reflectance", OutputKind.IMAGE, "R: the scene's colours without the lighting (DecomNet)", role=Role.REFLECTANCE),
        OutputSpec("illumination", OutputKind.GREY, "I: the low-light illumination, S ≈ R·I (DecomNet)", "none", role=Role.ILLUMINATION),
        OutputSpec("enhanced_illumination", OutputKind.GREY, "I_delta: brightened illumination (RelightNet)", "none", role=Role.ENHANCED_ILLUMINATION),
        OutputSpec("enhanced", OutputKind.IMAGE, "R·I_delta: the enhanced photo", role=Role.ENHANCED),
    ),
    params=(
        ParamSpec("denoise", False, "denoise the reflectance (OpenCV non-local means, stronger where it is dark); "
                  "the paper denoises it with BM3D", type=bool),
        ParamSpec("denoise_strength", 10.0, "non-local means filter strength h (8-bit units)", minimum=1.0,
                  maximum=40.0),
        ParamSpec("precision", "auto", "compute precision: auto = bfloat16 on a CPU with native bfloat16 "
                  "(AVX512-BF16/AMX; about 2.4× faster, same validation score within 0.01 dB), float32 elsewhere",
                  type=str, choices=PRECISIONS),
        ParamSpec("tile_size", 0, "tile side in pixels for large photos (0: on the CPU the whole photo when it "
                  "fits the job's memory budget, else the fewest tiles that do; 2048 on a GPU)", type=int,
                  minimum=0, maximum=8192),
    ),
    runner=lambda: run,
    learned=True,
    licence="MIT (this implementation)",
    provenance="Architecture and losses re-implemented from the paper and the facts of the authors' TensorFlow code "
               "(TF 'SAME' padding, nearest resizes to the skip size); no code copied.",
    min_side=8,
    bytes_per_pixel=2 * BUFFER_BYTES_PER_PIXEL,  # the CPU tiles from the job's budget (tiling.plan_in_budget)
    url="https://daooshee.github.io/BMVC2018website/",
))
