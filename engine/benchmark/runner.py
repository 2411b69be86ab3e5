"""The benchmark runner: one queued job per (method, dataset item), resumable, reusing identical configurations.

1. **Plan.** The configuration — methods with their resolved parameters and weight sets, the dataset's adapter,
   folder fingerprint and split, the metrics with their protocols, the input convention — is hashed. The same hash
   finds the same ``benchmark_runs`` row, so running an identical configuration again re-uses every result.
2. **Enqueue.** For each (method, item) that has no entry yet, the item is converted to the method's input
   convention (:mod:`.convention`), stored as an input (deduplicated by content), and a job is queued with
   :func:`db.store.enqueue_job` — which itself returns an identical queued/running/finished job instead of a new
   one. GPU workers (``python -m engine worker``) do the work; ``work_inline`` lets this process work too.
3. **Collect.** Each finished job's stored layers are scored against the item's ground truth with every metric
   the dataset declares and the method's outputs can feed; scores, runtime, device and weights are recorded.
   Interrupting at any point loses nothing: rerunning picks up the pending entries (and retries failed ones).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from db import benchmark_store as bstore
from db import store
from db.artifacts import ArtifactStore, open_artifacts
from db.session import session_scope

from ..datasets import ADAPTERS, DatasetAdapter, DatasetError, get_adapter
from ..errors import IntrinsicLabError
from ..metrics import get_metric
from ..registry import MethodSpec, all_methods, get_method
from . import convention

#: Bump when the way numbers are produced changes (conversion, metric definitions), so old runs are not reused.
PROTOCOL_VERSION = 1


class BenchmarkError(IntrinsicLabError):
    """The benchmark cannot be set up as asked (unknown dataset, no eligible method, …)."""


@dataclass
class BenchConfig:
    methods: tuple[str, ...]
    dataset: str  # a registered dataset name, or an adapter kind (then ``folder`` is needed)
    split: str = "test"
    folder: str | None = None
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # method → parameter overrides
    weights: dict[str, str] = field(default_factory=dict)  # method → weight set


@dataclass
class ResolvedDataset:
    name: str
    adapter: DatasetAdapter
    folder: Path


@dataclass
class RunReport:
    run_id: int
    reused: bool  # the configuration had run before
    total: int
    succeeded: int
    failed: int
    pending: int
    queued_now: int
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.pending == 0


# --- configuration ----------------------------------------------------------------------------------------

def resolve_dataset(session, name: str, folder: str | None) -> ResolvedDataset:
    registered = bstore.get_dataset(session, name)
    if registered is not None:
        path = Path(folder) if folder else Path(registered.folder)
        return ResolvedDataset(name, get_adapter(registered.kind), path)
    if name in ADAPTERS:
        if not folder:
            raise BenchmarkError(f"dataset {name!r} is an adapter kind, not a registered dataset: give its folder "
                                 f"with --data DIR, or register it first (python -m engine datasets register)")
        return ResolvedDataset(name, get_adapter(name), Path(folder))
    known = [d.name for d in bstore.list_datasets(session)]
    raise BenchmarkError(f"unknown dataset {name!r}; registered: {', '.join(known) or 'none'}; "
                         f"adapter kinds (with --data DIR): {', '.join(ADAPTERS)}")


def eligible_methods(adapter: DatasetAdapter) -> list[MethodSpec]:
    return [s for s in all_methods() if _usable_metrics(s, adapter)]


def expand_methods(names: tuple[str, ...], adapter: DatasetAdapter) -> list[MethodSpec]:
    """Method specs for the names given; ``@baselines`` stands for every baseline that fits the dataset."""
    specs: list[MethodSpec] = []
    for name in names:
        chosen = [s for s in eligible_methods(adapter) if s.is_baseline] if name == "@baselines" else [get_method(name)]
        specs += [s for s in chosen if s.name not in {x.name for x in specs}]
    problems = []
    for spec in specs:
        if not convention.compatible(spec, adapter.input_kind):
            problems.append(f"{spec.name} takes {spec.input_kind.label}; {adapter.title} provides "
                            f"{adapter.input_kind.label}")
        elif not _usable_metrics(spec, adapter):
            needed = sorted({r for m in adapter.metrics for r in get_metric(m).pred_roles})
            problems.append(f"{spec.name} produces none of what {adapter.title}'s metrics need "
                            f"({', '.join(needed)})")
    if problems:
        raise BenchmarkError("cannot benchmark: " + "; ".join(problems))
    if not specs:
        raise BenchmarkError(f"no method to benchmark on {adapter.title}")
    return specs


def _usable_metrics(spec: MethodSpec, adapter: DatasetAdapter) -> list[str]:
    if not convention.compatible(spec, adapter.input_kind):
        return []
    roles = convention.output_roles(spec)
    return [m for m in adapter.metrics if set(get_metric(m).pred_roles) <= set(roles)]


def folder_fingerprint(folder: Path) -> str:
    """Names, sizes and modification times of every file: changes when the data on disk changes."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            stat = path.stat()
            digest.update(f"{path.relative_to(folder)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def weights_of(spec: MethodSpec, chosen: str | None) -> str | None:
    """The weight set a learned method will use (its default unless one is chosen); None for optimisation."""
    if chosen:
        return chosen
    return spec.weights[0] if spec.weights else None


def weights_version(spec: MethodSpec, weights: str | None) -> str | None:
    """sha256 of the weights file a learned method will load, so new weights make a new configuration.

    Unavailable weights are not an error here: the jobs fail with the weights manager's message, per entry.
    """
    if not spec.learned:
        return None
    from ..errors import WeightsUnavailableError
    from ..weights import resolve_weights

    try:
        return resolve_weights(spec.name, weights).sha256
    except WeightsUnavailableError as exc:
        return f"unavailable: {exc}"


def plan(config: BenchConfig, dataset: ResolvedDataset) -> tuple[str, dict[str, Any], list[MethodSpec]]:
    """(config hash, the recorded configuration, method specs)."""
    specs = expand_methods(config.methods, dataset.adapter)
    unknown = sorted(set(config.params) - {s.name for s in specs})
    if unknown:
        raise BenchmarkError(f"parameters given for method(s) not benchmarked: {', '.join(unknown)}")
    methods = {}
    for spec in specs:
        weights = weights_of(spec, config.weights.get(spec.name))
        methods[spec.name] = {
            "params": spec.resolve_params(config.params.get(spec.name)),
            "weights": weights,
            "weights_sha256": weights_version(spec, weights),
            "metrics": _usable_metrics(spec, dataset.adapter),
        }
    metric_names = sorted({m for entry in methods.values() for m in entry["metrics"]})
    recorded = {
        "protocol_version": PROTOCOL_VERSION,
        "dataset": {"kind": dataset.adapter.kind, "folder": str(dataset.folder.resolve()),
                    "fingerprint": folder_fingerprint(dataset.folder), "split": config.split},
        "methods": methods,
        "metrics": {m: get_metric(m).protocol for m in metric_names},
        "input_convention": convention.INPUT_CONVENTION,
    }
    digest = hashlib.sha256(json.dumps(recorded, sort_keys=True, default=str).encode()).hexdigest()
    return digest, recorded, specs


# --- the run ----------------------------------------------------------------------------------------------

Progress = Callable[[str], None]


def start(config: BenchConfig, *, sessions=None, artifacts: ArtifactStore | None = None,
          progress: Progress = lambda message: None) -> RunReport:
    """Plan the run and queue every missing (method, item) job. Returns where the run stands."""
    artifacts = artifacts or open_artifacts()
    with session_scope(sessions) as session:
        dataset = resolve_dataset(session, config.dataset, config.folder)
        items = dataset.adapter.items(dataset.folder, config.split)
        digest, recorded, specs = plan(config, dataset)
        run, created = bstore.get_or_create_run(
            session, digest, dataset=dataset.name, dataset_kind=dataset.adapter.kind,
            folder=str(dataset.folder.resolve()), split=config.split, task=dataset.adapter.task,
            methods=[s.name for s in specs], config=recorded)
        run_id = run.id
        existing = {(e.method, e.item): e.status for e in bstore.entries(session, run_id)}
    queued = 0
    for index, item in enumerate(items):
        todo = [s for s in specs if existing.get((s.name, item)) in (None, "failed")]
        if not todo:
            continue
        sample = dataset.adapter.load(dataset.folder, item)
        with session_scope(sessions) as session:
            for spec in todo:
                frames = convention.encode_inputs(sample, spec)
                h, w = sample.frames[0].shape[:2]
                record = store.get_or_create_input(session, frames, spec.input_kind, f"{dataset.name}/{item}", w, h,
                                                   frame_count=len(frames), artifacts=artifacts)
                method = recorded["methods"][spec.name]
                job = store.enqueue_job(session, record.id, spec.name, method["params"], method["weights"])
                entry = bstore.get_entry(session, run_id, spec.name, item)
                if entry is None:
                    bstore.add_entry(session, run_id, spec.name, item, input_id=record.id, job_id=job.id,
                                     weights=method["weights"])
                else:  # a failed entry of an earlier attempt: point it at the new job
                    entry.status, entry.error, entry.job_id, entry.input_id = "pending", None, job.id, record.id
                queued += 1
        progress(f"queued {item} ({index + 1}/{len(items)})")
    report = collect(run_id, sessions=sessions, artifacts=artifacts)
    report.reused, report.queued_now = not created, queued
    return report


def collect(run_id: int, *, sessions=None, artifacts: ArtifactStore | None = None) -> RunReport:
    """Score every pending entry whose job has finished; update the run's status."""
    artifacts = artifacts or open_artifacts()
    samples: dict[str, Any] = {}
    errors = []
    with session_scope(sessions) as session:
        run = bstore.get_run(session, run_id)
        adapter, folder = get_adapter(run.dataset_kind), Path(run.folder)
        for entry in bstore.entries(session, run_id):
            if entry.status != "pending":
                continue
            job = store.get_job(session, entry.job_id) if entry.job_id is not None else None
            if job is None:
                bstore.finish_entry(session, entry, error="its job was deleted")
                continue
            if job.status in ("queued", "running"):
                continue
            runtime = (job.timings or {}).get("total")
            if job.status != "succeeded":
                bstore.finish_entry(session, entry, error=job.error or f"job {job.status}", device=job.device)
                continue
            if entry.item not in samples:
                samples[entry.item] = adapter.load(folder, entry.item)
            try:
                scores = score_job(run.config["methods"][entry.method]["metrics"], get_method(entry.method), job,
                                   samples[entry.item], artifacts)
            except (ValueError, DatasetError, KeyError) as exc:
                bstore.finish_entry(session, entry, error=f"scoring failed: {exc}", runtime_s=runtime,
                                    device=job.device)
                errors.append(f"{entry.method} on {entry.item}: {exc}")
                continue
            bstore.finish_entry(session, entry, scores=scores, runtime_s=runtime, device=job.device)
        all_entries = bstore.entries(session, run_id)
        counts = {status: sum(e.status == status for e in all_entries) for status in bstore.ENTRY_STATUSES}
        errors += [f"{e.method} on {e.item}: {e.error}" for e in all_entries if e.status == "failed"
                   and f"{e.method} on {e.item}: {e.error}" not in errors]
        bstore.set_run_status(session, run, "complete" if counts["pending"] == 0 else "running")
    return RunReport(run_id, True, len(all_entries), counts["succeeded"], counts["failed"], counts["pending"], 0,
                     errors)


def score_job(metric_names: list[str], spec: MethodSpec, job, sample, artifacts: ArtifactStore) -> dict[str, float]:
    layers = {o.layer: (artifacts.get(o.artifact_key), o.kind) for o in job.outputs}
    values = (job.info or {}).get("values", {})
    pred = convention.predictions(spec, layers, values, sample.truth_colour_space)
    scores = {}
    for name in metric_names:
        metric = get_metric(name)
        if metric.applicable(pred, sample.truth):
            scores[name] = float(metric.compute(pred, sample.truth))
    if not scores:
        raise ValueError(f"none of the metrics {metric_names} could be computed from outputs {sorted(layers)}")
    return scores


def run(config: BenchConfig, *, sessions=None, artifacts: ArtifactStore | None = None, work_inline: bool = True,
        device: str | None = None, timeout_s: float | None = None, poll_s: float = 2.0,
        progress: Progress = lambda message: None) -> RunReport:
    """Start (or resume) a run and wait until every entry is scored, or ``timeout_s`` passes.

    With ``work_inline`` this process also claims and runs the run's jobs (any GPU workers help in parallel);
    without it, it only waits for the workers.
    """
    artifacts = artifacts or open_artifacts()
    report = start(config, sessions=sessions, artifacts=artifacts, progress=progress)
    progress(f"run {report.run_id}: {report.succeeded + report.failed}/{report.total} scored"
             + (" (configuration seen before: results re-used)" if report.reused else ""))
    worker = None
    if work_inline and report.pending:
        from ..worker import Worker, WorkerConfig

        with session_scope(sessions) as session:
            methods = tuple(bstore.get_run(session, report.run_id).methods)
        worker = Worker(WorkerConfig(device=device, methods=methods, worker_id=f"bench:{os.getpid()}"),
                        sessions=sessions, artifacts=artifacts)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last = report.succeeded + report.failed
    while not report.complete:
        if deadline is not None and time.monotonic() > deadline:
            break
        took = worker.run_next() if worker is not None else False
        if not took:
            time.sleep(poll_s)
        reused, queued = report.reused, report.queued_now
        report = collect(report.run_id, sessions=sessions, artifacts=artifacts)
        report.reused, report.queued_now = reused, queued
        done = report.succeeded + report.failed
        if done != last:
            progress(f"run {report.run_id}: {done}/{report.total} scored")
            last = done
    if not report.complete:
        with session_scope(sessions) as session:
            bstore.set_run_status(session, bstore.get_run(session, report.run_id), "incomplete")
    return report
