"""What ``--on`` and ``--workers`` accept and refuse (no cluster needed)."""

import pytest

from engine.distributed.cluster import parse_target
from engine.errors import ParameterError


@pytest.mark.parametrize("text, address", [("ray", "local"), ("local", "local"), ("auto", "auto"),
                                           ("ray://head:10001", "ray://head:10001"), ("10.0.0.5:6379", "10.0.0.5:6379"),
                                           ("[::1]:6379", "[::1]:6379")])
def test_on_names_a_local_cluster_or_an_address(text, address):
    assert parse_target(text) == address


@pytest.mark.parametrize("text", ["", "rai", "ray://", "ray://head", "http://head:6379", "head:port"])
def test_anything_else_is_a_parameter_error_naming_the_forms(text):
    with pytest.raises(ParameterError, match="ray://HOST:PORT"):
        parse_target(text)


@pytest.mark.parametrize("args, message", [
    (["--workers", "2"], "--workers runs data-parallel workers on Ray: give --on ray"),
    (["--on", "ray", "--workers", "2", "--set", "batch_size=1"], "--workers 2 needs batch_size ≥ 2"),
    (["--on", "ray", "--workers", "0"], "--workers must be at least 1"),
    (["--on", "ray:/head:1"], "--on expects ray"),
])
def test_train_refuses_impossible_parallel_settings_before_starting_anything(tmp_path, capsys, args, message):
    from engine.cli import main

    assert main(["train", "cgintrinsics", "--out", str(tmp_path / "run"), *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_without_ray_a_sweep_on_ray_says_how_to_install_it_and_queues_nothing(data_dir, tmp_path, monkeypatch,
                                                                                capsys):
    import sys

    from benchmark.tiny_data import write_tiny_mit
    from engine.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed: `import ray` fails
    mit = write_tiny_mit(tmp_path / "mit")
    code = main(["bench", "baseline_image_albedo", "--dataset", "mit-intrinsic", "--data", str(mit), "--split", "train",
                 "--on", "ray"])
    assert code == 2 and "--on ray needs the ray package: pip install 'ray[client]" in capsys.readouterr().err
    assert not (data_dir / "artifacts").exists()  # nothing queued: no input stored
