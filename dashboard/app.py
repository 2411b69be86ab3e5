"""Intrinsic Lab dashboard: ``streamlit run dashboard/app.py``.

This script owns the page list, the initial session state and the sidebar status line; every page is a thin
script under ``app_pages/`` (not ``pages/``, which Streamlit would also
serve as an old-style multipage app) that reads widgets, calls the plain-Python modules of this package, and renders.
"""

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ on sys.path, not the repository root that holds engine/ and db/.
_REPO_ROOT = str(Path(__file__).resolve().parents[1])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

# The dashboard never computes (workers do): one thread, passive waits, set once per process before torch or OpenCV
# load (this script reruns on every click, in several sessions' threads at once).
from engine.threads import apply_thread_policy_once  # noqa: E402

apply_thread_policy_once(1)

import streamlit as st  # noqa: E402

from dashboard import access, backend, resources, state, views  # noqa: E402

st.set_page_config(page_title="Intrinsic Lab", page_icon=":material/layers:", layout="wide")
state.init(st.session_state)

PUBLIC = access.public_mode()
if PUBLIC:
    # A public visitor is known by an unguessable token in the address (so a reload keeps their results and
    # nobody else's); a missing or malformed one gets a fresh token.
    token = st.query_params.get(access.VISITOR_PARAM)
    if not access.valid_token(token):
        token = st.session_state.get(state.VISITOR) or access.new_visitor_token()
        st.query_params[access.VISITOR_PARAM] = token
    st.session_state[state.VISITOR] = token
ADMIN = access.is_admin(st.session_state[state.ADMIN_UNTIL])  # always true in team mode

PAGES = [
    st.Page("app_pages/decompose.py", title="Decompose", icon=":material/auto_awesome:", default=True),
    st.Page("app_pages/gallery.py", title="Gallery", icon=":material/photo_library:"),
    st.Page("app_pages/methods.py", title="Methods", icon=":material/menu_book:"),
    st.Page("app_pages/leaderboard.py", title="Leaderboards", icon=":material/leaderboard:"),
]
if ADMIN:  # in public mode these pages do not exist for a visitor, so no address reaches them
    PAGES[2:2] = [st.Page("app_pages/jobs.py", title="Jobs", icon=":material/pending_actions:")]
    PAGES.append(st.Page("app_pages/benchmark.py", title="Benchmarks", icon=":material/science:"))
navigation = st.navigation(PAGES)


@st.fragment(run_every=5)
def _status_line() -> None:
    status = backend.system_status(resources.sessions())
    st.caption(f":material/database: {status.database}")
    if status.worker_alive:
        st.caption(f":material/memory: {status.worker_line}")
    else:
        st.caption(f":red[:material/warning: {status.worker_line}]")


with st.sidebar:
    st.markdown("### Intrinsic Lab")
    st.caption("Split photos into reflectance, shading and lighting with published methods.")
    _status_line()
    views.exposure_controls()
    if PUBLIC:
        st.caption("Public demo: you see only your own uploads (and published examples); they are deleted after "
                   f"{access.Limits.from_env().retention_hours:g} hours. Keep this page's address to come back.")
        views.admin_login()

navigation.run()
