"""The metric contract, on every registered metric: a prediction equal to the ground truth scores the best value
of the declared range; random predictions score inside the range and worse (``engine.metrics.examples``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engine.metrics import LOWER, all_metrics
from engine.metrics.examples import example

METRICS = all_metrics()


def _best(metric) -> float:
    low, high = metric.range
    if metric.direction == LOWER:
        return low
    return math.inf if high is None else high


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_identical_inputs_score_perfectly(metric):
    perfect, _, truth = example(metric, np.random.default_rng(0))
    value = float(metric.compute(perfect, truth))
    best = _best(metric)
    assert value == pytest.approx(best, abs=1e-6) or value == best, f"{metric.name}: {value}, best is {best}"


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.name)
def test_random_inputs_stay_in_range_and_score_worse(metric):
    assert metric.title and metric.protocol and metric.tasks, metric.name
    for seed in range(3):
        perfect, random, truth = example(metric, np.random.default_rng(seed))
        value = float(metric.compute(random, truth))
        low, high = metric.range
        assert math.isfinite(value), f"{metric.name}: {value} on random input (seed {seed})"
        assert low is None or value >= low - 1e-9, f"{metric.name}: {value} below {low}"
        assert high is None or value <= high + 1e-9, f"{metric.name}: {value} above {high}"
        assert metric.better(float(metric.compute(perfect, truth)), value), \
            f"{metric.name} ({metric.direction} is better): random input scores {value}, not worse than perfect"
