"""Rendering pieces shared by several pages (Streamlit); they call the plain-Python modules and only draw."""

from __future__ import annotations

import functools
import secrets
from typing import Sequence

import numpy as np
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from engine.imaging import to_display

from . import access, backend, compare, display, results, state
from .images import layer_display_with_range, thumbnail
from .text import md

POLL_SECONDS = 0.25  # a finished job shows within a quarter of a second; one fragment rerun costs a few ms (Streamlit's
# after-run garbage collection, which cost 80-150 ms per rerun, is off: .streamlit/config.toml)
GRID_COLUMNS = 4
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/progress_activity:",
                "succeeded": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:"}


#: Longest side of a layer as sent to the browser; the PNG download keeps the full resolution.
DISPLAY_SIDE = 2048


@st.cache_data(max_entries=256, show_spinner=False)
def artifact_display(key: str, kind: str, colour_space: str = "srgb", exposure: display.Exposure = display.Exposure()
                     ) -> tuple[np.ndarray, tuple[float, float] | None]:
    """A stored artifact as a display array and its colour-map range. Artifacts are content-addressed, so the key
    (with the display settings) fixes the result."""
    image, value_range = layer_display_with_range(backend.artifact_bytes(key), kind, name=key[:12],
                                                  colour_space=colour_space, exposure=exposure)
    return thumbnail(image, DISPLAY_SIDE), value_range


def artifact_image(key: str, kind: str, colour_space: str = "srgb") -> np.ndarray:
    return artifact_display(key, kind, colour_space, current_exposure())[0]


@st.cache_data(max_entries=512, show_spinner=False)
def _thumbnail(key: str, kind: str, colour_space: str, exposure: display.Exposure) -> np.ndarray:
    return thumbnail(artifact_display(key, kind, colour_space, exposure)[0])


def artifact_thumbnail(key: str, kind: str, colour_space: str = "srgb") -> np.ndarray:
    return _thumbnail(key, kind, colour_space, current_exposure())


def current_exposure() -> display.Exposure:
    """The display exposure chosen in the sidebar (it never changes the stored files)."""
    return display.Exposure(bool(st.session_state.get(state.EXPOSURE_AUTO, False)),
                            float(st.session_state.get(state.EXPOSURE_GAIN, 1.0)),
                            float(st.session_state.get(state.EXPOSURE_GAMMA, 1.0)))


def exposure_controls() -> None:
    """Sidebar: how dark or linear layers are shown (display only)."""
    with st.expander("Display exposure", icon=":material/exposure:"):
        st.toggle("Auto level", key=state.EXPOSURE_AUTO,
                  help="Scale each picture so its brightest 0.5 % become white. Display only: downloads keep the "
                       "stored values.")
        st.select_slider("Gain", options=[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0], value=1.0, key=state.EXPOSURE_GAIN,
                         format_func=lambda g: f"×{g:g}", help="Multiply the light (in linear light) before display.")
        st.slider("Gamma", 0.5, 3.0, 1.0, 0.1, key=state.EXPOSURE_GAMMA,
                  help="Above 1 lifts the shadows (value ** (1 / gamma)), below 1 deepens them. Display only.")
        st.caption("One-channel layers use the viridis colour map (dark blue = low, yellow = high) with a colour "
                   "bar underneath.")


def layer_image(key: str, kind: str, colour_space: str, caption: str, help_text: str = "") -> None:
    """One layer with its plain-words caption (the formula and the method's own description in a tooltip) and,
    for one-channel layers, a colour bar with the values at its ends."""
    image, value_range = artifact_display(key, kind, colour_space, current_exposure())
    st.image(image, caption=caption, width="stretch")
    if value_range is not None:
        low, high = value_range
        st.image(display.colour_bar(low, high), caption=f"colour scale: {low:.3g} (dark blue) … {high:.3g} (yellow)",
                 width="stretch")
    if help_text:
        st.caption("Formula and details", help=help_text)


#: The comparison is a pure function of two arrays and the sliders, so repeated slider positions are instant.
composed = st.cache_data(compare.compose, max_entries=32, show_spinner=False)


