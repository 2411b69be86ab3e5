"""The one training loop every recipe shares (see :mod:`engine.train.recipe` for what a recipe supplies).

A run folder holds everything about one training run::

    RUN_DIR/run.json                 method, seed, steps, hyper-parameters, data, the reproducing command
    RUN_DIR/metrics.csv              one row per logged step: step, phase, loss scalars, lr, elapsed seconds
    RUN_DIR/validation.csv           one row per validation: step and the recipe's metrics
    RUN_DIR/curves.json              the same curves as JSON (what the dashboard plots)
    RUN_DIR/checkpoints/last.pt      model + optimisers + scaler + step (resume by running the same command again)
    RUN_DIR/export/<method>-<name>.safetensors and .md   the exported weights and their model card

Determinism: the seed fixes the model initialisation and (through :class:`~engine.train.data.BatchStream`) every
batch and augmentation, so an interrupted run resumed from its checkpoint sees the same data as an uninterrupted one.
Mixed precision (float16 autocast + gradient scaling) is used on CUDA only; the CPU runs in float32.

Weight averaging (``--set ema=D``, any recipe, off by default): after every step an exponential moving average of
the parameters and floating-point buffers is updated (``torch.optim.swa_utils.AveragedModel``) with decay
``min(D, (1 + n) / (10 + n))`` after n updates, so the first steps are not dominated by the initialisation. The
average is what is validated and exported; validation also logs the raw weights' metrics as ``raw/<metric>``, and
the checkpoint keeps both (resume continues the same average).

Data parallel (``--on ray --workers N``, :mod:`engine.distributed.ray_train`): the same loop runs in N processes,
each given a :class:`engine.distributed.ddp.DataParallel`; every step's batch is split between them and their
gradients averaged (see that module for exactly what equals the single-process run); rank 0 writes the run folder.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from tqdm import tqdm

from ..device import describe_device, resolve_device
from ..distributed.ddp import SingleProcess
from ..weights import cache_dir, save_state_dict, sha256_file, write_provenance
from .data import to_device
from .recipe import Phase, TrainingRecipe, get_recipe


@dataclass
class TrainRequest:
    method: str
    data: str | None  # a folder, or None / "synthetic" for data the recipe renders itself
    steps: int
    out: Path
    device: str | None = "auto"
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    name: str = "trained"  # weight-set name of the export
    amp: bool = True
    log_every: int = 10
    fresh: bool = False  # ignore an existing checkpoint
    install: bool = False  # also store the export in the weights cache as a selectable weight set
    progress: bool = True
    max_seconds: float | None = None  # stop early (and export) once this much training time has passed
    on: str | None = None  # data parallel on a Ray cluster (``--on``), with ``workers`` ranks
    workers: int = 1

    def command(self) -> str:
        import shlex

        parts = ["python", "-m", "engine", "train", self.method, "--data", self.data or "synthetic",
                 "--steps", str(self.steps), "--seed", str(self.seed), "--device", str(self.device or "auto"),
                 "--name", self.name]
        for key, value in sorted(self.overrides.items()):
            parts += ["--set", f"{key}={value}"]
        if not self.amp:
            parts.append("--no-amp")
        if self.max_seconds:
            parts += ["--max-seconds", f"{self.max_seconds:g}"]
        if self.on:
            parts += ["--on", self.on, "--workers", str(self.workers)]
        parts += ["--out", str(self.out)]
        return shlex.join(parts)


@dataclass
class TrainResult:
    run_dir: Path
    weights: Path
    card: Path
    sha256: str
    steps: int
    seconds: float
    first_loss: float
    final_loss: float
    validation: dict[str, float]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2 ** 32))
    torch.manual_seed(seed)


def phase_steps(phases: list[Phase], total: int) -> list[int]:
    """Split ``total`` steps over phases by weight; every phase gets at least one step."""
    weights = np.array([max(p.weight, 0.0) for p in phases], dtype=float)
    raw = weights / weights.sum() * total
    counts = np.maximum(1, np.floor(raw)).astype(int)
    counts[-1] = max(1, total - counts[:-1].sum())
    return counts.tolist()


def _set_lr(optimizers: Mapping[str, torch.optim.Optimizer], base: Mapping[str, list[float]], factor: float) -> float:
    for name, opt in optimizers.items():
        for group, lr in zip(opt.param_groups, base[name]):
            group["lr"] = float(lr * factor)  # a plain float: a NumPy scalar would make the checkpoint unloadable
    first = next(iter(optimizers.values()))
    return float(first.param_groups[0]["lr"])


class _CurveWriter:
    def __init__(self, path: Path):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.is_file():
            with path.open(newline="") as handle:
                self.rows = [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(handle)]

    def truncate(self, step: int) -> None:
        self.rows = [r for r in self.rows if int(r["step"]) <= step]

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)

    def flush(self) -> None:
        keys: list[str] = []
        for row in self.rows:
            keys += [k for k in row if k not in keys]
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.rows)
        os.replace(tmp, self.path)


def _number(text: str) -> Any:
    try:
        value = float(text)
        return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value
    except (TypeError, ValueError):
        return text


def ema_update(decay: float):
    """``multi_avg_fn`` for :class:`~torch.optim.swa_utils.AveragedModel`: an exponential moving average with the
    warm-up ``min(decay, (1 + n) / (10 + n))``; integer buffers (BatchNorm's batch counter) are copied."""
    def update(averaged: list[torch.Tensor], current: list[torch.Tensor], n_averaged: torch.Tensor) -> None:
        if not averaged[0].is_floating_point():
            torch._foreach_copy_(averaged, current)
            return
        n = float(n_averaged)
        torch._foreach_lerp_(averaged, current, 1.0 - min(decay, (1.0 + n) / (10.0 + n)))
    return update


def make_ema(model: torch.nn.Module, decay: float) -> torch.optim.swa_utils.AveragedModel | None:
    """The weight average of a run (None when ``decay`` is 0)."""
    if not decay:
        return None
    if not 0.0 < decay < 1.0:
        raise ValueError(f"ema must be 0 (off) or a decay between 0 and 1, not {decay}")
    return torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_update(decay), use_buffers=True)


