"""Device resolution in one place: CUDA when available, else CPU; overridable.

Override order: explicit argument → environment variable ``INTRINSIC_LAB_DEVICE`` → auto.
Nothing here touches CUDA at import time.
"""

from __future__ import annotations

import os

import torch

ENV_VAR = "INTRINSIC_LAB_DEVICE"


def resolve_device(preference: str | None = None) -> torch.device:
    """Return the torch device to run on.

    ``preference`` is ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; ``None`` reads the environment.
    Asking for CUDA where there is none raises ``RuntimeError`` rather than silently falling back.
    """
    pref = (preference or os.environ.get(ENV_VAR) or "auto").strip().lower()
    if pref == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {pref!r} requested but CUDA is not available on this machine")
    return device


def describe_device(device: torch.device) -> str:
    """A short human label, e.g. ``cpu`` or ``cuda:0 (NVIDIA H100)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return "cpu"


#: Names accepted for a compute precision, as the CLI and method parameters spell them.
PRECISIONS = ("auto", "float32", "bfloat16")


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions in hardware (not emulated, which would be slower than float32):
    CPUs with AVX512-BF16 or AMX through oneDNN, CUDA GPUs from Ampere on."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False))
    if device.type == "cpu":
        try:
            return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
                        and (torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()))
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(preference: str | None, device: torch.device) -> torch.dtype:
    """The dtype to compute in: ``float32``; ``bfloat16`` (refused where the hardware lacks it, since emulation is
    slower than float32); ``auto`` = bfloat16 on a CPU with native support (RetinexNet: 2.4× faster on an AVX512-BF16
    CPU), else float32 (on CUDA, float32 with TF32 is already fast and closer to the reference)."""
    pref = (preference or "auto").strip().lower()
    if pref not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {preference!r}")
    if pref == "float32":
        return torch.float32
    if pref == "bfloat16":
        if not native_bfloat16(device):
            raise ValueError(f"bfloat16 was asked for, but {device.type} here has no native bfloat16 support "
                             "(it would be emulated, slower than float32)")
        return torch.bfloat16
    return torch.bfloat16 if device.type == "cpu" and native_bfloat16(device) else torch.float32


def precision_name(precision: torch.dtype) -> str:
    """``torch.bfloat16`` → ``"bfloat16"``, as results and reports record it."""
    return str(precision).removeprefix("torch.")


def autocast(device: torch.device | str, precision: torch.dtype):
    """Autocast to ``precision`` on ``device`` (a no-op context for float32): the one place runs and training switch
    to reduced precision, so weights, optimisers and anything outside stay float32."""
    device_type = device if isinstance(device, str) else device.type
    return torch.autocast(device_type, dtype=precision, enabled=precision != torch.float32)
