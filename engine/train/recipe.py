"""The interface a learned method implements to be trainable by the shared loop (``python -m engine train``).

A recipe is a subclass of :class:`TrainingRecipe` registered with :func:`register_recipe`; its module is listed in
``engine.train.RECIPE_MODULES`` (one line, like ``METHOD_MODULES``). The shared loop (:mod:`engine.train.loop`) owns
everything generic -- seeding, device, mixed precision, gradient accumulation, checkpoints and resume, progress,
validation schedule, loss curves, export and the model card -- and calls the recipe only for what is specific:

=====================================  =========================================================================
``defaults``                           hyper-parameters (a flat dict; CLI ``--set name=value`` overrides, typed
                                       by the default's type). The loop reads ``lr``, ``batch_size``,
                                       ``accumulate``, ``val_every``, ``checkpoint_every`` and ``ema`` from it
                                       (``ema`` > 0: validate and export an exponential moving average of the
                                       weights with that decay, see :mod:`engine.train.loop`).
``build_model(config)``                a fresh ``nn.Module`` (the architecture the method's runner also uses).
``make_datasets(data_dir, seed, c)``   ``(train, val)`` datasets (see :mod:`engine.train.data`); ``data_dir`` may
                                       be ``None`` for recipes that can render synthetic data.
``make_augment(config)``               optional augmentation (``engine.train.data.Augment``) for training samples.
``begin(config)``                      called once before training; the default keeps the resolved hyper-parameters
                                       in ``self.run_config`` so ``loss`` can read loss weights.
``phases(config)``                     the training phases, in order. Default: one phase ``"main"`` with one
                                       optimiser ``"main"``. RetinexNet returns ``[Phase("decom"),
                                       Phase("relight")]`` and trains different sub-networks in each.
``make_optimizers(model, c, phase)``   ``{optimiser name: torch.optim.Optimizer}`` for a phase; default Adam(lr)
                                       over ``trainable_parameters``. A GAN returns ``{"discriminator": …,
                                       "generator": …}`` and lists both names in its ``Phase.optimizers``.
``trainable_parameters(model, phase)`` parameters updated in a phase (default: all).
``loss(model, batch, phase, opt)``     ``(scalar loss tensor, {name: float})`` for one optimiser's update. The
                                       loop calls it once per optimiser of the phase, in ``Phase.optimizers``
                                       order, and steps that optimiser (so D then G for a GAN).
``lr_factor(step, steps, c, phase)``   learning-rate multiplier at a step of a phase (default constant 1).
``validate(model, val, device, c)``    ``{metric: float}`` on the validation set (model in eval mode, no grad).
``export(model, config)``              ``(state_dict, card_fields)``: what goes into the safetensors file, and
                                       extra model-card fields (architecture, input size, ...).
``data_licence(data_dir)``             one line for the model card: the licence of the training data.
=====================================  =========================================================================

Batches are dicts of tensors, already on the device; the loop moves them. Metric directions are declared in
``metric_higher_is_better`` so dashboards never guess from names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from ..errors import UnknownMethodError
from ..registries import Registry


@dataclass(frozen=True)
class Phase:
    """One stage of training. ``weight`` is its share of the total steps (phases split ``--steps`` by weight)."""

    name: str
    weight: float = 1.0
    optimizers: tuple[str, ...] = ("main",)


class TrainingRecipe:
    """Base class: override what your method needs; the defaults describe a one-phase, one-optimiser method."""

    method: str = ""  # the MethodSpec name this recipe trains
    run_config: Mapping[str, Any] = {}  # set by begin()
    description: str = ""
    defaults: Mapping[str, Any] = {
        "lr": 2e-4, "batch_size": 4, "accumulate": 1, "val_every": 100, "checkpoint_every": 200,
        "weight_decay": 0.0, "ema": 0.0,
    }
    metric_higher_is_better: Mapping[str, bool] = {}

    # --- model and data ---------------------------------------------------------------------------------------
    def build_model(self, config: Mapping[str, Any]) -> nn.Module:
        raise NotImplementedError

    def make_datasets(self, data_dir: Path | None, seed: int, config: Mapping[str, Any]):
        raise NotImplementedError

    def data_licence(self, data_dir: Path | None) -> str:
        return "unknown: state the licence of the training data"

    def make_augment(self, config: Mapping[str, Any]):
        return None

    def batch_stream(self, train, seed: int, config: Mapping[str, Any]):
        """How the loop draws batches; the default is a seeded :class:`~engine.train.data.BatchStream`."""
        from .data import BatchStream

        return BatchStream(train, int(config["batch_size"]), seed, self.make_augment(config))

    def begin(self, config: Mapping[str, Any]) -> None:
        self.run_config = dict(config)

    # --- optimisation -----------------------------------------------------------------------------------------
    def phases(self, config: Mapping[str, Any]) -> list[Phase]:
        return [Phase("main")]

    def trainable_parameters(self, model: nn.Module, phase: Phase) -> Iterable[nn.Parameter]:
        return [p for p in model.parameters() if p.requires_grad]

    def make_optimizers(self, model: nn.Module, config: Mapping[str, Any], phase: Phase
                        ) -> dict[str, torch.optim.Optimizer]:
        params = list(self.trainable_parameters(model, phase))
        return {"main": torch.optim.Adam(params, lr=float(config["lr"]), weight_decay=float(config["weight_decay"]))}

    def lr_factor(self, step: int, steps: int, config: Mapping[str, Any], phase: Phase) -> float:
        return 1.0

    def loss(self, model: nn.Module, batch: Mapping[str, torch.Tensor], phase: Phase, optimizer: str
             ) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    # --- evaluation and export --------------------------------------------------------------------------------
    def validate(self, model: nn.Module, val, device: torch.device, config: Mapping[str, Any]) -> dict[str, float]:
        return {}

    def export(self, model: nn.Module, config: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return {k: v.detach().cpu() for k, v in model.state_dict().items()}, {}

    # --- helpers ----------------------------------------------------------------------------------------------
    def config(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults merged with overrides; string overrides are coerced to the default's type."""
        merged = {**TrainingRecipe.defaults, **dict(self.defaults)}
        for key, value in dict(overrides or {}).items():
            if key not in merged:
                raise KeyError(f"{self.method}: unknown hyper-parameter {key!r}; known: {', '.join(sorted(merged))}")
            merged[key] = _coerce_like(merged[key], value)
        return merged


def _coerce_like(default: Any, value: Any) -> Any:
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    if isinstance(default, bool):
        return value.strip().lower() in ("1", "true", "yes", "on")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    if isinstance(default, (tuple, list)):
        return type(default)(_coerce_like(default[0] if default else 0.0, v) for v in value.split(","))
    return value


def _recipe_modules() -> tuple[str, ...]:
    from . import RECIPE_MODULES

    return RECIPE_MODULES


RECIPES: Registry[TrainingRecipe] = Registry("training recipe", UnknownMethodError, modules=_recipe_modules)


def register_recipe(recipe: TrainingRecipe) -> TrainingRecipe:
    """Register a recipe instance under its ``method``; a duplicate is an error."""
    if not recipe.method:
        raise ValueError(f"{type(recipe).__name__} has no method name")
    return RECIPES.add(recipe.method, recipe)


def load_recipe_modules() -> None:
    RECIPES.load()


def get_recipe(method: str) -> TrainingRecipe:
    return RECIPES.get(method)


def all_recipes() -> list[TrainingRecipe]:
    return [RECIPES[k] for k in sorted(RECIPES)]
