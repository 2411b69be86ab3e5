"""One registry mechanism: every registry refuses duplicates and answers an unknown name with the close matches."""

import pytest

from engine.datasets import ADAPTERS, DatasetError, get_adapter
from engine.errors import UnknownMethodError, UnknownNameError, WeightsUnavailableError
from engine.metrics import get_metric
from engine.metrics.registry import METRICS
from engine.registries import Registry
from engine.registry import METHODS, get_method
from engine.train.recipe import RECIPES, get_recipe
from engine.weights import get_weight_set


def test_every_registry_is_one_mechanism():
    assert all(isinstance(r, Registry) for r in (METHODS, METRICS, RECIPES, ADAPTERS))


@pytest.mark.parametrize("lookup, typo, error, match", [
    (get_method, "retinexnt", UnknownMethodError, "did you mean 'retinexnet'"),
    (get_metric, "psnr_rbg", UnknownNameError, "did you mean 'psnr_rgb'"),
    (get_recipe, "cgintrinsic", UnknownMethodError, "did you mean 'cgintrinsics'"),
    (get_adapter, "mit-intrinsics", DatasetError, "did you mean 'mit-intrinsic'"),
    (lambda name: get_weight_set("retinexnet", name), "projekt", WeightsUnavailableError, "did you mean 'project'"),
])
def test_unknown_names_list_close_matches(lookup, typo, error, match):
    with pytest.raises(error, match=match) as err:
        lookup(typo)
    assert "registered: " in str(err.value)


def test_duplicates_are_refused_and_unknown_errors_read_plainly():
    registry = Registry("colour")
    registry.add("red", 1)
    with pytest.raises(ValueError, match="colour 'red' is already registered"):
        registry.add("red", 2)
    with pytest.raises(KeyError) as err:  # an UnknownNameError is also a KeyError
        registry["blue"]
    assert str(err.value) == "unknown colour 'blue'; registered: red"
