"""What the pages ask of the store, as plain Python (no Streamlit): submit a run, read jobs and results.

Every function takes the session factory and opens one transaction (``session_scope``) per user action; what
it returns are plain dataclasses, so no page holds an ORM object after its session closed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, BinaryIO, Mapping, Sequence

from sqlalchemy import and_, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from db import benchmark_store as bstore
from db import sharing, store
from db.artifacts import ArtifactStore, open_artifacts
from db.models import Input, Job, JobStatus
from db.session import session_scope
from engine.benchmark import BenchConfig, collect, leaderboard, start
from engine.datasets.base import datasets_root
from engine.datasets import get_adapter
from engine.registry import MethodSpec, OutputKind, UnknownMethodError, get_method

from . import access
from .text import md
from .uploads import PreparedInput, check_method

FINISHED = {s.value for s in JobStatus if s.finished}
#: A queued job older than this with no live worker lease means nobody is working the queue.
STALE_QUEUE_SECONDS = 20.0
#: A worker whose heartbeat is older than this is taken as gone (workers beat every few seconds while idle).
WORKER_ALIVE_SECONDS = 20.0


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _title(method: str) -> str:
    try:
        return get_method(method).title
    except UnknownMethodError:
        return f"{method} (no longer registered)"


# --- submitting ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Submission:
    input_id: int
    job_ids: list[int]
    reused_input: bool
    reused_jobs: int  # identical requests answered by an existing queued/running/finished job

    def summary(self) -> str:
        new = len(self.job_ids) - self.reused_jobs
        parts = [f"Submitted {new} new job(s)" if new else "No new job needed"]
        if self.reused_jobs:
            parts.append(f"{self.reused_jobs} identical earlier run(s) reused")
        if self.reused_input:
            parts.append("this upload was already stored, so it was reused")
        return "; ".join(parts) + "."


def submit(sessions: sessionmaker[Session], prepared: PreparedInput,
           requests: Sequence[tuple[MethodSpec, Mapping[str, Any]]],
           artifacts: ArtifactStore | None = None, weights: Mapping[str, str] | None = None,
           visitor: str | None = None, limits: access.Limits | None = None) -> Submission:
    """Store the original files and one queued job per (method, parameters) in one transaction.

    ``weights`` maps a learned method's name to the weight set chosen for it (default: the method's first).
    ``visitor`` is a public visitor's token: the upload must fit ``limits`` (``access.LimitError`` with the
    numbers otherwise), only this visitor (and admins) will see it, and it expires after the retention time.

    Parameters are resolved (defaults filled, ranges checked: ``ParameterError``) and every method's own input
    rules are checked (``InputKindError``) before anything is written.
    """
    if not prepared.ready:
        raise ValueError("the upload has problems; nothing to submit")
    resolved = []
    for spec, params in requests:
        check_method(prepared, spec, params)  # input rules, the method's memory at this size (engine.limits)
        resolved.append((spec, spec.resolve_params(params)))
    names = ", ".join(f.name for f in prepared.files)
    if visitor is not None:
        limits = limits or access.Limits.from_env()
        access.check_upload(limits, total_bytes=sum(len(f.data) for f in prepared.files),
                            frames=prepared.frame_count, width=prepared.width, height=prepared.height)
    with session_scope(sessions) as session:
        content_hash = store.input_hash([f.data for f in prepared.files], prepared.kind.value)
        existed = session.scalars(select(Input.id).where(Input.content_hash == content_hash)).first()
        # Jobs numbered above this were created by this submission; the rest are identical earlier requests.
        newest_before = session.scalars(select(func.max(Job.id))).first() or 0
        row = store.get_or_create_input(
            session, [f.data for f in prepared.files], prepared.kind, names, prepared.width, prepared.height,
            frame_count=prepared.frame_count, artifacts=artifacts,
        )
        sharing.add_owner(session, row.id, visitor or "team",
                          keep_for=limits.retention if visitor is not None else None)
        if visitor is not None:
            recent, active = sharing.visitor_usage(session, visitor, within=timedelta(hours=1))
            access.check_jobs(limits, new_jobs=len(resolved), recent=recent, active=active)
        job_ids, reused = [], 0
        for spec, params in resolved:
            job = store.enqueue_job(session, row.id, spec.name, params, weights=(weights or {}).get(spec.name),
                                    visitor=visitor)
            reused += job.id <= newest_before
            job_ids.append(job.id)
        return Submission(row.id, job_ids, existed is not None, reused)


# --- jobs ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayerView:
    layer: str  # e.g. "reflectance" or "shading/003"
    artifact_key: str
    kind: str
    meaning: str
    filename: str
    colour_space: str = "srgb"  # "linear" layers are tone-mapped to sRGB for display only
    method: str = ""  # the method that made it


@dataclass(frozen=True)
class JobView:
    id: int
    method: str
    title: str
    status: str
    progress: float
    message: str | None
    error: str | None
    device: str | None
    attempts: int
    max_attempts: int
    input_id: int
    input_name: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, float]
    params: dict[str, Any]
    worker: str | None
    layers: list[LayerView] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def seconds(self) -> float | None:
        """Wall time of the last attempt (still growing while running)."""
        if self.started_at is None:
            return None
        return ((self.finished_at or _now()) - self.started_at).total_seconds()


def changed_settings(method: str, params: Mapping[str, Any]) -> str:
    """The parameters that differ from the method's (paper) defaults, e.g. ``lambda=0.5``; "" if none do."""
    try:
        defaults = get_method(method).defaults()
    except UnknownMethodError:
        return ""
    changed = [f"{name}={value:.3g}" if isinstance(value, float) else f"{name}={value}"
               for name, value in params.items() if name in defaults and defaults[name] != value]
    return ", ".join(changed)


