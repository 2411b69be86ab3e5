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