def frame_strip(frames: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Uploaded frames as a row of previews (at most one row; a long sequence shows its first frames)."""
    shown = list(frames)[:GRID_COLUMNS]
    columns = st.columns(GRID_COLUMNS)
    for index, (column, frame) in enumerate(zip(columns, shown)):
        caption = md(names[index]) if len(names) == len(frames) else f"frame {index + 1}"
        column.image(thumbnail(to_display(frame), 512), caption=caption, width="stretch")


def _grid(count: int) -> list:
    cells = []
    for start in range(0, count, GRID_COLUMNS):
        cells.extend(st.columns(GRID_COLUMNS))
    return cells


def job_result(job: backend.JobView, input_view: backend.InputView | None,
               sessions: sessionmaker[Session] | None = None) -> None:
    """One job: its state while it waits or runs, then the input beside every layer, downloads and numbers."""
    with st.container(border=True):
        st.markdown(f"{STATUS_ICONS.get(job.status, '')} **{job.title}** · {job.status}")
        if job.status in ("queued", "running"):
            _waiting(job, input_view, sessions)
            return
        if job.status == "failed":
            st.error(md(job.error or "the job failed without a message"), icon=":material/error:")
            return
        if job.status == "cancelled":
            st.info("This job was cancelled.")
            return
        took = job.timings.get("total")
        settings = backend.changed_settings(job.method, job.params)
        st.caption((f"Finished in {took:.2f} s" if took is not None else "Finished")
                   + f" on {job.device or 'an unknown device'} · "
                   + (f"changed settings: {settings}" if settings else "the paper's default settings"))
        images = ([("input", key, "image", None) for key in input_view.frames[:1]] if input_view else [])
        # (label, artifact key, kind, layer or None for the input)
        stacks: dict[str, list] = {}  # per-frame outputs ("shading/003") are browsed with a slider below
        for layer in job.layers:
            if "/" in layer.layer:
                stacks.setdefault(layer.layer.split("/", 1)[0], []).append(layer)
            else:
                images.append((layer.layer, layer.artifact_key, layer.kind, layer))
        for cell, (label, key, kind, layer) in zip(_grid(len(images)), images):
            with cell:
                if layer is None:
                    layer_image(key, kind, "srgb", "input")
                    continue
                words, tip = display.plain_caption(job.method, layer.layer)
                layer_image(key, kind, layer.colour_space, f"{label}: {words}", tip)
                download_png(st, "PNG", key, layer.filename, state.download_key(job.id, layer.layer))
        for name, frames in stacks.items():
            frame_browser(job.id, name, sorted(frames, key=lambda layer: layer.layer),
                          input_view.frames if input_view else [])
        for name, value in job.values.items():
            numbers = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
            st.markdown(f"**{name}**: " + ", ".join(f"{v:.4g}" for v in numbers))
        if sessions is not None and job.layers:
            st.download_button(
                "Download all (zip of PNGs + result.json)",
                lambda: results.result_zip(sessions, job.id, visitor=current_visitor()),
                file_name=f"{job.method}_{job.id}.zip", mime="application/zip", icon=":material/folder_zip:",
                on_click="ignore", key=state.download_all_key("job", job.id))


def _waiting(job: backend.JobView, input_view: backend.InputView | None,
             sessions: sessionmaker[Session] | None) -> None:
    """A queued or running job in plain words: its place in line, what it waits for, elapsed time and an estimate
    from earlier runs of the same method on inputs of about this size."""
    estimate = None
    if sessions is not None and input_view is not None:
        estimate = results.typical_seconds(sessions, job.method,
                                           input_view.width * input_view.height * input_view.frame_count)
    typical = f" Runs like this usually take about {estimate:.1f} s." if estimate is not None else ""
    if job.status == "queued":
        where = results.queue_state(sessions, job.id) if sessions is not None else None
        text = (where.sentence() if where else "Waiting for a worker.") + typical
        st.progress(0.0, text=text)
        return
    elapsed = job.seconds
    stage = job.message or "working"
    text = f"{stage[0].upper()}{stage[1:]} · {elapsed:.0f} s so far" if elapsed is not None else stage
    st.progress(min(max(job.progress, 0.0), 1.0), text=text + ("." if not typical else "." + typical))


def current_visitor() -> str | None:
    """The public visitor's token (None in team mode or for an admin: they see everything)."""
    if access.is_admin(st.session_state.get(state.ADMIN_UNTIL)):
        return None
    return st.session_state.get(state.VISITOR)


def voter_name() -> str:
    """Who a vote is from: the public visitor's token, else a random id kept for this browser session (st.session_state
    is one proxy object for every session, so its id() would name every voter alike)."""
    if st.session_state.get(state.VISITOR):
        return st.session_state[state.VISITOR]
    if not st.session_state.get(state.VOTER):
        st.session_state[state.VOTER] = f"session-{secrets.token_hex(6)}"
    return st.session_state[state.VOTER]


def admin_login() -> None:
    """Sidebar: the admin login of public mode (the secret comes from the environment; sessions expire)."""
    if access.admin_secret() is None:
        return
    if access.is_admin(st.session_state.get(state.ADMIN_UNTIL)):
        st.caption(":material/shield_person: Signed in as admin.")
        if st.button("Sign out", key=state.ADMIN_LOGOUT):
            st.session_state[state.ADMIN_UNTIL] = None
            st.rerun()
        return
    with st.expander("Admin", icon=":material/lock:"):
        given = st.text_input("Admin password", type="password", key=state.ADMIN_SECRET)
        if st.button("Sign in", key=state.ADMIN_LOGIN):
            until = access.admin_login(given)
            if until is None:
                st.error("That is not the admin password.")
            else:
                st.session_state[state.ADMIN_UNTIL] = until
                st.rerun()


def download_png(container, label: str, key: str, filename: str, button_key: str) -> None:
    """A download of one stored file at full resolution that never loads it while the page is drawn: a link
    straight to the bucket for object storage (the file does not pass through the dashboard at all), else a
    button whose file Streamlit reads once, when clicked."""
    link = backend.artifact_link(key, filename)
    if link is not None:
        container.link_button(label, link, icon=":material/download:", key=button_key)
    else:
        container.download_button(label, functools.partial(backend.artifact_file, key), file_name=filename,
                                   mime="image/png", icon=":material/download:", on_click="ignore", key=button_key)


def frame_browser(job_id: int, name: str, layers: Sequence[backend.LayerView], input_keys: Sequence[str]) -> None:
    """A per-frame output (e.g. the shading of every frame) as one image with a frame slider, beside the input
    frame it belongs to, with downloads of this frame and of all frames."""
    st.markdown(f"**{name}** · {len(layers)} frames · {layers[0].meaning}")
    index = 0
    if len(layers) > 1:
        index = st.slider("Frame", 1, len(layers), 1, key=state.frame_key(job_id, name)) - 1
    layer = layers[index]
    left, right = st.columns(2)
    if len(input_keys) == len(layers):  # one stored file per frame: show the matching input
        left.image(artifact_image(input_keys[index], "image"), caption=f"input frame {index + 1}", width="stretch")
    elif len(input_keys) == 1:  # several maps of one input (e.g. attention per recurrent step): a heat-map overlay
        from .images import heat_overlay

        left.image(heat_overlay(artifact_image(input_keys[0], "image"),
                                artifact_image(layer.artifact_key, layer.kind, layer.colour_space)),
                   caption=f"{name} {index + 1} over the input", width="stretch")
    with right:
        words, tip = display.plain_caption(layer.method, layer.layer)
        layer_image(layer.artifact_key, layer.kind, layer.colour_space, f"{name} frame {index + 1}: {words}", tip)
    this, every = st.columns(2)
    download_png(this, f"PNG of frame {index + 1}", layer.artifact_key, layer.filename,
                 state.download_key(job_id, name))
    every.download_button(
        f"All {len(layers)} frames (zip)", lambda: results.layers_zip(layers), file_name=f"{name}_frames.zip",
        mime="application/zip", icon=":material/folder_zip:", on_click="ignore",
        key=state.download_key(job_id, f"{name}/all"),
    )


def _results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> bool:
    """Draw the overall progress and every job; return whether all of them have finished."""
    visitor = current_visitor()
    jobs = backend.job_views(sessions, job_ids, visitor=visitor)
    input_view = backend.input_view(sessions, input_id, visitor=visitor) if input_id is not None else None
    done = sum(job.finished for job in jobs)
    if done < len(jobs):
        st.progress(done / max(len(jobs), 1), text=f"{done} of {len(jobs)} job(s) finished")
    for job in jobs:
        job_result(job, input_view, sessions)
    return done == len(jobs)


@st.fragment(run_every=POLL_SECONDS)
def _polled_results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> None:
    if _results(sessions, input_id, job_ids):
        st.rerun()  # a full rerun draws the finished results once, without a timer


def live_results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> None:
    """The results of a submission, polled every :data:`POLL_SECONDS` until every job has finished."""
    if all(job.finished for job in backend.job_views(sessions, job_ids, visitor=current_visitor())):
        _results(sessions, input_id, job_ids)
    else:
        _polled_results(sessions, input_id, list(job_ids))
