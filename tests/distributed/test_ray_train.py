"""Training on a real local Ray cluster: one Ray worker = one process, two workers export, resume and average the
global batch's gradient."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import load_file

from helpers.tiny_train import TINY, write_tiny_synth

pytest.importorskip("ray", reason="ray is not installed (pip install 'ray[client]>=2.60,<2.61')")

ARGS = [*TINY, "--device", "cpu"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_tiny_synth(tmp_path_factory.mktemp("synth") / "ds")


def _weights(run):
    return load_file(str(run / "export" / "cgintrinsics-trained.safetensors"))


def test_one_ray_worker_trains_exactly_the_single_process_weights(ray_cluster, synth, tmp_path):
    from engine.cli import main

    common = ["train", "cgintrinsics", "--data", str(synth), "--steps", "3", "--seed", "7", *ARGS]
    assert main([*common, "--out", str(tmp_path / "plain")]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--on", "ray", "--workers", "1"]) == 0
    plain, on_ray = _weights(tmp_path / "plain"), _weights(tmp_path / "ray")
    assert plain.keys() == on_ray.keys()
    assert all(torch.equal(plain[k], on_ray[k]) for k in plain)  # the same arithmetic: bit for bit
    record = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert record["data_parallel"] == {"on": "Ray", "workers": 1, "backend": "gloo"}


def test_two_ray_workers_export_a_card_and_resume_like_one_uninterrupted_run(ray_cluster, synth, tmp_path, capsys):
    from engine.cli import main

    common = ["train", "cgintrinsics", "--data", str(synth), "--set", "checkpoint_every=2", *ARGS,
              "--on", "ray", "--workers", "2"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main([*common, "--steps", "4", "--out", str(straight)]) == 0
    summary = json.loads(capsys.readouterr().out)
    card = (straight / "export" / "cgintrinsics-trained.md").read_text()
    assert summary["sha256"] in card and "| data parallel | Ray: 2 worker(s), torch.distributed gloo" in card
    assert "--on ray --workers 2" in card and "| steps | 4 |" in card
    assert json.loads((straight / "curves.json").read_text())["validation"][-1]["step"] == 4

    assert main([*common, "--steps", "2", "--out", str(resumed)]) == 0
    assert main([*common, "--steps", "4", "--out", str(resumed)]) == 0
    assert json.loads((resumed / "run.json").read_text())["resumed_from_step"] == 2
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def _rank_gradients(rank, world, port, batch):
    """One Ray task = one rank: its share of the batch, the loop's weighting and gradient average."""
    from engine.distributed.ddp import DataParallel, init_group, leave_group

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    init_group(rank, world, "127.0.0.1", port, backend="gloo")
    try:
        parallel = DataParallel(rank, world, backend="gloo")
        share, weight = parallel.shard(batch)
        loss = ((model(share["x"]) - share["y"]) ** 2).mean() * weight
        loss.backward()
        parallel.average_gradients(model.parameters())
        return [p.grad.clone() for p in model.parameters()]
    finally:
        leave_group()


@pytest.mark.parametrize("size", [4, 3])  # 3: shares of 2 and 1 sample
def test_two_ray_workers_average_to_the_global_batch_gradient(ray_cluster, size):
    import socket

    ray = ray_cluster
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    generator = torch.Generator().manual_seed(1)
    batch = {"x": torch.rand(size, 3, 8, 8, generator=generator), "y": torch.rand(size, 3, 8, 8, generator=generator)}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = ray.remote(num_cpus=1)(_rank_gradients)
    ranks = ray.get([task.remote(rank, 2, port, batch) for rank in range(2)])

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(4, 3, 1))
    ((model(batch["x"]) - batch["y"]) ** 2).mean().backward()
    for grads in ranks:
        for param, grad in zip(model.parameters(), grads):
            assert torch.allclose(grad, param.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.cuda
def test_on_a_gpu_the_ranks_use_nccl(cuda_device, synth, tmp_path, request):
    from engine.cli import main

    ray_cluster = request.getfixturevalue("ray_cluster")  # after the skip without CUDA: no cluster started for it
    if not ray_cluster.cluster_resources().get("GPU"):
        pytest.skip("the local Ray cluster found no GPU")
    assert main(["train", "cgintrinsics", "--data", str(synth), "--steps", "2", *TINY, "--device", "cuda",
                 "--out", str(tmp_path / "gpu"), "--on", "ray", "--workers", "1"]) == 0
    record = json.loads((tmp_path / "gpu" / "run.json").read_text())
    assert record["data_parallel"]["backend"] == "nccl" and record["device"].startswith("cuda")
