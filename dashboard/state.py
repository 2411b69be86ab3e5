"""Every session-state and widget key of the dashboard, in one place.

``app.py`` calls :func:`init` once per run so that pages can read these keys without guarding for absence.
Tests find widgets by these keys too.
"""

from __future__ import annotations

from typing import Any, MutableMapping

# --- App ------------------------------------------------------------------------------------------------
EXPOSURE_AUTO = "display.auto"  # widget: auto level for display
EXPOSURE_GAIN = "display.gain"  # widget: display gain
EXPOSURE_GAMMA = "display.gamma"  # widget: display gamma
VISITOR = "app.visitor"  # state: this browser session's visitor id (public mode)
VOTER = "app.voter"  # state: this browser session's voter id in team mode
ADMIN_UNTIL = "app.admin_until"  # state: admin session expiry (epoch seconds) or None
ADMIN_SECRET = "app.admin_secret"  # widget: admin password field
ADMIN_LOGIN = "app.admin_login"  # widget: admin login button
ADMIN_LOGOUT = "app.admin_logout"  # widget: admin logout button

# --- Decompose --------------------------------------------------------------------------------------------
INPUT_KIND = "decompose.input_kind"  # widget: which InputKind (value string)
UPLOAD = "decompose.upload"  # widget prefix: file uploader (one per input kind, so switching kind resets it)
METHODS = "decompose.methods"  # widget prefix: multiselect of method names (one per input kind)
RUN = "decompose.run"  # widget: the Run button
SUBMITTED_INPUT = "decompose.submitted_input"  # state: input id of the last run (int | None)
SUBMITTED_JOBS = "decompose.submitted_jobs"  # state: job ids of the last run (list[int])
SUBMIT_NOTE = "decompose.submit_note"  # state: one line about the last submission (str | None)

# --- Gallery ----------------------------------------------------------------------------------------------
GALLERY_VIEW = "gallery.view"  # widget: "grid" (all methods on one input) or "compare" (two layers)
GRID_METHODS = "gallery.grid_methods"  # widget: methods shown as grid columns
VOTE_LEFT = "gallery.vote_left"  # widget: first method of a vote
VOTE_RIGHT = "gallery.vote_right"  # widget: second method of a vote
VOTE_NOTE = "gallery.vote_note"  # state: result of the last vote (str | None)
GALLERY_METHODS = "gallery.methods"  # widget: method filter
GALLERY_DATES = "gallery.dates"  # widget: date range filter
GALLERY_INPUT = "gallery.input"  # widget: which input to compare on
COMPARE_LEFT = "gallery.left"  # widget: left layer
COMPARE_RIGHT = "gallery.right"  # widget: right layer
COMPARE_MODE = "gallery.mode"  # widget: wipe / blend / difference
COMPARE_AMOUNT = "gallery.amount"  # widget: wipe position / blend weight / difference gain
ZOOM = "gallery.zoom"  # widget: zoom factor
ZOOM_X = "gallery.zoom_x"  # widget: zoom centre, fraction of the width
ZOOM_Y = "gallery.zoom_y"  # widget: zoom centre, fraction of the height

# --- Jobs -------------------------------------------------------------------------------------------------
JOBS_STATUS = "jobs.status"  # widget: status filter
JOBS_SELECTED = "jobs.selected"  # widget: the job acted on
JOBS_RETRY = "jobs.retry"  # widget: retry button
JOBS_CANCEL = "jobs.cancel"  # widget: cancel button
JOBS_NOTE = "jobs.note"  # state: result of the last retry/cancel (str | None)

# --- Benchmarks -----------------------------------------------------------------------------------------
BENCHMARK_NAME = "benchmark.register_name"  # widget: name of the dataset to register
BENCHMARK_KIND = "benchmark.register_kind"  # widget: its adapter kind (layout)
BENCHMARK_FOLDER = "benchmark.register_folder"  # widget: its folder on the server
BENCHMARK_REGISTER = "benchmark.register"  # widget: Check and register button
BENCHMARK_DATASET = "benchmark.dataset"  # widget: registered dataset to run on
BENCHMARK_SPLIT = "benchmark.split"  # widget: its split
BENCHMARK_METHODS = "benchmark.methods"  # widget: methods to benchmark
BENCHMARK_START = "benchmark.start"  # widget: Queue button
BENCHMARK_RUNS = "benchmark.runs"  # widget: table of runs
BENCHMARK_REFRESH = "benchmark.refresh"  # widget: Refresh button

# --- Leaderboards -----------------------------------------------------------------------------------------
LEADERBOARD_BOARD = "leaderboard.board"  # widget: task · dataset · split
LEADERBOARD_SORT = "leaderboard.sort"  # widget: rank by (metric column)
LEADERBOARD_TABLE = "leaderboard.table"  # widget: the ranked table
LEADERBOARD_CSV_SUMMARY = "leaderboard.csv_summary"  # widget: download of the ranked table
LEADERBOARD_CSV_ROWS = "leaderboard.csv_rows"  # widget: download of the per-image scores
LEADERBOARD_CHART_METRIC = "leaderboard.chart"  # widget: metric of the charts
LEADERBOARD_BARS = "leaderboard.bars"  # widget: bar chart
LEADERBOARD_SCATTER = "leaderboard.scatter"  # widget: quality-versus-runtime chart
LEADERBOARD_PER_IMAGE = "leaderboard.per_image"  # widget: per-image table
LEADERBOARD_ITEM = "leaderboard.item"  # widget: image to open in the gallery
LEADERBOARD_OPEN = "leaderboard.open"  # widget: Compare in the gallery button
LEADERBOARD_REPORTED = "leaderboard.reported"  # widget: numbers reported in papers

_INITIAL: dict[str, Any] = {
    SUBMITTED_INPUT: None,
    SUBMITTED_JOBS: [],
    SUBMIT_NOTE: None,
    JOBS_NOTE: None,
    VOTE_NOTE: None,
    ADMIN_UNTIL: None,
}


def init(session_state: MutableMapping[str, Any]) -> None:
    for key, value in _INITIAL.items():
        if key not in session_state:
            session_state[key] = list(value) if isinstance(value, list) else value


def param_key(method: str, param: str) -> str:
    """Widget key of one method parameter on the Decompose page."""
    return f"decompose.param.{method}.{param}"


def upload_key(kind: str) -> str:
    return f"{UPLOAD}.{kind}"


def methods_key(kind: str) -> str:
    return f"{METHODS}.{kind}"


def download_key(job_id: int, layer: str) -> str:
    return f"download.{job_id}.{layer}"


def frame_key(job_id: int, output: str) -> str:
    """Widget key of the frame slider of one per-frame output (e.g. the shading of every frame) of a job."""
    return f"frame.{job_id}.{output}"


def weights_key(method: str) -> str:
    """Widget: the weight set chosen for a learned method on the Decompose page."""
    return f"decompose.weights.{method}"


def vote_key(input_id: int, choice: str) -> str:
    """Widget: one of the vote buttons (left / same / right) under an input's comparison."""
    return f"vote.{input_id}.{choice}"


def download_all_key(scope: str, ident: int) -> str:
    """Widget: the "download all" button of a result (scope "job") or an input (scope "input")."""
    return f"download_all.{scope}.{ident}"
