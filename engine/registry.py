"""The method registry: every method declares what it is as data, and the rest of the product branches on that data.

A method module (one file under ``engine/methods/``) builds a :class:`MethodSpec` and calls :func:`register`.
The registry holds specs and a factory; it never loads weights or touches CUDA when listing.
Which modules exist is an explicit list (``engine.methods.METHOD_MODULES``), not an ``import *``.

A method's runner is a callable ``run(inputs: MethodInput, params: dict, ctx: RunContext) -> MethodResult``.
A learned method declares its weight sets in its module (``engine.weights.declare_weights``); ``MethodSpec.weights``
is derived from them, and the runner gets its network with ``engine.models.load_model(name, ctx.weights, ctx.device,
builder)``. ``tests/contract`` checks every registered spec and runner against the declarations here (outputs,
ranges, progress, parameters, weights) on ``engine.examples.method_example(spec)``.
"""

from __future__ import annotations

import contextlib
import enum
import importlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from .errors import InputKindError, NumericalError, ParameterError, UnknownMethodError
from .registries import Registry


class InputKind(str, enum.Enum):
    IMAGE = "image"  # one photo (sRGB-encoded)
    RAW_IMAGE = "raw_image"  # one linear (raw) RGB image, e.g. for illuminant estimation
    IMAGE_PAIR = "image_pair"  # two aligned images (e.g. low-light / normal-light, or two lightings)
    IMAGE_SEQUENCE = "image_sequence"  # N ≥ 2 aligned frames of a static scene
    FACE = "face"  # one face crop (resized to the method's input size)

    @property
    def frame_range(self) -> tuple[int, int | None]:
        return {
            InputKind.IMAGE: (1, 1), InputKind.RAW_IMAGE: (1, 1), InputKind.FACE: (1, 1),
            InputKind.IMAGE_PAIR: (2, 2), InputKind.IMAGE_SEQUENCE: (2, None),
        }[self]

    @property
    def label(self) -> str:
        return {
            InputKind.IMAGE: "one image", InputKind.RAW_IMAGE: "one linear raw image",
            InputKind.IMAGE_PAIR: "a pair of images", InputKind.IMAGE_SEQUENCE: "an image sequence",
            InputKind.FACE: "a face crop",
        }[self]


class OutputKind(str, enum.Enum):
    IMAGE = "image"  # (H, W, 3) float layer
    GREY = "grey"  # (H, W, 1) float layer
    NORMALS = "normals"  # (H, W, 3) unit vectors in [-1, 1]; stored as (n + 1) / 2
    LABELS = "labels"  # (H, W) integer class map
    VECTOR = "vector"  # a small list of numbers (illuminant RGB, SH coefficients)
    IMAGE_STACK = "image_stack"  # (T, H, W, C): one layer per frame (per-frame shading)


class Task(str, enum.Enum):
    """What a method is for; leaderboards group by it. A ``str`` enum, so ``Task.INTRINSIC == "intrinsic"``."""

    INTRINSIC = "intrinsic"  # reflectance × shading
    RETINEX = "retinex"  # illumination × reflectance of one photo, with enhancement
    ENHANCE = "enhance"  # low-light enhancement
    ILLUMINANT = "illuminant"  # colour constancy
    FACE = "face"  # face shape, albedo, lighting
    DERAIN = "derain"  # raindrop / rain removal
    TEST = "test"  # methods registered by the tests only


