"""Resource budgets, checked from file headers *before* anything is decoded.

Every submission (CLI run, dashboard upload, worker job) is priced from its headers alone (frame count × width ×
height) and refused with the numbers when it passes a budget; nothing is attempted that the server cannot afford.

=================================  ==========================================================  ==============
environment variable               what it bounds                                              default
=================================  ==========================================================  ==============
``INTRINSIC_LAB_MAX_PIXELS``       pixels of one frame (decompression bombs)                   64 MP
``INTRINSIC_LAB_MAX_TOTAL_PIXELS`` decoded pixels of one submission, all frames together       96 MP
``INTRINSIC_LAB_MAX_FRAMES``       frames of one submission (animations, zips, videos, files)  400
``INTRINSIC_LAB_MAX_FILE_BYTES``   bytes of one input file (CLI: checked before reading)       256 MiB
``INTRINSIC_LAB_MAX_JOB_MEMORY``   memory one job may need: total pixels × the method's        2 GiB  
                                   declared ``bytes_per_pixel``
=================================  ==========================================================  ==============

Sizes accept suffixes (``512M``, ``8G``). A server with more memory raises ``INTRINSIC_LAB_MAX_JOB_MEMORY``; the
default keeps one job (plus the process itself, ~0.4 GB with torch) under 2 GB.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping

from .errors import ImageTooLargeError

MAX_PIXELS_ENV = "INTRINSIC_LAB_MAX_PIXELS"
MAX_TOTAL_PIXELS_ENV = "INTRINSIC_LAB_MAX_TOTAL_PIXELS"
MAX_FRAMES_ENV = "INTRINSIC_LAB_MAX_FRAMES"
MAX_FILE_BYTES_ENV = "INTRINSIC_LAB_MAX_FILE_BYTES"
MAX_JOB_MEMORY_ENV = "INTRINSIC_LAB_MAX_JOB_MEMORY"

DEFAULT_MAX_PIXELS = 64_000_000
DEFAULT_MAX_TOTAL_PIXELS = 96_000_000
DEFAULT_MAX_FRAMES = 400
DEFAULT_MAX_FILE_BYTES = 256 << 20
DEFAULT_MAX_JOB_MEMORY = 2 << 30  # 2 GiB: a 12-megapixel photo through JieP (160 bytes per pixel) fits

#: Longest side of the previews the dashboard decodes (it never decodes a full-size image).
PREVIEW_SIDE = 1024
#: Frames of a sequence the dashboard previews (the rest are only counted from their headers).
PREVIEW_FRAMES = 8
#: Largest image the dashboard decodes for a preview (JPEG excepted: it decodes at 1/8 scale from the DCT). Above it
#: the page shows a placeholder; the worker decodes the file (and reports any corruption as the job's error).
PREVIEW_DECODE_PIXELS = 16_000_000

_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class BudgetError(ImageTooLargeError):
    """A submission would cost more than a configured budget (pixels, frames, bytes or memory)."""


def parse_size(text: str) -> int:
    """``"1536M"`` → 1610612736; plain integers are bytes (or pixels/frames for those budgets)."""
    value = text.strip().lower().removesuffix("b").removesuffix("i")
    scale = _SUFFIXES.get(value[-1:], 1) if value else 1
    if scale != 1:
        value = value[:-1]
    number = float(value)
    if not number >= 0 or number == float("inf"):
        raise ValueError(f"not a size: {text!r}")
    return int(number * scale)


def _env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return parse_size(text)
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    max_pixels: int
    max_total_pixels: int
    max_frames: int
    max_file_bytes: int
    max_job_memory: int


def limits() -> Limits:
    """The budgets in force now (read from the environment on every call, so tests and servers can set them)."""
    return Limits(
        max_pixels=_env(MAX_PIXELS_ENV, DEFAULT_MAX_PIXELS),
        max_total_pixels=_env(MAX_TOTAL_PIXELS_ENV, DEFAULT_MAX_TOTAL_PIXELS),
        max_frames=_env(MAX_FRAMES_ENV, DEFAULT_MAX_FRAMES),
        max_file_bytes=_env(MAX_FILE_BYTES_ENV, DEFAULT_MAX_FILE_BYTES),
        max_job_memory=_env(MAX_JOB_MEMORY_ENV, DEFAULT_MAX_JOB_MEMORY),
    )


def megapixels(pixels: float) -> str:
    return f"{pixels / 1e6:.1f} MP"


def human_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def check_file_size(size: int, name: str) -> None:
    cap = limits().max_file_bytes
    if size > cap:
        raise BudgetError(f"{name}: the file is {human_bytes(size)}, above the limit of {human_bytes(cap)} "
                          f"(set {MAX_FILE_BYTES_ENV} to raise it)")


def check_frames(frame_count: int, width: int, height: int, label: str) -> None:
    """Refuse a submission of ``frame_count`` frames of ``width`` × ``height`` over the frame or pixel budgets."""
    lim = limits()
    if width * height > lim.max_pixels:
        raise BudgetError(f"{label}: a frame of {width}×{height} = {megapixels(width * height)} is above the limit of "
                          f"{megapixels(lim.max_pixels)} per frame (set {MAX_PIXELS_ENV} to raise it)")
    if frame_count > lim.max_frames:
        raise BudgetError(f"{label}: {frame_count} frames, above the limit of {lim.max_frames} frames per submission "
                          f"(set {MAX_FRAMES_ENV} to raise it)")
    total = frame_count * width * height
    if total > lim.max_total_pixels:
        raise BudgetError(
            f"{label}: {frame_count} frame(s) of {width}×{height} = {megapixels(total)} to decode, above the limit "
            f"of {megapixels(lim.max_total_pixels)} per submission (set {MAX_TOTAL_PIXELS_ENV} to raise it)")


#: Bytes per pixel that stay at full size when a method tiles: the decoded input and the output layers (float32).
FULL_SIZE_BYTES_PER_PIXEL = 64


@dataclass(frozen=True)
class DownscaledMemory:
    """A ``MethodSpec.memory`` for a method that runs its network on the image area-downscaled to a longest side of
    ``params[side_param]`` (never upscaled): ``full_bytes`` per input pixel (the decoded input, full-size outputs)
    plus ``network_bytes`` per pixel the network sees. Both are measured with ``scripts/method_memory.py --size
    4000x3000`` at two values of the parameter; a refusal names the parameter."""

    side_param: str
    full_bytes: float
    network_bytes: float

    def __call__(self, params: Mapping[str, Any], frames: int, width: int, height: int) -> int:
        scale = min(1.0, int(params[self.side_param]) / max(width, height, 1))
        network = round(width * scale) * round(height * scale)
        return int(frames * (self.full_bytes * width * height + self.network_bytes * network))


def job_memory(spec, frame_count: int, width: int, height: int, params: Mapping[str, Any] | None = None) -> int:
    """Bytes ``spec`` is expected to need on ``frame_count`` frames of ``width`` × ``height`` with ``params`` (the
    defaults where not given): its ``memory`` function where it declares one, else its declared ``bytes_per_pixel``
    over the whole frame, or, for a method that tiles (``working_pixels``), over one tile plus the full-size
    arrays."""
    if getattr(spec, "memory", None) is not None:
        return int(spec.memory(spec.resolve_params(params), frame_count, width, height))
    pixels = width * height
    per_pixel = max(1, int(getattr(spec, "bytes_per_pixel", 400)))
    working = getattr(spec, "working_pixels", None)
    if working and pixels > working:
        return int(frame_count * (working * per_pixel + (pixels - working) * FULL_SIZE_BYTES_PER_PIXEL))
    return int(frame_count * pixels * per_pixel)


def check_job_memory(spec, frame_count: int, width: int, height: int,
                     params: Mapping[str, Any] | None = None) -> None:
    """Refuse running ``spec`` at this size (with ``params``) when its declared cost passes the job memory budget."""
    need = job_memory(spec, frame_count, width, height, params)
    cap = limits().max_job_memory
    if need > cap and getattr(spec, "memory", None) is not None:
        frames = f"{frame_count} frames" if frame_count > 1 else "one frame"
        side = getattr(spec.memory, "side_param", None)  # a DownscaledMemory names its setting
        setting = f" with {side}={spec.resolve_params(params)[side]}" if side else ""
        advice = f"lower {side}, or set" if side else "set"
        raise BudgetError(
            f"{spec.name} would need about {human_bytes(need)} for {frames} of {width}×{height}{setting}, above "
            f"the budget of {human_bytes(cap)} per job ({advice} {MAX_JOB_MEMORY_ENV} to raise it)")
    if need > cap:
        frames = f"{frame_count} frames" if frame_count > 1 else "one frame"
        per_pixel = max(1, int(getattr(spec, "bytes_per_pixel", 400)))
        working = getattr(spec, "working_pixels", None)
        if working and cap / frame_count > working * per_pixel:
            fit = working + (cap / frame_count - working * per_pixel) / FULL_SIZE_BYTES_PER_PIXEL
            cost = f"{per_pixel} bytes per pixel of a tile, {FULL_SIZE_BYTES_PER_PIXEL} per pixel beyond"
        else:
            fit = cap / per_pixel / max(1, frame_count)
            cost = f"{per_pixel} bytes per pixel"
        raise BudgetError(
            f"{spec.name} would need about {human_bytes(need)} for {frames} of {width}×{height} ({cost}), above "
            f"the budget of {human_bytes(cap)} per job (set {MAX_JOB_MEMORY_ENV} to raise it); at most "
            f"{megapixels(fit)} per frame fits")
