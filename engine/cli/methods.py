"""``python -m engine methods``: list the registered methods (never loads weights)."""

from __future__ import annotations

import json

from ..registry import all_methods


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("methods", help="list registered methods")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=handle)


def handle(args) -> int:
    specs = all_methods()
    if args.json:
        print(json.dumps([
            {"name": s.name, "title": s.title, "task": s.task, "input": s.input_kind.value,
             "outputs": [o.name for o in s.outputs], "devices": list(s.devices), "baseline": s.is_baseline,
             "params": {p.name: p.default for p in s.params}}
            for s in specs
        ], indent=2))
        return 0
    width = max((len(s.name) for s in specs), default=4)
    for s in specs:
        tag = " [baseline]" if s.is_baseline else ""
        outputs = ", ".join(o.name for o in s.outputs)
        year = f" ({s.year})" if s.year else ""
        print(f"{s.name:<{width}}  {s.title}{year}{tag}\n{'':<{width}}  input: {s.input_kind.label}; "
              f"outputs: {outputs}")
    return 0
