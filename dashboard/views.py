"""Rendering pieces shared by several pages (Streamlit); they call the plain-Python modules and only draw."""

from __future__ import annotations

import io
import zipfile
from typing import Sequence

import numpy as np
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker

from engine.imaging import to_display

from . import backend, compare, state
from .images import layer_display, thumbnail

POLL_SECONDS = 1.5
GRID_COLUMNS = 4
STATUS_ICONS = {"queued": ":material/schedule:", "running": ":material/progress_activity:",
                "succeeded": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:"}


#: Longest side of a layer as sent to the browser; the PNG download keeps the full resolution.
DISPLAY_SIDE = 2048


@st.cache_data(max_entries=256, show_spinner=False)
def artifact_image(key: str, kind: str, colour_space: str = "srgb") -> np.ndarray:
    """A stored artifact as a display array. Artifacts are content-addressed, so the key fixes the result."""
    return thumbnail(layer_display(backend.artifact_bytes(key), kind, name=key[:12], colour_space=colour_space),
                     DISPLAY_SIDE)


@st.cache_data(max_entries=512, show_spinner=False)
def artifact_thumbnail(key: str, kind: str, colour_space: str = "srgb") -> np.ndarray:
    return thumbnail(artifact_image(key, kind, colour_space))


#: The comparison is a pure function of two arrays and the sliders, so repeated slider positions are instant.
composed = st.cache_data(compare.compose, max_entries=32, show_spinner=False)


def frame_strip(frames: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Uploaded frames as a row of previews (at most one row; a long sequence shows its first frames)."""
    shown = list(frames)[:GRID_COLUMNS]
    columns = st.columns(GRID_COLUMNS)
    for index, (column, frame) in enumerate(zip(columns, shown)):
        caption = names[index] if len(names) == len(frames) else f"frame {index + 1}"
        column.image(thumbnail(to_display(frame), 512), caption=caption, width="stretch")


def _grid(count: int) -> list:
    cells = []
    for start in range(0, count, GRID_COLUMNS):
        cells.extend(st.columns(GRID_COLUMNS))
    return cells


def job_result(job: backend.JobView, input_view: backend.InputView | None) -> None:
    """One job: its state while it waits or runs, then the input beside every layer, downloads and numbers."""
    with st.container(border=True):
        st.markdown(f"{STATUS_ICONS.get(job.status, '')} **{job.title}** · {job.status}")
        if job.status in ("queued", "running"):
            text = job.message or ("waiting for a worker" if job.status == "queued" else "running")
            st.progress(min(max(job.progress, 0.0), 1.0), text=text)
            return
        if job.status == "failed":
            st.error(job.error or "the job failed without a message", icon=":material/error:")
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
                space = layer.colour_space if layer is not None else "srgb"
                st.image(artifact_image(key, kind, space), caption=label if layer is None else f"{label}: {layer.meaning}",
                         width="stretch")
                if layer is not None:
                    st.download_button(
                        "PNG", backend.artifact_bytes(key), file_name=layer.filename, mime="image/png",
                        icon=":material/download:", on_click="ignore", key=state.download_key(job.id, layer.layer),
                    )
        for name, frames in stacks.items():
            frame_browser(job.id, name, sorted(frames, key=lambda layer: layer.layer),
                          input_view.frames if input_view else [])
        for name, value in job.values.items():
            numbers = np.atleast_1d(np.asarray(value, dtype=float)).ravel()
            st.markdown(f"**{name}**: " + ", ".join(f"{v:.4g}" for v in numbers))


def _zip_of(layers: Sequence[backend.LayerView]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for layer in layers:
            archive.writestr(layer.filename, backend.artifact_bytes(layer.artifact_key))
    return buffer.getvalue()


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
    right.image(artifact_image(layer.artifact_key, layer.kind, layer.colour_space), caption=f"{name} frame {index + 1}",
                width="stretch")
    this, every = st.columns(2)
    this.download_button(
        f"PNG of frame {index + 1}", backend.artifact_bytes(layer.artifact_key), file_name=layer.filename,
        mime="image/png", icon=":material/download:", on_click="ignore", key=state.download_key(job_id, name),
    )
    every.download_button(
        f"All {len(layers)} frames (zip)", lambda: _zip_of(layers), file_name=f"{name}_frames.zip",
        mime="application/zip", icon=":material/folder_zip:", on_click="ignore",
        key=state.download_key(job_id, f"{name}/all"),
    )


def _results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> bool:
    """Draw the overall progress and every job; return whether all of them have finished."""
    jobs = backend.job_views(sessions, job_ids)
    input_view = backend.input_view(sessions, input_id) if input_id is not None else None
    done = sum(job.finished for job in jobs)
    if done < len(jobs):
        st.progress(done / max(len(jobs), 1), text=f"{done} of {len(jobs)} job(s) finished")
    for job in jobs:
        job_result(job, input_view)
    return done == len(jobs)


@st.fragment(run_every=POLL_SECONDS)
def _polled_results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> None:
    if _results(sessions, input_id, job_ids):
        st.rerun()  # a full rerun draws the finished results once, without a timer


def live_results(sessions: sessionmaker[Session], input_id: int | None, job_ids: Sequence[int]) -> None:
    """The results of a submission, polled every :data:`POLL_SECONDS` until every job has finished."""
    if all(job.finished for job in backend.job_views(sessions, job_ids)):
        _results(sessions, input_id, job_ids)
    else:
        _polled_results(sessions, input_id, list(job_ids))
