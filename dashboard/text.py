"""User text shown by Streamlit, made inert: file names, dataset names and error messages are displayed as text.

Streamlit renders Markdown (links, images, ``:material/…:`` icons, ``:red[…]`` colours, LaTeX between ``$``) in
``st.markdown``, ``st.caption``, ``st.error`` / ``st.warning`` / ``st.success`` / ``st.info`` and image captions.
A file named ``[click](https://evil.example) ![x](https://tracker.example/p.png)`` must show those characters, not
a link and an image in every visitor's Gallery. :func:`md` backslash-escapes every ASCII punctuation character
that can start Markdown or one of Streamlit's directives (CommonMark guarantees each such escape renders the
character itself), a colon before a letter or a slash (icons, colours, ``https://`` autolinks), breaks ``www.``
autolinks and flattens line breaks; ordinary text (``photo.png: 3 frames``, ``my-scan 2.tif``) is left as it is.
"""

from __future__ import annotations

import re

_MARKUP = frozenset("\\`*_{}[]()#!|<>~$@")
_WWW = re.compile(r"(?i)\b(www)\.")
#: A colon before a letter or a slash starts an icon or colour directive (``:material/x:``) or a URL (``https://``).
_COLON = re.compile(r":(?=[A-Za-z/])")


def md(text: object) -> str:
    """``text`` escaped for any Streamlit element that renders Markdown."""
    flat = " ".join(str(text).splitlines())
    escaped = "".join("\\" + ch if ch in _MARKUP else ch for ch in flat)
    return _COLON.sub(r"\\:", _WWW.sub(r"\1\\.", escaped))