def _job_view(job: Job, with_outputs: bool) -> JobView:
    layers = []
    if with_outputs:
        for out in job.outputs:
            base = out.layer.split("/")[0]
            layers.append(LayerView(out.layer, out.artifact_key, out.kind, str(out.meta.get("meaning", base)),
                                    f"{job.method}_{job.id}_{out.layer.replace('/', '_')}.png",
                                    str(out.meta.get("colour_space", "srgb")), job.method))
    info = job.info or {}
    return JobView(
        id=job.id, method=job.method, title=_title(job.method), status=job.status, progress=float(job.progress),
        message=job.progress_message, error=job.error, device=job.device, attempts=job.attempts,
        max_attempts=job.max_attempts, input_id=job.input_id,
        input_name=job.input.original_name if job.input is not None else "?", created_at=job.created_at,
        started_at=job.started_at, finished_at=job.finished_at, timings=dict(job.timings or {}),
        params=dict(job.params or {}), worker=job.worker_id, layers=layers, values=dict(info.get("values") or {}),
    )


def job_views(sessions: sessionmaker[Session], job_ids: Sequence[int], visitor: str | None = None) -> list[JobView]:
    """The given jobs with their stored layers, in the order asked (unknown ids, and in public mode jobs on
    inputs the visitor may not see, are skipped)."""
    with session_scope(sessions) as session:
        views = []
        for job_id in job_ids:
            job = store.get_job(session, job_id)
            if job is not None and (visitor is None or sharing.can_see(session, job.input_id, visitor)):
                views.append(_job_view(job, with_outputs=True))
        return views


@dataclass(frozen=True)
class JobsOverview:
    counts: dict[str, int]
    jobs: list[JobView]


def jobs_overview(sessions: sessionmaker[Session], statuses: Sequence[str] | None = None,
                  limit: int = 200) -> JobsOverview:
    with session_scope(sessions) as session:
        counts = store.count_jobs_by_status(session)
        jobs = store.list_jobs(session, status=list(statuses) if statuses else None, limit=limit)
        return JobsOverview(counts, [_job_view(job, with_outputs=False) for job in jobs])


def jobs_table(jobs: Sequence[JobView]) -> list[dict[str, Any]]:
    """Rows for ``st.dataframe``: what a user needs to see why a job waits, runs long or failed; the timings come
    first so they show without scrolling."""
    rows = []
    for job in jobs:
        seconds = job.seconds
        waited = ((job.started_at or _now()) - job.created_at).total_seconds() if job.created_at else None
        rows.append({
            "job": job.id, "status": job.status, "method": job.title,
            "waited (s)": None if waited is None else round(waited, 1),
            "ran (s)": None if seconds is None else round(seconds, 2),
            "method (s)": round(job.timings["total"], 2) if "total" in job.timings else None,
            "load (s)": round(job.timings["load"], 2) if "load" in job.timings else None,
            "device": job.device or "—", "progress": job.progress, "input": job.input_name,
            "error / message": job.error or job.message or "",
            "settings": changed_settings(job.method, job.params) or "defaults",
            "attempts": f"{job.attempts} of {job.max_attempts}", "queued at": job.created_at,
        })
    return rows


def retry(sessions: sessionmaker[Session], job_id: int) -> str:
    """Queue a failed or cancelled job again; returns a line for the user. ``JobStateError`` if it cannot be."""
    with session_scope(sessions) as session:
        job = store.retry_job(session, job_id)
        return f"Job {job.id} ({job.method}) is queued again."


def cancel(sessions: sessionmaker[Session], job_id: int) -> str:
    """Cancel a queued or running job; returns a line for the user. ``JobStateError`` if it cannot be."""
    with session_scope(sessions) as session:
        job = store.cancel_job(session, job_id)
        return f"Job {job.id} ({job.method}) is cancelled."


