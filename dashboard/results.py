"""What a team does with results beyond looking: download them whole, see where a job stands in the queue and how
long it will take, vote on which method did better, and publish or delete (admins). Plain Python (no Streamlit),
one transaction per user action, like :mod:`dashboard.backend`.
"""

from __future__ import annotations

import functools
import json
import math
import shutil
import statistics
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db import sharing
from db.artifacts import CHUNK, ArtifactStore, open_artifacts, reader_of
from db.models import Input, Job, JobStatus
from db.session import session_scope
from engine.registry import UnknownMethodError, get_method

from . import backend, preference


# --- downloads ----------------------------------------------------------------------------------------------

def _json_safe(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null (``result.json`` must parse anywhere)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat()
    return value


def result_record(job: backend.JobView) -> dict[str, Any]:
    return _json_safe({
        "job": job.id, "method": job.method, "title": job.title, "status": job.status, "params": job.params,
        "device": job.device, "timings_s": job.timings, "values": job.values, "input": job.input_name,
        "created_at": job.created_at, "finished_at": job.finished_at,
        "layers": [{"layer": layer.layer, "file": layer.filename, "meaning": layer.meaning,
                    "colour_space": layer.colour_space, "sha256": layer.artifact_key} for layer in job.layers],
    })


def _job_members(job: backend.JobView, folder: str) -> list[tuple[str, str | bytes]]:
    return [(f"{folder}{layer.filename}", layer.artifact_key) for layer in job.layers] + [
        (f"{folder}result.json", json.dumps(result_record(job), indent=2, allow_nan=False).encode())]


def zip_file(members: Iterable[tuple[str, str | bytes]], artifacts=None) -> BinaryIO:
    """A zip of ``(name, artifact key or bytes)`` members as a read-only temporary file (deleted once closed).

    Each artifact is copied into the archive in chunks from the store, and the archive grows on disk, so building
    it holds neither whole files nor the whole zip in memory (only the reader's single ``read()`` does, in
    Streamlit, to serve the download).
    """
    artifacts = artifacts or open_artifacts()
    with tempfile.TemporaryFile(prefix="intrinsic-lab-zip-") as spool:
        with zipfile.ZipFile(spool, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
            for name, content in members:
                if isinstance(content, bytes):
                    archive.writestr(name, content)
                    continue
                with artifacts.open(content) as source, archive.open(name, "w") as target:
                    shutil.copyfileobj(source, target, CHUNK)
        return reader_of(spool)


def result_zip(sessions: sessionmaker[Session], job_id: int, visitor: str | None = None,
               artifacts: ArtifactStore | None = None) -> BinaryIO:
    """Every layer of one finished job as PNGs, plus ``result.json`` (settings, timings, values, checksums)."""
    jobs = backend.job_views(sessions, [job_id], visitor=visitor)
    if not jobs:
        raise KeyError(f"job {job_id} is not there")
    return zip_file(_job_members(jobs[0], ""), artifacts)


def input_zip(sessions: sessionmaker[Session], input_id: int, visitor: str | None = None,
              artifacts: ArtifactStore | None = None) -> BinaryIO:
    """An input's uploaded file(s) and every finished result on it, one folder per method."""
    entries = backend.gallery(sessions, visitor=visitor, input_id=input_id, limit=1)
    if not entries:
        raise KeyError(f"input {input_id} is not there")
    entry = entries[0]
    members: list[tuple[str, str | bytes]] = [
        (f"input/frame_{index + 1:03d}.png" if len(entry.input.frames) > 1 else "input/input.png", key)
        for index, key in enumerate(entry.input.frames)]
    for job in entry.runs:
        if job.status == JobStatus.SUCCEEDED.value:
            members += _job_members(job, f"{job.method}/")
    return zip_file(members, artifacts)


def layers_zip(layers: Sequence[backend.LayerView], artifacts: ArtifactStore | None = None) -> BinaryIO:
    """Some layers (e.g. every frame of a per-frame output) as one zip of PNGs."""
    return zip_file([(layer.filename, layer.artifact_key) for layer in layers], artifacts)


# --- where a job stands -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class QueueState:
    position: int  # 1 = next to start
    running: int  # jobs running now (on any worker)
    workers: int  # workers alive (busy or ready)

    def sentence(self) -> str:
        ahead = self.position - 1
        if self.workers == 0:
            return (f"Waiting: no worker is running, so nothing starts until one does ({ahead} job(s) ahead of "
                    "this one).")
        if ahead == 0 and self.running < self.workers:
            return "Next in line: a worker is about to start it."
        return (f"Waiting in the queue: {ahead} job(s) ahead of this one, {self.running} running on "
                f"{self.workers} worker(s).")


def queue_state(sessions: sessionmaker[Session], job_id: int) -> QueueState | None:
    """For a queued job: its place in line (first-in first-out) and what it is waiting for; None otherwise."""
    with session_scope(sessions) as session:
        job = session.get(Job, job_id)
        if job is None or job.status != JobStatus.QUEUED.value:
            return None
        ahead = session.scalar(select(func.count()).select_from(Job).where(
            Job.status == JobStatus.QUEUED.value, Job.id < job_id)) or 0
        running = session.scalar(select(func.count()).select_from(Job).where(
            Job.status == JobStatus.RUNNING.value)) or 0
        from db import store

        workers = len(store.live_workers(session, backend.WORKER_ALIVE_SECONDS))
        return QueueState(int(ahead) + 1, int(running), max(workers, 1 if running else 0))


def typical_seconds(sessions: sessionmaker[Session], method: str, pixels: int, limit: int = 50) -> float | None:
    """The median time of this method's earlier successful runs on inputs within 2× of this size, or None."""
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Job.timings, Input.width, Input.height, Input.frame_count).join(Input, Job.input_id == Input.id)
            .where(Job.method == method, Job.status == JobStatus.SUCCEEDED.value)
            .order_by(Job.id.desc()).limit(limit)).all()
    times = [float(t["total"]) for t, w, h, n in rows
             if t and "total" in t and 0.5 <= (w * h * n) / max(pixels, 1) <= 2.0]
    return statistics.median(times) if times else None


