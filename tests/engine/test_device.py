"""Device and precision resolution: explicit choices are honoured or refused with a reason, never emulated."""

from __future__ import annotations

import pytest
import torch

from engine.device import native_bfloat16, resolve_device, resolve_precision


def test_cpu_is_always_available():
    assert resolve_device("cpu") == torch.device("cpu")


def test_cuda_request_without_cuda_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        resolve_device("cuda")


def test_precision_names():
    cpu = torch.device("cpu")
    assert resolve_precision("float32", cpu) == torch.float32
    expected = torch.bfloat16 if native_bfloat16(cpu) else torch.float32
    assert resolve_precision("auto", cpu) == expected
    assert resolve_precision(None, cpu) == expected
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("float16", cpu)


def test_bfloat16_is_refused_where_it_would_be_emulated():
    meta = torch.device("meta")  # no device type but CPU and CUDA is known to compute bfloat16 natively
    assert not native_bfloat16(meta)
    with pytest.raises(ValueError, match="no native bfloat16"):
        resolve_precision("bfloat16", meta)
    assert resolve_precision("auto", meta) == torch.float32