class Role(str, enum.Enum):
    """What an output *is*. The benchmark scores outputs by role (never by name); the dashboard orders and
    explains layers by role."""

    REFLECTANCE = "reflectance"  # albedo: the scene's colours without the lighting
    SHADING = "shading"  # the lighting's effect at each pixel (image = reflectance × shading)
    ILLUMINATION = "illumination"  # Retinex illumination (the shading of a Retinex model)
    ENHANCED = "enhanced"  # an enhanced (brightened) photo
    ENHANCED_ILLUMINATION = "enhanced_illumination"  # the brightened illumination of a Retinex model
    CLEAN = "clean"  # the photo with a degradation removed (raindrops)
    WHITE_BALANCED = "white_balanced"  # the photo with the illuminant's colour removed
    ILLUMINANT = "illuminant"  # the colour of the light (a vector)
    NORMALS = "normals"  # surface normals
    SEGMENTATION = "segmentation"  # a class label per pixel
    CONFIDENCE = "confidence"  # how sure the method is, per pixel or per class
    ATTENTION = "attention"  # where the method looked (attention map, gradient-assignment mask)
    MASK = "mask"  # a binary or soft region mask
    LIGHTING = "lighting"  # lighting coefficients (e.g. spherical harmonics) or a picture of the lighting
    RECONSTRUCTION = "reconstruction"  # the input re-rendered from the decomposition
    OTHER = "other"


#: metric input (what a benchmark metric compares) → the output roles that fill it, in order of preference
SCORED_ROLES: dict[str, tuple[Role, ...]] = {
    "reflectance": (Role.REFLECTANCE,),
    "shading": (Role.SHADING, Role.ILLUMINATION),
    "restored": (Role.ENHANCED, Role.CLEAN),
    "illuminant": (Role.ILLUMINANT,),
    "normals": (Role.NORMALS,),
}


#: the value range an output of each kind has unless its OutputSpec declares ``value_range``
DEFAULT_RANGES: dict[OutputKind, tuple[float | None, float | None]] = {
    OutputKind.IMAGE: (0.0, None), OutputKind.GREY: (0.0, None), OutputKind.IMAGE_STACK: (0.0, None),
    OutputKind.NORMALS: (-1.0, 1.0), OutputKind.LABELS: (0, None), OutputKind.VECTOR: (None, None),
}


@dataclass(frozen=True)
class OutputSpec:
    name: str
    kind: OutputKind
    meaning: str
    colour_space: str = "srgb"  # "srgb", "linear", "none"
    role: Role = Role.OTHER
    #: (low, high) every value lies in, None = unbounded; ``None`` takes the kind's default (:data:`DEFAULT_RANGES`:
    #: non-negative layers, normals in [-1, 1], unbounded vectors). The contract tests check it on every method.
    value_range: tuple[float | None, float | None] | None = None
    #: False for a picture of its own rather than a layer over the input (a lit sphere, a strip of face crops):
    #: its height, width (and, for a stack, length) are free; the contract tests check only dtype and channels.
    same_size: bool = True
    #: For an IMAGE_STACK: how many layers it holds; None = one per input frame (e.g. the shading of every frame).
    stack_length: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "kind", OutputKind(self.kind))
        object.__setattr__(self, "role", Role(self.role))

    @property
    def range(self) -> tuple[float | None, float | None]:
        return self.value_range if self.value_range is not None else DEFAULT_RANGES[self.kind]


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    type: type = float
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple | None = None
    log_scale: bool = False  # the dashboard shows a log slider

    def coerce(self, value: Any) -> Any:
        try:
            if self.type is bool:
                if isinstance(value, str):
                    value = value.strip().lower() in ("1", "true", "yes", "on")
                out = bool(value)
            else:
                out = self.type(value)
        except (TypeError, ValueError, OverflowError):
            raise ParameterError(f"parameter {self.name!r}: expected {self.type.__name__}, got {value!r}") from None
        if isinstance(out, float) and not math.isfinite(out):
            raise ParameterError(f"parameter {self.name!r}: {value!r} is not a finite number")
        if self.choices is not None and out not in self.choices:
            raise ParameterError(f"parameter {self.name!r}: {out!r} is not one of {list(self.choices)}")
        if self.minimum is not None and out < self.minimum:
            raise ParameterError(f"parameter {self.name!r}: {out!r} is below the minimum {self.minimum}")
        if self.maximum is not None and out > self.maximum:
            raise ParameterError(f"parameter {self.name!r}: {out!r} is above the maximum {self.maximum}")
        return out


