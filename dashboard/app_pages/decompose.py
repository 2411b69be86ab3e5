"""Decompose: upload → choose methods and settings → Run → watch the jobs → see and download every layer."""

import streamlit as st

from dashboard import backend, catalog, resources, state, views
from dashboard.params import render_params
from dashboard.text import md
from dashboard.uploads import UploadedFile, file_types, method_problems, prepare_input
from engine.errors import IntrinsicLabError
from engine.registry import InputKind, methods_for


st.title("Decompose an image")
st.caption("Upload a photo, choose one or more methods and press **Run**. Every result is kept in the Gallery.")

# The address holds the last submission (?input=…&jobs=…), so a reload or a shared link shows its results again.
if not st.session_state[state.SUBMITTED_JOBS] and "jobs" in st.query_params:
    try:
        restored = [int(j) for j in st.query_params["jobs"].split(",") if j.strip()][:50]
        restored_input = int(st.query_params["input"]) if "input" in st.query_params else None
    except ValueError:
        restored, restored_input = [], None
    if restored:
        st.session_state[state.SUBMITTED_INPUT] = restored_input
        st.session_state[state.SUBMITTED_JOBS] = restored

kinds = catalog.input_kinds()
if not kinds:
    st.error("No methods are registered, so there is nothing to run. See engine/methods/__init__.py.")
    st.stop()
if len(kinds) > 1:
    kind = InputKind(st.segmented_control(
        "What do you have?", [k.value for k in kinds], default=kinds[0].value, key=state.INPUT_KIND,
        format_func=lambda value: InputKind(value).label.capitalize(),
    ) or kinds[0].value)
else:
    kind = kinds[0]

low, high = kind.frame_range
many = high is None or high > 1
files = st.file_uploader(
    f"Upload {kind.label}" + (f" ({low} files)" if high == low and many else " (two or more frames)" if many else ""),
    type=file_types(kind), accept_multiple_files=many, key=state.upload_key(kind.value),
    help="PNG, JPEG, BMP, TIFF or WebP; 8 or 16 bits; transparency and greyscale are fine."
         + (" An animated GIF, a zip of frames or a short video (20 frames sampled) count as a sequence of frames."
            if kind == InputKind.IMAGE_SEQUENCE else ""),
)
uploaded = [UploadedFile(f.name, f.getvalue()) for f in (files if many else [files] if files else [])]
prepared = prepare_input(uploaded, kind)
for message in prepared.errors:
    st.error(md(message), icon=":material/error:")
if prepared.frames:
    views.frame_strip(prepared.frames, [f.name for f in prepared.files])
    st.caption(" · ".join(md(part) for part in [prepared.size_label, *prepared.notes]))

specs = methods_for(kind)
by_name = {spec.name: spec for spec in specs}
chosen = st.multiselect(
    "Methods", list(by_name), default=[specs[0].name], key=state.methods_key(kind.value),
    format_func=lambda name: by_name[name].title, placeholder="Choose one or more methods",
)
requests, weights = [], {}
for name in chosen:
    spec = by_name[name]
    with st.expander(f"Settings · {spec.title}"):
        st.caption(spec.summary)
        choices = dict(catalog.weight_choices(spec))
        if choices:
            weights[name] = st.selectbox("Weights", list(choices), format_func=choices.get,
                                         key=state.weights_key(name),
                                         help="Which trained weights to use; the Methods page has each model card.")
        requests.append((spec, render_params(spec)))

problems = method_problems(prepared, requests)
for name, message in problems.items():
    st.warning(md(message), icon=":material/block:")
runnable = [(spec, params) for spec, params in requests if spec.name not in problems]

hint = ("Upload an image first." if not uploaded else "Fix the upload first." if not prepared.ready
        else "Choose a method first." if not runnable else None)
if st.button("Run", type="primary", icon=":material/play_arrow:", disabled=hint is not None, key=state.RUN,
             help=hint):
    try:
        submission = backend.submit(resources.sessions(), prepared, runnable, weights=weights,
                                    visitor=views.current_visitor())
    except IntrinsicLabError as exc:
        st.error(md(exc), icon=":material/error:")
    else:
        st.session_state[state.SUBMITTED_INPUT] = submission.input_id
        st.session_state[state.SUBMITTED_JOBS] = submission.job_ids
        st.session_state[state.SUBMIT_NOTE] = submission.summary()
        st.query_params["input"] = str(submission.input_id)
        st.query_params["jobs"] = ",".join(map(str, submission.job_ids))
elif hint and uploaded:
    st.caption(hint)

job_ids = st.session_state[state.SUBMITTED_JOBS]
if job_ids:
    st.divider()
    st.subheader("Results")
    if st.session_state[state.SUBMIT_NOTE]:
        st.caption(st.session_state[state.SUBMIT_NOTE])
    st.caption("This page's address links to these results: reload it or send it to a colleague"
               + (" (it carries your visitor key: share it only with people who may see your uploads)."
                  if views.current_visitor() else "."))
    views.live_results(resources.sessions(), st.session_state[state.SUBMITTED_INPUT], job_ids)
