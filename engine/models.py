"""Load once, then call: the one loader and cache of learned methods' networks.

A learned method's runner asks for its network with::

    from ..models import load_model

    model, info = load_model("cgintrinsics", ctx.weights, ctx.device, model_from_state)

``load_model`` resolves the weight set (a name -- shipped, official once imported, or installed by
``python -m engine train … --install`` -- a file path, or ``None`` for the method's default) with
:func:`engine.weights.resolve_weights`, which verifies the sha256; reads the state dict safely
(:func:`engine.weights.load_state_dict`); calls ``builder(state, resolved)`` to make the network; puts it in eval mode
on the device; and keeps it in a small least-recently-used cache keyed by (method, file, sha256, device). The next
call with the same weights and device returns the same module without touching the disk.

``builder(state, resolved)`` returns the ``nn.Module`` (with the state loaded), or ``(module, extra_info)`` where
``extra_info`` is merged into the returned ``info`` (e.g. RetinexNet noting that half its weights came from another
set). ``info`` always holds ``"weights": resolved.describe()`` -- put it into ``MethodResult.info`` so every result
says what produced it.

The cache holds at most ``INTRINSIC_LAB_MODEL_CACHE`` networks (default 2: the dashboard's worker switches weights
rarely, and memory matters more). :func:`clear_models` empties it (tests, or after installing new weights under a
name already loaded -- a new file has a new sha256, so it is a new key anyway).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Callable

from .weights import ResolvedWeights, load_state_dict, resolve_weights

CACHE_ENV = "INTRINSIC_LAB_MODEL_CACHE"
_CACHE: OrderedDict[tuple, tuple[Any, dict[str, Any]]] = OrderedDict()
_LOCK = threading.Lock()

Builder = Callable[[dict, ResolvedWeights], Any]


def cache_size() -> int:
    try:
        return max(1, int(os.environ.get(CACHE_ENV, "2")))
    except ValueError:
        return 2


def load_model(method: str, weights: str | None, device, builder: Builder) -> tuple[Any, dict[str, Any]]:
    """(network on ``device`` in eval mode, info) for ``method`` with ``weights``; built once, then cached."""
    resolved = resolve_weights(method, weights)
    key = (method, str(resolved.path), resolved.sha256, str(device))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        built = builder(load_state_dict(resolved.path), resolved)
        model, extra = built if isinstance(built, tuple) else (built, {})
        entry = (model.eval().to(device), {"weights": resolved.describe(), **extra})
        _CACHE[key] = entry
        while len(_CACHE) > cache_size():
            _CACHE.popitem(last=False)
        return entry


def cached_models() -> list[tuple]:
    """The keys (method, path, sha256, device) held now, least recently used first."""
    with _LOCK:
        return list(_CACHE)


def clear_models() -> None:
    with _LOCK:
        _CACHE.clear()


def load_network(method: str, weights: str | None, device, from_state: Callable[[dict], Any]) -> tuple[Any, dict]:
    """:func:`load_model` for a network built from its state dict alone: ``(network, weights description)``."""
    model, info = load_model(method, weights, device, lambda state, resolved: from_state(state))
    return model, info["weights"]
