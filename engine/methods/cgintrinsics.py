"""CGIntrinsics: Better Intrinsic Image Decomposition through Physically-Based Rendering.

Zhengqi Li and Noah Snavely. ECCV 2018. https://www.cs.cornell.edu/projects/cgintrinsics/

A U-Net with one encoder and two decoders predicts, from one photo, the logarithm of the reflectance *intensity* and
of a grey shading (one channel each). Colour comes from the input: the RGB reflectance is the input's chromaticity
(in linear light) times exp(log-reflectance), and the shading is exp(log-shading). The authors trained it on their
rendered CGIntrinsics scenes plus IIW and SAW; the weights this project ships were trained on the procedural scenes of
``engine.synth`` (see the model card), and the authors' PyTorch file can be imported with
``python -m engine weights import cgintrinsics cgintrinsics_iiw_saw_final_net_G.pth``.

Architecture (``../shared/docs/methods.md`` §8): 7 stride-2 4×4 convolutions down (3→64, then LeakyReLU(0.2)→conv→BN
up to 512, innermost LeakyReLU→conv without BN); per decoder, ReLU→4×4 transposed convolution→BN concatenated with
the encoder feature of the same level, and a last stage ReLU→transposed conv→64→BN→ReLU→1×1 conv→1 channel. H and W
must be multiples of 128 (2⁷), so inputs are padded by reflection and the outputs cropped back. ``width`` scales every
channel count (1.0 = the paper's 64 base filters).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..imaging import from_tensor, srgb_to_linear, to_tensor
from ..ops.padding import pad_to_multiple as _pad_to_multiple
from ..ops.tta import mirror_averaged, tta_param
from ..limits import DownscaledMemory
from ..registry import (Role, InputKind, MethodInput, MethodResult, MethodSpec, OutputKind, OutputSpec, ParamSpec,
                        RunContext, register)

LEVELS = 7
MULTIPLE = 2 ** LEVELS
BASE_CHANNELS = (64, 128, 256, 512, 512, 512, 512)  # encoder output channels per level


# --- building blocks ------------------------------------------------------------------------------------------------

def _channels(width: float) -> tuple[int, ...]:
    return tuple(max(4, int(round(c * width))) for c in BASE_CHANNELS)


def _down(c_in: int, c_out: int, first: bool, innermost: bool) -> nn.Sequential:
    layers: list[nn.Module] = [] if first else [nn.LeakyReLU(0.2)]
    layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=first or innermost))
    if not (first or innermost):
        layers.append(nn.BatchNorm2d(c_out))
    return nn.Sequential(*layers)


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
                         nn.BatchNorm2d(c_out))


class Decoder(nn.Module):
    """One of the two decoders: transposed convolutions back up, with skips from the encoder, to 1 channel."""

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        ups = []
        c_in = channels[-1]
        for level in range(LEVELS - 2, -1, -1):  # outputs at the resolution of encoder level `level`
            ups.append(_up(c_in, channels[level]))
            c_in = 2 * channels[level]
        self.ups = nn.ModuleList(ups)
        self.head = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(c_in, channels[0], 4, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(channels[0]), nn.ReLU(), nn.Conv2d(channels[0], 1, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, skip in zip(self.ups, reversed(features[:-1])):
            x = torch.cat([up(x), skip], 1)
        return self.head(x)


class CGIntrinsicsNet(nn.Module):
    """``forward(x)`` with x (N, 3, H, W), H and W multiples of 128 → (log reflectance, log shading), each (N, 1, H, W).

    >>> net = CGIntrinsicsNet(width=0.125)
    >>> log_r, log_s = net(torch.rand(1, 3, 128, 128))
    >>> tuple(log_r.shape)
    (1, 1, 128, 128)
    """

    def __init__(self, width: float = 1.0):
        super().__init__()
        self.width = width
        channels = _channels(width)
        c_in = 3
        downs = []
        for level, c_out in enumerate(channels):
            downs.append(_down(c_in, c_out, first=level == 0, innermost=level == LEVELS - 1))
            c_in = c_out
        self.encoder = nn.ModuleList(downs)
        self.reflectance = Decoder(channels)
        self.shading = Decoder(channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The authors' initialisation: N(0, 0.02) for convolutions, N(1, 0.02) for BatchNorm scales.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.normal_(module.weight, 0.0, 0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-1] % MULTIPLE or x.shape[-2] % MULTIPLE:
            raise ValueError(f"Expected (N, 3, H, W) with H, W multiples of {MULTIPLE}, got {tuple(x.shape)}")
        features = []
        for down in self.encoder:
            x = down(x)
            features.append(x)
        return self.reflectance(features), self.shading(features)


def chromaticity(linear_rgb: torch.Tensor) -> torch.Tensor:
    """rgb / (r + g + b + 1e-6) over the channel axis of (N, 3, H, W)."""
    return linear_rgb / (linear_rgb.sum(1, keepdim=True) + 1e-6)


def compose(srgb: torch.Tensor, log_r: torch.Tensor, log_s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB reflectance = chromaticity(linear input) · exp(log R); shading = exp(log S). Linear, (N, 3/1, H, W)."""
    return chromaticity(srgb_to_linear(srgb)) * torch.exp(log_r), torch.exp(log_s)


