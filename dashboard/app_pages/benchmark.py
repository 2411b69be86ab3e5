"""Benchmarks: register a dataset folder (validated by its adapter), queue a benchmark run, follow its progress.

The run's jobs go on the ordinary job queue, so the workers (one per GPU) do the work; this page only queues
and scores what has finished. Widget keys start with ``benchmark.``.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import resources
from dashboard.text import md
from db import benchmark_store as bstore
from db.session import session_scope
from engine.benchmark import BenchConfig, collect, start
from engine.benchmark.runner import eligible_methods
from engine.datasets import ADAPTERS, DatasetError
from engine.datasets.base import datasets_root
from engine.errors import IntrinsicLabError

st.title("Benchmarks")
st.caption("Score methods on a dataset you have on disk. Results appear on the **Leaderboards** page.")
sessions = resources.sessions()

with st.expander("Register a dataset folder", expanded=False):
    name = st.text_input("Name", key="benchmark.register_name", placeholder="e.g. mit-test")
    kind = st.selectbox("Layout", list(ADAPTERS), key="benchmark.register_kind",
                        format_func=lambda k: f"{ADAPTERS[k].title} — {ADAPTERS[k].layout}")
    folder = st.text_input("Folder, inside the server's datasets folder", key="benchmark.register_folder",
                           help="A path relative to the datasets folder the administrator configured "
                                "(INTRINSIC_LAB_DATASETS); folders elsewhere on the server cannot be registered.")
    if st.button("Check and register", key="benchmark.register", disabled=not (name and folder)):
        try:
            path = ADAPTERS[kind].validate_in_root(folder)
            with session_scope(sessions) as session:
                bstore.register_dataset(session, name.strip(), kind, str(path.resolve()))
            counts = ", ".join(f"{s}: {len(ADAPTERS[kind].item_ids(path, s))}" for s in ADAPTERS[kind].splits)
            st.success(f"Registered **{md(name.strip())}** ({counts} items).")
        except DatasetError as exc:
            st.error(md(exc))


def shown_folder(folder: str) -> str:
    """A registered folder relative to the datasets root; folders registered elsewhere (from the command line) are
    not shown to dashboard visitors."""
    try:
        return Path(folder).relative_to(datasets_root()).as_posix() or "."
    except ValueError:
        return "a folder registered from the command line"


with session_scope(sessions) as session:
    datasets = {d.name: (d.kind, d.folder) for d in bstore.list_datasets(session)}
if not datasets:
    st.info("Register a dataset folder above to benchmark on it.")
else:
    st.subheader("Run a benchmark")
    dataset = st.selectbox("Dataset", list(datasets), key="benchmark.dataset",
                           format_func=lambda d: f"{d} ({datasets[d][0]} at {shown_folder(datasets[d][1])})")
    adapter = ADAPTERS[datasets[dataset][0]]
    split = st.selectbox("Split", adapter.splits, key="benchmark.split")
    candidates = [s.name for s in eligible_methods(adapter)]
    methods = st.multiselect("Methods", candidates, default=candidates, key="benchmark.methods")
    if st.button("Queue the benchmark", key="benchmark.start", type="primary", disabled=not methods):
        try:
            report = start(BenchConfig(tuple(methods), dataset, split), sessions=sessions)
            st.success(f"Run {report.run_id}: {report.queued_now} job(s) queued, {report.succeeded} already scored"
                       + (" (this configuration ran before; its results are re-used)" if report.reused else ""))
        except IntrinsicLabError as exc:
            st.error(md(exc))

st.subheader("Runs")
with session_scope(sessions) as session:
    runs = [(r.id, r.status) for r in bstore.list_runs(session)]
for run_id, status in runs:
    if status != "complete":
        collect(run_id, sessions=sessions)  # scores whatever the workers finished since the last look
with session_scope(sessions) as session:
    table = []
    for r in bstore.list_runs(session):
        entries = bstore.entries(session, r.id)
        done = sum(e.status != "pending" for e in entries)
        table.append({"run": r.id, "dataset": r.dataset, "split": r.split, "methods": ", ".join(r.methods),
                      "progress": done / max(1, len(entries)), "failed": sum(e.status == "failed" for e in entries),
                      "status": r.status, "started": r.created_at})
if table:
    st.dataframe(pd.DataFrame(table), hide_index=True, key="benchmark.runs",
                 column_config={"progress": st.column_config.ProgressColumn("scored", min_value=0, max_value=1)})
    st.button("Refresh", key="benchmark.refresh", icon=":material/refresh:")
else:
    st.caption("No runs yet.")
