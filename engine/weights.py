"""Weight sets as data, their resolution to a verified file, and safe loading.

A learned method declares each weight set it can use with :func:`declare_weights` (normally at the top level of its
method module, beside ``register(MethodSpec(...))``): the project's own shipped file under ``assets/weights/`` and,
where the authors released one, the official file (public location, expected checksum, format, licence and the name
of a converter that turns it into our state dict). Declaring never touches the disk or the network.

Resolution (:func:`resolve`) takes a weight-set name or an explicit file path and returns a path whose sha256 has
been checked, searching in this order:

1. an explicit path given by the user (``--weights FILE``);
2. the project cache, ``$INTRINSIC_LAB_DATA/weights/<method>/`` (or ``~/.cache/intrinsic-lab/weights/<method>/``),
   where ``python -m engine weights import`` stores converted official weights with a provenance JSON;
3. the shipped file under ``assets/weights/``.

A missing or corrupt file raises :class:`~engine.errors.WeightsUnavailableError` whose message tells the user how to
get the weights; the dashboard shows it as "weights unavailable: …".

Loading (:func:`load_state_dict`) reads safetensors, or a PyTorch file through ``torch.load(weights_only=True,
map_location="cpu")`` -- never a full unpickle. Other formats (Caffe HDF5, numpy ``.npz``, TensorFlow checkpoints)
only enter through a converter.

A method's runner should not resolve and load by hand: :func:`engine.models.load_model` does both once per file and
device and caches the network. The weight sets a method declares (plus any imported or installed in the cache) are its
choices everywhere -- ``MethodSpec.weights`` is derived from them, never repeated.

Example::

    from engine.weights import resolve, load_state_dict
    state = load_state_dict(resolve("cgintrinsics", None))   # the default (first declared) weight set
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Mapping

from .errors import WeightsUnavailableError
from .registries import Registry

REPO_ROOT = Path(__file__).resolve().parents[1]
ASSETS_WEIGHTS = REPO_ROOT / "assets" / "weights"
DATA_ENV = "INTRINSIC_LAB_DATA"

#: File formats a weight set may declare. Only the first two are ever loaded directly.
FORMATS = ("safetensors", "torch", "numpy-npz", "caffe-hdf5", "tensorflow-checkpoint")
_TORCH_SUFFIXES = (".pth", ".pt", ".pkl", ".checkpoint", ".ckpt", ".bin")


@dataclass(frozen=True)
class WeightSet:
    """One set of weights a method can use, declared as data.

    ``filename`` is the shipped file under ``assets/weights/`` (``None`` for sets that are never shipped, such as an
    official release we may not redistribute). ``sha256`` is the checksum of that shipped file or, for an official
    set, of the file the authors published (``None`` where nobody has published one). ``converter`` is a
    ``"module:function"`` name; the function takes the official file's path and returns a state dict
    (``dict[str, torch.Tensor]``) for our implementation.
    """

    method: str
    name: str
    description: str
    format: str = "safetensors"
    filename: str | None = None
    sha256: str | None = None
    source_url: str = ""
    source_filename: str = ""  # how the official release names its file (matched by `weights import`)
    licence: str = ""
    converter: str | None = None
    model_card: str | None = None  # repository-relative path of the markdown card
    official: bool = False

    def __post_init__(self):
        if self.format not in FORMATS:
            raise ValueError(f"weight set {self.key}: format {self.format!r} is not one of {FORMATS}")
        if self.sha256 is not None and (len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256)):
            raise ValueError(f"weight set {self.key}: sha256 must be 64 lowercase hex digits")

    @property
    def key(self) -> str:
        return f"{self.method}/{self.name}"

    @property
    def shipped_path(self) -> Path | None:
        return ASSETS_WEIGHTS / self.filename if self.filename else None

    @property
    def model_card_path(self) -> Path | None:
        return REPO_ROOT / self.model_card if self.model_card else None  # absolute paths stay absolute

    def how_to_get(self) -> str:
        """A sentence for the user on how to obtain this weight set."""
        if self.official:
            where = f" from {self.source_url}" if self.source_url else ""
            name = f" ({self.source_filename})" if self.source_filename else ""
            return (f"download the official weights{name}{where}, then run "
                    f"`python -m engine weights import {self.method} FILE --name {self.name}`")
        card = f"; the model card {self.model_card} gives the command that reproduces it" if self.model_card else ""
        if self.filename is None:
            return f"train them again and install them (`python -m engine train {self.method} … --install`){card}"
        return f"restore assets/weights/{self.filename} from the repository (git checkout){card}"


_WEIGHTS: dict[str, Registry[WeightSet]] = {}  # method → its declared weight sets


def _registry(method: str) -> Registry[WeightSet]:
    return Registry("weight set", WeightsUnavailableError, owner=method)


def declare_weights(weight_set: WeightSet) -> WeightSet:
    """Add a weight set to the registry. A duplicate (method, name) is an error, never a silent overwrite."""
    return _WEIGHTS.setdefault(weight_set.method, _registry(weight_set.method)).add(weight_set.name, weight_set)


def installed_weight_sets(method: str) -> list[WeightSet]:
    """Weight sets a user trained and installed (``python -m engine train … --install``): found in the cache by
    their provenance record, never declared in code. Declared names take precedence."""
    folder = cache_dir() / method
    if not folder.is_dir():
        return []
    declared = _WEIGHTS.get(method, {})
    found = []
    for record in sorted(folder.glob("*.json")):
        name = record.stem
        provenance = _read_provenance(record) or {}
        if name in declared or "trained_in" not in provenance or not (folder / f"{name}.safetensors").is_file():
            continue
        found.append(WeightSet(method=method, name=name, description=f"trained locally in {provenance['trained_in']}",
                               licence="see the model card", model_card=str(folder / provenance.get("model_card", ""))))
    return found


def weight_sets_for(method: str) -> list[WeightSet]:
    """The weight sets a method declared, in declaration order (the first is the default), then installed ones."""
    return list(_WEIGHTS.get(method, {}).values()) + installed_weight_sets(method)


def all_weight_sets() -> list[WeightSet]:
    return [ws for method in list(_WEIGHTS) for ws in weight_sets_for(method)]


def get_weight_set(method: str, name: str | None = None) -> WeightSet:
    sets = _registry(method)
    for ws in weight_sets_for(method):
        sets.add(ws.name, ws)
    if not sets:
        raise WeightsUnavailableError(f"{method}: no weight sets are declared for this method")
    return next(iter(sets.values())) if name is None else sets.get(name)


# --- files -----------------------------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Where imported and downloaded weights live: ``$INTRINSIC_LAB_DATA/weights`` or ``~/.cache/intrinsic-lab``."""
    data = os.environ.get(DATA_ENV)
    if data:
        return Path(data) / "weights"
    return Path.home() / ".cache" / "intrinsic-lab" / "weights"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ResolvedWeights:
    path: Path
    sha256: str
    source: str  # "explicit", "cache" or "shipped"
    weight_set: WeightSet | None

    def describe(self) -> dict:
        return {"path": str(self.path), "sha256": self.sha256, "source": self.source,
                "weight_set": self.weight_set.key if self.weight_set else None}