def frame_size_problem(frames) -> str | None:
    """``None`` when every frame (array) has the first one's height and width, else the one message for it:
    ``all frames must have the same size; got 8×8, 32×24``. Callers prefix what the frames are."""
    shapes = {np.shape(f)[:2] for f in frames}
    if len(shapes) <= 1:
        return None
    return "all frames must have the same size; got " + ", ".join(f"{w}×{h}" for h, w in sorted(shapes))


@dataclass(frozen=True)
class MethodInput:
    """Frames in the project convention: float32 (H, W, 3) in [0, 1], all the same size."""

    frames: tuple[np.ndarray, ...]
    mask: np.ndarray | None = None  # optional (H, W, 1) foreground mask

    @property
    def image(self) -> np.ndarray:
        return self.frames[0]


@dataclass
class RunContext:
    """What a runner gets besides its inputs: the device, a progress callback and a timer."""

    device: Any  # torch.device
    progress: Callable[[float, str], None] = lambda fraction, message: None
    weights: str | None = None  # which weight set (name or path) to use, for learned methods
    timings: dict[str, float] = field(default_factory=dict)
    threads: int | None = None  # CPU intra-op threads the run used (set by run_method; None on a GPU)

    def timed(self, name: str) -> "_Timer":
        return _Timer(self.timings, name, self.device)


class _Timer:
    def __init__(self, sink: dict[str, float], name: str, device):
        self.sink, self.name, self.device = sink, name, device

    def _sync(self):
        if getattr(self.device, "type", None) == "cuda":
            import torch

            torch.cuda.synchronize(self.device)

    def __enter__(self):
        self._sync()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self._sync()
        self.sink[self.name] = self.sink.get(self.name, 0.0) + time.perf_counter() - self.start


@dataclass
class MethodResult:
    layers: dict[str, np.ndarray]  # output name → array (see OutputKind)
    values: dict[str, Any] = field(default_factory=dict)  # output name → list/number for VECTOR outputs
    info: dict[str, Any] = field(default_factory=dict)  # diagnostics: iterations, convergence, weights used


class Runner(Protocol):
    def __call__(self, inputs: MethodInput, params: Mapping[str, Any], ctx: RunContext) -> MethodResult: ...


