"""What the registry says about each method, shaped for display (plain Python; the Methods and Decompose pages)."""

from __future__ import annotations

from dataclasses import dataclass

from engine.registry import InputKind, MethodSpec, all_methods
from engine.weights import cache_dir, weight_sets_for

from .params import format_value


@dataclass(frozen=True)
class MethodCard:
    name: str
    title: str
    year: int
    task: str
    paper: str
    url: str
    summary: str
    input_label: str
    outputs: list[dict]
    params: list[dict]
    devices: tuple[str, ...]
    learned: bool
    weights: list[dict]
    licence: str
    provenance: str
    is_baseline: bool
    min_side: int
    model_cards: list[tuple[str, str]]  # (weight set name, markdown of its model card)

    @property
    def heading(self) -> str:
        year = f" ({self.year})" if self.year else ""
        return f"{self.title}{year}" + (" · baseline" if self.is_baseline else "")


def _range_label(minimum, maximum) -> str:
    if minimum is None and maximum is None:
        return "any"
    low = "−∞" if minimum is None else format_value(minimum)
    high = "∞" if maximum is None else format_value(maximum)
    return f"{low} … {high}"


def _weights_rows(spec: MethodSpec) -> list[dict]:
    rows = []
    for ws in weight_sets_for(spec.name):
        # Existence only: hashing a few hundred MB on every page view is too slow; the worker verifies the sha256.
        cached = cache_dir() / ws.method / f"{ws.name}.safetensors"
        present = cached.is_file() or (ws.shipped_path is not None and ws.shipped_path.is_file())
        rows.append({
            "weight set": ws.name, "what": ws.description, "official": "yes" if ws.official else "no",
            "licence": ws.licence or "—", "source": ws.source_url or "—",
            "status": "installed" if present else f"unavailable: {ws.how_to_get()}",
        })
    return rows


def _model_cards(spec: MethodSpec) -> list[tuple[str, str]]:
    cards = []
    for ws in weight_sets_for(spec.name):
        path = ws.model_card_path
        if path is not None and path.is_file():
            cards.append((ws.name, path.read_text(encoding="utf-8")))
    return cards


def weight_choices(spec: MethodSpec) -> list[tuple[str, str]]:
    """(name, label) of the weight sets a user can pick for a learned method (declared, imported or trained and
    installed here), the default first; empty when there is nothing to choose."""
    if not spec.learned:
        return []
    sets = weight_sets_for(spec.name)
    return [(ws.name, f"{ws.name}: {ws.description}" if ws.description else ws.name) for ws in sets] \
        if len(sets) > 1 else []


def method_card(spec: MethodSpec) -> MethodCard:
    outputs = [{"output": o.name, "kind": o.kind.value, "meaning": o.meaning, "colour space": o.colour_space}
               for o in spec.outputs]
    params = [{"parameter": p.name, "default": format_value(p.default),
               "range": ", ".join(map(format_value, p.choices)) if p.choices else _range_label(p.minimum, p.maximum),
               "scale": "log" if p.log_scale else "linear", "meaning": p.description}
              for p in spec.params]
    return MethodCard(
        name=spec.name, title=spec.title, year=spec.year, task=spec.task, paper=spec.paper, url=spec.url,
        summary=spec.summary, input_label=spec.input_kind.label, outputs=outputs, params=params,
        devices=spec.devices, learned=spec.learned, weights=_weights_rows(spec), licence=spec.licence,
        provenance=spec.provenance, is_baseline=spec.is_baseline, min_side=spec.min_side,
        model_cards=_model_cards(spec),
    )


def method_cards() -> list[MethodCard]:
    return [method_card(spec) for spec in all_methods()]


def input_kinds() -> list[InputKind]:
    """The input kinds that at least one registered method accepts, in the enum's order."""
    used = {spec.input_kind for spec in all_methods()}
    return [kind for kind in InputKind if kind in used]