def _cached_paths(ws: WeightSet) -> tuple[Path, Path]:
    folder = cache_dir() / ws.method
    return folder / f"{ws.name}.safetensors", folder / f"{ws.name}.json"


def write_provenance(method: str, name: str, record: Mapping) -> Path:
    """Write the provenance record of a weight set stored in the cache (``<cache>/<method>/<name>.json``, beside
    ``<name>.safetensors``): its ``sha256`` is what resolution checks the file against."""
    path = cache_dir() / method / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(record), indent=2))
    return path


def _read_provenance(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _verify(path: Path, expected: str | None, what: str, ws: WeightSet | None) -> str:
    actual = sha256_file(path)
    if expected is not None and actual != expected:
        hint = f" To fix it, {ws.how_to_get()}." if ws else ""
        raise WeightsUnavailableError(
            f"{what} {path} is corrupt or not the expected file: sha256 {actual[:16]}…, expected {expected[:16]}….{hint}"
        )
    return actual


def _looks_like_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.endswith((".safetensors", *_TORCH_SUFFIXES)) or Path(text).exists()


def resolve_weights(method: str, name_or_path: str | None = None) -> ResolvedWeights:
    """Find and verify the weights for ``method``; see the module docstring for the search order."""
    if name_or_path and _looks_like_path(name_or_path):
        path = Path(name_or_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailableError(f"{method}: weights file {path} does not exist")
        # A user's own file has no published checksum unless it is one of ours; if its name matches a declared
        # set, hold it to that checksum, otherwise record its hash so every result says what produced it.
        match = next((ws for ws in weight_sets_for(method) if ws.filename == path.name and ws.sha256), None)
        digest = _verify(path, match.sha256 if match else None, f"{method}: weights file", match)
        return ResolvedWeights(path, digest, "explicit", match)

    ws = get_weight_set(method, name_or_path)
    cached, provenance_path = _cached_paths(ws)
    if cached.is_file():
        provenance = _read_provenance(provenance_path)
        if provenance is None or "sha256" not in provenance:
            raise WeightsUnavailableError(
                f"{ws.key}: cached file {cached} has no readable provenance record {provenance_path.name}; "
                f"re-run `python -m engine weights import {ws.method} FILE --name {ws.name}`"
            )
        digest = _verify(cached, provenance["sha256"], f"{ws.key}: cached weights", ws)
        return ResolvedWeights(cached, digest, "cache", ws)

    shipped = ws.shipped_path
    if shipped is not None and shipped.is_file():
        if ws.sha256 is None:
            raise WeightsUnavailableError(f"{ws.key}: the shipped file {shipped.name} has no declared sha256")
        digest = _verify(shipped, ws.sha256, f"{ws.key}: shipped weights", ws)
        return ResolvedWeights(shipped, digest, "shipped", ws)

    raise WeightsUnavailableError(f"{ws.key}: no weights file found (looked in {cached.parent}"
                                  f"{' and ' + str(shipped.parent) if shipped else ''}); to get them, "
                                  f"{ws.how_to_get()}")


def resolve(method: str, name_or_path: str | None = None) -> Path:
    """The verified path of ``method``'s weights (a weight-set name, a file path, or ``None`` for the default)."""
    return resolve_weights(method, name_or_path).path


def load_state_dict(path: str | Path) -> dict:
    """Load a state dict safely: safetensors, or torch files with ``weights_only=True`` onto the CPU."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsUnavailableError(f"{path}: not a readable safetensors file ({exc})") from None
    if path.suffix in _TORCH_SUFFIXES:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # weights_only refuses pickled code with an UnpicklingError; that is the point
            raise WeightsUnavailableError(
                f"{path}: cannot be loaded safely as a PyTorch state dict ({type(exc).__name__}: {exc})"
            ) from None
        for key in ("state_dict", "model", "net"):  # common checkpoint wrappers
            if isinstance(obj, Mapping) and key in obj and isinstance(obj[key], Mapping):
                obj = obj[key]
        if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise WeightsUnavailableError(f"{path}: does not hold a flat state dict of tensors")
        return {str(k).removeprefix("module."): v for k, v in obj.items()}
    raise WeightsUnavailableError(
        f"{path}: {path.suffix or 'extensionless'} files are not loaded directly; "
        f"convert them with `python -m engine weights import METHOD {path}`"
    )


def load_weights(method: str, name_or_path: str | None = None) -> tuple[dict, ResolvedWeights]:
    """Resolve, verify and load in one call; returns the state dict and what was used (for result provenance)."""
    resolved = resolve_weights(method, name_or_path)
    return load_state_dict(resolved.path), resolved


def save_state_dict(state: Mapping, path: str | Path, metadata: Mapping[str, str] | None = None) -> str:
    """Write a state dict as safetensors (contiguous CPU tensors); returns the file's sha256."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    save_file(tensors, str(path), metadata=dict(metadata or {}))
    return sha256_file(path)


# --- verification and import ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class VerifyReport:
    key: str
    status: str  # "ok", "missing", "corrupt", "not shipped"
    path: str | None
    detail: str


def verify(ws: WeightSet) -> VerifyReport:
    """Check every file this weight set could resolve to (cache and shipped); never raises."""
    cached, _ = _cached_paths(ws)
    candidates = []
    if cached.is_file():
        candidates.append("cache")
    if ws.shipped_path is not None and ws.shipped_path.is_file():
        candidates.append("shipped")
    if not candidates:
        status = "missing" if ws.filename else "not installed"
        return VerifyReport(ws.key, status, None, ws.how_to_get())
    for source in candidates:
        try:
            if source == "cache":
                provenance = _read_provenance(_cached_paths(ws)[1]) or {}
                _verify(cached, provenance.get("sha256", "0" * 64), f"{ws.key}: cached weights", ws)
            else:
                _verify(ws.shipped_path, ws.sha256 or "0" * 64, f"{ws.key}: shipped weights", ws)
        except WeightsUnavailableError as exc:
            return VerifyReport(ws.key, "corrupt", str(cached if source == "cache" else ws.shipped_path), str(exc))
    path = cached if candidates[0] == "cache" else ws.shipped_path
    return VerifyReport(ws.key, "ok", str(path), f"sha256 verified ({', '.join(candidates)})")


def resolve_converter(name: str) -> Callable:
    module, _, attr = name.partition(":")
    if not attr:
        raise ValueError(f"converter {name!r} must be written 'module:function'")
    return getattr(importlib.import_module(module), attr)


def import_official(method: str, source: str | Path, name: str | None = None) -> tuple[Path, dict]:
    """Convert an official weights file into the cache and record its provenance.

    The source file is checked against the declared checksum (where one is known) before the converter runs.
    Returns the path of the stored safetensors file and the provenance record.
    """
    source = Path(source).expanduser()
    if not source.exists():
        raise WeightsUnavailableError(f"{source}: no such file or folder")
    candidates = [ws for ws in weight_sets_for(method) if ws.official or ws.converter]
    if name is not None:
        ws = get_weight_set(method, name)
    elif len(candidates) == 1:
        ws = candidates[0]
    else:
        matching = [ws for ws in candidates if ws.source_filename and ws.source_filename == source.name]
        if len(matching) != 1:
            names = ", ".join(w.name for w in candidates) or "none"
            raise WeightsUnavailableError(f"{method}: say which weight set this file is with --name (official sets: {names})")
        ws = matching[0]
    if ws.converter is None:
        raise WeightsUnavailableError(f"{ws.key}: no converter is declared for this weight set")
    source_sha = sha256_file(source) if source.is_file() else None
    if ws.official and ws.sha256 and source_sha != ws.sha256:
        raise WeightsUnavailableError(
            f"{ws.key}: {source.name} has sha256 {str(source_sha)[:16]}…, but the official release has "
            f"{ws.sha256[:16]}…; refusing to import a different file"
        )
    state = resolve_converter(ws.converter)(source)
    target, _ = _cached_paths(ws)
    digest = save_state_dict(state, target, metadata={"method": method, "weight_set": ws.name})
    provenance = {
        "weight_set": asdict(ws), "sha256": digest, "source_file": str(source.resolve()),
        "source_sha256": source_sha, "source_checksum_declared": ws.sha256 is not None,
        "converter": ws.converter, "tensors": len(state),
        "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_provenance(ws.method, ws.name, provenance)
    return target, provenance


def ensure_declarations_loaded() -> None:
    """Import every module that may declare weights: the method modules and the training recipes (by their lists,
    so this module never imports the registries)."""
    from .methods import METHOD_MODULES
    from .train import RECIPE_MODULES

    for module in (*METHOD_MODULES, *RECIPE_MODULES):
        importlib.import_module(module)
