"""Leaderboards: per task and dataset, measured scores ranked by each metric's direction, charts, drill-down.

Numbers that papers report are shown in their own table, never ranked with measured ones.
Data through :mod:`dashboard.backend`; widget keys in :mod:`dashboard.state` (tests find widgets by them).
"""

import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from dashboard import backend, resources, results, state
from engine.benchmark import leaderboard
from engine.datasets import get_adapter
from engine.metrics import get_metric
from engine.registry import UnknownMethodError, get_method

def _display_name(method: str) -> str:
    try:
        return get_method(method).title
    except UnknownMethodError:
        return method


st.title("Leaderboards")
st.caption("Measured on your datasets by the benchmark runner. Arrows show whether lower (↓) or higher (↑) is "
           "better; every metric states its protocol below the table.")

preference_boards = results.preference_boards(resources.sessions())
if preference_boards:
    with st.expander("Team preference: which method's output people judged better", expanded=True,
                     icon=":material/how_to_vote:"):
        st.caption("From votes in the Gallery, per task: Bradley–Terry strengths on the Elo scale (0 = average; "
                   "+100 ≈ preferred 64 % of the time), with a 95 % bootstrap interval. Ties count half a win.")
        for pboard in preference_boards:
            st.markdown(f"**{pboard.task}** · {pboard.votes} vote(s)")
            st.dataframe(pboard.rows, hide_index=True, key=f"leaderboard.preference.{pboard.task}")

boards = backend.leaderboards(resources.sessions())
if boards.empty:
    st.info("No benchmark has run yet. Start one on the **Benchmarks** page or with "
            "`python -m engine bench @baselines jiep --dataset NAME --split test`.")
    st.stop()

labels = [f"{r.task} · {r.dataset} · {r.split}" for r in boards.itertuples()]
asked = st.query_params.get("board")  # a linked board (and below, a linked metric and image)
choice = st.selectbox("Task · dataset · split", range(len(labels)), format_func=labels.__getitem__,
                      key=state.LEADERBOARD_BOARD, index=labels.index(asked) if asked in labels else 0)
st.query_params["board"] = labels[choice]
board = boards.iloc[choice]
adapter = get_adapter(board["dataset_kind"])
rows = backend.leaderboard_rows(resources.sessions(), board["dataset"], board["split"])
if rows.empty:
    st.info("This run has no scored results yet; workers may still be busy (see **Jobs**).")
    st.stop()

table = leaderboard.summary(rows, adapter.metrics)
columns = leaderboard.value_columns(table)
asked_metric = st.query_params.get("metric")
sort_by = st.selectbox("Rank by", columns, format_func=leaderboard.metric_label, key=state.LEADERBOARD_SORT,
                       index=columns.index(asked_metric) if asked_metric in columns else 0)
st.query_params["metric"] = sort_by
ranked = leaderboard.sorted_summary(table, sort_by)
ranked["shown as"] = [_display_name(m) for m in ranked["method"]]
ranked["kind"] = ["baseline" if b else "method" for b in ranked["baseline"]]
ranked.insert(0, "rank", ranked[f"rank:{sort_by}"].astype(int))

st.subheader(f"Measured · {adapter.title} · {board['split']} ({int(ranked['images'].max())} images)")
shown = ranked[["rank", "shown as", "baseline", *columns, "runtime_s", "images", "device", "weights"]]
config = {c: st.column_config.NumberColumn(leaderboard.metric_label(c), format="%.4f") for c in columns}
config["runtime_s"] = st.column_config.NumberColumn("runtime [s] ↓", format="%.2f")
config["baseline"] = st.column_config.CheckboxColumn("baseline")
st.dataframe(shown, hide_index=True, column_config=config, key=state.LEADERBOARD_TABLE)
with st.expander("Protocols"):
    for name in dict.fromkeys(c.split(":")[0] for c in columns):
        st.markdown(f"**{get_metric(name).title}** — {get_metric(name).protocol}")

export_summary, export_rows = st.columns(2)
export_summary.download_button("Download leaderboard (CSV)", ranked.to_csv(index=False).encode(),
                               f"leaderboard_{board['dataset']}_{board['split']}.csv", "text/csv",
                               key=state.LEADERBOARD_CSV_SUMMARY)
export_rows.download_button("Download per-image scores (CSV)", rows.to_csv(index=False).encode(),
                            f"scores_{board['dataset']}_{board['split']}.csv", "text/csv",
                            key=state.LEADERBOARD_CSV_ROWS)

st.subheader("Charts")
metric = st.selectbox("Metric", columns, index=columns.index(sort_by), format_func=leaderboard.metric_label,
                      key=state.LEADERBOARD_CHART_METRIC)
std_column = f"{metric}:std"
bars = go.Figure(go.Bar(
    x=ranked["shown as"], y=ranked[metric],
    error_y=dict(type="data", array=ranked[std_column]) if std_column in ranked else None,
    marker_color=["#9e9e9e" if b else "#1f77b4" for b in ranked["baseline"]],
))
bars.update_layout(title=f"{leaderboard.metric_label(metric)} (mean ± std over images; grey = baseline)",
                   yaxis_title=leaderboard.metric_label(metric), height=380, margin=dict(t=50, b=10))
st.plotly_chart(bars, key=state.LEADERBOARD_BARS)
scatter = px.scatter(ranked, x="runtime_s", y=metric, color="shown as", symbol="kind", log_x=True,
                     labels={"runtime_s": "mean runtime per image [s] (log)", metric: leaderboard.metric_label(metric),
                             "shown as": "method", "kind": ""},
                     title="Quality versus runtime", hover_data=["device", "images"])
scatter.update_traces(marker_size=12)
scatter.update_layout(height=380, margin=dict(t=50, b=10))
st.plotly_chart(scatter, key=state.LEADERBOARD_SCATTER)

st.subheader("Per image")
name = metric.split(":")[0]
grid = rows[rows["metric"] == name].pivot_table(index="item", columns="method", values="value")
st.dataframe(grid, column_config={m: st.column_config.NumberColumn(format="%.4f") for m in grid.columns},
             key=state.LEADERBOARD_PER_IMAGE)
items = list(grid.index)
asked_item = st.query_params.get("item")
item = st.selectbox("Open one image in the gallery comparison", items, key=state.LEADERBOARD_ITEM,
                    index=items.index(asked_item) if asked_item in items else 0)
st.query_params["item"] = str(item)
st.caption("This page's address links to this board, metric and image.")
if st.button("Compare in the gallery", key=state.LEADERBOARD_OPEN, icon=":material/compare:"):
    picked = rows[(rows["item"] == item)].drop_duplicates("method")
    # Methods that take the same kind of input share one stored input; open the one most of them ran on.
    input_id = int(picked["input_id"].mode().iloc[0])
    # The gallery's widgets read these keys on their first render, so the comparison opens on this image.
    st.session_state[state.GALLERY_INPUT] = input_id
    st.session_state[state.GALLERY_METHODS] = sorted(picked.loc[picked["input_id"] == input_id, "method"])
    st.query_params["input"] = str(input_id)
    st.switch_page("app_pages/gallery.py")

reported = leaderboard.reported_table(adapter.kind)
st.subheader("Reported in papers (not measured here)")
if reported.empty:
    st.caption("No published numbers are recorded for this dataset.")
else:
    st.caption("Copied from the papers as published: other test sets, splits and often other protocols. "
               "Never ranked with the measured rows above.")
    reported.insert(0, "kind", "reported")
    st.dataframe(reported, hide_index=True, key=state.LEADERBOARD_REPORTED,
                 column_config={"value": st.column_config.NumberColumn(format="%.4f")})
