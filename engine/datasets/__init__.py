"""Dataset adapters: read the standard on-disk layouts, validate them with exact messages, load samples.

``get_adapter(kind)`` returns the adapter for ``mit-intrinsic``, ``lol``, ``raindrop``, ``color-constancy``, ``iiw``,
``image-sequence`` or ``faces``. User-registered datasets (a name bound to a kind and a folder) live in the database
(:mod:`db.benchmark_store`); resolving a name to a folder is the benchmark runner's job.
"""

from __future__ import annotations

from .base import DatasetAdapter, DatasetError, Sample
from .colour_constancy import ColourConstancy
from .faces import Faces
from .iiw import IIW
from .mit import MITIntrinsic
from .pairs import LOL, Raindrop
from .image_sequences import ImageSequences

from ..registries import Registry

ADAPTERS: Registry[DatasetAdapter] = Registry("dataset kind", DatasetError)
for _adapter in (MITIntrinsic(), LOL(), Raindrop(), ColourConstancy(), IIW(), ImageSequences(), Faces()):
    ADAPTERS.add(_adapter.kind, _adapter)


def get_adapter(kind: str) -> DatasetAdapter:
    return ADAPTERS.get(kind)


__all__ = ["ADAPTERS", "DatasetAdapter", "DatasetError", "Sample", "get_adapter"]