def speed_table(sessions: sessionmaker[Session], limit: int = 2000) -> list[dict[str, Any]]:
    """Per method over its recent successful jobs: runs, median wait in the queue, median model load, median time
    inside the method, and the median megapixels of their inputs (the Methods page's speed panel)."""
    with session_scope(sessions) as session:
        rows = session.execute(
            select(Job.method, Job.created_at, Job.started_at, Job.timings, Job.device, Input.width, Input.height,
                   Input.frame_count).join(Input, Job.input_id == Input.id)
            .where(Job.status == JobStatus.SUCCEEDED.value).order_by(Job.id.desc()).limit(limit)).all()
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row.method, []).append(row)
    table = []
    for method, runs in sorted(grouped.items()):
        waits = [(r.started_at - r.created_at).total_seconds() for r in runs if r.started_at and r.created_at]
        loads = [float(r.timings["load"]) for r in runs if r.timings and "load" in r.timings]
        totals = [float(r.timings["total"]) for r in runs if r.timings and "total" in r.timings]
        table.append({
            "method": _title(method), "runs": len(runs),
            "queue wait (s)": round(statistics.median(waits), 2) if waits else None,
            "model load (s)": round(statistics.median(loads), 2) if loads else None,
            "compute (s)": round(statistics.median(totals), 2) if totals else None,
            "megapixels": round(statistics.median(r.width * r.height * r.frame_count / 1e6 for r in runs), 2),
            "devices": ", ".join(sorted({r.device or "?" for r in runs})),
        })
    return table


# --- votes --------------------------------------------------------------------------------------------------

def vote(sessions: sessionmaker[Session], input_id: int, method_a: str, method_b: str, winner: str,
         voter: str, visitor: str | None = None) -> str:
    """Record one judgement; returns a line for the user. Both methods must have finished on the input."""
    task_a, task_b = get_method(method_a).task, get_method(method_b).task
    if task_a != task_b:
        raise ValueError(f"{method_a} and {method_b} do different tasks ({task_a.value}, {task_b.value}); "
                         "votes compare methods of one task")
    with session_scope(sessions) as session:
        if visitor is not None and not sharing.can_see(session, input_id, visitor):
            raise KeyError(f"input {input_id} is not there")
        done = set(session.scalars(select(Job.method).where(
            Job.input_id == input_id, Job.status == JobStatus.SUCCEEDED.value)))
        missing = [m for m in (method_a, method_b) if m not in done]
        if missing:
            raise ValueError(f"{', '.join(missing)} has no finished result on this input to judge")
        sharing.record_vote(session, input_id, task_a.value, method_a, method_b, winner, voter)
    said = {"a": f"{method_a} is better", "b": f"{method_b} is better", "same": "about the same"}[winner]
    return f"Thanks: your vote ({said}) is counted in the {task_a.value} preference leaderboard."


@dataclass(frozen=True)
class PreferenceBoard:
    task: str
    votes: int
    rows: list[dict[str, Any]]


def preference_boards(sessions: sessionmaker[Session]) -> list[PreferenceBoard]:
    """One Bradley–Terry leaderboard per task that has votes (Elo scale, 95 % bootstrap interval)."""
    with session_scope(sessions) as session:
        votes = [(v.task, v.method_a, v.method_b, v.winner) for v in sharing.list_votes(session)]
    boards = []
    for task in sorted({t for t, *_ in votes}):
        mine = [(a, b, w) for t, a, b, w in votes if t == task]
        rows = []
        for rank, standing in enumerate(_standings(tuple(mine)), start=1):
            rows.append({"rank": rank, "method": _title(standing.method),
                         "score (Elo)": round(standing.score, 1),
                         "95 % interval": f"{standing.low:.0f} … {standing.high:.0f}",
                         "votes": standing.votes, "wins (ties ½)": standing.wins})
        boards.append(PreferenceBoard(task, len(mine), rows))
    return boards


@functools.lru_cache(maxsize=16)
def _standings(votes: tuple[tuple[str, str, str], ...]) -> list[preference.Standing]:
    """The bootstrap refits the model 200 times: done once per set of votes, not on every rerun of the page."""
    return preference.standings(votes)


def _title(method: str) -> str:
    try:
        return get_method(method).title
    except UnknownMethodError:
        return method


# --- admin --------------------------------------------------------------------------------------------------

def publish(sessions: sessionmaker[Session], input_id: int, published: bool = True) -> str:
    with session_scope(sessions) as session:
        sharing.set_published(session, input_id, published)
    return f"Input {input_id} is now {'shown to every visitor' if published else 'private again'}."


def delete_input(sessions: sessionmaker[Session], input_id: int, artifacts: ArtifactStore | None = None) -> str:
    """Expire an input now and purge it (with its results and the files only it used)."""
    with session_scope(sessions) as session:
        if session.get(Input, input_id) is None:
            raise KeyError(f"input {input_id} is not there")
        sharing.expire_now(session, [input_id])
    report = sharing.purge_expired(sessions, artifacts)
    return f"Input {input_id} deleted: {report.summary()}."

