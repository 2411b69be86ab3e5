"""Shared test fixtures. Tests run on the CPU; CUDA tests skip when there is no GPU; tests that need the
shared data folder (``../shared`` beside the checkout) skip with a reason when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("INTRINSIC_LAB_SHARED", REPO.parent / "shared"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED} (set INTRINSIC_LAB_SHARED)")
    return SHARED


@pytest.fixture
def cuda_device() -> torch.device:
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available on this machine")
    return torch.device("cuda")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """An isolated data folder (database + artifacts) for one test."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("INTRINSIC_LAB_DATA", str(path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return path