@dataclass(frozen=True)
class MethodSpec:
    name: str  # short id used in the CLI and the database, e.g. "jiep"
    title: str
    paper: str  # full citation
    year: int
    task: Task  # a Task (strings are accepted and converted)
    summary: str
    input_kind: InputKind
    outputs: tuple[OutputSpec, ...]
    params: tuple[ParamSpec, ...]
    runner: Callable[[], Runner]  # factory: called lazily, may import heavy things
    devices: tuple[str, ...] = ("cpu", "cuda")
    learned: bool = False  # True: it runs with a weight set; declare those with engine.weights.declare_weights
    licence: str = "MIT (this implementation)"
    provenance: str = ""
    is_baseline: bool = False
    min_side: int = 8  # smallest accepted image side, in pixels
    url: str = ""
    #: A zero-argument factory of a tiny valid input for the contract tests (``tests/contract/``, through
    #: :func:`engine.examples.method_example`); ``None`` uses :func:`engine.examples.example_input` for the input kind
    #: at ``max(32, min_side)`` pixels a side. Set it only when that input does not suit the method (e.g. a face
    #: method needing a larger crop).
    example_input: Callable[[], MethodInput] | None = None
    #: Peak memory the method needs per input pixel (frames × height × width), in bytes, decoded input included;
    #: measured with ``scripts/method_memory.py``. Jobs whose estimate passes the memory budget
    #: (``engine.limits``) are refused before anything is decoded. The default is deliberately pessimistic.
    bytes_per_pixel: int = 400
    #: For a method that tiles (or downscales) large frames: the largest area, in pixels, it works on at once. Above
    #: it only the full-size input and output arrays keep growing (``engine.limits.FULL_SIZE_BYTES_PER_PIXEL``).
    working_pixels: int | None = None
    #: For a method whose memory depends on its parameters (a network that runs on the image downscaled to a
    #: ``max_side`` the user may raise): bytes a job needs, ``memory(resolved_params, frames, width, height)``; it
    #: replaces the ``bytes_per_pixel`` estimate (:class:`engine.limits.DownscaledMemory` is the usual one).
    memory: Callable[[Mapping[str, Any], int, int, int], int] | None = None
    #: On the CPU, at most one intra-op thread per this many pixels of work (the input's pixels, frames × height ×
    #: width, or ``working_pixels`` when smaller), never more than the process's share (``engine.threads``). For
    #: methods made of many small operations (an iterative solver, a network on a downscaled image), where waking a
    #: second, sleeping thread for each operation costs more than it saves below that size; ``None`` (networks on
    #: full-size images): the whole share. Measured with ``python -m engine.speed --threads 1`` / ``--threads 2``.
    pixels_per_thread: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "task", Task(self.task))
        object.__setattr__(self, "input_kind", InputKind(self.input_kind))

    @property
    def weights(self) -> tuple[str, ...]:
        """The names of the weight sets this method can run with, the default first: the sets it declared
        (``engine.weights.declare_weights``), then those installed or imported into the cache. Named once, there."""
        if not self.learned:
            return ()
        from .weights import weight_sets_for

        return tuple(ws.name for ws in weight_sets_for(self.name))

    def output(self, name: str) -> OutputSpec:
        for out in self.outputs:
            if out.name == name:
                return out
        raise KeyError(name)

    def defaults(self) -> dict[str, Any]:
        return {p.name: p.default for p in self.params}

    def resolve_params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """Fill defaults, coerce types and check ranges; unknown names are an error."""
        given = dict(given or {})
        known = {p.name: p for p in self.params}
        unknown = sorted(set(given) - set(known))
        if unknown:
            raise ParameterError(f"{self.name}: unknown parameter(s) {unknown}; known: {sorted(known)}")
        return {name: spec.coerce(given.get(name, spec.default)) for name, spec in known.items()}

    def check_input(self, inputs: MethodInput) -> None:
        low, high = self.input_kind.frame_range
        n = len(inputs.frames)
        if n < low or (high is not None and n > high):
            raise InputKindError(f"{self.name} needs {self.input_kind.label}; got {n} image(s)")
        problem = frame_size_problem(inputs.frames)
        if problem:
            raise InputKindError(f"{self.name}: {problem}")
        h, w = inputs.frames[0].shape[:2]
        if min(h, w) < self.min_side:
            raise InputKindError(
                f"{self.name}: the image is {w}×{h} pixels; at least {self.min_side}×{self.min_side} is needed"
            )


def _method_modules() -> tuple[str, ...]:
    from .methods import METHOD_MODULES

    return METHOD_MODULES


METHODS: Registry[MethodSpec] = Registry("method", UnknownMethodError, modules=_method_modules)


def register(spec: MethodSpec) -> MethodSpec:
    return METHODS.add(spec.name, spec)


def all_methods(include_baselines: bool = True) -> list[MethodSpec]:
    specs = sorted(METHODS.values(), key=lambda s: (s.is_baseline, s.year, s.name))
    return [s for s in specs if include_baselines or not s.is_baseline]


def get_method(name: str) -> MethodSpec:
    return METHODS.get(name)


def find_method(name: str) -> MethodSpec:
    """``name``'s spec, importing only what it needs: the spec if already registered, else its own module when the
    method is named after one (``engine/methods/<name>.py``), else the whole registry (:func:`get_method`, whose
    error lists every name). The CLI runs one method: it need not import the other methods' libraries."""
    if name in METHODS._entries:
        return METHODS._entries[name]
    module = f"{__package__}.methods.{name}"
    if isinstance(name, str) and module in _method_modules():
        importlib.import_module(module)
        if name in METHODS._entries:
            return METHODS._entries[name]
    return get_method(name)


