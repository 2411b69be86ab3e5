"""Weight sets: resolution order, sha256 verification (a flipped byte is caught), safe loading, import."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors.torch import save_file

import engine.weights as weights
from engine.errors import WeightsUnavailableError
from engine.weights import WeightSet


@pytest.fixture
def registry(tmp_path, monkeypatch, data_dir):
    """An isolated registry with a shipped folder and cache under tmp_path."""
    monkeypatch.setattr(weights, "_WEIGHTS", {})
    shipped = tmp_path / "assets"
    shipped.mkdir()
    monkeypatch.setattr(weights, "ASSETS_WEIGHTS", shipped)
    return shipped


def _state(value: float = 1.0) -> dict[str, torch.Tensor]:
    return {"conv.weight": torch.full((2, 3), value), "conv.bias": torch.arange(2, dtype=torch.float32)}


def _ship(folder, name="toy.safetensors", value=1.0):
    path = folder / name
    save_file(_state(value), str(path))
    return path, weights.sha256_file(path)


def _flip_byte(path, offset=-5):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_shipped_file_resolves_and_loads(registry):
    path, digest = _ship(registry)
    weights.declare_weights(WeightSet("toy", "default", "a toy set", filename=path.name, sha256=digest))
    resolved = weights.resolve_weights("toy")
    assert resolved.path == path and resolved.source == "shipped" and resolved.sha256 == digest
    state = weights.load_state_dict(resolved.path)
    assert torch.equal(state["conv.bias"], torch.tensor([0.0, 1.0]))


def test_flipped_byte_is_a_typed_error_with_instructions(registry):
    path, digest = _ship(registry)
    weights.declare_weights(WeightSet("toy", "default", "a toy set", filename=path.name, sha256=digest,
                                      model_card="assets/model_cards/toy.md"))
    _flip_byte(path)
    with pytest.raises(WeightsUnavailableError, match="corrupt") as info:
        weights.resolve("toy")
    assert "toy.md" in str(info.value)
    report = weights.verify(weights.get_weight_set("toy"))
    assert report.status == "corrupt"


def test_missing_file_explains_how_to_get_it(registry):
    weights.declare_weights(WeightSet("toy", "official", "the authors' file", official=True, format="torch",
                                      source_url="https://example.org/toy", source_filename="toy.pth",
                                      converter="x:y"))
    with pytest.raises(WeightsUnavailableError, match="weights import toy FILE"):
        weights.resolve("toy", "official")


def test_resolution_order_explicit_then_cache_then_shipped(registry, data_dir):
    path, digest = _ship(registry)
    weights.declare_weights(WeightSet("toy", "default", "a toy set", filename=path.name, sha256=digest))
    cached = weights.cache_dir() / "toy" / "default.safetensors"
    cached_digest = weights.save_state_dict(_state(2.0), cached)
    (cached.parent / "default.json").write_text(json.dumps({"sha256": cached_digest}))
    assert weights.resolve_weights("toy").source == "cache"
    explicit = registry / "mine.safetensors"
    save_file(_state(3.0), str(explicit))
    resolved = weights.resolve_weights("toy", str(explicit))
    assert resolved.source == "explicit" and resolved.weight_set is None
    # A file named like a shipped set is held to that set's checksum.
    fake = data_dir / "toy.safetensors"
    save_file(_state(4.0), str(fake))
    with pytest.raises(WeightsUnavailableError, match="corrupt"):
        weights.resolve_weights("toy", str(fake))


def test_unknown_names_and_duplicates_are_errors(registry):
    weights.declare_weights(WeightSet("toy", "a", "x"))
    with pytest.raises(ValueError, match="already registered"):
        weights.declare_weights(WeightSet("toy", "a", "y"))
    with pytest.raises(WeightsUnavailableError, match="unknown weight set 'b'"):
        weights.resolve("toy", "b")
    with pytest.raises(ValueError, match="sha256"):
        WeightSet("toy", "c", "z", sha256="abc")


def test_torch_files_load_only_as_plain_tensors(tmp_path):
    good = tmp_path / "good.pth"
    torch.save({"state_dict": {"module.w": torch.ones(2)}}, good)
    assert torch.equal(weights.load_state_dict(good)["w"], torch.ones(2))
    hostile = tmp_path / "hostile.pth"
    torch.save({"w": torch.ones(2), "config": argparse.Namespace(a=1)}, hostile)
    with pytest.raises(WeightsUnavailableError, match="safely"):
        weights.load_state_dict(hostile)
    with pytest.raises(WeightsUnavailableError, match="not loaded directly"):
        weights.load_state_dict(tmp_path / "model.caffemodel.h5")


def double_converter(path):
    state = weights.load_state_dict(path)
    return {k: v * 2 for k, v in state.items()}


def test_import_runs_converter_records_provenance_and_checks_source(registry, tmp_path):
    source = tmp_path / "official.pth"
    torch.save(_state(1.5), source)
    digest = weights.sha256_file(source)
    weights.declare_weights(WeightSet("toy", "official", "the authors' file", official=True, format="torch",
                                      sha256=digest, source_filename="official.pth",
                                      converter="tests.weights.test_weights:double_converter"))
    target, provenance = weights.import_official("toy", source)
    assert provenance["source_sha256"] == digest and provenance["converter"].endswith("double_converter")
    state, resolved = weights.load_weights("toy", "official")
    assert resolved.source == "cache" and torch.equal(state["conv.weight"], torch.full((2, 3), 3.0))
    other = tmp_path / "other.pth"
    torch.save(_state(9.0), other)
    with pytest.raises(WeightsUnavailableError, match="refusing"):
        weights.import_official("toy", other, "official")


def test_cli_verify_catches_a_flipped_byte(registry, capsys, monkeypatch):
    from engine.cli import main

    path, digest = _ship(registry)
    weights.declare_weights(WeightSet("toy", "default", "a toy set", filename=path.name, sha256=digest))
    monkeypatch.setattr(weights, "ensure_declarations_loaded", lambda: None)  # only the toy registry
    assert main(["weights", "verify", "toy"]) == 0
    _flip_byte(path, 100)
    assert main(["weights", "verify", "toy"]) == 1
    assert "corrupt" in capsys.readouterr().out
