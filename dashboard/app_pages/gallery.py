"""Gallery: every stored input × every method that ran on it; one input's results in one grid (rows = what a layer
is, columns = methods, zoom and pan shared by every cell); team votes; and a close comparison of any two layers.

The address holds what is shown (``?input=ID&left=…&right=…&mode=…``), so a comparison can be linked.
"""

import streamlit as st

from dashboard import backend, compare, display, results, resources, state, views
from dashboard.access import is_admin
from dashboard.text import md
from engine.registry import all_methods, get_method

st.title("Gallery")
st.caption("Every uploaded image and what each method made of it. Open one to see all its results in one grid, "
           "vote on which method did better, and compare any two layers closely.")

sessions = resources.sessions()
visitor = views.current_visitor()
admin = is_admin(st.session_state.get(state.ADMIN_UNTIL))
titles = {spec.name: spec.title for spec in all_methods()}

method_col, date_col = st.columns([2, 1])
methods = method_col.multiselect("Methods", list(titles), key=state.GALLERY_METHODS, format_func=titles.get,
                                 placeholder="All methods")
dates = date_col.date_input("Run between", value=(), key=state.GALLERY_DATES, format="YYYY-MM-DD")
first, last = (tuple(dates) + (None, None))[:2] if dates else (None, None)

entries = backend.gallery(sessions, methods, first, last or first, visitor=visitor)
linked = st.query_params.get("input")
if (linked is not None and linked.isdigit() and not methods and not dates
        and int(linked) not in {e.input.id for e in entries}):  # a shared link to an older input
    entries = backend.gallery(sessions, visitor=visitor, input_id=int(linked), limit=1) + entries
if not entries:
    st.info("Nothing here yet. Upload an image on the **Decompose** page and run a method on it.")
    st.stop()


def _best(run: backend.JobView) -> backend.LayerView | None:
    singles = [layer for layer in run.layers if "/" not in layer.layer] or run.layers
    if not singles:
        return None
    return singles[display.best_layer_index(run.method, [layer.layer for layer in singles])]


for entry in entries[:20]:
    with st.container(border=True):
        item = entry.input
        head, link = st.columns([5, 1])
        # A file name is the uploader's text: shown as plain text, never as markdown.
        head.text(f"{item.name} · {item.width}×{item.height}"
                  + (f" × {item.frame_count} frames" if item.frame_count > 1 else "")
                  + f" · {item.created_at:%Y-%m-%d %H:%M} UTC")
        if link.button("Open", key=f"gallery.open.{item.id}", icon=":material/grid_view:"):
            st.query_params["input"] = str(item.id)
            st.rerun()
        cells = st.columns(views.GRID_COLUMNS + 1)
        cells[0].image(views.artifact_thumbnail(item.frames[0], "image"), caption="input", width="stretch")
        for cell, run in zip(cells[1:], entry.runs):
            with cell:
                layer = _best(run)
                if layer is not None:
                    st.image(views.artifact_thumbnail(layer.artifact_key, layer.kind, layer.colour_space),
                             caption=f"{run.title} · {layer.layer}", width="stretch")
                else:
                    st.caption(f"{views.STATUS_ICONS.get(run.status, '')} {run.title}: {run.status}")
        if len(entry.runs) > views.GRID_COLUMNS:
            st.caption(f"…and {len(entry.runs) - views.GRID_COLUMNS} more method(s): open it to see them all.")

st.divider()
by_id = {entry.input.id: entry for entry in entries}
default = int(linked) if linked is not None and linked.isdigit() and int(linked) in by_id else next(iter(by_id))
input_id = st.selectbox("Image", list(by_id), index=list(by_id).index(default), key=state.GALLERY_INPUT,
                        format_func=lambda i: f"#{i} · {by_id[i].input.name}")
if str(input_id) != st.query_params.get("input"):
    st.query_params["input"] = str(input_id)
entry = by_id[input_id]
done = [run for run in entry.runs if run.status == "succeeded" and run.layers]

view = st.segmented_control("Show", ["grid", "compare"], default=st.query_params.get("view", "grid"),
                            required=True, key=state.GALLERY_VIEW,
                            format_func={"grid": "All methods in one grid", "compare": "Compare two layers"}.get)
st.query_params["view"] = view

zoom_col, x_col, y_col = st.columns(3)
zoom = zoom_col.slider("Zoom (every picture)", 1.0, 8.0, 1.0, 0.5, format="%.1f×", key=state.ZOOM)
centre_x = x_col.slider("Look at, left → right", 0.0, 1.0, 0.5, 0.01, key=state.ZOOM_X, disabled=zoom == 1)
centre_y = y_col.slider("Look at, top → bottom", 0.0, 1.0, 0.5, 0.01, key=state.ZOOM_Y, disabled=zoom == 1)

