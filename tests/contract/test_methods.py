"""The method contract, checked on every registered method (as timm tests every ``list_models()`` entry).

Each method runs on the CPU on ``method_example(spec)`` -- a tiny synthetic input of its input kind (``engine.examples``),
or the factory the spec declares in ``example_input`` -- and every output is checked against ``spec.outputs``:
presence, kind, dtype, shape, declared value range (``OutputSpec.range``), finiteness and role. Progress must stay in
[0, 1] and never go back; every parameter with a range or choices must refuse a value outside it with the
parameter's name in the message; every weight set must resolve or raise ``WeightsUnavailableError``.

A new method gets all of this by being registered; nothing here names a method.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import ParameterError, WeightsUnavailableError
from engine.examples import method_example
from engine.registry import OutputKind, ParamSpec, Role, Task, all_methods, run_method
from engine.weights import resolve_weights, weight_sets_for

SPECS = [s for s in all_methods() if s.task != Task.TEST]  # not the test-only methods of tests/db
TOLERANCE = 1e-4  # float rounding at a declared bound


def _first_available_weights(spec):
    for ws in weight_sets_for(spec.name):
        try:
            resolve_weights(spec.name, ws.name)
            return ws.name
        except WeightsUnavailableError:
            continue
    return None


@pytest.fixture(scope="module", params=SPECS, ids=lambda s: s.name)
def ran(request):
    """(spec, input, result, progress calls) for one method, run once per module."""
    spec = request.param
    inputs = method_example(spec)
    calls: list[tuple[float, str]] = []
    weights = None
    if spec.learned:
        weights = _first_available_weights(spec)
        if weights is None:
            pytest.skip(f"{spec.name}: no weight set is available here "
                        f"({'; '.join(ws.how_to_get() for ws in weight_sets_for(spec.name))})")
    result, _, _ = run_method(spec.name, inputs, device="cpu", weights=weights,
                              progress=lambda f, m: calls.append((f, m)))
    return spec, inputs, result, calls


def test_spec_is_well_formed(ran):
    spec = ran[0]
    assert isinstance(spec.task, Task) and spec.outputs, spec.name
    assert "cpu" in spec.devices, f"{spec.name}: every method must run on the CPU (devices {spec.devices})"
    names = [out.name for out in spec.outputs]
    assert len(names) == len(set(names)), f"{spec.name}: duplicate output names {names}"
    for out in spec.outputs:
        assert isinstance(out.role, Role), f"{spec.name}.{out.name}: role {out.role!r} is not a Role"
        assert out.colour_space in ("srgb", "linear", "none"), f"{spec.name}.{out.name}: {out.colour_space!r}"
        low, high = out.range
        assert low is None or high is None or low < high, f"{spec.name}.{out.name}: empty range {out.range}"
    assert spec.learned == bool(weight_sets_for(spec.name)), \
        f"{spec.name}: learned={spec.learned} but {len(weight_sets_for(spec.name))} weight sets are declared"


def _check_range(label: str, values: np.ndarray, value_range) -> None:
    low, high = value_range
    if low is not None:
        assert float(values.min()) >= low - TOLERANCE, f"{label}: minimum {values.min():g} below {low}"
    if high is not None:
        assert float(values.max()) <= high + TOLERANCE, f"{label}: maximum {values.max():g} above {high}"


def check_outputs(spec, inputs, result) -> None:
    """Every declared output present, and each of its kind, dtype, shape, range and finite; nothing undeclared."""
    height, width = inputs.frames[0].shape[:2]
    produced = set(result.layers) | set(result.values)
    declared = {out.name for out in spec.outputs}
    assert produced <= declared, f"{spec.name}: undeclared outputs {sorted(produced - declared)}"
    for out in spec.outputs:
        label = f"{spec.name}.{out.name} ({out.kind.value})"
        if out.kind == OutputKind.VECTOR:
            assert out.name in result.values, f"{label}: missing from result.values"
            values = np.asarray(result.values[out.name], dtype=np.float64)
            # a flat list, or one list per item (e.g. a box or SH coefficients per face)
            assert values.ndim in (1, 2) and values.size > 0, f"{label}: expected a list, got shape {values.shape}"
        else:
            assert out.name in result.layers, f"{label}: missing from result.layers"
            values = result.layers[out.name]
            assert isinstance(values, np.ndarray), f"{label}: {type(values).__name__}, not a numpy array"
            if out.kind == OutputKind.LABELS:
                assert np.issubdtype(values.dtype, np.integer), f"{label}: dtype {values.dtype}, expected integers"
                assert values.shape == (height, width), f"{label}: shape {values.shape}"
            else:
                assert values.dtype == np.float32, f"{label}: dtype {values.dtype}, expected float32"
                expected = {OutputKind.IMAGE: [(height, width, 3)], OutputKind.GREY: [(height, width, 1)],
                            OutputKind.NORMALS: [(height, width, 3)],
                            OutputKind.IMAGE_STACK: [(out.stack_length or len(inputs.frames), height, width, c)
                                                     for c in (1, 3)]}
                if out.same_size:
                    assert values.shape in expected[out.kind], \
                        f"{label}: shape {values.shape}, expected {expected[out.kind]}"
                else:  # a picture of its own size: only the number of axes and channels are fixed
                    shape = expected[out.kind][0]
                    assert values.ndim == len(shape) and values.shape[-1] in (1, 3), f"{label}: shape {values.shape}"
        assert np.all(np.isfinite(values)), f"{label}: {np.size(values) - np.isfinite(values).sum()} non-finite values"
        _check_range(label, values, out.range)


def check_progress(name: str, calls) -> None:
    """Progress reported, ending at 1, within [0, 1], never going back."""
    fractions = [f for f, _ in calls]
    assert fractions and fractions[-1] == pytest.approx(1.0), f"{name}: progress {fractions}"
    assert all(0.0 <= f <= 1.0 for f in fractions), f"{name}: progress outside [0, 1]: {fractions}"
    assert all(b >= a for a, b in zip(fractions, fractions[1:])), f"{name}: progress goes back: {fractions}"
    assert all(isinstance(m, str) for _, m in calls)


def test_outputs_match_the_spec(ran):
    spec, inputs, result, _ = ran
    check_outputs(spec, inputs, result)


def test_progress_is_reported_in_order(ran):
    check_progress(ran[0].name, ran[3])


def _outside(param: ParamSpec):
    """Values just outside the declared range or choices."""
    if param.type is bool:
        return []
    values = []
    if param.choices is not None:
        values.append(max(param.choices) + 1 if param.type in (int, float) else "__not_a_choice__")
    if param.minimum is not None:
        values.append(param.type(param.minimum - 1) if param.type is int else param.minimum - abs(param.minimum) - 1.0)
    if param.maximum is not None:
        values.append(param.type(param.maximum + 1) if param.type is int else param.maximum + abs(param.maximum) + 1.0)
    return values


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_out_of_range_parameters_are_refused_by_name(spec):
    inputs = method_example(spec)
    for param in spec.params:
        for value in _outside(param):
            with pytest.raises(ParameterError) as err:
                run_method(spec.name, inputs, {param.name: value}, device="cpu")
            assert param.name in str(err.value), f"{spec.name}: message for {param.name}={value!r}: {err.value}"
    with pytest.raises(ParameterError, match="no_such_parameter"):
        run_method(spec.name, inputs, {"no_such_parameter": 1}, device="cpu")


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_weight_set_resolves_or_says_why(spec):
    for ws in weight_sets_for(spec.name):
        try:
            resolved = resolve_weights(spec.name, ws.name)
        except WeightsUnavailableError as exc:
            assert str(exc), f"{ws.key}: empty message"
            continue
        assert resolved.path.is_file() and len(resolved.sha256) == 64, ws.key


def test_the_contract_catches_a_broken_method():
    """The checks above can fail: a result with a wrong shape, a NaN, an out-of-range value, an undeclared or a
    missing output, or progress going back, is each refused."""
    from dataclasses import replace

    from engine.examples import example_input
    from engine.registry import InputKind, MethodResult, OutputSpec

    spec = next(s for s in SPECS if s.name == "baseline_image_albedo")
    inputs = example_input(InputKind.IMAGE)
    good = {"reflectance": inputs.image.copy(), "shading": np.ones(inputs.image.shape[:2] + (1,), np.float32)}
    check_outputs(spec, inputs, MethodResult(layers=good))
    bounded = replace(spec, outputs=(replace(spec.outputs[0], value_range=(0.0, 0.5)), spec.outputs[1]))
    broken = [
        (spec, {**good, "shading": good["shading"][..., 0]}, "shape"),
        (spec, {**good, "shading": good["shading"] * np.nan}, "non-finite"),
        (spec, {**good, "shading": -good["shading"]}, "below"),
        (bounded, good, "above 0.5"),
        (spec, {**good, "extra": good["shading"]}, "undeclared"),
        (spec, {"reflectance": good["reflectance"]}, "missing"),
        (spec, {**good, "reflectance": good["reflectance"].astype(np.float64)}, "float32"),
    ]
    for bad_spec, layers, message in broken:
        with pytest.raises(AssertionError, match=message):
            check_outputs(bad_spec, inputs, MethodResult(layers=layers))
    with pytest.raises(AssertionError, match="goes back"):
        check_progress("x", [(0.0, ""), (0.6, ""), (0.4, ""), (1.0, "")])
    with pytest.raises(AssertionError, match="progress"):
        check_progress("x", [])
    assert OutputSpec("a", "grey", "m").range == (0.0, None)  # the default range of a layer: non-negative
