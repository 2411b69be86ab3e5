"""Turning a :class:`~engine.registry.MethodResult` into files: one PNG per layer (16-bit for continuous values).

Shared by the CLI (``python -m engine run``) and the worker, so both write exactly the same artifacts.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .imaging import encode_png
from .registry import MethodResult, MethodSpec, OutputKind
from .threads import thread_share


@dataclass(frozen=True)
class EncodedLayer:
    layer: str  # output name, with a frame suffix for stacks ("shading/003")
    filename: str
    data: bytes
    meta: dict[str, Any]


def _stats(array: np.ndarray) -> dict[str, Any]:
    finite = np.isfinite(array)
    values = array[finite] if finite.any() else np.zeros(1, np.float32)
    return {
        "shape": list(array.shape), "min": float(values.min()), "max": float(values.max()),
        "mean": float(values.mean()),
        "clipped_fraction": float(np.mean((array < 0) | (array > 1))) if array.dtype != np.uint8 else 0.0,
    }


def encode_result(spec: MethodSpec, result: MethodResult) -> list[EncodedLayer]:
    """Encode every image-like output of ``result`` as PNG bytes with metadata.

    Float layers are written as 16-bit PNGs (values clipped to [0, 1]; the clipped fraction is recorded);
    normals as (n + 1) / 2; label maps as 8-bit class indices.
    """
    tasks: list[tuple[str, str, np.ndarray, np.ndarray, dict]] = []  # layer, file, what to encode, stats of, meta
    for out in spec.outputs:
        if out.kind == OutputKind.VECTOR or out.name not in result.layers:
            continue
        array = np.asarray(result.layers[out.name])
        meta = {"kind": out.kind.value, "meaning": out.meaning, "colour_space": out.colour_space}
        if out.kind == OutputKind.IMAGE_STACK:
            for t, frame in enumerate(array):
                tasks.append((f"{out.name}/{t:03d}", f"{out.name}_{t:03d}.png", frame, frame, {**meta, "frame": t}))
            continue
        if out.kind == OutputKind.NORMALS:
            pixels = (array + 1.0) / 2.0
            meta["encoding"] = "(n + 1) / 2"
        elif out.kind == OutputKind.LABELS:
            pixels = array.astype(np.uint8)
            meta["encoding"] = "class index"
        else:
            pixels = array
        tasks.append((out.name, f"{out.name}.png", pixels, array, meta))

    def encode(task) -> EncodedLayer:
        layer, filename, pixels, stats_of, meta = task
        return EncodedLayer(layer, filename, encode_png(pixels), {**meta, **_stats(stats_of)})

    # PNG compression (zlib inside OpenCV) and the numpy conversions release the GIL: layers encode in parallel
    workers = min(len(tasks), thread_share())
    if workers <= 1:
        return [encode(t) for t in tasks]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="png") as pool:
        return list(pool.map(encode, tasks))


def vector_values(spec: MethodSpec, result: MethodResult) -> dict[str, Any]:
    """The non-image outputs (illuminant RGB, SH coefficients), as plain JSON-able lists."""
    values = {}
    for out in spec.outputs:
        if out.kind == OutputKind.VECTOR and out.name in result.values:
            values[out.name] = np.asarray(result.values[out.name], dtype=float).tolist()
    return values


def json_safe(value: Any) -> Any:
    """``value`` as strict JSON: numpy scalars and small arrays become numbers and lists, NaN and infinity become
    ``None`` (JSON has no such numbers; PostgreSQL's JSON refuses them), anything else unknown becomes a string."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist()) if value.size <= 4096 else f"array{list(value.shape)}"
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
