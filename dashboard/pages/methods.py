"""Methods: one card per registered method, drawn from its MethodSpec (never loads weights)."""

import streamlit as st

from dashboard import catalog

st.title("Methods")
st.caption("Every method the lab can run, as declared by the method itself: paper, inputs, outputs and settings.")

for card in catalog.method_cards():
    with st.container(border=True):
        badge = " · baseline" if card.is_baseline else ""
        st.subheader(f"{card.title} ({card.year}){badge}")
        st.caption(f"`{card.name}` · {card.task} · input: {card.input_label}")
        st.write(card.summary)
        paper = f"[{card.paper}]({card.url})" if card.url else card.paper
        st.markdown(f"**Paper.** {paper}")
        left, right = st.columns(2)
        with left:
            st.markdown("**Outputs**")
            st.dataframe(card.outputs, hide_index=True, width="stretch")
        with right:
            st.markdown("**Parameters** (defaults from the paper)")
            if card.params:
                st.dataframe(card.params, hide_index=True, width="stretch")
            else:
                st.write("No adjustable parameters.")
        st.markdown(
            f"**Runs on:** {', '.join(card.devices)} · **Learned:** {'yes' if card.learned else 'no (optimisation)'}"
            f" · **Smallest side:** {card.min_side} px"
        )
        st.markdown(f"**Licence:** {card.licence}")
        if card.weights:
            st.markdown("**Weights**")
            st.dataframe(card.weights, hide_index=True, width="stretch")
        if card.provenance:
            st.caption(f"Provenance: {card.provenance}")
