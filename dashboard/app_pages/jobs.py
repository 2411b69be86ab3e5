"""Jobs: the queue and the history, refreshed every few seconds; retry a failed job, cancel a waiting one."""

import streamlit as st

from dashboard import backend, resources, state, views
from dashboard.text import md
from db.models import JobStatus
from db.store import JobStateError

REFRESH_SECONDS = 3


st.title("Jobs")
st.caption("Every run, newest first. The table refreshes by itself while this page is open.")

statuses = st.multiselect("Show", [s.value for s in JobStatus], key=state.JOBS_STATUS,
                          placeholder="All statuses")


@st.fragment(run_every=REFRESH_SECONDS)
def jobs_table() -> None:
    overview = backend.jobs_overview(resources.sessions(), statuses)
    for column, status in zip(st.columns(len(JobStatus)), JobStatus):
        column.metric(status.value.capitalize(), overview.counts.get(status.value, 0))
    if not overview.jobs:
        st.info("No jobs yet. Run a method on the **Decompose** page.")
        return
    st.dataframe(
        backend.jobs_table(overview.jobs), hide_index=True, width="stretch",
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0, format="percent"),
            "queued at": st.column_config.DatetimeColumn("queued at", format="YYYY-MM-DD HH:mm:ss"),
            "waited (s)": st.column_config.NumberColumn("waited (s)", help="from Run to a worker starting it"),
            "ran (s)": st.column_config.NumberColumn("ran (s)", help="from start to end of the last attempt"),
            "method (s)": st.column_config.NumberColumn("method (s)", help="time inside the method itself"),
            "load (s)": st.column_config.NumberColumn("load (s)", help="loading the model (0 when the worker had "
                                                                         "it loaded already)"),
            "method": st.column_config.TextColumn("method", width="medium"),
            "error / message": st.column_config.TextColumn("error / message", width="large"),
        },
    )


jobs_table()

st.subheader("Retry or cancel")
actionable = backend.jobs_overview(resources.sessions(), ["failed", "cancelled", "queued", "running"]).jobs
if not actionable:
    st.caption("Nothing to retry or cancel: no job is waiting, running, failed or cancelled.")
else:
    choice = st.selectbox(
        "Job", [job.id for job in actionable], key=state.JOBS_SELECTED,
        format_func=lambda job_id: next(f"#{j.id} · {j.method} · {j.status} · {j.input_name}"
                                        for j in actionable if j.id == job_id),
    )
    selected = next(job for job in actionable if job.id == choice)
    retry_col, cancel_col, _ = st.columns([1, 1, 4])
    action = None
    if retry_col.button("Retry", icon=":material/replay:", key=state.JOBS_RETRY,
                        disabled=selected.status not in ("failed", "cancelled")):
        action = backend.retry
    if cancel_col.button("Cancel", icon=":material/cancel:", key=state.JOBS_CANCEL,
                         disabled=selected.status not in ("queued", "running")):
        action = backend.cancel
    if action is not None:
        try:
            st.session_state[state.JOBS_NOTE] = action(resources.sessions(), selected.id)
        except JobStateError as exc:
            st.session_state[state.JOBS_NOTE] = f"Not done: {exc}"
        st.rerun()
    if selected.error:
        st.error(md(selected.error), icon=":material/error:")

st.subheader("Results of one job")
finished = [job for job in backend.jobs_overview(resources.sessions(), ["succeeded"]).jobs]
if finished:
    asked = st.query_params.get("job")
    ids = [job.id for job in finished]
    shown = st.selectbox("Finished job", ids, key="jobs.result", index=ids.index(int(asked)) if asked and
                         asked.isdigit() and int(asked) in ids else 0,
                         format_func=lambda job_id: next(f"#{j.id} · {j.title} · {md(j.input_name)}"
                                                         for j in finished if j.id == job_id))
    st.query_params["job"] = str(shown)
    [job] = backend.job_views(resources.sessions(), [shown])
    views.job_result(job, backend.input_view(resources.sessions(), job.input_id), resources.sessions())
else:
    st.caption("No finished job yet.")
note = st.session_state[state.JOBS_NOTE]
if note:
    (st.warning if note.startswith("Not done") else st.success)(md(note))
    st.session_state[state.JOBS_NOTE] = None  # shown once
