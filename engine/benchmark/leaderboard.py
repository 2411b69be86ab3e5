"""Leaderboard tables from stored benchmark scores: plain pandas, shared by the CLI and the dashboard.

For a dataset and split, each method's numbers come from the most recent run that scored it. Summaries honour
each metric's declared direction (rank 1 = best), carry its protocol, and never mix in reported numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from db import benchmark_store as bstore

from ..metrics import get_metric
from ..metrics.angular import error_statistics
from ..registry import get_method
from .reported import reported_for

PER_IMAGE_COLUMNS = ["run_id", "method", "item", "metric", "value", "job_id", "input_id", "runtime_s", "device",
                     "weights"]


def boards(session) -> pd.DataFrame:
    """One row per (task, dataset, split) that has runs: what the leaderboard page offers."""
    rows = [{"task": r.task, "dataset": r.dataset, "dataset_kind": r.dataset_kind, "split": r.split}
            for r in bstore.list_runs(session)]
    return pd.DataFrame(rows, columns=["task", "dataset", "dataset_kind", "split"]).drop_duplicates().reset_index(
        drop=True)


def per_image(session, dataset: str, split: str) -> pd.DataFrame:
    """Long table of per-image scores, each method from its latest run on this dataset and split."""
    runs = bstore.list_runs(session, dataset=dataset, split=split)  # newest first
    rows = pd.DataFrame(bstore.score_rows(session, [r.id for r in runs]), columns=PER_IMAGE_COLUMNS)
    if rows.empty:
        return rows
    order = {r.id: i for i, r in enumerate(runs)}
    rows["age"] = rows["run_id"].map(order)
    latest = rows.groupby("method")["age"].transform("min")
    rows = rows[rows["age"] == latest].drop(columns="age")
    rows["baseline"] = rows["method"].map(_is_baseline)
    return rows.reset_index(drop=True)


def _is_baseline(method: str) -> bool:
    try:
        return get_method(method).is_baseline
    except Exception:  # a method no longer registered still has its stored numbers
        return False


def summary(per_image_rows: pd.DataFrame, metric_order: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """One row per method: for each metric its mean and std over images (angular metrics: the five statistics),
    the mean runtime, the device, the number of images, and a rank per metric (1 = best).

    Metric columns follow ``metric_order`` (the dataset's declared order, whose first is the primary score).
    """
    if per_image_rows.empty:
        return pd.DataFrame()
    position = {name: i for i, name in enumerate(metric_order)}
    pairs = sorted(per_image_rows.groupby(["method", "metric"], sort=True),
                   key=lambda kv: (kv[0][0], position.get(kv[0][1], len(position)), kv[0][1]))
    out: dict[str, dict[str, Any]] = {}
    for (method, metric), group in pairs:
        row = out.setdefault(method, {"method": method, "baseline": bool(group["baseline"].iloc[0])})
        values = group["value"].to_numpy(dtype=float)
        if get_metric(metric).summary == "angular":
            for stat, value in error_statistics(values).items():
                row[f"{metric}:{stat}"] = value
        else:
            row[metric] = float(np.mean(values))
            row[f"{metric}:std"] = float(np.std(values, ddof=1)) if len(values) > 1 else np.nan
        row["images"] = max(row.get("images", 0), len(values))
    for method, group in per_image_rows.groupby("method"):
        first = group.drop_duplicates("item")
        out[method]["runtime_s"] = float(first["runtime_s"].mean()) if first["runtime_s"].notna().any() else np.nan
        out[method]["device"] = ", ".join(sorted({str(d) for d in first["device"].dropna()}))
        out[method]["weights"] = ", ".join(sorted({str(w) for w in first["weights"].dropna()})) or "—"
    table = pd.DataFrame(list(out.values()))
    for column in value_columns(table):
        metric = get_metric(column.split(":")[0])
        table[f"rank:{column}"] = table[column].rank(ascending=metric.lower_is_better, method="min")
    return table


def value_columns(table: pd.DataFrame) -> list[str]:
    """The score columns of a summary (metric means and angular statistics), in table order."""
    return [c for c in table.columns
            if ":" not in c and _is_metric(c) or c.count(":") == 1 and c.split(":")[1] in _ANGULAR_STATS]


_ANGULAR_STATS = ("mean", "median", "trimean", "best25", "worst25")


def _is_metric(name: str) -> bool:
    try:
        get_metric(name)
        return True
    except KeyError:
        return False


def primary_metric(table: pd.DataFrame) -> str | None:
    """The column a leaderboard sorts by first: the first metric the dataset declares that has values."""
    columns = value_columns(table)
    return columns[0] if columns else None


def sorted_summary(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    by = by or primary_metric(table)
    if by is None:
        return table
    metric = get_metric(by.split(":")[0])
    return table.sort_values(by, ascending=metric.lower_is_better, na_position="last").reset_index(drop=True)


def reported_table(dataset_kind: str) -> pd.DataFrame:
    rows = [{"method": r.method, "dataset": r.dataset, "metric": r.metric,
             "statistic": r.statistic, "value": r.value, "source": r.source, "note": r.note}
            for r in reported_for(dataset_kind)]
    return pd.DataFrame(rows, columns=["method", "dataset", "metric", "statistic", "value", "source", "note"])


def metric_label(column: str) -> str:
    name, _, stat = column.partition(":")
    metric = get_metric(name)
    arrow = "↓" if metric.lower_is_better else "↑"
    unit = f" [{metric.unit}]" if metric.unit else ""
    return f"{metric.title}{' ' + stat if stat else ''}{unit} {arrow}"