if view == "grid":
    shown = st.multiselect("Methods (columns)", [run.method for run in done],
                           default=[run.method for run in done], format_func=titles.get, key=state.GRID_METHODS)
    runs = [run for run in done if run.method in shown]
    if not runs:
        st.info("No finished result on this image yet (or no method chosen above).")
    else:
        by_role: dict = {}
        for run in runs:
            for layer in run.layers:
                if "/" in layer.layer:
                    continue
                by_role.setdefault(display.layer_role(run.method, layer.layer), {})[run.method] = layer
        header = st.columns([1] + [2] * len(runs))
        header[0].image(compare.zoom(views.artifact_image(entry.input.frames[0], "image"), centre_x,
                                           centre_y, zoom), caption="input", width="stretch")
        for cell, run in zip(header[1:], runs):
            took = run.timings.get("total")
            cell.markdown(f"**{run.title}**")
            cell.caption(f"{took:.2f} s on {run.device}" if took is not None else run.device or "")
        for role in display.ROW_ORDER:
            if role not in by_role:
                continue
            words, formula = display.ROLE_WORDS[role]
            row = st.columns([1] + [2] * len(runs))
            row[0].markdown(f"**{role.value.replace('_', ' ')}**")
            row[0].caption(words, help=formula or None)
            for cell, run in zip(row[1:], runs):
                layer = by_role[role].get(run.method)
                if layer is None:
                    cell.caption("—")
                    continue
                image, value_range = views.artifact_display(layer.artifact_key, layer.kind, layer.colour_space,
                                                            views.current_exposure())
                cell.image(compare.zoom(image, centre_x, centre_y, zoom), width="stretch")
                if value_range is not None:
                    cell.caption(f"{layer.layer}: {value_range[0]:.3g} … {value_range[1]:.3g} (viridis)",
                                 help=layer.meaning)
                else:
                    cell.caption(layer.layer, help=layer.meaning)
                views.download_png(cell, "PNG", layer.artifact_key, layer.filename,
                                   state.download_key(run.id, f"grid.{layer.layer}"))
    st.download_button("Download everything on this image (zip of PNGs + result.json per method)",
                       lambda: results.input_zip(sessions, input_id, visitor=visitor),
                       file_name=f"input_{input_id}.zip", mime="application/zip", icon=":material/folder_zip:",
                       on_click="ignore", key=state.download_all_key("input", input_id))
else:
    choices = backend.layer_choices(entry)
    labels = [choice.label for choice in choices]
    asked_left, asked_right = st.query_params.get("left"), st.query_params.get("right")
    left_col, right_col = st.columns(2)
    left = left_col.selectbox("Left / first", labels, index=labels.index(asked_left) if asked_left in labels else 0,
                              key=state.COMPARE_LEFT)
    right = right_col.selectbox("Right / second", labels,
                                index=labels.index(asked_right) if asked_right in labels else min(1, len(labels) - 1),
                                key=state.COMPARE_RIGHT)
    mode_col, amount_col = st.columns([1, 2])
    asked_mode = st.query_params.get("mode")
    mode = mode_col.segmented_control("How", list(compare.MODES),
                                      default=asked_mode if asked_mode in compare.MODES else "wipe", required=True,
                                      format_func=str.capitalize, key=state.COMPARE_MODE)
    st.query_params.update({"left": left, "right": right, "mode": mode})
    if mode == "difference":
        amount = amount_col.slider("Amplify differences", 1.0, 10.0, 4.0, 0.5, key=f"{state.COMPARE_AMOUNT}.gain")
    else:
        amount = amount_col.slider("Wipe position" if mode == "wipe" else "Blend (0 = left, 1 = right)",
                                   0.0, 1.0, 0.5, 0.01, key=f"{state.COMPARE_AMOUNT}.{mode}")
    pick = {choice.label: choice for choice in choices}
    a = views.artifact_image(pick[left].artifact_key, pick[left].kind, pick[left].colour_space)
    b = views.artifact_image(pick[right].artifact_key, pick[right].kind, pick[right].colour_space)
    composite = views.composed(a, b, mode, amount, centre_x=centre_x, centre_y=centre_y, zoom_factor=zoom)
    captions = {"wipe": f"left of the line: {left} · right of it: {right}",
                "blend": f"{left} blended with {right}", "difference": f"|{left} − {right}| × {amount:g}"}
    st.image(composite, caption=captions[mode], width="stretch")
    st.caption("This page's address links to this comparison.")

# --- team judgement -----------------------------------------------------------------------------------------
st.subheader("Which did better?")
tasks: dict = {}
for run in done:
    tasks.setdefault(get_method(run.method).task, []).append(run.method)
pairs = {task: names for task, names in tasks.items() if len(names) >= 2}
if not pairs:
    st.caption("Run two methods of the same task on this image to vote on which did better; votes feed the "
               "human-preference leaderboard on the **Leaderboards** page.")
else:
    task = next(iter(pairs))
    names = pairs[task]
    a_col, b_col = st.columns(2)
    method_a = a_col.selectbox("First", names, format_func=titles.get, key=state.VOTE_LEFT)
    method_b = b_col.selectbox("Second", [n for n in names if n != method_a], format_func=titles.get,
                               key=state.VOTE_RIGHT)
    buttons = st.columns(3)
    for column, (winner, label) in zip(buttons, (("a", f"{titles[method_a]} is better"), ("same", "About the same"),
                                                 ("b", f"{titles[method_b]} is better"))):
        if column.button(label, key=state.vote_key(input_id, winner), width="stretch"):
            try:
                st.session_state[state.VOTE_NOTE] = results.vote(sessions, input_id, method_a, method_b, winner,
                                                                 views.voter_name(), visitor=visitor)
            except (ValueError, KeyError) as exc:
                st.session_state[state.VOTE_NOTE] = f"Not counted: {exc}"
note = st.session_state[state.VOTE_NOTE]
if note:
    (st.warning if note.startswith("Not counted") else st.success)(note)
    st.session_state[state.VOTE_NOTE] = None

if admin:
    st.subheader("Admin")
    publish_col, delete_col, _ = st.columns([1, 1, 3])
    if publish_col.button("Publish as an example", key=f"gallery.publish.{input_id}",
                          help="Every visitor of the public demo will see this image and its results."):
        st.success(results.publish(sessions, input_id))
    if delete_col.button("Delete", key=f"gallery.delete.{input_id}", type="secondary",
                         help="Remove this image, its results and the files only they use."):
        st.query_params.pop("input", None)
        st.success(results.delete_input(sessions, input_id))
