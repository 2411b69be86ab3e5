"""engine.models: one loader and a bounded least-recently-used cache of learned networks."""

import torch

from engine import models


def _builder(calls):
    def build(state, resolved):
        calls.append(resolved.path.name)
        return torch.nn.Linear(1, 1), {"built_from": resolved.path.name}
    return build


def test_load_once_then_call(monkeypatch):
    from engine.weights import ensure_declarations_loaded

    ensure_declarations_loaded()
    models.clear_models()
    monkeypatch.setenv(models.CACHE_ENV, "1")
    calls = []
    first, info = models.load_model("cgintrinsics", None, torch.device("cpu"), _builder(calls))
    again, _ = models.load_model("cgintrinsics", "mit", torch.device("cpu"), _builder(calls))
    assert again is first and calls == ["cgintrinsics-mit.safetensors"]  # the default is the first set
    assert not first.training and info["weights"]["source"] == "shipped" and info["built_from"] == calls[0]
    models.load_model("retinexnet", None, torch.device("cpu"), _builder(calls))
    assert [key[0] for key in models.cached_models()] == ["retinexnet"]  # bounded: the older one went
    models.load_model("cgintrinsics", None, torch.device("cpu"), _builder(calls))
    assert len(calls) == 3
    models.clear_models()
    assert models.cached_models() == []
