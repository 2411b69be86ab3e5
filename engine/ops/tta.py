"""Test-time augmentation by mirroring: a network's answer averaged with its answer on the mirrored image.

A decomposition network is not exactly equivariant to a left-right mirror, though the physics is: the mirrored
photo's albedo is the mirrored albedo. Running the network on both and averaging (the mirrored answer mirrored back)
removes part of its error for the price of a second forward pass. The two passes run one after the other, so the
peak memory is that of one pass -- unless the caller asks for ``concurrent=True``: on the CPU with two or more torch
threads, the passes then run at the same time in two threads, each with half of the process's torch threads. Two
independent passes never wait for each other, where the threads of one pass meet at every operation; beside other
busy processes a thread that loses its core stalls only its own pass (Ma et al. at 1 MP: see the README's busy-machine
table). The price is a second pass's activations in memory at once.

Layers that are logarithms or probabilities are averaged as they are; positive linear layers (``geometric``) are
averaged in the log domain (a geometric mean), so that neither pass's brightness scale dominates the other.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable, Mapping, Union

import torch

Outputs = Union[torch.Tensor, tuple, list, Mapping[str, torch.Tensor]]

MODES = ("flip", "none")
LOG_FLOOR = 1e-6


_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    with _POOL_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(2, thread_name_prefix="tta")
        return _POOL


def _both(forward: Callable[[torch.Tensor], Outputs], x: torch.Tensor) -> tuple[Outputs, Outputs]:
    """``forward(x)`` and ``forward(mirror(x))`` at the same time, each pass with half of the torch threads."""
    threads = torch.get_num_threads()
    share = max(1, threads // 2)
    grad = torch.is_grad_enabled()

    def one(t: torch.Tensor) -> Outputs:
        torch.set_num_threads(share)  # this thread's intra-op team
        with torch.set_grad_enabled(grad):
            return forward(t)

    try:
        second = _pool().submit(one, _mirror(x))
        first = one(x)
        return first, second.result()
    finally:
        torch.set_num_threads(threads)


def _mirror(t: torch.Tensor) -> torch.Tensor:
    return torch.flip(t, dims=(-1,))


def _combine(a: torch.Tensor, b: torch.Tensor, geometric: bool) -> torch.Tensor:
    if geometric:
        return torch.sqrt(a.clamp(min=LOG_FLOOR) * b.clamp(min=LOG_FLOOR))
    return 0.5 * (a + b)


def mirror_averaged(forward: Callable[[torch.Tensor], Outputs], x: torch.Tensor, mode: str = "flip",
                    geometric: Iterable = (), concurrent: bool = False) -> Outputs:
    """``forward(x)`` averaged with ``mirror(forward(mirror(x)))`` (``mode="flip"``), or ``forward(x)`` alone
    (``"none"``).

    ``forward`` returns a tensor, a tuple/list of tensors or a dict of tensors, each (..., H, W) aligned with ``x``'s
    last two axes; entries that are not tensors of x's width are passed through from the first pass. ``geometric``
    names the dict keys or tuple positions to average geometrically (positive linear layers).

    >>> net = lambda t: {"log": t.cumsum(-1), "n": 3}
    >>> out = mirror_averaged(net, torch.tensor([[1.0, 2.0]]))
    >>> out["log"].tolist(), out["n"]
    ([[2.0, 2.5]], 3)
    """
    if mode not in MODES:
        raise ValueError(f"test-time augmentation {mode!r} is not one of {list(MODES)}")
    if mode == "none":
        return forward(x)
    if (concurrent and x.device.type == "cpu" and torch.get_num_threads() >= 2
            and not torch.is_autocast_enabled("cpu")):  # autocast is per thread: such callers stay sequential
        first, second = _both(forward, x)
    else:
        first = forward(x)
        second = forward(_mirror(x))
    geometric = set(geometric)
    width = x.shape[-1]

    def merge(key, a, b):
        if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.ndim >= 2 and a.shape[-1] == width:
            return _combine(a, _mirror(b), key in geometric)
        return a

    if isinstance(first, torch.Tensor):
        return merge(0, first, second)
    if isinstance(first, Mapping):
        return {k: merge(k, v, second[k]) for k, v in first.items()}
    return type(first)(merge(i, a, b) for i, (a, b) in enumerate(zip(first, second)))


def tta_param():
    """The ``tta`` setting of a method that uses :func:`mirror_averaged` (the same wording everywhere)."""
    from ..registry import ParamSpec

    return ParamSpec("tta", "flip", "test-time augmentation: 'flip' averages the network's answer with its answer "
                                    "on the mirrored photo (two passes, lower error on MIT; see the model card), "
                                    "'none' runs one pass", str, choices=MODES)
