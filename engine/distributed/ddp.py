"""Data parallelism for the shared training loop: N replicas of one model, each step's batch split between them.

The loop (:func:`engine.train.loop.train`) takes one of these; the default, :class:`SingleProcess`, does
nothing, so the single-process path is unchanged. :class:`DataParallel` is one rank of a ``torch.distributed``
process group (gloo on CPU, NCCL on CUDA; :mod:`.ray_train` starts the ranks as Ray actors). What it does each step:

* **the same global batch**: every rank draws the step's whole batch from the seeded stream (the batch is a pure
  function of seed and step) and keeps its share, samples ``rank, rank + N, ...``; so the hyper-parameters mean the
  same as on one process, and N workers do one process's step in about 1/N of the time;
* **the global gradient**: each rank's loss is weighted by its share (``n_rank · N / B``) and the gradients are
  averaged over the ranks (one all-reduce of all gradients of the optimiser about to step), which gives exactly the
  gradient of the batch-mean loss over the global batch, for any loss that is a mean over samples -- the same
  arithmetic as PyTorch's DistributedDataParallel, done after the backward pass so that recipes with several
  optimisers or sub-networks (GANs, RetinexNet's phases) need nothing special;
* **one model**: the replicas start from rank 0's parameters and buffers, and rank 0's buffers (BatchNorm running
  statistics) are broadcast after each step, as DDP does; the loss scalars logged are the global batch's.

Where it differs from one process, and why: a layer that mixes samples of a batch (BatchNorm in training mode, a
loss with in-batch negatives) sees only its rank's share, so its statistics are those of ``B/N`` samples; gradients
are summed in another order (float rounding). With N = 1 nothing is split or reduced: the arithmetic is the single
process's. Rank 0 alone writes the run folder (checkpoints, curves, export, model card) and validates.
"""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping

import torch


class SingleProcess:
    """No parallelism: the plain single-process run (every method leaves its input as it is)."""

    rank, world = 0, 1
    is_main = True

    def describe(self) -> dict[str, Any] | None:
        return None

    def shard(self, batch: Mapping[str, torch.Tensor]) -> tuple[Mapping[str, torch.Tensor], float]:
        """(this rank's share of the global batch, the weight of its loss)."""
        return batch, 1.0

    def average_gradients(self, parameters: Iterable[torch.nn.Parameter]) -> None:
        pass

    def sync_state(self, model: torch.nn.Module, buffers_only: bool = False) -> None:
        pass

    def reduce_mean(self, values: Mapping[str, float], weight: float) -> dict[str, float]:
        return dict(values)

    def broadcast(self, obj: Any) -> Any:
        return obj

    def decide(self, flag: bool) -> bool:
        """Rank 0's decision, seen by every rank (e.g. stop at the time budget)."""
        return flag



class DataParallel(SingleProcess):
    """One rank of an initialised ``torch.distributed`` group (see :func:`init_group`)."""

    def __init__(self, rank: int, world: int, *, backend: str, label: str = "torch.distributed"):
        self.rank, self.world, self.backend, self.label = rank, world, backend, label
        self.is_main = rank == 0

    def describe(self) -> dict[str, Any]:
        return {"on": self.label, "workers": self.world, "backend": self.backend}

    def shard(self, batch):
        sizes = {int(v.shape[0]) for v in batch.values() if torch.is_tensor(v) and v.dim()}
        if len(sizes) != 1:
            raise ValueError(f"cannot split a batch whose tensors disagree on the batch size: {sorted(sizes)}")
        size = sizes.pop()
        if size < self.world:
            raise ValueError(f"a batch of {size} cannot be split across {self.world} workers: raise batch_size")
        share = {k: v[self.rank::self.world] if torch.is_tensor(v) and v.dim() else v for k, v in batch.items()}
        count = len(range(self.rank, size, self.world))
        return share, count * self.world / size

    def average_gradients(self, parameters):
        import torch.distributed as dist
        from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

        grads = [p.grad for p in parameters if p.grad is not None]
        if self.world == 1 or not grads:
            return
        by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
        for grad in grads:
            by_dtype.setdefault(grad.dtype, []).append(grad)
        for group in by_dtype.values():
            flat = _flatten_dense_tensors(group)
            dist.all_reduce(flat)
            flat /= self.world
            for grad, reduced in zip(group, _unflatten_dense_tensors(flat, group)):
                grad.copy_(reduced)

    def sync_state(self, model, buffers_only=False):
        import torch.distributed as dist

        if self.world == 1:
            return
        tensors = list(model.buffers()) if buffers_only else [*model.parameters(), *model.buffers()]
        with torch.no_grad():
            for tensor in tensors:
                dist.broadcast(tensor.data, src=0)

    def reduce_mean(self, values, weight):
        import torch.distributed as dist

        if self.world == 1:
            return dict(values)
        keys = list(values)
        tensor = torch.tensor([float(values[k]) * weight for k in keys], dtype=torch.float64,
                              device=self._device())
        dist.all_reduce(tensor)
        return {k: float(v) / self.world for k, v in zip(keys, tensor.tolist())}

    def broadcast(self, obj):
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0, device=self._device())
        return box[0]

    def decide(self, flag):
        import torch.distributed as dist

        tensor = torch.tensor([1.0 if flag and self.is_main else 0.0], device=self._device())
        dist.all_reduce(tensor)
        return bool(tensor.item() > 0)

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def init_group(rank: int, world: int, address: str, port: int, *, backend: str, timeout_s: float = 600.0) -> None:
    """Join the process group of ``world`` ranks whose rank 0 listens on ``address:port``."""
    import torch.distributed as dist

    dist.init_process_group(backend, init_method=f"tcp://{address}:{port}", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))


def leave_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