def pad_to_multiple(x: torch.Tensor, multiple: int = MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """:func:`engine.ops.padding.pad_to_multiple` with this network's multiple."""
    return _pad_to_multiple(x, multiple)


# --- checkpoint key remap (the authors' file) ------------------------------------------------------------------------

def convert_official(path) -> dict[str, torch.Tensor]:
    """Map the authors' ``*_net_G.pth`` onto :class:`CGIntrinsicsNet` (width 1.0) by layer order and shape.

    Their file is a PyTorch state dict (loaded here with ``weights_only=True``); its module names differ from ours,
    but both networks hold the same layers in the same order per branch, so tensors are matched in order within the
    encoder and each decoder and every shape is checked. Anything that does not line up is an error, never a guess.
    """
    from ..errors import WeightsUnavailableError
    from ..weights import load_state_dict

    theirs = load_state_dict(path)
    ours = CGIntrinsicsNet(width=1.0).state_dict()
    source = [(k, v) for k, v in theirs.items() if not k.endswith("num_batches_tracked")]
    target = [k for k in ours if not k.endswith("num_batches_tracked")]
    if len(source) != len(target):
        raise WeightsUnavailableError(f"{path}: {len(source)} tensors, but CGIntrinsicsNet has {len(target)}; "
                                      "this is not the CGIntrinsics generator")
    converted = {}
    for (their_key, tensor), our_key in zip(source, target):
        if tuple(tensor.shape) != tuple(ours[our_key].shape):
            raise WeightsUnavailableError(f"{path}: {their_key} has shape {tuple(tensor.shape)}, expected "
                                          f"{tuple(ours[our_key].shape)} for {our_key}")
        converted[our_key] = tensor.float()
    for key in ours:
        if key.endswith("num_batches_tracked"):
            converted[key] = torch.zeros((), dtype=torch.long)
    return converted


def model_from_state(state: Mapping[str, torch.Tensor]) -> CGIntrinsicsNet:
    """Build a network whose width matches the state dict (the first convolution's output channels)."""
    first = state["encoder.0.0.weight"].shape[0]
    model = CGIntrinsicsNet(width=first / BASE_CHANNELS[0])
    model.load_state_dict(dict(state))
    return model.eval()


# --- runner ---------------------------------------------------------------------------------------------------------

def decompose(image: np.ndarray, model: CGIntrinsicsNet, device: torch.device, max_side: int = 512,
              tta: str = "flip") -> tuple[np.ndarray, np.ndarray]:
    """sRGB (H, W, 3) → linear reflectance (H, W, 3) and grey shading (H, W, 1) at the input size (up to scale).
    ``tta="flip"`` averages the log layers with those of the mirrored photo (:mod:`engine.ops.tta`)."""
    h, w = image.shape[:2]
    x = to_tensor(image, device)
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        x = F.interpolate(x, scale_factor=scale, mode="area")
    padded, (ph, pw) = pad_to_multiple(x)
    with torch.no_grad():
        log_r, log_s = mirror_averaged(model, padded, tta)
        reflectance, shading = compose(padded, log_r, log_s)
    reflectance, shading = reflectance[..., :ph, :pw], shading[..., :ph, :pw]
    if scale < 1.0:
        reflectance = F.interpolate(reflectance, size=(h, w), mode="bilinear", align_corners=False)
        shading = F.interpolate(shading, size=(h, w), mode="bilinear", align_corners=False)
    return from_tensor(reflectance), from_tensor(shading)


def _normalise(layer: np.ndarray, percentile: float = 99.0) -> tuple[np.ndarray, float]:
    ref = float(np.percentile(layer, percentile))
    scale = 1.0 / max(ref, 1e-6)
    return (layer * scale).astype(np.float32), scale


def run(inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult:
    from ..models import load_model

    with ctx.timed("load"):
        model, load_info = load_model("cgintrinsics", ctx.weights, ctx.device, lambda state, _: model_from_state(state))
    ctx.progress(0.3, "decomposing")
    with ctx.timed("inference"):
        reflectance, shading = decompose(inputs.image, model, ctx.device, int(params["max_side"]), str(params["tta"]))
    # Intrinsic layers are only defined up to a scale: each is shown with its 99th percentile at 1.
    reflectance, r_scale = _normalise(reflectance)
    shading, s_scale = _normalise(shading)
    ctx.progress(1.0, "done")
    return MethodResult(layers={"reflectance": reflectance, "shading": shading},
                        info={**load_info, "reflectance_scale": r_scale, "shading_scale": s_scale,
                              "network_width": model.width})


def _declare_weights() -> None:
    from ..weights import WeightSet, declare_weights

    declare_weights(WeightSet(
        method="cgintrinsics", name="mit",
        description="the `synthetic` weights fine-tuned by this project on the CPU on photographic engine.synth "
                    "scenes and the 10 MIT objects in ../shared (width 0.25, float16); 5-fold cross-validated "
                    "Grosse LMSE on those objects 0.0239, against 0.0259 for Color Retinex; but more of an albedo's "
                    "fine texture goes into its shading than with Color Retinex (0.33 against 0.16 on held-out "
                    "renders, scripts/intrinsic_leak.py; see the card)",
        filename="cgintrinsics-mit.safetensors",
        sha256="c45eac703f80b30644775f057a1c49c3c4e29f624af1de3af872b05ddfd43d44",
        licence="MIT (project weights); training data: engine.synth, Kodak/BSDS photo textures, MIT Intrinsic "
                "Images (research use)",
        model_card="assets/model_cards/cgintrinsics-mit.md",
    ))
    declare_weights(WeightSet(
        method="cgintrinsics", name="synthetic",
        description="trained by this project on procedural scenes from engine.synth only (width 0.25; the starting "
                    "point of `mit`); loses to the Color Retinex baseline on MIT (0.0373 vs 0.0259; see the card)",
        filename="cgintrinsics-synthetic.safetensors",
        sha256="49612c564be1b44fc08bf368f0108e5df1067b7710b065f1494bffdb4c9d651a",
        licence="MIT (project weights; training data generated by engine.synth)",
        model_card="assets/model_cards/cgintrinsics-synthetic.md",
    ))
    declare_weights(WeightSet(
        method="cgintrinsics", name="official", official=True, format="torch",
        description="the authors' generator trained on CGIntrinsics + IIW + SAW (full width)",
        source_url="https://www.cs.cornell.edu/projects/cgintrinsics/",
        source_filename="cgintrinsics_iiw_saw_final_net_G.pth",
        licence="see the authors' project page", converter="engine.methods.cgintrinsics:convert_official",
    ))


_declare_weights()

SPEC = register(MethodSpec(
    name="cgintrinsics", title="CGIntrinsics", year=2018, task="intrinsic",
    paper="Z. Li and N. Snavely. CGIntrinsics: Better Intrinsic Image Decomposition through Physically-Based "
          "Rendering. ECCV 2018.",
    summary="U-Net predicting log reflectance intensity and log shading; colour from the input's chromaticity.",
    input_kind=InputKind.IMAGE,
    outputs=(OutputSpec("reflectance", OutputKind.IMAGE, "reflectance (albedo), up to scale", "linear", role=Role.REFLECTANCE),
             OutputSpec("shading", OutputKind.GREY, "grey shading, up to scale", "linear", role=Role.SHADING)),
    params=(ParamSpec("max_side", 512, "longest side the network sees (larger inputs are downscaled, the outputs "
                                       "upscaled back)", int, 128, 2048),
            tta_param()),
    runner=lambda: run, learned=True,
    provenance="architecture from the paper and the authors' code; weights trained by this project (engine/train)",
    url="https://www.cs.cornell.edu/projects/cgintrinsics/",
    # The network sees the photo downscaled to max_side. scripts/method_memory.py --methods cgintrinsics --size
    # 4000x3000 (-p cgintrinsics.max_side=2048): 0.66 GB of growth at the default 512, 1.21 GB at 2048, so about 52
    # bytes per photo pixel and 187 per network pixel; declared with a margin.
    memory=DownscaledMemory("max_side", full_bytes=60, network_bytes=220),
    # the network sees ≤ max_side (512 px): its deep levels are too small for a second CPU thread to pay (2-core
    # machine, python -m engine.speed --cases cgintrinsics-1mp: 0.19 s with 1 thread, 0.26 s with 2)
    pixels_per_thread=64_000_000,
))
