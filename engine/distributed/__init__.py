"""Beyond one machine: benchmark sweeps and training runs on a Ray cluster (``--on ray``, ``--on ray://HOST:PORT``).

- :mod:`.cluster` connects: ``ray`` starts a local cluster with ``ray.init``; ``ray://HOST:PORT`` (Ray Client) or
  ``HOST:PORT`` (the head's GCS address, from a machine that is itself a node) joins an existing one.
- :mod:`.ray_bench` runs a benchmark's queued (method, image) jobs as Ray actor calls, batched per method; the
  database stays the source of truth (the same rows as the queue path, claimed the same way).
- :mod:`.ddp` is data parallelism for the shared training loop (torch.distributed, gloo or NCCL), and
  :mod:`.ray_train` starts its ranks as Ray actors.

Ray is imported only when one of these runs: the rest of the engine does not need it.
"""
