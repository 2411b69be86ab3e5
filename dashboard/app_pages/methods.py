"""Methods: one card per registered method, drawn from its MethodSpec (never loads weights)."""

import pandas as pd
import streamlit as st

from dashboard import catalog, resources, results, views


st.title("Methods")
st.caption("Every method the lab can run, as the method itself declares it: paper, input, outputs and settings.")


def table(rows: list[dict]) -> None:
    # st.table wraps long text (meanings, descriptions) where st.dataframe would cut it off.
    frame = pd.DataFrame(rows)
    st.table(frame.set_index(frame.columns[0]))


cards = catalog.method_cards()
with st.container(border=True):
    st.markdown("**Index**")
    methods_col, baselines_col = st.columns(2)
    methods_col.markdown("\n".join(f"- [{c.heading}](#{c.name}) · {c.task}" for c in cards if not c.is_baseline))
    baselines_col.markdown("\n".join(f"- [{c.heading}](#{c.name})" for c in cards if c.is_baseline))

speed = results.speed_table(resources.sessions())
if speed:
    with st.expander("Speed on this server (medians over recent finished jobs)", icon=":material/speed:"):
        st.dataframe(speed, hide_index=True, key="methods.speed")
        st.caption("Queue wait: from Run to a worker starting the job. Model load: reading weights (0 when the worker "
                   "had them loaded). Compute: time inside the method.")

for card in cards:
    with st.container(border=True):
        st.subheader(card.heading, anchor=card.name)
        st.caption(f"`{card.name}` · task: {card.task} · input: {card.input_label}")
        st.write(card.summary)
        paper = f"[{card.paper}]({card.url})" if card.url else card.paper
        st.markdown(f"**Paper:** {paper}")
        st.markdown(
            f"**Runs on:** {', '.join(card.devices)} · **Learned:** {'yes' if card.learned else 'no (optimisation)'}"
            f" · **Smallest image side:** {card.min_side} px · **Licence:** {card.licence}"
        )
        if card.provenance:
            st.caption(f"Provenance: {card.provenance}")
        st.markdown("**Outputs**")
        table(card.outputs)
        if card.weights:
            st.markdown("**Weights**")
            table(card.weights)
        for weight_set, markdown in card.model_cards:
            with st.expander(f"Model card: {weight_set} weights (training data, steps, scores, how to reproduce)"):
                st.markdown(markdown)
        with st.expander(f"Parameters ({len(card.params)}), with the paper's defaults"):
            if card.params:
                table(card.params)
            else:
                st.write("This method has no adjustable parameters.")