# --- gallery ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputView:
    id: int
    name: str
    kind: str
    width: int
    height: int
    frame_count: int
    frames: list[str]  # artifact keys of the uploaded files
    created_at: datetime


@dataclass(frozen=True)
class GalleryEntry:
    input: InputView
    runs: list[JobView]  # the latest matching job of each method, by method name


def _input_view(row) -> InputView:
    return InputView(row.id, row.original_name, row.kind, row.width, row.height, row.frame_count,
                     list(row.frames), row.created_at)


def input_view(sessions: sessionmaker[Session], input_id: int, visitor: str | None = None) -> InputView | None:
    """One input, or None if it does not exist or (public mode) the visitor may not see it."""
    with session_scope(sessions) as session:
        row = store.get_input(session, input_id)
        if row is None or (visitor is not None and not sharing.can_see(session, input_id, visitor)):
            return None
        return _input_view(row)


def day_bounds(first: date | None, last: date | None) -> tuple[datetime | None, datetime | None]:
    """A date range picked in the UI (inclusive, UTC days) as the store's [since, until) datetimes."""
    since = datetime.combine(first, time.min, timezone.utc) if first else None
    until = datetime.combine(last, time.min, timezone.utc) + timedelta(days=1) if last else None
    return since, until


def gallery(sessions: sessionmaker[Session], methods: Sequence[str] | None = None, first: date | None = None,
            last: date | None = None, limit: int = 50, visitor: str | None = None,
            input_id: int | None = None) -> list[GalleryEntry]:
    """Inputs newest first; per method the latest succeeded job, or the latest job of any state if none succeeded
    (so a failure shows in the grid without hiding an earlier good result). A public ``visitor`` sees only
    their own inputs and published examples; ``input_id`` narrows to one input (a shared link)."""
    since, until = day_bounds(first, last)
    visible = sharing.visible_filter(visitor)
    if input_id is not None:
        visible = and_(visible, Input.id == input_id) if visitor is not None else Input.id == input_id
    filters = dict(method=list(methods) if methods else None, since=since, until=until, limit=limit,
                   visible=visible)
    with session_scope(sessions) as session:
        latest = store.gallery(session, status=None, **filters)
        succeeded = {row.input.id: row.jobs for row in store.gallery(session, **filters)}
        entries = []
        for row in latest:
            jobs = {**row.jobs, **succeeded.get(row.input.id, {})}
            entries.append(GalleryEntry(_input_view(row.input),
                                        [_job_view(job, with_outputs=True) for _, job in sorted(jobs.items())]))
        return entries


@dataclass(frozen=True)
class LayerChoice:
    label: str
    artifact_key: str
    kind: str
    colour_space: str = "srgb"


def layer_choices(entry: GalleryEntry) -> list[LayerChoice]:
    """Everything on one input that can be compared: the input frame(s), then every stored layer."""
    choices = [LayerChoice("input" if len(entry.input.frames) == 1 else f"input {i + 1}", key, OutputKind.IMAGE.value)
               for i, key in enumerate(entry.input.frames)]
    for run in entry.runs:
        for layer in run.layers:
            choices.append(LayerChoice(f"{run.method} · {layer.layer}", layer.artifact_key, layer.kind,
                                       layer.colour_space))
    return choices


def artifact_bytes(key: str, artifacts: ArtifactStore | None = None) -> bytes:
    return (artifacts or open_artifacts()).get(key)


def artifact_link(key: str, filename: str, mime: str = "image/png", artifacts: ArtifactStore | None = None
                  ) -> str | None:
    """A URL from which the browser downloads the original file straight from object storage (a presigned link,
    valid an hour), or None for a local store or when links are off: then serve :func:`artifact_file`."""
    return (artifacts or open_artifacts()).link(key, filename, mime)


def artifact_file(key: str, artifacts: ArtifactStore | None = None) -> BinaryIO:
    """The original file for a download button, as an open binary file that Streamlit reads once when the button is
    clicked (never loaded while the page is drawn)."""
    return (artifacts or open_artifacts()).open_file(key)


# --- benchmarks and leaderboards ----------------------------------------------------------------------------

def register_dataset(sessions: sessionmaker[Session], name: str, kind: str, folder: str) -> str:
    """Validate ``folder`` — a path relative to the server's datasets folder (``INTRINSIC_LAB_DATASETS``); nothing
    outside it — with the adapter of ``kind`` and bind ``name`` to it; returns the line to show, the name escaped
    (``DatasetError`` names every problem of a folder that does not fit, relative to the datasets folder)."""
    adapter = get_adapter(kind)
    path = adapter.validate_in_root(folder)
    with session_scope(sessions) as session:
        bstore.register_dataset(session, name.strip(), kind, str(path.resolve()))
    counts = ", ".join(f"{s}: {len(adapter.item_ids(path, s))}" for s in adapter.splits)
    return f"Registered **{md(name.strip())}** ({counts} items)."


