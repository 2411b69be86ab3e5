"""Training on Ray: ``python -m engine train METHOD ... --on ray --workers N`` (or ``--on ray://HOST:PORT``).

N Ray actors each run the shared training loop (:func:`engine.train.loop.train`) as one rank of a
``torch.distributed`` process group -- gloo on CPU, NCCL when the actors have GPUs (``num_gpus=1`` each when the
cluster has GPUs) -- with :class:`engine.distributed.ddp.DataParallel` splitting every step's batch between them. Rank 0
listens on its node's address for the group, reads and writes the run folder (checkpoints, curves, export, model
card), and its result comes back; so the seed, resume (run the same command again), ``--max-seconds`` and the model
card are the single process's, and the card and ``run.json`` record the workers.

On a cluster of several machines ``--out`` must be a path that rank 0's node can write, ideally storage every node
mounts (rank 0 is placed on the driver's node when the driver is a node of the cluster), and ``--data`` a folder
every node can read (or ``synthetic``). A failing rank (an error, a killed process) fails the run: the others are
stopped; rerunning the command resumes from the last checkpoint.
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import IntrinsicLabError, ParameterError
from ..train.loop import TrainRequest, TrainResult
from .cluster import cluster_cpus, cluster_gpus, connect, forwarded_env


class TrainRank:
    """One Ray actor: one rank of the data-parallel group, running the shared loop."""

    def __init__(self, rank: int, world: int, threads: int | None):
        from ..threads import apply_thread_policy

        self.rank, self.world = rank, world
        apply_thread_policy(threads)

    def address(self) -> tuple[str, int]:
        """This node's address and a free port (rank 0's: where the group meets)."""
        import ray

        with socket.socket() as probe:
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def train(self, request: TrainRequest, master: tuple[str, int], backend: str, label: str) -> TrainResult | None:
        from ..train.loop import train
        from .ddp import DataParallel, init_group, leave_group

        init_group(self.rank, self.world, *master, backend=backend)
        try:
            return train(request, DataParallel(self.rank, self.world, backend=backend, label=label))
        finally:
            leave_group()


def train_on_ray(request: TrainRequest, *, address: str = "ray", workers: int = 1, threads: int | None = None,
                 gpus: bool | None = None) -> TrainResult:
    """Run ``request`` data-parallel on ``workers`` Ray actors; returns rank 0's result.

    ``threads``: torch threads (and reserved CPUs) per CPU rank, default the cluster's CPUs shared among the ranks.
    ``gpus``: one GPU per rank (default: when the cluster has at least ``workers`` GPUs and the device is not cpu).
    """
    if workers < 1:
        raise ParameterError(f"--workers must be at least 1, got {workers}")
    from ..train.recipe import get_recipe

    batch = int(get_recipe(request.method).config(request.overrides)["batch_size"])
    if batch < workers:
        raise ParameterError(f"each step's batch of {batch} is split between the workers: --workers {workers} needs "
                             f"batch_size ≥ {workers} (--set batch_size=...)")
    data = request.data if request.data in (None, "", "synthetic") else str(Path(request.data).resolve())
    request = replace(request, out=Path(request.out).resolve(), on=address, workers=workers, data=data)
    with connect(address) as ray:
        cpus, gpu_count = cluster_cpus(ray), cluster_gpus(ray)
        if gpus is None:
            gpus = gpu_count >= workers and str(request.device) != "cpu"
        if gpus and gpu_count < workers:
            raise ParameterError(f"{workers} GPU workers asked for, the Ray cluster has {gpu_count} GPU(s)")
        threads = threads or max(1, cpus // workers)
        needed = workers * (1 if gpus else threads)
        if needed > cpus:
            raise ParameterError(f"{workers} worker(s) × {threads} thread(s) need {needed} CPUs; the Ray cluster "
                                 f"has {cpus}: lower --workers or --threads")
        backend = "nccl" if gpus else "gloo"
        if gpus:
            request = replace(request, device="cuda")
        label = "Ray" if address in ("ray", "local") else f"Ray at {address}"
        actors = [_rank_actor(ray, rank, workers, threads, gpus) for rank in range(workers)]
        try:
            master = ray.get(actors[0].address.remote())
            futures = [a.train.remote(request, master, backend, label) for a in actors]
            pending = list(futures)
            while pending:  # the first failure stops the others (they would wait on it in a collective)
                done, pending = ray.wait(pending, num_returns=1)
                try:
                    ray.get(done[0])
                except ray.exceptions.RayTaskError as exc:
                    if isinstance(exc.cause, IntrinsicLabError):  # a user's error: its one line, not Ray's trace
                        raise exc.cause from None
                    raise
            return ray.get(futures[0])
        finally:
            for actor in actors:
                ray.kill(actor)


def _rank_actor(ray, rank: int, world: int, threads: int, gpus: bool) -> Any:
    options: dict[str, Any] = {"num_cpus": 1 if gpus else threads, "num_gpus": 1 if gpus else 0,
                               "runtime_env": {"env_vars": forwarded_env()}}
    if rank == 0:
        try:  # rank 0 writes the run folder: on the driver's machine when the driver is a node of the cluster
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            node = ray.get_runtime_context().get_node_id()
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=True)
        except Exception:  # noqa: BLE001 -- Ray Client drivers are no node: let Ray place it
            pass
    return ray.remote(TrainRank).options(**options).remote(rank, world, None if gpus else threads)
