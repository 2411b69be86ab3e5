"""Parameter widgets generated from a method's :class:`~engine.registry.ParamSpec` list.

``plan_control`` decides which widget fits a parameter (pure, tested without Streamlit); ``render_params``
draws them. Defaults come from the spec, i.e. from the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine.registry import MethodSpec, ParamSpec

from . import state

_SLIDER_MAX_INT_STEPS = 200  # beyond this many integer values a slider is too coarse to hit one exactly
_LOG_MANTISSAS = (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)


@dataclass(frozen=True)
class Control:
    widget: str  # "checkbox", "selectbox", "slider", "log_slider", "number", "text"
    options: tuple = ()  # choices, or the grid of a log slider


def _significant(value: float, digits: int = 3) -> float:
    return float(f"{value:.{digits}g}")


def log_grid(low: float, high: float, default: float) -> tuple[float, ...]:
    """Round numbers on a log axis from ``low`` to ``high`` (1, 1.5, 2, 3, 5, 7 per decade), plus ``default``.

    Grid points within 15 % of the default are dropped so that the default does not sit beside a near-twin.
    A lower bound of 0 cannot sit on a log axis: the grid then starts at the power of ten two decades below the default (or six below
    ``high``) and 0 itself is kept as the first choice, so "switch this term off" stays possible.
    """
    with_zero = low <= 0
    if with_zero:
        low = 10.0 ** math.floor(math.log10(default / 100.0 if default > 0 else high * 1e-6))
    values = {float(low), float(high)}
    for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1):
        for mantissa in _LOG_MANTISSAS:
            value = _significant(mantissa * 10.0 ** exponent)
            if low <= value <= high:
                values.add(value)
    if default > 0:
        values = {v for v in values if not (default / 1.15 < v < default * 1.15)}
    values.add(float(default))
    if with_zero:
        values.add(0.0)
    return tuple(sorted(values))


def plan_control(param: ParamSpec) -> Control:
    if param.type is bool:
        return Control("checkbox")
    if param.choices is not None:
        return Control("selectbox", tuple(param.choices))
    if param.type not in (int, float):
        return Control("text")
    bounded = param.minimum is not None and param.maximum is not None
    if param.log_scale and bounded and param.maximum > max(param.minimum, 0):
        return Control("log_slider", log_grid(float(param.minimum), float(param.maximum), float(param.default)))
    if bounded and param.type is int and param.maximum - param.minimum <= _SLIDER_MAX_INT_STEPS:
        return Control("slider")
    if bounded and param.type is float and not param.log_scale:
        return Control("slider")
    return Control("number")


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _float_step(param: ParamSpec) -> float:
    span = float(param.maximum) - float(param.minimum)
    return _significant(span / 100.0, 1) if span > 0 else 0.01


def render_params(spec: MethodSpec, columns: int = 3) -> dict[str, Any]:
    """Draw one widget per parameter (in a grid of ``columns``) and return the chosen values, not yet coerced:
    ``MethodSpec.resolve_params`` checks them when the run is submitted."""
    values: dict[str, Any] = {}
    cells = st.columns(columns) if spec.params else []
    for index, param in enumerate(spec.params):
        with cells[index % columns]:
            values[param.name] = _widget(spec, param)
    return values


def _widget(spec: MethodSpec, param: ParamSpec) -> Any:
    control = plan_control(param)
    key = state.param_key(spec.name, param.name)
    label = param.name
    help_text = f"{param.description} (paper default: {format_value(param.default)})"
    if control.widget == "checkbox":
        return st.checkbox(label, value=bool(param.default), help=help_text, key=key)
    if control.widget == "selectbox":
        index = control.options.index(param.default) if param.default in control.options else 0
        return st.selectbox(label, control.options, index=index, help=help_text, key=key)
    if control.widget == "log_slider":
        return st.select_slider(label, options=control.options, value=float(param.default),
                                format_func=format_value, help=help_text + "; log scale", key=key)
    if control.widget == "text":
        return st.text_input(label, value=str(param.default), help=help_text, key=key)
    if control.widget == "slider" and param.type is int:
        return st.slider(label, int(param.minimum), int(param.maximum), int(param.default), help=help_text, key=key)
    if control.widget == "slider":
        return st.slider(label, float(param.minimum), float(param.maximum), float(param.default),
                         step=_float_step(param), format="%.3g", help=help_text, key=key)
    numeric = int if param.type is int else float
    return st.number_input(
        label, value=numeric(param.default),
        min_value=None if param.minimum is None else numeric(param.minimum),
        max_value=None if param.maximum is None else numeric(param.maximum),
        format=None if numeric is int else "%.4g", help=help_text, key=key,
    )