def _save_checkpoint(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def train(request: TrainRequest, parallel: SingleProcess | None = None) -> TrainResult | None:
    """Train, checkpoint and export. ``parallel``: this process's rank of a data-parallel run (rank 0 writes the
    run folder and returns the result; the other ranks return None)."""
    parallel = parallel or SingleProcess()
    main = parallel.is_main
    recipe: TrainingRecipe = get_recipe(request.method)
    config = recipe.config(request.overrides)
    device = resolve_device(request.device)
    use_amp = bool(request.amp and device.type == "cuda")
    run_dir = Path(request.out)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
    data_dir = None if request.data in (None, "", "synthetic") else Path(request.data)

    seed_everything(request.seed)
    recipe.begin(config)
    model = recipe.build_model(config).to(device)
    train_set, val_set = recipe.make_datasets(data_dir, request.seed, config)
    stream = recipe.batch_stream(train_set, request.seed, config)
    phases = recipe.phases(config)
    counts = phase_steps(phases, request.steps)
    boundaries = np.cumsum([0] + counts).tolist()
    accumulate = max(1, int(config["accumulate"]))

    checkpoint_path = run_dir / "checkpoints" / "last.pt"
    metrics = _CurveWriter(run_dir / "metrics.csv")
    validation = _CurveWriter(run_dir / "validation.csv")
    step, elapsed, phase_index = 0, 0.0, -1
    optimizers: dict[str, torch.optim.Optimizer] = {}
    base_lrs: dict[str, list[float]] = {}
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ema = make_ema(model, float(config["ema"])) if main else None
    resume_state = None
    if main and checkpoint_path.is_file() and not request.fresh:
        resume_state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        if resume_state["method"] != request.method or resume_state["seed"] != request.seed:
            raise ValueError(f"{checkpoint_path} belongs to another run (method {resume_state['method']}, seed "
                             f"{resume_state['seed']}); use another --out or --fresh")
    resume_state = parallel.broadcast(resume_state)  # rank 0 reads the run folder; the others get its state
    if resume_state is not None:
        model.load_state_dict(resume_state["model"])
        if ema is not None:
            if "ema" not in resume_state:
                raise ValueError(f"{checkpoint_path} was trained without ema; resume it without --set ema, or use "
                                 f"--fresh")
            ema.load_state_dict(resume_state["ema"])
        step, elapsed = int(resume_state["step"]), float(resume_state["elapsed"])
        metrics.truncate(step)
        validation.truncate(step)
    elif request.fresh:
        metrics.rows, validation.rows = [], []
    parallel.sync_state(model)  # every replica starts from rank 0's parameters and buffers

    record = {"method": request.method, "seed": request.seed, "steps": request.steps, "config": config,
              "data": request.data or "synthetic", "device": describe_device(device), "amp": use_amp,
              "command": request.command(), "phases": [[p.name, c] for p, c in zip(phases, counts)],
              "torch": torch.__version__, "python": platform.python_version(),
              "resumed_from_step": step if resume_state else None,
              **({"data_parallel": parallel.describe()} if parallel.describe() else {})}
    if main:
        (run_dir / "run.json").write_text(json.dumps(record, indent=2, default=str))

    def enter_phase(index: int) -> None:
        nonlocal optimizers, base_lrs, phase_index
        phase_index = index
        optimizers = recipe.make_optimizers(model, config, phases[index])
        base_lrs = {n: [g["lr"] for g in o.param_groups] for n, o in optimizers.items()}

    def save() -> None:
        if not main:
            return
        _save_checkpoint(checkpoint_path, {
            "method": request.method, "seed": request.seed, "step": step, "elapsed": elapsed,
            "phase_index": phase_index, "model": model.state_dict(),
            "optimizers": {n: o.state_dict() for n, o in optimizers.items()}, "scaler": scaler.state_dict(),
            **({"ema": ema.state_dict()} if ema is not None else {}),
        })
        metrics.flush()
        validation.flush()
        write_curves(run_dir, metrics.rows, validation.rows)

    def evaluate(net: torch.nn.Module) -> dict[str, float]:
        net.eval()
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
            result = {k: float(v) for k, v in recipe.validate(net, val_set, device, config).items()}
        net.train()
        return result

    def run_validation() -> dict[str, float]:
        if ema is None:
            result = evaluate(model)
            validation.append({"step": step, **result})
            return result
        result = evaluate(ema.module)
        validation.append({"step": step, **result, **{f"raw/{k}": v for k, v in evaluate(model).items()}})
        return result

    model.train()
    bar = tqdm(total=request.steps, initial=min(step, request.steps), disable=not (request.progress and main),
               desc=f"train {request.method}", unit="step", dynamic_ncols=True)
    val_every = int(config["val_every"])
    checkpoint_every = int(config["checkpoint_every"])
    window: list[float] = []
    last_val: dict[str, float] = {}
    tick = time.perf_counter()
    while step < request.steps:
        index = int(np.searchsorted(boundaries, step, side="right") - 1)
        if index != phase_index:
            enter_phase(index)
            if resume_state is not None and resume_state.get("phase_index") == index:
                for name, opt in optimizers.items():
                    if name in resume_state["optimizers"]:
                        opt.load_state_dict(resume_state["optimizers"][name])
                scaler.load_state_dict(resume_state["scaler"])
                resume_state = None
        phase = phases[index]
        lr = _set_lr(optimizers, base_lrs, recipe.lr_factor(step - boundaries[index], counts[index], config, phase))
        shares = [parallel.shard(stream.batch(step, m, accumulate)) for m in range(accumulate)]
        batches = [(to_device(share, device), weight) for share, weight in shares]
        scalars: dict[str, float] = {}
        total = 0.0
        for opt_name in phase.optimizers:
            model.zero_grad(set_to_none=True)  # the previous optimiser's backward may have touched these params
            for batch, weight in batches:
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    loss, parts = recipe.loss(model, batch, phase, opt_name)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{request.method}: loss is {float(loss)} at step {step} "
                                             f"({opt_name}); lower the learning rate")
                if weight != 1.0:  # this rank's share of the global batch (data parallel)
                    loss = loss * weight
                    parts = {k: float(v) * weight for k, v in parts.items()}
                scaler.scale(loss / accumulate).backward()
                total += float(loss.detach()) / accumulate
                for k, v in parts.items():
                    key = k if len(phase.optimizers) == 1 else f"{opt_name}/{k}"
                    scalars[key] = scalars.get(key, 0.0) + float(v) / accumulate
            parallel.average_gradients(p for g in optimizers[opt_name].param_groups for p in g["params"])
            scaler.step(optimizers[opt_name])
        scaler.update()
        parallel.sync_state(model, buffers_only=True)
        if ema is not None:
            ema.update_parameters(model)
        if parallel.world > 1:  # the global batch's losses (each rank's are already weighted by its share)
            reduced = parallel.reduce_mean({"loss": total, **scalars}, 1.0)
            total, scalars = reduced.pop("loss"), reduced
        step += 1
        now = time.perf_counter()
        elapsed += now - tick
        tick = now
        window.append(total)
        if step % request.log_every == 0 or step == 1 or step == request.steps:
            metrics.append({"step": step, "phase": phase.name, "loss": total, **scalars, "lr": lr,
                            "seconds": round(elapsed, 3)})
        samples_per_s = step * int(config["batch_size"]) * accumulate / max(elapsed, 1e-9)
        bar.set_postfix(loss=f"{np.mean(window[-20:]):.4f}", phase=phase.name, samples_s=f"{samples_per_s:.1f}")
        bar.update(1)
        if main and val_every and step % val_every == 0 and step < request.steps:
            last_val = run_validation()
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4f}" for k, v in last_val.items()))
        if checkpoint_every and step % checkpoint_every == 0:
            save()
        if request.max_seconds and parallel.decide(elapsed >= request.max_seconds) and step < request.steps:
            if main:
                bar.write(f"time budget of {request.max_seconds:g} s reached at step {step} of {request.steps}")
            break
    bar.close()
    steps_done = step
    if not main:
        return None
    last_val = run_validation()
    save()
    return export_run(recipe, model if ema is None else ema.module, config, request, run_dir, device, elapsed,
                      metrics.rows, validation.rows, last_val, steps_done=steps_done, parallel=parallel.describe())


