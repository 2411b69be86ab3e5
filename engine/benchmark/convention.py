"""How dataset images become method inputs, and method outputs become metric inputs: colour spaces and roles.

**Inputs.** A method's input kind says what it expects: ``RAW_IMAGE`` methods take *linear* RGB, every other kind
takes ordinary *sRGB-encoded* images (see :mod:`engine.registry`). Datasets store either (MIT and raw
colour-constancy images are linear; photos are sRGB). When they differ:

* linear → sRGB: the frames are divided by their common maximum (one exposure for the whole item, so the
  brightest pixel becomes white and nothing clips) and then sRGB-encoded. This is the MIT case for every
  ``IMAGE`` method (JieP, Color Retinex, …): the benchmark's images are linear and dark (max ≈ 0.4), and a photo
  method would otherwise see an underexposed, un-gamma'd picture it was never designed for. The scale is
  irrelevant to the scale-invariant MIT metrics.
* sRGB → linear: the IEC 61966-2-1 decoding.

A dataset mask travels as the PNG's alpha channel, which the worker hands to the method as ``MethodInput.mask``.
Inputs are stored as 16-bit PNGs, so the conversion loses nothing that matters.

**Outputs.** Each output declares its colour space. Before scoring, image layers are converted into the colour
space of the dataset's ground truth (sRGB outputs of a photo method are linearised for MIT, whose ground truth is
linear; per the sRGB curve, a product I·R of encoded layers stays, to a good approximation, a product of linear
ones). Each output declares its role (:class:`engine.registry.Role`); :data:`engine.registry.SCORED_ROLES` says which
roles fill which metric input (a Retinex illumination is scored as shading).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..datasets import Sample
from ..imaging import decode_image, encode_png, linear_to_srgb, srgb_to_linear
from ..registry import SCORED_ROLES, InputKind, MethodSpec, OutputKind

INPUT_CONVENTION = "linear→sRGB: divide by the item's max, sRGB-encode; sRGB→linear: IEC 61966-2-1; 16-bit PNG"


def expected_colour_space(kind: InputKind) -> str:
    return "linear" if kind == InputKind.RAW_IMAGE else "srgb"


def compatible(spec: MethodSpec, dataset_kind: InputKind) -> bool:
    """Whether a dataset item of ``dataset_kind`` can be given to the method (single images are interchangeable)."""
    singles = {InputKind.IMAGE, InputKind.RAW_IMAGE, InputKind.FACE}
    if dataset_kind in singles:
        return spec.input_kind in singles
    return spec.input_kind == dataset_kind


def output_roles(spec: MethodSpec) -> dict[str, str]:
    """metric role → the method's output name that fills it, from the outputs' declared roles."""
    roles = {}
    for metric_role, output_roles_ in SCORED_ROLES.items():
        for wanted in output_roles_:
            match = next((out.name for out in spec.outputs if out.role == wanted), None)
            if match is not None:
                roles[metric_role] = match
                break
    return roles


def method_frames(sample: Sample, spec: MethodSpec) -> list[np.ndarray]:
    """The sample's frames in the colour space the method expects, as float32 (H, W, 3) in [0, 1]."""
    want = expected_colour_space(spec.input_kind)
    frames = [np.asarray(f, dtype=np.float32) for f in sample.frames]
    if sample.colour_space == want:
        return frames
    if want == "srgb":
        peak = max(float(f.max()) for f in frames)
        scale = 1.0 / peak if peak > 0 else 1.0
        return [linear_to_srgb(f * scale) for f in frames]
    return [srgb_to_linear(f) for f in frames]


def encode_inputs(sample: Sample, spec: MethodSpec) -> list[bytes]:
    """16-bit PNG bytes of the method's input files; a single image carries the dataset mask as alpha."""
    frames = method_frames(sample, spec)
    single = spec.input_kind in (InputKind.IMAGE, InputKind.RAW_IMAGE, InputKind.FACE)
    if single and sample.mask is not None:
        alpha = np.asarray(sample.mask, dtype=np.float32)[..., None]
        return [encode_png(np.concatenate([frames[0], alpha], axis=2))]
    return [encode_png(f) for f in frames]


def decode_layer(data: bytes, kind: str, colour_space: str, target_space: str) -> np.ndarray:
    """A stored output PNG → float array in the ground truth's colour space (normals → unit vectors)."""
    pixels = decode_image(data, "output").pixels.astype(np.float64)
    if kind == OutputKind.NORMALS.value:
        return pixels * 2.0 - 1.0
    if kind == OutputKind.GREY.value:
        pixels = pixels[..., :1]
    if colour_space == "srgb" and target_space == "linear":
        return srgb_to_linear(pixels).astype(np.float64)
    if colour_space == "linear" and target_space == "srgb":
        return linear_to_srgb(pixels).astype(np.float64)
    return pixels


def predictions(spec: MethodSpec, layers: dict[str, tuple[bytes, str]], values: dict[str, Any],
                target_space: str) -> dict[str, Any]:
    """role → prediction, from a finished job's stored layers (name → (png, kind)) and vector values."""
    pred = {}
    for role, name in output_roles(spec).items():
        out = spec.output(name)
        if out.kind == OutputKind.VECTOR:
            if name in values:
                pred[role] = np.asarray(values[name], dtype=np.float64)
        elif name in layers:
            data, kind = layers[name]
            pred[role] = decode_layer(data, kind, out.colour_space, target_space)
    return pred
