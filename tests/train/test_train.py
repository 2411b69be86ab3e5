"""The shared training loop end to end on a tiny CGIntrinsics (CPU, tiny renders), plus its building blocks."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from engine.train.data import Augment, BatchStream
from engine.train.loop import phase_steps
from engine.train.recipe import Phase, TrainingRecipe, get_recipe

from helpers.tiny_train import TINY, write_tiny_synth


@pytest.fixture(scope="module")
def synth_folder(tmp_path_factory):
    return write_tiny_synth(tmp_path_factory.mktemp("synth") / "ds")


def _losses(run_dir):
    with (run_dir / "metrics.csv").open() as handle:
        return [float(r["loss"]) for r in csv.DictReader(handle)]


def test_tiny_run_lowers_the_loss_exports_a_card_and_verifies(synth_folder, tmp_path, data_dir, capsys):
    from engine.cli import main

    run = tmp_path / "run"
    code = main(["train", "cgintrinsics", "--data", str(synth_folder), "--steps", "24", "--out", str(run),
                 "--device", "cpu", "--name", "tiny", "--install", "--log-every", "1", *TINY])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    losses = _losses(run)
    assert len(losses) == 24
    assert np.mean(losses[-4:]) < 0.7 * np.mean(losses[:2]), losses
    weights_file = run / "export" / "cgintrinsics-tiny.safetensors"
    state = load_file(str(weights_file))
    assert "encoder.0.0.weight" in state and state["encoder.0.0.weight"].shape[0] == 4
    card = (run / "export" / "cgintrinsics-tiny.md").read_text()
    assert summary["sha256"] in card and "--steps 24" in card and "| steps | 24 |" in card
    assert "albedo_simse" in card and "data licence" in card
    curves = json.loads((run / "curves.json").read_text())
    assert len(curves["train"]) == 24 and curves["validation"][-1]["step"] == 24
    # Installed: selectable by name, verified, and a flipped byte is caught.
    from engine.weights import resolve_weights, weight_sets_for

    assert "tiny" in [ws.name for ws in weight_sets_for("cgintrinsics")]
    resolved = resolve_weights("cgintrinsics", "tiny")
    assert resolved.sha256 == summary["sha256"]
    assert main(["weights", "verify", "cgintrinsics"]) == 0
    data = bytearray(resolved.path.read_bytes())
    data[len(data) // 2] ^= 0x10
    resolved.path.write_bytes(bytes(data))
    assert main(["weights", "verify", "cgintrinsics"]) == 1


def test_resumed_run_matches_an_uninterrupted_one(synth_folder, tmp_path):
    from engine.cli import main

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    common = ["--data", str(synth_folder), "--device", "cpu", "--set", "checkpoint_every=2", *TINY]
    assert main(["train", "cgintrinsics", "--steps", "4", "--out", str(straight), *common]) == 0
    assert main(["train", "cgintrinsics", "--steps", "2", "--out", str(resumed), *common]) == 0
    assert main(["train", "cgintrinsics", "--steps", "4", "--out", str(resumed), *common]) == 0
    assert json.loads((resumed / "run.json").read_text())["resumed_from_step"] == 2
    a = load_file(str(straight / "export" / "cgintrinsics-trained.safetensors"))
    b = load_file(str(resumed / "export" / "cgintrinsics-trained.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key


def test_unknown_hyper_parameter_is_a_user_error(tmp_path, capsys):
    from engine.cli import main

    assert main(["train", "cgintrinsics", "--out", str(tmp_path), "--set", "nope=1"]) == 2
    assert "unknown hyper-parameter 'nope'" in capsys.readouterr().err


def test_phase_steps_split_by_weight():
    assert phase_steps([Phase("decom"), Phase("relight")], 10) == [5, 5]
    assert phase_steps([Phase("a", 3.0), Phase("b", 1.0)], 8) == [6, 2]
    assert phase_steps([Phase("a", 1.0), Phase("b", 1.0)], 1) == [1, 1]


def test_config_coerces_overrides_by_default_type():
    config = get_recipe("cgintrinsics").config({"lr": "1e-3", "batch_size": "3", "mit_dir": "x"})
    assert config["lr"] == 1e-3 and config["batch_size"] == 3 and config["mit_dir"] == "x"
    with pytest.raises(KeyError):
        TrainingRecipe().config({"nope": 1})


def test_batch_stream_is_a_pure_function_of_seed_and_step():
    data = [{"image": torch.full((3, 8, 8), float(i))} for i in range(5)]
    augment = Augment(crop=4, exposure=None)
    a, b = BatchStream(data, 2, 7, augment), BatchStream(data, 2, 7, augment)
    assert torch.equal(a.batch(3)["image"], b.batch(3)["image"])
    assert torch.equal(a.batch(1)["image"], BatchStream(data, 2, 7, augment).batch(1)["image"])
    seen = torch.cat([a.batch(s)["image"][:, 0, 0, 0] for s in range(5)])  # two epochs of 5
    assert sorted(seen[:5].tolist()) == [0, 1, 2, 3, 4]


def test_augment_keeps_image_equal_albedo_times_shading():
    gen = torch.Generator().manual_seed(0)
    albedo, shading = torch.rand(3, 16, 16, generator=gen), torch.rand(1, 16, 16, generator=gen)
    sample = {"image": albedo * shading, "albedo": albedo, "shading": shading,
              "normals": torch.nn.functional.normalize(torch.randn(3, 16, 16, generator=gen), dim=0)}
    augment = Augment(crop=12, flip=True, rotate=True, exposure=(0.5, 2.0), photometric=("image",),
                      follow_exposure=("shading",))
    for seed in range(6):
        out = augment(sample, np.random.default_rng(seed))
        assert out["image"].shape == (3, 12, 12)
        assert torch.allclose(out["image"], out["albedo"] * out["shading"], atol=1e-6)
        assert torch.allclose(out["normals"].norm(dim=0), torch.ones(12, 12), atol=1e-5)


def test_mit_layout_reads_16_bit(shared_dir):
    from engine.train.data import MITIntrinsic

    mit = MITIntrinsic(shared_dir / "data" / "mit-intrinsic", objects=["apple"], max_side=64)
    sample = mit[0]
    assert sample["image"].shape[0] == 3 and sample["shading"].shape[0] == 1
    values = torch.unique(sample["image"])
    assert len(values) > 256  # 16-bit precision survived the read


def test_a_training_process_runs_as_background_work(synth_folder, tmp_path, data_dir):
    """`python -m engine train` (its own process) lowers itself to SCHED_IDLE; called in-process it leaves the
    caller's priority alone (this test process stays SCHED_OTHER)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {k: v for k, v in os.environ.items() if k != "INTRINSIC_LAB_BACKGROUND"}
    proc = subprocess.run([sys.executable, "-m", "engine", "train", "cgintrinsics", "--data", str(synth_folder),
                           "--steps", "2", "--out", str(tmp_path / "run"), "--device", "cpu", *TINY],
                          capture_output=True, text=True, cwd=repo, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["cpu_priority"] == "idle"
    assert os.sched_getscheduler(0) == os.SCHED_OTHER


def test_ema_update_follows_the_warm_up_decay():
    from engine.train.loop import ema_update

    update = ema_update(0.9)
    averaged, counter = [torch.zeros(3)], [torch.tensor([5])]
    update(averaged, [torch.ones(3)], torch.tensor(0))  # n=0: decay min(0.9, 1/10) = 0.1
    assert torch.allclose(averaged[0], torch.full((3,), 0.9))
    update(averaged, [torch.full((3,), 2.0)], torch.tensor(100))  # n=100: the full decay 0.9
    assert torch.allclose(averaged[0], torch.full((3,), 0.9 * 0.9 + 0.1 * 2.0))
    update(counter, [torch.tensor([7])], torch.tensor(3))  # integer buffers are copied, not averaged
    assert counter[0].item() == 7


def test_weight_average_is_validated_exported_and_resumed(synth_folder, tmp_path):
    from engine.cli import main

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    plain_common = ["--data", str(synth_folder), "--device", "cpu", "--set", "checkpoint_every=2", *TINY]
    common = [*plain_common, "--set", "ema=0.5"]
    assert main(["train", "cgintrinsics", "--steps", "6", "--out", str(straight), *common]) == 0
    assert main(["train", "cgintrinsics", "--steps", "3", "--out", str(resumed), *common]) == 0
    assert main(["train", "cgintrinsics", "--steps", "6", "--out", str(resumed), *common]) == 0
    a = load_file(str(straight / "export" / "cgintrinsics-trained.safetensors"))
    b = load_file(str(resumed / "export" / "cgintrinsics-trained.safetensors"))
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    checkpoint = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    averaged = {k.removeprefix("module."): v for k, v in checkpoint["ema"].items() if k.startswith("module.")}
    raw = checkpoint["model"]
    differs = 0
    for key, value in a.items():
        assert torch.allclose(value.float(), averaged[key].float(), atol=1e-3), key  # the export is the average
        differs += not torch.allclose(value.float(), raw[key].float(), atol=1e-3)
    assert differs > 0  # ... not the last raw weights
    with (straight / "validation.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert rows and int(rows[-1]["step"]) == 6
    assert all(r["albedo_simse"] and r["raw/albedo_simse"] for r in rows)
    assert "exponential moving average" in (straight / "export" / "cgintrinsics-trained.md").read_text()
    # scripts/export_checkpoint.py writes either set from the checkpoint, the average identical to the run's export.
    script = Path(__file__).resolve().parents[2] / "scripts" / "export_checkpoint.py"
    for which in ("average", "raw"):
        out = tmp_path / f"{which}.safetensors"
        subprocess.run([sys.executable, str(script), str(straight), "--weights", which, "--out", str(out)],
                       check=True, timeout=120)
        exported = load_file(str(out))
        for key, value in a.items():
            expected = value if which == "average" else raw[key].to(value.dtype)
            assert torch.equal(exported[key], expected), (which, key)
    # A run without an average cannot be resumed with one (its checkpoint has none).
    plain = tmp_path / "plain"
    assert main(["train", "cgintrinsics", "--steps", "2", "--out", str(plain), *plain_common]) == 0
    assert main(["train", "cgintrinsics", "--steps", "4", "--out", str(plain), *common]) != 0