def write_curves(run_dir: Path, metric_rows: list[dict], validation_rows: list[dict]) -> None:
    curves = {"train": metric_rows, "validation": validation_rows}
    (run_dir / "curves.json").write_text(json.dumps(curves, default=float))


def _loss_summary(rows: list[dict]) -> tuple[float, float, dict[str, float]]:
    losses = [float(r["loss"]) for r in rows if "loss" in r]
    if not losses:
        return math.nan, math.nan, {}
    tail = rows[-max(1, len(rows) // 10):]
    keys = [k for k in tail[-1] if k not in ("step", "phase", "lr", "seconds")]
    final = {k: float(np.mean([float(r[k]) for r in tail if k in r and r[k] != ""])) for k in keys}
    return losses[0], final.get("loss", losses[-1]), final


def export_run(recipe: TrainingRecipe, model: torch.nn.Module, config: Mapping[str, Any], request: TrainRequest,
               run_dir: Path, device: torch.device, seconds: float, metric_rows: list[dict],
               validation_rows: list[dict], validation: dict[str, float],
               steps_done: int | None = None, parallel: dict[str, Any] | None = None) -> TrainResult:
    """Write the safetensors file and its model card into ``RUN_DIR/export`` (and the cache with ``install``).
    With ``ema`` in the config, ``model`` is the run's weight average."""
    state, card_fields = recipe.export(model, config)
    averaged = float(config.get("ema") or 0.0)
    if averaged:
        card_fields = {**card_fields, "weights": (
            f"exponential moving average of the parameters and buffers over the run (decay {averaged:g}, warm-up "
            f"min(decay, (1+n)/(10+n))); the raw last weights are in the run's checkpoint")}
    if parallel:
        card_fields = {**card_fields, "data parallel": (
            f"{parallel['on']}: {parallel['workers']} worker(s), torch.distributed {parallel['backend']}; each "
            f"step's batch of {config['batch_size']} split between them, gradients averaged")}
    steps = request.steps if steps_done is None else steps_done
    stem = f"{request.method}-{request.name}"
    export_dir = run_dir / "export"
    weights_path = export_dir / f"{stem}.safetensors"
    digest = save_state_dict(state, weights_path, metadata={
        "method": request.method, "weight_set": request.name, "steps": str(steps), "seed": str(request.seed),
        "command": request.command()})
    first, final, final_parts = _loss_summary(metric_rows)
    card_path = export_dir / f"{stem}.md"
    card_path.write_text(model_card(
        recipe, request, config, digest, weights_path.name, seconds, describe_device(device), first, final_parts,
        validation, validation_rows, ({**card_fields, "steps done": steps} if steps != request.steps else card_fields),
        recipe.data_licence(None if request.data in (None, "", "synthetic")
                                                                      else Path(request.data))))
    if request.install:
        install_weights(request.method, request.name, weights_path, card_path, run_dir)
    return TrainResult(run_dir=run_dir, weights=weights_path, card=card_path, sha256=digest, steps=steps,
                       seconds=seconds, first_loss=first, final_loss=final, validation=validation)


def install_weights(method: str, name: str, weights_path: Path, card_path: Path, run_dir: Path) -> Path:
    """Copy an exported file into the weights cache with a provenance record, so it resolves by name."""
    import shutil

    folder = cache_dir() / method
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{name}.safetensors"
    shutil.copyfile(weights_path, target)
    shutil.copyfile(card_path, folder / f"{name}.md")
    provenance = {"sha256": sha256_file(target), "trained_in": str(run_dir.resolve()), "model_card": f"{name}.md",
                  "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_provenance(method, name, provenance)
    return target


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def model_card(recipe: TrainingRecipe, request: TrainRequest, config: Mapping[str, Any], digest: str, filename: str,
               seconds: float, device: str, first_loss: float, final_parts: Mapping[str, float],
               validation: Mapping[str, float], validation_rows: list[dict], card_fields: Mapping[str, Any],
               data_licence: str) -> str:
    lines = [f"# {request.method} · weight set `{request.name}`", "",
             f"{recipe.description}".strip(), "",
             "| field | value |", "|---|---|",
             f"| file | `{filename}` |", f"| sha256 | `{digest}` |",
             f"| training data | {request.data or 'synthetic'} |", f"| data licence | {data_licence} |",
             f"| steps | {request.steps} |", f"| wall time | {seconds:.1f} s |", f"| device | {device} |",
             f"| seed | {request.seed} |", f"| torch | {torch.__version__} |",
             f"| date | {time.strftime('%Y-%m-%d', time.gmtime())} |"]
    for key, value in card_fields.items():
        lines.append(f"| {key} | {_fmt(value)} |")
    lines += ["", "## Reproduce", "", "```", request.command(), "```", "",
              "## Hyper-parameters", "", "| name | value |", "|---|---|"]
    lines += [f"| {k} | {_fmt(v)} |" for k, v in sorted(config.items())]
    lines += ["", "## Losses", "", f"First logged loss {first_loss:.4g}; mean over the last tenth of the run:", "",
              "| loss term | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in final_parts.items()]
    lines += ["", "## Validation", ""]
    if validation:
        directions = recipe.metric_higher_is_better
        lines += ["| metric | final | better |", "|---|---|---|"]
        lines += [f"| {k} | {v:.4g} | {'higher' if directions.get(k) else 'lower' if k in directions else '?'} |"
                  for k, v in validation.items()]
        lines += ["", f"Validated {len(validation_rows)} time(s) during training; curves in `validation.csv` and "
                      f"`curves.json` of the run folder."]
    else:
        lines.append("No validation metrics were computed.")
    return "\n".join(lines) + "\n"
