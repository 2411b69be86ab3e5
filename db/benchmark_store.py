"""The store functions the benchmark runner and leaderboard use, over the benchmark tables (declared in
:mod:`db.models` with the others; migration ``0002_benchmarks``):

* ``benchmark_datasets``: a user's name for a dataset folder and its adapter kind.
* ``benchmark_runs``: one per distinct configuration (methods, parameters, weights, dataset folder fingerprint,
  split, metric protocol), identified by ``config_hash`` — running the same configuration again finds this row.
* ``benchmark_entries``: one per (run, method, dataset item), pointing at the job that computed it (jobs are shared:
  the queue itself reuses an identical job across runs), with the runtime and device read off the job.
* ``benchmark_scores``: the metric values of one entry.

Like :mod:`db.store`, functions take a session and never commit; the caller owns the transaction.
"""

from __future__ import annotations

from typing import Any, Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import (ENTRY_STATUSES, RUN_STATUSES, BenchmarkDataset, BenchmarkEntry, BenchmarkRun, BenchmarkScore,
                     utcnow)

__all__ = ["ENTRY_STATUSES", "RUN_STATUSES", "BenchmarkDataset", "BenchmarkEntry", "BenchmarkRun", "BenchmarkScore"]


# --- datasets -----------------------------------------------------------------------------------------------

def register_dataset(session: Session, name: str, kind: str, folder: str, notes: str | None = None
                     ) -> BenchmarkDataset:
    """Bind ``name`` to a folder of adapter ``kind`` (replacing an earlier binding of the same name)."""
    row = session.scalars(select(BenchmarkDataset).where(BenchmarkDataset.name == name)).first()
    if row is None:
        row = BenchmarkDataset(name=name, kind=kind, folder=folder, notes=notes, created_at=utcnow())
        session.add(row)
    else:
        row.kind, row.folder, row.notes = kind, folder, notes
    session.flush()
    return row


def get_dataset(session: Session, name: str) -> BenchmarkDataset | None:
    return session.scalars(select(BenchmarkDataset).where(BenchmarkDataset.name == name)).first()


def list_datasets(session: Session) -> list[BenchmarkDataset]:
    return list(session.scalars(select(BenchmarkDataset).order_by(BenchmarkDataset.name)))


# --- runs and entries ---------------------------------------------------------------------------------------

def get_or_create_run(session: Session, config_hash: str, **fields: Any) -> tuple[BenchmarkRun, bool]:
    """The run of this configuration, and whether it was just created."""
    run = session.scalars(select(BenchmarkRun).where(BenchmarkRun.config_hash == config_hash)).first()
    if run is not None:
        return run, False
    run = BenchmarkRun(config_hash=config_hash, status="running", created_at=utcnow(), **fields)
    session.add(run)
    session.flush()
    return run, True


def get_run(session: Session, run_id: int) -> BenchmarkRun | None:
    return session.get(BenchmarkRun, run_id)


def list_runs(session: Session, *, dataset: str | None = None, split: str | None = None) -> list[BenchmarkRun]:
    query = select(BenchmarkRun).order_by(BenchmarkRun.created_at.desc(), BenchmarkRun.id.desc())
    if dataset is not None:
        query = query.where(BenchmarkRun.dataset == dataset)
    if split is not None:
        query = query.where(BenchmarkRun.split == split)
    return list(session.scalars(query))


def entries(session: Session, run_id: int) -> list[BenchmarkEntry]:
    return list(session.scalars(select(BenchmarkEntry).where(BenchmarkEntry.run_id == run_id)
                                .order_by(BenchmarkEntry.method, BenchmarkEntry.item)))


def get_entry(session: Session, run_id: int, method: str, item: str) -> BenchmarkEntry | None:
    return session.scalars(select(BenchmarkEntry).where(
        BenchmarkEntry.run_id == run_id, BenchmarkEntry.method == method, BenchmarkEntry.item == item)).first()


def add_entry(session: Session, run_id: int, method: str, item: str, *, input_id: int, job_id: int,
              weights: str | None) -> BenchmarkEntry:
    entry = BenchmarkEntry(run_id=run_id, method=method, item=item, input_id=input_id, job_id=job_id,
                           status="pending", weights=weights)
    session.add(entry)
    session.flush()
    return entry


def finish_entry(session: Session, entry: BenchmarkEntry, *, scores: dict[str, float] | None = None,
                 error: str | None = None, runtime_s: float | None = None, device: str | None = None) -> None:
    """Record an entry's outcome: its scores (succeeded) or its error (failed)."""
    entry.status = "failed" if error is not None else "succeeded"
    entry.error, entry.runtime_s, entry.device, entry.evaluated_at = error, runtime_s, device, utcnow()
    for metric, value in (scores or {}).items():
        session.add(BenchmarkScore(entry_id=entry.id, metric=metric, value=float(value)))
    session.flush()


def set_run_status(session: Session, run: BenchmarkRun, status: str) -> None:
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {RUN_STATUSES}")
    run.status = status
    run.finished_at = utcnow() if status == "complete" else None
    session.flush()


def score_rows(session: Session, run_ids: Iterable[int]) -> list[dict[str, Any]]:
    """Flat rows (run, method, item, metric, value, job, input, runtime, device, weights) for the given runs."""
    query = (select(BenchmarkEntry, BenchmarkScore)
             .join(BenchmarkScore, BenchmarkScore.entry_id == BenchmarkEntry.id)
             .where(BenchmarkEntry.run_id.in_(list(run_ids)), BenchmarkEntry.status == "succeeded")
             .order_by(BenchmarkEntry.run_id, BenchmarkEntry.method, BenchmarkEntry.item, BenchmarkScore.id))
    return [
        {"run_id": e.run_id, "method": e.method, "item": e.item, "metric": s.metric, "value": s.value,
         "job_id": e.job_id, "input_id": e.input_id, "runtime_s": e.runtime_s, "device": e.device,
         "weights": e.weights}
        for e, s in session.execute(query)
    ]
