"""The one long-lived resource of the dashboard: the database session factory, cached per database URL.

Building it also brings the schema up to date, so that ``streamlit run dashboard/app.py`` works on a fresh data
folder without a separate ``python -m db migrate``.
"""

from __future__ import annotations

import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from db.session import database_url, make_engine, make_sessions, migrate


@st.cache_resource(show_spinner="Opening the database…")
def _sessions_for(url: str) -> sessionmaker[Session]:
    migrate(url)
    return make_sessions(make_engine(url))


def sessions() -> sessionmaker[Session]:
    # Keyed by URL so that a changed INTRINSIC_LAB_DATA / DATABASE_URL (tests, a second data folder) gets its own.
    return _sessions_for(database_url())