def registered_datasets(sessions: sessionmaker[Session]) -> dict[str, tuple[str, str]]:
    """name → (adapter kind, folder to show: relative to the datasets folder, never another server path)."""
    with session_scope(sessions) as session:
        return {d.name: (d.kind, shown_folder(d.folder)) for d in bstore.list_datasets(session)}


def shown_folder(folder: str) -> str:
    """A registered folder relative to the datasets root; folders registered elsewhere (from the command line) are
    not shown to dashboard visitors."""
    try:
        return Path(folder).relative_to(datasets_root()).as_posix() or "."
    except ValueError:
        return "a folder registered from the command line"


def start_benchmark(sessions: sessionmaker[Session], methods: Sequence[str], dataset: str, split: str) -> str:
    """Queue a benchmark run (its jobs go on the ordinary queue); returns the line to show."""
    report = start(BenchConfig(tuple(methods), dataset, split), sessions=sessions)
    return (f"Run {report.run_id}: {report.queued_now} job(s) queued, {report.succeeded} already scored"
            + (" (this configuration ran before; its results are re-used)" if report.reused else ""))


def benchmark_runs(sessions: sessionmaker[Session]) -> list[dict[str, Any]]:
    """One row per benchmark run, newest first, after scoring whatever the workers finished since the last look."""
    with session_scope(sessions) as session:
        unfinished = [r.id for r in bstore.list_runs(session) if r.status != "complete"]
    for run_id in unfinished:
        collect(run_id, sessions=sessions)
    table = []
    with session_scope(sessions) as session:
        for r in bstore.list_runs(session):
            entries = bstore.entries(session, r.id)
            done = sum(e.status != "pending" for e in entries)
            table.append({"run": r.id, "dataset": r.dataset, "split": r.split, "methods": ", ".join(r.methods),
                          "progress": done / max(1, len(entries)), "failed": sum(e.status == "failed" for e in entries),
                          "status": r.status, "started": r.created_at})
    return table


def leaderboards(sessions: sessionmaker[Session]):
    """The (task, dataset, split) boards that have runs, as a DataFrame (see :mod:`engine.benchmark.leaderboard`)."""
    with session_scope(sessions) as session:
        return leaderboard.boards(session)


def leaderboard_rows(sessions: sessionmaker[Session], dataset: str, split: str):
    """Per-image scores of one board, as a DataFrame."""
    with session_scope(sessions) as session:
        return leaderboard.per_image(session, dataset, split)


# --- status -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SystemStatus:
    database: str
    worker_alive: bool
    worker_line: str


def database_label(url: str) -> str:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return "SQLite (this server's local file)"  # never a server path in the page
    if backend == "postgresql":
        return f"PostgreSQL · {parsed.database}"
    return backend


def system_status(sessions: sessionmaker[Session]) -> SystemStatus:
    """The database in use and whether a worker is taking jobs.

    A worker holding an unexpired lease is busy; one whose heartbeat is recent (:data:`WORKER_ALIVE_SECONDS`) is
    idle and waiting. With neither, queued jobs wait for nobody.
    """
    url = str(sessions.kw["bind"].url.render_as_string(hide_password=True))
    now = _now()
    with session_scope(sessions) as session:
        running = [j for j in store.list_jobs(session, status=JobStatus.RUNNING.value, limit=None)
                   if j.lease_expires_at is not None and j.lease_expires_at > now]
        queued = store.list_jobs(session, status=JobStatus.QUEUED.value, limit=None)
        idle = [w.worker_id for w in store.live_workers(session, WORKER_ALIVE_SECONDS, now=now)]
    database = f"Database: {database_label(url)}"
    counts = f"{len(running)} running, {len(queued)} waiting"
    if running:
        workers = len({j.worker_id or "?" for j in running})
        return SystemStatus(database, True, f"Queue: {counts} · {workers} worker(s) busy"
                                            + (f", {len(idle)} ready" if idle else ""))
    if idle:
        return SystemStatus(database, True, f"{len(idle)} worker(s) ready"
                                            + (f"; {len(queued)} job(s) about to start" if queued else ", no jobs waiting"))
    if queued:
        oldest = min(j.created_at for j in queued)
        waited = (now - oldest).total_seconds()
        if waited > STALE_QUEUE_SECONDS:
            return SystemStatus(database, False, f"No worker is running: {len(queued)} job(s) waiting for "
                                                 f"{waited:.0f} s. Start one with `make worker`.")
        return SystemStatus(database, True, f"{len(queued)} job(s) waiting for a worker")
    return SystemStatus(database, False, "No worker is running; jobs will wait until one starts (`make worker`).")
