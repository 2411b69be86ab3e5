"""The dataset-adapter contract, on every adapter: its own tiny example folder (``write_example``) validates and
loads into samples that fit the adapter's input kind and metrics; the same folder with one spoiled file
(``break_example``) is refused with a message naming that file."""

from __future__ import annotations

import numpy as np
import pytest

from engine.datasets import ADAPTERS, DatasetError
from engine.metrics import get_metric

ALL = list(ADAPTERS.values())


@pytest.mark.parametrize("adapter", ALL, ids=lambda a: a.kind)
def test_example_folder_validates_and_loads(adapter, tmp_path):
    folder = adapter.write_example(tmp_path / adapter.kind)
    assert adapter.validate(folder) == folder
    ids = adapter.items(folder, "all")
    assert ids, f"{adapter.kind}: the example folder has no items"
    sample = adapter.load(folder, ids[0])
    low, high = adapter.input_kind.frame_range
    assert low <= len(sample.frames) and (high is None or len(sample.frames) <= high), adapter.kind
    for frame in sample.frames:
        assert frame.dtype == np.float32 and frame.ndim == 3 and frame.shape[2] == 3, (adapter.kind, frame.shape)
        assert 0.0 <= frame.min() and frame.max() <= 1.0, adapter.kind
    assert sample.colour_space in ("srgb", "linear"), adapter.kind
    for name in adapter.metrics:
        missing = set(get_metric(name).truth_roles) - set(sample.truth)
        assert not missing, f"{adapter.kind}: metric {name} needs truth {sorted(missing)} the example lacks"


@pytest.mark.parametrize("adapter", ALL, ids=lambda a: a.kind)
def test_broken_folder_is_refused_naming_the_file(adapter, tmp_path):
    folder = adapter.write_example(tmp_path / adapter.kind)
    broken = adapter.break_example(folder)
    with pytest.raises(DatasetError) as err:
        adapter.validate(folder)
    assert broken.name in str(err.value), f"{adapter.kind}: the message does not name {broken.name}: {err.value}"


def test_unknown_kind_lists_the_known_ones():
    with pytest.raises(DatasetError, match="registered: "):
        from engine.datasets import get_adapter

        get_adapter("no-such-kind")
