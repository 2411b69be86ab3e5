"""Benchmarks: register a dataset folder (validated by its adapter), queue a benchmark run, follow its progress.

The run's jobs go on the ordinary job queue, so the workers (one per GPU) do the work; this page only queues
and scores what has finished (through :mod:`dashboard.backend`; widget keys in :mod:`dashboard.state`).
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import backend, resources, state
from dashboard.text import md
from engine.benchmark.runner import eligible_methods
from engine.datasets import ADAPTERS
from engine.errors import IntrinsicLabError

st.title("Benchmarks")
st.caption("Score methods on a dataset you have on disk. Results appear on the **Leaderboards** page.")
sessions = resources.sessions()

with st.expander("Register a dataset folder", expanded=False):
    name = st.text_input("Name", key=state.BENCHMARK_NAME, placeholder="e.g. mit-test")
    kind = st.selectbox("Layout", list(ADAPTERS), key=state.BENCHMARK_KIND,
                        format_func=lambda k: f"{ADAPTERS[k].title} — {ADAPTERS[k].layout}")
    folder = st.text_input("Folder, inside the server's datasets folder", key=state.BENCHMARK_FOLDER,
                           help="A path relative to the datasets folder the administrator configured "
                                "(INTRINSIC_LAB_DATASETS); folders elsewhere on the server cannot be registered.")
    if st.button("Check and register", key=state.BENCHMARK_REGISTER, disabled=not (name and folder)):
        try:
            st.success(backend.register_dataset(sessions, name, kind, folder))
        except IntrinsicLabError as exc:
            st.error(md(exc))

datasets = backend.registered_datasets(sessions)
if not datasets:
    st.info("Register a dataset folder above to benchmark on it.")
else:
    st.subheader("Run a benchmark")
    dataset = st.selectbox("Dataset", list(datasets), key=state.BENCHMARK_DATASET,
                           format_func=lambda d: f"{d} ({datasets[d][0]} at {datasets[d][1]})")
    adapter = ADAPTERS[datasets[dataset][0]]
    split = st.selectbox("Split", adapter.splits, key=state.BENCHMARK_SPLIT)
    candidates = [s.name for s in eligible_methods(adapter)]
    methods = st.multiselect("Methods", candidates, default=candidates, key=state.BENCHMARK_METHODS)
    if st.button("Queue the benchmark", key=state.BENCHMARK_START, type="primary", disabled=not methods):
        try:
            st.success(backend.start_benchmark(sessions, methods, dataset, split))
        except IntrinsicLabError as exc:
            st.error(md(exc))

st.subheader("Runs")
table = backend.benchmark_runs(sessions)
if table:
    st.dataframe(pd.DataFrame(table), hide_index=True, key=state.BENCHMARK_RUNS,
                 column_config={"progress": st.column_config.ProgressColumn("scored", min_value=0, max_value=1)})
    st.button("Refresh", key=state.BENCHMARK_REFRESH, icon=":material/refresh:")
else:
    st.caption("No runs yet.")
