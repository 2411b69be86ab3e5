"""The metric registry: each metric declares its meaning as data (direction, range, what it needs, protocol).

Leaderboards sort by ``direction`` and label columns with ``protocol``; the benchmark runner computes every metric
whose ``needs`` a dataset sample and a method result can satisfy. Nothing here branches on a metric's name.

``needs`` names *roles*: ``pred:<role>`` is a layer or value the method produced (``pred:reflectance``), and
``truth:<role>`` is something the dataset provides (``truth:mask``). A metric's ``compute`` receives two plain dicts
``pred`` and ``truth`` holding exactly those roles, already in the colour space the protocol states.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..registries import Registry

LOWER, HIGHER = "lower", "higher"


@dataclass(frozen=True)
class MetricSpec:
    name: str  # id used in the database and CSV columns
    title: str  # column label
    tasks: tuple[str, ...]  # the method tasks it ranks: "intrinsic", "illuminant", "enhance", "derain", "face"
    direction: str  # LOWER or HIGHER is better
    range: tuple[float, float | None]  # (low, high); None = unbounded
    needs: tuple[str, ...]  # roles, "pred:<role>" / "truth:<role>"
    protocol: str  # how it is measured, shown beside every number
    compute: Callable[[Mapping[str, Any], Mapping[str, Any]], float]
    unit: str = ""
    summary: str = "mean"  # "mean" (± std), or "angular" (mean, median, tri-mean, best/worst 25 %)
    reference: str = ""
    #: optional ``(rng) -> (perfect pred, random pred, truth)`` for the contract tests, needed only when a role is
    #: not one :mod:`engine.metrics.examples` can build
    example: Callable[[Any], tuple[dict, dict, dict]] | None = None

    def __post_init__(self):
        if self.direction not in (LOWER, HIGHER):
            raise ValueError(f"metric {self.name}: direction must be {LOWER!r} or {HIGHER!r}")
        if self.summary not in ("mean", "angular"):
            raise ValueError(f"metric {self.name}: summary must be 'mean' or 'angular'")
        for need in self.needs:
            if not need.startswith(("pred:", "truth:")):
                raise ValueError(f"metric {self.name}: need {need!r} must start with 'pred:' or 'truth:'")

    @property
    def lower_is_better(self) -> bool:
        return self.direction == LOWER

    @property
    def pred_roles(self) -> tuple[str, ...]:
        return tuple(n.split(":", 1)[1] for n in self.needs if n.startswith("pred:"))

    @property
    def truth_roles(self) -> tuple[str, ...]:
        return tuple(n.split(":", 1)[1] for n in self.needs if n.startswith("truth:"))

    def applicable(self, pred_roles, truth_roles) -> bool:
        return set(self.pred_roles) <= set(pred_roles) and set(self.truth_roles) <= set(truth_roles)

    def better(self, a: float, b: float) -> bool:
        """Whether value ``a`` is strictly better than ``b`` under this metric's direction."""
        return a < b if self.lower_is_better else a > b


#: the modules that register metrics when imported (loaded on the first lookup; add a line per new module)
METRIC_MODULES: tuple[str, ...] = ("engine.metrics.catalogue",)

METRICS: Registry[MetricSpec] = Registry("metric", modules=METRIC_MODULES)


def register_metric(spec: MetricSpec) -> MetricSpec:
    return METRICS.add(spec.name, spec)


def get_metric(name: str) -> MetricSpec:
    return METRICS.get(name)


def all_metrics() -> list[MetricSpec]:
    return list(METRICS.values())


def metrics_for(task: str) -> list[MetricSpec]:
    return [m for m in all_metrics() if task in m.tasks]