def methods_for(kind: InputKind, include_baselines: bool = True) -> list[MethodSpec]:
    return [s for s in all_methods(include_baselines) if s.input_kind == kind]


def run_method(name: str, inputs: MethodInput, params: Mapping[str, Any] | None = None, *,
               device: str | None = None, progress: Callable[[float, str], None] | None = None,
               weights: str | None = None) -> tuple[MethodResult, RunContext, dict[str, Any]]:
    """Validate, resolve the device and run one method. Returns (result, context, resolved params).

    This is the single entry point used by the CLI, the worker and the benchmark runner.
    """
    from .device import resolve_device

    spec = find_method(name)
    resolved = spec.resolve_params(params)
    spec.check_input(inputs)
    dev = resolve_device(device)
    if dev.type not in spec.devices:
        raise InputKindError(f"{name} does not run on {dev.type}; supported: {', '.join(spec.devices)}")
    for index, frame in enumerate(inputs.frames):
        if frame.dtype.kind == "f" and not np.isfinite(frame).all():
            raise InputKindError(f"{name}: frame {index + 1} holds values that are not finite numbers (NaN or "
                                 f"infinity)")
    report = progress or (lambda f, m: None)
    ctx = RunContext(device=dev, progress=report, weights=weights)
    runner = spec.runner()
    start = time.perf_counter()
    report(0.0, f"starting {name}")
    with method_threads(spec, inputs, dev) as ctx.threads:
        result = runner(inputs, resolved, ctx)
    ctx.timings["total"] = time.perf_counter() - start
    check_finite_result(spec, result)
    report(1.0, "done")
    return result, ctx, resolved


def work_pixels(spec: MethodSpec, inputs: MethodInput) -> int:
    """The pixels a method works on: all input frames' pixels, capped by its ``working_pixels`` when it tiles or
    downscales."""
    pixels = sum(int(f.shape[0]) * int(f.shape[1]) for f in inputs.frames)
    return min(pixels, spec.working_pixels) if spec.working_pixels else pixels


@contextlib.contextmanager
def method_threads(spec: MethodSpec, inputs: MethodInput, device):
    """Run a method's CPU work with the intra-op threads it can use (``MethodSpec.pixels_per_thread``), and give
    the process's own count back afterwards. Yields the count used: the process's own for a method without the
    setting, None on a GPU or where torch is not loaded (then nothing changes)."""
    torch = sys.modules.get("torch")
    if torch is None or device.type != "cpu":
        yield None
        return
    if not spec.pixels_per_thread:
        yield torch.get_num_threads()
        return
    from .threads import threads_for_work

    before = torch.get_num_threads()
    wanted = threads_for_work(work_pixels(spec, inputs), spec.pixels_per_thread, before)
    if wanted != before:
        torch.set_num_threads(wanted)
    try:
        yield wanted
    finally:
        if wanted != before:
            torch.set_num_threads(before)


def check_finite_result(spec: MethodSpec, result: MethodResult) -> None:
    """Refuse a result holding NaN or infinity: stored as PNG they would silently become 0 or 1."""
    for layer, array in result.layers.items():
        array = np.asarray(array)
        if array.dtype.kind == "f":
            bad = int(array.size - np.count_nonzero(np.isfinite(array)))
            if bad:
                raise NumericalError(f"{spec.name} produced {bad} value(s) that are not finite numbers in its "
                                     f"{layer!r} layer (the computation diverged); no result was stored")
    for name, value in result.values.items():
        try:
            array = np.asarray(value, dtype=float)
        except (TypeError, ValueError):
            continue
        if not np.isfinite(array).all():
            raise NumericalError(f"{spec.name} produced a value that is not a finite number in {name!r} (the "
                                 f"computation diverged); no result was stored")
