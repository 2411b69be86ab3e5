"""The one registry mechanism behind methods, metrics, weight sets, training recipes and dataset kinds.

A :class:`Registry` maps names to entries. Adding a name twice is an error (never a silent overwrite); asking for
an unknown name raises the registry's error type with one message that lists the close matches (``difflib``) and
every registered name. Entries that register themselves on import are listed as module names (``modules``, a tuple
or a zero-argument callable returning one, so the list can live in the package it names) and imported on the first
lookup -- never at import time of the registry itself, which keeps the registries free of import cycles.

>>> colours = Registry("colour")
>>> colours.add("red", 1)
1
>>> colours.get("rde")
Traceback (most recent call last):
...
engine.errors.UnknownNameError: unknown colour 'rde' (did you mean 'red'?); registered: red
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownNameError

T = TypeVar("T")


class Registry(Mapping, Generic[T]):
    def __init__(self, what: str, error: type[Exception] = UnknownNameError,
                 modules: tuple[str, ...] | Callable[[], tuple[str, ...]] = (), owner: str = ""):
        self.what = what  # "method", "metric", … (used in messages)
        self.owner = owner  # prefixes messages ("cgintrinsics: unknown weight set …")
        self.error = error
        self._modules = modules
        self._entries: dict[str, T] = {}
        self._loaded = False

    # --- registering --------------------------------------------------------------------------------------------
    def add(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self._prefix}{self.what} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    @property
    def _prefix(self) -> str:
        return f"{self.owner}: " if self.owner else ""

    def load(self) -> None:
        """Import the modules that register entries (once)."""
        if not self._loaded:
            modules = self._modules() if callable(self._modules) else self._modules
            for module in modules:  # a module that fails to import fails every lookup, never a silent gap
                importlib.import_module(module)
            self._loaded = True

    # --- looking up ---------------------------------------------------------------------------------------------
    def get(self, name: str, *default) -> T:  # type: ignore[override]
        self.load()
        try:
            return self._entries[name]
        except KeyError:
            if default:
                return default[0]
            raise self.unknown(name) from None

    def unknown(self, name: str) -> Exception:
        """The error for an unknown ``name``: close matches first, then every registered name."""
        names = sorted(self._entries)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        return self.error(f"{self._prefix}unknown {self.what} {name!r}{hint}; registered: {', '.join(names) or 'none'}")

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(list(self._entries))

    def __len__(self) -> int:
        self.load()
        return len(self._entries)
