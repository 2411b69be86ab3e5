"""Reading settings from environment variables (standard library only: the CLI's client imports it before torch)."""

from __future__ import annotations

import os


def positive_number(name: str, default: float) -> float:
    """``$name`` as a positive number, ``default`` when unset or blank; ValueError (naming the variable) otherwise."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value
