"""Gallery: every stored input × every method that ran on it, and a side-by-side comparison of any two layers."""

import streamlit as st

from dashboard import backend, compare, resources, state, views
from dashboard.text import md
from engine.registry import all_methods


st.title("Gallery")
st.caption("Every uploaded image and what each method made of it. Compare any two layers further down.")

method_col, date_col = st.columns([2, 1])
methods = method_col.multiselect("Methods", [spec.name for spec in all_methods()], key=state.GALLERY_METHODS,
                                 placeholder="All methods")
dates = date_col.date_input("Run between", value=(), key=state.GALLERY_DATES, format="YYYY-MM-DD")
first, last = (tuple(dates) + (None, None))[:2] if dates else (None, None)

entries = backend.gallery(resources.sessions(), methods, first, last or first)
if not entries:
    st.info("Nothing here yet. Upload an image on the **Decompose** page and run a method on it.")
    st.stop()

for entry in entries:
    with st.container(border=True):
        item = entry.input
        st.markdown(f"**{md(item.name)}** · {item.width}×{item.height}"
                    + (f" × {item.frame_count} frames" if item.frame_count > 1 else "")
                    + f" · {item.created_at:%Y-%m-%d %H:%M} UTC")
        cells = st.columns(views.GRID_COLUMNS + 1)
        cells[0].image(views.artifact_thumbnail(item.frames[0], "image"), caption="input", width="stretch")
        for cell, run in zip(cells[1:], entry.runs):
            with cell:
                if run.layers:
                    layer = run.layers[0]
                    st.image(views.artifact_thumbnail(layer.artifact_key, layer.kind, layer.colour_space),
                             caption=f"{run.method} · {layer.layer}", width="stretch")
                else:
                    st.caption(f"{views.STATUS_ICONS.get(run.status, '')} {run.method}: {run.status}")
        if len(entry.runs) > views.GRID_COLUMNS:
            st.caption(f"…and {len(entry.runs) - views.GRID_COLUMNS} more method(s); compare them below.")

st.divider()
st.subheader("Compare")
by_id = {entry.input.id: entry for entry in entries}
input_id = st.selectbox("Image", list(by_id), key=state.GALLERY_INPUT,
                        format_func=lambda i: f"#{i} · {by_id[i].input.name}")
choices = backend.layer_choices(by_id[input_id])
labels = [choice.label for choice in choices]
left_col, right_col = st.columns(2)
left = left_col.selectbox("Left / first", labels, index=0, key=state.COMPARE_LEFT)
right = right_col.selectbox("Right / second", labels, index=min(1, len(labels) - 1), key=state.COMPARE_RIGHT)

mode_col, amount_col = st.columns([1, 2])
mode = mode_col.segmented_control("How", list(compare.MODES), default="wipe", required=True,
                                  format_func=str.capitalize, key=state.COMPARE_MODE)
if mode == "difference":
    amount = amount_col.slider("Amplify differences", 1.0, 10.0, 4.0, 0.5, key=f"{state.COMPARE_AMOUNT}.gain")
else:
    amount = amount_col.slider("Wipe position" if mode == "wipe" else "Blend (0 = left, 1 = right)",
                               0.0, 1.0, 0.5, 0.01, key=f"{state.COMPARE_AMOUNT}.{mode}")
zoom_col, x_col, y_col = st.columns(3)
zoom = zoom_col.slider("Zoom", 1.0, 8.0, 1.0, 0.5, format="%.1f×", key=state.ZOOM)
centre_x = x_col.slider("Zoom centre, left → right", 0.0, 1.0, 0.5, 0.01, key=state.ZOOM_X, disabled=zoom == 1)
centre_y = y_col.slider("Zoom centre, top → bottom", 0.0, 1.0, 0.5, 0.01, key=state.ZOOM_Y, disabled=zoom == 1)

pick = {choice.label: choice for choice in choices}
a = views.artifact_image(pick[left].artifact_key, pick[left].kind, pick[left].colour_space)
b = views.artifact_image(pick[right].artifact_key, pick[right].kind, pick[right].colour_space)
composite = views.composed(a, b, mode, amount, centre_x=centre_x, centre_y=centre_y, zoom_factor=zoom)
captions = {"wipe": f"left of the line: {left} · right of it: {right}",
            "blend": f"{left} blended with {right}", "difference": f"|{left} − {right}| × {amount:g}"}
st.image(composite, caption=captions[mode], width="stretch")
