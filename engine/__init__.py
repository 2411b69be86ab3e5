"""Intrinsic Lab engine: method registry, image I/O, device resolution and the methods themselves.

The engine never imports Streamlit and never talks to the database except in `engine.worker`
(the one place where engine and db meet).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
